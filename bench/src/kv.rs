//! The key-value workloads: put, range, delete, txn-put (the apiserver's optimistic update)
//! and weighted mixes of them.

use std::collections::HashMap;

use tonic::transport::Channel;

use crate::client::{Keys, Pool, Rng};
use crate::error::{BenchError, Result};
use crate::load::{Outcome, Worker};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::stats::Recorder;

/// One kind of key-value request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// `Put` of one key.
    Put,
    /// Linearizable `Range` of one key.
    RangeLinearizable,
    /// Serializable `Range` of one key.
    RangeSerializable,
    /// `DeleteRange` of one key.
    Delete,
    /// `Txn(If mod_revision(key) == rev Then Put Else Range)`, retried by the next request on
    /// that key with the revision the failure returned.
    TxnPut,
}

impl KvOp {
    /// The name results are recorded under.
    pub fn name(self) -> &'static str {
        match self {
            KvOp::Put => "put",
            KvOp::RangeLinearizable => "range-l",
            KvOp::RangeSerializable => "range-s",
            KvOp::Delete => "delete",
            KvOp::TxnPut => "txn-put",
        }
    }

    /// Parses a name as printed by [`KvOp::name`] (also `range` for linearizable).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "put" => KvOp::Put,
            "range" | "range-l" => KvOp::RangeLinearizable,
            "range-s" => KvOp::RangeSerializable,
            "delete" => KvOp::Delete,
            "txn-put" => KvOp::TxnPut,
            _ => return None,
        })
    }
}

/// Parses a mix such as `put=1,range-s=4`: operation weights.
pub fn parse_mix(s: &str) -> Result<Vec<(KvOp, u32)>> {
    let mut mix = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| BenchError::Invalid(format!("mix entry {part:?} is not op=weight")))?;
        let op = KvOp::parse(name.trim())
            .ok_or_else(|| BenchError::Invalid(format!("unknown operation {name:?} in mix")))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| BenchError::Invalid(format!("bad weight in mix entry {part:?}")))?;
        mix.push((op, weight));
    }
    if mix.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
        return Err(BenchError::Invalid(format!(
            "mix {s:?} has no positive weight"
        )));
    }
    Ok(mix)
}

/// What every key-value client shares.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// Key naming.
    pub keys: Keys,
    /// Value bytes of puts.
    pub val_size: usize,
    /// Operations and their weights; one entry for a single-operation workload.
    pub mix: Vec<(KvOp, u32)>,
}

/// One client of a key-value workload.
#[derive(Debug)]
pub struct KvWorker {
    kv: KvClient<Channel>,
    cfg: KvConfig,
    value: Vec<u8>,
    rng: Rng,
    /// Last mod_revision this client saw per key, for txn-put.
    revisions: HashMap<Vec<u8>, i64>,
    weight_total: u64,
}

impl KvWorker {
    /// A client on connection `client % conns` of `pool`.
    pub fn new(pool: &Pool, client: usize, cfg: KvConfig) -> Self {
        let weight_total = cfg.mix.iter().map(|(_, w)| u64::from(*w)).sum();
        Self {
            kv: pool.kv(client),
            value: vec![b'v'; cfg.val_size],
            cfg,
            rng: Rng::new(client as u64 + 1),
            revisions: HashMap::new(),
            weight_total,
        }
    }

    fn pick_op(&mut self) -> KvOp {
        if let [(op, _)] = self.cfg.mix.as_slice() {
            return *op;
        }
        let mut r = self.rng.below(self.weight_total);
        for (op, w) in &self.cfg.mix {
            let w = u64::from(*w);
            if r < w {
                return *op;
            }
            r -= w;
        }
        KvOp::Put
    }

    async fn txn_put(&mut self, key: Vec<u8>, rec: &mut Recorder) -> Outcome {
        let rev = self.revisions.get(&key).copied().unwrap_or(0);
        let req = optimistic_put(key.clone(), self.value.clone(), rev, 0);
        match self.kv.txn(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                if resp.succeeded {
                    let new_rev = resp.header.map(|h| h.revision).unwrap_or(0);
                    self.revisions.insert(key, new_rev);
                    Outcome::Ok("txn-put")
                } else {
                    // Someone else changed the key (or it was never seen): learn its revision
                    // from the Else branch, as the apiserver does before retrying.
                    rec.count("txn-put conflicts", 1);
                    let current = mod_revision_of_else_range(&resp.responses);
                    self.revisions.insert(key, current);
                    Outcome::Ok("txn-put conflict")
                }
            }
            Err(s) => Outcome::Err("txn-put", s),
        }
    }
}

impl Worker for KvWorker {
    async fn call(&mut self, seq: u64, rec: &mut Recorder) -> Outcome {
        let op = self.pick_op();
        let key = self.cfg.keys.pick(seq, &mut self.rng);
        let name = op.name();
        let result = match op {
            KvOp::Put => self
                .kv
                .put(PutRequest {
                    key,
                    value: self.value.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            KvOp::RangeLinearizable | KvOp::RangeSerializable => self
                .kv
                .range(RangeRequest {
                    key,
                    serializable: op == KvOp::RangeSerializable,
                    ..Default::default()
                })
                .await
                .map(drop),
            KvOp::Delete => self
                .kv
                .delete_range(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
                .await
                .map(drop),
            KvOp::TxnPut => return self.txn_put(key, rec).await,
        };
        match result {
            Ok(()) => Outcome::Ok(name),
            Err(s) => Outcome::Err(name, s),
        }
    }
}

/// `Txn(If mod_revision(key) == rev Then Put(key, value, lease) Else Range(key))`: the
/// apiserver's create (rev 0) and GuaranteedUpdate.
pub fn optimistic_put(key: Vec<u8>, value: Vec<u8>, rev: i64, lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![mod_equals(key.clone(), rev)],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.clone(),
                value,
                lease,
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key,
                ..Default::default()
            })),
        }],
    }
}

/// `mod_revision(key) == rev`.
pub fn mod_equals(key: Vec<u8>, rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key,
        target_union: Some(TargetUnion::ModRevision(rev)),
        ..Default::default()
    }
}

/// The mod_revision of the key a failed optimistic txn's Range returned (0 if absent).
pub fn mod_revision_of_else_range(responses: &[crate::proto::etcdserverpb::ResponseOp]) -> i64 {
    responses
        .iter()
        .find_map(|r| match &r.response {
            Some(Response::ResponseRange(rr)) => {
                Some(rr.kvs.first().map_or(0, |kv| kv.mod_revision))
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// Writes every key of `keys` once with `val_size` bytes (untimed setup for range runs),
/// with up to `parallel` puts in flight.
pub async fn prefill(pool: &Pool, keys: &Keys, val_size: usize, parallel: usize) -> Result<()> {
    let space = keys.key_space_size.max(1);
    let parallel = parallel.clamp(1, 256) as u64;
    let mut tasks = Vec::new();
    for worker in 0..parallel {
        let mut kv = pool.kv(worker as usize);
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < space {
                let req = PutRequest {
                    key: keys.key(i),
                    value: vec![b'v'; val_size],
                    ..Default::default()
                };
                kv.put(req)
                    .await
                    .map_err(|s| BenchError::rpc("prefill put", s))?;
                i += parallel;
            }
            Ok::<(), BenchError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Invalid(format!("prefill task: {e}")))??;
    }
    Ok(())
}
