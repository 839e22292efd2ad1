//! Compiles the `.proto` files with the vendored `protoc`, so a fresh machine needs no system
//! protobuf compiler. The proto folder is the include root: descriptor names carry no directory,
//! as existing clients expect.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/mvcc.proto",
    "proto/regatta.proto",
    "proto/replication.proto",
    "proto/maintenance.proto",
    "proto/event.proto",
    "proto/raft.proto",
    "proto/admin.proto",
    "proto/tail.proto",
    "proto/watch.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Ordered, so that a membership encodes to the same bytes every time: the log and
    // snapshots store them (src/raft.rs).
    config.btree_map([".regatta.raft.v1.Membership.nodes"]);
    let well_known = protoc_bin_vendored::include_path()?;
    let well_known = well_known
        .to_str()
        .ok_or("protoc include path is not UTF-8")?;
    tonic_prost_build::configure()
        .bytes(".")
        .include_file("generated.rs")
        .file_descriptor_set_path(out_dir.join("descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto", well_known])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
