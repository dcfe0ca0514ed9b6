//! Helpers shared by the integration tests: the in-process ceiling/fake server and a real
//! etcd process when one is installed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use strata_bench::{CeilingServer, Common, EtcdLike, ServerProcess, WatchFault};

/// Where Debian's etcd-server package installs etcd.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// Starts the in-process fake server on a free port.
pub async fn fake(fault: WatchFault) -> CeilingServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    CeilingServer::start(addr, fault).await.unwrap()
}

/// Load flags for `endpoint` with `clients` clients and no progress bar.
pub fn common(endpoint: &str, clients: usize) -> Common {
    Common {
        endpoints: vec![endpoint.to_owned()],
        conns: 1,
        clients,
        total: None,
        duration: None,
        rate: 0.0,
        pid: None,
        json: None,
        no_progress: true,
    }
}

/// Starts a real etcd on free ports with a temporary data directory (killed by PID when the
/// returned value is dropped), or returns `None` after a loud message when etcd is not
/// installed. With `STRATA_REQUIRE_ETCDCTL=1` a missing etcd fails the test instead.
pub async fn etcd(test: &str) -> Option<ServerProcess> {
    if !std::path::Path::new(ETCD_BIN).exists() {
        if std::env::var("STRATA_REQUIRE_ETCDCTL").as_deref() == Ok("1") {
            panic!("{test}: {ETCD_BIN} is missing and STRATA_REQUIRE_ETCDCTL=1");
        }
        eprintln!(
            "\n!!!!! SKIPPED {test}: {ETCD_BIN} is not installed (apt-get install etcd-server); \
             set STRATA_REQUIRE_ETCDCTL=1 to make this a failure !!!!!\n"
        );
        return None;
    }
    let spec = EtcdLike {
        name: "etcd".into(),
        bin: PathBuf::from(ETCD_BIN),
        data_root: std::env::temp_dir(),
        extra_args: vec!["--log-level".into(), "error".into()],
    };
    Some(spec.start(Duration::from_secs(20)).await.unwrap())
}
