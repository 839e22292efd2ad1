//! Listen and advertise addresses are URLs: `http://host:port`, `https://host:port` (TLS),
//! `unix:///path/to/socket`. This module parses and checks them once, at start-up.
//!
//! Regatta's older command lines give bare `host:port` or `:port`; [`with_scheme`] turns
//! those into the URL they mean before anything else sees them.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Result, bail};

/// The URL a flag's value means: a URL (`scheme://…`) unchanged; a bare `host:port` or
/// `:port` (all interfaces), as Regatta's flags take them, becomes `https://` when the
/// port's TLS flags are given (`tls`) and `http://` otherwise. `flag` names the option in
/// errors. The result is not checked further: callers parse or check it as a URL.
pub fn with_scheme(flag: &str, value: &str, tls: bool) -> Result<String> {
    let value = value.trim();
    if value.contains("://") {
        return Ok(value.to_string());
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        bail!("--{flag}: {value:?} is neither a URL (http://, https://, unix://) nor host:port");
    };
    if port.parse::<u16>().is_err() || host.contains('/') {
        bail!("--{flag}: {value:?} is not host:port");
    }
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}:{port}"))
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp { addr: SocketAddr, tls: bool },
    Unix(PathBuf),
}

impl ListenAddress {
    /// Parses `http://host:port`, `https://host:port` or `unix://path`; `flag` names the
    /// option in errors. Host names are resolved once.
    pub fn parse(flag: &str, url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("--{flag}: {url:?} names no socket path");
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            bail!("--{flag}: {url:?} must start with http://, https:// or unix://");
        };
        let rest = rest.trim_end_matches('/');
        use std::net::ToSocketAddrs;
        let addr = rest
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("--{flag}: {url:?} is not host:port: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("--{flag}: {url:?} resolves to no address"))?;
        Ok(Self::Tcp { addr, tls })
    }

    /// Checks the form of a URL other nodes are reached at (`http(s)://host:port` or
    /// `unix://path`) without resolving the host: peers' names may not resolve yet when a node
    /// starts (DNS of a starting Kubernetes StatefulSet).
    pub fn check_peer_url(flag: &str, url: &str) -> Result<()> {
        regatta_core::peer_url::check(flag, url).map_err(anyhow::Error::msg)
    }

    /// The TCP address to bind for the `port` (`api`, `raft`, `replication`, `rest`),
    /// refusing unix sockets, which only the public API's listener could serve. The caller
    /// decides about TLS (`https://`).
    pub fn tcp_only(&self, port: &str) -> Result<SocketAddr> {
        match self {
            Self::Tcp { addr, .. } => Ok(*addr),
            Self::Unix(path) => bail!(
                "unix:// listen addresses ({}) are not supported for the {port} port",
                path.display()
            ),
        }
    }

    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp { addr, .. } => Some(*addr),
            Self::Unix(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes_and_rejects_others() {
        assert_eq!(
            ListenAddress::parse("api.address", "http://127.0.0.1:8443").expect("valid"),
            ListenAddress::Tcp {
                addr: "127.0.0.1:8443".parse().expect("addr"),
                tls: false
            }
        );
        assert!(matches!(
            ListenAddress::parse("api.address", "https://127.0.0.1:1").expect("valid"),
            ListenAddress::Tcp { tls: true, .. }
        ));
        assert_eq!(
            ListenAddress::parse("api.address", "unix:///tmp/s.sock").expect("valid"),
            ListenAddress::Unix("/tmp/s.sock".into())
        );
        for bad in ["127.0.0.1:1", "ftp://x:1", "http://nohost", "unix://"] {
            let err = ListenAddress::parse("api.address", bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--api.address"), "{err}");
        }
    }

    #[test]
    fn bare_host_port_takes_the_scheme_of_the_ports_tls() {
        assert_eq!(
            with_scheme("api.address", "127.0.0.1:8443", false).expect("bare"),
            "http://127.0.0.1:8443"
        );
        assert_eq!(
            with_scheme("api.address", "node-1.example:8443", true).expect("bare"),
            "https://node-1.example:8443"
        );
        assert_eq!(
            with_scheme("api.address", ":8443", false).expect("port only"),
            "http://0.0.0.0:8443"
        );
        assert_eq!(
            with_scheme("api.address", "[::1]:8443", false).expect("IPv6"),
            "http://[::1]:8443"
        );
        for url in ["https://a:1", "unix:///tmp/s.sock", "http://a:1"] {
            assert_eq!(with_scheme("api.address", url, false).expect(url), url);
        }
        for bad in ["localhost", "a:b", "a/b:1", ""] {
            let err = with_scheme("api.address", bad, false)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--api.address"), "{err}");
        }
    }

    #[test]
    fn only_tcp_addresses_bind_a_tcp_port() {
        let https = ListenAddress::parse("raft.address", "https://127.0.0.1:5012").expect("valid");
        assert_eq!(
            https.tcp_only("raft").expect("TLS is the caller's"),
            "127.0.0.1:5012".parse().expect("addr")
        );
        let unix = ListenAddress::parse("raft.address", "unix:///tmp/r.sock").expect("valid");
        let err = unix.tcp_only("raft").expect_err("refused").to_string();
        assert!(err.contains("unix://"), "{err}");
    }
}
