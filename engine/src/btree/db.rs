//! The database handle: open, snapshots, the writer lock, commit and sync.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::btree::free::{FreePages, Readers, horizon};
use crate::btree::page::{self, HEADER_BYTES, META_BYTES, Meta, PageKind};
use crate::btree::read::ReadTxn;
use crate::btree::store::{FileStore, PageStore, PageView, StoreKind};
use crate::btree::txn::WriteTxn;
use crate::btree::verified::{VerifiedPages, Verify};
use crate::btree::write::PageWrites;
use crate::btree::{PageId, TxnId};
use crate::error::{EngineError, Result};

/// How a database is opened.
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a new file (a power of two, 1 KiB to 64 KiB). An existing file keeps its own.
    pub page_size: usize,
    /// Which backend reads pages.
    pub store: StoreKind,
    /// When reads verify page checksums (the checker always verifies every page).
    pub verify_checksums: VerifyReads,
    /// The file grows by doubling up to this step, then by this step.
    pub grow_step_max_bytes: u64,
    /// The mmap backend reserves at least this much address space, and twice the file, so
    /// that growth rarely needs a new mapping (a new mapping re-faults every page it touches).
    pub map_reserve_min_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            store: StoreKind::Mmap,
            verify_checksums: VerifyReads::FirstRead,
            grow_step_max_bytes: 64 << 20,
            map_reserve_min_bytes: 256 << 20,
        }
    }
}

/// When page reads verify checksums. Structure is always bounds-checked, so a damaged page
/// never causes a panic; checksums catch damage that still looks well-formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyReads {
    /// The first time this process reads a page (hot pages are verified once, not on every
    /// lookup), except pages this process wrote itself: their checksums were computed from
    /// the bytes written. Every page found on disk at open is checked when first read.
    #[default]
    FirstRead,
    /// On every read.
    Every,
    /// Never (like LMDB and bbolt, which have no page checksums).
    Never,
}

/// How a write transaction commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Pages written and fdatasync'd, then the meta page written and fdatasync'd: survives a
    /// crash once `commit` returns.
    Durable,
    /// Pages written and the new root published to readers at once; durable with the next
    /// durable commit or [`Db::sync`]. A crash before that loses it, and never corrupts the file.
    Fast,
}

/// A published tree: what a reader sees.
pub(crate) struct Snapshot {
    pub txn: TxnId,
    pub catalog: Option<PageId>,
    pub page_count: u64,
    pub view: Arc<dyn PageView>,
    /// Pages already checksummed by this process.
    pub verified: Arc<VerifiedPages>,
}

/// The writer's state, under the writer lock.
pub(crate) struct WriterState {
    pub free: FreePages,
    pub page_count: u64,
    /// The freelist run the newest durable-or-prepared meta points to.
    pub freelist: Option<(PageId, u64)>,
    pub last_txn: TxnId,
    /// The last transaction that lowered the page count (defrag's cut; 0: none since open).
    /// Every snapshot from it on has at most the current page count.
    pub shrunk_at: TxnId,
    /// The page buffer commits encode into, kept for the next commit.
    pub writes: PageWrites,
}

pub(crate) struct SyncState {
    /// The meta slot (0 or 1) holding the newest durable meta.
    slot: u64,
    /// The page count each meta slot names (0 for an invalid slot): the file is never cut
    /// below either, so whichever meta an open picks finds all its pages.
    pub page_counts: [u64; 2],
}

pub(crate) struct Shared {
    pub store: Arc<dyn PageStore>,
    pub page_size: usize,
    verify: VerifyReads,
    grow_step_max_bytes: u64,
    pub readers: Mutex<Readers<Snapshot>>,
    pub writer: Mutex<WriterState>,
    pub sync: Mutex<SyncState>,
    durable_txn: AtomicU64,
    poison: Mutex<Option<String>>,
    /// Held by a running defrag (one at a time).
    pub defrag: Mutex<()>,
}

/// Counters about the file and its readers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Page size in bytes.
    pub page_size: usize,
    /// Pages allocated in the file (in use or free).
    pub page_count: u64,
    /// Free pages (reusable now or once readers and durability allow).
    pub free_pages: u64,
    /// Free pages still waiting for a reader or a durable commit.
    pub pending_pages: u64,
    /// The file's length in bytes.
    pub file_bytes: u64,
    /// The newest published transaction.
    pub txn: TxnId,
    /// The newest durable transaction.
    pub durable_txn: TxnId,
    /// Live read transactions.
    pub readers: usize,
    /// How long the oldest live reader has been open.
    pub oldest_reader_age: Option<Duration>,
}

/// A database: one file of copy-on-write B+trees (named buckets), one writer at a time and any
/// number of readers, each on its own consistent snapshot.
#[derive(Clone)]
pub struct Db {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| EngineError::Poisoned {
        cause: "a thread panicked while holding an engine lock".into(),
    })
}

impl Db {
    /// Opens (creating if absent) the database at `path`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let path = path.as_ref();
        let store: Arc<dyn PageStore> = match opts.store {
            StoreKind::Mmap => Arc::new(crate::btree::mmap::MmapStore::open(
                path,
                opts.map_reserve_min_bytes,
            )?),
            StoreKind::Pread => Arc::new(FileStore::open(path)?),
        };
        Db::open_with_store(store, opts)
    }

    /// Opens a database kept in `store` (used for the simulated store in tests).
    pub fn open_with_store(store: Arc<dyn PageStore>, opts: Options) -> Result<Db> {
        if !page::valid_page_size(opts.page_size) {
            return Err(EngineError::InvalidOption(format!(
                "page size {} is not a power of two in 1024..=65536",
                opts.page_size
            )));
        }
        let (meta, slot, other_pages) = if store.len()? == 0 {
            let (meta, slot) = init(&*store, opts.page_size)?;
            (meta, slot, meta.page_count)
        } else {
            read_meta(&*store)?
        };
        let mut page_counts = [0u64; 2];
        page_counts[slot as usize] = meta.page_count;
        page_counts[1 - slot as usize] = other_pages;
        let page_size = meta.page_size as usize;
        let file_len = store.len()?;
        if file_len < meta.page_count * page_size as u64 {
            return Err(page::corrupted(
                store.path(),
                PageId(meta.page_count),
                format!(
                    "file truncated: meta says {} pages of {page_size} bytes, file has {file_len} bytes",
                    meta.page_count
                ),
            ));
        }
        let view = store.view()?;
        let (free, freelist) = load_freelist(&*view, store.path(), &meta)?;
        let snapshot = Arc::new(Snapshot {
            txn: meta.txn,
            catalog: (meta.catalog.0 != 0).then_some(meta.catalog),
            page_count: meta.page_count,
            view,
            verified: VerifiedPages::covering(&Arc::default(), meta.page_count),
        });
        let shared = Arc::new(Shared {
            store,
            page_size,
            verify: opts.verify_checksums,
            grow_step_max_bytes: opts.grow_step_max_bytes.max(page_size as u64),
            readers: Mutex::new(Readers::new(snapshot)),
            writer: Mutex::new(WriterState {
                free,
                page_count: meta.page_count,
                freelist,
                last_txn: meta.txn,
                shrunk_at: TxnId(0),
                writes: PageWrites::default(),
            }),
            sync: Mutex::new(SyncState { slot, page_counts }),
            durable_txn: AtomicU64::new(meta.txn.0),
            poison: Mutex::new(None),
            defrag: Mutex::new(()),
        });
        let db = Db { shared };
        // Read the catalog root now, so a damaged file is reported on open.
        db.begin_read()?.bucket_names()?;
        tracing::debug!(
            backend = db.shared.store.kind(),
            txn = meta.txn.0,
            pages = meta.page_count,
            "opened database"
        );
        Ok(db)
    }

    /// Starts a read transaction on the newest published snapshot. It never blocks on the
    /// writer and the writer never waits for it.
    pub fn begin_read(&self) -> Result<ReadTxn> {
        let (snap, id) = lock(&self.shared.readers)?.begin(|s| s.txn);
        Ok(ReadTxn::new(self.shared.clone(), snap, id))
    }

    /// Starts the write transaction, waiting for the previous one to finish.
    pub fn begin_write(&self) -> Result<WriteTxn<'_>> {
        let mut guard = lock(&self.shared.writer)?;
        self.shared.check_poison()?;
        let (base, oldest) = {
            let r = lock(&self.shared.readers)?;
            (r.current(), r.oldest().map(|(t, _)| t))
        };
        let h = horizon(
            oldest,
            TxnId(self.shared.durable_txn.load(Ordering::Acquire)),
        );
        guard.free.release_up_to(h);
        Ok(WriteTxn::new(self, guard, base))
    }

    /// Makes every published transaction durable (a durable commit of an empty transaction,
    /// skipped when nothing is newer than the last durable commit).
    pub fn sync(&self) -> Result<()> {
        let txn = self.begin_write()?;
        if txn.base_txn().0 == self.shared.durable_txn.load(Ordering::Acquire) {
            return Ok(());
        }
        txn.commit(Durability::Durable)
    }

    /// Lets the process's mapped pages go (they stay in the page cache; later reads fault them
    /// back in), if no read transaction is open; returns whether it did. Used after a bulk
    /// scan (the MVCC index rebuild) that touched every page once, so resident memory holds
    /// what is used, not everything read at startup.
    pub fn release_mapped_pages(&self) -> Result<bool> {
        // The writer lock excludes a write transaction (which reads pages of its base
        // snapshot); the reader table's lock, held with no reader registered, excludes readers.
        let _writer = lock(&self.shared.writer)?;
        let readers = lock(&self.shared.readers)?;
        if readers.count() > 0 {
            return Ok(false);
        }
        self.shared.store.release_mapped()?;
        drop(readers);
        Ok(true)
    }

    /// The pages of the last published commit, in bytes: the high-water mark of the file's
    /// used part, in use or free (bbolt's `Tx.Size`, which etcd's backend quota compares). The
    /// file itself is longer by up to one growth step. Unlike [`stats`](Self::stats) it takes
    /// no lock a writer holds, so every request may ask.
    pub fn size_bytes(&self) -> Result<u64> {
        let pages = lock(&self.shared.readers)?.current().page_count;
        Ok(pages * self.shared.page_size as u64)
    }

    /// File and reader statistics.
    pub fn stats(&self) -> Result<Stats> {
        let (txn, readers, oldest) = {
            let r = lock(&self.shared.readers)?;
            (r.current().txn, r.count(), r.oldest())
        };
        let w = lock(&self.shared.writer)?;
        Ok(Stats {
            page_size: self.shared.page_size,
            page_count: w.page_count,
            free_pages: w.free.count() as u64,
            pending_pages: w.free.pending_count() as u64,
            file_bytes: self.shared.store.len()?,
            txn,
            durable_txn: TxnId(self.shared.durable_txn.load(Ordering::Acquire)),
            readers,
            oldest_reader_age: oldest.map(|(_, at)| at.elapsed()),
        })
    }

    /// The backend's name (`mmap`, `pread`, `sim`).
    pub fn backend(&self) -> &'static str {
        self.shared.store.kind()
    }
}

impl Shared {
    pub(crate) fn verify_mode<'a>(&self, verified: &'a VerifiedPages) -> Verify<'a> {
        match self.verify {
            VerifyReads::FirstRead => Verify::Once(verified),
            VerifyReads::Every => Verify::Always,
            VerifyReads::Never => Verify::Never,
        }
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        match &*lock(&self.poison)? {
            Some(cause) => Err(EngineError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first failure; every later write fails with it.
    pub(crate) fn poison(&self, e: &EngineError) {
        if let Ok(mut p) = self.poison.lock()
            && p.is_none()
        {
            tracing::error!(error = %e, "database handle poisoned");
            *p = Some(e.to_string());
        }
    }

    /// Grows the file so pages `[0, page_count)` exist, doubling up to the step limit.
    pub(crate) fn ensure_len(&self, page_count: u64) -> Result<()> {
        let need = page_count * self.page_size as u64;
        let have = self.store.len()?;
        if have >= need {
            return Ok(());
        }
        let step = have.clamp(1 << 20, self.grow_step_max_bytes);
        let target = need.div_ceil(step) * step;
        self.store.grow(target)
    }

    /// Publishes a committed tree to readers.
    pub(crate) fn publish(&self, snapshot: Snapshot) -> Result<()> {
        lock(&self.readers)?.publish(Arc::new(snapshot));
        Ok(())
    }

    pub(crate) fn durable_txn(&self) -> TxnId {
        TxnId(self.durable_txn.load(Ordering::Acquire))
    }

    /// The second half of a durable commit, outside the writer lock: fdatasync the pages,
    /// write the meta into the slot not holding the newest durable meta, fdatasync it.
    /// Durable commits finish in transaction order; one already covered by a later one is done.
    pub(crate) fn finish_durable(&self, meta: Meta) -> Result<()> {
        let mut sync = lock(&self.sync)?;
        if self.durable_txn().0 >= meta.txn.0 {
            return Ok(());
        }
        self.check_poison()?;
        let r = (|| {
            self.store.sync_data()?;
            let slot = 1 - sync.slot;
            let mut buf = vec![0u8; self.page_size];
            buf[..META_BYTES].copy_from_slice(&meta.encode());
            self.store
                .write_durable(slot * self.page_size as u64, &buf)?;
            Ok(slot)
        })();
        match r {
            Ok(slot) => {
                sync.slot = slot;
                sync.page_counts[slot as usize] = meta.page_count;
                self.durable_txn.store(meta.txn.0, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.poison(&e);
                Err(e)
            }
        }
    }
}

/// Writes a new file's two meta pages (both for transaction 0) and syncs them.
fn init(store: &dyn PageStore, page_size: usize) -> Result<(Meta, u64)> {
    let meta = Meta {
        page_size: page_size as u32,
        txn: TxnId(0),
        catalog: PageId(0),
        freelist: PageId(0),
        page_count: 2,
    };
    let mut buf = vec![0u8; 2 * page_size];
    buf[..META_BYTES].copy_from_slice(&meta.encode());
    buf[page_size..page_size + META_BYTES].copy_from_slice(&meta.encode());
    store.write_at(0, &buf)?;
    store.sync_data()?;
    Ok((meta, 0))
}

/// Reads both meta pages and picks the valid one with the highest transaction id; also
/// returns the page count the other slot names (0 if it is invalid).
fn read_meta(store: &dyn PageStore) -> Result<(Meta, u64, u64)> {
    let view = store.view()?;
    let len = store.len()?;
    let mut reasons = Vec::new();
    let first = view
        .read(0, META_BYTES.min(len as usize))
        .map(|b| Meta::decode(&b));
    let m0 = match first {
        Ok(Ok(m)) => Some(m),
        Ok(Err(r)) => {
            reasons.push(format!("meta 0: {r}"));
            None
        }
        Err(e) => {
            reasons.push(format!("meta 0: {e}"));
            None
        }
    };
    // Meta 1 sits one page in; if meta 0 is unreadable, try every valid page size.
    let sizes: Vec<usize> = match m0 {
        Some(m) => vec![m.page_size as usize],
        None => (10..=16).map(|s| 1usize << s).collect(),
    };
    let mut m1 = None;
    for ps in sizes {
        if (ps + META_BYTES) as u64 > len {
            continue;
        }
        match view.read(ps as u64, META_BYTES).map(|b| Meta::decode(&b)) {
            Ok(Ok(m)) if m.page_size as usize == ps => {
                m1 = Some(m);
                break;
            }
            Ok(Ok(_)) => reasons.push(format!(
                "meta 1 at {ps}: page size disagrees with its offset"
            )),
            Ok(Err(r)) => reasons.push(format!("meta 1 at {ps}: {r}")),
            Err(e) => reasons.push(format!("meta 1 at {ps}: {e}")),
        }
    }
    match (m0, m1) {
        (Some(a), Some(b)) if a.page_size != b.page_size => Err(EngineError::NoValidMeta {
            file: store.path().to_path_buf(),
            reason: "the two meta pages disagree on the page size".into(),
        }),
        (Some(a), Some(b)) => Ok(if b.txn.0 > a.txn.0 {
            (b, 1, a.page_count)
        } else {
            (a, 0, b.page_count)
        }),
        (Some(a), None) => {
            tracing::warn!(file = %store.path().display(), reasons = %reasons.join("; "), "meta page 1 is invalid; using meta page 0");
            Ok((a, 0, 0))
        }
        (None, Some(b)) => {
            tracing::warn!(file = %store.path().display(), reasons = %reasons.join("; "), "meta page 0 is invalid; using meta page 1");
            Ok((b, 1, 0))
        }
        (None, None) => Err(EngineError::NoValidMeta {
            file: store.path().to_path_buf(),
            reason: reasons.join("; "),
        }),
    }
}

/// Loads the durable freelist run named by `meta`.
fn load_freelist(
    view: &dyn PageView,
    path: &Path,
    meta: &Meta,
) -> Result<(FreePages, Option<(PageId, u64)>)> {
    if meta.freelist.0 == 0 {
        return Ok((FreePages::default(), None));
    }
    let ps = meta.page_size as usize;
    let id = meta.freelist;
    let head = view.read(id.0 * ps as u64, ps)?;
    let hdr = page::parse_header(&head, id, ps).map_err(|r| page::corrupted(path, id, r))?;
    if hdr.kind != PageKind::Freelist {
        return Err(page::corrupted(
            path,
            id,
            format!(
                "meta names page {} as the freelist but it is a {:?} page",
                id.0, hdr.kind
            ),
        ));
    }
    let pages = u64::from(hdr.overflow) + 1;
    if id.0 + pages > meta.page_count {
        return Err(page::corrupted(
            path,
            id,
            "freelist run extends past the last page",
        ));
    }
    drop(head);
    let run = view.read(id.0 * ps as u64, pages as usize * ps)?;
    let sum = page::run_checksum(&run, hdr.used as usize);
    if sum != hdr.checksum {
        return Err(EngineError::ChecksumMismatch {
            file: path.to_path_buf(),
            page: id,
            expected: hdr.checksum,
            actual: sum,
        });
    }
    if page::freelist_bytes(hdr.count as usize) > hdr.used as usize {
        return Err(page::corrupted(path, id, "freelist count exceeds its run"));
    }
    let ids = page::decode_freelist(&run, hdr.count, meta.page_count)
        .map_err(|r| page::corrupted(path, id, r))?;
    if ids.iter().any(|p| p.0 >= id.0 && p.0 < id.0 + pages) {
        return Err(page::corrupted(
            path,
            id,
            "freelist lists its own pages as free",
        ));
    }
    debug_assert!(HEADER_BYTES <= hdr.used as usize);
    Ok((FreePages::from_released(&ids), Some((id, pages))))
}
