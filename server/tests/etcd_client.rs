//! Black-box tests through the `etcd-client` crate (a Rust etcd v3 client, as applications use
//! it) against the built `strata` binary on a free loopback port: KV with its range options,
//! delete with previous values, transactions with compares, compaction, watch (previous
//! values, start revisions, compacted starts, progress requests), leases (grant, keep-alive,
//! time-to-live with keys, list, revoke), member list, status and HashKV.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Strata;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, EventType, GetOptions,
    LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchResponse, WatchStream,
};

async fn client(s: &Strata) -> Client {
    Client::connect([s.url()], None).await.expect("connect")
}

fn keys(kvs: &[etcd_client::KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key_str().unwrap()).collect()
}

fn values(kvs: &[etcd_client::KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.value_str().unwrap()).collect()
}

/// The gRPC message of a failed call.
fn message(e: etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => panic!("not a gRPC status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_range_options_delete_txn_compaction_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start(&dir.path().join("data"));
    let mut c = client(&s).await;

    // The first write is revision 2, as etcd's.
    let r = c.put("foo", "bar", None).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), 2);
    let r = c
        .put("foo", "baz", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value_str().unwrap(), "bar");
    for (k, v) in [("foo/a", "1"), ("foo/b", "2"), ("fop", "x"), ("zoo", "z")] {
        c.put(k, v, None).await.unwrap();
    }

    let r = c.get("foo", None).await.unwrap();
    let kv = &r.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 3, 2)
    );
    assert_eq!(r.header().unwrap().revision(), 7);
    let prefix = || GetOptions::new().with_prefix();
    let r = c.get("foo", Some(prefix())).await.unwrap();
    assert_eq!(keys(r.kvs()), ["foo", "foo/a", "foo/b"]);
    let r = c
        .get("foo/", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["foo/a", "foo/b", "fop", "zoo"]);
    let r = c.get("foo", Some(prefix().with_limit(1))).await.unwrap();
    assert_eq!((keys(r.kvs()), r.more(), r.count()), (vec!["foo"], true, 3));
    let r = c.get("foo", Some(GetOptions::new().with_revision(2))).await;
    assert_eq!(values(r.unwrap().kvs()), ["bar"]);
    let r = c.get("foo", Some(prefix().with_keys_only())).await.unwrap();
    assert_eq!(values(r.kvs()), ["", "", ""]);
    let r = c
        .get("foo", Some(prefix().with_count_only()))
        .await
        .unwrap();
    assert_eq!((r.kvs().len(), r.count()), (0, 3));
    let sorted = prefix().with_sort(SortTarget::Value, SortOrder::Descend);
    let r = c.get("foo", Some(sorted)).await.unwrap();
    assert_eq!(values(r.kvs()), ["baz", "2", "1"]);
    let e = c
        .get("foo", Some(GetOptions::new().with_revision(99)))
        .await;
    assert_eq!(
        message(e.unwrap_err()),
        "etcdserver: mvcc: required revision is a future revision"
    );

    let r = c
        .delete(
            "foo/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.deleted(), keys(r.prev_kvs())),
        (2, vec!["foo/a", "foo/b"])
    );
    assert_eq!(r.header().unwrap().revision(), 8);

    let txn = Txn::new()
        .when([Compare::value("foo", CompareOp::Equal, "baz")])
        .and_then([TxnOp::put("foo", "qux", None), TxnOp::get("fop", None)])
        .or_else([TxnOp::get("zoo", None)]);
    let r = c.txn(txn).await.unwrap();
    assert!(r.succeeded());
    match &r.op_responses()[..] {
        [TxnOpResponse::Put(_), TxnOpResponse::Get(g)] => assert_eq!(values(g.kvs()), ["x"]),
        other => panic!("unexpected responses {other:?}"),
    }
    let txn = Txn::new()
        .when([Compare::mod_revision("zoo", CompareOp::Less, 2)])
        .and_then([TxnOp::delete("zoo", None)])
        .or_else([TxnOp::get("zoo", None)]);
    let r = c.txn(txn).await.unwrap();
    assert!(!r.succeeded());
    match &r.op_responses()[..] {
        [TxnOpResponse::Get(g)] => assert_eq!(values(g.kvs()), ["z"]),
        other => panic!("unexpected responses {other:?}"),
    }

    // Revision 9 now. Compact physically at 8: revision 7 is gone, 8 still readable.
    let before = c.hash_kv(0).await.unwrap();
    assert_eq!(before.hash_revision(), 9);
    c.compact(8, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let e = c.get("foo", Some(GetOptions::new().with_revision(7))).await;
    assert_eq!(
        message(e.unwrap_err()),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let r = c.get("fop", Some(GetOptions::new().with_revision(8))).await;
    assert_eq!(values(r.unwrap().kvs()), ["x"]);
    let e = c.compact(8, None).await.unwrap_err();
    assert_eq!(
        message(e),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let after = c.hash_kv(0).await.unwrap();
    assert_eq!(after.compact_version(), 8);
    let e = c.hash_kv(8).await.unwrap_err();
    assert_eq!(
        message(e),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

/// The next response, or a failure after 10 s.
async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a watch response within 10 s")
        .unwrap()
        .expect("the stream is open")
}

/// `(type, key, value, previous value)` of the next `n` events.
async fn events(stream: &mut WatchStream, n: usize) -> Vec<(EventType, String, String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let r = next(stream).await;
        for e in r.events() {
            let kv = e.kv().unwrap();
            out.push((
                e.event_type(),
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
                e.prev_kv()
                    .map_or(String::new(), |p| p.value_str().unwrap().to_string()),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prev_kv_start_revision_compacted_start_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start(&dir.path().join("data"));
    let mut c = client(&s).await;
    c.put("a", "1", None).await.unwrap();
    c.put("a", "2", None).await.unwrap();

    let opts = WatchOptions::new().with_prev_key().with_start_revision(2);
    let mut w = c.watch("a", Some(opts)).await.unwrap();
    let created = next(&mut w).await;
    assert!(created.created());
    let put = |v: &str, p: &str| {
        (
            EventType::Put,
            "a".to_string(),
            v.to_string(),
            p.to_string(),
        )
    };
    assert_eq!(events(&mut w, 2).await, [put("1", ""), put("2", "1")]);
    c.put("a", "3", None).await.unwrap();
    c.delete("a", None).await.unwrap();
    let deleted = (EventType::Delete, "a".into(), String::new(), "3".into());
    assert_eq!(events(&mut w, 2).await, [put("3", "2"), deleted]);

    // A progress request answers with the current revision (5) and no events.
    w.request_progress().await.unwrap();
    let p = next(&mut w).await;
    assert!(p.events().is_empty());
    assert_eq!(p.header().unwrap().revision(), 5);

    // A watcher whose start was compacted is cancelled with the compaction revision.
    c.compact(4, None).await.unwrap();
    let opts = WatchOptions::new().with_start_revision(3);
    let mut w = c.watch("a", Some(opts)).await.unwrap();
    let mut r = next(&mut w).await;
    if r.created() && !r.canceled() {
        r = next(&mut w).await;
    }
    assert!(r.canceled());
    assert_eq!(r.compact_revision(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_grant_keep_alive_time_to_live_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start(&dir.path().join("data"));
    let mut c = client(&s).await;
    let id = 0x1234;
    let g = c
        .lease_grant(60, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .unwrap();
    assert_eq!((g.id(), g.ttl()), (id, 60));
    for k in ["l2", "l1"] {
        c.put(k, "v", Some(PutOptions::new().with_lease(id)))
            .await
            .unwrap();
    }
    let t = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(t.granted_ttl(), 60);
    assert!(t.ttl() > 0 && t.ttl() <= 60, "remaining {}", t.ttl());
    let mut ks: Vec<&[u8]> = t.keys().iter().map(|k| k.as_slice()).collect();
    ks.sort();
    assert_eq!(ks, [b"l1", b"l2"]);

    let (mut keeper, mut stream) = c.lease_keep_alive(id).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let k = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((k.id(), k.ttl()), (id, 60));

    // Without an ID the server picks one.
    let other = c.lease_grant(30, None).await.unwrap().id();
    assert!(other != 0 && other != id);
    let mut listed: Vec<i64> = c
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    listed.sort();
    let mut want = vec![id, other];
    want.sort();
    assert_eq!(listed, want);

    // Revoking deletes the attached keys in one revision.
    let before = c
        .get("l1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let r = c.lease_revoke(id).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), before + 1);
    let r = c
        .get("l", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap();
    assert_eq!(r.count(), 0);
    let t = c.lease_time_to_live(id, None).await.unwrap();
    assert_eq!(t.ttl(), -1);
    assert_eq!(
        message(c.lease_revoke(id).await.unwrap_err()),
        "etcdserver: requested lease not found"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn member_list_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start(&dir.path().join("data"));
    let mut c = client(&s).await;
    let members = c.member_list().await.unwrap();
    let [m] = members.members() else {
        panic!("one member expected: {:?}", members.members());
    };
    assert_eq!(m.name(), "default");
    assert_eq!(m.client_urls(), [s.url()]);

    let st = c.status().await.unwrap();
    // kube-apiserver asks for watch progress only from etcd >= 3.5.13.
    let v: Vec<u64> = st
        .version()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(v >= vec![3, 5, 13], "version {}", st.version());
    assert_eq!(st.leader(), m.id());
    assert_eq!(st.header().unwrap().member_id(), m.id());
    assert!(st.raft_index() > 0 && st.db_size() > 0);
}
