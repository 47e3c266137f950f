//! The rules: pure functions from measured figures to findings. Every rule
//! has two levels, `warn` (comment, don't block) and `fail` (block), because
//! teams want "tell me above X, stop me above Y".
//!
//! One file per rule family, each a function from figures to its findings:
//! [`headroom`] (the node's GC, eviction and inode headroom), [`growth`]
//! (candidate against baseline), [`limits`] (absolute sizes and counts).
//! [`evaluate`] runs them in that order, which is the order findings are
//! reported in.

pub mod growth;
pub mod headroom;
pub mod limits;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::budget::cost::{ImageCost, StoreModel, image_cost, rollout_cost};
use crate::budget::kubelet::{Headroom, NodeFs};
use crate::budget::verdict::Level;
use crate::measure::ImageReport;

pub use growth::{Figure, GrowthLimit, GrowthRule, format_pct};
pub use limits::Levels;

/// Which rule fired. The ids ([`Rule::id`]) are part of the JSON schema and
/// of the annotation titles, so they never change once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The rollout would start image garbage collection on the node.
    GcHeadroom,
    /// The rollout would cross the `imagefs.available` eviction threshold.
    EvictionHeadroom,
    /// The rollout would cross the `imagefs.inodesFree` eviction threshold.
    InodeHeadroom,
    /// A figure grew past a growth limit.
    Growth,
    /// `max-pull-size`: what a pull downloads.
    PullSize,
    /// `max-unpacked-size`: the unpacked snapshots.
    UnpackedSize,
    /// `max-layer-size`: the largest compressed layer.
    LayerSize,
    /// `max-layers`: how many layers the image has.
    LayerCount,
    /// `max-wasted`: bytes shadowed by upper layers.
    Wasted,
    /// An optional baseline does not exist (yet): the check judged the
    /// candidate alone.
    BaselineMissing,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::GcHeadroom,
        Rule::EvictionHeadroom,
        Rule::InodeHeadroom,
        Rule::Growth,
        Rule::PullSize,
        Rule::UnpackedSize,
        Rule::LayerSize,
        Rule::LayerCount,
        Rule::Wasted,
        Rule::BaselineMissing,
    ];

    /// The stable snake_case id. Absolute limits are named after their
    /// setting (`max_pull_size`), whichever level fired.
    pub fn id(self) -> &'static str {
        match self {
            Rule::GcHeadroom => "gc_headroom",
            Rule::EvictionHeadroom => "eviction_headroom",
            Rule::InodeHeadroom => "inode_headroom",
            Rule::Growth => "growth",
            Rule::PullSize => "max_pull_size",
            Rule::UnpackedSize => "max_unpacked_size",
            Rule::LayerSize => "max_layer_size",
            Rule::LayerCount => "max_layers",
            Rule::Wasted => "max_wasted",
            Rule::BaselineMissing => "baseline_missing",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// A report read back (`sizeguard comment`) names its rules by id; an
/// unknown id is an error, not a rule of its own.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        Rule::ALL
            .into_iter()
            .find(|r| r.id() == id)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule id {id:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Policy {
    pub fail_growth: Vec<GrowthRule>,
    pub warn_growth: Vec<GrowthRule>,
    pub pull_size: Levels,
    pub unpacked_size: Levels,
    pub layer_size: Levels,
    pub layers: Levels,
    pub wasted: Levels,
    /// Level of the gc-headroom rule (`fail` unless softened).
    pub gc_headroom_level: Option<Level>,
    /// Judge the whole image against the node, as if the node held none of
    /// the baseline.
    pub fresh_pull: bool,
    #[serde(skip)]
    pub store: StoreModel,
}

/// One rule that fired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub level: Level,
    /// Empty for findings not tied to one platform.
    pub platform: String,
    /// The figure the rule looked at (`node_bytes`, `layers`, ...); empty
    /// when it looked at none.
    pub figure: String,
    /// The measured value (bytes, a count, or a growth).
    pub value: i128,
    /// The limit it crossed, in the same unit.
    pub limit: i128,
    /// The limit as a person writes it (`10%`, `2.00 GiB`), for headlines.
    pub limit_text: String,
    pub message: String,
}

impl Finding {
    /// A finding of a rule family; [`evaluate`] stamps the platform.
    fn new(
        rule: Rule,
        level: Level,
        figure: &str,
        value: i128,
        limit: i128,
        message: String,
    ) -> Finding {
        Finding {
            rule,
            level,
            platform: String::new(),
            figure: figure.to_string(),
            value,
            limit,
            limit_text: String::new(),
            message,
        }
    }

    /// The warning a check gives instead of failing when an optional
    /// baseline does not exist.
    pub fn baseline_missing(message: impl Into<String>) -> Finding {
        Finding::new(Rule::BaselineMissing, Level::Warn, "", 0, 0, message.into())
    }
}

/// The node the image is judged against.
#[derive(Debug, Clone)]
pub struct NodeBudget {
    pub fs: NodeFs,
    pub headroom: Headroom,
}

/// Everything the rules look at for one platform.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub platform: String,
    pub candidate_cost: ImageCost,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_cost: Option<ImageCost>,
    /// What the rollout adds to a node that holds the baseline (the whole
    /// image without a baseline or with `--fresh-pull`).
    pub rollout_cost: ImageCost,
    pub findings: Vec<Finding>,
}

impl Evaluation {
    pub fn growth(&self, f: Figure) -> Option<i128> {
        self.baseline_cost
            .map(|b| f.of(&self.candidate_cost) as i128 - f.of(&b) as i128)
    }
}

/// What a finding adds when the figure it judged rests on compressed sizes
/// that are estimates (a local engine's uncompressed layers).
pub const ESTIMATED: &str = " (estimated: the local image's layers are uncompressed; what a push uploads is a gzip estimate)";

/// Whether a finding's figure includes compressed layer sizes: pull sizes,
/// and what the node stores unless it discards the blobs once unpacked.
fn reads_compressed_sizes(f: &Finding, store: StoreModel) -> bool {
    let blobs_kept = !store.discard_unpacked_layers;
    match f.rule {
        Rule::PullSize | Rule::LayerSize => true,
        Rule::GcHeadroom | Rule::EvictionHeadroom => blobs_kept,
        Rule::Growth => {
            f.figure == Figure::PullBytes.name()
                || (f.figure == Figure::NodeBytes.name() && blobs_kept)
        }
        Rule::InodeHeadroom
        | Rule::UnpackedSize
        | Rule::LayerCount
        | Rule::Wasted
        | Rule::BaselineMissing => false,
    }
}

/// Applies every rule to one platform's candidate (and baseline).
pub fn evaluate(
    policy: &Policy,
    candidate: &ImageReport,
    baseline: Option<&ImageReport>,
    node: Option<&NodeBudget>,
) -> Evaluation {
    let cand = image_cost(candidate, policy.store);
    let base = baseline.map(|b| image_cost(b, policy.store));
    let incremental = baseline.is_some() && !policy.fresh_pull;
    let rollout = match baseline {
        Some(b) if incremental => rollout_cost(candidate, b, policy.store),
        _ => cand,
    };
    let mut findings = Vec::new();
    if let Some(n) = node {
        let what = if incremental {
            "rollout cost"
        } else {
            "node_bytes"
        };
        let gc_level = policy.gc_headroom_level.unwrap_or(Level::Fail);
        findings.extend(headroom::findings(n, &rollout, what, gc_level));
    }
    if let Some(b) = &base {
        findings.extend(growth::findings(
            &policy.fail_growth,
            &policy.warn_growth,
            &cand,
            b,
        ));
    }
    findings.extend(limits::findings(policy, candidate, &cand));
    let platform = candidate.image.platform.to_string();
    let estimated = candidate.compressed_estimated();
    for f in &mut findings {
        f.platform.clone_from(&platform);
        if estimated && reads_compressed_sizes(f, policy.store) {
            f.message.push_str(ESTIMATED);
        }
    }
    Evaluation {
        platform,
        candidate_cost: cand,
        baseline_cost: base,
        rollout_cost: rollout,
        findings,
    }
}

#[cfg(test)]
mod tests;
