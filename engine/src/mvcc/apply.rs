//! Applying one batch of write requests in one B+tree write transaction: etcd's semantics for
//! put, delete, txn (compare path, duplicate-key rule), compaction requests and leases, with a
//! view of the batch's own earlier writes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::btree::WriteTxn;
use crate::mvcc::backend::{ALARM_BUCKET, LEASE_FLOOR, alarm_key};
use crate::mvcc::kv::KeyValue;
use crate::mvcc::ops::*;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::{
    Change, Index, KEY_BUCKET, LEASE_BUCKET, MAX_LEASE_TTL, META_BUCKET, MvccOptions,
    SCHEDULED_COMPACT, check_revision, fetch_limit, finish_range, in_range, storage,
};

/// One write transaction applying a batch of requests.
pub(super) struct Apply<'a, 'db> {
    pub(super) w: &'a mut WriteTxn<'db>,
    pub(super) idx: &'a Index,
    pub(super) opts: &'a MvccOptions,
    /// Leases granted (`Some(ttl)`) or revoked (`None`) in this batch.
    pub(super) lease_overlay: BTreeMap<i64, Option<i64>>,
    /// The revision of the last request applied so far.
    pub(super) main: i64,
    pub(super) compacted: i64,
    /// Keys written in this batch: their latest value, or `None` once deleted.
    pub(super) overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    /// Index updates to make after the commit.
    pub(super) changes: Vec<Change>,
    pub(super) compact_to: Option<i64>,
    /// The alarms raised, as this batch leaves them.
    pub(super) alarms: BTreeSet<AlarmMember>,
    /// The lowest ID a lease granted without one may get (see `lease_grant`).
    pub(super) lease_floor: i64,
}

impl Apply<'_, '_> {
    pub(super) fn request(
        &mut self,
        log_index: u64,
        req: &WriteRequest,
    ) -> Result<Applied<WriteResponse>, MvccError> {
        let rev = self.main + 1;
        let mut sub = 0;
        // etcd's capped applier: while NOSPACE is raised, nothing that adds data applies
        // (deletes, compaction and revokes still do, so an operator can make room).
        if self.nospace() && adds_data(req) {
            return Err(MvccError::NoSpace);
        }
        // etcd's corrupt applier: nothing but alarm requests while CORRUPT is raised.
        if !matches!(req, WriteRequest::Alarm { .. })
            && self.alarms.iter().any(|a| a.alarm == AlarmType::Corrupt)
        {
            return Err(MvccError::Corrupt);
        }
        let response = match req {
            WriteRequest::Put(p) => {
                self.check_put(p, false)?;
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
            WriteRequest::Alarm { action, alarm } => self.alarm(*action, *alarm)?,
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

    /// A put's checks. When both a missing key (for `ignore_value`/`ignore_lease`) and an
    /// unknown lease apply, etcd reports the lease for a put on its own (its applier looks the
    /// lease up first) and the key for a put inside a transaction (`checkRequestPut`).
    fn check_put(&mut self, p: &PutRequest, in_txn: bool) -> Result<(), MvccError> {
        if p.key.is_empty() {
            return Err(MvccError::EmptyKey);
        }
        if p.ignore_value && !p.value.is_empty() {
            return Err(MvccError::ValueProvided);
        }
        if p.ignore_lease && p.lease != 0 {
            return Err(MvccError::LeaseProvided);
        }
        let lease_missing = p.lease != 0 && !self.lease_exists(p.lease);
        if lease_missing && !in_txn {
            return Err(MvccError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.latest(&p.key)?.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if lease_missing {
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
            // Every member picks the same ID: the first free one from the log index on, and
            // never below the floor, which stays above every ID granted before — also across
            // a snapshot restore, whose new raft log starts again at index 1 (an old client
            // holding a revoked lease's ID must not find it granted anew).
            let mut id = (log_index as i64).max(self.lease_floor).max(1);
            while self.lease_exists(id) {
                id += 1;
            }
            self.lease_floor = id.saturating_add(1);
            self.w
                .put(META_BUCKET, LEASE_FLOOR, &self.lease_floor.to_be_bytes())
                .map_err(storage)?;
            id
        };
        let ttl = ttl.max(self.opts.lease_min_ttl);
        self.w
            .put(LEASE_BUCKET, &id.to_be_bytes(), &ttl.to_be_bytes())
            .map_err(storage)?;
        self.lease_overlay.insert(id, Some(ttl));
        Ok(WriteResponse::LeaseGrant { id, ttl })
    }

    fn nospace(&self) -> bool {
        self.alarms.iter().any(|a| a.alarm == AlarmType::Nospace)
    }

    /// etcd's alarm apply: activating an alarm already raised, or deactivating one not
    /// raised, changes nothing and answers no alarm.
    fn alarm(
        &mut self,
        action: AlarmAction,
        alarm: AlarmMember,
    ) -> Result<WriteResponse, MvccError> {
        let key = alarm_key(&alarm);
        let changed = match action {
            AlarmAction::Activate => {
                let new = self.alarms.insert(alarm);
                if new {
                    self.w.put(ALARM_BUCKET, &key, &[]).map_err(storage)?;
                }
                new
            }
            AlarmAction::Deactivate => {
                let had = self.alarms.remove(&alarm);
                if had {
                    self.w.delete(ALARM_BUCKET, &key).map_err(storage)?;
                }
                had
            }
        };
        Ok(WriteResponse::Alarm(if changed {
            vec![alarm]
        } else {
            Vec::new()
        }))
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
        // A watcher's previous value is the key's value at the revision before (etcd reads it
        // at mod_revision - 1 when it sends the event): a key written earlier in this same
        // revision — a transaction's nested put, then a later sibling's delete — shows the
        // value from before the transaction, not that put.
        let event_prev = match &prev {
            Some(p) if p.mod_revision == rev.main => self
                .changes
                .iter()
                .rev()
                .find(|c| c.key == kv.key && c.rev.main == rev.main)
                .and_then(|c| c.prev.clone()),
            other => other.clone(),
        };
        self.changes.push(Change {
            key: kv.key.clone(),
            rev,
            tombstone,
            lease: kv.lease,
            old_lease: prev.as_ref().map_or(0, |p| p.lease),
            kv: event_kv,
            prev: event_prev,
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
    /// against the state before the transaction writes anything (as etcd does). Returns the
    /// branch taken by each transaction, in the order they will run.
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
        // As etcd's applier: every put on the path is checked first, then every range, so
        // with both wrong the put's error is the answer.
        for puts in [true, false] {
            self.check_path(t, &path, &mut 0, puts)?;
        }
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

    /// Checks the puts (`puts`) or else the ranges and deletes on the path, in the order
    /// they would run; `at` walks `path`.
    fn check_path(
        &mut self,
        t: &TxnRequest,
        path: &[bool],
        at: &mut usize,
        puts: bool,
    ) -> Result<(), MvccError> {
        let ok = *path
            .get(*at)
            .ok_or_else(|| storage("transaction path bookkeeping"))?;
        *at += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Txn(inner) => self.check_path(inner, path, at, puts)?,
                RequestOp::Put(p) if puts => self.check_put(p, true)?,
                RequestOp::DeleteRange(d) if !puts && d.key.is_empty() => {
                    return Err(MvccError::EmptyKey);
                }
                RequestOp::Range(r) if !puts => {
                    if r.key.is_empty() {
                        return Err(MvccError::EmptyKey);
                    }
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

/// etcd's duplicate-key rule, step for step as etcd's `checkIntervals` (`v3rpc/key.go`), for
/// each branch of the outer transaction:
/// - this level's deletes are collected first;
/// - then each nested transaction in order: its success-branch puts must not be put already
///   nor fall in a delete collected so far; its failure-branch puts likewise, except that they
///   may repeat its own success-branch puts (only one branch runs); then its deletes join;
/// - last, this level's puts must not repeat any put nor fall in any delete collected.
///
/// So a nested transaction's put may precede a later sibling's delete of the same key, and a
/// delete with range end `"\0"` (from-key) clashes with nothing: etcd's interval for it is
/// `[key, "\0")`, which holds no key. What Strata does not copy: etcd searches its interval
/// tree with a walk that can miss an overlap when a reversed (empty) range sits in the same
/// tree; here every delete is tested.
/// Whether a request adds data, as etcd's quota counts it: a put, a transaction with a put in
/// either branch (nested transactions are not looked into), a lease grant.
pub fn adds_data(req: &WriteRequest) -> bool {
    let put = |ops: &[RequestOp]| ops.iter().any(|op| matches!(op, RequestOp::Put(_)));
    match req {
        WriteRequest::Put(_) | WriteRequest::LeaseGrant { .. } => true,
        WriteRequest::Txn(t) => put(&t.success) || put(&t.failure),
        _ => false,
    }
}

fn check_txn(t: &TxnRequest) -> Result<(), MvccError> {
    intervals(&t.success)?;
    intervals(&t.failure)?;
    Ok(())
}

/// `(keys put, [key, range_end) deleted)` by a branch and the transactions nested in it.
type Intervals = (HashSet<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

fn intervals(ops: &[RequestOp]) -> Result<Intervals, MvccError> {
    let mut dels: Vec<(Vec<u8>, Vec<u8>)> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some((d.key.clone(), d.range_end.clone())),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let RequestOp::Txn(inner) = op else {
            continue;
        };
        let (then_puts, then_dels) = intervals(&inner.success)?;
        let (else_puts, else_dels) = intervals(&inner.failure)?;
        for k in &then_puts {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &else_puts {
            if (puts.contains(k) && !then_puts.contains(k)) || deleted(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(then_dels);
        dels.extend(else_dels);
    }
    for op in ops {
        let RequestOp::Put(p) = op else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

/// Whether `k` falls in one of etcd's delete intervals: the key itself without a range end,
/// else `[key, range_end)` compared as plain bytes (so `"\0"` holds nothing).
fn deleted(dels: &[(Vec<u8>, Vec<u8>)], k: &[u8]) -> bool {
    dels.iter().any(|(key, end)| {
        if end.is_empty() {
            k == key.as_slice()
        } else {
            key.as_slice() <= k && k < end.as_slice()
        }
    })
}
