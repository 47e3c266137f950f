//! The merged-filesystem view: what a container sees once the layers are
//! stacked the way overlayfs stacks them.
//!
//! Layers are applied bottom-up. A whiteout deletes a path and everything
//! below it; an opaque marker hides the lower layers' content of a directory;
//! a non-directory replacing a directory hides its subtree; a file replacing a
//! file shadows it. Every byte of a lower-layer file that ends up hidden this
//! way is counted once in `wasted_bytes`: it is still pulled and unpacked on
//! every node, but no container can ever read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layer::{EntryKind, FileSize, IndexEntry, top_n};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
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
}

/// Figures of the final merged filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalFigures {
    pub content_bytes: u64,
    pub inodes: u64,
    pub files: u64,
}

#[derive(Debug, Default)]
pub struct MergedFs {
    /// One entry per visible path (the root is implicit).
    nodes: BTreeMap<String, Node>,
    wasted_bytes: u64,
}

impl MergedFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stacks one layer's index (as produced by the analyzer) on top.
    pub fn apply(&mut self, index: &[IndexEntry]) {
        // Deletions act on the lower layers only, so they go first: an entry
        // of this same layer under an opaque directory must survive.
        for e in index {
            match e.kind {
                EntryKind::Opaque => self.remove_below(&e.path),
                EntryKind::Whiteout => {
                    self.remove_below(&e.path);
                    if let Some(old) = self.nodes.remove(&e.path) {
                        self.wasted_bytes += old.file_bytes();
                    }
                }
                _ => {}
            }
        }
        for e in index {
            let node = match e.kind {
                EntryKind::File { size } => Node::File(size),
                EntryKind::HardLink => Node::HardLink,
                EntryKind::Dir => Node::Dir,
                EntryKind::Symlink { .. } | EntryKind::Device | EntryKind::Fifo => Node::Other,
                EntryKind::Whiteout => continue,
                EntryKind::Opaque => {
                    // The marker also means the directory exists in this layer.
                    if e.path.is_empty() {
                        continue;
                    }
                    Node::Dir
                }
            };
            if e.path.is_empty() {
                continue;
            }
            self.ensure_parents(&e.path);
            self.put(&e.path, node);
        }
    }

    fn put(&mut self, path: &str, node: Node) {
        match self.nodes.get(path).copied() {
            Some(Node::Dir) if node == Node::Dir => {}
            Some(old) => {
                self.wasted_bytes += old.file_bytes();
                if old == Node::Dir {
                    self.remove_below(path);
                }
                self.nodes.insert(path.to_string(), node);
            }
            None => {
                self.nodes.insert(path.to_string(), node);
            }
        }
    }

    /// Parents of a path are directories; one that was a file below is
    /// shadowed by the directory.
    fn ensure_parents(&mut self, path: &str) {
        let mut ends: Vec<usize> = Vec::new();
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if self.nodes.get(p) == Some(&Node::Dir) {
                break;
            }
            ends.push(i);
        }
        for &i in ends.iter().rev() {
            self.put(&path[..i], Node::Dir);
        }
    }

    /// Removes every path strictly below `dir` ("" is the root).
    fn remove_below(&mut self, dir: &str) {
        let (lo, hi) = if dir.is_empty() {
            (String::new(), None)
        } else {
            // '0' is the byte after '/', so [dir/, dir0) is exactly the subtree.
            (format!("{dir}/"), Some(format!("{dir}0")))
        };
        let doomed: Vec<String> = match &hi {
            Some(hi) => self
                .nodes
                .range(lo..hi.clone())
                .map(|(k, _)| k.clone())
                .collect(),
            None => self.nodes.keys().cloned().collect(),
        };
        for k in doomed {
            if let Some(old) = self.nodes.remove(&k) {
                self.wasted_bytes += old.file_bytes();
            }
        }
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
        for node in self.nodes.values() {
            match node {
                Node::File(s) => {
                    f.content_bytes += s;
                    f.files += 1;
                    f.inodes += 1;
                }
                Node::HardLink => {}
                Node::Dir | Node::Other => f.inodes += 1,
            }
        }
        f
    }

    pub fn largest_files(&self, n: usize) -> Vec<FileSize> {
        top_n(
            self.nodes.iter().filter_map(|(p, node)| match node {
                Node::File(s) => Some((p.as_str(), *s)),
                _ => None,
            }),
            n,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind: EntryKind::File { size },
        }
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
        m.apply(&[f("a/b", 100), f("a/c", 5)]);
        m.apply(&[f("a/b", 300)]);
        assert_eq!(m.wasted_bytes(), 100);
        let fig = m.figures();
        assert_eq!(fig.content_bytes, 305);
        // root, a, a/b, a/c
        assert_eq!(fig.inodes, 4);
    }

    #[test]
    fn whiteout_deletes_subtree() {
        let mut m = MergedFs::new();
        m.apply(&[f("d/x", 10), f("d/sub/y", 20), f("keep", 1)]);
        m.apply(&[k("d", EntryKind::Whiteout)]);
        assert_eq!(m.wasted_bytes(), 30);
        assert_eq!(m.figures().content_bytes, 1);
        assert_eq!(m.figures().inodes, 2);
    }

    #[test]
    fn opaque_hides_lower_but_keeps_same_layer() {
        let mut m = MergedFs::new();
        m.apply(&[f("d/old", 40)]);
        m.apply(&[k("d", EntryKind::Opaque), f("d/new", 7)]);
        assert_eq!(m.wasted_bytes(), 40);
        let fig = m.figures();
        assert_eq!(fig.content_bytes, 7);
        assert_eq!(fig.inodes, 3);
    }

    #[test]
    fn file_replacing_dir_hides_subtree_and_dir_replacing_file() {
        let mut m = MergedFs::new();
        m.apply(&[f("x/a", 3), f("y", 9)]);
        m.apply(&[f("x", 1), f("y/z", 2)]);
        assert_eq!(m.wasted_bytes(), 3 + 9);
        assert_eq!(m.figures().content_bytes, 3);
    }

    #[test]
    fn hard_links_count_once_and_largest_files() {
        let mut m = MergedFs::new();
        m.apply(&[
            f("big", 1000),
            k("big2", EntryKind::HardLink),
            f("small", 1),
        ]);
        let fig = m.figures();
        assert_eq!(fig.content_bytes, 1001);
        assert_eq!(fig.inodes, 3);
        let top = m.largest_files(1);
        assert_eq!(top[0].path, "big");
    }
}
