//! Requests, responses and errors of the MVCC store, shaped like etcd's `etcdserverpb` messages
//! (the server maps between the two; the engine knows nothing of protobuf services).

use crate::mvcc::kv::KeyValue;

/// How a range is sorted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SortOrder {
    /// Key order (unless a sort target other than the key is given, which implies ascending).
    #[default]
    None,
    /// Ascending by the target.
    Ascend,
    /// Descending by the target.
    Descend,
}

/// What a range is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The creation revision.
    Create,
    /// The modification revision.
    Mod,
    /// The value.
    Value,
}

/// etcd's `RangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RangeRequest {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// Empty: just `key`; `"\0"`: every key `>= key`; otherwise `[key, range_end)`.
    pub range_end: Vec<u8>,
    /// At most this many keys (0: no limit); `more` says whether there were more.
    pub limit: i64,
    /// Read at this revision (0: the current one).
    pub revision: i64,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort target.
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Keep keys with `mod_revision >= min_mod_revision` (0: no bound).
    pub min_mod_revision: i64,
    /// Keep keys with `mod_revision <= max_mod_revision` (0: no bound).
    pub max_mod_revision: i64,
    /// Keep keys with `create_revision >= min_create_revision` (0: no bound).
    pub min_create_revision: i64,
    /// Keep keys with `create_revision <= max_create_revision` (0: no bound).
    pub max_create_revision: i64,
}

/// etcd's `RangeResponse` (without the header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RangeResponse {
    /// The keys, after filters, sort and limit.
    pub kvs: Vec<KeyValue>,
    /// Whether the limit cut keys off.
    pub more: bool,
    /// Keys in the range at the revision, before filters and limit (as etcd counts).
    pub count: i64,
}

/// etcd's `PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PutRequest {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The lease to attach (0: none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// etcd's `PutResponse` (without the header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PutResponse {
    /// The previous key-value, if asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `DeleteRangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeleteRangeRequest {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// As in [`RangeRequest::range_end`].
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// etcd's `DeleteRangeResponse` (without the header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeleteRangeResponse {
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// What a compare looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CompareTarget {
    /// The version (0 for a missing key).
    Version(i64),
    /// The creation revision (0 for a missing key).
    Create(i64),
    /// The modification revision (0 for a missing key).
    Mod(i64),
    /// The value (a missing key never matches).
    Value(Vec<u8>),
    /// The lease (0 for a missing key).
    Lease(i64),
}

/// How a compare compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CompareResult {
    /// `==`.
    Equal,
    /// `>`.
    Greater,
    /// `<`.
    Less,
    /// `!=`.
    NotEqual,
}

/// etcd's `Compare`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Compare {
    /// How.
    pub result: CompareResult,
    /// What, against which value.
    pub target: CompareTarget,
    /// The key.
    pub key: Vec<u8>,
    /// A range: every key in it must satisfy the compare.
    pub range_end: Vec<u8>,
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RequestOp {
    /// A range.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// The result of one operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ResponseOp {
    /// A range's result.
    Range(RangeResponse),
    /// A put's result.
    Put(PutResponse),
    /// A delete's result.
    DeleteRange(DeleteRangeResponse),
    /// A nested transaction's result.
    Txn(TxnResponse),
}

/// etcd's `TxnRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TxnRequest {
    /// All must hold for `success` to run; otherwise `failure` runs.
    pub compare: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    pub failure: Vec<RequestOp>,
}

/// etcd's `TxnResponse` (without the header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TxnResponse {
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// A request that changes the store, as applied from the raft log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WriteRequest {
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Compaction of history up to a revision.
    Compact {
        /// The revision.
        revision: i64,
    },
    /// Grant a lease (`id` 0: the store picks one).
    LeaseGrant {
        /// The lease ID, or 0.
        id: i64,
        /// Time to live in seconds (raised to the minimum).
        ttl: i64,
    },
    /// Revoke a lease, deleting every key attached to it in one revision.
    LeaseRevoke {
        /// The lease ID.
        id: i64,
    },
    /// Raise or clear an alarm for a member (etcd's `AlarmRequest` ACTIVATE/DEACTIVATE; the
    /// alarms live in the `alarm` bucket, so they survive restarts).
    Alarm {
        /// Raise or clear.
        action: AlarmAction,
        /// The alarm and the member it is for.
        alarm: AlarmMember,
    },
}

/// What an alarm request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AlarmAction {
    /// Raise the alarm.
    Activate,
    /// Clear it.
    Deactivate,
}

/// An alarm kind (etcd's `AlarmType`, whose wire numbers are [`AlarmType::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AlarmType {
    /// The backend quota is exhausted: writes that add data are refused.
    Nospace,
    /// A member's data was found corrupt.
    Corrupt,
}

impl AlarmType {
    /// etcd's enum number (`NONE` is 0).
    pub fn code(self) -> i32 {
        match self {
            AlarmType::Nospace => 1,
            AlarmType::Corrupt => 2,
        }
    }

    /// The type for etcd's enum number (`None` for `NONE` and unknown numbers).
    pub fn from_code(code: i32) -> Option<AlarmType> {
        match code {
            1 => Some(AlarmType::Nospace),
            2 => Some(AlarmType::Corrupt),
            _ => None,
        }
    }

    /// etcd's name for it (`NOSPACE`, `CORRUPT`).
    pub fn name(self) -> &'static str {
        match self {
            AlarmType::Nospace => "NOSPACE",
            AlarmType::Corrupt => "CORRUPT",
        }
    }
}

/// One raised alarm: which member, which kind (etcd's `AlarmMember`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AlarmMember {
    /// The member ID.
    pub member: u64,
    /// The alarm.
    pub alarm: AlarmType,
}

/// The result of an applied request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WriteResponse {
    /// A put's result.
    Put(PutResponse),
    /// A delete's result.
    DeleteRange(DeleteRangeResponse),
    /// A transaction's result.
    Txn(TxnResponse),
    /// Compaction was recorded.
    Compact,
    /// A lease was granted.
    LeaseGrant {
        /// Its ID.
        id: i64,
        /// Its granted time to live in seconds.
        ttl: i64,
    },
    /// A lease was revoked.
    LeaseRevoke,
    /// The alarm raised or cleared (empty: it was already raised, or was not raised).
    Alarm(Vec<AlarmMember>),
}

/// What `LeaseTimeToLive` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LeaseInfo {
    /// The lease ID.
    pub id: i64,
    /// Seconds left before it expires (by the caller's clock).
    pub remaining: i64,
    /// The granted time to live in seconds.
    pub granted: i64,
    /// The keys attached to it.
    pub keys: Vec<Vec<u8>>,
}

/// A response and the store revision after the request (the header's `revision`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Applied<T> {
    /// The response.
    pub response: T,
    /// The store's revision once the request applied.
    pub revision: i64,
}

/// Errors the MVCC store answers requests with. The messages are etcd's: clients match on them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MvccError {
    /// The revision asked for is at or below the last compaction.
    #[error("mvcc: required revision has been compacted")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The compacted revision.
        compacted: i64,
    },
    /// The revision asked for is after the current one.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The current revision.
        current: i64,
    },
    /// No key was given.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A transaction writes a key twice (or puts a key it also deletes).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The lease does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease with that ID exists already.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// The TTL is above etcd's maximum (9,000,000,000 s).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// The NOSPACE alarm is raised: requests that add data are refused until it is cleared.
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// The CORRUPT alarm is raised: only alarm requests apply until it is cleared.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// The storage failed; the store is unusable until reopened.
    #[error("mvcc: storage failed: {0}")]
    Storage(String),
}
