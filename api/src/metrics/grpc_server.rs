//! The gRPC server metrics under the names and labels Regatta exports (those of
//! go-grpc-middleware's Prometheus provider), so that dashboards and alerts built for Regatta
//! find their series here:
//!
//! | series | labels | counts |
//! |---|---|---|
//! | `grpc_server_started_total` | `grpc_type`, `grpc_service`, `grpc_method` | calls, when they arrive |
//! | `grpc_server_handled_total` | the same and `grpc_code` | calls, when they end, by status code |
//! | `grpc_server_msg_received_total` | `grpc_type`, `grpc_service`, `grpc_method` | request messages the service read |
//! | `grpc_server_msg_sent_total` | `grpc_type`, `grpc_service`, `grpc_method` | response messages sent |
//! | `grpc_server_handling_seconds` | `grpc_type`, `grpc_service`, `grpc_method` | histogram: arrival to the end of the call (a stream's last message and status) |
//!
//! `grpc_type` is `unary`, `client_stream`, `server_stream` or `bidi_stream`; `grpc_code` is
//! the status code's name as Go spells it (`OK`, `Canceled`, `NotFound`, …). Label values
//! come from a closed set: the methods of the served protos, read from their descriptor set
//! when the node starts, and server reflection (v1 and v1alpha). A path outside that set is
//! not counted: gRPC answers it `Unimplemented` before any service sees it, as Regatta's
//! server does. The public API's series exist from the start at zero, as Regatta
//! initialises them; those of the node-to-node services (Raft, log tail) appear on first use.
//!
//! Messages are counted from the gRPC framing of the request and response bodies as they
//! pass (a 5-byte header: compression flag and length, then the message), so a stream's
//! messages count one by one and a call that fails before answering sends none.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use prost::Message;

use super::CODES;

/// The bucket bounds of `grpc_server_handling_seconds`: Regatta's.
const HANDLING_BUCKETS: &[f64] = &[
    0.000_1, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0,
];

/// Packages of the services only nodes call: their series appear on first use.
const INTERNAL_PACKAGES: &[&str] = &["regatta.raft.v1", "regatta.tail.v1"];

/// Server reflection, served beside the protos of [`regatta_proto::FILE_DESCRIPTOR_SET`].
const REFLECTION: &[&str] = &[
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// How a method streams, as the `grpc_type` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl CallType {
    fn of(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStream,
            (false, true) => Self::ServerStream,
            (true, true) => Self::BidiStream,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

/// One served method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// `/package.Service/Method`, as in the request's path.
    pub path: String,
    /// `package.Service`.
    pub service: String,
    pub method: String,
    pub call_type: CallType,
    /// Called only by other nodes.
    pub internal: bool,
}

/// The methods a node serves, sorted by path.
#[derive(Debug, Clone)]
pub struct MethodTable {
    methods: Vec<Method>,
}

impl MethodTable {
    /// Every method of the protos in [`regatta_proto::FILE_DESCRIPTOR_SET`], and reflection.
    pub fn served() -> Self {
        // The descriptor set is compiled into the binary by regatta-proto's build: it decodes,
        // or nothing of the build would work (reflection serves the same bytes).
        let set = prost_types::FileDescriptorSet::decode(regatta_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        let mut methods = Vec::new();
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                let service_name = if package.is_empty() {
                    service.name().to_string()
                } else {
                    format!("{package}.{}", service.name())
                };
                for m in &service.method {
                    methods.push(Method {
                        path: format!("/{service_name}/{}", m.name()),
                        service: service_name.clone(),
                        method: m.name().to_string(),
                        call_type: CallType::of(m.client_streaming(), m.server_streaming()),
                        internal: INTERNAL_PACKAGES.contains(&package),
                    });
                }
            }
        }
        for service in REFLECTION {
            methods.push(Method {
                path: format!("/{service}/ServerReflectionInfo"),
                service: (*service).to_string(),
                method: "ServerReflectionInfo".to_string(),
                call_type: CallType::BidiStream,
                internal: false,
            });
        }
        methods.sort_by(|a, b| a.path.cmp(&b.path));
        methods.dedup_by(|a, b| a.path == b.path);
        Self { methods }
    }

    /// The index of the method at `path`, if it is served.
    pub fn index(&self, path: &str) -> Option<usize> {
        self.methods
            .binary_search_by(|m| m.path.as_str().cmp(path))
            .ok()
    }

    pub fn get(&self, index: usize) -> Option<&Method> {
        self.methods.get(index)
    }

    pub fn len(&self) -> usize {
        self.methods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    fn labels(&self, index: usize) -> [&str; 3] {
        self.methods.get(index).map_or(["", "", ""], |m| {
            [m.call_type.label(), &m.service, &m.method]
        })
    }
}

/// The `grpc_server_*` series; see the module docs.
#[derive(Clone)]
pub struct GrpcServerMetrics {
    table: Arc<MethodTable>,
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    handling: HistogramVec,
    /// Per method (its index in the table), the series already made.
    series: Arc<[MethodSeries]>,
}

#[derive(Default)]
struct MethodSeries {
    started: OnceLock<IntCounter>,
    received: OnceLock<IntCounter>,
    sent: OnceLock<IntCounter>,
    handling: OnceLock<Histogram>,
    /// By gRPC status code (0–16).
    handled: [OnceLock<IntCounter>; CODES],
}

impl GrpcServerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let labels = &["grpc_type", "grpc_service", "grpc_method"];
        let started = IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
            ),
            labels,
        )?;
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let received = IntCounterVec::new(
            Opts::new(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
            ),
            labels,
        )?;
        let sent = IntCounterVec::new(
            Opts::new(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
            ),
            labels,
        )?;
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            )
            .buckets(HANDLING_BUCKETS.to_vec()),
            labels,
        )?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(handled.clone()))?;
        registry.register(Box::new(received.clone()))?;
        registry.register(Box::new(sent.clone()))?;
        registry.register(Box::new(handling.clone()))?;
        let table = Arc::new(MethodTable::served());
        let series = (0..table.len()).map(|_| MethodSeries::default()).collect();
        let metrics = Self {
            table,
            started,
            handled,
            received,
            sent,
            handling,
            series,
        };
        for index in 0..metrics.table.len() {
            if metrics.table.get(index).is_some_and(|m| !m.internal) {
                metrics.started(index);
                metrics.received(index);
                metrics.sent(index);
                metrics.handling(index);
                for code in 0..CODES {
                    metrics.handled(index, code);
                }
            }
        }
        Ok(metrics)
    }

    /// The index of the method at `path`, if it is counted.
    pub fn method(&self, path: &str) -> Option<usize> {
        self.table.index(path)
    }

    /// The series of `method`, made on first use. `method` comes from [`Self::method`].
    fn started(&self, method: usize) -> &IntCounter {
        self.series[method]
            .started
            .get_or_init(|| self.started.with_label_values(&self.table.labels(method)))
    }

    fn received(&self, method: usize) -> &IntCounter {
        self.series[method]
            .received
            .get_or_init(|| self.received.with_label_values(&self.table.labels(method)))
    }

    fn sent(&self, method: usize) -> &IntCounter {
        self.series[method]
            .sent
            .get_or_init(|| self.sent.with_label_values(&self.table.labels(method)))
    }

    fn handling(&self, method: usize) -> &Histogram {
        self.series[method]
            .handling
            .get_or_init(|| self.handling.with_label_values(&self.table.labels(method)))
    }

    fn handled(&self, method: usize, code: usize) -> &IntCounter {
        let code = code.min(CODES - 1);
        self.series[method].handled[code].get_or_init(|| {
            let [t, s, m] = self.table.labels(method);
            let name = go_code_name(tonic::Code::from_i32(code as i32));
            self.handled.with_label_values(&[t, s, m, name])
        })
    }

    /// Counts a call to `method` as started; returns what counts its messages and its end.
    pub fn start(self: &Arc<Self>, method: usize) -> Call {
        self.started(method).inc();
        Call {
            metrics: self.clone(),
            method,
            started: Instant::now(),
            finished: false,
        }
    }
}

/// One call in flight: hands the counters to the request and response bodies. Dropped
/// before [`Call::finish`] (the client went away before the answer), it ends as
/// `Canceled`.
pub struct Call {
    metrics: Arc<GrpcServerMetrics>,
    method: usize,
    started: Instant,
    finished: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.record(tonic::Code::Cancelled);
        }
    }
}

impl Call {
    /// The counter of request messages.
    pub fn received(&self) -> IntCounter {
        self.metrics.received(self.method).clone()
    }

    /// The counter of response messages.
    pub fn sent(&self) -> IntCounter {
        self.metrics.sent(self.method).clone()
    }

    /// Records the end of the call with status `code`.
    pub fn finish(mut self, code: tonic::Code) {
        self.record(code);
        self.finished = true;
    }

    fn record(&self, code: tonic::Code) {
        self.metrics
            .handling(self.method)
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics.handled(self.method, code as usize).inc();
    }
}

/// Go's name of a status code (`grpc_code` label): as tonic's, but `Canceled`.
fn go_code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Cancelled => "Canceled",
        other => super::code_name(other),
    }
}

/// Counts whole gRPC messages in a body's bytes, however the bytes are cut into frames.
#[derive(Debug, Default, Clone)]
pub struct MessageCounter {
    /// Bytes of the current 5-byte message header seen (0 while in a message's payload).
    header_seen: u8,
    /// The length read so far from the current header.
    length: u32,
    /// Payload bytes of the current message still to come.
    remaining: u64,
}

/// The gRPC message header: a compression flag and a 4-byte big-endian length.
const MESSAGE_HEADER: u8 = 5;

impl MessageCounter {
    /// Takes the next bytes of the body; returns how many messages they completed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut completed = 0;
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                if self.remaining == 0 {
                    completed += 1;
                }
                continue;
            }
            if self.header_seen > 0 {
                self.length = (self.length << 8) | u32::from(bytes[0]);
            }
            bytes = &bytes[1..];
            self.header_seen += 1;
            if self.header_seen == MESSAGE_HEADER {
                self.header_seen = 0;
                self.remaining = u64::from(self.length);
                self.length = 0;
                if self.remaining == 0 {
                    completed += 1;
                }
            }
        }
        completed
    }
}

/// A request body counting the messages the service reads from it.
pub struct ReceivedBody<B> {
    inner: B,
    counter: MessageCounter,
    received: Option<IntCounter>,
}

impl<B> ReceivedBody<B> {
    /// `received`: the method's counter, or `None` for a path that is not counted.
    pub fn new(inner: B, received: Option<IntCounter>) -> Self {
        Self {
            inner,
            counter: MessageCounter::default(),
            received,
        }
    }
}

impl<B> http_body::Body for ReceivedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let (Some(Ok(frame)), Some(received)) = (&frame, &this.received)
            && let Some(data) = frame.data_ref()
        {
            received.inc_by(this.counter.feed(data));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body counting the messages sent and recording the call's end: at its
/// trailers (the status), at its end, or when it is dropped before (the client went away).
pub struct SentBody<B> {
    inner: B,
    counter: MessageCounter,
    sent: Option<IntCounter>,
    call: Option<Call>,
    /// The status in the response headers (a response with no message: trailers-only).
    header_code: Option<tonic::Code>,
}

impl<B> SentBody<B> {
    pub fn new(inner: B, call: Option<Call>, header_code: Option<tonic::Code>) -> Self {
        Self {
            inner,
            counter: MessageCounter::default(),
            sent: call.as_ref().map(Call::sent),
            call,
            header_code,
        }
    }

    fn finish(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl<B> Drop for SentBody<B> {
    fn drop(&mut self) {
        // Not polled to its end: a trailers-only response (its status was in the headers),
        // or a call the client cancelled.
        let code = self.header_code.unwrap_or(tonic::Code::Cancelled);
        self.finish(code);
    }
}

impl<B> http_body::Body for SentBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(sent) = &this.sent {
                        sent.inc_by(this.counter.feed(data));
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = super::response_code(trailers.get("grpc-status"));
                    this.finish(code);
                }
            }
            Some(Err(_)) => this.finish(tonic::Code::Unknown),
            None => {
                let code = this.header_code.unwrap_or(tonic::Code::Unknown);
                this.finish(code);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for m in messages {
            wire.push(0);
            wire.extend_from_slice(&(m.len() as u32).to_be_bytes());
            wire.extend_from_slice(m);
        }
        wire
    }

    proptest! {
        #[test]
        fn messages_are_counted_however_the_body_is_cut(
            messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in prop::collection::vec(1usize..64, 1..50),
        ) {
            let wire = framed(&messages);
            let mut counter = MessageCounter::default();
            let mut counted = 0;
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < wire.len() {
                let end = (at + cut.next().copied().unwrap_or(1)).min(wire.len());
                counted += counter.feed(&wire[at..end]);
                at = end;
            }
            prop_assert_eq!(counted, messages.len() as u64);
        }
    }

    #[test]
    fn a_message_is_counted_only_once_it_is_whole() {
        let wire = framed(&[vec![1, 2, 3]]);
        let mut counter = MessageCounter::default();
        assert_eq!(counter.feed(&wire[..wire.len() - 1]), 0);
        assert_eq!(counter.feed(&wire[wire.len() - 1..]), 1);
    }

    #[test]
    fn the_table_holds_the_served_methods_with_their_call_types() {
        let table = MethodTable::served();
        let kind = |path: &str| {
            table
                .index(path)
                .and_then(|i| table.get(i))
                .map(|m| m.call_type)
        };
        assert_eq!(kind("/regatta.v1.KV/Put"), Some(CallType::Unary));
        assert_eq!(
            kind("/regatta.v1.KV/IterateRange"),
            Some(CallType::ServerStream)
        );
        assert_eq!(
            kind("/maintenance.v1.Maintenance/Restore"),
            Some(CallType::ClientStream)
        );
        assert_eq!(
            kind("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Some(CallType::BidiStream)
        );
        assert_eq!(kind("/regatta.v1.KV/Nope"), None);
        let put = table
            .index("/regatta.v1.KV/Put")
            .and_then(|i| table.get(i))
            .expect("Put");
        assert_eq!(
            (put.service.as_str(), put.method.as_str()),
            ("regatta.v1.KV", "Put")
        );
        let append = table
            .index("/regatta.raft.v1.RaftTransport/AppendEntries")
            .and_then(|i| table.get(i))
            .expect("AppendEntries");
        assert!(append.internal);
    }

    #[test]
    fn public_series_start_at_zero_and_calls_count_with_go_code_names() {
        let registry = Registry::new();
        let metrics = Arc::new(GrpcServerMetrics::register(&registry).expect("register"));
        let text = || {
            let mut out = String::new();
            for family in registry.gather() {
                for m in family.get_metric() {
                    let labels: Vec<String> = m
                        .get_label()
                        .iter()
                        .map(|l| format!("{}={}", l.name(), l.value()))
                        .collect();
                    out.push_str(&format!("{} {}\n", family.name(), labels.join(",")));
                }
            }
            out
        };
        let before = text();
        assert!(before.contains(
            "grpc_server_handled_total grpc_code=Canceled,grpc_method=Range,grpc_service=regatta.v1.KV,grpc_type=unary"
        ), "{before}");
        assert!(
            !before.contains("RaftTransport"),
            "internal series appear on use"
        );
        let put = metrics.method("/regatta.v1.KV/Put").expect("Put");
        let call = metrics.start(put);
        call.received().inc();
        call.finish(tonic::Code::NotFound);
        assert_eq!(metrics.started(put).get(), 1);
        assert_eq!(
            metrics.handled(put, tonic::Code::NotFound as usize).get(),
            1
        );
        assert_eq!(metrics.handling(put).get_sample_count(), 1);
        drop(metrics.start(put));
        assert_eq!(
            metrics.handled(put, tonic::Code::Cancelled as usize).get(),
            1,
            "a call dropped unanswered ends as Canceled"
        );
    }
}
