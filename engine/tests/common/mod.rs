//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use strata_engine::btree::testing::SimStore;
use strata_engine::btree::{Db, Options, ReadTxn};

/// Bucket name → (key → value).
pub type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Small pages so that a few hundred keys make a deep tree.
pub fn small_pages() -> Options {
    Options {
        page_size: 1024,
        ..Options::default()
    }
}

pub fn open_sim(store: &SimStore) -> Db {
    Db::open_with_store(Arc::new(store.clone()), small_pages()).expect("open sim db")
}

/// Everything a read transaction sees, as a model (empty buckets included).
pub fn dump(txn: &ReadTxn) -> Model {
    let mut m = Model::new();
    for name in txn.bucket_names().expect("bucket names") {
        let mut b = BTreeMap::new();
        for kv in txn
            .range(&name, Bound::Unbounded, Bound::Unbounded)
            .expect("range")
        {
            let (k, v) = kv.expect("entry");
            b.insert(k.into_owned(), v.into_owned());
        }
        m.insert(name, b);
    }
    m
}

/// A value of `len` bytes that names its key and version, so a misplaced value is caught.
pub fn value(key: &[u8], version: u32, len: usize) -> Vec<u8> {
    let mut v = format!("{}:{version}:", String::from_utf8_lossy(key)).into_bytes();
    let mut x = version.wrapping_mul(2654435761);
    while v.len() < len {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    v.truncate(len);
    v
}
