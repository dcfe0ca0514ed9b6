//! The peer network. A one-member cluster never sends a raft message; until members can be
//! added (the multi-node issue), every RPC to another member answers "unreachable".

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::types::{MemberInfo, TypeConfig};

/// Creates [`NoPeers`] clients.
pub struct Network;

/// A client for a member this node cannot reach.
pub struct NoPeers {
    target: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("member {0:x} is unreachable: this build runs one-member clusters only")]
struct NoPeerNetwork(u64);

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NoPeers;

    async fn new_client(&mut self, target: u64, _node: &MemberInfo) -> NoPeers {
        NoPeers { target }
    }
}

impl NoPeers {
    fn err<E: std::error::Error>(&self) -> RPCError<u64, MemberInfo, E> {
        RPCError::Unreachable(Unreachable::new(&NoPeerNetwork(self.target)))
    }
}

impl RaftNetwork<TypeConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, MemberInfo, RaftError<u64>>> {
        Err(self.err())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, MemberInfo, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(self.err())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, MemberInfo, RaftError<u64>>> {
        Err(self.err())
    }
}
