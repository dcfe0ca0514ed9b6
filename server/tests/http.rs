//! etcd's HTTP endpoints on the `strata` binary: /health, /livez, /readyz, /version and
//! /metrics on the client port (beside gRPC, plain and TLS) and on `--listen-metrics-urls`;
//! metrics with etcd's names whose values move with the load; and the exposition text
//! checked line by line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tlsutil;

use std::collections::{BTreeMap, BTreeSet};

use common::{Strata, etcdctl, etcdctl_run, free_port};
use tlsutil::{Ca, ClientTls, HttpReply, get, request, sample};

fn s(v: &str) -> String {
    v.to_string()
}

/// A plain server with a client port and a metrics port.
fn start(dir: &std::path::Path) -> (Strata, u16, u16) {
    let (port, mport) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{port}");
    let srv = Strata::start_exact(
        &dir.join("data"),
        port,
        &[
            s("--listen-client-urls"),
            url.clone(),
            s("--advertise-client-urls"),
            url,
            s("--listen-metrics-urls"),
            format!("http://127.0.0.1:{mport}"),
        ],
    );
    (srv, port, mport)
}

/// What every port answers, plain or TLS.
fn check_endpoints(port: u16, tls: Option<&ClientTls>) {
    let h = get(port, "/health", tls).unwrap();
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(h.body, r#"{"health":"true","reason":""}"#);
    let h = get(port, "/health?serializable=true&exclude=NOSPACE", tls).unwrap();
    assert_eq!(
        (h.status, h.body.as_str()),
        (200, r#"{"health":"true","reason":""}"#)
    );

    let v = get(port, "/version", tls).unwrap();
    assert_eq!(v.status, 200);
    assert_eq!(v.header("content-type"), Some("application/json"));
    assert_eq!(v.body, r#"{"etcdserver":"3.5.17","etcdcluster":"3.5.0"}"#);

    let l = get(port, "/livez", tls).unwrap();
    assert_eq!((l.status, l.body.as_str()), (200, "ok\n"));
    let l = get(port, "/livez?verbose", tls).unwrap();
    assert_eq!(l.body, "[+]serializable_read ok\nok\n");
    let r = get(port, "/readyz", tls).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = get(port, "/readyz?verbose", tls).unwrap();
    assert_eq!(
        r.body,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"
    );
    let r = get(port, "/readyz?verbose&exclude=linearizable_read", tls).unwrap();
    assert!(!r.body.contains("linearizable_read"), "{r:?}");
    let r = get(port, "/readyz/linearizable_read?verbose", tls).unwrap();
    assert_eq!(r.body, "[+]linearizable_read ok\nok\n");

    let m = get(port, "/metrics", tls).unwrap();
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(m.body.contains("etcd_server_has_leader 1\n"), "{}", m.body);

    let n = get(port, "/nope", tls).unwrap();
    assert_eq!((n.status, n.body.as_str()), (404, "404 page not found\n"));
    let p = request(port, "POST", "/health", &[("Content-Length", "0")], tls).unwrap();
    assert_eq!(p.status, 405);
    assert_eq!(p.header("allow"), Some("GET"));
    assert_eq!(p.body, "Method Not Allowed\n");
}

#[test]
fn endpoints_on_the_client_and_metrics_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (_srv, port, mport) = start(dir.path());
    check_endpoints(port, None);
    check_endpoints(mport, None);
    // The metrics port serves no gRPC: a gRPC request is an unknown page there.
    let r = request(
        mport,
        "POST",
        "/etcdserverpb.KV/Range",
        &[
            ("Content-Type", "application/grpc"),
            ("Content-Length", "0"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn endpoints_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let (port, mport) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{port}");
    let _srv = Strata::start_exact(
        &dir.path().join("data"),
        port,
        &[
            s("--listen-client-urls"),
            url.clone(),
            s("--advertise-client-urls"),
            url,
            s("--listen-metrics-urls"),
            format!("https://127.0.0.1:{mport}"),
            s("--cert-file"),
            server.cert.display().to_string(),
            s("--key-file"),
            server.key.display().to_string(),
            s("--trusted-ca-file"),
            ca.cert.display().to_string(),
            s("--client-cert-auth"),
        ],
    );
    let tls = ClientTls {
        ca: ca.cert.clone(),
        identity: Some(ca.client("prometheus")),
    };
    check_endpoints(port, Some(&tls));
    // The metrics URL uses the same certificates and client authentication.
    check_endpoints(mport, Some(&tls));
    let anonymous = ClientTls {
        ca: ca.cert.clone(),
        identity: None,
    };
    assert!(get(mport, "/metrics", Some(&anonymous)).is_err());
}

fn metrics(port: u16) -> String {
    let m = get(port, "/metrics", None).unwrap();
    assert_eq!(m.status, 200);
    m.body
}

#[test]
fn metrics_move_with_the_load() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_srv, port, mport) = start(dir.path());
    let before = metrics(mport);
    let endpoint = format!("127.0.0.1:{port}");
    for i in 0..5 {
        let out = etcdctl_run(&bin, &endpoint, &["put", &format!("k{i}"), "v"], None);
        assert!(out.status.success(), "{out:?}");
    }
    let out = etcdctl_run(&bin, &endpoint, &["get", "k", "--prefix"], None);
    assert!(out.status.success());
    let out = etcdctl_run(&bin, &endpoint, &["del", "k0"], None);
    assert!(out.status.success());
    let after = metrics(mport);
    let grew = |name: &str, by: f64| {
        let (a, b) = (
            sample(&before, name).unwrap_or_else(|| panic!("{name} missing:\n{before}")),
            sample(&after, name).unwrap_or_else(|| panic!("{name} missing:\n{after}")),
        );
        assert!(b >= a + by, "{name}: {a} -> {b}, expected to grow by {by}");
    };
    grew("etcd_server_proposals_committed_total", 6.0);
    grew("etcd_server_proposals_applied_total", 6.0);
    grew("etcd_disk_wal_fsync_duration_seconds_count", 6.0);
    grew("etcd_disk_wal_write_bytes_total", 1.0);
    grew("etcd_mvcc_put_total", 5.0);
    grew("etcd_mvcc_range_total", 1.0);
    grew("etcd_mvcc_delete_total", 1.0);
    grew("etcd_debugging_mvcc_current_revision", 6.0);
    grew(
        r#"grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#,
        5.0,
    );
    grew(
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#,
        5.0,
    );
    grew("etcd_network_client_grpc_received_bytes_total", 1.0);
    grew("etcd_network_client_grpc_sent_bytes_total", 1.0);
    for (name, want) in [
        ("etcd_server_has_leader", 1.0),
        ("etcd_server_is_leader", 1.0),
        ("etcd_server_leader_changes_seen_total", 1.0),
        ("etcd_server_proposals_pending", 0.0),
        ("etcd_server_proposals_failed_total", 0.0),
        ("etcd_server_quota_backend_bytes", 2147483648.0),
        (r#"etcd_server_version{server_version="3.5.17"}"#, 1.0),
    ] {
        assert_eq!(sample(&after, name), Some(want), "{name}");
    }
    assert!(sample(&after, "etcd_mvcc_db_total_size_in_bytes").unwrap() > 0.0);
    assert!(sample(&after, "etcd_mvcc_db_total_size_in_use_in_bytes").unwrap() > 0.0);
    assert!(sample(&after, "process_resident_memory_bytes").unwrap() > 0.0);

    // An error is counted under its code: a range with an empty key is InvalidArgument.
    let out = etcdctl_run(&bin, &endpoint, &["get", ""], None);
    assert!(!out.status.success());
    let after = metrics(mport);
    assert_eq!(
        sample(
            &after,
            r#"grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#
        ),
        Some(1.0),
        "{after}"
    );
    // Defragment is timed; the backend commit histogram has counted durable commits.
    let out = etcdctl_run(&bin, &endpoint, &["defrag"], None);
    assert!(out.status.success(), "{out:?}");
    let after = metrics(mport);
    assert_eq!(
        sample(&after, "etcd_disk_backend_defrag_duration_seconds_count"),
        Some(1.0)
    );
    assert!(sample(&after, "etcd_disk_backend_commit_duration_seconds_count").unwrap() >= 1.0);
    // A watch whose client goes away ends as Canceled, as grpc-go reports it.
    let mut watch = std::process::Command::new(&bin)
        .env("ETCDCTL_API", "3")
        .args([format!("--endpoints={endpoint}"), s("watch"), s("w")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let watch_started = r#"grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#;
    let watch_canceled = r#"grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#;
    wait_for(mport, watch_started, 1.0);
    watch.kill().unwrap();
    watch.wait().unwrap();
    wait_for(mport, watch_canceled, 1.0);

    let health_ok = sample(&after, "etcd_server_health_success").unwrap();
    get(mport, "/health", None).unwrap();
    assert_eq!(
        sample(&metrics(mport), "etcd_server_health_success"),
        Some(health_ok + 1.0)
    );
}

/// Polls `/metrics` until the sample `name` reaches `want` (a minute at most: the test
/// asserts what happens, never how fast).
fn wait_for(port: u16, name: &str, want: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let m = metrics(port);
        if sample(&m, name).is_some_and(|v| v >= want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {want}:\n{m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One metric family as read from the text.
#[derive(Default, Debug)]
struct Family {
    kind: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// Parses `name{a="b",c="d"} value`.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((n, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
            let mut labels = BTreeMap::new();
            for pair in body.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                assert!(valid_name(k), "bad label name {k:?} in {line:?}");
                assert!(
                    labels
                        .insert(k.to_string(), v.trim_end_matches('"').to_string())
                        .is_none()
                );
            }
            (n, labels)
        }
    };
    assert!(valid_name(name), "bad metric name {name:?}");
    (name.to_string(), labels, value)
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

#[test]
fn exposition_format_is_well_formed() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_srv, port, mport) = start(dir.path());
    let out = etcdctl_run(&bin, &format!("127.0.0.1:{port}"), &["put", "a", "b"], None);
    assert!(out.status.success());
    let m: HttpReply = get(mport, "/metrics", None).unwrap();
    assert!(m.body.ends_with('\n'));

    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut order = Vec::new();
    let mut current: Option<String> = None;
    let mut helped = BTreeSet::new();
    for line in m.body.lines() {
        assert!(!line.is_empty(), "blank line in the exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(valid_name(name) && !help.is_empty(), "{line:?}");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            assert!(
                !families.contains_key(name),
                "HELP after {name}'s TYPE or samples"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(!families.contains_key(name), "TYPE twice for {name}");
            families.insert(
                name.to_string(),
                Family {
                    kind: kind.to_string(),
                    ..Family::default()
                },
            );
            order.push(name.to_string());
            current = Some(name.to_string());
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line:?}");
            let (name, labels, value) = parse_sample(line);
            let fam_name = current.clone().expect("a sample before any TYPE");
            let fam = families.get_mut(&fam_name).unwrap();
            let ok = match fam.kind.as_str() {
                "histogram" => [
                    format!("{fam_name}_bucket"),
                    format!("{fam_name}_sum"),
                    format!("{fam_name}_count"),
                ]
                .contains(&name),
                _ => name == fam_name,
            };
            assert!(ok, "sample {name} under family {fam_name}");
            if fam.kind == "counter" {
                assert!(value >= 0.0, "negative counter {line:?}");
            }
            fam.samples.push((name, labels, value));
        }
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "families in name order");

    // Histograms: ascending `le`, cumulative counts, ending in +Inf == _count.
    let mut histograms = 0;
    for (name, fam) in families.iter().filter(|(_, f)| f.kind == "histogram") {
        histograms += 1;
        let buckets: Vec<(f64, f64)> = fam
            .samples
            .iter()
            .filter(|(n, _, _)| n.ends_with("_bucket"))
            .map(|(_, l, v)| {
                let le = l
                    .get("le")
                    .unwrap_or_else(|| panic!("{name}: bucket without le"));
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, *v)
            })
            .collect();
        assert!(buckets.len() >= 2, "{name}");
        assert!(
            buckets.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: le not ascending"
        );
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: not cumulative"
        );
        let last = buckets.last().unwrap();
        assert!(last.0.is_infinite(), "{name}: last bucket is not +Inf");
        let count = fam
            .samples
            .iter()
            .find(|(n, _, _)| n.ends_with("_count"))
            .unwrap_or_else(|| panic!("{name}: no _count"))
            .2;
        assert_eq!(last.1, count, "{name}: +Inf bucket != _count");
        assert!(
            fam.samples.iter().any(|(n, _, _)| n.ends_with("_sum")),
            "{name}: no _sum"
        );
    }
    assert!(histograms >= 4);
    let fsync = &families["etcd_disk_wal_fsync_duration_seconds"];
    let les: Vec<&str> = fsync
        .samples
        .iter()
        .filter_map(|(_, l, _)| l.get("le").map(String::as_str))
        .collect();
    assert_eq!(les.len(), 15, "14 bounds and +Inf");
    assert_eq!(les[0], "0.001");
    assert_eq!(les[13], "8.192");

    for (name, kind) in [
        ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
        ("etcd_disk_backend_commit_duration_seconds", "histogram"),
        ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
        ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
        ("etcd_server_has_leader", "gauge"),
        ("etcd_server_is_leader", "gauge"),
        ("etcd_server_leader_changes_seen_total", "counter"),
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_server_proposals_applied_total", "gauge"),
        ("etcd_server_proposals_pending", "gauge"),
        ("etcd_server_proposals_failed_total", "counter"),
        ("etcd_server_quota_backend_bytes", "gauge"),
        ("etcd_mvcc_put_total", "counter"),
        ("etcd_mvcc_range_total", "counter"),
        ("etcd_mvcc_delete_total", "counter"),
        ("etcd_mvcc_txn_total", "counter"),
        ("grpc_server_started_total", "counter"),
        ("grpc_server_handled_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("strata_wal_batch_bytes", "histogram"),
    ] {
        let f = families
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(f.kind, kind, "{name}");
    }
    // go-grpc-prometheus pre-registers every method with every code.
    let handled = &families["grpc_server_handled_total"];
    assert_eq!(handled.samples.len(), 24 * 17);
    for (_, l, _) in &handled.samples {
        let keys: Vec<&str> = l.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["grpc_code", "grpc_method", "grpc_service", "grpc_type"]
        );
    }
}
