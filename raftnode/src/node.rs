//! The raft node: opens the WAL and the store, runs openraft over them, and offers the server
//! what it needs — writes through raft, linearizable read barriers, leases on the leader's
//! clock, status — without exposing openraft's types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use strata_engine::btree::Options as DbOptions;
use strata_engine::mvcc::{
    Applied, LeaseInfo, MvccError, MvccOptions, MvccStore, WriteRequest, WriteResponse,
};
use strata_wal::{BackendChoice, Wal, WalOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::NodeError;
use crate::identity::Identity;
use crate::log_store::LogStore;
use crate::network::Network;
use crate::state_machine::{StateMachine, StoreCell};
use crate::types::{Batch, MemberInfo, TypeConfig, Waiters, WriteWaiter};

/// How long a write or read barrier may wait for raft (etcd's request timeout for the default
/// 100 ms heartbeat: 5 s plus 2 × election timeout).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The data directory (`--data-dir`); the node keeps everything under `member/` in it.
    pub data_dir: PathBuf,
    /// This member's name and URLs.
    pub member: MemberInfo,
    /// `--initial-cluster-token`: part of the member and cluster IDs on first start.
    pub cluster_token: String,
    /// Raft heartbeat interval (etcd's `--heartbeat-interval`, 100 ms).
    pub heartbeat: Duration,
    /// Raft election timeout (etcd's `--election-timeout`, 1000 ms).
    pub election_timeout: Duration,
    /// Applied entries between raft snapshots (etcd's `--snapshot-count`, 100,000); the log
    /// is purged up to a snapshot, keeping `catch_up_entries` behind it.
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot (etcd's 5,000).
    pub catch_up_entries: u64,
    /// The engine's B+tree options.
    pub db: DbOptions,
    /// The MVCC store's options.
    pub mvcc: MvccOptions,
    /// The WAL's options.
    pub wal: WalOptions,
    /// Where the WAL lives (etcd's `--wal-dir`); `None`: `member/wal` in the data directory.
    pub wal_dir: Option<PathBuf>,
}

impl NodeOptions {
    /// etcd's defaults for a member named `name` in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>, member: MemberInfo) -> Self {
        NodeOptions {
            data_dir: data_dir.into(),
            member,
            cluster_token: "etcd-cluster".into(),
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_count: 100_000,
            catch_up_entries: 5_000,
            db: DbOptions::default(),
            mvcc: MvccOptions::default(),
            wal: WalOptions {
                backend: wal_backend(),
                hot_tail_bytes_max: HOT_TAIL_BYTES_MAX,
                ..WalOptions::default()
            },
            wal_dir: None,
        }
    }
}

/// The WAL backend a node uses: `STRATA_WAL_BACKEND` when set, else pwrite + fdatasync.
///
/// The raft node keeps one WAL batch in flight, and an io_uring fsync never completes inline:
/// the kernel runs it on an io-wq worker that then wakes the flusher, one more thread hop per
/// commit with nothing to overlap it. Side by side through the server (docs/benchmarks.md,
/// "Issue 7"), the portable backend served a lone client 1.45–2.2× faster and 1,000 clients
/// 0.91–1.05× as fast as io_uring.
fn wal_backend() -> BackendChoice {
    BackendChoice::from_env().unwrap_or(BackendChoice::Portable)
}

/// A point-in-time view of the node (etcd's `StatusResponse` fields that raft knows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// This member's ID.
    pub member_id: u64,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// The current raft term.
    pub term: u64,
    /// The leader's member ID, if one is known.
    pub leader: Option<u64>,
    /// The last log index.
    pub raft_index: u64,
    /// The last applied log index.
    pub applied_index: u64,
}

type ReadWaiter = oneshot::Sender<Result<(), NodeError>>;

/// Most requests one log entry carries.
const BATCH_REQUESTS_MAX: usize = 1024;
/// Most (approximate) payload bytes one log entry carries.
const BATCH_BYTES_MAX: usize = 4 << 20;
/// Log entries proposed and not yet applied at once: while they are in flight, new writes
/// queue and leave together in the next entry.
const ENTRIES_IN_FLIGHT_MAX: usize = 4;

/// Recent log payload the WAL keeps in memory. A sole member reads an entry back once, to
/// apply it right after it is appended, so the tail needs to hold the entries in flight, not
/// the WAL's 64 MiB default. Under a steady load of small writes those are a few hundred KiB
/// (1,000 clients' 256-byte puts make entries of about 300 KiB); an entry evicted before it is
/// applied (only when `ENTRIES_IN_FLIGHT_MAX` entries near `BATCH_BYTES_MAX` are in flight) is
/// read back from the segment file, which is still in the page cache. Every byte here stays
/// resident for the life of the process, so the tail is sized for the common case.
const HOT_TAIL_BYTES_MAX: usize = 4 << 20;

/// A running raft node. Cheap to share behind an `Arc`.
pub struct RaftNode {
    raft: Raft<TypeConfig>,
    cell: Arc<StoreCell>,
    ident: Identity,
    reads: mpsc::UnboundedSender<ReadWaiter>,
    writes: mpsc::UnboundedSender<(WriteRequest, WriteWaiter)>,
    stop: Arc<AtomicBool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    wal: Arc<Wal>,
    /// Times the known leader changed to another member (etcd's
    /// `etcd_server_leader_changes_seen_total`; the first election counts).
    leader_changes: AtomicU64,
}

impl RaftNode {
    /// Opens (or creates) the member in `opts.data_dir`, bootstraps a one-member cluster on
    /// first start, waits until this member leads and has applied every entry its log held,
    /// and returns. Must run inside a multi-threaded tokio runtime.
    pub async fn start(opts: NodeOptions) -> Result<Arc<RaftNode>, NodeError> {
        let member_dir = opts.data_dir.join("member");
        let wal_dir = opts
            .wal_dir
            .clone()
            .unwrap_or_else(|| member_dir.join("wal"));
        let snap_dir = member_dir.join("snap");
        std::fs::create_dir_all(&wal_dir).map_err(NodeError::io)?;
        std::fs::create_dir_all(&snap_dir).map_err(NodeError::io)?;
        let ident = Identity::load_or_create(&member_dir, &opts.member, &opts.cluster_token)?;
        let wal = Arc::new(Wal::open(&wal_dir, opts.wal.clone()).map_err(NodeError::storage)?);
        tracing::info!(backend = %wal.backend(), dir = %wal_dir.display(), "wal opened");
        let last_logged = wal.last_index().map_err(NodeError::storage)?.map(|i| i.0);
        let cell = Arc::new(
            StoreCell::open(
                snap_dir.join("db"),
                snap_dir.clone(),
                opts.db.clone(),
                opts.mvcc.clone(),
            )
            .map_err(NodeError::storage)?,
        );
        let sm = StateMachine::new(cell.clone()).map_err(NodeError::storage)?;
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        let config = Config {
            cluster_name: opts.cluster_token.clone(),
            heartbeat_interval: ms(opts.heartbeat),
            election_timeout_min: ms(opts.election_timeout),
            election_timeout_max: ms(opts.election_timeout) * 3 / 2 + 1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: opts.catch_up_entries,
            ..Config::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let raft = Raft::new(
            ident.member_id,
            Arc::new(config),
            Network,
            LogStore::new(wal.clone()),
            sm,
        )
        .await
        .map_err(NodeError::storage)?;
        let initialized = raft.is_initialized().await.map_err(NodeError::storage)?;
        if !initialized {
            let mut members = BTreeMap::new();
            members.insert(ident.member_id, opts.member.clone());
            raft.initialize(members)
                .await
                .map_err(|e| NodeError::Storage(format!("bootstrapping the cluster: {e}")))?;
            tracing::info!(member = %format!("{:x}", ident.member_id), cluster = %format!("{:x}", ident.cluster_id), "bootstrapped a one-member cluster");
        }
        // Bootstrapping elects the only voter at once; a restarted sole voter whose vote was
        // committed leads again at once. Otherwise campaign now rather than after an election
        // timeout (a leader ignores the trigger).
        if initialized && raft.metrics().borrow().state != ServerState::Leader {
            let _ = raft.trigger().elect().await;
        }
        raft.wait(Some(opts.election_timeout * 10))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|e| NodeError::Storage(format!("no leader elected: {e}")))?;
        if let Some(last) = last_logged {
            raft.wait(Some(Duration::from_secs(600)))
                .applied_index_at_least(Some(last), "replay the log")
                .await
                .map_err(|e| NodeError::Storage(format!("replaying the log: {e}")))?;
        }
        let (reads_tx, reads_rx) = mpsc::unbounded_channel();
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let node = Arc::new(RaftNode {
            raft,
            cell,
            ident,
            reads: reads_tx,
            writes: writes_tx,
            stop: stop.clone(),
            tasks: Mutex::new(Vec::new()),
            syncer: Mutex::new(None),
            wal,
            leader_changes: AtomicU64::new(0),
        });
        let tasks = vec![
            tokio::spawn(read_batcher(node.raft.clone(), reads_rx)),
            tokio::spawn(proposer(node.raft.clone(), writes_rx)),
            tokio::spawn(leader_watch(node.clone())),
            tokio::spawn(lease_expiry(node.clone())),
        ];
        if let Ok(mut t) = node.tasks.lock() {
            *t = tasks;
        }
        let syncer = {
            let cell = node.cell.clone();
            std::thread::Builder::new()
                .name("strata-sync".into())
                .spawn(move || sync_loop(cell, stop))
                .map_err(NodeError::io)?
        };
        if let Ok(mut s) = node.syncer.lock() {
            *s = Some(syncer);
        }
        Ok(node)
    }

    /// The MVCC store as it is now (replaced when a snapshot is installed: do not keep it).
    pub fn store(&self) -> Arc<MvccStore> {
        self.cell.get()
    }

    /// This member's ID.
    pub fn member_id(&self) -> u64 {
        self.ident.member_id
    }

    /// The cluster's ID.
    pub fn cluster_id(&self) -> u64 {
        self.ident.cluster_id
    }

    /// The members, as the last applied membership lists them.
    pub fn members(&self) -> Vec<(u64, MemberInfo)> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.nodes().map(|(id, n)| (*id, n.clone())).collect()
    }

    /// Term, leader and log positions.
    pub fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        NodeStatus {
            member_id: self.ident.member_id,
            cluster_id: self.ident.cluster_id,
            term: m.current_term,
            leader: m.current_leader,
            raft_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
        }
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The leader's member ID, if one is known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// How many times the known leader changed to another member since this node started
    /// (the first election counts, as etcd counts it).
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Proposes a write and waits until it is committed and applied; returns its result.
    /// Writes waiting at the same moment share one log entry (see [`proposer`]).
    pub async fn write(&self, req: WriteRequest) -> Result<Applied<WriteResponse>, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send((req, tx))
            .map_err(|_| NodeError::Stopped)?;
        tokio::time::timeout(REQUEST_TIMEOUT, rx)
            .await
            .map_err(|_| NodeError::Timeout)?
            .map_err(|_| NodeError::Stopped)?
    }

    /// Waits until this node has applied everything committed when the call began, confirmed
    /// as leader by a quorum (raft's ReadIndex): a read after it is linearizable. Callers
    /// waiting at the same moment share one round.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.reads.send(tx).map_err(|_| NodeError::Stopped)?;
        tokio::time::timeout(REQUEST_TIMEOUT, rx)
            .await
            .map_err(|_| NodeError::Timeout)?
            .map_err(|_| NodeError::Stopped)?
    }

    /// A keep-alive: renews the lease on the leader's clock; returns its TTL.
    pub fn keep_alive(&self, id: i64) -> Result<i64, NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NotLeader);
        }
        self.store()
            .renew(id, Instant::now())
            .map_err(NodeError::Mvcc)
    }

    /// A lease's remaining and granted TTL and keys (`None`: no such lease).
    pub fn lease_time_to_live(&self, id: i64) -> Result<Option<LeaseInfo>, NodeError> {
        self.store()
            .lease_time_to_live(id, Instant::now())
            .map_err(NodeError::Mvcc)
    }

    /// Stops raft and the background work, then makes the engine durable. Idempotent.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.stop.store(true, Ordering::SeqCst);
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for t in &tasks {
            t.abort();
        }
        // Wait until the aborted tasks are dropped: two of them hold the node, and through it
        // the store and its file lock, which a restart in the same process needs (a test
        // restarting at once under load found the lock still held).
        for t in tasks {
            let _ = t.await;
        }
        let _ = self.raft.shutdown().await;
        let syncer = self.syncer.lock().ok().and_then(|mut s| s.take());
        if let Some(h) = syncer {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let store = self.store();
        tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(NodeError::storage)?
            .map_err(NodeError::Mvcc)?;
        tracing::info!(last = ?self.wal.last_index().ok().flatten(), "raft node stopped; engine durable");
        Ok(())
    }
}

/// Serves read barriers: everything waiting when a round starts shares it.
async fn read_batcher(raft: Raft<TypeConfig>, mut rx: mpsc::UnboundedReceiver<ReadWaiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiting.push(w);
        }
        let res = match raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(_)) => Err(NodeError::NotLeader),
            Err(RaftError::Fatal(e)) => Err(NodeError::fatal(e)),
        };
        for w in waiting {
            let _ = w.send(res.clone());
        }
    }
}

/// Proposes writes: whatever is queued when a slot frees up leaves as one log entry (one WAL
/// append, one fdatasync shared with other appends, one engine transaction to apply), so
/// throughput grows with load instead of paying raft's per-entry costs per request.
///
/// The entry goes to raft core from this task, and raft core answers the callers itself
/// ([`WaiterResponder`](crate::types::WaiterResponder)); the slot travels with the entry and
/// frees when it is answered.
async fn proposer(
    raft: Raft<TypeConfig>,
    mut rx: mpsc::UnboundedReceiver<(WriteRequest, WriteWaiter)>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ENTRIES_IN_FLIGHT_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut bytes = approx_bytes(&first.0);
        let mut batch = vec![first];
        while batch.len() < BATCH_REQUESTS_MAX && bytes < BATCH_BYTES_MAX {
            match rx.try_recv() {
                Ok(w) => {
                    bytes += approx_bytes(&w.0);
                    batch.push(w);
                }
                Err(_) => break,
            }
        }
        let (requests, senders): (Vec<WriteRequest>, Vec<WriteWaiter>) = batch.into_iter().unzip();
        let waiters = Waiters {
            senders,
            _slot: Some(permit),
        };
        // On a fatal error raft core is gone and drops the entry with its waiters: each caller
        // sees its channel closed (`NodeError::Stopped`), and the slot is released.
        if let Err(e) = raft
            .client_write_ff(Batch::proposed(requests, waiters))
            .await
        {
            tracing::error!(error = %e, "raft stopped; the proposer stops");
            return;
        }
    }
}

/// Roughly how many bytes a request adds to a log entry.
fn approx_bytes(req: &WriteRequest) -> usize {
    use strata_engine::mvcc::{RequestOp, TxnRequest};
    fn txn(t: &TxnRequest) -> usize {
        let ops = |ops: &[RequestOp]| -> usize {
            ops.iter()
                .map(|op| match op {
                    RequestOp::Range(r) => r.key.len() + r.range_end.len() + 32,
                    RequestOp::Put(p) => p.key.len() + p.value.len() + 16,
                    RequestOp::DeleteRange(d) => d.key.len() + d.range_end.len() + 8,
                    RequestOp::Txn(t) => txn(t),
                })
                .sum()
        };
        let compares: usize = t
            .compare
            .iter()
            .map(|c| c.key.len() + c.range_end.len() + 16)
            .sum();
        compares + ops(&t.success) + ops(&t.failure) + 8
    }
    match req {
        WriteRequest::Put(p) => p.key.len() + p.value.len() + 16,
        WriteRequest::DeleteRange(d) => d.key.len() + d.range_end.len() + 8,
        WriteRequest::Txn(t) => txn(t),
        _ => 16,
    }
}

/// Restarts every lease's clock when this member becomes leader (as etcd's lessor `Promote`),
/// and counts leader changes.
async fn leader_watch(node: Arc<RaftNode>) {
    let mut metrics = node.raft.metrics();
    let mut leading = false;
    let mut leader = None;
    loop {
        let (now_leading, now_leader) = {
            let m = metrics.borrow();
            (m.state == ServerState::Leader, m.current_leader)
        };
        // As etcd: a known leader other than the last one seen (a leader lost and found
        // again counts again).
        if now_leader.is_some() && now_leader != leader {
            node.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
        leader = now_leader;
        if now_leading
            && !leading
            && let Err(e) = node.store().promote(Instant::now())
        {
            tracing::error!(error = %e, "restarting lease clocks");
        }
        leading = now_leading;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// On the leader, revokes expired leases through raft (etcd checks every 500 ms).
async fn lease_expiry(node: Arc<RaftNode>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if !node.is_leader() {
            continue;
        }
        let expired = match node.store().expired(Instant::now()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "checking lease expiry");
                continue;
            }
        };
        for id in expired {
            match node.write(WriteRequest::LeaseRevoke { id }).await {
                Ok(_) | Err(NodeError::Mvcc(MvccError::LeaseNotFound)) => {
                    tracing::debug!(lease = id, "expired lease revoked");
                }
                Err(e) => tracing::warn!(lease = id, error = %e, "revoking an expired lease"),
            }
        }
    }
}

/// Makes applied state durable on the store's cadence, off the apply path.
fn sync_loop(cell: Arc<StoreCell>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
        if let Err(e) = cell.get().maybe_sync() {
            tracing::error!(error = %e, "making applied entries durable");
        }
    }
}
