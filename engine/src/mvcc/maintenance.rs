//! Background work on the store: physical compaction (a thread the store owns) and
//! defragmentation (run by the caller, on its own thread, while applies go on).
//!
//! Compaction in three parts (docs/mvcc.md, "Compaction"):
//! 1. `apply` writes `scheduledCompactRev` in the applying transaction, raises the index's
//!    compaction revision (reads below it are refused from then on) and hands the revision to
//!    the compactor. The applier does nothing more.
//! 2. The compactor thread drops compacted history from the key index, `compaction_batch / 4` keys
//!    per hold of the index lock, and collects the revisions at or below the compaction that
//!    the index keeps.
//! 3. It deletes every other revision at or below the compaction from the `key` bucket,
//!    `compaction_batch` per write transaction (the B+tree's single writer lock: applies wait
//!    at most one batch), pausing `compaction_pause` between batches; the last batch writes
//!    `finishedCompactRev`. Batches count toward the durability cadence.
//!
//! A newer compaction scheduled meanwhile supersedes the running one (it removes everything
//! the older would). [`MvccStore::wait_compacted`] waits for the physical part, as etcd's
//! `Compact` with `physical: true` does. Dropping the store stops the thread between batches;
//! an interrupted compaction resumes on the next open (`scheduledCompactRev >
//! finishedCompactRev`).

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::btree::{Db, DefragOptions, DefragReport, Durability};
use crate::mvcc::ops::MvccError;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::{
    FINISHED_COMPACT, Index, KEY_BUCKET, META_BUCKET, MvccOptions, MvccStore, storage,
};

/// When applied entries were last made durable, and how many since.
pub(super) struct Cadence {
    pub(super) last_sync: Instant,
    pub(super) pending: u64,
}

/// The store's durability cadence, shared with the compactor thread.
#[derive(Clone)]
pub(super) struct Syncer {
    pub(super) db: Db,
    pub(super) cadence: Arc<Mutex<Cadence>>,
    pub(super) interval: Duration,
    pub(super) entries: u64,
}

impl Syncer {
    /// Counts `n` entries (or compaction deletions) toward the cadence.
    pub(super) fn add(&self, n: u64) {
        if let Ok(mut c) = self.cadence.lock() {
            c.pending += n;
        }
    }

    pub(super) fn sync(&self) -> Result<(), MvccError> {
        self.db.sync().map_err(storage)?;
        if let Ok(mut c) = self.cadence.lock() {
            c.pending = 0;
            c.last_sync = Instant::now();
        }
        Ok(())
    }

    pub(super) fn maybe_sync(&self) -> Result<bool, MvccError> {
        let due = match self.cadence.lock() {
            Ok(c) => {
                c.pending > 0
                    && (c.pending >= self.entries || c.last_sync.elapsed() >= self.interval)
            }
            Err(_) => true,
        };
        if due {
            self.sync()?;
        }
        Ok(due)
    }
}

#[derive(Default)]
struct State {
    /// The newest compaction revision handed to the compactor.
    scheduled: i64,
    /// The newest compaction whose physical removal finished (committed, published).
    finished: i64,
    /// The error that stopped the compactor, if one did.
    failed: Option<MvccError>,
    stop: bool,
}

/// The compactor's mailbox: what is scheduled, what is finished, and the thread.
pub(super) struct Compactor {
    state: Mutex<State>,
    cv: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock_state(c: &Compactor) -> Result<MutexGuard<'_, State>, MvccError> {
    c.state
        .lock()
        .map_err(|_| storage("compactor lock poisoned"))
}

/// What the compactor thread works with.
struct Work {
    syncer: Syncer,
    index: Arc<RwLock<Index>>,
    compactor: Arc<Compactor>,
    batch: usize,
    pause: Duration,
}

enum Outcome {
    Done,
    Superseded,
    Stopped,
}

impl Compactor {
    /// Starts the compactor thread; `finished` is the last finished compaction on disk.
    pub(super) fn start(
        syncer: Syncer,
        index: Arc<RwLock<Index>>,
        opts: &MvccOptions,
        finished: i64,
    ) -> Result<Arc<Compactor>, MvccError> {
        let compactor = Arc::new(Compactor {
            state: Mutex::new(State {
                scheduled: finished,
                finished,
                ..State::default()
            }),
            cv: Condvar::new(),
            thread: Mutex::new(None),
        });
        let work = Work {
            syncer,
            index,
            compactor: compactor.clone(),
            batch: opts.compaction_batch.max(1),
            pause: opts.compaction_pause,
        };
        let handle = std::thread::Builder::new()
            .name("strata-compactor".into())
            .spawn(move || work.run())
            .map_err(|e| storage(format!("start the compactor thread: {e}")))?;
        *compactor
            .thread
            .lock()
            .map_err(|_| storage("compactor lock poisoned"))? = Some(handle);
        Ok(compactor)
    }

    /// Hands a compaction revision to the thread.
    pub(super) fn schedule(&self, rev: i64) -> Result<(), MvccError> {
        let mut s = lock_state(self)?;
        s.scheduled = s.scheduled.max(rev);
        self.cv.notify_all();
        Ok(())
    }

    /// Stops the thread (between batches) and waits for it.
    pub(super) fn shutdown(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
            self.cv.notify_all();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the compactor thread panicked");
        }
    }

    fn wait(&self, rev: i64, deadline: Option<Instant>) -> Result<bool, MvccError> {
        let mut s = lock_state(self)?;
        loop {
            if let Some(e) = &s.failed {
                return Err(e.clone());
            }
            if s.finished >= rev || s.scheduled < rev {
                return Ok(s.finished >= rev);
            }
            if s.stop {
                return Err(storage("the store is closing"));
            }
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => left.min(Duration::from_millis(100)),
                    None => return Ok(false),
                },
            };
            s = self
                .cv
                .wait_timeout(s, wait)
                .map_err(|_| storage("compactor lock poisoned"))?
                .0;
        }
    }
}

impl Work {
    fn run(self) {
        loop {
            let rev = {
                let Ok(mut s) = self.compactor.state.lock() else {
                    return;
                };
                while !s.stop && s.scheduled <= s.finished {
                    s = match self.compactor.cv.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
                if s.stop {
                    return;
                }
                s.scheduled
            };
            let outcome = self.compact(rev);
            let Ok(mut s) = self.compactor.state.lock() else {
                return;
            };
            match outcome {
                Ok(Outcome::Done) => s.finished = s.finished.max(rev),
                Ok(Outcome::Superseded) => {}
                Ok(Outcome::Stopped) => return,
                Err(e) => {
                    tracing::error!(error = %e, rev, "compaction failed");
                    s.failed = Some(e);
                    self.compactor.cv.notify_all();
                    return;
                }
            }
            self.compactor.cv.notify_all();
        }
    }

    /// Keys compacted per hold of the index lock: a quarter of a tree batch (an index entry
    /// costs more than a tree deletion; readers and the applier wait for the hold).
    fn index_batch(&self) -> usize {
        (self.batch / 4).max(1)
    }

    /// Whether to stop the current job: the store is closing, or a newer compaction is due.
    fn interrupted(&self, rev: i64) -> Option<Outcome> {
        match self.compactor.state.lock() {
            Ok(s) if s.stop => Some(Outcome::Stopped),
            Ok(s) if s.scheduled > rev => Some(Outcome::Superseded),
            Ok(_) => None,
            Err(_) => Some(Outcome::Stopped),
        }
    }

    /// Sleeps `compaction_pause`, waking early (with the reason) if the store closes or a
    /// newer compaction is scheduled.
    fn pause(&self, rev: i64) -> Option<Outcome> {
        if self.pause.is_zero() {
            return None;
        }
        let deadline = Instant::now() + self.pause;
        let Ok(mut s) = self.compactor.state.lock() else {
            return Some(Outcome::Stopped);
        };
        loop {
            if s.stop {
                return Some(Outcome::Stopped);
            }
            if s.scheduled > rev {
                return Some(Outcome::Superseded);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            s = match self.compactor.cv.wait_timeout(s, left) {
                Ok((s, _)) => s,
                Err(_) => return Some(Outcome::Stopped),
            };
        }
    }

    fn write_index(&self) -> Result<std::sync::RwLockWriteGuard<'_, Index>, MvccError> {
        self.index
            .write()
            .map_err(|_| storage("index lock poisoned"))
    }

    fn compact(&self, rev: i64) -> Result<Outcome, MvccError> {
        // The index, a batch of keys per hold of its lock; the revisions at or below `rev` it
        // keeps are what the tree keeps.
        let mut keep: HashSet<Revision> = HashSet::new();
        let mut from: Option<Vec<u8>> = None;
        loop {
            let mut idx = self.write_index()?;
            let lo = match &from {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Unbounded,
            };
            let keys: Vec<Vec<u8>> = idx
                .keys
                .range((lo, Bound::Unbounded))
                .take(self.index_batch())
                .map(|(k, _)| k.to_vec())
                .collect();
            let mut available = HashSet::new();
            // Collected here and added to `keep` after the lock is released: growing a set of
            // millions of revisions (a rehash) under the lock stalled readers for 0.5 s.
            let mut kept = Vec::new();
            for k in &keys {
                let empty = match idx.keys.get_mut(k) {
                    Some(ki) => {
                        ki.compact(rev, &mut available);
                        ki.for_each_revision(|r| {
                            if r.main <= rev {
                                kept.push(r);
                            }
                        });
                        ki.is_empty()
                    }
                    None => false,
                };
                if empty {
                    idx.keys.remove(k);
                }
            }
            drop(idx);
            keep.extend(kept);
            if keys.len() < self.index_batch() {
                break;
            }
            from = keys.last().cloned();
            // Pause between holds: a writer that unlocks and relocks at once would keep the
            // index from the applier and readers (the lock hands itself to the running thread).
            if let Some(o) = self.interrupted(rev).or_else(|| self.pause(rev)) {
                return Ok(o);
            }
        }
        self.remove(rev, &keep)
    }

    /// Deletes from the tree every revision `<= rev` not in `keep`, a batch per write
    /// transaction, then records the compaction finished.
    fn remove(&self, rev: i64, keep: &HashSet<Revision>) -> Result<Outcome, MvccError> {
        let db = &self.syncer.db;
        let end = Revision::main_start_key(rev + 1);
        let mut from: Vec<u8> = Vec::new();
        loop {
            let doomed: Vec<Vec<u8>> = {
                let r = db.begin_read().map_err(storage)?;
                let mut out = Vec::new();
                for item in r
                    .range(KEY_BUCKET, Bound::Included(&from), Bound::Excluded(&end))
                    .map_err(storage)?
                {
                    let (k, _) = item.map_err(storage)?;
                    let (r, _) = Revision::from_key(&k).map_err(storage)?;
                    if !keep.contains(&r) {
                        out.push(k.into_owned());
                        if out.len() >= self.batch {
                            break;
                        }
                    }
                }
                out
            };
            let mut w = db.begin_write().map_err(storage)?;
            for k in &doomed {
                w.delete(KEY_BUCKET, k).map_err(storage)?;
            }
            let done = doomed.len() < self.batch;
            if done {
                w.put(META_BUCKET, FINISHED_COMPACT, &rev.to_be_bytes())
                    .map_err(storage)?;
            }
            w.commit(Durability::Fast).map_err(storage)?;
            // Each batch counts toward the durability cadence like applied entries, so a long
            // compaction becomes durable step by step (a crash then resumes it on open).
            self.syncer.add(doomed.len() as u64 + 1);
            self.syncer.maybe_sync()?;
            if done {
                return Ok(Outcome::Done);
            }
            if let Some(o) = self.interrupted(rev) {
                return Ok(o);
            }
            if let Some(last) = doomed.last() {
                from = last.clone();
            }
            if let Some(o) = self.pause(rev) {
                return Ok(o);
            }
        }
    }
}

impl MvccStore {
    /// Waits until the physical removal of a compaction at or beyond `rev` has finished
    /// (its last batch committed: published, durable with the next durable commit), as etcd's
    /// `Compact` with `physical: true` does. Returns at once if it already has, or if no
    /// compaction at or beyond `rev` is scheduled. Fails if the compactor stopped on a
    /// storage error, or the store is closing.
    pub fn wait_compacted(&self, rev: i64) -> Result<(), MvccError> {
        self.compactor.wait(rev, None).map(|_| ())
    }

    /// [`MvccStore::wait_compacted`] for at most `timeout`; returns whether it finished.
    pub fn wait_compacted_timeout(&self, rev: i64, timeout: Duration) -> Result<bool, MvccError> {
        self.compactor.wait(rev, Some(Instant::now() + timeout))
    }

    /// The newest compaction revision whose physical removal has finished.
    pub fn compacted_physically(&self) -> Result<i64, MvccError> {
        Ok(lock_state(&self.compactor)?.finished)
    }

    /// Defragments the database file (see [`Db::defrag`]): moves pages from the end of the
    /// file into free pages nearer the front in bounded write transactions, then truncates
    /// it, while applies, reads, watches and compaction go on. Blocks the calling thread until
    /// done (run it on a thread of its own); a second call waits for the first. Everything
    /// applied before it started is durable when it returns.
    pub fn defrag(&self) -> Result<DefragReport, MvccError> {
        self.defrag_with(&DefragOptions::default())
    }

    /// [`MvccStore::defrag`] with explicit options.
    pub fn defrag_with(&self, opts: &DefragOptions) -> Result<DefragReport, MvccError> {
        self.db.defrag(opts).map_err(storage)
    }
}
