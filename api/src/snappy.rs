//! Requests compressed with snappy, as Regatta accepts them.
//!
//! Regatta's Go server registers the `snappy` compressor of
//! `github.com/mostynb/go-grpc-compression`: a request with `grpc-encoding: snappy` carries
//! its compressed messages (flag 1 in the 5-byte gRPC prefix) in the snappy *framed* format.
//! tonic knows gzip, deflate and zstd only and answers such a request `Unimplemented`, so
//! [`SnappyLayer`] undoes the compression before tonic sees the request: every message of
//! the body is re-emitted uncompressed (flag 0) and `grpc-encoding` is removed. Responses
//! are left as tonic makes them (the gRPC spec lets a server answer uncompressed whatever
//! the client accepts).
//!
//! The body is rewritten message by message as it streams, so client-streaming and bidi
//! calls work and only the message being read is buffered:
//!
//! ```text
//!   chunk ──▶ Prefix(5 bytes) ──flag 0──▶ Plain(remaining)     ──▶ bytes passed through
//!                 ▲            └─flag 1──▶ Compressed(len, buf) ──▶ one decompressed message
//!                 └──────────────── message complete ◀─────────────┘
//! ```
//!
//! A compressed message's declared length and its decompressed size are both capped
//! ([`SnappyLayer::new`]); over the cap the call fails `ResourceExhausted`, a corrupt
//! snappy stream fails `Internal`, with the messages Go's gRPC server gives. The decisions
//! ([`parse_prefix`], [`decompress`], [`Deframer`]) are plain functions; the body and the
//! layer only move bytes. A request without snappy is handed on untouched (its body
//! behind a pass-through enum variant).

use std::{
    collections::VecDeque,
    io::Read,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, header::CONTENT_LENGTH};
use http_body::{Body, Frame, SizeHint};

/// The request header naming the compression of the request's messages.
const GRPC_ENCODING: &str = "grpc-encoding";
/// The value of [`GRPC_ENCODING`] this module handles.
const SNAPPY: &str = "snappy";
/// A gRPC message prefix: a compression flag byte and a big-endian `u32` length.
const PREFIX_LEN: usize = 5;
/// What is set aside up front for a compressed message; it grows as its bytes arrive, so
/// a prefix declaring a large message that never comes costs little.
const INITIAL_BUFFER: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a snappy request cannot be read. Every variant fails the call.
#[derive(Debug, thiserror::Error)]
pub enum SnappyError {
    /// A compressed message declares more bytes than the cap.
    #[error("grpc: received message larger than max ({len} vs. {limit})")]
    TooLarge { len: usize, limit: usize },
    /// A compressed message decompresses to more bytes than the cap.
    #[error("grpc: received message after decompression larger than max ({limit})")]
    DecompressedTooLarge { limit: usize },
    /// The message is not a valid snappy framed stream.
    #[error("grpc: failed to decompress the received message (snappy): {reason}")]
    Corrupt { reason: String },
    /// A prefix's flag is neither 0 (uncompressed) nor 1 (compressed).
    #[error("protocol error: received message with invalid compression flag {flag}")]
    BadFlag { flag: u8 },
    /// The body ended inside a message.
    #[error("request body ended inside a gRPC message ({missing} bytes missing)")]
    Truncated { missing: usize },
}

impl From<SnappyError> for tonic::Status {
    fn from(e: SnappyError) -> Self {
        let message = e.to_string();
        match e {
            SnappyError::TooLarge { .. } | SnappyError::DecompressedTooLarge { .. } => {
                tonic::Status::resource_exhausted(message)
            }
            SnappyError::Corrupt { .. }
            | SnappyError::BadFlag { .. }
            | SnappyError::Truncated { .. } => tonic::Status::internal(message),
        }
    }
}

/// What a message prefix announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// An uncompressed message of this many bytes, passed through as it is.
    Plain(usize),
    /// A snappy-compressed message of this many bytes.
    Compressed(usize),
}

/// Reads a message prefix; a compressed message longer than `max` bytes is refused.
pub fn parse_prefix(prefix: [u8; PREFIX_LEN], max: usize) -> Result<Prefix, SnappyError> {
    let [flag, length @ ..] = prefix;
    let len = u32::from_be_bytes(length) as usize;
    match flag {
        0 => Ok(Prefix::Plain(len)),
        1 if len > max => Err(SnappyError::TooLarge { len, limit: max }),
        1 => Ok(Prefix::Compressed(len)),
        flag => Err(SnappyError::BadFlag { flag }),
    }
}

/// Decompresses one message (`payload`, snappy framed format) and returns it framed as an
/// uncompressed gRPC message: flag 0, its length, its bytes. At most `max` bytes are
/// decompressed; a message decompressing to more is refused without reading further.
pub fn decompress(payload: &[u8], max: usize) -> Result<Bytes, SnappyError> {
    let max = max.min(u32::MAX as usize);
    let mut message = Vec::with_capacity(PREFIX_LEN + payload.len().saturating_mul(2).min(max));
    message.extend_from_slice(&[0; PREFIX_LEN]);
    snap::read::FrameDecoder::new(payload)
        .take(max as u64 + 1)
        .read_to_end(&mut message)
        .map_err(|e| SnappyError::Corrupt {
            reason: match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "the stream is cut short".to_string(),
                _ => e.to_string(),
            },
        })?;
    let len = message.len() - PREFIX_LEN;
    if len > max {
        return Err(SnappyError::DecompressedTooLarge { limit: max });
    }
    // `len <= max <= u32::MAX`.
    message[1..PREFIX_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(Bytes::from(message))
}

/// Where a [`Deframer`] is in the body.
#[derive(Debug)]
enum State {
    /// Reading a prefix; `filled` of its bytes so far.
    Prefix {
        prefix: [u8; PREFIX_LEN],
        filled: usize,
    },
    /// Passing the `remaining` bytes of an uncompressed message through.
    Plain { remaining: usize },
    /// Gathering the `len` bytes of a compressed message.
    Compressed { len: usize, payload: BytesMut },
    /// A message could not be read: nothing more is.
    Failed,
}

impl State {
    fn prefix() -> Self {
        Self::Prefix {
            prefix: [0; PREFIX_LEN],
            filled: 0,
        }
    }
}

/// Rewrites a snappy request body chunk by chunk into uncompressed gRPC messages.
#[derive(Debug)]
pub struct Deframer {
    state: State,
    max: usize,
}

impl Deframer {
    /// A deframer for a body's start; compressed messages are capped at `max` bytes, both
    /// as sent and decompressed.
    pub fn new(max: usize) -> Self {
        Self {
            state: State::prefix(),
            max,
        }
    }

    /// Consumes `chunk` and appends to `out` what it completes: the bytes of uncompressed
    /// messages as they arrive, each compressed message once whole, decompressed. After an
    /// error the deframer takes nothing more.
    pub fn push(&mut self, mut chunk: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), SnappyError> {
        let result = self.consume(&mut chunk, out);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn consume(&mut self, chunk: &mut Bytes, out: &mut VecDeque<Bytes>) -> Result<(), SnappyError> {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Prefix { prefix, filled } => {
                    let take = (PREFIX_LEN - *filled).min(chunk.len());
                    prefix[*filled..*filled + take].copy_from_slice(&chunk.split_to(take));
                    *filled += take;
                    if *filled < PREFIX_LEN {
                        continue;
                    }
                    self.state = match parse_prefix(*prefix, self.max)? {
                        Prefix::Plain(len) => {
                            out.push_back(Bytes::copy_from_slice(prefix));
                            State::Plain { remaining: len }
                        }
                        Prefix::Compressed(len) => State::Compressed {
                            len,
                            payload: BytesMut::new(),
                        },
                    };
                    // A message may be empty: finish it before waiting for more bytes.
                    self.complete_empty(out)?;
                }
                State::Plain { remaining } => {
                    let take = (*remaining).min(chunk.len());
                    out.push_back(chunk.split_to(take));
                    *remaining -= take;
                    if *remaining == 0 {
                        self.state = State::prefix();
                    }
                }
                State::Compressed { len, payload } => {
                    let missing = *len - payload.len();
                    if payload.is_empty() && chunk.len() >= missing {
                        // The whole message in this chunk: no copy.
                        out.push_back(decompress(&chunk.split_to(missing), self.max)?);
                        self.state = State::prefix();
                        continue;
                    }
                    if payload.capacity() == 0 {
                        payload.reserve((*len).min(INITIAL_BUFFER));
                    }
                    let take = missing.min(chunk.len());
                    payload.extend_from_slice(&chunk.split_to(take));
                    if payload.len() == *len {
                        out.push_back(decompress(payload, self.max)?);
                        self.state = State::prefix();
                    }
                }
                State::Failed => return Ok(()),
            }
        }
        Ok(())
    }

    /// Ends a message that has no bytes to wait for.
    fn complete_empty(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), SnappyError> {
        match self.state {
            State::Plain { remaining: 0 } => self.state = State::prefix(),
            State::Compressed { len: 0, .. } => {
                out.push_back(decompress(&[], self.max)?);
                self.state = State::prefix();
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks that the body ended between messages.
    pub fn finish(&self) -> Result<(), SnappyError> {
        let missing = match &self.state {
            State::Prefix { filled: 0, .. } | State::Failed => return Ok(()),
            State::Prefix { filled, .. } => PREFIX_LEN - filled,
            State::Plain { remaining } => *remaining,
            State::Compressed { len, payload } => len - payload.len(),
        };
        Err(SnappyError::Truncated { missing })
    }
}

/// Whether a request's messages are snappy-compressed.
pub fn is_snappy(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(SNAPPY.as_bytes()))
}

/// A tower layer making snappy requests readable by tonic; see the module docs. Add it to
/// a gRPC server whose services take compressed requests.
#[derive(Debug, Clone, Copy)]
pub struct SnappyLayer {
    max: usize,
}

impl SnappyLayer {
    /// Compressed messages are capped at `max_message_bytes`, as sent and decompressed
    /// (the node's largest request).
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max: max_message_bytes,
        }
    }
}

impl<S> tower::Layer<S> for SnappyLayer {
    type Service = SnappyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SnappyService {
            inner,
            max: self.max,
        }
    }
}

/// See [`SnappyLayer`].
#[derive(Debug, Clone)]
pub struct SnappyService<S> {
    inner: S,
    max: usize,
}

impl<S, B> tower::Service<Request<B>> for SnappyService<S>
where
    S: tower::Service<Request<SnappyBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if !is_snappy(request.headers()) {
            return self.inner.call(request.map(SnappyBody::plain));
        }
        let headers = request.headers_mut();
        headers.remove(GRPC_ENCODING);
        // The rewritten body has another length.
        headers.remove(CONTENT_LENGTH);
        let max = self.max;
        self.inner
            .call(request.map(|inner| SnappyBody::snappy(inner, max)))
    }
}

pin_project_lite::pin_project! {
    /// A request body: handed on as it is, or with its snappy messages decompressed.
    #[project = SnappyBodyProj]
    pub enum SnappyBody<B> {
        Plain {
            #[pin]
            inner: B,
        },
        Snappy {
            #[pin]
            inner: B,
            deframer: Deframer,
            ready: VecDeque<Bytes>,
            ended: bool,
        },
    }
}

impl<B> SnappyBody<B> {
    /// A body handed on untouched.
    pub fn plain(inner: B) -> Self {
        Self::Plain { inner }
    }

    /// A body whose compressed messages (at most `max` bytes) are decompressed.
    pub fn snappy(inner: B, max: usize) -> Self {
        Self::Snappy {
            inner,
            deframer: Deframer::new(max),
            ready: VecDeque::new(),
            ended: false,
        }
    }
}

impl<B> Body for SnappyBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (mut inner, deframer, ready, ended) = match self.project() {
            SnappyBodyProj::Plain { inner } => {
                return inner.poll_frame(cx).map_err(Into::into);
            }
            SnappyBodyProj::Snappy {
                inner,
                deframer,
                ready,
                ended,
            } => (inner, deframer, ready, ended),
        };
        loop {
            if let Some(data) = ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if *ended {
                return Poll::Ready(None);
            }
            let frame = match std::task::ready!(inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    *ended = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => {
                    *ended = true;
                    return Poll::Ready(deframer.finish().err().map(fail));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    if let Err(e) = deframer.push(data, ready) {
                        *ended = true;
                        ready.clear();
                        return Poll::Ready(Some(fail(e)));
                    }
                }
                // Trailers: the last frame of a body.
                Err(trailers) => {
                    *ended = true;
                    if let Err(e) = deframer.finish() {
                        return Poll::Ready(Some(fail(e)));
                    }
                    return Poll::Ready(Some(Ok(trailers)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Plain { inner } => inner.is_end_stream(),
            Self::Snappy { ready, ended, .. } => *ended && ready.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Plain { inner } => inner.size_hint(),
            Self::Snappy { .. } => SizeHint::default(),
        }
    }
}

/// A body error tonic turns into `e`'s status.
fn fail<T>(e: SnappyError) -> Result<T, BoxError> {
    Err(Box::new(tonic::Status::from(e)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    const MAX: usize = 1024;

    fn compress(message: &[u8]) -> Vec<u8> {
        let mut encoder = snap::write::FrameEncoder::new(Vec::new());
        encoder.write_all(message).expect("compress");
        encoder.into_inner().expect("flush")
    }

    fn framed(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Feeds `body` cut at `cuts`, returns the output joined and the deframer's verdict.
    fn run(body: &[u8], cuts: &[usize], max: usize) -> Result<Vec<u8>, SnappyError> {
        let mut deframer = Deframer::new(max);
        let mut out = VecDeque::new();
        let mut start = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
        cuts.sort_unstable();
        cuts.push(body.len());
        for end in cuts {
            deframer.push(Bytes::copy_from_slice(&body[start..end]), &mut out)?;
            start = end;
        }
        deframer.finish()?;
        Ok(out.iter().flat_map(|b| b.iter().copied()).collect())
    }

    #[test]
    fn prefixes_are_read_and_capped() {
        assert_eq!(
            parse_prefix([0, 0, 0, 1, 0], 10).ok(),
            Some(Prefix::Plain(256))
        );
        assert_eq!(
            parse_prefix([1, 0, 0, 0, 10], 10).ok(),
            Some(Prefix::Compressed(10))
        );
        assert!(matches!(
            parse_prefix([1, 0, 0, 0, 11], 10),
            Err(SnappyError::TooLarge { len: 11, limit: 10 })
        ));
        assert!(matches!(
            parse_prefix([2, 0, 0, 0, 1], 10),
            Err(SnappyError::BadFlag { flag: 2 })
        ));
    }

    #[test]
    fn a_compressed_message_comes_out_plain() {
        let message = b"a message to be compressed, compressed, compressed".repeat(3);
        let out = decompress(&compress(&message), MAX).expect("decompress");
        assert_eq!(&out[..], &framed(0, &message)[..]);
        assert_eq!(
            &decompress(&[], MAX).expect("empty")[..],
            &framed(0, &[])[..]
        );
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        let exact = vec![7u8; MAX];
        assert_eq!(
            decompress(&compress(&exact), MAX).expect("at cap").len(),
            5 + MAX
        );
        let over = vec![7u8; MAX + 1];
        let compressed = compress(&over);
        assert!(
            compressed.len() < MAX,
            "the compressed form is under the cap"
        );
        let err = decompress(&compressed, MAX).expect_err("over cap");
        assert!(matches!(
            err,
            SnappyError::DecompressedTooLarge { limit: MAX }
        ));
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::ResourceExhausted
        );
    }

    #[test]
    fn corrupt_streams_are_refused() {
        let good = compress(b"hello hello hello hello");
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        for bad in [
            &b"not snappy at all"[..],
            &good[..good.len() - 1],
            &flipped[..],
        ] {
            let err = decompress(bad, MAX).expect_err("corrupt");
            assert!(matches!(err, SnappyError::Corrupt { .. }), "{err}");
            let status = tonic::Status::from(err);
            assert_eq!(status.code(), tonic::Code::Internal);
            assert!(status.message().contains("snappy"), "{}", status.message());
        }
    }

    #[test]
    fn mixed_messages_in_one_chunk_and_split_everywhere() {
        let one = b"first message".repeat(4);
        let two = b"second, sent plain".to_vec();
        let three = b"third".repeat(20);
        let mut body = framed(1, &compress(&one));
        body.extend(framed(0, &two));
        body.extend(framed(1, &compress(&three)));
        body.extend(framed(1, &[]));
        body.extend(framed(0, &[]));
        let mut want = framed(0, &one);
        want.extend(framed(0, &two));
        want.extend(framed(0, &three));
        want.extend(framed(0, &[]));
        want.extend(framed(0, &[]));
        assert_eq!(run(&body, &[], MAX).expect("one chunk"), want);
        let every_byte: Vec<usize> = (0..body.len()).collect();
        assert_eq!(run(&body, &every_byte, MAX).expect("byte by byte"), want);
    }

    #[test]
    fn a_message_is_emitted_as_soon_as_it_is_whole() {
        let mut deframer = Deframer::new(MAX);
        let mut out = VecDeque::new();
        let first = framed(1, &compress(b"ping"));
        let mut body = first.clone();
        body.extend(framed(1, &compress(b"pong")));
        deframer
            .push(Bytes::copy_from_slice(&body[..first.len() + 2]), &mut out)
            .expect("push");
        assert_eq!(
            out.len(),
            1,
            "the first message, not waiting for the second"
        );
        assert_eq!(&out[0][..], &framed(0, b"ping")[..]);
        assert!(matches!(
            deframer.finish(),
            Err(SnappyError::Truncated { missing: 3 })
        ));
    }

    #[test]
    fn declared_lengths_over_the_cap_are_refused_before_buffering() {
        let mut deframer = Deframer::new(MAX);
        let mut out = VecDeque::new();
        let prefix = [1, 0, 0x10, 0, 0];
        let err = deframer
            .push(Bytes::copy_from_slice(&prefix), &mut out)
            .expect_err("too large");
        assert!(matches!(
            err,
            SnappyError::TooLarge {
                len: 0x100000,
                limit: MAX
            }
        ));
        // Failed: nothing more is read, and the end is not reported again.
        deframer
            .push(Bytes::from_static(b"more"), &mut out)
            .expect("ignored");
        assert!(out.is_empty());
        deframer.finish().expect("already failed");
    }

    #[test]
    fn truncated_bodies_are_refused() {
        let body = framed(1, &compress(b"cut short"));
        for end in 1..body.len() {
            let err = run(&body[..end], &[], MAX).expect_err("truncated");
            assert!(matches!(err, SnappyError::Truncated { .. }), "{end}: {err}");
        }
    }

    fn snappy_request(body: Vec<u8>) -> Request<http_body_full::Full> {
        Request::builder()
            .header(GRPC_ENCODING, "snappy")
            .header(CONTENT_LENGTH, body.len())
            .body(http_body_full::Full(Some(Bytes::from(body))))
            .expect("request")
    }

    /// A one-chunk body, enough for the layer tests.
    mod http_body_full {
        use super::*;

        pub struct Full(pub Option<Bytes>);

        impl Body for Full {
            type Data = Bytes;
            type Error = std::convert::Infallible;

            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
            }
        }
    }

    /// Reads `body` to its end: its bytes, or the status of its error.
    async fn collect<B: Body<Data = Bytes, Error = BoxError> + Unpin>(
        mut body: B,
    ) -> Result<Vec<u8>, tonic::Status> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(tonic::Status::from_error)?;
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    }

    async fn through_layer(
        request: Request<http_body_full::Full>,
    ) -> (HeaderMap, Result<Vec<u8>, tonic::Status>) {
        use tower::{Layer, ServiceExt};
        let service = SnappyLayer::new(MAX).layer(tower::service_fn(
            |request: Request<SnappyBody<http_body_full::Full>>| async move {
                let (parts, body) = request.into_parts();
                let plain = matches!(body, SnappyBody::Plain { .. });
                Ok::<_, std::convert::Infallible>((parts.headers, plain, collect(body).await))
            },
        ));
        let (headers, _, body) = service.oneshot(request).await.expect("infallible");
        (headers, body)
    }

    #[tokio::test]
    async fn the_layer_rewrites_snappy_requests_and_leaves_others() {
        let message = b"put k v".repeat(5);
        let (headers, body) = through_layer(snappy_request(framed(1, &compress(&message)))).await;
        assert!(headers.get(GRPC_ENCODING).is_none());
        assert!(headers.get(CONTENT_LENGTH).is_none());
        assert_eq!(body.expect("decompressed"), framed(0, &message));

        let gzip = Request::builder()
            .header(GRPC_ENCODING, "gzip")
            .body(http_body_full::Full(Some(Bytes::from_static(
                b"\x01untouched",
            ))))
            .expect("request");
        let (headers, body) = through_layer(gzip).await;
        assert_eq!(
            headers.get(GRPC_ENCODING).map(|v| v.as_bytes()),
            Some(&b"gzip"[..])
        );
        assert_eq!(body.expect("untouched"), b"\x01untouched");
    }

    #[tokio::test]
    async fn failures_reach_tonic_as_statuses() {
        let (_, body) = through_layer(snappy_request(framed(1, b"garbage"))).await;
        let status = body.expect_err("corrupt");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status.message().contains("failed to decompress"),
            "{status:?}"
        );

        let (_, body) = through_layer(snappy_request(framed(1, &compress(&[0; MAX + 1])))).await;
        assert_eq!(
            body.expect_err("over the cap").code(),
            tonic::Code::ResourceExhausted
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_messages(
            messages in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..6),
            cuts in prop::collection::vec(0usize..2000, 0..8),
        ) {
            let mut body = Vec::new();
            let mut want = Vec::new();
            for (compressed, message) in &messages {
                if *compressed {
                    body.extend(framed(1, &compress(message)));
                } else {
                    body.extend(framed(0, message));
                }
                want.extend(framed(0, message));
            }
            prop_assert_eq!(run(&body, &cuts, MAX).expect("valid body"), want);
        }

        #[test]
        fn flipped_bytes_never_panic(message in prop::collection::vec(any::<u8>(), 0..300), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut body = framed(1, &compress(&message));
            let i = at.index(body.len());
            body[i] ^= 1 << bit;
            let _ = run(&body, &[i], MAX);
        }
    }
}
