//! `Maintenance.Snapshot`: the whole store at one read snapshot, streamed as etcd streams its
//! backend — 32 KiB chunks, each with the bytes remaining after it, then one last message
//! holding the SHA-256 of everything before it. `etcdctl snapshot save` writes the chunks to
//! the file in order, so the file is the content followed by its 32-byte digest, which
//! `stratautl snapshot restore` checks (`bin/stratautl.rs`).
//!
//! etcdctl tells a file with a digest from one without by its length: a bbolt file is a
//! whole number of 512-byte sectors, so the digest is there when `length % 512 == 32`
//! ("sha256 checksum not found" otherwise). The content is therefore padded with zeros to a
//! multiple of [`PAD_BYTES`]; the engine's stream ends with its own trailer, so a restore stops
//! there and never reads the padding (which the digest covers like the rest).
//!
//! The content is the engine's snapshot stream (`engine/src/btree/snapshot.rs`). Its length is
//! only known once written, and etcd sends it in every chunk; the stream is therefore produced
//! twice from the same read transaction — once counted, once sent — which costs a second read
//! of the database but no disk space and never blocks writers (a read transaction only delays
//! the reuse of the pages it sees).

use std::io::{self, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use strata_engine::mvcc::MvccStore;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::proto::etcdserverpb as pb;

/// etcd's snapshot chunk (`snapshotSendBufferSize`).
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Bytes of the digest that ends a snapshot file.
pub const DIGEST_BYTES: usize = 32;
/// The content is padded to a multiple of this (see above).
pub const PAD_BYTES: u64 = 512;

/// Counts bytes.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Cuts what is written into chunks and sends them, hashing as it goes.
struct Chunker {
    tx: mpsc::Sender<Result<pb::SnapshotResponse, Status>>,
    buf: Vec<u8>,
    total: u64,
    sent: u64,
    sha: Sha256,
    header: Option<pb::ResponseHeader>,
}

impl Chunker {
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.sent += blob.len() as u64;
        self.sha.update(&blob);
        let msg = pb::SnapshotResponse {
            header: self.header.take(),
            remaining_bytes: self.total.saturating_sub(self.sent),
            blob,
            version: String::new(),
        };
        self.tx
            .blocking_send(Ok(msg))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Chunker {
    fn write(&mut self, mut b: &[u8]) -> io::Result<usize> {
        let n = b.len();
        while !b.is_empty() {
            let room = CHUNK_BYTES - self.buf.len();
            let take = room.min(b.len());
            self.buf.extend_from_slice(&b[..take]);
            b = &b[take..];
            if self.buf.len() == CHUNK_BYTES {
                self.send_chunk()?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The snapshot of `store` as a response stream; `header` goes with the first chunk.
pub(crate) fn stream(
    store: Arc<MvccStore>,
    header: pb::ResponseHeader,
) -> Result<tonic::codegen::BoxStream<pb::SnapshotResponse>, Status> {
    let txn = store
        .db()
        .begin_read()
        .map_err(|e| Status::internal(format!("etcdserver: storage failed: {e}")))?;
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let fail = |tx: &mpsc::Sender<Result<pb::SnapshotResponse, Status>>, e: String| {
            tracing::warn!(error = %e, "sending a snapshot");
            let _ = tx.blocking_send(Err(Status::internal(format!(
                "etcdserver: snapshot failed: {e}"
            ))));
        };
        let mut counter = Counter(0);
        if let Err(e) = txn.write_snapshot(&mut counter) {
            return fail(&tx, e.to_string());
        }
        let padding = (PAD_BYTES - counter.0 % PAD_BYTES) % PAD_BYTES;
        let mut w = Chunker {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK_BYTES),
            total: counter.0 + padding,
            sent: 0,
            sha: Sha256::new(),
            header: Some(header),
        };
        let written = txn.write_snapshot(&mut w).map_err(|e| e.to_string());
        let sent = written.and_then(|_| {
            w.write_all(&vec![0u8; padding as usize])
                .and_then(|()| w.send_chunk())
                .map_err(|e| e.to_string())
        });
        drop(txn);
        if let Err(e) = sent {
            return fail(&tx, e);
        }
        if w.sent != w.total {
            return fail(
                &tx,
                format!("snapshot was {} bytes, then {}", w.total, w.sent),
            );
        }
        let digest = w.sha.finalize().to_vec();
        tracing::info!(bytes = w.sent, "snapshot sent; sending its sha256 checksum");
        let _ = tx.blocking_send(Ok(pb::SnapshotResponse {
            header: None,
            remaining_bytes: 0,
            blob: digest,
            version: String::new(),
        }));
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
