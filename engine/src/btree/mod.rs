//! The copy-on-write B+tree: one file of fixed-size pages holding named trees (buckets).
//!
//! See `docs/engine.md` for the byte layout, the commit protocol and the crash table.

mod check;
mod cursor;
mod db;
mod defrag;
mod free;
mod mmap;
mod node;
mod page;
mod read;
#[cfg(feature = "testing")]
mod sim;
mod snapshot;
mod store;
mod txn;
mod verified;
mod write;

pub use check::CheckReport;
pub use cursor::{Cursor, Entry, Range};
pub use db::{Db, Durability, Options, Stats, VerifyReads};
pub use defrag::{DefragOptions, DefragReport};
pub use mmap::MmapStore;
pub use read::{ReadTxn, Tree};
pub use store::{FileStore, PageStore, PageView, StoreKind};
pub use txn::{MAX_BUCKET_NAME_BYTES, MAX_VALUE_BYTES, WriteTxn, max_key_bytes};

/// Test hooks: the crash-simulating, fault-injecting page store.
#[cfg(feature = "testing")]
pub mod testing {
    pub use super::sim::{FaultOp, SECTOR, SimOp, SimStore, Survival};
}

/// A page number in the database file (page `n` starts at byte `n * page_size`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId(pub u64);

/// A write transaction's number; each commit gets the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

impl std::fmt::Display for PageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
