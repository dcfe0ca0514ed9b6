//! `strata`: an etcd-compatible member. `strata --help` lists the flags (etcd's names).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use strata_raftnode::{MemberInfo, NodeOptions, RaftNode};
use strata_server::config::{Config, listen_addr, url_list};
use strata_server::{ETCD_VERSION, Limits, serve};

/// glibc's malloc took about a quarter of the server's CPU under 1,000 writing clients
/// (`perf`: `_int_malloc`, `_int_free`, `unlink_chunk`, `malloc_consolidate`), and its
/// per-thread arenas keep freed memory resident; mimalloc is cheaper on both counts
/// (docs/benchmarks.md, "Issue 7").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cfg = Config::parse();
    if cfg.version {
        println!("strata Version: {}", env!("CARGO_PKG_VERSION"));
        println!("etcd API Version: {ETCD_VERSION}");
        println!(
            "OS/Arch: {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        return ExitCode::SUCCESS;
    }
    let filter = match cfg.log_filter() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("strata: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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

async fn run(cfg: Config) -> Result<(), String> {
    if cfg.initial_cluster_state != "new" && cfg.initial_cluster_state != "existing" {
        return Err(format!(
            "invalid value {:?} for --initial-cluster-state (new or existing)",
            cfg.initial_cluster_state
        ));
    }
    if let Some(ic) = &cfg.initial_cluster {
        let others: Vec<&str> = ic
            .split(',')
            .filter(|m| !m.trim().is_empty() && !m.trim().starts_with(&format!("{}=", cfg.name)))
            .collect();
        if !others.is_empty() {
            return Err(format!(
                "--initial-cluster names other members ({}): this build runs one-member clusters only",
                others.join(",")
            ));
        }
    }
    let mut listeners = Vec::new();
    for url in url_list(&cfg.listen_client_urls) {
        let addr = listen_addr(&url)?;
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listen tcp {addr}: {e}"))?;
        tracing::info!(%url, "listening for client requests");
        listeners.push(l);
    }
    let data_dir = cfg.data_dir();
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
    let node = RaftNode::start(opts).await.map_err(|e| e.to_string())?;
    tracing::info!(
        name = %cfg.name,
        data_dir = %data_dir.display(),
        member = %format!("{:x}", node.member_id()),
        cluster = %format!("{:x}", node.cluster_id()),
        "ready to serve client requests"
    );
    let limits = Limits {
        max_request_bytes: cfg.max_request_bytes,
        max_txn_ops: cfg.max_txn_ops,
        progress_notify_interval: cfg.watch_progress_notify_interval,
    };
    let served = serve(node.clone(), listeners, limits, shutdown_signal()).await;
    // Stop raft and make the engine durable whatever happened to the listeners.
    let stopped = node.shutdown().await;
    served.map_err(|e| format!("serving: {e}"))?;
    stopped.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
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
