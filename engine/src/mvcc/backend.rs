//! Whole-backend records and operations: the alarms (bucket `alarm`), the lease-ID floor,
//! the hash of every bucket (etcd's `Maintenance.Hash` and `etcdutl snapshot status`), and
//! preparing a database restored from a snapshot to start a new raft log.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::btree::{Db, Durability, ReadTxn};
use crate::mvcc::ops::{AlarmMember, AlarmType, MvccError};
use crate::mvcc::revision::Revision;
use crate::mvcc::store::{
    CONSISTENT_INDEX, KEY_BUCKET, LEASE_BUCKET, META_BUCKET, MvccStore, storage,
};

/// The bucket of raised alarms (etcd keeps them in its `alarm` bucket too).
pub(super) const ALARM_BUCKET: &[u8] = b"alarm";
/// Meta key: the lowest ID the next lease granted without an ID may get.
pub(super) const LEASE_FLOOR: &[u8] = b"leaseIdFloor";

/// An alarm's key in the `alarm` bucket: member ID (u64 big-endian), alarm type (i32
/// big-endian, etcd's enum number).
pub(super) fn alarm_key(a: &AlarmMember) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&a.member.to_be_bytes());
    k[8..].copy_from_slice(&a.alarm.code().to_be_bytes());
    k
}

/// The raised alarms as the snapshot `r` holds them. An unknown alarm type is damage.
pub(super) fn load_alarms(r: &ReadTxn) -> Result<BTreeSet<AlarmMember>, MvccError> {
    let mut out = BTreeSet::new();
    for item in r
        .range(ALARM_BUCKET, Bound::Unbounded, Bound::Unbounded)
        .map_err(storage)?
    {
        let (k, _) = item.map_err(storage)?;
        let (member, code) = match (k.get(..8), k.get(8..12)) {
            (Some(m), Some(c)) if k.len() == 12 => (
                u64::from_be_bytes(m.try_into().map_err(storage)?),
                i32::from_be_bytes(c.try_into().map_err(storage)?),
            ),
            _ => return Err(storage("alarm key is not 12 bytes")),
        };
        let alarm = AlarmType::from_code(code)
            .ok_or_else(|| storage(format!("unknown alarm type {code} in the alarm bucket")))?;
        out.insert(AlarmMember { member, alarm });
    }
    Ok(out)
}

/// What [`backend_digest`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendDigest {
    /// CRC-32C over every bucket name, then each of its keys and values, in order.
    pub hash: u32,
    /// The newest revision in the `key` bucket (0 when it is empty).
    pub revision: i64,
    /// Entries in all buckets.
    pub total_keys: u64,
}

/// The hash of the whole database at one snapshot, in etcd's shape (`etcdutl snapshot
/// status` hashes every bucket's name, keys and values with CRC-32 Castagnoli). With
/// `member_local`, the `meta` records that differ between members holding the same data are
/// left out — the applied raft index and log id — as etcd's `Hash` leaves out its
/// consistent index and term.
pub fn backend_digest(r: &ReadTxn, member_local: bool) -> Result<BackendDigest, MvccError> {
    let mut hash = 0u32;
    let mut revision = 0i64;
    let mut total_keys = 0u64;
    for name in r.bucket_names().map_err(storage)? {
        hash = crc32c::crc32c_append(hash, &name);
        let is_key = name == KEY_BUCKET;
        for item in r
            .range(&name, Bound::Unbounded, Bound::Unbounded)
            .map_err(storage)?
        {
            let (k, v) = item.map_err(storage)?;
            if member_local && name == META_BUCKET && member_specific(&k) {
                continue;
            }
            hash = crc32c::crc32c_append(hash, &k);
            hash = crc32c::crc32c_append(hash, &v);
            if is_key {
                revision = Revision::from_key(&k).map_err(storage)?.0.main;
            }
            total_keys += 1;
        }
    }
    Ok(BackendDigest {
        hash,
        revision,
        total_keys,
    })
}

/// Meta records a member's raft log position is written in.
fn member_specific(k: &[u8]) -> bool {
    k == CONSISTENT_INDEX || k.starts_with(b"raft_")
}

impl MvccStore {
    /// The alarms raised, in (member, type) order.
    pub fn alarms(&self) -> Result<Vec<AlarmMember>, MvccError> {
        Ok(self.read_index()?.alarms.iter().copied().collect())
    }

    /// etcd's `Maintenance.Hash`: [`backend_digest`] of the current state, without the
    /// member-specific meta records. Returns the hash and the revision it was taken at.
    pub fn hash(&self) -> Result<(u32, i64), MvccError> {
        let (snap, current) = {
            let idx = self.read_index()?;
            (self.db.begin_read().map_err(storage)?, idx.current)
        };
        Ok((backend_digest(&snap, true)?.hash, current))
    }
}

/// Prepares a database restored from a snapshot to be the store of a new member on a new
/// raft log: the raft position (applied index, applied log id, membership) is removed, so
/// the new log's entries all apply from its start; the lease-ID floor is raised above every
/// lease and above the old log's applied index (IDs granted without one came from it), so no
/// lease ID granted before the snapshot is handed out again. Keys, revisions, leases,
/// alarms and the compaction state stay. Commits durably; returns the digest of the result.
pub fn prepare_restored(db: &Db) -> Result<BackendDigest, MvccError> {
    let r = db.begin_read().map_err(storage)?;
    let be_i64 = |v: Option<std::borrow::Cow<'_, [u8]>>| -> i64 {
        v.and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
            .map_or(0, i64::from_be_bytes)
    };
    let applied = be_i64(r.get(META_BUCKET, CONSISTENT_INDEX).map_err(storage)?);
    let floor = be_i64(r.get(META_BUCKET, LEASE_FLOOR).map_err(storage)?);
    let mut max_lease = 0i64;
    for item in r
        .range(LEASE_BUCKET, Bound::Unbounded, Bound::Unbounded)
        .map_err(storage)?
    {
        let (k, _) = item.map_err(storage)?;
        max_lease = max_lease.max(be_i64(Some(k)));
    }
    let mut raft_keys = Vec::new();
    for item in r
        .range(META_BUCKET, Bound::Unbounded, Bound::Unbounded)
        .map_err(storage)?
    {
        let (k, _) = item.map_err(storage)?;
        if member_specific(&k) {
            raft_keys.push(k.to_vec());
        }
    }
    drop(r);
    let floor = floor
        .max(applied.saturating_add(1))
        .max(max_lease.saturating_add(1));
    let mut w = db.begin_write().map_err(storage)?;
    for k in &raft_keys {
        w.delete(META_BUCKET, k).map_err(storage)?;
    }
    w.put(META_BUCKET, LEASE_FLOOR, &floor.to_be_bytes())
        .map_err(storage)?;
    w.commit(Durability::Durable).map_err(storage)?;
    let r = db.begin_read().map_err(storage)?;
    backend_digest(&r, false)
}
