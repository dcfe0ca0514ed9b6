//! etcd's HTTP endpoints, served beside gRPC on the client URLs and alone on
//! `--listen-metrics-urls`:
//!
//! - `/health` (etcd 3.5): `{"health":"true","reason":""}`, or 503 with `"false"` and the
//!   reason when an alarm is active (`?exclude=NOSPACE` ignores one), there is no leader,
//!   or a linearizable one-key range fails (`?serializable=true`: a local range, and no
//!   leader needed);
//! - `/livez` and `/readyz` (etcd 3.6, which kubeadm probes): named checks, `ok`, the
//!   `[+]name ok` lines with `?verbose`, 503 with the `[-]name failed: reason` lines when one
//!   fails; `?exclude=name` skips a check, `/readyz/<name>` runs one;
//! - `/version`: `{"etcdserver":"3.5.17","etcdcluster":"3.5.0"}`;
//! - `/metrics`: Prometheus text (`metrics.rs`).
//!
//! Status codes, bodies and content types are those of etcd's Go handlers (`http.Error`
//! appends a newline and sets `text/plain; charset=utf-8` and `nosniff`).

use std::sync::Arc;

use strata_engine::mvcc::{AlarmType, RangeRequest};
use strata_raftnode::RaftNode;

use crate::ETCD_VERSION;
use crate::errors::{mvcc_status, node_status};
use crate::metrics::{METRICS, MetricsInfo, render};

/// What the endpoints need: the node and what `/metrics` reports about the settings.
pub(crate) struct HttpCtx {
    pub(crate) node: Arc<RaftNode>,
    pub(crate) info: MetricsInfo,
}

/// A finished HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    /// `Allow` on a 405.
    pub(crate) allow: Option<&'static str>,
    /// `X-Content-Type-Options: nosniff`, as Go's `http.Error` sets it.
    pub(crate) nosniff: bool,
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
            allow: None,
            nosniff: false,
        }
    }

    /// Go's `http.Error`: the message and a newline, as plain text.
    fn error(status: u16, msg: &str) -> Reply {
        Reply {
            status,
            content_type: TEXT,
            body: format!("{msg}\n").into_bytes(),
            allow: None,
            nosniff: true,
        }
    }

    fn method_not_allowed(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::error(405, "Method Not Allowed")
        }
    }
}

/// Answers a request for `path?query` with method `method`.
pub(crate) async fn handle(ctx: &HttpCtx, method: &str, path: &str, query: &str) -> Reply {
    let q = Query::parse(query);
    match path {
        "/health" => {
            if method != "GET" {
                return Reply::method_not_allowed("GET");
            }
            health(ctx, &q).await
        }
        "/version" => {
            if method != "GET" {
                return Reply::method_not_allowed("GET");
            }
            Reply::ok(
                "application/json",
                format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"3.5.0"}}"#),
            )
        }
        // promhttp serves any method.
        "/metrics" => Reply::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            render(&ctx.node, &ctx.info),
        ),
        _ => match check_set(path) {
            Some((set, one)) if one.is_none_or(|n| !n.is_empty()) => {
                if method != "GET" {
                    return Reply::method_not_allowed("GET");
                }
                checks(ctx, set, one, &q).await
            }
            _ => Reply::error(404, "404 page not found"),
        },
    }
}

/// The alarms raised on this member, by etcd's names (`NOSPACE`, `CORRUPT`).
///
/// Alarms are kept in the store (raised and cleared through raft); a store that cannot be
/// read answers with its error, which makes every check that asks fail.
fn active_alarms(ctx: &HttpCtx) -> Result<Vec<&'static str>, String> {
    let alarms = ctx.node.store().alarms().map_err(|e| e.to_string())?;
    Ok(alarms
        .iter()
        .map(|a| match a.alarm {
            AlarmType::Nospace => "NOSPACE",
            AlarmType::Corrupt => "CORRUPT",
        })
        .collect())
}

/// etcd 3.5's `/health`.
async fn health(ctx: &HttpCtx, q: &Query) -> Reply {
    let serializable = q.get("serializable") == Some("true");
    let excluded = q.all("exclude");
    let mut reason = None;
    let alarms = active_alarms(ctx).unwrap_or_else(|e| {
        reason = Some(e);
        Vec::new()
    });
    for alarm in alarms {
        if excluded.contains(&alarm) {
            continue;
        }
        reason = Some(match alarm {
            "NOSPACE" => "ALARM NOSPACE".to_string(),
            "CORRUPT" => "ALARM CORRUPT".to_string(),
            _ => "ALARM UNKNOWN".to_string(),
        });
        break;
    }
    if reason.is_none() && !serializable && ctx.node.leader().is_none() {
        reason = Some("RAFT NO LEADER".into());
    }
    if reason.is_none()
        && let Err(e) = read_check(ctx, serializable).await
    {
        reason = Some(format!("RANGE ERROR:{e}"));
    }
    METRICS.health(reason.is_none());
    match reason {
        None => Reply::ok(TEXT, r#"{"health":"true","reason":""}"#),
        Some(r) => {
            tracing::warn!(reason = %r, "serving /health false");
            let body = format!(r#"{{"health":"false","reason":"{}"}}"#, json_escape(&r));
            Reply::error(503, &body)
        }
    }
}

/// A one-key, keys-only range as etcd's health checks run it; linearizable unless
/// `serializable`. Returns etcd's error message.
async fn read_check(ctx: &HttpCtx, serializable: bool) -> Result<(), String> {
    if !serializable {
        ctx.node
            .read_barrier()
            .await
            .map_err(|e| node_status(&e).message().to_string())?;
    }
    let store = ctx.node.store();
    let req = RangeRequest {
        key: b"health".to_vec(),
        limit: 1,
        keys_only: true,
        ..RangeRequest::default()
    };
    tokio::task::block_in_place(|| store.range(&req))
        .map(|_| ())
        .map_err(|e| mvcc_status(&e).message().to_string())
}

/// The two check sets of etcd 3.6, each check in the order etcd registers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckSet {
    Livez,
    Readyz,
}

impl CheckSet {
    fn names(self) -> &'static [&'static str] {
        match self {
            CheckSet::Livez => &["serializable_read"],
            CheckSet::Readyz => &[
                "data_corruption",
                "serializable_read",
                "linearizable_read",
                "non_learner",
            ],
        }
    }
}

/// `/livez`, `/readyz` (`None`) or one of their checks (`Some(name)`; `Some("")` for a
/// path that names no check).
fn check_set(path: &str) -> Option<(CheckSet, Option<&str>)> {
    let (set, rest) = if let Some(r) = path.strip_prefix("/livez") {
        (CheckSet::Livez, r)
    } else if let Some(r) = path.strip_prefix("/readyz") {
        (CheckSet::Readyz, r)
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some((set, None));
    }
    let name = rest.strip_prefix('/')?;
    Some((
        set,
        Some(
            set.names()
                .iter()
                .copied()
                .find(|n| *n == name)
                .unwrap_or(""),
        ),
    ))
}

async fn run_check(ctx: &HttpCtx, name: &str) -> Result<(), String> {
    match name {
        "data_corruption" => {
            if active_alarms(ctx)?.contains(&"CORRUPT") {
                return Err("alarm activated: CORRUPT".into());
            }
            Ok(())
        }
        "serializable_read" => read_check(ctx, true).await,
        "linearizable_read" => read_check(ctx, false).await,
        // A one-member cluster's member is a voter.
        _ => Ok(()),
    }
}

/// etcd 3.6's `/livez` and `/readyz` and their per-check paths.
async fn checks(ctx: &HttpCtx, set: CheckSet, one: Option<&str>, q: &Query) -> Reply {
    let excluded = q.all("exclude");
    let names: Vec<&str> = match one {
        Some(n) => vec![n],
        None => set
            .names()
            .iter()
            .copied()
            .filter(|n| !excluded.contains(n))
            .collect(),
    };
    let mut out = String::new();
    let mut failed = false;
    for name in names {
        match run_check(ctx, name).await {
            Ok(()) => out.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                failed = true;
                out.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    if failed {
        tracing::error!(reason = %out.trim_end(), "health check failed");
        return Reply::error(503, &out);
    }
    let mut body = if q.has("verbose") { out } else { String::new() };
    body.push_str("ok\n");
    Reply {
        nosniff: true,
        ..Reply::ok(TEXT, body)
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A URL query (`a=1&b=2&b=3`), percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte); a bad
/// escape is kept as written. `+` is replaced first, so an escaped `%2B` stays a plus.
fn decode(s: &str) -> String {
    crate::grpc_limit::percent_decode(s.replace('+', " ").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = Query::parse("exclude=NOSPACE&exclude=&serializable=true&verbose&x=a%20b+c");
        assert_eq!(q.all("exclude"), vec!["NOSPACE"]);
        assert_eq!(q.get("serializable"), Some("true"));
        assert!(q.has("verbose"));
        assert_eq!(q.get("x"), Some("a b c"));
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn check_paths() {
        assert_eq!(check_set("/livez"), Some((CheckSet::Livez, None)));
        assert_eq!(
            check_set("/readyz/linearizable_read"),
            Some((CheckSet::Readyz, Some("linearizable_read")))
        );
        assert_eq!(
            check_set("/livez/linearizable_read"),
            Some((CheckSet::Livez, Some("")))
        );
        assert_eq!(check_set("/readyzz"), None);
        assert_eq!(check_set("/health"), None);
    }

    #[test]
    fn json_is_escaped() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
