//! The operator's swap: Strata started with the flag set of a kubeadm-generated etcd
//! static-pod manifest (ETCD-FACTS.md §5.4), with certificates made at test time in the
//! places kubeadm's PKI would hold them. The member must start, answer the manifest's probes
//! (`/livez`, `/readyz` on the plain-HTTP metrics URL) and serve the apiserver's client
//! certificate over mutual TLS, exactly as etcd does under that manifest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tlsutil;

use std::path::Path;

use common::{Strata, etcdctl, etcdctl_run, free_port};
use tlsutil::{Ca, Pair, get};

/// kubeadm's PKI for a local etcd: one CA, a server pair, a peer pair and the apiserver's
/// client pair (`/etc/kubernetes/pki/etcd/*`, `apiserver-etcd-client.*`).
struct Pki {
    ca: Ca,
    server: Pair,
    peer: Pair,
    apiserver: Pair,
}

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new(dir, "ca");
    let server = ca.server("server");
    let peer = ca.server("peer");
    let apiserver = ca.client("kube-apiserver-etcd-client");
    Pki {
        ca,
        server,
        peer,
        apiserver,
    }
}

/// The manifest's command line (kubeadm's `GetEtcdPodSpec`), with the node's address
/// replaced by 127.0.0.1 and the ports by free ones. `newer` is the form kubeadm writes for
/// etcd 3.6 (feature gates instead of the `--experimental-*` flags).
fn kubeadm_flags(p: &Pki, client: u16, peer: u16, metrics: u16, newer: bool) -> Vec<String> {
    let path = |f: &Path| f.display().to_string();
    let mut flags = vec![
        format!("--advertise-client-urls=https://127.0.0.1:{client}"),
        format!("--cert-file={}", path(&p.server.cert)),
        "--client-cert-auth=true".to_string(),
        format!("--initial-advertise-peer-urls=https://127.0.0.1:{peer}"),
        format!("--initial-cluster=node1=https://127.0.0.1:{peer}"),
        format!("--key-file={}", path(&p.server.key)),
        format!("--listen-client-urls=https://127.0.0.1:{client}"),
        format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
        format!("--listen-peer-urls=https://127.0.0.1:{peer}"),
        "--name=node1".to_string(),
        format!("--peer-cert-file={}", path(&p.peer.cert)),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-key-file={}", path(&p.peer.key)),
        format!("--peer-trusted-ca-file={}", path(&p.ca.cert)),
        "--snapshot-count=10000".to_string(),
        format!("--trusted-ca-file={}", path(&p.ca.cert)),
    ];
    if newer {
        flags.push("--feature-gates=InitialCorruptCheck=true".to_string());
        flags.push("--watch-progress-notify-interval=5s".to_string());
    } else {
        flags.push("--experimental-initial-corrupt-check=true".to_string());
        flags.push("--experimental-watch-progress-notify-interval=5s".to_string());
    }
    flags
}

fn starts_and_serves_like_etcd(newer: bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let data = dir.path().join("var-lib-etcd");
    let server = Strata::start_exact(
        &data,
        client,
        &kubeadm_flags(&p, client, peer, metrics, newer),
    );

    // The manifest's liveness, readiness and startup probes: plain HTTP on the metrics URL.
    for probe in ["/livez", "/readyz"] {
        let r = get(metrics, probe, None).unwrap();
        assert_eq!((r.status, r.body.trim()), (200, "ok"), "{probe}: {r:?}");
    }
    let health = get(metrics, "/health", None).unwrap();
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.body.contains(r#""health":"true""#), "{health:?}");
    // A flag Strata accepts without acting on it says so once in the log.
    assert!(server.log().contains("peer"), "{}", server.log());

    let Some(bin) = etcdctl() else { return };
    let endpoint = format!("https://127.0.0.1:{client}");
    let tls = [
        format!("--cacert={}", p.ca.cert.display()),
        format!("--cert={}", p.apiserver.cert.display()),
        format!("--key={}", p.apiserver.key.display()),
    ];
    let with = |args: &[&str]| {
        let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        etcdctl_run(&bin, &endpoint, &all, None)
    };
    let out = with(&["put", "/registry/health", "ok"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let out = with(&["get", "/registry/health", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{out:?}");
    let out = with(&["endpoint", "health"]);
    assert!(out.status.success(), "{out:?}");
    let out = with(&["member", "list"]);
    let members = String::from_utf8_lossy(&out.stdout);
    assert!(
        members.contains("node1") && members.contains(&endpoint),
        "{out:?}"
    );
    // Without the apiserver's certificate the member refuses the client.
    let bare = etcdctl_run(
        &bin,
        &endpoint,
        &[
            &format!("--cacert={}", p.ca.cert.display()),
            "--dial-timeout=2s",
            "--command-timeout=3s",
            "get",
            "/registry/health",
        ],
        None,
    );
    assert!(!bare.status.success(), "{bare:?}");
}

#[test]
fn kubeadm_etcd_3_5_manifest_flags_start_strata() {
    starts_and_serves_like_etcd(false);
}

#[test]
fn kubeadm_etcd_3_6_manifest_flags_start_strata() {
    starts_and_serves_like_etcd(true);
}
