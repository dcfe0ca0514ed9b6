//! The bytes on disk: page header, meta page, branch/leaf elements, overflow and freelist runs.
//!
//! Every integer is little-endian at a named offset. Every page run (one page, or a page plus
//! `overflow` contiguous pages) starts with the same 40-byte header:
//!
//! ```text
//! off size field
//!   0    4 checksum   CRC32C of bytes [4, used) of the run
//!   4    1 kind       1 branch, 2 leaf, 3 overflow value, 4 freelist
//!   5    3 reserved   zero
//!   8    8 page id    the run's first page; a page read from the wrong place fails
//!  16    8 txn id     the transaction that wrote the run
//!  24    4 overflow   pages in the run after the first
//!  28    4 count      elements (branch, leaf), page ids (freelist), 0 (overflow value)
//!  32    4 used       bytes of the run in use, header included
//!  36    4 reserved   zero
//! ```
//!
//! Decoders never index unchecked: every accessor returns `None` when an offset is out of
//! bounds, and the caller turns that into [`EngineError::Corrupted`].

use crate::btree::{PageId, TxnId};
use crate::error::{EngineError, Result};

/// Bytes of the common page header.
pub(crate) const HEADER_BYTES: usize = 40;
/// Bytes of one branch or leaf element.
pub(crate) const ELEMENT_BYTES: usize = 16;
/// Bytes of an overflow reference stored in place of a large value.
pub(crate) const OVERFLOW_REF_BYTES: usize = 12;

pub(crate) const OFF_CHECKSUM: usize = 0;
pub(crate) const OFF_KIND: usize = 4;
pub(crate) const OFF_PAGE_ID: usize = 8;
pub(crate) const OFF_TXN_ID: usize = 16;
pub(crate) const OFF_OVERFLOW: usize = 24;
pub(crate) const OFF_COUNT: usize = 28;
pub(crate) const OFF_USED: usize = 32;

/// Leaf element flag: the value is an overflow reference `{page u64, len u32}`.
pub(crate) const LEAF_FLAG_OVERFLOW: u32 = 1;

/// What a page run holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageKind {
    Branch = 1,
    Leaf = 2,
    Overflow = 3,
    Freelist = 4,
}

impl PageKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(PageKind::Branch),
            2 => Some(PageKind::Leaf),
            3 => Some(PageKind::Overflow),
            4 => Some(PageKind::Freelist),
            _ => None,
        }
    }
}

/// A decoded, bounds-checked page header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageHeader {
    pub kind: PageKind,
    pub id: PageId,
    pub txn: TxnId,
    pub overflow: u32,
    pub count: u32,
    pub used: u32,
    pub checksum: u32,
}

pub(crate) fn get_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn get_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Parses the header of the run starting at `id`, checking what can be checked without the
/// rest of the run: kind, page id, and that `used` fits the run's size.
pub(crate) fn parse_header(b: &[u8], id: PageId, page_size: usize) -> Result<PageHeader, String> {
    if b.len() < HEADER_BYTES {
        return Err(format!("page shorter than its header ({} bytes)", b.len()));
    }
    let kind_byte = b[OFF_KIND];
    let kind = PageKind::from_byte(kind_byte).ok_or_else(|| {
        format!("unknown page kind {kind_byte} (a zeroed or never-written page reads as 0)")
    })?;
    let (Some(stored_id), Some(txn), Some(overflow), Some(count), Some(used), Some(checksum)) = (
        get_u64(b, OFF_PAGE_ID),
        get_u64(b, OFF_TXN_ID),
        get_u32(b, OFF_OVERFLOW),
        get_u32(b, OFF_COUNT),
        get_u32(b, OFF_USED),
        get_u32(b, OFF_CHECKSUM),
    ) else {
        return Err("page header truncated".into());
    };
    if stored_id != id.0 {
        return Err(format!(
            "page claims to be page {stored_id} (misdirected or stale write)"
        ));
    }
    let run_bytes = (u64::from(overflow) + 1) * page_size as u64;
    if (used as usize) < HEADER_BYTES || u64::from(used) > run_bytes {
        return Err(format!(
            "used length {used} outside [{HEADER_BYTES}, {run_bytes}]"
        ));
    }
    Ok(PageHeader {
        kind,
        id,
        txn: TxnId(txn),
        overflow,
        count,
        used,
        checksum,
    })
}

/// The checksum of a run: CRC32C of bytes `[4, used)`.
pub(crate) fn run_checksum(run: &[u8], used: usize) -> u32 {
    crc32c::crc32c(&run[OFF_CHECKSUM + 4..used])
}

/// Writes the common header into `buf` (whose length is the run's size) and seals it with its
/// checksum. The run's body must already be in place.
pub(crate) fn seal(
    buf: &mut [u8],
    kind: PageKind,
    id: PageId,
    txn: TxnId,
    count: u32,
    used: usize,
    page_size: usize,
) {
    // A sealed run is exactly whole pages long and its used bytes fit inside it.
    assert!(buf.len().is_multiple_of(page_size) && used <= buf.len() && used >= HEADER_BYTES);
    buf[OFF_KIND] = kind as u8;
    buf[OFF_KIND + 1..OFF_PAGE_ID].fill(0);
    put_u64(buf, OFF_PAGE_ID, id.0);
    put_u64(buf, OFF_TXN_ID, txn.0);
    put_u32(buf, OFF_OVERFLOW, (buf.len() / page_size - 1) as u32);
    put_u32(buf, OFF_COUNT, count);
    put_u32(buf, OFF_USED, used as u32);
    put_u32(buf, OFF_USED + 4, 0);
    let sum = run_checksum(buf, used);
    put_u32(buf, OFF_CHECKSUM, sum);
}

/// Pages needed for `bytes` bytes.
pub(crate) fn pages_for(bytes: usize, page_size: usize) -> usize {
    bytes.div_ceil(page_size).max(1)
}

// ---------------------------------------------------------------------------------------------
// Branch and leaf elements.
//
// Leaf element i at HEADER + 16 i: {flags u32, key_off u32, key_len u32, val_len u32}; the key
// and the value (or a 12-byte overflow reference when flags has LEAF_FLAG_OVERFLOW) are at
// key_off within the page. Branch element i: {key_off u32, key_len u32, child u64}; element 0
// has no key (key_len 0): child i holds the keys k with key(i) <= k < key(i + 1).
// ---------------------------------------------------------------------------------------------

/// A leaf value as stored in a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoredValue<'a> {
    Inline(&'a [u8]),
    Overflow { page: PageId, len: u32 },
}

/// Bounds-checked read access to the elements of a validated branch or leaf page.
#[derive(Clone, Copy)]
pub(crate) struct Elements<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Elements<'a> {
    /// `bytes` is the run truncated to its `used` length.
    pub(crate) fn new(bytes: &'a [u8], count: u32) -> Option<Self> {
        let count = count as usize;
        let end = HEADER_BYTES.checked_add(count.checked_mul(ELEMENT_BYTES)?)?;
        if end > bytes.len() {
            return None;
        }
        Some(Elements { bytes, count })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    fn slot(&self, i: usize) -> usize {
        HEADER_BYTES + i * ELEMENT_BYTES
    }

    fn slice(&self, off: u32, len: u32) -> Option<&'a [u8]> {
        let off = off as usize;
        self.bytes.get(off..off.checked_add(len as usize)?)
    }

    /// Leaf: the key of element `i`.
    pub(crate) fn leaf_key(&self, i: usize) -> Option<&'a [u8]> {
        let s = self.slot(i);
        self.slice(get_u32(self.bytes, s + 4)?, get_u32(self.bytes, s + 8)?)
    }

    /// Leaf: the value of element `i`.
    pub(crate) fn leaf_value(&self, i: usize) -> Option<StoredValue<'a>> {
        let s = self.slot(i);
        let flags = get_u32(self.bytes, s)?;
        let key_off = get_u32(self.bytes, s + 4)?;
        let key_len = get_u32(self.bytes, s + 8)?;
        let val_len = get_u32(self.bytes, s + 12)?;
        let v = self.slice(key_off.checked_add(key_len)?, val_len)?;
        if flags & LEAF_FLAG_OVERFLOW != 0 {
            if v.len() != OVERFLOW_REF_BYTES {
                return None;
            }
            Some(StoredValue::Overflow {
                page: PageId(get_u64(v, 0)?),
                len: get_u32(v, 8)?,
            })
        } else {
            Some(StoredValue::Inline(v))
        }
    }

    /// Branch: the separator key of element `i` (empty for element 0).
    pub(crate) fn branch_key(&self, i: usize) -> Option<&'a [u8]> {
        let s = self.slot(i);
        self.slice(get_u32(self.bytes, s)?, get_u32(self.bytes, s + 4)?)
    }

    /// Branch: the index of the child whose range holds `key` (the number of separators,
    /// elements 1.., that are `<= key`, minus nothing: element 0 has no separator).
    pub(crate) fn branch_search(&self, key: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (1usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.branch_key(mid)? <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(lo - 1)
    }

    /// Leaf: `Ok(i)` if key `i` equals `key`, else `Err(insertion point)`.
    pub(crate) fn leaf_search(&self, key: &[u8]) -> Option<Result<usize, usize>> {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.leaf_key(mid)?.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(Ok(mid)),
            }
        }
        Some(Err(lo))
    }

    /// Branch: the child page of element `i`.
    pub(crate) fn branch_child(&self, i: usize) -> Option<PageId> {
        get_u64(self.bytes, self.slot(i) + 8).map(PageId)
    }
}

// ---------------------------------------------------------------------------------------------
// Meta pages (pages 0 and 1). Only the first META_BYTES of the page are used.
// ---------------------------------------------------------------------------------------------

/// The file magic, "STRATADB".
pub(crate) const MAGIC: [u8; 8] = *b"STRATADB";
/// The on-disk format version.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Bytes of a meta record.
pub(crate) const META_BYTES: usize = 64;

const META_OFF_MAGIC: usize = 0;
const META_OFF_VERSION: usize = 8;
const META_OFF_PAGE_SIZE: usize = 12;
const META_OFF_TXN: usize = 16;
const META_OFF_CATALOG: usize = 24;
const META_OFF_FREELIST: usize = 32;
const META_OFF_PAGE_COUNT: usize = 40;
// 48..60 reserved (zero)
const META_OFF_CHECKSUM: usize = 60;

/// A meta page's contents: which tree and freelist a durable transaction left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    pub txn: TxnId,
    /// Root of the catalog tree (bucket name → bucket header); `PageId(0)` when empty.
    pub catalog: PageId,
    /// First page of the freelist run; `PageId(0)` when there is none.
    pub freelist: PageId,
    /// Pages `[0, page_count)` are allocated in the file (in use or free).
    pub page_count: u64,
}

impl Meta {
    pub(crate) fn encode(&self) -> [u8; META_BYTES] {
        let mut b = [0u8; META_BYTES];
        b[META_OFF_MAGIC..META_OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        put_u32(&mut b, META_OFF_VERSION, FORMAT_VERSION);
        put_u32(&mut b, META_OFF_PAGE_SIZE, self.page_size);
        put_u64(&mut b, META_OFF_TXN, self.txn.0);
        put_u64(&mut b, META_OFF_CATALOG, self.catalog.0);
        put_u64(&mut b, META_OFF_FREELIST, self.freelist.0);
        put_u64(&mut b, META_OFF_PAGE_COUNT, self.page_count);
        let sum = crc32c::crc32c(&b[..META_OFF_CHECKSUM]);
        put_u32(&mut b, META_OFF_CHECKSUM, sum);
        b
    }

    /// Decodes and validates a meta record; the error says why it is rejected.
    pub(crate) fn decode(b: &[u8]) -> Result<Meta, String> {
        let b = b.get(..META_BYTES).ok_or("meta page truncated")?;
        if b[..8] != MAGIC {
            return Err("bad magic (not a Strata database, or a zeroed meta page)".into());
        }
        let stored = get_u32(b, META_OFF_CHECKSUM).ok_or("truncated")?;
        let actual = crc32c::crc32c(&b[..META_OFF_CHECKSUM]);
        if stored != actual {
            return Err(format!(
                "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            ));
        }
        let version = get_u32(b, META_OFF_VERSION).ok_or("truncated")?;
        if version != FORMAT_VERSION {
            return Err(format!("unsupported format version {version}"));
        }
        let meta = Meta {
            page_size: get_u32(b, META_OFF_PAGE_SIZE).ok_or("truncated")?,
            txn: TxnId(get_u64(b, META_OFF_TXN).ok_or("truncated")?),
            catalog: PageId(get_u64(b, META_OFF_CATALOG).ok_or("truncated")?),
            freelist: PageId(get_u64(b, META_OFF_FREELIST).ok_or("truncated")?),
            page_count: get_u64(b, META_OFF_PAGE_COUNT).ok_or("truncated")?,
        };
        if !valid_page_size(meta.page_size as usize) {
            return Err(format!("invalid page size {}", meta.page_size));
        }
        if meta.page_count < 2
            || meta.catalog.0 == 1
            || meta.freelist.0 == 1
            || meta.catalog.0 >= meta.page_count
            || meta.freelist.0 >= meta.page_count
        {
            return Err(format!(
                "page references out of range (catalog {}, freelist {}, page count {})",
                meta.catalog.0, meta.freelist.0, meta.page_count
            ));
        }
        Ok(meta)
    }
}

/// Page sizes the engine accepts: powers of two from 1 KiB to 64 KiB.
pub(crate) fn valid_page_size(n: usize) -> bool {
    n.is_power_of_two() && (1024..=65536).contains(&n)
}

// ---------------------------------------------------------------------------------------------
// Freelist run: count u64 page ids, ascending, after the header.
// ---------------------------------------------------------------------------------------------

/// Bytes a freelist of `n` ids needs.
pub(crate) fn freelist_bytes(n: usize) -> usize {
    HEADER_BYTES + 8 * n
}

pub(crate) fn encode_freelist(buf: &mut [u8], ids: &[PageId]) {
    for (i, id) in ids.iter().enumerate() {
        put_u64(buf, HEADER_BYTES + 8 * i, id.0);
    }
}

/// Decodes a freelist run's ids, checking they are ascending, unique and in `[2, page_count)`.
pub(crate) fn decode_freelist(
    run: &[u8],
    count: u32,
    page_count: u64,
) -> Result<Vec<PageId>, String> {
    let mut ids = Vec::with_capacity(count as usize);
    let mut prev = 1u64;
    for i in 0..count as usize {
        let id = get_u64(run, HEADER_BYTES + 8 * i).ok_or("freelist truncated")?;
        if id <= prev || id >= page_count {
            return Err(format!(
                "freelist entry {i} ({id}) out of order or out of range"
            ));
        }
        prev = id;
        ids.push(PageId(id));
    }
    Ok(ids)
}

pub(crate) fn corrupted(
    file: &std::path::Path,
    page: PageId,
    reason: impl Into<String>,
) -> EngineError {
    EngineError::Corrupted {
        file: file.to_path_buf(),
        page,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_rejects_damage() {
        let m = Meta {
            page_size: 4096,
            txn: TxnId(7),
            catalog: PageId(3),
            freelist: PageId(4),
            page_count: 9,
        };
        let b = m.encode();
        assert_eq!(Meta::decode(&b), Ok(m));
        for i in 0..META_BYTES {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(Meta::decode(&d).is_err(), "flip at byte {i} accepted");
        }
        assert!(Meta::decode(&[0u8; META_BYTES]).is_err());
        assert!(Meta::decode(&b[..10]).is_err());
    }

    #[test]
    fn header_rejects_zeroed_and_misdirected_pages() {
        let mut run = vec![0u8; 4096];
        assert!(parse_header(&run, PageId(5), 4096).is_err());
        seal(
            &mut run,
            PageKind::Leaf,
            PageId(5),
            TxnId(1),
            0,
            HEADER_BYTES,
            4096,
        );
        assert!(parse_header(&run, PageId(5), 4096).is_ok());
        assert!(parse_header(&run, PageId(6), 4096).is_err());
        put_u32(&mut run, OFF_USED, 5000);
        assert!(parse_header(&run, PageId(5), 4096).is_err());
    }
}
