//! The `.proto` files in `proto/` against independent implementations: real etcd answers the
//! services the workloads do not use (so their field numbers are checked too), and etcd's own
//! client, `etcdctl`, talks to the ceiling server built from the same files.
//! Skipped loudly when etcd or etcdctl is missing, unless STRATA_REQUIRE_ETCDCTL=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use strata_bench::connect;
use strata_bench::proto::etcdserverpb::cluster_client::ClusterClient;
use strata_bench::proto::etcdserverpb::kv_client::KvClient;
use strata_bench::proto::etcdserverpb::lease_client::LeaseClient;
use strata_bench::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use strata_bench::proto::etcdserverpb::{
    AlarmRequest, HashKvRequest, LeaseGrantRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    MemberListRequest, PutRequest, RangeRequest, StatusRequest,
};
use strata_bench::{WatchFault, endpoint_uri};

const ETCDCTL: &str = "/usr/bin/etcdctl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_answers_maintenance_cluster_and_lease_as_the_protos_say() {
    let Some(etcd) =
        common::etcd("etcd_answers_maintenance_cluster_and_lease_as_the_protos_say").await
    else {
        return;
    };
    let ch = connect(&etcd.endpoint).await.unwrap();

    let status = MaintenanceClient::new(ch.clone())
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.version.starts_with("3."), "{status:?}");
    assert!(
        status.db_size > 0 && status.raft_index > 0 && status.leader != 0,
        "{status:?}"
    );
    assert_eq!(status.header.as_ref().unwrap().member_id, status.leader);

    let members = ClusterClient::new(ch.clone())
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "etcd");
    assert_eq!(members[0].client_ur_ls, vec![etcd.endpoint.clone()]);

    let mut lease = LeaseClient::new(ch.clone());
    let granted = lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.ttl, 60);
    let mut kv = KvClient::new(ch.clone());
    kv.put(PutRequest {
        key: b"leased".to_vec(),
        value: b"v".to_vec(),
        lease: granted.id,
        ..Default::default()
    })
    .await
    .unwrap();
    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: granted.id,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    assert_eq!(ttl.keys, vec![b"leased".to_vec()]);
    lease
        .lease_revoke(LeaseRevokeRequest { id: granted.id })
        .await
        .unwrap();
    let gone = kv
        .range(RangeRequest {
            key: b"leased".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.count, 0);

    let mut maintenance = MaintenanceClient::new(ch);
    let hash = maintenance
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(hash.hash, 0);
    let alarms = maintenance
        .alarm(AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(alarms.alarms.is_empty());
}

fn etcdctl_present(test: &str) -> bool {
    if std::path::Path::new(ETCDCTL).exists() {
        return true;
    }
    if std::env::var("STRATA_REQUIRE_ETCDCTL").as_deref() == Ok("1") {
        panic!("{test}: {ETCDCTL} is missing and STRATA_REQUIRE_ETCDCTL=1");
    }
    eprintln!(
        "\n!!!!! SKIPPED {test}: {ETCDCTL} is not installed (apt-get install etcd-client); \
         set STRATA_REQUIRE_ETCDCTL=1 to make this a failure !!!!!\n"
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_talks_to_the_ceiling_server() {
    if !etcdctl_present("etcdctl_talks_to_the_ceiling_server") {
        return;
    }
    let server = common::fake(WatchFault::None).await;
    let endpoint = endpoint_uri(&server.addr.to_string());
    let etcdctl = |args: &[&str]| {
        let endpoint = endpoint.clone();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(ETCDCTL)
                    .env("ETCDCTL_API", "3")
                    .arg("--endpoints")
                    .arg(endpoint)
                    .arg("--command-timeout=5s")
                    .args(args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let put = etcdctl(&["put", "k", "v"]).await;
    assert!(put.status.success(), "{put:?}");
    assert_eq!(String::from_utf8_lossy(&put.stdout).trim(), "OK");
    let get = etcdctl(&["get", "k", "-w", "json"]).await;
    assert!(get.status.success(), "{get:?}");
    // The ceiling stores nothing: an empty answer at the revision the put made.
    let out = String::from_utf8_lossy(&get.stdout);
    assert!(out.contains("\"revision\":2"), "{out}");
    assert_eq!(
        server.counts.put.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
