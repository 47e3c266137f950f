//! Paths as a tree of components: each distinct component (a name under one
//! parent) stored once, its bytes in one shared buffer. Memory is linear in
//! the bytes of distinct components, so a path a million components deep
//! costs a million small nodes, not a million copies of its prefixes, and a
//! million files in one directory cost their names, not their full paths.
//!
//! Nodes are numbered in creation order and a node's parent is always
//! created first, so walking the ids in order visits parents before
//! children.

use std::hash::{BuildHasher, Hasher, RandomState};

use hashbrown::HashTable;

pub type NodeId = u32;

/// The root directory: always node 0, with an empty name.
pub const ROOT: NodeId = 0;

/// The tree outgrew 32-bit node ids or name offsets: more than 4 GiB of
/// distinct path components, which no real layer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("more than 4 GiB of distinct path components")
    }
}

impl std::error::Error for TooLarge {}

#[derive(Debug, Clone)]
pub struct PathTree {
    /// Every node's name, in node order.
    names: Vec<u8>,
    /// Where each node's name starts in `names`; it ends where the next
    /// node's starts.
    starts: Vec<u32>,
    parents: Vec<NodeId>,
    /// Child lookup by (parent, name); holds node ids only, the key is
    /// read from the node itself. Dropped once a tree is complete.
    lookup: HashTable<NodeId>,
    hasher: RandomState,
}

impl Default for PathTree {
    fn default() -> Self {
        Self::new()
    }
}

/// The hash of the child `name` of `parent`.
fn hash_key(hasher: &RandomState, parent: NodeId, name: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u32(parent);
    h.write(name);
    h.finish()
}

fn name_of<'a>(names: &'a [u8], starts: &[u32], id: NodeId) -> &'a [u8] {
    let i = id as usize;
    let end = starts.get(i + 1).map_or(names.len(), |&e| e as usize);
    &names[starts[i] as usize..end]
}

impl PathTree {
    pub fn new() -> Self {
        PathTree {
            names: Vec::new(),
            starts: vec![0],
            parents: vec![ROOT],
            lookup: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn parent(&self, id: NodeId) -> NodeId {
        self.parents[id as usize]
    }

    pub fn name(&self, id: NodeId) -> &[u8] {
        name_of(&self.names, &self.starts, id)
    }

    /// The child `name` of `parent`, if the tree has it.
    pub fn find(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let hash = hash_key(&self.hasher, parent, name);
        self.lookup
            .find(hash, |&id| {
                self.parents[id as usize] == parent
                    && name_of(&self.names, &self.starts, id) == name
            })
            .copied()
    }

    /// The child `name` of `parent`, created if missing; `true` when created.
    pub fn find_or_insert(
        &mut self,
        parent: NodeId,
        name: &[u8],
    ) -> Result<(NodeId, bool), TooLarge> {
        if let Some(id) = self.find(parent, name) {
            return Ok((id, false));
        }
        let id = NodeId::try_from(self.parents.len()).map_err(|_| TooLarge)?;
        let start = u32::try_from(self.names.len()).map_err(|_| TooLarge)?;
        u32::try_from(self.names.len() + name.len()).map_err(|_| TooLarge)?;
        self.names.extend_from_slice(name);
        self.starts.push(start);
        self.parents.push(parent);
        let hash = hash_key(&self.hasher, parent, name);
        let (names, starts, parents, hasher) =
            (&self.names, &self.starts, &self.parents, &self.hasher);
        self.lookup.insert_unique(hash, id, |&other| {
            hash_key(
                hasher,
                parents[other as usize],
                name_of(names, starts, other),
            )
        });
        Ok((id, true))
    }

    /// Room for `n` more nodes (of about `name_bytes` bytes of names in all).
    pub fn reserve(&mut self, n: usize, name_bytes: usize) {
        self.names.reserve(name_bytes);
        self.starts.reserve(n);
        self.parents.reserve(n);
        let (names, starts, parents, hasher) =
            (&self.names, &self.starts, &self.parents, &self.hasher);
        self.lookup.reserve(n, |&other| {
            hash_key(
                hasher,
                parents[other as usize],
                name_of(names, starts, other),
            )
        });
    }

    /// Frees the child lookup and spare capacity once no node will be
    /// added or looked up by name again.
    pub fn freeze(&mut self) {
        self.lookup = HashTable::new();
        self.names.shrink_to_fit();
        self.starts.shrink_to_fit();
        self.parents.shrink_to_fit();
    }

    /// `a/b/c` for node `c` (the root is `""`).
    pub fn path(&self, id: NodeId) -> String {
        let mut ids = Vec::new();
        let mut n = id;
        while n != ROOT {
            ids.push(n);
            n = self.parent(n);
        }
        let mut out = Vec::new();
        for (i, &n) in ids.iter().rev().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(self.name(n));
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Rebuilds a tree from its parts (as stored in the layer cache),
    /// checking that they describe one: every parent created before its
    /// child, names within the buffer.
    pub fn from_parts(names: Vec<u8>, parts: &[(NodeId, u32)]) -> Option<PathTree> {
        let mut t = PathTree::new();
        t.names = names;
        let mut at: u32 = 0;
        for (i, &(parent, len)) in parts.iter().enumerate() {
            let id = i + 1;
            if parent as usize >= id {
                return None;
            }
            let end = at.checked_add(len)?;
            if end as usize > t.names.len() {
                return None;
            }
            t.starts.push(at);
            t.parents.push(parent);
            at = end;
        }
        (at as usize == t.names.len()).then_some(t)
    }

    /// The parts [`Self::from_parts`] takes, root excluded.
    pub fn parts(&self) -> impl Iterator<Item = (NodeId, u32)> + '_ {
        (1..self.len()).map(|i| {
            let id = i as NodeId;
            (self.parent(id), self.name(id).len() as u32)
        })
    }

    pub fn names(&self) -> &[u8] {
        &self.names
    }
}

/// One size per node, four bytes each: the rare one of 4 GiB or more is
/// kept aside, so a million small files cost 4 MB here, not 8.
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    small: Vec<u32>,
    large: std::collections::HashMap<NodeId, u64>,
}

impl Sizes {
    const ASIDE: u32 = u32::MAX;

    pub fn push(&mut self, v: u64) {
        let id = self.small.len() as NodeId;
        self.small.push(0);
        self.set(id, v);
    }

    pub fn set(&mut self, id: NodeId, v: u64) {
        match u32::try_from(v) {
            Ok(small) if small != Self::ASIDE => {
                self.small[id as usize] = small;
                self.large.remove(&id);
            }
            _ => {
                self.small[id as usize] = Self::ASIDE;
                self.large.insert(id, v);
            }
        }
    }

    pub fn get(&self, id: NodeId) -> u64 {
        match self.small[id as usize] {
            Self::ASIDE => self.large.get(&id).copied().unwrap_or(0),
            v => u64::from(v),
        }
    }

    pub fn reserve(&mut self, n: usize) {
        self.small.reserve(n);
    }

    pub fn shrink_to_fit(&mut self) {
        self.small.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_stored_once() {
        let mut t = PathTree::new();
        let (usr, new) = t.find_or_insert(ROOT, b"usr").unwrap();
        assert!(new);
        let (bin, _) = t.find_or_insert(usr, b"bin").unwrap();
        let (again, new) = t.find_or_insert(ROOT, b"usr").unwrap();
        assert_eq!((again, new), (usr, false));
        let (other_bin, _) = t.find_or_insert(ROOT, b"bin").unwrap();
        assert_ne!(other_bin, bin);
        assert_eq!(t.path(bin), "usr/bin");
        assert_eq!(t.path(ROOT), "");
        assert_eq!(t.find(usr, b"bin"), Some(bin));
        assert_eq!(t.find(usr, b"lib"), None);
        assert_eq!(t.names(), b"usrbinbin");
        let parts: Vec<_> = t.parts().collect();
        let back = PathTree::from_parts(t.names().to_vec(), &parts).unwrap();
        assert_eq!(back.path(bin), "usr/bin");
        assert!(PathTree::from_parts(b"ab".to_vec(), &[(1, 1)]).is_none());
        assert!(PathTree::from_parts(b"ab".to_vec(), &[(0, 3)]).is_none());
    }

    #[test]
    fn sizes_past_4_gib_are_kept_aside() {
        let mut s = Sizes::default();
        s.push(7);
        s.push(u64::from(u32::MAX));
        s.push(1 << 40);
        assert_eq!(
            (s.get(0), s.get(1), s.get(2)),
            (7, u64::from(u32::MAX), 1 << 40)
        );
        s.set(2, 3);
        assert_eq!(s.get(2), 3);
        assert!(s.large.len() == 1);
    }
}
