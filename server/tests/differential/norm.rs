//! What is compared: responses with the fields that legitimately differ between two servers
//! cleared, errors as (gRPC code, message).
//!
//! Cleared: the header's cluster_id, member_id and raft_term (Strata's term is 1, etcd's 2);
//! a lease's remaining TTL (clocks), kept only as "alive" (1) or etcd's "not found" (-1). Sorted:
//! lease lists and a lease's keys, which etcd takes from Go maps in random order.

use strata_server::proto::etcdserverpb as pb;
use tonic::{Code, Status};

/// A response made comparable.
pub trait Norm: Sized {
    fn norm(self) -> Self;
    /// The header revision, for the generator's model.
    fn revision(&self) -> Option<i64>;
}

/// An answer: a normalised response or an error's code and message.
pub type Answer<T> = Result<T, (Code, String)>;

pub fn answer<T: Norm>(r: Result<tonic::Response<T>, Status>) -> Answer<T> {
    match r {
        Ok(r) => Ok(r.into_inner().norm()),
        Err(s) => Err((s.code(), s.message().to_string())),
    }
}

pub fn header(h: Option<pb::ResponseHeader>) -> Option<pb::ResponseHeader> {
    h.map(|h| pb::ResponseHeader {
        revision: h.revision,
        ..Default::default()
    })
}

macro_rules! header_only {
    ($($t:ty),*) => {
        $(impl Norm for $t {
            fn norm(mut self) -> Self {
                self.header = header(self.header);
                self
            }
            fn revision(&self) -> Option<i64> {
                self.header.map(|h| h.revision)
            }
        })*
    };
}

header_only!(
    pb::RangeResponse,
    pb::PutResponse,
    pb::DeleteRangeResponse,
    pb::CompactionResponse,
    pb::LeaseGrantResponse,
    pb::LeaseRevokeResponse,
    pb::LeaseKeepAliveResponse
);

impl Norm for pb::HashKvResponse {
    /// etcd 3.4 has no `hash_revision` (etcd 3.5 added it; Strata reports 3.5): it is checked
    /// on Strata's answer alone, in the driver.
    fn norm(mut self) -> Self {
        self.header = header(self.header);
        self.hash_revision = 0;
        self
    }
    fn revision(&self) -> Option<i64> {
        self.header.map(|h| h.revision)
    }
}

impl Norm for pb::TxnResponse {
    fn norm(mut self) -> Self {
        use pb::response_op::Response;
        self.header = header(self.header);
        for r in &mut self.responses {
            r.response = r.response.take().map(|r| match r {
                Response::ResponseRange(x) => Response::ResponseRange(x.norm()),
                Response::ResponsePut(x) => Response::ResponsePut(x.norm()),
                Response::ResponseDeleteRange(x) => Response::ResponseDeleteRange(x.norm()),
                Response::ResponseTxn(x) => Response::ResponseTxn(x.norm()),
            });
        }
        self
    }
    fn revision(&self) -> Option<i64> {
        self.header.map(|h| h.revision)
    }
}

impl Norm for pb::LeaseTimeToLiveResponse {
    fn norm(mut self) -> Self {
        self.header = header(self.header);
        if self.ttl > 0 {
            self.ttl = 1;
        }
        self.keys.sort();
        self
    }
    fn revision(&self) -> Option<i64> {
        self.header.map(|h| h.revision)
    }
}

impl Norm for pb::LeaseLeasesResponse {
    fn norm(mut self) -> Self {
        self.header = header(self.header);
        self.leases.sort_by_key(|l| l.id);
        self
    }
    fn revision(&self) -> Option<i64> {
        self.header.map(|h| h.revision)
    }
}
