//! Operating one member with etcdctl (Debian's etcd-client 3.4) and `stratautl`: the backend
//! quota and the NOSPACE alarm end to end (fill, refuse, read and delete, restart, compact,
//! defrag, disarm), `snapshot save` then `stratautl snapshot restore`/`status`, a damaged
//! snapshot refused, `move-leader`, `endpoint hash`, and periodic auto-compaction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Etcd, Strata, etcd, etcdctl, etcdctl_run, free_port};

struct Ctl {
    bin: PathBuf,
    endpoint: String,
}

impl Ctl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        etcdctl_run(&self.bin, &self.endpoint, args, stdin)
    }

    /// A command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// A command that must fail; its `Error: ...` line.
    fn err_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "etcdctl {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn err(&self, args: &[&str]) -> String {
        self.err_in(args, None)
    }

    /// A field of `endpoint status -w json` (`"name":value`), as a number.
    fn status_field(&self, name: &str) -> u64 {
        let json = self.ok(&["endpoint", "status", "-w", "json"]);
        let at = json
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name} not in {json}"));
        json[at + name.len() + 3..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }

    fn revision(&self) -> u64 {
        self.status_field("revision")
    }

    fn member_id(&self) -> u64 {
        self.status_field("member_id")
    }
}

fn setup(extra: &[&str]) -> Option<(tempfile::TempDir, Strata, Ctl)> {
    let bin = etcdctl()?;
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start_with(&dir.path().join("data"), free_port(), extra);
    let ctl = Ctl {
        bin,
        endpoint: s.endpoint(),
    };
    Some((dir, s, ctl))
}

const NO_SPACE: &str = "Error: etcdserver: mvcc: database space exceeded";

#[test]
fn quota_raises_nospace_reads_and_deletes_work_and_compact_defrag_disarm_restore_writes() {
    // 4 MiB: a handful of 256 KiB values fill it.
    let Some((_dir, mut s, c)) = setup(&["--quota-backend-bytes", "4194304"]) else {
        return;
    };
    c.ok(&["put", "keep", "me"]);
    let value = "v".repeat(256 * 1024);
    let mut refused = None;
    for i in 0..64 {
        let out = c.run(&["put", "big"], Some(&value));
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(err.contains(NO_SPACE), "put {i}: {err}");
            refused = Some(i);
            break;
        }
    }
    assert!(refused.is_some(), "64 puts of 256 KiB fit in a 4 MiB quota");
    let member = c.member_id();
    let alarm = format!("memberID:{member} alarm:NOSPACE");
    assert_eq!(c.ok(&["alarm", "list"]).trim_end(), alarm);
    let status = c.ok(&["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains(&format!("\"errors\":[\"{alarm} \"]")),
        "{status}"
    );

    // Refused, and nothing changes: the revision stays.
    let rev = c.revision();
    assert_eq!(c.err_in(&["put", "small", "x"], None), NO_SPACE);
    assert_eq!(
        c.err(&["lease", "grant", "60"]),
        "Error: failed to grant lease (etcdserver: mvcc: database space exceeded)"
    );
    assert_eq!(
        c.err_in(&["txn"], Some("\nput t1 v1\n\n\n")),
        "Error: etcdserver: mvcc: database space exceeded"
    );
    assert_eq!(c.revision(), rev);
    // Reads and deletes work.
    assert_eq!(c.ok(&["get", "keep", "--print-value-only"]), "me\n");
    assert_eq!(c.ok(&["del", "keep"]), "1\n");
    assert_eq!(c.revision(), rev + 1);

    // The alarm is in the store: a restart keeps it.
    assert_eq!(s.stop(), Some(0));
    let s2 = Strata::start_with(&s.data_dir, s.port, &["--quota-backend-bytes", "4194304"]);
    assert_eq!(c.ok(&["alarm", "list"]).trim_end(), alarm);
    assert_eq!(c.err_in(&["put", "small", "x"], None), NO_SPACE);

    // Disarming while still over the quota: the next write raises it again.
    assert_eq!(c.ok(&["alarm", "disarm"]).trim_end(), alarm);
    assert_eq!(c.ok(&["alarm", "list"]), "");
    assert_eq!(c.err_in(&["put", "big"], Some(&value)), NO_SPACE);
    assert_eq!(c.ok(&["alarm", "list"]).trim_end(), alarm);

    // Compact, defrag, disarm: writes work again.
    let rev = c.revision();
    assert_eq!(
        c.ok(&["compact", &rev.to_string(), "--physical"]),
        format!("compacted revision {rev}\n")
    );
    c.ok(&["defrag"]);
    let size = c.status_field("dbSize");
    assert!(size < 4 << 20, "defrag left {size} bytes");
    assert_eq!(c.ok(&["alarm", "disarm"]).trim_end(), alarm);
    assert_eq!(c.ok(&["put", "small", "x"]), "OK\n");
    assert_eq!(c.ok(&["alarm", "list"]), "");
    drop(s2);
}

/// The NOSPACE story told to one server with etcdctl; every line of output, with the member
/// ID replaced by `<member>`, to compare with etcd's.
fn nospace_story(c: &Ctl) -> Vec<String> {
    let member = c.member_id().to_string();
    let mut out = Vec::new();
    let show = |what: &str, o: Output| {
        let text = format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.starts_with("Error:"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        text.replace(&member, "<member>").trim_end().to_string()
    };
    macro_rules! say {
        ($what:expr, $o:expr) => {{
            let line = show($what, $o);
            out.push(line);
        }};
    }
    say!("put keep", c.run(&["put", "keep", "me"], None));
    let value = "v".repeat(256 * 1024);
    for _ in 0..64 {
        let o = c.run(&["put", "big"], Some(&value));
        if !o.status.success() {
            say!("put big until refused", o);
            break;
        }
    }
    say!("alarm list", c.run(&["alarm", "list"], None));
    let status = c.ok(&["endpoint", "status", "-w", "json"]);
    let errors = status
        .split("\"errors\":")
        .nth(1)
        .and_then(|e| e.split(']').next())
        .unwrap_or("none")
        .replace(&member, "<member>");
    out.push(format!("status errors: {errors}]"));
    say!("put small", c.run(&["put", "small", "x"], None));
    say!("lease grant", c.run(&["lease", "grant", "60"], None));
    say!("txn with a put", c.run(&["txn"], Some("\nput t1 v1\n\n\n")));
    say!("txn without", c.run(&["txn"], Some("\nget keep\n\n\n")));
    say!("get keep", c.run(&["get", "keep"], None));
    say!("del keep", c.run(&["del", "keep"], None));
    say!("disarm while over", c.run(&["alarm", "disarm"], None));
    say!("put big again", c.run(&["put", "big"], Some(&value)));
    say!("alarm list again", c.run(&["alarm", "list"], None));
    let rev = c.revision().to_string();
    let compacted = c.run(&["compact", &rev, "--physical"], None);
    assert!(compacted.status.success(), "{compacted:?}");
    let defrag = c.run(&["defrag"], None);
    assert!(defrag.status.success(), "{defrag:?}");
    say!("disarm", c.run(&["alarm", "disarm"], None));
    say!("put small after", c.run(&["put", "small", "x"], None));
    say!("alarm list after", c.run(&["alarm", "list"], None));
    out
}

/// The same story against etcd 3.4.23 with the same quota: the same answers, line for line.
#[test]
fn nospace_story_matches_etcd() {
    let (Some(ctl_bin), Some(etcd_bin)) = (etcdctl(), etcd()) else {
        return;
    };
    let quota = ["--quota-backend-bytes", "4194304"];
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start_with(&dir.path().join("data"), free_port(), &quota);
    let strata = nospace_story(&Ctl {
        bin: ctl_bin.clone(),
        endpoint: s.endpoint(),
    });
    let e = Etcd::start_with(&etcd_bin, &quota);
    let etcd = nospace_story(&Ctl {
        bin: ctl_bin,
        endpoint: e.endpoint(),
    });
    assert_eq!(strata, etcd);
    // Not equal by both failing the same way: the story is the one told above.
    for line in [
        "put big until refused: Error: etcdserver: mvcc: database space exceeded",
        "alarm list: memberID:<member> alarm:NOSPACE",
        "del keep: 1",
        "put small after: OK",
        "alarm list after:",
    ] {
        assert!(
            strata.iter().any(|l| l == line),
            "{line:?} not in {strata:#?}"
        );
    }
}

fn stratautl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratautl"))
        .args(args)
        .output()
        .expect("run stratautl")
}

fn restore_args<'a>(file: &'a str, dir: &'a str, peer: &'a str, cluster: &'a str) -> Vec<&'a str> {
    vec![
        "snapshot",
        "restore",
        file,
        "--data-dir",
        dir,
        "--name",
        "restored",
        "--initial-cluster",
        cluster,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster-token",
        "restore-token",
    ]
}

#[test]
fn snapshot_save_then_stratautl_restore_keeps_keys_revisions_leases_and_compaction() {
    let Some((dir, s, c)) = setup(&[]) else {
        return;
    };
    for i in 0..50 {
        c.ok(&["put", &format!("key/{i:02}"), &format!("value {i}")]);
    }
    c.ok(&["put", "key/00", "overwritten"]);
    let compact_at = c.revision();
    c.ok(&["compact", &compact_at.to_string()]);
    let lease = c.ok(&["lease", "grant", "600"]);
    let lease_id = lease.split_whitespace().nth(1).unwrap().to_string();
    c.ok(&["put", "leased", "x", "--lease", &lease_id]);
    c.ok(&["del", "key/49"]);
    let rev = c.revision();

    let file = dir.path().join("backup.db");
    let file_s = file.to_str().unwrap();
    let saved = c.ok(&["snapshot", "save", file_s]);
    assert_eq!(saved, format!("Snapshot saved at {file_s}\n"));
    // Writes after the snapshot are not in it.
    c.ok(&["put", "after", "snapshot"]);
    let hash_kv = |ctl: &Ctl| {
        let out = ctl.ok(&["endpoint", "hashkv", "--rev", &rev.to_string()]);
        out.split(", ").nth(1).unwrap().trim().to_string()
    };
    let source_hash = hash_kv(&c);

    let status = stratautl(&["snapshot", "status", file_s, "-w", "json"]);
    assert!(status.status.success(), "{status:?}");
    let json = String::from_utf8_lossy(&status.stdout);
    assert!(json.contains(&format!("\"revision\":{rev},")), "{json}");

    let peer = format!("http://127.0.0.1:{}", free_port());
    let cluster = format!("restored={peer}");
    let new_dir = dir.path().join("restored");
    let out = stratautl(&restore_args(
        file_s,
        new_dir.to_str().unwrap(),
        &peer,
        &cluster,
    ));
    assert!(out.status.success(), "{out:?}");
    drop(s);

    let r = Strata::start_with(
        &new_dir,
        free_port(),
        &["--name", "restored", "--initial-advertise-peer-urls", &peer],
    );
    let rc = Ctl {
        bin: c.bin.clone(),
        endpoint: r.endpoint(),
    };
    assert_eq!(rc.revision(), rev, "the revision is the snapshot's");
    assert_eq!(hash_kv(&rc), source_hash, "the same history, byte for byte");
    let keys = rc.ok(&["get", "key/", "--prefix", "--keys-only"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 49);
    assert_eq!(
        rc.ok(&["get", "key/00", "--print-value-only"]),
        "overwritten\n"
    );
    assert_eq!(rc.ok(&["get", "after"]), "");
    // The compaction is kept: older revisions are gone, newer ones readable.
    assert_eq!(
        rc.err(&["get", "key/01", "--rev", &(compact_at - 1).to_string()]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        rc.ok(&[
            "get",
            "key/49",
            "--rev",
            &(rev - 1).to_string(),
            "--print-value-only"
        ]),
        "value 49\n"
    );
    // The lease and its key are there; a new lease does not reuse an old ID.
    let ttl = rc.ok(&["lease", "timetolive", &lease_id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(600s)") && ttl.contains("leased"),
        "{ttl}"
    );
    let fresh = rc.ok(&["lease", "grant", "60"]);
    let fresh_id = fresh.split_whitespace().nth(1).unwrap().to_string();
    assert!(
        u64::from_str_radix(&fresh_id, 16).unwrap() > u64::from_str_radix(&lease_id, 16).unwrap(),
        "{fresh_id} vs {lease_id}"
    );
    // New member and cluster IDs, from the flags, as etcd computes them.
    let want = strata_raftnode::member_id(std::slice::from_ref(&peer), "restore-token");
    assert_eq!(rc.member_id(), want);
    // And it takes writes.
    assert_eq!(rc.ok(&["put", "new", "write"]), "OK\n");
    assert_eq!(rc.revision(), rev + 1);
}

#[test]
fn a_damaged_or_truncated_snapshot_is_refused_and_creates_nothing() {
    let Some((dir, _s, c)) = setup(&[]) else {
        return;
    };
    for i in 0..20 {
        c.ok(&["put", &format!("k{i}"), "some value"]);
    }
    let file = dir.path().join("good.db");
    c.ok(&["snapshot", "save", file.to_str().unwrap()]);
    let good = std::fs::read(&file).unwrap();
    let peer = "http://127.0.0.1:2380";
    let cluster = "restored=http://127.0.0.1:2380";

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 100);
    for (name, bytes, why) in [
        ("flipped.db", flipped, "integrity check failed"),
        ("truncated.db", truncated, "integrity check failed"),
        ("empty.db", Vec::new(), "too short"),
    ] {
        let bad = dir.path().join(name);
        std::fs::write(&bad, &bytes).unwrap();
        let target = dir.path().join(format!("{name}.data"));
        let out = stratautl(&restore_args(
            bad.to_str().unwrap(),
            target.to_str().unwrap(),
            peer,
            cluster,
        ));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} restored");
        assert!(
            err.starts_with("Error: ") && err.contains(why),
            "{name}: {err}"
        );
        assert!(!target.exists(), "{name} left {}", target.display());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("restore-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    // The good file restores; a second restore into the same directory is refused.
    let target = dir.path().join("ok.data");
    let args = restore_args(
        file.to_str().unwrap(),
        target.to_str().unwrap(),
        peer,
        cluster,
    );
    assert!(stratautl(&args).status.success());
    let again = stratautl(&args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[test]
fn move_leader_and_hash_answer_as_etcd_on_one_member() {
    let Some((_dir, _s, c)) = setup(&[]) else {
        return;
    };
    let me = format!("{:x}", c.member_id());
    assert_eq!(
        c.ok(&["move-leader", &me]).trim_end(),
        format!("Leadership transferred from {me} to {me}")
    );
    assert_eq!(
        c.err(&["move-leader", "1234"]),
        "Error: etcdserver: bad leader transferee"
    );
    c.ok(&["put", "a", "1"]);
    let h1 = c.ok(&["endpoint", "hash"]);
    assert!(h1.starts_with(&format!("{}, ", c.endpoint)), "{h1}");
    assert_eq!(c.ok(&["endpoint", "hash"]), h1, "a hash is stable");
    c.ok(&["put", "a", "2"]);
    assert_ne!(c.ok(&["endpoint", "hash"]), h1);
}

/// Periodic auto-compaction with a 2 s retention (etcd accepts durations): the history
/// written before is compacted away without any client asking. No time is asserted: the
/// loop waits for the compaction, bounded only so a broken build fails instead of hanging.
#[test]
fn periodic_auto_compaction_compacts_through_raft() {
    let Some((_dir, _s, c)) = setup(&[
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "2s",
    ]) else {
        return;
    };
    c.ok(&["put", "k", "1"]);
    c.ok(&["put", "k", "2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Keep writing, so the window moves past revision 2.
        c.ok(&["put", "k", "more"]);
        let out = c.run(&["get", "k", "--rev", "2"], None);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Error: etcdserver: mvcc: required revision has been compacted"),
                "{err}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no auto-compaction happened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Snapshot stream through the etcd-client crate: 32 KiB chunks with the bytes remaining
/// after each, content padded to 512-byte multiples, a last message holding its SHA-256; and
/// writes go on while a client holds the stream half read (the snapshot is one read
/// transaction, which blocks nobody). The file it makes holds the store as of the start.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_stream_is_chunked_checksummed_and_blocks_no_writer() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start_with(&dir.path().join("data"), free_port(), &[]);
    let mut c = etcd_client::Client::connect([s.url()], None).await.unwrap();
    let value = vec![b'x'; 64 * 1024];
    for i in 0..32 {
        c.put(format!("big/{i}"), value.clone(), None)
            .await
            .unwrap();
    }
    let start_rev = c
        .get("big/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut stream = c.snapshot().await.unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.blob().len(), 32 * 1024);
    let total = first.blob().len() as u64 + first.remaining_bytes();
    assert_eq!(total % 512, 0, "content padded to 512-byte sectors");
    assert!(total > 2 * 1024 * 1024, "{total}");

    // Half read: writers are not held up.
    let mut w = etcd_client::Client::connect([s.url()], None).await.unwrap();
    for i in 0..20 {
        w.put(format!("during/{i}"), "v", None).await.unwrap();
    }

    let mut content = first.blob().to_vec();
    let mut digest = None;
    while let Some(m) = stream.message().await.unwrap() {
        if m.remaining_bytes() == 0 && content.len() as u64 == total {
            digest = Some(m.blob().to_vec());
            break;
        }
        content.extend_from_slice(m.blob());
        assert_eq!(m.remaining_bytes(), total - content.len() as u64);
        assert!(m.blob().len() <= 32 * 1024);
    }
    assert!(
        stream.message().await.unwrap().is_none(),
        "the digest is last"
    );
    assert_eq!(content.len() as u64, total);
    let digest = digest.expect("a trailing digest");
    assert_eq!(digest, Sha256::digest(&content).to_vec());

    let file = dir.path().join("snap.db");
    let mut bytes = content;
    bytes.extend_from_slice(&digest);
    std::fs::write(&file, bytes).unwrap();
    let out = stratautl(&["snapshot", "status", file.to_str().unwrap(), "-w", "json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains(&format!("\"revision\":{start_rev},")),
        "{json}"
    );
}
