//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), as etcd 3.5's
//! `v3compactor`:
//!
//! - periodic: keep `retention` of history. Every tenth of the compaction interval
//!   (`min(retention, 1h)`) the current revision is recorded in a window of
//!   `retention / (interval / 10) + 1` samples, so its oldest sample is the revision of one
//!   retention ago. The first compaction comes once `retention` has passed since start, later
//!   ones once the interval passed since the last success; each compacts to the oldest sample.
//!   A failure is retried at the next sample.
//! - revision: every 5 minutes, compact to `current - retention` unless that is not positive
//!   or was the last compaction.
//!
//! Compaction goes through raft like a client's `Compact` (an already compacted revision
//! counts as done), and only the leader compacts (etcd pauses the compactor on followers).
//! Time is tokio's, so the unit tests drive it with paused time.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::mvcc::{MvccError, WriteRequest};
use strata_raftnode::{NodeError, RaftNode};
use tokio::time::Instant;

/// etcd's revision-mode interval.
pub const REVISION_INTERVAL: Duration = Duration::from_secs(300);

/// What auto-compaction keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// etcd's parsing of the two flags: a bare number is hours (periodic) or revisions (revision
/// mode); otherwise a Go duration (`30m`, `1h`, `2s`). `None`: auto-compaction is off
/// (retention 0).
pub fn parse(mode: &str, retention: &str) -> Result<Option<Mode>, String> {
    if mode != "periodic" && mode != "revision" {
        return Err(format!(
            "unknown auto-compaction-mode {mode:?} (periodic or revision)"
        ));
    }
    let parsed = match retention.parse::<i64>() {
        Ok(n) if n >= 0 => {
            if mode == "revision" {
                Mode::Revision(n)
            } else {
                Mode::Periodic(Duration::from_secs(n as u64 * 3600))
            }
        }
        _ => {
            let d = go_duration(retention)
                .ok_or_else(|| format!("error parsing CompactionRetention: {retention:?}"))?;
            if mode == "revision" {
                // As etcd: a duration in revision mode is its count of nanoseconds.
                Mode::Revision(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            } else {
                Mode::Periodic(d)
            }
        }
    };
    Ok(match parsed {
        Mode::Periodic(d) if d.is_zero() => None,
        Mode::Revision(0) => None,
        m => Some(m),
    })
}

/// A Go duration: decimal numbers with units `ns`, `us`, `ms`, `s`, `m`, `h`, concatenated
/// (`1h30m`, `1.5s`).
fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * secs;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// What the compactor compacts: the node in production, a model in the tests.
pub trait Target: Send + Sync + 'static {
    /// The current revision.
    fn revision(&self) -> i64;
    /// Whether this member leads (only the leader compacts).
    fn is_leader(&self) -> bool;
    /// Compacts to `rev` through raft; an already compacted revision is success.
    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), String>> + Send;
}

impl Target for Arc<RaftNode> {
    fn revision(&self) -> i64 {
        self.store().revision().unwrap_or(0)
    }
    fn is_leader(&self) -> bool {
        RaftNode::is_leader(self)
    }
    async fn compact(&self, rev: i64) -> Result<(), String> {
        match self.write(WriteRequest::Compact { revision: rev }).await {
            Ok(_) | Err(NodeError::Mvcc(MvccError::Compacted { .. })) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Runs auto-compaction in `mode` until the task is dropped or aborted.
pub async fn run<T: Target>(target: T, mode: Mode) {
    match mode {
        Mode::Periodic(period) => periodic(target, period).await,
        Mode::Revision(retention) => revision(target, retention).await,
    }
}

async fn periodic<T: Target>(target: T, period: Duration) {
    let interval = period.min(Duration::from_secs(3600));
    let retry = (interval / 10).max(Duration::from_millis(1));
    let samples_max = (period.as_nanos() / retry.as_nanos()) as usize + 1;
    let mut revs: VecDeque<i64> = VecDeque::with_capacity(samples_max + 1);
    let mut last_success = Instant::now();
    let mut base = period;
    loop {
        revs.push_back(target.revision());
        if revs.len() > samples_max {
            revs.pop_front();
        }
        tokio::time::sleep(retry).await;
        if !target.is_leader() || last_success.elapsed() < base {
            continue;
        }
        base = interval;
        let Some(&rev) = revs.front() else {
            continue;
        };
        tracing::info!(revision = rev, compact_period = ?period, "starting auto periodic compaction");
        match target.compact(rev).await {
            Ok(()) => {
                tracing::info!(revision = rev, "completed auto periodic compaction");
                last_success = Instant::now();
            }
            Err(e) => {
                tracing::warn!(revision = rev, retry_interval = ?retry, error = %e, "failed auto periodic compaction")
            }
        }
    }
}

async fn revision<T: Target>(target: T, retention: i64) {
    let mut prev = 0i64;
    loop {
        tokio::time::sleep(REVISION_INTERVAL).await;
        if !target.is_leader() {
            continue;
        }
        let rev = target.revision() - retention;
        if rev <= 0 || rev == prev {
            continue;
        }
        tracing::info!(
            revision = rev,
            retention,
            "starting auto revision compaction"
        );
        match target.compact(rev).await {
            Ok(()) => {
                prev = rev;
                tracing::info!(revision = rev, "completed auto revision compaction");
            }
            Err(e) => tracing::warn!(revision = rev, error = %e, "failed auto revision compaction"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A store whose revision grows by one per second of (paused) time, recording the
    /// compactions asked for with the time they were asked.
    #[derive(Clone)]
    struct Model {
        start: Instant,
        compactions: Arc<Mutex<Vec<(Duration, i64)>>>,
    }

    impl Model {
        fn new() -> Self {
            Model {
                start: Instant::now(),
                compactions: Arc::new(Mutex::new(Vec::new())),
            }
        }
        fn asked(&self) -> Vec<(Duration, i64)> {
            self.compactions.lock().unwrap().clone()
        }
    }

    impl Target for Model {
        fn revision(&self) -> i64 {
            1 + self.start.elapsed().as_secs() as i64
        }
        fn is_leader(&self) -> bool {
            true
        }
        async fn compact(&self, rev: i64) -> Result<(), String> {
            self.compactions
                .lock()
                .unwrap()
                .push((self.start.elapsed(), rev));
            Ok(())
        }
    }

    #[test]
    fn flags_parse_as_etcd() {
        let h = Duration::from_secs(3600);
        assert_eq!(parse("periodic", "1"), Ok(Some(Mode::Periodic(h))));
        assert_eq!(parse("periodic", "30m"), Ok(Some(Mode::Periodic(h / 2))));
        assert_eq!(
            parse("periodic", "2s"),
            Ok(Some(Mode::Periodic(Duration::from_secs(2))))
        );
        assert_eq!(
            parse("periodic", "1h30m"),
            Ok(Some(Mode::Periodic(h * 3 / 2)))
        );
        assert_eq!(parse("revision", "1000"), Ok(Some(Mode::Revision(1000))));
        assert_eq!(parse("periodic", "0"), Ok(None));
        assert_eq!(parse("revision", "0"), Ok(None));
        assert!(parse("periodic", "soon").is_err());
        assert!(parse("hourly", "1").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_compacts_to_the_revision_one_retention_ago() {
        let m = Model::new();
        let task = tokio::spawn(run(m.clone(), Mode::Periodic(Duration::from_secs(10))));
        tokio::time::sleep(Duration::from_secs(35)).await;
        task.abort();
        let asked = m.asked();
        // Sampled every second; the first compaction once 10 s passed (to the first
        // sample), then every 10 s to the oldest of the 11 samples, taken 11 s earlier (the
        // sample of the current tick is taken after it compacts, as in etcd's loop).
        assert_eq!(
            asked,
            vec![
                (Duration::from_secs(10), 1),
                (Duration::from_secs(20), 10),
                (Duration::from_secs(30), 20),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_beyond_an_hour_compacts_hourly() {
        let m = Model::new();
        let h = Duration::from_secs(3600);
        let task = tokio::spawn(run(m.clone(), Mode::Periodic(h * 3)));
        tokio::time::sleep(h * 5 + Duration::from_secs(1)).await;
        task.abort();
        let asked: Vec<Duration> = m.asked().into_iter().map(|(t, _)| t).collect();
        assert_eq!(asked, vec![h * 3, h * 4, h * 5]);
        // The window holds 31 six-minute samples, the newest one tick old: the revision
        // compacted to is 3 h 6 min old.
        let (at, rev) = m.asked()[1];
        assert_eq!(rev, 1 + (at - h * 3 - h / 10).as_secs() as i64);
    }

    #[tokio::test(start_paused = true)]
    async fn revision_mode_compacts_every_five_minutes_if_moved() {
        let m = Model::new();
        let task = tokio::spawn(run(m.clone(), Mode::Revision(100)));
        tokio::time::sleep(Duration::from_secs(901)).await;
        task.abort();
        assert_eq!(
            m.asked(),
            vec![
                (Duration::from_secs(300), 301 - 100),
                (Duration::from_secs(600), 601 - 100),
                (Duration::from_secs(900), 901 - 100),
            ]
        );
    }
}
