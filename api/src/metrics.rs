//! Every metric this crate exports, in one place. Label values come from closed sets: the
//! method label is one of the known gRPC method paths (anything else is `other`), the code
//! label one of the gRPC status code names.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Metrics of the gRPC servers of one node.
#[derive(Clone)]
pub struct ApiMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

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
        Ok(Self { requests, latency })
    }

    /// A tower layer that records every request passing through a gRPC server.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer {
            metrics: Arc::new(self.clone()),
        }
    }

    fn record(&self, method: &'static str, code: &'static str, started: Instant) {
        self.requests.with_label_values(&[method, code]).inc();
        self.latency
            .with_label_values(&[method])
            .observe(started.elapsed().as_secs_f64());
    }
}

fn method_label(path: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == path)
        .copied()
        .unwrap_or("other")
}

/// The name of a gRPC status code, from the `grpc-status` header value.
fn code_label(code: Option<&http::HeaderValue>) -> &'static str {
    let Some(code) = code
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.parse::<i32>().ok())
    else {
        // No status in the headers: the status comes in the trailers of a response that
        // started successfully.
        return "OK";
    };
    match tonic::Code::from_i32(code) {
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
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(response) => code_label(response.headers().get("grpc-status")),
                Err(_) => "Unavailable",
            };
            metrics.record(method, code, started);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(method_label("/regatta.v1.KV/Range"), "/regatta.v1.KV/Range");
        assert_eq!(method_label("/evil/with-a-key-in-it"), "other");
        assert_eq!(code_label(None), "OK");
        assert_eq!(
            code_label(Some(&http::HeaderValue::from_static("5"))),
            "NotFound"
        );
        assert_eq!(
            code_label(Some(&http::HeaderValue::from_static("999"))),
            "Unknown"
        );
    }
}
