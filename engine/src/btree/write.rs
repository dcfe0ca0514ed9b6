//! Writing a commit's page runs: encoded into one buffer the writer keeps between commits and
//! written out whenever it holds [`STREAM_BYTES`] (so a large commit's writes, and with a
//! durable commit their writeback, start while the rest of it is still being encoded), each
//! batch validated, sorted, and neighbours written together (the store splits every write into
//! pieces of at most `store::WRITE_PIECE_BYTES`: larger writes make larger page-cache folios).

use crate::btree::PageId;
use crate::btree::db::Shared;
use crate::btree::page;
use crate::btree::verified::VerifiedPages;
use crate::error::Result;

/// A buffer larger than this after a write is given back rather than kept for the next one
/// (only a large overflow value makes one this big).
const KEEP_BYTES_MAX: usize = 8 << 20;

/// How much a commit encodes before it writes it out; also how much a durable commit writes
/// before it starts the writeback of what it wrote.
pub(crate) const STREAM_BYTES: usize = 256 << 10;

/// The page runs one commit writes, encoded back to back into one buffer.
///
/// The buffer lives in the writer's state, so its memory is reused by every commit instead of
/// allocated (and faulted in) page by page.
#[derive(Debug, Default)]
pub(crate) struct PageWrites {
    buf: Vec<u8>,
    /// `(first page, start in buf, length in bytes)`, in the order they were added.
    runs: Vec<(PageId, usize, usize)>,
    /// Start writeback early: the commit is durable, its fdatasync follows.
    early_writeback: bool,
    /// The span of file offsets written since writeback was last started, and its bytes.
    pending: Option<(u64, u64)>,
    pending_bytes: usize,
}

impl PageWrites {
    /// Starts a commit's writes.
    pub(crate) fn begin(&mut self, early_writeback: bool) {
        self.clear();
        self.early_writeback = early_writeback;
        self.pending = None;
        self.pending_bytes = 0;
    }

    /// Whether enough is encoded to write it out.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= STREAM_BYTES
    }

    /// Adds a zeroed run of `bytes` (whole pages) for page `id` and returns it to encode into.
    pub(crate) fn add(&mut self, id: PageId, bytes: usize) -> &mut [u8] {
        let start = self.buf.len();
        self.buf.resize(start + bytes, 0);
        self.runs.push((id, start, bytes));
        &mut self.buf[start..]
    }

    /// Empties the buffer, keeping its memory unless it grew unusually large.
    fn clear(&mut self) {
        self.runs.clear();
        if self.buf.capacity() > KEEP_BYTES_MAX {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    /// Writes every run added since the last write, in page order; runs that are neighbours
    /// both on disk and in the buffer go out as one write. On success the runs are marked
    /// verified (their checksums were computed from these very bytes) and the buffer is
    /// emptied. In a durable commit, every [`STREAM_BYTES`] written are handed to the store to
    /// start going to disk at once; what is left is the fdatasync's to write.
    pub(crate) fn write(&mut self, shared: &Shared, verified: &VerifiedPages) -> Result<()> {
        let ps = shared.page_size;
        self.runs.sort_unstable_by_key(|&(id, _, _)| id);
        for &(id, start, len) in &self.runs {
            verified.clear_run(id, (len / ps) as u64);
            // Validate each run right before it goes to disk.
            let hdr = page::parse_header(&self.buf[start..start + len], id, ps);
            assert!(
                hdr.is_ok(),
                "refusing to write an invalid page {}: {:?}",
                id.0,
                hdr.err()
            );
        }
        let mut i = 0;
        while i < self.runs.len() {
            let (first, start, mut len) = self.runs[i];
            i += 1;
            while let Some(&(id, s, l)) = self.runs.get(i) {
                if id.0 != first.0 + (len / ps) as u64 || s != start + len {
                    break;
                }
                len += l;
                i += 1;
            }
            let at = first.0 * ps as u64;
            shared.store.write_at(at, &self.buf[start..start + len])?;
            if self.early_writeback {
                let (lo, hi) = self.pending.unwrap_or((at, at));
                self.pending = Some((lo.min(at), hi.max(at + len as u64)));
                self.pending_bytes += len;
                if self.pending_bytes >= STREAM_BYTES
                    && let Some((lo, hi)) = self.pending.take()
                {
                    shared.store.start_writeback(lo, hi - lo);
                    self.pending_bytes = 0;
                }
            }
        }
        for &(id, _, _) in &self.runs {
            verified.set(id);
        }
        self.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_keeps_ordinary_buffers_and_drops_huge_ones() {
        let mut w = PageWrites::default();
        w.add(PageId(2), 4096).fill(1);
        w.clear();
        assert!(w.runs.is_empty() && w.buf.is_empty());
        assert!(w.buf.capacity() >= 4096);
        assert_eq!(
            w.add(PageId(3), 4096),
            &[0u8; 4096][..],
            "a reused run is zeroed"
        );
        w.add(PageId(4), KEEP_BYTES_MAX);
        w.clear();
        assert_eq!(w.buf.capacity(), 0);
    }
}
