//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use strata_wal::testing::SimStore;
use strata_wal::{BackendChoice, BackendKind, Entry, SegmentStore, Wal, WalOptions};

/// Small segments so tests rotate and recycle often.
pub const SMALL_SEGMENT: u64 = 64 << 10;

pub fn opts(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        ..WalOptions::default()
    }
}

/// The real backends this machine offers: io_uring when it can be set up, and always the
/// portable one. A test that loops over these runs against both.
pub fn backends() -> Vec<BackendChoice> {
    let mut v = vec![BackendChoice::Portable];
    if strata_wal::FsStore::open(&std::env::temp_dir(), BackendChoice::IoUring).is_ok() {
        v.push(BackendChoice::IoUring);
    } else {
        eprintln!("!!! io_uring cannot be set up here: testing the portable backend only !!!");
    }
    v
}

pub fn open_fs(dir: &Path, backend: BackendChoice, segment_bytes: u64) -> Wal {
    let wal = Wal::open(
        dir,
        WalOptions {
            backend,
            ..opts(segment_bytes)
        },
    )
    .unwrap();
    let expected = match backend {
        BackendChoice::IoUring => BackendKind::IoUring,
        BackendChoice::Portable => BackendKind::Portable,
        BackendChoice::Auto => wal.backend(),
    };
    assert_eq!(wal.backend(), expected);
    wal
}

pub fn open_sim(store: &SimStore, o: WalOptions) -> strata_wal::Result<Wal> {
    let s: Arc<dyn SegmentStore> = Arc::new(store.clone());
    Wal::open_with_store(s, o)
}

/// A deterministic payload for entry `index` written in `term`.
pub fn payload(index: u64, term: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn entry(index: u64, term: u64, len: usize) -> Entry {
    Entry::new(term, 1, index, payload(index, term, len))
}

pub fn entries(from: u64, to_inclusive: u64, term: u64, len: usize) -> Vec<Entry> {
    (from..=to_inclusive).map(|i| entry(i, term, len)).collect()
}

/// Name of the lowest-numbered segment file in a simulated store.
pub fn first_segment(store: &SimStore) -> String {
    store
        .names()
        .into_iter()
        .find(|n| n.ends_with(".wal"))
        .expect("the store holds a segment")
}
