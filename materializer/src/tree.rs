//! [`Tree`]: a persistent (copy-on-write) B+tree, the ordered map inside every table.
//!
//! ```text
//!   Tree { root, len }              clone = one reference count on the root
//!     Inner: keys[i] separates children[i] (keys < keys[i]) from children[i+1] (keys ≥)
//!       Inner … (every leaf at the same depth)
//!         Leaf: prefix, (word, entry)[..n], keys strictly increasing      n ≤ LEAF_CAP
//! ```
//!
//! The tree stores [`Entry`]s, values that carry their own key (a table's record holds its
//! key beside its value): a leaf keeps no key of its own, only 8 bytes of each key.
//!
//! Every node sits behind an `Arc` and holds its keys and children in fixed-capacity inline
//! arrays (one allocation per node). A write walks down with `Arc::make_mut`: a node shared
//! with another clone (a published view) is copied, an unshared one is changed in place. So
//! after a publish the first write to a leaf copies the path to it, and later writes of the
//! same batch under that path mutate the copies; a reader holding an older clone keeps
//! seeing exactly the nodes it had.
//!
//! Invariants (checked by `check` in the tests): keys strictly increasing across the whole
//! tree; all leaves at one depth; no empty node except that an empty tree has no root; an
//! inner node's separators bound its children as drawn above; every key of a leaf starts
//! with the leaf's prefix, and its word is [`Prefix::word_at`] the prefix's length. Leaves
//! split in the middle when full and merge with a neighbour when a removal leaves them
//! under a quarter full and the two fit in one node. [`Builder`] makes full nodes from
//! sorted input (snapshot load).
//!
//! Lookups: an inner node keeps beside its separators the bytes they all share (up to 8)
//! and, per separator, the next 8 bytes as a `u64`; a leaf keeps a prefix its keys share
//! (up to [`INLINE_KEY_BYTES`]) and, per entry, the next 8 bytes of its key. A search runs
//! over those words and reads a whole key only where a word equals the query's: in a leaf
//! that is the entry a hit returns, which a read touches anyway. A search counts the words
//! below the query's (`lower_bound`): independent loads and compares, no branch. The
//! crate docs (`lib.rs`) have the measurements behind each of these choices and the
//! fan-outs.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::key::{INLINE_KEY_BYTES, Key};

/// Entries per leaf: 20 pairs of a search word and a thin record pointer (16 bytes each),
/// the 40-byte prefix and the length make a 384-byte leaf with its reference counts, one
/// of mimalloc's size classes. Smaller leaves mean less to copy per write after a publish
/// (crate docs).
pub const LEAF_CAP: usize = 20;
/// Children per inner node.
pub const INNER_CAP: usize = 32;

/// What a tree stores: a value that holds its key. An entry is cloned when a leaf shared
/// with another version is copied.
///
/// `warm` reads, plainly and without writing, whatever a clone or a drop of the entry
/// updates behind a pointer (a reference count). A leaf warms all its entries before
/// cloning or dropping them, so their cache misses overlap: an atomic update waits for the
/// one before it, and fifteen reference counts missed one after the other cost fifteen
/// memory round trips instead of about one. A range scan warms each leaf it moves on to
/// for the same reason: it then reads every entry in turn. The default warms nothing.
pub trait Entry: Clone {
    /// The key, bytewise ordered. It must not change while the entry is in a tree.
    fn key(&self) -> &[u8];

    fn warm(&self) -> usize {
        0
    }
}

struct Leaf<V: Entry> {
    /// Bytes every key of the leaf starts with: at most what they all share and at most
    /// [`INLINE_KEY_BYTES`], so it never allocates.
    prefix: Key,
    /// Each entry after its key's word: [`Prefix::word_at`] the prefix's length.
    pairs: ArrayVec<(u64, V), LEAF_CAP>,
}

#[derive(Clone)]
struct Inner<V: Entry> {
    /// The search array of `keys`.
    words: Words<INNER_CAP>,
    /// `keys[i]` is greater than every key under `children[i]` and at most every key under
    /// `children[i + 1]`; one fewer than the children (the last slot stays unused).
    keys: ArrayVec<Key, INNER_CAP>,
    children: Children<V>,
}

/// The children of an inner node: all leaves or all inner nodes (every leaf at one depth).
enum Children<V: Entry> {
    Leaves(ArrayVec<Arc<Leaf<V>>, INNER_CAP>),
    Inners(ArrayVec<Arc<Inner<V>>, INNER_CAP>),
}

#[derive(Clone)]
enum Root<V: Entry> {
    Empty,
    Leaf(Arc<Leaf<V>>),
    Inner(Arc<Inner<V>>),
}

/// A persistent ordered map of entries by their keys. Cloning is O(1); clones share nodes
/// until one of them writes.
#[derive(Clone)]
pub struct Tree<V: Entry> {
    root: Root<V>,
    len: usize,
}

impl<V: Entry> Default for Tree<V> {
    fn default() -> Self {
        Self {
            root: Root::Empty,
            len: 0,
        }
    }
}

impl<V: Entry + fmt::Debug> fmt::Debug for Tree<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<V: Entry> Clone for Leaf<V> {
    fn clone(&self) -> Self {
        // Warm every entry before cloning any (see `Entry`).
        std::hint::black_box(self.warm());
        Self {
            prefix: self.prefix.clone(),
            pairs: self.pairs.clone(),
        }
    }
}

impl<V: Entry> Drop for Leaf<V> {
    fn drop(&mut self) {
        // The entries drop after this: warm them first (see `Entry`).
        std::hint::black_box(self.warm());
    }
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<V: Entry> Leaf<V> {
    /// Reads what cloning or dropping the entries updates ([`Entry::warm`]), all at once.
    fn warm(&self) -> usize {
        self.pairs
            .iter()
            .fold(0usize, |acc, (_, v)| acc.wrapping_add(v.warm()))
    }

    fn new(prefix: Key) -> Self {
        Self {
            prefix,
            pairs: ArrayVec::new(),
        }
    }

    /// Search of `q` among the entries: `Ok` with its index, or `Err` with where it would
    /// go ([`lower_bound`] over the words). Reads an entry's key only where its word equals
    /// the query's.
    fn search(&self, q: &[u8]) -> Result<usize, usize> {
        let prefix = self.prefix.as_slice();
        let n = self.pairs.len();
        // A query shorter than the prefix and a prefix of it compares `Less`: it sorts
        // below every key, which all start with the prefix.
        match q[..q.len().min(prefix.len())].cmp(prefix) {
            Ordering::Less => return Err(0),
            Ordering::Greater => return Err(n),
            Ordering::Equal => {}
        }
        let qw = q.word_at(prefix.len());
        let pairs = &self.pairs[..];
        let mut low = lower_bound(n, |i| pairs[i].0 < qw);
        // The entries whose word equals the query's decide by their keys: usually one (the
        // entry a hit returns), a run where keys share more than the prefix and 8 bytes.
        let mut end = low;
        while end < n && self.pairs[end].0 == qw {
            end += 1;
        }
        while low < end {
            let mid = low + (end - low) / 2;
            match self.pairs[mid].1.key().cmp(q) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => end = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// Cuts the prefix to its first `keep` bytes. The words move down by the bytes cut,
    /// which come from the prefix itself: no entry is read.
    fn shorten(&mut self, keep: usize) {
        let prefix = self.prefix.as_slice();
        if keep >= prefix.len() {
            return;
        }
        let cut = prefix.len() - keep;
        let head = prefix.word_at(keep);
        for (w, _) in &mut self.pairs {
            *w = if cut >= 8 {
                head
            } else {
                head | (*w >> (8 * cut))
            };
        }
        self.prefix = Key::from_slice(&prefix[..keep]);
    }

    /// Lengthens the prefix to what the first and last keys (and so all keys) share, up to
    /// [`INLINE_KEY_BYTES`], and recomputes the words when it grew: after a split, so that
    /// each half's words tell its keys apart. Reads every entry's key then.
    fn refit(&mut self) {
        let (Some((_, first)), Some((_, last))) = (self.pairs.first(), self.pairs.last()) else {
            return;
        };
        let shared = common_prefix(first.key(), last.key()).min(INLINE_KEY_BYTES);
        if shared <= self.prefix.as_slice().len() {
            return;
        }
        self.prefix = Key::from_slice(&first.key()[..shared]);
        for (w, v) in &mut self.pairs {
            *w = v.key().word_at(shared);
        }
    }

    /// Inserts `value` (with key `key`) at `i`, its place in key order; the leaf has room.
    fn insert(&mut self, i: usize, key: &[u8], value: V) {
        // Usually the key starts with the prefix (one comparison); the byte-by-byte common
        // length only when it does not.
        if !key.starts_with(self.prefix.as_slice()) {
            self.shorten(common_prefix(self.prefix.as_slice(), key));
        }
        let word = key.word_at(self.prefix.as_slice().len());
        self.pairs.insert(i, (word, value));
    }
}

/// The number of leading indices of `0..n` for which `below` holds (it holds for a prefix
/// of them), counted over all `n`: a node holds at most 32 words, and comparing them all
/// is independent loads and compares (their misses overlap, nothing waits on a previous
/// comparison, no branch depends on the data), where a binary search is a chain of
/// dependent steps. Measured against the branchless binary search it replaces: hot reads
/// 210–220 against 240–250 ns (crate docs, sixth round).
fn lower_bound(n: usize, below: impl Fn(usize) -> bool) -> usize {
    (0..n).fold(0, |acc, i| acc + usize::from(below(i)))
}

/// Keys that can give 8 of their bytes as a number, for the compact search arrays of the
/// nodes. The bytes must be those the key's `Ord` compares, in bytewise order (as for
/// `[u8]` and [`crate::key::Key`]).
pub trait Prefix {
    /// Bytes `at..at + 8`, zero-padded past the end, as a big-endian number. Padding keeps
    /// order: `a ≤ b` implies `a.word_at(i) ≤ b.word_at(i)` whenever the zero-padded first
    /// `i` bytes of `a` and `b` are equal.
    fn word_at(&self, at: usize) -> u64;
}

impl Prefix for [u8] {
    fn word_at(&self, at: usize) -> u64 {
        // Eight bytes at hand: one load, no copy of a variable length (a `memcpy` call).
        if let Some(b) = self.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
            return u64::from_be_bytes(*b);
        }
        let mut b = [0u8; 8];
        for (to, from) in b.iter_mut().zip(self.get(at..).unwrap_or_default()) {
            *to = *from;
        }
        u64::from_be_bytes(b)
    }
}

/// The compact search array of an inner node: the bytes every separator shares (at most 8,
/// as the top of a big-endian word) and, per separator, [`Prefix::word_at`] after them. A
/// lookup searches these 8-byte words (eight to a cache line) and reads a separator itself
/// only when its word equals the query's, instead of probing 40-byte keys across the node.
#[derive(Clone)]
struct Words<const N: usize> {
    shared: u8,
    prefix: u64,
    words: [u64; N],
}

impl<const N: usize> Words<N> {
    /// The words of `keys` (sorted).
    fn index(keys: &[Key]) -> Self {
        let (first, last) = match (keys.first(), keys.last()) {
            (Some(f), Some(l)) => (f.word_at(0), l.word_at(0)),
            _ => (0, 0),
        };
        // The keys are sorted and padding keeps order: the padded bytes the first and the
        // last share, every key shares.
        let shared = ((first ^ last).leading_zeros() / 8) as usize;
        let mut words = [0; N];
        for (w, key) in words.iter_mut().zip(keys) {
            *w = key.word_at(shared);
        }
        Self {
            shared: shared as u8,
            prefix: if shared == 0 {
                0
            } else {
                first & (!0u64 << (64 - 8 * shared))
            },
            words,
        }
    }

    /// Search of `q` among `keys` (those this was indexed from): `Ok` with its index, or
    /// `Err` with where it would go ([`lower_bound`] over the words).
    fn search(&self, keys: &[Key], q: &[u8]) -> Result<usize, usize> {
        let n = keys.len();
        let shared = usize::from(self.shared);
        if shared > 0 {
            // Padding keeps order, so a query whose first bytes (padded) sort below or
            // above the shared ones sorts below or above every key.
            let head = q.word_at(0) & (!0u64 << (64 - 8 * shared));
            if head < self.prefix {
                return Err(0);
            }
            if head > self.prefix {
                return Err(n);
            }
        }
        let qw = q.word_at(shared);
        let words = &self.words[..n];
        let mut low = lower_bound(words.len(), |i| words[i] < qw);
        // Keys with the query's word decide by their full bytes.
        while low < n && words[low] == qw {
            match keys[low].as_slice().cmp(q) {
                Ordering::Less => low += 1,
                Ordering::Equal => return Ok(low),
                Ordering::Greater => break,
            }
        }
        Err(low)
    }
}

impl<V: Entry> Children<V> {
    /// Reads every child's reference count (plain loads), so that the misses of cloning or
    /// dropping the children overlap instead of queueing behind each atomic update.
    fn warm(&self) -> usize {
        match self {
            Self::Leaves(c) => c
                .iter()
                .fold(0, |acc, l| acc.wrapping_add(Arc::strong_count(l))),
            Self::Inners(c) => c
                .iter()
                .fold(0, |acc, n| acc.wrapping_add(Arc::strong_count(n))),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Leaves(c) => c.len(),
            Self::Inners(c) => c.len(),
        }
    }
}

impl<V: Entry> Clone for Children<V> {
    fn clone(&self) -> Self {
        // Warm every child's reference count before cloning any (see `Entry`).
        std::hint::black_box(self.warm());
        match self {
            Self::Leaves(c) => Self::Leaves(c.clone()),
            Self::Inners(c) => Self::Inners(c.clone()),
        }
    }
}

impl<V: Entry> Drop for Inner<V> {
    fn drop(&mut self) {
        // The children drop after this: warm their reference counts first (see `Entry`).
        std::hint::black_box(self.children.warm());
    }
}

impl<V: Entry> Inner<V> {
    fn new(keys: ArrayVec<Key, INNER_CAP>, children: Children<V>) -> Self {
        Self {
            words: Words::index(&keys),
            keys,
            children,
        }
    }

    /// Recomputes the words after the separators changed.
    fn reindex(&mut self) {
        self.words = Words::index(&self.keys);
    }

    /// Index of the child that may hold `q`: the number of separators at most `q`.
    fn child_index(&self, q: &[u8]) -> usize {
        match self.words.search(&self.keys, q) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// What a node needs for removal: its size, its capacity and merging with its right
/// neighbour.
trait Node: Clone {
    const CAP: usize;
    fn size(&self) -> usize;
    /// Appends `right` (every key of which is above this node's), `sep` being the separator
    /// between the two in their parent.
    fn merge(&mut self, sep: Key, right: Self);
}

impl<V: Entry> Node for Leaf<V> {
    const CAP: usize = LEAF_CAP;
    fn size(&self) -> usize {
        self.pairs.len()
    }
    fn merge(&mut self, _sep: Key, mut right: Self) {
        // The merged leaf's prefix is what both prefixes share.
        let keep = common_prefix(self.prefix.as_slice(), right.prefix.as_slice());
        self.shorten(keep);
        right.shorten(keep);
        self.pairs.extend(right.pairs.drain(..));
    }
}

impl<V: Entry> Node for Inner<V> {
    const CAP: usize = INNER_CAP;
    fn size(&self) -> usize {
        self.children.len()
    }
    fn merge(&mut self, sep: Key, mut right: Self) {
        self.keys.push(sep);
        self.keys.extend(right.keys.drain(..));
        match (&mut self.children, &mut right.children) {
            (Children::Leaves(l), Children::Leaves(r)) => l.extend(r.drain(..)),
            (Children::Inners(l), Children::Inners(r)) => l.extend(r.drain(..)),
            // Siblings are at the same depth, so their children are of the same kind.
            _ => unreachable!("siblings of different depths"),
        }
        self.reindex();
    }
}

/// The node `a` as an owned value: moved out when unshared, else copied.
fn unshare<T: Clone>(a: Arc<T>) -> T {
    Arc::try_unwrap(a).unwrap_or_else(|shared| (*shared).clone())
}

/// The right half of a split inner node (separators, children) and the separator that
/// goes up to the parent.
type SplitOff<T> = (Key, ArrayVec<Key, INNER_CAP>, ArrayVec<Arc<T>, INNER_CAP>);

/// Inserts child `child` after `children[i]` with separator `sep`. When the node is full it
/// splits in the middle first and returns the right half.
fn insert_child<T>(
    keys: &mut ArrayVec<Key, INNER_CAP>,
    children: &mut ArrayVec<Arc<T>, INNER_CAP>,
    i: usize,
    sep: Key,
    child: Arc<T>,
) -> Option<SplitOff<T>> {
    if !children.is_full() {
        keys.insert(i, sep);
        children.insert(i + 1, child);
        return None;
    }
    let mid = INNER_CAP / 2;
    let mut right_children: ArrayVec<Arc<T>, INNER_CAP> = children.drain(mid..).collect();
    let mut right_keys: ArrayVec<Key, INNER_CAP> = keys.drain(mid..).collect();
    // keys[mid - 1] separated children[mid - 1] and children[mid]: it goes up. A full node
    // has INNER_CAP - 1 separators, so there is one.
    let up = keys
        .pop()
        .unwrap_or_else(|| unreachable!("a full inner node without separators"));
    if i < mid {
        keys.insert(i, sep);
        children.insert(i + 1, child);
    } else {
        right_keys.insert(i - mid, sep);
        right_children.insert(i - mid + 1, child);
    }
    Some((up, right_keys, right_children))
}

/// After a removal under `children[i]`: drops it when empty, merges it with a neighbour
/// when under a quarter full and the two fit in one node.
fn rebalance<T: Node>(
    keys: &mut ArrayVec<Key, INNER_CAP>,
    children: &mut ArrayVec<Arc<T>, INNER_CAP>,
    i: usize,
) -> bool {
    let size = children[i].size();
    if size == 0 {
        children.remove(i);
        if !keys.is_empty() {
            keys.remove(i.saturating_sub(1));
        }
        return true;
    }
    if size >= T::CAP / 4 || children.len() < 2 {
        return false;
    }
    let l = if i + 1 < children.len() { i } else { i - 1 };
    if children[l].size() + children[l + 1].size() > T::CAP {
        return false;
    }
    let sep = keys.remove(l);
    let right = unshare(children.remove(l + 1));
    Arc::make_mut(&mut children[l]).merge(sep, right);
    true
}

type LeafSplit<V> = Option<(Key, Arc<Leaf<V>>)>;
type InnerSplit<V> = Option<(Key, Arc<Inner<V>>)>;

fn leaf_upsert<V: Entry>(
    leaf: &mut Leaf<V>,
    key: &[u8],
    f: impl FnOnce(Option<&V>) -> V,
) -> (Option<V>, LeafSplit<V>) {
    match leaf.search(key) {
        Ok(i) => {
            let slot = &mut leaf.pairs[i].1;
            let next = f(Some(slot));
            debug_assert!(next.key() == key, "Tree::upsert: the entry's key changed");
            (Some(std::mem::replace(slot, next)), None)
        }
        Err(i) => {
            let value = f(None);
            debug_assert!(value.key() == key, "Tree::upsert: an entry of another key");
            if !leaf.pairs.is_full() {
                leaf.insert(i, key, value);
                return (None, None);
            }
            let mid = LEAF_CAP.div_ceil(2);
            let mut right = Leaf::new(leaf.prefix.clone());
            right.pairs.extend(leaf.pairs.drain(mid..));
            if i <= mid {
                leaf.insert(i, key, value);
            } else {
                right.insert(i - mid, key, value);
            }
            leaf.refit();
            right.refit();
            let sep = Key::from_slice(right.pairs[0].1.key());
            (None, Some((sep, Arc::new(right))))
        }
    }
}

fn inner_upsert<V: Entry>(
    node: &mut Inner<V>,
    key: &[u8],
    f: impl FnOnce(Option<&V>) -> V,
) -> (Option<V>, InnerSplit<V>) {
    let i = node.child_index(key);
    let keys = &mut node.keys;
    let (prev, up) = match &mut node.children {
        Children::Leaves(c) => {
            let (prev, split) = leaf_upsert(Arc::make_mut(&mut c[i]), key, f);
            let Some((sep, child)) = split else {
                return (prev, None);
            };
            let up = insert_child(keys, c, i, sep, child).map(|(up, keys, children)| {
                let right = Inner::new(keys, Children::Leaves(children));
                (up, Arc::new(right))
            });
            (prev, up)
        }
        Children::Inners(c) => {
            let (prev, split) = inner_upsert(Arc::make_mut(&mut c[i]), key, f);
            let Some((sep, child)) = split else {
                return (prev, None);
            };
            let up = insert_child(keys, c, i, sep, child).map(|(up, keys, children)| {
                let right = Inner::new(keys, Children::Inners(children));
                (up, Arc::new(right))
            });
            (prev, up)
        }
    };
    // A child split: this node gained a separator (and may have given half away).
    node.reindex();
    (prev, up)
}

fn leaf_remove<V: Entry>(leaf: &mut Leaf<V>, q: &[u8]) -> Option<V> {
    let i = leaf.search(q).ok()?;
    // The prefix stays: the keys left share it still.
    Some(leaf.pairs.remove(i).1)
}

fn inner_remove<V: Entry>(node: &mut Inner<V>, q: &[u8]) -> Option<V> {
    let i = node.child_index(q);
    let keys = &mut node.keys;
    let (removed, changed) = match &mut node.children {
        Children::Leaves(c) => {
            let removed = leaf_remove(Arc::make_mut(&mut c[i]), q)?;
            (removed, rebalance(keys, c, i))
        }
        Children::Inners(c) => {
            let removed = inner_remove(Arc::make_mut(&mut c[i]), q)?;
            (removed, rebalance(keys, c, i))
        }
    };
    if changed {
        node.reindex();
    }
    Some(removed)
}

impl<V: Entry> Tree<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many leaves and inner nodes the tree has (a walk over the inner nodes): with
    /// [`Tree::len`], how full the leaves are, for measurements of memory per key.
    pub fn node_counts(&self) -> (usize, usize) {
        fn walk<V: Entry>(node: &Inner<V>) -> (usize, usize) {
            match &node.children {
                Children::Leaves(c) => (c.len(), 1),
                Children::Inners(c) => c.iter().fold((0, 1), |(l, i), child| {
                    let (cl, ci) = walk(child);
                    (l + cl, i + ci)
                }),
            }
        }
        match &self.root {
            Root::Empty => (0, 0),
            Root::Leaf(_) => (1, 0),
            Root::Inner(node) => walk(node),
        }
    }

    /// The leaf that holds `q` if any entry does.
    fn leaf_for(&self, q: &[u8]) -> Option<&Leaf<V>> {
        let mut node = match &self.root {
            Root::Empty => return None,
            Root::Leaf(leaf) => return Some(leaf),
            Root::Inner(node) => node,
        };
        loop {
            let i = node.child_index(q);
            match &node.children {
                Children::Leaves(c) => return Some(&c[i]),
                Children::Inners(c) => node = &c[i],
            }
        }
    }

    /// The entry of key `q`.
    pub fn get(&self, q: &[u8]) -> Option<&V> {
        let leaf = self.leaf_for(q)?;
        Some(&leaf.pairs[leaf.search(q).ok()?].1)
    }

    /// Every entry in key order.
    pub fn iter(&self) -> Range<'_, V> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// The entries with keys between `lower` and `upper`, in key order. O(log n) to
    /// position, then O(1) amortised per entry.
    pub fn range<'a>(&'a self, (lower, upper): (Bound<&[u8]>, Bound<&'a [u8]>)) -> Range<'a, V> {
        let mut range = Range {
            stack: Vec::new(),
            leaf: None,
            pos: 0,
            upper,
        };
        // Where the lower bound falls among an inner node's separators (the child that may
        // hold it) and among a leaf's keys (the first entry in range).
        let child = |node: &Inner<V>| match lower {
            Bound::Unbounded => 0,
            Bound::Included(q) | Bound::Excluded(q) => node.child_index(q),
        };
        let first = |leaf: &Leaf<V>| match lower {
            Bound::Unbounded => 0,
            Bound::Included(q) => leaf.search(q).unwrap_or_else(|i| i),
            Bound::Excluded(q) => leaf.search(q).map_or_else(|i| i, |i| i + 1),
        };
        let mut node = match &self.root {
            Root::Empty => return range,
            Root::Leaf(leaf) => {
                range.leaf = Some(leaf);
                range.pos = first(leaf);
                return range;
            }
            Root::Inner(node) => node,
        };
        loop {
            let i = child(node);
            range.stack.push((&**node, i));
            match &node.children {
                Children::Leaves(c) => {
                    range.leaf = Some(&c[i]);
                    range.pos = first(&c[i]);
                    return range;
                }
                Children::Inners(c) => node = &c[i],
            }
        }
    }

    /// Inserts or updates the entry of `key` in one walk down the tree: `f` gets the
    /// current entry (if any) and returns the one to store, whose key must be `key`.
    /// Returns the entry replaced.
    pub fn upsert(&mut self, key: &[u8], f: impl FnOnce(Option<&V>) -> V) -> Option<V> {
        let prev = match &mut self.root {
            Root::Empty => {
                let value = f(None);
                debug_assert!(value.key() == key, "Tree::upsert: an entry of another key");
                let mut leaf = Leaf::new(Key::from_slice(&key[..key.len().min(INLINE_KEY_BYTES)]));
                leaf.insert(0, key, value);
                self.root = Root::Leaf(Arc::new(leaf));
                None
            }
            Root::Leaf(leaf) => {
                let (prev, split) = leaf_upsert(Arc::make_mut(leaf), key, f);
                if let Some((sep, right)) = split {
                    let pair = [Arc::clone(leaf), right].into_iter().collect();
                    self.root = root_above(sep, Children::Leaves(pair));
                }
                prev
            }
            Root::Inner(node) => {
                let (prev, split) = inner_upsert(Arc::make_mut(node), key, f);
                if let Some((sep, right)) = split {
                    let pair = [Arc::clone(node), right].into_iter().collect();
                    self.root = root_above(sep, Children::Inners(pair));
                }
                prev
            }
        };
        if prev.is_none() {
            self.len += 1;
        }
        prev
    }

    /// Inserts `entry`; returns the entry it replaced (of the same key).
    pub fn insert(&mut self, entry: V) -> Option<V> {
        // The key is borrowed from a clone: entries are cheap to clone (a reference count).
        let key_of = entry.clone();
        self.upsert(key_of.key(), |_| entry)
    }

    /// Removes the entry of `q` and returns it. Nothing is copied when `q` is absent.
    pub fn remove(&mut self, q: &[u8]) -> Option<V> {
        // A read-only walk first, so that removing an absent key copies no shared path.
        self.get(q)?;
        self.remove_present(q)
    }

    /// [`Tree::remove`] in one walk, for a key known to be present (one a scan just
    /// returned). Were it absent, nothing would be removed, but the path to where it would
    /// be might have been copied.
    pub fn remove_present(&mut self, q: &[u8]) -> Option<V> {
        let removed = match &mut self.root {
            Root::Empty => None,
            Root::Leaf(leaf) => leaf_remove(Arc::make_mut(leaf), q),
            Root::Inner(node) => inner_remove(Arc::make_mut(node), q),
        }?;
        self.len -= 1;
        // Shrink the root: an inner root with one child hands over to it.
        loop {
            self.root = match &self.root {
                Root::Leaf(leaf) if leaf.pairs.is_empty() => Root::Empty,
                Root::Inner(node) => match &node.children {
                    Children::Leaves(c) if c.len() <= 1 => {
                        c.first().map_or(Root::Empty, |l| Root::Leaf(Arc::clone(l)))
                    }
                    Children::Inners(c) if c.len() <= 1 => c
                        .first()
                        .map_or(Root::Empty, |n| Root::Inner(Arc::clone(n))),
                    _ => break,
                },
                _ => break,
            };
        }
        Some(removed)
    }

    /// A map of `entries`, which must be in strictly increasing key order.
    pub fn from_sorted(entries: impl IntoIterator<Item = V>) -> Self {
        let mut builder = Builder::new();
        for v in entries {
            builder.push(v);
        }
        builder.finish()
    }
}

/// The new root when the root split: one separator above the two halves.
fn root_above<V: Entry>(sep: Key, halves: Children<V>) -> Root<V> {
    Root::Inner(Arc::new(Inner::new([sep].into_iter().collect(), halves)))
}

/// Builds a [`Tree`] from entries in strictly increasing key order, with full nodes: every
/// leaf but the last two holds [`LEAF_CAP`] entries, and inner nodes are filled evenly.
/// O(n), no search.
pub struct Builder<V: Entry> {
    leaves: Vec<Arc<Leaf<V>>>,
    current: Leaf<V>,
    len: usize,
}

impl<V: Entry> Default for Builder<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Entry> Builder<V> {
    pub fn new() -> Self {
        Self {
            leaves: Vec::new(),
            current: Leaf::new(Key::from_slice(&[])),
            len: 0,
        }
    }

    /// Appends an entry; its key must be above every key pushed before.
    pub fn push(&mut self, entry: V) {
        debug_assert!(
            self.current
                .pairs
                .last()
                .or_else(|| self.leaves.last().and_then(|l| l.pairs.last()))
                .is_none_or(|(_, last)| last.key() < entry.key()),
            "Builder::push: keys not strictly increasing"
        );
        if self.current.pairs.is_full() {
            self.close();
        }
        // Words after an empty prefix until the leaf is closed and refitted.
        let word = entry.key().word_at(0);
        self.current.pairs.push((word, entry));
        self.len += 1;
    }

    /// Moves the current leaf, its prefix fitted, to the full ones.
    fn close(&mut self) {
        let mut full = std::mem::replace(&mut self.current, Leaf::new(Key::from_slice(&[])));
        full.refit();
        self.leaves.push(Arc::new(full));
    }

    /// The tree of every entry pushed.
    pub fn finish(mut self) -> Tree<V> {
        if self.len == 0 {
            return Tree::new();
        }
        // A short last leaf shares the entries of the full one before it.
        if self.current.pairs.len() < LEAF_CAP / 2
            && let Some(prev) = self.leaves.pop()
        {
            let mut prev = unshare(prev);
            // Words after an empty prefix in both, as in the current leaf, until refitted.
            prev.shorten(0);
            let total = prev.pairs.len() + self.current.pairs.len();
            let mut last = Leaf::new(Key::from_slice(&[]));
            last.pairs.extend(prev.pairs.drain(total / 2..));
            last.pairs.extend(self.current.pairs.drain(..));
            prev.refit();
            self.leaves.push(Arc::new(prev));
            self.current = last;
        }
        self.close();
        let len = self.len;
        if self.leaves.len() == 1 {
            let root = self.leaves.pop().map_or(Root::Empty, Root::Leaf);
            return Tree { root, len };
        }
        let level: Vec<(Key, Arc<Leaf<V>>)> = self
            .leaves
            .into_iter()
            .map(|l| (Key::from_slice(l.pairs[0].1.key()), l))
            .collect();
        let mut level = build_level(level, Children::Leaves);
        while level.len() > 1 {
            level = build_level(level, Children::Inners);
        }
        let root = level.pop().map_or(Root::Empty, |(_, n)| Root::Inner(n));
        Tree { root, len }
    }
}

/// One level of inner nodes over `items` (each with its first key), filled evenly.
fn build_level<V: Entry, T>(
    items: Vec<(Key, Arc<T>)>,
    wrap: impl Fn(ArrayVec<Arc<T>, INNER_CAP>) -> Children<V>,
) -> Vec<(Key, Arc<Inner<V>>)> {
    let nodes = items.len().div_ceil(INNER_CAP);
    let (base, extra) = (items.len() / nodes, items.len() % nodes);
    let mut items = items.into_iter();
    (0..nodes)
        .map(|n| {
            let take = base + usize::from(n < extra);
            let mut first = None;
            let mut keys = ArrayVec::new();
            let mut children = ArrayVec::new();
            for (key, child) in items.by_ref().take(take) {
                if first.is_none() {
                    first = Some(key);
                } else {
                    keys.push(key);
                }
                children.push(child);
            }
            // `take` ≥ 1: there are at least as many items as nodes.
            let first = first.unwrap_or_else(|| unreachable!("empty inner node"));
            let node = Inner::new(keys, wrap(children));
            (first, Arc::new(node))
        })
        .collect()
}

/// Iterator over the entries of a key range, in key order (see [`Tree::range`]).
pub struct Range<'a, V: Entry> {
    /// The inner nodes above the current leaf, each with the index of the child being
    /// walked.
    stack: Vec<(&'a Inner<V>, usize)>,
    /// `None` once the range is done.
    leaf: Option<&'a Leaf<V>>,
    pos: usize,
    upper: Bound<&'a [u8]>,
}

impl<'a, V: Entry> Range<'a, V> {
    /// Moves to the first leaf after the current one; `false` at the end of the tree.
    fn next_leaf(&mut self) -> bool {
        loop {
            let Some((node, i)) = self.stack.last_mut() else {
                return false;
            };
            if *i + 1 < node.children.len() {
                *i += 1;
                break;
            }
            self.stack.pop();
        }
        // Down the leftmost path of the new child.
        loop {
            let Some(&(node, i)) = self.stack.last() else {
                return false;
            };
            match &node.children {
                Children::Leaves(c) => {
                    let leaf: &Leaf<V> = &c[i];
                    // A scan that got here reads every entry of the leaf in turn: start
                    // loading them all now, so that their misses overlap instead of coming
                    // one by one. (Not the first leaf of a range: a short range, as a
                    // limit of 1, would pay for twenty records to read one.)
                    std::hint::black_box(leaf.warm());
                    self.leaf = Some(leaf);
                    self.pos = 0;
                    return true;
                }
                Children::Inners(c) => self.stack.push((&c[i], 0)),
            }
        }
    }
}

impl<'a, V: Entry> Iterator for Range<'a, V> {
    type Item = &'a V;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let leaf = self.leaf?;
            if let Some((_, entry)) = leaf.pairs.get(self.pos) {
                // The key is decoded only against a bound.
                let within = match self.upper {
                    Bound::Unbounded => true,
                    Bound::Included(u) => entry.key() <= u,
                    Bound::Excluded(u) => entry.key() < u,
                };
                if !within {
                    self.leaf = None;
                    return None;
                }
                self.pos += 1;
                return Some(entry);
            }
            if !self.next_leaf() {
                self.leaf = None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
