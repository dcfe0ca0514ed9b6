//! The consistency checker: every page is reachable exactly once or free, never both; keys are
//! ordered within and across pages; every leaf is at the same depth; meta and freelist agree.

use std::collections::BTreeMap;

use crate::btree::cursor::{self, MAX_DEPTH, PageRef};
use crate::btree::db::{Db, lock};
use crate::btree::page::{self, Elements, HEADER_BYTES, PageKind, StoredValue};
use crate::btree::verified::Verify;
use crate::btree::{PageId, TxnId};
use crate::error::{EngineError, Result};

/// What [`Db::check`] found in a consistent database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The transaction checked.
    pub txn: TxnId,
    /// Pages in the file's allocated range, meta pages included.
    pub page_count: u64,
    /// Pages reachable from the tree (branch, leaf, overflow).
    pub reachable_pages: u64,
    /// Free pages (reusable or pending).
    pub free_pages: u64,
    /// Pages holding the freelist.
    pub freelist_pages: u64,
    /// Entries per bucket.
    pub buckets: BTreeMap<Vec<u8>, u64>,
    /// Depth of the deepest tree (a lone leaf is depth 1).
    pub max_depth: usize,
}

struct Walker<'a> {
    db: &'a Db,
    view: &'a dyn crate::btree::store::PageView,
    page_count: u64,
    owner: Vec<u8>,
    report: CheckReport,
}

const FREE: u8 = 1;
const REACHABLE: u8 = 2;
const META: u8 = 3;
const FREELIST: u8 = 4;

impl<'a> Walker<'a> {
    fn err(&self, page: PageId, reason: impl Into<String>) -> EngineError {
        page::corrupted(self.db.shared.store.path(), page, reason)
    }

    fn mark(&mut self, id: PageId, pages: u64, as_what: u8) -> Result<()> {
        for p in id.0..id.0.saturating_add(pages) {
            let Some(slot) = self.owner.get_mut(p as usize) else {
                return Err(self.err(
                    PageId(p),
                    format!("page beyond the high-water mark {}", self.page_count),
                ));
            };
            let prev = *slot;
            if prev == 0 {
                *slot = as_what;
            } else {
                let what = |w: u8| match w {
                    FREE => "free",
                    REACHABLE => "reachable",
                    META => "meta",
                    _ => "freelist",
                };
                return Err(self.err(
                    PageId(p),
                    format!("page is both {} and {}", what(prev), what(as_what)),
                ));
            }
        }
        Ok(())
    }

    fn load(&self, id: PageId) -> Result<PageRef<'a>> {
        let s = &self.db.shared;
        cursor::load_page(
            self.view,
            s.store.path(),
            s.page_size,
            self.page_count,
            Verify::Always,
            id,
        )
    }

    /// Walks the subtree at `id`; keys must lie in `[lo, hi)`. Returns (depth, entries).
    fn walk(
        &mut self,
        id: PageId,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        depth: usize,
    ) -> Result<(usize, u64)> {
        if depth > MAX_DEPTH {
            return Err(self.err(id, "tree deeper than the depth bound"));
        }
        let page = self.load(id)?;
        self.mark(id, u64::from(page.hdr.overflow) + 1, REACHABLE)?;
        if page.hdr.txn > self.report.txn {
            return Err(self.err(
                id,
                format!(
                    "page written by transaction {}, after the snapshot's {}",
                    page.hdr.txn, self.report.txn
                ),
            ));
        }
        if page.hdr.overflow != 0 {
            return Err(self.err(id, "tree node spans several pages"));
        }
        let els: Elements<'_> = page
            .elements()
            .ok_or_else(|| self.err(id, "element array exceeds the page"))?;
        let in_range = |k: &[u8]| lo.is_none_or(|l| k >= l) && hi.is_none_or(|h| k < h);
        match page.hdr.kind {
            PageKind::Leaf => {
                let mut prev: Option<&[u8]> = None;
                for i in 0..els.len() {
                    let k = els
                        .leaf_key(i)
                        .ok_or_else(|| self.err(id, format!("leaf key {i} out of bounds")))?;
                    if prev.is_some_and(|p| p >= k) || !in_range(k) {
                        return Err(self.err(
                            id,
                            format!("leaf key {i} out of order or outside its parent's range"),
                        ));
                    }
                    prev = Some(k);
                    match els
                        .leaf_value(i)
                        .ok_or_else(|| self.err(id, format!("leaf value {i} out of bounds")))?
                    {
                        StoredValue::Inline(_) => {}
                        StoredValue::Overflow { page: p, len } => {
                            let run = self.load(p)?;
                            if run.hdr.kind != PageKind::Overflow
                                || run.bytes.len() != HEADER_BYTES + len as usize
                            {
                                return Err(
                                    self.err(p, "overflow reference does not match its run")
                                );
                            }
                            self.mark(p, u64::from(run.hdr.overflow) + 1, REACHABLE)?;
                        }
                    }
                }
                if els.len() == 0 && depth > 1 {
                    return Err(self.err(id, "empty leaf below the root"));
                }
                Ok((1, els.len() as u64))
            }
            PageKind::Branch => {
                if els.len() == 0 {
                    return Err(self.err(id, "branch without children"));
                }
                let mut keys = Vec::with_capacity(els.len());
                for i in 1..els.len() {
                    let k = els
                        .branch_key(i)
                        .ok_or_else(|| self.err(id, format!("branch key {i} out of bounds")))?;
                    if keys.last().is_some_and(|p: &&[u8]| *p >= k) || !in_range(k) {
                        return Err(self.err(
                            id,
                            format!("branch key {i} out of order or outside its parent's range"),
                        ));
                    }
                    keys.push(k);
                }
                let mut depth_seen = None;
                let mut entries = 0;
                for i in 0..els.len() {
                    let child = els
                        .branch_child(i)
                        .ok_or_else(|| self.err(id, "branch child out of bounds"))?;
                    let clo = if i == 0 { lo } else { Some(keys[i - 1]) };
                    let chi = if i + 1 < els.len() { Some(keys[i]) } else { hi };
                    let (d, n) = self.walk(child, clo, chi, depth + 1)?;
                    if depth_seen.is_some_and(|s| s != d) {
                        return Err(self.err(id, "leaves at different depths"));
                    }
                    depth_seen = Some(d);
                    entries += n;
                }
                Ok((depth_seen.unwrap_or(0) + 1, entries))
            }
            k => Err(self.err(id, format!("a {k:?} page is linked into a tree"))),
        }
    }
}

impl Db {
    /// Checks the newest published tree against the writer's free pages (waiting for the
    /// current writer to finish). Every checksum is verified.
    pub fn check(&self) -> Result<CheckReport> {
        let w = lock(&self.shared.writer)?;
        let snap = lock(&self.shared.readers)?.current();
        let mut walker = Walker {
            db: self,
            view: &*snap.view,
            page_count: snap.page_count,
            owner: vec![
                0u8;
                usize::try_from(snap.page_count)
                    .unwrap_or(usize::MAX)
                    .min(1 << 34)
            ],
            report: CheckReport {
                txn: snap.txn,
                page_count: snap.page_count,
                ..CheckReport::default()
            },
        };
        if w.page_count != snap.page_count {
            return Err(walker.err(
                PageId(0),
                format!(
                    "writer has {} pages, snapshot {}",
                    w.page_count, snap.page_count
                ),
            ));
        }
        walker.mark(PageId(0), 2, META)?;
        if let Some((id, pages)) = w.freelist {
            let run = walker.load(id)?;
            if run.hdr.kind != PageKind::Freelist || u64::from(run.hdr.overflow) + 1 != pages {
                return Err(walker.err(id, "freelist run does not match the writer's record"));
            }
            walker.mark(id, pages, FREELIST)?;
            walker.report.freelist_pages = pages;
        }
        for id in w.free.all() {
            walker.mark(id, 1, FREE)?;
            walker.report.free_pages += 1;
        }
        if let Some(catalog) = snap.catalog {
            let (d, _) = walker.walk(catalog, None, None, 1)?;
            walker.report.max_depth = d;
            let txn = self.begin_read()?;
            let names = txn.bucket_names()?;
            for name in names {
                let root = txn.bucket_root_page(&name)?;
                let expected = txn.bucket_len(&name)?.unwrap_or(0);
                let (d, n) = match root {
                    Some(r) => walker.walk(r, None, None, 1)?,
                    None => (0, 0),
                };
                if n != expected {
                    return Err(walker.err(
                        root.unwrap_or(PageId(0)),
                        format!("bucket {name:?} has {n} entries, header says {expected}"),
                    ));
                }
                walker.report.max_depth = walker.report.max_depth.max(d);
                walker.report.buckets.insert(name, n);
            }
        }
        if let Some(p) = walker.owner.iter().position(|&o| o == 0) {
            return Err(walker.err(PageId(p as u64), "page neither reachable nor free (leaked)"));
        }
        walker.report.reachable_pages =
            walker.owner.iter().filter(|&&o| o == REACHABLE).count() as u64;
        Ok(walker.report)
    }
}
