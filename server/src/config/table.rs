//! Every flag `strata` accepts: etcd 3.5's flag set for one member, the etcd 3.6 names kubeadm
//! and newer tooling pass (`--feature-gates`, `--watch-progress-notify-interval`, ...), and the
//! legacy names etcd still swallows. Each entry says what Strata does with the flag — honour
//! it, ignore it with one warning, or refuse it — and why. `docs/operations.md` ("Flags") is
//! generated from this table and a test keeps the two equal.
//!
//! This file is a data table: it is long on purpose, one entry per flag, in the order of
//! etcd's `--help`.

use super::value::Kind;

/// What Strata does with a flag given on the command line, in `ETCD_*` or in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Wired to Strata's behaviour (some values may still be refused; see the reason).
    Honoured,
    /// Accepted; setting it logs one warning naming the flag and the reason it has no effect.
    Ignored,
    /// A value other than the default is refused (exit 1, nothing created on disk), because
    /// ignoring it would silently do something the operator did not ask for.
    Refused,
}

impl Disposition {
    /// The word used in docs and help.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Honoured => "honoured",
            Disposition::Ignored => "ignored",
            Disposition::Refused => "refused",
        }
    }
}

/// The `--help` section a flag is listed under (etcd's headings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// `Member:`
    Member,
    /// `Clustering:`
    Clustering,
    /// `Security:`
    Security,
    /// `Auth:`
    Auth,
    /// `Profiling and Monitoring:`
    Monitoring,
    /// `Logging:`
    Logging,
    /// `Experimental distributed tracing:`
    Tracing,
    /// `v2 Proxy (to be deprecated in v3.6):`
    Proxy,
    /// `Experimental feature:`
    Experimental,
    /// etcd 3.6's names for 3.5's experimental flags, and its feature gates.
    Etcd36,
    /// `Unsafe feature:`
    Unsafe,
    /// Not listed by `--help` (`--config-file` and `--version` are in the usage lines; the
    /// legacy flags etcd ignores are listed nowhere).
    Hidden,
}

impl Section {
    /// The sections in `--help` order.
    pub const ALL: [Section; 11] = [
        Section::Member,
        Section::Clustering,
        Section::Security,
        Section::Auth,
        Section::Monitoring,
        Section::Logging,
        Section::Tracing,
        Section::Proxy,
        Section::Experimental,
        Section::Etcd36,
        Section::Unsafe,
    ];

    /// The heading in `--help`.
    pub fn title(self) -> &'static str {
        match self {
            Section::Member => "Member",
            Section::Clustering => "Clustering",
            Section::Security => "Security",
            Section::Auth => "Auth",
            Section::Monitoring => "Profiling and Monitoring",
            Section::Logging => "Logging",
            Section::Tracing => "Experimental distributed tracing",
            Section::Proxy => "v2 Proxy (to be deprecated in v3.6)",
            Section::Experimental => "Experimental feature",
            Section::Etcd36 => "etcd 3.6 names and feature gates",
            Section::Unsafe => "Unsafe feature",
            Section::Hidden => "Other",
        }
    }
}

/// One flag: its etcd name, value kind, etcd's default, and Strata's disposition.
#[derive(Clone, Copy, Debug)]
pub struct FlagSpec {
    /// The flag's name without dashes (`data-dir`).
    pub name: &'static str,
    /// Where `--help` lists it.
    pub section: Section,
    /// How its value is parsed.
    pub kind: Kind,
    /// etcd's default, in flag syntax (what `--help` shows in quotes).
    pub default: &'static str,
    /// What Strata does with it.
    pub disposition: Disposition,
    /// Why (for ignored and refused flags: the text of the warning or error).
    pub reason: &'static str,
    /// What the flag means (etcd's meaning).
    pub usage: &'static str,
}

use Disposition::{Honoured as H, Ignored as I, Refused as R};
use Kind::{Bool, Duration as Dur, Int, Legacy, Str, Uint, Uint32};
use Section::*;

const fn f(
    name: &'static str,
    section: Section,
    kind: Kind,
    default: &'static str,
    disposition: Disposition,
    reason: &'static str,
    usage: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        section,
        kind,
        default,
        disposition,
        reason,
        usage,
    }
}

const CLUSTER_STATES: &[&str] = &["new", "existing"];
const FALLBACKS: &[&str] = &["exit", "proxy"];
const PROXY_MODES: &[&str] = &["off", "readonly", "on"];
const V2_DEPRECATION: &[&str] = &["not-yet", "write-only", "write-only-drop-data", "gone"];

const NO_PEERS: &str =
    "a one-member Strata cluster has no peer traffic and does not listen on --listen-peer-urls";
const ONE_MEMBER: &str = "Strata runs one-member clusters: there are no other members";
const NO_V2: &str = "the etcd v2 API is not served";
const NO_PROXY: &str = "the v2 proxy is not provided";
const NO_BBOLT: &str =
    "Strata's engine is not bbolt: it commits and frees pages on its own schedule";
const NO_TRACING: &str = "no OpenTelemetry tracing is exported";
const NO_AUTH: &str = "the auth API is not served yet (its requests answer Unimplemented)";
const OWN_COMPACTION: &str =
    "the engine's compaction runs in small batches on its own schedule and never blocks writers";
const NO_KEEPALIVE: &str = "the gRPC server uses its fixed HTTP/2 keepalive policy";
const CORRUPT_CHECK: &str = "the engine checks every page's CRC32C when it is first read and the WAL's CRCs on recovery; with one member there are no peer hashes to compare";
const OWN_LOG: &str = "Strata writes its own log lines to stderr";
const NO_LEARNERS: &str =
    "membership changes (learners, downgrades) are not served on a one-member cluster";
const WARN_SLOW: &str = "slow-request warnings use Strata's own thresholds";
const CATCH_UP: &str = "raft entries kept in the log behind a snapshot for a slow follower";

/// The flag table. Order: etcd's `--help`. One line per flag, so it reads as a table.
#[rustfmt::skip]
pub const FLAGS: &[FlagSpec] = &[
    // Member.
    f("name", Member, Str, "default", H, "", "Human-readable name for this member."),
    f("data-dir", Member, Str, "", H, "", "Path to the data directory (default '${name}.strata')."),
    f("wal-dir", Member, Str, "", H, "", "Path to the dedicated wal directory (default '${data-dir}/member/wal')."),
    f("snapshot-count", Member, Uint, "100000", H, "", "Number of committed transactions to trigger a snapshot to disk."),
    f("heartbeat-interval", Member, Uint, "100", H, "", "Time (in milliseconds) of a heartbeat interval."),
    f("election-timeout", Member, Uint, "1000", H, "", "Time (in milliseconds) for an election to timeout."),
    f("initial-election-tick-advance", Member, Bool, "true", I, "a one-member cluster elects itself as soon as it starts", "Whether to fast-forward initial election ticks on boot for faster election."),
    f("listen-peer-urls", Member, Str, "http://localhost:2380", I, NO_PEERS, "List of URLs to listen on for peer traffic."),
    f("listen-client-urls", Member, Str, "http://localhost:2379", H, "", "List of URLs to listen on for client gRPC and HTTP traffic."),
    f("listen-client-http-urls", Member, Str, "", R, "separate HTTP-only client listeners are not supported; HTTP is served on --listen-client-urls beside gRPC", "List of URLs to listen on for HTTP-only client traffic."),
    f("max-snapshots", Member, Uint, "5", I, "Strata keeps only its newest raft snapshot file; there is no retention count", "Maximum number of snapshot files to retain (0 is unlimited)."),
    f("max-wals", Member, Uint, "5", I, "Strata removes WAL segments once a durable engine commit or raft snapshot covers them; there is no retention count", "Maximum number of wal files to retain (0 is unlimited)."),
    f("quota-backend-bytes", Member, Int, "0", H, "", "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB)."),
    f("backend-bbolt-freelist-type", Member, Str, "map", I, NO_BBOLT, "The type of freelist that boltdb backend uses (array and map)."),
    f("backend-batch-interval", Member, Dur, "0s", I, NO_BBOLT, "The maximum time before commit the backend transaction."),
    f("backend-batch-limit", Member, Int, "0", I, NO_BBOLT, "The maximum operations before commit the backend transaction."),
    f("max-txn-ops", Member, Uint, "128", H, "", "Maximum number of operations permitted in a transaction."),
    f("max-request-bytes", Member, Uint, "1572864", H, "", "Maximum client request size in bytes the server will accept."),
    f("max-concurrent-streams", Member, Uint32, "4294967295", I, "no per-connection stream limit is enforced", "Maximum concurrent streams that each client can open at a time."),
    f("enable-grpc-gateway", Member, Bool, "true", I, "Strata serves no JSON gateway (/v3/...); clients use gRPC", "Enable GRPC gateway."),
    f("grpc-keepalive-min-time", Member, Dur, "5s", I, NO_KEEPALIVE, "Minimum duration interval that a client should wait before pinging server."),
    f("grpc-keepalive-interval", Member, Dur, "2h", I, NO_KEEPALIVE, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."),
    f("grpc-keepalive-timeout", Member, Dur, "20s", I, NO_KEEPALIVE, "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    f("socket-reuse-port", Member, Bool, "false", I, "listeners are bound without SO_REUSEPORT", "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use."),
    f("socket-reuse-address", Member, Bool, "false", I, "listeners always set SO_REUSEADDR", "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state."),
    f("raft-read-timeout", Member, Dur, "5s", I, NO_PEERS, "Read timeout set on each rafthttp connection."),
    f("raft-write-timeout", Member, Dur, "5s", I, NO_PEERS, "Write timeout set on each rafthttp connection."),
    // Clustering.
    f("initial-advertise-peer-urls", Clustering, Str, "http://localhost:2380", H, "", "List of this member's peer URLs to advertise to the rest of the cluster."),
    f("initial-cluster", Clustering, Str, "default=http://localhost:2380", H, "may name this member only", "Initial cluster configuration for bootstrapping."),
    f("initial-cluster-state", Clustering, Kind::Choice(CLUSTER_STATES), "new", H, "'existing' restarts the member already in the data directory; with none there it is refused, as Strata cannot join another cluster", "Initial cluster state ('new' or 'existing')."),
    f("initial-cluster-token", Clustering, Str, "etcd-cluster", H, "", "Initial cluster token for the etcd cluster during bootstrap."),
    f("advertise-client-urls", Clustering, Str, "http://localhost:2379", H, "", "List of this member's client URLs to advertise to the public."),
    f("discovery", Clustering, Str, "", R, "discovery bootstraps multi-member clusters; Strata runs one member", "Discovery URL used to bootstrap the cluster."),
    f("discovery-fallback", Clustering, Kind::Choice(FALLBACKS), "proxy", I, "no discovery is done", "Expected behavior ('exit' or 'proxy') when discovery services fails."),
    f("discovery-proxy", Clustering, Str, "", R, "discovery bootstraps multi-member clusters; Strata runs one member", "HTTP proxy to use for traffic to discovery service."),
    f("discovery-srv", Clustering, Str, "", R, "discovery bootstraps multi-member clusters; Strata runs one member", "DNS srv domain used to bootstrap the cluster."),
    f("discovery-srv-name", Clustering, Str, "", R, "discovery bootstraps multi-member clusters; Strata runs one member", "Suffix to the dns srv name queried when bootstrapping."),
    f("strict-reconfig-check", Clustering, Bool, "true", I, ONE_MEMBER, "Reject reconfiguration requests that would cause quorum loss."),
    f("pre-vote", Clustering, Bool, "true", I, ONE_MEMBER, "Enable to run an additional Raft election phase."),
    f("auto-compaction-retention", Clustering, Str, "0", H, "", "Auto compaction retention length. 0 means disable auto compaction."),
    f("auto-compaction-mode", Clustering, Str, "periodic", H, "", "Interpret 'auto-compaction-retention' one of: periodic|revision."),
    f("enable-v2", Clustering, Bool, "false", R, NO_V2, "Accept etcd V2 client requests."),
    f("v2-deprecation", Clustering, Kind::Choice(V2_DEPRECATION), "not-yet", I, "Strata has no v2 store", "Phase of v2store deprecation."),
    // Security.
    f("cert-file", Security, Str, "", H, "", "Path to the client server TLS cert file."),
    f("key-file", Security, Str, "", H, "", "Path to the client server TLS key file."),
    f("client-cert-auth", Security, Bool, "false", H, "", "Enable client cert authentication."),
    f("client-cert-file", Security, Str, "", I, "etcd uses it for its own gateway's client connections; Strata has none", "Path to an explicit client TLS cert file, used when client auth is required."),
    f("client-key-file", Security, Str, "", I, "etcd uses it for its own gateway's client connections; Strata has none", "Path to an explicit client TLS key file, used when client auth is required."),
    f("client-crl-file", Security, Str, "", R, "certificate revocation lists are not checked, so a revoked client certificate would be accepted", "Path to the client certificate revocation list file."),
    f("client-cert-allowed-hostname", Security, Str, "", R, "client certificate hostnames are not checked, so clients this flag should reject would be accepted", "Allowed TLS hostname for client cert authentication."),
    f("trusted-ca-file", Security, Str, "", H, "", "Path to the client server TLS trusted CA cert file."),
    f("auto-tls", Security, Bool, "false", R, "self-signed certificates are not generated; pass --cert-file and --key-file", "Client TLS using generated certificates."),
    f("peer-cert-file", Security, Str, "", I, NO_PEERS, "Path to the peer server TLS cert file."),
    f("peer-key-file", Security, Str, "", I, NO_PEERS, "Path to the peer server TLS key file."),
    f("peer-client-cert-auth", Security, Bool, "false", I, NO_PEERS, "Enable peer client cert authentication."),
    f("peer-trusted-ca-file", Security, Str, "", I, NO_PEERS, "Path to the peer server TLS trusted CA file."),
    f("peer-cert-allowed-cn", Security, Str, "", I, NO_PEERS, "Required CN for client certs connecting to the peer endpoint."),
    f("peer-cert-allowed-hostname", Security, Str, "", I, NO_PEERS, "Allowed TLS hostname for inter peer authentication."),
    f("peer-auto-tls", Security, Bool, "false", R, "self-signed peer certificates are not generated", "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided."),
    f("peer-client-cert-file", Security, Str, "", I, NO_PEERS, "Path to an explicit peer client TLS cert file."),
    f("peer-client-key-file", Security, Str, "", I, NO_PEERS, "Path to an explicit peer client TLS key file."),
    f("self-signed-cert-validity", Security, Uint, "1", I, "no certificates are generated", "The validity period (years) of automatically generated certificates."),
    f("peer-crl-file", Security, Str, "", I, NO_PEERS, "Path to the peer certificate revocation list file."),
    f("cipher-suites", Security, Str, "", R, "TLS cipher suites are not configurable yet, so suites this flag excludes would be offered", "Comma-separated list of supported TLS cipher suites between client/server and peers."),
    f("cors", Security, Str, "*", I, "Strata serves no browser-facing HTTP API (health, metrics and version only)", "Comma-separated whitelist of origins for CORS (empty or * means allow all)."),
    f("host-whitelist", Security, Str, "*", I, "Strata's plain-HTTP endpoints are read-only (health, metrics, version); there is no JSON gateway to protect", "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all)."),
    f("tls-min-version", Security, Str, "TLS1.2", R, "TLS version bounds are not configurable yet (TLS 1.2 and 1.3 are accepted)", "Minimum TLS version supported by etcd (TLS1.2, TLS1.3)."),
    f("tls-max-version", Security, Str, "", R, "TLS version bounds are not configurable yet (TLS 1.2 and 1.3 are accepted)", "Maximum TLS version supported by etcd (TLS1.2, TLS1.3)."),
    f("experimental-peer-skip-client-san-verification", Security, Bool, "false", I, NO_PEERS, "Skip verification of SAN field in client certificate for peer connections."),
    // Auth.
    f("auth-token", Auth, Str, "simple", I, NO_AUTH, "Specify a v3 authentication token type and its options ('simple' or 'jwt')."),
    f("bcrypt-cost", Auth, Uint, "10", I, NO_AUTH, "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords (4 to 31)."),
    f("auth-token-ttl", Auth, Uint, "300", I, NO_AUTH, "Time (in seconds) of the auth-token-ttl."),
    // Profiling and monitoring.
    f("enable-pprof", Monitoring, Bool, "false", I, "Go's pprof endpoints do not exist in Strata; profile it with perf", "Enable runtime profiling data via HTTP server."),
    f("metrics", Monitoring, Str, "basic", I, "Strata exports one metric set", "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics."),
    f("listen-metrics-urls", Monitoring, Str, "", H, "", "List of URLs to listen on for the metrics and health endpoints."),
    // Logging.
    f("logger", Logging, Str, "zap", I, "Strata writes its own structured log lines; 'zap' is the only logger etcd 3.5 accepts", "Currently only supports 'zap' for structured logging."),
    f("log-outputs", Logging, Str, "default", H, "'default' and 'stderr' log to stderr; 'stdout' and 'systemd/journal' are ignored (stderr reaches the journal under systemd); file paths are refused", "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets."),
    f("log-level", Logging, Str, "info", H, "", "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    f("log-format", Logging, Str, "json", I, OWN_LOG, "Configures log format. Only supports json, console."),
    f("enable-log-rotation", Logging, Bool, "false", I, "Strata logs to stderr only; rotate with the service manager", "Enable log rotation of a single log-outputs file target."),
    f("log-rotation-config-json", Logging, Str, "{\"maxsize\": 100, \"maxage\": 0, \"maxbackups\": 0, \"localtime\": false, \"compress\": false}", I, "Strata logs to stderr only; rotate with the service manager", "Configures log rotation if enabled with a JSON logger config."),
    // Experimental distributed tracing.
    f("experimental-enable-distributed-tracing", Tracing, Bool, "false", I, NO_TRACING, "Enable experimental distributed tracing."),
    f("experimental-distributed-tracing-address", Tracing, Str, "localhost:4317", I, NO_TRACING, "Distributed tracing collector address."),
    f("experimental-distributed-tracing-service-name", Tracing, Str, "etcd", I, NO_TRACING, "Distributed tracing service name, must be same across all etcd instances."),
    f("experimental-distributed-tracing-instance-id", Tracing, Str, "", I, NO_TRACING, "Distributed tracing instance ID, must be unique per each etcd instance."),
    f("experimental-distributed-tracing-sampling-rate", Tracing, Int, "0", I, NO_TRACING, "Number of samples to collect per million spans for distributed tracing."),
    // v2 proxy.
    f("proxy", Proxy, Kind::Choice(PROXY_MODES), "off", R, NO_PROXY, "Proxy mode setting ('off', 'readonly' or 'on')."),
    f("proxy-failure-wait", Proxy, Uint, "5000", I, NO_PROXY, "Time (in milliseconds) an endpoint will be held in a failed state."),
    f("proxy-refresh-interval", Proxy, Uint, "30000", I, NO_PROXY, "Time (in milliseconds) of the endpoints refresh interval."),
    f("proxy-dial-timeout", Proxy, Uint, "1000", I, NO_PROXY, "Time (in milliseconds) for a dial to timeout."),
    f("proxy-write-timeout", Proxy, Uint, "5000", I, NO_PROXY, "Time (in milliseconds) for a write to timeout."),
    f("proxy-read-timeout", Proxy, Uint, "0", I, NO_PROXY, "Time (in milliseconds) for a read to timeout."),
    // Experimental.
    f("experimental-initial-corrupt-check", Experimental, Bool, "false", I, CORRUPT_CHECK, "Enable to check data corruption before serving any client/peer traffic."),
    f("experimental-corrupt-check-time", Experimental, Dur, "0s", I, CORRUPT_CHECK, "Duration of time between cluster corruption check passes."),
    f("experimental-compact-hash-check-enabled", Experimental, Bool, "false", I, CORRUPT_CHECK, "Enable leader to periodically check followers compaction hashes."),
    f("experimental-compact-hash-check-time", Experimental, Dur, "1m", I, CORRUPT_CHECK, "Duration of time between leader checks followers compaction hashes."),
    f("experimental-enable-v2v3", Experimental, Str, "", R, NO_V2, "Serve v2 requests through the v3 backend under a given prefix."),
    f("experimental-enable-lease-checkpoint", Experimental, Bool, "false", I, "a one-member cluster has no leader changes to checkpoint lease TTLs across", "Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change."),
    f("experimental-enable-lease-checkpoint-persist", Experimental, Bool, "false", I, "a one-member cluster has no leader changes to checkpoint lease TTLs across", "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases."),
    f("experimental-compaction-batch-limit", Experimental, Int, "1000", I, OWN_COMPACTION, "Sets the maximum revisions deleted in each compaction batch."),
    f("experimental-compaction-sleep-interval", Experimental, Dur, "10ms", I, OWN_COMPACTION, "Sets the sleep interval between each compaction batch."),
    f("experimental-watch-progress-notify-interval", Experimental, Dur, "10m", H, "same as --watch-progress-notify-interval (which it overrides when set)", "Duration of periodical watch progress notification."),
    f("experimental-downgrade-check-time", Experimental, Dur, "5s", I, NO_LEARNERS, "Duration of time between two downgrade status checks."),
    f("experimental-memory-mlock", Experimental, Bool, "false", I, "memory is not locked: the engine's file is mapped read-only and may be paged", "Enable to enforce etcd pages (in particular bbolt) to stay in RAM."),
    f("experimental-warning-apply-duration", Experimental, Dur, "100ms", I, WARN_SLOW, "Warning is generated if requests take more than this duration."),
    f("experimental-warning-unary-request-duration", Experimental, Dur, "300ms", I, WARN_SLOW, "Warning is generated if a unary request takes more than this duration."),
    f("experimental-txn-mode-write-with-shared-buffer", Experimental, Bool, "true", I, "readers never wait for the writer in Strata's engine", "Enable the write transaction to use a shared buffer in its readonly check operations."),
    f("experimental-bootstrap-defrag-threshold-megabytes", Experimental, Uint, "0", I, "defragmentation runs only when asked (etcdctl defrag) and does not block requests", "Enable the defrag during etcd server bootstrap if it frees at least this many megabytes."),
    f("experimental-max-learners", Experimental, Int, "1", I, NO_LEARNERS, "Sets the maximum number of learners that can be available in the cluster membership."),
    f("experimental-snapshot-catchup-entries", Experimental, Uint, "5000", H, "", CATCH_UP),
    f("experimental-stop-grpc-service-on-defrag", Experimental, Bool, "false", I, "defragmentation does not block requests, so the service keeps serving", "Enable etcd gRPC service to stop serving client requests on defragmentation."),
    // etcd 3.6 names.
    f("feature-gates", Etcd36, Str, "", H, "gates are parsed as etcd 3.6 does (unknown gate: error); each gate set logs why it has no effect", "A set of key=value pairs that describe feature gates for alpha/experimental features."),
    f("watch-progress-notify-interval", Etcd36, Dur, "10m", H, "", "Duration of periodic watch progress notifications."),
    f("corrupt-check-time", Etcd36, Dur, "0s", I, CORRUPT_CHECK, "Duration of time between cluster corruption check passes."),
    f("compact-hash-check-time", Etcd36, Dur, "1m", I, CORRUPT_CHECK, "Duration of time between leader checks followers compaction hashes."),
    f("compaction-batch-limit", Etcd36, Int, "0", I, OWN_COMPACTION, "Sets the maximum revisions deleted in each compaction batch."),
    f("compaction-sleep-interval", Etcd36, Dur, "0s", I, OWN_COMPACTION, "Sets the sleep interval between each compaction batch."),
    f("downgrade-check-time", Etcd36, Dur, "5s", I, NO_LEARNERS, "Duration of time between two downgrade status checks."),
    f("warning-apply-duration", Etcd36, Dur, "100ms", I, WARN_SLOW, "Time duration after which a warning is generated if applying a request takes more time."),
    f("warning-unary-request-duration", Etcd36, Dur, "300ms", I, WARN_SLOW, "Time duration after which a warning is generated if a unary request takes more time."),
    f("memory-mlock", Etcd36, Bool, "false", I, "memory is not locked: the engine's file is mapped read-only and may be paged", "Enable to enforce etcd pages (in particular bbolt) to stay in RAM."),
    f("bootstrap-defrag-threshold-megabytes", Etcd36, Uint, "0", I, "defragmentation runs only when asked (etcdctl defrag) and does not block requests", "Enable the defrag during etcd server bootstrap if it frees at least this many megabytes."),
    f("max-learners", Etcd36, Int, "1", I, NO_LEARNERS, "Sets the maximum number of learners that can be available in the cluster membership."),
    f("snapshot-catchup-entries", Etcd36, Uint, "5000", H, "", CATCH_UP),
    f("peer-skip-client-san-verification", Etcd36, Bool, "false", I, NO_PEERS, "Skip verification of SAN field in client certificate for peer connections."),
    f("disable-log-sampling", Etcd36, Bool, "false", I, OWN_LOG, "Disable log sampling."),
    f("enable-distributed-tracing", Etcd36, Bool, "false", I, NO_TRACING, "Enable distributed tracing using OpenTelemetry Tracing."),
    f("distributed-tracing-address", Etcd36, Str, "localhost:4317", I, NO_TRACING, "Address for distributed tracing used for OpenTelemetry Tracing."),
    f("distributed-tracing-service-name", Etcd36, Str, "etcd", I, NO_TRACING, "Service name for distributed tracing."),
    f("distributed-tracing-instance-id", Etcd36, Str, "", I, NO_TRACING, "Service instance ID for distributed tracing."),
    f("distributed-tracing-sampling-rate", Etcd36, Int, "0", I, NO_TRACING, "Number of samples to collect per million spans."),
    // Unsafe.
    f("force-new-cluster", Unsafe, Bool, "false", R, "rewriting an existing data directory's membership is not supported", "Force to create a new one-member cluster."),
    f("unsafe-no-fsync", Unsafe, Bool, "false", I, "Strata always fsyncs: an acknowledged write is durable", "Disables fsync, unsafe, will cause data loss."),
    // Usage lines and legacy names.
    f("config-file", Hidden, Str, "", H, "other flags and ETCD_* variables are then ignored, as etcd does", "Path to the server configuration file."),
    f("version", Hidden, Bool, "false", H, "", "Print the version and exit."),
    f("cluster-active-size", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("cluster-remove-delay", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("cluster-sync-interval", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("config", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("force", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("max-result-buffer", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("max-retry-attempts", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("peer-heartbeat-interval", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("peer-election-timeout", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("retry-interval", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("snapshot", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("v", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
    f("vv", Hidden, Legacy, "", I, "a legacy flag etcd ignores too", ""),
];

/// The entry for `name`.
pub fn lookup(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_parse() {
        for (i, a) in FLAGS.iter().enumerate() {
            assert!(
                FLAGS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            assert!(
                a.kind.parse(a.default).is_ok() || a.kind == Legacy,
                "default of {} does not parse",
                a.name
            );
            assert!(
                a.disposition == H || !a.reason.is_empty(),
                "{} needs a reason",
                a.name
            );
        }
    }
}
