//! Client TLS against the `strata` binary, with certificates made at test time: etcdctl with
//! `--cacert/--cert/--key` over `https://`; clients without a valid certificate refused;
//! plaintext clients against the TLS port refused while the listener goes on serving; etcd's
//! start-up rules for https URLs, http URLs with TLS flags, and one address serving both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tlsutil;

use std::path::Path;

use common::{Strata, etcdctl, etcdctl_run, free_port, start_fails};
use tlsutil::{Ca, ClientTls, Pair, get};

fn s(v: &str) -> String {
    v.to_string()
}

/// Flags for a TLS client URL on `port` with the server pair and CA, requiring client
/// certificates.
fn mtls_flags(port: u16, ca: &Ca, server: &Pair) -> Vec<String> {
    let url = format!("https://127.0.0.1:{port}");
    vec![
        s("--listen-client-urls"),
        url.clone(),
        s("--advertise-client-urls"),
        url,
        s("--cert-file"),
        server.cert.display().to_string(),
        s("--key-file"),
        server.key.display().to_string(),
        s("--trusted-ca-file"),
        ca.cert.display().to_string(),
        s("--client-cert-auth=true"),
    ]
}

/// etcdctl's TLS flags.
fn ctl_tls(ca: &Path, identity: Option<&Pair>) -> Vec<String> {
    let mut v = vec![
        format!("--cacert={}", ca.display()),
        s("--dial-timeout=2s"),
        s("--command-timeout=3s"),
    ];
    if let Some(p) = identity {
        v.push(format!("--cert={}", p.cert.display()));
        v.push(format!("--key={}", p.key.display()));
    }
    v
}

fn run(bin: &Path, endpoint: &str, flags: &[String], args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    etcdctl_run(bin, endpoint, &all, None)
}

#[test]
fn etcdctl_with_client_certificate_over_mtls() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = ca.client("client");
    let other_ca = Ca::new(dir.path(), "other-ca");
    let stranger = other_ca.client("stranger");
    let port = free_port();
    let mut srv = Strata::start_exact(
        &dir.path().join("data"),
        port,
        &mtls_flags(port, &ca, &server),
    );
    let endpoint = format!("https://127.0.0.1:{port}");
    let good = ctl_tls(&ca.cert, Some(&client));

    let out = run(&bin, &endpoint, &good, &["put", "k", "v"]);
    assert!(out.status.success(), "put over mTLS: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    let out = run(&bin, &endpoint, &good, &["get", "k"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "k\nv\n", "{out:?}");

    // No client certificate: the handshake is refused.
    let out = run(&bin, &endpoint, &ctl_tls(&ca.cert, None), &["get", "k"]);
    assert!(
        !out.status.success(),
        "a client without a certificate was served"
    );
    // A certificate from another CA: refused.
    let out = run(
        &bin,
        &endpoint,
        &ctl_tls(&ca.cert, Some(&stranger)),
        &["get", "k"],
    );
    assert!(
        !out.status.success(),
        "a certificate from another CA was accepted"
    );
    // Plaintext against the TLS port: no answer.
    let out = run(
        &bin,
        &format!("http://127.0.0.1:{port}"),
        &[s("--dial-timeout=2s"), s("--command-timeout=3s")],
        &["get", "k"],
    );
    assert!(
        !out.status.success(),
        "plaintext gRPC was served on the TLS port"
    );
    assert!(
        get(port, "/health", None).is_err(),
        "plaintext HTTP was answered on the TLS port"
    );

    // The same from Rust's side: the handshake itself fails.
    let refused = |identity| {
        get(
            port,
            "/health",
            Some(&ClientTls {
                ca: ca.cert.clone(),
                identity,
            }),
        )
    };
    assert!(refused(None).is_err());
    assert!(refused(Some(other_ca.client("stranger2"))).is_err());

    // After every refused handshake the listener still serves.
    let ok = refused(Some(ca.client("client2"))).expect("health over mTLS");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, r#"{"health":"true","reason":""}"#);
    let out = run(&bin, &endpoint, &good, &["get", "k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\n", "{out:?}");
    assert!(srv.running());
    assert!(
        srv.log().contains("rejected connection"),
        "refused handshakes are logged:\n{}",
        srv.log()
    );
}

#[test]
fn server_tls_without_client_certificates() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let port = free_port();
    let url = format!("https://localhost:{port}");
    let flags = vec![
        s("--listen-client-urls"),
        url.clone(),
        s("--advertise-client-urls"),
        url.clone(),
        s("--cert-file"),
        server.cert.display().to_string(),
        s("--key-file"),
        server.key.display().to_string(),
    ];
    let _srv = Strata::start_exact(&dir.path().join("data"), port, &flags);
    let out = run(&bin, &url, &ctl_tls(&ca.cert, None), &["put", "a", "1"]);
    assert!(out.status.success(), "{out:?}");
    // The advertised https URL is what the member lists.
    let out = run(&bin, &url, &ctl_tls(&ca.cert, None), &["member", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&url),
        "{out:?}"
    );
    // A client that does not trust the server's CA refuses the server.
    let other = Ca::new(dir.path(), "other");
    let out = run(&bin, &url, &ctl_tls(&other.cert, None), &["get", "a"]);
    assert!(!out.status.success());
}

#[test]
fn https_url_without_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let plain = format!("http://127.0.0.1:{port}");
    let murl = format!("https://127.0.0.1:{}", free_port());
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let (cert, key) = (
        server.cert.display().to_string(),
        server.key.display().to_string(),
    );
    let client = |u: &str| {
        vec![
            s("--listen-client-urls"),
            s(u),
            s("--advertise-client-urls"),
            s(u),
        ]
    };
    // Each: extra flags, and what etcd says when it refuses them.
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            client(&url),
            format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
            ),
        ),
        (
            [
                client(&plain),
                vec![s("--listen-metrics-urls"), murl.clone()],
            ]
            .concat(),
            format!("cannot listen on TLS for {murl}: KeyFile and CertFile are not presented"),
        ),
        (
            // --client-cert-auth without a CA to verify client certificates with.
            [
                client(&url),
                vec![
                    s("--cert-file"),
                    cert,
                    s("--key-file"),
                    key,
                    s("--client-cert-auth"),
                ],
            ]
            .concat(),
            s("--client-cert-auth needs --trusted-ca-file"),
        ),
    ];
    for (i, (flags, want)) in cases.iter().enumerate() {
        let data = dir.path().join(format!("data{i}"));
        let err = start_fails(&data, flags);
        assert!(err.contains(want.as_str()), "{flags:?}: {err}");
        assert!(
            !data.exists(),
            "{flags:?}: a refused start created {}",
            data.display()
        );
    }
}

#[test]
fn http_url_with_tls_flags_is_plaintext_and_warns() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut flags = mtls_flags(port, &ca, &server);
    flags[1] = url.clone();
    flags[3] = url.clone();
    let srv = Strata::start_exact(&dir.path().join("data"), port, &flags);
    let out = etcdctl_run(&bin, &url, &["put", "p", "q"], None);
    assert!(out.status.success(), "{out:?}");
    let log = srv.log();
    assert!(
        log.contains(
            "scheme is HTTP while key and cert files are present; ignoring key and cert files"
        ),
        "{log}"
    );
    assert!(
        log.contains("scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL"),
        "{log}"
    );
}

#[test]
fn one_address_named_by_http_and_https_serves_both() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let client = ca.client("client");
    let port = free_port();
    let mut flags = mtls_flags(port, &ca, &server);
    flags[1] = format!("http://127.0.0.1:{port},https://127.0.0.1:{port}");
    let _srv = Strata::start_exact(&dir.path().join("data"), port, &flags);
    let out = etcdctl_run(
        &bin,
        &format!("http://127.0.0.1:{port}"),
        &["put", "x", "1"],
        None,
    );
    assert!(out.status.success(), "plaintext: {out:?}");
    let out = run(
        &bin,
        &format!("https://127.0.0.1:{port}"),
        &ctl_tls(&ca.cert, Some(&client)),
        &["get", "x", "--print-value-only"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "TLS: {out:?}");
    assert_eq!(get(port, "/version", None).unwrap().status, 200);
}

#[test]
fn renewed_server_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new(dir.path(), "old-ca"), Ca::new(dir.path(), "new-ca"));
    let server = old_ca.server("server");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let srv = Strata::start_exact(
        &dir.path().join("data"),
        port,
        &[
            s("--listen-client-urls"),
            url.clone(),
            s("--advertise-client-urls"),
            url,
            s("--cert-file"),
            server.cert.display().to_string(),
            s("--key-file"),
            server.key.display().to_string(),
        ],
    );
    let trusting = |ca: &Ca| ClientTls {
        ca: ca.cert.clone(),
        identity: None,
    };
    assert_eq!(
        get(port, "/health", Some(&trusting(&old_ca)))
            .unwrap()
            .status,
        200
    );
    // Renew in place, as `kubeadm certs renew` does: key first, then certificate.
    let renewed = new_ca.server("renewed");
    std::fs::copy(&renewed.key, &server.key).unwrap();
    std::fs::copy(&renewed.cert, &server.cert).unwrap();
    assert_eq!(
        get(port, "/health", Some(&trusting(&new_ca)))
            .unwrap()
            .status,
        200
    );
    assert!(get(port, "/health", Some(&trusting(&old_ca))).is_err());
    assert!(
        srv.log().contains("reloaded the server certificate"),
        "{}",
        srv.log()
    );
}
