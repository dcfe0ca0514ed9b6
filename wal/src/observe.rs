//! A process-wide observer of durable batches, for metrics (etcd's
//! `etcd_disk_wal_fsync_duration_seconds` and `etcd_disk_wal_write_bytes_total`).
//!
//! The WAL knows nothing of Prometheus: a server installs one plain function once, and the
//! flusher calls it after every write+fdatasync with what that batch cost. Without an observer
//! the cost is one atomic load per batch. A function pointer rather than a closure keeps the
//! hook `Copy`, allocation-free and free of any lifetime tied to a `Wal` handle, so every WAL
//! in the process reports to the same place, as etcd's process-wide metrics do.

use std::sync::OnceLock;
use std::time::Duration;

/// What one durable batch cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchObservation {
    /// The write submission and the fdatasync together (linked in one io_uring submission,
    /// so they cannot be timed apart).
    pub write_sync: Duration,
    /// Bytes written, record headers and padding included.
    pub bytes: u64,
    /// Records in the batch.
    pub records: u64,
}

static OBSERVER: OnceLock<fn(&BatchObservation)> = OnceLock::new();

/// Installs the observer; returns false (and keeps the first) if one is already installed.
pub fn set_batch_observer(f: fn(&BatchObservation)) -> bool {
    OBSERVER.set(f).is_ok()
}

/// Reports a durable batch to the observer, if one is installed.
pub(crate) fn batch(o: &BatchObservation) {
    if let Some(f) = OBSERVER.get() {
        f(o);
    }
}
