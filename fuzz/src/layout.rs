//! The parts of the segment format the harness needs, mirrored from `wal/src/format.rs`.
//!
//! Segment header (64 bytes, little-endian): magic `STRATWAL` at 0, format version (u32) at 8,
//! header length (u32, 64) at 12, seq at 16, first index at 24, salt at 32, first record number
//! at 40, segment bytes at 48, reserved (u32) at 56, CRC32C of bytes 0..60 at 60.
//!
//! Record header (40 bytes): tag (u32) at 0, payload length (u32) at 4, record number at 8,
//! batch first at 16, batch records (u32) at 24, kind at 28, flags at 29, reserved (2) at 30,
//! previous record's CRC at 32, CRC at 36. The CRC is CRC32C seeded with
//! `crc32c(salt ‖ seq ‖ offset)` over header bytes 0..36 followed by the payload. Records are
//! 8-byte aligned.

/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 40;
/// Smallest `segment_bytes` a header may declare (header plus one record header).
pub const MIN_SEGMENT_BYTES: usize = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN;
/// Records start at multiples of this.
pub const RECORD_ALIGN: usize = 8;

const MAGIC: &[u8; 8] = b"STRATWAL";
const FORMAT_VERSION: u32 = 1;

/// The fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment sequence number (also in the file name).
    pub seq: u64,
    /// Index of the next entry when the segment was started (also in the file name).
    pub first_index: u64,
    /// Per-use random salt; records carry a tag folded from it and are checksummed with it.
    pub salt: u64,
    /// Record number of the segment's first record.
    pub first_lsn: u64,
    /// File size; must equal the file's length.
    pub segment_bytes: u64,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

impl SegmentHeader {
    /// The valid 64-byte encoding of this header (checksum included).
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_index.to_le_bytes());
        b[32..40].copy_from_slice(&self.salt.to_le_bytes());
        b[40..48].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[48..56].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads the header fields of `file` without verifying anything (missing bytes read as 0).
    pub fn read_unchecked(file: &[u8]) -> SegmentHeader {
        SegmentHeader {
            seq: le_u64(file, 16),
            first_index: le_u64(file, 24),
            salt: le_u64(file, 32),
            first_lsn: le_u64(file, 40),
            segment_bytes: le_u64(file, 48),
        }
    }

    /// The tag every record of this segment carries.
    pub fn tag(&self) -> u32 {
        (self.salt as u32) ^ ((self.salt >> 32) as u32)
    }

    fn record_seed(&self, offset: u64) -> u32 {
        let mut seed = [0u8; 24];
        seed[..8].copy_from_slice(&self.salt.to_le_bytes());
        seed[8..16].copy_from_slice(&self.seq.to_le_bytes());
        seed[16..].copy_from_slice(&offset.to_le_bytes());
        crc32c::crc32c(&seed)
    }
}

/// `{seq:016x}-{first_index:016x}.wal`, the name recovery parses.
pub fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// `pool-{n:016x}.tmp`, the name of a prepared (zero-filled or recycled) file.
pub fn pool_name(n: u64) -> String {
    format!("pool-{n:016x}.tmp")
}

/// Rewrites the tag and checksum of every record in `file` (a whole segment, header included)
/// so that each verifies on its own, and with `chain` also each record's `prev_crc` so that they
/// chain from the header. Walks records from offset 64 by their declared lengths and stops at
/// an all-zero record header (the unused part of a segment) or a record that would run past the
/// end of the file.
///
/// Why: record checksums are seeded with the salt, sequence number and offset, so random
/// mutations of a record body almost never survive verification and the fuzzer would never
/// reach the code that interprets verified records (payload decoding, batch and chain rules,
/// replay). Re-sealing lets mutated records through.
pub fn reseal(file: &mut [u8], chain: bool) {
    let header = SegmentHeader::read_unchecked(file);
    let tag = header.tag();
    let mut prev = le_u32(file, 60);
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(hdr) = file.get(pos..pos + RECORD_HEADER_LEN) {
        if hdr.iter().all(|&b| b == 0) {
            break;
        }
        let payload_len = le_u32(hdr, 4) as usize;
        let end = match (pos + RECORD_HEADER_LEN).checked_add(payload_len) {
            Some(end) if end <= file.len() => end,
            _ => break,
        };
        let rec = &mut file[pos..end];
        rec[0..4].copy_from_slice(&tag.to_le_bytes());
        if chain {
            rec[32..36].copy_from_slice(&prev.to_le_bytes());
        }
        let crc = crc32c::crc32c_append(header.record_seed(pos as u64), &rec[..36]);
        let crc = crc32c::crc32c_append(crc, &rec[RECORD_HEADER_LEN..]);
        rec[36..40].copy_from_slice(&crc.to_le_bytes());
        prev = crc;
        pos += (RECORD_HEADER_LEN + payload_len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    }
}

/// Length of `file` without its trailing zeros, rounded up to the record alignment: the part of
/// a segment that holds records.
pub fn used_len(file: &[u8]) -> usize {
    let last = file.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    (last.div_ceil(RECORD_ALIGN) * RECORD_ALIGN).min(file.len())
}
