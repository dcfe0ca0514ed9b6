//! # strata-engine: where Strata's keys and revisions live
//!
//! The storage engine is a copy-on-write B+tree in one file ([`btree`]), in the tradition of
//! LMDB and bbolt: fixed-size pages (4 KiB by default), two checksummed meta pages written
//! alternately, branch and leaf pages, overflow runs for large values, a freelist, and named
//! trees (buckets). Every page run carries a CRC32C, its own page id and the transaction that
//! wrote it, so a zeroed, torn, stale or misdirected page is reported, never trusted.
//!
//! ## Invariants
//! - A page reachable from a published snapshot is never written again while a reader can
//!   see it, nor while the tree on disk (the last durable meta) can reach it.
//! - A durable commit writes and fdatasyncs every page before the meta that names them, and
//!   writes the meta into the slot that does not hold the newest durable meta. A crash at any
//!   point leaves at least the last durable transaction intact.
//! - One writer at a time; readers never wait for the writer and the writer never waits for
//!   readers (they only delay reuse of the pages they can see). A fast commit publishes its
//!   tree at once and becomes durable with the next durable commit.
//! - Bytes from the file are decoded with bounds checks only: damage yields an error naming
//!   the file and page, never a panic.
//! - A failed write or fdatasync poisons the handle: every later write fails.
//! - The file is truncated (defrag) only below the page count of every live snapshot and of
//!   both meta slots.
//!
//! ## Reading the source
//! 1. `btree/page.rs`: the bytes on disk.
//! 2. `btree/db.rs`: open, the writer lock, publishing snapshots, the durable commit.
//! 3. `btree/read.rs` and `btree/txn.rs`: read transactions; the write transaction,
//!    copy-on-write, split and merge, commit (`btree/write.rs`: the page writes, streamed out
//!    every 256 KiB).
//! 4. `btree/node.rs`: dirty nodes in memory.
//! 5. `btree/cursor.rs`: lookups and cursors over pages and dirty nodes.
//! 6. `btree/free.rs`: free pages, readers, and when a page may be reused (with a loom model).
//! 7. `btree/check.rs`: the consistency checker; `btree/defrag.rs`: defragmentation (move
//!    pages toward the front in bounded transactions, cut the free tail, truncate).
//! 8. `btree/store.rs`, `btree/mmap.rs`, `btree/sim.rs`: the page-store seam and its backends.
//! 9. `mvcc/`: etcd's data model on the tree (docs/mvcc.md): `revision.rs` (revisions and
//!    their bucket keys), `key_index.rs` (a key's generations, etcd's compaction rules),
//!    `kv.rs` (the stored `KeyValue`), `ops.rs` (requests, responses, etcd's errors),
//!    `store.rs` (open and index rebuild, reads, apply, leases, HashKV),
//!    `apply.rs` (one batch in one write transaction), `maintenance.rs` (the compactor thread,
//!    the durability cadence, defrag), `watch.rs` (the watch hub).
//! 10. `observe.rs`: the hook a server's metrics install to time every durable commit.

pub mod btree;
mod error;
pub mod mvcc;
pub mod observe;

pub use error::{EngineError, Result};
