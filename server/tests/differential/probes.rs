//! Fixed requests every run ends with: the ones etcd refuses, each with its own error, and
//! odd but valid ones. The generator draws few of these, so they are listed once here.

use strata_server::proto::etcdserverpb as pb;

use super::generator::Op;

fn put(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.into(),
            value: b"x".to_vec(),
            ..Default::default()
        })),
    }
}

fn txn(compare: Vec<pb::Compare>, success: Vec<pb::RequestOp>) -> Op {
    Op::Txn(pb::TxnRequest {
        compare,
        success,
        failure: Vec::new(),
    })
}

fn compare(key: &str, result: i32, target: i32) -> pb::Compare {
    pb::Compare {
        key: key.into(),
        result,
        target,
        range_end: Vec::new(),
        target_union: Some(pb::compare::TargetUnion::Version(0)),
    }
}

/// Requests with something wrong (and a few merely odd).
pub fn probes() -> Vec<Op> {
    let all = |f: fn(&mut pb::RangeRequest)| {
        let mut r = pb::RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        f(&mut r);
        Op::Range(r)
    };
    vec![
        // Empty keys.
        all(|r| r.key.clear()),
        Op::Delete(pb::DeleteRangeRequest::default()),
        Op::Put(pb::PutRequest::default()),
        txn(vec![compare("", 0, 0)], Vec::new()),
        // Enum values outside etcd's. Not sort options: etcd 3.4 sorts nothing with an
        // unknown order and dies on an unknown target (a nil sorter); etcd 3.5 refuses both
        // with "invalid sort option", as Strata does (`check.rs`).
        // Compares with unknown results or targets, or a union naming another field than the
        // target, on a key that exists ("a") and one that does not ("nokey").
        txn(Vec::new(), vec![put("a")]),
        txn(vec![compare("a", 9, 0)], vec![put("r9")]),
        txn(vec![compare("a", 0, 9)], vec![put("t9")]),
        txn(vec![compare("a", 1, 9)], vec![put("t9g")]),
        txn(vec![compare("a", 9, 9)], vec![put("rt9")]),
        txn(vec![compare("nokey", 9, 3)], vec![put("r9v")]),
        txn(vec![compare("a", 9, 3)], vec![put("r9va")]),
        txn(vec![compare("a", 0, 3)], vec![put("uv")]),
        txn(vec![compare("a", 3, 3)], vec![put("uvn")]),
        txn(vec![compare("nokey", 0, 3)], vec![put("uvm")]),
        txn(vec![compare("a", 0, 4)], vec![put("ul")]),
        txn(vec![compare("nokey", 0, 4)], vec![put("ulm")]),
        txn(vec![compare("a", 2, 4)], vec![put("ulg")]),
        txn(vec![compare("a", 1, 1)], vec![put("uc")]),
        // An empty operation in a transaction.
        txn(Vec::new(), vec![pb::RequestOp { request: None }]),
        // 129 operations: one more than etcd's --max-txn-ops.
        txn(
            Vec::new(),
            (0..129).map(|i| put(&format!("many/{i:03}"))).collect(),
        ),
        // 128 operations: allowed.
        txn(
            Vec::new(),
            (0..128).map(|i| put(&format!("many/{i:03}"))).collect(),
        ),
        // Larger than etcd's --max-request-bytes (1.5 MiB), within gRPC's limit (+512 KiB).
        Op::Put(pb::PutRequest {
            key: b"big".to_vec(),
            value: vec![b'x'; 1_600_000],
            ..Default::default()
        }),
        // Negative limit and revision filters: etcd treats a negative limit as none.
        all(|r| r.limit = -1),
        all(|r| r.min_mod_revision = -3),
        // A reversed range and a range end equal to the key.
        Op::Range(pb::RangeRequest {
            key: b"z".to_vec(),
            range_end: b"a".to_vec(),
            ..Default::default()
        }),
        Op::Delete(pb::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: b"a".to_vec(),
            prev_kv: true,
        }),
        // Leases: TTL 0 and a negative ID; each revoked at once.
        Op::GrantRevoke(pb::LeaseGrantRequest { ttl: 0, id: 0x300 }),
        Op::GrantRevoke(pb::LeaseGrantRequest { ttl: 60, id: -5 }),
        Op::Revoke(pb::LeaseRevokeRequest { id: 0 }),
        Op::TimeToLive(pb::LeaseTimeToLiveRequest { id: 0, keys: true }),
        // Compaction at a negative revision.
        Op::Compact(pb::CompactionRequest {
            revision: -1,
            physical: false,
        }),
        Op::HashKv(pb::HashKvRequest { revision: -1 }),
    ]
}
