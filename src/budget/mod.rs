//! What an image costs a node and whether that is acceptable: pure
//! functions over measured figures, with no I/O.
//!
//! - [`cost`]: the containerd cost model (blobs + snapshots, chain IDs,
//!   what a rollout adds to a node that holds the baseline).
//! - [`layer_diff`]: the per-layer diff of two images.
//! - [`kubelet`]: the kubelet's image-GC and eviction arithmetic on an
//!   imageFS.
//! - [`rules`]: the policy and its rules, from figures to findings.
//! - [`verdict`]: the levels and the verdict, and every platform's
//!   judgement assembled into the report every renderer reads.

pub mod cost;
pub mod hints;
pub mod kubelet;
pub mod layer_diff;
pub mod paths;
pub mod rules;
pub mod verdict;

pub use rules::{Finding, Rule};
pub use verdict::{Level, Verdict};
