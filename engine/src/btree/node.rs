//! Nodes a write transaction has touched: decoded from their page (one copy of the page's
//! bytes plus an offset table), edited in memory, split or merged by encoded size, and written
//! to freshly allocated pages at commit. A page that has been read is never edited in place.

use crate::btree::page::{
    self, ELEMENT_BYTES, Elements, HEADER_BYTES, LEAF_FLAG_OVERFLOW, OVERFLOW_REF_BYTES, PageKind,
    StoredValue,
};
use crate::btree::{PageId, TxnId};

/// A child pointer in a branch, or a tree root: a clean page or a dirty node in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Child {
    Page(PageId),
    Node(usize),
}

/// Where a leaf value's bytes are.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val {
    /// In the node's buffer; stored inline in the leaf.
    Inline { off: u32, len: u32 },
    /// In the node's buffer; goes to its own overflow run at commit.
    Large { off: u32, len: u32 },
    /// Already in an overflow run on disk.
    Overflow { page: PageId, len: u32 },
}

impl Val {
    fn stored_len(&self) -> usize {
        match *self {
            Val::Inline { len, .. } => len as usize,
            Val::Large { .. } | Val::Overflow { .. } => OVERFLOW_REF_BYTES,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafEnt {
    koff: u32,
    klen: u32,
    pub val: Val,
}

impl LeafEnt {
    fn size(&self) -> usize {
        ELEMENT_BYTES + self.klen as usize + self.val.stored_len()
    }
}

/// A dirty leaf.
#[derive(Debug, Default)]
pub(crate) struct Leaf {
    buf: Vec<u8>,
    ents: Vec<LeafEnt>,
    size: usize,
}

/// A dirty branch: `keys[i]` separates `children[i]` from `children[i + 1]`.
#[derive(Debug, Default)]
pub(crate) struct Branch {
    buf: Vec<u8>,
    keys: Vec<(u32, u32)>,
    pub children: Vec<Child>,
    size: usize,
}

#[derive(Debug)]
pub(crate) enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

fn push_bytes(buf: &mut Vec<u8>, b: &[u8]) -> (u32, u32) {
    let off = buf.len() as u32;
    buf.extend_from_slice(b);
    (off, b.len() as u32)
}

fn slice(buf: &[u8], off: u32, len: u32) -> &[u8] {
    &buf[off as usize..off as usize + len as usize]
}

impl Leaf {
    pub(crate) fn new() -> Self {
        Leaf {
            buf: Vec::new(),
            ents: Vec::new(),
            size: HEADER_BYTES,
        }
    }

    /// Decodes a validated leaf page; `None` if an element points outside the page.
    pub(crate) fn decode(els: &Elements<'_>, used: &[u8]) -> Option<Leaf> {
        let mut leaf = Leaf {
            buf: used.to_vec(),
            ents: Vec::with_capacity(els.len()),
            size: HEADER_BYTES,
        };
        for i in 0..els.len() {
            let key = els.leaf_key(i)?;
            let koff = (key.as_ptr() as usize - used.as_ptr() as usize) as u32;
            let val = match els.leaf_value(i)? {
                StoredValue::Inline(v) => Val::Inline {
                    off: (v.as_ptr() as usize - used.as_ptr() as usize) as u32,
                    len: v.len() as u32,
                },
                StoredValue::Overflow { page, len } => Val::Overflow { page, len },
            };
            let ent = LeafEnt {
                koff,
                klen: key.len() as u32,
                val,
            };
            leaf.size += ent.size();
            leaf.ents.push(ent);
        }
        Some(leaf)
    }

    pub(crate) fn len(&self) -> usize {
        self.ents.len()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let e = &self.ents[i];
        slice(&self.buf, e.koff, e.klen)
    }

    pub(crate) fn val(&self, i: usize) -> Val {
        self.ents[i].val
    }

    /// Bytes of an in-buffer value.
    pub(crate) fn val_bytes(&self, off: u32, len: u32) -> &[u8] {
        slice(&self.buf, off, len)
    }

    pub(crate) fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.ents
            .binary_search_by(|e| slice(&self.buf, e.koff, e.klen).cmp(key))
    }

    /// Inserts or replaces; returns the replaced value (so its overflow run can be freed).
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8], large: bool) -> (usize, Option<Val>) {
        let (voff, vlen) = push_bytes(&mut self.buf, value);
        let val = if large {
            Val::Large {
                off: voff,
                len: vlen,
            }
        } else {
            Val::Inline {
                off: voff,
                len: vlen,
            }
        };
        let r = match self.search(key) {
            Ok(i) => {
                let old = self.ents[i].val;
                self.size -= old.stored_len();
                self.size += val.stored_len();
                self.ents[i].val = val;
                (i, Some(old))
            }
            Err(i) => {
                let (koff, klen) = push_bytes(&mut self.buf, key);
                let ent = LeafEnt { koff, klen, val };
                self.size += ent.size();
                self.ents.insert(i, ent);
                (i, None)
            }
        };
        self.maybe_compact();
        r
    }

    pub(crate) fn remove(&mut self, i: usize) -> Val {
        let e = self.ents.remove(i);
        self.size -= e.size();
        e.val
    }

    /// Replaces a pending large value with its overflow run.
    pub(crate) fn set_overflow(&mut self, i: usize, page: PageId, len: u32) {
        self.ents[i].val = Val::Overflow { page, len };
    }

    /// Rewrites the buffer without dead bytes once they dominate it.
    fn maybe_compact(&mut self) {
        if self.buf.len() <= 4 * self.size + 4096 {
            return;
        }
        let mut fresh = Leaf::new();
        for i in 0..self.ents.len() {
            fresh.push_from(self, i);
        }
        *self = fresh;
    }

    /// Appends entry `i` of `src` (which sorts after every entry here).
    fn push_from(&mut self, src: &Leaf, i: usize) {
        let e = src.ents[i];
        let (koff, klen) = push_bytes(&mut self.buf, slice(&src.buf, e.koff, e.klen));
        let val = match e.val {
            Val::Inline { off, len } => {
                let (off, len) = push_bytes(&mut self.buf, slice(&src.buf, off, len));
                Val::Inline { off, len }
            }
            Val::Large { off, len } => {
                let (off, len) = push_bytes(&mut self.buf, slice(&src.buf, off, len));
                Val::Large { off, len }
            }
            o @ Val::Overflow { .. } => o,
        };
        let ent = LeafEnt { koff, klen, val };
        self.size += ent.size();
        self.ents.push(ent);
    }

    /// Splits into pieces of at most `target` encoded bytes; the first piece stays in `self`.
    pub(crate) fn split(&mut self, target: usize) -> Vec<Leaf> {
        let mut pieces = vec![Leaf::new()];
        for i in 0..self.ents.len() {
            let Some(cur) = pieces.last_mut() else { break };
            if !cur.ents.is_empty() && cur.size + self.ents[i].size() > target {
                pieces.push(Leaf::new());
            }
            if let Some(cur) = pieces.last_mut() {
                cur.push_from(self, i);
            }
        }
        let rest = pieces.split_off(1);
        if let Some(first) = pieces.pop() {
            *self = first;
        }
        rest
    }

    /// Appends every entry of `right` (whose keys all sort after ours).
    pub(crate) fn merge(&mut self, right: &Leaf) {
        for i in 0..right.ents.len() {
            self.push_from(right, i);
        }
    }

    /// Encodes into a zeroed page-sized buffer. Every `Large` value must have been moved to an
    /// overflow run first.
    pub(crate) fn encode(&self, buf: &mut [u8], id: PageId, txn: TxnId, page_size: usize) {
        // The node fits its page: splits keep every leaf within one page.
        assert!(
            self.size <= buf.len(),
            "leaf of {} bytes does not fit {}",
            self.size,
            buf.len()
        );
        let mut data = HEADER_BYTES + ELEMENT_BYTES * self.ents.len();
        for (i, e) in self.ents.iter().enumerate() {
            let slot = HEADER_BYTES + i * ELEMENT_BYTES;
            let key = slice(&self.buf, e.koff, e.klen);
            let (flags, vlen) = match e.val {
                Val::Inline { len, .. } => (0, len),
                Val::Overflow { .. } | Val::Large { .. } => {
                    (LEAF_FLAG_OVERFLOW, OVERFLOW_REF_BYTES as u32)
                }
            };
            page::put_u32(buf, slot, flags);
            page::put_u32(buf, slot + 4, data as u32);
            page::put_u32(buf, slot + 8, e.klen);
            page::put_u32(buf, slot + 12, vlen);
            buf[data..data + key.len()].copy_from_slice(key);
            data += key.len();
            match e.val {
                Val::Inline { off, len } => {
                    buf[data..data + len as usize].copy_from_slice(slice(&self.buf, off, len));
                }
                Val::Overflow { page: p, len } => {
                    page::put_u64(buf, data, p.0);
                    page::put_u32(buf, data + 8, len);
                }
                Val::Large { .. } => {
                    // Unreachable by construction (spill converts them); encode nothing usable
                    // would corrupt the tree, so refuse loudly.
                    panic!("leaf encoded with a pending large value");
                }
            }
            data += vlen as usize;
        }
        debug_assert_eq!(data, self.size);
        page::seal(
            buf,
            PageKind::Leaf,
            id,
            txn,
            self.ents.len() as u32,
            data,
            page_size,
        );
    }
}

impl Branch {
    /// A new root above `children` separated by `keys`.
    pub(crate) fn new_root(first: Child, rest: Vec<(Vec<u8>, Child)>) -> Self {
        let mut b = Branch {
            buf: Vec::new(),
            keys: Vec::new(),
            children: vec![first],
            size: HEADER_BYTES + ELEMENT_BYTES,
        };
        b.insert_after(0, rest);
        b
    }

    pub(crate) fn decode(els: &Elements<'_>, used: &[u8]) -> Option<Branch> {
        let mut b = Branch {
            buf: used.to_vec(),
            keys: Vec::with_capacity(els.len().saturating_sub(1)),
            children: Vec::with_capacity(els.len()),
            size: HEADER_BYTES,
        };
        for i in 0..els.len() {
            let child = els.branch_child(i)?;
            b.children.push(Child::Page(child));
            b.size += ELEMENT_BYTES;
            if i > 0 {
                let key = els.branch_key(i)?;
                b.keys.push((
                    (key.as_ptr() as usize - used.as_ptr() as usize) as u32,
                    key.len() as u32,
                ));
                b.size += key.len();
            }
        }
        Some(b)
    }

    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Separator `i` (between child `i` and child `i + 1`).
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let (off, len) = self.keys[i];
        slice(&self.buf, off, len)
    }

    /// The child whose range holds `key`.
    pub(crate) fn child_index(&self, key: &[u8]) -> usize {
        self.keys
            .partition_point(|&(off, len)| slice(&self.buf, off, len) <= key)
    }

    /// Inserts `(separator, child)` pairs right after child `pos`.
    pub(crate) fn insert_after(&mut self, pos: usize, items: Vec<(Vec<u8>, Child)>) {
        for (n, (key, child)) in items.into_iter().enumerate() {
            let kr = push_bytes(&mut self.buf, &key);
            self.keys.insert(pos + n, kr);
            self.children.insert(pos + 1 + n, child);
            self.size += ELEMENT_BYTES + key.len();
        }
    }

    /// Removes child `pos` and the separator that bounded it.
    pub(crate) fn remove_child(&mut self, pos: usize) -> Child {
        let child = self.children.remove(pos);
        self.size -= ELEMENT_BYTES;
        if !self.keys.is_empty() {
            let k = self.keys.remove(pos.saturating_sub(1));
            self.size -= k.1 as usize;
        }
        child
    }

    fn push_child(&mut self, sep: Option<&[u8]>, child: Child) {
        if let Some(sep) = sep {
            let kr = push_bytes(&mut self.buf, sep);
            self.keys.push(kr);
            self.size += sep.len();
        }
        self.children.push(child);
        self.size += ELEMENT_BYTES;
    }

    /// Splits into pieces of at most `target` bytes; returns the later pieces with the
    /// separator that goes up to the parent for each.
    pub(crate) fn split(&mut self, target: usize) -> Vec<(Vec<u8>, Branch)> {
        let mut first = Branch {
            size: HEADER_BYTES,
            ..Branch::default()
        };
        let mut rest: Vec<(Vec<u8>, Branch)> = Vec::new();
        for i in 0..self.children.len() {
            let sep = if i == 0 {
                None
            } else {
                Some(self.key(i - 1).to_vec())
            };
            let add = ELEMENT_BYTES + sep.as_ref().map_or(0, |s| s.len());
            let cur = rest.last_mut().map_or(&mut first, |(_, b)| b);
            if !cur.children.is_empty() && cur.size + add > target {
                let mut b = Branch {
                    size: HEADER_BYTES,
                    ..Branch::default()
                };
                b.push_child(None, self.children[i]);
                rest.push((sep.unwrap_or_default(), b));
            } else {
                cur.push_child(sep.as_deref(), self.children[i]);
            }
        }
        *self = first;
        rest
    }

    /// Appends `right`'s children; `sep` is the parent's separator between the two.
    pub(crate) fn merge(&mut self, sep: &[u8], right: &Branch) {
        for i in 0..right.children.len() {
            let s = if i == 0 {
                Some(sep)
            } else {
                Some(right.key(i - 1))
            };
            self.push_child(s, right.children[i]);
        }
    }

    /// Encodes into a zeroed page-sized buffer. Every child must be a page by now.
    pub(crate) fn encode(&self, buf: &mut [u8], id: PageId, txn: TxnId, page_size: usize) {
        // The node fits its page: splits keep every branch within one page.
        assert!(
            self.size <= buf.len(),
            "branch of {} bytes does not fit {}",
            self.size,
            buf.len()
        );
        let mut data = HEADER_BYTES + ELEMENT_BYTES * self.children.len();
        for (i, c) in self.children.iter().enumerate() {
            let slot = HEADER_BYTES + i * ELEMENT_BYTES;
            let Child::Page(child) = *c else {
                panic!("branch encoded with an unspilled child");
            };
            let key: &[u8] = if i == 0 { &[] } else { self.key(i - 1) };
            page::put_u32(buf, slot, data as u32);
            page::put_u32(buf, slot + 4, key.len() as u32);
            page::put_u64(buf, slot + 8, child.0);
            buf[data..data + key.len()].copy_from_slice(key);
            data += key.len();
        }
        debug_assert_eq!(data, self.size);
        page::seal(
            buf,
            PageKind::Branch,
            id,
            txn,
            self.children.len() as u32,
            data,
            page_size,
        );
    }
}

impl Node {
    pub(crate) fn size(&self) -> usize {
        match self {
            Node::Leaf(l) => l.size(),
            Node::Branch(b) => b.size(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Node::Leaf(l) => l.len(),
            Node::Branch(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_split_pieces_fit_and_keep_order() {
        let mut l = Leaf::new();
        for i in 0..200u32 {
            l.put(format!("key{i:05}").as_bytes(), &[7u8; 50], false);
        }
        let total = l.size();
        let rest = l.split(2048);
        let mut all = vec![];
        for p in std::iter::once(&l).chain(rest.iter()) {
            assert!(p.size() <= 2048);
            for i in 0..p.len() {
                all.push(p.key(i).to_vec());
            }
        }
        assert_eq!(all.len(), 200);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let sum: usize = std::iter::once(&l)
            .chain(rest.iter())
            .map(|p| p.size() - HEADER_BYTES)
            .sum();
        assert_eq!(sum + HEADER_BYTES, total);
    }

    #[test]
    fn branch_split_and_merge_preserve_separators() {
        let mut b = Branch::new_root(Child::Page(PageId(2)), vec![]);
        let items: Vec<_> = (3..100u64)
            .map(|i| (format!("k{i:04}").into_bytes(), Child::Page(PageId(i))))
            .collect();
        b.insert_after(0, items);
        let rest = b.split(600);
        assert!(!rest.is_empty());
        let mut merged = Branch::new_root(b.children[0], vec![]);
        for i in 1..b.children.len() {
            merged.insert_after(i - 1, vec![(b.key(i - 1).to_vec(), b.children[i])]);
        }
        for (sep, piece) in &rest {
            merged.merge(sep, piece);
        }
        assert_eq!(merged.len(), 98);
        for i in 0..97 {
            assert_eq!(merged.key(i), format!("k{:04}", i + 3).as_bytes());
        }
    }
}
