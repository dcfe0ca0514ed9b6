//! Reading a tree: point lookups and cursors over clean pages and (in a write transaction)
//! dirty nodes, without decoding pages: elements are binary-searched in place.

use std::borrow::Cow;
use std::ops::Bound;

use crate::btree::PageId;
use crate::btree::node::{Child, Node, Val};
use crate::btree::page::{self, Elements, HEADER_BYTES, PageHeader, PageKind, StoredValue};
use crate::btree::verified::Verify;
use crate::error::{EngineError, Result};

/// A validated page run, truncated to its used bytes.
pub(crate) struct PageRef<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub hdr: PageHeader,
}

impl<'a> PageRef<'a> {
    pub(crate) fn elements(&self) -> Option<Elements<'_>> {
        Elements::new(&self.bytes, self.hdr.count)
    }

    /// `s` (a slice of `self.bytes`) with the page's lifetime: borrowed when the page is.
    fn lift(&self, s: &[u8]) -> Cow<'a, [u8]> {
        match &self.bytes {
            Cow::Borrowed(b) => {
                let b: &'a [u8] = b;
                let off = s.as_ptr() as usize - b.as_ptr() as usize;
                Cow::Borrowed(&b[off..off + s.len()])
            }
            Cow::Owned(_) => Cow::Owned(s.to_vec()),
        }
    }

    fn into_range(self, off: usize, len: usize) -> Cow<'a, [u8]> {
        match self.bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[off..off + len]),
            Cow::Owned(mut v) => {
                v.truncate(off + len);
                v.drain(..off);
                Cow::Owned(v)
            }
        }
    }
}

/// Where a tree's pages and dirty nodes come from.
pub(crate) trait Source {
    /// Loads and validates the run at `id`.
    fn load(&self, id: PageId) -> Result<PageRef<'_>>;
    /// A dirty node (write transactions only).
    fn node(&self, idx: usize) -> Option<&Node>;
    /// Builds a corruption error.
    fn corrupted(&self, page: PageId, reason: String) -> EngineError;
}

/// An overflow value's bytes.
pub(crate) fn overflow_value<'a>(
    src: &'a dyn Source,
    page: PageId,
    len: u32,
) -> Result<Cow<'a, [u8]>> {
    let run = src.load(page)?;
    if run.hdr.kind != PageKind::Overflow || run.bytes.len() != HEADER_BYTES + len as usize {
        return Err(src.corrupted(
            page,
            format!(
                "expected an overflow value of {len} bytes, found a {:?} run of {} bytes",
                run.hdr.kind,
                run.bytes.len()
            ),
        ));
    }
    Ok(run.into_range(HEADER_BYTES, len as usize))
}

enum Frame<'a> {
    Page {
        page: PageRef<'a>,
        idx: usize,
        len: usize,
        leaf: bool,
    },
    Node {
        node: &'a Node,
        idx: usize,
    },
}

impl Frame<'_> {
    fn len(&self) -> usize {
        match self {
            Frame::Page { len, .. } => *len,
            Frame::Node { node, .. } => node.len(),
        }
    }
    fn idx(&self) -> usize {
        match self {
            Frame::Page { idx, .. } | Frame::Node { idx, .. } => *idx,
        }
    }
    fn set_idx(&mut self, i: usize) {
        match self {
            Frame::Page { idx, .. } | Frame::Node { idx, .. } => *idx = i,
        }
    }
    fn is_leaf(&self) -> bool {
        match self {
            Frame::Page { leaf, .. } => *leaf,
            Frame::Node { node, .. } => matches!(node, Node::Leaf(_)),
        }
    }
}

fn bad(src: &dyn Source, id: Option<PageId>, what: &str) -> EngineError {
    src.corrupted(id.unwrap_or(PageId(0)), what.to_string())
}

/// A position in one tree. Moves with `seek`, `first`, `last`, `next`, `prev`.
pub struct Cursor<'a> {
    src: &'a dyn Source,
    root: Option<Child>,
    stack: Vec<Frame<'a>>,
}

/// A key and its value, borrowed from the file when the backend allows.
pub type Entry<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Depth bound: a tree deeper than this is corrupted (it would need more keys than exist).
pub(crate) const MAX_DEPTH: usize = 64;

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a dyn Source, root: Option<Child>) -> Self {
        Cursor {
            src,
            root,
            stack: Vec::new(),
        }
    }

    fn frame(&self, child: Child) -> Result<Frame<'a>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(bad(
                self.src,
                None,
                "tree deeper than the depth bound (a cycle?)",
            ));
        }
        match child {
            Child::Node(i) => {
                let node = self
                    .src
                    .node(i)
                    .ok_or_else(|| bad(self.src, None, "dangling dirty node"))?;
                Ok(Frame::Node { node, idx: 0 })
            }
            Child::Page(id) => {
                let page = self.src.load(id)?;
                let leaf = match page.hdr.kind {
                    PageKind::Leaf => true,
                    PageKind::Branch => false,
                    k => {
                        return Err(bad(
                            self.src,
                            Some(id),
                            &format!("a {k:?} page is linked into a tree"),
                        ));
                    }
                };
                let len = page
                    .elements()
                    .ok_or_else(|| bad(self.src, Some(id), "element array exceeds the page"))?
                    .len();
                if !leaf && len == 0 {
                    return Err(bad(self.src, Some(id), "branch page without children"));
                }
                Ok(Frame::Page {
                    page,
                    idx: 0,
                    len,
                    leaf,
                })
            }
        }
    }

    fn child_at(&self, f: &Frame<'a>, i: usize) -> Result<Child> {
        match f {
            Frame::Page { page, .. } => {
                let els = page
                    .elements()
                    .ok_or_else(|| bad(self.src, Some(page.hdr.id), "bad elements"))?;
                els.branch_child(i)
                    .map(Child::Page)
                    .ok_or_else(|| bad(self.src, Some(page.hdr.id), "bad branch element"))
            }
            Frame::Node {
                node: Node::Branch(b),
                ..
            } => Ok(b.children[i]),
            Frame::Node { .. } => Err(bad(self.src, None, "leaf used as a branch")),
        }
    }

    /// Index of the child of branch frame `f` whose range holds `key`.
    fn branch_pos(&self, f: &Frame<'a>, key: &[u8]) -> Result<usize> {
        match f {
            Frame::Page { page, .. } => page
                .elements()
                .and_then(|els| els.branch_search(key))
                .ok_or_else(|| bad(self.src, Some(page.hdr.id), "bad branch element")),
            Frame::Node {
                node: Node::Branch(b),
                ..
            } => Ok(b.child_index(key)),
            Frame::Node { .. } => Err(bad(self.src, None, "leaf used as a branch")),
        }
    }

    /// In leaf frame `f`: `Ok(i)` if key `i` equals `key`, else `Err(insertion point)`.
    fn leaf_search(&self, f: &Frame<'a>, key: &[u8]) -> Result<std::result::Result<usize, usize>> {
        match f {
            Frame::Page { page, .. } => page
                .elements()
                .and_then(|els| els.leaf_search(key))
                .ok_or_else(|| bad(self.src, Some(page.hdr.id), "bad leaf element")),
            Frame::Node {
                node: Node::Leaf(l),
                ..
            } => Ok(l.search(key)),
            Frame::Node { .. } => Err(bad(self.src, None, "branch used as a leaf")),
        }
    }

    fn entry(&self, f: &Frame<'a>) -> Result<Entry<'a>> {
        match f {
            Frame::Page { page, idx, .. } => {
                let id = page.hdr.id;
                let els = page
                    .elements()
                    .ok_or_else(|| bad(self.src, Some(id), "bad elements"))?;
                let key = els
                    .leaf_key(*idx)
                    .ok_or_else(|| bad(self.src, Some(id), "bad leaf key"))?;
                let val = els
                    .leaf_value(*idx)
                    .ok_or_else(|| bad(self.src, Some(id), "bad leaf value"))?;
                let key = page.lift(key);
                let val = match val {
                    StoredValue::Inline(v) => page.lift(v),
                    StoredValue::Overflow { page: p, len } => overflow_value(self.src, p, len)?,
                };
                Ok((key, val))
            }
            Frame::Node {
                node: Node::Leaf(l),
                idx,
            } => {
                let key = Cow::Borrowed(l.key(*idx));
                let val = match l.val(*idx) {
                    Val::Inline { off, len } | Val::Large { off, len } => {
                        Cow::Borrowed(l.val_bytes(off, len))
                    }
                    Val::Overflow { page: p, len } => overflow_value(self.src, p, len)?,
                };
                Ok((key, val))
            }
            Frame::Node { .. } => Err(bad(self.src, None, "branch used as a leaf")),
        }
    }

    /// Descends from `child` along the first (or last) edge to a leaf.
    fn descend(&mut self, mut child: Child, last: bool) -> Result<()> {
        loop {
            let mut f = self.frame(child)?;
            let n = f.len();
            if last && n > 0 {
                f.set_idx(n - 1);
            }
            if f.is_leaf() {
                self.stack.push(f);
                return Ok(());
            }
            child = self.child_at(&f, f.idx())?;
            self.stack.push(f);
        }
    }

    /// Positions on the first entry; `false` if the tree is empty.
    pub fn first(&mut self) -> Result<bool> {
        self.stack.clear();
        let Some(root) = self.root else {
            return Ok(false);
        };
        self.descend(root, false)?;
        self.settle_forward()
    }

    /// Positions on the last entry; `false` if the tree is empty.
    pub fn last(&mut self) -> Result<bool> {
        self.stack.clear();
        let Some(root) = self.root else {
            return Ok(false);
        };
        self.descend(root, true)?;
        self.settle_backward()
    }

    /// Positions on the first entry whose key is `>= key`; `false` if there is none.
    pub fn seek(&mut self, key: &[u8]) -> Result<bool> {
        self.stack.clear();
        let Some(mut child) = self.root else {
            return Ok(false);
        };
        loop {
            let mut f = self.frame(child)?;
            if f.is_leaf() {
                let i = match self.leaf_search(&f, key)? {
                    Ok(i) | Err(i) => i,
                };
                f.set_idx(i);
                self.stack.push(f);
                return self.settle_forward();
            }
            let pos = self.branch_pos(&f, key)?;
            f.set_idx(pos);
            child = self.child_at(&f, pos)?;
            self.stack.push(f);
        }
    }

    /// Positions on the last entry whose key is `<= key`; `false` if there is none.
    pub fn seek_back(&mut self, key: &[u8]) -> Result<bool> {
        if !self.seek(key)? {
            return self.last();
        }
        match self.current()? {
            Some((k, _)) if k.as_ref() > key => self.prev(),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// If the leaf position is past its end, moves to the next leaf's first entry.
    fn settle_forward(&mut self) -> Result<bool> {
        loop {
            let Some(top) = self.stack.last() else {
                return Ok(false);
            };
            if top.idx() < top.len() {
                return Ok(true);
            }
            // Climb to a branch with a next child, then take its first edge down.
            self.stack.pop();
            loop {
                let Some(f) = self.stack.last_mut() else {
                    return Ok(false);
                };
                if f.idx() + 1 < f.len() {
                    let i = f.idx() + 1;
                    f.set_idx(i);
                    break;
                }
                self.stack.pop();
            }
            let Some(f) = self.stack.last() else {
                return Ok(false);
            };
            let child = self.child_at(f, f.idx())?;
            self.descend(child, false)?;
        }
    }

    /// If the leaf is empty, moves to the previous leaf's last entry.
    fn settle_backward(&mut self) -> Result<bool> {
        loop {
            let Some(top) = self.stack.last() else {
                return Ok(false);
            };
            if top.len() > 0 && top.idx() < top.len() {
                return Ok(true);
            }
            if !self.step_back_leaf()? {
                return Ok(false);
            }
        }
    }

    /// Moves to the last entry of the previous leaf.
    fn step_back_leaf(&mut self) -> Result<bool> {
        self.stack.pop();
        loop {
            let Some(f) = self.stack.last_mut() else {
                return Ok(false);
            };
            if f.idx() > 0 {
                let i = f.idx() - 1;
                f.set_idx(i);
                break;
            }
            self.stack.pop();
        }
        let Some(f) = self.stack.last() else {
            return Ok(false);
        };
        let child = self.child_at(f, f.idx())?;
        self.descend(child, true)?;
        Ok(true)
    }

    /// Moves to the next entry; `false` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<bool> {
        let Some(top) = self.stack.last_mut() else {
            return Ok(false);
        };
        let i = top.idx() + 1;
        top.set_idx(i);
        self.settle_forward()
    }

    /// Moves to the previous entry; `false` at the start.
    pub fn prev(&mut self) -> Result<bool> {
        let Some(top) = self.stack.last_mut() else {
            return Ok(false);
        };
        if top.idx() > 0 {
            let i = top.idx() - 1;
            top.set_idx(i);
            return Ok(true);
        }
        if !self.step_back_leaf()? {
            return Ok(false);
        }
        self.settle_backward()
    }

    /// The entry under the cursor.
    pub fn current(&self) -> Result<Option<Entry<'a>>> {
        match self.stack.last() {
            Some(f) if f.idx() < f.len() => self.entry(f).map(Some),
            _ => Ok(None),
        }
    }
}

/// Point lookup: one descent, no allocation.
pub(crate) fn get<'a>(
    src: &'a dyn Source,
    root: Option<Child>,
    key: &[u8],
) -> Result<Option<Cow<'a, [u8]>>> {
    let Some(mut child) = root else {
        return Ok(None);
    };
    for _ in 0..MAX_DEPTH {
        match child {
            Child::Node(i) => match src.node(i) {
                Some(Node::Branch(b)) => child = b.children[b.child_index(key)],
                Some(Node::Leaf(l)) => {
                    let Ok(j) = l.search(key) else {
                        return Ok(None);
                    };
                    return Ok(Some(match l.val(j) {
                        Val::Inline { off, len } | Val::Large { off, len } => {
                            Cow::Borrowed(l.val_bytes(off, len))
                        }
                        Val::Overflow { page, len } => overflow_value(src, page, len)?,
                    }));
                }
                None => return Err(bad(src, None, "dangling dirty node")),
            },
            Child::Page(id) => {
                let page = src.load(id)?;
                let els = page
                    .elements()
                    .ok_or_else(|| bad(src, Some(id), "element array exceeds the page"))?;
                match page.hdr.kind {
                    PageKind::Branch => {
                        let next = els
                            .branch_search(key)
                            .and_then(|pos| els.branch_child(pos))
                            .ok_or_else(|| bad(src, Some(id), "bad branch element"))?;
                        child = Child::Page(next);
                    }
                    PageKind::Leaf => {
                        let found = els
                            .leaf_search(key)
                            .ok_or_else(|| bad(src, Some(id), "bad leaf key"))?;
                        let Ok(j) = found else { return Ok(None) };
                        return match els.leaf_value(j) {
                            Some(StoredValue::Inline(v)) => Ok(Some(page.lift(v))),
                            Some(StoredValue::Overflow { page: p, len }) => {
                                overflow_value(src, p, len).map(Some)
                            }
                            None => Err(bad(src, Some(id), "bad leaf value")),
                        };
                    }
                    k => {
                        return Err(bad(
                            src,
                            Some(id),
                            &format!("a {k:?} page is linked into a tree"),
                        ));
                    }
                }
            }
        }
    }
    Err(bad(
        src,
        None,
        "tree deeper than the depth bound (a cycle?)",
    ))
}

/// An iterator over the entries of a tree between two bounds, forward or in reverse.
pub struct Range<'a> {
    cursor: Cursor<'a>,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    reverse: bool,
    started: bool,
    done: bool,
}

impl<'a> Range<'a> {
    pub(crate) fn new(
        src: &'a dyn Source,
        root: Option<Child>,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        reverse: bool,
    ) -> Self {
        Range {
            cursor: Cursor::new(src, root),
            lo: lo.map(<[u8]>::to_vec),
            hi: hi.map(<[u8]>::to_vec),
            reverse,
            started: false,
            done: false,
        }
    }

    fn position(&mut self) -> Result<bool> {
        if !self.started {
            self.started = true;
            return if self.reverse {
                match &self.hi {
                    Bound::Unbounded => self.cursor.last(),
                    Bound::Included(k) | Bound::Excluded(k) => {
                        let k = k.clone();
                        self.cursor.seek_back(&k)
                    }
                }
            } else {
                match &self.lo {
                    Bound::Unbounded => self.cursor.first(),
                    Bound::Included(k) | Bound::Excluded(k) => {
                        let k = k.clone();
                        self.cursor.seek(&k)
                    }
                }
            };
        }
        if self.reverse {
            self.cursor.prev()
        } else {
            self.cursor.next()
        }
    }

    fn in_bounds(&self, key: &[u8]) -> (bool, bool) {
        let above_lo = match &self.lo {
            Bound::Unbounded => true,
            Bound::Included(l) => key >= l.as_slice(),
            Bound::Excluded(l) => key > l.as_slice(),
        };
        let below_hi = match &self.hi {
            Bound::Unbounded => true,
            Bound::Included(h) => key <= h.as_slice(),
            Bound::Excluded(h) => key < h.as_slice(),
        };
        (above_lo, below_hi)
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>> {
        loop {
            if !self.position()? {
                return Ok(None);
            }
            let Some((k, v)) = self.cursor.current()? else {
                return Ok(None);
            };
            let (above_lo, below_hi) = self.in_bounds(&k);
            match (self.reverse, above_lo, below_hi) {
                (_, true, true) => return Ok(Some((k, v))),
                // Forward: past the upper bound ends it; below the lower (an excluded start) skips.
                (false, _, false) => return Ok(None),
                (false, false, true) => continue,
                (true, false, _) => return Ok(None),
                (true, true, false) => continue,
            }
        }
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Loads and validates the run at `id` for a snapshot of `page_count` pages.
pub(crate) fn load_page<'a>(
    view: &'a dyn crate::btree::store::PageView,
    path: &std::path::Path,
    page_size: usize,
    page_count: u64,
    verify: Verify<'_>,
    id: PageId,
) -> Result<PageRef<'a>> {
    if id.0 < 2 || id.0 >= page_count {
        return Err(page::corrupted(
            path,
            id,
            format!("page id out of range [2, {page_count})"),
        ));
    }
    let first = view.read(id.0 * page_size as u64, page_size)?;
    let hdr =
        page::parse_header(&first, id, page_size).map_err(|r| page::corrupted(path, id, r))?;
    let pages = u64::from(hdr.overflow) + 1;
    if id.0 + pages > page_count {
        return Err(page::corrupted(
            path,
            id,
            format!("run of {pages} pages extends past page {page_count}"),
        ));
    }
    let bytes = if pages == 1 {
        first
    } else {
        drop(first);
        view.read(id.0 * page_size as u64, pages as usize * page_size)?
    };
    let used = hdr.used as usize;
    let check = match verify {
        Verify::Always => true,
        Verify::Once(v) => !v.is_set(id),
        Verify::Never => false,
    };
    if check {
        let sum = page::run_checksum(&bytes, used);
        if sum != hdr.checksum {
            return Err(EngineError::ChecksumMismatch {
                file: path.to_path_buf(),
                page: id,
                expected: hdr.checksum,
                actual: sum,
            });
        }
        if let Verify::Once(v) = verify {
            v.set(id);
        }
    }
    let bytes = match bytes {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..used]),
        Cow::Owned(mut v) => {
            v.truncate(used);
            Cow::Owned(v)
        }
    };
    Ok(PageRef { bytes, hdr })
}
