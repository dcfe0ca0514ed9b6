//! The ordered map behind the key index: keys in sorted chunks of up to [`CHUNK`] entries.
//!
//! `std`'s `BTreeMap` splits a full node in the middle, so keys inserted in ascending order
//! (the usual way a store fills: `/registry/...` names, sequential benchmark keys) leave every
//! node a little over half full, and each key costs its entry about twice over. Here a chunk
//! that overflows at its end starts a new chunk instead, so ascending inserts leave chunks
//! full, and an insert in the middle splits the chunk in half as a B-tree would. Chunks are
//! found through a `BTreeMap` keyed by each chunk's first key (one small entry per chunk).
//!
//! Invariants: every chunk is non-empty and sorted, its map key equals its first key, and all
//! keys of a chunk are below the next chunk's first key.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::Bound;

/// Entries per chunk: a 64-byte entry makes a 4 KiB chunk, short enough to binary-search and
/// shift on insert.
pub const CHUNK: usize = 64;
/// A chunk this small after a removal is merged with a neighbour when they fit together.
const MERGE_BELOW: usize = CHUNK / 4;

type Chunk<V> = Vec<(Box<[u8]>, V)>;

/// A sorted map from byte-string keys to `V`.
pub struct KeyMap<V> {
    chunks: BTreeMap<Box<[u8]>, Chunk<V>>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            chunks: BTreeMap::new(),
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for KeyMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> KeyMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from entries in strictly ascending key order, chunks filled.
    /// Entries out of order are an error (nothing is built).
    pub fn from_sorted(entries: Vec<(Vec<u8>, V)>) -> Result<Self, String> {
        if let Some(w) = entries.windows(2).position(|w| w[0].0 >= w[1].0) {
            return Err(format!(
                "key index entries out of order at {w}: {:?} then {:?}",
                String::from_utf8_lossy(&entries[w].0),
                String::from_utf8_lossy(&entries[w + 1].0)
            ));
        }
        let mut map = KeyMap::new();
        let mut chunk: Chunk<V> = Vec::with_capacity(CHUNK);
        for (k, v) in entries {
            if chunk.len() == CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                map.chunks.insert(full[0].0.clone(), full);
            }
            chunk.push((k.into_boxed_slice(), v));
        }
        if let Some((first, _)) = chunk.first() {
            map.chunks.insert(first.clone(), chunk);
        }
        Ok(map)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let (_, chunk) = self
            .chunks
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let i = chunk.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        chunk.get(i).map(|(_, v)| v)
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let (_, chunk) = self
            .chunks
            .range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let i = chunk.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        chunk.get_mut(i).map(|(_, v)| v)
    }

    /// The value of `key`, inserting `V::default()` first when the key is absent. `None` only
    /// if the map broke its own invariants (the caller reports it as an error).
    pub fn get_or_insert_default(&mut self, key: Vec<u8>) -> Option<&mut V>
    where
        V: Default,
    {
        if self.get(&key).is_none() {
            self.insert_new(key.as_slice().into());
        }
        self.get_mut(&key)
    }

    /// Inserts `key`, which is not in the map, with `V::default()`.
    fn insert_new(&mut self, key: Box<[u8]>)
    where
        V: Default,
    {
        // Whether the chunk that takes `key` is the last one: no chunk starts after `key`.
        let in_last = self
            .chunks
            .range::<[u8], _>((Bound::Excluded(&*key), Bound::Unbounded))
            .next()
            .is_none();
        let split = match self
            .chunks
            .range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(&*key)))
            .next_back()
        {
            Some((_, chunk)) => {
                // The chunk's first key is below `key`, so `i >= 1`: its map key stays.
                let i = chunk.partition_point(|(k, _)| **k < *key);
                if chunk.len() < CHUNK {
                    chunk.insert(i, (key, V::default()));
                    return;
                }
                if i == chunk.len() && in_last {
                    // Ascending inserts: leave this chunk full and start the next one.
                    let mut next = Vec::with_capacity(CHUNK);
                    next.push((key, V::default()));
                    next
                } else {
                    let mut right: Chunk<V> = Vec::with_capacity(CHUNK);
                    right.extend(chunk.drain(CHUNK / 2..));
                    if i <= CHUNK / 2 {
                        chunk.insert(i, (key, V::default()));
                    } else {
                        right.insert(i - CHUNK / 2, (key, V::default()));
                    }
                    right
                }
            }
            None => {
                // Below every key (or the map is empty): the first chunk takes it, filed under
                // the new first key; a full first chunk gets a new chunk in front of it.
                let mut chunk = match self.chunks.first_entry() {
                    Some(e) if e.get().len() < CHUNK => e.remove(),
                    _ => Vec::with_capacity(CHUNK),
                };
                chunk.insert(0, (key, V::default()));
                chunk
            }
        };
        if let Some((first, _)) = split.first() {
            self.chunks.insert(first.clone(), split);
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let (ck, chunk) = self
            .chunks
            .range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let i = chunk.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        let (_, v) = chunk.remove(i);
        let ck = ck.clone();
        let left = chunk.len();
        if left == 0 {
            self.chunks.remove(&ck);
            return Some(v);
        }
        let mut ck = ck;
        if i == 0 {
            // The chunk's first key changed: file it under the new one.
            if let Some(c) = self.chunks.remove(&ck)
                && let Some((first, _)) = c.first()
            {
                ck = first.clone();
                self.chunks.insert(ck.clone(), c);
            }
        }
        if left < MERGE_BELOW {
            self.merge_around(&ck, left);
        }
        Some(v)
    }

    /// Merges the small chunk `ck` (of `len` entries) into its previous neighbour, or its
    /// next one into it, when the two fit in three quarters of a chunk.
    fn merge_around(&mut self, ck: &[u8], len: usize) {
        let fits = |c: &Chunk<V>| c.len() + len <= CHUNK * 3 / 4;
        let into_prev = self
            .chunks
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(ck)))
            .next_back()
            .is_some_and(|(_, c)| fits(c));
        if into_prev {
            if let Some((_, mut moved)) = self.chunks.remove_entry(ck) {
                match self
                    .chunks
                    .range_mut::<[u8], _>((Bound::Unbounded, Bound::Excluded(ck)))
                    .next_back()
                {
                    Some((_, prev)) => prev.append(&mut moved),
                    None => {
                        self.chunks.insert(ck.into(), moved);
                    }
                }
            }
            return;
        }
        let next = self
            .chunks
            .range::<[u8], _>((Bound::Excluded(ck), Bound::Unbounded))
            .next()
            .filter(|(_, c)| fits(c))
            .map(|(k, _)| k.clone());
        if let Some(nk) = next
            && let Some(mut moved) = self.chunks.remove(&nk)
        {
            match self.chunks.get_mut(ck) {
                Some(c) => c.append(&mut moved),
                None => {
                    self.chunks.insert(nk, moved);
                }
            }
        }
    }

    /// Every entry in key order.
    pub fn iter(&self) -> Range<'_, V> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    /// Every value in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.chunks.values().flat_map(|c| c.iter().map(|(_, v)| v))
    }

    /// The entries with keys within `bounds`, in key order.
    pub fn range<'a>(&'a self, bounds: (Bound<&[u8]>, Bound<&'a [u8]>)) -> Range<'a, V> {
        let (lo, hi) = bounds;
        let start_key = match lo {
            Bound::Unbounded => None,
            Bound::Included(k) | Bound::Excluded(k) => self
                .chunks
                .range::<[u8], _>((Bound::Unbounded, Bound::Included(k)))
                .next_back()
                .map(|(ck, _)| &**ck),
        };
        let mut chunks = match start_key {
            Some(ck) => self
                .chunks
                .range::<[u8], _>((Bound::Included(ck), Bound::Unbounded)),
            None => self.chunks.range::<[u8], _>(..),
        };
        let (current, pos) = match chunks.next() {
            Some((_, c)) => {
                let pos = match lo {
                    Bound::Unbounded => 0,
                    Bound::Included(k) => c.partition_point(|(e, _)| **e < *k),
                    Bound::Excluded(k) => c.partition_point(|(e, _)| **e <= *k),
                };
                (c.as_slice(), pos)
            }
            None => (&[][..], 0),
        };
        Range {
            chunks,
            current,
            pos,
            hi,
        }
    }
}

/// An iterator over a range of a [`KeyMap`].
pub struct Range<'a, V> {
    chunks: btree_map::Range<'a, Box<[u8]>, Chunk<V>>,
    current: &'a [(Box<[u8]>, V)],
    pos: usize,
    hi: Bound<&'a [u8]>,
}

impl<'a, V> Iterator for Range<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos >= self.current.len() {
            let (_, c) = self.chunks.next()?;
            self.current = c.as_slice();
            self.pos = 0;
        }
        let (k, v) = &self.current[self.pos];
        let within = match self.hi {
            Bound::Unbounded => true,
            Bound::Included(h) => **k <= *h,
            Bound::Excluded(h) => **k < *h,
        };
        if !within {
            // Nothing after this key can be within either.
            self.current = &[];
            self.pos = 0;
            self.chunks = btree_map::Range::default();
            return None;
        }
        self.pos += 1;
        Some((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u32) -> Vec<u8> {
        format!("k{n:06}").into_bytes()
    }

    /// Checks the invariants of the module doc.
    fn check<V>(m: &KeyMap<V>) {
        let mut prev: Option<&[u8]> = None;
        let mut n = 0;
        for (ck, c) in &m.chunks {
            assert!(!c.is_empty(), "empty chunk");
            assert!(c.len() <= CHUNK, "chunk over {CHUNK}");
            assert_eq!(
                **ck, *c[0].0,
                "chunk filed under a key that is not its first"
            );
            for (k, _) in c {
                if let Some(p) = prev {
                    assert!(p < &**k, "keys out of order");
                }
                prev = Some(k);
                n += 1;
            }
        }
        assert_eq!(n, m.iter().count());
    }

    #[test]
    fn ascending_inserts_fill_chunks() {
        let mut m = KeyMap::<u32>::new();
        for n in 0..10 * CHUNK as u32 {
            *m.get_or_insert_default(key(n)).unwrap() = n;
        }
        check(&m);
        assert_eq!(m.chunks.len(), 10);
        assert!(m.chunks.values().all(|c| c.len() == CHUNK));
        assert_eq!(m.get(&key(77)), Some(&77));
    }

    #[test]
    fn from_sorted_refuses_disorder() {
        let err = KeyMap::from_sorted(vec![(key(2), 0), (key(1), 0)]).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        let m = KeyMap::from_sorted((0..200).map(|n| (key(n), n)).collect()).unwrap();
        check(&m);
        assert_eq!(m.iter().count(), 200);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Range(u16, u16, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2000u16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0..2000u16).prop_map(Op::Remove),
            1 => (0..2000u16, 0..2000u16, 0..4u8).prop_map(|(a, b, m)| Op::Range(a, b, m)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of operations: the same answers as `BTreeMap`, invariants kept.
        #[test]
        fn behaves_like_btreemap(
            start in prop::collection::vec(0..2000u16, 0..300),
            ops in prop::collection::vec(op(), 1..1500),
        ) {
            let mut sorted: Vec<u16> = start;
            sorted.sort_unstable();
            sorted.dedup();
            let mut model: BTreeMap<Vec<u8>, u32> =
                sorted.iter().map(|&k| (key(k.into()), k.into())).collect();
            let mut m = KeyMap::from_sorted(
                model.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        *m.get_or_insert_default(key(k.into())).unwrap() = v;
                        model.insert(key(k.into()), v);
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(m.remove(&key(k.into())), model.remove(&key(k.into())));
                        prop_assert_eq!(m.get(&key(k.into())), None);
                    }
                    Op::Range(a, b, mode) => {
                        let (ka, kb) = (key(a.into()), key(b.into()));
                        let lo = match mode & 1 {
                            0 => Bound::Included(ka.as_slice()),
                            _ => Bound::Excluded(ka.as_slice()),
                        };
                        let hi = match mode & 2 {
                            0 => Bound::Excluded(kb.as_slice()),
                            _ => Bound::Unbounded,
                        };
                        if let (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h)) = (lo, hi)
                            && l >= h
                        {
                            continue; // BTreeMap panics on such ranges; callers never ask.
                        }
                        let got: Vec<(Vec<u8>, u32)> =
                            m.range((lo, hi)).map(|(k, v)| (k.to_vec(), *v)).collect();
                        let want: Vec<(Vec<u8>, u32)> = model
                            .range::<[u8], _>((lo, hi))
                            .map(|(k, v)| (k.clone(), *v))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
                check(&m);
            }
            let all: Vec<(Vec<u8>, u32)> = m.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            let want: Vec<(Vec<u8>, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(all, want);
            prop_assert_eq!(m.values().count(), model.len());
            for k in model.keys() {
                prop_assert_eq!(m.get(k), model.get(k));
            }
        }
    }
}
