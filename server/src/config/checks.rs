//! From the flags that were set to a [`Config`]: each flag's disposition (warn for ignored
//! ones, refuse a refused one set to anything but etcd's default), the values Strata accepts
//! for the flags it honours, and etcd's own checks with etcd's messages
//! (`embed.Config.Validate`).

use std::path::PathBuf;
use std::time::Duration;

use super::table::Disposition;
use super::value::{FEATURE_GATES, Value, parse_feature_gates};
use super::{Config, ConfigError, Settings, Warning, url_list};

/// etcd's `maxElectionMs`.
const MAX_ELECTION_MS: u64 = 50_000;

/// The experimental flags etcd 3.6 maps to feature gates; setting both is an error there.
const GATE_FLAGS: &[(&str, &str)] = &[
    ("experimental-initial-corrupt-check", "InitialCorruptCheck"),
    (
        "experimental-compact-hash-check-enabled",
        "CompactHashCheck",
    ),
    ("experimental-enable-lease-checkpoint", "LeaseCheckpoint"),
    (
        "experimental-enable-lease-checkpoint-persist",
        "LeaseCheckpointPersist",
    ),
    (
        "experimental-txn-mode-write-with-shared-buffer",
        "TxnModeWriteWithSharedBuffer",
    ),
    (
        "experimental-stop-grpc-service-on-defrag",
        "StopGRPCServiceOnDefrag",
    ),
];

/// Builds the configuration from `settings` (which came from `config_file` when one is given).
pub(crate) fn build(
    settings: &Settings,
    config_file: Option<&str>,
    warnings: &mut Vec<Warning>,
) -> Result<Config, ConfigError> {
    let from_file = config_file.is_some();
    dispositions(settings, warnings)?;
    logging(settings, warnings)?;
    let feature_gates = feature_gates(settings, warnings)?;
    let mut c = Config {
        feature_gates,
        ..Config::default()
    };
    let s = settings;
    let str_or = |name: &str, default: String| s.str(name).map_or(default, String::from);
    c.name = str_or("name", c.name);
    c.data_dir = s.path("data-dir");
    c.wal_dir = s.path("wal-dir");
    c.listen_client_urls = str_or("listen-client-urls", c.listen_client_urls);
    c.advertise_client_urls = str_or("advertise-client-urls", c.advertise_client_urls);
    c.listen_peer_urls = str_or("listen-peer-urls", c.listen_peer_urls);
    c.initial_advertise_peer_urls =
        str_or("initial-advertise-peer-urls", c.initial_advertise_peer_urls);
    c.initial_cluster = s.str("initial-cluster").map(String::from);
    c.initial_cluster_state = str_or("initial-cluster-state", c.initial_cluster_state);
    c.initial_cluster_token = str_or("initial-cluster-token", c.initial_cluster_token);
    (c.snapshot_count, c.snapshot_catchup_entries) = snapshot_counts(s, warnings);
    c.heartbeat_interval = s.uint("heartbeat-interval").unwrap_or(c.heartbeat_interval);
    c.election_timeout = s.uint("election-timeout").unwrap_or(c.election_timeout);
    c.max_request_bytes = usize_of(s, "max-request-bytes", c.max_request_bytes)?;
    c.max_txn_ops = usize_of(s, "max-txn-ops", c.max_txn_ops)?;
    if let Some(interval) = watch_interval(s)? {
        c.watch_progress_notify_interval = interval;
    }
    c.log_level = str_or("log-level", c.log_level);
    c.quota_backend_bytes = quota(s)?;
    c.auto_compaction_mode = str_or("auto-compaction-mode", c.auto_compaction_mode);
    c.auto_compaction_retention = str_or("auto-compaction-retention", c.auto_compaction_retention);
    c.listen_metrics_urls = s
        .str("listen-metrics-urls")
        .filter(|u| !u.is_empty())
        .map(String::from);
    c.cert_file = s.path("cert-file");
    c.key_file = s.path("key-file");
    c.trusted_ca_file = s.path("trusted-ca-file");
    c.client_cert_auth = s.get("client-cert-auth") == Some(&Value::Bool(true));
    c.config_file = config_file.map(PathBuf::from);
    validate(&c, s, from_file)?;
    Ok(c)
}

/// `--snapshot-count` and the catch-up entries (the experimental name wins, as in etcd 3.6);
/// 0 means the default, as etcd's server start says with an info line.
fn snapshot_counts(s: &Settings, warnings: &mut Vec<Warning>) -> (u64, u64) {
    let defaults = Config::default();
    let count = s.uint("snapshot-count");
    let catch_up = s
        .uint("experimental-snapshot-catchup-entries")
        .or_else(|| s.uint("snapshot-catchup-entries"));
    let mut or_default = |name: &str, given: Option<u64>, default: u64| match given {
        Some(0) => {
            warnings.push(Warning::info(format!(
                "updating {name} to default: given 0, using {default}"
            )));
            default
        }
        Some(n) => n,
        None => default,
    };
    (
        or_default("snapshot-count", count, defaults.snapshot_count),
        or_default(
            "snapshot-catchup-entries",
            catch_up,
            defaults.snapshot_catchup_entries,
        ),
    )
}

/// `--watch-progress-notify-interval`; etcd 3.6: the experimental name, when set, overrides
/// the new one.
fn watch_interval(s: &Settings) -> Result<Option<Duration>, ConfigError> {
    let watch = if s.is_set("experimental-watch-progress-notify-interval") {
        "experimental-watch-progress-notify-interval"
    } else {
        "watch-progress-notify-interval"
    };
    match s.get(watch) {
        Some(Value::Duration(ns)) => u64::try_from(*ns)
            .map(|ns| Some(Duration::from_nanos(ns)))
            .map_err(|_| ConfigError::Invalid(format!("--{watch} must not be negative"))),
        _ => Ok(None),
    }
}

fn usize_of(s: &Settings, name: &str, default: usize) -> Result<usize, ConfigError> {
    match s.uint(name) {
        Some(n) => usize::try_from(n)
            .map_err(|_| ConfigError::Invalid(format!("--{name}={n} is too large"))),
        None => Ok(default),
    }
}

/// Warns for each ignored flag that was set; refuses a refused flag set to a value other
/// than etcd's default.
fn dispositions(s: &Settings, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    for (spec, value, source) in s.set.values() {
        let is_default = spec.kind.parse(spec.default).ok().as_ref() == Some(value);
        match spec.disposition {
            Disposition::Honoured => {}
            Disposition::Ignored => warnings.push(Warning::warn(format!(
                "{} is ignored: {}",
                source.describe(spec.name, value),
                spec.reason
            ))),
            Disposition::Refused if is_default => {}
            Disposition::Refused => {
                return Err(ConfigError::Refused {
                    flag: source.describe(spec.name, value),
                    reason: spec.reason.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `--logger` and `--log-outputs`: the values etcd 3.5 accepts, and what Strata does.
fn logging(s: &Settings, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    if let Some(logger) = s.str("logger")
        && logger != "zap"
    {
        return Err(ConfigError::Invalid(format!(
            "unknown logger option {logger:?}; etcd 3.5 supports only 'zap'"
        )));
    }
    let Some((spec, Value::Str(outputs), source)) = s.set.get("log-outputs") else {
        return Ok(());
    };
    for out in url_list(outputs) {
        match out.as_str() {
            "default" | "stderr" => {}
            "stdout" | "systemd/journal" => warnings.push(Warning::warn(format!(
                "{} is ignored: Strata logs to stderr (under systemd, stderr reaches the journal)",
                source.describe(spec.name, &Value::Str(out.clone()))
            ))),
            _ => {
                return Err(ConfigError::Refused {
                    flag: source.describe(spec.name, &Value::Str(out.clone())),
                    reason: "Strata logs to stderr only, so the log file would stay empty".into(),
                });
            }
        }
    }
    Ok(())
}

/// `--feature-gates` as etcd 3.6 reads it, with its conflict checks; every gate set is
/// reported as having no effect on Strata.
fn feature_gates(
    s: &Settings,
    warnings: &mut Vec<Warning>,
) -> Result<std::collections::BTreeMap<String, bool>, ConfigError> {
    let text = s.str("feature-gates").unwrap_or("");
    let gates = parse_feature_gates(text).map_err(ConfigError::Invalid)?;
    let enabled = |gate: &str| {
        let alpha_default = gates.iter().find(|(g, _)| *g == "AllAlpha").map(|g| g.1);
        gates
            .iter()
            .find(|(g, _)| *g == gate)
            .map(|g| g.1)
            .or(if gate == "TxnModeWriteWithSharedBuffer" {
                None
            } else {
                alpha_default
            })
            .unwrap_or_else(|| FEATURE_GATES.iter().any(|(g, d)| *g == gate && *d))
    };
    for (flag, gate) in GATE_FLAGS {
        if let Some(Value::Bool(v)) = s.get(flag)
            && text.contains(gate)
        {
            let e = enabled(gate);
            return Err(ConfigError::Invalid(format!(
                "cannot specify both flags: --{flag}={v} and --feature-gates={gate}={e} at the same time, please just use --feature-gates={gate}={e}"
            )));
        }
    }
    if enabled("LeaseCheckpointPersist") && !enabled("LeaseCheckpoint") {
        return Err(ConfigError::Invalid(
            "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint".into(),
        ));
    }
    for (gate, v) in &gates {
        let why = match *gate {
            "InitialCorruptCheck" | "CompactHashCheck" => {
                super::table::lookup("experimental-initial-corrupt-check").map_or("", |f| f.reason)
            }
            "StopGRPCServiceOnDefrag" => {
                "defragmentation does not block requests, so the service keeps serving"
            }
            "TxnModeWriteWithSharedBuffer" => {
                "readers never wait for the writer in Strata's engine"
            }
            "LeaseCheckpoint" | "LeaseCheckpointPersist" => {
                "a one-member cluster has no leader changes to checkpoint lease TTLs across"
            }
            "SetMemberLocalAddr" => "a one-member cluster has no peer traffic",
            _ => "no feature gate changes Strata's behaviour",
        };
        warnings.push(Warning::warn(format!(
            "feature gate {gate}={v} has no effect: {why}"
        )));
    }
    Ok(gates.into_iter().map(|(g, v)| (g.to_string(), v)).collect())
}

/// `--quota-backend-bytes`: etcd disables its quota for a negative value; Strata always
/// enforces one, so a negative value is refused rather than silently enforced.
fn quota(s: &Settings) -> Result<u64, ConfigError> {
    match s.set.get("quota-backend-bytes") {
        Some((spec, Value::Int(n), source)) => {
            u64::try_from(*n).map_err(|_| ConfigError::Refused {
                flag: source.describe(spec.name, &Value::Int(*n)),
                reason: "a negative quota disables etcd's space quota; Strata always enforces one"
                    .into(),
            })
        }
        _ => Ok(0),
    }
}

/// etcd's checks (`embed.Config.Validate` and `etcdmain`), with its messages, and the
/// one-member rule for `--initial-cluster`.
fn validate(c: &Config, s: &Settings, from_file: bool) -> Result<(), ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    if c.heartbeat_interval == 0 {
        return invalid(format!(
            "--heartbeat-interval must be >0 (set to {}ms)",
            c.heartbeat_interval
        ));
    }
    if c.election_timeout == 0 {
        return invalid(format!(
            "--election-timeout must be >0 (set to {}ms)",
            c.election_timeout
        ));
    }
    if 5 * c.heartbeat_interval > c.election_timeout {
        return invalid(format!(
            "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
            c.election_timeout, c.heartbeat_interval
        ));
    }
    if c.election_timeout > MAX_ELECTION_MS {
        return invalid(format!(
            "--election-timeout[{}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms",
            c.election_timeout
        ));
    }
    // etcd drops the default advertise URL when the listen URL is set on the command line
    // (not in a config file), and then requires one.
    if !from_file && s.is_set("listen-client-urls") && !s.is_set("advertise-client-urls") {
        return invalid(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .into(),
        );
    }
    match c.auto_compaction_mode.as_str() {
        "periodic" | "revision" => {}
        "" => return invalid("undefined auto-compaction-mode".into()),
        m => return invalid(format!("unknown auto-compaction-mode {m:?}")),
    }
    c.log_filter().map_err(ConfigError::Invalid)?;
    if let Some(ic) = &c.initial_cluster {
        initial_cluster(c, ic, s)?;
    }
    Ok(())
}

/// `--initial-cluster` may list this member only (under one or more peer URLs).
fn initial_cluster(c: &Config, ic: &str, s: &Settings) -> Result<(), ConfigError> {
    let mut others = Vec::new();
    let mut mine = false;
    for member in ic.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some((name, url)) = member.split_once('=') else {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster: {member:?} is not name=peerURL"
            )));
        };
        if url.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster: {member:?} has no peer URL"
            )));
        }
        if name == c.name {
            mine = true;
        } else if !others.contains(&name) {
            others.push(name);
        }
    }
    if !others.is_empty() {
        let flag = s
            .set
            .get("initial-cluster")
            .map(|(f, v, src)| src.describe(f.name, v))
            .unwrap_or_else(|| format!("--initial-cluster={ic}"));
        return Err(ConfigError::Refused {
            flag,
            reason: format!(
                "it names other members ({}): Strata runs one-member clusters only",
                others.join(", ")
            ),
        });
    }
    if !mine {
        return Err(ConfigError::Invalid(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            c.name
        )));
    }
    Ok(())
}
