//! The write transaction: copy-on-write, split and merge, commit. (Readers: `read.rs`.)

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, MutexGuard};

use crate::btree::cursor::{self, PageRef, Range, Source};
use crate::btree::db::{Db, Durability, Snapshot, WriterState};
use crate::btree::node::{Branch, Child, Leaf, Node, Val};
use crate::btree::page::{self, ELEMENT_BYTES, HEADER_BYTES, Meta, OVERFLOW_REF_BYTES, PageKind};
use crate::btree::verified::VerifiedPages;
use crate::btree::write::PageWrites;
use crate::btree::{PageId, TxnId};
use crate::error::{EngineError, Result};

/// The largest value the engine stores.
pub const MAX_VALUE_BYTES: usize = 64 << 20;
/// The longest bucket name.
pub const MAX_BUCKET_NAME_BYTES: usize = 255;
const BUCKET_HEADER_BYTES: usize = 16;

/// The longest key for a page size: any two entries fit in one page, so splits always work.
pub fn max_key_bytes(page_size: usize) -> usize {
    (page_size - HEADER_BYTES) / 2 - ELEMENT_BYTES - OVERFLOW_REF_BYTES
}

/// Values longer than this go to their own overflow run.
fn inline_value_max(page_size: usize) -> usize {
    page_size / 4
}

pub(crate) fn decode_bucket(src: &dyn Source, v: &[u8]) -> Result<(Option<PageId>, u64)> {
    let (Some(root), Some(entries)) = (page::get_u64(v, 0), page::get_u64(v, 8)) else {
        return Err(src.corrupted(PageId(0), format!("bucket header of {} bytes", v.len())));
    };
    Ok(((root != 0).then_some(PageId(root)), entries))
}

fn check_bucket_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > MAX_BUCKET_NAME_BYTES {
        return Err(EngineError::InvalidBucketName {
            len: name.len(),
            max: MAX_BUCKET_NAME_BYTES,
        });
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct BucketState {
    root: Option<Child>,
    entries: u64,
    /// Changed in this transaction (its header must be rewritten).
    dirty: bool,
    /// Deleted (and not re-created) in this transaction.
    deleted: bool,
}

/// The one write transaction. Changes are visible to it at once and to readers after
/// [`WriteTxn::commit`]; dropping it without committing discards them.
pub struct WriteTxn<'db> {
    db: &'db Db,
    guard: MutexGuard<'db, WriterState>,
    base: Arc<Snapshot>,
    txn: TxnId,
    nodes: Vec<Node>,
    catalog: Option<Child>,
    buckets: BTreeMap<Vec<u8>, BucketState>,
    /// Runs reachable from the base tree that this transaction no longer reaches.
    freed: Vec<(PageId, u64)>,
    /// The verified-page map of the snapshot this transaction publishes (the base's, grown
    /// as the file grows).
    verified: Arc<VerifiedPages>,
    /// When the writer lock was taken.
    began: std::time::Instant,
}

impl Source for WriteTxn<'_> {
    fn load(&self, id: PageId) -> Result<PageRef<'_>> {
        let s = &self.db.shared;
        cursor::load_page(
            &*self.base.view,
            s.store.path(),
            s.page_size,
            self.base.page_count,
            s.verify_mode(&self.base.verified),
            id,
        )
    }
    fn node(&self, idx: usize) -> Option<&Node> {
        self.nodes.get(idx)
    }
    fn corrupted(&self, page: PageId, reason: String) -> EngineError {
        page::corrupted(self.db.shared.store.path(), page, reason)
    }
}

impl<'db> WriteTxn<'db> {
    pub(crate) fn new(
        db: &'db Db,
        guard: MutexGuard<'db, WriterState>,
        base: Arc<Snapshot>,
    ) -> Self {
        let txn = TxnId(guard.last_txn.0 + 1);
        let catalog = base.catalog.map(Child::Page);
        let verified = base.verified.clone();
        WriteTxn {
            verified,
            db,
            guard,
            base,
            txn,
            nodes: Vec::new(),
            catalog,
            buckets: BTreeMap::new(),
            freed: Vec::new(),
            began: std::time::Instant::now(),
        }
    }

    /// The id this transaction commits as.
    pub fn txn_id(&self) -> TxnId {
        self.txn
    }

    pub(crate) fn base_txn(&self) -> TxnId {
        self.base.txn
    }

    fn page_size(&self) -> usize {
        self.db.shared.page_size
    }

    fn state(&mut self, bucket: &[u8]) -> Result<Option<BucketState>> {
        if let Some(s) = self.buckets.get(bucket) {
            return Ok((!s.deleted).then_some(*s));
        }
        let found = match cursor::get(self, self.base.catalog.map(Child::Page), bucket)? {
            Some(v) => Some(decode_bucket(self, &v)?),
            None => None,
        };
        let Some((root, entries)) = found else {
            return Ok(None);
        };
        let s = BucketState {
            root: root.map(Child::Page),
            entries,
            dirty: false,
            deleted: false,
        };
        self.buckets.insert(bucket.to_vec(), s);
        Ok(Some(s))
    }

    fn root(&mut self, bucket: &[u8]) -> Result<Option<Child>> {
        Ok(self.state(bucket)?.and_then(|s| s.root))
    }

    /// The value of `key` in `bucket`, including this transaction's changes.
    pub fn get(&mut self, bucket: &[u8], key: &[u8]) -> Result<Option<Cow<'_, [u8]>>> {
        let root = self.root(bucket)?;
        cursor::get(self, root, key)
    }

    /// Entries of `bucket` between the bounds, ascending, including this transaction's changes.
    pub fn range(
        &mut self,
        bucket: &[u8],
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Range<'_>> {
        let root = self.root(bucket)?;
        Ok(Range::new(self, root, lo, hi, false))
    }

    /// Entries of `bucket` between the bounds, descending.
    pub fn range_rev(
        &mut self,
        bucket: &[u8],
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Range<'_>> {
        let root = self.root(bucket)?;
        Ok(Range::new(self, root, lo, hi, true))
    }

    /// Number of entries in `bucket`, or `None` if it does not exist.
    pub fn bucket_len(&mut self, bucket: &[u8]) -> Result<Option<u64>> {
        Ok(self.state(bucket)?.map(|s| s.entries))
    }

    /// Creates `bucket` if it does not exist.
    pub fn create_bucket(&mut self, bucket: &[u8]) -> Result<()> {
        check_bucket_name(bucket)?;
        if self.state(bucket)?.is_none() {
            self.buckets.insert(
                bucket.to_vec(),
                BucketState {
                    root: None,
                    entries: 0,
                    dirty: true,
                    deleted: false,
                },
            );
        }
        Ok(())
    }

    /// Deletes `bucket` and everything in it; `false` if it did not exist.
    pub fn delete_bucket(&mut self, bucket: &[u8]) -> Result<bool> {
        let Some(s) = self.state(bucket)? else {
            return Ok(false);
        };
        if let Some(root) = s.root {
            self.free_tree(root, 0)?;
        }
        self.buckets.insert(
            bucket.to_vec(),
            BucketState {
                root: None,
                entries: 0,
                dirty: true,
                deleted: true,
            },
        );
        Ok(true)
    }

    /// Frees every page and overflow run of a tree.
    fn free_tree(&mut self, child: Child, depth: usize) -> Result<()> {
        if depth > cursor::MAX_DEPTH {
            return Err(self.corrupted(PageId(0), "tree deeper than the depth bound".into()));
        }
        let (children, overflow) = match child {
            Child::Node(i) => match self.nodes.get(i) {
                Some(Node::Branch(b)) => (b.children.clone(), Vec::new()),
                Some(Node::Leaf(l)) => (
                    Vec::new(),
                    (0..l.len())
                        .filter_map(|j| overflow_run(l.val(j), self.page_size()))
                        .collect(),
                ),
                None => return Err(self.corrupted(PageId(0), "dangling dirty node".into())),
            },
            Child::Page(id) => {
                let node = self.decode(id)?;
                self.freed.push((id, 1));
                match node {
                    Node::Branch(b) => (b.children, Vec::new()),
                    Node::Leaf(l) => (
                        Vec::new(),
                        (0..l.len())
                            .filter_map(|j| overflow_run(l.val(j), self.page_size()))
                            .collect(),
                    ),
                }
            }
        };
        self.freed.extend(overflow);
        for c in children {
            self.free_tree(c, depth + 1)?;
        }
        Ok(())
    }

    fn decode(&self, id: PageId) -> Result<Node> {
        let page = self.load(id)?;
        let els = page
            .elements()
            .ok_or_else(|| self.corrupted(id, "element array exceeds the page".into()))?;
        let node = match page.hdr.kind {
            PageKind::Leaf => Leaf::decode(&els, &page.bytes).map(Node::Leaf),
            PageKind::Branch => Branch::decode(&els, &page.bytes).map(Node::Branch),
            k => return Err(self.corrupted(id, format!("a {k:?} page is linked into a tree"))),
        };
        let node =
            node.ok_or_else(|| self.corrupted(id, "element points outside the page".into()))?;
        if page.hdr.overflow != 0 {
            return Err(self.corrupted(id, "tree node spans several pages".into()));
        }
        if let Node::Branch(b) = &node
            && b.len() == 0
        {
            return Err(self.corrupted(id, "branch page without children".into()));
        }
        Ok(node)
    }

    /// The arena index of `child`, copying it out of its page (and freeing that page) first.
    fn make_dirty(&mut self, child: Child) -> Result<usize> {
        match child {
            Child::Node(i) => Ok(i),
            Child::Page(id) => {
                let node = self.decode(id)?;
                self.freed.push((id, 1));
                self.nodes.push(node);
                Ok(self.nodes.len() - 1)
            }
        }
    }

    /// Descends to the leaf for `key`, making the path dirty. Returns the path of
    /// `(branch, child position)` pairs and the leaf.
    fn dirty_path(
        &mut self,
        root: &mut Option<Child>,
        key: &[u8],
    ) -> Result<(Vec<(usize, usize)>, usize)> {
        let top = match *root {
            Some(c) => self.make_dirty(c)?,
            None => {
                self.nodes.push(Node::Leaf(Leaf::new()));
                self.nodes.len() - 1
            }
        };
        *root = Some(Child::Node(top));
        let mut path = Vec::new();
        let mut cur = top;
        loop {
            let (pos, child) = match &self.nodes[cur] {
                Node::Leaf(_) => return Ok((path, cur)),
                Node::Branch(b) => {
                    let pos = b.child_index(key);
                    (pos, b.children[pos])
                }
            };
            if path.len() >= cursor::MAX_DEPTH {
                return Err(self.corrupted(PageId(0), "tree deeper than the depth bound".into()));
            }
            let idx = self.make_dirty(child)?;
            if let Node::Branch(b) = &mut self.nodes[cur] {
                b.children[pos] = Child::Node(idx);
            }
            path.push((cur, pos));
            cur = idx;
        }
    }

    /// Copies the pages on the path to `key` in `bucket` (`None`: the catalog) to new pages at
    /// commit, as any change would, without changing an entry. Defrag uses it to move pages
    /// from the end of the file into free pages nearer the front (allocation takes the lowest
    /// free pages). A bucket that does not exist, or an empty tree, is left alone.
    pub(crate) fn touch(&mut self, bucket: Option<&[u8]>, key: &[u8]) -> Result<()> {
        match bucket {
            None => {
                let mut catalog = self.catalog;
                if catalog.is_some() {
                    self.dirty_path(&mut catalog, key)?;
                    self.catalog = catalog;
                }
            }
            Some(name) => {
                let Some(mut s) = self.state(name)? else {
                    return Ok(());
                };
                let mut root = s.root;
                if root.is_none() {
                    return Ok(());
                }
                self.dirty_path(&mut root, key)?;
                s.root = root;
                s.dirty = true;
                self.buckets.insert(name.to_vec(), s);
            }
        }
        Ok(())
    }

    /// Rewrites the value of `key` in `bucket` (an overflow value moves to a new run); `false`
    /// if the key is gone.
    pub(crate) fn rewrite(&mut self, bucket: &[u8], key: &[u8]) -> Result<bool> {
        let Some(v) = self.get(bucket, key)?.map(|v| v.into_owned()) else {
            return Ok(false);
        };
        self.put(bucket, key, &v)?;
        Ok(true)
    }

    /// Ends the file at the start of the run of reusable free pages that ends it (see
    /// `FreePages::cut_tail`): those pages leave the free set and the page count drops, in
    /// this transaction's meta. Returns the new page count.
    pub(crate) fn cut_tail(&mut self) -> u64 {
        let page_count = self.guard.page_count;
        let count = self.guard.free.cut_tail(page_count);
        if count < self.guard.page_count {
            self.guard.page_count = count;
            self.guard.shrunk_at = self.txn;
        }
        count
    }

    /// The page count as this transaction stands (the file's allocated pages).
    pub(crate) fn page_count(&self) -> u64 {
        self.guard.page_count
    }

    /// Inserts or replaces `key` in `bucket` (created on demand).
    pub fn put(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        check_bucket_name(bucket)?;
        let max = max_key_bytes(self.page_size());
        if key.is_empty() || key.len() > max {
            return Err(EngineError::KeyTooLarge {
                len: key.len(),
                max,
            });
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(EngineError::ValueTooLarge {
                len: value.len(),
                max: MAX_VALUE_BYTES,
            });
        }
        let mut s = self.state(bucket)?.unwrap_or(BucketState {
            root: None,
            entries: 0,
            dirty: true,
            deleted: false,
        });
        let mut root = s.root;
        let replaced = self.tree_put(&mut root, key, value)?;
        s.root = root;
        s.dirty = true;
        s.deleted = false;
        if !replaced {
            s.entries += 1;
        }
        self.buckets.insert(bucket.to_vec(), s);
        Ok(())
    }

    /// Puts into the tree at `root`; returns whether a value was replaced.
    fn tree_put(&mut self, root: &mut Option<Child>, key: &[u8], value: &[u8]) -> Result<bool> {
        let ps = self.page_size();
        let large = value.len() > inline_value_max(ps);
        let (path, leaf) = self.dirty_path(root, key)?;
        let Node::Leaf(l) = &mut self.nodes[leaf] else {
            return Err(self.corrupted(PageId(0), "path does not end in a leaf".into()));
        };
        let (pos, old) = l.put(key, value, large);
        let at_end = pos + 1 == l.len();
        if let Some(run) = old.and_then(|v| overflow_run(v, ps)) {
            self.freed.push(run);
        }
        self.split_up(root, &path, leaf, at_end);
        Ok(old.is_some())
    }

    /// Splits over-full nodes from `cur` up to the root.
    fn split_up(
        &mut self,
        root: &mut Option<Child>,
        path: &[(usize, usize)],
        mut cur: usize,
        mut at_end: bool,
    ) {
        let ps = self.page_size();
        let mut level = path.len();
        loop {
            let size = self.nodes[cur].size();
            if size <= ps {
                return;
            }
            // Appends (the MVCC layer's revision keys) fill the left page; others split evenly.
            let target = if at_end {
                ps
            } else {
                let n = (size - HEADER_BYTES).div_ceil(ps - HEADER_BYTES).max(2);
                let avg = (size - HEADER_BYTES).div_ceil(n);
                (HEADER_BYTES + avg + avg / 8).min(ps)
            };
            let pieces: Vec<(Vec<u8>, Child)> = match &mut self.nodes[cur] {
                Node::Leaf(l) => {
                    let rest = l.split(target);
                    let mut out = Vec::new();
                    for p in rest {
                        let sep = p.key(0).to_vec();
                        self.nodes.push(Node::Leaf(p));
                        out.push((sep, Child::Node(self.nodes.len() - 1)));
                    }
                    out
                }
                Node::Branch(b) => {
                    let rest = b.split(target);
                    let mut out = Vec::new();
                    for (sep, p) in rest {
                        self.nodes.push(Node::Branch(p));
                        out.push((sep, Child::Node(self.nodes.len() - 1)));
                    }
                    out
                }
            };
            if level == 0 {
                self.nodes
                    .push(Node::Branch(Branch::new_root(Child::Node(cur), pieces)));
                let new_root = self.nodes.len() - 1;
                *root = Some(Child::Node(new_root));
                cur = new_root;
                continue;
            }
            level -= 1;
            let (parent, pos) = path[level];
            if let Node::Branch(b) = &mut self.nodes[parent] {
                at_end = at_end && pos + 1 == b.len();
                b.insert_after(pos, pieces);
            }
            cur = parent;
        }
    }

    /// Deletes `key` from `bucket`; `false` if it was not there.
    pub fn delete(&mut self, bucket: &[u8], key: &[u8]) -> Result<bool> {
        let Some(mut s) = self.state(bucket)? else {
            return Ok(false);
        };
        if cursor::get(self, s.root, key)?.is_none() {
            return Ok(false);
        }
        let mut root = s.root;
        self.tree_delete(&mut root, key)?;
        s.root = root;
        s.dirty = true;
        s.entries = s.entries.saturating_sub(1);
        self.buckets.insert(bucket.to_vec(), s);
        Ok(true)
    }

    fn tree_delete(&mut self, root: &mut Option<Child>, key: &[u8]) -> Result<()> {
        let ps = self.page_size();
        let (path, leaf) = self.dirty_path(root, key)?;
        if let Node::Leaf(l) = &mut self.nodes[leaf]
            && let Ok(i) = l.search(key)
        {
            let old = l.remove(i);
            if let Some(run) = overflow_run(old, ps) {
                self.freed.push(run);
            }
        }
        self.rebalance_up(&path, leaf)?;
        self.collapse_root(root);
        Ok(())
    }

    /// Removes empty nodes and merges small ones into a sibling, from `cur` up.
    fn rebalance_up(&mut self, path: &[(usize, usize)], mut cur: usize) -> Result<()> {
        let ps = self.page_size();
        for &(parent, pos) in path.iter().rev() {
            if self.nodes[cur].len() == 0 {
                if let Node::Branch(b) = &mut self.nodes[parent] {
                    b.remove_child(pos);
                }
                cur = parent;
                continue;
            }
            if self.nodes[cur].size() >= ps / 4 {
                return Ok(());
            }
            let (siblings, sib_pos) = match &self.nodes[parent] {
                Node::Branch(b) => (b.len(), if pos > 0 { pos - 1 } else { pos + 1 }),
                Node::Leaf(_) => {
                    return Err(self.corrupted(PageId(0), "leaf on a branch path".into()));
                }
            };
            if siblings < 2 {
                cur = parent;
                continue;
            }
            let sib_child = match &self.nodes[parent] {
                Node::Branch(b) => b.children[sib_pos],
                Node::Leaf(_) => unreachable_leaf(),
            };
            let sib = self.make_dirty(sib_child)?;
            let (lpos, left, right) = if sib_pos < pos {
                (sib_pos, sib, cur)
            } else {
                (pos, cur, sib)
            };
            let sep = match &mut self.nodes[parent] {
                Node::Branch(b) => {
                    b.children[sib_pos] = Child::Node(sib);
                    b.key(lpos).to_vec()
                }
                Node::Leaf(_) => unreachable_leaf(),
            };
            let fits =
                self.nodes[left].size() + self.nodes[right].size() - HEADER_BYTES + sep.len() <= ps;
            if fits {
                let right_node = std::mem::replace(&mut self.nodes[right], Node::Leaf(Leaf::new()));
                match (&mut self.nodes[left], &right_node) {
                    (Node::Leaf(l), Node::Leaf(r)) => l.merge(r),
                    (Node::Branch(l), Node::Branch(r)) => l.merge(&sep, r),
                    _ => {
                        return Err(self.corrupted(PageId(0), "siblings of different kinds".into()));
                    }
                }
                if let Node::Branch(b) = &mut self.nodes[parent] {
                    b.remove_child(lpos + 1);
                }
            }
            cur = parent;
        }
        Ok(())
    }

    /// A root branch with one child is replaced by that child; an empty root leaf by nothing.
    fn collapse_root(&mut self, root: &mut Option<Child>) {
        while let Some(Child::Node(i)) = *root {
            match &self.nodes[i] {
                Node::Branch(b) if b.len() == 1 => *root = Some(b.children[0]),
                Node::Branch(b) if b.len() == 0 => *root = None,
                Node::Leaf(l) if l.len() == 0 => *root = None,
                _ => return,
            }
        }
    }

    fn alloc(&mut self, pages: u64) -> PageId {
        match self.guard.free.alloc(pages) {
            Some(id) => id,
            None => {
                let id = PageId(self.guard.page_count);
                self.guard.page_count += pages;
                id
            }
        }
    }

    /// Writes the dirty subtree at `child` to new pages (children first); returns its root page.
    fn spill(&mut self, child: Child, writes: &mut PageWrites) -> Result<PageId> {
        let idx = match child {
            Child::Page(id) => return Ok(id),
            Child::Node(i) => i,
        };
        let ps = self.page_size();
        let txn = self.txn;
        let mut node = std::mem::replace(&mut self.nodes[idx], Node::Leaf(Leaf::new()));
        match &mut node {
            Node::Branch(b) => {
                for j in 0..b.children.len() {
                    let id = self.spill(b.children[j], writes)?;
                    b.children[j] = Child::Page(id);
                }
            }
            Node::Leaf(l) => {
                for j in 0..l.len() {
                    if let Val::Large { off, len } = l.val(j) {
                        let used = HEADER_BYTES + len as usize;
                        let pages = page::pages_for(used, ps);
                        let id = self.alloc(pages as u64);
                        let buf = writes.add(id, pages * ps);
                        buf[HEADER_BYTES..used].copy_from_slice(l.val_bytes(off, len));
                        page::seal(buf, PageKind::Overflow, id, txn, 0, used, ps);
                        l.set_overflow(j, id, len);
                    }
                }
            }
        }
        let id = self.alloc(1);
        let buf = writes.add(id, ps);
        match &node {
            Node::Branch(b) => b.encode(buf, id, txn, ps),
            Node::Leaf(l) => l.encode(buf, id, txn, ps),
        }
        if writes.is_full() {
            self.write_out(writes)?;
        }
        self.nodes[idx] = node;
        Ok(id)
    }

    /// Commits. With [`Durability::Durable`] it returns once the transaction survives a crash;
    /// the pages are written and published under the writer lock, the fdatasyncs happen after
    /// it is released, so the next writer need not wait for them.
    pub fn commit(self, durability: Durability) -> Result<()> {
        self.commit_timed(durability).map(|_| ())
    }

    /// [`WriteTxn::commit`], returning how long this transaction held the writer lock (from
    /// `begin_write` returning to the lock's release): what it could have made another writer
    /// wait.
    pub(crate) fn commit_timed(mut self, durability: Durability) -> Result<std::time::Duration> {
        let shared = self.db.shared.clone();
        let started = std::time::Instant::now();
        let meta = match self.prepare(durability) {
            Ok(m) => m,
            Err(e) => {
                shared.poison(&e);
                return Err(e);
            }
        };
        let began = self.began;
        drop(self);
        let held = began.elapsed();
        match meta {
            Some(meta) => shared.finish_durable(meta).map(|()| {
                crate::observe::durable_commit(started.elapsed());
                held
            }),
            None => Ok(held),
        }
    }

    /// Discards every change.
    pub fn abort(self) {}

    /// Writes out the pages encoded so far.
    fn write_out(&mut self, writes: &mut PageWrites) -> Result<()> {
        let shared = &self.db.shared;
        shared.ensure_len(self.guard.page_count)?;
        self.verified = VerifiedPages::covering(&self.verified, self.guard.page_count);
        writes.write(shared, &self.verified)
    }

    fn prepare(&mut self, durability: Durability) -> Result<Option<Meta>> {
        let mut writes = std::mem::take(&mut self.guard.writes);
        writes.begin(durability == Durability::Durable);
        let dirty: Vec<(Vec<u8>, BucketState)> = self
            .buckets
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(n, s)| (n.clone(), *s))
            .collect();
        for (name, s) in dirty {
            let mut catalog = self.catalog;
            if s.deleted {
                if cursor::get(self, catalog, &name)?.is_some() {
                    self.tree_delete(&mut catalog, &name)?;
                }
            } else {
                let root = match s.root {
                    Some(c) => self.spill(c, &mut writes)?.0,
                    None => 0,
                };
                let mut header = [0u8; BUCKET_HEADER_BYTES];
                header[..8].copy_from_slice(&root.to_le_bytes());
                header[8..].copy_from_slice(&s.entries.to_le_bytes());
                self.tree_put(&mut catalog, &name, &header)?;
            }
            self.catalog = catalog;
        }
        let catalog = match self.catalog {
            Some(c) => Some(self.spill(c, &mut writes)?),
            None => None,
        };
        let txn = self.txn;
        for (id, pages) in std::mem::take(&mut self.freed) {
            self.guard.free.free(txn, id, pages);
        }
        let meta = match durability {
            Durability::Fast => None,
            Durability::Durable => Some(self.write_freelist(catalog, &mut writes)?),
        };
        self.write_out(&mut writes)?;
        self.guard.writes = writes;
        let shared = &self.db.shared;
        let snapshot = Snapshot {
            txn,
            catalog,
            page_count: self.guard.page_count,
            view: shared.store.view()?,
            verified: self.verified.clone(),
        };
        shared.publish(snapshot)?;
        self.guard.last_txn = txn;
        Ok(meta)
    }

    /// Frees the previous freelist run and writes a new one listing every free page.
    fn write_freelist(&mut self, catalog: Option<PageId>, writes: &mut PageWrites) -> Result<Meta> {
        let ps = self.page_size();
        let txn = self.txn;
        if let Some((old, pages)) = self.guard.freelist.take() {
            self.guard.free.free(txn, old, pages);
        }
        let estimate = self.guard.free.count();
        let freelist = if estimate == 0 {
            PageId(0)
        } else {
            let pages = page::pages_for(page::freelist_bytes(estimate), ps);
            let id = self.alloc(pages as u64);
            let ids = self.guard.free.all();
            // Allocating the run can only remove ids from the free set.
            assert!(ids.len() <= estimate);
            let used = page::freelist_bytes(ids.len());
            let buf = writes.add(id, pages * ps);
            page::encode_freelist(buf, &ids);
            page::seal(buf, PageKind::Freelist, id, txn, ids.len() as u32, used, ps);
            self.guard.freelist = Some((id, pages as u64));
            id
        };
        Ok(Meta {
            page_size: ps as u32,
            txn,
            catalog: catalog.unwrap_or(PageId(0)),
            freelist,
            page_count: self.guard.page_count,
        })
    }
}

fn unreachable_leaf() -> ! {
    // The caller matched the same node as a branch a moment earlier under `&mut self`.
    panic!("node changed kind under the writer")
}

/// The overflow run a value occupies, as `(first page, pages)`.
fn overflow_run(v: Val, page_size: usize) -> Option<(PageId, u64)> {
    match v {
        Val::Overflow { page, len } => Some((
            page,
            page::pages_for(HEADER_BYTES + len as usize, page_size) as u64,
        )),
        _ => None,
    }
}
