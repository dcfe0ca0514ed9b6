//! Input encoding of `wal_recovery_bytes`: a log directory described byte by byte.
//!
//! ```text
//! input := flags:u8 file*                      (at most MAX_FILES files; the rest is ignored)
//! file  := ctl:u8 len:u16le data[len]          (data is cut short at the end of the input)
//! ```
//!
//! `flags` bit 0: open with `RecoveryMode::Repair` (else `Strict`). Bit 1: after a successful
//! open, append an entry, read it back, reopen and look for it again.
//!
//! `ctl` bits 0-1 select what `data` is:
//! - 0, built segment: `seq:u64 first_index:u64 salt:u64 first_lsn:u64 size:u16 body`. The
//!   harness writes a valid 64-byte header with these fields, then `body`, then zeros up to
//!   `max(size * 8, 64 + body.len(), 104)` bytes, and puts that length in the header's
//!   `segment_bytes`. This gets nearly every input past the header checks.
//! - 1, raw segment: `data` is the whole file. Its name uses the seq and first index found at
//!   offsets 16 and 24 of `data`.
//! - 2, prepared file `pool-{ordinal:016x}.tmp` holding `data`.
//! - 3, a file whose name recovery must ignore (variant chosen by bits 2-4), holding `data`.
//!
//! For kinds 0 and 1: bit 2 re-seals every record's tag and checksum ([`layout::reseal`]), and
//! bit 3 also re-chains the records' `prev_crc`, so mutated records still verify and the
//! fuzzer reaches the code that interprets them; bit 4 names the file with `seq + 1`, which
//! recovery must refuse as a mismatch. For kind 2, bit 4 zero-pads the file to the segment size,
//! so recovery keeps it as a prepared file and a later rotation writes into it.

use crate::Reader;
use crate::layout::{self, SegmentHeader};

/// Most files one input describes.
pub const MAX_FILES: usize = 8;
/// Segment size the target opens the log with; also the size a padded pool file gets.
pub const SEGMENT_BYTES: u64 = 64 << 10;
/// Largest file a built segment is padded to.
pub const MAX_BUILT_BYTES: usize = 128 << 10;

/// A decoded input.
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// Open with `RecoveryMode::Repair`.
    pub repair: bool,
    /// After a successful open, append an entry and reopen.
    pub write_after_open: bool,
    /// File names and contents for the store.
    pub files: Vec<(String, Vec<u8>)>,
}

/// One file, in the terms the encoding uses (for building seeds).
#[derive(Debug, Clone)]
pub enum FileSpec {
    /// Kind 0: the harness builds the header.
    Built {
        /// Header fields; `segment_bytes` is the padded file length.
        header: SegmentHeader,
        /// Bytes after the header (records), without the zero tail.
        body: Vec<u8>,
        /// Re-seal record checksums.
        reseal: bool,
        /// Also re-chain `prev_crc`.
        chain: bool,
        /// Name the file with `seq + 1`.
        misnamed: bool,
    },
    /// Kind 1: the file as is.
    Raw {
        /// File contents.
        bytes: Vec<u8>,
        /// Re-seal record checksums.
        reseal: bool,
    },
    /// Kind 2: a prepared file.
    Pool {
        /// File contents.
        bytes: Vec<u8>,
        /// Zero-pad to the segment size.
        pad: bool,
    },
    /// Kind 3: a file recovery must ignore.
    Other {
        /// Name variant (0..8).
        variant: u8,
        /// File contents.
        bytes: Vec<u8>,
    },
}

impl FileSpec {
    /// A real segment file as a built segment: its header fields and its records, without the
    /// zero tail. Decoding gives back exactly `segment`.
    pub fn from_segment(segment: &[u8]) -> FileSpec {
        let header = SegmentHeader::read_unchecked(segment);
        let used = layout::used_len(segment).max(layout::SEGMENT_HEADER_LEN);
        FileSpec::Built {
            header,
            body: segment
                .get(layout::SEGMENT_HEADER_LEN..used)
                .unwrap_or(&[])
                .to_vec(),
            reseal: false,
            chain: false,
            misnamed: false,
        }
    }
}

/// Encodes a case (the inverse of [`decode`]).
pub fn encode(repair: bool, write_after_open: bool, files: &[FileSpec]) -> Vec<u8> {
    let mut out = vec![u8::from(repair) | u8::from(write_after_open) << 1];
    for f in files {
        let (ctl, data) = match f {
            FileSpec::Built {
                header,
                body,
                reseal,
                chain,
                misnamed,
            } => {
                let mut d = Vec::new();
                d.extend_from_slice(&header.seq.to_le_bytes());
                d.extend_from_slice(&header.first_index.to_le_bytes());
                d.extend_from_slice(&header.salt.to_le_bytes());
                d.extend_from_slice(&header.first_lsn.to_le_bytes());
                let units = u16::try_from(header.segment_bytes / 8).unwrap_or(u16::MAX);
                d.extend_from_slice(&units.to_le_bytes());
                d.extend_from_slice(body);
                let ctl = u8::from(*reseal) << 2 | u8::from(*chain) << 3 | u8::from(*misnamed) << 4;
                (ctl, d)
            }
            FileSpec::Raw { bytes, reseal } => (1 | u8::from(*reseal) << 2, bytes.clone()),
            FileSpec::Pool { bytes, pad } => (2 | u8::from(*pad) << 4, bytes.clone()),
            FileSpec::Other { variant, bytes } => (3 | (variant & 7) << 2, bytes.clone()),
        };
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
        out.push(ctl);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&data[..usize::from(len)]);
    }
    out
}

/// Decodes any input into a case.
pub fn decode(data: &[u8]) -> Case {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let mut case = Case {
        repair: flags & 1 != 0,
        write_after_open: flags & 2 != 0,
        files: Vec::new(),
    };
    let mut ordinal = 0u64;
    while !r.is_empty() && case.files.len() < MAX_FILES {
        ordinal += 1;
        let ctl = r.u8();
        let len = usize::from(r.u16());
        let data = r.take(len);
        let reseal = ctl & 4 != 0;
        let chain = ctl & 8 != 0;
        let bit4 = ctl & 16 != 0;
        let file = match ctl & 3 {
            0 => {
                let mut d = Reader::new(data);
                let seq = d.u64();
                let first_index = d.u64();
                let salt = d.u64();
                let first_lsn = d.u64();
                let size = usize::from(d.u16()) * 8;
                let body = d.take(usize::MAX);
                let total = size
                    .min(MAX_BUILT_BYTES)
                    .max(layout::SEGMENT_HEADER_LEN + body.len())
                    .max(layout::MIN_SEGMENT_BYTES);
                let header = SegmentHeader {
                    seq,
                    first_index,
                    salt,
                    first_lsn,
                    segment_bytes: total as u64,
                };
                let mut bytes = Vec::with_capacity(total);
                bytes.extend_from_slice(&header.encode());
                bytes.extend_from_slice(body);
                bytes.resize(total, 0);
                if reseal {
                    layout::reseal(&mut bytes, chain);
                }
                let name_seq = seq.wrapping_add(u64::from(bit4));
                (layout::segment_name(name_seq, first_index), bytes)
            }
            1 => {
                let mut bytes = data.to_vec();
                if reseal {
                    layout::reseal(&mut bytes, chain);
                }
                let h = SegmentHeader::read_unchecked(&bytes);
                let name_seq = h.seq.wrapping_add(u64::from(bit4));
                (layout::segment_name(name_seq, h.first_index), bytes)
            }
            2 => {
                let mut bytes = data.to_vec();
                if bit4 && (bytes.len() as u64) < SEGMENT_BYTES {
                    bytes.resize(SEGMENT_BYTES as usize, 0);
                }
                (layout::pool_name(ordinal), bytes)
            }
            _ => {
                let seg = layout::segment_name(ordinal, 1);
                let name = match (ctl >> 2) & 7 {
                    0 => format!("{seg}.broken"),
                    1 => "junk".to_string(),
                    2 => format!("{ordinal:x}-1.wal"),
                    3 => "pool-zz.tmp".to_string(),
                    4 => seg.to_uppercase(),
                    5 => format!("0{seg}"),
                    6 => format!("{}.tmp", layout::pool_name(ordinal)),
                    _ => format!("{:016x}-{:016x}.wal", ordinal, 1).replace('0', "g"),
                };
                (name, data.to_vec())
            }
        };
        // A later file with the same name replaces the earlier one, as `put_file` would.
        case.files.retain(|(n, _)| *n != file.0);
        case.files.push(file);
    }
    case
}
