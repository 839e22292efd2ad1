//! A small tmpfs for a node's data directories, to fill a disk for real (needs root to
//! mount; a test without it prints why and skips).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A tmpfs of a given size, unmounted on drop.
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB at `dir`, or says why it cannot and returns None.
    pub fn mount(dir: &Path, mib: u64) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a small tmpfs for the data directory (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    pub fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.dir).unwrap();
        st.f_bavail * st.f_frsize
    }

    pub fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Writes a filler file leaving about `leave` bytes free.
    pub fn fill(&self, leave: u64) {
        use std::io::Write;
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.filler())
            .unwrap();
        let chunk = vec![0xa5u8; 64 << 10];
        while self.free() > leave {
            let n = (self.free() - leave).min(chunk.len() as u64) as usize;
            if file.write_all(&chunk[..n.max(1)]).is_err() {
                break;
            }
            file.sync_all().unwrap();
        }
    }

    /// Frees the space the filler took.
    pub fn free_up(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    /// Puts the directories `names` of `data_dir` on this disk (as symlinks).
    pub fn host(&self, data_dir: &Path, names: &[&str]) {
        for name in names {
            let owner = data_dir.file_name().unwrap().to_string_lossy();
            let target = self.dir.join(format!("{owner}-{name}"));
            std::fs::create_dir_all(&target).unwrap();
            std::os::unix::fs::symlink(&target, data_dir.join(name)).unwrap();
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
