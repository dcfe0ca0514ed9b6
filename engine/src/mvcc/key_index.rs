//! The history of one key: its generations of revisions (etcd's `keyIndex`).
//!
//! A generation runs from the put that creates the key to the delete (tombstone) that ends
//! it; a new, empty generation then waits for the next put. For example put(1.0), put(2.0),
//! tombstone(3.0), put(4.0), tombstone(5.0) gives the generations
//! `{1.0, 2.0, 3.0(t)}`, `{4.0, 5.0(t)}`, `{}` (oldest first).
//!
//! Compacting at revision `r` drops, in every generation, the revisions `<= r` except the
//! largest one, and drops generations that end (tombstone) before `r`; a key whose only
//! generation left is empty is gone. `keep` and `compact` report which revisions survive, so
//! the store can delete the others from the tree.

use std::collections::HashSet;

use crate::mvcc::revision::Revision;

/// One life of a key, from its creating put to its tombstone (inclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// The key's version at the last revision of this generation (1 for the creating put).
    pub ver: i64,
    /// The creating put's revision.
    pub created: Revision,
    /// The revisions of this generation, ascending; the last is a tombstone in every
    /// generation but the current one.
    pub revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the last revision with `main <= at`.
    fn last_at_or_before(&self, at: i64) -> Option<usize> {
        self.revs.partition_point(|r| r.main <= at).checked_sub(1)
    }
}

/// The generations of one key, oldest first. Never empty: the last one is the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    /// The key's last modification.
    pub modified: Revision,
    generations: Vec<Generation>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }
}

/// What a key looked like at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    /// The revision holding the value.
    pub modified: Revision,
    /// The put that created this generation.
    pub created: Revision,
    /// The key's version at that revision.
    pub version: i64,
}

impl KeyIndex {
    /// Records a put at `rev`, which must be after every revision recorded so far.
    pub fn put(&mut self, rev: Revision) -> Result<(), String> {
        if rev <= self.modified {
            return Err(format!(
                "put at {rev} is not after the last modification {}",
                self.modified
            ));
        }
        let g = self.current_mut();
        if g.is_empty() {
            g.created = rev;
            // Most keys are written once or a few times; a first push would otherwise
            // allocate room for four revisions (48 bytes a key unused: ~48 MB for 1M keys).
            g.revs.reserve_exact(1);
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
        Ok(())
    }

    /// Records a delete at `rev`; `false` (and nothing changes) if the key does not exist now.
    pub fn tombstone(&mut self, rev: Revision) -> Result<bool, String> {
        if self.current().is_empty() {
            return Ok(false);
        }
        self.put(rev)?;
        self.generations.push(Generation::default());
        Ok(true)
    }

    /// Rebuilds the latest state of a key from its newest revision (used when restoring from
    /// the tree): a live key with its creation revision and version.
    pub fn restore(created: Revision, modified: Revision, ver: i64) -> Self {
        KeyIndex {
            modified,
            generations: vec![Generation {
                ver,
                created,
                revs: vec![modified],
            }],
        }
    }

    /// Rebuilds a key whose newest revision is a tombstone (its creation is compacted away).
    pub fn restore_tombstone(rev: Revision) -> Self {
        let mut k = KeyIndex::restore(Revision::default(), rev, 1);
        k.generations.push(Generation::default());
        k
    }

    fn current(&self) -> &Generation {
        // Invariant: never empty (constructors push one; compaction keeps at least one).
        &self.generations[self.generations.len() - 1]
    }

    fn current_mut(&mut self) -> &mut Generation {
        let n = self.generations.len();
        &mut self.generations[n - 1]
    }

    /// No revision at all is left (the key can be dropped from the index).
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// Whether the key exists now (its current generation has a revision).
    pub fn is_live(&self) -> bool {
        !self.current().is_empty()
    }

    /// The generations, oldest first (for tests and the checker).
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// The generation holding main revision `at`, if the key existed then.
    fn generation_at(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let Some(first) = g.revs.first() else {
                continue;
            };
            // A closed generation whose tombstone is at or before `at`: the key was deleted.
            if i != last && g.revs.last().is_some_and(|t| t.main <= at) {
                return None;
            }
            if first.main <= at {
                return Some(g);
            }
        }
        None
    }

    /// The key at main revision `at`, or `None` if it did not exist then.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        let g = self.generation_at(at)?;
        let n = g.last_at_or_before(at)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - 1 - n) as i64,
        })
    }

    /// The revisions with `main >= from`, oldest first, one per main revision (the largest
    /// sub: a transaction that wrote a key twice shows only its last write).
    pub fn since(&self, from: i64) -> Vec<Revision> {
        let since = Revision::new(from, 0);
        // Start at the newest generation created before `from` (earlier ones end before it).
        let mut start = 0;
        for (i, g) in self.generations.iter().enumerate().rev() {
            if i == 0 {
                break;
            }
            if !g.is_empty() && since > g.created {
                start = i;
                break;
            }
        }
        let mut out: Vec<Revision> = Vec::new();
        for g in &self.generations[start..] {
            for &r in &g.revs {
                if r < since {
                    continue;
                }
                match out.last_mut() {
                    Some(last) if last.main == r.main => *last = r,
                    _ => out.push(r),
                }
            }
        }
        out
    }

    /// Where compaction at `at` starts: the first generation that ends at or after `at` (or
    /// the current one), and in it the last revision `<= at`, which survives (added to
    /// `available`).
    fn compaction_point(
        &self,
        at: i64,
        available: &mut HashSet<Revision>,
    ) -> (usize, Option<usize>) {
        let mut gi = 0;
        while gi < self.generations.len() - 1 {
            let g = &self.generations[gi];
            if g.revs.last().is_some_and(|t| t.main >= at) {
                break;
            }
            gi += 1;
        }
        let ri = self.generations[gi].last_at_or_before(at);
        if let Some(ri) = ri {
            available.insert(self.generations[gi].revs[ri]);
        }
        (gi, ri)
    }

    /// Drops what compaction at `at` removes; `available` gains the revision `<= at` that
    /// stays (the value readers at `at` still need).
    pub fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        let (gi, ri) = self.compaction_point(at, available);
        if let Some(ri) = ri {
            self.generations[gi].revs.drain(..ri);
        }
        self.generations.drain(..gi);
    }

    /// What `compact(at)` would keep, without changing anything. Unlike `compact`, a tombstone
    /// at the compaction point is not kept (as etcd's hash-on-compaction expects).
    pub fn keep(&self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gi, ri) = self.compaction_point(at, available);
        let g = &self.generations[gi];
        if let Some(ri) = ri
            && ri + 1 == g.revs.len()
            && gi + 1 != self.generations.len()
        {
            available.remove(&g.revs[ri]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// etcd's example: put(1.0) put(2.0) tombstone(3.0) put(4.0) tombstone(5.0).
    fn example() -> KeyIndex {
        let mut k = KeyIndex::default();
        k.put(r(1)).unwrap();
        k.put(r(2)).unwrap();
        assert!(k.tombstone(r(3)).unwrap());
        k.put(r(4)).unwrap();
        assert!(k.tombstone(r(5)).unwrap());
        k
    }

    fn revs(k: &KeyIndex) -> Vec<Vec<i64>> {
        k.generations()
            .iter()
            .map(|g| g.revs.iter().map(|r| r.main).collect())
            .collect()
    }

    #[test]
    fn generations_follow_puts_and_tombstones() {
        let mut k = example();
        assert_eq!(revs(&k), vec![vec![1, 2, 3], vec![4, 5], vec![]]);
        assert_eq!(k.modified, r(5));
        assert!(!k.is_live());
        assert!(k.put(r(5)).is_err(), "a put must move forward");
        let mut k2 = k.clone();
        assert!(
            !k2.tombstone(r(6)).unwrap(),
            "deleting a deleted key changes nothing"
        );
        assert_eq!(k2, k);
    }

    #[test]
    fn get_sees_the_key_as_it_was() {
        let k = example();
        assert_eq!(k.get(0), None);
        assert_eq!(
            k.get(1),
            Some(KeyAt {
                modified: r(1),
                created: r(1),
                version: 1
            })
        );
        assert_eq!(
            k.get(2),
            Some(KeyAt {
                modified: r(2),
                created: r(1),
                version: 2
            })
        );
        assert_eq!(k.get(3), None, "deleted at 3");
        assert_eq!(
            k.get(4),
            Some(KeyAt {
                modified: r(4),
                created: r(4),
                version: 1
            })
        );
        assert_eq!(k.get(5), None);
        assert_eq!(k.get(9), None);
    }

    #[test]
    fn compaction_follows_etcds_examples() {
        // etcd: compact(2) → {2.0, 3.0(t)} {4.0, 5.0(t)} {}
        let mut k = example();
        let mut avail = HashSet::new();
        k.compact(2, &mut avail);
        assert_eq!(revs(&k), vec![vec![2, 3], vec![4, 5], vec![]]);
        assert_eq!(avail, HashSet::from([r(2)]));
        // compact(4) → {4.0, 5.0(t)} {}
        let mut avail = HashSet::new();
        k.compact(4, &mut avail);
        assert_eq!(revs(&k), vec![vec![4, 5], vec![]]);
        assert_eq!(avail, HashSet::from([r(4)]));
        // compact(5) → {5.0(t)} {}
        let mut avail = HashSet::new();
        k.compact(5, &mut avail);
        assert_eq!(revs(&k), vec![vec![5], vec![]]);
        assert_eq!(avail, HashSet::from([r(5)]));
        // compact(6) → {} : the key is gone.
        let mut avail = HashSet::new();
        k.compact(6, &mut avail);
        assert!(k.is_empty());
        assert!(avail.is_empty());
    }

    #[test]
    fn keep_drops_a_tombstone_at_the_compaction_point() {
        let k = example();
        let mut avail = HashSet::new();
        k.keep(3, &mut avail);
        assert!(
            avail.is_empty(),
            "the tombstone at 3 is not kept: {avail:?}"
        );
        let mut avail = HashSet::new();
        k.keep(2, &mut avail);
        assert_eq!(avail, HashSet::from([r(2)]));
        let mut avail = HashSet::new();
        k.keep(4, &mut avail);
        assert_eq!(avail, HashSet::from([r(4)]));
    }

    #[test]
    fn since_returns_one_revision_per_transaction() {
        let mut k = KeyIndex::default();
        k.put(Revision::new(1, 0)).unwrap();
        k.put(Revision::new(2, 0)).unwrap();
        k.put(Revision::new(2, 1)).unwrap();
        assert!(k.tombstone(Revision::new(3, 0)).unwrap());
        k.put(Revision::new(4, 0)).unwrap();
        assert_eq!(
            k.since(0),
            vec![
                Revision::new(1, 0),
                Revision::new(2, 1),
                Revision::new(3, 0),
                Revision::new(4, 0)
            ]
        );
        assert_eq!(k.since(3), vec![Revision::new(3, 0), Revision::new(4, 0)]);
        assert_eq!(k.since(5), vec![]);
    }

    #[test]
    fn restored_keys_behave_like_recorded_ones() {
        let mut k = KeyIndex::restore(r(2), r(7), 3);
        assert_eq!(
            k.get(7),
            Some(KeyAt {
                modified: r(7),
                created: r(2),
                version: 3
            })
        );
        k.put(r(8)).unwrap();
        assert_eq!(k.get(8).map(|a| a.version), Some(4));
        let t = KeyIndex::restore_tombstone(r(9));
        assert!(!t.is_live());
        assert_eq!(t.get(9), None);
    }
}
