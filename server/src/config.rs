//! The `strata` command line: etcd's flag names, defaults and meanings for one member.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// etcd-compatible key-value store. Flags are etcd's.
#[derive(Parser, Debug, Clone)]
#[command(name = "strata", disable_version_flag = true)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `${name}.strata`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// List of URLs to listen on for client traffic (comma-separated).
    #[arg(long, default_value = "http://localhost:2379")]
    pub listen_client_urls: String,
    /// List of this member's client URLs to advertise to the public (comma-separated).
    #[arg(long, default_value = "http://localhost:2379")]
    pub advertise_client_urls: String,
    /// List of URLs to listen on for peer traffic (accepted; a one-member cluster has no
    /// peer traffic yet).
    #[arg(long, default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (`name=peerURL,...`).
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Initial cluster state (`new` or `existing`).
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = 1536 * 1024)]
    pub max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Duration of periodic watch progress notifications (e.g. `10m`, `5s`).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub watch_progress_notify_interval: Duration,
    /// Log level: debug, info, warn, error, panic, or fatal.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Path to the dedicated WAL directory (default: `<data-dir>/member/wal`).
    #[arg(long)]
    pub wal_dir: Option<PathBuf>,
    /// Raise the NOSPACE alarm when the backend size exceeds this many bytes (0: the
    /// default, 2 GiB).
    #[arg(long, default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Interpret `--auto-compaction-retention` as `periodic` (a duration) or `revision`.
    #[arg(long, default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto-compaction retention: a duration for periodic mode (`1h`, or a bare number of
    /// hours), a revision count for revision mode; 0 disables auto-compaction.
    #[arg(long, default_value = "0")]
    pub auto_compaction_retention: String,
    /// List of URLs to additionally serve /metrics and /health on (comma-separated).
    #[arg(long)]
    pub listen_metrics_urls: Option<String>,
    /// Path to the client server TLS certificate file.
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA certificate file.
    #[arg(long)]
    pub trusted_ca_file: Option<PathBuf>,
    /// Enable client certificate authentication.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub client_cert_auth: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

impl Config {
    /// The data directory: `--data-dir`, or `${name}.strata` as etcd's `${name}.etcd`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.strata", self.name)))
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

/// Parses etcd-style durations: `500ms`, `5s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("invalid duration {s:?} (use ms, s, m or h)")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_etcds() {
        let c = Config::parse_from(["strata"]);
        assert_eq!(c.data_dir(), PathBuf::from("default.strata"));
        assert_eq!(
            listen_addr(&c.listen_client_urls),
            Ok("127.0.0.1:2379".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(c.initial_cluster_token, "etcd-cluster");
        assert_eq!(c.max_txn_ops, 128);
    }

    #[test]
    fn urls_and_durations() {
        assert_eq!(
            url_list("http://127.0.0.1:1, http://127.0.0.1:2"),
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(
            listen_url("https://127.0.0.1:2379"),
            Ok(ListenUrl {
                addr: "127.0.0.1:2379".parse().unwrap_or_else(|_| unreachable!()),
                secure: true
            })
        );
        assert!(listen_addr("unixs://x:1").is_err());
        assert!(listen_addr("ftp://127.0.0.1:1").is_err());
        assert!(listen_addr("http://127.0.0.1").is_err());
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
