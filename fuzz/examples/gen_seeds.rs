//! Writes the seed corpus of both fuzz targets.
//!
//! ```text
//! cd fuzz && cargo run --release --example gen_seeds -- corpus
//! ```
//!
//! Seeds for `wal_recovery_bytes` are real segment files: each scenario runs the real `Wal` on a
//! `SimStore`, takes the store's files (sometimes from a crash image, sometimes damaged) and
//! encodes them with `bytes_input::encode`, so the fuzzer starts from valid headers, valid
//! record chains and the salts that make their checksums verify. Seeds for
//! `wal_recovery_structured` are operation plans encoded with `structured_input::encode`.
//! Run `cargo fuzz cmin` on both targets afterwards (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_fuzz::bytes_input::{self, FileSpec};
use strata_fuzz::layout;
use strata_fuzz::structured_input::{self, Crash, Mutation, Op, Plan};
use strata_wal::testing::{CrashMode, FaultOp, SimStore};
use strata_wal::{Entry, LogId, LogIndex, NodeId, Term, Vote, Wal, WalOptions};

const SEGMENT_BYTES: u64 = 64 << 10;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    bytes_seeds(&out.join("wal_recovery_bytes"));
    structured_seeds(&out.join("wal_recovery_structured"));
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
    println!("{}/{name}: {} bytes", dir.display(), data.len());
}

fn opts() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES,
        ..WalOptions::default()
    }
}

fn open(store: &SimStore, opts: WalOptions) -> Wal {
    Wal::open_with_store(Arc::new(store.clone()), opts).unwrap()
}

fn entry(index: u64, term: u64, len: usize) -> Entry {
    let payload: Vec<u8> = (0..len)
        .map(|i| (index as usize * 31 + i * 7 + term as usize) as u8)
        .collect();
    Entry::new(term, 1, index, payload)
}

fn entries(from: u64, to: u64, term: u64, len: usize) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term, len)).collect()
}

fn vote(term: u64) -> Vote {
    Vote {
        term: Term(term),
        voted_for: Some(NodeId(1)),
        committed: term & 1 == 0,
    }
}

/// The store's files in the `wal_recovery_bytes` encoding: segments as built segments (their
/// zero tail dropped), prepared files trimmed and padded back by the decoder.
fn files_of(store: &SimStore) -> Vec<FileSpec> {
    let mut files = Vec::new();
    for name in store.names() {
        let bytes = store.file_bytes(&name).unwrap();
        if name.ends_with(".wal") {
            files.push(FileSpec::from_segment(&bytes));
        } else if name.starts_with("pool-") {
            // A recycled file still holds its old records; the first few KiB of them are
            // enough to show that stale records never rejoin the log.
            let used = layout::used_len(&bytes).min(4 << 10);
            files.push(FileSpec::Pool {
                bytes: bytes[..used].to_vec(),
                pad: bytes.len() as u64 == SEGMENT_BYTES,
            });
        }
    }
    files
}

fn with_reseal(files: Vec<FileSpec>) -> Vec<FileSpec> {
    files
        .into_iter()
        .map(|f| match f {
            FileSpec::Built {
                header,
                body,
                misnamed,
                ..
            } => FileSpec::Built {
                header,
                body,
                reseal: true,
                chain: true,
                misnamed,
            },
            other => other,
        })
        .collect()
}

fn bytes_seeds(dir: &Path) {
    // One segment: entries, a vote, a truncation, more entries.
    let store = SimStore::new();
    {
        let wal = open(&store, opts());
        wal.append(entries(1, 6, 1, 20)).unwrap();
        wal.save_vote(vote(2)).unwrap();
        wal.truncate_after(Some(LogIndex(4))).unwrap();
        wal.append(entries(5, 8, 2, 33)).unwrap();
        wal.close().unwrap();
    }
    let files = files_of(&store);
    write(
        dir,
        "one-segment",
        &bytes_input::encode(false, false, &files),
    );
    write(
        dir,
        "one-segment-resealed-repair-append",
        &bytes_input::encode(true, true, &with_reseal(files)),
    );

    // Compressed entries (zstd frames in records).
    let store = SimStore::new();
    {
        let wal = open(
            &store,
            WalOptions {
                compress_min_bytes: Some(64),
                ..opts()
            },
        );
        let big: Vec<Entry> = (1..=4)
            .map(|i| Entry::new(1, 1, i, vec![b'a' + i as u8; 300]))
            .collect();
        wal.append(big).unwrap();
        wal.close().unwrap();
    }
    write(
        dir,
        "compressed",
        &bytes_input::encode(false, true, &files_of(&store)),
    );

    // Purged and recycled: the log starts at a later segment and a recycled file waits in the
    // pool. Entries are ~6 KiB so a dozen fill a segment.
    let store = SimStore::new();
    {
        let wal = open(&store, opts());
        for i in 0..3 {
            wal.append(entries(1 + 6 * i, 6 + 6 * i, 1, 6000)).unwrap();
        }
        wal.purge_through(LogId {
            term: Term(1),
            leader: NodeId(1),
            index: LogIndex(12),
        })
        .unwrap();
        wal.append(entries(19, 20, 1, 10)).unwrap();
        wal.save_vote(vote(3)).unwrap();
        wal.close().unwrap();
    }
    let files: Vec<FileSpec> = files_of(&store)
        .into_iter()
        .filter(|f| match f {
            // Keep the seed small: the last (partly used) segment and the pool files.
            FileSpec::Built { body, .. } => body.len() < 16 << 10,
            _ => true,
        })
        .collect();
    write(
        dir,
        "purged-recycled",
        &bytes_input::encode(false, true, &files),
    );

    // Two segments (the first one full) and a torn last batch: the last append's sync failed
    // and only some sectors of it reached the media.
    let store = SimStore::new();
    {
        let wal = open(&store, opts());
        wal.append(entries(1, 11, 1, 6000)).unwrap();
        wal.append(entries(12, 13, 1, 100)).unwrap();
        store.inject(FaultOp::Sync, 0, 5, true);
        let _ = wal.append(entries(14, 20, 1, 400));
        let _ = wal.close();
    }
    let image = store.crash_image(CrashMode::TornSectors(7));
    write(
        dir,
        "two-segments-torn-tail",
        &bytes_input::encode(false, false, &files_of(&image)),
    );

    // Damage followed by durable data: strict refuses, repair cuts.
    let store = SimStore::new();
    {
        let wal = open(&store, opts());
        for i in 1..=6 {
            wal.append(entries(i, i, 1, 50)).unwrap();
        }
        wal.close().unwrap();
    }
    let mut files = files_of(&store);
    if let Some(FileSpec::Built { body, .. }) = files.first_mut() {
        // Zero part of the third record (records follow a 64-byte header and a state record).
        let at = (body.len() / 2) & !7;
        body[at..at + 16].fill(0);
    }
    write(
        dir,
        "damaged-middle-strict",
        &bytes_input::encode(false, false, &files),
    );
    write(
        dir,
        "damaged-middle-repair",
        &bytes_input::encode(true, true, &files),
    );

    // Stray names recovery must ignore, next to a small real segment.
    let store = SimStore::new();
    {
        let wal = open(&store, opts());
        wal.append(entries(1, 2, 1, 8)).unwrap();
        wal.close().unwrap();
    }
    let mut files = files_of(&store);
    for variant in 0..8 {
        files.push(FileSpec::Other {
            variant,
            bytes: b"STRATWAL".to_vec(),
        });
    }
    files.truncate(bytes_input::MAX_FILES);
    write(
        dir,
        "stray-files",
        &bytes_input::encode(false, false, &files),
    );
}

fn plan(config: u8, ops: Vec<Op>, crash: Crash, mutations: Vec<Mutation>) -> Vec<u8> {
    structured_input::encode(&Plan {
        config_byte: config,
        ops,
        crash,
        mutations,
    })
}

fn append(count: u8, size: u8) -> Op {
    Op::Append {
        count,
        size,
        compressible: false,
        new_term: false,
        wait: true,
    }
}

fn structured_seeds(dir: &Path) {
    let keep = Crash::default();
    let vote = |term: u8, wait: bool| Op::Vote {
        term,
        voted_for: Some(2),
        committed: false,
        wait,
    };
    // Appends and a vote, clean crash.
    write(
        dir,
        "append-vote",
        &plan(
            0,
            vec![append(4, 20), vote(1, true), append(2, 70)],
            keep,
            vec![],
        ),
    );
    // Truncations and new terms.
    write(
        dir,
        "truncate",
        &plan(
            0,
            vec![
                append(9, 30),
                Op::Truncate {
                    back: 3,
                    all: false,
                    past_end: false,
                    wait: true,
                },
                Op::Append {
                    count: 2,
                    size: 12,
                    compressible: false,
                    new_term: true,
                    wait: true,
                },
                Op::Truncate {
                    back: 0,
                    all: true,
                    past_end: false,
                    wait: true,
                },
                append(1, 5),
            ],
            keep,
            vec![],
        ),
    );
    // Large entries: rotation, then a purge that recycles the first segments, a clean reopen,
    // more appends. Size 0xCC is 12 * 512 = 6 KiB.
    write(
        dir,
        "rotate-purge-recycle",
        &plan(
            2, // hot tail 0: reads come from the segment files
            vec![
                append(15, 0xCC),
                append(7, 0xCC),
                Op::Purge {
                    delta: 12,
                    from_last: false,
                    wait: true,
                },
                Op::Reopen,
                append(3, 0x50),
            ],
            keep,
            vec![],
        ),
    );
    // Group commit: several operations in one batch, then a torn crash of a failed sync.
    write(
        dir,
        "group-commit-torn",
        &plan(
            1, // compression on
            vec![
                Op::Append {
                    count: 5,
                    size: 0x88,
                    compressible: true,
                    new_term: false,
                    wait: false,
                },
                vote(3, false),
                Op::Truncate {
                    back: 1,
                    all: false,
                    past_end: false,
                    wait: false,
                },
                append(3, 40),
                Op::Fault {
                    skip: 0,
                    sync: true,
                    sticky: true,
                    any_io: false,
                },
                append(6, 0x90),
            ],
            Crash {
                mode: 3,
                param: 99,
                repair: false,
            },
            vec![],
        ),
    );
    // A failed write.
    write(
        dir,
        "write-fault",
        &plan(
            0,
            vec![
                append(3, 10),
                Op::Fault {
                    skip: 0,
                    sync: false,
                    sticky: false,
                    any_io: true,
                },
                append(3, 10),
            ],
            Crash {
                mode: 2,
                param: 20,
                repair: false,
            },
            vec![],
        ),
    );
    // Refused operations: a gap, a truncation behind the purge mark.
    write(
        dir,
        "refused",
        &plan(
            0,
            vec![
                append(5, 10),
                Op::BadAppend { gap: 3 },
                Op::Purge {
                    delta: 2,
                    from_last: false,
                    wait: true,
                },
                Op::Truncate {
                    back: 9,
                    all: false,
                    past_end: false,
                    wait: true,
                },
                Op::Purge {
                    delta: 3,
                    from_last: true,
                    wait: true,
                },
                append(1, 1),
            ],
            keep,
            vec![],
        ),
    );
    // Damage: a flipped bit in a middle record, strict then repair.
    let damaged_ops = vec![append(7, 60), vote(4, true), append(4, 60)];
    let flip = vec![Mutation::Flip {
        file: 0,
        offset: 600,
        bit: 3,
    }];
    write(
        dir,
        "flip-strict",
        &plan(0, damaged_ops.clone(), keep, flip.clone()),
    );
    write(
        dir,
        "flip-repair",
        &plan(
            0,
            damaged_ops.clone(),
            Crash {
                repair: true,
                ..keep
            },
            flip,
        ),
    );
    // Damage at the tail: zeroed last records, a cut file, a copied record.
    write(
        dir,
        "tail-damage",
        &plan(
            0,
            damaged_ops,
            Crash {
                repair: true,
                ..keep
            },
            vec![
                Mutation::Zero {
                    file: 0,
                    offset: 1400,
                    len: 40,
                },
                Mutation::Copy {
                    file: 0,
                    offset: 900,
                    len: 8,
                    from: 300,
                },
            ],
        ),
    );
    // A cut segment and a removed one: strict recovery must refuse.
    write(
        dir,
        "cut-and-remove",
        &plan(
            0,
            vec![append(15, 0xCC), append(6, 0xCC)],
            keep,
            vec![
                Mutation::Truncate {
                    file: 1,
                    offset: 5000,
                },
                Mutation::Remove { file: 0 },
            ],
        ),
    );
}
