//! `regatta kv watch TABLE [KEY]`: prints the changes of a key, a prefix or a range as they
//! are applied on the node, from a start revision or from now.
//!
//! Text output is one line per event (`PUT key = value (revision R)`, `DELETE key (revision
//! R)`); `--json` prints one JSON document per line (event, progress). The command runs
//! until interrupted, until `--count` events were printed, or until the node ends the
//! watcher; then the exit code says why: 4 the table does not exist (or was deleted); 3 the
//! node stopped or the watcher fell behind (resume with the `--from-revision` printed); 5
//! the start revision is older than the node holds, or the node replaced its state (read
//! the table, then watch from its revision + 1); 2 a bad request.

use clap::Args;
use futures::StreamExt;
use regatta_proto::regatta::watch::v1::{
    CancelReason, CreateRequest, EventType, WatchRequest, watch_client::WatchClient, watch_request,
    watch_response,
};
use serde_json::{Value, json};
use tonic::{Code, Status, transport::Channel};

use super::{
    CliResult, ClientOptions, Failure,
    kv::Bounds,
    output::{kv_json, parse_bytes, print_json, text},
};

#[derive(Args, Debug)]
pub struct WatchArgs {
    table: String,
    /// The key (or the prefix, or the first key of a range); leave out for the whole table.
    key: Option<String>,
    #[command(flatten)]
    bounds: Bounds,
    /// First revision to print changes of (the last revision seen + 1 to resume); 0 or
    /// left out: from now on. A revision the node no longer holds fails (exit 5) naming
    /// the oldest it holds: read the table, then watch from the read's revision + 1.
    #[arg(long, default_value_t = 0)]
    from_revision: u64,
    /// Also print the value each change replaced.
    #[arg(long)]
    prev_kv: bool,
    /// Print a progress line ("the watcher is current up to revision R") whenever the node
    /// sends one (after --watch.progress-interval without events).
    #[arg(long)]
    progress: bool,
    /// Exit after printing this many events (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

/// The wire code of a cancellation as a status, for the exit code.
fn status_of(code: i32, message: &str) -> Status {
    Status::new(Code::from(code), message.to_owned())
}

pub async fn run(args: WatchArgs, channel: Channel, options: &ClientOptions) -> CliResult {
    let (key, range_end) = match &args.key {
        Some(key) => {
            let key = parse_bytes(key).map_err(Failure::usage)?;
            let end = args.bounds.end_of(&key)?;
            (key, end)
        }
        None => (vec![0], vec![0]),
    };
    let create = WatchRequest {
        request: Some(watch_request::Request::Create(CreateRequest {
            table: args.table.clone().into_bytes().into(),
            key: key.into(),
            range_end: range_end.into(),
            start_revision: args.from_revision,
            prev_kv: args.prev_kv,
            progress_notify: args.progress,
            watch_id: 1,
        })),
    };
    let mut client = WatchClient::new(channel);
    // The request stream stays open: closing it would not end the watch, but keeping it
    // open is what a client that may add watchers does.
    let requests = futures::stream::iter([create]).chain(futures::stream::pending());
    let mut responses = client.watch(requests).await?.into_inner();
    let mut printed = 0u64;
    while let Some(response) = responses.next().await {
        let response = response?;
        match response.kind {
            Some(watch_response::Kind::Created(c)) => {
                if options.json {
                    print_json(&json!({"created": {"start_revision": c.start_revision}}));
                } else {
                    eprintln!("watching from revision {}", c.start_revision);
                }
            }
            Some(watch_response::Kind::Events(events)) => {
                for e in events.events {
                    let Some(kv) = &e.kv else { continue };
                    let put = e.r#type == EventType::Put as i32;
                    if options.json {
                        let mut doc = json!({
                            "type": if put { "PUT" } else { "DELETE" },
                            "revision": kv.mod_revision,
                            "kv": kv_json(kv, put),
                        });
                        if let (Some(prev), Value::Object(o)) = (&e.prev_kv, &mut doc) {
                            o.insert("prev_kv".into(), kv_json(prev, true));
                        }
                        print_json(&doc);
                    } else if put {
                        crate::outln!(
                            "PUT {} = {} (revision {})",
                            text(&kv.key),
                            text(&kv.value),
                            kv.mod_revision
                        );
                    } else {
                        crate::outln!("DELETE {} (revision {})", text(&kv.key), kv.mod_revision);
                    }
                    if let (Some(prev), false) = (&e.prev_kv, options.json) {
                        crate::outln!("  previous: {}", text(&prev.value));
                    }
                    printed += 1;
                    if args.count > 0 && printed >= args.count && !events.fragment {
                        return Ok(());
                    }
                }
            }
            Some(watch_response::Kind::Progress(p)) if args.progress => {
                if options.json {
                    print_json(&json!({"progress": {"revision": p.revision}}));
                } else {
                    crate::outln!("progress: current up to revision {}", p.revision);
                }
            }
            Some(watch_response::Kind::Progress(_)) => {}
            Some(watch_response::Kind::Canceled(c)) => {
                let reason = CancelReason::try_from(c.reason).unwrap_or_default();
                let mut message = c.message.clone();
                if c.resume_revision > 0 && reason != CancelReason::Requested {
                    message = format!(
                        "{message} (resume with --from-revision {})",
                        c.resume_revision
                    );
                }
                return Err(match reason {
                    CancelReason::Requested => Failure::new(crate::error::FAILED, message),
                    CancelReason::TableNotFound => Failure::new(crate::error::NOT_FOUND, message),
                    CancelReason::FellBehind => Failure::new(crate::error::UNAVAILABLE, message),
                    CancelReason::Compacted | CancelReason::StateReplaced => {
                        Failure::new(crate::error::PRECONDITION, message)
                    }
                    CancelReason::Rejected | CancelReason::Unspecified => {
                        Failure::from(status_of(c.code, &message))
                    }
                });
            }
            None => {}
        }
    }
    Err(Failure::new(
        crate::error::UNAVAILABLE,
        "the node ended the watch stream",
    ))
}
