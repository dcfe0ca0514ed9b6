//! The watch hub: watchers on a key or range from a start revision.
//!
//! Every watcher has a bounded queue. It is **synced** when it has been given every revision
//! up to the store's current one: then the applier hands it each new revision's events as it
//! publishes them. A watcher that is behind — it started in the past, or its queue was full
//! when the applier came by — is **unsynced**: it catches up by reading history from the tree,
//! revision by revision, as its reader drains the queue, and becomes synced again once it has
//! reached the current revision. So a slow watcher costs a bounded queue, never memory without
//! bound, and never loses or repeats an event.
//!
//! Rules that make delivery exact:
//! - A watcher's `next` is the first revision it has not been given. The applier and the
//!   catch-up only give revisions `>= next`, in order, and move `next` past them, under the hub
//!   lock.
//! - The applier publishes a revision in the index before it takes the hub lock to notify;
//!   a catch-up marks a watcher synced only under the hub lock and only when `next` is past the
//!   index's current revision. A revision published in between is then either read from the
//!   tree by the catch-up (it is not synced yet) or notified by the applier (after it is).
//! - A message holds one revision's events, in the order they were written.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::mvcc::kv::KeyValue;
use crate::mvcc::ops::MvccError;

/// Messages a watcher's queue holds (each is one revision's events).
pub const WATCH_QUEUE_MESSAGES: usize = 64;

/// What a watch asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// As in a range request: empty for one key, `"\0"` for every key from `key` on.
    pub range_end: Vec<u8>,
    /// The first revision to report (0: the next one).
    pub start_revision: i64,
    /// Attach each event's previous key-value.
    pub prev_kv: bool,
    /// Leave out put events (etcd's NOPUT filter).
    pub no_put: bool,
    /// Leave out delete events (etcd's NODELETE filter).
    pub no_delete: bool,
}

/// Put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key-value after a put; the key and the deleting revision for a delete.
    pub kv: KeyValue,
    /// The key-value before, when asked for and still retained.
    pub prev_kv: Option<KeyValue>,
}

/// What a watcher receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// The events of one revision.
    Events {
        /// The revision.
        revision: i64,
        /// Its events that match the watch, in write order.
        events: Vec<Event>,
    },
    /// Every revision up to `revision` has been delivered.
    Progress {
        /// The revision.
        revision: i64,
    },
    /// The start revision is compacted: the watcher is cancelled (etcd's compact_revision).
    Compacted {
        /// The compaction revision.
        compact_revision: i64,
    },
}

pub(crate) struct WatcherState {
    pub req: WatchRequest,
    pub tx: SyncSender<WatchMessage>,
    pub next: i64,
    pub synced: bool,
    /// A progress notification was asked for while the watcher was behind.
    pub progress: bool,
}

impl WatcherState {
    pub(crate) fn matches(&self, e: &Event) -> bool {
        let k = e.kv.key.as_slice();
        let (key, end) = (self.req.key.as_slice(), self.req.range_end.as_slice());
        let in_range = if end.is_empty() {
            k == key
        } else if end == [0] {
            k >= key
        } else {
            k >= key && k < end
        };
        in_range
            && !(self.req.no_put && e.kind == EventKind::Put)
            && !(self.req.no_delete && e.kind == EventKind::Delete)
    }

    /// The events of a revision as this watcher wants them.
    pub(crate) fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| self.matches(e))
            .map(|e| {
                let mut e = e.clone();
                if !self.req.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

#[derive(Default)]
pub(crate) struct Hub {
    pub watchers: HashMap<u64, WatcherState>,
    pub next_id: u64,
}

impl Hub {
    /// Hands one published revision to every synced watcher it concerns.
    pub(crate) fn notify(&mut self, revision: i64, events: &[Event]) {
        let mut gone = Vec::new();
        for (id, w) in self.watchers.iter_mut() {
            if !w.synced || w.next > revision {
                continue;
            }
            let selected = w.select(events);
            if selected.is_empty() {
                w.next = revision + 1;
                continue;
            }
            match w.tx.try_send(WatchMessage::Events {
                revision,
                events: selected,
            }) {
                Ok(()) => w.next = revision + 1,
                // Full: fall back to catching up from the tree, starting at this revision.
                Err(TrySendError::Full(_)) => w.synced = false,
                Err(TrySendError::Disconnected(_)) => gone.push(*id),
            }
        }
        for id in gone {
            self.watchers.remove(&id);
        }
    }
}

/// A watcher. Dropping it cancels the watch.
pub struct Watcher {
    pub(crate) id: u64,
    pub(crate) rx: Receiver<WatchMessage>,
    pub(crate) store: Arc<crate::mvcc::store::MvccStore>,
}

impl Watcher {
    /// The watch ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next message, waiting at most `timeout`. A watcher behind the store catches up
    /// from the tree here, as its queue drains.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<WatchMessage>, MvccError> {
        match self.rx.try_recv() {
            Ok(m) => return Ok(Some(m)),
            Err(TryRecvError::Disconnected) => return Ok(None),
            Err(TryRecvError::Empty) => {}
        }
        self.store.catch_up(self.id)?;
        Ok(self.rx.recv_timeout(timeout).ok())
    }

    /// Asks for a progress notification: sent at once if the watcher has every revision up
    /// to the current one, otherwise once it has caught up (etcd's WatchProgressRequest).
    pub fn request_progress(&self) -> Result<(), MvccError> {
        self.store.request_progress(self.id)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.store.cancel_watch(self.id);
    }
}

pub(crate) type HubLock = Mutex<Hub>;

pub(crate) fn channel() -> (SyncSender<WatchMessage>, Receiver<WatchMessage>) {
    sync_channel(WATCH_QUEUE_MESSAGES)
}
