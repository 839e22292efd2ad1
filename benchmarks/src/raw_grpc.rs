//! A lean unary gRPC client straight on the `h2` crate, for the read scenarios' load.
//!
//! The loader runs on the same two CPUs as the servers it measures, so every microsecond it
//! spends per request is taken from the server. tonic's client (tower buffer, channel
//! worker task, codec machinery) measured ~18 µs of CPU per read here; this client sends a
//! prebuilt header block and one DATA frame per call and parses the answer in place (see
//! benchmarks/README.md for the figures). It speaks just enough gRPC for unary calls to a
//! known server: no compression, no retries, no TLS. It checks what a caller must not get
//! wrong: the HTTP status, the gRPC status (in headers or trailers) and the message framing.
//!
//! Every system driven with it (Regatta, etcd, the no-op server) gets the same client, so
//! comparisons stay even.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{Method, Request, Uri, header::HeaderValue};

/// Largest response message accepted (a bound, so a broken server cannot make the loader
/// allocate without limit).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A gRPC failure as a caller sees it: the status code and message, or a transport error.
#[derive(Debug)]
pub struct CallError(pub String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<h2::Error> for CallError {
    fn from(e: h2::Error) -> Self {
        Self(format!("transport: {e}"))
    }
}

/// One HTTP/2 connection to a gRPC server; cheap to clone, shared by any number of
/// concurrent calls (each is one HTTP/2 stream).
#[derive(Clone)]
pub struct RawChannel {
    send: h2::client::SendRequest<Bytes>,
    authority: http::uri::Authority,
    scheme: &'static str,
}

/// The HTTP/2 handshake over `io`; the connection runs in a task of its own.
async fn handshake<T>(io: T, address: &str) -> Result<h2::client::SendRequest<Bytes>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .handshake::<_, Bytes>(io)
        .await
        .with_context(|| format!("HTTP/2 handshake with {address}"))?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or every handle is dropped; calls in
        // flight then fail with the transport error.
        let _ = connection.await;
    });
    Ok(send)
}

/// A method path on a channel: the request URI is built once.
#[derive(Clone)]
pub struct GrpcMethod {
    uri: Uri,
}

impl RawChannel {
    /// Connects to `address` (`http://host:port`, `host:port`, or `https://host:port`
    /// over TLS trusting the run's CA, see [`crate::tls`]).
    pub async fn connect(address: &str) -> Result<Self> {
        let tls = address.starts_with("https://");
        let host_port = address
            .strip_prefix("http://")
            .or_else(|| address.strip_prefix("https://"))
            .unwrap_or(address)
            .trim_end_matches('/');
        let socket: SocketAddr = host_port
            .parse()
            .with_context(|| format!("{address} is not an http://ip:port address"))?;
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(socket),
        )
        .await
        .with_context(|| format!("connecting to {address}: timed out"))?
        .with_context(|| format!("connecting to {address}"))?;
        tcp.set_nodelay(true)?;
        let send = if tls {
            let connector = tokio_rustls::TlsConnector::from(crate::tls::client_config()?);
            let name = rustls_pki_types::ServerName::IpAddress(socket.ip().into());
            let stream = connector
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {address}"))?;
            handshake(stream, address).await?
        } else {
            handshake(tcp, address).await?
        };
        Ok(Self {
            send,
            authority: host_port.parse().context("authority")?,
            scheme: if tls { "https" } else { "http" },
        })
    }

    /// The method at `path` (`/package.Service/Method`) on this channel.
    pub fn method(&self, path: &'static str) -> Result<GrpcMethod> {
        let uri = Uri::builder()
            .scheme(self.scheme)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .with_context(|| format!("method path {path}"))?;
        Ok(GrpcMethod { uri })
    }

    /// Calls `method` with `request`, bounded by `timeout` (sent as `grpc-timeout` too), and
    /// decodes the answer.
    pub async fn unary<Resp: prost::Message + Default>(
        &mut self,
        method: &GrpcMethod,
        request: &impl prost::Message,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        match tokio::time::timeout(timeout, self.call(method, request, timeout)).await {
            Ok(result) => {
                let message = result?;
                Resp::decode(message).map_err(|e| CallError(format!("undecodable answer: {e}")))
            }
            Err(_) => Err(CallError(format!("deadline of {timeout:?} exceeded"))),
        }
    }

    async fn call(
        &mut self,
        method: &GrpcMethod,
        request: &impl prost::Message,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let len = request.encoded_len();
        let mut body = BytesMut::with_capacity(5 + len);
        body.put_u8(0);
        body.put_u32(len as u32);
        request
            .encode(&mut body)
            .map_err(|e| CallError(format!("encoding the request: {e}")))?;
        let head = Request::builder()
            .method(Method::POST)
            .uri(method.uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            )
            .header(http::header::TE, HeaderValue::from_static("trailers"))
            .header("grpc-timeout", grpc_timeout(timeout))
            .body(())
            .map_err(|e| CallError(format!("request head: {e}")))?;
        let mut send = self.send.clone().ready().await?;
        let (response, mut stream) = send.send_request(head, false)?;
        stream.send_data(body.freeze(), true)?;
        let response = response.await?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(CallError(format!("HTTP status {}", parts.status)));
        }
        // A trailers-only answer carries the gRPC status in the headers.
        if let Some(status) = parts.headers.get("grpc-status") {
            check_status(status, parts.headers.get("grpc-message"))?;
            return Err(CallError("an OK status without a message".into()));
        }
        let mut message = BytesMut::new();
        let mut first: Option<Bytes> = None;
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            // The common case, a message in one DATA frame, is used without a copy.
            match first.take() {
                None if message.is_empty() => first = Some(chunk),
                None => message.extend_from_slice(&chunk),
                Some(earlier) => {
                    message.extend_from_slice(&earlier);
                    message.extend_from_slice(&chunk);
                }
            }
            if message.len() > MAX_MESSAGE_BYTES + 5 {
                return Err(CallError("answer over the size limit".into()));
            }
        }
        let trailers = body
            .trailers()
            .await?
            .ok_or_else(|| CallError("answer without trailers".into()))?;
        let status = trailers
            .get("grpc-status")
            .ok_or_else(|| CallError("trailers without grpc-status".into()))?;
        check_status(status, trailers.get("grpc-message"))?;
        let mut framed = first.unwrap_or_else(|| message.freeze());
        unframe(&mut framed).map_err(|e| CallError(e.to_string()))
    }
}

/// `grpc-timeout` header value: milliseconds, at most 8 digits.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    let millis = timeout.as_millis().clamp(1, 99_999_999);
    HeaderValue::from_str(&format!("{millis}m")).unwrap_or(HeaderValue::from_static("10S"))
}

fn check_status(status: &HeaderValue, message: Option<&HeaderValue>) -> Result<(), CallError> {
    match status.as_bytes() {
        b"0" => Ok(()),
        code => Err(CallError(format!(
            "status {}: {}",
            String::from_utf8_lossy(code),
            message
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                .unwrap_or_default()
        ))),
    }
}

/// The one message of a unary answer: a 5-byte prefix (uncompressed flag, big-endian length)
/// and exactly that many bytes.
fn unframe(framed: &mut Bytes) -> Result<Bytes> {
    if framed.len() < 5 {
        bail!("answer of {} bytes: no gRPC message", framed.len());
    }
    let compressed = framed.get_u8();
    if compressed != 0 {
        bail!("compressed answer (flag {compressed}) was not asked for");
    }
    let len = framed.get_u32() as usize;
    if len > MAX_MESSAGE_BYTES || len != framed.len() {
        return Err(anyhow!(
            "gRPC message length {len} does not match the {} bytes received",
            framed.len()
        ));
    }
    Ok(std::mem::take(framed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unframe_takes_exactly_one_message() {
        let mut ok = Bytes::from_static(&[0, 0, 0, 0, 2, 7, 8]);
        assert_eq!(
            unframe(&mut ok).expect("one message"),
            Bytes::from_static(&[7, 8])
        );
        for bad in [
            &[0, 0, 0, 0][..],
            &[1, 0, 0, 0, 1, 9],
            &[0, 0, 0, 0, 3, 7, 8],
            &[0, 0, 0, 0, 1, 7, 8],
        ] {
            assert!(
                unframe(&mut Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn timeouts_are_millisecond_headers() {
        assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
    }
}
