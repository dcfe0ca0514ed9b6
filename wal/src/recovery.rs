//! Recovery at open: verify every record, tell a torn tail from corruption, rebuild the
//! logical log.
//!
//! Rules (docs/wal.md has the reasoning):
//! 1. Segments are read in sequence order and must form one chain: each segment's first record
//!    sequence number (lsn) continues the previous segment's last.
//! 2. Within a segment, records must verify (tag, checksum bound to salt, sequence and offset)
//!    and chain (lsn + 1, `prev_crc` = previous checksum, batch fields consistent).
//! 3. At the first record that does not, every 8-byte offset after it is checked for a record
//!    that verifies on its own. One from a *later batch* (its batch starts after the bad
//!    record's lsn) proves that durable data follows the damage: corruption. Otherwise, in the
//!    last segment, this is the torn tail of the last, never-acknowledged batch: it is cut and
//!    any leftover records of that batch are zeroed so they can never rejoin the chain.
//! 4. In any segment but the last, the next segment must continue the chain exactly.
//! 5. A segment's first batch (header + state record) is durable before the segment gets its
//!    name, so damage in it is corruption.

use std::sync::Arc;

use crate::error::{Result, WalError};
use crate::format::{
    self, BadRecord, Payload, RECORD_ALIGN, RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader,
    StateRecord,
};
use crate::pool::Prepared;
use crate::store::{SegmentFile, SegmentStore};
use crate::types::LogId;
use crate::wal::{INDEX_MAX, Loc, RecoveryMode, WalOptions, next_after_purge, next_after_truncate};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Records verified.
    pub records: u64,
    /// Entries in the log after recovery.
    pub entries: u64,
    /// Bytes read from segment files.
    pub bytes_scanned: u64,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
    /// What `RecoveryMode::Repair` cut, if anything (file, offset, reason).
    pub repaired: Option<(String, u64, String)>,
}

/// A cut torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub file: String,
    /// Where the log now ends.
    pub offset: u64,
    /// Bytes zeroed after it (leftovers of the torn batch).
    pub bytes_zeroed: u64,
}

pub(crate) struct RecoveredSegment {
    pub name: String,
    pub file: Arc<dyn SegmentFile>,
    pub header: SegmentHeader,
    pub max_index: Option<u64>,
    /// Offset after the last valid record.
    pub end_pos: u64,
    /// Checksum of the last valid record.
    pub last_crc: u32,
}

pub(crate) struct Recovered {
    pub segments: Vec<RecoveredSegment>,
    /// Index the next entry must have (see `Replay::next`).
    pub next: Option<u64>,
    /// Index of the first entry.
    pub base: u64,
    pub entries: Vec<(LogId, Loc)>,
    pub state: StateRecord,
    pub next_lsn: u64,
    pub next_seq: u64,
    pub pool: Vec<Prepared>,
    pub next_pool_n: u64,
    pub report: RecoveryReport,
}

/// The logical log rebuilt by replaying records in order, with the same rules as the live
/// log (`wal.rs`): an entry must have the index `next`, truncation sets `next` to the cut point,
/// a purge past the end moves it forward.
struct Replay {
    base: u64,
    entries: std::collections::VecDeque<(LogId, Loc)>,
    state: StateRecord,
    /// Index the next entry must have; `None` while anything goes (empty log, no purge).
    next: Option<u64>,
    /// True until the first entry when earlier segments were recycled: the entries between the
    /// first segment's anchored purge mark and its first entry lived in those segments, and a
    /// later purge mark must cover them (checked at the end).
    free_start: bool,
}

impl Replay {
    fn apply(&mut self, payload: Payload, loc: Loc) -> std::result::Result<(), String> {
        let index = match &payload {
            Payload::Entry { id, .. } => Some(id.index),
            Payload::Truncate { after } => *after,
            Payload::State(s) => s.purged.map(|p| p.index),
        };
        if index.is_some_and(|i| i.0 > INDEX_MAX) {
            return Err(format!("index {index:?} is out of range"));
        }
        match payload {
            Payload::Entry { id, .. } => {
                let free = std::mem::take(&mut self.free_start);
                if let Some(next) = self.next.filter(|_| !free)
                    && id.index.0 != next
                {
                    return Err(format!(
                        "entry {} does not follow the log (expected {next})",
                        id.index
                    ));
                }
                if self.entries.is_empty() {
                    self.base = id.index.0;
                }
                self.entries.push_back((id, loc));
                self.next = Some(id.index.0.saturating_add(1));
            }
            Payload::Truncate { after } => {
                let keep = match after {
                    None => 0,
                    Some(a) => a.0.saturating_add(1).saturating_sub(self.base),
                };
                while self.entries.len() as u64 > keep {
                    self.entries.pop_back();
                }
                self.next = next_after_truncate(self.next, after, self.state.purged);
            }
            Payload::State(s) => {
                if let Some(p) = s.purged {
                    while !self.entries.is_empty() && self.base <= p.index.0 {
                        self.entries.pop_front();
                        self.base += 1;
                    }
                    if self.entries.is_empty() {
                        self.base = p.index.0.saturating_add(1);
                    }
                    self.next = next_after_purge(self.next, p.index);
                }
                self.state = s;
            }
        }
        Ok(())
    }
}

/// How a segment's scan ended.
struct Scan {
    end_pos: u64,
    last_crc: u32,
    next_lsn: u64,
    records: u64,
    max_index: Option<u64>,
    /// Offset and reason of damage that makes the log corrupt at `end_pos`.
    corrupt: Option<(u64, String)>,
    /// End of the last self-valid leftover record after `end_pos` (for zeroing).
    leftovers_end: u64,
    /// Whether bytes of this segment's own records were found at `end_pos` (a torn record).
    torn: bool,
    /// Why the chain stopped there, if it stopped at such a record.
    stop: Option<String>,
    /// Whether the segment's first batch (header + anchoring state record) is whole.
    first_batch_whole: bool,
}

pub(crate) fn recover(store: &dyn SegmentStore, opts: &WalOptions) -> Result<Recovered> {
    let names = store
        .list()
        .map_err(|e| WalError::io("list", store.describe("."), e))?;
    let mut seg_names: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| format::parse_segment_name(n).map(|(seq, _)| (seq, n.clone())))
        .collect();
    seg_names.sort();
    let (pool, next_pool_n) = recover_pool(store, &names, opts.segment_bytes)?;

    let mut report = RecoveryReport::default();
    let mut replay = Replay {
        base: 0,
        entries: Default::default(),
        state: StateRecord::default(),
        next: None,
        free_start: seg_names.first().is_some_and(|(seq, _)| *seq > 1),
    };
    let mut segments: Vec<RecoveredSegment> = Vec::new();
    let mut next_lsn = 1u64;
    // Names are untrusted: a sequence number at the very top would leave no successor.
    if let Some((_, name)) = seg_names.iter().find(|(seq, _)| *seq == u64::MAX) {
        return Err(WalError::corrupted(
            &store.describe(name),
            0,
            "segment sequence number out of range",
        ));
    }
    let mut next_seq = seg_names.last().map_or(1, |(s, _)| s + 1);
    let mut buf = Vec::new();
    let count = seg_names.len();
    let mut i = 0;
    while i < count {
        let (seq, name) = &seg_names[i];
        let is_last = i + 1 == count;
        let path = store.describe(name);
        let file = store
            .open(name)
            .map_err(|e| WalError::io("open", &path, e))?;
        let checked = read_segment(file.as_ref(), &path, *seq, &mut buf).and_then(|header| {
            if let Some(prev) = segments.last()
                && header.first_lsn != next_lsn
            {
                return Err(WalError::corrupted(
                    &path,
                    0,
                    format!(
                        "segment starts at record {} but {} ended before record {next_lsn}",
                        header.first_lsn, prev.name
                    ),
                ));
            }
            Ok(header)
        });
        let header = match checked {
            Ok(h) => h,
            Err(e) => {
                if opts.recovery == RecoveryMode::Repair {
                    let reason = e.to_string();
                    move_aside(store, &seg_names[i..])?;
                    report.repaired = Some((path, 0, reason));
                    break;
                }
                return Err(e);
            }
        };
        report.bytes_scanned += buf.len() as u64;
        let scan = scan_segment(&buf, &header, &mut replay, *seq)
            .map_err(|(off, reason)| WalError::corrupted(&path, off, reason))?;
        report.records += scan.records;
        // Rule 4: in any segment but the last, a bad record is damage (the next segment proves
        // this one's batches were durable).
        let damage = scan.corrupt.clone().or_else(|| {
            (!is_last && scan.torn).then(|| {
                let stop = scan.stop.as_deref().unwrap_or("bad record");
                (
                    scan.end_pos,
                    format!("{stop}; the log continues in a later segment"),
                )
            })
        });
        let recovered = RecoveredSegment {
            name: name.clone(),
            file: file.clone(),
            header,
            max_index: scan.max_index,
            end_pos: scan.end_pos,
            last_crc: scan.last_crc,
        };
        next_lsn = scan.next_lsn;
        if let Some((off, reason)) = damage {
            if opts.recovery != RecoveryMode::Repair {
                return Err(WalError::corrupted(&path, off, reason));
            }
            if !scan.first_batch_whole {
                // Nothing of this segment can be kept (its anchoring first batch is damaged):
                // move it and everything after it aside and recover what is left.
                move_aside(store, &seg_names[i..])?;
                let mut rec = recover(store, opts)?;
                rec.report.repaired = Some((path, off, reason));
                return Ok(rec);
            }
            // Cut here: zero the rest of this segment, move later segments aside.
            zero_range(file.as_ref(), &path, scan.end_pos, buf.len() as u64)?;
            move_aside(store, &seg_names[i + 1..])?;
            report.repaired = Some((path, off, reason));
            segments.push(recovered);
            break;
        }
        if is_last && (scan.torn || scan.leftovers_end > scan.end_pos) {
            // Zero the torn record's header too, so the log's end is a clean one even if this
            // segment fills up and stops being the last.
            let torn_end = if scan.torn {
                scan.end_pos + format::RECORD_HEADER_LEN as u64
            } else {
                scan.end_pos
            };
            let zero_end = scan.leftovers_end.max(torn_end).min(buf.len() as u64);
            zero_range(file.as_ref(), &path, scan.end_pos, zero_end)?;
            report.torn_tail = Some(TornTail {
                file: path.clone(),
                offset: scan.end_pos,
                bytes_zeroed: zero_end - scan.end_pos,
            });
            tracing::warn!(file = %path, offset = scan.end_pos, "wal: cut a torn tail");
        }
        segments.push(recovered);
        i += 1;
    }
    // Entries a purge mark covers are not part of the log, wherever they were found.
    if let Some(p) = replay.state.purged {
        while !replay.entries.is_empty() && replay.base <= p.index.0 {
            replay.entries.pop_front();
            replay.base += 1;
        }
        if replay.entries.is_empty() {
            replay.base = p.index.0.saturating_add(1);
        }
    }
    if let Some(first) = segments.first() {
        check_no_missing_prefix(first, &replay, store)?;
    }
    if segments.is_empty() {
        next_seq = next_seq.max(1);
    }
    report.segments = segments.len();
    report.entries = replay.entries.len() as u64;
    Ok(Recovered {
        next: replay.next,
        segments,
        base: replay.base,
        entries: replay.entries.into_iter().collect(),
        state: replay.state,
        next_lsn,
        next_seq,
        pool,
        next_pool_n,
        report,
    })
}

/// Segments before the first one were recycled only after a purge covered everything they
/// held, so the first segment's `first_index` (the index the log would continue at when it was
/// started; 0 when any index would have done) must be at most the final purge mark + 1.
/// Otherwise entries in between are gone: earlier segments are missing.
fn check_no_missing_prefix(
    first: &RecoveredSegment,
    replay: &Replay,
    store: &dyn SegmentStore,
) -> Result<()> {
    let covered = replay
        .state
        .purged
        .map_or(0, |p| p.index.0.saturating_add(1));
    if first.header.seq <= 1 || first.header.first_index <= covered {
        return Ok(());
    }
    Err(WalError::corrupted(
        &store.describe(&first.name),
        0,
        format!(
            "the log continued at entry {} when this segment was started, but entries before \
             it are neither here nor purged: earlier segments are missing",
            first.header.first_index
        ),
    ))
}

/// Reads a whole segment into `buf` and verifies its header.
fn read_segment(
    file: &dyn SegmentFile,
    path: &str,
    seq: u64,
    buf: &mut Vec<u8>,
) -> Result<SegmentHeader> {
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len < SEGMENT_HEADER_LEN as u64 || len > (1 << 30) {
        return Err(WalError::corrupted(
            path,
            0,
            format!("segment file is {len} bytes"),
        ));
    }
    // Every byte is overwritten by the read: resize without clearing, so a reused buffer of
    // the same size is not zero-filled again.
    buf.resize(len as usize, 0);
    file.read_exact_at(buf, 0)
        .map_err(|e| WalError::io("read", path, e))?;
    let header = SegmentHeader::decode(buf).map_err(|r| WalError::corrupted(path, 0, r))?;
    if header.seq != seq {
        return Err(WalError::corrupted(
            path,
            0,
            format!("header says segment {} but the name says {seq}", header.seq),
        ));
    }
    if header.segment_bytes != len {
        return Err(WalError::corrupted(
            path,
            0,
            format!(
                "file is {len} bytes but the header says {}",
                header.segment_bytes
            ),
        ));
    }
    Ok(header)
}

/// Verifies and replays one segment's records. Errors are (offset, reason) of corruption that
/// even `Repair` cannot cut around (a verified record whose content breaks the log's rules).
fn scan_segment(
    buf: &[u8],
    header: &SegmentHeader,
    replay: &mut Replay,
    seq: u64,
) -> std::result::Result<Scan, (u64, String)> {
    let mut pos = SEGMENT_HEADER_LEN;
    let mut expected = header.first_lsn;
    let mut prev_crc = header.chain_start();
    let mut last: Option<RecordHeader> = None;
    let mut records = 0u64;
    let mut max_index: Option<u64> = None;
    let mut stop: Option<String> = None;
    let mut torn = false;
    loop {
        let rec = match format::decode_record(buf, pos, header) {
            Ok(r) => r,
            Err(BadRecord::NotOurs) => break,
            Err(BadRecord::Invalid(reason)) => {
                torn = true;
                stop = Some(reason);
                break;
            }
        };
        let h = rec.header;
        let continues_batch =
            last.is_some_and(|l| l.lsn < l.batch_last() && l.batch_first == h.batch_first);
        let chain_ok = h.lsn == expected
            && h.prev_crc == prev_crc
            && (h.batch_first == h.lsn || continues_batch);
        if !chain_ok {
            torn = true;
            stop = Some(format!(
                "record {} does not continue the chain (expected record {expected})",
                h.lsn
            ));
            break;
        }
        let payload = format::decode_payload_meta(&rec)
            .map_err(|r| (pos as u64, format!("verified record does not decode: {r}")))?;
        let loc = Loc {
            seg: seq,
            offset: pos as u64,
            len: h.total_len() as u32,
        };
        if let Payload::Entry { id, .. } = &payload {
            max_index = Some(max_index.map_or(id.index.0, |m| m.max(id.index.0)));
        }
        replay.apply(payload, loc).map_err(|r| (pos as u64, r))?;
        records += 1;
        expected += 1;
        prev_crc = h.crc;
        last = Some(h);
        pos += h.total_len();
    }
    let end_pos = pos as u64;
    let mut corrupt = None;
    // Rule 5: the segment's first batch is durable before the segment is named.
    let first_batch_whole =
        last.is_some_and(|l| l.batch_first > header.first_lsn || l.lsn == l.batch_last());
    if !first_batch_whole {
        corrupt = Some((
            end_pos,
            stop.clone()
                .unwrap_or_else(|| "the segment's first batch is incomplete".to_string()),
        ));
    }
    // Rule 3: look for records at and after the stop point.
    let mut leftovers_end = end_pos;
    let mut p = pos;
    while p + format::RECORD_HEADER_LEN <= buf.len() {
        if let Ok(r) = format::decode_record(buf, p, header) {
            let end = (p + r.header.total_len()) as u64;
            if r.header.batch_first > expected {
                if corrupt.is_none() {
                    corrupt = Some((
                        end_pos,
                        format!(
                            "{}; a valid later record follows at offset {p}",
                            stop.clone().unwrap_or_else(|| "unreadable record".into())
                        ),
                    ));
                }
            } else {
                leftovers_end = leftovers_end.max(end);
            }
        }
        p += RECORD_ALIGN;
    }
    Ok(Scan {
        end_pos,
        last_crc: prev_crc,
        next_lsn: expected,
        records,
        max_index,
        corrupt,
        leftovers_end,
        torn,
        stop,
        first_batch_whole,
    })
}

fn zero_range(file: &dyn SegmentFile, path: &str, from: u64, to: u64) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    let zeros = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| WalError::io("zero", path, e))?;
        at += n as u64;
    }
    file.sync_data()
        .map_err(|e| WalError::io("fdatasync", path, e))
}

/// Renames segments to `*.broken` (kept for forensics) and syncs the directory.
fn move_aside(store: &dyn SegmentStore, segs: &[(u64, String)]) -> Result<()> {
    for (_, name) in segs {
        let to = format!("{name}.broken");
        store
            .rename(name, &to)
            .map_err(|e| WalError::io("rename", store.describe(name), e))?;
        tracing::warn!(file = %store.describe(name), "wal repair: segment moved aside");
    }
    if !segs.is_empty() {
        store
            .sync_dir()
            .map_err(|e| WalError::io("fsync dir", store.describe("."), e))?;
    }
    Ok(())
}

/// Keeps prepared files of the right size; removes others (a crash during preparation).
fn recover_pool(
    store: &dyn SegmentStore,
    names: &[String],
    segment_bytes: u64,
) -> Result<(Vec<Prepared>, u64)> {
    let mut pool = Vec::new();
    let mut next = 0u64;
    let mut removed = false;
    for name in names {
        let Some(n) = format::parse_pool_name(name) else {
            continue;
        };
        next = next.max(n.saturating_add(1));
        let path = store.describe(name);
        let file = store
            .open(name)
            .map_err(|e| WalError::io("open", &path, e))?;
        let len = file.len().map_err(|e| WalError::io("stat", &path, e))?;
        if len == segment_bytes {
            pool.push((name.clone(), file));
        } else {
            store
                .remove(name)
                .map_err(|e| WalError::io("remove", &path, e))?;
            removed = true;
        }
    }
    if removed {
        store
            .sync_dir()
            .map_err(|e| WalError::io("fsync dir", store.describe("."), e))?;
    }
    Ok((pool, next))
}
