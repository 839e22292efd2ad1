//! The Watch service's series ([`crate::watch`]), one set per node:
//!
//! | series | kind | counts |
//! |---|---|---|
//! | `regatta_watch_streams` | gauge | Watch streams open |
//! | `regatta_watch_watchers` | gauge | watchers on the node (what `--watch.max-watchers` bounds) |
//! | `regatta_watch_watchers_created_total` | counter | watchers started |
//! | `regatta_watch_watchers_cancelled_total{reason}` | counter | watchers ended, by reason |
//! | `regatta_watch_events_sent_total` | counter | events sent to clients |
//! | `regatta_watch_event_bytes_sent_total` | counter | their keys and values, about (as messages are cut) |
//! | `regatta_watch_history_oldest_revision` | gauge | the oldest revision a watcher can start from |
//! | `regatta_watch_history_revision` | gauge | the revision the history is complete through |
//!
//! `reason` is one of [`REASONS`]: the protocol's cancel reasons in lower case, and
//! `stream_ended` for the watchers of a stream that ended (the client went away, or the
//! node is stopping). Every reason's series exists from the start, at zero. The two history
//! gauges are read from the materializer at each scrape.

use std::sync::Arc;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use regatta_materializer::Materializer;
use regatta_proto::regatta::watch::v1::CancelReason;

/// The `reason` label values, in the order of [`Cancelled`].
pub const REASONS: &[&str] = &[
    "requested",
    "rejected",
    "table_not_found",
    "compacted",
    "fell_behind",
    "state_replaced",
    "stream_ended",
];

/// Why a watcher ended, as the `reason` label counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    Requested,
    Rejected,
    TableNotFound,
    Compacted,
    FellBehind,
    StateReplaced,
    /// Its stream ended with it still watching.
    StreamEnded,
}

impl Cancelled {
    /// The label of a `Canceled.reason` sent to a client (an unknown value, which this node
    /// never sends, counts as `rejected`).
    pub fn of(reason: i32) -> Self {
        match CancelReason::try_from(reason) {
            Ok(CancelReason::Requested) => Self::Requested,
            Ok(CancelReason::TableNotFound) => Self::TableNotFound,
            Ok(CancelReason::Compacted) => Self::Compacted,
            Ok(CancelReason::FellBehind) => Self::FellBehind,
            Ok(CancelReason::StateReplaced) => Self::StateReplaced,
            Ok(CancelReason::Rejected | CancelReason::Unspecified) | Err(_) => Self::Rejected,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Requested => 0,
            Self::Rejected => 1,
            Self::TableNotFound => 2,
            Self::Compacted => 3,
            Self::FellBehind => 4,
            Self::StateReplaced => 5,
            Self::StreamEnded => 6,
        }
    }
}

/// The Watch series of one node; cloning shares them.
#[derive(Clone)]
pub struct WatchMetrics {
    pub streams: IntGauge,
    pub watchers: IntGauge,
    pub created: IntCounter,
    pub events_sent: IntCounter,
    pub event_bytes_sent: IntCounter,
    cancelled_by_reason: IntCounterVec,
    /// The series of `cancelled_by_reason`, by [`Cancelled::index`].
    cancelled: Arc<[IntCounter]>,
}

impl WatchMetrics {
    /// Registers the series in `registry`; the history gauges read `materializer` when
    /// scraped.
    pub fn register(
        registry: &Registry,
        materializer: Arc<Materializer>,
    ) -> prometheus::Result<Self> {
        let metrics = Self::new()?;
        registry.register(Box::new(metrics.streams.clone()))?;
        registry.register(Box::new(metrics.watchers.clone()))?;
        registry.register(Box::new(metrics.created.clone()))?;
        registry.register(Box::new(metrics.cancelled_by_reason.clone()))?;
        registry.register(Box::new(metrics.events_sent.clone()))?;
        registry.register(Box::new(metrics.event_bytes_sent.clone()))?;
        registry.register(Box::new(HistorySeries::new(materializer)?))?;
        Ok(metrics)
    }

    /// Series registered nowhere (services built without a registry, and tests).
    pub fn unregistered() -> Self {
        Self::new().unwrap_or_else(|_| unreachable!("the series' names and labels are valid"))
    }

    fn new() -> prometheus::Result<Self> {
        let cancelled_by_reason = IntCounterVec::new(
            Opts::new(
                "regatta_watch_watchers_cancelled_total",
                "Watchers ended, by reason (the cancel reason sent, or stream_ended)",
            ),
            &["reason"],
        )?;
        let cancelled = REASONS
            .iter()
            .map(|reason| cancelled_by_reason.with_label_values(&[reason]))
            .collect();
        Ok(Self {
            streams: IntGauge::new("regatta_watch_streams", "Watch streams open")?,
            watchers: IntGauge::new(
                "regatta_watch_watchers",
                "Watchers on this node, over every stream (bounded by --watch.max-watchers)",
            )?,
            created: IntCounter::new("regatta_watch_watchers_created_total", "Watchers started")?,
            events_sent: IntCounter::new(
                "regatta_watch_events_sent_total",
                "Events sent to watch clients",
            )?,
            event_bytes_sent: IntCounter::new(
                "regatta_watch_event_bytes_sent_total",
                "Bytes of the keys and values of the events sent, about",
            )?,
            cancelled_by_reason,
            cancelled,
        })
    }

    /// Counts a watcher that ended for `why`.
    pub fn cancelled(&self, why: Cancelled) {
        if let Some(counter) = self.cancelled.get(why.index()) {
            counter.inc();
        }
    }
}

/// The history gauges, read at each scrape.
struct HistorySeries {
    materializer: Arc<Materializer>,
    oldest: IntGauge,
    through: IntGauge,
}

impl HistorySeries {
    fn new(materializer: Arc<Materializer>) -> prometheus::Result<Self> {
        Ok(Self {
            materializer,
            oldest: IntGauge::new(
                "regatta_watch_history_oldest_revision",
                "The oldest revision a watcher can start from or resume at on this node",
            )?,
            through: IntGauge::new(
                "regatta_watch_history_revision",
                "The revision this node's watch history is complete through",
            )?,
        })
    }
}

impl Collector for HistorySeries {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.oldest.desc();
        descs.extend(self.through.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (_, oldest, through) = self.materializer.history().position();
        self.oldest.set(i64::try_from(oldest).unwrap_or(i64::MAX));
        self.through.set(i64::try_from(through).unwrap_or(i64::MAX));
        let mut families = self.oldest.collect();
        families.extend(self.through.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_series_from_the_start() {
        let metrics = WatchMetrics::unregistered();
        assert_eq!(metrics.cancelled.len(), REASONS.len());
        metrics.cancelled(Cancelled::of(CancelReason::FellBehind as i32));
        metrics.cancelled(Cancelled::StreamEnded);
        metrics.cancelled(Cancelled::of(99));
        let count = |reason: &str| {
            metrics
                .cancelled_by_reason
                .get_metric_with_label_values(&[reason])
                .map(|c| c.get())
                .expect("series")
        };
        assert_eq!(count("fell_behind"), 1);
        assert_eq!(count("stream_ended"), 1);
        assert_eq!(count("rejected"), 1);
        assert_eq!(count("compacted"), 0);
    }
}
