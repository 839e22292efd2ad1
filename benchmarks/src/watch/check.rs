//! The checks and figures of one phase of the `watch` scenario: what every watcher
//! received against the acknowledged writes (exactly once, at the write's revision, in
//! revision order), write→event and ack→visible latencies, events per second.

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use serde_json::json;
use tokio::time::Instant;

use super::{Ack, Args, Keys, PhaseOutcome, Rate, Received, Schedule, Visible};
use crate::{cluster, edge_cluster::round};

/// The settings of one phase, for [`analyse`].
pub(super) struct Phase<'a> {
    pub(super) args: &'a Args,
    pub(super) number: usize,
    pub(super) watchers: usize,
    pub(super) rate: Rate,
    pub(super) keys: &'a Keys,
    pub(super) measure_from: Instant,
    /// Write numbers below this were sent (acknowledged or not).
    pub(super) attempted: u64,
    pub(super) caught_up: bool,
    pub(super) cancelled: Vec<String>,
}

/// Checks what every watcher received against the acknowledged writes and measures.
pub(super) fn analyse(
    phase: &Phase<'_>,
    schedule: &Schedule,
    acks: &[Ack],
    received: &[Received],
    visible: &Visible,
) -> PhaseOutcome {
    let mut failures = phase.cancelled.clone();
    if !phase.caught_up {
        failures.push(format!(
            "the edge or a watcher had not caught up {:?} after the last acknowledgment",
            phase.args.visible_timeout
        ));
    }
    // Acknowledged writes by number (`acks` is sorted by number).
    let ack_of = |n: u64| {
        acks.binary_search_by_key(&n, |a| a.n)
            .ok()
            .and_then(|i| acks.get(i))
    };
    let measured = |a: &Ack| a.due >= phase.measure_from;
    let mut event_latency = histogram();
    let (mut events_before_ack, mut delivered, mut unacked_events) = (0u64, 0u64, 0u64);
    let mut last_arrival = phase.measure_from;
    let mut problems = Problems::default();
    for (w, events) in received.iter().enumerate() {
        let mut seen = vec![false; phase.attempted as usize];
        let mut previous = 0;
        for &(n, revision, at) in events {
            if revision < previous {
                note(&mut problems.out_of_order, || {
                    format!("watcher {w}: revision {revision} after {previous}")
                });
            }
            previous = previous.max(revision);
            let mine = match (phase.keys.prefix_of(n), phase.args.prefixes) {
                (None, _) => true,
                (Some(k), prefixes) => k == w % prefixes,
            };
            let Some(slot) = seen.get_mut(n as usize).filter(|_| mine) else {
                note(&mut problems.foreign, || {
                    format!("watcher {w}: an event for write {n}, not of its keys")
                });
                continue;
            };
            if *slot {
                note(&mut problems.duplicates, || {
                    format!("watcher {w}: write {n} twice")
                });
                continue;
            }
            *slot = true;
            let Some(ack) = ack_of(n) else {
                // A write whose answer was lost (timeout) may still have been applied.
                unacked_events += 1;
                continue;
            };
            if ack.revision != revision {
                note(&mut problems.wrong_revision, || {
                    format!(
                        "watcher {w}: write {n} acknowledged at revision {} came at {revision}",
                        ack.revision
                    )
                });
            }
            if measured(ack) {
                delivered += 1;
                last_arrival = last_arrival.max(at);
                if at < ack.at {
                    events_before_ack += 1;
                }
                event_latency.saturating_record(micros(at.saturating_duration_since(ack.at)));
            }
        }
        for ack in acks {
            let mine = phase
                .keys
                .prefix_of(ack.n)
                .is_none_or(|k| k == w % phase.args.prefixes.max(1));
            if mine && !seen.get(ack.n as usize).copied().unwrap_or(false) {
                note(&mut problems.missing, || {
                    format!(
                        "watcher {w}: write {} (revision {}) never came",
                        ack.n, ack.revision
                    )
                });
            }
        }
    }
    failures.extend(problems.summaries());

    // Ack-to-visible, as replication-lag measures it.
    let mut visible_latency = histogram();
    let (mut visible_before_ack, mut never_visible) = (0u64, 0u64);
    let mut write_latency = histogram();
    let measured_acks: Vec<&Ack> = acks.iter().filter(|a| measured(a)).collect();
    for ack in &measured_acks {
        write_latency.saturating_record(micros(ack.at.saturating_duration_since(ack.sent)));
        let i = visible.partition_point(|(revision, _)| *revision < ack.revision);
        match visible.get(i) {
            Some((_, at)) => {
                if *at < ack.at {
                    visible_before_ack += 1;
                }
                visible_latency.saturating_record(micros(at.saturating_duration_since(ack.at)));
            }
            None => never_visible += 1,
        }
    }
    let write_span = measured_acks
        .iter()
        .map(|a| a.at)
        .max()
        .map_or(0.0, |last| {
            last.saturating_duration_since(phase.measure_from)
                .as_secs_f64()
        });
    let event_span = last_arrival
        .saturating_duration_since(phase.measure_from)
        .as_secs_f64();
    let per_sec = |count: u64, span: f64| {
        if span > 0.0 {
            (count as f64 / span).round()
        } else {
            0.0
        }
    };
    let ms = |us: u64| round(us as f64 / 1000.0, 3);
    let errors = schedule.errors.load(Relaxed);
    let json = json!({
        "phase": phase.number,
        "watchers": phase.watchers,
        "streams": phase.args.streams.min(phase.watchers),
        "rate": phase.rate.label(),
        "writes": measured_acks.len(),
        "write_errors": errors,
        "writes_per_sec": per_sec(measured_acks.len() as u64, write_span),
        "write_p50_ms": ms(write_latency.value_at_quantile(0.5)),
        "write_p99_ms": ms(write_latency.value_at_quantile(0.99)),
        "events": delivered,
        "events_per_sec": per_sec(delivered, event_span),
        "events_per_sec_per_watcher": per_sec(delivered, event_span * phase.watchers as f64),
        "event_p50_ms": ms(event_latency.value_at_quantile(0.5)),
        "event_p99_ms": ms(event_latency.value_at_quantile(0.99)),
        "event_max_ms": ms(event_latency.max()),
        "events_before_ack": events_before_ack,
        "visible_p50_ms": ms(visible_latency.value_at_quantile(0.5)),
        "visible_p99_ms": ms(visible_latency.value_at_quantile(0.99)),
        "visible_max_ms": ms(visible_latency.max()),
        "visible_before_ack": visible_before_ack,
        "never_visible": never_visible,
        "events_of_unacknowledged_writes": unacked_events,
        "checks": if failures.is_empty() { "passed" } else { "FAILED" },
    });
    let summary = format!(
        "phase {} | {} watchers, rate {} | writes {}/s (p99 {} ms, errors {errors}) | events {}/s \
         ({}/s per watcher) | write→event p50 {} p99 {} max {} ms | ack→visible p50 {} p99 {} \
         max {} ms | exactly once in order: {}",
        phase.number,
        phase.watchers,
        phase.rate.label(),
        json["writes_per_sec"],
        json["write_p99_ms"],
        json["events_per_sec"],
        json["events_per_sec_per_watcher"],
        json["event_p50_ms"],
        json["event_p99_ms"],
        json["event_max_ms"],
        json["visible_p50_ms"],
        json["visible_p99_ms"],
        json["visible_max_ms"],
        if failures.is_empty() { "yes" } else { "NO" },
    );
    if let Some(error) = schedule.first_error() {
        eprintln!("phase {}: first write error: {error}", phase.number);
    }
    PhaseOutcome {
        json,
        summary,
        failures,
    }
}

/// Counts of each kind of wrong delivery, with the first example of each.
#[derive(Default)]
struct Problems {
    out_of_order: (u64, Option<String>),
    foreign: (u64, Option<String>),
    duplicates: (u64, Option<String>),
    wrong_revision: (u64, Option<String>),
    missing: (u64, Option<String>),
}

/// Counts one wrong delivery of a kind, keeping the first example.
fn note(kind: &mut (u64, Option<String>), example: impl FnOnce() -> String) {
    kind.0 += 1;
    if kind.1.is_none() {
        kind.1 = Some(example());
    }
}

impl Problems {
    fn summaries(&self) -> Vec<String> {
        [
            ("events out of revision order", &self.out_of_order),
            ("events for keys not watched", &self.foreign),
            ("duplicate events", &self.duplicates),
            ("events at the wrong revision", &self.wrong_revision),
            ("acknowledged writes never delivered", &self.missing),
        ]
        .into_iter()
        .filter(|(_, (count, _))| *count > 0)
        .map(|(what, (count, example))| {
            format!(
                "{count} {what} (first: {})",
                example.as_deref().unwrap_or("-")
            )
        })
        .collect()
    }
}

fn histogram() -> hdrhistogram::Histogram<u64> {
    // Bounds 1 µs – 60 s, 3 significant digits: cannot fail.
    cluster::latency_histogram().unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
