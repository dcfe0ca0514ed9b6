//! Writing a commit's page runs: validated, sorted, neighbours merged into one write.

use crate::btree::PageId;
use crate::btree::db::Shared;
use crate::btree::page;
use crate::btree::verified::VerifiedPages;
use crate::error::Result;

/// Writes page runs in page order, merging neighbours into one write.
pub(crate) fn write_coalesced(
    shared: &Shared,
    verified: &VerifiedPages,
    mut writes: Vec<(PageId, Vec<u8>)>,
) -> Result<()> {
    let ps = shared.page_size as u64;
    writes.sort_unstable_by_key(|(id, _)| *id);
    for (id, buf) in &writes {
        verified.clear_run(*id, buf.len() as u64 / ps);
    }
    let mut i = 0;
    while i < writes.len() {
        let start = writes[i].0;
        // Validate each run right before it goes to disk.
        let hdr = page::parse_header(&writes[i].1, start, shared.page_size);
        assert!(
            hdr.is_ok(),
            "refusing to write an invalid page {}: {:?}",
            start.0,
            hdr.err()
        );
        let mut buf = std::mem::take(&mut writes[i].1);
        let mut next = start.0 + buf.len() as u64 / ps;
        i += 1;
        while i < writes.len() && writes[i].0.0 == next && buf.len() < (1 << 20) {
            let hdr = page::parse_header(&writes[i].1, writes[i].0, shared.page_size);
            assert!(
                hdr.is_ok(),
                "refusing to write an invalid page {}: {:?}",
                writes[i].0.0,
                hdr.err()
            );
            next += writes[i].1.len() as u64 / ps;
            buf.extend_from_slice(&writes[i].1);
            i += 1;
        }
        shared.store.write_at(start.0 * ps, &buf)?;
    }
    Ok(())
}
