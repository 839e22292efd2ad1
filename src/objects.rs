//! Object storage named by a URL: `file:///dir` (a local directory, the embedded default) or
//! `memory://` (tests). Remote stores come through the same function as they are added.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use object_store::{ObjectStore, local::LocalFileSystem, memory::InMemory};

/// An opened object store and the key prefix everything of this cluster lives under.
#[derive(Clone, Debug)]
pub struct ObjectStorage {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
}

/// Opens the store a `--object-store` URL names, creating a local directory if needed.
pub fn open(url: &str) -> Result<ObjectStorage> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            bail!(
                "--object-store {url:?}: a file URL needs an absolute path (file:///var/lib/regatta/objects)"
            );
        }
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating the object store directory {path}"))?;
        let store = LocalFileSystem::new_with_prefix(path)
            .with_context(|| format!("opening the object store directory {path}"))?;
        return Ok(ObjectStorage {
            store: Arc::new(store),
            prefix: String::new(),
        });
    }
    if url == "memory://" {
        return Ok(ObjectStorage {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
        });
    }
    bail!("--object-store {url:?}: unsupported scheme (use file:///path or memory://)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}/objects", dir.path().display());
        assert!(open(&url).is_ok());
        assert!(dir.path().join("objects").is_dir());
        assert!(open("memory://").is_ok());
        for bad in ["file://relative/dir", "ftp://x", "/plain/path"] {
            assert!(open(bad).is_err(), "{bad} accepted");
        }
    }
}
