//! One log record and its on-disk frame.
//!
//! ```text
//! offset  size  field
//!      0     4  body length L (u32 LE), counting from `index` to the end of the payload
//!      4     4  CRC32C (Castagnoli) of the L body bytes (u32 LE)
//!      8     8  index  (u64 LE)
//!     16     8  term   (u64 LE)
//!     24     8  leader node id (u64 LE) — openraft's log id is (term, node id, index)
//!     32     1  kind: 1 = blank, 2 = normal, 3 = membership; anything else is an error
//!     33   L-25 payload bytes (opaque to this crate)
//! ```
//!
//! The codec is pure: it takes and returns bytes. Deciding whether a bad frame is a torn tail
//! (cut it) or corruption (refuse to start) is `recovery`'s business, helped by
//! [`FrameError::is_torn`].

use bytes::Bytes;

use crate::position::{EntryId, LogIndex, NodeId, Term};

/// Bytes before the body: length and checksum.
pub const FRAME_PREFIX: usize = 8;
/// Fixed part of the body: index, term, leader, kind.
pub const BODY_FIXED: usize = 25;
/// Largest body the format can express.
pub const MAX_BODY: usize = u32::MAX as usize;

/// What an entry is, as far as the log cares. The payload of a normal entry is the
/// application's (a protobuf event); of a membership entry, the cluster configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// No payload: written by a new leader to commit its term.
    Blank = 1,
    /// Application data.
    Normal = 2,
    /// A cluster membership change.
    Membership = 3,
}

impl RecordKind {
    pub fn from_byte(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Blank),
            2 => Some(RecordKind::Normal),
            3 => Some(RecordKind::Membership),
            _ => None,
        }
    }
}

/// One entry of the log. `payload` is zero-copy when read from a sealed segment (it borrows
/// the segment's memory map).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: EntryId,
    pub kind: RecordKind,
    pub payload: Bytes,
}

impl Record {
    pub fn new(id: EntryId, kind: RecordKind, payload: impl Into<Bytes>) -> Self {
        Self {
            id,
            kind,
            payload: payload.into(),
        }
    }

    pub fn index(&self) -> LogIndex {
        self.id.index
    }

    /// Size of this record's frame on disk.
    pub fn frame_len(&self) -> usize {
        frame_len(self.payload.len())
    }
}

/// Size of a frame carrying `payload_len` bytes.
pub const fn frame_len(payload_len: usize) -> usize {
    FRAME_PREFIX + BODY_FIXED + payload_len
}

/// Appends the frame of `record` to `buf`. The caller checks sizes against its limit first;
/// a body beyond [`MAX_BODY`] is a programming error caught by that check.
pub fn encode_into(record: &Record, buf: &mut Vec<u8>) {
    let body_len = BODY_FIXED + record.payload.len();
    debug_assert!(
        body_len <= MAX_BODY,
        "record size must be checked before encoding"
    );
    buf.reserve(FRAME_PREFIX + body_len);
    let start = buf.len();
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&record.id.index.0.to_le_bytes());
    buf.extend_from_slice(&record.id.term.0.to_le_bytes());
    buf.extend_from_slice(&record.id.leader.0.to_le_bytes());
    buf.push(record.kind as u8);
    buf.extend_from_slice(&record.payload);
    let crc = crc32c::crc32c(&buf[start + FRAME_PREFIX..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A frame decoded in place: the payload is the byte range `payload` of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub id: EntryId,
    pub kind: RecordKind,
    /// Byte range of the payload inside the buffer handed to [`decode`].
    pub payload: std::ops::Range<usize>,
    /// Bytes the whole frame occupies.
    pub len: usize,
}

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer ends inside the frame.
    Truncated { needed: usize, available: usize },
    /// The length field is too small to hold a body (zeroed or garbled bytes).
    BadLength { body_len: u32 },
    /// The checksum does not match the body.
    Checksum { stored: u32, computed: u32 },
    /// The checksum matches but the kind byte is unknown: written by a newer or broken writer.
    UnknownKind { kind: u8 },
}

impl FrameError {
    /// Whether this is what an interrupted write leaves behind at the end of the last segment.
    /// A frame with a good checksum and a bad field is not torn: it was written that way.
    pub fn is_torn(&self) -> bool {
        match self {
            FrameError::Truncated { .. }
            | FrameError::BadLength { .. }
            | FrameError::Checksum { .. } => true,
            FrameError::UnknownKind { .. } => false,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated { needed, available } => {
                write!(
                    f,
                    "frame truncated: needs {needed} bytes, {available} available"
                )
            }
            FrameError::BadLength { body_len } => write!(f, "bad frame length {body_len}"),
            FrameError::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            FrameError::UnknownKind { kind } => write!(f, "unknown record kind {kind}"),
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decodes the frame at the start of `buf`, verifying its checksum.
pub fn decode(buf: &[u8]) -> Result<Frame, FrameError> {
    if buf.len() < FRAME_PREFIX {
        return Err(FrameError::Truncated {
            needed: FRAME_PREFIX,
            available: buf.len(),
        });
    }
    let body_len = u32_at(buf, 0);
    if (body_len as usize) < BODY_FIXED {
        return Err(FrameError::BadLength { body_len });
    }
    let len = FRAME_PREFIX + body_len as usize;
    if buf.len() < len {
        return Err(FrameError::Truncated {
            needed: len,
            available: buf.len(),
        });
    }
    let stored = u32_at(buf, 4);
    let body = &buf[FRAME_PREFIX..len];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    let kind_byte = body[24];
    let kind =
        RecordKind::from_byte(kind_byte).ok_or(FrameError::UnknownKind { kind: kind_byte })?;
    let id = EntryId::new(
        LogIndex(u64_at(body, 0)),
        Term(u64_at(body, 8)),
        NodeId(u64_at(body, 16)),
    );
    Ok(Frame {
        id,
        kind,
        payload: FRAME_PREFIX + BODY_FIXED..len,
        len,
    })
}

/// Decodes the frame at the start of `buf` into a record whose payload shares `buf`'s memory.
pub fn decode_record(buf: &Bytes) -> Result<(Record, usize), FrameError> {
    let frame = decode(buf)?;
    let payload = buf.slice(frame.payload.clone());
    Ok((
        Record {
            id: frame.id,
            kind: frame.kind,
            payload,
        },
        frame.len,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use proptest::prelude::*;

    use super::*;

    fn kind() -> impl Strategy<Value = RecordKind> {
        prop_oneof![
            Just(RecordKind::Blank),
            Just(RecordKind::Normal),
            Just(RecordKind::Membership)
        ]
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            kind(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(i, t, n, k, p)| {
                Record::new(EntryId::new(LogIndex(i), Term(t), NodeId(n)), k, p)
            })
    }

    proptest! {
        #[test]
        fn round_trip(r in record()) {
            let mut buf = Vec::new();
            encode_into(&r, &mut buf);
            prop_assert_eq!(buf.len(), r.frame_len());
            let (back, len) = decode_record(&Bytes::from(buf)).unwrap();
            prop_assert_eq!(len, r.frame_len());
            prop_assert_eq!(back, r);
        }

        #[test]
        fn every_prefix_is_truncated(r in record()) {
            let mut buf = Vec::new();
            encode_into(&r, &mut buf);
            for cut in 0..buf.len() {
                let err = decode(&buf[..cut]).unwrap_err();
                prop_assert!(err.is_torn(), "cut {} gave {:?}", cut, err);
            }
        }

        #[test]
        fn every_bit_flip_is_detected(r in record()) {
            let mut buf = Vec::new();
            encode_into(&r, &mut buf);
            for bit in 0..buf.len() * 8 {
                let mut bad = buf.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                // A flip either fails to decode, or (flip in the length field making the frame
                // longer/shorter) fails; it never yields a different record.
                if let Ok(f) = decode(&bad) {
                    prop_assert!(false, "bit {} flipped and still decoded as {:?}", bit, f);
                }
            }
        }
    }

    #[test]
    fn unknown_kind_with_good_checksum_is_not_torn() {
        let r = Record::new(
            EntryId::new(LogIndex(1), Term(1), NodeId(1)),
            RecordKind::Blank,
            vec![],
        );
        let mut buf = Vec::new();
        encode_into(&r, &mut buf);
        buf[32] = 9;
        let crc = crc32c::crc32c(&buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let err = decode(&buf).unwrap_err();
        assert_eq!(err, FrameError::UnknownKind { kind: 9 });
        assert!(!err.is_torn());
    }
}
