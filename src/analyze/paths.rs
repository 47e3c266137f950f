//! Growth by path: where the bytes went between the baseline's and the
//! candidate's final (merged) filesystems.
//!
//! Every directory's growth is the difference of the content below it in
//! both trees. The listing is rolled up the way one drills down with `du`
//! or ncdu: a directory whose growth lies for at least [`ROLL_UP_PERCENT`]
//! in one child (a directory or a file, growing the same way) is not
//! listed, the child is, and so on down the chain, so a 800 MiB wheel
//! shows as `/usr/local/lib/python3.11/site-packages/nvidia/`, not as seven
//! lines of 800 MiB. The chain stops at `depth` components: a directory
//! there is listed whatever its children hold. A file is listed when a
//! directory rolls up into it, when it changed size in place (a file that
//! grew), or when it lies at the top, beside the top directories. The `top` entries of largest growth or shrinkage are kept,
//! sorted by growth, largest first.
//!
//! Memory: both trees are already held; the diff adds, per node of each,
//! 24 bytes of subtree figures and 4 of match, and one bit for the roll-up.

use serde::{Deserialize, Serialize};

use crate::measure::layer::FS_BLOCK;
use crate::measure::merged::{MergedFs, Node};
use crate::measure::tree::{NodeId, ROOT};

/// The share of a directory's growth one child must hold for the
/// directory to be listed as that child.
pub const ROLL_UP_PERCENT: u64 = 90;

/// How much of the diff to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    pub top: usize,
    /// Deepest directory listed, in path components.
    pub depth: usize,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions { top: 10, depth: 8 }
    }
}

/// A candidate layer that grew a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PathLayer {
    /// Position in the candidate, from 0 as in `layers[]`.
    pub index: usize,
    /// The build step that made it; null when the history does not say.
    pub created_by: Option<String>,
}

/// An `i128` read back from a report. The report nests this struct with
/// `#[serde(flatten)]`, and serde buffers flattened fields in a form that
/// has no 128-bit integers ("i128 is not supported"); a delta of two `u64`
/// sizes fits in an `i64` or a `u64`, which it does have.
fn wide_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wide {
        Signed(i64),
        Unsigned(u64),
    }
    Ok(match Wide::deserialize(d)? {
        Wide::Signed(v) => v.into(),
        Wide::Unsigned(v) => v.into(),
    })
}

/// One directory (its path ends with `/`) or file that grew or shrank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PathGrowth {
    pub path: String,
    pub baseline_bytes: u64,
    pub candidate_bytes: u64,
    #[serde(deserialize_with = "wide_integer")]
    pub delta_bytes: i128,
    pub baseline_disk_bytes: u64,
    pub candidate_disk_bytes: u64,
    /// Files of the candidate below the path that the baseline lacks.
    pub files_added: u64,
    /// Files of the baseline below the path that the candidate lacks.
    pub files_removed: u64,
    /// The candidate layers that last wrote a file added or changed below
    /// the path.
    pub layers: Vec<PathLayer>,
}

const NONE: NodeId = NodeId::MAX;

/// The figures of every subtree of one tree.
struct Subtrees {
    content: Vec<u64>,
    disk: Vec<u64>,
    /// Files below.
    files: Vec<u32>,
    /// Files below whose counterpart in the other tree is not a file.
    unmatched: Vec<u32>,
}

fn is_file(n: Node) -> bool {
    matches!(n, Node::File(_))
}

fn is_dir(n: Node) -> bool {
    n == Node::Dir
}

/// `other[i]`: the node of the other tree at node `i`'s path, or [`NONE`].
fn subtrees(fs: &MergedFs, other_fs: &MergedFs, other: &[NodeId]) -> Subtrees {
    let n = fs.len();
    let mut s = Subtrees {
        content: vec![0; n],
        disk: vec![0; n],
        files: vec![0; n],
        unmatched: vec![0; n],
    };
    for id in (0..n as NodeId).rev() {
        let i = id as usize;
        match fs.get(id) {
            Node::File(size) => {
                s.content[i] = s.content[i].saturating_add(size);
                s.disk[i] =
                    s.disk[i].saturating_add(size.div_ceil(FS_BLOCK).saturating_mul(FS_BLOCK));
                s.files[i] += 1;
                let o = other[i];
                if o == NONE || !is_file(other_fs.get(o)) {
                    s.unmatched[i] += 1;
                }
            }
            Node::Dir => s.disk[i] = s.disk[i].saturating_add(FS_BLOCK),
            Node::Absent | Node::HardLink | Node::Other => {}
        }
        if id != ROOT {
            let p = fs.tree().parent(id) as usize;
            s.content[p] = s.content[p].saturating_add(s.content[i]);
            s.disk[p] = s.disk[p].saturating_add(s.disk[i]);
            s.files[p] = s.files[p].saturating_add(s.files[i]);
            s.unmatched[p] = s.unmatched[p].saturating_add(s.unmatched[i]);
        }
    }
    s
}

/// A node of either tree: a candidate node (with its baseline
/// counterpart, if any), or a baseline node the candidate has no path for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Candidate(NodeId),
    BaselineOnly(NodeId),
}

struct Diff<'a> {
    cand: &'a MergedFs,
    base: &'a MergedFs,
    base_of: Vec<NodeId>,
    cand_of: Vec<NodeId>,
    c: Subtrees,
    b: Subtrees,
}

impl Diff<'_> {
    fn base_node(&self, at: At) -> NodeId {
        match at {
            At::Candidate(c) => self.base_of[c as usize],
            At::BaselineOnly(b) => b,
        }
    }

    fn figures(&self, at: At) -> (u64, u64) {
        let base = match self.base_node(at) {
            NONE => 0,
            b => self.b.content[b as usize],
        };
        let cand = match at {
            At::Candidate(c) => self.c.content[c as usize],
            At::BaselineOnly(_) => 0,
        };
        (base, cand)
    }

    fn delta(&self, at: At) -> i128 {
        let (base, cand) = self.figures(at);
        i128::from(cand) - i128::from(base)
    }

    fn parent(&self, at: At) -> At {
        match at {
            At::Candidate(c) => At::Candidate(self.cand.tree().parent(c)),
            At::BaselineOnly(b) => {
                let p = self.base.tree().parent(b);
                match self.cand_of[p as usize] {
                    NONE => At::BaselineOnly(p),
                    c => At::Candidate(c),
                }
            }
        }
    }

    fn is_dir(&self, at: At) -> bool {
        let base_dir = match self.base_node(at) {
            NONE => false,
            b => is_dir(self.base.get(b)),
        };
        base_dir || matches!(at, At::Candidate(c) if is_dir(self.cand.get(c)))
    }

    /// A file present on both sides at another size.
    fn changed_in_place(&self, at: At) -> bool {
        let At::Candidate(c) = at else { return false };
        let b = self.base_of[c as usize];
        match (self.cand.get(c), b) {
            (_, NONE) => false,
            (Node::File(cs), b) => matches!(self.base.get(b), Node::File(bs) if bs != cs),
            _ => false,
        }
    }

    fn depth(&self, at: At) -> usize {
        let (tree, mut id) = match at {
            At::Candidate(c) => (self.cand.tree(), c),
            At::BaselineOnly(b) => (self.base.tree(), b),
        };
        let mut d = 0;
        while id != ROOT {
            d += 1;
            id = tree.parent(id);
        }
        d
    }

    /// Every node of either tree that either tree has something at.
    fn nodes(&self) -> impl Iterator<Item = At> + '_ {
        let cand = (1..self.cand.len() as NodeId)
            .map(At::Candidate)
            .filter(|&at| {
                let At::Candidate(c) = at else { return false };
                let b = self.base_of[c as usize];
                self.cand.get(c) != Node::Absent || (b != NONE && self.base.get(b) != Node::Absent)
            });
        let base = (1..self.base.len() as NodeId)
            .filter(|&b| self.cand_of[b as usize] == NONE && self.base.get(b) != Node::Absent)
            .map(At::BaselineOnly);
        cand.chain(base)
    }

    fn path(&self, at: At) -> String {
        let p = match at {
            At::Candidate(c) => self.cand.tree().path(c),
            At::BaselineOnly(b) => self.base.tree().path(b),
        };
        if self.is_dir(at) {
            format!("/{p}/")
        } else {
            format!("/{p}")
        }
    }

    /// The candidate layers that last wrote a file added or changed below
    /// (or at) a candidate node.
    fn layers(&self, at: At, created_by: &[Option<String>]) -> Vec<PathLayer> {
        let At::Candidate(top) = at else {
            return Vec::new();
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![top];
        while let Some(n) = stack.pop() {
            match self.cand.get(n) {
                Node::File(size) => {
                    let b = self.base_of[n as usize];
                    let same = b != NONE && self.base.get(b) == Node::File(size);
                    if !same {
                        seen.insert(self.cand.writer(n));
                    }
                }
                Node::Dir => stack.extend(self.cand.children(n)),
                Node::Absent | Node::HardLink | Node::Other => {}
            }
        }
        seen.into_iter()
            .map(|i| PathLayer {
                index: usize::from(i),
                created_by: created_by.get(usize::from(i)).cloned().flatten(),
            })
            .collect()
    }

    fn entry(&self, at: At, created_by: &[Option<String>]) -> PathGrowth {
        let (baseline_bytes, candidate_bytes) = self.figures(at);
        let base = self.base_node(at);
        let (baseline_disk_bytes, files_removed) = match base {
            NONE => (0, 0),
            b => (self.b.disk[b as usize], self.b.unmatched[b as usize]),
        };
        let (candidate_disk_bytes, files_added) = match at {
            At::Candidate(c) => (self.c.disk[c as usize], self.c.unmatched[c as usize]),
            At::BaselineOnly(_) => (0, 0),
        };
        PathGrowth {
            path: self.path(at),
            baseline_bytes,
            candidate_bytes,
            delta_bytes: self.delta(at),
            baseline_disk_bytes,
            candidate_disk_bytes,
            files_added: u64::from(files_added),
            files_removed: u64::from(files_removed),
            layers: self.layers(at, created_by),
        }
    }
}

/// Whether `child`'s growth is at least [`ROLL_UP_PERCENT`] of its
/// parent's, the same way.
fn holds_most(child: i128, parent: i128) -> bool {
    parent != 0
        && child.signum() == parent.signum()
        && child.unsigned_abs() * 100 >= parent.unsigned_abs() * u128::from(ROLL_UP_PERCENT)
}

/// One bit per node of each tree: which nodes roll up into a child.
struct RolledUp {
    cand: Vec<u64>,
    base: Vec<u64>,
}

impl RolledUp {
    fn bits(&mut self, at: At) -> (&mut Vec<u64>, usize) {
        match at {
            At::Candidate(c) => (&mut self.cand, c as usize),
            At::BaselineOnly(b) => (&mut self.base, b as usize),
        }
    }

    fn set(&mut self, at: At) {
        let (v, i) = self.bits(at);
        v[i / 64] |= 1 << (i % 64);
    }

    fn get(&mut self, at: At) -> bool {
        let (v, i) = self.bits(at);
        v[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The growth of the candidate's final filesystem over the baseline's, by
/// path, rolled up as the module says; `created_by` is the candidate's
/// build step per layer.
pub fn path_diff(
    candidate: &MergedFs,
    baseline: &MergedFs,
    created_by: &[Option<String>],
    opts: PathOptions,
) -> Vec<PathGrowth> {
    if opts.top == 0 {
        return Vec::new();
    }
    let mut base_of = vec![NONE; candidate.len()];
    base_of[ROOT as usize] = ROOT;
    for c in 1..candidate.len() as NodeId {
        let p = base_of[candidate.tree().parent(c) as usize];
        if p != NONE {
            let name = candidate.tree().name(c);
            base_of[c as usize] = baseline.tree().find(p, name).unwrap_or(NONE);
        }
    }
    let mut cand_of = vec![NONE; baseline.len()];
    for (c, &b) in base_of.iter().enumerate() {
        if b != NONE {
            cand_of[b as usize] = c as NodeId;
        }
    }
    let c = subtrees(candidate, baseline, &base_of);
    let b = subtrees(baseline, candidate, &cand_of);
    let d = Diff {
        cand: candidate,
        base: baseline,
        base_of,
        cand_of,
        c,
        b,
    };
    let mut rolled = RolledUp {
        cand: vec![0; candidate.len().div_ceil(64)],
        base: vec![0; baseline.len().div_ceil(64)],
    };
    for at in d.nodes() {
        let parent = d.parent(at);
        if parent != At::Candidate(ROOT) && holds_most(d.delta(at), d.delta(parent)) {
            rolled.set(parent);
        }
    }
    let picked = pick(&d, &mut rolled, opts);
    let mut out: Vec<PathGrowth> = picked
        .into_iter()
        .map(|at| d.entry(at, created_by))
        .collect();
    out.sort_by(|x, y| {
        y.delta_bytes
            .cmp(&x.delta_bytes)
            .then_with(|| x.path.cmp(&y.path))
    });
    out
}

/// The `top` listed nodes of largest growth or shrinkage.
fn pick(d: &Diff, rolled: &mut RolledUp, opts: PathOptions) -> Vec<At> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<Reverse<(u128, usize)>> = BinaryHeap::new();
    let mut kept: Vec<At> = Vec::new();
    for at in d.nodes() {
        let delta = d.delta(at);
        if delta == 0 {
            continue;
        }
        let listed = if d.is_dir(at) {
            let depth = d.depth(at);
            depth <= opts.depth && (depth == opts.depth || !rolled.get(at))
        } else {
            let parent = d.parent(at);
            // Files at the top are listed like the directories there.
            d.changed_in_place(at)
                || parent == At::Candidate(ROOT)
                || (rolled.get(parent)
                    && d.depth(parent) < opts.depth
                    && holds_most(delta, d.delta(parent)))
        };
        if !listed {
            continue;
        }
        let weight = delta.unsigned_abs();
        if heap.len() == opts.top && heap.peek().is_some_and(|Reverse((w, _))| weight <= *w) {
            continue;
        }
        kept.push(at);
        heap.push(Reverse((weight, kept.len() - 1)));
        if heap.len() > opts.top {
            heap.pop();
        }
    }
    heap.into_iter().map(|Reverse((_, i))| kept[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::layer::{EntryKind, IndexEntry, LayerIndex};

    fn file(path: &str, size: u64) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind: EntryKind::File { size },
        }
    }

    fn fs(layers: &[&[IndexEntry]]) -> MergedFs {
        let mut m = MergedFs::new();
        for l in layers {
            m.apply(&LayerIndex::from_entries(l.iter()));
        }
        m
    }

    #[test]
    fn a_deep_directory_is_listed_for_its_chain_with_its_layer() {
        let base = fs(&[&[file("usr/bin/sh", 100), file("etc/old", 40)]]);
        let cand = fs(&[
            &[file("usr/bin/sh", 100)],
            &[
                file("usr/lib/py/nvidia/a.so", 10_000),
                file("usr/lib/py/nvidia/sub/b.so", 5_000),
                file("usr/lib/py/nvidia/c", 1),
            ],
        ]);
        let steps = vec![None, Some("RUN pip install torch".to_string())];
        let out = path_diff(&cand, &base, &steps, PathOptions::default());
        let top = &out[0];
        assert_eq!(top.path, "/usr/lib/py/nvidia/");
        assert_eq!((top.baseline_bytes, top.candidate_bytes), (0, 15_001));
        assert_eq!((top.files_added, top.files_removed), (3, 0));
        // nvidia/ and nvidia/sub/ as directories; the files' blocks: 3, 2, 1.
        assert_eq!(top.candidate_disk_bytes, 2 * 4096 + (3 + 2 + 1) * 4096);
        assert_eq!(top.layers.len(), 1);
        assert_eq!(top.layers[0].index, 1);
        assert_eq!(
            top.layers[0].created_by.as_deref(),
            Some("RUN pip install torch")
        );
        // The chain above it is rolled up into it.
        assert!(
            !out.iter()
                .any(|e| e.path == "/usr/" || e.path == "/usr/lib/")
        );
        let removed = out.iter().find(|e| e.path == "/etc/old").unwrap();
        assert_eq!((removed.delta_bytes, removed.files_removed), (-40, 1));
    }

    #[test]
    fn a_file_that_grew_in_place_is_listed_and_depth_stops_the_chain() {
        let base = fs(&[&[file("a/b/c/d/f", 10), file("a/x", 5), file("a/y", 5)]]);
        let cand = fs(&[&[file("a/b/c/d/f", 1000), file("a/x", 5), file("a/y", 5)]]);
        let out = path_diff(&cand, &base, &[], PathOptions { top: 10, depth: 2 });
        assert!(
            out.iter()
                .any(|e| e.path == "/a/b/c/d/f" && e.delta_bytes == 990)
        );
        // `a/b/` is as deep as the chain goes.
        assert!(out.iter().any(|e| e.path == "/a/b/"));
        assert!(!out.iter().any(|e| e.path == "/a/b/c/"));
        let top1 = path_diff(&cand, &base, &[], PathOptions { top: 1, depth: 8 });
        assert_eq!(top1.len(), 1);
    }

    #[test]
    fn growth_spread_over_children_lists_the_parent_and_the_children() {
        let base = fs(&[&[file("keep", 1)]]);
        let cand = fs(&[&[file("keep", 1), file("opt/a/1", 600), file("opt/b/1", 400)]]);
        let out = path_diff(&cand, &base, &[], PathOptions::default());
        let paths: Vec<&str> = out.iter().map(|e| e.path.as_str()).collect();
        // Each of `a/` and `b/` holds one file: it is listed as that file.
        assert_eq!(paths, vec!["/opt/", "/opt/a/1", "/opt/b/1"]);
    }
}
