//! The rules: pure functions from measured figures to findings. Every rule
//! has two levels, `warn` (comment, don't block) and `fail` (block), because
//! teams want "tell me above X, stop me above Y".

use std::fmt;

use serde::Serialize;

use crate::budget::cost::{ImageCost, StoreModel, image_cost, rollout_cost};
use crate::budget::kubelet::{Headroom, NodeFs};
use crate::measure::ImageReport;
use crate::units::{human_bytes, human_delta};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warn,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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

/// The figures growth rules compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    PullBytes,
    NodeBytes,
    DiskBytes,
    Inodes,
}

impl Figure {
    pub const ALL: [Figure; 4] = [
        Figure::PullBytes,
        Figure::NodeBytes,
        Figure::DiskBytes,
        Figure::Inodes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Figure::PullBytes => "pull_bytes",
            Figure::NodeBytes => "node_bytes",
            Figure::DiskBytes => "disk_bytes",
            Figure::Inodes => "inodes",
        }
    }

    /// This figure of an image's cost.
    pub fn of(self, c: &ImageCost) -> u64 {
        match self {
            Figure::PullBytes => c.pull_bytes,
            Figure::NodeBytes => c.node_bytes,
            Figure::DiskBytes => c.disk_bytes,
            Figure::Inodes => c.node_inodes,
        }
    }

    fn is_bytes(self) -> bool {
        self != Figure::Inodes
    }

    fn show(self, v: i128) -> String {
        if self.is_bytes() {
            human_delta(v)
        } else {
            format!("{v:+}")
        }
    }
}

impl std::str::FromStr for Figure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Figure::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown figure {s:?}: expected pull_bytes, node_bytes, disk_bytes or inodes"
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthLimit {
    Percent(f64),
    /// Bytes for byte figures, a count for inodes.
    Amount(u64),
}

/// A growth rule: `10%`, `200MiB`, or for one figure, `inodes=50000`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrowthRule {
    /// `None`: every figure the limit applies to (percentages: all four;
    /// byte amounts: the byte figures).
    pub figure: Option<Figure>,
    pub limit: GrowthLimit,
}

impl GrowthRule {
    pub fn parse(s: &str) -> Result<GrowthRule, String> {
        let (figure, value) = match s.split_once('=') {
            Some((f, v)) => (Some(f.trim().parse::<Figure>()?), v.trim()),
            None => (None, s.trim()),
        };
        let limit = if let Some(p) = value.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| {
                format!("invalid growth limit {s:?}: expected e.g. 10%, 200MiB or inodes=50000")
            })?;
            if !(p.is_finite() && p >= 0.0) {
                return Err(format!(
                    "invalid growth limit {s:?}: a percentage must be 0 or more"
                ));
            }
            GrowthLimit::Percent(p)
        } else {
            GrowthLimit::Amount(
                crate::units::parse_bytes(value)
                    .map_err(|e| format!("invalid growth limit {s:?}: {e}"))?,
            )
        };
        Ok(GrowthRule { figure, limit })
    }

    fn figures(&self) -> Vec<Figure> {
        match (self.figure, self.limit) {
            (Some(f), _) => vec![f],
            (None, GrowthLimit::Percent(_)) => Figure::ALL.to_vec(),
            (None, GrowthLimit::Amount(_)) => {
                Figure::ALL.into_iter().filter(|f| f.is_bytes()).collect()
            }
        }
    }
}

/// A threshold at two levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Levels {
    pub warn: Option<u64>,
    pub fail: Option<u64>,
}

impl Levels {
    /// The most severe level whose limit `value` exceeds, and that limit.
    fn exceeded(&self, value: u64) -> Option<(Level, u64)> {
        match (self.fail, self.warn) {
            (Some(f), _) if value > f => Some((Level::Fail, f)),
            (_, Some(w)) if value > w => Some((Level::Warn, w)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub level: Level,
    pub platform: String,
    pub figure: String,
    /// The measured value (bytes, a count, or a growth).
    pub value: i128,
    /// The limit it crossed, in the same unit.
    pub limit: i128,
    /// The limit as a person writes it (`10%`, `2.00 GiB`), for headlines.
    pub limit_text: String,
    pub message: String,
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

pub fn verdict(findings: &[Finding]) -> Verdict {
    match findings.iter().map(|f| f.level).max() {
        None => Verdict::Pass,
        Some(Level::Warn) => Verdict::Warn,
        Some(Level::Fail) => Verdict::Fail,
    }
}

fn pct(growth: i128, base: u64) -> f64 {
    if base == 0 {
        if growth > 0 { f64::INFINITY } else { 0.0 }
    } else {
        growth as f64 * 100.0 / base as f64
    }
}

pub fn format_pct(p: f64) -> String {
    if p.is_infinite() {
        "new".to_string()
    } else if p.abs() >= 10.0 {
        format!("{p:+.0}%")
    } else {
        format!("{p:+.1}%")
    }
}

/// Applies every rule to one platform's candidate (and baseline).
pub fn evaluate(
    policy: &Policy,
    candidate: &ImageReport,
    baseline: Option<&ImageReport>,
    node: Option<&NodeBudget>,
) -> Evaluation {
    let platform = candidate.image.platform.to_string();
    let cand = image_cost(candidate, policy.store);
    let base = baseline.map(|b| image_cost(b, policy.store));
    let rollout = match baseline {
        Some(b) if !policy.fresh_pull => rollout_cost(candidate, b, policy.store),
        _ => cand,
    };
    let mut findings: Vec<Finding> = Vec::new();
    let fire = |findings: &mut Vec<Finding>,
                rule: &str,
                level: Level,
                figure: &str,
                value: i128,
                limit: i128,
                message: String| {
        findings.push(Finding {
            rule: rule.to_string(),
            level,
            platform: platform.clone(),
            figure: figure.to_string(),
            value,
            limit,
            limit_text: String::new(),
            message,
        });
    };

    if let Some(n) = node {
        let h = &n.headroom;
        let cost = rollout.node_bytes as i128;
        let what = if baseline.is_some() && !policy.fresh_pull {
            "rollout cost"
        } else {
            "node_bytes"
        };
        if cost > h.gc_headroom {
            let level = policy.gc_headroom_level.unwrap_or(Level::Fail);
            fire(
                &mut findings,
                "gc_headroom",
                level,
                "node_bytes",
                cost,
                h.gc_headroom,
                format!(
                    "{what} {} exceeds the image GC headroom of node {} ({}) by {}: pulling it starts image garbage collection",
                    human_bytes(cost as u64),
                    n.fs.name,
                    human_signed(h.gc_headroom),
                    human_bytes((cost - h.gc_headroom) as u64)
                ),
            );
        }
        if cost > h.eviction_headroom {
            fire(
                &mut findings,
                "eviction_headroom",
                Level::Fail,
                "node_bytes",
                cost,
                h.eviction_headroom,
                format!(
                    "{what} {} exceeds the imagefs.available eviction headroom of node {} ({}) by {}: pods would be evicted",
                    human_bytes(cost as u64),
                    n.fs.name,
                    human_signed(h.eviction_headroom),
                    human_bytes((cost - h.eviction_headroom) as u64)
                ),
            );
        }
        if let Some(ih) = h.inode_headroom {
            let inodes = rollout.node_inodes as i128;
            if inodes > ih {
                fire(
                    &mut findings,
                    "inode_headroom",
                    Level::Fail,
                    "inodes",
                    inodes,
                    ih,
                    format!(
                        "{inodes} new inodes exceed the imagefs.inodesFree headroom of node {} ({ih})",
                        n.fs.name
                    ),
                );
            }
        }
    }

    if let Some(b) = &base {
        for (level, rules) in [
            (Level::Fail, &policy.fail_growth),
            (Level::Warn, &policy.warn_growth),
        ] {
            for rule in rules {
                for f in rule.figures() {
                    let growth = f.of(&cand) as i128 - f.of(b) as i128;
                    let p = pct(growth, f.of(b));
                    let (over, limit) = match rule.limit {
                        GrowthLimit::Percent(max) => {
                            (p > max, (f.of(b) as f64 * max / 100.0) as i128)
                        }
                        GrowthLimit::Amount(max) => (growth > max as i128, max as i128),
                    };
                    // One finding per figure: the fail level hides the warn.
                    let already = findings
                        .iter()
                        .any(|x| x.rule == "growth" && x.figure == f.name());
                    if over && !already {
                        let limit_text = match rule.limit {
                            GrowthLimit::Percent(max) => format!("{max}%"),
                            GrowthLimit::Amount(_) => {
                                f.show(limit).trim_start_matches('+').to_string()
                            }
                        };
                        fire(
                            &mut findings,
                            "growth",
                            level,
                            f.name(),
                            growth,
                            limit,
                            format!(
                                "{} grew {} ({}), over the {limit_text} limit",
                                f.name(),
                                f.show(growth),
                                format_pct(p)
                            ),
                        );
                        if let Some(last) = findings.last_mut() {
                            last.limit_text = limit_text;
                        }
                    }
                }
            }
        }
    }

    let absolute = |findings: &mut Vec<Finding>,
                    rule: &str,
                    levels: &Levels,
                    figure: &str,
                    value: u64,
                    bytes: bool,
                    what: String| {
        if let Some((level, limit)) = levels.exceeded(value) {
            let show = |v: u64| if bytes { human_bytes(v) } else { v.to_string() };
            fire(
                findings,
                rule,
                level,
                figure,
                value as i128,
                limit as i128,
                format!("{what} {} is over the {} limit", show(value), show(limit)),
            );
        }
    };
    absolute(
        &mut findings,
        "max_pull_size",
        &policy.pull_size,
        "pull_bytes",
        cand.pull_bytes,
        true,
        "pull size".into(),
    );
    absolute(
        &mut findings,
        "max_unpacked_size",
        &policy.unpacked_size,
        "disk_bytes",
        cand.disk_bytes,
        true,
        "unpacked size".into(),
    );
    absolute(
        &mut findings,
        "max_layers",
        &policy.layers,
        "layers",
        candidate.layers.len() as u64,
        false,
        "layer count".into(),
    );
    absolute(
        &mut findings,
        "max_wasted",
        &policy.wasted,
        "wasted_bytes",
        candidate.wasted_bytes,
        true,
        "wasted (shadowed) bytes".into(),
    );
    if let Some((i, l)) = candidate.layers.iter().enumerate().max_by_key(|(_, l)| {
        l.figures()
            .map_or(l.descriptor.size, |f| f.compressed_bytes)
    }) {
        let size = l
            .figures()
            .map_or(l.descriptor.size, |f| f.compressed_bytes);
        absolute(
            &mut findings,
            "max_layer_size",
            &policy.layer_size,
            "compressed_bytes",
            size,
            true,
            format!(
                "layer {} ({})",
                i + 1,
                crate::measure::short_digest(&l.descriptor.digest)
            ),
        );
    }

    Evaluation {
        platform: candidate.image.platform.to_string(),
        candidate_cost: cand,
        baseline_cost: base,
        rollout_cost: rollout,
        findings,
    }
}

pub fn human_signed(v: i128) -> String {
    if v < 0 {
        human_delta(v)
    } else {
        human_bytes(v.min(u64::MAX as i128) as u64)
    }
}

#[cfg(test)]
mod tests;
