//! etcd's gRPC errors: codes and exact messages (`api/v3rpc/rpctypes/error.go`). Clients
//! (clientv3, etcdctl, kube-apiserver) match on the message text, so every error Strata
//! answers is built here.

use strata_engine::mvcc::MvccError;
use strata_raftnode::NodeError;
use tonic::{Code, Status};

/// An etcd error: its gRPC code and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdError {
    /// The gRPC status code etcd uses.
    pub code: Code,
    /// The message, exactly as etcd sends it.
    pub message: &'static str,
}

macro_rules! etcd_errors {
    ($($name:ident = $code:ident, $msg:literal;)*) => {
        $(
            #[doc = concat!("`", $msg, "`")]
            pub const $name: EtcdError = EtcdError { code: Code::$code, message: $msg };
        )*
    };
}

etcd_errors! {
    EMPTY_KEY = InvalidArgument, "etcdserver: key is not provided";
    KEY_NOT_FOUND = InvalidArgument, "etcdserver: key not found";
    VALUE_PROVIDED = InvalidArgument, "etcdserver: value is provided";
    LEASE_PROVIDED = InvalidArgument, "etcdserver: lease is provided";
    TOO_MANY_OPS = InvalidArgument, "etcdserver: too many operations in txn request";
    DUPLICATE_KEY = InvalidArgument, "etcdserver: duplicate key given in txn request";
    COMPACTED = OutOfRange, "etcdserver: mvcc: required revision has been compacted";
    FUTURE_REV = OutOfRange, "etcdserver: mvcc: required revision is a future revision";
    NO_SPACE = ResourceExhausted, "etcdserver: mvcc: database space exceeded";
    LEASE_NOT_FOUND = NotFound, "etcdserver: requested lease not found";
    LEASE_EXIST = FailedPrecondition, "etcdserver: lease already exists";
    LEASE_TTL_TOO_LARGE = OutOfRange, "etcdserver: too large lease TTL";
    WATCH_CANCELED = Cancelled, "etcdserver: watch canceled";
    NO_LEADER = Unavailable, "etcdserver: no leader";
    NOT_LEADER = FailedPrecondition, "etcdserver: not leader";
    NOT_CAPABLE = FailedPrecondition, "etcdserver: not capable";
    STOPPED = Unavailable, "etcdserver: server stopped";
    TIMEOUT = Unavailable, "etcdserver: request timed out";
    REQUEST_TOO_LARGE = InvalidArgument, "etcdserver: request is too large";
    CORRUPT = DataLoss, "etcdserver: corrupt cluster";
    INVALID_SORT_OPTION = InvalidArgument, "etcdserver: invalid sort option";
    PERMISSION_DENIED = PermissionDenied, "etcdserver: permission denied";
    BAD_LEADER_TRANSFEREE = FailedPrecondition, "etcdserver: bad leader transferee";
}

impl EtcdError {
    /// The gRPC status.
    pub fn status(self) -> Status {
        Status::new(self.code, self.message)
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        e.status()
    }
}

/// The status etcd answers an MVCC error with.
pub fn mvcc_status(e: &MvccError) -> Status {
    match e {
        MvccError::Compacted { .. } => COMPACTED.status(),
        MvccError::FutureRevision { .. } => FUTURE_REV.status(),
        MvccError::EmptyKey => EMPTY_KEY.status(),
        MvccError::KeyNotFound => KEY_NOT_FOUND.status(),
        MvccError::ValueProvided => VALUE_PROVIDED.status(),
        MvccError::LeaseProvided => LEASE_PROVIDED.status(),
        MvccError::DuplicateKey => DUPLICATE_KEY.status(),
        MvccError::LeaseNotFound => LEASE_NOT_FOUND.status(),
        MvccError::LeaseExists => LEASE_EXIST.status(),
        MvccError::LeaseTtlTooLarge => LEASE_TTL_TOO_LARGE.status(),
        MvccError::NoSpace => NO_SPACE.status(),
        MvccError::Corrupt => CORRUPT.status(),
        // Not one of etcd's: a broken disk. Internal, with what broke.
        MvccError::Storage(s) => Status::internal(format!("etcdserver: storage failed: {s}")),
    }
}

/// The status for a node error.
pub fn node_status(e: &NodeError) -> Status {
    match e {
        NodeError::Mvcc(m) => mvcc_status(m),
        NodeError::NotLeader => NOT_LEADER.status(),
        NodeError::Timeout => TIMEOUT.status(),
        NodeError::Stopped => STOPPED.status(),
        NodeError::Storage(s) | NodeError::Config(s) => {
            Status::internal(format!("etcdserver: storage failed: {s}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_etcds_codes_and_strings() {
        let cases: Vec<(MvccError, Code, &str)> = vec![
            (
                MvccError::Compacted {
                    requested: 1,
                    compacted: 2,
                },
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                MvccError::FutureRevision {
                    requested: 9,
                    current: 2,
                },
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                MvccError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                MvccError::KeyNotFound,
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                MvccError::ValueProvided,
                Code::InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                MvccError::LeaseProvided,
                Code::InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                MvccError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                MvccError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                MvccError::LeaseExists,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                MvccError::LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                MvccError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                MvccError::Corrupt,
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
        ];
        for (e, code, msg) in cases {
            let s = mvcc_status(&e);
            assert_eq!((s.code(), s.message()), (code, msg), "{e:?}");
        }
    }

    #[test]
    fn node_errors_map_to_etcds_codes_and_strings() {
        let s = node_status(&NodeError::Timeout);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: request timed out")
        );
        let s = node_status(&NodeError::NotLeader);
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: not leader")
        );
        let s = node_status(&NodeError::Stopped);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: server stopped")
        );
        let s = node_status(&NodeError::Storage("disk".into()));
        assert_eq!(s.code(), Code::Internal);
    }
}
