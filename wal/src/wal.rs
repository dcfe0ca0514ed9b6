//! The public handle: logical log state, the append/truncate/purge/vote API, reads.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::error::{Result, WalError};
use crate::format::{
    self, ENTRY_PREFIX_LEN, Payload, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, STATE_PAYLOAD_LEN,
    SegmentHeader, align_up,
};
use crate::pipeline::{Pending, Refused, StdPipeline};
use crate::pool::Pool;
use crate::recovery::{self, RecoveryReport};
use crate::store::{BackendChoice, FsStore, SegmentFile, SegmentStore};
use crate::types::{BackendKind, Entry, LogId, LogIndex, LogState, NodeId, Term, Vote};
use crate::writer::Writer;

/// Called once with the outcome of a write operation: `Ok` only after it is durable.
pub type Callback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// What to do when recovery finds corruption before the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Truncate a torn tail; refuse to open on any other damage.
    #[default]
    Strict,
    /// Also cut the log at the first damaged record: later records are dropped (moved aside
    /// as `*.broken` files where they are whole segments). Acknowledged entries after the damage
    /// are lost, so this is for an operator's explicit choice only.
    Repair,
}

/// Tuning and policy. `Default` gives production settings.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size of every segment file (multiple of 4096, 64 KiB ..= 1 GiB). Default 64 MiB.
    pub segment_bytes: u64,
    /// Compress entry payloads of at least this many bytes with zstd (level 1). Default off.
    pub compress_min_bytes: Option<usize>,
    /// I/O backend for [`Wal::open`]. Default: io_uring if available, else portable; the
    /// `STRATA_WAL_BACKEND` environment variable (`io_uring`/`portable`) overrides `Auto`.
    pub backend: BackendChoice,
    /// Policy for damage found at open.
    pub recovery: RecoveryMode,
    /// Most payload bytes of recent entries kept in memory for reads. Default 64 MiB.
    pub hot_tail_bytes_max: usize,
    /// Most bytes the flusher takes into one write. Default 8 MiB.
    pub batch_bytes_max: usize,
    /// Prepared (zero-filled or recycled) segments kept ready. Default 1.
    pub prepared_segments: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            compress_min_bytes: None,
            backend: BackendChoice::Auto,
            recovery: RecoveryMode::Strict,
            hot_tail_bytes_max: 64 << 20,
            batch_bytes_max: 8 << 20,
            prepared_segments: 1,
        }
    }
}

impl WalOptions {
    fn validate(&self) -> Result<()> {
        let s = self.segment_bytes;
        if !s.is_multiple_of(4096) || !((64 << 10)..=(1 << 30)).contains(&s) {
            return Err(WalError::InvalidArgument(format!(
                "segment_bytes {s} must be a multiple of 4096 between 64 KiB and 1 GiB"
            )));
        }
        Ok(())
    }

    /// The largest entry payload a segment takes.
    pub fn max_payload_bytes(&self) -> u64 {
        let fixed = SEGMENT_HEADER_LEN
            + align_up(RECORD_HEADER_LEN + STATE_PAYLOAD_LEN)
            + RECORD_HEADER_LEN
            + ENTRY_PREFIX_LEN
            + 8
            + format::RECORD_ALIGN;
        self.segment_bytes.saturating_sub(fixed as u64)
    }
}

/// A write operation, in the order the log must apply it.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Entries continuing the log.
    Append(Vec<Entry>),
    /// Keep entries up to and including this index (`None`: remove all entries).
    TruncateAfter(Option<LogIndex>),
    /// Discard every entry up to and including this id's index, remembering the id.
    PurgeThrough(LogId),
    /// Replace the vote.
    SaveVote(Vote),
}

/// The largest index an entry may have: one below `u64::MAX`, so "the index after" always
/// exists.
pub(crate) const INDEX_MAX: u64 = u64::MAX - 1;

/// The next-index rule after `truncate_after(after)`: the log continues at the cut, unless the
/// cut lies past its end; truncating everything continues after the purge mark (or anywhere).
/// Shared by the live log and recovery's replay so they can never disagree.
pub(crate) fn next_after_truncate(
    next: Option<u64>,
    after: Option<LogIndex>,
    purged: Option<LogId>,
) -> Option<u64> {
    match after {
        Some(a) => next.map(|n| n.min(a.0.saturating_add(1))),
        None => purged.map(|p| p.index.0.saturating_add(1)),
    }
}

/// The next-index rule after a purge through `through`: a purge past the end moves it forward.
pub(crate) fn next_after_purge(next: Option<u64>, through: LogIndex) -> Option<u64> {
    let after = through.0.saturating_add(1);
    Some(next.map_or(after, |n| n.max(after)))
}

/// Where a durable entry's record lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    pub seg: u64,
    pub offset: u64,
    pub len: u32,
}

pub(crate) struct Slot {
    pub term: Term,
    pub leader: NodeId,
    /// Which operation appended this entry: a completion applies only to the same append.
    pub op_seq: u64,
    pub loc: Option<Loc>,
    pub hot: Option<Bytes>,
}

/// A segment readers can read from.
#[derive(Clone)]
pub(crate) struct SegRef {
    pub name: String,
    pub file: Arc<dyn SegmentFile>,
    pub header: SegmentHeader,
}

/// The logical log: what callers see, including writes not yet durable.
pub(crate) struct Inner {
    /// Index of `slots[0]`.
    pub base: u64,
    /// Index the next appended entry must have; `None` while any index goes (nothing appended
    /// or purged yet, or everything truncated). Recovery's replay follows the same rules.
    pub next: Option<u64>,
    pub slots: VecDeque<Slot>,
    pub last_purged: Option<LogId>,
    pub vote: Option<Vote>,
    pub next_op_seq: u64,
    pub hot_bytes: usize,
    /// `slots[..hot_front]` hold no payload in memory.
    pub hot_front: usize,
    pub segments: BTreeMap<u64, SegRef>,
}

impl Inner {
    fn expected_next(&self) -> Option<u64> {
        self.next
    }

    fn last_id(&self) -> Option<LogId> {
        let s = self.slots.back()?;
        Some(LogId {
            term: s.term,
            leader: s.leader,
            index: LogIndex(self.base + self.slots.len() as u64 - 1),
        })
    }

    fn pop_back(&mut self) {
        if let Some(s) = self.slots.pop_back()
            && let Some(h) = s.hot
        {
            self.hot_bytes -= h.len();
        }
        self.hot_front = self.hot_front.min(self.slots.len());
    }

    fn pop_front(&mut self) {
        if let Some(s) = self.slots.pop_front() {
            if let Some(h) = s.hot {
                self.hot_bytes -= h.len();
            }
            self.base += 1;
        }
        self.hot_front = self.hot_front.saturating_sub(1);
    }

    /// Drops in-memory payloads of the oldest durable entries while over budget.
    pub fn evict_hot(&mut self, max: usize) {
        while self.hot_bytes > max && self.hot_front < self.slots.len() {
            let slot = &mut self.slots[self.hot_front];
            if slot.loc.is_none() {
                break;
            }
            if let Some(h) = slot.hot.take() {
                self.hot_bytes -= h.len();
            }
            self.hot_front += 1;
        }
    }
}

pub(crate) struct PendingOp {
    pub op: WriteOp,
    pub op_seq: u64,
    pub bytes: usize,
    pub done: Option<Callback>,
}

impl Pending for PendingOp {
    fn bytes(&self) -> usize {
        self.bytes
    }

    fn complete(self, result: std::result::Result<(), Refused>) {
        if let Some(cb) = self.done {
            cb(result.map_err(refused_error));
        }
    }
}

fn refused_error(r: Refused) -> WalError {
    match r {
        Refused::Closed => WalError::Closed,
        Refused::Poisoned(cause) => WalError::Poisoned { cause },
    }
}

pub(crate) struct Shared {
    pub store: Arc<dyn SegmentStore>,
    pub opts: WalOptions,
    pub inner: Mutex<Inner>,
    pub pipeline: StdPipeline<PendingOp>,
    pub pool: Pool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write-ahead log. Dropping it flushes what is queued and stops its threads.
pub struct Wal {
    shared: Arc<Shared>,
    /// The flusher's side. Only whoever holds the pipeline's current batch locks it: the
    /// flusher thread, or a caller flushing on its own thread.
    writer: Arc<Mutex<Writer>>,
    flusher: Option<JoinHandle<()>>,
    preparer: Option<JoinHandle<()>>,
    report: RecoveryReport,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, recovering what is there.
    pub fn open(dir: impl AsRef<Path>, mut opts: WalOptions) -> Result<Wal> {
        let dir = dir.as_ref();
        if opts.backend == BackendChoice::Auto
            && let Some(choice) = BackendChoice::from_env()
        {
            opts.backend = choice;
        }
        let store = FsStore::open(dir, opts.backend)
            .map_err(|e| WalError::io("open", dir.display().to_string(), e))?;
        Wal::open_with_store(Arc::new(store), opts)
    }

    /// Opens the log kept in `store` (any backend, including the test store).
    pub fn open_with_store(store: Arc<dyn SegmentStore>, opts: WalOptions) -> Result<Wal> {
        opts.validate()?;
        let rec = recovery::recover(store.as_ref(), &opts)?;
        let report = rec.report.clone();
        let mut segments = BTreeMap::new();
        for s in &rec.segments {
            segments.insert(
                s.header.seq,
                SegRef {
                    name: s.name.clone(),
                    file: s.file.clone(),
                    header: s.header,
                },
            );
        }
        let slots = rec
            .entries
            .iter()
            .map(|(id, loc)| Slot {
                term: id.term,
                leader: id.leader,
                op_seq: 0,
                loc: Some(*loc),
                hot: None,
            })
            .collect::<VecDeque<_>>();
        let inner = Inner {
            base: rec.base,
            next: rec.next,
            hot_front: slots.len(),
            slots,
            last_purged: rec.state.purged,
            vote: rec.state.vote,
            next_op_seq: 1,
            hot_bytes: 0,
            segments,
        };
        let pool = Pool::new(
            store.clone(),
            opts.segment_bytes,
            opts.prepared_segments,
            rec.pool.clone(),
            rec.next_pool_n,
        );
        let shared = Arc::new(Shared {
            store: store.clone(),
            pipeline: StdPipeline::new(opts.batch_bytes_max),
            opts,
            inner: Mutex::new(inner),
            pool,
        });
        let writer = Arc::new(Mutex::new(Writer::new(shared.clone(), &rec)));
        tracing::info!(
            backend = %store.backend(),
            segments = report.segments,
            entries = report.entries,
            torn_tail = report.torn_tail.is_some(),
            "wal opened"
        );
        let flusher = {
            let shared = shared.clone();
            let writer = writer.clone();
            std::thread::Builder::new()
                .name("wal-flusher".into())
                .spawn(move || {
                    shared
                        .pipeline
                        .run_flusher(|batch| lock_writer(&writer).process(batch));
                })
                .map_err(|e| WalError::io("spawn", "wal-flusher", e))?
        };
        let preparer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("wal-preparer".into())
                .spawn(move || shared.pool.run_preparer())
                .map_err(|e| WalError::io("spawn", "wal-preparer", e))?
        };
        Ok(Wal {
            shared,
            writer,
            flusher: Some(flusher),
            preparer: Some(preparer),
            report,
        })
    }

    /// What recovery found and did at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The I/O backend in use.
    pub fn backend(&self) -> BackendKind {
        self.shared.store.backend()
    }

    fn check_poison(&self) -> Result<()> {
        match self.shared.pipeline.poisoned() {
            Some(cause) => Err(WalError::Poisoned { cause }),
            None => Ok(()),
        }
    }

    /// Queues `op`; `done` is called once it is durable (or failed). Entries appended are
    /// readable as soon as this returns. Operations take effect, and complete, in call order.
    pub fn submit(&self, op: WriteOp, done: Callback) -> Result<()> {
        self.enqueue(op, done, false)
    }

    /// [`submit`](Self::submit), for a caller that is going to wait for `done` anyway: if no
    /// batch is being made durable, this thread makes the queue durable itself (one write and
    /// one fdatasync, as the flusher would) and `done` has run when this returns. Otherwise the
    /// op joins the next batch, as with `submit`. A lone writer so pays no thread hand-off to
    /// the flusher and back around its fdatasync; under load, batches form as before.
    pub fn submit_here(&self, op: WriteOp, done: Callback) -> Result<()> {
        self.enqueue(op, done, true)?;
        if let Some(batch) = self.shared.pipeline.try_take() {
            let result = lock_writer(&self.writer).process(&batch);
            self.shared.pipeline.finish(batch, result);
        }
        Ok(())
    }

    fn enqueue(&self, op: WriteOp, done: Callback, quiet: bool) -> Result<()> {
        self.check_poison()?;
        let mut inner = self.shared.lock();
        let undo = self.apply_logical(&mut inner, &op)?;
        let op_seq = inner.next_op_seq;
        inner.next_op_seq += 1;
        if let WriteOp::Append(entries) = &op {
            let n = entries.len();
            let len = inner.slots.len();
            for slot in inner.slots.range_mut(len - n..) {
                slot.op_seq = op_seq;
            }
        }
        let bytes = op_bytes(&op);
        let pending = PendingOp {
            op,
            op_seq,
            bytes,
            done: Some(done),
        };
        let pushed = if quiet {
            self.shared.pipeline.push_quiet(pending)
        } else {
            self.shared.pipeline.push(pending)
        };
        match pushed {
            Ok(()) => Ok(()),
            Err((_, refused)) => {
                undo.revert(&mut inner);
                Err(refused_error(refused))
            }
        }
    }

    /// [`submit_here`](Self::submit_here), waiting until the operation is durable.
    pub fn submit_wait(&self, op: WriteOp) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit_here(
            op,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().map_err(|_| WalError::Closed)?
    }

    /// Appends entries and waits until they are durable.
    pub fn append(&self, entries: Vec<Entry>) -> Result<()> {
        self.submit_wait(WriteOp::Append(entries))
    }

    /// Removes every entry after `index` (all entries for `None`), durably and in order with
    /// other writes.
    pub fn truncate_after(&self, index: Option<LogIndex>) -> Result<()> {
        self.submit_wait(WriteOp::TruncateAfter(index))
    }

    /// Discards entries up to and including `id.index` and records `id` as the last purged id.
    /// `id.index` may lie past the last entry (after a snapshot was installed): the log is then
    /// empty and continues at `id.index + 1`.
    pub fn purge_through(&self, id: LogId) -> Result<()> {
        self.submit_wait(WriteOp::PurgeThrough(id))
    }

    /// Discards every entry before `index` (the entry at `index` is kept). The entry at
    /// `index - 1` must be in the log or already purged.
    pub fn purge_before(&self, index: LogIndex) -> Result<()> {
        let id = {
            let inner = self.shared.lock();
            let Some(prev) = index.0.checked_sub(1) else {
                return Ok(());
            };
            if inner.last_purged.is_some_and(|p| p.index.0 >= prev) {
                return Ok(());
            }
            let slot = prev
                .checked_sub(inner.base)
                .and_then(|i| inner.slots.get(i as usize))
                .ok_or(WalError::OutOfRange {
                    index: LogIndex(prev),
                })?;
            LogId {
                term: slot.term,
                leader: slot.leader,
                index: LogIndex(prev),
            }
        };
        self.purge_through(id)
    }

    /// Replaces the vote and waits until it is durable.
    pub fn save_vote(&self, vote: Vote) -> Result<()> {
        self.submit_wait(WriteOp::SaveVote(vote))
    }

    /// The last saved vote.
    pub fn vote(&self) -> Result<Option<Vote>> {
        self.check_poison()?;
        Ok(self.shared.lock().vote)
    }

    /// First and last ids, and the last purged id.
    pub fn log_state(&self) -> Result<LogState> {
        self.check_poison()?;
        let inner = self.shared.lock();
        Ok(LogState {
            last_purged: inner.last_purged,
            last: inner.last_id().or(inner.last_purged),
            first_index: (!inner.slots.is_empty()).then_some(LogIndex(inner.base)),
        })
    }

    /// Index of the first entry held.
    pub fn first_index(&self) -> Result<Option<LogIndex>> {
        Ok(self.log_state()?.first_index)
    }

    /// Index of the last entry held.
    pub fn last_index(&self) -> Result<Option<LogIndex>> {
        self.check_poison()?;
        Ok(self.shared.lock().last_id().map(|id| id.index))
    }

    /// Entries with `start <= index < end`. Recent entries come from memory, older ones from
    /// the segment files, verified again as they are read.
    pub fn entries(&self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>> {
        self.check_poison()?;
        if end.0 <= start.0 {
            return Ok(Vec::new());
        }
        let mut out: Vec<Option<Entry>> = Vec::new();
        let mut cold: Vec<(usize, LogId, Loc)> = Vec::new();
        let mut segs: BTreeMap<u64, SegRef> = BTreeMap::new();
        {
            let inner = self.shared.lock();
            let first = inner.base;
            let next = first + inner.slots.len() as u64;
            if start.0 < first
                || inner.slots.is_empty() && inner.last_purged.is_some_and(|p| start.0 <= p.index.0)
            {
                return Err(WalError::Purged {
                    index: start,
                    first: LogIndex(first),
                });
            }
            if end.0 > next {
                return Err(WalError::OutOfRange {
                    index: LogIndex(next.max(start.0)),
                });
            }
            // Only now is the range known to be small enough to allocate for.
            out.reserve_exact((end.0 - start.0) as usize);
            for index in start.0..end.0 {
                let slot = &inner.slots[(index - first) as usize];
                let id = LogId {
                    term: slot.term,
                    leader: slot.leader,
                    index: LogIndex(index),
                };
                match (&slot.hot, slot.loc) {
                    (Some(p), _) => out.push(Some(Entry {
                        id,
                        payload: p.clone(),
                    })),
                    (None, Some(loc)) => {
                        if let Some(s) = inner.segments.get(&loc.seg) {
                            segs.entry(loc.seg).or_insert_with(|| s.clone());
                        }
                        cold.push((out.len(), id, loc));
                        out.push(None);
                    }
                    (None, None) => {
                        return Err(WalError::InvalidArgument(format!(
                            "entry {index} has neither a payload in memory nor a location"
                        )));
                    }
                }
            }
        }
        self.read_cold(&mut out, &cold, &segs)?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Reads entries from segment files, one read per run of adjacent records.
    fn read_cold(
        &self,
        out: &mut [Option<Entry>],
        cold: &[(usize, LogId, Loc)],
        segs: &BTreeMap<u64, SegRef>,
    ) -> Result<()> {
        let max_payload = self.shared.opts.max_payload_bytes();
        let mut i = 0;
        let mut buf = Vec::new();
        while i < cold.len() {
            let (_, _, first) = cold[i];
            let mut j = i + 1;
            while j < cold.len()
                && cold[j].2.seg == first.seg
                && cold[j].2.offset == cold[j - 1].2.offset + u64::from(cold[j - 1].2.len)
                && cold[j].2.offset + u64::from(cold[j].2.len) - first.offset <= 4 << 20
            {
                j += 1;
            }
            let last = cold[j - 1].2;
            let span = (last.offset + u64::from(last.len) - first.offset) as usize;
            let seg = segs
                .get(&first.seg)
                .ok_or_else(|| self.purged_race(cold[i].1))?;
            // Records are decoded relative to the segment start, so read into a buffer that
            // places `first.offset` at its own offset.
            buf.clear();
            buf.resize(span, 0);
            seg.file
                .read_exact_at(&mut buf, first.offset)
                .map_err(|e| WalError::io("read", self.shared.store.describe(&seg.name), e))?;
            for &(slot, id, loc) in &cold[i..j] {
                let rel = (loc.offset - first.offset) as usize;
                let entry = decode_entry_at(
                    &buf[rel..rel + loc.len as usize],
                    loc,
                    &seg.header,
                    max_payload,
                )
                .map_err(|reason| {
                    if self.is_purged(id.index) {
                        self.purged_race(id)
                    } else {
                        WalError::corrupted(
                            &self.shared.store.describe(&seg.name),
                            loc.offset,
                            reason,
                        )
                    }
                })?;
                if entry.id != id {
                    return Err(WalError::corrupted(
                        &self.shared.store.describe(&seg.name),
                        loc.offset,
                        format!("expected entry {:?}, found {:?}", id, entry.id),
                    ));
                }
                out[slot] = Some(entry);
            }
            i = j;
        }
        Ok(())
    }

    fn is_purged(&self, index: LogIndex) -> bool {
        self.shared.lock().base > index.0
    }

    fn purged_race(&self, id: LogId) -> WalError {
        let inner = self.shared.lock();
        WalError::Purged {
            index: id.index,
            first: LogIndex(inner.base),
        }
    }

    /// Applies `op` to the logical log (what readers see at once) after validating it, and
    /// returns how to undo that if the op cannot be queued.
    fn apply_logical(&self, inner: &mut Inner, op: &WriteOp) -> Result<Undo> {
        match op {
            WriteOp::Append(entries) => {
                let prev_next = inner.next;
                let max = self.shared.opts.max_payload_bytes();
                let mut expected = inner.expected_next();
                for e in entries {
                    if e.id.index.0 > INDEX_MAX {
                        return Err(WalError::InvalidArgument(format!(
                            "entry index {} is out of range",
                            e.id.index
                        )));
                    }
                    if let Some(x) = expected
                        && e.id.index.0 != x
                    {
                        return Err(WalError::NonContiguous {
                            expected: LogIndex(x),
                            got: e.id.index,
                        });
                    }
                    if e.payload.len() as u64 > max {
                        return Err(WalError::EntryTooLarge {
                            size: e.payload.len() as u64,
                            max,
                        });
                    }
                    expected = Some(e.id.index.0 + 1);
                }
                if inner.slots.is_empty()
                    && let Some(first) = entries.first()
                {
                    inner.base = first.id.index.0;
                    inner.hot_front = 0;
                }
                if let Some(last) = entries.last() {
                    inner.next = Some(last.id.index.0 + 1);
                }
                for e in entries {
                    inner.hot_bytes += e.payload.len();
                    inner.slots.push_back(Slot {
                        term: e.id.term,
                        leader: e.id.leader,
                        op_seq: 0,
                        loc: None,
                        hot: Some(e.payload.clone()),
                    });
                }
                Ok(Undo::Append(entries.len(), prev_next))
            }
            WriteOp::TruncateAfter(after) => {
                if after.is_some_and(|a| a.0 > INDEX_MAX) {
                    return Err(WalError::InvalidArgument(format!(
                        "truncate index {after:?} is out of range"
                    )));
                }
                if let Some(p) = inner.last_purged.map(|p| p.index.0)
                    && after.is_none_or(|a| a.0 < p)
                {
                    return Err(WalError::InvalidArgument(format!(
                        "cannot truncate after {after:?}: entries up to {p} are purged"
                    )));
                }
                let keep = match after {
                    None => 0,
                    Some(a) => (a.0 + 1)
                        .saturating_sub(inner.base)
                        .min(inner.slots.len() as u64),
                };
                while inner.slots.len() as u64 > keep {
                    inner.pop_back();
                }
                inner.next = next_after_truncate(inner.next, *after, inner.last_purged);
                Ok(Undo::Nothing)
            }
            WriteOp::PurgeThrough(id) => {
                if id.index.0 > INDEX_MAX {
                    return Err(WalError::InvalidArgument(format!(
                        "purge index {} is out of range",
                        id.index
                    )));
                }
                if let Some(p) = inner.last_purged
                    && id.index.0 < p.index.0
                {
                    return Err(WalError::InvalidArgument(format!(
                        "purge through {} is behind the last purge ({})",
                        id.index, p.index
                    )));
                }
                while !inner.slots.is_empty() && inner.base <= id.index.0 {
                    inner.pop_front();
                }
                if inner.slots.is_empty() {
                    inner.base = id.index.0 + 1;
                    inner.hot_front = 0;
                }
                inner.last_purged = Some(*id);
                inner.next = next_after_purge(inner.next, id.index);
                Ok(Undo::Nothing)
            }
            WriteOp::SaveVote(v) => {
                inner.vote = Some(*v);
                Ok(Undo::Nothing)
            }
        }
    }

    /// Stops accepting work, flushes what is queued and joins the threads.
    pub fn close(mut self) -> Result<()> {
        self.shutdown();
        self.check_poison()
    }

    fn shutdown(&mut self) {
        self.shared.pipeline.close();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        self.shared.pool.close();
        if let Some(h) = self.preparer.take() {
            let _ = h.join();
        }
    }
}

fn lock_writer(w: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reverting a logical change when the op could not be queued (the pipeline was poisoned or
/// closed in between). Only appends need it: the others are refused before any caller can
/// observe them, because the caller gets an error back.
enum Undo {
    Append(usize, Option<u64>),
    Nothing,
}

impl Undo {
    fn revert(self, inner: &mut Inner) {
        if let Undo::Append(n, next) = self {
            for _ in 0..n {
                inner.pop_back();
            }
            inner.next = next;
        }
    }
}

fn op_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Append(es) => es
            .iter()
            .map(|e| align_up(RECORD_HEADER_LEN + ENTRY_PREFIX_LEN + e.payload.len()))
            .sum(),
        _ => 64,
    }
}

/// Decodes and verifies the entry record in `rec` (exactly the record's bytes) found at `loc`.
fn decode_entry_at(
    rec: &[u8],
    loc: Loc,
    header: &SegmentHeader,
    max_payload: u64,
) -> std::result::Result<Entry, String> {
    let raw = format::decode_record_at(rec, loc.offset as usize, header).map_err(|e| match e {
        format::BadRecord::NotOurs => "record does not belong to this segment".to_string(),
        format::BadRecord::Invalid(r) => r,
    })?;
    match format::decode_payload(&raw, max_payload)? {
        Payload::Entry { id, data } => Ok(Entry { id, payload: data }),
        _ => Err("record at entry location is not an entry".into()),
    }
}
