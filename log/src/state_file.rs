//! Small state files (the purged pointer, the truncation marker, the Raft vote and committed
//! pointer), each written atomically through [`crate::fs::write_atomic`]: write `<name>.tmp`,
//! fsync it, rename it over `<name>`, fsync the directory. A reader sees the old file or the
//! new one, never a mix.
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"RGTASTA\n"
//!      8     4  format version (u32 LE), 1
//!     12     4  tag: which state this is (4 ASCII bytes), so files cannot be swapped
//!     16     4  body length N (u32 LE)
//!     20     N  body
//!   20+N     4  CRC32C of bytes 0..20+N (u32 LE)
//! ```

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::position::{ByteOffset, EntryId, LogIndex, NodeId, Term};

pub const MAGIC: [u8; 8] = *b"RGTASTA\n";
pub const VERSION: u32 = 1;
const PREFIX: usize = 20;
/// Suffix of files being written; leftovers from a crash are deleted on open.
pub use crate::fs::{TMP_SUFFIX, sync_dir};

/// Which state file: its name in the directory and its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateFile {
    pub name: &'static str,
    pub tag: [u8; 4],
}

impl StateFile {
    /// The highest purged entry id.
    pub const PURGED: StateFile = StateFile {
        name: "purged.state",
        tag: *b"PURG",
    };
    /// A truncation in progress: the index from which entries are being deleted.
    pub const TRUNCATING: StateFile = StateFile {
        name: "truncating.state",
        tag: *b"TRNC",
    };
    /// The Raft vote (written by the `raft` module).
    pub const VOTE: StateFile = StateFile {
        name: "vote.state",
        tag: *b"VOTE",
    };
    /// The Raft committed pointer (written by the `raft` module).
    pub const COMMITTED: StateFile = StateFile {
        name: "committed.state",
        tag: *b"CMIT",
    };

    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.name)
    }
}

/// Encodes a state file's bytes. Pure.
pub fn encode(file: StateFile, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + body.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&file.tag);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a state file's bytes, checking magic, version, tag, length and checksum. Pure.
pub fn decode(file: StateFile, path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.len() < PREFIX + 4 {
        return Err(Error::corrupted(
            path,
            ByteOffset(0),
            "state file too short",
        ));
    }
    if bytes[0..8] != MAGIC {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            what: "bad state file magic".into(),
        });
    }
    let u32_at = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(b)
    };
    let crc_at = bytes.len() - 4;
    if u32_at(crc_at) != crc32c::crc32c(&bytes[..crc_at]) {
        return Err(Error::corrupted(
            path,
            ByteOffset(crc_at as u64),
            "state file checksum mismatch",
        ));
    }
    let version = u32_at(8);
    if version != VERSION {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            what: format!("state file version {version}, this build reads {VERSION}"),
        });
    }
    if bytes[12..16] != file.tag {
        return Err(Error::corrupted(
            path,
            ByteOffset(12),
            "state file tag does not match its name",
        ));
    }
    let len = u32_at(16) as usize;
    if PREFIX + len != crc_at {
        return Err(Error::corrupted(
            path,
            ByteOffset(16),
            "state file length mismatch",
        ));
    }
    Ok(bytes[PREFIX..crc_at].to_vec())
}

/// Writes `body` atomically and durably ([`crate::fs::write_atomic`]).
pub fn write(dir: &Path, file: StateFile, body: &[u8]) -> Result<()> {
    crate::fs::write_atomic(&file.path(dir), &encode(file, body))
}

/// Reads and checks a state file; `None` if it does not exist.
pub fn read(dir: &Path, file: StateFile) -> Result<Option<Vec<u8>>> {
    let path = file.path(dir);
    match fs::read(&path) {
        Ok(bytes) => decode(file, &path, &bytes).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Deletes a state file durably; deleting a missing file is fine.
pub fn remove(dir: &Path, file: StateFile) -> Result<()> {
    crate::fs::remove(&file.path(dir))
}

/// Body of a state file holding an entry id (the purged and committed pointers).
pub fn encode_entry_id(id: EntryId) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&id.index.0.to_le_bytes());
    b.extend_from_slice(&id.term.0.to_le_bytes());
    b.extend_from_slice(&id.leader.0.to_le_bytes());
    b
}

pub fn decode_entry_id(path: &Path, body: &[u8]) -> Result<EntryId> {
    Ok(EntryId::new(
        LogIndex(body_u64(path, body, 0)?),
        Term(body_u64(path, body, 8)?),
        NodeId(body_u64(path, body, 16)?),
    ))
}

/// Body of the truncation marker: the index truncation deletes from.
pub fn encode_index(index: LogIndex) -> Vec<u8> {
    index.0.to_le_bytes().to_vec()
}

/// Reads a little-endian u64 at `at` of a state body, as a checked step of decoding one.
pub fn body_u64(path: &Path, body: &[u8], at: usize) -> Result<u64> {
    body.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| Error::corrupted(path, ByteOffset(at as u64), "state body too short"))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;

    #[test]
    fn round_trip_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), StateFile::VOTE).unwrap(), None);
        write(dir.path(), StateFile::VOTE, b"hello").unwrap();
        assert_eq!(
            read(dir.path(), StateFile::VOTE).unwrap().as_deref(),
            Some(&b"hello"[..])
        );

        let bytes = encode(StateFile::VOTE, b"hello");
        let path = Path::new("x");
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(StateFile::VOTE, path, &bad).is_err(), "bit {bit}");
        }
        for cut in 0..bytes.len() {
            assert!(
                decode(StateFile::VOTE, path, &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        assert!(
            decode(StateFile::PURGED, path, &bytes).is_err(),
            "tag must match"
        );
        remove(dir.path(), StateFile::VOTE).unwrap();
        remove(dir.path(), StateFile::VOTE).unwrap();
        assert_eq!(read(dir.path(), StateFile::VOTE).unwrap(), None);
    }
}
