//! Progress of long operations a person waits on at a terminal (backup, restore, replay,
//! verify). An edge's bootstrap progress is logged by `regatta-replication`.
//!
//! On a terminal: an `indicatif` bar on stderr redrawn in place, with the count, the rate
//! and the time left. Otherwise (a pipe, a log file, CI): a plain line on stderr every few
//! seconds, so logs stay readable. Standard output is never touched: it carries the
//! command's result. Counts in bytes are shown in KiB, MiB, GiB.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(5);

/// The unit whose counts are shown as sizes.
pub const BYTES: &str = "bytes";

/// Where progress goes.
#[derive(Debug)]
enum Output {
    /// A bar on stderr redrawn in place (`indicatif`).
    Terminal(ProgressBar),
    /// A plain line on stderr every few seconds.
    Plain,
}

/// One operation's progress.
#[derive(Debug)]
pub struct Progress {
    label: String,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
    output: Output,
}

impl Progress {
    /// Starts reporting `label` on stderr, counting `unit`s out of `total` if known.
    pub fn new(label: impl Into<String>, unit: &'static str, total: Option<u64>) -> Self {
        let label = label.into();
        let output = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            bar.set_style(bar_style(unit, total));
            bar.set_message(label.clone());
            bar.set_prefix(unit);
            Output::Terminal(bar)
        } else {
            Output::Plain
        };
        Self::with_output(label, unit, total, output)
    }

    fn with_output(label: String, unit: &'static str, total: Option<u64>, output: Output) -> Self {
        let now = Instant::now();
        Self {
            label,
            unit,
            total,
            done: 0,
            started: now,
            last: now,
            output,
        }
    }

    /// Sets (or corrects) the total once it is known.
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
        if let Output::Terminal(bar) = &self.output {
            match total {
                Some(t) => bar.set_length(t),
                None => bar.unset_length(),
            }
            bar.set_style(bar_style(self.unit, total));
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        if let Output::Terminal(bar) = &self.output {
            bar.set_position(done);
        } else if self.last.elapsed() >= LOG_EVERY {
            self.last = Instant::now();
            self.report();
        }
    }

    /// Leaves the bar drawn at its end (terminal) or reports the final count.
    pub fn finish(&mut self) {
        match &self.output {
            Output::Terminal(bar) => {
                bar.finish();
                // indicatif leaves the cursor on the bar's line: end it.
                if !bar.is_hidden() {
                    eprintln!();
                }
            }
            Output::Plain => self.report(),
        }
    }

    /// A plain line with the count, the rate and the time left.
    fn report(&self) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / elapsed;
        let left = match self.total {
            Some(t) if rate > 0.0 && t > self.done => {
                Some(Duration::from_secs(((t - self.done) as f64 / rate) as u64))
            }
            _ => None,
        };
        let eta = left.map_or(String::new(), |d| {
            format!(", ETA {}", humantime::format_duration(d))
        });
        let (count, rate_text) = if self.unit == BYTES {
            let count = match self.total {
                Some(t) => format!("{}/{}", size(self.done), size(t)),
                None => size(self.done),
            };
            (count, format!("{}/s", size(rate as u64)))
        } else {
            let count = match self.total {
                Some(t) => format!("{}/{t} {}", self.done, self.unit),
                None => format!("{} {}", self.done, self.unit),
            };
            (count, format!("{rate:.0} {}/s", self.unit))
        };
        match self.output {
            Output::Terminal(_) => {}
            Output::Plain => eprintln!(
                "{}: {count} ({rate_text}{eta}, {elapsed:.1}s elapsed)",
                self.label
            ),
        }
    }
}

/// The terminal bar: `label: [####----] done/total (rate, ETA …)`, sizes in KiB, MiB, GiB;
/// without a total, the count and the rate alone.
fn bar_style(unit: &str, total: Option<u64>) -> ProgressStyle {
    ProgressStyle::with_template(bar_template(unit, total))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#-")
}

fn bar_template(unit: &str, total: Option<u64>) -> &'static str {
    match (unit == BYTES, total.is_some()) {
        (true, true) => {
            "{msg}: [{bar:24}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, ETA {eta})"
        }
        (true, false) => "{msg}: {binary_bytes} ({binary_bytes_per_sec})",
        (false, true) => "{msg}: [{bar:24}] {pos}/{len} {prefix} ({per_sec} {prefix}, ETA {eta})",
        (false, false) => "{msg}: {pos} {prefix} ({per_sec} {prefix})",
    }
}

/// A byte count for people: `512 B`, `3.2 KiB`, `12.5 MiB`, `1.1 GiB`.
pub fn size(bytes: u64) -> String {
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
    fn every_terminal_bar_is_a_valid_template() {
        for unit in [BYTES, "entries"] {
            for total in [None, Some(10)] {
                let template = bar_template(unit, total);
                assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
            }
        }
    }

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
