//! A node's data directory: `--data-dir`, the free space it keeps (`--min-free-disk`, the
//! guard itself is [`regatta_api::disk`]) and the size of its log segments
//! (`--log.segment-size`).
//!
//! A core's data directory defaults to `./regatta-data`; an edge sets its own default
//! (`./regatta-edge-data`) with `mut_arg` on its arguments.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// The id of `--data-dir`, for commands that change its default.
pub const DATA_DIR_ID: &str = "data_dir";

#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// Directory for the log, snapshots and node state.
    #[arg(
        long = "data-dir",
        env = "REGATTA_DATA_DIR",
        default_value = "./regatta-data"
    )]
    pub data_dir: PathBuf,
    /// Free space the data directory's filesystem must keep: below it, writes are refused
    /// with RESOURCE_EXHAUSTED (reads go on) until space is freed. Bytes, or with a
    /// KiB/MiB/GiB suffix; 0 disables the guard.
    #[arg(
        long = "min-free-disk",
        env = "REGATTA_MIN_FREE_DISK",
        default_value = "64MiB",
        value_parser = crate::disk::parse_bytes
    )]
    pub min_free_disk: u64,
    /// Size at which the log rolls to a new segment file, in bytes.
    #[arg(long = "log.segment-size", env = "REGATTA_LOG_SEGMENT_SIZE", default_value_t = 64 << 20)]
    pub segment_size: u64,
}

impl StorageArgs {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.segment_size < 4096 {
            bail!("--log.segment-size must be at least 4096 bytes");
        }
        Ok(())
    }

    /// Creates the data directory if it is missing.
    pub fn create_data_dir(&self) -> Result<()> {
        use anyhow::Context;
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data directory {}", self.data_dir.display()))
    }
}
