//! What an image costs a node and whether that is acceptable: pure
//! functions over measured figures, with no I/O.
//!
//! It reads the figures as `measure` and `analyze` leave them (their
//! report types are plain data), and neither of them knows this module:
//! judging comes after measuring and explaining, never inside them. The
//! `.dive-ci` file its dive rules come from is read elsewhere (`config::dive_ci`).
//!
//! - [`cost`]: the node cost model of each runtime (containerd, with or
//!   without its layer blobs, and containers/storage), what a rollout adds
//!   to a node that holds the baseline, and the peak of a pull.
//! - [`kubelet`]: the kubelet's image-GC and eviction arithmetic on an
//!   imageFS.
//! - [`rules`]: the policy and its rules, from figures to findings.
//! - [`verdict`]: the levels and the verdict, and every platform's
//!   judgement assembled into the report every renderer reads.

pub mod cost;
pub mod history;
pub mod kubelet;
pub mod rules;
pub mod verdict;

pub use rules::{Finding, Rule};
pub use verdict::{Level, Verdict};
