//! Black-box harness: the built `strata` binary on a free loopback port, stopped by its own
//! PID; `etcdctl` and `etcd` from Debian's packages when present.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The built `strata` binary as a command, with no input and without an inherited
/// `ETCD_CONFIG_FILE` (which would make it ignore every flag).
pub fn strata_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.env_remove("ETCD_CONFIG_FILE").stdin(Stdio::null());
    cmd
}

/// A running `strata` process.
pub struct Strata {
    pub child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Strata {
    /// Starts `strata` with its data in `data_dir` on a free port and waits until it serves.
    pub fn start(data_dir: &Path) -> Strata {
        Self::start_with(data_dir, free_port(), &[])
    }

    /// Starts `strata` on `port` with extra flags.
    pub fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> Strata {
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = strata_command();
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--listen-client-urls")
            .arg(&url)
            .arg("--advertise-client-urls")
            .arg(&url)
            .args(extra);
        let log = data_dir.with_extension(format!("{port}.log"));
        Self::spawn(cmd, port, data_dir, log)
    }

    /// Starts `strata` with `--data-dir` and exactly `flags` (which must make it serve on
    /// `port`).
    pub fn start_exact<S: AsRef<std::ffi::OsStr>>(
        data_dir: &Path,
        port: u16,
        flags: &[S],
    ) -> Strata {
        let mut cmd = strata_command();
        cmd.arg("--data-dir").arg(data_dir).args(flags);
        let log = data_dir.with_extension(format!("{port}.log"));
        Self::spawn(cmd, port, data_dir, log)
    }

    /// Spawns `cmd` (a `strata` command line) with its stderr in `log`, and waits until it
    /// serves on `port`: the log says it is ready and a TCP connect succeeds. Every test
    /// starts its servers through here.
    pub fn spawn(mut cmd: Command, port: u16, data_dir: &Path, log: PathBuf) -> Strata {
        let logf = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn strata");
        let mut s = Strata {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        s.wait_ready();
        s
    }

    /// `127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "strata exited during start ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("ready to serve client requests")
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "strata did not become ready:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then wait for the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("strata did not stop on SIGTERM within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Runs `strata` with `--data-dir` and `flags`, expecting it to refuse to start; returns its
/// stderr.
pub fn start_fails<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    data_dir: &Path,
    flags: &[S],
) -> String {
    let out = strata_command()
        .arg("--data-dir")
        .arg(data_dir)
        .args(flags)
        .output()
        .expect("run strata");
    assert!(
        !out.status.success(),
        "strata should have refused {flags:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Drop for Strata {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether tests that need `etcdctl`/`etcd` must run (`STRATA_REQUIRE_ETCDCTL=1`).
pub fn required() -> bool {
    std::env::var("STRATA_REQUIRE_ETCDCTL").is_ok_and(|v| v == "1")
}

fn find(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// `etcdctl`, or `None` after a loud message (a failure when it is required).
pub fn etcdctl() -> Option<PathBuf> {
    tool("etcdctl", "etcd-client")
}

/// `etcd`, or `None` after a loud message (a failure when it is required).
pub fn etcd() -> Option<PathBuf> {
    tool("etcd", "etcd-server")
}

fn tool(bin: &str, package: &str) -> Option<PathBuf> {
    match find(bin) {
        Some(p) => Some(p),
        None if required() => {
            panic!(
                "{bin} is required (STRATA_REQUIRE_ETCDCTL=1) but not on PATH: apt-get install {package}"
            )
        }
        None => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!! SKIPPED: `{bin}` is not installed (apt-get install {package}).\n\
                 !!! Set STRATA_REQUIRE_ETCDCTL=1 to make this a failure.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
    }
}

/// Runs `etcdctl --endpoints=<endpoint> args...` with `stdin`; returns its output.
pub fn etcdctl_run(bin: &Path, endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn etcdctl");
    if let Some(input) = stdin {
        let mut sin = child.stdin.take().expect("stdin");
        sin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("etcdctl output")
}

/// A running `etcd` (Debian's etcd-server) on free ports, for differential tests.
pub struct Etcd {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd with its defaults on free loopback ports; waits until it serves.
    pub fn start(bin: &Path) -> Etcd {
        Self::start_with(bin, &[])
    }

    /// [`Etcd::start`] with extra flags.
    pub fn start_with(bin: &Path, extra: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let peer = free_port();
        let client = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let child = Command::new(bin)
            .arg("--name")
            .arg("default")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("default={peer_url}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        let e = Etcd {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(e.dir.path().join("etcd.log")).unwrap_or_default();
            if log.contains("ready to serve client requests")
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "etcd did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        e
    }

    /// `127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
