//! The node against real files: writes through raft, restarts, replay, snapshots, leases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strata_engine::mvcc::{MvccError, PutRequest, RangeRequest, WriteRequest, WriteResponse};
use strata_raftnode::{MemberInfo, NodeError, NodeOptions, RaftNode};

fn opts(dir: &std::path::Path) -> NodeOptions {
    let mut o = NodeOptions::new(
        dir,
        MemberInfo {
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
        },
    );
    o.wal.segment_bytes = 1 << 20;
    o
}

fn put(k: &str, v: &str) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
        ..Default::default()
    })
}

fn get(node: &RaftNode, k: &str) -> Option<Vec<u8>> {
    let r = node
        .store()
        .range(&RangeRequest {
            key: k.as_bytes().to_vec(),
            ..Default::default()
        })
        .expect("range");
    r.response.kvs.first().map(|kv| kv.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_and_revisions_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RaftNode::start(opts(dir.path())).await.expect("start");
    assert_eq!(format!("{:x}", node.member_id()), "8e9e05c52164694d");
    assert!(node.is_leader());
    let mut last = 0;
    for i in 0..50 {
        let a = node
            .write(put(&format!("k{i}"), &format!("v{i}")))
            .await
            .expect("put");
        assert_eq!(a.revision, i + 2);
        last = a.revision;
    }
    node.read_barrier().await.expect("barrier");
    assert_eq!(get(&node, "k7"), Some(b"v7".to_vec()));
    // A request error comes back as etcd's, and changes nothing.
    let e = node
        .write(WriteRequest::Put(PutRequest::default()))
        .await
        .expect_err("empty key");
    assert_eq!(e, NodeError::Mvcc(MvccError::EmptyKey));
    // Shut down without the engine's final sync mattering: drop after shutdown.
    node.shutdown().await.expect("shutdown");
    drop(node);

    let node = RaftNode::start(opts(dir.path())).await.expect("restart");
    assert_eq!(get(&node, "k49"), Some(b"v49".to_vec()));
    let a = node.write(put("after", "restart")).await.expect("put");
    assert_eq!(a.revision, last + 1);
    let members = node.members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].1.name, "default");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_restart_still_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.snapshot_count = 100;
    o.catch_up_entries = 10;
    let node = RaftNode::start(o.clone()).await.expect("start");
    for i in 0..400 {
        node.write(put(&format!("k{}", i % 37), &format!("v{i}")))
            .await
            .expect("put");
    }
    // Snapshots are built in the background; wait for one to show up.
    let snap_dir = dir.path().join("member/snap");
    let mut found = false;
    for _ in 0..100 {
        found = std::fs::read_dir(&snap_dir)
            .expect("snap dir")
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "snap"));
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "no snapshot was built");
    let rev = node.store().revision().expect("rev");
    node.shutdown().await.expect("shutdown");
    drop(node);
    let node = RaftNode::start(o).await.expect("restart");
    assert_eq!(node.store().revision().expect("rev"), rev);
    assert_eq!(get(&node, "k0"), Some(b"v370".to_vec()));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_on_the_leader_and_take_their_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RaftNode::start(opts(dir.path())).await.expect("start");
    let id = match node
        .write(WriteRequest::LeaseGrant { id: 0, ttl: 2 })
        .await
        .expect("grant")
        .response
    {
        WriteResponse::LeaseGrant { id, .. } => id,
        other => panic!("unexpected {other:?}"),
    };
    node.write(WriteRequest::Put(PutRequest {
        key: b"leased".to_vec(),
        value: b"x".to_vec(),
        lease: id,
        ..Default::default()
    }))
    .await
    .expect("put");
    assert!(node.lease_time_to_live(id).expect("ttl").is_some());
    let mut gone = false;
    for _ in 0..100 {
        if get(&node, "leased").is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the lease did not expire");
    assert_eq!(node.lease_time_to_live(id).expect("ttl"), None);
    node.shutdown().await.expect("shutdown");
}
