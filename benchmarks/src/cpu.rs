//! CPU time of processes, read from `/proc/<pid>/stat`: what one operation costs each side
//! of a measurement — the servers of the system measured, and the load generator itself.
//!
//! On a machine whose every core is busy, throughput is set by CPU per operation; the
//! servers' share and the load generator's share are reported apart so that a reader can
//! tell how much of a cell's figure is the system and how much is the machine it shares
//! with its clients.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// User plus system CPU time `pid` has used so far, every thread of it (live or ended).
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("parsing {path}"))
}

/// The CPU time in one `/proc/<pid>/stat` line (utime + stime, fields 14 and 15).
fn parse_stat(stat: &str) -> Result<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses
    // itself: the fields after it start after the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("no command name in {stat:?}");
    };
    // `rest` starts at field 3 (the state): utime is field 14, stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        let field = fields
            .get(i)
            .with_context(|| format!("field {} missing", i + 3))?;
        field
            .parse()
            .with_context(|| format!("field {} is {field:?}", i + 3))
    };
    let total = ticks(11)?.saturating_add(ticks(12)?);
    let per_second = rustix::param::clock_ticks_per_second();
    if per_second == 0 {
        bail!("the kernel reports 0 clock ticks per second");
    }
    Ok(Duration::from_secs(total / per_second)
        + Duration::from_nanos((total % per_second) * 1_000_000_000 / per_second))
}

/// The CPU used by a set of server processes and by this process over one interval.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// CPU seconds per second of the servers together (2.0 = two cores' worth).
    pub servers: f64,
    /// CPU seconds per second of this process (the load generator).
    pub loader: f64,
}

/// A reading taken at the start of an interval; [`Mark::usage`] ends it.
pub struct Mark {
    at: Instant,
    servers: Duration,
    loader: Duration,
}

fn servers_cpu(pids: &[u32]) -> Result<Duration> {
    pids.iter().map(|&pid| process_cpu(pid)).sum()
}

impl Mark {
    pub fn now(pids: &[u32]) -> Result<Self> {
        Ok(Self {
            at: Instant::now(),
            servers: servers_cpu(pids)?,
            loader: process_cpu(std::process::id())?,
        })
    }

    /// The usage from this mark until now (the same `pids`).
    pub fn usage(&self, pids: &[u32]) -> Result<Usage> {
        let elapsed = self.at.elapsed().as_secs_f64();
        if elapsed <= 0.0 {
            bail!("no time passed since the CPU mark");
        }
        let servers = servers_cpu(pids)?.saturating_sub(self.servers);
        let loader = process_cpu(std::process::id())?.saturating_sub(self.loader);
        Ok(Usage {
            servers: servers.as_secs_f64() / elapsed,
            loader: loader.as_secs_f64() / elapsed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_plus_system_time() {
        let hz = rustix::param::clock_ticks_per_second();
        // A command name with a space and a parenthesis, as a process may call itself.
        let line = format!(
            "4242 (regatta (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 {} {} 0 0 20 0 9 0 1 2 3",
            3 * hz,
            hz / 2
        );
        assert_eq!(
            parse_stat(&line).expect("a whole stat line"),
            Duration::from_millis(3_500)
        );
        assert!(parse_stat("4242 (cut short) S 1 2").is_err());
        assert!(parse_stat("no parenthesis").is_err());
    }

    #[test]
    fn this_process_uses_cpu_while_it_spins() {
        let before = process_cpu(std::process::id()).expect("this process's stat");
        let started = Instant::now();
        let mut x = 0u64;
        // Ticks are 10 ms; on a loaded machine the thread may run only part of the time.
        while process_cpu(std::process::id()).expect("this process's stat") <= before {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "30 s of spinning did not show as CPU time"
            );
            let spin = Instant::now();
            while spin.elapsed() < Duration::from_millis(20) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }
}
