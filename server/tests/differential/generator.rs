//! The operation generator: a seeded xorshift PRNG and the requests it draws.
//!
//! Every choice comes from the PRNG and from [`Model`] (the revision and compaction revision
//! etcd last reported), never from Strata's answers, so a seed replays the same sequence.
//!
//! The key space holds at most 12 keys: etcd sorts ranges with Go's `sort.Sort`, which is an
//! insertion sort — stable — only for up to 12 elements; beyond that, ties between equal
//! versions or values come back in an order no other implementation can reproduce.

use strata_server::proto::etcdserverpb as pb;

/// xorshift64 (Marsaglia): tiny, deterministic, good enough to pick operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // A zero state would stay zero; mix the seed first.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// In `lo..=hi` (`lo` when `hi < lo`).
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The keys operations touch (12 at most, see the module doc).
pub const KEYS: [&str; 12] = [
    "a", "b", "c", "d", "foo", "foo/1", "foo/2", "foo/3", "p/x", "p/y", "q", "z",
];
/// Few values, so value compares hit and sorts by value meet ties.
pub const VALUES: [&str; 5] = ["", "v0", "v1", "v2", "v10"];
/// Lease IDs passed explicitly on grant: etcd would pick random ones, Strata small ones.
pub const LEASES: [i64; 5] = [0x101, 0x102, 0x103, 0x104, 0x7fff_0000_0000_0001];

/// What the generator knows of the store: etcd's last header revision and compaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Model {
    pub revision: i64,
    pub compacted: i64,
}

/// One generated operation.
#[derive(Clone, Debug)]
pub enum Op {
    Put(pb::PutRequest),
    Delete(pb::DeleteRangeRequest),
    Range(pb::RangeRequest),
    Txn(pb::TxnRequest),
    Compact(pb::CompactionRequest),
    Grant(pb::LeaseGrantRequest),
    /// A grant at TTL 1 (etcd raises it to its minimum) revoked at once, before it expires.
    GrantRevoke(pb::LeaseGrantRequest),
    Revoke(pb::LeaseRevokeRequest),
    TimeToLive(pb::LeaseTimeToLiveRequest),
    Leases,
    /// One keep-alive on a fresh stream: the answer's TTL is the granted one (0: unknown).
    KeepAlive(pb::LeaseKeepAliveRequest),
    HashKv(pb::HashKvRequest),
}

fn key(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&KEYS).as_bytes().to_vec()
}

fn value(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&VALUES).as_bytes().to_vec()
}

/// `[key, range_end)` in one of etcd's shapes: single key, explicit range, prefix, from-key.
fn key_range(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    match rng.below(10) {
        0..=3 => (key(rng), Vec::new()),
        4..=5 => {
            let (mut a, mut b) = (key(rng), key(rng));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            // Sometimes an empty or reversed range: both answer nothing.
            if rng.chance(10) {
                std::mem::swap(&mut a, &mut b);
            }
            (a, b)
        }
        6..=7 => {
            let p = *rng.pick(&["foo", "foo/", "p/", "a", "z"]);
            (p.as_bytes().to_vec(), prefix_end(p.as_bytes()))
        }
        8 => (vec![0], vec![0]),
        _ => (key(rng), vec![0]),
    }
}

/// etcd's `GetPrefixRangeEnd`.
pub fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A revision for a read: mostly current, sometimes past, compacted or future.
fn read_revision(rng: &mut Rng, m: Model) -> i64 {
    match rng.below(10) {
        0..=5 => 0,
        6..=7 => rng.between(m.compacted.max(1), m.revision),
        8 => rng.between(0, m.compacted),
        _ => m.revision + rng.between(1, 3),
    }
}

fn lease(rng: &mut Rng) -> i64 {
    *rng.pick(&LEASES)
}

pub fn put(rng: &mut Rng) -> pb::PutRequest {
    let mut p = pb::PutRequest {
        key: key(rng),
        value: value(rng),
        prev_kv: rng.chance(40),
        ..Default::default()
    };
    if rng.chance(20) {
        p.lease = lease(rng);
    }
    if rng.chance(8) {
        p.ignore_value = true;
        // Mostly valid (no value); sometimes etcd's "value is provided".
        if !rng.chance(20) {
            p.value.clear();
        }
    }
    if rng.chance(8) {
        p.ignore_lease = true;
        if !rng.chance(20) {
            p.lease = 0;
        }
    }
    if rng.chance(2) {
        p.key.clear();
    }
    p
}

pub fn delete(rng: &mut Rng) -> pb::DeleteRangeRequest {
    let (key, range_end) = if rng.chance(4) {
        (vec![0], vec![0])
    } else {
        key_range(rng)
    };
    pb::DeleteRangeRequest {
        key,
        range_end,
        prev_kv: rng.chance(50),
    }
}

pub fn range(rng: &mut Rng, m: Model) -> pb::RangeRequest {
    let (key, range_end) = key_range(rng);
    let mut r = pb::RangeRequest {
        key,
        range_end,
        revision: read_revision(rng, m),
        serializable: rng.chance(30),
        keys_only: rng.chance(15),
        count_only: rng.chance(10),
        ..Default::default()
    };
    if rng.chance(40) {
        r.limit = rng.between(1, 4);
    }
    if rng.chance(45) {
        r.sort_order = rng.between(0, 2) as i32;
        r.sort_target = rng.between(0, 4) as i32;
    }
    if rng.chance(20) {
        let hi = m.revision.max(2);
        match rng.below(4) {
            0 => r.min_mod_revision = rng.between(1, hi),
            1 => r.max_mod_revision = rng.between(1, hi),
            2 => r.min_create_revision = rng.between(1, hi),
            _ => r.max_create_revision = rng.between(1, hi),
        }
    }
    if rng.chance(2) {
        r.key.clear();
    }
    r
}

fn compare(rng: &mut Rng, m: Model) -> pb::Compare {
    use pb::compare::{CompareTarget, TargetUnion};
    let (key, range_end) = if rng.chance(15) {
        let p = *rng.pick(&["foo", "p/"]);
        (p.as_bytes().to_vec(), prefix_end(p.as_bytes()))
    } else {
        (key(rng), Vec::new())
    };
    let target = rng.between(0, 4) as i32;
    let rev = rng.between(0, m.revision + 1);
    let union = match CompareTarget::try_from(target) {
        Ok(CompareTarget::Version) => TargetUnion::Version(rng.between(0, 3)),
        Ok(CompareTarget::Create) => TargetUnion::CreateRevision(rev),
        Ok(CompareTarget::Mod) => TargetUnion::ModRevision(rev),
        Ok(CompareTarget::Value) => TargetUnion::Value(value(rng)),
        _ => TargetUnion::Lease(if rng.chance(30) { 0 } else { lease(rng) }),
    };
    pb::Compare {
        result: rng.between(0, 3) as i32,
        target,
        key,
        range_end,
        target_union: Some(union),
    }
}

/// A branch of a transaction. Write keys are drawn without repetition from `used` (shared
/// with nested branches, as etcd's duplicate rule is), except when `dup` allows a clash.
fn branch(rng: &mut Rng, m: Model, depth: u32, used: &mut Vec<Vec<u8>>) -> Vec<pb::RequestOp> {
    use pb::request_op::Request;
    let mut ops = Vec::new();
    for _ in 0..rng.below(4) {
        let op = match rng.below(10) {
            0..=3 => {
                let mut p = put(rng);
                p.key = fresh_key(rng, used);
                Request::RequestPut(p)
            }
            4..=5 => {
                let mut r = range(rng, m);
                if r.key.is_empty() {
                    r.key = key(rng);
                }
                Request::RequestRange(r)
            }
            6..=7 => Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: fresh_key(rng, used),
                range_end: Vec::new(),
                prev_kv: rng.chance(50),
            }),
            _ if depth < 2 => Request::RequestTxn(txn_at(rng, m, depth + 1, used)),
            _ => Request::RequestRange(pb::RangeRequest {
                key: key(rng),
                ..Default::default()
            }),
        };
        ops.push(pb::RequestOp { request: Some(op) });
    }
    ops
}

fn fresh_key(rng: &mut Rng, used: &mut Vec<Vec<u8>>) -> Vec<u8> {
    // Now and then allow a duplicate: etcd refuses it, and so must Strata.
    for _ in 0..8 {
        let k = key(rng);
        if !used.contains(&k) || rng.chance(3) {
            used.push(k.clone());
            return k;
        }
    }
    key(rng)
}

fn txn_at(rng: &mut Rng, m: Model, depth: u32, used: &mut Vec<Vec<u8>>) -> pb::TxnRequest {
    let compare = (0..rng.below(4)).map(|_| compare(rng, m)).collect();
    // The two branches never run together: each has its own duplicate set.
    let mut used_failure = used.clone();
    let success = branch(rng, m, depth, used);
    let failure = branch(rng, m, depth, &mut used_failure);
    used.extend(used_failure);
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn txn(rng: &mut Rng, m: Model) -> pb::TxnRequest {
    let mut t = txn_at(rng, m, 0, &mut Vec::new());
    if rng.chance(5) {
        // A deliberate duplicate: the same key put twice, or put inside a deleted range.
        use pb::request_op::Request;
        let k = key(rng);
        let second = if rng.chance(50) {
            Request::RequestPut(pb::PutRequest {
                key: k.clone(),
                ..Default::default()
            })
        } else {
            Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: vec![0],
                range_end: vec![0],
                prev_kv: false,
            })
        };
        t.success = vec![
            pb::RequestOp {
                request: Some(Request::RequestPut(pb::PutRequest {
                    key: k,
                    value: b"dup".to_vec(),
                    ..Default::default()
                })),
            },
            pb::RequestOp {
                request: Some(second),
            },
        ];
    }
    t
}

pub fn compact(rng: &mut Rng, m: Model) -> pb::CompactionRequest {
    let revision = match rng.below(10) {
        // Already compacted (etcd: "required revision has been compacted"). Not revision 0
        // before any compaction: etcd compacts "at 0" then (its compaction revision starts at
        // -1), Strata refuses it as compacted — a difference left alone, see the report.
        0 if m.compacted > 0 => rng.between(0, m.compacted),
        // In the future.
        1 => m.revision + rng.between(1, 3),
        _ => rng.between(m.compacted + 1, m.revision),
    };
    pb::CompactionRequest {
        revision,
        physical: rng.chance(50),
    }
}

pub fn hash_kv(rng: &mut Rng, m: Model) -> pb::HashKvRequest {
    let revision = match rng.below(10) {
        0..=4 => 0,
        5..=7 => rng.between(m.compacted + 1, m.revision),
        8 => rng.between(1, m.compacted.max(1)),
        _ => m.revision + rng.between(1, 2),
    };
    pb::HashKvRequest { revision }
}

/// The next operation.
pub fn op(rng: &mut Rng, m: Model) -> Op {
    match rng.below(100) {
        0..=24 => Op::Put(put(rng)),
        25..=32 => Op::Delete(delete(rng)),
        33..=57 => Op::Range(range(rng, m)),
        58..=74 => Op::Txn(txn(rng, m)),
        75..=78 => Op::Compact(compact(rng, m)),
        79..=82 => Op::Grant(pb::LeaseGrantRequest {
            id: lease(rng),
            // etcd's limit is 9,000,000,000 s: above it, "too large lease TTL".
            ttl: if rng.chance(10) {
                9_000_000_001
            } else {
                rng.between(300, 900)
            },
        }),
        83 => Op::GrantRevoke(pb::LeaseGrantRequest {
            id: 0x200 + rng.between(0, 1000),
            ttl: 1,
        }),
        84..=86 => Op::Revoke(pb::LeaseRevokeRequest { id: lease(rng) }),
        87..=89 => Op::TimeToLive(pb::LeaseTimeToLiveRequest {
            id: lease(rng),
            keys: rng.chance(70),
        }),
        90 => Op::Leases,
        91..=92 => Op::KeepAlive(pb::LeaseKeepAliveRequest { id: lease(rng) }),
        _ => Op::HashKv(hash_kv(rng, m)),
    }
}
