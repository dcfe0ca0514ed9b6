//! Read transactions: a registered reader pinned to one published snapshot.

use std::borrow::Cow;
use std::ops::Bound;
use std::sync::Arc;

use crate::btree::cursor::{self, Cursor, PageRef, Range, Source};
use crate::btree::db::{Shared, Snapshot, lock};
use crate::btree::node::{Child, Node};
use crate::btree::page;
use crate::btree::txn::decode_bucket;
use crate::btree::{PageId, TxnId};
use crate::error::{EngineError, Result};

/// A read-only view of one committed snapshot. Dropping it lets the writer reuse the pages
/// only it could still see.
pub struct ReadTxn {
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    reader_id: u64,
}

impl Source for ReadTxn {
    fn load(&self, id: PageId) -> Result<PageRef<'_>> {
        let s = &self.shared;
        cursor::load_page(
            &*self.snap.view,
            s.store.path(),
            s.page_size,
            self.snap.page_count,
            s.verify_mode(&self.snap.verified),
            id,
        )
    }
    fn node(&self, _idx: usize) -> Option<&Node> {
        None
    }
    fn corrupted(&self, page: PageId, reason: String) -> EngineError {
        page::corrupted(self.shared.store.path(), page, reason)
    }
}

impl ReadTxn {
    pub(crate) fn new(shared: Arc<Shared>, snap: Arc<Snapshot>, reader_id: u64) -> Self {
        ReadTxn {
            shared,
            snap,
            reader_id,
        }
    }

    /// The transaction this snapshot shows.
    pub fn txn_id(&self) -> TxnId {
        self.snap.txn
    }

    fn bucket_root(&self, name: &[u8]) -> Result<Option<(Option<PageId>, u64)>> {
        let root = self.snap.catalog.map(Child::Page);
        match cursor::get(self, root, name)? {
            Some(v) => decode_bucket(self, &v).map(Some),
            None => Ok(None),
        }
    }

    fn root(&self, bucket: &[u8]) -> Result<Option<Child>> {
        Ok(self
            .bucket_root(bucket)?
            .and_then(|(r, _)| r)
            .map(Child::Page))
    }

    /// A handle on one bucket of this snapshot (`None` if it does not exist): looks the bucket
    /// up once for many operations.
    pub fn tree(&self, bucket: &[u8]) -> Result<Option<Tree<'_>>> {
        Ok(self.bucket_root(bucket)?.map(|(root, entries)| Tree {
            txn: self,
            root: root.map(Child::Page),
            entries,
        }))
    }

    /// The value of `key` in `bucket`.
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<Cow<'_, [u8]>>> {
        let root = self.root(bucket)?;
        cursor::get(self, root, key)
    }

    /// Entries of `bucket` with keys between the bounds, ascending.
    pub fn range(&self, bucket: &[u8], lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Range<'_>> {
        Ok(Range::new(self, self.root(bucket)?, lo, hi, false))
    }

    /// Entries of `bucket` with keys between the bounds, descending.
    pub fn range_rev(
        &self,
        bucket: &[u8],
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Range<'_>> {
        Ok(Range::new(self, self.root(bucket)?, lo, hi, true))
    }

    /// A cursor over `bucket` (empty if the bucket does not exist).
    pub fn cursor(&self, bucket: &[u8]) -> Result<Cursor<'_>> {
        Ok(Cursor::new(self, self.root(bucket)?))
    }

    /// Number of entries in `bucket`, or `None` if it does not exist.
    pub fn bucket_len(&self, bucket: &[u8]) -> Result<Option<u64>> {
        Ok(self.bucket_root(bucket)?.map(|(_, n)| n))
    }

    /// Every bucket's name, ascending.
    pub fn bucket_names(&self) -> Result<Vec<Vec<u8>>> {
        let root = self.snap.catalog.map(Child::Page);
        Range::new(self, root, Bound::Unbounded, Bound::Unbounded, false)
            .map(|r| r.map(|(k, _)| k.into_owned()))
            .collect()
    }

    /// The catalog tree's root page (`None`: no buckets).
    pub(crate) fn catalog_root(&self) -> Option<PageId> {
        self.snap.catalog
    }

    pub(crate) fn bucket_root_page(&self, bucket: &[u8]) -> Result<Option<PageId>> {
        Ok(self.bucket_root(bucket)?.and_then(|(r, _)| r))
    }
}

/// One bucket of a read snapshot.
#[derive(Clone, Copy)]
pub struct Tree<'t> {
    txn: &'t ReadTxn,
    root: Option<Child>,
    entries: u64,
}

impl<'t> Tree<'t> {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Cow<'t, [u8]>>> {
        cursor::get(self.txn, self.root, key)
    }

    /// Entries between the bounds, ascending.
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Range<'t> {
        Range::new(self.txn, self.root, lo, hi, false)
    }

    /// Entries between the bounds, descending.
    pub fn range_rev(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Range<'t> {
        Range::new(self.txn, self.root, lo, hi, true)
    }

    /// A cursor over the bucket.
    pub fn cursor(&self) -> Cursor<'t> {
        Cursor::new(self.txn, self.root)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Whether the bucket is empty.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

impl Drop for ReadTxn {
    fn drop(&mut self) {
        if let Ok(mut r) = lock(&self.shared.readers) {
            r.end(self.snap.txn, self.reader_id);
        }
    }
}
