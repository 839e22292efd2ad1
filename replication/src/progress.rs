//! Progress of a bootstrap download as log lines: a server has no terminal, so a person
//! waiting on it reads the log. One `tracing` event every few seconds and one at the end,
//! with the figures as structured fields (`done`, `total`, `unit`, `rate`, `eta_seconds`,
//! `elapsed_seconds`). The target is `regatta::progress`, the one every long operation of
//! the node reports under, so one log filter shows or hides them all.

use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(5);

/// The byte progress of one download.
#[derive(Debug)]
pub(crate) struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub(crate) fn start(label: impl Into<String>) -> Self {
        let now = Instant::now();
        Self {
            label: label.into(),
            total: None,
            done: 0,
            started: now,
            last: now,
        }
    }

    /// Sets (or corrects) the total once it is known.
    pub(crate) fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// Bytes done so far; logs when the last line is a few seconds old.
    pub(crate) fn set(&mut self, done: u64) {
        self.done = done;
        if self.last.elapsed() >= LOG_EVERY {
            self.last = Instant::now();
            self.report();
        }
    }

    /// Logs the final count.
    pub(crate) fn finish(&mut self) {
        self.report();
    }

    fn report(&self) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / elapsed;
        let eta_seconds = match self.total {
            Some(t) if rate > 0.0 && t > self.done => Some(((t - self.done) as f64 / rate) as u64),
            _ => None,
        };
        let count = match self.total {
            Some(t) => format!("{}/{}", size(self.done), size(t)),
            None => size(self.done),
        };
        tracing::info!(
            target: "regatta::progress",
            done = self.done,
            total = self.total,
            unit = "bytes",
            rate = format!("{}/s", size(rate as u64)),
            eta_seconds,
            elapsed_seconds = format!("{elapsed:.1}"),
            "{}: {count}",
            self.label
        );
    }
}

/// A byte count for people: `512 B`, `3.2 KiB`, `12.5 MiB`, `1.1 GiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}
