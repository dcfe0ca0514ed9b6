//! Malformed and hostile requests through the `etcd-client` crate: each gets etcd's gRPC code
//! and message and changes nothing (the revision does not move). The same table runs against
//! etcd 3.4.23 when Debian's etcd-server is installed, and both must answer alike, except
//! where etcd 3.5 (whose semantics Strata follows) differs from 3.4 — noted per probe.
//!
//! Limits: `--max-request-bytes` (etcd checks the encoded request against it before
//! proposing: InvalidArgument "request is too large"; gRPC itself refuses messages over the
//! limit plus 512 KiB with ResourceExhausted) and `--max-txn-ops`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Etcd, Strata, etcd, free_port};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use prost::Message;
use strata_server::proto::etcdserverpb::PutRequest;
use tonic::Code;

/// The default `--max-request-bytes` (1.5 MiB) and gRPC's receive limit, 512 KiB more.
const MAX_REQUEST_BYTES: usize = 1536 * 1024;
const GRPC_LIMIT: usize = MAX_REQUEST_BYTES + 512 * 1024;

/// What a probe answered: a summary of success, or the gRPC code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Ok(String),
    Err(Code, String),
}

fn answer<T>(r: Result<T, etcd_client::Error>, ok: impl FnOnce(T) -> String) -> Answer {
    match r {
        Ok(v) => Answer::Ok(ok(v)),
        Err(etcd_client::Error::GRpcStatus(s)) => Answer::Err(s.code(), s.message().to_string()),
        Err(other) => Answer::Err(Code::Unknown, format!("client error: {other}")),
    }
}

fn err(code: Code, msg: &str) -> Answer {
    Answer::Err(code, msg.to_string())
}

async fn revision(c: &mut Client) -> i64 {
    c.get(
        "probe-revision",
        Some(GetOptions::new().with_serializable()),
    )
    .await
    .unwrap()
    .header()
    .unwrap()
    .revision()
}

/// Runs every probe against one server; returns `(name, answer)` rows. Each probe that is
/// refused must leave the revision where it was.
async fn probes(endpoint: &str, max_request_bytes: usize) -> Vec<(&'static str, Answer)> {
    let mut c = Client::connect([endpoint], None).await.unwrap();
    // History to read at old revisions and to compact: revisions 2..=6, compacted at 4.
    for v in ["1", "2", "3", "4", "5"] {
        c.put("k", v, None).await.unwrap();
    }
    c.compact(4, None).await.unwrap();
    let lease = c.lease_grant(60, None).await.unwrap().id();
    let mut rows = Vec::new();
    macro_rules! probe {
        ($name:expr, $call:expr, $ok:expr) => {{
            let before = revision(&mut c).await;
            let a = answer($call, $ok);
            let after = revision(&mut c).await;
            if matches!(a, Answer::Err(..)) {
                assert_eq!(
                    before, after,
                    "{}: a refused request moved the revision",
                    $name
                );
            }
            rows.push(($name, a));
        }};
    }
    let count = |r: etcd_client::GetResponse| format!("count {} kvs {}", r.count(), r.kvs().len());

    // Keys.
    probe!("put empty key", c.put("", "v", None).await, |_| "put"
        .into());
    probe!("get empty key", c.get("", None).await, count);
    probe!("delete empty key", c.delete("", None).await, |_| "deleted"
        .into());
    probe!(
        "txn compare on empty key",
        c.txn(Txn::new().when([Compare::value("", CompareOp::Equal, "x")]))
            .await,
        |_| "txn".into()
    );
    let huge = vec![b'h'; max_request_bytes + 1024];
    probe!(
        "put key over --max-request-bytes",
        c.put(huge.clone(), "v", None).await,
        |_| "put".into()
    );
    probe!(
        "put value over --max-request-bytes",
        c.put("k", huge.clone(), None).await,
        |_| "put".into()
    );
    probe!(
        "put over the gRPC receive limit",
        c.put("k", vec![0u8; GRPC_LIMIT + 1], None).await,
        |_| "put".into()
    );
    probe!(
        "put a 1 MiB key (under the limit)",
        c.put(vec![b'K'; 1 << 20], "v", None).await,
        |_| "put".into()
    );
    // Ranges.
    probe!(
        "range with end before start",
        c.get("z", Some(GetOptions::new().with_range("a"))).await,
        count
    );
    probe!(
        "range at a future revision",
        c.get("k", Some(GetOptions::new().with_revision(1000)))
            .await,
        count
    );
    probe!(
        "range at a compacted revision",
        c.get("k", Some(GetOptions::new().with_revision(3))).await,
        count
    );
    probe!(
        "range at a negative revision (current)",
        c.get("k", Some(GetOptions::new().with_revision(-5))).await,
        count
    );
    probe!(
        "range with a negative limit (no limit)",
        c.get("k", Some(GetOptions::new().with_limit(-3))).await,
        count
    );
    // Compaction.
    probe!(
        "compact a future revision",
        c.compact(1000, None).await,
        |_| "compacted".into()
    );
    probe!(
        "compact the compacted revision",
        c.compact(4, None).await,
        |_| "compacted".into()
    );
    probe!(
        "compact an older revision",
        c.compact(2, None).await,
        |_| "compacted".into()
    );
    // Transactions.
    let put = |k: &str| TxnOp::put(k, "v", None);
    probe!(
        "txn with duplicate keys in puts",
        c.txn(Txn::new().and_then([put("d"), put("d")])).await,
        |_| "txn".into()
    );
    probe!(
        "txn putting a key it deletes",
        c.txn(Txn::new().and_then([put("d"), TxnOp::delete("d", None)]))
            .await,
        |_| "txn".into()
    );
    let many: Vec<TxnOp> = (0..129).map(|i| put(&format!("m{i}"))).collect();
    probe!(
        "txn over --max-txn-ops",
        c.txn(Txn::new().and_then(many)).await,
        |_| "txn".into()
    );
    // Leases.
    probe!(
        "put with an unknown lease",
        c.put("k", "v", Some(PutOptions::new().with_lease(lease + 1000)))
            .await,
        |_| "put".into()
    );
    probe!("revoke lease 0", c.lease_revoke(0).await, |_| "revoked"
        .into());
    probe!(
        "revoke an unknown lease",
        c.lease_revoke(lease + 1000).await,
        |_| "revoked".into()
    );
    probe!(
        "time-to-live of lease 0",
        c.lease_time_to_live(0, Some(LeaseTimeToLiveOptions::new()))
            .await,
        |r| format!("ttl {}", r.ttl())
    );
    probe!(
        "time-to-live of an unknown lease",
        c.lease_time_to_live(lease + 1000, None).await,
        |r| format!("ttl {}", r.ttl())
    );
    probe!(
        "keep-alive of lease 0",
        keep_alive(&mut c, 0).await,
        |ttl: Option<i64>| format!("ttl {ttl:?}")
    );
    probe!(
        "keep-alive of an unknown lease",
        keep_alive(&mut c, lease + 1000).await,
        |ttl: Option<i64>| format!("ttl {ttl:?}")
    );
    probe!(
        "grant a lease with a negative TTL",
        c.lease_grant(-5, None).await,
        |r| format!("ttl {}", r.ttl())
    );
    probe!(
        "watch ID reused on one stream",
        watch_id_reused(&mut c).await,
        |s: String| s
    );
    probe!(
        "grant a lease that exists",
        c.lease_grant(
            60,
            Some(etcd_client::LeaseGrantOptions::new().with_id(lease))
        )
        .await,
        |_| "granted".into()
    );
    rows
}

/// Two watchers created with the same explicit ID on one stream: what each create answers.
async fn watch_id_reused(c: &mut Client) -> Result<String, etcd_client::Error> {
    let opts = || Some(WatchOptions::new().with_watch_id(7));
    let mut ws = c.watch("w1", opts()).await?;
    let first = ws
        .message()
        .await?
        .ok_or(etcd_client::Error::WatchError("ended".into()))?;
    ws.watch("w2", opts()).await?;
    let second = ws
        .message()
        .await?
        .ok_or(etcd_client::Error::WatchError("ended".into()))?;
    let show = |r: &etcd_client::WatchResponse| {
        format!(
            "id {} created {} canceled {} reason {:?}",
            r.watch_id(),
            r.created(),
            r.canceled(),
            r.cancel_reason()
        )
    };
    Ok(format!("{}; then {}", show(&first), show(&second)))
}

/// One keep-alive of `id` on a new stream: the TTL answered.
async fn keep_alive(c: &mut Client, id: i64) -> Result<Option<i64>, etcd_client::Error> {
    let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
    keeper.keep_alive().await?;
    Ok(stream.message().await?.map(|r| r.ttl()))
}

/// What etcd 3.5 answers (and Strata must).
fn expected() -> Vec<(&'static str, Answer)> {
    use Code::*;
    let empty_key = err(InvalidArgument, "etcdserver: key is not provided");
    let too_large = err(InvalidArgument, "etcdserver: request is too large");
    let compacted = err(
        OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let future = err(
        OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    let no_lease = err(NotFound, "etcdserver: requested lease not found");
    let duplicate = err(
        InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
    let keep_alive_not_found = err(
        Unknown,
        "client error: lease keep alive error: lease not found",
    );
    // gRPC's own limit, the request limit plus 512 KiB, refuses the message before etcd sees
    // it (grpc-go's code and message).
    let over_grpc = PutRequest {
        key: b"k".to_vec(),
        value: vec![0; GRPC_LIMIT + 1],
        ..PutRequest::default()
    }
    .encoded_len();
    vec![
        ("put empty key", empty_key.clone()),
        ("get empty key", empty_key.clone()),
        ("delete empty key", empty_key.clone()),
        ("txn compare on empty key", empty_key),
        ("put key over --max-request-bytes", too_large.clone()),
        ("put value over --max-request-bytes", too_large),
        (
            "put over the gRPC receive limit",
            Answer::Err(
                ResourceExhausted,
                format!("grpc: received message larger than max ({over_grpc} vs. {GRPC_LIMIT})"),
            ),
        ),
        // A key is only bounded by the request size.
        (
            "put a 1 MiB key (under the limit)",
            Answer::Ok("put".into()),
        ),
        // etcd answers an empty range, not an error.
        (
            "range with end before start",
            Answer::Ok("count 0 kvs 0".into()),
        ),
        ("range at a future revision", future.clone()),
        ("range at a compacted revision", compacted.clone()),
        (
            "range at a negative revision (current)",
            Answer::Ok("count 1 kvs 1".into()),
        ),
        (
            "range with a negative limit (no limit)",
            Answer::Ok("count 1 kvs 1".into()),
        ),
        ("compact a future revision", future),
        ("compact the compacted revision", compacted.clone()),
        ("compact an older revision", compacted),
        ("txn with duplicate keys in puts", duplicate.clone()),
        ("txn putting a key it deletes", duplicate),
        (
            "txn over --max-txn-ops",
            err(
                InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
        ),
        ("put with an unknown lease", no_lease.clone()),
        ("revoke lease 0", no_lease.clone()),
        ("revoke an unknown lease", no_lease),
        ("time-to-live of lease 0", Answer::Ok("ttl -1".into())),
        (
            "time-to-live of an unknown lease",
            Answer::Ok("ttl -1".into()),
        ),
        // A keep-alive for a lease that does not exist answers TTL 0, not an error; the
        // etcd-client crate turns that TTL into this error of its own.
        ("keep-alive of lease 0", keep_alive_not_found.clone()),
        ("keep-alive of an unknown lease", keep_alive_not_found),
        // Raised to the minimum TTL (2 s with etcd's default heartbeat and election timeout).
        (
            "grant a lease with a negative TTL",
            Answer::Ok("ttl 2".into()),
        ),
        // The second create is answered created and canceled at once, with ID -1 and the
        // store's reason; the first watcher goes on.
        (
            "watch ID reused on one stream",
            Answer::Ok(
                "id 7 created true canceled false reason \"\"; then id -1 created true \
                 canceled true reason \"mvcc: duplicate watch ID provided on the WatchStream\""
                    .into(),
            ),
        ),
        (
            "grant a lease that exists",
            err(FailedPrecondition, "etcdserver: lease already exists"),
        ),
    ]
}

fn assert_table(server: &str, got: &[(&str, Answer)], want: &[(&str, Answer)]) {
    let mut wrong = Vec::new();
    for ((name, g), (wname, w)) in got.iter().zip(want) {
        assert_eq!(name, wname);
        if g != w {
            wrong.push(format!("{name}:\n    got  {g:?}\n    want {w:?}"));
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(
        wrong.is_empty(),
        "{server} answered {} probes unlike etcd:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_etcds_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start_with(&dir.path().join("data"), free_port(), &[]);
    let got = probes(&s.url(), MAX_REQUEST_BYTES).await;
    assert_table("strata", &got, &expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_answers_the_hostile_table_alike() {
    let Some(bin) = etcd() else {
        return;
    };
    let e = Etcd::start(&bin);
    let got = probes(&format!("http://{}", e.endpoint()), MAX_REQUEST_BYTES).await;
    assert_table("etcd 3.4.23", &got, &expected());
}

/// Smaller limits from the flags are honoured, and Status reports the quota (and the gRPC limit is the request limit plus
/// 512 KiB: a request past it is refused by gRPC itself, ResourceExhausted).
#[tokio::test(flavor = "multi_thread")]
async fn request_and_txn_limits_follow_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start_with(
        &dir.path().join("data"),
        free_port(),
        &[
            "--max-request-bytes",
            "10000",
            "--max-txn-ops",
            "4",
            "--quota-backend-bytes",
            "100000000",
        ],
    );
    let mut c = Client::connect([s.url()], None).await.unwrap();
    let st = c.status().await.unwrap();
    assert_eq!(st.db_size_quota(), 100_000_000);
    assert!(st.errors().is_empty(), "{:?}", st.errors());
    let rev = revision(&mut c).await;
    let e = answer(c.put("k", vec![0u8; 10_001], None).await, |_| String::new());
    assert_eq!(
        e,
        err(Code::InvalidArgument, "etcdserver: request is too large")
    );
    let e = answer(
        c.put("k", vec![0u8; 10_000 + 512 * 1024 + 1], None).await,
        |_| String::new(),
    );
    assert!(
        matches!(&e, Answer::Err(Code::ResourceExhausted, m) if m.starts_with("grpc: received message larger than max (")
            && m.ends_with(&format!(" vs. {})", 10_000 + 512 * 1024))),
        "{e:?}"
    );
    c.put("k", vec![0u8; 9_000], None).await.unwrap();
    let five: Vec<TxnOp> = (0..5)
        .map(|i| TxnOp::put(format!("t{i}"), "v", None))
        .collect();
    let e = answer(c.txn(Txn::new().and_then(five)).await, |_| String::new());
    assert_eq!(
        e,
        err(
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    let four: Vec<TxnOp> = (0..4)
        .map(|i| TxnOp::put(format!("t{i}"), "v", None))
        .collect();
    c.txn(Txn::new().and_then(four)).await.unwrap();
    assert_eq!(revision(&mut c).await, rev + 2);
}
