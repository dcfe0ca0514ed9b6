//! What `stratautl snapshot restore` and `snapshot status` do with a file `etcdctl snapshot
//! save` stored: the engine's snapshot stream followed by its SHA-256 (`snapshot.rs`).
//!
//! Restore, as `etcdutl snapshot restore`: the digest is checked first, the database is rebuilt
//! in a scratch directory beside the target (the engine checks the stream's own CRC as well),
//! given a new raft position (`strata_engine::mvcc::prepare_restored`: no applied index, a
//! lease-ID floor above every ID handed out before), given the member and cluster IDs etcd
//! computes from `--initial-advertise-peer-urls`, `--initial-cluster` and
//! `--initial-cluster-token`, with an empty WAL (the new member bootstraps a new raft log), and
//! only then renamed into place. A bad file leaves nothing behind.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::{BackendDigest, backend_digest, prepare_restored};
use strata_raftnode::{Identity, MemberInfo};

use crate::config::url_list;
use crate::snapshot::DIGEST_BYTES;

/// `stratautl snapshot restore`'s flags (etcdutl's names and defaults).
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The data directory to create (`--data-dir`; default `<name>.strata`).
    pub data_dir: PathBuf,
    /// `--name`.
    pub name: String,
    /// `--initial-cluster` (`name=peerURL,...`; default `<name>=<first advertised peer URL>`).
    pub initial_cluster: Option<String>,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: String,
    /// `--skip-hash-check`: accept a file whose digest is missing or wrong.
    pub skip_hash_check: bool,
}

/// What a restore produced.
#[derive(Clone, Copy, Debug)]
pub struct Restored {
    /// The new member's and cluster's IDs.
    pub identity: Identity,
    /// The restored database's digest.
    pub digest: BackendDigest,
}

/// The length of the snapshot content in `path`: the file less its trailing SHA-256, which
/// must match unless `skip_hash_check` (then a file without a matching digest is taken whole).
pub fn verified_content_len(path: &Path, skip_hash_check: bool) -> Result<u64, String> {
    let shown = path.display();
    let f = File::open(path).map_err(|e| format!("opening {shown}: {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("reading {shown}: {e}"))?
        .len();
    if len < DIGEST_BYTES as u64 {
        if skip_hash_check {
            return Ok(len);
        }
        return Err(format!(
            "{shown}: {len} bytes is too short to hold a snapshot and its sha256 checksum"
        ));
    }
    let content = len - DIGEST_BYTES as u64;
    let mut r = BufReader::new(f);
    let mut sha = Sha256::new();
    io::copy(&mut (&mut r).take(content), &mut sha).map_err(|e| format!("reading {shown}: {e}"))?;
    let mut stored = [0u8; DIGEST_BYTES];
    r.read_exact(&mut stored)
        .map_err(|e| format!("reading {shown}: {e}"))?;
    let computed = sha.finalize();
    if computed[..] == stored[..] {
        return Ok(content);
    }
    if skip_hash_check {
        return Ok(len);
    }
    Err(format!(
        "snapshot file integrity check failed: {shown} ends with sha256 {} but its content hashes to {} (a damaged or truncated file; --skip-hash-check skips this check)",
        hex(&stored),
        hex(&computed)
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// This member's peer URLs from `--initial-cluster` (its entries named `name`), checked
/// against `--initial-advertise-peer-urls` as etcd checks them.
fn member_urls(o: &RestoreOptions) -> Result<Vec<String>, String> {
    let advertised = url_list(&o.initial_advertise_peer_urls);
    let Some(ic) = &o.initial_cluster else {
        return Ok(advertised);
    };
    let mut mine = Vec::new();
    for entry in url_list(ic) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster entry {entry:?} is not name=URL"))?;
        if name == o.name {
            mine.push(url.to_string());
        } else {
            return Err(format!(
                "--initial-cluster names another member ({entry}): Strata restores one-member clusters only"
            ));
        }
    }
    if mine.is_empty() {
        return Err(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            o.name
        ));
    }
    let (mut a, mut b) = (mine.clone(), advertised);
    a.sort();
    b.sort();
    if a != b {
        return Err(format!(
            "--initial-cluster has {}={} but --initial-advertise-peer-urls is {}",
            o.name,
            a.join(","),
            b.join(",")
        ));
    }
    Ok(mine)
}

/// Restores `o.snapshot` into a new data directory `o.data_dir` (absent or empty).
pub fn restore(o: &RestoreOptions) -> Result<Restored, String> {
    let dir = &o.data_dir;
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| format!("data-dir {:?} could not be read: {e}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(format!("data-dir {:?} not empty", dir.display()));
        }
    }
    let peer_urls = member_urls(o)?;
    let content = verified_content_len(&o.snapshot, o.skip_hash_check)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let scratch = dir.with_file_name(format!(".{name}.restore-tmp"));
    let _ = std::fs::remove_dir_all(&scratch);
    let built = build(o, &scratch, content, peer_urls);
    let restored = match built {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| format!("replacing {}: {e}", dir.display()))?;
    }
    std::fs::rename(&scratch, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&scratch);
        format!("moving the restored data into {}: {e}", dir.display())
    })?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("syncing {}: {e}", parent.display()))?;
    }
    Ok(restored)
}

fn build(
    o: &RestoreOptions,
    scratch: &Path,
    content: u64,
    peer_urls: Vec<String>,
) -> Result<Restored, String> {
    let member_dir = scratch.join("member");
    let snap_dir = member_dir.join("snap");
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| format!("creating {}: {e}", snap_dir.display()))?;
    std::fs::create_dir_all(member_dir.join("wal"))
        .map_err(|e| format!("creating the WAL directory: {e}"))?;
    let digest = restore_db(&o.snapshot, content, &snap_dir.join("db"))?;
    let member = MemberInfo {
        name: o.name.clone(),
        peer_urls,
        client_urls: Vec::new(),
    };
    let identity = Identity::load_or_create(&member_dir, &member, &o.initial_cluster_token)
        .map_err(|e| format!("writing the member identity: {e}"))?;
    for d in [&snap_dir, &member_dir, &scratch.to_path_buf()] {
        File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("syncing {}: {e}", d.display()))?;
    }
    Ok(Restored { identity, digest })
}

/// Rebuilds the database at `db_path` from the first `content` bytes of `snapshot` and gives
/// it a fresh raft position.
fn restore_db(snapshot: &Path, content: u64, db_path: &Path) -> Result<BackendDigest, String> {
    let f = File::open(snapshot).map_err(|e| format!("opening {}: {e}", snapshot.display()))?;
    let input = BufReader::new(f).take(content);
    let db = Db::restore_snapshot(db_path, input, Options::default())
        .map_err(|e| format!("{} is not a Strata snapshot: {e}", snapshot.display()))?;
    let digest = prepare_restored(&db).map_err(|e| format!("preparing the restored store: {e}"))?;
    drop(db);
    Ok(digest)
}

/// `snapshot status`: etcdutl's hash, revision, total keys and total size of a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket (see [`backend_digest`]).
    pub hash: u32,
    /// The newest revision it holds.
    pub revision: i64,
    /// Entries in all buckets.
    pub total_keys: u64,
    /// Bytes of snapshot content (the file less its digest).
    pub total_size: u64,
}

/// Reads a snapshot file's status (checking its digest, as etcdutl does).
pub fn status(snapshot: &Path) -> Result<SnapshotStatus, String> {
    let content = verified_content_len(snapshot, false)?;
    let scratch = std::env::temp_dir().join(format!(
        "stratautl-status-{}-{}",
        std::process::id(),
        snapshot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&scratch);
    let f = File::open(snapshot).map_err(|e| format!("opening {}: {e}", snapshot.display()))?;
    let digest = Db::restore_snapshot(
        &scratch,
        BufReader::new(f).take(content),
        Options::default(),
    )
    .map_err(|e| format!("{} is not a Strata snapshot: {e}", snapshot.display()))
    .and_then(|db| {
        let r = db.begin_read().map_err(|e| e.to_string())?;
        backend_digest(&r, false).map_err(|e| e.to_string())
    });
    let _ = std::fs::remove_file(&scratch);
    let d = digest?;
    Ok(SnapshotStatus {
        hash: d.hash,
        revision: d.revision,
        total_keys: d.total_keys,
        total_size: content,
    })
}

/// go-humanize's `Bytes` (SI units), which etcdutl prints sizes with: `512 B`, `2.2 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sha2::{Digest, Sha256};

    /// A store holding one key, as the engine streams it.
    fn engine_stream(dir: &Path) -> Vec<u8> {
        use strata_engine::mvcc::{MvccOptions, MvccStore, PutRequest, WriteRequest};
        let db = Db::open(dir.join("src.db"), Options::default()).unwrap();
        let store = MvccStore::open(db, MvccOptions::default()).unwrap();
        let put = WriteRequest::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..PutRequest::default()
        });
        store.apply(&[(1, put)]).unwrap();
        let mut out = Vec::new();
        store.write_snapshot(&mut out).unwrap();
        out
    }

    #[test]
    fn the_digest_is_checked_unless_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let content = engine_stream(dir.path());
        let with = dir.path().join("with.db");
        let mut bytes = content.clone();
        bytes.extend_from_slice(&Sha256::digest(&content));
        std::fs::write(&with, &bytes).unwrap();
        assert_eq!(verified_content_len(&with, false), Ok(content.len() as u64));
        assert_eq!(verified_content_len(&with, true), Ok(content.len() as u64));
        // Without a digest (the engine's stream alone): refused, unless skipped, when the
        // whole file is taken (the stream's own CRC still guards it).
        let without = dir.path().join("without.db");
        std::fs::write(&without, &content).unwrap();
        let e = verified_content_len(&without, false).unwrap_err();
        assert!(e.contains("integrity check failed"), "{e}");
        assert_eq!(
            verified_content_len(&without, true),
            Ok(content.len() as u64)
        );
        let target = dir.path().join("restored");
        let o = RestoreOptions {
            snapshot: without,
            data_dir: target.clone(),
            name: "default".into(),
            initial_cluster: None,
            initial_cluster_token: "etcd-cluster".into(),
            initial_advertise_peer_urls: "http://localhost:2380".into(),
            skip_hash_check: true,
        };
        let r = restore(&o).unwrap();
        assert_eq!(format!("{:x}", r.identity.member_id), "8e9e05c52164694d");
        assert_eq!(r.digest.revision, 2);
        assert!(target.join("member/snap/db").exists());
        assert!(target.join("member/wal").is_dir());
        // Another member named in --initial-cluster is refused before anything is written.
        let o2 = RestoreOptions {
            data_dir: dir.path().join("two"),
            initial_cluster: Some("default=http://localhost:2380,b=http://b:2380".into()),
            ..o
        };
        assert!(restore(&o2).unwrap_err().contains("one-member"));
        assert!(!dir.path().join("two").exists());
    }

    #[test]
    fn sizes_print_as_go_humanize() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2_162_688), "2.2 MB");
        assert_eq!(human_bytes(20_480), "20 kB");
    }
}
