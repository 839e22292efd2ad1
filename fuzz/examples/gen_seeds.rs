//! Writes the seed corpus (`fuzz/corpus/<target>/seed-*`) from the project's own encoders:
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    regatta_fuzz::seeds::write_all(&root)?;
    println!("seeds written to {}", root.display());
    Ok(())
}
