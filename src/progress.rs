//! Progress of long operations a person waits on (backup, restore, replay, verify).
//!
//! On a terminal: one line on stderr redrawn in place, with a bar, the count, the rate and
//! the time left. Otherwise (a pipe, a log file, CI): a plain line on stderr every few
//! seconds, so logs stay readable. Standard output is never touched: it carries the
//! command's result.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

const REDRAW: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(5);
const BAR: usize = 24;

/// One operation's progress.
#[derive(Debug)]
pub struct Progress {
    label: String,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
    terminal: bool,
    drawn: bool,
}

impl Progress {
    /// Starts reporting `label`, counting `unit`s out of `total` if known.
    pub fn new(label: impl Into<String>, unit: &'static str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            label: label.into(),
            unit,
            total,
            done: 0,
            started: now,
            last: now,
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        let every = if self.terminal { REDRAW } else { LOG_EVERY };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.report();
        }
    }

    /// Ends the line (terminal) or logs the final count.
    pub fn finish(&mut self) {
        self.report();
        if self.terminal && self.drawn {
            eprintln!();
        }
    }

    fn report(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / elapsed;
        let eta = match self.total {
            Some(t) if rate > 0.0 && t > self.done => {
                format!(
                    ", ETA {}",
                    humantime::format_duration(Duration::from_secs(
                        ((t - self.done) as f64 / rate) as u64
                    ))
                )
            }
            _ => String::new(),
        };
        let count = match self.total {
            Some(t) => format!("{}/{t} {}", self.done, self.unit),
            None => format!("{} {}", self.done, self.unit),
        };
        if self.terminal {
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
                "\r{}: {bar}{count} ({rate:.0} {}/s{eta})\x1b[K",
                self.label, self.unit
            );
            let _ = err.flush();
            self.drawn = true;
        } else {
            eprintln!(
                "{}: {count} ({rate:.0} {}/s{eta}, {:.1}s elapsed)",
                self.label, self.unit, elapsed
            );
        }
    }
}
