//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can stop a benchmark run.
///
/// Failed requests during a run are not errors of this kind: they are counted by kind in the
/// run's [`crate::Summary`]. These are the failures that prevent a run or a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An endpoint string that is not a URI.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Could not open a gRPC connection.
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// A request outside the measured load failed (setup, prefill, verification).
    #[error("{op}: {source}")]
    Rpc {
        /// What was being done.
        op: &'static str,
        /// The gRPC status.
        source: Box<tonic::Status>,
    },
    /// A file or process operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or program involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Flags or workload parameters that do not make sense together.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A server process that would not start or answer.
    #[error("server {name}: {reason}")]
    Server {
        /// Which server.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Writing JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing a plot failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The drawing backend's message.
        reason: String,
    },
}

impl BenchError {
    /// Wraps a failed RPC made outside the measured load.
    pub fn rpc(op: &'static str, status: tonic::Status) -> Self {
        Self::Rpc {
            op,
            source: Box::new(status),
        }
    }

    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
