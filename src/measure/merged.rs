//! The merged-filesystem view: what a container sees once the layers are
//! stacked the way overlayfs stacks them.
//!
//! Layers are applied bottom-up. A whiteout deletes a path and everything
//! below it; an opaque marker hides the lower layers' content of a directory;
//! a non-directory replacing a directory hides its subtree; a file replacing a
//! file shadows it. Every byte of a lower-layer file that ends up hidden this
//! way is counted once in `wasted_bytes`: it is still pulled and unpacked on
//! every node, but no container can ever read it.

use serde::{Deserialize, Serialize};

use super::hidden::{HiddenFile, Origin, Origins};
use super::layer::{EntryKind, FileSize};
use super::path_index::{LayerIndex, top_n};
use super::tree::{NodeId, PathTree, ROOT, Sizes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// Not in the merged filesystem (never added, or deleted since).
    Absent,
    File(u64),
    HardLink,
    Dir,
    Other,
}

impl Node {
    fn file_bytes(self) -> u64 {
        match self {
            Node::File(s) => s,
            _ => 0,
        }
    }

    fn code(self) -> u8 {
        match self {
            Node::Absent => 0,
            Node::File(_) => 1,
            Node::HardLink => 2,
            Node::Dir => 3,
            Node::Other => 4,
        }
    }
}

/// Figures of the final merged filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalFigures {
    pub content_bytes: u64,
    pub inodes: u64,
    pub files: u64,
}

/// Every path any layer named, as a tree of components; a path's node
/// stays (as [`Node::Absent`]) when it is deleted. A present node's
/// ancestors are all present directories, so a deletion need not descend
/// below an absent node.
#[derive(Debug)]
pub struct MergedFs {
    tree: PathTree,
    /// Each node's [`Node`] without its size ([`Node::code`]).
    kinds: Vec<u8>,
    /// A file node's size.
    sizes: Sizes,
    /// Children of a node as a linked list (0: none; the root is nobody's
    /// child), to walk a subtree when it is deleted.
    first_child: Vec<NodeId>,
    next_sibling: Vec<NodeId>,
    wasted_bytes: u64,
    /// The position of the layer that last put each node, so growth can be
    /// traced to the build step that made it (`u16::MAX` past 65 534
    /// layers; OCI runtimes stop far earlier).
    writers: Vec<u16>,
    /// The position of the layer [`Self::apply`] stacks next.
    layer: u16,
    dive: DiveTally,
    origins: Origins,
}

/// What dive's efficiency score adds up, per path, over the layers
/// (`dive/filetree/efficiency.go` in wagoodman/dive): every path a layer
/// lists as a leaf is a visit with a size, and a path visited more than
/// once is inefficient. Only paths visited twice need their own sums; the
/// rest need their first size, kept in four bytes a node.
#[derive(Debug, Default)]
struct DiveTally {
    /// Whether a node was visited (one bit a node).
    seen: Vec<u64>,
    /// A node's first visit's size.
    first: Sizes,
    /// Sizes of every visit.
    total: u64,
    /// For paths visited twice or more: (sum of sizes, smallest size).
    repeated: std::collections::HashMap<NodeId, (u64, u64)>,
}

/// dive's figures of an image: its efficiency score and wasted bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DiveFigures {
    /// Σ smallest size per path / Σ sizes of every visit; 1 when nothing
    /// was visited.
    pub efficiency: f64,
    /// Σ sizes of every visit of the paths visited more than once (the
    /// copy that survives included, as dive counts it).
    pub wasted_bytes: u64,
}

impl Default for MergedFs {
    fn default() -> Self {
        Self::new()
    }
}

impl MergedFs {
    pub fn new() -> Self {
        MergedFs {
            tree: PathTree::new(),
            kinds: vec![Node::Dir.code()],
            sizes: {
                let mut s = Sizes::default();
                s.push(0);
                s
            },
            first_child: vec![0],
            next_sibling: vec![0],
            wasted_bytes: 0,
            writers: vec![0],
            layer: 0,
            dive: DiveTally {
                first: {
                    let mut s = Sizes::default();
                    s.push(0);
                    s
                },
                ..Default::default()
            },
            origins: Origins::default(),
        }
    }

    /// Stacks one layer's index (as produced by the analyzer) on top.
    pub fn apply(&mut self, index: &LayerIndex) {
        let Some(ids) = self.map_layer(index) else {
            // Past 4 GiB of distinct components the analyzer has already
            // refused the layer; nothing to stack.
            self.skip_layer();
            return;
        };
        self.tally_dive(index, &ids);
        // Deletions act on the lower layers only, so they go first: an entry
        // of this same layer under an opaque directory must survive.
        for (i, &id) in ids.iter().enumerate() {
            let v = index.view(i as NodeId);
            if v.opaque {
                self.remove_below(id);
            }
            if v.whiteout {
                self.remove_below(id);
                if id != ROOT {
                    self.remove(id);
                }
            }
        }
        for (i, &id) in ids.iter().enumerate().skip(1) {
            let v = index.view(i as NodeId);
            // The opaque marker also means the directory exists in this layer.
            if v.opaque {
                self.ensure_parents(id);
                self.put(id, Node::Dir);
            }
            let node = match v.kind {
                Some(EntryKind::File { size }) => Node::File(size),
                Some(EntryKind::HardLink) => Node::HardLink,
                Some(EntryKind::Dir) => Node::Dir,
                Some(EntryKind::Symlink { .. } | EntryKind::Device | EntryKind::Fifo) => {
                    Node::Other
                }
                Some(EntryKind::Whiteout | EntryKind::Opaque) | None => continue,
            };
            self.ensure_parents(id);
            self.put(id, node);
        }
        self.origins.layer_applied(index, &ids);
        self.skip_layer();
    }

    /// Counts a layer that was not stacked (not measured), so the next
    /// one's position stays its position in the image.
    pub fn skip_layer(&mut self) {
        self.layer = self.layer.saturating_add(1);
    }

    /// This view's node for each of the layer's nodes, created (absent)
    /// where missing. The layer's parents come before their children.
    fn map_layer(&mut self, index: &LayerIndex) -> Option<Vec<NodeId>> {
        let layer = index.tree();
        // Sized for the worst case, where every node is new: growing by
        // doubling would leave the smaller copies behind in the heap.
        let n = layer.len();
        self.tree.reserve(n, layer.names().len());
        self.kinds.reserve(n);
        self.sizes.reserve(n);
        self.first_child.reserve(n);
        self.next_sibling.reserve(n);
        self.writers.reserve(n);
        self.dive.first.reserve(n);
        let mut ids: Vec<NodeId> = Vec::with_capacity(n);
        ids.push(ROOT);
        for i in 1..layer.len() as NodeId {
            let parent = ids[layer.parent(i) as usize];
            let (id, created) = self.tree.find_or_insert(parent, layer.name(i)).ok()?;
            if created {
                self.kinds.push(Node::Absent.code());
                self.sizes.push(0);
                self.writers.push(0);
                self.dive.first.push(0);
                self.next_sibling.push(self.first_child[parent as usize]);
                self.first_child.push(0);
                self.first_child[parent as usize] = id;
            }
            ids.push(id);
        }
        Some(ids)
    }

    /// dive's visits of one layer, before its deletions act (dive sizes a
    /// whiteout by what the layers below hold at its path): every leaf the
    /// layer lists, at its size (a file's; 0 for anything else), and every
    /// whiteout, at the content of the directory it deletes (0 when it
    /// deletes anything but a directory, as dive counts it). A whiteout of
    /// a path the layers below lack is not a visit (dive fails the layer's
    /// walk there).
    fn tally_dive(&mut self, index: &LayerIndex, ids: &[NodeId]) {
        for (i, &id) in ids.iter().enumerate().skip(1) {
            let v = index.view(i as NodeId);
            if v.whiteout {
                match self.get(id) {
                    Node::Absent => {}
                    Node::Dir => {
                        let size = self.subtree_content(id);
                        self.dive.visit(id, size);
                    }
                    _ => self.dive.visit(id, 0),
                }
            }
            if !index.has_child(i as NodeId) && (v.kind.is_some() || v.opaque) {
                let size = match v.kind {
                    Some(EntryKind::File { size }) => size,
                    _ => 0,
                };
                self.dive.visit(id, size);
            }
        }
    }

    /// Bytes of the files present below `dir`.
    fn subtree_content(&self, dir: NodeId) -> u64 {
        let mut sum: u64 = 0;
        let mut stack = vec![dir];
        while let Some(n) = stack.pop() {
            let mut c = self.first_child[n as usize];
            while c != 0 {
                match self.get(c) {
                    Node::Absent => {}
                    Node::File(s) => sum = sum.saturating_add(s),
                    _ => stack.push(c),
                }
                c = self.next_sibling[c as usize];
            }
        }
        sum
    }

    pub(crate) fn get(&self, id: NodeId) -> Node {
        match self.kinds[id as usize] {
            1 => Node::File(self.sizes.get(id)),
            2 => Node::HardLink,
            3 => Node::Dir,
            4 => Node::Other,
            _ => Node::Absent,
        }
    }

    /// Sets a node, returning what was there.
    fn replace(&mut self, id: NodeId, node: Node) -> Node {
        let old = self.get(id);
        if let Node::File(bytes) = old {
            self.origins
                .file_hidden(id, bytes, u32::from(self.writers[id as usize]));
        }
        self.kinds[id as usize] = node.code();
        if node != Node::Absent {
            self.writers[id as usize] = self.layer;
        }
        if let Node::File(size) = node {
            self.sizes.set(id, size);
        }
        old
    }

    fn put(&mut self, id: NodeId, node: Node) {
        match self.get(id) {
            Node::Dir if node == Node::Dir => return,
            Node::Absent => {}
            old => {
                self.wasted_bytes = self.wasted_bytes.saturating_add(old.file_bytes());
                if old == Node::Dir {
                    self.remove_below(id);
                }
            }
        }
        self.replace(id, node);
    }

    /// Parents of a path are directories; one that was a file below is
    /// shadowed by the directory.
    fn ensure_parents(&mut self, id: NodeId) {
        let mut missing = Vec::new();
        let mut p = self.tree.parent(id);
        while p != ROOT && self.get(p) != Node::Dir {
            missing.push(p);
            p = self.tree.parent(p);
        }
        for &p in missing.iter().rev() {
            self.put(p, Node::Dir);
        }
    }

    /// Removes a node and everything below it.
    fn remove(&mut self, id: NodeId) {
        self.remove_below(id);
        let old = self.replace(id, Node::Absent);
        self.wasted_bytes = self.wasted_bytes.saturating_add(old.file_bytes());
    }

    /// Removes everything strictly below `dir`.
    fn remove_below(&mut self, dir: NodeId) {
        let mut stack = vec![dir];
        while let Some(n) = stack.pop() {
            let mut c = self.first_child[n as usize];
            while c != 0 {
                let old = self.replace(c, Node::Absent);
                if old != Node::Absent {
                    self.wasted_bytes = self.wasted_bytes.saturating_add(old.file_bytes());
                    stack.push(c);
                }
                c = self.next_sibling[c as usize];
            }
        }
    }

    /// dive's efficiency score and wasted bytes over the layers stacked.
    pub fn dive(&self) -> DiveFigures {
        self.dive.figures()
    }

    /// Number of nodes, absent ones and the root included.
    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    pub(crate) fn tree(&self) -> &PathTree {
        &self.tree
    }

    /// The position of the layer that last put a node.
    pub(crate) fn writer(&self, id: NodeId) -> u16 {
        self.writers[id as usize]
    }

    /// The nodes directly below `id`, absent ones included.
    pub(crate) fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let mut c = self.first_child[id as usize];
        std::iter::from_fn(move || {
            (c != 0).then(|| {
                let this = c;
                c = self.next_sibling[c as usize];
                this
            })
        })
    }

    pub fn wasted_bytes(&self) -> u64 {
        self.wasted_bytes
    }

    pub fn figures(&self) -> FinalFigures {
        let mut f = FinalFigures {
            // The root directory.
            inodes: 1,
            ..Default::default()
        };
        for id in 1..self.kinds.len() as NodeId {
            match self.get(id) {
                Node::File(s) => {
                    f.content_bytes = f.content_bytes.saturating_add(s);
                    f.files += 1;
                    f.inodes += 1;
                }
                Node::HardLink | Node::Absent => {}
                Node::Dir | Node::Other => f.inodes += 1,
            }
        }
        f
    }

    pub fn largest_files(&self, n: usize) -> Vec<FileSize> {
        let files = (1..self.kinds.len() as NodeId).filter_map(|id| match self.get(id) {
            Node::File(s) => Some((id, s)),
            _ => None,
        });
        top_n(files, n, |&id| self.tree.path(id))
    }
}

impl DiveTally {
    fn visit(&mut self, id: NodeId, size: u64) {
        self.total = self.total.saturating_add(size);
        let (word, bit) = (id as usize / 64, id % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) == 0 {
            self.seen[word] |= 1 << bit;
            self.first.set(id, size);
            return;
        }
        let first = self.first.get(id);
        let (sum, min) = self.repeated.entry(id).or_insert((first, first));
        *sum = sum.saturating_add(size);
        *min = (*min).min(size);
    }

    fn figures(&self) -> DiveFigures {
        let mut wasted: u64 = 0;
        let mut excess: u64 = 0;
        for &(sum, min) in self.repeated.values() {
            wasted = wasted.saturating_add(sum);
            excess = excess.saturating_add(sum - min);
        }
        let efficiency = if self.total == 0 {
            1.0
        } else {
            (self.total - excess.min(self.total)) as f64 / self.total as f64
        };
        DiveFigures {
            efficiency,
            wasted_bytes: wasted,
        }
    }
}

/// Where files came from and what was hidden: read by the hints.
impl MergedFs {
    /// Names the layer (its index in the image) the next [`Self::apply`]
    /// stacks, for [`HiddenFile`] and [`Origin`].
    pub fn set_layer(&mut self, layer: u32) {
        self.origins.set_layer(layer);
    }

    /// Every lower layer's file a later layer deleted or overwrote.
    pub fn hidden_files(&self) -> &[HiddenFile] {
        self.origins.hidden()
    }

    /// Every regular file of the final filesystem: node, size, origin.
    pub fn final_files(&self) -> impl Iterator<Item = (NodeId, u64, Origin)> + '_ {
        (1..self.kinds.len() as NodeId).filter_map(|id| match self.get(id) {
            Node::File(s) => Some((
                id,
                s,
                self.origins
                    .origin(id, u32::from(self.writers[id as usize]))?,
            )),
            _ => None,
        })
    }

    /// `a/b/c` for a node of this view.
    pub fn path_of(&self, id: NodeId) -> String {
        self.tree.path(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::layer::IndexEntry;

    fn f(path: &str, size: u64) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind: EntryKind::File { size },
        }
    }
    fn idx(entries: &[IndexEntry]) -> LayerIndex {
        LayerIndex::from_entries(entries)
    }
    fn k(path: &str, kind: EntryKind) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind,
        }
    }

    #[test]
    fn overwrite_counts_lower_copy_as_wasted() {
        let mut m = MergedFs::new();
        m.apply(&idx(&[f("a/b", 100), f("a/c", 5)]));
        m.apply(&idx(&[f("a/b", 300)]));
        assert_eq!(m.wasted_bytes(), 100);
        let fig = m.figures();
        assert_eq!(fig.content_bytes, 305);
        // root, a, a/b, a/c
        assert_eq!(fig.inodes, 4);
    }

    #[test]
    fn whiteout_deletes_subtree() {
        let mut m = MergedFs::new();
        m.apply(&idx(&[f("d/x", 10), f("d/sub/y", 20), f("keep", 1)]));
        m.apply(&idx(&[k("d", EntryKind::Whiteout)]));
        assert_eq!(m.wasted_bytes(), 30);
        assert_eq!(m.figures().content_bytes, 1);
        assert_eq!(m.figures().inodes, 2);
    }

    #[test]
    fn opaque_hides_lower_but_keeps_same_layer() {
        let mut m = MergedFs::new();
        m.apply(&idx(&[f("d/old", 40)]));
        m.apply(&idx(&[k("d", EntryKind::Opaque), f("d/new", 7)]));
        assert_eq!(m.wasted_bytes(), 40);
        let fig = m.figures();
        assert_eq!(fig.content_bytes, 7);
        assert_eq!(fig.inodes, 3);
    }

    #[test]
    fn file_replacing_dir_hides_subtree_and_dir_replacing_file() {
        let mut m = MergedFs::new();
        m.apply(&idx(&[f("x/a", 3), f("y", 9)]));
        m.apply(&idx(&[f("x", 1), f("y/z", 2)]));
        assert_eq!(m.wasted_bytes(), 3 + 9);
        assert_eq!(m.figures().content_bytes, 3);
    }

    #[test]
    fn hard_links_count_once_and_largest_files() {
        let mut m = MergedFs::new();
        m.apply(&idx(&[
            f("big", 1000),
            k("big2", EntryKind::HardLink),
            f("small", 1),
        ]));
        let fig = m.figures();
        assert_eq!(fig.content_bytes, 1001);
        assert_eq!(fig.inodes, 3);
        let top = m.largest_files(1);
        assert_eq!(top[0].path, "big");
    }
}
