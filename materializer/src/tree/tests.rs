//! The tree against `std::collections::BTreeMap`, with the structural invariants checked
//! after every step.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;

use super::*;

type K = Vec<u8>;
/// The tests' entries: a key and a number; they warm nothing.
type E = (K, u32);
type Model = BTreeMap<K, u32>;

impl Entry for (K, u32) {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// Checks the invariants of the module docs; returns the depth.
fn check(tree: &Tree<E>) -> usize {
    fn leaf(l: &Leaf<E>, lo: Option<&[u8]>, hi: Option<&[u8]>, root: bool) {
        assert!(root || !l.pairs.is_empty(), "empty leaf");
        assert!(
            l.pairs.windows(2).all(|w| w[0].1.0 < w[1].1.0),
            "leaf out of order"
        );
        let prefix = l.prefix.as_slice();
        assert!(
            prefix.len() <= INLINE_KEY_BYTES,
            "prefix too long to be inline"
        );
        for (w, (k, _)) in &l.pairs {
            assert!(
                lo.is_none_or(|lo| lo <= k.as_slice()),
                "key below its separator"
            );
            assert!(
                hi.is_none_or(|hi| k.as_slice() < hi),
                "key above its separator"
            );
            assert!(k.starts_with(prefix), "key outside the leaf's prefix");
            assert_eq!(*w, k.word_at(prefix.len()), "stale word");
        }
    }
    fn inner(n: &Inner<E>, lo: Option<&[u8]>, hi: Option<&[u8]>) -> usize {
        let count = n.children.len();
        assert!(count >= 1, "inner node without children");
        assert_eq!(n.keys.len(), count - 1);
        assert!(n.keys.windows(2).all(|w| w[0] < w[1]));
        let fresh = Words::<INNER_CAP>::index(&n.keys);
        assert_eq!(n.words.shared, fresh.shared, "stale shared prefix");
        assert_eq!(n.words.prefix, fresh.prefix, "stale shared prefix");
        assert_eq!(n.words.words, fresh.words, "stale words");
        let bound = |i: usize| -> (Option<&[u8]>, Option<&[u8]>) {
            let l = if i == 0 {
                lo
            } else {
                Some(n.keys[i - 1].as_slice())
            };
            let h = if i + 1 == count {
                hi
            } else {
                Some(n.keys[i].as_slice())
            };
            (l, h)
        };
        let depths: Vec<usize> = match &n.children {
            Children::Leaves(c) => c
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let (lo, hi) = bound(i);
                    leaf(l, lo, hi, false);
                    1
                })
                .collect(),
            Children::Inners(c) => c
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let (lo, hi) = bound(i);
                    inner(n, lo, hi)
                })
                .collect(),
        };
        assert!(depths.windows(2).all(|w| w[0] == w[1]), "uneven depth");
        depths[0] + 1
    }
    let depth = match &tree.root {
        Root::Empty => 0,
        Root::Leaf(l) => {
            assert!(!l.pairs.is_empty(), "empty root leaf");
            leaf(l, None, None, true);
            1
        }
        Root::Inner(n) => {
            assert!(n.children.len() >= 2, "inner root with one child");
            inner(n, None, None)
        }
    };
    assert_eq!(tree.iter().count(), tree.len());
    depth
}

fn same(tree: &Tree<E>, model: &Model) {
    assert_eq!(tree.len(), model.len());
    assert!(
        tree.iter().cloned().eq(model.clone()),
        "content differs from the model"
    );
}

fn key_of(n: u16) -> K {
    // Variable length, so prefixes and lengths both matter, behind a few shared prefixes
    // (with zero bytes, which padding must not confuse with a key's end), so inner nodes
    // search words after shared bytes and meet equal words; one prefix is longer than a
    // leaf's prefix may be, so leaves meet runs of equal words too.
    const SHARED: [&[u8]; 5] = [b"", b"\0", b"abcdefg", b"abcdefgh\0\0", &[b'p'; 45]];
    let b = n.to_be_bytes();
    let mut k = SHARED[usize::from(n / 7 % 5)].to_vec();
    match n % 4 {
        0 => {}
        1 => k.push(b[0]),
        2 => k.extend_from_slice(&b),
        _ => k.extend_from_slice(&[b[0], b[1], 0, b[1]]),
    }
    k
}

fn bound_of(kind: u8, n: u16) -> Bound<K> {
    match kind % 3 {
        0 => Bound::Unbounded,
        1 => Bound::Included(key_of(n)),
        _ => Bound::Excluded(key_of(n)),
    }
}

fn as_ref(b: &Bound<K>) -> Bound<&[u8]> {
    match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
    }
}

/// The model's range, empty where `BTreeMap` would panic (inverted or empty bounds).
fn model_range(model: &Model, lo: &Bound<K>, hi: &Bound<K>) -> Vec<(K, u32)> {
    model
        .iter()
        .filter(|(k, _)| {
            let above = match lo {
                Bound::Unbounded => true,
                Bound::Included(l) => *k >= l,
                Bound::Excluded(l) => *k > l,
            };
            let below = match hi {
                Bound::Unbounded => true,
                Bound::Included(h) => *k <= h,
                Bound::Excluded(h) => *k < h,
            };
            above && below
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn check_range(tree: &Tree<E>, model: &Model, lo: &Bound<K>, hi: &Bound<K>) {
    let got: Vec<(K, u32)> = tree.range((as_ref(lo), as_ref(hi))).cloned().collect();
    assert_eq!(got, model_range(model, lo, hi), "range {lo:?}..{hi:?}");
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    /// Adds to the value when present, inserts 0 otherwise.
    Upsert(u16),
    Remove(u16),
    /// Removes every key of a span (many removals in a row: merges).
    RemoveSpan(u16, u16),
    Range(u8, u16, u8, u16),
    /// Keeps a clone; it must keep its content whatever happens to the tree after.
    Hold,
}

fn op(space: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..space, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0..space).prop_map(Op::Upsert),
        3 => (0..space).prop_map(Op::Remove),
        1 => (0..space, 0..200u16).prop_map(|(k, n)| Op::RemoveSpan(k, n)),
        1 => (any::<u8>(), 0..space, any::<u8>(), 0..space)
            .prop_map(|(a, x, b, y)| Op::Range(a, x, b, y)),
        1 => Just(Op::Hold),
    ]
}

fn run(ops: Vec<Op>) {
    let mut tree: Tree<E> = Tree::new();
    let mut model = Model::new();
    let mut held: Vec<(Tree<E>, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                assert_eq!(
                    tree.insert((key_of(k), v)).map(|(_, v)| v),
                    model.insert(key_of(k), v)
                );
            }
            Op::Upsert(k) => {
                let key = key_of(k);
                let prev = tree
                    .upsert(&key, |p| {
                        (key.clone(), p.map_or(0, |p| p.1.wrapping_add(1)))
                    })
                    .map(|(_, v)| v);
                let expected = model.get(&key_of(k)).copied();
                model.insert(key_of(k), expected.map_or(0, |p| p.wrapping_add(1)));
                assert_eq!(prev, expected);
            }
            Op::Remove(k) => {
                let key = key_of(k);
                assert_eq!(
                    tree.remove(key.as_slice()),
                    model.remove_entry(&key),
                    "remove {key:?}"
                );
            }
            Op::RemoveSpan(k, n) => {
                // Present keys through the one-walk removal (as a delete of scanned keys).
                for k in k..k.saturating_add(n) {
                    let key = key_of(k);
                    let removed = if model.contains_key(&key) {
                        tree.remove_present(key.as_slice())
                    } else {
                        tree.remove(key.as_slice())
                    };
                    assert_eq!(removed, model.remove_entry(&key));
                }
            }
            Op::Range(a, x, b, y) => {
                check_range(&tree, &model, &bound_of(a, x), &bound_of(b, y));
            }
            Op::Hold => held.push((tree.clone(), model.clone())),
        }
        assert_eq!(tree.len(), model.len());
    }
    check(&tree);
    same(&tree, &model);
    for (k, _) in model.iter().take(50) {
        assert_eq!(tree.get(k.as_slice()).map(|(_, v)| v), model.get(k));
        assert_eq!(tree.get(k.as_slice()).map(|(k, _)| k), Some(k));
    }
    for (old, old_model) in &held {
        check(old);
        same(old, old_model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_btreemap_small_keyspace(ops in proptest::collection::vec(op(300), 0..1500)) {
        run(ops);
    }

    #[test]
    fn matches_btreemap_deep_trees(ops in proptest::collection::vec(op(8000), 0..6000)) {
        run(ops);
    }

    #[test]
    fn bulk_build_matches_sorted_input(
        keys in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..6), 0..4000),
        writes in proptest::collection::vec(op(3000), 0..300),
    ) {
        let model: Model = keys.into_iter().enumerate().map(|(i, k)| (k, i as u32)).collect();
        let tree = Tree::from_sorted(model.clone());
        check(&tree);
        same(&tree, &model);
        let held = tree.clone();
        // Writes to a built tree (full nodes split at once) leave the built clone alone.
        let mut tree = tree;
        let mut m = model.clone();
        for op in writes {
            match op {
                Op::Insert(k, v) => { tree.insert((key_of(k), v)); m.insert(key_of(k), v); }
                Op::Remove(k) => { tree.remove(key_of(k).as_slice()); m.remove(&key_of(k)); }
                _ => {}
            }
        }
        check(&tree);
        same(&tree, &m);
        same(&held, &model);
    }
}

#[test]
fn ranges_with_every_bound_combination() {
    let model: Model = (0..3000u16)
        .map(|n| (key_of(n * 3), u32::from(n)))
        .collect();
    let tree = Tree::from_sorted(model.clone());
    assert!(check(&tree) >= 2);
    let probes = [
        0u16, 1, 2, 3, 4, 5, 6, 99, 100, 101, 4500, 8997, 8998, 9000, 65535,
    ];
    for kind_lo in 0..3u8 {
        for kind_hi in 0..3u8 {
            for &x in &probes {
                for &y in &probes {
                    check_range(&tree, &model, &bound_of(kind_lo, x), &bound_of(kind_hi, y));
                }
            }
        }
    }
    let empty: Tree<E> = Tree::new();
    check_range(&empty, &Model::new(), &Bound::Unbounded, &Bound::Unbounded);
}

#[test]
fn grows_and_shrinks_back_to_empty() {
    let mut tree: Tree<E> = Tree::new();
    let mut model = Model::new();
    // A deterministic shuffle of 60k keys: depth 4 with these fan-outs.
    let order: Vec<u32> = (0..60_000u32)
        .map(|i| i.wrapping_mul(40_507) % 60_000)
        .collect();
    for &i in &order {
        let k = i.to_be_bytes().to_vec();
        tree.insert((k.clone(), i));
        model.insert(k, i);
    }
    assert!(check(&tree) >= 3);
    same(&tree, &model);
    let snapshot = tree.clone();
    for &i in order.iter().rev() {
        let k = i.to_be_bytes();
        assert_eq!(tree.remove(&k[..]).map(|(_, v)| v), Some(i));
        if i % 4096 == 0 {
            check(&tree);
        }
    }
    assert!(tree.is_empty());
    assert_eq!(check(&tree), 0);
    same(&snapshot, &model);
}

#[test]
fn a_write_after_a_clone_copies_only_shared_nodes() {
    let mut tree: Tree<E> =
        Tree::from_sorted((0..10_000u32).map(|i| (i.to_be_bytes().to_vec(), i)));
    let view = tree.clone();
    let root = |t: &Tree<E>| match &t.root {
        Root::Inner(n) => Arc::as_ptr(n),
        _ => std::ptr::null(),
    };
    tree.insert((5u32.to_be_bytes().to_vec(), 0));
    let first = root(&tree);
    assert_ne!(first, root(&view), "the shared root is copied");
    tree.insert((6u32.to_be_bytes().to_vec(), 0));
    assert_eq!(
        first,
        root(&tree),
        "the copy is now owned: changed in place"
    );
    assert_eq!(view.get(&5u32.to_be_bytes()[..]).map(|e| e.1), Some(5));
    assert_eq!(tree.get(&5u32.to_be_bytes()[..]).map(|e| e.1), Some(0));
}
