//! openraft's `RaftLogStorage` on the WAL: entries, vote and purge marks go through the WAL's
//! single ordered, group-committed write path, so every write is durable before openraft is
//! told, and in the order it was asked for.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, EntryPayload, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use strata_wal::{LogIndex, Wal, WalError, WriteOp};

use crate::types::{
    Entry, StorageError, TypeConfig, from_wal_id, from_wal_vote, to_wal_id, to_wal_vote,
};

/// Largest append (encoded payload bytes) that raft core's thread makes durable itself (see
/// `append`). A lone client's put is a few hundred bytes; 1,000 clients' puts make entries of
/// about 300 KiB. Measured side by side through the server (docs/benchmarks.md, issue 7,
/// session 7): flushing every append on raft core's thread served a lone client 1.14× as fast
/// (p50 0.86×) but 1,000 clients 0.98× as fast; blocking the worker costs more than the
/// hand-off saves once requests queue up.
const INLINE_FLUSH_BYTES_MAX: usize = 64 << 10;

/// The log: a handle on the WAL (cheap to clone; the reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
}

impl LogStore {
    pub(crate) fn new(wal: Arc<Wal>) -> Self {
        LogStore { wal }
    }

    /// Queues `op` and waits (without blocking the runtime) until it is durable.
    async fn durable(&self, op: WriteOp) -> Result<(), WalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.wal.submit(
            op,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.await.map_err(|_| WalError::Closed)?
    }
}

fn encode(e: &Entry) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&e.payload)
}

pub(crate) fn decode(e: &strata_wal::Entry) -> Result<Entry, postcard::Error> {
    let payload: EntryPayload<TypeConfig> = postcard::from_bytes(&e.payload)?;
    Ok(Entry {
        log_id: from_wal_id(&e.id),
        payload,
    })
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => match self.wal.last_index() {
                Ok(Some(l)) => l.0.saturating_add(1),
                Ok(None) => return Ok(Vec::new()),
                Err(e) => return Err(StorageIOError::read_logs(AnyError::new(&e)).into()),
            },
        };
        let raw = self
            .wal
            .entries(LogIndex(start), LogIndex(end))
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        raw.iter()
            .map(|e| {
                decode(e).map_err(|err| {
                    StorageIOError::read_log_at_index(e.id.index.0, AnyError::new(&err)).into()
                })
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let s = self
            .wal
            .log_state()
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        Ok(LogState {
            last_purged_log_id: s.last_purged.as_ref().map(from_wal_id),
            last_log_id: s.last.as_ref().map(from_wal_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.durable(WriteOp::SaveVote(to_wal_vote(vote)))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        let v = self
            .wal
            .vote()
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)))?;
        Ok(v.as_ref().map(from_wal_vote))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        for e in entries {
            let payload = encode(&e)
                .map_err(|err| StorageIOError::write_log_entry(e.log_id, AnyError::new(&err)))?;
            bytes += payload.len();
            batch.push(strata_wal::Entry {
                id: to_wal_id(&e.log_id),
                payload: payload.into(),
            });
        }
        let op = WriteOp::Append(batch);
        let done: strata_wal::Callback =
            Box::new(move |r| callback.log_io_completed(r.map_err(io::Error::other)));
        // raft core waits for this flush before it does anything else (openraft 0.9 awaits
        // the callback right after `append`). A small append (little load) is made durable
        // right here, on raft core's thread, when no batch is in progress: no hand-off to the
        // WAL's flusher thread and back around the fdatasync. A large one (many writes
        // waiting) goes to the flusher, so that this runtime worker keeps serving them.
        let submitted = if bytes <= INLINE_FLUSH_BYTES_MAX {
            self.wal.submit_here(op, done)
        } else {
            self.wal.submit(op, done)
        };
        submitted.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        let keep = log_id.index.checked_sub(1).map(LogIndex);
        self.durable(WriteOp::TruncateAfter(keep))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.durable(WriteOp::PurgeThrough(to_wal_id(&log_id)))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
