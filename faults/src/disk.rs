//! A small disk for one core node: a tmpfs mounted in the root namespace (the nodes'
//! namespaces share its mounts), holding that node's data directory, and a ballast file
//! beside it that fills the disk for the `disk-full` fault.
//!
//! ```text
//!   RUN/small-disk/           tmpfs of SIZE_MIB, source name "rgf-disk"
//!   ├── core3/                core3's --data-dir
//!   └── ballast               written until ENOSPC (~0 bytes left), deleted to heal
//! ```
//!
//! Unmounted on drop, after a copy of the data directory to `RUN/core3` for a look after
//! the run; [`unmount_leftovers`] (called by `net::cleanup`) removes what a killed run left.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

use crate::net::run;

/// The tmpfs's size: room for a minute's log and snapshots above the node's reserve
/// (`--min-free-disk`, 64 MiB by default).
pub const SIZE_MIB: u64 = 128;
/// The mount's source name, by which leftovers are found in `/proc/mounts`.
const SOURCE: &str = "rgf-disk";

/// The mounted tmpfs.
#[derive(Debug)]
pub struct SmallDisk {
    pub mount: PathBuf,
    /// Where the node's data directory is copied on drop.
    keep: PathBuf,
    node: String,
}

impl SmallDisk {
    /// Mounts the tmpfs at `RUN/small-disk` for `node`; its data directory is
    /// [`SmallDisk::data_dir`].
    pub fn mount(run_dir: &Path, node: &str) -> Result<Self> {
        let mount = run_dir.join("small-disk");
        std::fs::create_dir_all(&mount)?;
        let size = format!("size={SIZE_MIB}m");
        let at = mount.to_string_lossy().into_owned();
        run("mount", &["-t", "tmpfs", "-o", &size, SOURCE, &at])
            .context("mounting the small disk (needs root)")?;
        let disk = Self {
            keep: run_dir.join(node),
            mount,
            node: node.to_string(),
        };
        std::fs::create_dir_all(disk.data_dir())?;
        Ok(disk)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.mount.join(&self.node)
    }

    fn ballast(&self) -> PathBuf {
        self.mount.join("ballast")
    }

    /// Bytes the filesystem has free (as `df` says; 0 when it cannot tell).
    pub fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.mount)
            .output();
        out.ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// Writes the ballast until the disk refuses more (1 MiB, then 4 KiB writes): nothing
    /// is left free. Returns the ballast's size.
    pub fn fill(&self) -> Result<u64> {
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.ballast())
            .context("creating the ballast")?;
        let mut written = 0;
        for chunk in [1 << 20, 4 << 10] {
            let bytes = vec![0xa5u8; chunk];
            while file.write_all(&bytes).is_ok() {
                written += chunk as u64;
            }
        }
        let _ = file.sync_all(); // tmpfs: nothing to flush; an error here is the full disk
        Ok(written)
    }

    /// Deletes the ballast (nothing when there is none).
    pub fn free_up(&self) -> Result<()> {
        match std::fs::remove_file(self.ballast()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("deleting the ballast")
            }
            _ => Ok(()),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.free_up();
        let _ = Command::new("cp")
            .arg("-a")
            .arg(self.data_dir())
            .arg(&self.keep)
            .status();
        let _ = run("umount", &["-l", &self.mount.to_string_lossy()]);
    }
}

/// Unmounts every small disk a run left mounted.
pub fn unmount_leftovers() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut words = line.split_whitespace();
        if let (Some(SOURCE), Some(at)) = (words.next(), words.next()) {
            let _ = run("umount", &["-l", at]);
        }
    }
}
