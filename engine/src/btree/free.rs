//! Free pages and reader tracking: when a page may be written again.
//!
//! A page freed by transaction `T` (it is reachable from `T - 1`'s tree but not from `T`'s)
//! may be reused only when both hold:
//! - no live reader can see it: every live reader's snapshot is at least `T` (a reader of
//!   snapshot `R < T` can still reach it);
//! - the freeing is durable: `T` is at most the last durable transaction. Until then the tree
//!   on disk (the one a crash falls back to) may still reach it.
//!
//! So pages freed by `T` become reusable once `T <= horizon`, where `horizon` is the minimum of
//! the oldest live reader's snapshot and the last durable transaction. A reader registers
//! under the same lock under which the writer publishes snapshots and reads the oldest reader,
//! so a reader can never start on a snapshot older than one the writer has already ruled out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use crate::btree::{PageId, TxnId};

/// Pages free now (`released`) or once their freeing transaction passes the horizon.
#[derive(Debug, Default)]
pub(crate) struct FreePages {
    released: BTreeSet<u64>,
    pending: BTreeMap<TxnId, Vec<PageId>>,
}

impl FreePages {
    pub(crate) fn from_released(ids: &[PageId]) -> Self {
        FreePages {
            released: ids.iter().map(|p| p.0).collect(),
            pending: BTreeMap::new(),
        }
    }

    /// Moves every page freed by a transaction `<= horizon` to the reusable set.
    pub(crate) fn release_up_to(&mut self, horizon: TxnId) {
        let later = self.pending.split_off(&TxnId(horizon.0.saturating_add(1)));
        let ready = std::mem::replace(&mut self.pending, later);
        for ids in ready.into_values() {
            self.released.extend(ids.iter().map(|p| p.0));
        }
    }

    /// Records that `txn` freed the `pages`-page run at `id`.
    pub(crate) fn free(&mut self, txn: TxnId, id: PageId, pages: u64) {
        let list = self.pending.entry(txn).or_default();
        list.extend((id.0..id.0 + pages).map(PageId));
    }

    /// Takes `n` contiguous reusable pages, lowest first.
    pub(crate) fn alloc(&mut self, n: u64) -> Option<PageId> {
        if n == 1 {
            return self.released.pop_first().map(PageId);
        }
        let mut run_start = 0;
        let mut run_len = 0;
        let mut found = None;
        for &id in &self.released {
            if run_len > 0 && id == run_start + run_len {
                run_len += 1;
            } else {
                run_start = id;
                run_len = 1;
            }
            if run_len == n {
                found = Some(run_start);
                break;
            }
        }
        let start = found?;
        for id in start..start + n {
            self.released.remove(&id);
        }
        Some(PageId(start))
    }

    /// Drops the run of reusable pages that ends the file (`[new_count, page_count)`, every
    /// one of them reusable now: reachable from no live snapshot and not from the durable
    /// tree) from the free set and returns `new_count`, the file's new page count.
    pub(crate) fn cut_tail(&mut self, page_count: u64) -> u64 {
        let mut end = page_count;
        for &id in self.released.iter().rev() {
            if id + 1 != end {
                break;
            }
            end = id;
        }
        // Meta pages are never free; keep them regardless.
        let end = end.max(2);
        drop(self.released.split_off(&end));
        end
    }

    /// Every free page, reusable or pending, ascending.
    pub(crate) fn all(&self) -> Vec<PageId> {
        let mut v: Vec<PageId> = self.released.iter().map(|&p| PageId(p)).collect();
        for ids in self.pending.values() {
            v.extend_from_slice(ids);
        }
        v.sort_unstable();
        v
    }

    pub(crate) fn count(&self) -> usize {
        self.released.len() + self.pending.values().map(Vec::len).sum::<usize>()
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

/// The published snapshot and the live readers, kept under one lock.
#[derive(Debug)]
pub(crate) struct Readers<S> {
    current: Arc<S>,
    live: BTreeMap<(TxnId, u64), Instant>,
    next_id: u64,
}

impl<S> Readers<S> {
    pub(crate) fn new(current: Arc<S>) -> Self {
        Readers {
            current,
            live: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Registers a reader of the current snapshot.
    pub(crate) fn begin(&mut self, txn_of: impl Fn(&S) -> TxnId) -> (Arc<S>, u64) {
        let id = self.next_id;
        self.next_id += 1;
        self.live
            .insert((txn_of(&self.current), id), Instant::now());
        (self.current.clone(), id)
    }

    pub(crate) fn end(&mut self, txn: TxnId, id: u64) {
        self.live.remove(&(txn, id));
    }

    pub(crate) fn current(&self) -> Arc<S> {
        self.current.clone()
    }

    pub(crate) fn publish(&mut self, snapshot: Arc<S>) {
        self.current = snapshot;
    }

    /// The oldest live reader's snapshot and when it started. Readers start in snapshot order,
    /// so the first entry is also the longest-lived.
    pub(crate) fn oldest(&self) -> Option<(TxnId, Instant)> {
        self.live.first_key_value().map(|(&(t, _), &at)| (t, at))
    }

    pub(crate) fn count(&self) -> usize {
        self.live.len()
    }
}

/// The reuse horizon: pages freed by a transaction `<=` this may be written again.
pub(crate) fn horizon(oldest_reader: Option<TxnId>, durable: TxnId) -> TxnId {
    match oldest_reader {
        Some(r) => TxnId(r.0.min(durable.0)),
        None => durable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_wait_for_readers_and_durability() {
        let mut f = FreePages::default();
        f.free(TxnId(5), PageId(10), 2);
        f.release_up_to(horizon(Some(TxnId(4)), TxnId(9)));
        assert_eq!(
            f.alloc(1),
            None,
            "a reader of snapshot 4 can still see pages freed by 5"
        );
        f.release_up_to(horizon(None, TxnId(4)));
        assert_eq!(f.alloc(1), None, "freeing by 5 is not durable before 5");
        f.release_up_to(horizon(Some(TxnId(5)), TxnId(5)));
        assert_eq!(f.alloc(2), Some(PageId(10)));
        assert_eq!(f.count(), 0);
    }

    #[test]
    fn cut_tail_drops_only_the_reusable_run_at_the_end() {
        let mut f = FreePages::from_released(&[PageId(3), PageId(7), PageId(8), PageId(9)]);
        f.free(TxnId(4), PageId(5), 1);
        assert_eq!(f.cut_tail(10), 7);
        assert_eq!(f.all(), vec![PageId(3), PageId(5)]);
        assert_eq!(f.cut_tail(12), 12, "page 11 is in use: nothing to cut");
    }

    #[test]
    fn alloc_finds_contiguous_runs() {
        let mut f =
            FreePages::from_released(&[PageId(3), PageId(5), PageId(6), PageId(7), PageId(9)]);
        assert_eq!(f.alloc(3), Some(PageId(5)));
        assert_eq!(f.alloc(2), None);
        assert_eq!(f.all(), vec![PageId(3), PageId(9)]);
    }
}

/// A loom model of the reader/writer protocol: a writer that frees, reclaims and rewrites
/// pages while readers pin snapshots; no reader ever sees a page rewritten under it.
#[cfg(test)]
mod loom_model {
    use super::*;
    use loom::sync::Mutex;
    use loom::sync::atomic::{AtomicU64, Ordering};

    /// A snapshot of a one-page tree: the page it reaches and the content it expects there.
    struct Snap {
        txn: TxnId,
        page: PageId,
    }

    #[test]
    fn loom_reclaimed_pages_are_invisible_to_live_readers() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            // Pages 0..3 hold the txn id that last wrote them.
            let pages: loom::sync::Arc<Vec<AtomicU64>> =
                loom::sync::Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
            let readers = loom::sync::Arc::new(Mutex::new(Readers::new(Arc::new(Snap {
                txn: TxnId(0),
                page: PageId(0),
            }))));
            let durable = loom::sync::Arc::new(AtomicU64::new(0));

            let r = {
                let (pages, readers) = (pages.clone(), readers.clone());
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        let (snap, id) = readers.lock().unwrap().begin(|s| s.txn);
                        let seen = pages[snap.page.0 as usize].load(Ordering::Acquire);
                        assert_eq!(
                            seen, snap.txn.0,
                            "page {} rewritten under a live reader",
                            snap.page.0
                        );
                        readers.lock().unwrap().end(snap.txn, id);
                    }
                })
            };

            // The writer: each transaction copies the page to a new one, frees the old one,
            // and is durable at once (the durable horizon is exercised in the unit tests).
            let mut free = FreePages::from_released(&[PageId(1), PageId(2)]);
            let mut cur = Snap {
                txn: TxnId(0),
                page: PageId(0),
            };
            for t in 1..=3u64 {
                let oldest = readers.lock().unwrap().oldest().map(|(t, _)| t);
                free.release_up_to(horizon(oldest, TxnId(durable.load(Ordering::Acquire))));
                let Some(new_page) = free.alloc(1) else {
                    continue;
                };
                pages[new_page.0 as usize].store(t, Ordering::Release);
                free.free(TxnId(t), cur.page, 1);
                cur = Snap {
                    txn: TxnId(t),
                    page: new_page,
                };
                readers.lock().unwrap().publish(Arc::new(Snap {
                    txn: cur.txn,
                    page: cur.page,
                }));
                durable.store(t, Ordering::Release);
            }
            r.join().unwrap();
        });
    }
}
