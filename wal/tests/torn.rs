//! Torn writes and bit flips.
//!
//! A torn write of the last batch at every byte offset, on real files with every backend: the
//! log reopens with every earlier batch and exactly the complete records of the torn one, and
//! keeps working. Single bit flips anywhere in the written part of a segment: reopening yields
//! either a clear corruption error or a prefix of the log that lacks only entries of the last
//! batch — never a panic, never a wrong entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use strata_wal::testing::SimStore;
use strata_wal::{BackendChoice, Entry, LogIndex, Wal, WalError, WalOptions};

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn read_all(wal: &Wal) -> Vec<Entry> {
    let st = wal.log_state().unwrap();
    match (st.first_index, st.last) {
        (Some(f), Some(l)) => wal.entries(f, LogIndex(l.index.0 + 1)).unwrap(),
        _ => Vec::new(),
    }
}

/// Builds a log whose last batch is `last`, returning (segment bytes before the last batch,
/// after it, the earlier entries).
fn build(dir: &Path, backend: BackendChoice, last: &[Entry]) -> (Vec<u8>, Vec<u8>, Vec<Entry>) {
    let early = [entries(1, 20, 1, 100), entries(21, 21, 1, 3000)].concat();
    let wal = open_fs(dir, backend, SMALL_SEGMENT);
    wal.append(early[..20].to_vec()).unwrap();
    wal.append(early[20..].to_vec()).unwrap();
    let seg = segment_files(dir).pop().unwrap();
    let before = std::fs::read(dir.join(&seg)).unwrap();
    wal.append(last.to_vec()).unwrap();
    drop(wal);
    let after = std::fs::read(dir.join(&seg)).unwrap();
    (before, after, early)
}

#[test]
fn torn_last_batch_at_every_byte_offset() {
    for backend in backends() {
        let base = tempfile::tempdir().unwrap();
        let orig = base.path().join("orig");
        // Three records of 104 bytes each (40-byte header, 24-byte id, 40-byte payload).
        let last = entries(22, 24, 2, 40);
        let (before, after, early) = build(&orig, backend, &last);
        let seg = segment_files(&orig).pop().unwrap();
        let lo = before.iter().zip(&after).position(|(a, b)| a != b).unwrap();
        let hi = before.len()
            - before
                .iter()
                .rev()
                .zip(after.iter().rev())
                .position(|(a, b)| a != b)
                .unwrap();
        let record = 104;
        assert_eq!(hi - lo, 3 * record, "the last batch spans three records");
        for garbage in [false, true] {
            for k in 0..=(hi - lo) {
                let dir = base.path().join(format!("t{k}-{garbage}"));
                copy_dir(&orig, &dir);
                let mut bytes = before.clone();
                bytes[lo..lo + k].copy_from_slice(&after[lo..lo + k]);
                if garbage {
                    // The rest of the batch holds stale bytes instead of zeros (a recycled
                    // segment, or a sector that was written before).
                    for (i, b) in bytes[lo + k..hi].iter_mut().enumerate() {
                        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
                    }
                }
                std::fs::write(dir.join(&seg), &bytes).unwrap();
                let wal = open_fs(&dir, backend, SMALL_SEGMENT);
                let kept = k / record;
                let got = read_all(&wal);
                assert_eq!(
                    got,
                    [early.clone(), last[..kept].to_vec()].concat(),
                    "k={k} garbage={garbage}"
                );
                if k % record == 0 && !garbage {
                    // A batch cut at a record boundary followed by zeros is a clean end.
                    assert!(wal.recovery_report().torn_tail.is_none(), "k={k}");
                }
                // The log continues right after what was kept, and stays consistent.
                let next = 22 + kept as u64;
                wal.append(entries(next, next, 3, 10)).unwrap();
                drop(wal);
                let wal = open_fs(&dir, backend, SMALL_SEGMENT);
                assert!(wal.recovery_report().torn_tail.is_none());
                let got = read_all(&wal);
                assert_eq!(got.len(), early.len() + kept + 1);
                assert_eq!(got.last().unwrap(), &entry(next, 3, 10));
                drop(wal);
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    }
}

/// Batches of the log used for bit flips: several batches in one segment.
fn flip_log() -> (SimStore, Vec<Vec<Entry>>) {
    let store = SimStore::new();
    let batches = vec![
        entries(1, 3, 1, 20),
        entries(4, 4, 1, 300),
        entries(5, 8, 2, 7),
        entries(9, 10, 2, 50),
    ];
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    for b in &batches {
        wal.append(b.clone()).unwrap();
    }
    drop(wal);
    (store, batches)
}

#[test]
fn single_bit_flips_give_a_prefix_or_a_clear_error() {
    let (store, batches) = flip_log();
    let all: Vec<Entry> = batches.concat();
    let last_batch_start = all.len() - batches.last().unwrap().len();
    let seg = first_segment(&store);
    let clean = store.file_bytes(&seg).unwrap();
    // The written part of the segment, plus some of the zeros after it.
    let used = clean.iter().rposition(|b| *b != 0).unwrap() + 64;
    let (mut errors, mut prefixes) = (0, 0);
    for bit in 0..used * 8 {
        let image = store.crash_image(strata_wal::testing::CrashMode::DropUnsynced);
        let mut bytes = clean.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        image.put_file(&seg, bytes);
        match open_sim(&image, opts(SMALL_SEGMENT)) {
            Err(WalError::Corrupted { file, .. }) => {
                assert!(file.contains(&seg));
                errors += 1;
            }
            Err(e) => panic!("bit {bit}: unexpected error {e}"),
            Ok(wal) => {
                let got = read_all(&wal);
                assert!(
                    got.len() <= all.len() && got[..] == all[..got.len()],
                    "bit {bit}: not a prefix"
                );
                // Only the last batch may be lost: earlier batches were durable before it.
                assert!(
                    got.len() >= last_batch_start,
                    "bit {bit}: lost {} entries before the last batch",
                    all.len() - got.len()
                );
                prefixes += 1;
            }
        }
    }
    eprintln!("{used} bytes flipped bit by bit: {errors} corruption errors, {prefixes} prefixes");
    assert!(errors > 0 && prefixes > 0);
}

#[test]
fn flips_in_an_earlier_segment_are_never_silently_dropped() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    for i in 0..6 {
        wal.append(entries(i * 20 + 1, i * 20 + 20, 1, 900))
            .unwrap();
    }
    drop(wal);
    let segs: Vec<String> = store
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    assert!(segs.len() >= 2);
    let first = &segs[0];
    let clean = store.file_bytes(first).unwrap();
    let used = clean.iter().rposition(|b| *b != 0).unwrap() + 1;
    let mut x = 12345u64;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bit = (x % (used as u64 * 8)) as usize;
        let image = store.crash_image(strata_wal::testing::CrashMode::DropUnsynced);
        let mut bytes = clean.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        image.put_file(first, bytes);
        match open_sim(&image, opts(SMALL_SEGMENT)) {
            Err(WalError::Corrupted { .. }) => {}
            Err(e) => panic!("bit {bit}: unexpected error {e}"),
            Ok(wal) => {
                // Padding bytes are not covered by the checksum; everything else is.
                assert_eq!(read_all(&wal), entries(1, 120, 1, 900), "bit {bit}");
            }
        }
    }
}

#[test]
fn repair_cuts_at_the_damage_when_asked() {
    let (store, batches) = flip_log();
    let seg = first_segment(&store);
    let mut bytes = store.file_bytes(&seg).unwrap();
    // Damage the second batch's record payload.
    let at = 64 + 88 + 3 * 88 + 40 + 30;
    bytes[at] ^= 0xff;
    store.put_file(&seg, bytes);
    let err = open_sim(&store, opts(SMALL_SEGMENT)).err().unwrap();
    assert!(matches!(err, WalError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains(&seg) && err.to_string().contains("offset"));
    let wal = open_sim(
        &store,
        WalOptions {
            recovery: strata_wal::RecoveryMode::Repair,
            ..opts(SMALL_SEGMENT)
        },
    )
    .unwrap();
    assert!(wal.recovery_report().repaired.is_some());
    assert_eq!(read_all(&wal), batches[0]);
    // After the repair the log is whole again.
    wal.append(entries(4, 5, 3, 10)).unwrap();
    drop(wal);
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    assert_eq!(
        read_all(&wal),
        [batches[0].clone(), entries(4, 5, 3, 10)].concat()
    );
}

#[test]
fn garbage_and_truncated_files_give_errors_not_panics() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    wal.append(entries(1, 10, 1, 100)).unwrap();
    drop(wal);
    let seg = first_segment(&store);
    let clean = store.file_bytes(&seg).unwrap();
    for cut in [0usize, 10, 63, 64, 100, 1000] {
        let image = store.crash_image(strata_wal::testing::CrashMode::DropUnsynced);
        image.put_file(&seg, clean[..cut].to_vec());
        assert!(
            matches!(
                open_sim(&image, opts(SMALL_SEGMENT)),
                Err(WalError::Corrupted { .. })
            ),
            "cut {cut}"
        );
    }
    let image = store.crash_image(strata_wal::testing::CrashMode::DropUnsynced);
    image.put_file(&seg, vec![0xAB; clean.len()]);
    assert!(matches!(
        open_sim(&image, opts(SMALL_SEGMENT)),
        Err(WalError::Corrupted { .. })
    ));
}

/// Regression: a torn record at the very end of a segment, cut at open, followed by a record
/// too big for the space left, so that segment stops being the last one. Its end must read as
/// a clean end afterwards (recovery zeroes the torn record's header), not as corruption.
#[test]
fn torn_tail_at_a_segment_end_stays_clean_after_rotation() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    let segs = |s: &SimStore| {
        s.names()
            .into_iter()
            .filter(|n| n.ends_with(".wal"))
            .count()
    };
    // Fill the first segment one entry (1064-byte record) at a time until one more would not fit.
    let mut i = 1u64;
    loop {
        let probe = store.crash_image(strata_wal::testing::CrashMode::DropUnsynced);
        wal.append(entries(i, i, 1, 1000)).unwrap();
        if segs(&store) > 1 {
            // Entry i went to a new segment: go back to the image before it.
            drop(wal);
            let seg = first_segment(&probe);
            let mut bytes = probe.file_bytes(&seg).unwrap();
            let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
            let end = end.div_ceil(8) * 8;
            let start = end - 1064;
            // The last record's header reached the disk, its payload did not.
            bytes[start + 40..end].fill(0);
            probe.put_file(&seg, bytes);
            let wal = open_sim(&probe, opts(SMALL_SEGMENT)).unwrap();
            assert!(wal.recovery_report().torn_tail.is_some());
            assert_eq!(wal.last_index().unwrap(), Some(LogIndex(i - 2)));
            // Too big for the space left: goes to a new segment.
            wal.append(entries(i - 1, i - 1, 2, 3000)).unwrap();
            drop(wal);
            assert_eq!(segs(&probe), 2);
            let wal =
                open_sim(&probe, opts(SMALL_SEGMENT)).expect("a cut torn tail is a clean end");
            assert_eq!(wal.last_index().unwrap(), Some(LogIndex(i - 1)));
            return;
        }
        i += 1;
    }
}

/// Regression (found by the structured fuzz target): after a repair moved every segment aside,
/// the log accepted appends into a new segment that the next open refused as "earlier segments
/// are missing".
#[test]
fn appends_after_a_repair_that_emptied_the_log_reopen() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    wal.append(entries(1, 3, 1, 10)).unwrap();
    drop(wal);
    let seg = first_segment(&store);
    let mut bytes = store.file_bytes(&seg).unwrap();
    bytes[0] ^= 1;
    store.put_file(&seg, bytes);
    let repair = WalOptions {
        recovery: strata_wal::RecoveryMode::Repair,
        ..opts(SMALL_SEGMENT)
    };
    let wal = open_sim(&store, repair.clone()).unwrap();
    assert_eq!(wal.last_index().unwrap(), None);
    wal.append(entries(1, 3, 2, 10)).unwrap();
    drop(wal);
    for o in [opts(SMALL_SEGMENT), repair] {
        let wal = open_sim(&store, o).unwrap();
        assert_eq!(read_all(&wal), entries(1, 3, 2, 10));
    }
}

/// A missing first segment (deleted by hand) is reported, not silently skipped.
#[test]
fn a_missing_earlier_segment_is_reported() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    for i in 0..4 {
        wal.append(entries(i * 30 + 1, i * 30 + 30, 1, 900))
            .unwrap();
    }
    drop(wal);
    let first = first_segment(&store);
    use strata_wal::SegmentStore;
    store.remove(&first).unwrap();
    store.sync_dir().unwrap();
    let err = open_sim(&store, opts(SMALL_SEGMENT)).err().unwrap();
    assert!(matches!(err, WalError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}
