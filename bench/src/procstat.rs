//! CPU time and peak memory of a server process, read from Linux's `/proc`.

use std::path::PathBuf;

use crate::error::{BenchError, Result};
use crate::stats::ServerUsage;

/// Clock ticks per second of `/proc/<pid>/stat` times. Linux reports them in `USER_HZ`, which
/// is 100 on every architecture Strata targets; reading it with `sysconf` would need `unsafe`.
const USER_HZ: f64 = 100.0;

/// A reading of a process's cumulative CPU time.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pid: u32,
    ticks: u64,
}

/// Reads the user + system CPU ticks of `pid` so far.
pub fn sample(pid: u32) -> Result<CpuSample> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io("read", &path, e))?;
    // The command name (field 2) is in parentheses and may hold spaces; fields after its
    // closing parenthesis are space-separated, starting with field 3 (state).
    let rest = text
        .rfind(')')
        .and_then(|i| text.get(i + 1..))
        .ok_or_else(|| BenchError::Invalid(format!("unexpected format of {}", path.display())))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 and stime field 15 of the file: indices 11 and 12 after field 2.
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| BenchError::Invalid(format!("no CPU time in {}", path.display())))
    };
    Ok(CpuSample {
        pid,
        ticks: field(11)? + field(12)?,
    })
}

/// Peak resident set size of `pid` over its life (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io("read", &path, e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| BenchError::Invalid(format!("no VmHWM in {}", path.display())))
}

impl CpuSample {
    /// The server's usage between this sample and now, for a run of `requests` requests.
    pub fn usage_since(&self, requests: u64) -> Result<ServerUsage> {
        let now = sample(self.pid)?;
        let cpu_s = now.ticks.saturating_sub(self.ticks) as f64 / USER_HZ;
        Ok(ServerUsage {
            pid: self.pid,
            cpu_s,
            cpu_ms_per_request: if requests == 0 {
                0.0
            } else {
                cpu_s * 1000.0 / requests as f64
            },
            peak_rss_bytes: peak_rss_bytes(self.pid)?,
        })
    }
}
