//! Connections to the servers under test, key generation and a small random generator.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{BenchError, Result};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;

/// Adds `http://` to an endpoint given as `host:port`, as etcd's tools accept both.
pub fn endpoint_uri(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// `conns` gRPC connections spread round-robin over the endpoints; clients share them.
///
/// Each connection is one HTTP/2 connection that carries many concurrent requests, as etcd's
/// benchmark tool does with `--conns` and `--clients`.
#[derive(Debug, Clone)]
pub struct Pool {
    channels: Vec<Channel>,
}

impl Pool {
    /// Opens `conns` connections (at least one) to `endpoints`.
    pub async fn connect(endpoints: &[String], conns: usize) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(BenchError::Invalid("no endpoints".into()));
        }
        let mut channels = Vec::with_capacity(conns.max(1));
        for i in 0..conns.max(1) {
            let endpoint = &endpoints[i % endpoints.len()];
            channels.push(connect(endpoint).await?);
        }
        Ok(Self { channels })
    }

    /// The connection client `client` uses.
    pub fn channel(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }

    /// A KV client on client `client`'s connection.
    pub fn kv(&self, client: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(client))
    }

    /// A Watch client on connection `client % conns`.
    pub fn watch(&self, client: usize) -> WatchClient<Channel> {
        WatchClient::new(self.channel(client))
    }

    /// A Lease client on connection `client % conns`.
    pub fn lease(&self, client: usize) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel(client))
    }

    /// A Maintenance client on the first connection.
    pub fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel(0))
    }
}

/// Opens one connection, failing after 5 seconds.
pub async fn connect(endpoint: &str) -> Result<Channel> {
    let uri = endpoint_uri(endpoint);
    let ep = Endpoint::from_shared(uri.clone())
        .map_err(|e| BenchError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    ep.connect().await.map_err(|source| BenchError::Connect {
        endpoint: uri,
        source,
    })
}

/// A SplitMix64 generator: fast, seedable, good enough to pick keys and operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Key naming for the KV workloads, following etcd's benchmark flags.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Prepended to every key.
    pub prefix: Vec<u8>,
    /// Length of the numeric part: the key index, zero-padded (longer if the index needs it).
    pub key_size: usize,
    /// Keys are drawn from `0..key_space_size`.
    pub key_space_size: u64,
    /// Request `i` uses key `i % key_space_size` instead of a random one.
    pub sequential: bool,
}

impl Keys {
    /// The key with index `index`.
    pub fn key(&self, index: u64) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(format!("{index:0width$}", width = self.key_size).as_bytes());
        k
    }

    /// The key request number `seq` uses.
    pub fn pick(&self, seq: u64, rng: &mut Rng) -> Vec<u8> {
        let space = self.key_space_size.max(1);
        let index = if self.sequential {
            seq % space
        } else {
            rng.below(space)
        };
        self.key(index)
    }
}

/// The key just after every key that starts with `prefix` (etcd's prefix range end).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): the range runs to the end of the keys.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"abc"), b"abd".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn keys_are_padded_and_sequential_keys_wrap() {
        let keys = Keys {
            prefix: b"/k/".to_vec(),
            key_size: 4,
            key_space_size: 10,
            sequential: true,
        };
        let mut rng = Rng::new(1);
        assert_eq!(keys.pick(3, &mut rng), b"/k/0003".to_vec());
        assert_eq!(keys.pick(13, &mut rng), b"/k/0003".to_vec());
        assert_eq!(keys.key(123_456), b"/k/123456".to_vec());
        let random = Keys {
            sequential: false,
            ..keys
        };
        for seq in 0..100 {
            let k = random.pick(seq, &mut rng);
            assert!(k.as_slice() >= b"/k/0000".as_slice() && k.as_slice() <= b"/k/0009".as_slice());
        }
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(endpoint_uri("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_uri("https://h:1"), "https://h:1");
    }
}
