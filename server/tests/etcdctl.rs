//! etcdctl (Debian's etcd-client 3.4) against the `strata` binary: every command's exact
//! output, as etcd 3.4.23 prints it for the same requests (checked side by side).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Strata, etcdctl, etcdctl_run};

struct Ctl {
    bin: PathBuf,
    endpoint: String,
}

impl Ctl {
    /// Runs a command that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = etcdctl_run(&self.bin, &self.endpoint, args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs a command that must fail; returns its `Error: ...` line.
    fn err(&self, args: &[&str]) -> String {
        let out = etcdctl_run(&self.bin, &self.endpoint, args, None);
        assert!(!out.status.success(), "etcdctl {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn setup() -> Option<(tempfile::TempDir, Strata, Ctl)> {
    let bin = etcdctl()?;
    let dir = tempfile::tempdir().unwrap();
    let s = Strata::start(&dir.path().join("data"));
    let ctl = Ctl {
        bin,
        endpoint: s.endpoint(),
    };
    Some((dir, s, ctl))
}

#[test]
fn put_get_and_their_options() {
    let Some((_dir, _s, c)) = setup() else { return };
    assert_eq!(c.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(c.ok(&["put", "foo", "bar2", "--prev-kv"]), "OK\nfoo\nbar\n");
    assert_eq!(c.ok(&["get", "foo"]), "foo\nbar2\n");
    let json = c.ok(&["get", "foo", "-w", "json"]);
    assert_eq!(
        json,
        "{\"header\":{\"cluster_id\":14841639068965178418,\"member_id\":10276657743932975437,\
         \"revision\":3,\"raft_term\":1},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":2,\
         \"mod_revision\":3,\"version\":2,\"value\":\"YmFyMg==\"}],\"count\":1}\n"
    );
    for (k, v) in [("k1", "v1"), ("k2", "v2"), ("k3", "v3")] {
        assert_eq!(c.ok(&["put", k, v]), "OK\n");
    }
    assert_eq!(c.ok(&["get", "--prefix", "k"]), "k1\nv1\nk2\nv2\nk3\nv3\n");
    assert_eq!(
        c.ok(&["get", "--prefix", "k", "--limit", "2"]),
        "k1\nv1\nk2\nv2\n"
    );
    assert_eq!(c.ok(&["get", "--from-key", "k2"]), "k2\nv2\nk3\nv3\n");
    assert_eq!(
        c.ok(&["get", "--keys-only", "--prefix", "k"]),
        "k1\n\nk2\n\nk3\n\n"
    );
    assert_eq!(c.ok(&["get", "--print-value-only", "k1"]), "v1\n");
    assert_eq!(c.ok(&["get", "--rev", "2", "foo"]), "foo\nbar\n");
    assert_eq!(
        c.ok(&["get", "--prefix", "k", "-w", "json", "--limit", "1"]),
        "{\"header\":{\"cluster_id\":14841639068965178418,\"member_id\":10276657743932975437,\
         \"revision\":6,\"raft_term\":1},\"kvs\":[{\"key\":\"azE=\",\"create_revision\":4,\
         \"mod_revision\":4,\"version\":1,\"value\":\"djE=\"}],\"more\":true,\"count\":3}\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "--prefix",
            "k",
            "--sort-by=MODIFY",
            "--order=DESCEND"
        ]),
        "k3\nv3\nk2\nv2\nk1\nv1\n"
    );
    assert_eq!(
        c.ok(&["get", "--prefix", "k", "--consistency=s"]),
        "k1\nv1\nk2\nv2\nk3\nv3\n"
    );
    assert_eq!(c.ok(&["get", "missing"]), "");
    assert_eq!(
        c.err(&["get", "--rev", "99", "foo"]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        c.err(&["put", "", "x"]),
        "Error: etcdserver: key is not provided"
    );
    // Refused requests change nothing.
    assert!(
        c.ok(&["get", "foo", "-w", "json"])
            .contains("\"revision\":6")
    );
}

#[test]
fn del_and_txn() {
    let Some((_dir, _s, c)) = setup() else { return };
    for (k, v) in [("foo", "bar"), ("k1", "v1"), ("k2", "v2"), ("k3", "v3")] {
        c.ok(&["put", k, v]);
    }
    assert_eq!(c.ok(&["del", "k1"]), "1\n");
    assert_eq!(c.ok(&["del", "--prev-kv", "k2"]), "1\nk2\nv2\n");
    assert_eq!(c.ok(&["del", "--prefix", "nothing"]), "0\n");
    c.ok(&["put", "k4", "v4"]);
    assert_eq!(c.ok(&["del", "--prefix", "k"]), "2\n");
    let yes = "mod(\"foo\") > \"0\"\n\nput foo txn-yes\n\nput foo txn-no\n\n";
    assert_eq!(c.ok_in(&["txn"], Some(yes)), "SUCCESS\n\nOK\n");
    let no = "value(\"foo\") = \"x\"\n\nput a 1\n\nput b 2\nget foo\n\n";
    assert_eq!(
        c.ok_in(&["txn", "-w", "json"], Some(no)),
        "{\"header\":{\"cluster_id\":14841639068965178418,\"member_id\":10276657743932975437,\
         \"revision\":11,\"raft_term\":1},\"responses\":[{\"Response\":{\"ResponsePut\":\
         {\"header\":{\"revision\":11}}}},{\"Response\":{\"ResponseRange\":{\"header\":\
         {\"revision\":11},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":2,\"mod_revision\":10,\
         \"version\":2,\"value\":\"dHhuLXllcw==\"}],\"count\":1}}}]}\n"
    );
    assert_eq!(c.ok(&["get", "b"]), "b\n2\n");
    assert_eq!(c.ok(&["get", "a"]), "", "the success branch did not run");
}

#[test]
fn leases() {
    let Some((_dir, _s, c)) = setup() else { return };
    let granted = c.ok(&["lease", "grant", "100"]);
    // Strata names a lease after the log entry that granted it (etcd's are random).
    let id = granted
        .strip_prefix("lease ")
        .and_then(|r| r.strip_suffix(" granted with TTL(100s)\n"))
        .unwrap_or_else(|| panic!("unexpected grant output {granted:?}"))
        .to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(c.ok(&["put", "--lease", &id, "leased", "v"]), "OK\n");
    assert_eq!(c.ok(&["lease", "list"]), format!("found 1 leases\n{id}\n"));
    let ttl = c.ok(&["lease", "timetolive", &id, "--keys"]);
    let prefix = format!("lease {id} granted with TTL(100s), remaining(");
    assert!(ttl.starts_with(&prefix), "{ttl}");
    assert!(ttl.ends_with("s), attached keys([leased])\n"), "{ttl}");
    assert_eq!(
        c.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(100)\n")
    );
    assert_eq!(
        c.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        c.ok(&["get", "leased"]),
        "",
        "revoking deletes attached keys"
    );
    assert_eq!(
        c.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(c.ok(&["lease", "list"]), "found 0 leases\n");
    assert_eq!(
        c.err(&["lease", "revoke", "1234"]),
        "Error: failed to revoke lease (etcdserver: requested lease not found)"
    );
    assert_eq!(
        c.err(&["lease", "keep-alive", "--once", "1234"]),
        "Error: etcdserver: requested lease not found"
    );
}

#[test]
fn compaction_and_maintenance() {
    let Some((_dir, s, c)) = setup() else { return };
    for v in ["1", "2", "3", "4"] {
        c.ok(&["put", "foo", v]);
    }
    assert_eq!(c.ok(&["compaction", "3"]), "compacted revision 3\n");
    assert_eq!(
        c.ok(&["compaction", "--physical", "4"]),
        "compacted revision 4\n"
    );
    assert_eq!(
        c.err(&["get", "--rev", "3", "foo"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(c.ok(&["get", "--rev", "4", "foo"]), "foo\n3\n");
    assert_eq!(
        c.err(&["compaction", "2"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    let ep = s.endpoint();
    assert_eq!(
        c.ok(&["defrag"]),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    assert_eq!(c.ok(&["get", "foo"]), "foo\n4\n", "defrag changes no data");
    // The same data in etcd 3.4.23 hashes to this value too (HashKV is etcd's definition).
    let hash = c.ok(&["endpoint", "hashkv"]);
    assert!(hash.starts_with(&format!("{ep}, ")), "{hash}");
    assert_eq!(
        c.ok(&["member", "list"]),
        format!(
            "8e9e05c52164694d, started, default, http://localhost:2380, {}, false\n",
            s.url()
        )
    );
    // etcdctl 3.4 prints health to stderr.
    let out = etcdctl_run(&c.bin, &c.endpoint, &["endpoint", "health"], None);
    assert!(out.status.success());
    let health = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        health.starts_with(&format!(
            "{ep} is healthy: successfully committed proposal: took = "
        )),
        "{health}"
    );
    let status = c.ok(&["endpoint", "status"]);
    let fields: Vec<&str> = status.trim_end().split(',').map(str::trim).collect();
    assert_eq!(fields.len(), 10, "{status}");
    assert_eq!(
        (fields[0], fields[1], fields[2], fields[4], fields[5]),
        (ep.as_str(), "8e9e05c52164694d", "3.5.17", "true", "false"),
        "{status}"
    );
    assert!(
        fields[3].ends_with("kB") || fields[3].ends_with("MB"),
        "{status}"
    );
}

/// Collects a child's stdout in the background.
fn collect(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = out.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

fn watch(bin: &Path, endpoint: &str, args: &[&str], until_lines: usize) -> String {
    let mut child = Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let buf = collect(&mut child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while buf.lock().unwrap().lines().count() < until_lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    buf.lock().unwrap().clone()
}

#[test]
fn watches() {
    let Some((_dir, s, c)) = setup() else { return };
    c.ok(&["put", "ka", "1"]); // rev 2
    c.ok(&["put", "kb", "2"]); // rev 3
    c.ok(&["put", "ka", "3"]); // rev 4
    c.ok(&["del", "kb"]); // rev 5
    c.ok(&["put", "other", "x"]); // rev 6
    let ep = s.endpoint();
    assert_eq!(
        watch(&c.bin, &ep, &["--prefix", "--rev", "2", "k"], 12),
        "PUT\nka\n1\nPUT\nkb\n2\nPUT\nka\n3\nDELETE\nkb\n\n"
    );
    assert_eq!(
        watch(&c.bin, &ep, &["--prev-kv", "--rev", "3", "ka"], 5),
        "PUT\nka\n1\nka\n3\n"
    );
    // A live watch sees a put made after it started.
    let mut child = Command::new(&c.bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={ep}"))
        .args(["watch", "live"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let buf = collect(&mut child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while buf.lock().unwrap().is_empty() && Instant::now() < deadline {
        c.ok(&["put", "live", "now"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = buf.lock().unwrap().clone();
    assert!(out.starts_with("PUT\nlive\nnow\n"), "{out:?}");
}
