//! The shape of a peer's Raft address (`http://host:port`, `https://host:port`,
//! `unix:///path`), checked before a node is added to the cluster and when a flag names
//! one. Pure: nothing is resolved or dialled.

/// Checks `url` as the value of `--<flag>`; the error is a message naming the flag.
pub fn check(flag: &str, url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(format!("--{flag}: {url:?} names no socket path"));
        }
        return Ok(());
    }
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!(
            "--{flag}: {url:?} must start with http://, https:// or unix://"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("--{flag}: {url:?} needs host:port"));
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("--{flag}: {url:?} has no valid host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("--{flag}: {url:?} has no valid port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked() {
        for good in ["http://a:1", "https://a.b:65535/", "unix:///run/r.sock"] {
            assert_eq!(check("x", good), Ok(()), "{good}");
        }
        for bad in [
            "a:1",
            "http://a",
            "http://:1",
            "http://a:70000",
            "unix://",
            "ftp://a:1",
        ] {
            assert!(check("x", bad).is_err(), "{bad} accepted");
        }
    }
}
