//! The `strata` binary's command line as an operator meets it: `--help`, `--version`, etcd's
//! exit codes and messages for unknown and refused flags (nothing created on disk), a YAML
//! `--config-file`, `ETCD_*` variables and `--wal-dir`, checked with a real etcdctl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{Strata, etcdctl, etcdctl_run, free_port, strata_command};

fn strata(args: &[&str]) -> Output {
    strata_command().args(args).output().expect("run strata")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_prints_etcds_sections_and_exits_0() {
    for flag in ["--help", "-h", "-help"] {
        let out = strata(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let help = text(&out.stdout);
        for needle in [
            "Usage:",
            "strata --config-file",
            "\nMember:\n",
            "\nClustering:\n",
            "\nSecurity:\n",
            "\nAuth:\n",
            "\nProfiling and Monitoring:\n",
            "\nLogging:\n",
            "\nExperimental feature:\n",
            "\nUnsafe feature:\n",
            "  --name 'default'",
            "  --data-dir '${name}.strata'",
            "  --max-request-bytes '1572864'",
            "  --experimental-initial-corrupt-check 'false'",
            "  --feature-gates ''",
            "[Strata: refused: ",
            "[Strata: ignored: ",
        ] {
            assert!(help.contains(needle), "{flag}: no {needle:?} in\n{help}");
        }
    }
}

#[test]
fn version_prints_etcds_lines_and_exits_0() {
    for flag in ["--version", "-version", "--version=true"] {
        let out = strata(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let v = text(&out.stdout);
        assert!(
            v.starts_with(&format!("strata Version: {}\n", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        assert!(v.contains("etcd API Version: 3.5.17\n"), "{v}");
        assert!(v.contains("Rust Version: rustc "), "{v}");
        assert!(v.contains("OS/Arch: linux/"), "{v}");
    }
}

#[test]
fn syntax_errors_exit_2_with_gos_message_and_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_flag = format!("--data-dir={}", data.display());
    for (args, message) in [
        (vec!["--bogus"], "flag provided but not defined: -bogus"),
        (vec!["--name"], "flag needs an argument: -name"),
        (
            vec!["--snapshot-count=many"],
            "invalid value \"many\" for flag -snapshot-count: parse error",
        ),
        (
            vec!["--client-cert-auth=maybe"],
            "invalid boolean value \"maybe\" for -client-cert-auth: parse error",
        ),
        (
            vec!["--feature-gates=Bogus=true"],
            "invalid value \"Bogus=true\" for flag -feature-gates: unrecognized feature gate: Bogus",
        ),
    ] {
        let mut all = vec![data_flag.as_str()];
        all.extend(args.iter());
        let out = strata(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(message), "{args:?}: {err}");
        assert!(err.contains("Usage:"), "{args:?}: {err}");
        assert!(!data.exists(), "{args:?} created the data dir");
    }
}

#[test]
fn refused_flags_exit_1_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_flag = format!("--data-dir={}", data.display());
    for (flag, message) in [
        (
            "--enable-v2=true",
            "--enable-v2=true is refused: the etcd v2 API is not served",
        ),
        ("--force-new-cluster", "--force-new-cluster=true is refused"),
        (
            "--discovery=https://discovery.etcd.io/abc",
            "--discovery=https://discovery.etcd.io/abc is refused",
        ),
        ("--auto-tls", "--auto-tls=true is refused"),
        (
            "--initial-cluster=default=http://localhost:2380,m2=http://10.0.0.2:2380",
            "names other members (m2)",
        ),
        ("--heartbeat-interval=0", "--heartbeat-interval must be >0"),
        ("extra", "'extra' is not a valid flag"),
    ] {
        let out = strata(&[&data_flag, flag]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {err}");
        assert!(
            err.starts_with("strata: error verifying flags, "),
            "{flag}: {err}"
        );
        assert!(err.contains(message), "{flag}: {err}");
        assert!(!data.exists(), "{flag} created the data dir");
    }
}

#[test]
fn joining_an_existing_cluster_is_refused_but_restarting_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_flag = format!("--data-dir={}", data.display());
    let out = strata(&[&data_flag, "--initial-cluster-state=existing"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--initial-cluster-state=existing is refused: there is no member in"),
        "{err}"
    );
    assert!(!data.exists(), "the data dir was created");
    // Once the member exists, `existing` is a restart (etcd ignores the flag then).
    let mut s = Strata::start_with(&data, free_port(), &[]);
    assert_eq!(s.stop(), Some(0));
    let mut s = Strata::start_with(&data, free_port(), &["--initial-cluster-state=existing"]);
    assert_eq!(s.stop(), Some(0));
}

/// Starts `strata` with `args` and `env` (no harness flags), waiting until it serves on
/// `port`.
fn start_with_env(dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Strata {
    let mut cmd = strata_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Strata::spawn(
        cmd,
        port,
        &dir.join("unused"),
        dir.join(format!("strata-{port}.log")),
    )
}

fn ctl_ok(bin: &Path, endpoint: &str, args: &[&str]) -> String {
    let out = etcdctl_run(bin, endpoint, args, None);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn config_file_starts_a_server_etcdctl_can_use() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("from-file.data");
    let path = dir.path().join("strata.yaml");
    std::fs::write(
        &path,
        format!(
            "# etcd's sample keys\n\
             name: from-file\n\
             data-dir: {}\n\
             listen-client-urls: http://127.0.0.1:{port}\n\
             advertise-client-urls: http://127.0.0.1:{port}\n\
             initial-advertise-peer-urls: http://127.0.0.1:2380\n\
             initial-cluster: from-file=http://127.0.0.1:2380\n\
             initial-cluster-state: new\n\
             snapshot-count: 10000\n\
             log-level: info\n\
             client-transport-security:\n  client-cert-auth: false\n  auto-tls: false\n\
             peer-transport-security:\n  client-cert-auth: true\n",
            data.display()
        ),
    )
    .unwrap();
    let cfg_flag = format!("--config-file={}", path.display());
    // The other flag is ignored, as etcd does, with a warning.
    let mut s = start_with_env(dir.path(), port, &[&cfg_flag, "--name=ignored"], &[]);
    let ep = s.endpoint();
    ctl_ok(&bin, &ep, &["put", "k", "v"]);
    assert_eq!(
        ctl_ok(&bin, &ep, &["get", "k", "--print-value-only"]),
        "v\n"
    );
    let members = ctl_ok(&bin, &ep, &["member", "list"]);
    assert!(
        members.contains(", from-file, http://127.0.0.1:2380, "),
        "{members}"
    );
    assert!(data.join("member").is_dir());
    let log = s.log();
    assert!(
        log.contains(
            "other configuration command line flags and environment variables are ignored: --name"
        ),
        "{log}"
    );
    assert!(
        log.contains("config file key peer-client-cert-auth: true is ignored"),
        "{log}"
    );
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn etcd_env_vars_are_honoured_and_reported() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The member is named by ETCD_NAME; --data-dir on the command line shadows ETCD_DATA_DIR.
    let data = dir.path().join("env.data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data_flag = format!("--data-dir={}", data.display());
    let mut s = start_with_env(
        dir.path(),
        port,
        &[
            &data_flag,
            &format!("--listen-client-urls={url}"),
            &format!("--advertise-client-urls={url}"),
        ],
        &[
            ("ETCD_NAME", "env-node"),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", "http://127.0.0.1:12380"),
            ("ETCD_DATA_DIR", "/nonexistent/shadowed"),
            ("ETCD_PEER_CLIENT_CERT_AUTH", "true"),
            ("ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", "true"),
            ("ETCD_NO_SUCH_FLAG", "1"),
        ],
    );
    let members = ctl_ok(&bin, &s.endpoint(), &["member", "list"]);
    assert!(
        members.contains(", env-node, http://127.0.0.1:12380, "),
        "{members}"
    );
    let log = s.log();
    for line in [
        "recognized and used environment variable ETCD_NAME=env-node",
        "recognized environment variable ETCD_DATA_DIR, but unused: shadowed by corresponding flag",
        "unrecognized environment variable ETCD_NO_SUCH_FLAG=1",
        "ETCD_PEER_CLIENT_CERT_AUTH=true is ignored: a one-member Strata cluster has no peer traffic",
        "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK=true is ignored: the engine checks",
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    assert!(!Path::new("/nonexistent/shadowed").exists());
    assert_eq!(s.stop(), Some(0));
}

#[test]
fn wal_dir_holds_the_wal() {
    let Some(bin) = etcdctl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wal = dir.path().join("wal");
    let wal_flag = format!("--wal-dir={}", wal.display());
    let port = free_port();
    let mut s = Strata::start_with(&data, port, &[&wal_flag]);
    ctl_ok(&bin, &s.endpoint(), &["put", "k", "durable"]);
    assert_eq!(s.stop(), Some(0));
    let in_wal = std::fs::read_dir(&wal).unwrap().count();
    assert!(in_wal > 0, "nothing in --wal-dir");
    assert!(
        !data.join("member/wal").exists(),
        "WAL also in the data dir"
    );
    let s = Strata::start_with(&data, port, &[&wal_flag]);
    assert_eq!(
        ctl_ok(&bin, &s.endpoint(), &["get", "k", "--print-value-only"]),
        "durable\n"
    );
}
