//! `Config::load` end to end without a process: precedence, environment, config file,
//! dispositions, etcd's checks, and the flag sets kubeadm generates.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn env(e: &[(&str, &str)]) -> Vec<(String, String)> {
    e.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(args: &[&str], e: &[(&str, &str)]) -> Result<(Config, Vec<Warning>), ConfigError> {
    match Config::load(&strings(args), &env(e))? {
        Loaded::Run { config, warnings } => Ok((*config, warnings)),
        other => panic!("expected a configuration, got {other:?}"),
    }
}

fn ok(args: &[&str]) -> (Config, Vec<Warning>) {
    load(args, &[]).unwrap()
}

fn has(warnings: &[Warning], needle: &str) -> bool {
    warnings.iter().any(|w| w.message.contains(needle))
}

#[test]
fn defaults_are_etcds() {
    let (c, w) = ok(&[]);
    assert_eq!(c, Config::default());
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.data_dir(), PathBuf::from("default.strata"));
    assert_eq!(
        listen_addr(&c.listen_client_urls),
        Ok("127.0.0.1:2379".parse().unwrap())
    );
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(600));
}

#[test]
fn urls_and_durations() {
    assert_eq!(
        url_list("http://127.0.0.1:1, http://127.0.0.1:2"),
        vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
    );
    assert_eq!(
        listen_url("https://127.0.0.1:2379"),
        Ok(ListenUrl {
            addr: "127.0.0.1:2379".parse().unwrap_or_else(|_| unreachable!()),
            secure: true
        })
    );
    assert!(listen_addr("unixs://x:1").is_err());
    assert!(listen_addr("ftp://127.0.0.1:1").is_err());
    assert!(listen_addr("http://127.0.0.1").is_err());
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("5 parsecs").is_err());
}

#[test]
fn help_and_version() {
    assert!(matches!(
        Config::load(&strings(&["--help"]), &[]),
        Ok(Loaded::Help(_))
    ));
    assert!(matches!(
        Config::load(&strings(&["-version"]), &[]),
        Ok(Loaded::Version(_))
    ));
    assert!(matches!(
        Config::load(&strings(&["--version=false", "--name=x"]), &[]),
        Ok(Loaded::Run { .. })
    ));
    // A syntax error wins over --version, as in etcd (flags are parsed first).
    assert_eq!(
        Config::load(&strings(&["--version", "--bogus"]), &[]).unwrap_err(),
        ConfigError::Usage("flag provided but not defined: -bogus".into())
    );
    // ETCD_VERSION cannot turn --version on.
    let (_, w) = load(&[], &[("ETCD_VERSION", "1")]).unwrap();
    assert!(has(
        &w,
        "cannot set special environment variable ETCD_VERSION=1"
    ));
}

const KUBEADM: &[&str] = &[
    "--advertise-client-urls=https://127.0.0.1:2379",
    "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
    "--client-cert-auth=true",
    "--data-dir=/var/lib/etcd",
    "--initial-advertise-peer-urls=https://127.0.0.1:2380",
    "--initial-cluster=node1=https://127.0.0.1:2380",
    "--key-file=/etc/kubernetes/pki/etcd/server.key",
    "--listen-client-urls=https://127.0.0.1:2379",
    "--listen-metrics-urls=http://127.0.0.1:2381",
    "--listen-peer-urls=https://127.0.0.1:2380",
    "--name=node1",
    "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
    "--peer-client-cert-auth=true",
    "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
    "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    "--snapshot-count=10000",
    "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
];

fn check_kubeadm(c: &Config, w: &[Warning]) {
    assert_eq!(c.name, "node1");
    assert_eq!(c.data_dir(), PathBuf::from("/var/lib/etcd"));
    assert_eq!(c.snapshot_count, 10_000);
    assert!(c.client_cert_auth);
    assert_eq!(
        c.cert_file.as_deref(),
        Some(std::path::Path::new("/etc/kubernetes/pki/etcd/server.crt"))
    );
    assert_eq!(
        c.trusted_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/kubernetes/pki/etcd/ca.crt"))
    );
    assert_eq!(c.listen_client_urls, "https://127.0.0.1:2379");
    assert_eq!(
        c.listen_metrics_urls.as_deref(),
        Some("http://127.0.0.1:2381")
    );
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
    for flag in [
        "--peer-cert-file",
        "--peer-client-cert-auth",
        "--listen-peer-urls",
    ] {
        assert!(has(w, &format!("{flag}=")), "no warning for {flag}: {w:?}");
    }
    assert!(w.iter().all(|w| w.level == Level::Warn), "{w:?}");
}

#[test]
fn kubeadm_flags_parse() {
    let mut args = KUBEADM.to_vec();
    args.extend([
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
    ]);
    let (c, w) = ok(&args);
    check_kubeadm(&c, &w);
    assert!(has(
        &w,
        "--experimental-initial-corrupt-check=true is ignored"
    ));
}

#[test]
fn newer_kubeadm_flags_parse() {
    let mut args = KUBEADM.to_vec();
    args.extend([
        "--feature-gates=InitialCorruptCheck=true",
        "--watch-progress-notify-interval=5s",
    ]);
    let (c, w) = ok(&args);
    check_kubeadm(&c, &w);
    assert_eq!(c.feature_gates.get("InitialCorruptCheck"), Some(&true));
    assert!(has(
        &w,
        "feature gate InitialCorruptCheck=true has no effect"
    ));
}

#[test]
fn feature_gates_as_etcd_36() {
    assert_eq!(
        load(&["--feature-gates=Bogus=true"], &[]).unwrap_err(),
        ConfigError::Usage(
            "invalid value \"Bogus=true\" for flag -feature-gates: unrecognized feature gate: Bogus"
                .into()
        )
    );
    let e = load(
        &[
            "--experimental-initial-corrupt-check=true",
            "--feature-gates=InitialCorruptCheck=false",
        ],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot specify both flags: --experimental-initial-corrupt-check=true and \
         --feature-gates=InitialCorruptCheck=false at the same time, please just use \
         --feature-gates=InitialCorruptCheck=false"
    );
    assert!(
        load(&["--feature-gates=LeaseCheckpointPersist=true"], &[])
            .unwrap_err()
            .to_string()
            .contains("requires enabling feature gate LeaseCheckpoint")
    );
    let (c, _) = ok(&["--feature-gates=AllAlpha=true"]);
    assert_eq!(c.feature_gates.get("AllAlpha"), Some(&true));
}

#[test]
fn zero_snapshot_counts_mean_the_default() {
    let (c, w) = ok(&[
        "--snapshot-count=0",
        "--experimental-snapshot-catchup-entries=0",
    ]);
    assert_eq!(c.snapshot_count, 100_000);
    assert_eq!(c.snapshot_catchup_entries, 5_000);
    assert!(has(
        &w,
        "updating snapshot-count to default: given 0, using 100000"
    ));
    let (c, _) = ok(&["--snapshot-catchup-entries=7", "--snapshot-count=10"]);
    assert_eq!((c.snapshot_count, c.snapshot_catchup_entries), (10, 7));
}

#[test]
fn experimental_watch_interval_wins() {
    let (c, _) = ok(&[
        "--watch-progress-notify-interval=1m",
        "--experimental-watch-progress-notify-interval=2s",
    ]);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(2));
    let (c, _) = ok(&["--watch-progress-notify-interval=1m30s"]);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(90));
    assert!(load(&["--watch-progress-notify-interval=-1s"], &[]).is_err());
}

#[test]
fn refused_flags() {
    for (flag, needle) in [
        (
            "--enable-v2",
            "--enable-v2=true is refused: the etcd v2 API is not served",
        ),
        ("--enable-v2=1", "--enable-v2=true is refused"),
        (
            "--discovery=https://discovery.etcd.io/x",
            "--discovery=https://discovery.etcd.io/x is refused",
        ),
        ("--discovery-srv=example.com", "is refused: discovery"),
        ("--force-new-cluster", "--force-new-cluster=true is refused"),
        ("--auto-tls", "--auto-tls=true is refused"),
        ("--peer-auto-tls=true", "--peer-auto-tls=true is refused"),
        ("--client-crl-file=/crl.pem", "revocation"),
        ("--proxy=on", "--proxy=on is refused"),
        (
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "cipher suites",
        ),
        ("--tls-min-version=TLS1.3", "TLS version"),
        ("--listen-client-http-urls=http://127.0.0.1:1", "HTTP-only"),
        ("--experimental-enable-v2v3=/v2", "v2"),
        ("--quota-backend-bytes=-1", "negative quota"),
        ("--log-outputs=/var/log/etcd.log", "log file"),
        (
            "--initial-cluster=default=http://a:2380,b=http://b:2380",
            "other members (b)",
        ),
    ] {
        let e = load(&[flag], &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Refused { .. }), "{flag}: {e:?}");
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains(needle), "{flag}: {e}");
    }
    // The default value of a refused flag is fine.
    for flag in [
        "--enable-v2=false",
        "--force-new-cluster=false",
        "--discovery=",
        "--proxy=off",
        "--tls-min-version=TLS1.2",
    ] {
        let (_, w) = ok(&[flag]);
        assert!(w.is_empty(), "{flag}: {w:?}");
    }
}

#[test]
fn ignored_flags_warn_once_each() {
    let (c, w) = ok(&[
        "--enable-pprof",
        "--max-wals=10",
        "--backend-bbolt-freelist-type=array",
        "--logger=zap",
        "--log-outputs=stdout",
        "--v",
        "--unsafe-no-fsync",
    ]);
    assert_eq!(c, Config::default());
    assert_eq!(w.len(), 7, "{w:?}");
    assert!(has(&w, "--enable-pprof=true is ignored: "));
    assert!(has(&w, "--max-wals=10 is ignored: "));
    assert!(has(&w, "--logger=zap is ignored"));
    assert!(has(&w, "--log-outputs=stdout is ignored"));
    assert!(has(
        &w,
        "--unsafe-no-fsync=true is ignored: Strata always fsyncs"
    ));
    assert_eq!(
        load(&["--logger=capnslog"], &[]).unwrap_err(),
        ConfigError::Invalid(
            "unknown logger option \"capnslog\"; etcd 3.5 supports only 'zap'".into()
        )
    );
}

#[test]
fn every_flag_in_the_table_is_accepted_at_its_default() {
    for f in FLAGS
        .iter()
        .filter(|f| f.name != "version" && f.name != "config-file")
    {
        let arg = if f.kind == value::Kind::Legacy {
            format!("--{}", f.name)
        } else {
            format!("--{}={}", f.name, f.default)
        };
        // etcd requires an advertise URL with an explicit listen URL.
        let mut args = vec![arg.as_str()];
        if f.name == "listen-client-urls" {
            args.push("--advertise-client-urls=http://localhost:2379");
        }
        if f.name == "initial-cluster" {
            args.push("--name=default");
        }
        let r = load(&args, &[]);
        assert!(r.is_ok(), "{arg}: {r:?}");
    }
}

#[test]
fn etcd_checks_with_etcds_messages() {
    let msg = |args: &[&str]| load(args, &[]).unwrap_err().to_string();
    assert_eq!(
        msg(&["--heartbeat-interval=0"]),
        "--heartbeat-interval must be >0 (set to 0ms)"
    );
    assert_eq!(
        msg(&["--heartbeat-interval=300"]),
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
    );
    assert_eq!(
        msg(&["--election-timeout=60000"]),
        "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
    );
    assert_eq!(
        msg(&["--listen-client-urls=http://127.0.0.1:1"]),
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
    assert_eq!(
        msg(&["--auto-compaction-mode=hourly"]),
        "unknown auto-compaction-mode \"hourly\""
    );
    assert_eq!(
        msg(&["--name=a", "--initial-cluster=b=http://b:2380"]),
        "--initial-cluster=b=http://b:2380 is refused: it names other members (b): Strata runs one-member clusters only"
    );
    assert_eq!(
        msg(&["--name=a", "--initial-cluster="]),
        "couldn't find local name \"a\" in the initial cluster configuration"
    );
    assert!(msg(&["--log-level=loud"]).contains("--log-level"));
}

#[test]
fn env_fills_what_the_command_line_left_unset() {
    let (c, w) = load(
        &["--name=flag"],
        &[
            ("ETCD_NAME", "env"),
            ("ETCD_DATA_DIR", "/d"),
            ("ETCD_SNAPSHOT_COUNT", "42"),
            ("ETCD_CLIENT_CERT_AUTH", "true"),
            ("ETCD_BOGUS", "x"),
            ("ETCD_INITIAL_CLUSTER_TOKEN", ""),
            ("PATH", "/bin"),
            ("ETCDCTL_API", "3"),
        ],
    )
    .unwrap();
    assert_eq!(c.name, "flag");
    assert_eq!(c.data_dir(), PathBuf::from("/d"));
    assert_eq!(c.snapshot_count, 42);
    assert!(c.client_cert_auth);
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert!(has(
        &w,
        "recognized environment variable ETCD_NAME, but unused: shadowed by corresponding flag"
    ));
    assert!(has(
        &w,
        "recognized and used environment variable ETCD_DATA_DIR=/d"
    ));
    assert!(has(&w, "unrecognized environment variable ETCD_BOGUS=x"));
    assert!(has(
        &w,
        "unrecognized environment variable ETCD_INITIAL_CLUSTER_TOKEN="
    ));
    assert!(!has(&w, "ETCDCTL_API"));
    assert_eq!(
        load(&[], &[("ETCD_SNAPSHOT_COUNT", "many")]).unwrap_err(),
        ConfigError::Invalid("invalid value \"many\" for ETCD_SNAPSHOT_COUNT: parse error".into())
    );
    // Dispositions apply to variables too, named as the variable.
    let e = load(&[], &[("ETCD_ENABLE_V2", "true")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ETCD_ENABLE_V2=true is refused: the etcd v2 API is not served"
    );
    let (_, w) = load(&[], &[("ETCD_ENABLE_PPROF", "true")]).unwrap();
    assert!(has(&w, "ETCD_ENABLE_PPROF=true is ignored"));
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strata.yaml");
    std::fs::write(&path, text).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

#[test]
fn config_file_replaces_flags_and_env() {
    let (_dir, path) = write_config(
        "name: from-file\n\
         data-dir: /file\n\
         listen-client-urls: http://127.0.0.1:3379\n\
         advertise-client-urls: http://127.0.0.1:3379\n\
         max-txn-ops: 64\n\
         experimental-watch-progress-notify-interval: 2000000000\n\
         client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n\
         peer-transport-security:\n  cert-file: /p.pem\n\
         unknown-key: 1\n",
    );
    let flag = format!("--config-file={path}");
    let (c, w) = load(
        &[&flag, "--name=from-flag", "--max-txn-ops=7"],
        &[("ETCD_DATA_DIR", "/env")],
    )
    .unwrap();
    assert_eq!(c.name, "from-file");
    assert_eq!(c.data_dir(), PathBuf::from("/file"));
    assert_eq!(c.max_txn_ops, 64);
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(2));
    assert!(c.client_cert_auth);
    assert_eq!(c.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.config_file, Some(PathBuf::from(&path)));
    assert!(has(
        &w,
        "other configuration command line flags and environment variables are ignored: --name, --max-txn-ops, ETCD_DATA_DIR"
    ));
    assert!(has(&w, "unknown key \"unknown-key\""));
    assert!(has(&w, "config file key peer-cert-file: /p.pem is ignored"));

    // ETCD_CONFIG_FILE selects it too.
    let (c, _) = load(&[], &[("ETCD_CONFIG_FILE", &path)]).unwrap();
    assert_eq!(c.name, "from-file");

    // Bad command-line syntax is still an error, as in etcd.
    assert!(matches!(
        load(&[&flag, "--bogus"], &[]),
        Err(ConfigError::Usage(_))
    ));
}

#[test]
fn config_file_errors_and_refusals() {
    let e = load(&["--config-file=/nonexistent/strata.yaml"], &[]).unwrap_err();
    assert!(
        e.to_string().starts_with("open /nonexistent/strata.yaml: "),
        "{e}"
    );
    let (_dir, path) = write_config("enable-v2: true\n");
    let e = load(&[&format!("--config-file={path}")], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config file key enable-v2: true is refused: the etcd v2 API is not served"
    );
    let (_dir, path) = write_config("client-transport-security:\n  auto-tls: true\n");
    assert!(matches!(
        load(&[&format!("--config-file={path}")], &[]),
        Err(ConfigError::Refused { .. })
    ));
    // A listen URL without an advertise URL is fine in a file (etcd keeps the default).
    let (_dir, path) = write_config("listen-client-urls: http://127.0.0.1:3379\n");
    assert!(load(&[&format!("--config-file={path}")], &[]).is_ok());
}
