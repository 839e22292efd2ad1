//! Regatta's backup format, for existing backup tooling.
//!
//! **Stream** (what `Maintenance.Backup` sends and `<table>.bak` holds): the Snappy
//! *framing* format around a sequence of records, each a little-endian `u64` length followed
//! by a serialized `mvcc.v1.Command { table, type: PUT, kv: { key, value } }`. Pairs are
//! written in key order; revisions are not part of the format (a restore writes new ones).
//!
//! **Directory**: `manifest.json` `{"started","finished","tables":[{"name","file_name",
//! "md5"}]}` beside one `<table>.bak` per table; `md5` is the lowercase hex MD5 of the file.
//! The manifest's `name` is the table's name; its file name is [`backup_file_name`]: the
//! name itself when it is a plain file name (as Regatta writes it), else an encoding of it.
//!
//! Round trips are bit-exact (export → import → export yields the same bytes). A broken
//! Snappy frame (its CRC), a truncated record, a record that is not a PUT, or a file whose
//! MD5 differs from the manifest is an [`Error::Corrupted`].
//!
//! This module is the one codec of that format: the node's `Maintenance.Backup`/`Restore`
//! services encode and decode streams with it, and `regatta backup`/`restore --dir` write
//! and read directories through [`BackupDir`], [`read_manifest`] and [`read_table_file`]
//! (the command line only moves the streams over gRPC and shows progress). Files are
//! written to a temporary name, fsync'd, renamed, and the directory fsync'd; the manifest
//! is written last, so a directory without one is an incomplete backup.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;
use regatta_proto::mvcc::v1::{Command as WireCommand, KeyValue, command::CommandType};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Pair, restore_events};
use crate::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::request::check_key;
use crate::table::Table;
use crate::{Error, Result, State};

const WHAT: &str = "backup";
/// Largest record accepted: a maximal key and value plus protobuf framing.
const MAX_RECORD_BYTES: u64 = (MAX_KEY_BYTES + MAX_VALUE_BYTES + 64 * 1024) as u64;

/// Writes `table` (named `name`) as a backup stream into `w`; returns `w`.
pub fn write_backup<W: Write>(name: &str, table: &Table, w: W) -> Result<W> {
    let mut out = snap::write::FrameEncoder::new(w);
    let mut buf = Vec::new();
    for record in table.iter() {
        let command = WireCommand {
            table: Bytes::copy_from_slice(name.as_bytes()),
            r#type: CommandType::Put as i32,
            kv: Some(KeyValue {
                key: Bytes::copy_from_slice(record.key()),
                value: record.value_bytes(),
                // Our extension (Regatta's readers skip it): keys with a TTL keep it.
                expires_at_millis: i64::try_from(record.expires_at()).unwrap_or(i64::MAX),
                ..Default::default()
            }),
            ..Default::default()
        };
        buf.clear();
        command
            .encode(&mut buf)
            .map_err(|e| Error::Io(io::Error::other(e)))?;
        out.write_all(&(buf.len() as u64).to_le_bytes())?;
        out.write_all(&buf)?;
    }
    out.into_inner()
        .map_err(|e| Error::Io(io::Error::other(e.to_string())))
}

/// Reads the pairs of a backup stream, in stream order.
#[derive(Debug)]
pub struct BackupReader<R: Read> {
    input: snap::read::FrameDecoder<R>,
    done: bool,
}

impl<R: Read> BackupReader<R> {
    pub fn new(r: R) -> Self {
        Self {
            input: snap::read::FrameDecoder::new(r),
            done: false,
        }
    }

    fn next_pair(&mut self) -> Result<Option<Pair>> {
        let mut len = [0u8; 8];
        let mut got = 0;
        while got < len.len() {
            match self.input.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(Error::corrupted(WHAT, "truncated record length")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::corrupted(WHAT, format!("broken frame: {e}"))),
            }
        }
        let len = u64::from_le_bytes(len);
        if len > MAX_RECORD_BYTES {
            return Err(Error::corrupted(WHAT, format!("record of {len} bytes")));
        }
        let mut record = vec![0u8; len as usize];
        self.input
            .read_exact(&mut record)
            .map_err(|e| Error::corrupted(WHAT, format!("truncated record: {e}")))?;
        let command = WireCommand::decode(record.as_slice())
            .map_err(|e| Error::corrupted(WHAT, format!("undecodable command: {e}")))?;
        if command.r#type != CommandType::Put as i32 {
            return Err(Error::corrupted(
                WHAT,
                format!("command type {} is not PUT", command.r#type),
            ));
        }
        let kv = command
            .kv
            .ok_or_else(|| Error::corrupted(WHAT, "PUT without a key/value"))?;
        check_key(&kv.key).map_err(|e| Error::corrupted(WHAT, e.to_string()))?;
        Ok(Some(Pair {
            key: kv.key,
            value: kv.value,
            expires_at: u64::try_from(kv.expires_at_millis).unwrap_or(0),
        }))
    }
}

impl<R: Read> Iterator for BackupReader<R> {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_pair().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Reads a whole backup stream into restore commands for table `into`, each at most about
/// `max_event_bytes` (the first clears the table). Nothing is returned unless the whole
/// stream is valid.
pub fn restore_from_stream(
    r: impl Read,
    into: &str,
    max_event_bytes: usize,
) -> Result<Vec<Command>> {
    let pairs = BackupReader::new(r).collect::<Result<Vec<_>>>()?;
    Ok(restore_events(into, pairs, max_event_bytes))
}

/// The name of a backup directory's manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

/// `manifest.json` of a backup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub started: String,
    pub finished: String,
    pub tables: Vec<ManifestTable>,
}

impl Manifest {
    /// The manifest as written to `manifest.json` (indented JSON).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::Io(io::Error::other(e)))
    }

    /// Parses `manifest.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupted(WHAT, format!("{MANIFEST_FILE}: {e}")))
    }
}

/// One table of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTable {
    pub name: String,
    pub file_name: String,
    pub md5: String,
}

impl ManifestTable {
    /// Refuses a file name that would leave the directory or hide in it.
    fn checked_file_name(&self) -> Result<&str> {
        if self.file_name.contains(['/', '\\']) || self.file_name.starts_with('.') {
            return Err(Error::corrupted(
                WHAT,
                format!("file name {:?} leaves the directory", self.file_name),
            ));
        }
        Ok(&self.file_name)
    }

    /// Checks `bytes` (the whole file) against the manifest's MD5.
    fn check_md5(&self, bytes: &[u8]) -> Result<()> {
        let md5 = hex::encode(Md5::digest(bytes));
        if !md5.eq_ignore_ascii_case(&self.md5) {
            return Err(Error::corrupted(
                WHAT,
                format!(
                    "{}: md5 {md5}, manifest says {}; the backup is damaged",
                    self.file_name, self.md5
                ),
            ));
        }
        Ok(())
    }
}

/// A writer that hashes what passes through.
struct Md5Writer<W> {
    inner: W,
    hash: Md5,
}

impl<W: Write> Write for Md5Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The longest encoded name [`backup_file_name`] keeps reversible: with `.bak`, and the
/// `.` + `.tmp` of the temporary file, it fits the 255 bytes file systems allow in a name.
const MAX_ENCODED_NAME_BYTES: usize = 246;

/// The file name of table `name`'s stream in a backup directory: `<name>.bak` when `name`
/// is made of ASCII letters, digits, `-`, `_` and `.` and does not start with `.` (any
/// name Regatta's own backups hold as is); otherwise every other byte of the name (and a
/// leading `.`) is written `%XX`, so `a/b` is `a%2Fb.bak` and `..` is `%2E..bak`. Such a
/// file name never leaves the directory, hides itself, or collides with another table's,
/// and [`table_name_of_file`] reverses it. An encoding longer than a file name may be is
/// cut and ends in `~` and a hash of the whole name instead (the manifest holds the name).
pub fn backup_file_name(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    if encoded.len() > MAX_ENCODED_NAME_BYTES {
        let digest = hex::encode(Md5::digest(name.as_bytes()));
        let mut cut = MAX_ENCODED_NAME_BYTES - 1 - digest.len();
        // Do not cut a `%XX` in half.
        while encoded.as_bytes()[cut - 2..cut].contains(&b'%') {
            cut -= 1;
        }
        encoded.truncate(cut);
        encoded.push('~');
        encoded.push_str(&digest);
    }
    encoded.push_str(".bak");
    encoded
}

/// The table name [`backup_file_name`] encoded into `file_name`, or `None` when
/// `file_name` is not such an encoding (or is a cut one, ending in a hash).
pub fn table_name_of_file(file_name: &str) -> Option<String> {
    let encoded = file_name.strip_suffix(".bak")?;
    if encoded.contains('~') {
        return None;
    }
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (backup_file_name(&name) == file_name).then_some(name)
}

fn write_then_rename(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut fs::File) -> Result<()>,
) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    write(&mut file)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Whether `dir` holds a backup already (its manifest).
pub fn holds_backup(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).exists()
}

/// A backup directory being written: one `<table>.bak` after another, then the manifest.
#[derive(Debug)]
pub struct BackupDir {
    dir: PathBuf,
    started: String,
    tables: Vec<ManifestTable>,
}

impl BackupDir {
    /// Starts a backup into `dir` (created if missing); `started` is the caller's
    /// timestamp (RFC 3339, as Regatta writes it).
    pub fn create(dir: &Path, started: impl Into<String>) -> Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            started: started.into(),
            tables: Vec::new(),
        })
    }

    /// Writes table `name`'s file with what `write` puts into the writer it is given
    /// (a backup stream), and records it for the manifest.
    pub fn write_table(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<&ManifestTable> {
        let file_name = backup_file_name(name);
        let mut md5 = String::new();
        write_then_rename(&self.dir, &file_name, |file| {
            let mut hashed = Md5Writer {
                inner: BufWriter::new(file),
                hash: Md5::new(),
            };
            write(&mut hashed)?;
            hashed.flush()?;
            md5 = hex::encode(hashed.hash.finalize());
            Ok(())
        })?;
        self.tables.push(ManifestTable {
            name: name.into(),
            file_name,
            md5,
        });
        Ok(&self.tables[self.tables.len() - 1])
    }

    /// Writes table `name`'s file holding `stream`, a backup stream as a node sends it.
    pub fn write_stream(&mut self, name: &str, stream: &[u8]) -> Result<&ManifestTable> {
        self.write_table(name, |w| Ok(w.write_all(stream)?))
    }

    /// Writes the manifest, last; `finished` is the caller's timestamp.
    pub fn finish(self, finished: impl Into<String>) -> Result<Manifest> {
        let manifest = Manifest {
            started: self.started,
            finished: finished.into(),
            tables: self.tables,
        };
        let json = manifest.to_json()?;
        write_then_rename(&self.dir, MANIFEST_FILE, |file| Ok(file.write_all(&json)?))?;
        Ok(manifest)
    }
}

/// Writes a backup directory of `tables` from one consistent `view`: one `<table>.bak` per
/// table, then `manifest.json` (last, so a directory without a manifest is incomplete).
/// `started` and `finished` are the caller's timestamps (RFC 3339 as Regatta writes them).
pub fn write_backup_dir(
    dir: &Path,
    view: &State,
    tables: &[&str],
    started: &str,
    finished: impl FnOnce() -> String,
) -> Result<Manifest> {
    let mut backup = BackupDir::create(dir, started)?;
    for name in tables {
        let table = view.table(name).ok_or_else(|| Error::TableNotFound {
            table: (*name).into(),
        })?;
        backup.write_table(name, |w| write_backup(name, table, w).map(drop))?;
    }
    backup.finish(finished())
}

/// Reads and parses `manifest.json` of a backup directory.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    Manifest::from_json(&fs::read(dir.join(MANIFEST_FILE))?)
}

/// Reads one table's backup file whole (its backup stream), verified against the
/// manifest's MD5.
pub fn read_table_file(dir: &Path, entry: &ManifestTable) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    BufReader::new(fs::File::open(dir.join(entry.checked_file_name()?))?)
        .read_to_end(&mut bytes)?;
    entry.check_md5(&bytes)?;
    Ok(bytes)
}

/// Reads one table's backup file, verifying its MD5 against the manifest before decoding.
pub fn read_table_backup(dir: &Path, entry: &ManifestTable) -> Result<Vec<Pair>> {
    BackupReader::new(read_table_file(dir, entry)?.as_slice()).collect()
}

#[cfg(test)]
mod file_name_tests {
    use super::*;

    #[test]
    fn plain_names_keep_regattas_file_names() {
        assert_eq!(backup_file_name("regatta-test"), "regatta-test.bak");
        assert_eq!(backup_file_name("a.b_c-1"), "a.b_c-1.bak");
    }

    #[test]
    fn other_names_become_safe_and_reversible() {
        for name in [
            "a/b",
            "../x",
            ".",
            "..",
            ".hidden",
            "a\\b",
            "a\0b",
            "100%",
            "a~b",
            "ümlaut 表",
            "manifest.json",
            &"é".repeat(40),
        ] {
            let file = backup_file_name(name);
            assert!(
                !file.contains(['/', '\\', '\0']) && !file.starts_with('.'),
                "{name:?} -> {file:?}"
            );
            assert!(file.len() <= 250, "{name:?} -> {} bytes", file.len());
            assert_eq!(table_name_of_file(&file).as_deref(), Some(name), "{file:?}");
        }
        assert_eq!(backup_file_name("a/b"), "a%2Fb.bak");
        assert_eq!(backup_file_name(".."), "%2E..bak");
        assert_ne!(backup_file_name("a/b"), backup_file_name("a%2Fb"));
    }

    #[test]
    fn names_too_long_to_encode_are_cut_and_hashed() {
        let long = "/".repeat(255);
        let other = format!("{}x", "/".repeat(254));
        let file = backup_file_name(&long);
        assert!(file.len() <= 250, "{} bytes", file.len());
        assert!(file.contains('~'));
        assert_ne!(file, backup_file_name(&other));
        assert_eq!(table_name_of_file(&file), None);
        for n in 80..90 {
            let file = backup_file_name(&format!("{}{}", "a".repeat(n), "/".repeat(200)));
            assert!(file.len() <= 250);
            // No `%XX` is cut in half before the `~`.
            let (kept, _) = file.split_once('~').expect("a cut name");
            assert!(!kept.ends_with('%') && !kept[..kept.len() - 1].ends_with('%'));
        }
    }

    #[test]
    fn file_names_that_are_no_encoding_are_refused() {
        assert_eq!(table_name_of_file("a.txt"), None);
        assert_eq!(table_name_of_file("%2.bak"), None);
        assert_eq!(table_name_of_file("%zz.bak"), None);
        assert_eq!(table_name_of_file("a/b.bak"), None);
        assert_eq!(table_name_of_file("%61.bak"), None);
    }
}
