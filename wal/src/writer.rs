//! The flusher's side: encodes queued operations into records, writes each batch with one
//! write submission and one fdatasync, rotates and recycles segments, and publishes record
//! locations to readers before the batch's operations are completed.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::format::{
    self, FLAG_ZSTD, RECORD_HEADER_LEN, RecordKind, SegmentHeader, StateRecord, align_up,
};
use crate::recovery::Recovered;
use crate::store::SegmentFile;
use crate::types::{Entry, LogIndex};
use crate::wal::{Loc, PendingOp, SegRef, Shared, WriteOp, next_after_purge, next_after_truncate};

/// The segment being written.
struct Active {
    header: SegmentHeader,
    file: Arc<dyn SegmentFile>,
    name: String,
    /// The pool file name until the segment's first batch is durable and it is renamed.
    pending_rename: Option<String>,
    /// Offset where the next batch goes: everything before it is durable.
    write_pos: u64,
    /// Checksum of the last durable record (the chain continues from it).
    prev_crc: u32,
    max_index: Option<u64>,
}

/// An older segment kept until a purge covers it.
struct Retained {
    seq: u64,
    name: String,
    file: Arc<dyn SegmentFile>,
    max_index: Option<u64>,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    active: Option<Active>,
    retained: VecDeque<Retained>,
    next_lsn: u64,
    next_seq: u64,
    /// Index the next appended entry must have, by the same rules as the logical log; a new
    /// segment records it as its `first_index` (0 while any index would do).
    next_index: Option<u64>,
    /// Vote and purge mark in write order: anchors every new segment.
    state: StateRecord,
    /// The batch being built; `buf[0]` goes to `active.write_pos`.
    buf: Vec<u8>,
    /// Offsets in `buf` of the records of the batch.
    recs: Vec<usize>,
    /// Locations to publish once durable: (op_seq, index, loc).
    locs: Vec<(u64, u64, Loc)>,
    new_segments: Vec<SegRef>,
    scratch: Vec<u8>,
}

/// Result of the flusher's work on one batch; the error text poisons the log.
type IoResult<T> = Result<T, String>;

impl Writer {
    pub fn new(shared: Arc<Shared>, rec: &Recovered) -> Writer {
        let mut retained: VecDeque<Retained> = rec
            .segments
            .iter()
            .map(|s| Retained {
                seq: s.header.seq,
                name: s.name.clone(),
                file: s.file.clone(),
                max_index: s.max_index,
            })
            .collect();
        let active = retained.pop_back().and_then(|r| {
            let s = rec.segments.last()?;
            Some(Active {
                header: s.header,
                file: r.file,
                name: r.name,
                pending_rename: None,
                write_pos: s.end_pos,
                prev_crc: s.last_crc,
                max_index: r.max_index,
            })
        });
        let next_index = rec.next;
        Writer {
            shared,
            active,
            retained,
            next_lsn: rec.next_lsn,
            next_seq: rec.next_seq,
            next_index,
            state: rec.state,
            buf: Vec::with_capacity(1 << 20),
            recs: Vec::new(),
            locs: Vec::new(),
            new_segments: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Makes one batch of operations durable and publishes its effects.
    pub fn process(&mut self, batch: &[PendingOp]) -> IoResult<()> {
        self.locs.clear();
        self.new_segments.clear();
        let mut purged = false;
        for p in batch.iter() {
            match &p.op {
                WriteOp::Append(entries) => {
                    for e in entries {
                        self.add_entry(p.op_seq, e)?;
                    }
                }
                WriteOp::SaveVote(v) => {
                    self.state.vote = Some(*v);
                    self.add_state()?;
                }
                WriteOp::TruncateAfter(after) => {
                    let payload = format::encode_truncate(*after);
                    self.add_record(RecordKind::Truncate, 0, &[&payload])?;
                    self.next_index =
                        next_after_truncate(self.next_index, *after, self.state.purged);
                }
                WriteOp::PurgeThrough(id) => {
                    self.state.purged = Some(*id);
                    self.next_index = next_after_purge(self.next_index, id.index);
                    self.add_state()?;
                    purged = true;
                }
            }
        }
        self.flush()?;
        self.publish();
        if purged {
            self.recycle()?;
        }
        Ok(())
    }

    fn add_state(&mut self) -> IoResult<()> {
        let payload = format::encode_state(&self.state);
        self.add_record(RecordKind::State, 0, &[&payload])
            .map(|_| ())
    }

    fn add_entry(&mut self, op_seq: u64, e: &Entry) -> IoResult<()> {
        let prefix = format::encode_entry_prefix(&e.id);
        let data: &[u8] = &e.payload;
        let compress = self
            .shared
            .opts
            .compress_min_bytes
            .is_some_and(|min| data.len() >= min);
        let mut flags = 0;
        if compress {
            self.scratch.clear();
            self.scratch
                .extend_from_slice(&(data.len() as u64).to_le_bytes());
            match zstd::bulk::compress(data, 1) {
                Ok(z) if z.len() + 8 < data.len() => {
                    self.scratch.extend_from_slice(&z);
                    flags = FLAG_ZSTD;
                }
                _ => {}
            }
        }
        let scratch = std::mem::take(&mut self.scratch);
        let (offset, len) = if flags == FLAG_ZSTD {
            self.add_record(RecordKind::Entry, flags, &[&prefix, &scratch])?
        } else {
            self.add_record(RecordKind::Entry, 0, &[&prefix, data])?
        };
        self.scratch = scratch;
        let Some(active) = self.active.as_mut() else {
            return Err("no active segment after adding a record".into());
        };
        active.max_index = Some(
            active
                .max_index
                .map_or(e.id.index.0, |m| m.max(e.id.index.0)),
        );
        self.next_index = Some(e.id.index.0.saturating_add(1));
        self.locs.push((
            op_seq,
            e.id.index.0,
            Loc {
                seg: active.header.seq,
                offset,
                len,
            },
        ));
        Ok(())
    }

    /// Appends a record to the batch; returns its segment offset and length.
    fn add_record(&mut self, kind: RecordKind, flags: u8, parts: &[&[u8]]) -> IoResult<(u64, u32)> {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let len = align_up(RECORD_HEADER_LEN + payload_len);
        self.ensure_room(len)?;
        let Some(active) = self.active.as_ref() else {
            return Err("no active segment".into());
        };
        let pos = self.buf.len();
        let offset = active.write_pos + pos as u64;
        let mut header = [0u8; RECORD_HEADER_LEN];
        format::write_record_header(
            &mut header,
            active.header.tag(),
            payload_len as u32,
            self.next_lsn,
            kind,
            flags,
        );
        // Append rather than zero-fill and copy: the payload is touched once.
        self.buf.extend_from_slice(&header);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.resize(pos + len, 0);
        self.next_lsn += 1;
        self.recs.push(pos);
        Ok((offset, len as u32))
    }

    /// Makes sure a record of `len` bytes fits in the active segment after the batch so far,
    /// flushing the batch and starting a new segment if not.
    fn ensure_room(&mut self, len: usize) -> IoResult<()> {
        let fits = self
            .active
            .as_ref()
            .is_some_and(|a| a.write_pos + (self.buf.len() + len) as u64 <= a.header.segment_bytes);
        if fits {
            return Ok(());
        }
        self.flush()?;
        if let Some(old) = self.active.take() {
            self.retained.push_back(Retained {
                seq: old.header.seq,
                name: old.name,
                file: old.file,
                max_index: old.max_index,
            });
        }
        self.activate()?;
        let fits = self
            .active
            .as_ref()
            .is_some_and(|a| a.write_pos + (self.buf.len() + len) as u64 <= a.header.segment_bytes);
        if !fits {
            return Err(format!(
                "a {len}-byte record does not fit in an empty segment"
            ));
        }
        Ok(())
    }

    /// Starts a new segment from a prepared file: its header and a state record open the
    /// segment's first batch.
    fn activate(&mut self) -> IoResult<()> {
        let (pool_name, file) = self.shared.pool.take().map_err(|e| e.to_string())?;
        let header = SegmentHeader {
            seq: self.next_seq,
            first_index: self.next_index.unwrap_or(0),
            salt: new_salt(),
            first_lsn: self.next_lsn,
            segment_bytes: self.shared.opts.segment_bytes,
        };
        self.next_seq += 1;
        let name = format::segment_name(header.seq, header.first_index);
        debug_assert!(self.buf.is_empty());
        self.buf.clear();
        self.buf.extend_from_slice(&header.encode());
        self.active = Some(Active {
            header,
            file,
            name,
            pending_rename: Some(pool_name),
            write_pos: 0,
            prev_crc: header.chain_start(),
            max_index: None,
        });
        self.add_state()
    }

    /// Seals the batch's records (batch fields, chain, checksums), writes it with one write
    /// and one fdatasync, and renames a newly started segment into place.
    fn flush(&mut self) -> IoResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            return Err("flush without an active segment".into());
        };
        let n = self.recs.len();
        let batch_first = self.next_lsn - n as u64;
        let mut prev = active.prev_crc;
        for &pos in &self.recs {
            let payload_len = format::get_u32(&self.buf, pos + 4).unwrap_or(0) as usize;
            let len = align_up(RECORD_HEADER_LEN + payload_len);
            let offset = active.write_pos + pos as u64;
            let seed = active.header.record_seed(offset);
            prev = format::seal_record(
                &mut self.buf[pos..pos + len],
                seed,
                batch_first,
                n as u32,
                prev,
            );
            // Validate each record right before it goes to disk.
            debug_assert!(
                format::decode_record_at(
                    &self.buf[pos..pos + len],
                    offset as usize,
                    &active.header
                )
                .is_ok()
            );
        }
        let store = &self.shared.store;
        let started = std::time::Instant::now();
        active
            .file
            .write_sync(&self.buf, active.write_pos)
            .map_err(|e| {
                let file = active.pending_rename.as_deref().unwrap_or(&active.name);
                format!("write+fdatasync {}: {e}", store.describe(file))
            })?;
        let write_sync = started.elapsed();
        crate::observe::batch(&crate::observe::BatchObservation {
            write_sync,
            bytes: self.buf.len() as u64,
            records: n as u64,
        });
        tracing::trace!(
            bytes = self.buf.len(),
            records = n,
            fsync_us = write_sync.as_micros() as u64,
            "wal batch durable"
        );
        active.prev_crc = prev;
        active.write_pos += self.buf.len() as u64;
        self.buf.clear();
        self.recs.clear();
        if let Some(tmp) = active.pending_rename.take() {
            store
                .rename(&tmp, &active.name)
                .and_then(|()| store.sync_dir())
                .map_err(|e| format!("rename {tmp} to {}: {e}", store.describe(&active.name)))?;
            tracing::debug!(segment = %active.name, "wal segment started");
            self.new_segments.push(SegRef {
                name: active.name.clone(),
                file: active.file.clone(),
                header: active.header,
            });
        }
        Ok(())
    }

    /// Tells readers where the batch's entries are and which segments exist.
    fn publish(&mut self) {
        let mut inner = self.shared.lock();
        for s in self.new_segments.drain(..) {
            inner.segments.insert(s.header.seq, s);
        }
        for &(op_seq, index, loc) in &self.locs {
            let Some(i) = index.checked_sub(inner.base) else {
                continue;
            };
            if let Some(slot) = inner.slots.get_mut(i as usize) {
                // Only if the slot still holds this append (it may have been truncated away
                // and replaced meanwhile).
                if slot.op_seq == op_seq {
                    slot.loc = Some(loc);
                }
            }
        }
        let max = self.shared.opts.hot_tail_bytes_max;
        inner.evict_hot(max);
    }

    /// Recycles the oldest segments whose entries are all purged, oldest first so the
    /// remaining segments stay one unbroken chain. The purge mark is already durable in the
    /// active segment, which is never recycled.
    fn recycle(&mut self) -> IoResult<()> {
        let Some(purged) = self.state.purged.map(|p| p.index) else {
            return Ok(());
        };
        while let Some(front) = self.retained.front() {
            if front.max_index.is_some_and(|m| m > purged.0) {
                break;
            }
            let Some(seg) = self.retained.pop_front() else {
                break;
            };
            self.shared.lock().segments.remove(&seg.seq);
            self.shared
                .pool
                .recycle(&seg.name, seg.file)
                .map_err(|e| e.to_string())?;
            tracing::debug!(segment = %seg.name, purged = %LogIndex(purged.0), "wal segment recycled");
        }
        Ok(())
    }
}

/// A salt that differs between uses of a segment file. Segment sequence numbers already differ
/// between uses; the salt adds randomness so that even a reused sequence number (a log
/// recreated in the same directory) cannot validate old bytes.
fn new_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
