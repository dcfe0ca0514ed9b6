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
///
/// Most keys hold one live generation with one revision (written once, or compacted down to
/// their latest value); that shape is kept inline, without a heap allocation. Every other shape
/// keeps its generations in a vector. Each change leaves the smallest shape that fits, so two
/// equal histories compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    /// The key's last modification.
    pub modified: Revision,
    history: History,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum History {
    /// One generation, empty: `[Generation::default()]` (a key not written yet).
    Empty,
    /// One live generation whose only revision is `modified`.
    Single { created: Revision, ver: i64 },
    /// Any other shape: the generations, oldest first (never empty).
    Gens(Vec<Generation>),
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex {
            modified: Revision::default(),
            history: History::Empty,
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
    /// The generations as a vector, whatever the shape (for the rare changes that need one).
    fn take_gens(&mut self) -> Vec<Generation> {
        match std::mem::replace(&mut self.history, History::Empty) {
            History::Empty => vec![Generation::default()],
            History::Single { created, ver } => {
                // Room for the revision a change is about to add.
                let mut revs = Vec::with_capacity(2);
                revs.push(self.modified);
                vec![Generation { ver, created, revs }]
            }
            History::Gens(v) if v.is_empty() => vec![Generation::default()],
            History::Gens(v) => v,
        }
    }

    /// Stores `gens` in the smallest shape that holds them.
    fn set_gens(&mut self, gens: Vec<Generation>) {
        self.history = match gens.as_slice() {
            [] => History::Empty,
            [g] if g.revs.is_empty() && g.ver == 0 && g.created == Revision::default() => {
                History::Empty
            }
            [g] if g.revs.as_slice() == [self.modified] => History::Single {
                created: g.created,
                ver: g.ver,
            },
            _ => History::Gens(gens),
        };
    }

    /// Records a put at `rev`, which must be after every revision recorded so far.
    pub fn put(&mut self, rev: Revision) -> Result<(), String> {
        if rev <= self.modified {
            return Err(format!(
                "put at {rev} is not after the last modification {}",
                self.modified
            ));
        }
        if matches!(self.history, History::Empty) {
            self.modified = rev;
            self.history = History::Single {
                created: rev,
                ver: 1,
            };
            return Ok(());
        }
        let mut gens = self.take_gens();
        push_put(&mut gens, rev);
        self.modified = rev;
        self.set_gens(gens);
        Ok(())
    }

    /// Records a delete at `rev`; `false` (and nothing changes) if the key does not exist now.
    pub fn tombstone(&mut self, rev: Revision) -> Result<bool, String> {
        if !self.is_live() {
            return Ok(false);
        }
        if rev <= self.modified {
            return Err(format!(
                "delete at {rev} is not after the last modification {}",
                self.modified
            ));
        }
        let mut gens = self.take_gens();
        push_put(&mut gens, rev);
        gens.push(Generation::default());
        self.modified = rev;
        self.set_gens(gens);
        Ok(true)
    }

    /// Rebuilds the latest state of a key from its newest revision (used when restoring from
    /// the tree): a live key with its creation revision and version.
    pub fn restore(created: Revision, modified: Revision, ver: i64) -> Self {
        KeyIndex {
            modified,
            history: History::Single { created, ver },
        }
    }

    /// Rebuilds a key whose newest revision is a tombstone (its creation is compacted away).
    pub fn restore_tombstone(rev: Revision) -> Self {
        KeyIndex {
            modified: rev,
            history: History::Gens(vec![
                Generation {
                    ver: 1,
                    created: Revision::default(),
                    revs: vec![rev],
                },
                Generation::default(),
            ]),
        }
    }

    /// No revision at all is left (the key can be dropped from the index).
    pub fn is_empty(&self) -> bool {
        match &self.history {
            History::Empty => true,
            History::Single { .. } => false,
            History::Gens(v) => v.iter().all(Generation::is_empty),
        }
    }

    /// Whether the key exists now (its current generation has a revision).
    pub fn is_live(&self) -> bool {
        match &self.history {
            History::Empty => false,
            History::Single { .. } => true,
            History::Gens(v) => v.last().is_some_and(|g| !g.is_empty()),
        }
    }

    /// Calls `f` with every revision held, oldest first.
    pub fn for_each_revision(&self, mut f: impl FnMut(Revision)) {
        match &self.history {
            History::Empty => {}
            History::Single { .. } => f(self.modified),
            History::Gens(v) => v.iter().flat_map(|g| g.revs.iter()).for_each(|&r| f(r)),
        }
    }

    /// The key at main revision `at`, or `None` if it did not exist then.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        match &self.history {
            History::Empty => None,
            History::Single { created, ver } => (self.modified.main <= at).then_some(KeyAt {
                modified: self.modified,
                created: *created,
                version: *ver,
            }),
            History::Gens(v) => {
                let g = generation_at(v, at)?;
                let n = g.last_at_or_before(at)?;
                Some(KeyAt {
                    modified: *g.revs.get(n)?,
                    created: g.created,
                    version: g.ver - (g.revs.len() - 1 - n) as i64,
                })
            }
        }
    }

    /// The revisions with `main >= from`, oldest first, one per main revision (the largest
    /// sub: a transaction that wrote a key twice shows only its last write).
    pub fn since(&self, from: i64) -> Vec<Revision> {
        match &self.history {
            History::Empty => Vec::new(),
            History::Single { .. } if self.modified >= Revision::new(from, 0) => {
                vec![self.modified]
            }
            History::Single { .. } => Vec::new(),
            History::Gens(v) => since(v, from),
        }
    }

    /// Drops what compaction at `at` removes; `available` gains the revision `<= at` that
    /// stays (the value readers at `at` still need).
    pub fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        match &self.history {
            History::Empty => {}
            History::Single { .. } => {
                if self.modified.main <= at {
                    available.insert(self.modified);
                }
            }
            History::Gens(_) => {
                let mut gens = self.take_gens();
                let (gi, ri) = compaction_point(&gens, at, available);
                if let Some(ri) = ri
                    && let Some(g) = gens.get_mut(gi)
                {
                    g.revs.drain(..ri);
                }
                gens.drain(..gi);
                self.set_gens(gens);
            }
        }
    }

    /// What `compact(at)` would keep, without changing anything. Unlike `compact`, a tombstone
    /// at the compaction point is not kept (as etcd's hash-on-compaction expects).
    pub fn keep(&self, at: i64, available: &mut HashSet<Revision>) {
        match &self.history {
            History::Empty => {}
            History::Single { .. } => {
                if self.modified.main <= at {
                    available.insert(self.modified);
                }
            }
            History::Gens(v) => {
                if self.is_empty() {
                    return;
                }
                let (gi, ri) = compaction_point(v, at, available);
                if let (Some(g), Some(ri)) = (v.get(gi), ri)
                    && ri + 1 == g.revs.len()
                    && gi + 1 != v.len()
                    && let Some(r) = g.revs.get(ri)
                {
                    available.remove(r);
                }
            }
        }
    }

    /// The generations, oldest first (for tests).
    #[cfg(test)]
    fn generations(&self) -> Vec<Generation> {
        self.clone().take_gens()
    }
}

/// Adds a put at `rev` to the current (last) generation.
fn push_put(gens: &mut Vec<Generation>, rev: Revision) {
    if gens.is_empty() {
        gens.push(Generation::default());
    }
    if let Some(g) = gens.last_mut() {
        if g.is_empty() {
            g.created = rev;
            // Most keys are written once or a few times; a first push would otherwise
            // allocate room for four revisions.
            g.revs.reserve_exact(1);
        }
        g.revs.push(rev);
        g.ver += 1;
    }
}

/// The generation holding main revision `at`, if the key existed then.
fn generation_at(gens: &[Generation], at: i64) -> Option<&Generation> {
    let last = gens.len().checked_sub(1)?;
    for (i, g) in gens.iter().enumerate().rev() {
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

/// [`KeyIndex::since`] over generations.
fn since(gens: &[Generation], from: i64) -> Vec<Revision> {
    let since = Revision::new(from, 0);
    // Start at the newest generation created before `from` (earlier ones end before it).
    let mut start = 0;
    for (i, g) in gens.iter().enumerate().rev() {
        if i == 0 {
            break;
        }
        if !g.is_empty() && since > g.created {
            start = i;
            break;
        }
    }
    let mut out: Vec<Revision> = Vec::new();
    for g in gens.get(start..).unwrap_or_default() {
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

/// Where compaction at `at` starts: the first generation that ends at or after `at` (or the
/// current one), and in it the last revision `<= at`, which survives (added to `available`).
fn compaction_point(
    gens: &[Generation],
    at: i64,
    available: &mut HashSet<Revision>,
) -> (usize, Option<usize>) {
    let mut gi = 0;
    while gi + 1 < gens.len() {
        if gens[gi].revs.last().is_some_and(|t| t.main >= at) {
            break;
        }
        gi += 1;
    }
    let Some(g) = gens.get(gi) else {
        return (gi, None);
    };
    let ri = g.last_at_or_before(at);
    if let Some(r) = ri.and_then(|ri| g.revs.get(ri)) {
        available.insert(*r);
    }
    (gi, ri)
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

    /// The key index as it was before the compact shapes: every key a vector of generations.
    /// The model the property test below holds the compact index to.
    mod reference {
        use super::super::*;

        /// The generations of one key, oldest first. Never empty: the last one is the current one.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Reference {
            /// The key's last modification.
            pub modified: Revision,
            generations: Vec<Generation>,
        }

        impl Default for Reference {
            fn default() -> Self {
                Reference {
                    modified: Revision::default(),
                    generations: vec![Generation::default()],
                }
            }
        }

        impl Reference {
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
                Reference {
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
                let mut k = Reference::restore(Revision::default(), rev, 1);
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
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put { next_main: bool },
        Tombstone { next_main: bool },
        Compact(i64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            5 => any::<bool>().prop_map(|next_main| Op::Put { next_main }),
            2 => any::<bool>().prop_map(|next_main| Op::Tombstone { next_main }),
            2 => (0..40i64).prop_map(Op::Compact),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Random puts, deletes and compactions: the compact shapes answer every question as
        /// the vector of generations does.
        #[test]
        fn compact_shapes_answer_like_the_reference(
            ops in proptest::collection::vec(op(), 1..40),
            restored in proptest::option::of((1..5i64, 0..3i64, proptest::bool::ANY)),
        ) {
            use proptest::prelude::*;
            let (mut k, mut m, mut rev) = match restored {
                None => (KeyIndex::default(), reference::Reference::default(), Revision::new(1, 0)),
                Some((main, ver, false)) => (
                    KeyIndex::restore(r(main.min(1)), r(main), ver + 1),
                    reference::Reference::restore(r(main.min(1)), r(main), ver + 1),
                    Revision::new(main + 1, 0),
                ),
                Some((main, _, true)) => (
                    KeyIndex::restore_tombstone(r(main)),
                    reference::Reference::restore_tombstone(r(main)),
                    Revision::new(main + 1, 0),
                ),
            };
            for op in ops {
                match op {
                    Op::Put { next_main } | Op::Tombstone { next_main } => {
                        if next_main {
                            rev = Revision::new(rev.main + 1, 0);
                        } else {
                            rev = Revision::new(rev.main, rev.sub + 1);
                        }
                        if matches!(op, Op::Put { .. }) {
                            prop_assert_eq!(k.put(rev).is_ok(), m.put(rev).is_ok());
                        } else {
                            prop_assert_eq!(k.tombstone(rev), m.tombstone(rev));
                        }
                        // Going backwards is refused by both.
                        prop_assert!(k.clone().put(k.modified).is_err());
                    }
                    Op::Compact(at) => {
                        if m.is_empty() {
                            continue;
                        }
                        let (mut a, mut b) = (HashSet::new(), HashSet::new());
                        k.keep(at, &mut a);
                        m.keep(at, &mut b);
                        prop_assert_eq!(&a, &b);
                        let (mut a, mut b) = (HashSet::new(), HashSet::new());
                        k.compact(at, &mut a);
                        m.compact(at, &mut b);
                        prop_assert_eq!(&a, &b);
                    }
                }
                prop_assert_eq!(k.modified, m.modified);
                prop_assert_eq!(&k.generations(), &m.generations().to_vec());
                prop_assert_eq!(k.is_empty(), m.is_empty());
                prop_assert_eq!(k.is_live(), m.is_live());
                let mut all = Vec::new();
                k.for_each_revision(|r| all.push(r));
                let want: Vec<Revision> =
                    m.generations().iter().flat_map(|g| g.revs.iter().copied()).collect();
                prop_assert_eq!(all, want);
                for at in 0..=rev.main + 1 {
                    prop_assert_eq!(k.get(at), m.get(at), "get({})", at);
                    prop_assert_eq!(k.since(at), m.since(at), "since({})", at);
                }
                // The smallest shape: a rebuilt index from the same generations is equal.
                let mut rebuilt = KeyIndex { modified: k.modified, history: History::Empty };
                rebuilt.set_gens(k.generations());
                prop_assert_eq!(&rebuilt, &k);
            }
        }
    }
}
