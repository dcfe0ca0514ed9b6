//! openraft's `RaftStateMachine` on the engine's MVCC store.
//!
//! A batch of committed entries is applied in one engine write transaction, together with the
//! last applied log id and the membership (meta keys `raft_applied`, `raft_membership`), so the
//! store always says exactly which prefix of the log it holds. The engine makes applied state
//! durable on its cadence, not per batch; after a crash it reports an earlier applied id and
//! openraft replays the rest from the WAL, which keeps every entry until a snapshot — built only
//! after a durable engine commit — covers it.
//!
//! Snapshots are the engine's consistent snapshot stream, written to `snap/<id>.snap` with the
//! openraft metadata beside it in `snap/<id>.meta`; only the newest is kept.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageIOError,
    StoredMembership,
};
use strata_engine::btree::{Db, Options, ReadTxn};
use strata_engine::mvcc::{META_BUCKET, MvccOptions, MvccStore, WriteRequest};

use crate::types::{Entry, MemberInfo, Response, StorageError, TypeConfig};

const APPLIED_KEY: &[u8] = b"raft_applied";
const MEMBERSHIP_KEY: &[u8] = b"raft_membership";

type Membership = StoredMembership<u64, MemberInfo>;
type Meta = SnapshotMeta<u64, MemberInfo>;

/// The current store, replaced whole when a snapshot is installed.
pub struct StoreCell {
    store: RwLock<Arc<MvccStore>>,
    db_path: PathBuf,
    snap_dir: PathBuf,
    db_opts: Options,
    mvcc_opts: MvccOptions,
}

impl StoreCell {
    pub(crate) fn open(
        db_path: PathBuf,
        snap_dir: PathBuf,
        db_opts: Options,
        mvcc_opts: MvccOptions,
    ) -> io::Result<StoreCell> {
        std::fs::create_dir_all(&snap_dir)?;
        let db = Db::open(&db_path, db_opts.clone()).map_err(io::Error::other)?;
        let store = MvccStore::open(db, mvcc_opts.clone()).map_err(io::Error::other)?;
        Ok(StoreCell {
            store: RwLock::new(Arc::new(store)),
            db_path,
            snap_dir,
            db_opts,
            mvcc_opts,
        })
    }

    /// The current store.
    pub fn get(&self) -> Arc<MvccStore> {
        match self.store.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn replace(&self, store: MvccStore) {
        let store = Arc::new(store);
        match self.store.write() {
            Ok(mut s) => *s = store,
            Err(p) => *p.into_inner() = store,
        }
    }
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

/// Raft's last applied log id and membership from the meta keys, read through `get`.
fn read_applied(
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, String>,
) -> Result<(Option<LogId<u64>>, Membership), String> {
    let applied = get(APPLIED_KEY)?
        .map(|b| postcard::from_bytes::<LogId<u64>>(&b))
        .transpose()
        .map_err(|e| e.to_string())?;
    let membership = get(MEMBERSHIP_KEY)?
        .map(|b| postcard::from_bytes::<Membership>(&b))
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    Ok((applied, membership))
}

/// The last applied log id and membership recorded in the store.
pub(crate) fn applied_state(
    store: &MvccStore,
) -> Result<(Option<LogId<u64>>, Membership), StorageError> {
    read_applied(|k| store.meta(k).map_err(|e| e.to_string())).map_err(read_err)
}

/// The state machine handle openraft drives.
pub struct StateMachine {
    cell: Arc<StoreCell>,
    membership: Membership,
}

impl StateMachine {
    pub(crate) fn new(cell: Arc<StoreCell>) -> Result<StateMachine, StorageError> {
        let (_, membership) = applied_state(&cell.get())?;
        Ok(StateMachine { cell, membership })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), StorageError> {
        applied_state(&self.cell.get())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let store = self.cell.get();
        let already = store.applied_index().map_err(sm_err)?;
        let mut requests: Vec<(u64, WriteRequest)> = Vec::new();
        // How many requests each entry contributes (0: blank, membership, already applied).
        let mut shape: Vec<usize> = Vec::new();
        let mut last: Option<LogId<u64>> = None;
        for e in entries {
            let fresh = e.log_id.index > already;
            match e.payload {
                EntryPayload::Blank => shape.push(0),
                EntryPayload::Normal(batch) => {
                    if fresh {
                        shape.push(batch.requests.len());
                        requests.extend(batch.requests.into_iter().map(|r| (e.log_id.index, r)));
                    } else {
                        shape.push(0);
                    }
                }
                EntryPayload::Membership(m) => {
                    shape.push(0);
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            last = Some(e.log_id);
        }
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        let applied = postcard::to_stdvec(&last).map_err(sm_err)?;
        let membership = postcard::to_stdvec(&self.membership).map_err(sm_err)?;
        let results = tokio::task::block_in_place(|| {
            store.apply_with_meta(
                last.index,
                &requests,
                &[(APPLIED_KEY, &applied), (MEMBERSHIP_KEY, &membership)],
            )
        })
        .map_err(sm_err)?;
        if results.len() != requests.len() {
            return Err(sm_err(format!(
                "{} results for {} requests",
                results.len(),
                requests.len()
            )));
        }
        let mut results = results.into_iter();
        Ok(shape
            .into_iter()
            .map(|n| Response(results.by_ref().take(n).collect()))
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let store = self.cell.get();
        // Taken here, between two applies, so the snapshot holds exactly the applied state its
        // meta keys describe.
        let txn = store.db().begin_read().map_err(|e| e.to_string());
        SnapshotBuilder {
            store,
            txn,
            snap_dir: self.cell.snap_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.cell.snap_dir.join("receiving.tmp");
        let f = tokio::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(snap_err)?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let file = snapshot.into_std().await;
        file.sync_all().map_err(snap_err)?;
        drop(file);
        let dir = self.cell.snap_dir.clone();
        let cell = self.cell.clone();
        let meta = meta.clone();
        let membership =
            tokio::task::spawn_blocking(move || -> Result<Membership, StorageError> {
                let snap = keep_snapshot(&dir, &dir.join("receiving.tmp"), &meta)?;
                let restore = cell.db_path.with_extension("restore");
                let _ = std::fs::remove_file(&restore);
                let input = io::BufReader::new(std::fs::File::open(&snap).map_err(snap_err)?);
                let db = Db::restore_snapshot(&restore, input, cell.db_opts.clone())
                    .map_err(snap_err)?;
                drop(db);
                std::fs::rename(&restore, &cell.db_path).map_err(snap_err)?;
                sync_dir(cell.db_path.parent().unwrap_or(Path::new("."))).map_err(snap_err)?;
                let db = Db::open(&cell.db_path, cell.db_opts.clone()).map_err(snap_err)?;
                let store = MvccStore::open(db, cell.mvcc_opts.clone()).map_err(snap_err)?;
                let (_, membership) = applied_state(&store)?;
                cell.replace(store);
                Ok(membership)
            })
            .await
            .map_err(snap_err)??;
        self.membership = membership;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let dir = self.cell.snap_dir.clone();
        let found = tokio::task::spawn_blocking(move || newest_snapshot(&dir))
            .await
            .map_err(snap_err)??;
        let Some((meta, path)) = found else {
            return Ok(None);
        };
        let f = tokio::fs::File::open(&path).await.map_err(snap_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(f),
        }))
    }
}

/// Builds a snapshot from the read transaction taken between two applies.
pub struct SnapshotBuilder {
    store: Arc<MvccStore>,
    txn: Result<ReadTxn, String>,
    snap_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let txn = std::mem::replace(&mut self.txn, Err("snapshot already built".into()))
            .map_err(snap_err)?;
        let store = self.store.clone();
        let dir = self.snap_dir.clone();
        let (meta, path) = tokio::task::spawn_blocking(move || {
            // Durable first: openraft purges the log up to a snapshot, and replay after a crash
            // must never need an entry older than the engine's durable state.
            store.sync().map_err(snap_err)?;
            let (last_log_id, last_membership) = read_applied(|k| {
                txn.get(META_BUCKET, k)
                    .map(|v| v.map(|v| v.to_vec()))
                    .map_err(|e| e.to_string())
            })
            .map_err(snap_err)?;
            let id = match &last_log_id {
                Some(l) => format!("{:016x}-{:016x}", l.leader_id.term, l.index),
                None => "0000000000000000-0000000000000000".to_string(),
            };
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id: id,
            };
            let tmp = dir.join("building.tmp");
            {
                let f = std::fs::File::create(&tmp).map_err(snap_err)?;
                let mut w = io::BufWriter::new(f);
                txn.write_snapshot(&mut w).map_err(snap_err)?;
                let f = w.into_inner().map_err(snap_err)?;
                f.sync_all().map_err(snap_err)?;
            }
            drop(txn);
            let path = keep_snapshot(&dir, &tmp, &meta)?;
            Ok::<_, StorageError>((meta, path))
        })
        .await
        .map_err(snap_err)??;
        let f = tokio::fs::File::open(&path).await.map_err(snap_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(f),
        })
    }
}

/// Moves a complete snapshot file into place as `<id>.snap` with its `<id>.meta`, durably,
/// and removes older snapshots. Returns the snapshot's path.
fn keep_snapshot(dir: &Path, tmp: &Path, meta: &Meta) -> Result<PathBuf, StorageError> {
    let snap = dir.join(format!("{}.snap", meta.snapshot_id));
    let meta_path = dir.join(format!("{}.meta", meta.snapshot_id));
    let meta_tmp = dir.join("meta.tmp");
    let bytes = postcard::to_stdvec(meta).map_err(snap_err)?;
    {
        let f = std::fs::File::create(&meta_tmp).map_err(snap_err)?;
        io::Write::write_all(&mut &f, &bytes).map_err(snap_err)?;
        f.sync_all().map_err(snap_err)?;
    }
    std::fs::rename(tmp, &snap).map_err(snap_err)?;
    std::fs::rename(&meta_tmp, &meta_path).map_err(snap_err)?;
    sync_dir(dir).map_err(snap_err)?;
    for e in std::fs::read_dir(dir).map_err(snap_err)? {
        let p = e.map_err(snap_err)?.path();
        let keep = p == snap || p == meta_path;
        let ours = matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("snap" | "meta")
        );
        if ours && !keep {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(snap)
}

/// The newest complete snapshot: a `.meta` whose `.snap` exists.
fn newest_snapshot(dir: &Path) -> Result<Option<(Meta, PathBuf)>, StorageError> {
    let mut best: Option<(Meta, PathBuf)> = None;
    for e in std::fs::read_dir(dir).map_err(read_err)? {
        let p = e.map_err(read_err)?.path();
        if p.extension().and_then(|x| x.to_str()) != Some("meta") {
            continue;
        }
        let snap = p.with_extension("snap");
        if !snap.exists() {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(read_err)?;
        let meta: Meta = postcard::from_bytes(&bytes).map_err(read_err)?;
        if best
            .as_ref()
            .is_none_or(|(b, _)| b.last_log_id < meta.last_log_id)
        {
            best = Some((meta, snap));
        }
    }
    Ok(best)
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
