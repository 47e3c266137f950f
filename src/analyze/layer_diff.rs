//! The per-layer diff of a candidate against its baseline: which layers
//! are shared, recompressed, changed, added or removed, and what each new one adds. It
//! is what a reviewer reads to find the layer that grew.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::measure::layer::FileSize;
use crate::measure::{LayerReport, MeasuredImage};

/// How a candidate layer relates to the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LayerChange {
    /// Same blob at the same position on the same base: costs nothing new.
    Shared,
    /// The same content on the same base (same chain ID) in a new blob
    /// (gzip → zstd, another compression level): the blob is pulled and
    /// stored again, the snapshot is shared.
    Recompressed,
    /// A layer at a position the baseline also has, with other content.
    Changed,
    /// Beyond the baseline's layer count.
    Added,
    /// A baseline layer with no counterpart in the candidate.
    Removed,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerDiffRow {
    pub index: usize,
    pub change: LayerChange,
    /// Null for a removed layer.
    pub candidate_digest: Option<String>,
    /// Null for an added layer.
    pub baseline_digest: Option<String>,
    pub candidate_compressed_bytes: u64,
    pub baseline_compressed_bytes: u64,
    pub candidate_disk_bytes: u64,
    pub baseline_disk_bytes: u64,
    /// Largest files the candidate layer adds (new and changed layers only).
    #[serde(default)]
    pub largest_files: Vec<FileSize>,
}

impl LayerDiffRow {
    pub fn disk_growth(&self) -> i128 {
        self.candidate_disk_bytes as i128 - self.baseline_disk_bytes as i128
    }
}

/// Position-by-position comparison of the two layer stacks: images built
/// from the same Dockerfile keep their layer order, so position is what a
/// reader of the diff expects ("layer 7 grew by 600 MiB").
pub fn layer_diff(candidate: &MeasuredImage, baseline: &MeasuredImage) -> Vec<LayerDiffRow> {
    let cand_chains = chain_ids(&diff_ids(candidate));
    let base_chains: HashSet<String> = chain_ids(&diff_ids(baseline)).into_iter().collect();
    let base_blobs: HashSet<&str> = baseline
        .layers
        .iter()
        .map(|l| l.descriptor.digest.as_str())
        .collect();
    let n = candidate.layers.len().max(baseline.layers.len());
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let c = candidate.layers.get(i);
        let b = baseline.layers.get(i);
        let compressed = |l: Option<&LayerReport>| {
            l.map_or(0, |l| {
                l.figures()
                    .map_or(l.descriptor.size, |f| f.compressed_bytes)
            })
        };
        let disk =
            |l: Option<&LayerReport>| l.and_then(|l| l.figures()).map_or(0, |f| f.disk_bytes);
        let change = match (c, b) {
            (Some(l), _) if cand_chains.get(i).is_some_and(|c| base_chains.contains(c)) => {
                if base_blobs.contains(l.descriptor.digest.as_str()) {
                    LayerChange::Shared
                } else {
                    LayerChange::Recompressed
                }
            }
            (Some(_), Some(_)) => LayerChange::Changed,
            (Some(_), None) => LayerChange::Added,
            (None, _) => LayerChange::Removed,
        };
        rows.push(LayerDiffRow {
            index: i,
            change,
            candidate_digest: c.map(|l| l.descriptor.digest.clone()),
            baseline_digest: b.map(|l| l.descriptor.digest.clone()),
            candidate_compressed_bytes: compressed(c),
            baseline_compressed_bytes: compressed(b),
            candidate_disk_bytes: disk(c),
            baseline_disk_bytes: disk(b),
            largest_files: match (change, c) {
                (LayerChange::Changed | LayerChange::Added, Some(l)) => l.largest_files.clone(),
                _ => Vec::new(),
            },
        });
    }
    rows
}

/// chain IDs of an image's layers, bottom-up, per the OCI image spec:
/// `chain(0) = diff_id(0)`, `chain(n) = sha256(chain(n-1) + " " + diff_id(n))`.
pub fn chain_ids(diff_ids: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.to_string(),
            Some(prev) => crate::digest::sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// An image's layer diff_ids, bottom-up, for [`chain_ids`].
pub fn diff_ids(r: &MeasuredImage) -> Vec<&str> {
    r.layers
        .iter()
        .map(|l| match &l.measurement {
            Some(m) => m.diff_id.as_str(),
            // Unmeasured layers: the config's diff_id is the best we have.
            None => "",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = "sha256:aaaa";
        let b = "sha256:bbbb";
        let ids = chain_ids(&[a, b]);
        assert_eq!(ids[0], a);
        let want = Sha256::digest(b"sha256:aaaa sha256:bbbb");
        assert!(ids[1].ends_with(&format!("{:02x}", want[31])));
        assert_eq!(ids[1].len(), 7 + 64);
        // The same layer on another base has another chain ID.
        assert_ne!(chain_ids(&["sha256:cccc", b])[1], ids[1]);
    }
}
