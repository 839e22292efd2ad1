//! `--watch.*`: the Watch service's history and bounds (core and edge), flattened into
//! [`ServiceArgs`](super::services::ServiceArgs).

use std::time::Duration;

/// The Watch service's settings.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchArgs {
    /// Memory for the recent changes a watcher can start from or resume at, in bytes of keys
    /// and values (older changes are forgotten first; a watcher asking for them is told the
    /// oldest revision held). 0 switches watch off: no changes are recorded, and the Watch
    /// service answers FAILED_PRECONDITION.
    #[arg(long = "watch.history-bytes", env = "REGATTA_WATCH_HISTORY_BYTES", default_value_t = regatta_materializer::history::DEFAULT_HISTORY_BYTES)]
    pub history_bytes: usize,
    /// Watchers on this node at most, over every stream; a create beyond is refused
    /// (RESOURCE_EXHAUSTED).
    #[arg(
        long = "watch.max-watchers",
        env = "REGATTA_WATCH_MAX_WATCHERS",
        default_value_t = 10_000
    )]
    pub max_watchers: usize,
    /// Watchers on one Watch stream at most.
    #[arg(
        long = "watch.max-watchers-per-stream",
        env = "REGATTA_WATCH_MAX_WATCHERS_PER_STREAM",
        default_value_t = 1_000
    )]
    pub max_watchers_per_stream: usize,
    /// Events held for one watcher whose client reads slower than they come; past this
    /// the watcher is cancelled (FELL_BEHIND) with the revision to watch again from (at
    /// least 1).
    #[arg(
        long = "watch.buffer-events",
        env = "REGATTA_WATCH_BUFFER_EVENTS",
        default_value_t = 10_000
    )]
    pub buffer_events: usize,
    /// A watcher that asked for progress notifications gets one after this long without
    /// events.
    #[arg(long = "watch.progress-interval", env = "REGATTA_WATCH_PROGRESS_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,
}

impl Default for WatchArgs {
    fn default() -> Self {
        let s = regatta_api::watch::WatchSettings::default();
        Self {
            history_bytes: regatta_materializer::history::DEFAULT_HISTORY_BYTES,
            max_watchers: s.max_watchers,
            max_watchers_per_stream: s.max_watchers_per_stream,
            buffer_events: s.buffer_events,
            progress_interval: s.progress_interval,
        }
    }
}

impl WatchArgs {
    /// The service's settings.
    pub fn settings(&self) -> regatta_api::watch::WatchSettings {
        regatta_api::watch::WatchSettings {
            max_watchers: self.max_watchers,
            max_watchers_per_stream: self.max_watchers_per_stream,
            buffer_events: self.buffer_events.max(1),
            progress_interval: self.progress_interval,
        }
    }
}
