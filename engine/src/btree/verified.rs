//! Which page runs this process has already checksummed, so that a hot page is verified the
//! first time it is read rather than on every read.
//!
//! One bit per page, in fixed-size chunks shared between snapshots (a snapshot that covers
//! more pages gets the old chunks plus new ones). A reader sets the bit of a run's first page
//! after its checksum matched. The writer clears the bit of every page it is about to write
//! and, once the writes succeeded, sets the bit of each run's first page: it computed their
//! checksums from the very bytes it wrote, so reading them back to check would prove nothing.
//! Both happen before the snapshot that reaches the new contents is published. That ordering
//! is enough: a page a live reader can see is never rewritten (see `free.rs`), so a bit can
//! only be set for the contents it was verified against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::btree::PageId;

const CHUNK_WORDS: usize = 1024;
const CHUNK_PAGES: u64 = (CHUNK_WORDS * 64) as u64;

struct Chunk([AtomicU64; CHUNK_WORDS]);

/// The verified-page bitmap covering one snapshot's pages.
#[derive(Default)]
pub(crate) struct VerifiedPages {
    chunks: Vec<Arc<Chunk>>,
}

impl VerifiedPages {
    /// A map covering `page_count` pages that shares `prev`'s chunks.
    pub(crate) fn covering(prev: &Arc<VerifiedPages>, page_count: u64) -> Arc<VerifiedPages> {
        let need = page_count.div_ceil(CHUNK_PAGES) as usize;
        if prev.chunks.len() >= need {
            return prev.clone();
        }
        let mut chunks = prev.chunks.clone();
        while chunks.len() < need {
            chunks.push(Arc::new(Chunk(std::array::from_fn(|_| AtomicU64::new(0)))));
        }
        Arc::new(VerifiedPages { chunks })
    }

    fn slot(&self, id: PageId) -> Option<(&AtomicU64, u64)> {
        let chunk = self.chunks.get((id.0 / CHUNK_PAGES) as usize)?;
        let bit = id.0 % CHUNK_PAGES;
        Some((&chunk.0[(bit / 64) as usize], 1u64 << (bit % 64)))
    }

    pub(crate) fn is_set(&self, id: PageId) -> bool {
        self.slot(id)
            .is_some_and(|(w, m)| w.load(Ordering::Relaxed) & m != 0)
    }

    pub(crate) fn set(&self, id: PageId) {
        if let Some((w, m)) = self.slot(id) {
            w.fetch_or(m, Ordering::Relaxed);
        }
    }

    /// Forgets every page of a run about to be rewritten.
    pub(crate) fn clear_run(&self, id: PageId, pages: u64) {
        for p in id.0..id.0 + pages {
            if let Some((w, m)) = self.slot(PageId(p)) {
                w.fetch_and(!m, Ordering::Relaxed);
            }
        }
    }
}

/// How a page read is verified.
#[derive(Clone, Copy)]
pub(crate) enum Verify<'a> {
    /// Checksum every read.
    Always,
    /// Checksum a run the first time this process reads it, unless this process wrote it.
    Once(&'a VerifiedPages),
    /// Never (structure is still bounds-checked).
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_shared_across_growth_and_cleared_by_rewrites() {
        let a = VerifiedPages::covering(&Arc::default(), 10);
        a.set(PageId(5));
        let b = VerifiedPages::covering(&a, CHUNK_PAGES * 2 + 1);
        assert!(b.is_set(PageId(5)));
        b.set(PageId(CHUNK_PAGES * 2));
        assert!(b.is_set(PageId(CHUNK_PAGES * 2)));
        assert!(!a.is_set(PageId(CHUNK_PAGES * 2)), "outside the old map");
        b.clear_run(PageId(4), 2);
        assert!(!a.is_set(PageId(5)));
    }
}
