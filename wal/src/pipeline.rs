//! The hand-off between appenders and the flusher (group commit).
//!
//! Appenders push operations into one queue; whoever makes the next batch durable takes
//! everything queued at once (bounded by bytes), does one write submission and one fdatasync
//! for it, and only then completes each operation, in queue order. One batch is in progress at
//! a time (the `busy` flag), so batches, and completions, follow queue order. Nobody holds the
//! queue lock across I/O: the batch is taken and the lock released before writing. While one
//! batch is written, new pushes pile up and become the next batch, so batches grow with load,
//! and an idle flusher is woken by the first push with no timer in between.
//!
//! Usually the flusher thread makes batches durable. A caller that is going to wait for its
//! operation anyway may instead push without waking the flusher and, if no batch is in
//! progress, take the queue and do the I/O on its own thread ([`Pipeline::push_quiet`],
//! [`Pipeline::try_take`], [`Pipeline::finish`]): a lone appender then pays no thread hand-off
//! on either side of its fdatasync. If a batch is in progress, its finisher wakes the flusher
//! thread, which takes what the caller queued.
//!
//! The synchronisation primitives are a type parameter so that a loom model (in this module's
//! tests) checks exactly this code: no completion is lost, none is signalled before its batch is
//! durable, and after a failure nothing more is acknowledged.

use std::sync::{Condvar, Mutex, PoisonError};

/// A mutex and a condition variable around a value.
pub(crate) trait Monitor<T>: Send + Sync {
    fn new(value: T) -> Self;
    /// Runs `f` under the lock.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
    /// Runs `f` under the lock until it returns `Some`, waiting for a notification in between.
    fn wait_for<R>(&self, f: impl FnMut(&mut T) -> Option<R>) -> R;
    /// Wakes every waiter.
    fn notify_all(&self);
}

/// The production [`Monitor`].
pub(crate) struct StdMonitor<T> {
    lock: Mutex<T>,
    cond: Condvar,
}

impl<T: Send> Monitor<T> for StdMonitor<T> {
    fn new(value: T) -> Self {
        StdMonitor {
            lock: Mutex::new(value),
            cond: Condvar::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }

    fn wait_for<R>(&self, mut f: impl FnMut(&mut T) -> Option<R>) -> R {
        let mut g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(r) = f(&mut g) {
                return r;
            }
            g = self.cond.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn notify_all(&self) {
        self.cond.notify_all();
    }
}

/// An operation waiting in the queue.
pub(crate) trait Pending: Send {
    /// Bytes it adds to a batch (its encoded size, roughly).
    fn bytes(&self) -> usize;
    /// Reports the outcome. Called exactly once.
    fn complete(self, result: Result<(), Refused>);
}

pub(crate) struct QueueState<Op> {
    ops: Vec<Op>,
    /// A batch was taken and is not finished yet.
    busy: bool,
    closed: bool,
    poisoned: Option<String>,
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    Closed,
    Poisoned(String),
}

pub(crate) struct Pipeline<Op, M: Monitor<QueueState<Op>>> {
    mon: M,
    batch_bytes_max: usize,
    _op: std::marker::PhantomData<fn(Op)>,
}

impl<Op: Pending, M: Monitor<QueueState<Op>>> Pipeline<Op, M> {
    pub fn new(batch_bytes_max: usize) -> Self {
        Pipeline {
            mon: M::new(QueueState {
                ops: Vec::new(),
                busy: false,
                closed: false,
                poisoned: None,
            }),
            batch_bytes_max,
            _op: std::marker::PhantomData,
        }
    }

    /// Queues `op`, or hands it back if the pipeline no longer accepts work. Checking and
    /// queueing happen under one lock acquisition.
    pub fn push(&self, op: Op) -> Result<(), (Op, Refused)> {
        if self.queue(op)? {
            self.mon.notify_all();
        }
        Ok(())
    }

    /// [`push`](Self::push) without waking the flusher thread: for a caller that then calls
    /// [`try_take`](Self::try_take) and, if that returns `None`, waits for the batch in
    /// progress, whose [`finish`](Self::finish) wakes the flusher thread.
    pub fn push_quiet(&self, op: Op) -> Result<(), (Op, Refused)> {
        self.queue(op).map(|_| ())
    }

    /// Queues `op` unless refused; returns whether the queue was empty before.
    fn queue(&self, op: Op) -> Result<bool, (Op, Refused)> {
        self.mon.with(|q| {
            if let Some(cause) = &q.poisoned {
                return Err((op, Refused::Poisoned(cause.clone())));
            }
            if q.closed {
                return Err((op, Refused::Closed));
            }
            q.ops.push(op);
            Ok(q.ops.len() == 1)
        })
    }

    /// Takes a prefix of the queue of at most `batch_bytes_max` bytes (at least one op).
    fn take_prefix(&self, q: &mut QueueState<Op>) -> Vec<Op> {
        let max = self.batch_bytes_max;
        let mut bytes = 0usize;
        let mut n = 0usize;
        for op in &q.ops {
            bytes = bytes.saturating_add(op.bytes());
            if n > 0 && bytes > max {
                break;
            }
            n += 1;
        }
        let rest = q.ops.split_off(n);
        q.busy = true;
        std::mem::replace(&mut q.ops, rest)
    }

    /// Blocks until work is queued and no batch is in progress, then takes the next batch;
    /// the caller must [`finish`](Self::finish) it. `None` once closed and drained, or
    /// poisoned.
    pub fn take(&self) -> Option<Vec<Op>> {
        self.mon.wait_for(|q| {
            if q.poisoned.is_some() {
                return Some(None);
            }
            if !q.ops.is_empty() && !q.busy {
                return Some(Some(self.take_prefix(q)));
            }
            if q.closed && q.ops.is_empty() {
                return Some(None);
            }
            None
        })
    }

    /// The next batch, if work is queued and no batch is in progress; the caller must
    /// [`finish`](Self::finish) it.
    pub fn try_take(&self) -> Option<Vec<Op>> {
        self.mon.with(|q| {
            if q.poisoned.is_some() || q.busy || q.ops.is_empty() {
                return None;
            }
            Some(self.take_prefix(q))
        })
    }

    /// Ends a batch from [`take`](Self::take) or [`try_take`](Self::try_take) once `result`
    /// says whether it is durable: completes its ops in order, then lets the next batch start.
    /// On failure the pipeline is poisoned and every op of the batch and of the queue fails.
    /// Returns whether the batch was durable.
    pub fn finish(&self, batch: Vec<Op>, result: Result<(), String>) -> bool {
        let durable = match result {
            Ok(()) => {
                for op in batch {
                    op.complete(Ok(()));
                }
                true
            }
            Err(cause) => {
                let rest = self.poison(&cause);
                for op in batch.into_iter().chain(rest) {
                    op.complete(Err(Refused::Poisoned(cause.clone())));
                }
                false
            }
        };
        // Freed only after the completions, so that the next batch's come after them.
        self.mon.with(|q| q.busy = false);
        self.mon.notify_all();
        durable
    }

    /// Refuses all further work and returns what was still queued.
    pub fn poison(&self, cause: &str) -> Vec<Op> {
        let rest = self.mon.with(|q| {
            if q.poisoned.is_none() {
                q.poisoned = Some(cause.to_string());
            }
            std::mem::take(&mut q.ops)
        });
        self.mon.notify_all();
        rest
    }

    /// Refuses further work; queued work is still flushed.
    pub fn close(&self) {
        self.mon.with(|q| q.closed = true);
        self.mon.notify_all();
    }

    /// The failure that poisoned the pipeline, if any.
    pub fn poisoned(&self) -> Option<String> {
        self.mon.with(|q| q.poisoned.clone())
    }

    /// The flusher loop: take a batch, make it durable with `io`, then
    /// [`finish`](Self::finish) it. Returns when the pipeline is closed and drained, or
    /// poisoned.
    pub fn run_flusher(&self, mut io: impl FnMut(&[Op]) -> Result<(), String>) {
        while let Some(batch) = self.take() {
            let result = io(&batch);
            if !self.finish(batch, result) {
                return;
            }
        }
        // Poisoned: fail anything that slipped in (nothing can, but be total).
        let leftover = self.mon.with(|q| {
            if q.poisoned.is_some() {
                std::mem::take(&mut q.ops)
            } else {
                Vec::new()
            }
        });
        let failure = match self.poisoned() {
            Some(cause) => Refused::Poisoned(cause),
            None => Refused::Closed,
        };
        for op in leftover {
            op.complete(Err(failure.clone()));
        }
    }
}

pub(crate) type StdPipeline<Op> = Pipeline<Op, StdMonitor<QueueState<Op>>>;

#[cfg(test)]
mod loom_model {
    //! Loom explores every interleaving of two appenders and the flusher (bounded preemptions).
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, Ordering};

    struct LoomMonitor<T> {
        lock: loom::sync::Mutex<T>,
        cond: loom::sync::Condvar,
    }

    impl<T: Send> Monitor<T> for LoomMonitor<T> {
        fn new(value: T) -> Self {
            LoomMonitor {
                lock: loom::sync::Mutex::new(value),
                cond: loom::sync::Condvar::new(),
            }
        }
        fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            let mut g = self.lock.lock().unwrap();
            f(&mut g)
        }
        fn wait_for<R>(&self, mut f: impl FnMut(&mut T) -> Option<R>) -> R {
            let mut g = self.lock.lock().unwrap();
            loop {
                if let Some(r) = f(&mut g) {
                    return r;
                }
                g = self.cond.wait(g).unwrap();
            }
        }
        fn notify_all(&self) {
            self.cond.notify_all();
        }
    }

    /// What the model observes.
    struct World {
        /// Highest op sequence number made durable by the (model) flusher.
        durable: AtomicU64,
        /// Bit i set when op i completed successfully; bit 32+i when it failed.
        completed: AtomicU64,
        /// The last op completed successfully: successes come in op order.
        last_ok: AtomicU64,
    }

    struct Op {
        seq: u64,
        world: Arc<World>,
    }

    impl Pending for Op {
        fn bytes(&self) -> usize {
            1
        }
        fn complete(self, result: Result<(), Refused>) {
            let bit = match result {
                Ok(()) => {
                    // No completion before its batch is durable.
                    assert!(self.world.durable.load(Ordering::SeqCst) >= self.seq);
                    let prev = self.world.last_ok.swap(self.seq, Ordering::SeqCst);
                    assert!(prev < self.seq, "op {} completed after op {prev}", self.seq);
                    1u64 << self.seq
                }
                Err(_) => 1u64 << (32 + self.seq),
            };
            let before = self.world.completed.fetch_or(bit, Ordering::SeqCst);
            // Exactly once, and never both outcomes.
            assert_eq!(before & ((1 << self.seq) | (1 << (32 + self.seq))), 0);
        }
    }

    type LoomPipeline = Pipeline<Op, LoomMonitor<QueueState<Op>>>;

    fn model(fail_on_batch: Option<usize>) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(move || {
            let world = Arc::new(World {
                durable: AtomicU64::new(0),
                completed: AtomicU64::new(0),
                last_ok: AtomicU64::new(0),
            });
            // Batches of at most 2 ops so that more than one batch is possible.
            let pipe: Arc<LoomPipeline> = Arc::new(Pipeline::new(2));
            // Sequence numbers are assigned under one lock, as the WAL's state lock does.
            let seq_lock = Arc::new(loom::sync::Mutex::new(0u64));
            // The batch counter is shared: the flusher thread and a caller flushing on its own
            // thread make batches durable with the same `io`.
            let batches = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let io = {
                let world = world.clone();
                let batches = batches.clone();
                move |batch: &[Op]| -> Result<(), String> {
                    let n = batches.fetch_add(1, Ordering::SeqCst) + 1;
                    if Some(n) == fail_on_batch {
                        return Err("injected".into());
                    }
                    let top = batch.iter().map(|o| o.seq).max().unwrap_or(0);
                    world.durable.fetch_max(top, Ordering::SeqCst);
                    Ok(())
                }
            };
            let flusher = {
                let pipe = pipe.clone();
                let io = io.clone();
                loom::thread::spawn(move || pipe.run_flusher(io))
            };
            let mut appenders = Vec::new();
            // Appender 0 leaves its ops to the flusher thread; appender 1 pushes quietly and
            // makes the queue durable itself when no batch is in progress.
            for here in [false, true] {
                let pipe = pipe.clone();
                let world = world.clone();
                let seq_lock = seq_lock.clone();
                let io = io.clone();
                appenders.push(loom::thread::spawn(move || {
                    for _ in 0..2 {
                        let mut g = seq_lock.lock().unwrap();
                        *g += 1;
                        let op = Op {
                            seq: *g,
                            world: world.clone(),
                        };
                        let pushed = if here {
                            pipe.push_quiet(op)
                        } else {
                            pipe.push(op)
                        };
                        if let Err((op, _)) = pushed {
                            // Refused work is reported to its caller as an error.
                            op.complete(Err(Refused::Closed));
                        }
                        drop(g);
                        if here && let Some(batch) = pipe.try_take() {
                            let result = io(&batch);
                            pipe.finish(batch, result);
                        }
                    }
                }));
            }
            for a in appenders {
                a.join().unwrap();
            }
            pipe.close();
            flusher.join().unwrap();
            // Every op (1..=4) completed exactly once.
            let done = world.completed.load(Ordering::SeqCst);
            for seq in 1..=4u64 {
                let ok = done & (1 << seq) != 0;
                let err = done & (1 << (32 + seq)) != 0;
                assert!(ok ^ err, "op {seq} completed {ok}/{err}");
            }
            if fail_on_batch.is_some() {
                // Successes form a prefix: after the first failure nothing is acknowledged.
                let mut seen_err = false;
                for seq in 1..=4u64 {
                    let ok = done & (1 << seq) != 0;
                    assert!(!(seen_err && ok), "op {seq} acknowledged after a failure");
                    seen_err |= !ok;
                }
            }
        });
    }

    #[test]
    fn loom_no_completion_lost_or_early() {
        model(None);
    }

    #[test]
    fn loom_failure_poisons_and_acknowledges_nothing_after() {
        model(Some(1));
        model(Some(2));
    }
}
