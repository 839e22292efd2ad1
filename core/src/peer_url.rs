//! The shape of a peer's Raft address (`http://host:port`, `https://host:port`,
//! `unix:///path`), checked before a node is added to the cluster and when a flag names
//! one, and its scheme against the cluster's Raft transport ([`check_transport`]). Pure:
//! nothing is resolved or dialled.

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

/// Checks that `url` (the value of `--<flag>`, already of a valid shape) fits the Raft
/// transport: `https://` when the nodes speak TLS to each other (`tls`, the
/// `--raft.cert-filename`, `--raft.key-filename` and `--raft.ca-filename` flags), `http://`
/// or `unix://` when they do not.
pub fn check_transport(flag: &str, url: &str, tls: bool) -> Result<(), String> {
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    match (tls, https) {
        (true, false) => Err(format!(
            "--{flag}: {url:?} is not https://, and the Raft port of this cluster's nodes \
             serves only TLS (--raft.cert-filename, --raft.key-filename, --raft.ca-filename)"
        )),
        (false, true) => Err(format!(
            "--{flag}: {url:?} is https://, and the nodes speak to each other without TLS: \
             set --raft.cert-filename, --raft.key-filename and --raft.ca-filename on every node"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_must_fit_the_transport() {
        assert_eq!(check_transport("x", "https://a:1", true), Ok(()));
        assert_eq!(check_transport("x", "HTTPS://a:1", true), Ok(()));
        assert_eq!(check_transport("x", "http://a:1", false), Ok(()));
        assert_eq!(check_transport("x", "unix:///r.sock", false), Ok(()));
        for (url, tls) in [
            ("http://a:1", true),
            ("unix:///r.sock", true),
            ("https://a:1", false),
        ] {
            let err = check_transport("x", url, tls).expect_err(url);
            assert!(err.contains("--x") && err.contains(url), "{err}");
            assert!(err.contains("--raft.ca-filename"), "{err}");
        }
    }

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
