//! The MVCC layer's building blocks (etcd's data model): revisions and their keys in the
//! `key` bucket, a key's history in generations, and the stored `KeyValue` encoding. The
//! store that applies etcd's operations on top of them is built on these.

mod apply;
mod backend;
mod key_index;
mod key_map;
mod kv;
mod maintenance;
mod ops;
mod revision;
mod store;
mod watch;

pub use apply::adds_data;
pub use backend::{BackendDigest, backend_digest, prepare_restored};
pub use key_index::{Generation, KeyAt, KeyIndex};
pub use kv::KeyValue;
pub use ops::*;
pub use revision::{REVISION_KEY_BYTES, Revision, TOMBSTONE_KEY_BYTES};
pub use store::{META_BUCKET, MvccOptions, MvccStore};
pub use watch::{
    Event, EventKind, WATCH_QUEUE_MESSAGES, Waker, WatchMessage, WatchRequest, Watcher,
};
