//! Compiles the benchmark's own `.proto` files (the etcd v3 subset it drives and the no-op
//! service) with the vendored `protoc`, so a fresh machine needs no system protobuf compiler.

const PROTOS: &[&str] = &["proto/etcd_kv.proto", "proto/noop.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .bytes(".")
        .compile_with_config(config, PROTOS, &["proto"])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
