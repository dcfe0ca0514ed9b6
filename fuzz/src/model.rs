//! A reference model of the logical log, for `wal_recovery_structured`.
//!
//! [`State`] mirrors what `Wal` promises at the API: which operations it accepts, and what the
//! log holds after each. Entries are identified by an [`EntryKey`]; the payload is a pure
//! function of the key, so the model never stores payload bytes and a read-back entry can be
//! checked against the exact bytes that were appended.

use std::collections::VecDeque;

use strata_wal::{Entry, LogId, LogIndex, LogState, NodeId, Term, Vote};

/// Everything that determines one appended entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryKey {
    /// Log index.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// Leader node id.
    pub leader: u64,
    /// Which append operation wrote it: two appends at the same index (after a truncation)
    /// produce different payloads, so a resurrected old entry is told apart from the new one.
    pub generation: u32,
    /// Payload length.
    pub len: u32,
    /// A repetitive payload (zstd shrinks it, so compression is exercised) or a random one.
    pub compressible: bool,
}

impl EntryKey {
    /// The entry's id.
    pub fn id(&self) -> LogId {
        LogId {
            term: Term(self.term),
            leader: NodeId(self.leader),
            index: LogIndex(self.index),
        }
    }

    /// The payload: a deterministic function of the key.
    pub fn payload(&self) -> Vec<u8> {
        let len = self.len as usize;
        // Never zero: xorshift would stay at zero.
        let mut x = (self.index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.term.rotate_left(17)
            ^ u64::from(self.generation).rotate_left(41))
            | 1;
        let mut step = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        };
        let mut v = Vec::with_capacity(len + 16);
        if self.compressible {
            // A 16-byte pattern repeated: long runs zstd compresses well.
            let mut pattern = [0u8; 16];
            pattern[..8].copy_from_slice(&step());
            pattern[8..].copy_from_slice(&step());
            while v.len() < len {
                v.extend_from_slice(&pattern);
            }
        } else {
            while v.len() < len {
                v.extend_from_slice(&step());
            }
        }
        v.truncate(len);
        v
    }

    /// The entry to append.
    pub fn entry(&self) -> Entry {
        Entry {
            id: self.id(),
            payload: self.payload().into(),
        }
    }

    /// Whether `e` is exactly this entry (id and payload bytes).
    pub fn matches(&self, e: &Entry) -> bool {
        e.id == self.id() && e.payload.len() == self.len as usize && e.payload == self.payload()
    }

    /// Whether two keys make the same entry (id and payload bytes). Different appends can
    /// produce identical entries (short payloads collide), and a log cannot tell them apart.
    pub fn same_entry(&self, other: &EntryKey) -> bool {
        self == other
            || self.id() == other.id() && self.len == other.len && self.payload() == other.payload()
    }
}

/// An operation as the model sees it (the `WriteOp` it is submitted as).
#[derive(Debug, Clone)]
pub enum LogOp {
    /// Append these entries.
    Append(Vec<EntryKey>),
    /// Keep entries up to and including the index (`None`: remove all).
    Truncate(Option<u64>),
    /// Purge through this id.
    Purge(LogId),
    /// Replace the vote.
    Vote(Vote),
}

impl LogOp {
    /// The `WriteOp` to submit.
    pub fn write_op(&self) -> strata_wal::WriteOp {
        use strata_wal::WriteOp;
        match self {
            LogOp::Append(keys) => WriteOp::Append(keys.iter().map(EntryKey::entry).collect()),
            LogOp::Truncate(after) => WriteOp::TruncateAfter(after.map(LogIndex)),
            LogOp::Purge(id) => WriteOp::PurgeThrough(*id),
            LogOp::Vote(v) => WriteOp::SaveVote(*v),
        }
    }
}

/// The logical log: entries, purge mark and vote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Index of `entries[0]` (meaningless while `entries` is empty).
    pub base: u64,
    /// The entries held, in index order.
    pub entries: VecDeque<EntryKey>,
    /// The last purged id.
    pub purged: Option<LogId>,
    /// The last saved vote.
    pub vote: Option<Vote>,
    /// Index the next append must start at; `None` while any index goes. Follows `Wal`'s rule
    /// (`wal.rs`, `next_after_truncate`, `next_after_purge`): after an append the index after
    /// its last entry, after a truncation the index after the cut point unless that lies past
    /// the end (after the purge mark when everything is removed), after a purge at least the
    /// index after the purge mark.
    pub next: Option<u64>,
}

impl State {
    /// The index the next append must start at, if the log constrains it.
    pub fn expected_next(&self) -> Option<u64> {
        self.next
    }

    /// Index of the first entry held.
    pub fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Index of the last entry held.
    pub fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.index)
    }

    /// The entry at `index`, if held.
    pub fn get(&self, index: u64) -> Option<&EntryKey> {
        let i = index.checked_sub(self.base)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// What `Wal::log_state` must report.
    pub fn log_state(&self) -> LogState {
        LogState {
            last_purged: self.purged,
            last: self.entries.back().map(EntryKey::id).or(self.purged),
            first_index: self.first_index().map(LogIndex),
        }
    }

    /// Whether `Wal` accepts `op` in this state; the error says why not. Mirrors the checks of
    /// `Wal::submit`.
    pub fn check(&self, op: &LogOp) -> Result<(), String> {
        match op {
            LogOp::Append(keys) => {
                let mut expected = self.expected_next();
                for k in keys {
                    if let Some(x) = expected
                        && k.index != x
                    {
                        return Err(format!("non-contiguous: expected {x}, got {}", k.index));
                    }
                    expected = Some(k.index + 1);
                }
                Ok(())
            }
            LogOp::Truncate(after) => match self.purged {
                Some(p) if after.is_none_or(|a| a < p.index.0) => {
                    Err(format!("truncate after {after:?} is behind the purge mark"))
                }
                _ => Ok(()),
            },
            LogOp::Purge(id) => match self.purged {
                Some(p) if id.index < p.index => Err("purge behind the last purge".into()),
                _ => Ok(()),
            },
            LogOp::Vote(_) => Ok(()),
        }
    }

    /// Applies an operation [`check`](Self::check) accepted.
    pub fn apply(&mut self, op: &LogOp) {
        match op {
            LogOp::Append(keys) => {
                if self.entries.is_empty()
                    && let Some(k) = keys.first()
                {
                    self.base = k.index;
                }
                self.entries.extend(keys.iter().copied());
                if let Some(k) = keys.last() {
                    self.next = Some(k.index + 1);
                }
            }
            LogOp::Truncate(after) => {
                let keep = match after {
                    None => 0,
                    Some(a) => (a + 1).saturating_sub(self.base),
                };
                while self.entries.len() as u64 > keep {
                    self.entries.pop_back();
                }
                self.next = match after {
                    // The log continues at the cut, unless the cut lies past its end.
                    Some(a) => self.next.map(|n| n.min(a.saturating_add(1))),
                    None => self.purged.map(|p| p.index.0 + 1),
                };
            }
            LogOp::Purge(id) => {
                while !self.entries.is_empty() && self.base <= id.index.0 {
                    self.entries.pop_front();
                    self.base += 1;
                }
                if self.entries.is_empty() {
                    self.base = id.index.0 + 1;
                }
                self.purged = Some(*id);
                if self.next.is_none_or(|n| n <= id.index.0) {
                    self.next = Some(id.index.0 + 1);
                }
            }
            LogOp::Vote(v) => self.vote = Some(*v),
        }
    }

    /// Whether the observable parts (entries, purge mark, vote) are these.
    pub fn same_as(&self, entries: &[EntryKey], purged: Option<LogId>, vote: Option<Vote>) -> bool {
        self.purged == purged
            && self.vote == vote
            && self.entries.len() == entries.len()
            && self
                .entries
                .iter()
                .zip(entries)
                .all(|(a, b)| a.same_entry(b))
    }
}

/// Size of an entry payload from one input byte: mostly small, sometimes up to ~32 KiB so that
/// a few entries fill a 64 KiB segment.
pub fn entry_size(b: u8) -> u32 {
    let n = u32::from(b & 63);
    match b >> 6 {
        0 => n,
        1 => n * 16,
        2 => n * 64,
        _ => n * 512,
    }
}
