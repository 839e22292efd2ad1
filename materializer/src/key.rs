//! [`Key`]: a key stored inline when short.
//!
//! Keys of up to [`INLINE_KEY_BYTES`] bytes (the common case) are held inside whatever
//! holds them: the tree's separators and leaf prefixes, the put runs apply sorts, so those
//! read no pointer per comparison; longer keys (up to 1 KiB) are shared `Bytes`. Ordering
//! is bytewise, and a `Key` borrows as `[u8]`. (The stored keys themselves live in their
//! records, [`crate::table::Record`].)

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;

/// Longest key stored inline (the key is then 40 bytes, the size of `Bytes` plus a tag).
pub const INLINE_KEY_BYTES: usize = 38;

/// A key of a table.
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Bytes),
}

impl Key {
    /// A key holding a copy of `key`.
    pub fn from_slice(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            // Fits: INLINE_KEY_BYTES < 256.
            Self(Repr::Inline {
                len: key.len() as u8,
                bytes,
            })
        } else {
            Self(Repr::Heap(Bytes::copy_from_slice(key)))
        }
    }

    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// The key as `Bytes` for a response (a copy when inline, shared otherwise).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Heap(b) => b.clone(),
        }
    }
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Self {
        Self::from_slice(key)
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Key {
    /// The first 8 bytes, zero-padded, as a big-endian number: equal prefixes compare like
    /// the keys' first 8 bytes, so most comparisons in a lookup need no byte loop.
    fn prefix(&self) -> u64 {
        let mut b = [0u8; 8];
        match &self.0 {
            Repr::Inline { bytes, .. } => b.copy_from_slice(&bytes[..8]),
            Repr::Heap(h) => {
                let n = h.len().min(8);
                b[..n].copy_from_slice(&h[..n]);
            }
        }
        u64::from_be_bytes(b)
    }
}

impl crate::tree::Prefix for Key {
    fn word_at(&self, at: usize) -> u64 {
        match &self.0 {
            // Inline bytes past the key's end are zeros already: no length check.
            Repr::Inline { bytes, .. } if at + 8 <= INLINE_KEY_BYTES => word(bytes, at),
            _ => self.as_slice().word_at(at),
        }
    }
}

/// Big-endian word of the 8 inline bytes at `at` (`at + 8` at most [`INLINE_KEY_BYTES`]).
fn word(bytes: &[u8; INLINE_KEY_BYTES], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // Zero padding cannot invert an order: where the padded bytes differ, the shorter key
        // is either smaller at that byte or a prefix of the longer one; where they agree up to
        // the longer key's end, the shorter key (a prefix) comes first. So two inline keys
        // compare as padded big-endian words, then by length: no byte loop, no `memcmp`.
        if let (Repr::Inline { len: la, bytes: a }, Repr::Inline { len: lb, bytes: b }) =
            (&self.0, &other.0)
        {
            let longest = usize::from(*la.max(lb));
            let mut at = 0;
            while at < longest && at < 32 {
                match word(a, at).cmp(&word(b, at)) {
                    Ordering::Equal => at += 8,
                    unequal => return unequal,
                }
            }
            if longest > 32 {
                match a[32..].cmp(&b[32..]) {
                    Ordering::Equal => {}
                    unequal => return unequal,
                }
            }
            return la.cmp(lb);
        }
        match self.prefix().cmp(&other.prefix()) {
            Ordering::Equal => self.as_slice().cmp(other.as_slice()),
            unequal => unequal,
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_order_is_byte_order(
            a in proptest::collection::vec(0u8..3, 0..50),
            b in proptest::collection::vec(0u8..3, 0..50),
        ) {
            let (ka, kb) = (Key::from_slice(&a), Key::from_slice(&b));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
        }
    }

    #[test]
    fn key_is_compact_and_orders_bytewise_across_representations() {
        assert_eq!(std::mem::size_of::<Key>(), 40);
        let short = Key::from_slice(b"abc");
        let long = Key::from_slice(&[b'a'; 100]);
        let exact = Key::from_slice(&[b'z'; INLINE_KEY_BYTES]);
        assert!(long < short, "aaaa… < abc");
        assert!(short < exact);
        assert_eq!(long.as_slice().len(), 100);
        assert_eq!(exact.to_bytes().len(), INLINE_KEY_BYTES);
        assert_eq!(Key::from_slice(b"abc"), short);
        // Zero bytes and padding: "a" < "a\0" < "a\0\0…" < "a\x01".
        let keys: Vec<&[u8]> = vec![
            b"a",
            b"a\0",
            b"a\0\0\0\0\0\0\0\0",
            b"a\x01",
            b"\0",
            b"b",
            &[b'a'; 60],
        ];
        for x in &keys {
            for y in &keys {
                assert_eq!(
                    Key::from_slice(x).cmp(&Key::from_slice(y)),
                    x.cmp(y),
                    "{x:?} vs {y:?}"
                );
            }
        }
    }
}
