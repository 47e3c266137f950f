//! The result of `sizeguard check`: what was measured, compared and judged,
//! in one structure every renderer reads, and the verdict its findings add
//! up to. Assembling it is the last pure step before rendering.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::analyze::ImageReport;
use crate::analyze::layer_diff::{LayerDiffRow, layer_diff};
use crate::budget::kubelet::{Headroom, NodeFs, Thresholds};
use crate::budget::rules::{Evaluation, Finding, NodeBudget, Policy, evaluate};
use crate::error::Error;
use crate::units::human_bytes;

/// How severe one finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Comment, don't block.
    Warn,
    /// Block.
    Fail,
}

/// What a set of findings adds up to: the most severe of them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        })
    }
}

pub fn verdict(findings: &[Finding]) -> Verdict {
    match findings.iter().map(|f| f.level).max() {
        None => Verdict::Pass,
        Some(Level::Warn) => Verdict::Warn,
        Some(Level::Fail) => Verdict::Fail,
    }
}

#[derive(Debug, Clone)]
pub struct PlatformCheck {
    pub candidate: ImageReport,
    pub baseline: Option<ImageReport>,
    pub evaluation: Evaluation,
    pub layers: Vec<LayerDiffRow>,
    /// Growth by path against the baseline (empty without one).
    pub paths: Vec<crate::analyze::paths::PathGrowth>,
}

/// Where the node's used space comes from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UsedSource {
    /// A kubelet stats summary: what the node reported.
    #[default]
    Stats,
    /// The available or used space given with the capacity.
    Given,
    /// Only the capacity was given: the node is assumed to hold the
    /// baseline (still running while the rollout pulls the candidate) and
    /// the system reserve, nothing else.
    Assumed,
}

/// The node a check is judged against, as the request gives it: before the
/// images are measured, so a capacity-only node does not yet know what it
/// holds ([`UsedSource::Assumed`]).
#[derive(Debug, Clone)]
pub struct NodeInput {
    /// The profile the node came from, or `node`.
    pub label: String,
    pub nodes: Vec<NodeFs>,
    pub used_source: UsedSource,
    /// Bytes the system's own images take (`--node-system-reserved`),
    /// added to the baseline when the used space is assumed.
    pub system_reserved_bytes: u64,
    /// The runtime the node profile names, if it names one.
    pub store: Option<crate::budget::cost::StoreModel>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeSummary {
    /// The node profile the budget came from, or `node` for a node given
    /// by flags or stats.
    pub label: String,
    /// The tightest node (the one that decides): its nodeName from stats,
    /// --node-name, or its capacity (`20 GiB node`).
    pub name: String,
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// stats: a kubelet stats summary; given: --node-used/--node-available;
    /// assumed: capacity only, the node holds the baseline and the system
    /// reserve.
    #[serde(default)]
    pub used_source: UsedSource,
    /// The assumption the used space rests on, in words; null unless assumed.
    #[serde(default)]
    pub assumption: Option<String>,
    /// The system reserve counted as used; null unless assumed.
    #[serde(default)]
    pub system_reserved_bytes: Option<u64>,
    /// The baseline's `node_bytes` counted as used; null unless assumed.
    #[serde(default)]
    pub assumed_baseline_bytes: Option<u64>,
    /// The imageFS's total and free inodes (not an image's `node_inodes`);
    /// null when the filesystem does not report them.
    #[serde(default)]
    pub inodes: Option<u64>,
    #[serde(default)]
    pub inodes_free: Option<u64>,
    pub nodes_considered: usize,
    pub usage_percent: i64,
    pub gc_headroom: i128,
    pub eviction_headroom: i128,
    /// Null when the filesystem does not report inodes.
    #[serde(default)]
    pub inode_headroom: Option<i128>,
    pub thresholds: Thresholds,
    /// The node's containerFs when its image filesystem is split
    /// (KEP-4191); not judged (writable layers live there), null otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_fs: Option<crate::budget::kubelet::ContainerFs>,
}

impl NodeSummary {
    /// Where the used space comes from, in words every format shows.
    pub fn used_text(&self) -> String {
        match (self.used_source, &self.assumption) {
            (UsedSource::Assumed, Some(text)) => text.clone(),
            (UsedSource::Assumed, None) => "capacity only: the used space is assumed".to_string(),
            (UsedSource::Given, _) => "used space as given with the capacity".to_string(),
            (UsedSource::Stats, _) => {
                "used space as the kubelet stats summary reports it".to_string()
            }
        }
    }

    /// The GC headroom this node has left once a rollout of this cost has
    /// pulled.
    pub fn headroom_left(&self, rollout: &crate::budget::cost::ImageCost) -> i128 {
        self.gc_headroom - i128::from(rollout.node_bytes)
    }
}

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub candidate_ref: String,
    pub baseline_ref: Option<String>,
    pub verdict: Verdict,
    /// Findings not tied to one platform (a missing optional baseline).
    pub general: Vec<Finding>,
    pub platforms: Vec<PlatformCheck>,
    pub node: Option<NodeSummary>,
    pub policy: Policy,
    /// The baseline repository's earlier releases, when a trend was asked
    /// for (`check --trend`): what the pull request's chart draws.
    pub history: Option<super::history::HistoryView>,
}

impl CheckReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.general.iter().chain(
            self.platforms
                .iter()
                .flat_map(|p| p.evaluation.findings.iter()),
        )
    }

    /// The short name of the candidate, for headlines: `ghcr.io/org/app:pr-7` → `app`.
    pub fn image_name(&self) -> String {
        image_name(&self.candidate_ref)
    }

    /// Bytes of GC headroom left on the tightest node after the rollout,
    /// for the platform that leaves the least.
    pub fn headroom_left(&self) -> Option<i128> {
        let node = self.node.as_ref()?;
        self.platforms
            .iter()
            .map(|p| node.headroom_left(&p.evaluation.rollout_cost))
            .min()
    }
}

/// `ghcr.io/org/app:tag` → `app`; `oci:dir/app:v2` → `app`.
pub fn image_name(reference: &str) -> String {
    let r = reference
        .strip_prefix("docker://")
        .or_else(|| {
            reference
                .split_once(':')
                .filter(|(t, _)| {
                    matches!(
                        *t,
                        "oci" | "oci-archive" | "docker-archive" | "docker-daemon" | "podman"
                    )
                })
                .map(|(_, r)| r)
        })
        .unwrap_or(reference);
    let r = r.split('@').next().unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    let name = last.split(':').next().unwrap_or(last);
    if name.is_empty() {
        reference.to_string()
    } else {
        name.to_string()
    }
}

/// What a capacity-only node is assumed to hold: `baseline` bytes (the
/// image being replaced; none without one) and the system reserve.
/// Returns the node with that much used, and the assumption in words.
fn assume_used(node: &NodeInput, baseline: Option<u64>) -> (Vec<NodeFs>, String) {
    let reserve = node.system_reserved_bytes;
    let used = baseline.unwrap_or(0).saturating_add(reserve);
    let nodes = node
        .nodes
        .iter()
        .map(|fs| NodeFs {
            available_bytes: fs.capacity_bytes.saturating_sub(used),
            ..fs.clone()
        })
        .collect();
    let reserve_text = format!("a system reserve of {}", human_bytes(reserve));
    let text = match baseline {
        Some(b) => format!(
            "capacity only: the node is assumed to hold the baseline ({}, as the runtime keeps it: the version being replaced still runs during the rollout) and {reserve_text}, nothing else",
            human_bytes(b)
        ),
        None => format!(
            "capacity only: no baseline, so the node is assumed to hold only {reserve_text}"
        ),
    };
    (nodes, text)
}

/// The node that decides (the tightest of its nodes), as the report shows
/// it and as the rules judge against it. A capacity-only node is assumed
/// to hold the largest baseline's `node_bytes`.
fn tightest_node(
    node: NodeInput,
    baselines: &[ImageReport],
    policy: &Policy,
    thresholds: Thresholds,
) -> Result<(NodeSummary, NodeBudget), Error> {
    let baseline = baselines
        .iter()
        .map(|b| crate::budget::cost::image_cost(b, policy.store).node_bytes)
        .max();
    node_holding(node, baseline, thresholds)
}

/// The tightest of a node's filesystems, a capacity-only node assumed to
/// hold `baseline` bytes (what the images being replaced occupy) besides
/// its system reserve; stats and given figures are taken as they are.
pub fn node_holding(
    node: NodeInput,
    baseline: Option<u64>,
    thresholds: Thresholds,
) -> Result<(NodeSummary, NodeBudget), Error> {
    let (nodes, assumed_baseline, assumption) = match node.used_source {
        UsedSource::Assumed => {
            let (nodes, text) = assume_used(&node, baseline);
            (nodes, baseline, Some(text))
        }
        UsedSource::Stats | UsedSource::Given => (node.nodes.clone(), None, None),
    };
    let (i, h): (usize, Headroom) = crate::budget::kubelet::tightest(&nodes, &thresholds)?;
    let fs = &nodes[i];
    let assumed = node.used_source == UsedSource::Assumed;
    let summary = NodeSummary {
        label: node.label,
        name: fs.name.clone(),
        capacity_bytes: fs.capacity_bytes,
        available_bytes: fs.available_bytes,
        used_source: node.used_source,
        assumption,
        system_reserved_bytes: assumed.then_some(node.system_reserved_bytes),
        assumed_baseline_bytes: assumed_baseline,
        inodes: fs.inodes,
        inodes_free: fs.inodes_free,
        nodes_considered: nodes.len(),
        usage_percent: h.usage_percent,
        gc_headroom: h.gc_headroom,
        eviction_headroom: h.eviction_headroom,
        inode_headroom: h.inode_headroom,
        thresholds,
        container_fs: fs.container_fs,
    };
    let budget = NodeBudget {
        fs: fs.clone(),
        headroom: h,
    };
    Ok((summary, budget))
}

/// Judges every candidate platform against the baseline of the same
/// platform and the tightest node.
pub fn assemble(
    candidate_ref: String,
    baseline_ref: Option<String>,
    candidates: Vec<ImageReport>,
    baselines: Vec<ImageReport>,
    mut general: Vec<Finding>,
    node: Option<(NodeInput, Thresholds)>,
    policy: Policy,
) -> Result<CheckReport, Error> {
    let node = node
        .map(|(node, thresholds)| tightest_node(node, &baselines, &policy, thresholds))
        .transpose()?;
    let mut platforms = Vec::new();
    for mut c in candidates {
        let b = baselines
            .iter()
            .find(|b| b.image.platform == c.image.platform)
            .cloned();
        let evaluation = evaluate(&policy, &c, b.as_ref(), node.as_ref().map(|(_, n)| n));
        let layers = b.as_ref().map(|b| layer_diff(&c, b)).unwrap_or_default();
        if let Some((summary, _)) = &node {
            price_hints_on_node(&mut c.hints, &evaluation, summary, policy.store);
        }
        platforms.push(PlatformCheck {
            candidate: c,
            baseline: b,
            evaluation,
            layers,
            paths: Vec::new(),
        });
    }
    let evaluations: Vec<&Evaluation> = platforms.iter().map(|p| &p.evaluation).collect();
    general.extend(crate::budget::rules::unjudged(
        &policy,
        node.is_some(),
        &evaluations,
    ));
    let all: Vec<Finding> = general
        .iter()
        .cloned()
        .chain(
            platforms
                .iter()
                .flat_map(|p| p.evaluation.findings.iter().cloned()),
        )
        .collect();
    Ok(CheckReport {
        candidate_ref,
        baseline_ref,
        verdict: verdict(&all),
        general,
        platforms,
        node: node.map(|(s, _)| s),
        policy,
        history: None,
    })
}

/// Each hint's saving as a share of the rollout's cost to the node and of
/// the node's GC headroom.
fn price_hints_on_node(
    hints: &mut [crate::analyze::hints::Hint],
    e: &Evaluation,
    node: &NodeSummary,
    store: crate::budget::cost::StoreModel,
) {
    let percent = |part: u64, whole: f64| (part as f64 * 100.0 / whole * 100.0).round() / 100.0;
    for h in hints {
        let blobs = if store.runtime.keeps_layer_blobs() {
            h.pull_bytes_estimate
        } else {
            0
        };
        let saved = h.disk_bytes.saturating_add(blobs);
        let rollout = e.rollout_cost.node_bytes.max(1) as f64;
        h.node = Some(crate::analyze::hints::NodeShare {
            node_bytes_estimate: saved,
            rollout_cost_percent: percent(saved, rollout),
            gc_headroom_percent: (node.gc_headroom > 0)
                .then(|| percent(saved, node.gc_headroom as f64)),
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_names() {
        use super::image_name;
        assert_eq!(image_name("ghcr.io/org/app:pr-7"), "app");
        assert_eq!(image_name("127.0.0.1:5000/team/app@sha256:abc"), "app");
        assert_eq!(image_name("oci:fixtures/demo:v2"), "demo");
        assert_eq!(image_name("alpine"), "alpine");
        assert_eq!(image_name("docker-daemon:localhost/app:dev"), "app");
    }
}
