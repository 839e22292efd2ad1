//! Plays one step of a schedule: applies its fault, holds it (logging each core's view once
//! a second), applies and undoes the overlapping fault at its times, then undoes what is
//! still applied in reverse order of application. Two faults get a closer look:
//!
//! - `disk-full`: should [`DISK_NODE`] exit while its disk is full, the exit is judged by
//!   its log (a panic is an anomaly; a deliberate exit with a message is expected, as a
//!   Kubernetes pod restart) and the node is started again, at most every 2 s.
//! - `objects-unreachable`: the cores' upload failure counters are logged, and once the
//!   step's faults are all undone an upload (snapshot or archived segment) must succeed
//!   within [`UPLOAD_RECOVERY`].

use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use crate::{
    cluster::{Cluster, DISK_NODE},
    fault::{self, Fault, Step, Undo},
    net::Net,
};

/// How long after the object store is reachable again an upload must succeed.
const UPLOAD_RECOVERY: Duration = Duration::from_secs(60);
/// The least time between two restarts of a node that exits on a full disk.
const RESTART_BACKOFF: Duration = Duration::from_secs(2);

/// Counters of the cores' uploads to the object store: successes, failures.
const UPLOADS: [&str; 2] = [
    "regatta_snapshot_uploads_total",
    "regatta_archive_segments_uploaded_total",
];
const UPLOAD_FAILURES: [&str; 2] = [
    "regatta_snapshot_upload_failures_total",
    "regatta_archive_failures_total",
];

/// What a step did: its anomalies (the kinds applied are [`Step::kinds`]).
#[derive(Debug, Default)]
pub struct Played {
    pub anomalies: Vec<String>,
    /// Each core's upload counters when the object store came back, still to be checked.
    uploads_due: Option<Vec<f64>>,
}

/// One applied fault, until undone.
struct Active {
    fault: Fault,
    undo: Undo,
    what: String,
    /// [`DISK_NODE`]'s log length when the fault was applied.
    log_mark: u64,
}

/// Plays `step` up to the end of its hold (its calm is the caller's); `log` prints a line
/// of the run's log.
pub async fn play(
    step: &Step,
    cluster: &mut Cluster,
    net: &Net,
    log: &dyn Fn(&str),
) -> Result<Played> {
    let mut played = Played::default();
    let began = Instant::now();
    let mut active = Vec::new();
    apply(step.fault, cluster, net, log, &mut played, &mut active).await?;
    log(&format!(
        "fault: {} ({})",
        active[0].what,
        if step.fault == Fault::RollingRestart {
            format!("took {:.1}s", began.elapsed().as_secs_f64())
        } else {
            format!("{:?}", step.hold)
        }
    ));
    let end = if step.fault == Fault::RollingRestart {
        Instant::now()
    } else {
        began + step.hold
    };
    let mut overlap = step.overlap.map(|o| (began + o.after, o));
    let mut overlap_end = None;
    let mut exited_at = None;
    let mut tick = Instant::now() + Duration::from_secs(1);
    loop {
        let next = [
            Some(end),
            Some(tick),
            overlap.map(|(at, _)| at),
            overlap_end,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end);
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        if let Some((at, o)) = overlap
            && now >= at
        {
            overlap = None;
            apply(o.fault, cluster, net, log, &mut played, &mut active).await?;
            let last = active.last().map_or("", |a| a.what.as_str());
            log(&format!("fault (overlapping): {last} ({:?})", o.hold));
            overlap_end = Some(Instant::now() + o.hold);
        }
        if overlap_end.is_some_and(|e| now >= e) && active.len() > 1 {
            overlap_end = None;
            if let Some(a) = active.pop() {
                end_fault(a, "healed (overlapping)", cluster, net, log, &mut played).await?;
            }
        }
        if active.iter().any(|a| a.fault == Fault::DiskFull) {
            restart_after_exit(cluster, log, &mut played, &mut exited_at)?;
        }
        if now >= end {
            break;
        }
        if now >= tick {
            tick += Duration::from_secs(1);
            if tick <= end {
                log(&format!("  {}", cluster.status_line().await));
            }
        }
    }
    while let Some(a) = active.pop() {
        end_fault(a, "healed", cluster, net, log, &mut played).await?;
    }
    if let Some(before) = played.uploads_due.take() {
        check_uploads(cluster, &before, log, &mut played).await;
    }
    Ok(played)
}

async fn apply(
    fault: Fault,
    cluster: &mut Cluster,
    net: &Net,
    log: &dyn Fn(&str),
    played: &mut Played,
    active: &mut Vec<Active>,
) -> Result<()> {
    if fault == Fault::ObjectsUnreachable {
        let failures = upload_counters(cluster, &UPLOAD_FAILURES).await;
        log(&format!(
            "  object store: upload failures so far {failures:?}"
        ));
    }
    let log_mark = cluster.node_mut(DISK_NODE)?.log_len();
    let (what, undo) = fault::apply(fault, cluster, net, log, &mut played.anomalies).await?;
    active.push(Active {
        fault,
        undo,
        what,
        log_mark,
    });
    Ok(())
}

/// Undoes one fault and logs it; once the object store is back, notes the upload counters
/// for [`check_uploads`].
async fn end_fault(
    a: Active,
    word: &str,
    cluster: &mut Cluster,
    net: &Net,
    log: &dyn Fn(&str),
    played: &mut Played,
) -> Result<()> {
    if a.fault == Fault::DiskFull {
        // What the node said while its disk was full.
        let node = cluster.node_mut(DISK_NODE)?;
        let words = ["disk", "space", "ENOSPC", "os error 28", "panicked"];
        for line in node.log_lines_from(a.log_mark, &words, 4) {
            log(&format!("  {DISK_NODE}: {line}"));
        }
    }
    fault::undo(&a.undo, cluster, net)?;
    log(&format!("{word}: {}", a.what));
    if a.fault == Fault::ObjectsUnreachable {
        let failures = upload_counters(cluster, &UPLOAD_FAILURES).await;
        log(&format!(
            "  object store: upload failures so far {failures:?}"
        ));
        played.uploads_due = Some(upload_counters(cluster, &UPLOADS).await);
    }
    Ok(())
}

/// After the object store is back and every fault of the step undone (a full disk or a
/// lost quorum would hold back the writes that make uploads): an upload must succeed
/// within [`UPLOAD_RECOVERY`].
async fn check_uploads(cluster: &Cluster, before: &[f64], log: &dyn Fn(&str), played: &mut Played) {
    let began = Instant::now();
    let recovered = Cluster::wait("an upload after the heal", UPLOAD_RECOVERY, || async {
        let now = upload_counters(cluster, &UPLOADS).await;
        now.iter().zip(before).any(|(n, b)| n > b)
    })
    .await;
    match recovered {
        Ok(()) => log(&format!(
            "  object store: an upload succeeded {:.1}s after the step's faults were undone",
            began.elapsed().as_secs_f64()
        )),
        Err(e) => {
            let anomaly = format!("object store: {e:#}");
            log(&format!("ANOMALY: {anomaly}"));
            played.anomalies.push(anomaly);
        }
    }
}

/// Each core's sum of `names` (0 for a core that does not answer), in core order.
async fn upload_counters(cluster: &Cluster, names: &[&str]) -> Vec<f64> {
    let mut values = Vec::new();
    for node in cluster.cores() {
        let mut sum = 0.0;
        for name in names {
            sum += node.metric(name).await.unwrap_or(0.0);
        }
        values.push(sum);
    }
    values
}

/// When [`DISK_NODE`] has exited on its full disk: judges the exit by its log, and starts
/// the node again [`RESTART_BACKOFF`] later (a node a kill fault holds down is left alone).
fn restart_after_exit(
    cluster: &mut Cluster,
    log: &dyn Fn(&str),
    played: &mut Played,
    exited: &mut Option<Instant>,
) -> Result<()> {
    let binary = cluster.binary.clone();
    let node = cluster.node_mut(DISK_NODE)?;
    if let Some(at) = *exited {
        // Down because it exited (not because a kill fault holds): start it again.
        if node.pid().is_none() && at.elapsed() >= RESTART_BACKOFF {
            node.start(&binary)?;
            *exited = None;
            log(&format!("  {DISK_NODE} started again on its full disk"));
        }
        return Ok(());
    }
    let Some(status) = node.exited() else {
        return Ok(());
    };
    *exited = Some(Instant::now());
    let panics = node.log_lines(&["panicked"], 3);
    if panics.is_empty() {
        let said = node.log_lines(&["ERROR", "error"], 2);
        log(&format!(
            "  expected: {DISK_NODE} exited on its full disk ({status}): {said:?}"
        ));
    } else {
        let anomaly = format!("{DISK_NODE} panicked on its full disk ({status}): {panics:?}");
        log(&format!("ANOMALY: {anomaly}"));
        played.anomalies.push(anomaly);
    }
    Ok(())
}
