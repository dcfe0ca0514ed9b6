//! `strata`: an etcd-compatible member. `strata --help` lists the flags (etcd's names).

use std::process::ExitCode;
use std::time::Duration;

use strata_raftnode::{MemberInfo, NodeOptions, RaftNode};
use strata_server::config::{Config, ConfigError, Level, Loaded, help, listen_url, url_list};
use strata_server::transport::server_config;
use strata_server::{Limits, Listener, MetricsInfo, Role, TlsFiles, serve};

fn main() -> ExitCode {
    let (cfg, warnings) = match load_config() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // `Config::load` checked the level.
    let filter = cfg.log_filter().unwrap_or("info");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    for w in warnings {
        match w.level {
            Level::Info => tracing::info!("{}", w.message),
            Level::Warn => tracing::warn!("{}", w.message),
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("strata: {e}");
            ExitCode::FAILURE
        }
    }
}

/// etcd's flags, config file and `ETCD_*` variables; answers `--help` and `--version`, and
/// prints configuration errors as etcd does (syntax: the message and the usage, exit 2;
/// anything else: "error verifying flags", exit 1).
fn load_config() -> Result<(Box<Config>, Vec<strata_server::config::Warning>), ExitCode> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    match Config::load(&args, &env) {
        Ok(Loaded::Run { config, warnings }) => Ok((config, warnings)),
        Ok(Loaded::Help(text) | Loaded::Version(text)) => {
            print!("{text}");
            Err(ExitCode::SUCCESS)
        }
        Err(e @ ConfigError::Usage(_)) => {
            eprintln!("{e}\n{}", help::USAGE);
            Err(ExitCode::from(e.exit_code()))
        }
        Err(e) => {
            eprintln!("strata: error verifying flags, {e}. See 'strata --help'.");
            Err(ExitCode::from(e.exit_code()))
        }
    }
}

async fn run(cfg: Box<Config>) -> Result<(), String> {
    cfg.check_cluster_state().map_err(|e| e.to_string())?;
    strata_server::metrics::install_storage_hooks();
    let listeners = bind_listeners(&cfg).await?;
    let data_dir = cfg.data_dir();
    prepare_data_dir(&data_dir)?;
    let member = MemberInfo {
        name: cfg.name.clone(),
        peer_urls: url_list(&cfg.initial_advertise_peer_urls),
        client_urls: url_list(&cfg.advertise_client_urls),
    };
    let mut opts = NodeOptions::new(&data_dir, member);
    opts.cluster_token = cfg.initial_cluster_token.clone();
    opts.heartbeat = Duration::from_millis(cfg.heartbeat_interval.max(1));
    opts.election_timeout = Duration::from_millis(cfg.election_timeout.max(1));
    opts.snapshot_count = cfg.snapshot_count;
    opts.catch_up_entries = cfg.snapshot_catchup_entries;
    opts.wal_dir = cfg.wal_dir.clone();
    let compaction =
        strata_server::compactor::parse(&cfg.auto_compaction_mode, &cfg.auto_compaction_retention)?;
    let node = RaftNode::start(opts).await.map_err(|e| e.to_string())?;
    let compactor = compaction.map(|mode| {
        tracing::info!(?mode, "auto-compaction enabled");
        tokio::spawn(strata_server::compactor::run(node.clone(), mode))
    });
    tracing::info!(
        name = %cfg.name,
        data_dir = %data_dir.display(),
        member = %format!("{:x}", node.member_id()),
        cluster = %format!("{:x}", node.cluster_id()),
        "ready to serve client requests"
    );
    let (quota_backend_bytes, quota_too_large) =
        strata_server::quota::effective_quota(cfg.quota_backend_bytes);
    if quota_too_large {
        tracing::warn!(
            quota_size_bytes = quota_backend_bytes,
            maximum_size_bytes = strata_server::quota::MAX_QUOTA_BYTES,
            "quota exceeds the maximum value"
        );
    }
    tracing::info!(
        quota_size_bytes = quota_backend_bytes,
        "enabled backend quota"
    );
    let limits = Limits {
        max_request_bytes: cfg.max_request_bytes,
        max_txn_ops: cfg.max_txn_ops,
        progress_notify_interval: cfg.watch_progress_notify_interval,
        quota_backend_bytes,
    };
    let info = MetricsInfo {
        quota_backend_bytes,
    };
    let served = serve(node.clone(), listeners, limits, info, shutdown_signal()).await;
    if let Some(c) = compactor {
        c.abort();
    }
    // Stop raft and make the engine durable whatever happened to the listeners.
    let stopped = node.shutdown().await;
    served.map_err(|e| format!("serving: {e}"))?;
    stopped.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds the client and metrics URLs with etcd's rules: an `https://` URL needs
/// `--cert-file` and `--key-file`; an `http://` URL is served in plaintext even when they
/// are given (with etcd's warnings); an address named by both an `http://` and an
/// `https://` URL serves both on one port.
async fn bind_listeners(cfg: &Config) -> Result<Vec<Listener>, String> {
    let files = TlsFiles {
        cert: cfg.cert_file.clone(),
        key: cfg.key_file.clone(),
        trusted_ca: cfg.trusted_ca_file.clone(),
        client_cert_auth: cfg.client_cert_auth,
    };
    // (address, role, https, http) in the order first named.
    let mut wanted: Vec<(std::net::SocketAddr, Role, bool, bool)> = Vec::new();
    let mut add =
        |addr, role, secure: bool| match wanted.iter_mut().find(|w| w.0 == addr && w.1 == role) {
            Some(w) => {
                w.2 |= secure;
                w.3 |= !secure;
            }
            None => wanted.push((addr, role, secure, !secure)),
        };
    for url in url_list(&cfg.listen_client_urls) {
        let u = listen_url(&url)?;
        if !u.secure {
            if !files.is_empty() {
                tracing::warn!(client_url = %url, "scheme is HTTP while key and cert files are present; ignoring key and cert files");
            }
            if files.client_cert_auth {
                tracing::warn!(client_url = %url, "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL");
            }
        } else if files.is_empty() {
            return Err(format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
            ));
        }
        add(u.addr, Role::Client, u.secure);
    }
    for url in url_list(cfg.listen_metrics_urls.as_deref().unwrap_or("")) {
        let u = listen_url(&url)?;
        if u.secure && files.is_empty() {
            return Err(format!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                url.trim_end_matches('/')
            ));
        }
        add(u.addr, Role::Metrics, u.secure);
    }
    let tls = if wanted.iter().any(|w| w.2) {
        Some(server_config(&files)?)
    } else {
        None
    };
    let mut listeners = Vec::new();
    for (addr, role, secure, plain) in wanted {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listen tcp {addr}: {e}"))?;
        let what = match role {
            Role::Client => "client requests",
            Role::Metrics => "metrics and health",
        };
        tracing::info!(%addr, tls = secure, plaintext = plain, "listening for {what}");
        listeners.push(Listener {
            tcp,
            tls: secure.then(|| tls.clone()).flatten(),
            plain,
            role,
        });
    }
    Ok(listeners)
}

/// Creates the data directory private to its owner (0700), as etcd does; an existing one
/// with wider permissions gets etcd's warning and is used as it is.
fn prepare_data_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode != 0o700 {
                tracing::warn!(
                    "check file permission: directory {:?} exist, but the permission is {:?}. \
                     The recommended permission is \"-rwx------\" to prevent possible \
                     unprivileged access to the data",
                    dir.display().to_string(),
                    format!("{mode:o}")
                );
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot access data directory: {e}")),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
        _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
    }
}
