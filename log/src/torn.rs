//! Telling a torn tail from corruption, in the last segment. Pure: bytes in, verdict out.
//!
//! A crash mid-append leaves the last segment ending in a bad frame: a partial frame, zeros
//! where the file was extended but not written, or a frame whose checksum does not match
//! because only some of its pages reached the disk. None of it was acknowledged (an append
//! resolves only after an fsync covering it), so recovery cuts it. The same bad frame
//! *followed by a good one* is something else: bytes inside acknowledged data changed after
//! they were written (a flipped bit, a bad sector). Cutting there would silently drop every
//! acknowledged entry after the damage, so recovery refuses instead.
//!
//! ```text
//!  header │ good │ good │ bad ░░░░░░░░░░░░░░░░░░░ EOF     → Torn: cut at `bad`
//!  header │ good │ good │ bad ░░░ │ good │ good │  EOF     → Corrupt: refuse, name `bad`
//!                              ↑ found by a byte-by-byte search for a valid frame
//! ```
//!
//! Frames carry no alignment (they are back to back, any length), so the search tries every
//! byte after the bad frame's start. A position counts only if it holds a *whole* frame that
//! this log could have written there:
//!
//! * the length field is at least the fixed body and the frame ends inside the file;
//! * the index is one this position could hold: at least the bad frame's, and at most one per
//!   minimum-sized frame since (`expected + (at - bad) / MIN_FRAME`);
//! * the term is not below the last good frame's;
//! * the CRC32C of the body matches and the kind is known.
//!
//! The length and index checks cost a few loads and reject random bytes with odds of about
//! 2^-64 each, so the checksum is computed almost never on garbage and a false "corrupt"
//! needs a 2^-32 checksum collision on top of an in-range 64-bit index: the search is linear
//! in the bytes after the bad frame (a segment is bounded by the roll size plus one record).
//! Zero-filled tails (a preallocated or extended-but-unwritten file) fail the length check at
//! every position and are torn.
//!
//! What cannot be told apart: damage inside the *last* frame (nothing follows it) looks like a
//! torn write of that frame and is cut; the entry it held is lost on this node (its peers have
//! it). And a crash in the middle of a group commit whose pages reached the disk out of order
//! (a hole, then later frames of the same unacknowledged batch) looks like corruption: the node
//! refuses to start and the operator re-seeds it (docs/operations.md). Both err on the side of
//! never silently dropping an acknowledged entry that a later frame proves was written.

use crate::position::{LogIndex, Term};
use crate::record::{self, BODY_FIXED, FRAME_PREFIX};

/// The smallest frame: prefix and fixed body, empty payload.
pub const MIN_FRAME: usize = FRAME_PREFIX + BODY_FIXED;

/// What the bytes after a bad frame in the last segment say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailVerdict {
    /// No valid frame follows: an interrupted write. Cut the file at the bad frame.
    Torn,
    /// A valid frame follows: the bad frame is damaged acknowledged data. Refuse to open.
    Corrupt {
        /// Byte offset (in the segment) of the first valid frame after the bad one.
        next_frame: u64,
        /// Index that frame carries.
        index: LogIndex,
    },
}

/// Judges the bad frame at byte `bad` of the segment `bytes`, where a frame for index
/// `expected` should have started; `term_floor` is the term of the last good frame before it
/// (or of the previous segment's last entry). See the module docs for what counts as valid.
pub fn judge_tail(
    bytes: &[u8],
    bad: u64,
    expected: LogIndex,
    term_floor: Option<Term>,
) -> TailVerdict {
    let Ok(bad) = usize::try_from(bad) else {
        return TailVerdict::Torn;
    };
    if bad >= bytes.len() {
        return TailVerdict::Torn;
    }
    let last_start = bytes.len().saturating_sub(MIN_FRAME);
    let mut at = bad + 1;
    while at <= last_start {
        if let Some(index) = plausible_frame(&bytes[at..], at - bad, expected, term_floor) {
            return TailVerdict::Corrupt {
                next_frame: at as u64,
                index,
            };
        }
        at += 1;
    }
    TailVerdict::Torn
}

/// The index of the whole, valid frame at the start of `buf` if this log could have written
/// it `distance` bytes after the frame for `expected`; `None` otherwise. The cheap checks
/// (length, index, term) come before the checksum.
fn plausible_frame(
    buf: &[u8],
    distance: usize,
    expected: LogIndex,
    term_floor: Option<Term>,
) -> Option<LogIndex> {
    let body_len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    if body_len < BODY_FIXED || body_len > buf.len() - FRAME_PREFIX {
        return None;
    }
    let index = u64::from_le_bytes(buf.get(8..16)?.try_into().ok()?);
    let most = expected.0.saturating_add((distance / MIN_FRAME) as u64);
    if index < expected.0 || index > most {
        return None;
    }
    let term = u64::from_le_bytes(buf.get(16..24)?.try_into().ok()?);
    if term_floor.is_some_and(|floor| term < floor.0) {
        return None;
    }
    let frame = record::decode(buf).ok()?;
    Some(frame.id.index)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use proptest::prelude::*;

    use super::*;
    use crate::position::SegmentId;
    use crate::position::{EntryId, NodeId};
    use crate::record::{Record, RecordKind, encode_into};
    use crate::segment::{self, HEADER_LEN};

    const FIRST: u64 = 100;

    /// A segment image starting at index `FIRST` with one frame per payload size, and the
    /// offset of every frame.
    fn segment(payloads: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = segment::encode_header(SegmentId(LogIndex(FIRST))).to_vec();
        let mut offsets = Vec::new();
        for (i, &len) in payloads.iter().enumerate() {
            offsets.push(buf.len());
            let payload: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            let id = EntryId::new(LogIndex(FIRST + i as u64), Term(3), NodeId(1));
            encode_into(&Record::new(id, RecordKind::Normal, payload), &mut buf);
        }
        (buf, offsets)
    }

    /// What recovery does with `bytes`: scan, and judge the stop if it is torn-shaped.
    fn verdict(bytes: &[u8]) -> Option<(u64, TailVerdict)> {
        let scan = segment::scan(bytes, LogIndex(FIRST), None);
        let (at, stop) = scan.stop?;
        assert!(stop.is_torn(), "stop at {at} is not torn-shaped: {stop}");
        let expected = LogIndex(FIRST + scan.offsets.len() as u64);
        let floor = scan.last.map(|l| l.term);
        Some((at, judge_tail(bytes, at, expected, floor)))
    }

    #[test]
    fn a_tail_cut_at_every_offset_of_the_last_frame_is_torn() {
        let (bytes, offsets) = segment(&[10, 0, 40, 25]);
        let last = *offsets.last().unwrap();
        for cut in last + 1..bytes.len() {
            assert_eq!(
                verdict(&bytes[..cut]),
                Some((last as u64, TailVerdict::Torn)),
                "cut at {cut}"
            );
        }
        assert_eq!(verdict(&bytes), None);
    }

    #[test]
    fn zero_filled_and_garbage_tails_are_torn() {
        let (bytes, offsets) = segment(&[10, 20, 30]);
        // Preallocated / extended but never written.
        let mut zeros = bytes.clone();
        zeros.resize(bytes.len() + 8192, 0);
        assert_eq!(
            verdict(&zeros),
            Some((bytes.len() as u64, TailVerdict::Torn))
        );
        // The last frame half written, the rest of its page zeros.
        let last = offsets[2];
        let mut half = bytes[..last + 20].to_vec();
        half.resize(last + 4096, 0);
        assert_eq!(verdict(&half), Some((last as u64, TailVerdict::Torn)));
    }

    #[test]
    fn a_last_frame_whose_length_points_past_the_end_is_torn() {
        let (mut bytes, offsets) = segment(&[10, 20, 30]);
        let last = offsets[2];
        bytes[last..last + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(verdict(&bytes), Some((last as u64, TailVerdict::Torn)));
    }

    #[test]
    fn a_middle_frame_whose_length_points_past_the_end_is_corrupt() {
        let (mut bytes, offsets) = segment(&[10, 20, 30]);
        bytes[offsets[1]..offsets[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            verdict(&bytes),
            Some((
                offsets[1] as u64,
                TailVerdict::Corrupt {
                    next_frame: offsets[2] as u64,
                    index: LogIndex(FIRST + 2)
                }
            ))
        );
    }

    #[test]
    fn a_flipped_byte_in_any_frame_but_the_last_is_corrupt_at_that_frame() {
        let (bytes, offsets) = segment(&[0, 13, 64, 1, 7]);
        for k in 0..offsets.len() - 1 {
            for at in offsets[k]..offsets[k + 1] {
                let mut bad = bytes.clone();
                bad[at] ^= 0x5a;
                let (stop, v) = verdict(&bad).unwrap();
                assert_eq!(stop, offsets[k] as u64, "flip at {at}");
                assert!(
                    matches!(v, TailVerdict::Corrupt { next_frame, .. } if next_frame as usize > offsets[k]),
                    "flip at {at} in frame {k}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn a_frame_from_before_the_damage_does_not_count() {
        // A stale copy of an earlier frame after the bad point carries an index below the
        // bad frame's: not proof of acknowledged data after it.
        let (bytes, offsets) = segment(&[10, 20]);
        let mut img = bytes[..offsets[1] + 5].to_vec();
        img.extend_from_slice(&bytes[offsets[0]..offsets[1]]);
        assert_eq!(verdict(&img), Some((offsets[1] as u64, TailVerdict::Torn)));
    }

    #[test]
    fn nothing_after_the_end_is_torn() {
        assert_eq!(
            judge_tail(&[0; 10], 10, LogIndex(0), None),
            TailVerdict::Torn
        );
        assert_eq!(
            judge_tail(&[0; 10], u64::MAX, LogIndex(0), None),
            TailVerdict::Torn
        );
        assert_eq!(
            judge_tail(&[], HEADER_LEN as u64, LogIndex(0), None),
            TailVerdict::Torn
        );
    }

    fn payloads() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0usize..200, 2..8)
    }

    proptest! {
        #[test]
        fn torn_at_any_offset_of_the_last_frame_is_cut(
            sizes in payloads(),
            pick in any::<prop::sample::Index>(),
            zeros in 0usize..5000,
        ) {
            let (bytes, offsets) = segment(&sizes);
            let last = *offsets.last().unwrap();
            let cut = last + pick.index(bytes.len() - last);
            let mut img = bytes[..cut].to_vec();
            img.resize(cut + zeros, 0);
            if img.len() >= bytes.len() && img[..bytes.len()] == bytes[..] {
                // The zeros put back exactly the bytes that were cut (the frame ended in
                // zero bytes): the last frame is whole again, and only zeros past it are torn.
                let beyond = (img.len() > bytes.len())
                    .then_some((bytes.len() as u64, TailVerdict::Torn));
                prop_assert_eq!(verdict(&img), beyond);
            } else {
                prop_assert_eq!(verdict(&img), Some((last as u64, TailVerdict::Torn)));
            }
        }

        #[test]
        fn a_flip_before_the_last_frame_is_refused_with_its_offset(
            sizes in payloads(),
            pick in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let (bytes, offsets) = segment(&sizes);
            let last = *offsets.last().unwrap();
            let at = HEADER_LEN + pick.index(last - HEADER_LEN);
            let frame = offsets.iter().rposition(|&o| o <= at).unwrap();
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            let (stop, v) = verdict(&bad).unwrap();
            prop_assert_eq!(stop as usize, offsets[frame]);
            prop_assert!(
                matches!(v, TailVerdict::Corrupt { next_frame, .. } if next_frame as usize > offsets[frame]),
                "flip at {} of frame {}: {:?}", at, frame, v
            );
        }
    }
}
