//! The snapshot byte format.
//!
//! An object is one zstd frame (with zstd's own content checksum) around this stream, all
//! integers little-endian:
//!
//! ```text
//! magic    "RGTASNAP"                      8 bytes
//! version  u32 = 2 or 3
//! revision u64                              log index of the view
//! raft     u32 len, bytes                   RaftMeta::encode: regatta.raft.v1.AppliedState
//! tables   u32 count
//!   per table, in name order:
//!     'T'  u8
//!     name u32 len, UTF-8
//!     id   u64
//!     config u8 present, [u32 len, protobuf google.protobuf.Struct]
//!     records u64 count
//!       per record, in strictly increasing key order:
//!         key u32 len, bytes · value u32 len, bytes · create u64 · mod u64 · version u64
//!         [version 3: · expires u64, ms since the Unix epoch, 0 = never]
//! 'E'      u8                                end marker
//! crc32c   u32                               over every byte above, uncompressed
//! ```
//!
//! Version 1 differs only in `raft`: a little-endian layout ([`RaftMeta::decode_v1`]).
//! Version 3 adds each record's expiry (keys with a time to live). Version 3 is written
//! when a table holds a key with an expiry, version 2 otherwise (so a state without TTLs
//! stays readable by builds that predate them); all three are read.
//!
//! A reader rejects unknown magic or version, lengths over the limits, keys out of order,
//! a missing end marker or checksum, a checksum mismatch and trailing bytes: a truncated or
//! bit-flipped snapshot is an [`Error::Corrupted`], never a partial state.

use std::io::{self, Read, Write};

use imbl::OrdMap;
use prost::Message;

use crate::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::raft_meta::RaftMeta;
use crate::table::{Record, Table};
use crate::tree::{Builder, Tree};
use crate::{Error, Result, Revision, State, TableId};

/// First bytes of every snapshot stream.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"RGTASNAP";
/// The newest format version, written when a key has an expiry.
pub const SNAPSHOT_VERSION: u32 = 3;
/// The version written when no key has an expiry.
const SNAPSHOT_VERSION_NO_EXPIRY: u32 = 2;
/// The first version this build reads (up to [`SNAPSHOT_VERSION`]).
pub const SNAPSHOT_VERSION_MIN: u32 = 1;
/// zstd level: fast enough to write a million keys well under a second.
const ZSTD_LEVEL: i32 = 1;
const MAX_META_BYTES: usize = 1 << 20;
const MAX_NAME_BYTES: usize = 64 * 1024;
const MAX_CONFIG_BYTES: usize = 16 << 20;
const WHAT: &str = "snapshot";

/// Counts a CRC32C over everything written through it.
struct CrcWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_len(w: &mut impl Write, len: usize) -> Result<()> {
    let len = u32::try_from(len).map_err(|_| Error::invalid("field longer than 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    Ok(())
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> Result<()> {
    put_len(w, b.len())?;
    w.write_all(b)?;
    Ok(())
}

/// Writes `state` as a snapshot into `w` and returns `w`. Reads only the immutable view:
/// readers and apply carry on meanwhile.
pub fn write_snapshot<W: Write>(state: &State, w: W) -> Result<W> {
    let mut encoder = zstd::Encoder::new(w, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let mut out = CrcWriter {
        inner: io::BufWriter::with_capacity(256 * 1024, encoder),
        crc: 0,
    };
    let with_expiry = state.tables().any(|(_, t)| t.expiring_len() > 0);
    let version = if with_expiry {
        SNAPSHOT_VERSION
    } else {
        SNAPSHOT_VERSION_NO_EXPIRY
    };
    out.write_all(SNAPSHOT_MAGIC)?;
    out.write_all(&version.to_le_bytes())?;
    out.write_all(&state.revision().0.to_le_bytes())?;
    put_bytes(&mut out, &state.raft_meta().encode())?;
    put_len(&mut out, state.tables.len())?;
    for (name, table) in state.tables() {
        out.write_all(b"T")?;
        put_bytes(&mut out, name.as_bytes())?;
        out.write_all(&table.id().0.to_le_bytes())?;
        match table.config() {
            None => out.write_all(&[0])?,
            Some(c) => {
                out.write_all(&[1])?;
                put_bytes(&mut out, &c.encode_to_vec())?;
            }
        }
        out.write_all(&(table.len() as u64).to_le_bytes())?;
        for r in table.iter() {
            put_bytes(&mut out, r.key())?;
            put_bytes(&mut out, r.value())?;
            let revisions = r.revisions();
            let mut tail = [0u8; 32];
            tail[..8].copy_from_slice(&revisions.create.to_le_bytes());
            tail[8..16].copy_from_slice(&revisions.modified.to_le_bytes());
            tail[16..24].copy_from_slice(&revisions.version.to_le_bytes());
            tail[24..].copy_from_slice(&r.expires_at().to_le_bytes());
            out.write_all(if with_expiry { &tail } else { &tail[..24] })?;
        }
    }
    out.write_all(b"E")?;
    let crc = out.crc;
    let mut buffered = out.inner;
    buffered.write_all(&crc.to_le_bytes())?;
    let encoder = buffered.into_inner().map_err(|e| e.into_error())?;
    Ok(encoder.finish()?)
}

/// Encodes `state` into a buffer (Raft snapshot transfer).
pub fn encode(state: &State) -> Result<Vec<u8>> {
    write_snapshot(state, Vec::new())
}

/// The decompressed stream being read: fields are parsed straight out of one large buffer
/// (no allocation and no `read` call per field), and the CRC32C is folded in over whole
/// consumed spans of the buffer rather than field by field.
struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    /// Next unread byte of `buf`.
    pos: usize,
    /// End of the valid bytes of `buf`.
    end: usize,
    /// CRC32C of every byte consumed before `crc_pos`.
    crc: u32,
    crc_pos: usize,
}

const READ_BUFFER: usize = 256 * 1024;

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; READ_BUFFER],
            pos: 0,
            end: 0,
            crc: 0,
            crc_pos: 0,
        }
    }

    /// The next `n` bytes, consumed.
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.end - self.pos < n {
            self.refill(n)?;
        }
        let at = self.pos;
        self.pos += n;
        Ok(&self.buf[at..at + n])
    }

    /// Makes at least `n` unread bytes available, reading as much as the buffer holds.
    fn refill(&mut self, n: usize) -> Result<()> {
        self.fold_crc();
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        self.crc_pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(truncated(io::ErrorKind::UnexpectedEof.into())),
                Ok(got) => self.end += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(truncated(e)),
            }
        }
        Ok(())
    }

    fn fold_crc(&mut self) {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[self.crc_pos..self.pos]);
        self.crc_pos = self.pos;
    }

    /// CRC32C of every byte consumed so far.
    fn crc(&mut self) -> u32 {
        self.fold_crc();
        self.crc
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A length-prefixed field of at most `limit` bytes.
    fn bytes(&mut self, field: &str, limit: usize) -> Result<&[u8]> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(Error::corrupted(
                WHAT,
                format!("{field} length {len} over limit {limit}"),
            ));
        }
        self.take(len)
    }

    /// Whether the stream ends here.
    fn at_end(&mut self) -> Result<bool> {
        if self.pos < self.end {
            return Ok(false);
        }
        let mut rest = [0u8; 1];
        loop {
            match self.inner.read(&mut rest) {
                Ok(n) => return Ok(n == 0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(truncated(e)),
            }
        }
    }
}

fn truncated(e: io::Error) -> Error {
    Error::corrupted(WHAT, format!("truncated or undecodable stream: {e}"))
}

/// Tables with at least this many records are loaded by two threads.
const PARALLEL_MIN_RECORDS: u64 = 16 * 1024;
/// Records handed from the reading thread to the building thread at a time.
const CHUNK_RECORDS: usize = 8 * 1024;

/// Reads `count` records in strictly increasing key order, handing each to `emit`;
/// `with_expiry`: each has an expiry field (version 3).
fn read_records<R: Read>(
    input: &mut Input<R>,
    count: u64,
    with_expiry: bool,
    mut emit: impl FnMut(Record),
) -> Result<()> {
    let fixed = if with_expiry { 32 } else { 24 };
    // The previous key (none while empty: keys are never empty).
    let mut key = Vec::new();
    for _ in 0..count {
        let next = input.bytes("key", MAX_KEY_BYTES)?;
        if next.is_empty() || key.as_slice() >= next {
            return Err(Error::corrupted(WHAT, "keys empty or out of order"));
        }
        key.clear();
        key.extend_from_slice(next);
        let len = input.u32()? as usize;
        if len > MAX_VALUE_BYTES {
            return Err(Error::corrupted(
                WHAT,
                format!("value length {len} over limit {MAX_VALUE_BYTES}"),
            ));
        }
        // Value and revisions in one span, so the record is built from the buffer.
        let (value, revisions) = input.take(len + fixed)?.split_at(len);
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&revisions[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let expires_at = if with_expiry { field(3) } else { 0 };
        emit(Record::expiring(
            &key,
            value,
            [field(0), field(1), field(2)],
            expires_at,
        ));
    }
    Ok(())
}

/// The records of a large table, read in a pipeline: this thread decompresses, verifies and
/// parses while a second one builds the tree from the sorted records (full leaves, no
/// search). On an error the tree built so far is dropped.
fn read_table_parallel<R: Read>(
    input: &mut Input<R>,
    count: u64,
    with_expiry: bool,
) -> Result<Tree<Record>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(4);
    std::thread::scope(|scope| {
        let builder = scope.spawn(move || {
            let mut builder = Builder::new();
            for chunk in rx {
                for record in chunk {
                    builder.push(record);
                }
            }
            builder.finish()
        });
        let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
        let read = read_records(input, count, with_expiry, |record| {
            chunk.push(record);
            if chunk.len() == CHUNK_RECORDS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                // A send fails only if the builder panicked; `join` below reports that.
                let _ = tx.send(full);
            }
        });
        if read.is_ok() && !chunk.is_empty() {
            let _ = tx.send(chunk);
        }
        drop(tx);
        let data = builder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.map(|()| data)
    })
}

/// Reads and fully verifies a snapshot from `r`. The returned state is only built when the
/// whole stream, end marker and checksum included, is valid.
pub fn read_snapshot<R: Read>(r: R) -> Result<State> {
    let decoder = zstd::Decoder::new(r).map_err(truncated)?;
    let mut input = Input::new(decoder);
    if input.take(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
        return Err(Error::corrupted(WHAT, "bad magic: not a Regatta snapshot"));
    }
    let version = input.u32()?;
    if !(SNAPSHOT_VERSION_MIN..=SNAPSHOT_VERSION).contains(&version) {
        return Err(Error::corrupted(
            WHAT,
            format!("unknown format version {version}"),
        ));
    }
    let revision = Revision(input.u64()?);
    let raft = input.bytes("raft metadata", MAX_META_BYTES)?;
    let raft = if version == 1 {
        RaftMeta::decode_v1(raft)?
    } else {
        RaftMeta::decode(raft)?
    };
    let n_tables = input.u32()?;
    let mut tables = OrdMap::new();
    let mut last_name: Option<String> = None;
    for _ in 0..n_tables {
        if input.u8()? != b'T' {
            return Err(Error::corrupted(WHAT, "missing table marker"));
        }
        let name = String::from_utf8(input.bytes("table name", MAX_NAME_BYTES)?.to_vec())
            .map_err(|_| Error::corrupted(WHAT, "table name not UTF-8"))?;
        if last_name.as_ref().is_some_and(|l| *l >= name) {
            return Err(Error::corrupted(WHAT, "tables out of order"));
        }
        let id = TableId(input.u64()?);
        let config = match input.u8()? {
            0 => None,
            1 => Some(
                prost_types::Struct::decode(input.bytes("config", MAX_CONFIG_BYTES)?)
                    .map_err(|e| Error::corrupted(WHAT, format!("table config: {e}")))?,
            ),
            t => return Err(Error::corrupted(WHAT, format!("bad config tag {t}"))),
        };
        let count = input.u64()?;
        let with_expiry = version >= 3;
        let data = if count >= PARALLEL_MIN_RECORDS {
            read_table_parallel(&mut input, count, with_expiry)?
        } else {
            let mut builder = Builder::new();
            read_records(&mut input, count, with_expiry, |record| {
                builder.push(record);
            })?;
            builder.finish()
        };
        last_name = Some(name.clone());
        tables.insert(name, Table::with_data(id, config, data));
    }
    if input.u8()? != b'E' {
        return Err(Error::corrupted(WHAT, "missing end marker"));
    }
    let expected = input.crc();
    if input.u32()? != expected {
        return Err(Error::corrupted(WHAT, "checksum mismatch"));
    }
    if !input.at_end()? {
        return Err(Error::corrupted(WHAT, "trailing bytes after checksum"));
    }
    Ok(State {
        revision,
        tables,
        raft,
    })
}

/// Decodes a snapshot held in memory.
pub fn decode(bytes: &[u8]) -> Result<State> {
    read_snapshot(bytes)
}
