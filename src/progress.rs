//! Progress of long operations a person waits on at a terminal (backup, restore, replay,
//! verify).
//!
//! On a terminal: one line on stderr redrawn in place, with a bar, the count, the rate and
//! the time left. Otherwise (a pipe, a log file, CI): a plain line on stderr every few
//! seconds, so logs stay readable. Standard output is never touched: it carries the
//! command's result. Counts in bytes are shown in KiB, MiB, GiB. (An edge's bootstrap
//! progress is logged by `regatta-replication`.)

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

const REDRAW: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(5);
const BAR: usize = 24;

/// The unit whose counts are shown as sizes.
pub const BYTES: &str = "bytes";

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// A line on stderr redrawn in place.
    Terminal,
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
    drawn: bool,
}

impl Progress {
    /// Starts reporting `label` on stderr, counting `unit`s out of `total` if known.
    pub fn new(label: impl Into<String>, unit: &'static str, total: Option<u64>) -> Self {
        let output = if std::io::stderr().is_terminal() {
            Output::Terminal
        } else {
            Output::Plain
        };
        Self::with_output(label.into(), unit, total, output)
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
            drawn: false,
        }
    }

    /// Sets (or corrects) the total once it is known.
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    pub fn inc(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        let every = match self.output {
            Output::Terminal => REDRAW,
            Output::Plain => LOG_EVERY,
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.report();
        }
    }

    /// Ends the line (terminal) or logs the final count.
    pub fn finish(&mut self) {
        self.report();
        if self.output == Output::Terminal && self.drawn {
            eprintln!();
        }
    }

    fn report(&mut self) {
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
            Output::Terminal => {
                let bar = match self.total {
                    Some(t) if t > 0 => {
                        let filled = ((self.done.min(t) as f64 / t as f64) * BAR as f64) as usize;
                        format!("[{}{}] ", "#".repeat(filled), "-".repeat(BAR - filled))
                    }
                    _ => String::new(),
                };
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r{}: {bar}{count} ({rate_text}{eta})\x1b[K",
                    self.label
                );
                let _ = err.flush();
                self.drawn = true;
            }
            Output::Plain => eprintln!(
                "{}: {count} ({rate_text}{eta}, {elapsed:.1}s elapsed)",
                self.label
            ),
        }
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
    fn sizes_read_like_sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
