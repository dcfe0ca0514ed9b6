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

use std::ops::Bound;

use crate::btree::ReadTxn;
use crate::mvcc::kv::KeyValue;
use crate::mvcc::ops::MvccError;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::{Change, Index, KEY_BUCKET, MvccStore, storage};

/// Revisions a catch-up reads from the tree per step.
const CATCH_UP_REVISIONS: i64 = 1000;

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
    /// Called after the applier or a progress notice put a message in the queue.
    pub waker: Option<Waker>,
}

/// Wakes a watcher's reader (see [`MvccStore::watch_with_waker`]).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

impl WatcherState {
    fn send(&self, m: WatchMessage) -> Result<(), TrySendError<WatchMessage>> {
        self.tx.try_send(m)?;
        if let Some(w) = &self.waker {
            w();
        }
        Ok(())
    }
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
            match w.send(WatchMessage::Events {
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

    /// The next message if one is ready, without waiting. A watcher behind the store catches
    /// up from the tree here, as its queue drains. `None` also once the watch has ended
    /// (after [`WatchMessage::Compacted`]).
    pub fn try_recv(&self) -> Result<Option<WatchMessage>, MvccError> {
        match self.rx.try_recv() {
            Ok(m) => return Ok(Some(m)),
            Err(TryRecvError::Disconnected) => return Ok(None),
            Err(TryRecvError::Empty) => {}
        }
        self.store.catch_up(self.id)?;
        Ok(self.rx.try_recv().ok())
    }

    /// The next queued message, without catching up: never reads the tree, so it is cheap
    /// enough to call from an async task. `None` when the queue is empty (then
    /// [`try_recv`](Self::try_recv) may find more, if [`catching_up`](Self::catching_up)).
    pub fn try_recv_queued(&self) -> Option<WatchMessage> {
        self.rx.try_recv().ok()
    }

    /// Whether the watcher is behind the store, so that [`try_recv`](Self::try_recv) may read
    /// history from the tree (the slow path). Takes the hub lock, never the index.
    pub fn catching_up(&self) -> Result<bool, MvccError> {
        self.store.watcher_catching_up(self.id)
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

// The store's side of watching: registering watchers, catching them up from the tree, and
// the events a change makes. The applier's side is `Hub::notify`.
impl MvccStore {
    pub(crate) fn lock_hub(&self) -> Result<std::sync::MutexGuard<'_, Hub>, MvccError> {
        self.hub
            .lock()
            .map_err(|_| storage("watch hub lock poisoned"))
    }

    /// Starts a watch. Events from `start_revision` on (0: from the next revision) arrive in
    /// revision order, one message per revision, each exactly once; a start revision below
    /// the compaction revision gets [`WatchMessage::Compacted`] and the watch ends.
    pub fn watch(self: &Arc<Self>, req: WatchRequest) -> Result<Watcher, MvccError> {
        self.watch_with_waker(req, None)
    }

    /// [`watch`](Self::watch), calling `waker` whenever a message is queued for the watcher
    /// by someone else (the applier, a progress notice), so an async reader can sleep until
    /// then and drain with [`Watcher::try_recv`]. The waker runs under the hub lock: it must
    /// only signal (e.g. `tokio::sync::Notify::notify_one`).
    pub fn watch_with_waker(
        self: &Arc<Self>,
        req: WatchRequest,
        waker: Option<Waker>,
    ) -> Result<Watcher, MvccError> {
        let current = self.revision()?;
        let (tx, rx) = channel();
        let next = if req.start_revision <= 0 {
            current + 1
        } else {
            req.start_revision
        };
        let id = {
            let mut hub = self.lock_hub()?;
            let id = hub.next_id;
            hub.next_id += 1;
            hub.watchers.insert(
                id,
                WatcherState {
                    req,
                    tx,
                    next,
                    synced: false,
                    progress: false,
                    waker,
                },
            );
            id
        };
        self.catch_up(id)?;
        Ok(Watcher {
            id,
            rx,
            store: self.clone(),
        })
    }

    pub(crate) fn cancel_watch(&self, id: u64) {
        if let Ok(mut hub) = self.hub.lock() {
            hub.watchers.remove(&id);
        }
    }

    pub(crate) fn watcher_catching_up(&self, id: u64) -> Result<bool, MvccError> {
        Ok(self
            .lock_hub()?
            .watchers
            .get(&id)
            .is_some_and(|w| !w.synced))
    }

    pub(crate) fn request_progress(&self, id: u64) -> Result<(), MvccError> {
        let mut hub = self.lock_hub()?;
        let current = self.revision()?;
        if let Some(w) = hub.watchers.get_mut(&id) {
            // Sent now if the watcher has everything up to `current` and room for it; otherwise
            // once it has caught up and its queue has drained.
            if !w.synced
                || w.send(WatchMessage::Progress { revision: current })
                    .is_err()
            {
                w.progress = true;
            }
        }
        Ok(())
    }

    /// Sends a progress notification to every watcher that has everything up to the current
    /// revision (etcd's periodic progress notify).
    pub fn progress_all(&self) -> Result<(), MvccError> {
        let mut hub = self.lock_hub()?;
        let current = self.revision()?;
        for w in hub.watchers.values_mut().filter(|w| w.synced) {
            let _ = w.send(WatchMessage::Progress { revision: current });
        }
        Ok(())
    }

    /// Brings an unsynced watcher forward from the tree until its queue is full or it has
    /// reached the current revision (then it is synced).
    pub(crate) fn catch_up(&self, id: u64) -> Result<(), MvccError> {
        loop {
            let (req, next) = {
                let mut hub = self.lock_hub()?;
                match hub.watchers.get_mut(&id) {
                    Some(w) if !w.synced => (w.req.clone(), w.next),
                    Some(w) => {
                        // A progress notice that found the queue full is sent once it drains.
                        if w.progress {
                            let revision = self.revision()?;
                            if w.tx.try_send(WatchMessage::Progress { revision }).is_ok() {
                                w.progress = false;
                            }
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            };
            let (batch, upper, compacted) = {
                let idx = self.read_index()?;
                if next < idx.compacted {
                    (Vec::new(), next - 1, Some(idx.compacted))
                } else {
                    let upper = idx.current.min(next.saturating_add(CATCH_UP_REVISIONS - 1));
                    let snap = self.db.begin_read().map_err(storage)?;
                    let (batch, upper) =
                        history(&idx, &snap, &req, next, upper, WATCH_QUEUE_MESSAGES)?;
                    (batch, upper, None)
                }
            };
            let mut hub = self.lock_hub()?;
            let Some(w) = hub.watchers.get_mut(&id) else {
                return Ok(());
            };
            if w.synced || w.next != next {
                continue;
            }
            if let Some(compact_revision) = compacted {
                // Cancelled once the queue takes the notice; until then it stays behind.
                if w.tx
                    .try_send(WatchMessage::Compacted { compact_revision })
                    .is_ok()
                {
                    hub.watchers.remove(&id);
                }
                return Ok(());
            }
            for (revision, events) in batch {
                match w.tx.try_send(WatchMessage::Events { revision, events }) {
                    Ok(()) => w.next = revision + 1,
                    Err(TrySendError::Full(_)) => return Ok(()),
                    Err(TrySendError::Disconnected(_)) => {
                        hub.watchers.remove(&id);
                        return Ok(());
                    }
                }
            }
            // A start in the future stays where it is.
            w.next = w.next.max(upper + 1);
            let current = self.revision()?;
            if w.next > current {
                w.synced = true;
                if w.progress
                    && w.tx
                        .try_send(WatchMessage::Progress { revision: current })
                        .is_ok()
                {
                    w.progress = false;
                }
                return Ok(());
            }
        }
    }
}

/// The event a change makes.
pub(crate) fn to_event(c: &Change) -> Event {
    Event {
        kind: if c.tombstone {
            EventKind::Delete
        } else {
            EventKind::Put
        },
        kv: c.kv.clone(),
        prev_kv: c.prev.clone(),
    }
}

/// One revision's events, as a catch-up step reads them.
type RevisionEvents = (i64, Vec<Event>);

/// Revisions `[from, upper]` of the tree as `req` wants them, one entry per revision with
/// matching events, but at most `revisions_max` entries (a watcher's queue takes no more at
/// once; reading past that decoded values and previous values that were thrown away and
/// read again at the next step). Returns them and the last revision covered: `upper`, or
/// the revision before the first one left out. Runs under the index lock (for previous
/// values), on a snapshot taken under it.
fn history(
    idx: &Index,
    snap: &ReadTxn,
    req: &WatchRequest,
    from: i64,
    upper: i64,
    revisions_max: usize,
) -> Result<(Vec<RevisionEvents>, i64), MvccError> {
    let start = Revision::main_start_key(from);
    let end = Revision::main_start_key(upper.saturating_add(1));
    let probe = WatcherState {
        req: req.clone(),
        tx: channel().0,
        next: 0,
        synced: false,
        progress: false,
        waker: None,
    };
    let mut out: Vec<RevisionEvents> = Vec::new();
    for item in snap
        .range(KEY_BUCKET, Bound::Included(&start), Bound::Excluded(&end))
        .map_err(storage)?
    {
        let (k, v) = item.map_err(storage)?;
        let (rev, tombstone) = Revision::from_key(&k).map_err(storage)?;
        // Every revision before this one is covered, matching or not.
        if out.len() >= revisions_max && out.last().is_some_and(|(r, _)| *r < rev.main) {
            return Ok((out, rev.main - 1));
        }
        let stored = KeyValue::decode(&v).map_err(storage)?;
        let kv = if tombstone {
            KeyValue {
                key: stored.key,
                mod_revision: rev.main,
                ..KeyValue::default()
            }
        } else {
            stored
        };
        let mut e = Event {
            kind: if tombstone {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv,
            prev_kv: None,
        };
        if !probe.matches(&e) {
            continue;
        }
        if req.prev_kv
            && let Some(at) = idx.keys.get(&e.kv.key).and_then(|ki| ki.get(rev.main - 1))
            && let Some(v) = snap
                .get(KEY_BUCKET, &at.modified.to_key(false))
                .map_err(storage)?
        {
            e.prev_kv = Some(KeyValue::decode(&v).map_err(storage)?);
        }
        match out.last_mut() {
            Some((r, events)) if *r == rev.main => events.push(e),
            _ => out.push((rev.main, vec![e])),
        }
    }
    Ok((out, upper))
}
