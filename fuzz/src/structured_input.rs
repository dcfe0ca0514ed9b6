//! Input encoding of `wal_recovery_structured`: a small byte code of operations, a crash and
//! damage.
//!
//! ```text
//! input    := config:u8 op* [end] crash mutation*
//! op       := code:u8 params           (code & 7 selects the operation, below)
//! end      := code with code & 7 == 7  (or the end of the input)
//! crash    := mode:u8 param:u16le recovery:u8
//! mutation := kind:u8 file:u8 offset:u16le arg:u8 [extra]
//! ```
//!
//! `config` bit 0: compress payloads of at least 64 bytes; bits 1-2: hot tail budget
//! (64 MiB, 0, 4 KiB, 64 KiB; small budgets make reads go to the segment files); bit 3: keep two
//! prepared segments instead of one.
//!
//! Operations (bit 7 of `code` on 0-3: submit without waiting, so several operations share one
//! group-commit batch; they are all waited for before the next waiting operation):
//! - 0 append `count:u8 size:u8`: `1 + count % 16` entries continuing the log, payload length
//!   from [`model::entry_size`](crate::model::entry_size); code bit 3: compressible payloads,
//!   bit 4: a new term.
//! - 1 truncate `back:u8`: keep entries through `last - back`; bit 3: remove all (`None`);
//!   bit 4: keep through `last + back` (past the end, removing nothing).
//! - 2 purge `delta:u8`: through `first + delta`, or with bit 3 through `last + delta`.
//! - 3 vote `term:u8 voted_for:u8`: bit 3 committed, bit 4 no candidate.
//! - 4 bad append `gap:u8`: an append that skips `gap + 1` indices; must be refused.
//! - 5 reopen: close cleanly and reopen (no params).
//! - 6 fault `skip:u8`: the `skip + 1`-th next commit-step sync (bit 3) or write (else) fails
//!   (`SimStore::inject_commit`); bit 4 sticky; bit 5: count and fail segment preparation's
//!   I/O too (`SimStore::inject`, timing-dependent).
//!
//! `crash.mode & 3`: 0 `KeepUnsynced`, 1 `DropUnsynced`, 2 `Prefix(param * 8)`,
//! 3 `TornSectors(param)`. `recovery` bit 0: reopen with `RecoveryMode::Repair`.
//!
//! Mutations (at most [`MAX_MUTATIONS`]) act on the `.wal` files of the crash image, picked by
//! `file % count` in name order. `offset` is taken modulo the used part of the file plus 64
//! bytes, so damage lands on records rather than on the zero tail. `kind % 6`: 0 cut the file
//! at `offset`; 1 zero `arg * 8 + 1` bytes; 2 flip bit `arg % 8`; 3 overwrite with `extra` (8
//! bytes); 4 copy `arg * 8 + 8` bytes from `extra` (`u16le`, same modulus) to `offset`;
//! 5 remove the file.

use crate::Reader;

/// Most operations one input runs.
pub const MAX_OPS: usize = 64;
/// Most mutations one input applies.
pub const MAX_MUTATIONS: usize = 8;

/// Options derived from the config byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// `compress_min_bytes = Some(64)`.
    pub compress: bool,
    /// `hot_tail_bytes_max`.
    pub hot_tail_bytes: usize,
    /// `prepared_segments`.
    pub prepared_segments: usize,
}

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Append `1 + count % 16` entries.
    Append {
        /// Entry count selector.
        count: u8,
        /// Payload size selector.
        size: u8,
        /// Repetitive payloads.
        compressible: bool,
        /// Start a new term first.
        new_term: bool,
        /// Wait until durable.
        wait: bool,
    },
    /// Truncate after `last - back` (or everything, or after `last + back`).
    Truncate {
        /// Distance back from the last entry.
        back: u8,
        /// Remove all entries.
        all: bool,
        /// Count `back` forward from the last entry instead.
        past_end: bool,
        /// Wait until durable.
        wait: bool,
    },
    /// Purge through `first + delta` (or `last + delta`).
    Purge {
        /// Distance from the reference index.
        delta: u8,
        /// Count from the last entry instead of the first.
        from_last: bool,
        /// Wait until durable.
        wait: bool,
    },
    /// Save a vote.
    Vote {
        /// Term.
        term: u8,
        /// Candidate, if any.
        voted_for: Option<u8>,
        /// Committed.
        committed: bool,
        /// Wait until durable.
        wait: bool,
    },
    /// A non-contiguous append (must be refused).
    BadAppend {
        /// Indices skipped minus one.
        gap: u8,
    },
    /// Clean close and reopen.
    Reopen,
    /// Inject an I/O fault.
    Fault {
        /// Calls to let through first.
        skip: u8,
        /// Fail a sync (else a write).
        sync: bool,
        /// Keep failing.
        sticky: bool,
        /// Segment preparation's I/O counts and fails too.
        any_io: bool,
    },
}

/// What to do to the crash image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Cut the file at the offset.
    Truncate {
        /// File selector.
        file: u8,
        /// Offset selector.
        offset: u16,
    },
    /// Zero `len * 8 + 1` bytes.
    Zero {
        /// File selector.
        file: u8,
        /// Offset selector.
        offset: u16,
        /// Length selector.
        len: u8,
    },
    /// Flip one bit.
    Flip {
        /// File selector.
        file: u8,
        /// Offset selector.
        offset: u16,
        /// Bit number (mod 8).
        bit: u8,
    },
    /// Overwrite eight bytes.
    Overwrite {
        /// File selector.
        file: u8,
        /// Offset selector.
        offset: u16,
        /// The bytes.
        bytes: [u8; 8],
    },
    /// Copy `len * 8 + 8` bytes inside the file.
    Copy {
        /// File selector.
        file: u8,
        /// Destination offset selector.
        offset: u16,
        /// Length selector.
        len: u8,
        /// Source offset selector.
        from: u16,
    },
    /// Remove the file.
    Remove {
        /// File selector.
        file: u8,
    },
}

/// The crash mode selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Crash {
    /// `mode & 3` selects the `CrashMode`.
    pub mode: u8,
    /// Its parameter.
    pub param: u16,
    /// Reopen with `RecoveryMode::Repair`.
    pub repair: bool,
}

/// A decoded input.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The config byte, raw.
    pub config_byte: u8,
    /// Operations in order.
    pub ops: Vec<Op>,
    /// The crash.
    pub crash: Crash,
    /// Damage to the crash image.
    pub mutations: Vec<Mutation>,
}

impl Plan {
    /// The options the config byte selects.
    pub fn config(&self) -> Config {
        let b = self.config_byte;
        Config {
            compress: b & 1 != 0,
            hot_tail_bytes: match (b >> 1) & 3 {
                0 => 64 << 20,
                1 => 0,
                2 => 4 << 10,
                _ => 64 << 10,
            },
            prepared_segments: if b & 8 != 0 { 2 } else { 1 },
        }
    }
}

/// Decodes any input into a plan.
pub fn decode(data: &[u8]) -> Plan {
    let mut r = Reader::new(data);
    let mut plan = Plan {
        config_byte: r.u8(),
        ..Plan::default()
    };
    while !r.is_empty() && plan.ops.len() < MAX_OPS {
        let code = r.u8();
        let wait = code & 0x80 == 0;
        let b3 = code & 8 != 0;
        let b4 = code & 16 != 0;
        let b5 = code & 32 != 0;
        let op = match code & 7 {
            0 => Op::Append {
                count: r.u8(),
                size: r.u8(),
                compressible: b3,
                new_term: b4,
                wait,
            },
            1 => Op::Truncate {
                back: r.u8(),
                all: b3,
                past_end: b4,
                wait,
            },
            2 => Op::Purge {
                delta: r.u8(),
                from_last: b3,
                wait,
            },
            3 => {
                let term = r.u8();
                let voted = r.u8();
                Op::Vote {
                    term,
                    voted_for: (!b4).then_some(voted),
                    committed: b3,
                    wait,
                }
            }
            4 => Op::BadAppend { gap: r.u8() },
            5 => Op::Reopen,
            6 => Op::Fault {
                skip: r.u8(),
                sync: b3,
                sticky: b4,
                any_io: b5,
            },
            _ => break,
        };
        plan.ops.push(op);
    }
    plan.crash = Crash {
        mode: r.u8(),
        param: r.u16(),
        repair: r.u8() & 1 != 0,
    };
    while !r.is_empty() && plan.mutations.len() < MAX_MUTATIONS {
        let kind = r.u8();
        let file = r.u8();
        let offset = r.u16();
        let arg = r.u8();
        let m = match kind % 6 {
            0 => Mutation::Truncate { file, offset },
            1 => Mutation::Zero {
                file,
                offset,
                len: arg,
            },
            2 => Mutation::Flip {
                file,
                offset,
                bit: arg,
            },
            3 => {
                let mut bytes = [0u8; 8];
                for b in &mut bytes {
                    *b = r.u8();
                }
                Mutation::Overwrite {
                    file,
                    offset,
                    bytes,
                }
            }
            4 => Mutation::Copy {
                file,
                offset,
                len: arg,
                from: r.u16(),
            },
            _ => Mutation::Remove { file },
        };
        plan.mutations.push(m);
    }
    plan
}

/// Encodes a plan (the inverse of [`decode`] for plans it produces).
pub fn encode(plan: &Plan) -> Vec<u8> {
    let mut out = vec![plan.config_byte];
    let async_bit = |wait: bool| if wait { 0 } else { 0x80 };
    for op in &plan.ops {
        match *op {
            Op::Append {
                count,
                size,
                compressible,
                new_term,
                wait,
            } => out.extend_from_slice(&[
                async_bit(wait) | u8::from(compressible) << 3 | u8::from(new_term) << 4,
                count,
                size,
            ]),
            Op::Truncate {
                back,
                all,
                past_end,
                wait,
            } => out.extend_from_slice(&[
                1 | async_bit(wait) | u8::from(all) << 3 | u8::from(past_end) << 4,
                back,
            ]),
            Op::Purge {
                delta,
                from_last,
                wait,
            } => out.extend_from_slice(&[2 | async_bit(wait) | u8::from(from_last) << 3, delta]),
            Op::Vote {
                term,
                voted_for,
                committed,
                wait,
            } => out.extend_from_slice(&[
                3 | async_bit(wait) | u8::from(committed) << 3 | u8::from(voted_for.is_none()) << 4,
                term,
                voted_for.unwrap_or(0),
            ]),
            Op::BadAppend { gap } => out.extend_from_slice(&[4, gap]),
            Op::Reopen => out.push(5),
            Op::Fault {
                skip,
                sync,
                sticky,
                any_io,
            } => out.extend_from_slice(&[
                6 | u8::from(sync) << 3 | u8::from(sticky) << 4 | u8::from(any_io) << 5,
                skip,
            ]),
        }
    }
    if plan.ops.len() < MAX_OPS {
        out.push(7);
    }
    out.push(plan.crash.mode);
    out.extend_from_slice(&plan.crash.param.to_le_bytes());
    out.push(u8::from(plan.crash.repair));
    for m in &plan.mutations {
        match *m {
            Mutation::Truncate { file, offset } => {
                out.extend_from_slice(&[0, file]);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(0);
            }
            Mutation::Zero { file, offset, len } => {
                out.extend_from_slice(&[1, file]);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(len);
            }
            Mutation::Flip { file, offset, bit } => {
                out.extend_from_slice(&[2, file]);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(bit);
            }
            Mutation::Overwrite {
                file,
                offset,
                bytes,
            } => {
                out.extend_from_slice(&[3, file]);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(0);
                out.extend_from_slice(&bytes);
            }
            Mutation::Copy {
                file,
                offset,
                len,
                from,
            } => {
                out.extend_from_slice(&[4, file]);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(len);
                out.extend_from_slice(&from.to_le_bytes());
            }
            Mutation::Remove { file } => out.extend_from_slice(&[5, file, 0, 0, 0]),
        }
    }
    out
}
