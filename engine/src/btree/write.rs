//! Writing a commit's page runs: encoded into one buffer the writer keeps between commits,
//! validated, sorted, and neighbours written together (the store splits every write into
//! pieces of at most `store::WRITE_PIECE_BYTES`: larger writes make larger page-cache folios).

use crate::btree::PageId;
use crate::btree::db::Shared;
use crate::btree::page;
use crate::btree::verified::VerifiedPages;
use crate::error::Result;

/// A buffer larger than this after a commit is given back rather than kept for the next one.
/// An ordinary commit of 1,000 random puts into a million keys writes about 7 MiB.
const KEEP_BYTES_MAX: usize = 8 << 20;

/// The page runs one commit writes, encoded back to back into one buffer.
///
/// The buffer lives in the writer's state, so its memory is reused by every commit instead of
/// allocated (and faulted in) page by page.
#[derive(Debug, Default)]
pub(crate) struct PageWrites {
    buf: Vec<u8>,
    /// `(first page, start in buf, length in bytes)`, in the order they were added.
    runs: Vec<(PageId, usize, usize)>,
}

impl PageWrites {
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

    /// Writes every run in page order; runs that are neighbours both on disk and in the buffer
    /// go out as one write. On success the runs are marked verified (their checksums were
    /// computed from these very bytes) and the buffer is emptied for the next commit.
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
            shared
                .store
                .write_at(first.0 * ps as u64, &self.buf[start..start + len])?;
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
