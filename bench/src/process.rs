//! Server processes the bench starts and stops: etcd, Strata, and the ceiling server (this
//! binary's `ceiling` subcommand) — each on free 127.0.0.1 ports, killed by PID on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::connect;
use crate::error::{BenchError, Result};
use crate::proto::etcdserverpb::RangeRequest;
use crate::proto::etcdserverpb::kv_client::KvClient;

/// A server process this bench started. Dropping it kills the process (by its PID) and
/// removes its data directory.
#[derive(Debug)]
pub struct ServerProcess {
    /// Name used in reports.
    pub name: String,
    /// Client endpoint (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    /// Its process ID, for CPU and memory readings.
    pub pid: u32,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
    // Declared after `child` so the process is killed before its directory is removed.
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Kill only the process this value started; it may already have exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::io("bind", "127.0.0.1:0", e))?;
    let addr = l
        .local_addr()
        .map_err(|e| BenchError::io("local_addr", "127.0.0.1:0", e))?;
    Ok(addr.port())
}

/// How to start a server with etcd's flags.
#[derive(Debug, Clone)]
pub struct EtcdLike {
    /// Name in reports and `--name`.
    pub name: String,
    /// The binary (`/usr/bin/etcd`, or Strata's server).
    pub bin: PathBuf,
    /// Parent of the temporary data directory (choose one file system for every system).
    pub data_root: PathBuf,
    /// Extra flags.
    pub extra_args: Vec<String>,
}

impl EtcdLike {
    /// Starts the server on free ports with a fresh data directory and waits until it answers
    /// a Range (at most `ready_timeout`). A port found free can be taken by someone else
    /// before the server binds it, so a failed start is tried again, up to three times.
    pub async fn start(&self, ready_timeout: Duration) -> Result<ServerProcess> {
        let mut attempt = 1;
        loop {
            match self.start_once(ready_timeout).await {
                Ok(p) => return Ok(p),
                Err(e) if attempt >= 3 => return Err(e),
                Err(_) => attempt += 1,
            }
        }
    }

    async fn start_once(&self, ready_timeout: Duration) -> Result<ServerProcess> {
        std::fs::create_dir_all(&self.data_root)
            .map_err(|e| BenchError::io("create", &self.data_root, e))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("strata-bench-{}-", self.name))
            .tempdir_in(&self.data_root)
            .map_err(|e| BenchError::io("create temp dir in", &self.data_root, e))?;
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.path().join("data");
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("{}={peer_url}", self.name))
            .args(&self.extra_args);
        let child = spawn_logged(cmd, &self.bin, &log)?;
        let proc = ServerProcess {
            name: self.name.clone(),
            endpoint: client_url,
            pid: child.id(),
            log,
            child,
            _dir: dir,
        };
        wait_ready(proc, ready_timeout).await
    }
}

/// Starts this binary's ceiling server (`<exe> ceiling --listen 127.0.0.1:PORT`).
pub async fn start_ceiling(exe: &Path, ready_timeout: Duration) -> Result<ServerProcess> {
    let dir = tempfile::Builder::new()
        .prefix("strata-bench-ceiling-")
        .tempdir()
        .map_err(|e| BenchError::io("create temp dir", std::env::temp_dir(), e))?;
    let port = free_port()?;
    let log = dir.path().join("server.log");
    let mut cmd = Command::new(exe);
    cmd.arg("ceiling")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let child = spawn_logged(cmd, exe, &log)?;
    let proc = ServerProcess {
        name: "ceiling".into(),
        endpoint: format!("http://127.0.0.1:{port}"),
        pid: child.id(),
        log,
        child,
        _dir: dir,
    };
    wait_ready(proc, ready_timeout).await
}

fn spawn_logged(mut cmd: Command, bin: &Path, log: &Path) -> Result<Child> {
    let out = File::create(log).map_err(|e| BenchError::io("create", log, e))?;
    let err = out.try_clone().map_err(|e| BenchError::io("dup", log, e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| BenchError::io("spawn", bin, e))
}

/// Waits until `proc` answers a Range, or fails with the tail of its log.
async fn wait_ready(mut proc: ServerProcess, timeout: Duration) -> Result<ServerProcess> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(not_ready(&proc, &format!("exited with {status}")));
        }
        match connect(&proc.endpoint).await {
            Ok(ch) => {
                let req = RangeRequest {
                    key: b"health".to_vec(),
                    ..Default::default()
                };
                match KvClient::new(ch).range(req).await {
                    Ok(_) => return Ok(proc),
                    Err(s) => last = s.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(not_ready(
        &proc,
        &format!("not ready after {timeout:?}: {last}"),
    ))
}

fn not_ready(proc: &ServerProcess, why: &str) -> BenchError {
    let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    BenchError::Server {
        name: proc.name.clone(),
        reason: format!("{why}; log tail: {}", tail.join(" | ")),
    }
}
