//! Byte layout of segment headers and records; pure functions, no I/O.
//!
//! Every integer is little-endian at the offsets named below. Decoders take untrusted bytes and
//! return an error on anything out of place; they never index out of bounds and never panic.
//! `docs/wal.md` has the diagrams.

use crate::types::{LogId, LogIndex, NodeId, Term, Vote};

/// `STRATWAL`: the first eight bytes of every segment.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"STRATWAL";
/// On-disk format version.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes reserved for the segment header at offset 0.
pub(crate) const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = 40;
/// Records start at multiples of this.
pub(crate) const RECORD_ALIGN: usize = 8;
/// Bytes of an entry payload before the entry's data: term, leader, index.
pub(crate) const ENTRY_PREFIX_LEN: usize = 24;
/// Bytes of a state payload.
pub(crate) const STATE_PAYLOAD_LEN: usize = 48;
/// Bytes of a truncate payload.
pub(crate) const TRUNCATE_PAYLOAD_LEN: usize = 16;

/// Flag bit: the entry data is a zstd frame preceded by its decompressed length (u64).
pub(crate) const FLAG_ZSTD: u8 = 0x01;

/// Segment header field offsets.
mod sh {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_LEN: usize = 12;
    pub const SEQ: usize = 16;
    pub const FIRST_INDEX: usize = 24;
    pub const SALT: usize = 32;
    pub const FIRST_LSN: usize = 40;
    pub const SEGMENT_BYTES: usize = 48;
    pub const RESERVED: usize = 56;
    pub const CRC: usize = 60;
}

/// Record header field offsets.
mod rh {
    pub const TAG: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const LSN: usize = 8;
    pub const BATCH_FIRST: usize = 16;
    pub const BATCH_RECORDS: usize = 24;
    pub const KIND: usize = 28;
    pub const FLAGS: usize = 29;
    pub const RESERVED: usize = 30;
    pub const PREV_CRC: usize = 32;
    pub const CRC: usize = 36;
}

pub(crate) fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn get_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Rounds `n` up to the record alignment.
pub(crate) fn align_up(n: usize) -> usize {
    n.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// The header at offset 0 of every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Segment sequence number.
    pub seq: u64,
    /// Index of the next entry when the segment was started (informational; also in the name).
    pub first_index: u64,
    /// Random per use of the file: records from an earlier use never validate.
    pub salt: u64,
    /// Sequence number of the first record in this segment.
    pub first_lsn: u64,
    /// File size the segment was prepared with.
    pub segment_bytes: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[sh::MAGIC..sh::MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut b, sh::VERSION, FORMAT_VERSION);
        put_u32(&mut b, sh::HEADER_LEN, SEGMENT_HEADER_LEN as u32);
        put_u64(&mut b, sh::SEQ, self.seq);
        put_u64(&mut b, sh::FIRST_INDEX, self.first_index);
        put_u64(&mut b, sh::SALT, self.salt);
        put_u64(&mut b, sh::FIRST_LSN, self.first_lsn);
        put_u64(&mut b, sh::SEGMENT_BYTES, self.segment_bytes);
        put_u32(&mut b, sh::RESERVED, 0);
        let crc = crc32c::crc32c(&b[..sh::CRC]);
        put_u32(&mut b, sh::CRC, crc);
        b
    }

    /// Decodes and verifies a header; the error is the reason it is invalid.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, String> {
        let b = b
            .get(..SEGMENT_HEADER_LEN)
            .ok_or_else(|| format!("file shorter than the {SEGMENT_HEADER_LEN}-byte header"))?;
        if b[sh::MAGIC..sh::MAGIC + 8] != SEGMENT_MAGIC {
            return Err("bad magic".into());
        }
        let stored = get_u32(b, sh::CRC).unwrap_or(0);
        let actual = crc32c::crc32c(&b[..sh::CRC]);
        if stored != actual {
            return Err(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            ));
        }
        let version = get_u32(b, sh::VERSION).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(format!("unsupported format version {version}"));
        }
        if get_u32(b, sh::HEADER_LEN) != Some(SEGMENT_HEADER_LEN as u32) {
            return Err("bad header length".into());
        }
        let h = SegmentHeader {
            seq: get_u64(b, sh::SEQ).unwrap_or(0),
            first_index: get_u64(b, sh::FIRST_INDEX).unwrap_or(0),
            salt: get_u64(b, sh::SALT).unwrap_or(0),
            first_lsn: get_u64(b, sh::FIRST_LSN).unwrap_or(0),
            segment_bytes: get_u64(b, sh::SEGMENT_BYTES).unwrap_or(0),
        };
        if h.segment_bytes < (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64 {
            return Err(format!("segment size {} too small", h.segment_bytes));
        }
        Ok(h)
    }

    /// The quick-reject tag every record in this segment carries.
    pub fn tag(&self) -> u32 {
        // Fold the salt so both halves matter.
        (self.salt as u32) ^ ((self.salt >> 32) as u32)
    }

    /// The CRC seed of the record at `offset`: binds a record to this use of this segment and to
    /// its position, so a copy from anywhere else fails its checksum.
    pub fn record_seed(&self, offset: u64) -> u32 {
        let mut seed = [0u8; 24];
        seed[..8].copy_from_slice(&self.salt.to_le_bytes());
        seed[8..16].copy_from_slice(&self.seq.to_le_bytes());
        seed[16..].copy_from_slice(&offset.to_le_bytes());
        crc32c::crc32c(&seed)
    }

    /// The `prev_crc` of the first record: the header's own checksum.
    pub fn chain_start(&self) -> u32 {
        let b = self.encode();
        get_u32(&b, sh::CRC).unwrap_or(0)
    }
}

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Entry = 1,
    State = 2,
    Truncate = 3,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            1 => Some(RecordKind::Entry),
            2 => Some(RecordKind::State),
            3 => Some(RecordKind::Truncate),
            _ => None,
        }
    }
}

/// The header fields of a record, as encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub payload_len: u32,
    pub lsn: u64,
    pub batch_first: u64,
    pub batch_records: u32,
    pub kind: RecordKind,
    pub flags: u8,
    pub prev_crc: u32,
    pub crc: u32,
}

impl RecordHeader {
    /// Total bytes the record occupies, padding included.
    pub fn total_len(&self) -> usize {
        align_up(RECORD_HEADER_LEN + self.payload_len as usize)
    }

    /// The last sequence number of this record's batch.
    pub fn batch_last(&self) -> u64 {
        self.batch_first
            .saturating_add(u64::from(self.batch_records).saturating_sub(1))
    }
}

/// Writes a record header with everything but the batch fields, chain and checksum, which
/// [`seal_record`] fills in once the batch is complete.
pub(crate) fn write_record_header(
    dst: &mut [u8],
    tag: u32,
    payload_len: u32,
    lsn: u64,
    kind: RecordKind,
    flags: u8,
) {
    put_u32(dst, rh::TAG, tag);
    put_u32(dst, rh::PAYLOAD_LEN, payload_len);
    put_u64(dst, rh::LSN, lsn);
    put_u64(dst, rh::BATCH_FIRST, 0);
    put_u32(dst, rh::BATCH_RECORDS, 0);
    dst[rh::KIND] = kind as u8;
    dst[rh::FLAGS] = flags;
    dst[rh::RESERVED] = 0;
    dst[rh::RESERVED + 1] = 0;
    put_u32(dst, rh::PREV_CRC, 0);
    put_u32(dst, rh::CRC, 0);
}

/// Fills in the batch fields, the chain and the checksum of an encoded record (header, payload
/// and padding in `rec`) that will be written at `offset`. Returns the record's checksum.
pub(crate) fn seal_record(
    rec: &mut [u8],
    seed: u32,
    batch_first: u64,
    batch_records: u32,
    prev_crc: u32,
) -> u32 {
    put_u64(rec, rh::BATCH_FIRST, batch_first);
    put_u32(rec, rh::BATCH_RECORDS, batch_records);
    put_u32(rec, rh::PREV_CRC, prev_crc);
    let payload_len = get_u32(rec, rh::PAYLOAD_LEN).unwrap_or(0) as usize;
    let crc = record_crc(seed, rec, payload_len);
    put_u32(rec, rh::CRC, crc);
    crc
}

fn record_crc(seed: u32, rec: &[u8], payload_len: usize) -> u32 {
    let crc = crc32c::crc32c_append(seed, &rec[..rh::CRC]);
    let payload = &rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload_len];
    crc32c::crc32c_append(crc, payload)
}

/// Why the bytes at an offset are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// The tag does not match this segment: zeros, or bytes of another segment or an earlier use.
    NotOurs,
    /// Carries this segment's tag but is malformed or fails its checksum.
    Invalid(String),
}

/// A record that passed its self-checks (tag, bounds, checksum). Chain checks are the caller's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord<'a> {
    pub header: RecordHeader,
    pub payload: &'a [u8],
}

/// Decodes the record at `offset` of a segment whose bytes (from offset 0) are `seg`.
pub(crate) fn decode_record<'a>(
    seg: &'a [u8],
    offset: usize,
    header: &SegmentHeader,
) -> Result<RawRecord<'a>, BadRecord> {
    let rest = seg.get(offset..).ok_or(BadRecord::NotOurs)?;
    decode_record_at(rest, offset, header)
}

/// Decodes a record whose bytes start at `b[0]` and which sits at `offset` in its segment.
pub(crate) fn decode_record_at<'a>(
    b: &'a [u8],
    offset: usize,
    header: &SegmentHeader,
) -> Result<RawRecord<'a>, BadRecord> {
    let hdr = b.get(..RECORD_HEADER_LEN).ok_or(BadRecord::NotOurs)?;
    if get_u32(hdr, rh::TAG) != Some(header.tag()) {
        return Err(BadRecord::NotOurs);
    }
    let bad = |r: &str| BadRecord::Invalid(r.to_string());
    let payload_len = get_u32(hdr, rh::PAYLOAD_LEN).ok_or_else(|| bad("short header"))?;
    let end = RECORD_HEADER_LEN
        .checked_add(payload_len as usize)
        .ok_or_else(|| bad("length overflows"))?;
    if end > b.len() {
        return Err(bad("record runs past the end of the segment"));
    }
    let kind = RecordKind::from_u8(hdr[rh::KIND]).ok_or_else(|| bad("unknown record kind"))?;
    if hdr[rh::RESERVED] != 0 || hdr[rh::RESERVED + 1] != 0 {
        return Err(bad("reserved bytes set"));
    }
    let h = RecordHeader {
        payload_len,
        lsn: get_u64(hdr, rh::LSN).unwrap_or(0),
        batch_first: get_u64(hdr, rh::BATCH_FIRST).unwrap_or(0),
        batch_records: get_u32(hdr, rh::BATCH_RECORDS).unwrap_or(0),
        kind,
        flags: hdr[rh::FLAGS],
        prev_crc: get_u32(hdr, rh::PREV_CRC).unwrap_or(0),
        crc: get_u32(hdr, rh::CRC).unwrap_or(0),
    };
    let rec = &b[..end];
    let actual = record_crc(header.record_seed(offset as u64), rec, payload_len as usize);
    if actual != h.crc {
        return Err(bad("record checksum mismatch"));
    }
    // Self-consistency of the batch fields (covered by the checksum, so only a writer bug or a
    // forged record could break them).
    if h.batch_records == 0 || h.batch_first > h.lsn || h.lsn > h.batch_last() {
        return Err(bad("record lies outside its batch"));
    }
    Ok(RawRecord {
        header: h,
        payload: &rec[RECORD_HEADER_LEN..],
    })
}

/// The decoded content of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    Entry { id: LogId, data: bytes::Bytes },
    State(StateRecord),
    Truncate { after: Option<LogIndex> },
}

/// Vote and purge mark: written whenever either changes and at the start of every segment, so
/// the newest segment alone always knows both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StateRecord {
    pub vote: Option<Vote>,
    pub purged: Option<LogId>,
}

const ST_HAS_VOTE: u8 = 0x01;
const ST_COMMITTED: u8 = 0x02;
const ST_HAS_VOTED_FOR: u8 = 0x04;
const ST_HAS_PURGED: u8 = 0x08;

pub(crate) fn encode_state(s: &StateRecord) -> [u8; STATE_PAYLOAD_LEN] {
    let mut b = [0u8; STATE_PAYLOAD_LEN];
    let mut flags = 0u8;
    if let Some(v) = s.vote {
        flags |= ST_HAS_VOTE;
        if v.committed {
            flags |= ST_COMMITTED;
        }
        put_u64(&mut b, 8, v.term.0);
        if let Some(n) = v.voted_for {
            flags |= ST_HAS_VOTED_FOR;
            put_u64(&mut b, 16, n.0);
        }
    }
    if let Some(p) = s.purged {
        flags |= ST_HAS_PURGED;
        put_u64(&mut b, 24, p.term.0);
        put_u64(&mut b, 32, p.leader.0);
        put_u64(&mut b, 40, p.index.0);
    }
    b[0] = flags;
    b
}

pub(crate) fn encode_truncate(after: Option<LogIndex>) -> [u8; TRUNCATE_PAYLOAD_LEN] {
    let mut b = [0u8; TRUNCATE_PAYLOAD_LEN];
    if let Some(a) = after {
        b[0] = 1;
        put_u64(&mut b, 8, a.0);
    }
    b
}

pub(crate) fn encode_entry_prefix(id: &LogId) -> [u8; ENTRY_PREFIX_LEN] {
    let mut b = [0u8; ENTRY_PREFIX_LEN];
    put_u64(&mut b, 0, id.term.0);
    put_u64(&mut b, 8, id.leader.0);
    put_u64(&mut b, 16, id.index.0);
    b
}

/// Decodes a verified record's payload. `max_entry_bytes` bounds decompression.
pub(crate) fn decode_payload(rec: &RawRecord<'_>, max_entry_bytes: u64) -> Result<Payload, String> {
    decode_payload_with(rec, max_entry_bytes, true)
}

/// Like [`decode_payload`], but an entry's data is left out (empty): recovery needs only ids
/// and locations, and the checksum already covers the data.
pub(crate) fn decode_payload_meta(rec: &RawRecord<'_>) -> Result<Payload, String> {
    decode_payload_with(rec, 0, false)
}

fn decode_payload_with(
    rec: &RawRecord<'_>,
    max_entry_bytes: u64,
    with_data: bool,
) -> Result<Payload, String> {
    let p = rec.payload;
    match rec.header.kind {
        RecordKind::Entry if !with_data => {
            if p.len() < ENTRY_PREFIX_LEN || rec.header.flags & !FLAG_ZSTD != 0 {
                return Err("malformed entry record".into());
            }
            let id = LogId {
                term: Term(get_u64(p, 0).unwrap_or(0)),
                leader: NodeId(get_u64(p, 8).unwrap_or(0)),
                index: LogIndex(get_u64(p, 16).unwrap_or(0)),
            };
            Ok(Payload::Entry {
                id,
                data: bytes::Bytes::new(),
            })
        }
        RecordKind::Entry => {
            let id = LogId {
                term: Term(get_u64(p, 0).ok_or("entry payload too short")?),
                leader: NodeId(get_u64(p, 8).ok_or("entry payload too short")?),
                index: LogIndex(get_u64(p, 16).ok_or("entry payload too short")?),
            };
            let rest = &p[ENTRY_PREFIX_LEN..];
            let data = if rec.header.flags & FLAG_ZSTD != 0 {
                let raw_len = get_u64(rest, 0).ok_or("compressed entry without its length")?;
                if raw_len > max_entry_bytes {
                    return Err(format!("compressed entry claims {raw_len} bytes"));
                }
                let frame = &rest[8..];
                let out = zstd::bulk::decompress(frame, raw_len as usize)
                    .map_err(|e| format!("zstd: {e}"))?;
                if out.len() as u64 != raw_len {
                    return Err("decompressed length differs from the stored length".into());
                }
                bytes::Bytes::from(out)
            } else {
                if rec.header.flags != 0 {
                    return Err("unknown entry flags".into());
                }
                bytes::Bytes::copy_from_slice(rest)
            };
            Ok(Payload::Entry { id, data })
        }
        RecordKind::State => {
            if p.len() != STATE_PAYLOAD_LEN || rec.header.flags != 0 {
                return Err("malformed state record".into());
            }
            let flags = p[0];
            if flags & !(ST_HAS_VOTE | ST_COMMITTED | ST_HAS_VOTED_FOR | ST_HAS_PURGED) != 0 {
                return Err("unknown state flags".into());
            }
            let vote = (flags & ST_HAS_VOTE != 0).then(|| Vote {
                term: Term(get_u64(p, 8).unwrap_or(0)),
                voted_for: (flags & ST_HAS_VOTED_FOR != 0)
                    .then(|| NodeId(get_u64(p, 16).unwrap_or(0))),
                committed: flags & ST_COMMITTED != 0,
            });
            let purged = (flags & ST_HAS_PURGED != 0).then(|| LogId {
                term: Term(get_u64(p, 24).unwrap_or(0)),
                leader: NodeId(get_u64(p, 32).unwrap_or(0)),
                index: LogIndex(get_u64(p, 40).unwrap_or(0)),
            });
            Ok(Payload::State(StateRecord { vote, purged }))
        }
        RecordKind::Truncate => {
            if p.len() != TRUNCATE_PAYLOAD_LEN || rec.header.flags != 0 || p[0] > 1 {
                return Err("malformed truncate record".into());
            }
            let after = (p[0] == 1).then(|| LogIndex(get_u64(p, 8).unwrap_or(0)));
            Ok(Payload::Truncate { after })
        }
    }
}

/// Parses a segment file name `{seq:016x}-{first_index:016x}.wal`.
pub(crate) fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

pub(crate) fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// Parses a prepared (pool) file name `pool-{n:016x}.tmp`.
pub(crate) fn parse_pool_name(name: &str) -> Option<u64> {
    let n = name.strip_prefix("pool-")?.strip_suffix(".tmp")?;
    if n.len() != 16 {
        return None;
    }
    u64::from_str_radix(n, 16).ok()
}

pub(crate) fn pool_name(n: u64) -> String {
    format!("pool-{n:016x}.tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> SegmentHeader {
        SegmentHeader {
            seq: 7,
            first_index: 100,
            salt: 0x1234_5678_9abc_def0,
            first_lsn: 55,
            segment_bytes: 1 << 20,
        }
    }

    #[test]
    fn header_round_trips_and_rejects_flips() {
        let h = hdr();
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SegmentHeader::decode(&c).is_err(),
                "flip of bit {bit} accepted"
            );
        }
        assert!(SegmentHeader::decode(&b[..10]).is_err());
    }

    #[test]
    fn record_is_bound_to_its_offset_and_segment() {
        let h = hdr();
        let mut seg = vec![0u8; 256];
        let payload = encode_truncate(Some(LogIndex(9)));
        let len = align_up(RECORD_HEADER_LEN + payload.len());
        let rec = &mut seg[64..64 + len];
        write_record_header(
            rec,
            h.tag(),
            payload.len() as u32,
            55,
            RecordKind::Truncate,
            0,
        );
        rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(&payload);
        seal_record(rec, h.record_seed(64), 55, 1, h.chain_start());
        let r = decode_record(&seg, 64, &h).expect("valid");
        assert_eq!(
            decode_payload(&r, 1 << 20),
            Ok(Payload::Truncate {
                after: Some(LogIndex(9))
            })
        );
        // The same bytes at another offset fail.
        let copy = seg[64..64 + len].to_vec();
        seg[128..128 + len].copy_from_slice(&copy);
        assert!(matches!(
            decode_record(&seg, 128, &h),
            Err(BadRecord::Invalid(_))
        ));
        // The same bytes in another use of the file (another salt) fail.
        let other = SegmentHeader { salt: 1, ..h };
        assert!(decode_record(&seg, 64, &other).is_err());
        // Another segment sequence with a colliding tag fails the checksum.
        let other = SegmentHeader { seq: 8, ..h };
        assert!(matches!(
            decode_record(&seg, 64, &other),
            Err(BadRecord::Invalid(_))
        ));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(3, 77)), Some((3, 77)));
        assert_eq!(parse_pool_name(&pool_name(12)), Some(12));
        assert_eq!(parse_segment_name("x.wal"), None);
    }
}
