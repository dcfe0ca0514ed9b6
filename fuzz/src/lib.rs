//! Input encodings shared by the fuzz targets (`fuzz_targets/`) and the seed generator
//! (`examples/gen_seeds.rs`).
//!
//! The targets decode their input with the functions here and do the checking themselves; the
//! seed generator encodes real segment files and operation sequences with the inverse functions,
//! so the committed corpus always speaks the targets' language. `docs/fuzzing.md` describes both
//! encodings.
//!
//! The byte layout of segment headers and records is private to `strata-wal`; the few parts the
//! harness needs (building a valid segment header, re-sealing record checksums) are mirrored in
//! [`layout`]. If the on-disk format changes, change them there too: the targets still run, but
//! the fuzzer stops getting past the checksums until they match again.

pub mod bytes_input;
pub mod layout;
pub mod model;
pub mod structured_input;

/// Reads bytes front to back; every read past the end yields zeros, so any input decodes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 at the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next little-endian `u16` (missing bytes read as 0).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u64` (missing bytes read as 0).
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}
