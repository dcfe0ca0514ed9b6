#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recovery on arbitrary bytes: the input describes a log directory (segment files, prepared
//! files, stray files; encoding in `strata_fuzz::bytes_input`), which is opened with
//! `Wal::open_with_store` on a `SimStore`.
//!
//! Checks: nothing panics, whatever the bytes. If the log opens, every entry in its range can be
//! asked for (all at once and one by one); reads may fail with an error, but what they return
//! must be the entries asked for, in order. With input flag bit 1, an entry appended after
//! recovery must read back at once and survive a reopen.

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_fuzz::bytes_input::{self, SEGMENT_BYTES};
use strata_wal::testing::SimStore;
use strata_wal::{Entry, LogIndex, RecoveryMode, Wal, WalError, WalOptions};

/// Most entries read one at a time (each is a separate cold read).
const SINGLE_READS: u64 = 256;

fuzz_target!(|data: &[u8]| {
    let case = bytes_input::decode(data);
    let store = SimStore::new();
    for (name, bytes) in &case.files {
        store.put_file(name, bytes.clone());
    }
    let opts = WalOptions {
        segment_bytes: SEGMENT_BYTES,
        recovery: if case.repair {
            RecoveryMode::Repair
        } else {
            RecoveryMode::Strict
        },
        ..WalOptions::default()
    };
    // Refusing to open is a fine answer to damaged bytes; only a panic is a bug.
    let Ok(wal) = open(&store, &opts) else {
        return;
    };
    read_everything(&wal);
    if case.write_after_open {
        append_and_reopen(&store, wal, &opts);
    }
});

fn open(store: &SimStore, opts: &WalOptions) -> strata_wal::Result<Wal> {
    Wal::open_with_store(Arc::new(store.clone()), opts.clone())
}

/// Reads every entry the recovered log claims to hold, plus the reads just outside its range.
fn read_everything(wal: &Wal) {
    let _ = wal.recovery_report();
    let _ = wal.vote();
    let Ok(state) = wal.log_state() else {
        return;
    };
    let Ok(last) = wal.last_index() else {
        return;
    };
    let (Some(first), Some(last)) = (state.first_index, last) else {
        assert!(
            state.first_index.is_none() && last.is_none(),
            "log_state says first index {:?} but last_index says {last:?}",
            state.first_index
        );
        return;
    };
    assert!(first <= last, "first index {first} after last index {last}");
    assert_eq!(
        state.last.map(|id| id.index),
        Some(last),
        "log_state().last disagrees with last_index()"
    );
    let Some(end) = last.0.checked_add(1) else {
        return;
    };
    if let Ok(all) = wal.entries(first, LogIndex(end)) {
        assert_eq!(all.len() as u64, end - first.0, "entries() skipped entries");
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.id.index.0, first.0 + i as u64, "entries() out of order");
        }
        assert_eq!(
            all.last().map(|e| e.id),
            state.last,
            "last entry id differs"
        );
    }
    // One at a time: every record is located and verified on its own.
    for i in first.0..end.min(first.0.saturating_add(SINGLE_READS)) {
        if let Ok(v) = wal.entries(LogIndex(i), LogIndex(i + 1)) {
            assert_eq!(
                v.len(),
                1,
                "entries({i}, {}) returned {} entries",
                i + 1,
                v.len()
            );
            assert_eq!(
                v[0].id.index.0, i,
                "entries({i}, ..) returned another index"
            );
        }
    }
    // Just outside the range: errors, never entries or panics.
    if let Some(before) = first.0.checked_sub(1) {
        assert!(wal.entries(LogIndex(before), first).is_err());
    }
    if let Some(after) = end.checked_add(1) {
        assert!(wal.entries(LogIndex(end), LogIndex(after)).is_err());
    }
}

/// Appends one entry continuing the recovered log; if that is acknowledged it must read back at
/// once and after a reopen (the writer continues the recovered chain correctly).
fn append_and_reopen(store: &SimStore, wal: Wal, opts: &WalOptions) {
    let Ok(state) = wal.log_state() else {
        return;
    };
    let next = match state.last {
        Some(id) => id.index.0.checked_add(1),
        None => Some(1),
    };
    let Some(mut next) = next else {
        return;
    };
    let term = state.last.map_or(1, |id| id.term.0);
    let entry = |index| Entry::new(term, 1, index, b"appended after recovery".to_vec());
    match wal.append(vec![entry(next)]) {
        Ok(()) => {}
        // A replayed truncation may have set another next index; take the one named.
        Err(WalError::NonContiguous { expected, .. }) => {
            next = expected.0;
            if wal.append(vec![entry(next)]).is_err() {
                return;
            }
        }
        Err(_) => return,
    }
    let entry = entry(next);
    let Some(end) = next.checked_add(1) else {
        return;
    };
    let got = wal.entries(LogIndex(next), LogIndex(end));
    assert_eq!(
        got.ok(),
        Some(vec![entry.clone()]),
        "appended entry not readable"
    );
    drop(wal);
    let wal = open(store, opts)
        .unwrap_or_else(|e| panic!("reopen after an acknowledged append failed: {e}"));
    let got = wal.entries(LogIndex(next), LogIndex(end));
    assert_eq!(
        got.as_ref().ok(),
        Some(&vec![entry]),
        "acknowledged entry {next} lost or changed by a reopen: {got:?}"
    );
}
