//! Defragmentation while reads and writes go on: give the free pages at the end of the file
//! back to the file system.
//!
//! Defrag is a sequence of ordinary, bounded write transactions (see `docs/engine.md`,
//! "Defragmentation"):
//!
//! 1. **Scan** (a read snapshot, no lock held): the boundary is the number of pages in use
//!    plus some slack; every tree page at or past it, and every overflow run at or past it,
//!    is noted by a key that leads to it.
//! 2. **Move** (write transactions of at most `step_keys` keys each): each noted key's path
//!    is copied, as any change would copy it; allocation takes the lowest free pages, so the
//!    pages move toward the front and the ones at the end become free. A durable commit
//!    every few steps lets the freed pages be reused.
//! 3. **Cut** (one durable write transaction): once no reader can see the freed pages and
//!    their freeing is durable (the reuse horizon, `free.rs`), the run of free pages that
//!    ends the file leaves the freelist and the page count drops; a second durable commit
//!    puts a meta with the lower page count in both slots.
//! 4. **Truncate** (under the writer lock, in chunks): once every live reader's snapshot is
//!    at least the cut and both meta slots name at most the current page count, the file is
//!    truncated to the page count with `ftruncate`, then fdatasync'd.
//!
//! Every step is a crash-safe commit on its own: a crash leaves the last durable tree, whose
//! pages all lie inside the file (the file is never cut below a page count a meta slot
//! names). No step holds the writer lock for longer than one bounded transaction.

use std::time::{Duration, Instant};

use crate::btree::cursor::{MAX_DEPTH, Source};
use crate::btree::db::{Db, Durability, lock};
use crate::btree::page::{PageKind, StoredValue};
use crate::btree::read::ReadTxn;
use crate::btree::{PageId, TxnId};
use crate::error::Result;

/// How [`Db::defrag`] proceeds.
#[derive(Clone, Debug)]
pub struct DefragOptions {
    /// Keys whose paths one write transaction copies (bounds how long a step holds the
    /// writer lock).
    pub step_keys: usize,
    /// A durable commit after this many steps, so the pages the moves freed can be reused.
    pub sync_every_steps: usize,
    /// Rounds of scan and move at most (concurrent writers may take pages past the boundary).
    pub rounds_max: usize,
    /// Free pages left below the boundary for concurrent writers, at least.
    pub slack_pages_min: u64,
    /// How long to wait for readers of older snapshots to end, before the cut and before the
    /// truncation. When they outlive it the file is left longer (a later defrag cuts it).
    pub reader_wait: Duration,
    /// Bytes removed from the file per `ftruncate` (each under the writer lock).
    pub truncate_step_bytes: u64,
    /// A pause between steps, so defrag never takes the writer lock back to back.
    pub step_pause: Duration,
    /// Test hook: run [`Db::check`] after every step (feature `testing`).
    #[cfg(feature = "testing")]
    pub check_each_step: bool,
}

impl Default for DefragOptions {
    fn default() -> Self {
        DefragOptions {
            step_keys: 256,
            sync_every_steps: 16,
            rounds_max: 4,
            slack_pages_min: 64,
            reader_wait: Duration::from_secs(10),
            truncate_step_bytes: 16 << 20,
            step_pause: Duration::from_millis(1),
            #[cfg(feature = "testing")]
            check_each_step: false,
        }
    }
}

/// What one [`Db::defrag`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragReport {
    /// The file's length before, in bytes.
    pub file_bytes_before: u64,
    /// The file's length after, in bytes.
    pub file_bytes_after: u64,
    /// Pages allocated (in use or free) before.
    pub page_count_before: u64,
    /// Pages allocated after.
    pub page_count_after: u64,
    /// Free pages before.
    pub free_pages_before: u64,
    /// Free pages after.
    pub free_pages_after: u64,
    /// Rounds of scan and move.
    pub rounds: usize,
    /// Write transactions defrag ran (moves, syncs, the cut).
    pub steps: usize,
    /// Keys whose paths were copied.
    pub keys_moved: u64,
    /// The longest any one defrag step held the writer lock (what it could make a writer
    /// wait), truncation chunks included.
    pub longest_step: Duration,
    /// Wall time of the whole defrag.
    pub elapsed: Duration,
    /// Whether the file was truncated to its page count (false: readers of older snapshots
    /// outlived `reader_wait`, or nothing was left to cut).
    pub truncated: bool,
}

/// A key that leads to a page to move.
struct Item {
    /// `None`: the catalog.
    bucket: Option<Vec<u8>>,
    key: Vec<u8>,
    /// The key's value is an overflow run to move (rewrite the value, not only the path).
    rewrite: bool,
}

impl Db {
    /// Moves the pages at the end of the file into free pages nearer the front and truncates
    /// the file, while reads and writes go on. Each step is an ordinary bounded write
    /// transaction; readers keep their snapshots. One defrag runs at a time (a second call
    /// waits for the first).
    pub fn defrag(&self, opts: &DefragOptions) -> Result<DefragReport> {
        let started = Instant::now();
        let _only = lock(&self.shared.defrag)?;
        let before = self.stats()?;
        let mut report = DefragReport {
            file_bytes_before: before.file_bytes,
            page_count_before: before.page_count,
            free_pages_before: before.free_pages,
            ..DefragReport::default()
        };
        let step_keys = opts.step_keys.max(1);
        for _ in 0..opts.rounds_max {
            // Pages freed by recent commits become reusable once durable: the moves can use
            // them.
            self.durable_step(&mut report)?;
            let (page_count, used) = {
                let w = lock(&self.shared.writer)?;
                (w.page_count, w.page_count - w.free.count() as u64)
            };
            let slack = (used / 64).max(opts.slack_pages_min);
            let boundary = used.saturating_add(slack);
            if boundary >= page_count {
                break;
            }
            let items = scan(&self.begin_read()?, boundary)?;
            if items.is_empty() {
                break;
            }
            report.rounds += 1;
            for (n, chunk) in items.chunks(step_keys).enumerate() {
                let mut w = self.begin_write()?;
                for it in chunk {
                    if it.rewrite {
                        if let Some(b) = &it.bucket {
                            w.rewrite(b, &it.key)?;
                        }
                    } else {
                        w.touch(it.bucket.as_deref(), &it.key)?;
                    }
                }
                let held = w.commit_timed(Durability::Fast)?;
                report.note_step(held);
                report.keys_moved += chunk.len() as u64;
                self.checked(opts)?;
                if (n + 1) % opts.sync_every_steps.max(1) == 0 {
                    self.durable_step(&mut report)?;
                    self.checked(opts)?;
                }
                if !opts.step_pause.is_zero() {
                    std::thread::sleep(opts.step_pause);
                }
            }
            self.durable_step(&mut report)?;
        }
        self.cut(opts, &mut report)?;
        report.truncated = self.truncate(opts, &mut report)?;
        let after = self.stats()?;
        report.file_bytes_after = after.file_bytes;
        report.page_count_after = after.page_count;
        report.free_pages_after = after.free_pages;
        report.elapsed = started.elapsed();
        tracing::info!(?report, "defrag done");
        Ok(report)
    }

    /// The `check_each_step` test hook.
    fn checked(&self, opts: &DefragOptions) -> Result<()> {
        #[cfg(feature = "testing")]
        if opts.check_each_step {
            self.check()?;
        }
        let _ = opts;
        Ok(())
    }

    /// A durable commit of whatever is published (possibly nothing new), timed as a step.
    fn durable_step(&self, report: &mut DefragReport) -> Result<TxnId> {
        let w = self.begin_write()?;
        let txn = w.txn_id();
        let held = w.commit_timed(Durability::Durable)?;
        report.note_step(held);
        Ok(txn)
    }

    /// Waits (at most until `deadline`) until no live reader's snapshot is older than `txn`;
    /// returns whether that holds.
    fn wait_readers(&self, txn: TxnId, deadline: Instant) -> Result<bool> {
        loop {
            let oldest = lock(&self.shared.readers)?.oldest().map(|(t, _)| t);
            if oldest.is_none_or(|t| t >= txn) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Step 3: drops the free run that ends the file from the freelist and lowers the page
    /// count, durably, then writes a second durable meta so both slots name the lower count.
    fn cut(&self, opts: &DefragOptions, report: &mut DefragReport) -> Result<()> {
        // The pages the moves freed become reusable once their freeing is durable (the last
        // durable step) and no reader of an older snapshot is left.
        let synced = self.durable_step(report)?;
        self.wait_readers(synced, Instant::now() + opts.reader_wait)?;
        let mut w = self.begin_write()?;
        let old = w.page_count();
        let new = w.cut_tail();
        let held = w.commit_timed(Durability::Durable)?;
        report.note_step(held);
        self.checked(opts)?;
        if new < old {
            tracing::debug!(old, new, "defrag: page count cut");
            let w = self.begin_write()?;
            let held = w.commit_timed(Durability::Durable)?;
            report.note_step(held);
        }
        Ok(())
    }

    /// Step 4: truncates the file to the page count, in chunks, each under the writer lock,
    /// once no live snapshot and no meta slot reaches past it; then makes it durable.
    fn truncate(&self, opts: &DefragOptions, report: &mut DefragReport) -> Result<bool> {
        let deadline = Instant::now() + opts.reader_wait;
        let ps = self.shared.page_size as u64;
        let chunk = opts.truncate_step_bytes.max(ps);
        let mut cut_any = false;
        loop {
            let w = lock(&self.shared.writer)?;
            let began = Instant::now();
            self.shared.check_poison()?;
            let target = w.page_count * ps;
            let len = self.shared.store.len()?;
            if len <= target {
                break;
            }
            let metas_max = lock(&self.shared.sync)?.page_counts.into_iter().max();
            if metas_max.is_none_or(|m| m > w.page_count) {
                // A meta slot still names more pages (a cut not yet followed by a second
                // durable commit): commit once more, then look again.
                drop(w);
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                self.durable_step(report)?;
                continue;
            }
            // Rule 1 of `mmap.rs`: every live snapshot from `shrunk_at` on has at most the
            // current page count; an older one may still reach past it.
            let oldest = lock(&self.shared.readers)?.oldest().map(|(t, _)| t);
            if oldest.is_some_and(|t| t < w.shrunk_at) {
                drop(w);
                if Instant::now() >= deadline {
                    tracing::info!("defrag: an old reader outlived the wait; file left longer");
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let to = target.max(len.saturating_sub(chunk));
            if let Err(e) = self.shared.store.shrink(to) {
                self.shared.poison(&e);
                return Err(e);
            }
            cut_any = true;
            report.note_step(began.elapsed());
            drop(w);
            self.checked(opts)?;
            if !opts.step_pause.is_zero() {
                std::thread::sleep(opts.step_pause);
            }
        }
        if cut_any && let Err(e) = self.shared.store.sync_data() {
            self.shared.poison(&e);
            return Err(e);
        }
        Ok(cut_any)
    }
}

impl DefragReport {
    fn note_step(&mut self, held: Duration) {
        self.steps += 1;
        self.longest_step = self.longest_step.max(held);
    }
}

/// Step 1: a key leading to every page at or past `boundary`, per tree (catalog first).
fn scan(r: &ReadTxn, boundary: u64) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    if let Some(root) = r.catalog_root() {
        walk(r, None, root, &[], boundary, false, 1, &mut out)?;
    }
    for name in r.bucket_names()? {
        if let Some(root) = r.bucket_root_page(&name)? {
            walk(r, Some(&name), root, &[], boundary, false, 1, &mut out)?;
        }
    }
    Ok(out)
}

/// Visits the subtree at `id` whose keys start at `lo`. `ancestor` says a page above still
/// needs a key (the first leaf below it provides one: the path to it passes through them all).
#[expect(
    clippy::too_many_arguments,
    reason = "a recursive walk: the tree, the key that leads here, and the running output"
)]
fn walk(
    r: &ReadTxn,
    bucket: Option<&[u8]>,
    id: PageId,
    lo: &[u8],
    boundary: u64,
    ancestor: bool,
    depth: usize,
    out: &mut Vec<Item>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(r.corrupted(id, "tree deeper than the depth bound".into()));
    }
    let page = r.load(id)?;
    let here = id.0 >= boundary || ancestor;
    let els = page
        .elements()
        .ok_or_else(|| r.corrupted(id, "element array exceeds the page".into()))?;
    match page.hdr.kind {
        PageKind::Leaf => {
            if here {
                out.push(Item {
                    bucket: bucket.map(<[u8]>::to_vec),
                    key: lo.to_vec(),
                    rewrite: false,
                });
            }
            for i in 0..els.len() {
                let value = els
                    .leaf_value(i)
                    .ok_or_else(|| r.corrupted(id, format!("leaf value {i} out of bounds")))?;
                if let (StoredValue::Overflow { page, .. }, Some(b)) = (value, bucket)
                    && page.0 >= boundary
                {
                    let key = els
                        .leaf_key(i)
                        .ok_or_else(|| r.corrupted(id, format!("leaf key {i} out of bounds")))?;
                    out.push(Item {
                        bucket: Some(b.to_vec()),
                        key: key.to_vec(),
                        rewrite: true,
                    });
                }
            }
            Ok(())
        }
        PageKind::Branch => {
            let n = els.len();
            let mut children = Vec::with_capacity(n);
            for i in 0..n {
                let child = els
                    .branch_child(i)
                    .ok_or_else(|| r.corrupted(id, "branch child out of bounds".into()))?;
                let key = if i == 0 {
                    lo.to_vec()
                } else {
                    els.branch_key(i)
                        .ok_or_else(|| r.corrupted(id, format!("branch key {i} out of bounds")))?
                        .to_vec()
                };
                children.push((child, key));
            }
            drop(page);
            for (i, (child, key)) in children.into_iter().enumerate() {
                walk(
                    r,
                    bucket,
                    child,
                    &key,
                    boundary,
                    here && i == 0,
                    depth + 1,
                    out,
                )?;
            }
            Ok(())
        }
        k => Err(r.corrupted(id, format!("a {k:?} page is linked into a tree"))),
    }
}
