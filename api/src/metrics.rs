//! Every metric this crate exports, in one place. Label values come from closed sets: the
//! method label is one of the known gRPC method paths (anything else is `other`), the code
//! label one of the gRPC status code names. The same calls are also counted under the
//! names Regatta exports (`grpc_server_*`, [`grpc_server`]). The Watch service's series
//! are in [`watch`].

mod grpc_server;
pub mod watch;

pub use grpc_server::{CallType, GrpcServerMetrics, Method, MethodTable};
pub use watch::WatchMetrics;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Metrics of the gRPC servers of one node.
#[derive(Clone)]
pub struct ApiMetrics {
    /// The `grpc_server_*` series.
    grpc: Arc<GrpcServerMetrics>,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Per method (the index of its label in `KNOWN_METHODS`, then `other`), the series
    /// already made: a request updates them without hashing its labels. Made on first use,
    /// so `/metrics` lists only methods and codes that were seen.
    series: Arc<[MethodSeries]>,
}

/// The series of one method label.
#[derive(Default)]
struct MethodSeries {
    latency: OnceLock<Histogram>,
    /// By gRPC status code (0–16).
    requests: [OnceLock<IntCounter>; CODES],
}

/// gRPC status codes: 0 (OK) to 16 (Unauthenticated).
const CODES: usize = 17;

/// The methods a label may name; anything else is counted as `other`.
const KNOWN_METHODS: &[&str] = &[
    "/regatta.v1.KV/Range",
    "/regatta.v1.KV/IterateRange",
    "/regatta.v1.KV/Put",
    "/regatta.v1.KV/DeleteRange",
    "/regatta.v1.KV/Txn",
    "/regatta.v1.Cluster/MemberList",
    "/regatta.v1.Cluster/Status",
    "/regatta.v1.Tables/Create",
    "/regatta.v1.Tables/Delete",
    "/regatta.v1.Tables/List",
    "/maintenance.v1.Maintenance/Backup",
    "/maintenance.v1.Maintenance/Restore",
    "/maintenance.v1.Maintenance/Reset",
    "/regatta.admin.v1.Admin/AddMember",
    "/regatta.admin.v1.Admin/RemoveMember",
    "/regatta.raft.v1.RaftTransport/AppendEntries",
    "/regatta.raft.v1.RaftTransport/Vote",
    "/regatta.raft.v1.RaftTransport/InstallSnapshot",
    "/regatta.raft.v1.RaftTransport/StreamSnapshot",
    "/regatta.raft.v1.RaftTransport/Forward",
    "/regatta.raft.v1.RaftTransport/NodeInfo",
    "/regatta.raft.v1.RaftTransport/ReadIndex",
];

impl ApiMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "regatta_grpc_requests_total",
                "gRPC requests handled, by method and status code",
            ),
            &["method", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "regatta_grpc_request_duration_seconds",
                "gRPC request latency until the response headers, by method",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let series = (0..=KNOWN_METHODS.len())
            .map(|_| MethodSeries::default())
            .collect();
        Ok(Self {
            grpc: Arc::new(GrpcServerMetrics::register(registry)?),
            requests,
            latency,
            series,
        })
    }

    /// A tower layer that records every request passing through a gRPC server.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer {
            metrics: Arc::new(self.clone()),
        }
    }

    fn record(&self, method: usize, code: tonic::Code, started: Instant) {
        // Labels are looked up only when a series is made, on first use.
        let series = &self.series[method];
        let code_index = (code as usize).min(CODES - 1);
        series.requests[code_index]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[method_name(method), code_name(code)])
            })
            .inc();
        series
            .latency
            .get_or_init(|| self.latency.with_label_values(&[method_name(method)]))
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Connections of the gRPC listeners and the limits they met, by listener (`api`, `raft`,
/// `replication`: a closed set given by the node).
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: IntGaugeVec,
    refused: IntCounterVec,
    closed: IntCounterVec,
}

/// The series of one listener; see [`ConnectionMetrics`].
#[derive(Clone)]
pub struct ListenerMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections closed at once because the listener had as many as it may hold.
    pub refused: IntCounter,
    /// Connections closed for not sending the HTTP/2 handshake in time.
    pub handshake_timeouts: IntCounter,
    /// Connections closed after an idle period.
    pub idle_closed: IntCounter,
}

impl ConnectionMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGaugeVec::new(
            Opts::new(
                "regatta_grpc_connections_open",
                "Connections open on a gRPC listener",
            ),
            &["listener"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "regatta_grpc_connections_refused_total",
                "Connections closed on arrival because the listener held --api.max-concurrent-connections",
            ),
            &["listener"],
        )?;
        let closed = IntCounterVec::new(
            Opts::new(
                "regatta_grpc_connections_timed_out_total",
                "Connections closed by the server: no HTTP/2 handshake in time, or idle",
            ),
            &["listener", "reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        Ok(Self {
            open,
            refused,
            closed,
        })
    }

    /// The series of listener `name` (a fixed name, never an address).
    pub fn listener(&self, name: &'static str) -> ListenerMetrics {
        ListenerMetrics {
            open: self.open.with_label_values(&[name]),
            refused: self.refused.with_label_values(&[name]),
            handshake_timeouts: self.closed.with_label_values(&[name, "handshake"]),
            idle_closed: self.closed.with_label_values(&[name, "idle"]),
        }
    }
}

impl ListenerMetrics {
    /// Series registered nowhere (tests).
    pub fn unregistered() -> Self {
        ConnectionMetrics::register(&Registry::new())
            .map(|m| m.listener("test"))
            .unwrap_or_else(|_| unreachable!("a fresh registry takes every metric"))
    }
}

/// IterateRange streams: refused at the limit, and cancelled because their client took
/// nothing for too long.
#[derive(Clone)]
pub struct StreamMetrics {
    pub refused: IntCounter,
    pub stalled: IntCounter,
    pub open: IntGauge,
}

impl StreamMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let refused = IntCounter::new(
            "regatta_iterate_range_streams_refused_total",
            "IterateRange calls refused because --api.max-iterate-streams were open",
        )?;
        let stalled = IntCounter::new(
            "regatta_iterate_range_streams_stalled_total",
            "IterateRange streams cancelled because the client read nothing for --api.stream-stall-timeout",
        )?;
        let open = IntGauge::new(
            "regatta_iterate_range_streams_open",
            "IterateRange streams open now",
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(stalled.clone()))?;
        registry.register(Box::new(open.clone()))?;
        Ok(Self {
            refused,
            stalled,
            open,
        })
    }

    /// Series registered nowhere (tests, and services built without a registry).
    pub fn unregistered() -> Self {
        Self::register(&Registry::new())
            .unwrap_or_else(|_| unreachable!("a fresh registry takes every metric"))
    }
}

/// The label index of a request path: its place in `KNOWN_METHODS`, or one past the end
/// for `other`.
fn method_index(path: &str) -> usize {
    KNOWN_METHODS
        .iter()
        .position(|m| *m == path)
        .unwrap_or(KNOWN_METHODS.len())
}

/// The label of a method index from [`method_index`].
fn method_name(index: usize) -> &'static str {
    KNOWN_METHODS.get(index).copied().unwrap_or("other")
}

/// The gRPC status code of a response, from its `grpc-status` header value.
fn response_code(code: Option<&http::HeaderValue>) -> tonic::Code {
    let Some(code) = code
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.parse::<i32>().ok())
    else {
        // No status in the headers: the status comes in the trailers of a response that
        // started successfully.
        return tonic::Code::Ok;
    };
    tonic::Code::from_i32(code)
}

/// The label of a gRPC status code.
fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Cancelled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

/// See [`ApiMetrics::layer`].
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<ApiMetrics>,
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<ApiMetrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<grpc_server::ReceivedBody<B>>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<grpc_server::SentBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = method_index(path);
        let call = self
            .metrics
            .grpc
            .method(path)
            .map(|m| self.metrics.grpc.start(m));
        let received = call.as_ref().map(grpc_server::Call::received);
        let request = request.map(|body| grpc_server::ReceivedBody::new(body, received));
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            match result {
                Ok(response) => {
                    let header_code = response
                        .headers()
                        .get("grpc-status")
                        .map(|c| response_code(Some(c)));
                    metrics.record(method, header_code.unwrap_or(tonic::Code::Ok), started);
                    Ok(response.map(|body| grpc_server::SentBody::new(body, call, header_code)))
                }
                Err(e) => {
                    metrics.record(method, tonic::Code::Unavailable, started);
                    if let Some(call) = call {
                        call.finish(tonic::Code::Unavailable);
                    }
                    Err(e)
                }
            }
        })
    }
}

/// Registers a plain counter.
pub fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// Registers a plain gauge.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Registers a histogram with the given bucket bounds.
pub fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<prometheus::Histogram> {
    let h = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new(name, help).buckets(buckets),
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        let label = |path| method_name(method_index(path));
        assert_eq!(label("/regatta.v1.KV/Range"), "/regatta.v1.KV/Range");
        assert_eq!(label("/evil/with-a-key-in-it"), "other");
        let code = |value: Option<&'static str>| {
            let header = value.map(http::HeaderValue::from_static);
            code_name(response_code(header.as_ref()))
        };
        assert_eq!(code(None), "OK");
        assert_eq!(code(Some("5")), "NotFound");
        assert_eq!(code(Some("999")), "Unknown");
    }

    #[test]
    fn requests_are_counted_by_method_and_code_and_only_seen_series_are_listed() {
        let registry = Registry::new();
        let metrics = ApiMetrics::register(&registry).expect("register");
        let range = method_index("/regatta.v1.KV/Range");
        let started = Instant::now();
        metrics.record(range, tonic::Code::Ok, started);
        metrics.record(range, tonic::Code::Ok, started);
        metrics.record(range, tonic::Code::NotFound, started);
        metrics.record(method_index("/x/y"), tonic::Code::Unknown, started);
        let count = |method: &str, code: &str| {
            metrics
                .requests
                .get_metric_with_label_values(&[method, code])
                .map(|c| c.get())
        };
        assert_eq!(count("/regatta.v1.KV/Range", "OK").ok(), Some(2));
        assert_eq!(count("/regatta.v1.KV/Range", "NotFound").ok(), Some(1));
        assert_eq!(count("other", "Unknown").ok(), Some(1));
        let families = registry.gather();
        let requests = families
            .iter()
            .find(|f| f.name() == "regatta_grpc_requests_total")
            .expect("requests family");
        assert_eq!(requests.get_metric().len(), 3, "only the series seen");
        let latency = families
            .iter()
            .find(|f| f.name() == "regatta_grpc_request_duration_seconds")
            .expect("latency family");
        assert_eq!(latency.get_metric().len(), 2);
        assert_eq!(
            latency
                .get_metric()
                .iter()
                .map(|m| m.get_histogram().get_sample_count())
                .sum::<u64>(),
            4
        );
    }
}
