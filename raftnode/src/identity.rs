//! The member and cluster IDs: computed as etcd computes them on first start, then kept in
//! `member/identity` so they never change.
//!
//! etcd (`membership.NewMember`, `RaftCluster.genID`): a member's ID is the first 8 bytes
//! (big-endian) of SHA-1 over its sorted peer URLs concatenated, then the cluster token; the
//! cluster's ID is the first 8 bytes of SHA-1 over the sorted member IDs (8 bytes big-endian
//! each). So a Strata member started with etcd's flags reports the IDs etcd would.

use std::path::Path;

use sha1::{Digest, Sha1};

use crate::error::NodeError;
use crate::state_machine::sync_dir;
use crate::types::MemberInfo;

/// This member's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The member ID.
    pub member_id: u64,
    /// The cluster ID.
    pub cluster_id: u64,
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// etcd's member ID for these peer URLs and cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// etcd's cluster ID for these member IDs.
pub fn cluster_id(members: &[u64]) -> u64 {
    let mut ids = members.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

impl Identity {
    /// The identity kept in `member_dir`, or, on first start, etcd's IDs for a one-member
    /// cluster of `member` with `token`, made durable there (`stratautl snapshot restore`
    /// writes a restored member's identity with it).
    pub fn load_or_create(
        member_dir: &Path,
        member: &MemberInfo,
        token: &str,
    ) -> Result<Identity, NodeError> {
        let path = member_dir.join("identity");
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let mut it = s.split_whitespace().map(|x| u64::from_str_radix(x, 16));
                match (it.next(), it.next()) {
                    (Some(Ok(member_id)), Some(Ok(cluster_id))) => {
                        return Ok(Identity {
                            member_id,
                            cluster_id,
                        });
                    }
                    _ => {
                        return Err(NodeError::Storage(format!(
                            "{} is damaged: expected two hex IDs",
                            path.display()
                        )));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NodeError::io(e)),
        }
        let member_id = member_id(&member.peer_urls, token);
        let ident = Identity {
            member_id,
            cluster_id: cluster_id(&[member_id]),
        };
        let tmp = member_dir.join("identity.tmp");
        {
            let f = std::fs::File::create(&tmp).map_err(NodeError::io)?;
            std::io::Write::write_all(
                &mut &f,
                format!("{:016x} {:016x}\n", ident.member_id, ident.cluster_id).as_bytes(),
            )
            .map_err(NodeError::io)?;
            f.sync_all().map_err(NodeError::io)?;
        }
        std::fs::rename(&tmp, &path).map_err(NodeError::io)?;
        sync_dir(member_dir).map_err(NodeError::io)?;
        Ok(ident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_etcds() {
        // etcd 3.4.23 started with `--initial-advertise-peer-urls http://localhost:2380
        // --initial-cluster-token etcd-cluster` (its defaults) reports member
        // 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}
