//! What an image costs a node, and what a candidate adds to a node that
//! already holds its baseline: the containerd cost model every node rule
//! and every report figure is computed from.
//!
//! containerd keeps every pulled layer twice unless `discard_unpacked_layers`
//! is on: the compressed blob in its content store (shared by digest) and the
//! unpacked snapshot (shared by chain ID: the layer together with every layer
//! below it). So the same layer on top of a different base costs its
//! snapshot again, while its blob is stored once.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::analyze::ImageReport;
use crate::analyze::layer_diff::{chain_ids, diff_ids};

/// The figures the node model works with, for one image.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ImageCost {
    /// Manifest + config + compressed layers: what a pull downloads.
    pub pull_bytes: u64,
    /// Σ layer `disk_bytes`: the unpacked snapshots.
    pub disk_bytes: u64,
    /// What the image occupies on imageFS once pulled.
    pub node_bytes: u64,
    /// What it needs on imageFS while being pulled (blobs and snapshots
    /// both exist until the blobs are discarded).
    pub peak_pull_bytes: u64,
    /// Σ layer inodes, plus one per stored blob file when blobs are kept.
    pub node_inodes: u64,
    pub layers: u64,
}

/// How the node stores images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreModel {
    /// containerd's `discard_unpacked_layers`: compressed layer blobs are
    /// deleted once unpacked (manifest and config stay).
    pub discard_unpacked_layers: bool,
}

/// Sums over a subset of an image's layers: `blob_new[i]` says whether
/// layer i's blob is new to the node, `snapshot_new[i]` its snapshot.
fn cost_of(
    r: &ImageReport,
    blob_new: &[bool],
    snapshot_new: &[bool],
    meta_new: bool,
    store: StoreModel,
) -> ImageCost {
    let meta = if meta_new {
        r.image.manifest_bytes + r.image.config_bytes
    } else {
        0
    };
    let mut compressed = 0;
    let mut disk = 0;
    let mut inodes = 0;
    let mut blob_files = if meta_new { 2 } else { 0 };
    let mut layers = 0;
    for (i, l) in r.layers.iter().enumerate() {
        let size = l
            .figures()
            .map_or(l.descriptor.size, |f| f.compressed_bytes);
        if blob_new[i] {
            compressed += size;
            blob_files += 1;
        }
        if snapshot_new[i] {
            layers += 1;
            if let Some(f) = l.figures() {
                disk += f.disk_bytes;
                inodes += f.inodes;
            }
        }
    }
    let pull_bytes = meta + compressed;
    let (node_bytes, node_inodes) = if store.discard_unpacked_layers {
        (disk + meta, inodes + if meta_new { 2 } else { 0 })
    } else {
        (pull_bytes + disk, inodes + blob_files)
    };
    ImageCost {
        pull_bytes,
        disk_bytes: disk,
        node_bytes,
        peak_pull_bytes: pull_bytes + disk,
        node_inodes,
        layers,
    }
}

/// The whole image, pulled onto a node that holds none of it.
pub fn image_cost(r: &ImageReport, store: StoreModel) -> ImageCost {
    let all = vec![true; r.layers.len()];
    cost_of(r, &all, &all, true, store)
}

/// What pulling `candidate` adds to a node that already holds `baseline`.
pub fn rollout_cost(
    candidate: &ImageReport,
    baseline: &ImageReport,
    store: StoreModel,
) -> ImageCost {
    rollout_cost_onto(candidate, &[baseline], store)
}

/// What pulling `candidate` adds to a node that already holds every image
/// of `held`: a blob any of them has is stored once, a snapshot any of
/// them has (same chain ID) is not unpacked again.
pub fn rollout_cost_onto(
    candidate: &ImageReport,
    held: &[&ImageReport],
    store: StoreModel,
) -> ImageCost {
    let base_blobs: HashSet<&str> = held
        .iter()
        .flat_map(|b| b.layers.iter().map(|l| l.descriptor.digest.as_str()))
        .collect();
    let base_chains: HashSet<String> = held.iter().flat_map(|b| chain_ids(&diff_ids(b))).collect();
    let cand_chains = chain_ids(&diff_ids(candidate));
    let blob_new: Vec<bool> = candidate
        .layers
        .iter()
        .map(|l| !base_blobs.contains(l.descriptor.digest.as_str()))
        .collect();
    let snapshot_new: Vec<bool> = cand_chains
        .iter()
        .map(|c| !base_chains.contains(c))
        .collect();
    let meta_new = held
        .iter()
        .all(|b| candidate.image.digest != b.image.digest);
    cost_of(candidate, &blob_new, &snapshot_new, meta_new, store)
}

/// What pulling every image of `candidates`, one after the other, adds to
/// a node that holds `held`: each image's share, in order, a layer an
/// earlier candidate brought counted with that one only (the images of one
/// pod share their base layers).
pub fn rollout_costs(
    candidates: &[&ImageReport],
    held: &[&ImageReport],
    store: StoreModel,
) -> Vec<ImageCost> {
    let mut on_node: Vec<&ImageReport> = held.to_vec();
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        out.push(rollout_cost_onto(c, &on_node, store));
        on_node.push(c);
    }
    out
}

impl ImageCost {
    /// Two costs together (what two pulls add up to); sums saturate.
    pub fn plus(&self, o: &ImageCost) -> ImageCost {
        ImageCost {
            pull_bytes: self.pull_bytes.saturating_add(o.pull_bytes),
            disk_bytes: self.disk_bytes.saturating_add(o.disk_bytes),
            node_bytes: self.node_bytes.saturating_add(o.node_bytes),
            peak_pull_bytes: self.peak_pull_bytes.saturating_add(o.peak_pull_bytes),
            node_inodes: self.node_inodes.saturating_add(o.node_inodes),
            layers: self.layers.saturating_add(o.layers),
        }
    }
}
