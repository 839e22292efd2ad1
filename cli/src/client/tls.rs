//! The client side of TLS, built on regatta-tls: an `https://` `--address` is reached over
//! TLS (ALPN `h2`), trusting the CA in `--ca`, or the system's trusted roots without it;
//! `--insecure` skips verifying the server's certificate (self-signed testing only);
//! `--cert` and `--key` present a client certificate to a node that requires one (mTLS).
//! Files are read and checked before connecting: a bad one is a usage error naming the
//! flag and the file.

use regatta_tls::{ClientSettings, Dialer, IdentityFiles, PemFile};

use super::{ClientOptions, Failure};

/// The TLS client settings `options` ask for: `--cert` and `--key` come together or not
/// at all.
pub fn settings(options: &ClientOptions) -> Result<ClientSettings, Failure> {
    let identity = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some(IdentityFiles {
            cert: PemFile::new("--cert", cert),
            key: PemFile::new("--key", key),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(Failure::usage("--cert needs --key (its private key)")),
        (None, Some(_)) => return Err(Failure::usage("--key needs --cert (its certificate)")),
    };
    Ok(ClientSettings {
        ca: options.ca.as_ref().map(|ca| PemFile::new("--ca", ca)),
        identity,
        insecure_skip_verify: options.insecure,
    })
}

/// The dialer for an `https://` `--address`, every file read and checked now.
pub fn dialer(options: &ClientOptions) -> Result<Dialer, Failure> {
    let config =
        regatta_tls::client_config(&settings(options)?, "client", None).map_err(failure)?;
    Dialer::tls(config, None).map_err(failure)
}

/// Files that cannot be used are the user's to fix (usage); a TLS library refusal is not.
fn failure(e: regatta_tls::Error) -> Failure {
    use regatta_tls::Error as E;
    match e {
        E::Read { .. }
        | E::NotCertificate { .. }
        | E::NotKey { .. }
        | E::KeyMismatch { .. }
        | E::BadCa { .. }
        | E::Settings(_) => Failure::usage(e.to_string()),
        E::Rustls(_) => Failure::fault(regatta_tls::describe(&e)),
    }
}
