//! Apply throughput alone, in one process: `KEYS` puts (keys of 16–32 bytes shaped like
//! `regatta-bench materializer`'s, 100-byte values) applied in batches of 100,000 through
//! [`Materializer::apply_events`], `ROUNDS` times into fresh materializers (the first round
//! pays the kernel's first touch of the memory, later ones reuse the allocator's pages).
//!
//! `cargo run --release -p regatta-materializer --example apply_ab -- [KEYS] [ROUNDS] [BATCH]`

use std::time::Instant;

use bytes::Bytes;
use regatta_materializer::{Command, Materializer, Revision};
use regatta_proto::regatta::v1 as wire;

mod common;

use common::{Rng, key, rss};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let keys: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events: Vec<_> = (0..keys)
        .map(|i| {
            let mut value = vec![0u8; 100];
            for b in &mut value {
                *b = rng.next() as u8;
            }
            let put = wire::PutRequest {
                table: Bytes::from_static(b"bench"),
                key: Bytes::from(key(i, &mut rng)),
                value: Bytes::from(value),
                prev_kv: false,
                ttl_millis: 0,
            };
            Command::try_from(&put).expect("valid put").to_event(0)
        })
        .collect();
    let create = Command::CreateTable {
        name: "bench".into(),
        config: None,
    }
    .to_event(0);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    for round in 0..rounds {
        let before = rss();
        let m = Materializer::default();
        m.apply_events([(Revision(1), &create)]).expect("create");
        let started = Instant::now();
        let mut next = 2u64;
        for chunk in events.chunks(batch) {
            m.apply_events(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (Revision(next + i as u64), e)),
            )
            .expect("apply");
            next += chunk.len() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        let (leaves, inners) = m.view().table("bench").map_or((0, 0), |t| t.node_counts());
        println!(
            "{leaves} leaves ({:.1} pairs each), {inners} inner nodes",
            keys as f64 / leaves.max(1) as f64
        );
        let after = rss().saturating_sub(before) / keys as u64;
        std::thread::sleep(std::time::Duration::from_secs(3));
        let later = rss().saturating_sub(before) / keys as u64;
        println!(
            "round {round}: {:.0} puts/s ({:.3} s), resident {after} B/key, {later} B/key 3 s later",
            keys as f64 / secs,
            secs
        );
    }
}
