//! etcd's YAML `--config-file`. Keys are the flag names (`name`, `data-dir`,
//! `listen-client-urls`, ...), except TLS: `client-transport-security` and
//! `peer-transport-security` hold `cert-file`, `key-file`, `client-cert-auth`,
//! `trusted-ca-file`, `auto-tls`, ... . Values have etcd's (JSON) types: booleans, integers,
//! strings, lists for `log-outputs` and `cipher-suites`, and durations as integer
//! nanoseconds (etcd unmarshals `time.Duration` from a number, so `5s` is an error there too).
//!
//! Unknown keys: etcd's `yaml.Unmarshal` ignores them silently and matches keys without
//! regard to case; Strata does the same but logs one warning per unknown key, so a typo is
//! visible.

use std::path::Path;

use yaml_serde::Value as Yaml;

use super::table::{self, FlagSpec};
use super::value::{Kind, Value};
use super::{ConfigError, Warning};

/// Flags that have no top-level key: the TLS ones live in the two nested sections, and the
/// rest are not part of etcd's config struct.
const NOT_TOP_LEVEL: &[&str] = &[
    "config-file",
    "version",
    "raft-read-timeout",
    "raft-write-timeout",
    "cert-file",
    "key-file",
    "client-cert-file",
    "client-key-file",
    "client-cert-auth",
    "client-cert-allowed-hostname",
    "client-crl-file",
    "trusted-ca-file",
    "auto-tls",
    "peer-cert-file",
    "peer-key-file",
    "peer-client-cert-file",
    "peer-client-key-file",
    "peer-client-cert-auth",
    "peer-trusted-ca-file",
    "peer-auto-tls",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-crl-file",
    "experimental-peer-skip-client-san-verification",
    "peer-skip-client-san-verification",
];

/// `client-transport-security` keys and the flags they set.
const CLIENT_TLS: &[(&str, &str)] = &[
    ("cert-file", "cert-file"),
    ("key-file", "key-file"),
    ("client-cert-file", "client-cert-file"),
    ("client-key-file", "client-key-file"),
    ("client-cert-auth", "client-cert-auth"),
    ("trusted-ca-file", "trusted-ca-file"),
    ("auto-tls", "auto-tls"),
    ("allowed-hostname", "client-cert-allowed-hostname"),
];

/// `peer-transport-security` keys and the flags they set.
const PEER_TLS: &[(&str, &str)] = &[
    ("cert-file", "peer-cert-file"),
    ("key-file", "peer-key-file"),
    ("client-cert-file", "peer-client-cert-file"),
    ("client-key-file", "peer-client-key-file"),
    ("client-cert-auth", "peer-client-cert-auth"),
    ("trusted-ca-file", "peer-trusted-ca-file"),
    ("auto-tls", "peer-auto-tls"),
    ("allowed-cn", "peer-cert-allowed-cn"),
    ("allowed-hostname", "peer-cert-allowed-hostname"),
    (
        "skip-client-san-verification",
        "experimental-peer-skip-client-san-verification",
    ),
];

/// Reads the config file at `path` into flag values.
pub(crate) fn load(
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(&'static FlagSpec, Value)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Invalid(format!("open {}: {e}", path.display())))?;
    parse(&text, &path.display().to_string(), warnings)
}

/// Parses config-file text; `origin` names it in messages.
pub(crate) fn parse(
    text: &str,
    origin: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(&'static FlagSpec, Value)>, ConfigError> {
    let bad = |msg: String| ConfigError::Invalid(format!("config file {origin}: {msg}"));
    let doc: Yaml = yaml_serde::from_str(text).map_err(|e| bad(e.to_string()))?;
    let map = match doc {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Mapping(m) => m,
        other => {
            return Err(bad(format!(
                "expected a mapping, found {}",
                describe(&other)
            )));
        }
    };
    let mut out = Vec::new();
    for (key, value) in &map {
        let Some(key) = key.as_str() else {
            return Err(bad(format!(
                "keys must be strings, found {}",
                describe(key)
            )));
        };
        let lower = key.to_ascii_lowercase();
        if lower == "client-transport-security" || lower == "peer-transport-security" {
            let peer = lower.starts_with("peer");
            nested(
                key,
                value,
                if peer { PEER_TLS } else { CLIENT_TLS },
                &mut out,
                warnings,
            )
            .map_err(bad)?;
            continue;
        }
        let spec = table::FLAGS
            .iter()
            .filter(|f| !NOT_TOP_LEVEL.contains(&f.name) && f.kind != Kind::Legacy)
            .find(|f| f.name == key)
            .or_else(|| {
                table::FLAGS
                    .iter()
                    .filter(|f| !NOT_TOP_LEVEL.contains(&f.name) && f.kind != Kind::Legacy)
                    .find(|f| f.name.eq_ignore_ascii_case(key))
            });
        match spec {
            Some(spec) => {
                if let Some(v) = convert(spec, key, value).map_err(bad)? {
                    out.push((spec, v));
                }
            }
            None => warnings.push(Warning::warn(format!(
                "config file {origin}: unknown key {key:?} ignored (etcd ignores unknown keys too)"
            ))),
        }
    }
    Ok(out)
}

/// One of the two TLS sections.
fn nested(
    section: &str,
    value: &Yaml,
    keys: &[(&str, &'static str)],
    out: &mut Vec<(&'static FlagSpec, Value)>,
    warnings: &mut Vec<Warning>,
) -> Result<(), String> {
    let map = match value {
        Yaml::Null => return Ok(()),
        Yaml::Mapping(m) => m,
        other => {
            return Err(format!(
                "{section:?} must be a mapping, found {}",
                describe(other)
            ));
        }
    };
    for (k, v) in map {
        let Some(k) = k.as_str() else {
            return Err(format!("keys of {section:?} must be strings"));
        };
        let flag = keys
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .and_then(|(_, flag)| table::lookup(flag));
        match flag {
            Some(spec) => {
                if let Some(val) = convert(spec, &format!("{section}.{k}"), v)? {
                    out.push((spec, val));
                }
            }
            None if k.eq_ignore_ascii_case("allowed-cn") && !is_empty(v) => {
                // etcd checks client certificates' CN against it; ignoring it would admit
                // clients the operator meant to reject.
                return Err(format!(
                    "{section}.allowed-cn is refused: client certificate CNs are not checked, so clients it should reject would be accepted"
                ));
            }
            None => warnings.push(Warning::warn(format!(
                "config file: unknown key {section}.{k} ignored (etcd ignores unknown keys too)"
            ))),
        }
    }
    Ok(())
}

fn is_empty(v: &Yaml) -> bool {
    match v {
        Yaml::Null => true,
        Yaml::String(s) => s.is_empty(),
        Yaml::Sequence(s) => s.is_empty(),
        _ => false,
    }
}

/// Converts one YAML value to the flag's value, with etcd's types; `None` for null.
fn convert(spec: &FlagSpec, key: &str, v: &Yaml) -> Result<Option<Value>, String> {
    let mismatch = |want: &str| format!("{key:?} must be {want}, found {}", describe(v));
    let value = match (spec.kind, v) {
        (_, Yaml::Null) => return Ok(None),
        (Kind::Bool, Yaml::Bool(b)) => Value::Bool(*b),
        // etcd's YAML reader follows YAML 1.1, where `yes`, `no`, `on` and `off` are booleans
        // too; this reader is YAML 1.2, so they arrive as strings.
        (Kind::Bool, Yaml::String(t)) if yaml11_bool(t).is_some() => {
            Value::Bool(yaml11_bool(t).unwrap_or_default())
        }
        (Kind::Bool, _) => return Err(mismatch("a boolean (true or false)")),
        (Kind::Str, Yaml::String(s)) => super::value::parse_value(spec.name, spec.kind, s)
            .map_err(|e| format!("{key:?}: {e}"))?,
        // etcd's list-valued keys (log-outputs, cipher-suites, allowed-cn, ...).
        (Kind::Str, Yaml::Sequence(items)) => {
            let parts: Option<Vec<&str>> = items.iter().map(Yaml::as_str).collect();
            Value::Str(
                parts
                    .ok_or_else(|| mismatch("a string or a list of strings"))?
                    .join(","),
            )
        }
        (Kind::Str, _) => return Err(mismatch("a string")),
        (Kind::Choice(valid), Yaml::String(s)) if valid.contains(&s.as_str()) => {
            Value::Str(s.clone())
        }
        (Kind::Choice(valid), _) => return Err(mismatch(&format!("one of {valid:?}"))),
        (Kind::Uint, Yaml::Number(n)) if n.as_u64().is_some() => {
            Value::Uint(n.as_u64().unwrap_or_default())
        }
        (Kind::Uint32, Yaml::Number(n)) if n.as_u64().is_some_and(|x| x <= u64::from(u32::MAX)) => {
            Value::Uint(n.as_u64().unwrap_or_default())
        }
        (Kind::Uint | Kind::Uint32, _) => return Err(mismatch("a non-negative integer")),
        (Kind::Int, Yaml::Number(n)) if n.as_i64().is_some() => {
            Value::Int(n.as_i64().unwrap_or_default())
        }
        (Kind::Int, _) => return Err(mismatch("an integer")),
        (Kind::Duration, Yaml::Number(n)) if n.as_i64().is_some() => {
            Value::Duration(n.as_i64().unwrap_or_default())
        }
        (Kind::Duration, _) => {
            return Err(mismatch(
                "an integer number of nanoseconds (etcd's config file takes durations as nanoseconds: 5000000000 is 5s)",
            ));
        }
        (Kind::Legacy, _) => return Ok(None),
    };
    Ok(Some(value))
}

/// YAML 1.1's boolean words.
fn yaml11_bool(t: &str) -> Option<bool> {
    match t {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Some(false)
        }
        _ => None,
    }
}

fn describe(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => format!("boolean {b}"),
        Yaml::Number(n) => format!("number {n}"),
        Yaml::String(s) => format!("string {s:?}"),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "a mapping".into(),
        Yaml::Tagged(_) => "a tagged value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> (Vec<(&'static str, Value)>, Vec<Warning>) {
        let mut w = Vec::new();
        let v = parse(text, "test.yaml", &mut w)
            .unwrap()
            .into_iter()
            .map(|(f, v)| (f.name, v))
            .collect();
        (v, w)
    }

    #[test]
    fn etcd_sample_keys() {
        let (v, w) = values(
            "name: node1\n\
             data-dir: /var/lib/etcd\n\
             snapshot-count: 10000\n\
             heartbeat-interval: 100\n\
             quota-backend-bytes: 0\n\
             listen-client-urls: http://127.0.0.1:2379\n\
             initial-cluster-state: 'new'\n\
             watch-progress-notify-interval: 5000000000\n\
             log-outputs: [stderr]\n\
             enable-v2: false\n\
             strict-reconfig-check: yes\n\
             client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n  auto-tls: false\n\
             peer-transport-security:\n  cert-file: /p.pem\n  allowed-cn: ''\n",
        );
        assert!(w.is_empty(), "{w:?}");
        let get = |n: &str| v.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get("name"), Some(Value::Str("node1".into())));
        assert_eq!(get("snapshot-count"), Some(Value::Uint(10000)));
        assert_eq!(
            get("watch-progress-notify-interval"),
            Some(Value::Duration(5_000_000_000))
        );
        assert_eq!(get("log-outputs"), Some(Value::Str("stderr".into())));
        assert_eq!(get("strict-reconfig-check"), Some(Value::Bool(true)));
        assert_eq!(get("cert-file"), Some(Value::Str("/c.pem".into())));
        assert_eq!(get("client-cert-auth"), Some(Value::Bool(true)));
        assert_eq!(get("peer-cert-file"), Some(Value::Str("/p.pem".into())));
        assert_eq!(get("peer-cert-allowed-cn"), Some(Value::Str("".into())));
    }

    #[test]
    fn unknown_keys_warn_and_case_is_ignored() {
        let (v, w) = values("Name: x\nnmae: y\nclient-transport-security:\n  crl-file: /x\n");
        assert_eq!(v, vec![("name", Value::Str("x".into()))]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].message.contains("\"nmae\""));
        assert!(w[1].message.contains("client-transport-security.crl-file"));
    }

    #[test]
    fn wrong_types_are_errors() {
        let mut w = Vec::new();
        for (text, needle) in [
            ("snapshot-count: lots\n", "must be a non-negative integer"),
            ("client-cert-auth: true\n", "unknown key"),
            ("enable-v2: maybe\n", "must be a boolean"),
            ("watch-progress-notify-interval: 5s\n", "nanoseconds"),
            ("initial-cluster-state: maybe\n", "one of"),
            ("name: [\n", "test.yaml"),
            ("- a\n- b\n", "expected a mapping"),
            (
                "client-transport-security:\n  allowed-cn: admin\n",
                "refused",
            ),
        ] {
            match parse(text, "test.yaml", &mut w) {
                Err(ConfigError::Invalid(m)) => assert!(m.contains(needle), "{text:?}: {m}"),
                Ok(_) => assert!(
                    w.iter().any(|x| x.message.contains(needle)),
                    "{text:?} accepted: {w:?}"
                ),
                Err(e) => panic!("{text:?}: {e:?}"),
            }
        }
        let (v, _) = values("");
        assert!(v.is_empty());
    }
}
