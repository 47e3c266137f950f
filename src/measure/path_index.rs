//! A layer's per-path index: what the layer puts at each path, as a tree of
//! components ([`PathTree`]), so its memory is linear in the bytes of the
//! layer's distinct path components.
//!
//! Paths are resolved as containerd resolves them (`pkg/archive/tar.go`,
//! `applyNaive`): `filepath.Clean` of the member name, then `fs.RootPath`,
//! which keeps a `..` from climbing above the root. So `a/../b` is `b`,
//! `../../etc/x` is `etc/x`, and a name that resolves to the root itself is
//! ignored, as containerd ignores it.

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::layer::{EntryKind, FAST_SYMLINK_MAX, FS_BLOCK, FileSize, IndexEntry, LayerFigures};
use super::tree::{NodeId, PathTree, ROOT, Sizes, TooLarge};

const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";

// A node's byte in `kinds`: what the layer puts there (low bits), and flags.
const KIND_MASK: u8 = 0x0f;
const NONE: u8 = 0;
const FILE: u8 = 1;
const HARD_LINK: u8 = 2;
const DIR: u8 = 3;
const SYMLINK: u8 = 4;
const DEVICE: u8 = 5;
const FIFO: u8 = 6;
/// A hard link not resolved yet; `sizes` holds its target's id + 1 (0:
/// no such path in the layer when the link came).
const PENDING_LINK: u8 = 7;
/// `.wh.NAME` acts on this path.
const WHITEOUT: u8 = 0x10;
/// `.wh..wh..opq` acts on this directory.
const OPAQUE: u8 = 0x20;
/// Some deeper path of the layer goes through this one.
const HAS_CHILD: u8 = 0x40;

/// Why a member cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// containerd's `validateWhiteout` refuses a whiteout that names its
    /// own directory or one above it.
    #[error("invalid whiteout name {0} (containerd refuses it)")]
    InvalidWhiteout(String),
    #[error("{0}")]
    TooLarge(#[from] TooLarge),
}

/// What a layer puts at each path.
#[derive(Debug, Clone)]
pub struct LayerIndex {
    tree: PathTree,
    kinds: Vec<u8>,
    /// A file's size, or a symlink target's length.
    sizes: Sizes,
    /// A file's content hash (0: none: empty, sparse, or not scanned).
    hashes: Vec<u64>,
    /// Files with debug sections and the bytes those take, by node.
    debug: Vec<(NodeId, u64)>,
}

impl Default for LayerIndex {
    fn default() -> Self {
        LayerIndex {
            tree: PathTree::new(),
            kinds: vec![NONE],
            sizes: {
                let mut s = Sizes::default();
                s.push(0);
                s
            },
            hashes: vec![0],
            debug: Vec::new(),
        }
    }
}

impl PartialEq for LayerIndex {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
            && self.hashes == other.hashes
            && self.debug == other.debug
    }
}

/// A path's components as containerd resolves them: empty and `.` dropped,
/// `..` removing the previous one but never climbing above the root.
fn components(raw: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Names are kept as UTF-8 (invalid bytes replaced), as reports show them.
fn lossy(c: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match String::from_utf8_lossy(c) {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
    }
}

fn code_of(kind: &EntryKind) -> (u8, u64) {
    match *kind {
        EntryKind::File { size } => (FILE, size),
        EntryKind::HardLink => (HARD_LINK, 0),
        EntryKind::Dir => (DIR, 0),
        EntryKind::Symlink { target_len } => (SYMLINK, target_len as u64),
        EntryKind::Device => (DEVICE, 0),
        EntryKind::Fifo => (FIFO, 0),
        EntryKind::Whiteout => (WHITEOUT, 0),
        EntryKind::Opaque => (OPAQUE, 0),
    }
}

/// What a node holds, as the merged view reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeView {
    /// The entry's kind, if the layer has an entry of its own at this path.
    pub kind: Option<EntryKind>,
    pub whiteout: bool,
    pub opaque: bool,
}

impl LayerIndex {
    /// Builds an index from entries already keyed by the path they act on
    /// (whiteouts and opaque markers included), as [`Self::entries`] lists them.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a IndexEntry>) -> Self {
        let mut index = LayerIndex::default();
        for e in entries {
            let comps = components(e.path.as_bytes());
            let Ok(node) = index.insert(&comps) else {
                continue;
            };
            let (code, size) = code_of(&e.kind);
            index.set(node, code, size);
        }
        index.tree.freeze();
        index
    }

    /// Every entry, keyed by the path it acts on, in path order.
    pub fn entries(&self) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for id in 0..self.tree.len() as NodeId {
            let v = self.view(id);
            let path = self.tree.path(id);
            if v.whiteout {
                out.push(IndexEntry {
                    path: path.clone(),
                    kind: EntryKind::Whiteout,
                });
            }
            if v.opaque {
                out.push(IndexEntry {
                    path: path.clone(),
                    kind: EntryKind::Opaque,
                });
            }
            if let Some(kind) = v.kind {
                out.push(IndexEntry { path, kind });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.kinds
            .iter()
            .map(|&k| {
                usize::from(k & KIND_MASK != NONE)
                    + usize::from(k & WHITEOUT != 0)
                    + usize::from(k & OPAQUE != 0)
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn tree(&self) -> &PathTree {
        &self.tree
    }

    /// Whether some deeper path of the layer goes through this node.
    pub(crate) fn has_child(&self, id: NodeId) -> bool {
        self.kinds[id as usize] & HAS_CHILD != 0
    }

    pub(crate) fn view(&self, id: NodeId) -> NodeView {
        let k = self.kinds[id as usize];
        let size = self.sizes.get(id);
        let kind = match k & KIND_MASK {
            FILE => Some(EntryKind::File { size }),
            HARD_LINK => Some(EntryKind::HardLink),
            DIR => Some(EntryKind::Dir),
            SYMLINK => Some(EntryKind::Symlink {
                target_len: usize::try_from(size).unwrap_or(usize::MAX),
            }),
            DEVICE => Some(EntryKind::Device),
            FIFO => Some(EntryKind::Fifo),
            _ => None,
        };
        NodeView {
            kind,
            whiteout: k & WHITEOUT != 0,
            opaque: k & OPAQUE != 0,
        }
    }

    /// The `n` largest regular files.
    pub fn largest_files(&self, n: usize) -> Vec<FileSize> {
        let files = (0..self.kinds.len())
            .filter(|&i| self.kinds[i] & KIND_MASK == FILE)
            .map(|i| (i as NodeId, self.sizes.get(i as NodeId)));
        top_n(files, n, |&id| self.tree.path(id))
    }

    /// The node at `comps`, created with its ancestors if missing.
    fn insert(&mut self, comps: &[&[u8]]) -> Result<NodeId, TooLarge> {
        let mut node = ROOT;
        for c in comps {
            let parent = node;
            let (id, created) = self.tree.find_or_insert(parent, &lossy(c))?;
            if created {
                self.kinds.push(NONE);
                self.sizes.push(0);
                self.hashes.push(0);
                self.kinds[parent as usize] |= HAS_CHILD;
            }
            node = id;
        }
        Ok(node)
    }

    fn find(&self, comps: &[&[u8]]) -> Option<NodeId> {
        comps
            .iter()
            .try_fold(ROOT, |node, c| self.tree.find(node, &lossy(c)))
    }

    /// Puts `code` (a kind, or the whiteout/opaque flag) at `node`. A later
    /// entry for a path replaces an earlier one, as unpacking would; the
    /// flags are kept apart, since a marker acts on the lower layers only.
    fn set(&mut self, node: NodeId, code: u8, size: u64) {
        let k = &mut self.kinds[node as usize];
        if code & (WHITEOUT | OPAQUE) != 0 {
            *k |= code;
        } else {
            *k = (*k & !KIND_MASK) | code;
            self.sizes.set(node, size);
            // A later entry for the path replaces the earlier one's content.
            self.hashes[node as usize] = 0;
        }
    }

    /// The content hash of the file at `id` (0: none known).
    pub fn content_hash(&self, id: NodeId) -> u64 {
        match self.kinds.get(id as usize) {
            Some(&k) if k & KIND_MASK == FILE => self.hashes[id as usize],
            _ => 0,
        }
    }

    /// Every file with debug sections, by path, and the bytes those take.
    pub fn debug_sections(&self) -> Vec<(String, u64)> {
        self.debug
            .iter()
            .map(|&(id, bytes)| (self.tree.path(id), bytes))
            .collect()
    }

    /// Bytes of debug sections in the file at `id`.
    pub fn debug_bytes(&self, id: NodeId) -> u64 {
        self.debug
            .binary_search_by_key(&id, |&(n, _)| n)
            .map_or(0, |i| self.debug[i].1)
    }
}

/// Builds a layer's index member by member.
#[derive(Default)]
pub struct IndexBuilder {
    index: LayerIndex,
    /// Debug-section bytes by node; a later entry for a path drops its
    /// predecessor's.
    debug: std::collections::HashMap<NodeId, u64>,
}

impl IndexBuilder {
    /// Adds the member named `raw` (as in the tar). Whiteout and opaque
    /// markers are stored under the path they act on.
    pub fn add(&mut self, raw: &[u8], kind: EntryKind) -> Result<(), IndexError> {
        self.put(raw, code_of(&kind)).map(drop)
    }

    /// Adds a regular file with what its content showed.
    pub fn add_file(
        &mut self,
        raw: &[u8],
        size: u64,
        facts: super::content::ContentFacts,
    ) -> Result<(), IndexError> {
        let Some(node) = self.put(raw, (FILE, size))? else {
            return Ok(());
        };
        // A marker name (`.wh.x`) is not a file, whatever its type flag.
        if self.index.kinds[node as usize] & KIND_MASK == FILE {
            self.index.hashes[node as usize] = facts.hash;
            if facts.debug_bytes > 0 {
                self.debug.insert(node, facts.debug_bytes);
            }
        }
        Ok(())
    }

    /// Adds a hard link `raw` → `target`. Only a link to a file of this
    /// layer shares its inode; which it is is known once the layer ends,
    /// since the target may be replaced later in the stream.
    pub fn add_hard_link(&mut self, raw: &[u8], target: &[u8]) -> Result<(), IndexError> {
        let target_id = self
            .index
            .find(&components(target))
            .map_or(0, |id| u64::from(id) + 1);
        self.put(raw, (PENDING_LINK, target_id)).map(drop)
    }

    /// The node the member lands on, `None` when it is ignored.
    fn put(&mut self, raw: &[u8], code: (u8, u64)) -> Result<Option<NodeId>, IndexError> {
        let mut comps = components(raw);
        let Some(&last) = comps.last() else {
            // Resolves to the root: containerd ignores it.
            return Ok(None);
        };
        let code = if last == OPAQUE_MARKER {
            comps.pop();
            (OPAQUE, 0)
        } else if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX) {
            if matches!(hidden, b"" | b"." | b"..") {
                return Err(IndexError::InvalidWhiteout(crate::tarstream::printable(
                    last,
                )));
            }
            comps.pop();
            comps.push(hidden);
            (WHITEOUT, 0)
        } else {
            code
        };
        let node = self.index.insert(&comps)?;
        self.index.set(node, code.0, code.1);
        if code.0 & (WHITEOUT | OPAQUE) == 0 {
            self.debug.remove(&node);
        }
        Ok(Some(node))
    }

    /// Paths indexed so far, the root and implied directories included.
    pub fn paths(&self) -> usize {
        self.index.tree.len()
    }

    /// The layer's figures and its index.
    pub fn finish(mut self) -> (LayerFigures, LayerIndex) {
        let index = &mut self.index;
        for i in 0..index.kinds.len() {
            if index.kinds[i] & KIND_MASK != PENDING_LINK {
                continue;
            }
            let target = index.sizes.get(i as NodeId);
            // link(2) shares the inode of any non-directory: a file, and a
            // symlink, device or fifo too (`cp -al` of a bin directory
            // links its symlinks), which then are no new inode either.
            let shares_an_inode = target > 0
                && matches!(
                    index.kinds[(target - 1) as usize] & KIND_MASK,
                    FILE | SYMLINK | DEVICE | FIFO | HARD_LINK
                );
            // A link to a file outside this layer cannot share an inode with
            // it once unpacked: it becomes a file of its own, sized 0 here
            // since the tar carries no content for it.
            let (code, size) = if shares_an_inode {
                (HARD_LINK, 0)
            } else {
                (FILE, 0)
            };
            index.set(i as NodeId, code, size);
        }
        index.tree.freeze();
        index.kinds.shrink_to_fit();
        index.sizes.shrink_to_fit();
        let mut debug: Vec<(NodeId, u64)> = self
            .debug
            .drain()
            .filter(|&(n, _)| index.kinds[n as usize] & KIND_MASK == FILE)
            .collect();
        debug.sort_unstable();
        index.debug = debug;
        let figures = figures(index);
        (figures, self.index)
    }
}

/// A layer's figures from its index.
fn figures(index: &LayerIndex) -> LayerFigures {
    let dirents = dirent_bytes(index);
    let mut f = LayerFigures::default();
    let mut dirs: u64 = 0;
    let mut dir_bytes: u64 = 0;
    for (i, &k) in index.kinds.iter().enumerate() {
        let size = index.sizes.get(i as NodeId);
        let mut is_dir = i == ROOT as usize;
        match k & KIND_MASK {
            FILE => {
                f.files += 1;
                f.content_bytes = f.content_bytes.saturating_add(size);
                f.disk_bytes = f
                    .disk_bytes
                    .saturating_add(size.div_ceil(FS_BLOCK).saturating_mul(FS_BLOCK));
                f.inodes += 1;
            }
            DIR => is_dir = true,
            SYMLINK => {
                f.inodes += 1;
                if size >= FAST_SYMLINK_MAX as u64 {
                    f.disk_bytes = f.disk_bytes.saturating_add(FS_BLOCK);
                }
            }
            DEVICE | FIFO => f.inodes += 1,
            _ => {}
        }
        if k & WHITEOUT != 0 {
            f.whiteouts += 1;
            f.inodes += 1;
        }
        if k & OPAQUE != 0 {
            f.opaque_dirs += 1;
            is_dir = true;
        }
        // Every ancestor of a path is a directory once unpacked, listed in
        // the tar or not.
        if k & HAS_CHILD != 0 {
            is_dir = true;
        }
        if is_dir {
            dirs += 1;
            dir_bytes = dir_bytes.saturating_add(dir_blocks(dirents[i]) * FS_BLOCK);
        }
    }
    f.inodes += dirs;
    f.disk_bytes = f.disk_bytes.saturating_add(dir_bytes);
    f
}

/// Per node, the bytes its children's entries take in it as an ext4
/// directory: each entry is 8 bytes and its name, rounded up to 4.
fn dirent_bytes(index: &LayerIndex) -> Vec<u64> {
    let mut bytes = vec![0u64; index.kinds.len()];
    for (i, &k) in index.kinds.iter().enumerate().skip(1) {
        // A node that is only a hard link still pending or nothing at all
        // is no entry; whiteouts are (a 0/0 device of the same name).
        let on_disk = k & KIND_MASK != NONE || k & (WHITEOUT | HAS_CHILD | OPAQUE) != 0;
        if on_disk && i != ROOT as usize {
            let name = index.tree.name(i as NodeId).len() as u64;
            let parent = index.tree.parent(i as NodeId) as usize;
            bytes[parent] += (8 + name).next_multiple_of(4);
        }
    }
    bytes
}

/// The blocks an ext4 directory takes for `entries` bytes of entries
/// (beside `.` and `..`, 24 bytes): one while they fit, else an htree
/// whose root block indexes leaves filled to about 80 % (measured: every
/// directory of a Debian root filesystem over one block matches).
fn dir_blocks(entries: u64) -> u64 {
    let e = 24 + entries;
    if e <= FS_BLOCK {
        1
    } else {
        1 + e.div_ceil(3300)
    }
}

/// Keeps the `n` largest of `(key, size)` pairs, largest first, ties by
/// path; a key's path is built only when it may enter the list.
pub fn top_n<K>(
    items: impl Iterator<Item = (K, u64)>,
    n: usize,
    path: impl Fn(&K) -> String,
) -> Vec<FileSize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    if n == 0 {
        return Vec::new();
    }
    // A min-heap of the best n so far: memory stays O(n) for any layer.
    let mut heap: BinaryHeap<Reverse<(u64, Reverse<String>)>> = BinaryHeap::with_capacity(n + 1);
    for (key, size) in items {
        if heap.len() == n && heap.peek().is_some_and(|Reverse((min, _))| size < *min) {
            continue;
        }
        heap.push(Reverse((size, Reverse(path(&key)))));
        if heap.len() > n {
            heap.pop();
        }
    }
    let mut out: Vec<FileSize> = heap
        .into_iter()
        .map(|Reverse((size, Reverse(path)))| FileSize { path, size })
        .collect();
    out.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    out
}

/// Stored as the tree's names in one string and one `[parent, name length,
/// kind, size, content hash]` array per node: a fraction of the size of a
/// path per entry; then the `[node, bytes]` of files with debug sections.
impl Serialize for LayerIndex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Nodes<'a>(&'a LayerIndex);
        impl Serialize for Nodes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let i = self.0;
                s.collect_seq(i.tree.parts().enumerate().map(|(n, (parent, len))| {
                    let id = n + 1;
                    (
                        parent,
                        len,
                        i.kinds[id],
                        i.sizes.get(id as NodeId),
                        i.hashes[id],
                    )
                }))
            }
        }
        let names = std::str::from_utf8(self.tree.names()).map_err(S::Error::custom)?;
        let mut st = s.serialize_struct("LayerIndex", 4)?;
        st.serialize_field("root", &self.kinds[0])?;
        st.serialize_field("names", names)?;
        st.serialize_field("nodes", &Nodes(self))?;
        st.serialize_field("debug", &self.debug)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for LayerIndex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            root: u8,
            names: String,
            nodes: Vec<(NodeId, u32, u8, u64, u64)>,
            debug: Vec<(NodeId, u64)>,
        }
        let s = Stored::deserialize(d)?;
        let parts: Vec<(NodeId, u32)> = s.nodes.iter().map(|n| (n.0, n.1)).collect();
        let nodes = s.nodes.len() + 1;
        let ordered = s.debug.windows(2).all(|w| w[0].0 < w[1].0);
        if !ordered || s.debug.iter().any(|&(n, _)| n as usize >= nodes) {
            return Err(D::Error::custom("inconsistent debug-section list"));
        }
        let tree = PathTree::from_parts(s.names.into_bytes(), &parts)
            .ok_or_else(|| D::Error::custom("inconsistent path tree"))?;
        let mut kinds = vec![s.root];
        let mut sizes = Sizes::default();
        sizes.push(0);
        let mut hashes = vec![0];
        for &(_, _, k, size, hash) in &s.nodes {
            kinds.push(k);
            sizes.push(size);
            hashes.push(hash);
        }
        if kinds.iter().any(|&k| k & KIND_MASK > FIFO) {
            return Err(D::Error::custom("unknown entry kind"));
        }
        Ok(LayerIndex {
            tree,
            kinds,
            sizes,
            hashes,
            debug: s.debug,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_is_resolved_under_the_root() {
        assert_eq!(components(b"a/../b"), vec![&b"b"[..]]);
        assert_eq!(components(b"../../etc/x"), vec![&b"etc"[..], b"x"]);
        assert_eq!(components(b"./a/./b/"), vec![&b"a"[..], b"b"]);
        assert!(components(b"a/..").is_empty());
    }

    #[test]
    fn round_trips_through_serde() {
        let mut b = IndexBuilder::default();
        b.add(b"usr/bin/sh", EntryKind::File { size: 5 }).unwrap();
        b.add(b"usr/.wh.lib", EntryKind::File { size: 0 }).unwrap();
        b.add(b"etc/.wh..wh..opq", EntryKind::File { size: 0 })
            .unwrap();
        b.add(b"etc/", EntryKind::Dir).unwrap();
        b.add_hard_link(b"usr/bin/bash", b"usr/bin/sh").unwrap();
        let (f, index) = b.finish();
        assert_eq!(
            (f.files, f.content_bytes, f.whiteouts, f.opaque_dirs),
            (1, 5, 1, 1)
        );
        let json = serde_json::to_string(&index).unwrap();
        let back: LayerIndex = serde_json::from_str(&json).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.entries().len(), 5);
        assert!(
            serde_json::from_str::<LayerIndex>(
                r#"{"root":0,"names":"ab","nodes":[[1,1,1,0,0],[0,1,1,0,0]],"debug":[]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn a_hard_link_to_a_symlink_is_no_new_inode() {
        let mut b = IndexBuilder::default();
        b.add(b"bin/sh", EntryKind::Symlink { target_len: 4 })
            .unwrap();
        b.add(b"bin/x", EntryKind::File { size: 10 }).unwrap();
        b.add_hard_link(b"copy/sh", b"bin/sh").unwrap();
        b.add_hard_link(b"copy/x", b"bin/x").unwrap();
        b.add_hard_link(b"copy/gone", b"elsewhere/y").unwrap();
        let (f, _) = b.finish();
        // root, bin/, copy/, bin/sh, bin/x, and copy/gone: a file of its own.
        assert_eq!(f.inodes, 6);
        assert_eq!(f.files, 2);
    }

    #[test]
    fn whiteouts_of_their_own_directory_are_refused() {
        let mut b = IndexBuilder::default();
        for name in [&b"d/.wh."[..], b"d/.wh..", b"d/.wh..."] {
            assert!(matches!(
                b.add(name, EntryKind::File { size: 0 }),
                Err(IndexError::InvalidWhiteout(_))
            ));
        }
    }
}
