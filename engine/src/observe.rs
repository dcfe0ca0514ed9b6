//! A process-wide observer of durable commits, for metrics (etcd's
//! `etcd_disk_backend_commit_duration_seconds`).
//!
//! The engine knows nothing of Prometheus: a server installs one plain function once, and
//! every durable commit calls it with how long the commit took, from the start of the commit
//! (spilling dirty pages, writing them) through the page fdatasync, the meta write and its
//! fdatasync, as bbolt's `Tx.Commit` is timed by etcd. Without an observer the cost is one
//! atomic load per durable commit. A function pointer keeps the hook allocation-free and
//! shared by every database in the process, as etcd's process-wide metrics are.

use std::sync::OnceLock;
use std::time::Duration;

static OBSERVER: OnceLock<fn(Duration)> = OnceLock::new();

/// Installs the observer; returns false (and keeps the first) if one is already installed.
pub fn set_durable_commit_observer(f: fn(Duration)) -> bool {
    OBSERVER.set(f).is_ok()
}

/// Reports a durable commit's duration to the observer, if one is installed.
pub(crate) fn durable_commit(took: Duration) {
    if let Some(f) = OBSERVER.get() {
        f(took);
    }
}
