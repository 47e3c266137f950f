//! The rules: pure functions from measured figures to findings. Every rule
//! has two levels, `warn` (comment, don't block) and `fail` (block), because
//! teams want "tell me above X, stop me above Y".
//!
//! One file per rule family, each a function from figures to its findings:
//! [`headroom`] (the node's GC, eviction and inode headroom), [`growth`]
//! (candidate against baseline), [`limits`] (absolute sizes and counts).
//! [`evaluate`] runs them in that order, which is the order findings are
//! reported in.

pub mod dive;
pub mod growth;
pub mod headroom;
pub mod limits;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analyze::ImageReport;
use crate::budget::cost::{ImageCost, StoreModel, image_cost, rollout_cost};
use crate::budget::kubelet::{Headroom, NodeFs};
use crate::budget::verdict::Level;

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
    /// A configured rule could not be judged (growth without a baseline,
    /// node settings without a node).
    NotEvaluated,
    /// No rule judged the image at all: a pass would mean nothing.
    NothingJudged,
    /// dive's `lowestEfficiency`: the efficiency score is below it.
    LowestEfficiency,
    /// dive's `highestWastedBytes`: its wasted bytes are above it.
    HighestWastedBytes,
    /// dive's `highestUserWastedPercent`: wasted bytes over the bytes of
    /// the layers above the first are above it.
    HighestUserWastedPercent,
}

impl Rule {
    pub const ALL: [Rule; 15] = [
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
        Rule::NotEvaluated,
        Rule::NothingJudged,
        Rule::LowestEfficiency,
        Rule::HighestWastedBytes,
        Rule::HighestUserWastedPercent,
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
            Rule::NotEvaluated => "not_evaluated",
            Rule::NothingJudged => "nothing_judged",
            Rule::LowestEfficiency => "lowest_efficiency",
            Rule::HighestWastedBytes => "highest_wasted_bytes",
            Rule::HighestUserWastedPercent => "highest_user_wasted_percent",
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
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
    /// The default warnings (growth of `node_bytes` over 10 %, wasted bytes
    /// over 10 % of the image) apply where no rule of the user covers them.
    #[serde(default)]
    pub default_rules: bool,
    /// dive's CI rules (--lowest-efficiency, --highest-wasted-bytes,
    /// --highest-user-wasted-percent, --dive-ci); null is off.
    #[serde(default)]
    pub dive: dive::DiveRules,
    /// How the node keeps images: the runtime model every node figure is
    /// computed with.
    #[serde(default)]
    pub store: StoreModel,
    /// Node settings were given (GC or eviction thresholds, the GC rule's
    /// level): without a node they judge nothing, and the report says so.
    #[serde(skip)]
    pub node_expected: bool,
}

impl Policy {
    /// Whether some absolute limit is set (or the default wasted-bytes warning).
    fn has_limits(&self) -> bool {
        let set = |l: &Levels| l.warn.is_some() || l.fail.is_some();
        [
            &self.pull_size,
            &self.unpacked_size,
            &self.layer_size,
            &self.layers,
            &self.wasted,
        ]
        .into_iter()
        .any(set)
            || self.default_rules
            || self.dive.any()
    }

    /// The user's growth rules, as written (`max 10%, warn node_bytes=5%`).
    fn growth_text(&self) -> String {
        fn show<'a>(level: &'a str, rules: &'a [GrowthRule]) -> impl Iterator<Item = String> + 'a {
            rules.iter().map(move |g| {
                let v = match g.limit {
                    GrowthLimit::Percent(x) => format!("{x}%"),
                    GrowthLimit::Amount(x) => crate::units::human_bytes(x),
                };
                match g.figure {
                    Some(f) => format!("{level} {}={v}", f.name()),
                    None => format!("{level} {v}"),
                }
            })
        }
        show("max", &self.fail_growth)
            .chain(show("warn", &self.warn_growth))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a finding judged: a growth figure, or one the absolute, node and
/// dive rules read. Reports write it by [`FindingFigure::name`], the one
/// spelling of each, as rules are written by their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingFigure {
    /// The finding looked at no figure (a missing baseline, a rule that
    /// could not be judged).
    Nothing,
    PullBytes,
    NodeBytes,
    /// What the node holds while pulling (layer blobs not yet discarded).
    PeakPullBytes,
    DiskBytes,
    Inodes,
    PeakPullInodes,
    Layers,
    WastedBytes,
    CompressedBytes,
    Efficiency,
    DiveWastedBytes,
    UserWastedRatio,
}

impl FindingFigure {
    pub const ALL: [FindingFigure; 13] = [
        FindingFigure::Nothing,
        FindingFigure::PullBytes,
        FindingFigure::NodeBytes,
        FindingFigure::PeakPullBytes,
        FindingFigure::DiskBytes,
        FindingFigure::Inodes,
        FindingFigure::PeakPullInodes,
        FindingFigure::Layers,
        FindingFigure::WastedBytes,
        FindingFigure::CompressedBytes,
        FindingFigure::Efficiency,
        FindingFigure::DiveWastedBytes,
        FindingFigure::UserWastedRatio,
    ];

    /// The name reports and `--figure`-style settings use.
    pub fn name(self) -> &'static str {
        match self {
            FindingFigure::Nothing => "",
            FindingFigure::PullBytes => "pull_bytes",
            FindingFigure::NodeBytes => "node_bytes",
            FindingFigure::PeakPullBytes => "peak_pull_bytes",
            FindingFigure::DiskBytes => "disk_bytes",
            FindingFigure::Inodes => "inodes",
            FindingFigure::PeakPullInodes => "peak_pull_inodes",
            FindingFigure::Layers => "layers",
            FindingFigure::WastedBytes => "wasted_bytes",
            FindingFigure::CompressedBytes => "compressed_bytes",
            FindingFigure::Efficiency => "efficiency",
            FindingFigure::DiveWastedBytes => "dive_wasted_bytes",
            FindingFigure::UserWastedRatio => "user_wasted_ratio",
        }
    }
}

impl Serialize for FindingFigure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A report read back names the figure; an unknown name is an error.
impl<'de> Deserialize<'de> for FindingFigure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        FindingFigure::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown finding figure {name:?}")))
    }
}

impl From<Figure> for FindingFigure {
    fn from(f: Figure) -> FindingFigure {
        match f {
            Figure::PullBytes => FindingFigure::PullBytes,
            Figure::NodeBytes => FindingFigure::NodeBytes,
            Figure::DiskBytes => FindingFigure::DiskBytes,
            Figure::Inodes => FindingFigure::Inodes,
        }
    }
}

/// A finding's figure is a growth figure when it names the same one.
impl PartialEq<Figure> for FindingFigure {
    fn eq(&self, other: &Figure) -> bool {
        *self == FindingFigure::from(*other)
    }
}

/// One rule that fired.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    pub rule: Rule,
    pub level: Level,
    /// Empty for findings not tied to one platform.
    pub platform: String,
    /// The figure the rule looked at (`node_bytes`, `layers`, ...); an
    /// empty string in reports when it looked at none.
    #[schemars(with = "String")]
    pub figure: FindingFigure,
    /// The measured value (bytes, a count, or a growth); for dive's ratio
    /// rules (lowest_efficiency, highest_user_wasted_percent),
    /// ten-thousandths.
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
        figure: impl Into<FindingFigure>,
        value: i128,
        limit: i128,
        message: String,
    ) -> Finding {
        Finding {
            rule,
            level,
            platform: String::new(),
            figure: figure.into(),
            value,
            limit,
            limit_text: String::new(),
            message,
        }
    }

    /// The warning a check gives instead of failing when an optional
    /// baseline does not exist.
    pub fn baseline_missing(message: impl Into<String>) -> Finding {
        Finding::new(
            Rule::BaselineMissing,
            Level::Warn,
            FindingFigure::Nothing,
            0,
            0,
            message.into(),
        )
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
        f.growth(&self.candidate_cost, self.baseline_cost.as_ref())
    }
}

/// What a default warning's message adds: where it comes from and how to
/// turn it off.
pub const DEFAULT_NOTE: &str = " (a default warning: --no-default-rules turns it off)";

/// What a finding adds when the figure it judged rests on compressed sizes
/// that are estimates (a local engine's uncompressed layers).
pub const ESTIMATED: &str = " (estimated: the local image's layers are uncompressed; what a push uploads is a gzip estimate)";

/// Whether a finding's figure includes compressed layer sizes: pull sizes,
/// the peak of a pull, and what the node stores unless it discards the
/// blobs once unpacked.
fn reads_compressed_sizes(f: &Finding, store: StoreModel) -> bool {
    let blobs_kept = store.runtime.keeps_layer_blobs();
    match f.rule {
        Rule::PullSize | Rule::LayerSize => true,
        Rule::GcHeadroom | Rule::EvictionHeadroom => {
            blobs_kept || f.figure == FindingFigure::PeakPullBytes
        }
        Rule::Growth => {
            f.figure == Figure::PullBytes || (f.figure == Figure::NodeBytes && blobs_kept)
        }
        Rule::InodeHeadroom
        | Rule::UnpackedSize
        | Rule::LayerCount
        | Rule::Wasted
        | Rule::BaselineMissing
        | Rule::NotEvaluated
        | Rule::NothingJudged
        | Rule::LowestEfficiency
        | Rule::HighestWastedBytes
        | Rule::HighestUserWastedPercent => false,
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
        if policy.default_rules {
            findings.extend(growth::default_warning(policy, &cand, b));
        }
    }
    findings.extend(limits::findings(policy, candidate, &cand));
    if policy.default_rules {
        findings.extend(limits::default_wasted_warning(policy, candidate));
    }
    findings.extend(dive::findings(&policy.dive, candidate));
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

/// What a check could not judge, as findings not tied to a platform: the
/// user's growth rules where a platform has no baseline, node settings
/// without a node, and a check where no rule judged anything.
pub fn unjudged(policy: &Policy, node_given: bool, evaluations: &[&Evaluation]) -> Vec<Finding> {
    let mut out = Vec::new();
    let user_growth = !policy.fail_growth.is_empty() || !policy.warn_growth.is_empty();
    let without: Vec<&str> = evaluations
        .iter()
        .filter(|e| e.baseline_cost.is_none())
        .map(|e| e.platform.as_str())
        .collect();
    if user_growth && !without.is_empty() {
        out.push(Finding::new(
            Rule::NotEvaluated,
            Level::Warn,
            FindingFigure::Nothing,
            0,
            0,
            format!(
                "growth rules ({}) not evaluated: no baseline to compare {} with",
                policy.growth_text(),
                if evaluations.len() > 1 {
                    without.join(", ")
                } else {
                    "the candidate".to_string()
                }
            ),
        ));
    }
    if policy.node_expected && !node_given {
        out.push(Finding::new(
            Rule::NotEvaluated,
            Level::Warn,
            FindingFigure::Nothing,
            0,
            0,
            "node rules (GC and eviction headroom) not evaluated: no node given (--node-capacity, --node-stats or --node-profile)".to_string(),
        ));
    }
    let growth_judged = (user_growth || policy.default_rules) && without.len() < evaluations.len();
    if !node_given && !growth_judged && !policy.has_limits() {
        out.push(Finding::new(
            Rule::NothingJudged,
            Level::Warn,
            FindingFigure::Nothing,
            0,
            0,
            "no rule judged this image: give a node (--node-capacity), a baseline with growth limits (--baseline, --max-growth) or size limits (--max-pull-size)".to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
