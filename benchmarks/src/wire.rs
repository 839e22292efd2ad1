//! Code generated from the benchmark's own `.proto` files (see `build.rs`).

/// The subset of etcd's v3 API the `compare` scenario drives.
#[allow(clippy::all, clippy::pedantic)]
pub mod etcd {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// The no-op service: the transport's ceiling.
#[allow(clippy::all, clippy::pedantic)]
pub mod noop {
    include!(concat!(env!("OUT_DIR"), "/regatta.bench.v1.rs"));
}
