//! The MVCC store: etcd's key-value semantics over the B+tree.
//!
//! Layout in the database file:
//! - bucket `key`: revision key (17 bytes, 18 for a tombstone; see `revision.rs`) → the
//!   protobuf `KeyValue` of that revision (a tombstone stores just the key);
//! - bucket `meta`: `consistent_index` (the last applied raft log index, u64 big-endian),
//!   `scheduledCompactRev` and `finishedCompactRev` (i64 big-endian), written in the same
//!   commit as the data they describe.
//!
//! In memory: the key index (key → [`KeyIndex`]), rebuilt by scanning the `key` bucket on
//! open, as etcd does.
//!
//! Concurrency: one applier at a time (the B+tree's writer lock). A request's changes are
//! committed to the tree (published, not yet durable) before the index is updated, and a reader
//! takes its tree snapshot under the same index lock it reads revisions under, so a reader
//! never sees a revision whose value its snapshot lacks.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::btree::{Db, Durability, ReadTxn, WriteTxn};
use crate::mvcc::key_index::KeyIndex;
use crate::mvcc::kv::KeyValue;
use crate::mvcc::ops::*;
use crate::mvcc::revision::Revision;
use crate::mvcc::watch::{
    self, Event, EventKind, Hub, HubLock, WatchMessage, WatchRequest, Watcher, WatcherState,
};

const KEY_BUCKET: &[u8] = b"key";
const META_BUCKET: &[u8] = b"meta";
const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const LEASE_BUCKET: &[u8] = b"lease";
/// etcd's largest lease TTL in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// How the store makes applied entries durable and compacts.
#[derive(Clone, Debug)]
pub struct MvccOptions {
    /// Make applied entries durable at least this often ([`MvccStore::maybe_sync`]).
    pub sync_interval: Duration,
    /// ... or once this many entries were applied since the last durable commit.
    pub sync_entries: u64,
    /// Revisions removed per write transaction by physical compaction.
    pub compaction_batch: usize,
    /// Shorter lease TTLs are raised to this (etcd's minimum for its default 100 ms heartbeat
    /// and 1 s election timeout: ceil(1.5 × election timeout) = 2 s).
    pub lease_min_ttl: i64,
}

impl Default for MvccOptions {
    fn default() -> Self {
        MvccOptions {
            sync_interval: Duration::from_millis(100),
            sync_entries: 10_000,
            compaction_batch: 1000,
            lease_min_ttl: 2,
        }
    }
}

struct Index {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
    current: i64,
    compacted: i64,
    applied: u64,
    leases: BTreeMap<i64, Lease>,
}

/// A lease: its granted TTL, the keys attached to it, and when it was last renewed by this
/// node's clock (expiry is the leader's business: it asks [`MvccStore::expired`]).
struct Lease {
    ttl: i64,
    keys: std::collections::BTreeSet<Vec<u8>>,
    renewed: Instant,
}

impl Lease {
    fn new(ttl: i64) -> Self {
        Lease {
            ttl,
            keys: Default::default(),
            renewed: Instant::now(),
        }
    }
}

/// A change to make to the index after the commit.
struct Change {
    key: Vec<u8>,
    rev: Revision,
    tombstone: bool,
    lease: i64,
    old_lease: i64,
    /// The event's key-value (for a delete: the key and the deleting revision).
    kv: KeyValue,
    /// The key-value before the change.
    prev: Option<KeyValue>,
}

struct Cadence {
    last_sync: Instant,
    pending: u64,
}

/// The MVCC store.
pub struct MvccStore {
    db: Db,
    opts: MvccOptions,
    index: RwLock<Index>,
    cadence: Mutex<Cadence>,
    hub: HubLock,
}

/// Revisions a catch-up reads from the tree per step.
const CATCH_UP_REVISIONS: i64 = 1000;

fn storage(e: impl std::fmt::Display) -> MvccError {
    MvccError::Storage(e.to_string())
}

fn be_i64(v: &[u8]) -> Result<i64, MvccError> {
    <[u8; 8]>::try_from(v)
        .map(i64::from_be_bytes)
        .map_err(|_| storage("meta value is not 8 bytes"))
}

/// The keys a `(key, range_end)` pair selects, as bounds.
fn bounds<'a>(key: &'a [u8], end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    if end.is_empty() {
        (Bound::Included(key), Bound::Included(key))
    } else if end == [0] {
        (Bound::Included(key), Bound::Unbounded)
    } else {
        (Bound::Included(key), Bound::Excluded(end))
    }
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

impl Index {
    /// `(key, revision holding its value)` of every key live at `rev` in the range.
    fn live_at(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<(Vec<u8>, Revision)> {
        self.live_at_first(key, end, rev, usize::MAX).0
    }

    /// The first `keep` live keys of the range (with the revisions holding their values) and
    /// how many there are in all.
    fn live_at_first(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        keep: usize,
    ) -> (Vec<(Vec<u8>, Revision)>, i64) {
        let (lo, hi) = bounds(key, end);
        if let (Bound::Included(l), Bound::Excluded(h)) = (lo, hi)
            && l >= h
        {
            return (Vec::new(), 0);
        }
        let mut found = Vec::new();
        let mut count = 0i64;
        for (k, ki) in self.keys.range::<[u8], _>((lo, hi)) {
            if let Some(at) = ki.get(rev) {
                if found.len() < keep {
                    found.push((k.clone(), at.modified));
                }
                count += 1;
            }
        }
        (found, count)
    }
}

impl MvccStore {
    /// Opens the store kept in `db`, rebuilding the key index, and finishes a compaction a
    /// crash interrupted.
    pub fn open(db: Db, opts: MvccOptions) -> Result<MvccStore, MvccError> {
        let r = db.begin_read().map_err(storage)?;
        let meta = |k: &[u8]| -> Result<Option<i64>, MvccError> {
            r.get(META_BUCKET, k)
                .map_err(storage)?
                .map(|v| be_i64(&v))
                .transpose()
        };
        let applied = meta(CONSISTENT_INDEX)?.unwrap_or(0) as u64;
        let scheduled = meta(SCHEDULED_COMPACT)?.unwrap_or(0);
        let finished = meta(FINISHED_COMPACT)?.unwrap_or(0);
        let mut leases: BTreeMap<i64, Lease> = BTreeMap::new();
        for item in r
            .range(LEASE_BUCKET, Bound::Unbounded, Bound::Unbounded)
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            leases.insert(be_i64(&k)?, Lease::new(be_i64(&v)?));
        }
        // One pass over the bucket in revision order collects what the index needs; sorting
        // by (key, revision) then builds each key's history in order and the map in bulk
        // (far cheaper than a map insert per revision in random key order).
        struct Rec {
            key: Vec<u8>,
            rev: Revision,
            tombstone: bool,
            create: i64,
            version: i64,
            lease: i64,
        }
        let mut recs: Vec<Rec> = Vec::new();
        let mut current = 0;
        for item in r
            .range(KEY_BUCKET, Bound::Unbounded, Bound::Unbounded)
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            let (rev, tombstone) = Revision::from_key(&k).map_err(storage)?;
            let kv = KeyValue::decode_without_value(&v).map_err(storage)?;
            current = current.max(rev.main);
            recs.push(Rec {
                key: kv.key,
                rev,
                tombstone,
                create: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
            });
        }
        drop(r);
        recs.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(a.rev.cmp(&b.rev)));
        let mut built: Vec<(Vec<u8>, KeyIndex)> = Vec::new();
        // The lease of each key's newest revision (0 for none or a tombstone).
        let mut last_lease: Vec<i64> = Vec::new();
        for rec in recs {
            match built.last_mut() {
                Some((key, ki)) if *key == rec.key => {
                    if rec.tombstone {
                        ki.tombstone(rec.rev).map_err(storage)?;
                    } else {
                        ki.put(rec.rev).map_err(storage)?;
                    }
                }
                _ => {
                    let ki = if rec.tombstone {
                        KeyIndex::restore_tombstone(rec.rev)
                    } else {
                        KeyIndex::restore(Revision::new(rec.create, 0), rec.rev, rec.version)
                    };
                    built.push((rec.key, ki));
                    last_lease.push(0);
                }
            }
            if let Some(l) = last_lease.last_mut() {
                *l = if rec.tombstone { 0 } else { rec.lease };
            }
        }
        for ((key, _), lease) in built.iter().zip(&last_lease) {
            if *lease != 0
                && let Some(l) = leases.get_mut(lease)
            {
                l.keys.insert(key.clone());
            }
        }
        let keys: BTreeMap<Vec<u8>, KeyIndex> = built.into_iter().collect();
        // The scan touched every page once; do not keep them all resident for it.
        db.release_mapped_pages().map_err(storage)?;
        let store = MvccStore {
            db,
            opts,
            index: RwLock::new(Index {
                keys,
                current: current.max(scheduled),
                compacted: finished,
                applied,
                leases,
            }),
            hub: Mutex::new(Hub::default()),
            cadence: Mutex::new(Cadence {
                last_sync: Instant::now(),
                pending: 0,
            }),
        };
        if scheduled > finished {
            store.compact_index(scheduled)?;
            store.compact_physical(scheduled)?;
        }
        Ok(store)
    }

    fn read_index(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>, MvccError> {
        self.index
            .read()
            .map_err(|_| storage("index lock poisoned"))
    }

    fn write_index(&self) -> Result<std::sync::RwLockWriteGuard<'_, Index>, MvccError> {
        self.index
            .write()
            .map_err(|_| storage("index lock poisoned"))
    }

    /// The current revision.
    pub fn revision(&self) -> Result<i64, MvccError> {
        Ok(self.read_index()?.current)
    }

    /// The last compacted revision.
    pub fn compacted(&self) -> Result<i64, MvccError> {
        Ok(self.read_index()?.compacted)
    }

    /// The last applied raft log index.
    pub fn applied_index(&self) -> Result<u64, MvccError> {
        Ok(self.read_index()?.applied)
    }

    /// The underlying database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A range, served from the current state (a serializable read).
    pub fn range(&self, req: &RangeRequest) -> Result<Applied<RangeResponse>, MvccError> {
        let (found, count, snap, current) = {
            let idx = self.read_index()?;
            let rev = check_revision(req.revision, idx.current, idx.compacted)?;
            let (found, count) = idx.live_at_first(&req.key, &req.range_end, rev, fetch_limit(req));
            // The snapshot is taken under the index lock: it holds every revision just read.
            (
                found,
                count,
                self.db.begin_read().map_err(storage)?,
                idx.current,
            )
        };
        let response = finish_range(req, found, count, |_, rev| read_kv(&snap, rev))?;
        Ok(Applied {
            response,
            revision: current,
        })
    }

    /// Applies requests from the raft log, each tagged with its log index, in one write
    /// transaction; entries at or below the last applied index are skipped (replay). The
    /// applied index is stored in the same commit. Returns one result per request applied.
    pub fn apply(
        &self,
        entries: &[(u64, WriteRequest)],
    ) -> Result<Vec<Result<Applied<WriteResponse>, MvccError>>, MvccError> {
        let (applied, current, compacted) = {
            let idx = self.read_index()?;
            (idx.applied, idx.current, idx.compacted)
        };
        let todo: Vec<&(u64, WriteRequest)> =
            entries.iter().filter(|(i, _)| *i > applied).collect();
        let Some(last_index) = todo.last().map(|(i, _)| *i) else {
            return Ok(Vec::new());
        };
        let mut w = self.db.begin_write().map_err(storage)?;
        let idx = self.read_index()?;
        let mut ctx = Apply {
            w: &mut w,
            idx: &idx,
            opts: &self.opts,
            main: current,
            compacted,
            overlay: BTreeMap::new(),
            lease_overlay: BTreeMap::new(),
            changes: Vec::new(),
            compact_to: None,
        };
        let mut results = Vec::with_capacity(todo.len());
        for (log_index, req) in &todo {
            results.push(ctx.request(*log_index, req));
        }
        let (changes, compact_to, main) =
            (std::mem::take(&mut ctx.changes), ctx.compact_to, ctx.main);
        let lease_changes = std::mem::take(&mut ctx.lease_overlay);
        drop(idx);
        w.put(META_BUCKET, CONSISTENT_INDEX, &last_index.to_be_bytes())
            .map_err(storage)?;
        w.commit(Durability::Fast).map_err(storage)?;
        {
            let mut idx = self.write_index()?;
            let mut events: Vec<(i64, Event)> = Vec::new();
            for (id, granted) in lease_changes {
                match granted {
                    Some(ttl) => {
                        idx.leases.insert(id, Lease::new(ttl));
                    }
                    None => {
                        idx.leases.remove(&id);
                    }
                }
            }
            for c in &changes {
                events.push((c.rev.main, to_event(c)));
            }
            for c in changes {
                if c.old_lease != 0
                    && let Some(l) = idx.leases.get_mut(&c.old_lease)
                {
                    l.keys.remove(&c.key);
                }
                if !c.tombstone
                    && c.lease != 0
                    && let Some(l) = idx.leases.get_mut(&c.lease)
                {
                    l.keys.insert(c.key.clone());
                }
                let ki = idx.keys.entry(c.key).or_default();
                if c.tombstone {
                    ki.tombstone(c.rev).map_err(storage)?;
                } else {
                    ki.put(c.rev).map_err(storage)?;
                }
            }
            idx.current = main;
            idx.applied = last_index;
            drop(idx);
            // Published in the index first, then handed to synced watchers (see watch.rs).
            let mut hub = self.lock_hub()?;
            let mut i = 0;
            while i < events.len() {
                let rev = events[i].0;
                let j = events[i..]
                    .iter()
                    .position(|(r, _)| *r != rev)
                    .map_or(events.len(), |p| i + p);
                let group: Vec<Event> = events[i..j].iter().map(|(_, e)| e.clone()).collect();
                hub.notify(rev, &group);
                i = j;
            }
        }
        if let Ok(mut c) = self.cadence.lock() {
            c.pending += todo.len() as u64;
        }
        if let Some(rev) = compact_to {
            self.compact_index(rev)?;
            self.compact_physical(rev)?;
        }
        Ok(results)
    }

    /// Makes everything applied durable.
    pub fn sync(&self) -> Result<(), MvccError> {
        self.db.sync().map_err(storage)?;
        if let Ok(mut c) = self.cadence.lock() {
            c.pending = 0;
            c.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Syncs if the cadence says so (`sync_interval` elapsed or `sync_entries` applied);
    /// returns whether it did.
    pub fn maybe_sync(&self) -> Result<bool, MvccError> {
        let due = match self.cadence.lock() {
            Ok(c) => {
                c.pending > 0
                    && (c.pending >= self.opts.sync_entries
                        || c.last_sync.elapsed() >= self.opts.sync_interval)
            }
            Err(_) => true,
        };
        if due {
            self.sync()?;
        }
        Ok(due)
    }

    /// etcd's `HashKV`: CRC-32C over the bucket name `key` and every (revision key, value)
    /// pair with `main <= revision` (0: the current revision), leaving out the revisions the
    /// last compaction is about to remove, so two members with the same history agree
    /// whether or not their physical compaction has finished. Returns the hash, the compaction
    /// revision it was computed against, and the revision hashed up to.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64), MvccError> {
        let (upper, compacted, keep, snap) = {
            let idx = self.read_index()?;
            if revision > idx.current {
                return Err(MvccError::FutureRevision {
                    requested: revision,
                    current: idx.current,
                });
            }
            if revision > 0 && revision < idx.compacted {
                return Err(MvccError::Compacted {
                    requested: revision,
                    compacted: idx.compacted,
                });
            }
            let upper = if revision <= 0 { idx.current } else { revision };
            let mut keep = HashSet::new();
            if idx.compacted > 0 {
                for ki in idx.keys.values() {
                    ki.keep(idx.compacted, &mut keep);
                }
            }
            (
                upper,
                idx.compacted,
                keep,
                self.db.begin_read().map_err(storage)?,
            )
        };
        let mut h = crc32c::crc32c(KEY_BUCKET);
        let end = Revision::main_start_key(upper + 1);
        for item in snap
            .range(KEY_BUCKET, Bound::Unbounded, Bound::Excluded(&end))
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            let (rev, _) = Revision::from_key(&k).map_err(storage)?;
            if rev.main <= compacted && !keep.is_empty() && !keep.contains(&rev) {
                continue;
            }
            h = crc32c::crc32c_append(h, &k);
            h = crc32c::crc32c_append(h, &v);
        }
        Ok((h, compacted, upper))
    }

    fn lock_hub(&self) -> Result<std::sync::MutexGuard<'_, Hub>, MvccError> {
        self.hub
            .lock()
            .map_err(|_| storage("watch hub lock poisoned"))
    }

    /// Starts a watch. Events from `start_revision` on (0: from the next revision) arrive in
    /// revision order, one message per revision, each exactly once; a start revision below
    /// the compaction revision gets [`WatchMessage::Compacted`] and the watch ends.
    pub fn watch(self: &Arc<Self>, req: WatchRequest) -> Result<Watcher, MvccError> {
        let current = self.revision()?;
        let (tx, rx) = watch::channel();
        let next = if req.start_revision <= 0 {
            current + 1
        } else {
            req.start_revision
        };
        let id = {
            let mut hub = self.lock_hub()?;
            let id = hub.next_id;
            hub.next_id += 1;
            hub.watchers.insert(
                id,
                WatcherState {
                    req,
                    tx,
                    next,
                    synced: false,
                    progress: false,
                },
            );
            id
        };
        self.catch_up(id)?;
        Ok(Watcher {
            id,
            rx,
            store: self.clone(),
        })
    }

    pub(crate) fn cancel_watch(&self, id: u64) {
        if let Ok(mut hub) = self.hub.lock() {
            hub.watchers.remove(&id);
        }
    }

    pub(crate) fn request_progress(&self, id: u64) -> Result<(), MvccError> {
        let mut hub = self.lock_hub()?;
        let current = self.revision()?;
        if let Some(w) = hub.watchers.get_mut(&id) {
            // Sent now if the watcher has everything up to `current` and room for it; otherwise
            // once it has caught up and its queue has drained.
            if !w.synced
                || w.tx
                    .try_send(WatchMessage::Progress { revision: current })
                    .is_err()
            {
                w.progress = true;
            }
        }
        Ok(())
    }

    /// Sends a progress notification to every watcher that has everything up to the current
    /// revision (etcd's periodic progress notify).
    pub fn progress_all(&self) -> Result<(), MvccError> {
        let mut hub = self.lock_hub()?;
        let current = self.revision()?;
        for w in hub.watchers.values_mut().filter(|w| w.synced) {
            let _ = w.tx.try_send(WatchMessage::Progress { revision: current });
        }
        Ok(())
    }

    /// Brings an unsynced watcher forward from the tree until its queue is full or it has
    /// reached the current revision (then it is synced).
    pub(crate) fn catch_up(&self, id: u64) -> Result<(), MvccError> {
        loop {
            let (req, next) = {
                let mut hub = self.lock_hub()?;
                match hub.watchers.get_mut(&id) {
                    Some(w) if !w.synced => (w.req.clone(), w.next),
                    Some(w) => {
                        // A progress notice that found the queue full is sent once it drains.
                        if w.progress {
                            let revision = self.revision()?;
                            if w.tx.try_send(WatchMessage::Progress { revision }).is_ok() {
                                w.progress = false;
                            }
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            };
            let (batch, upper, compacted) = {
                let idx = self.read_index()?;
                if next < idx.compacted {
                    (Vec::new(), next - 1, Some(idx.compacted))
                } else {
                    let upper = idx.current.min(next.saturating_add(CATCH_UP_REVISIONS - 1));
                    let snap = self.db.begin_read().map_err(storage)?;
                    (history(&idx, &snap, &req, next, upper)?, upper, None)
                }
            };
            let mut hub = self.lock_hub()?;
            let Some(w) = hub.watchers.get_mut(&id) else {
                return Ok(());
            };
            if w.synced || w.next != next {
                continue;
            }
            if let Some(compact_revision) = compacted {
                // Cancelled once the queue takes the notice; until then it stays behind.
                if w.tx
                    .try_send(WatchMessage::Compacted { compact_revision })
                    .is_ok()
                {
                    hub.watchers.remove(&id);
                }
                return Ok(());
            }
            for (revision, events) in batch {
                match w.tx.try_send(WatchMessage::Events { revision, events }) {
                    Ok(()) => w.next = revision + 1,
                    Err(TrySendError::Full(_)) => return Ok(()),
                    Err(TrySendError::Disconnected(_)) => {
                        hub.watchers.remove(&id);
                        return Ok(());
                    }
                }
            }
            // A start in the future stays where it is.
            w.next = w.next.max(upper + 1);
            let current = self.revision()?;
            if w.next > current {
                w.synced = true;
                if w.progress
                    && w.tx
                        .try_send(WatchMessage::Progress { revision: current })
                        .is_ok()
                {
                    w.progress = false;
                }
                return Ok(());
            }
        }
    }

    /// Writes a consistent snapshot of the whole store (see `btree/snapshot.rs`); returns the
    /// bytes written and the revision and applied log index it holds. Applies go on meanwhile.
    pub fn write_snapshot(&self, out: impl std::io::Write) -> Result<(u64, i64, u64), MvccError> {
        let (snap, revision, applied) = {
            let idx = self.read_index()?;
            (
                self.db.begin_read().map_err(storage)?,
                idx.current,
                idx.applied,
            )
        };
        let bytes = snap.write_snapshot(out).map_err(storage)?;
        Ok((bytes, revision, applied))
    }

    /// Every lease ID, ascending (etcd's `LeaseLeases`).
    pub fn leases(&self) -> Result<Vec<i64>, MvccError> {
        Ok(self.read_index()?.leases.keys().copied().collect())
    }

    /// A lease's remaining and granted TTL and its keys at `now` (etcd's `LeaseTimeToLive`);
    /// `None` if it does not exist.
    pub fn lease_time_to_live(
        &self,
        id: i64,
        now: Instant,
    ) -> Result<Option<LeaseInfo>, MvccError> {
        let idx = self.read_index()?;
        Ok(idx.leases.get(&id).map(|l| LeaseInfo {
            id,
            remaining: remaining(l, now),
            granted: l.ttl,
            keys: l.keys.iter().cloned().collect(),
        }))
    }

    /// Renews a lease at `now` (a keep-alive); returns its TTL.
    pub fn renew(&self, id: i64, now: Instant) -> Result<i64, MvccError> {
        let mut idx = self.write_index()?;
        let l = idx.leases.get_mut(&id).ok_or(MvccError::LeaseNotFound)?;
        l.renewed = now;
        Ok(l.ttl)
    }

    /// Restarts every lease's clock at `now` (a new leader extends all leases, as etcd does).
    pub fn promote(&self, now: Instant) -> Result<(), MvccError> {
        for l in self.write_index()?.leases.values_mut() {
            l.renewed = now;
        }
        Ok(())
    }

    /// The leases expired at `now` by the caller's clock (the leader proposes their revocation).
    pub fn expired(&self, now: Instant) -> Result<Vec<i64>, MvccError> {
        let idx = self.read_index()?;
        Ok(idx
            .leases
            .iter()
            .filter(|(_, l)| remaining(l, now) <= 0)
            .map(|(id, _)| *id)
            .collect())
    }

    /// Drops compacted history from the index and records the compaction revision.
    fn compact_index(&self, rev: i64) -> Result<HashSet<Revision>, MvccError> {
        let mut idx = self.write_index()?;
        let mut available = HashSet::new();
        idx.keys.retain(|_, ki| {
            ki.compact(rev, &mut available);
            !ki.is_empty()
        });
        idx.compacted = idx.compacted.max(rev);
        Ok(available)
    }

    /// Removes from the tree every revision `<= rev` that the index no longer holds, in
    /// batches of `compaction_batch` per write transaction, then records it finished.
    fn compact_physical(&self, rev: i64) -> Result<(), MvccError> {
        let keep: HashSet<Revision> = {
            let idx = self.read_index()?;
            let mut keep = HashSet::new();
            for ki in idx.keys.values() {
                for g in ki.generations() {
                    keep.extend(g.revs.iter().copied().filter(|r| r.main <= rev));
                }
            }
            keep
        };
        let end = Revision::main_start_key(rev + 1);
        let mut from: Vec<u8> = Vec::new();
        loop {
            let doomed: Vec<Vec<u8>> = {
                let r = self.db.begin_read().map_err(storage)?;
                let mut out = Vec::new();
                for item in r
                    .range(KEY_BUCKET, Bound::Included(&from), Bound::Excluded(&end))
                    .map_err(storage)?
                {
                    let (k, _) = item.map_err(storage)?;
                    let (r, _) = Revision::from_key(&k).map_err(storage)?;
                    if !keep.contains(&r) {
                        out.push(k.into_owned());
                        if out.len() >= self.opts.compaction_batch {
                            break;
                        }
                    }
                }
                out
            };
            let mut w = self.db.begin_write().map_err(storage)?;
            for k in &doomed {
                w.delete(KEY_BUCKET, k).map_err(storage)?;
            }
            let done = doomed.len() < self.opts.compaction_batch;
            if done {
                w.put(META_BUCKET, FINISHED_COMPACT, &rev.to_be_bytes())
                    .map_err(storage)?;
            }
            w.commit(Durability::Fast).map_err(storage)?;
            // Each batch counts toward the durability cadence like applied entries, so a long
            // compaction becomes durable step by step (a crash then resumes it; see `open`).
            if let Ok(mut c) = self.cadence.lock() {
                c.pending += doomed.len() as u64 + 1;
            }
            self.maybe_sync()?;
            if done {
                return Ok(());
            }
            if let Some(last) = doomed.last() {
                from = last.clone();
            }
        }
    }
}

/// The event a change makes.
fn to_event(c: &Change) -> Event {
    Event {
        kind: if c.tombstone {
            EventKind::Delete
        } else {
            EventKind::Put
        },
        kv: c.kv.clone(),
        prev_kv: c.prev.clone(),
    }
}

/// Revisions `[from, upper]` of the tree as `req` wants them, one entry per revision with
/// matching events. Runs under the index lock (for previous values), on a snapshot taken
/// under it.
fn history(
    idx: &Index,
    snap: &ReadTxn,
    req: &WatchRequest,
    from: i64,
    upper: i64,
) -> Result<Vec<(i64, Vec<Event>)>, MvccError> {
    let start = Revision::main_start_key(from);
    let end = Revision::main_start_key(upper.saturating_add(1));
    let probe = WatcherState {
        req: req.clone(),
        tx: watch::channel().0,
        next: 0,
        synced: false,
        progress: false,
    };
    let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
    for item in snap
        .range(KEY_BUCKET, Bound::Included(&start), Bound::Excluded(&end))
        .map_err(storage)?
    {
        let (k, v) = item.map_err(storage)?;
        let (rev, tombstone) = Revision::from_key(&k).map_err(storage)?;
        let stored = KeyValue::decode(&v).map_err(storage)?;
        let kv = if tombstone {
            KeyValue {
                key: stored.key,
                mod_revision: rev.main,
                ..KeyValue::default()
            }
        } else {
            stored
        };
        let mut e = Event {
            kind: if tombstone {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv,
            prev_kv: None,
        };
        if !probe.matches(&e) {
            continue;
        }
        if req.prev_kv
            && let Some(at) = idx.keys.get(&e.kv.key).and_then(|ki| ki.get(rev.main - 1))
            && let Some(v) = snap
                .get(KEY_BUCKET, &at.modified.to_key(false))
                .map_err(storage)?
        {
            e.prev_kv = Some(KeyValue::decode(&v).map_err(storage)?);
        }
        match out.last_mut() {
            Some((r, events)) if *r == rev.main => events.push(e),
            _ => out.push((rev.main, vec![e])),
        }
    }
    Ok(out)
}

/// Whole seconds a lease has left at `now`.
fn remaining(l: &Lease, now: Instant) -> i64 {
    let deadline = l.renewed + Duration::from_secs(l.ttl.max(0) as u64);
    deadline.saturating_duration_since(now).as_secs_f64().ceil() as i64
}

/// The revision a read at `requested` uses, or etcd's error for it.
fn check_revision(requested: i64, current: i64, compacted: i64) -> Result<i64, MvccError> {
    if requested > current {
        return Err(MvccError::FutureRevision { requested, current });
    }
    let rev = if requested <= 0 { current } else { requested };
    if rev < compacted {
        return Err(MvccError::Compacted {
            requested,
            compacted,
        });
    }
    Ok(rev)
}

fn read_kv(snap: &ReadTxn, rev: Revision) -> Result<KeyValue, MvccError> {
    let v = snap
        .get(KEY_BUCKET, &rev.to_key(false))
        .map_err(storage)?
        .ok_or_else(|| {
            storage(format!(
                "revision {rev} is in the index but not in the tree"
            ))
        })?;
    KeyValue::decode(&v).map_err(storage)
}

/// How many keys of a range need their values: all of them when filtering or sorting,
/// `limit + 1` otherwise (to know whether there are more), none for a count.
fn fetch_limit(req: &RangeRequest) -> usize {
    if req.count_only {
        return 0;
    }
    let filters = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let sorted_by_key = req.sort_target == SortTarget::Key && req.sort_order != SortOrder::Descend;
    if req.limit > 0 && !filters && sorted_by_key {
        (req.limit as usize).saturating_add(1)
    } else {
        usize::MAX
    }
}

/// Fetches values, then filters, sorts and limits as etcd's range does.
fn finish_range(
    req: &RangeRequest,
    found: Vec<(Vec<u8>, Revision)>,
    count: i64,
    mut fetch: impl FnMut(usize, Revision) -> Result<KeyValue, MvccError>,
) -> Result<RangeResponse, MvccError> {
    if req.count_only {
        return Ok(RangeResponse {
            kvs: Vec::new(),
            more: false,
            count,
        });
    }
    let filters = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let mut order = req.sort_order;
    if req.sort_target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    let sorting = !(order == SortOrder::None
        || (order == SortOrder::Ascend && req.sort_target == SortTarget::Key));
    // Without filters or sorting only limit + 1 values are needed.
    let take = if req.limit > 0 && !filters && !sorting {
        (req.limit as usize).saturating_add(1)
    } else {
        usize::MAX
    };
    let mut kvs = Vec::new();
    for (i, (_, rev)) in found.into_iter().take(take).enumerate() {
        let kv = fetch(i, rev)?;
        let keep = (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision);
        if keep {
            kvs.push(kv);
        }
    }
    if sorting {
        let key = |kv: &KeyValue| -> (i64, Vec<u8>) {
            match req.sort_target {
                SortTarget::Key => (0, kv.key.clone()),
                SortTarget::Version => (kv.version, Vec::new()),
                SortTarget::Create => (kv.create_revision, Vec::new()),
                SortTarget::Mod => (kv.mod_revision, Vec::new()),
                SortTarget::Value => (0, kv.value.clone()),
            }
        };
        kvs.sort_by_key(key);
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse { kvs, more, count })
}

/// One write transaction applying a batch of requests.
struct Apply<'a, 'db> {
    w: &'a mut WriteTxn<'db>,
    idx: &'a Index,
    opts: &'a MvccOptions,
    /// Leases granted (`Some(ttl)`) or revoked (`None`) in this batch.
    lease_overlay: BTreeMap<i64, Option<i64>>,
    /// The revision of the last request applied so far.
    main: i64,
    compacted: i64,
    /// Keys written in this batch: their latest value, or `None` once deleted.
    overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    /// Index updates to make after the commit.
    changes: Vec<Change>,
    compact_to: Option<i64>,
}

impl Apply<'_, '_> {
    fn request(
        &mut self,
        log_index: u64,
        req: &WriteRequest,
    ) -> Result<Applied<WriteResponse>, MvccError> {
        let rev = self.main + 1;
        let mut sub = 0;
        let response = match req {
            WriteRequest::Put(p) => {
                self.check_put(p)?;
                WriteResponse::Put(self.put(p, rev, &mut sub)?)
            }
            WriteRequest::DeleteRange(d) => {
                if d.key.is_empty() {
                    return Err(MvccError::EmptyKey);
                }
                WriteResponse::DeleteRange(self.delete(d, rev, &mut sub)?)
            }
            WriteRequest::Txn(t) => {
                check_txn(t)?;
                WriteResponse::Txn(self.txn(t, rev, &mut sub)?)
            }
            WriteRequest::Compact { revision } => {
                let r = *revision;
                if r <= self.compacted {
                    return Err(MvccError::Compacted {
                        requested: r,
                        compacted: self.compacted,
                    });
                }
                if r > self.main {
                    return Err(MvccError::FutureRevision {
                        requested: r,
                        current: self.main,
                    });
                }
                self.w
                    .put(META_BUCKET, SCHEDULED_COMPACT, &r.to_be_bytes())
                    .map_err(storage)?;
                self.compacted = r;
                self.compact_to = Some(r);
                WriteResponse::Compact
            }
            WriteRequest::LeaseGrant { id, ttl } => self.lease_grant(log_index, *id, *ttl)?,
            WriteRequest::LeaseRevoke { id } => {
                self.lease_revoke(*id, rev, &mut sub)?;
                WriteResponse::LeaseRevoke
            }
        };
        if sub > 0 {
            self.main = rev;
        }
        Ok(Applied {
            response,
            revision: self.main,
        })
    }

    /// The latest value of `key` as this batch sees it.
    fn latest(&mut self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        let Some(at) = self
            .idx
            .keys
            .get(key)
            .and_then(|ki| ki.get(self.idx.current))
        else {
            return Ok(None);
        };
        let v = self
            .w
            .get(KEY_BUCKET, &at.modified.to_key(false))
            .map_err(storage)?
            .ok_or_else(|| storage(format!("revision {} missing from the tree", at.modified)))?;
        KeyValue::decode(&v).map(Some).map_err(storage)
    }

    /// Keys live now (as this batch sees them) in the range, with their values.
    fn live_range(&mut self, key: &[u8], end: &[u8]) -> Result<Vec<KeyValue>, MvccError> {
        let mut names: Vec<Vec<u8>> = self
            .idx
            .live_at(key, end, self.idx.current)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        names.extend(
            self.overlay
                .keys()
                .filter(|k| in_range(k, key, end))
                .cloned(),
        );
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for k in names {
            if let Some(kv) = self.latest(&k)? {
                out.push(kv);
            }
        }
        Ok(out)
    }

    fn check_put(&mut self, p: &PutRequest) -> Result<(), MvccError> {
        if p.key.is_empty() {
            return Err(MvccError::EmptyKey);
        }
        if p.ignore_value && !p.value.is_empty() {
            return Err(MvccError::ValueProvided);
        }
        if p.ignore_lease && p.lease != 0 {
            return Err(MvccError::LeaseProvided);
        }
        if (p.ignore_value || p.ignore_lease) && self.latest(&p.key)?.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if p.lease != 0 && !self.lease_exists(p.lease) {
            return Err(MvccError::LeaseNotFound);
        }
        Ok(())
    }

    fn lease_exists(&self, id: i64) -> bool {
        match self.lease_overlay.get(&id) {
            Some(granted) => granted.is_some(),
            None => self.idx.leases.contains_key(&id),
        }
    }

    fn lease_grant(
        &mut self,
        log_index: u64,
        id: i64,
        ttl: i64,
    ) -> Result<WriteResponse, MvccError> {
        if ttl > MAX_LEASE_TTL {
            return Err(MvccError::LeaseTtlTooLarge);
        }
        let id = if id != 0 {
            if self.lease_exists(id) {
                return Err(MvccError::LeaseExists);
            }
            id
        } else {
            // Every member picks the same ID: the first free one from the log index on.
            let mut id = (log_index as i64).max(1);
            while self.lease_exists(id) {
                id += 1;
            }
            id
        };
        let ttl = ttl.max(self.opts.lease_min_ttl);
        self.w
            .put(LEASE_BUCKET, &id.to_be_bytes(), &ttl.to_be_bytes())
            .map_err(storage)?;
        self.lease_overlay.insert(id, Some(ttl));
        Ok(WriteResponse::LeaseGrant { id, ttl })
    }

    fn lease_revoke(&mut self, id: i64, main: i64, sub: &mut i64) -> Result<(), MvccError> {
        if !self.lease_exists(id) {
            return Err(MvccError::LeaseNotFound);
        }
        let mut candidates: Vec<Vec<u8>> = self
            .idx
            .leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default();
        candidates.extend(self.overlay.keys().cloned());
        candidates.sort();
        candidates.dedup();
        for key in candidates {
            if let Some(kv) = self.latest(&key)?
                && kv.lease == id
            {
                self.tombstone(kv, main, sub)?;
            }
        }
        self.w
            .delete(LEASE_BUCKET, &id.to_be_bytes())
            .map_err(storage)?;
        self.lease_overlay.insert(id, None);
        Ok(())
    }

    /// Deletes the key of `kv` (its current value) at the next sub-revision of `main`.
    fn tombstone(&mut self, kv: KeyValue, main: i64, sub: &mut i64) -> Result<(), MvccError> {
        let rev = Revision::new(main, *sub);
        *sub += 1;
        let marker = KeyValue {
            key: kv.key.clone(),
            ..KeyValue::default()
        };
        self.write(marker, rev, true, Some(kv))
    }

    /// Writes one revision of a key whose value before it was `prev`.
    fn write(
        &mut self,
        kv: KeyValue,
        rev: Revision,
        tombstone: bool,
        prev: Option<KeyValue>,
    ) -> Result<(), MvccError> {
        self.w
            .put(KEY_BUCKET, &rev.to_key(tombstone), &kv.encode())
            .map_err(storage)?;
        let event_kv = if tombstone {
            KeyValue {
                key: kv.key.clone(),
                mod_revision: rev.main,
                ..KeyValue::default()
            }
        } else {
            kv.clone()
        };
        self.changes.push(Change {
            key: kv.key.clone(),
            rev,
            tombstone,
            lease: kv.lease,
            old_lease: prev.as_ref().map_or(0, |p| p.lease),
            kv: event_kv,
            prev,
        });
        let key = kv.key.clone();
        self.overlay.insert(key, (!tombstone).then_some(kv));
        Ok(())
    }

    fn put(&mut self, p: &PutRequest, main: i64, sub: &mut i64) -> Result<PutResponse, MvccError> {
        let prev = self.latest(&p.key)?;
        let rev = Revision::new(main, *sub);
        *sub += 1;
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(main, |k| k.create_revision),
            mod_revision: main,
            version: prev.as_ref().map_or(1, |k| k.version + 1),
            value: if p.ignore_value {
                prev.as_ref().map(|k| k.value.clone()).unwrap_or_default()
            } else {
                p.value.clone()
            },
            lease: if p.ignore_lease {
                prev.as_ref().map_or(0, |k| k.lease)
            } else {
                p.lease
            },
        };
        self.write(kv, rev, false, prev.clone())?;
        Ok(PutResponse {
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn delete(
        &mut self,
        d: &DeleteRangeRequest,
        main: i64,
        sub: &mut i64,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let victims = self.live_range(&d.key, &d.range_end)?;
        let deleted = victims.len() as i64;
        let mut prev_kvs = Vec::new();
        for kv in victims {
            self.tombstone(kv.clone(), main, sub)?;
            if d.prev_kv {
                prev_kvs.push(kv);
            }
        }
        Ok(DeleteRangeResponse { deleted, prev_kvs })
    }

    fn compare(&mut self, c: &Compare) -> Result<bool, MvccError> {
        let kvs = if c.range_end.is_empty() {
            self.latest(&c.key)?.into_iter().collect()
        } else {
            self.live_range(&c.key, &c.range_end)?
        };
        if kvs.is_empty() {
            // A missing key compares as zero, except on its value, which never matches.
            if matches!(c.target, CompareTarget::Value(_)) {
                return Ok(false);
            }
            return Ok(compare_kv(c, &KeyValue::default()));
        }
        Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
    }

    /// Evaluates every compare on the path a transaction will take, nested ones included,
    /// against the state before the transaction writes anything (as etcd does), and checks
    /// every operation on that path. Returns the branch taken by each transaction, in the
    /// order they will run.
    fn txn_path(&mut self, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), MvccError> {
        let mut ok = true;
        for c in &t.compare {
            if !self.compare(c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        let ops = if ok { &t.success } else { &t.failure };
        self.check_ops(ops)?;
        for op in ops {
            if let RequestOp::Txn(inner) = op {
                self.txn_path(inner, path)?;
            }
        }
        Ok(())
    }

    fn txn(&mut self, t: &TxnRequest, main: i64, sub: &mut i64) -> Result<TxnResponse, MvccError> {
        let mut path = Vec::new();
        self.txn_path(t, &mut path)?;
        path.reverse();
        self.run_txn(t, &mut path, main, sub)
    }

    fn run_txn(
        &mut self,
        t: &TxnRequest,
        path: &mut Vec<bool>,
        main: i64,
        sub: &mut i64,
    ) -> Result<TxnResponse, MvccError> {
        let ok = path
            .pop()
            .ok_or_else(|| storage("transaction path bookkeeping"))?;
        let ops = if ok { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.txn_range(r, main, *sub)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p, main, sub)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(d, main, sub)?),
                RequestOp::Txn(inner) => ResponseOp::Txn(self.run_txn(inner, path, main, sub)?),
            });
        }
        Ok(TxnResponse {
            succeeded: ok,
            responses,
        })
    }

    fn check_ops(&mut self, ops: &[RequestOp]) -> Result<(), MvccError> {
        for op in ops {
            match op {
                RequestOp::Put(p) => self.check_put(p)?,
                RequestOp::DeleteRange(d) if d.key.is_empty() => return Err(MvccError::EmptyKey),
                RequestOp::Range(r) if r.key.is_empty() => return Err(MvccError::EmptyKey),
                RequestOp::Range(r) => {
                    check_revision(r.revision, self.idx.current.max(self.main), self.compacted)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A range inside a transaction: at the latest revision it sees this transaction's own
    /// earlier writes; at an older revision it reads history.
    fn txn_range(
        &mut self,
        r: &RangeRequest,
        main: i64,
        sub: i64,
    ) -> Result<RangeResponse, MvccError> {
        let latest = if sub > 0 { main } else { self.main };
        let rev = check_revision(r.revision, latest, self.compacted)?;
        if rev == latest {
            let kvs = self.live_range(&r.key, &r.range_end)?;
            let count = kvs.len() as i64;
            let found = kvs
                .iter()
                .map(|kv| (kv.key.clone(), Revision::default()))
                .collect();
            return finish_range(r, found, count, |i, _| {
                kvs.get(i)
                    .cloned()
                    .ok_or_else(|| storage("range bookkeeping"))
            });
        }
        let (found, count) = self
            .idx
            .live_at_first(&r.key, &r.range_end, rev, fetch_limit(r));
        let w = &mut *self.w;
        finish_range(r, found, count, |_, rev| {
            let v = w
                .get(KEY_BUCKET, &rev.to_key(false))
                .map_err(storage)?
                .ok_or_else(|| storage(format!("revision {rev} missing from the tree")))?;
            KeyValue::decode(&v).map_err(storage)
        })
    }
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// etcd's duplicate-key rule: within what one branch may write (nested transactions
/// included, either of their branches), no key is put twice and no put key is also deleted.
fn check_txn(t: &TxnRequest) -> Result<(), MvccError> {
    intervals(&t.success)?;
    intervals(&t.failure)?;
    Ok(())
}

type Intervals = (Vec<(Vec<u8>, Vec<u8>)>, HashSet<Vec<u8>>);

fn intervals(ops: &[RequestOp]) -> Result<Intervals, MvccError> {
    let mut dels: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        match op {
            RequestOp::Put(p) => {
                if !puts.insert(p.key.clone()) {
                    return Err(MvccError::DuplicateKey);
                }
            }
            RequestOp::DeleteRange(d) => dels.push((d.key.clone(), d.range_end.clone())),
            RequestOp::Txn(inner) => {
                let (sd, sp) = intervals(&inner.success)?;
                let (fd, fp) = intervals(&inner.failure)?;
                for k in sp.union(&fp) {
                    if puts.contains(k) {
                        return Err(MvccError::DuplicateKey);
                    }
                }
                puts.extend(sp);
                puts.extend(fp);
                dels.extend(sd);
                dels.extend(fd);
            }
            RequestOp::Range(_) => {}
        }
    }
    for k in &puts {
        if dels.iter().any(|(key, end)| in_range(k, key, end)) {
            return Err(MvccError::DuplicateKey);
        }
    }
    Ok((dels, puts))
}
