//! # strata-wal: Strata's write-ahead log
//!
//! Every write Strata acknowledges is first made durable here. The log is a directory of
//! fixed-size, preallocated segment files (`{seq:016x}-{first_index:016x}.wal`, 64 MiB by
//! default). Each starts with a 64-byte header (magic, version, sequence number, first index,
//! a random salt, first record number) followed by 8-byte aligned records: a 40-byte header
//! (salt tag, length, record number, batch fields, kind, flags, previous record's checksum,
//! CRC32C) and a payload — an entry, a vote/purge-mark state record, or a truncation. The
//! checksum is seeded with the segment's salt, sequence number and the record's offset and the
//! record names its predecessor's checksum, so a record copied from another place, another
//! segment or an earlier use of a recycled file never validates. `docs/wal.md` has byte
//! diagrams, the commit protocol and the crash table.
//!
//! ## Invariants
//! - An operation is completed with `Ok` only after the write and fdatasync of the batch that
//!   holds it returned, and after every earlier operation was made durable.
//! - A failed write or fdatasync poisons the handle: that batch and everything after it fail,
//!   and every later call returns [`WalError::Poisoned`].
//! - Records are never overwritten in place: truncation and purge are records too, so the
//!   segments always form one chain of record numbers and recovery replays it.
//! - Recovery returns exactly a prefix of what was written, containing every acknowledged
//!   operation; it cuts a torn last batch and refuses (names file and offset) any damage that is
//!   followed by durable data, unless [`RecoveryMode::Repair`] is asked for.
//!
//! ## Threads
//! Callers queue operations ([`Wal::submit`]) and are called back when they are durable. One
//! batch at a time, the flusher thread takes everything queued, writes it with one write
//! submission and one fdatasync (linked in one io_uring submission, or pwrite + fdatasync),
//! publishes where the entries landed, then completes the operations in order. A caller that
//! waits anyway ([`Wal::submit_here`], the blocking calls) does that work on its own thread
//! when no batch is in progress, saving the hand-off to the flusher and back. A preparer thread keeps the next
//! segment zero-filled and ready. No lock is held across I/O.
//!
//! ## Reading the source
//! 1. `format.rs`: the bytes on disk.
//! 2. `wal.rs`: the API and the logical log that readers see at once.
//! 3. `pipeline.rs`: the appenders/flusher hand-off (and its loom model).
//! 4. `writer.rs`: batching, sealing, rotation, recycling.
//! 5. `recovery.rs`: what open does with whatever it finds on disk.
//! 6. `store.rs`, `uring.rs`, `pool.rs`: the I/O seam, the io_uring backend, prepared segments.
//! 7. `sim.rs` (feature `testing`): the crash-simulating, fault-injecting store.
//! 8. `observe.rs`: the hook a server's metrics install to time every durable batch.

mod error;
mod format;
pub mod observe;
mod pipeline;
mod pool;
mod recovery;
#[cfg(feature = "testing")]
mod sim;
mod store;
mod types;
mod uring;
mod wal;
mod writer;

pub use error::{Result, WalError};
pub use recovery::{RecoveryReport, TornTail};
pub use store::{BackendChoice, FsStore, SegmentFile, SegmentStore};
pub use types::{BackendKind, Entry, LogId, LogIndex, LogState, NodeId, SegmentId, Term, Vote};
pub use wal::{Callback, RecoveryMode, Wal, WalOptions, WriteOp};

/// Test hooks: the crash-simulating store.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::sim::{CrashMode, FaultOp, SECTOR, SimStore};
}
