//! The MVCC store: etcd's key-value semantics over the B+tree.
//!
//! Layout in the database file:
//! - bucket `key`: revision key (17 bytes, 18 for a tombstone; see `revision.rs`) → the
//!   protobuf `KeyValue` of that revision (a tombstone stores just the key);
//! - bucket `meta`: `consistent_index` (the last applied raft log index, u64 big-endian),
//!   `scheduledCompactRev` and `finishedCompactRev` (i64 big-endian), written in the same
//!   commit as the data they describe; `leaseIdFloor` (i64 big-endian, the lowest ID the next
//!   lease granted without one may get);
//! - bucket `lease`: lease ID → granted TTL (both i64 big-endian);
//! - bucket `alarm`: raised alarms, member ID (u64 big-endian) then alarm type (i32
//!   big-endian), empty value (see `backend.rs`).
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
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::btree::{Db, Durability, ReadTxn};
use crate::mvcc::apply::Apply;
use crate::mvcc::backend::{LEASE_FLOOR, load_alarms};
use crate::mvcc::key_index::KeyIndex;
use crate::mvcc::key_map::KeyMap;
use crate::mvcc::kv::KeyValue;
use crate::mvcc::maintenance::{Cadence, Compactor, Syncer};
use crate::mvcc::ops::*;
use crate::mvcc::revision::Revision;
use crate::mvcc::watch::{Event, Hub, HubLock, to_event};

pub(super) const KEY_BUCKET: &[u8] = b"key";
/// The bucket holding the store's own records (applied index, compaction revisions, raft meta).
pub const META_BUCKET: &[u8] = b"meta";
pub(super) const CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub(super) const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
pub(super) const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
pub(super) const LEASE_BUCKET: &[u8] = b"lease";
/// etcd's largest lease TTL in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// How the store makes applied entries durable and compacts.
#[derive(Clone, Debug)]
pub struct MvccOptions {
    /// Make applied entries durable at least this often ([`MvccStore::maybe_sync`]).
    pub sync_interval: Duration,
    /// ... or once this many entries were applied since the last durable commit.
    pub sync_entries: u64,
    /// Revisions removed per write transaction by physical compaction (and four times the
    /// keys compacted per hold of the index lock).
    pub compaction_batch: usize,
    /// The compactor's pause between batches (etcd sleeps 10 ms), so it never takes the
    /// writer lock back to back.
    pub compaction_pause: Duration,
    /// Shorter lease TTLs are raised to this (etcd's minimum for its default 100 ms heartbeat
    /// and 1 s election timeout: ceil(1.5 × election timeout) = 2 s).
    pub lease_min_ttl: i64,
}

impl Default for MvccOptions {
    fn default() -> Self {
        MvccOptions {
            sync_interval: Duration::from_millis(1000),
            sync_entries: 10_000,
            compaction_batch: 1000,
            compaction_pause: Duration::from_millis(1),
            lease_min_ttl: 2,
        }
    }
}

pub(super) struct Index {
    pub(super) keys: KeyMap<KeyIndex>,
    pub(super) current: i64,
    pub(super) compacted: i64,
    pub(super) applied: u64,
    pub(super) leases: BTreeMap<i64, Lease>,
    /// The alarms raised (bucket `alarm`).
    pub(super) alarms: std::collections::BTreeSet<AlarmMember>,
    /// The lowest ID the next lease granted without an ID may get (meta `leaseIdFloor`).
    pub(super) lease_floor: i64,
}

/// A lease: its granted TTL, the keys attached to it, and when it was last renewed by this
/// node's clock (expiry is the leader's business: it asks [`MvccStore::expired`]).
pub(super) struct Lease {
    ttl: i64,
    pub(super) keys: std::collections::BTreeSet<Vec<u8>>,
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
pub(super) struct Change {
    pub(super) key: Vec<u8>,
    pub(super) rev: Revision,
    pub(super) tombstone: bool,
    pub(super) lease: i64,
    pub(super) old_lease: i64,
    /// The event's key-value (for a delete: the key and the deleting revision).
    pub(super) kv: KeyValue,
    /// The key-value before the change.
    pub(super) prev: Option<KeyValue>,
}

/// The MVCC store. It owns one thread, the compactor (`maintenance.rs`), stopped and joined
/// when the store is dropped.
pub struct MvccStore {
    pub(super) db: Db,
    opts: MvccOptions,
    index: Arc<RwLock<Index>>,
    pub(super) syncer: Syncer,
    pub(super) compactor: Arc<Compactor>,
    pub(super) hub: HubLock,
}

impl Drop for MvccStore {
    fn drop(&mut self) {
        self.compactor.shutdown();
    }
}

pub(super) fn storage(e: impl std::fmt::Display) -> MvccError {
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

pub(super) fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
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
    pub(super) fn live_at(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<(Vec<u8>, Revision)> {
        self.live_at_first(key, end, rev, usize::MAX).0
    }

    /// The first `keep` live keys of the range (with the revisions holding their values) and
    /// how many there are in all.
    pub(super) fn live_at_first(
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
        for (k, ki) in self.keys.range((lo, hi)) {
            if let Some(at) = ki.get(rev) {
                if found.len() < keep {
                    found.push((k.to_vec(), at.modified));
                }
                count += 1;
            }
        }
        (found, count)
    }
}

impl MvccStore {
    /// Opens the store kept in `db`, rebuilding the key index, and starts the compactor
    /// thread. A compaction a crash interrupted is refused to reads at once and finished by
    /// the compactor in the background.
    pub fn open(db: Db, opts: MvccOptions) -> Result<MvccStore, MvccError> {
        let r = db.begin_read().map_err(storage)?;
        let meta = |k: &[u8]| -> Result<Option<i64>, MvccError> {
            r.get(META_BUCKET, k)
                .map_err(storage)?
                .map(|v| be_i64(&v))
                .transpose()
        };
        let applied = meta(CONSISTENT_INDEX)?.unwrap_or(0) as u64;
        let stored_floor = meta(LEASE_FLOOR)?.unwrap_or(0);
        let alarms = load_alarms(&r)?;
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
        // etcd starts an empty store at revision 1: the first write is revision 2.
        let mut current = 1;
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
        let keys = KeyMap::from_sorted(built).map_err(storage)?;
        // The scan touched every page once; do not keep them all resident for it.
        db.release_mapped_pages().map_err(storage)?;
        // A store written before the floor was kept: above every lease it holds.
        let lease_floor =
            stored_floor.max(leases.keys().last().map_or(1, |id| id.saturating_add(1)));
        let index = Arc::new(RwLock::new(Index {
            keys,
            current: current.max(scheduled),
            compacted: finished.max(scheduled),
            applied,
            leases,
            alarms,
            lease_floor,
        }));
        let syncer = Syncer {
            db: db.clone(),
            cadence: Arc::new(Mutex::new(Cadence {
                last_sync: Instant::now(),
                pending: 0,
            })),
            interval: opts.sync_interval,
            entries: opts.sync_entries,
        };
        let compactor = Compactor::start(syncer.clone(), index.clone(), &opts, finished)?;
        if scheduled > finished {
            compactor.schedule(scheduled)?;
        }
        Ok(MvccStore {
            db,
            opts,
            index,
            syncer,
            compactor,
            hub: Mutex::new(Hub::default()),
        })
    }

    pub(super) fn read_index(&self) -> Result<std::sync::RwLockReadGuard<'_, Index>, MvccError> {
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

    /// A value of the `meta` bucket as last committed (e.g. one written by
    /// [`apply_with_meta`](Self::apply_with_meta)).
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MvccError> {
        let r = self.db.begin_read().map_err(storage)?;
        Ok(r.get(META_BUCKET, key)
            .map_err(storage)?
            .map(|v| v.to_vec()))
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
        let Some(last_index) = entries.iter().map(|(i, _)| *i).max() else {
            return Ok(Vec::new());
        };
        self.apply_with_meta(last_index, entries, &[])
    }

    /// [`apply`](Self::apply), recording `last_index` as the applied index even where no
    /// request carries it (raft's blank and membership entries), and writing `meta` (key,
    /// value pairs for the `meta` bucket, e.g. raft's last applied log id and membership; keys
    /// must start with `raft_`) in the same commit. Nothing is written when `last_index` is at
    /// or below the applied index. Returns one result per request past the applied index.
    pub fn apply_with_meta(
        &self,
        last_index: u64,
        entries: &[(u64, WriteRequest)],
        meta: &[(&[u8], &[u8])],
    ) -> Result<Vec<Result<Applied<WriteResponse>, MvccError>>, MvccError> {
        if let Some((k, _)) = meta.iter().find(|(k, _)| !k.starts_with(b"raft_")) {
            return Err(storage(format!(
                "meta key {:?} does not start with raft_",
                String::from_utf8_lossy(k)
            )));
        }
        let (applied, current, compacted) = {
            let idx = self.read_index()?;
            (idx.applied, idx.current, idx.compacted)
        };
        if last_index <= applied {
            return Ok(Vec::new());
        }
        let todo: Vec<&(u64, WriteRequest)> =
            entries.iter().filter(|(i, _)| *i > applied).collect();
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
            alarms: idx.alarms.clone(),
            lease_floor: idx.lease_floor,
        };
        let mut results = Vec::with_capacity(todo.len());
        for (log_index, req) in &todo {
            results.push(ctx.request(*log_index, req));
        }
        let (changes, compact_to, main) =
            (std::mem::take(&mut ctx.changes), ctx.compact_to, ctx.main);
        let lease_changes = std::mem::take(&mut ctx.lease_overlay);
        let (alarms, lease_floor) = (std::mem::take(&mut ctx.alarms), ctx.lease_floor);
        drop(idx);
        w.put(META_BUCKET, CONSISTENT_INDEX, &last_index.to_be_bytes())
            .map_err(storage)?;
        for (k, v) in meta {
            w.put(META_BUCKET, k, v).map_err(storage)?;
        }
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
                let ki = idx
                    .keys
                    .get_or_insert_default(&c.key)
                    .ok_or_else(|| storage("the key index lost a key it had just added"))?;
                if c.tombstone {
                    ki.tombstone(c.rev).map_err(storage)?;
                } else {
                    ki.put(c.rev).map_err(storage)?;
                }
            }
            idx.current = main;
            idx.applied = last_index;
            idx.alarms = alarms;
            idx.lease_floor = lease_floor;
            if let Some(rev) = compact_to {
                // Reads below the compaction are refused from now on; the compactor drops the
                // history from the index and the tree in the background.
                idx.compacted = idx.compacted.max(rev);
            }
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
        self.syncer.add(todo.len() as u64);
        if let Some(rev) = compact_to {
            self.compactor.schedule(rev)?;
        }
        Ok(results)
    }

    /// Makes everything applied durable.
    pub fn sync(&self) -> Result<(), MvccError> {
        self.syncer.sync()
    }

    /// Syncs if the cadence says so (`sync_interval` elapsed or `sync_entries` applied);
    /// returns whether it did.
    pub fn maybe_sync(&self) -> Result<bool, MvccError> {
        self.syncer.maybe_sync()
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
            // etcd refuses the compaction revision itself here (unlike a range).
            if revision > 0 && revision <= idx.compacted {
                return Err(MvccError::Compacted {
                    requested: revision,
                    compacted: idx.compacted,
                });
            }
            // As etcd's HashByRev: only 0 means the current revision; a negative one hashes
            // no revision at all, just the bucket name.
            if revision < 0 {
                return Ok((crc32c::crc32c(KEY_BUCKET), idx.compacted, revision));
            }
            let upper = if revision == 0 { idx.current } else { revision };
            // As etcd's HashByRev: the revisions a compaction at the hash revision would keep
            // (not at the compaction revision) decide which compacted-range revisions count.
            let mut keep = HashSet::new();
            if idx.compacted > 0 {
                for ki in idx.keys.values() {
                    ki.keep(upper, &mut keep);
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
}

/// Whole seconds a lease has left at `now`.
fn remaining(l: &Lease, now: Instant) -> i64 {
    let deadline = l.renewed + Duration::from_secs(l.ttl.max(0) as u64);
    deadline.saturating_duration_since(now).as_secs_f64().ceil() as i64
}

/// The revision a read at `requested` uses, or etcd's error for it.
pub(super) fn check_revision(
    requested: i64,
    current: i64,
    compacted: i64,
) -> Result<i64, MvccError> {
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
pub(super) fn fetch_limit(req: &RangeRequest) -> usize {
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
pub(super) fn finish_range(
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
    // As etcd: with no filter and no explicit order, read limit + 1 keys (in key order), then
    // sort those — a target other than the key with order NONE sorts only them.
    let take = if req.limit > 0 && !filters && req.sort_order == SortOrder::None {
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
        // etcd's sort.Sort (sort.Reverse to descend) is a stable insertion sort up to 12
        // entries: ties stay in key order both ways (beyond 12, its order is pdqsort's).
        if order == SortOrder::Descend {
            kvs.sort_by_key(|kv| std::cmp::Reverse(key(kv)));
        } else {
            kvs.sort_by_key(key);
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
