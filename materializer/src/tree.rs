//! [`Tree`]: a persistent (copy-on-write) B+tree, the ordered map inside every table.
//!
//! ```text
//!   Tree { root, len }              clone = one reference count on the root
//!     Inner: keys[i] separates children[i] (keys < keys[i]) from children[i+1] (keys ≥)
//!       Inner … (every leaf at the same depth)
//!         Leaf: pairs[..n], keys strictly increasing          n ≤ LEAF_CAP
//! ```
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
//! inner node's separators bound its children as drawn above. Leaves split in the middle
//! when full and merge with a neighbour when a removal leaves them under a quarter full and
//! the two fit in one node. [`Builder`] makes full nodes from sorted input (snapshot load).
//!
//! Lookups: an inner node keeps beside its separators the bytes they all share (up to 8)
//! and, per separator, the next 8 bytes as a `u64`; the search runs over those words
//! (eight to a cache line) and compares whole keys only where a word equals the query's.
//! Leaves keep each key beside its value, so the pair a search ends on is in the cache line
//! it compared. Every search is a branchy binary search. The crate docs (`lib.rs`) have the
//! measurements behind each of these choices and the fan-outs.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use arrayvec::ArrayVec;

/// Pairs per leaf: 18 `(Key, Record)` pairs of 48 bytes (a 40-byte key, a thin record
/// pointer) make an 888-byte leaf with its length and reference counts, inside mimalloc's
/// 896-byte size class. Smaller leaves mean less to copy per write after a publish; larger
/// ones measured more resident bytes after apply and no faster reads (crate docs).
pub const LEAF_CAP: usize = 18;
/// Children per inner node.
pub const INNER_CAP: usize = 32;

struct Leaf<K, V: Value> {
    /// Each key beside its value: the pair a lookup finds is in the cache line it compared.
    pairs: ArrayVec<(K, V), LEAF_CAP>,
}

#[derive(Clone)]
struct Inner<K, V: Value> {
    /// The search array of `keys`.
    words: Words<INNER_CAP>,
    /// `keys[i]` is greater than every key under `children[i]` and at most every key under
    /// `children[i + 1]`; one fewer than the children (the last slot stays unused).
    keys: ArrayVec<K, INNER_CAP>,
    children: Children<K, V>,
}

/// The children of an inner node: all leaves or all inner nodes (every leaf at one depth).
enum Children<K, V: Value> {
    Leaves(ArrayVec<Arc<Leaf<K, V>>, INNER_CAP>),
    Inners(ArrayVec<Arc<Inner<K, V>>, INNER_CAP>),
}

#[derive(Clone)]
enum Root<K, V: Value> {
    Empty,
    Leaf(Arc<Leaf<K, V>>),
    Inner(Arc<Inner<K, V>>),
}

/// A persistent ordered map. Cloning is O(1); clones share nodes until one of them writes.
#[derive(Clone)]
pub struct Tree<K, V: Value> {
    root: Root<K, V>,
    len: usize,
}

impl<K, V: Value> Default for Tree<K, V> {
    fn default() -> Self {
        Self {
            root: Root::Empty,
            len: 0,
        }
    }
}

impl<K: Ord + Prefix + fmt::Debug, V: Value + fmt::Debug> fmt::Debug for Tree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Clone, V: Value> Clone for Leaf<K, V> {
    fn clone(&self) -> Self {
        // Warm every value before cloning any (see `Value`).
        std::hint::black_box(self.warm());
        Self {
            pairs: self.pairs.clone(),
        }
    }
}

impl<K, V: Value> Drop for Leaf<K, V> {
    fn drop(&mut self) {
        // The pairs drop after this: warm their values first (see `Value`).
        std::hint::black_box(self.warm());
    }
}

impl<K, V: Value> Leaf<K, V> {
    /// Reads what cloning or dropping the values updates ([`Value::warm`]), all at once.
    fn warm(&self) -> usize {
        self.pairs
            .iter()
            .fold(0usize, |acc, (_, v)| acc.wrapping_add(v.warm()))
    }

    fn new() -> Self {
        Self {
            pairs: ArrayVec::new(),
        }
    }
}

impl<K, V: Value> Clone for Children<K, V> {
    fn clone(&self) -> Self {
        // Warm every child's reference count before cloning any (see `Value`).
        std::hint::black_box(self.warm());
        match self {
            Self::Leaves(c) => Self::Leaves(c.clone()),
            Self::Inners(c) => Self::Inners(c.clone()),
        }
    }
}

impl<K, V: Value> Drop for Inner<K, V> {
    fn drop(&mut self) {
        // The children drop after this: warm their reference counts first (see `Value`).
        std::hint::black_box(self.children.warm());
    }
}

impl<K, V: Value> Children<K, V> {
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

/// What a tree stores. A value is cloned when a leaf shared with another version is copied.
///
/// `warm` reads, plainly and without writing, whatever a clone or a drop of the value
/// updates behind a pointer (a reference count). A leaf warms all its values before
/// cloning or dropping them, so their cache misses overlap: an atomic update waits for the one before
/// it, and fifteen reference counts missed one after the other cost fifteen memory round
/// trips instead of about one. The default warms nothing.
pub trait Value: Clone {
    fn warm(&self) -> usize {
        0
    }
}

/// Keys that can give 8 of their bytes as a number, for the compact search arrays of inner
/// nodes. The bytes must be those the key's `Ord` compares, in bytewise order (as for
/// `[u8]` and [`crate::key::Key`]); a query type must agree with the stored key type.
pub trait Prefix {
    /// Bytes `at..at + 8`, zero-padded past the end, as a big-endian number. Padding keeps
    /// order: `a ≤ b` implies `a.word_at(i) ≤ b.word_at(i)` whenever the zero-padded first
    /// `i` bytes of `a` and `b` are equal.
    fn word_at(&self, at: usize) -> u64;
}

impl Prefix for [u8] {
    fn word_at(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        if let Some(rest) = self.get(at..) {
            let n = rest.len().min(8);
            b[..n].copy_from_slice(&rest[..n]);
        }
        u64::from_be_bytes(b)
    }
}

impl Prefix for Vec<u8> {
    fn word_at(&self, at: usize) -> u64 {
        self.as_slice().word_at(at)
    }
}

/// The compact search array of an inner node: the bytes every key of the node shares (at most
/// 8, as the top of a big-endian word) and, per key, [`Prefix::word_at`] after them. A
/// lookup searches these 8-byte words (eight to a cache line) and reads a key itself only
/// when its word equals the query's, instead of probing 40-byte keys across the node.
#[derive(Clone)]
struct Words<const N: usize> {
    shared: u8,
    prefix: u64,
    words: [u64; N],
}

impl<const N: usize> Words<N> {
    /// The words of `items` (sorted by `key`).
    fn index<T, K: Prefix>(items: &[T], key: impl Fn(&T) -> &K) -> Self {
        let (first, last) = match (items.first(), items.last()) {
            (Some(f), Some(l)) => (key(f).word_at(0), key(l).word_at(0)),
            _ => (0, 0),
        };
        // The keys are sorted and padding keeps order: the padded bytes the first and the
        // last share, every key shares.
        let shared = ((first ^ last).leading_zeros() / 8) as usize;
        let mut words = [0; N];
        for (w, item) in words.iter_mut().zip(items) {
            *w = key(item).word_at(shared);
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

    /// Binary search of `q` among `items` (those this was indexed from): `Ok` with its
    /// index, or `Err` with where it would go.
    fn search<T, K: Borrow<Q>, Q: Ord + Prefix + ?Sized>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> &K,
        q: &Q,
    ) -> Result<usize, usize> {
        let n = items.len();
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
        // The first word ≥ the query's: every key before it is below the query. Branchy
        // on purpose, unlike `slice::partition_point`: nodes of a large tree are mostly not
        // in cache, and a predicted branch lets the CPU start loading the next probe while
        // this one still waits for memory.
        let (mut low, mut high) = (0, n);
        while low < high {
            let mid = low + (high - low) / 2;
            if words[mid] < qw {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        // Keys with the query's word decide by their full bytes.
        while low < n && words[low] == qw {
            match key(&items[low]).borrow().cmp(q) {
                Ordering::Less => low += 1,
                Ordering::Equal => return Ok(low),
                Ordering::Greater => break,
            }
        }
        Err(low)
    }
}

impl<K, V: Value> Leaf<K, V> {
    /// Binary search of `q` among the pairs: `Ok` with its index, or `Err` with where it
    /// would go. Branchy, for the reason given at [`Words::search`]. Leaves search their
    /// pairs directly: words in leaves too gave reads faster only within the noise, for
    /// ~10% more instructions per put and 0.17× more resident bytes (crate docs).
    fn search<Q: Ord + ?Sized>(&self, q: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        let (mut low, mut high) = (0, self.pairs.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.pairs[mid].0.borrow().cmp(q) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }
}

impl<K: Prefix, V: Value> Inner<K, V> {
    fn new(keys: ArrayVec<K, INNER_CAP>, children: Children<K, V>) -> Self {
        Self {
            words: Words::index(&keys, |k| k),
            keys,
            children,
        }
    }

    /// Recomputes the words after the separators changed.
    fn reindex(&mut self) {
        self.words = Words::index(&self.keys, |k| k);
    }

    /// Index of the child that may hold `q`: the number of separators at most `q`.
    fn child_index<Q: Ord + Prefix + ?Sized>(&self, q: &Q) -> usize
    where
        K: Borrow<Q>,
    {
        match self.words.search(&self.keys, |k| k, q) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// What a node needs for removal: its size, its capacity and merging with its right
/// neighbour.
trait Node<K>: Clone {
    const CAP: usize;
    fn size(&self) -> usize;
    /// Appends `right` (every key of which is above this node's), `sep` being the separator
    /// between the two in their parent.
    fn merge(&mut self, sep: K, right: Self);
}

impl<K: Clone, V: Value> Node<K> for Leaf<K, V> {
    const CAP: usize = LEAF_CAP;
    fn size(&self) -> usize {
        self.pairs.len()
    }
    fn merge(&mut self, _sep: K, mut right: Self) {
        self.pairs.extend(right.pairs.drain(..));
    }
}

impl<K: Clone + Prefix, V: Value> Node<K> for Inner<K, V> {
    const CAP: usize = INNER_CAP;
    fn size(&self) -> usize {
        self.children.len()
    }
    fn merge(&mut self, sep: K, mut right: Self) {
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
type SplitOff<K, T> = (K, ArrayVec<K, INNER_CAP>, ArrayVec<Arc<T>, INNER_CAP>);

/// Inserts child `child` after `children[i]` with separator `sep`. When the node is full it
/// splits in the middle first and returns the right half.
fn insert_child<K, T>(
    keys: &mut ArrayVec<K, INNER_CAP>,
    children: &mut ArrayVec<Arc<T>, INNER_CAP>,
    i: usize,
    sep: K,
    child: Arc<T>,
) -> Option<SplitOff<K, T>> {
    if !children.is_full() {
        keys.insert(i, sep);
        children.insert(i + 1, child);
        return None;
    }
    let mid = INNER_CAP / 2;
    let mut right_children: ArrayVec<Arc<T>, INNER_CAP> = children.drain(mid..).collect();
    let mut right_keys: ArrayVec<K, INNER_CAP> = keys.drain(mid..).collect();
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
fn rebalance<K, T: Node<K>>(
    keys: &mut ArrayVec<K, INNER_CAP>,
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

type LeafSplit<K, V> = Option<(K, Arc<Leaf<K, V>>)>;
type InnerSplit<K, V> = Option<(K, Arc<Inner<K, V>>)>;

fn leaf_upsert<K: Ord + Clone + Prefix, V: Value>(
    leaf: &mut Leaf<K, V>,
    key: K,
    f: impl FnOnce(Option<&V>) -> V,
) -> (Option<V>, LeafSplit<K, V>) {
    match leaf.search(&key) {
        Ok(i) => {
            let slot = &mut leaf.pairs[i].1;
            let next = f(Some(slot));
            (Some(std::mem::replace(slot, next)), None)
        }
        Err(i) => {
            let value = f(None);
            if !leaf.pairs.is_full() {
                leaf.pairs.insert(i, (key, value));
                return (None, None);
            }
            let mid = LEAF_CAP.div_ceil(2);
            let mut right = Leaf::new();
            right.pairs.extend(leaf.pairs.drain(mid..));
            if i <= mid {
                leaf.pairs.insert(i, (key, value));
            } else {
                right.pairs.insert(i - mid, (key, value));
            }
            let sep = right.pairs[0].0.clone();
            (None, Some((sep, Arc::new(right))))
        }
    }
}

fn inner_upsert<K: Ord + Clone + Prefix, V: Value>(
    node: &mut Inner<K, V>,
    key: K,
    f: impl FnOnce(Option<&V>) -> V,
) -> (Option<V>, InnerSplit<K, V>) {
    let i = node.child_index(&key);
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

fn leaf_remove<K: Borrow<Q>, V: Value, Q: Ord + ?Sized>(
    leaf: &mut Leaf<K, V>,
    q: &Q,
) -> Option<(K, V)> {
    let i = leaf.search(q).ok()?;
    Some(leaf.pairs.remove(i))
}

fn inner_remove<K: Ord + Clone + Prefix + Borrow<Q>, V: Value, Q: Ord + Prefix + ?Sized>(
    node: &mut Inner<K, V>,
    q: &Q,
) -> Option<(K, V)> {
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

impl<K: Prefix, V: Value> Tree<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many leaves and inner nodes the tree has (a walk over the inner nodes): with
    /// [`Tree::len`], how full the leaves are, for measurements of memory per key.
    pub fn node_counts(&self) -> (usize, usize) {
        fn walk<K, V: Value>(node: &Inner<K, V>) -> (usize, usize) {
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

    /// The leaf that holds `q` if any pair does.
    fn leaf_for<Q: Ord + Prefix + ?Sized>(&self, q: &Q) -> Option<&Leaf<K, V>>
    where
        K: Borrow<Q>,
    {
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

    /// The stored key and value of `q`.
    pub fn get_key_value<Q: Ord + Prefix + ?Sized>(&self, q: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        let leaf = self.leaf_for(q)?;
        let (k, v) = &leaf.pairs[leaf.search(q).ok()?];
        Some((k, v))
    }

    /// The value of `q`.
    pub fn get<Q: Ord + Prefix + ?Sized>(&self, q: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.get_key_value(q).map(|(_, v)| v)
    }

    /// Every pair in key order.
    pub fn iter(&self) -> Range<'_, K, V, K>
    where
        K: Ord,
    {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// The pairs between `lower` and `upper` in key order. O(log n) to position, then O(1)
    /// amortised per pair.
    pub fn range<'a, Q: Ord + Prefix + ?Sized>(
        &'a self,
        (lower, upper): (Bound<&'a Q>, Bound<&'a Q>),
    ) -> Range<'a, K, V, Q>
    where
        K: Borrow<Q>,
    {
        let mut range = Range {
            stack: Vec::new(),
            leaf: None,
            pos: 0,
            upper,
        };
        // Where the lower bound falls among an inner node's separators (the child that may
        // hold it) and among a leaf's keys (the first pair in range).
        let child = |node: &Inner<K, V>| match lower {
            Bound::Unbounded => 0,
            Bound::Included(q) | Bound::Excluded(q) => node.child_index(q),
        };
        let first = |pairs: &[(K, V)]| match lower {
            Bound::Unbounded => 0,
            Bound::Included(q) => pairs.partition_point(|(k, _)| k.borrow() < q),
            Bound::Excluded(q) => pairs.partition_point(|(k, _)| k.borrow() <= q),
        };
        let mut node = match &self.root {
            Root::Empty => return range,
            Root::Leaf(leaf) => {
                range.leaf = Some(leaf);
                range.pos = first(&leaf.pairs);
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
                    range.pos = first(&c[i].pairs);
                    return range;
                }
                Children::Inners(c) => node = &c[i],
            }
        }
    }
}

/// The new root when the root split: one separator above the two halves.
fn root_above<K: Prefix, V: Value>(sep: K, halves: Children<K, V>) -> Root<K, V> {
    Root::Inner(Arc::new(Inner::new([sep].into_iter().collect(), halves)))
}

impl<K: Ord + Clone + Prefix, V: Value> Tree<K, V> {
    /// Inserts or updates `key` in one walk down the tree: `f` gets the current value (if
    /// any) and returns the one to store. Returns the value replaced.
    pub fn upsert(&mut self, key: K, f: impl FnOnce(Option<&V>) -> V) -> Option<V> {
        let prev = match &mut self.root {
            Root::Empty => {
                let mut leaf = Leaf::new();
                leaf.pairs.push((key, f(None)));
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

    /// Inserts `value` at `key`; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.upsert(key, |_| value)
    }

    /// Removes `q`; returns its stored key and value. Nothing is copied when `q` is absent.
    pub fn remove<Q: Ord + Prefix + ?Sized>(&mut self, q: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
    {
        // A read-only walk first, so that removing an absent key copies no shared path.
        self.get(q)?;
        self.remove_present(q)
    }

    /// [`Tree::remove`] in one walk, for a key known to be present (one a scan just
    /// returned). Were it absent, nothing would be removed, but the path to where it would
    /// be might have been copied.
    pub fn remove_present<Q: Ord + Prefix + ?Sized>(&mut self, q: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
    {
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

    /// A map of `pairs`, which must be in strictly increasing key order.
    pub fn from_sorted(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut builder = Builder::new();
        for (k, v) in pairs {
            builder.push(k, v);
        }
        builder.finish()
    }
}

/// Builds a [`Tree`] from pairs in strictly increasing key order, with full nodes: every
/// leaf but the last two holds [`LEAF_CAP`] pairs, and inner nodes are filled evenly.
/// O(n), no search.
pub struct Builder<K, V: Value> {
    leaves: Vec<Arc<Leaf<K, V>>>,
    current: Leaf<K, V>,
    len: usize,
}

impl<K: Ord + Clone + Prefix, V: Value> Default for Builder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone + Prefix, V: Value> Builder<K, V> {
    pub fn new() -> Self {
        Self {
            leaves: Vec::new(),
            current: Leaf::new(),
            len: 0,
        }
    }

    /// Appends a pair; its key must be above every key pushed before.
    pub fn push(&mut self, key: K, value: V) {
        debug_assert!(
            self.current
                .pairs
                .last()
                .or_else(|| self.leaves.last().and_then(|l| l.pairs.last()))
                .is_none_or(|(last, _)| *last < key),
            "Builder::push: keys not strictly increasing"
        );
        if self.current.pairs.is_full() {
            let full = std::mem::replace(&mut self.current, Leaf::new());
            self.leaves.push(Arc::new(full));
        }
        self.current.pairs.push((key, value));
        self.len += 1;
    }

    /// The tree of every pair pushed.
    pub fn finish(mut self) -> Tree<K, V> {
        if self.len == 0 {
            return Tree::new();
        }
        // A short last leaf shares the pairs of the full one before it.
        if self.current.pairs.len() < LEAF_CAP / 2
            && let Some(prev) = self.leaves.pop()
        {
            let mut prev = unshare(prev);
            let total = prev.pairs.len() + self.current.pairs.len();
            let mut last = Leaf::new();
            last.pairs.extend(prev.pairs.drain(total / 2..));
            last.pairs.extend(self.current.pairs.drain(..));
            self.leaves.push(Arc::new(prev));
            self.current = last;
        }
        self.leaves.push(Arc::new(self.current));
        let len = self.len;
        if self.leaves.len() == 1 {
            let root = self.leaves.pop().map_or(Root::Empty, Root::Leaf);
            return Tree { root, len };
        }
        let level: Vec<(K, Arc<Leaf<K, V>>)> = self
            .leaves
            .into_iter()
            .map(|l| (l.pairs[0].0.clone(), l))
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
fn build_level<K: Clone + Prefix, V: Value, T>(
    items: Vec<(K, Arc<T>)>,
    wrap: impl Fn(ArrayVec<Arc<T>, INNER_CAP>) -> Children<K, V>,
) -> Vec<(K, Arc<Inner<K, V>>)> {
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

/// Iterator over the pairs of a key range, in key order (see [`Tree::range`]).
pub struct Range<'a, K, V: Value, Q: ?Sized> {
    /// The inner nodes above the current leaf, each with the index of the child being
    /// walked.
    stack: Vec<(&'a Inner<K, V>, usize)>,
    /// `None` once the range is done.
    leaf: Option<&'a Leaf<K, V>>,
    pos: usize,
    upper: Bound<&'a Q>,
}

impl<'a, K, V: Value, Q: ?Sized> Range<'a, K, V, Q> {
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
                    self.leaf = Some(&c[i]);
                    self.pos = 0;
                    return true;
                }
                Children::Inners(c) => self.stack.push((&c[i], 0)),
            }
        }
    }
}

impl<'a, K: Borrow<Q>, V: Value, Q: Ord + ?Sized> Iterator for Range<'a, K, V, Q> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let leaf = self.leaf?;
            if self.pos < leaf.pairs.len() {
                let (key, value) = &leaf.pairs[self.pos];
                let within = match self.upper {
                    Bound::Unbounded => true,
                    Bound::Included(u) => key.borrow() <= u,
                    Bound::Excluded(u) => key.borrow() < u,
                };
                if !within {
                    self.leaf = None;
                    return None;
                }
                self.pos += 1;
                return Some((key, value));
            }
            if !self.next_leaf() {
                self.leaf = None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
