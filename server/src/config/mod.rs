//! The `strata` command line: etcd's flags, its YAML `--config-file` and its `ETCD_*`
//! environment variables, read with etcd 3.5's rules (Go flag syntax, a flag on the command
//! line wins over its variable, a config file makes both ignored).
//!
//! Every flag etcd accepts is accepted. [`table::FLAGS`] says, for each, whether Strata
//! honours it, ignores it (one warning saying why) or refuses it (a value other than etcd's
//! default is an error, because ignoring it would do something the operator did not ask for);
//! `docs/operations.md` ("Flags") is generated from that table.
//!
//! Reading the source: [`Config::load`] (this file) → `goflag.rs` (command line and
//! environment) or `file.rs` (config file) → `checks.rs` (dispositions and etcd's checks) →
//! `help.rs` (`--help`, `--version`, the docs table). `value.rs` parses Go's value syntax.

mod checks;
mod file;
mod goflag;
pub mod help;
pub mod table;
pub mod value;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use goflag::flag_to_env;
pub use table::{Disposition, FLAGS, FlagSpec};
use value::Value;
pub use value::parse_duration;

/// The configuration of one member, with etcd's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--name`: human-readable name for this member.
    pub name: String,
    /// `--data-dir` (default: `${name}.strata`, see [`Config::data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// `--listen-client-urls` (comma-separated).
    pub listen_client_urls: String,
    /// `--advertise-client-urls` (comma-separated).
    pub advertise_client_urls: String,
    /// `--listen-peer-urls`: accepted; a one-member cluster has no peer traffic.
    pub listen_peer_urls: String,
    /// `--initial-advertise-peer-urls` (comma-separated; shown by `member list`).
    pub initial_advertise_peer_urls: String,
    /// `--initial-cluster` when given (it may name this member only).
    pub initial_cluster: Option<String>,
    /// `--initial-cluster-state`: `new` or `existing`.
    pub initial_cluster_state: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--snapshot-count`: committed entries between raft snapshots.
    pub snapshot_count: u64,
    /// `--experimental-snapshot-catchup-entries` / `--snapshot-catchup-entries`: entries kept
    /// behind a snapshot.
    pub snapshot_catchup_entries: u64,
    /// `--heartbeat-interval` in milliseconds.
    pub heartbeat_interval: u64,
    /// `--election-timeout` in milliseconds.
    pub election_timeout: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--watch-progress-notify-interval` (or its `--experimental-` name, which wins when set).
    pub watch_progress_notify_interval: Duration,
    /// `--log-level`: debug, info, warn, error, panic or fatal.
    pub log_level: String,
    /// `--wal-dir` (default: `<data-dir>/member/wal`).
    pub wal_dir: Option<PathBuf>,
    /// `--quota-backend-bytes` (0: the default, 2 GiB).
    pub quota_backend_bytes: u64,
    /// `--auto-compaction-mode`: `periodic` or `revision`.
    pub auto_compaction_mode: String,
    /// `--auto-compaction-retention`: a duration for periodic mode (`1h`, or a bare number of
    /// hours), a revision count for revision mode; 0 disables auto-compaction.
    pub auto_compaction_retention: String,
    /// `--listen-metrics-urls` (comma-separated) when given.
    pub listen_metrics_urls: Option<String>,
    /// `--cert-file`: the client server TLS certificate.
    pub cert_file: Option<PathBuf>,
    /// `--key-file`: the client server TLS key.
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file`: the CA that signs client certificates.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth`: require a client certificate.
    pub client_cert_auth: bool,
    /// `--config-file` (or `ETCD_CONFIG_FILE`) when one was read.
    pub config_file: Option<PathBuf>,
    /// `--feature-gates` as given (etcd 3.6's gates; none changes Strata's behaviour).
    pub feature_gates: BTreeMap<String, bool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default".into(),
            data_dir: None,
            listen_client_urls: "http://localhost:2379".into(),
            advertise_client_urls: "http://localhost:2379".into(),
            listen_peer_urls: "http://localhost:2380".into(),
            initial_advertise_peer_urls: "http://localhost:2380".into(),
            initial_cluster: None,
            initial_cluster_state: "new".into(),
            initial_cluster_token: "etcd-cluster".into(),
            snapshot_count: 100_000,
            snapshot_catchup_entries: 5_000,
            heartbeat_interval: 100,
            election_timeout: 1000,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            watch_progress_notify_interval: Duration::from_secs(600),
            log_level: "info".into(),
            wal_dir: None,
            quota_backend_bytes: 0,
            auto_compaction_mode: "periodic".into(),
            auto_compaction_retention: "0".into(),
            listen_metrics_urls: None,
            cert_file: None,
            key_file: None,
            trusted_ca_file: None,
            client_cert_auth: false,
            config_file: None,
            feature_gates: BTreeMap::new(),
        }
    }
}

/// How serious a [`Warning`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// etcd logs it at info (`recognized and used environment variable ...`).
    Info,
    /// etcd logs it at warn; so do ignored flags.
    Warn,
}

/// A line to log once logging is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Its level.
    pub level: Level,
    /// The text.
    pub message: String,
}

impl Warning {
    fn warn(message: String) -> Self {
        Warning {
            level: Level::Warn,
            message,
        }
    }

    fn info(message: String) -> Self {
        Warning {
            level: Level::Info,
            message,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A command-line syntax error (Go's flag package: printed with the usage, exit 2).
    #[error("{0}")]
    Usage(String),
    /// A bad value or combination (etcd's "error verifying flags", exit 1).
    #[error("{0}")]
    Invalid(String),
    /// A flag Strata cannot honour and must not ignore (exit 1).
    #[error("{flag} is refused: {reason}")]
    Refused {
        /// The flag as given (`--enable-v2=true`, `ETCD_DISCOVERY=...`, `config file key ...`).
        flag: String,
        /// Why.
        reason: String,
    },
}

impl ConfigError {
    /// The exit code etcd uses for it: 2 for flag syntax, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Loaded {
    /// Run a member.
    Run {
        /// The configuration.
        config: Box<Config>,
        /// Lines to log once logging is set up.
        warnings: Vec<Warning>,
    },
    /// `--help`: print this (stdout) and exit 0.
    Help(String),
    /// `--version`: print this (stdout) and exit 0.
    Version(String),
}

/// Where a value came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    CommandLine,
    Env(String),
    ConfigFile,
}

impl Source {
    /// How a setting of `flag` to `value` is named in messages.
    fn describe(&self, flag: &str, value: &Value) -> String {
        match self {
            Source::CommandLine => format!("--{flag}={value}"),
            Source::Env(key) => format!("{key}={value}"),
            Source::ConfigFile => format!("config file key {flag}: {value}"),
        }
    }
}

/// Reads the config file at `path` into `settings`; the command line's other flags and the
/// `ETCD_*` variables are then ignored, as etcd does, with one warning naming them.
fn from_config_file(
    path: &str,
    on_command_line: &[&'static str],
    env: &[(String, String)],
    settings: &mut Settings,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let path = PathBuf::from(path);
    for (spec, value) in file::load(&path, warnings)? {
        settings.insert(spec, value, Source::ConfigFile);
    }
    let mut ignored: Vec<String> = Vec::new();
    let flags = on_command_line
        .iter()
        .filter(|n| **n != "config-file")
        .map(|n| format!("--{n}"));
    let vars = env
        .iter()
        .filter(|(k, _)| k.starts_with("ETCD_") && k != "ETCD_CONFIG_FILE")
        .map(|(k, _)| k.clone());
    for name in flags.chain(vars) {
        if !ignored.contains(&name) {
            ignored.push(name);
        }
    }
    if !ignored.is_empty() {
        warnings.push(Warning::warn(format!(
            "loaded server configuration from {}; other configuration command line flags and environment variables are ignored: {}",
            path.display(),
            ignored.join(", ")
        )));
    }
    Ok(())
}

/// The flags that were set, with their values and sources (last setting wins).
#[derive(Debug, Default)]
pub(crate) struct Settings {
    set: BTreeMap<&'static str, (&'static FlagSpec, Value, Source)>,
}

impl Settings {
    fn insert(&mut self, spec: &'static FlagSpec, value: Value, source: Source) {
        self.set.insert(spec.name, (spec, value, source));
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.set.get(name).map(|(_, v, _)| v)
    }

    fn is_set(&self, name: &str) -> bool {
        self.set.contains_key(name)
    }

    fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn uint(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some(Value::Uint(n)) => Some(*n),
            _ => None,
        }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.str(name).filter(|s| !s.is_empty()).map(PathBuf::from)
    }
}

impl Config {
    /// Reads the configuration from the command line (`args`, without the program name) and
    /// the environment (`env`), as etcd 3.5 does: flags first; `--help`/`--version` answer
    /// at once; then a config file (`--config-file` or `ETCD_CONFIG_FILE`), which makes the
    /// other flags and variables ignored, or else the flags filled in from `ETCD_*`. Then each
    /// flag's disposition and etcd's checks. Pure apart from reading the config file.
    pub fn load(args: &[String], env: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let parsed = goflag::parse_args(args)?;
        if parsed.help {
            return Ok(Loaded::Help(help::help_text()));
        }
        let on_command_line: Vec<&'static str> = parsed.set.iter().map(|(f, _)| f.name).collect();
        if parsed
            .set
            .iter()
            .rev()
            .find(|(f, _)| f.name == "version")
            .is_some_and(|(_, v)| *v == Value::Bool(true))
        {
            return Ok(Loaded::Version(help::version_text()));
        }
        let mut warnings = Vec::new();
        let mut settings = Settings::default();
        let config_file = parsed
            .set
            .iter()
            .rev()
            .find(|(f, _)| f.name == "config-file")
            .and_then(|(_, v)| match v {
                Value::Str(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .or_else(|| {
                env.iter()
                    .find(|(k, v)| k == "ETCD_CONFIG_FILE" && !v.is_empty())
                    .map(|(_, v)| v.clone())
            });
        if let Some(path) = &config_file {
            from_config_file(path, &on_command_line, env, &mut settings, &mut warnings)?;
        } else {
            for (spec, value, source) in goflag::from_env(env, &on_command_line, &mut warnings)? {
                settings.insert(spec, value, source);
            }
            for (spec, value) in parsed.set {
                settings.insert(spec, value, Source::CommandLine);
            }
        }
        let config = checks::build(&settings, config_file.as_deref(), &mut warnings)?;
        Ok(Loaded::Run {
            config: Box::new(config),
            warnings,
        })
    }

    /// The data directory: `--data-dir`, or `${name}.strata` as etcd's `${name}.etcd`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.strata", self.name)))
    }

    /// `--initial-cluster-state=existing` asks to join a running cluster; Strata runs
    /// one-member clusters, so it can only mean restarting a member already in the data
    /// directory (etcd ignores the flag then). With no member there, starting would
    /// bootstrap a new cluster the operator did not ask for, so this refuses, before anything
    /// is created on disk.
    pub fn check_cluster_state(&self) -> Result<(), ConfigError> {
        let identity = self.data_dir().join("member").join("identity");
        if self.initial_cluster_state == "existing" && !identity.exists() {
            return Err(ConfigError::Refused {
                flag: "--initial-cluster-state=existing".into(),
                reason: format!(
                    "there is no member in {} to restart, and Strata cannot join another cluster (one-member clusters only)",
                    self.data_dir().display()
                ),
            });
        }
        Ok(())
    }

    /// The tracing filter for `--log-level`.
    pub fn log_filter(&self) -> Result<&'static str, String> {
        Ok(match self.log_level.as_str() {
            "debug" => "debug,openraft=info,h2=info,tower=info,hyper=info",
            "info" => "info,openraft=warn",
            "warn" => "warn",
            "error" | "panic" | "fatal" => "error",
            other => {
                return Err(format!(
                    "invalid value {other:?} for --log-level (debug, info, warn, error, panic, fatal)"
                ));
            }
        })
    }
}

/// Splits a comma-separated URL list.
pub fn url_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// A URL to listen on: the address and whether it is `https://`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// The socket address (`localhost` is 127.0.0.1, as etcd binds it).
    pub addr: SocketAddr,
    /// `https://`: TLS with `--cert-file`/`--key-file`.
    pub secure: bool,
}

/// Parses an `http://host:port` or `https://host:port` listen URL.
pub fn listen_url(url: &str) -> Result<ListenUrl, String> {
    let (rest, secure) = if let Some(r) = url.strip_prefix("http://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("https://") {
        (r, true)
    } else if url.starts_with("unix://") || url.starts_with("unixs://") {
        return Err(format!("{url}: unix socket URLs are not supported"));
    } else {
        return Err(format!("{url}: URL scheme must be http or https"));
    };
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("{url}: missing port in address"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{url}: invalid port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "localhost" | "" => std::net::IpAddr::from([127, 0, 0, 1]),
        h => h
            .parse()
            .map_err(|_| format!("{url}: listen host must be an IP address or localhost"))?,
    };
    Ok(ListenUrl {
        addr: SocketAddr::new(ip, port),
        secure,
    })
}

/// The address to listen on for an `http://` or `https://` URL.
pub fn listen_addr(url: &str) -> Result<SocketAddr, String> {
    listen_url(url).map(|u| u.addr)
}

#[cfg(test)]
mod tests;
