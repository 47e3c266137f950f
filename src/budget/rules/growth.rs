//! Growth rules: how much a candidate may grow over its baseline, per
//! figure, as a percentage (`10%`) or an amount (`200MiB`,
//! `inodes=50000`). Growth is what a reviewer can act on in a pull request,
//! whatever the image's absolute size.

use serde::{Deserialize, Serialize};

use super::{Finding, FindingFigure, Rule};
use crate::budget::cost::ImageCost;
use crate::budget::verdict::Level;
use crate::error::Error;
use crate::units::human_delta;

/// The figures growth rules compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
        FindingFigure::from(self).name()
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

    /// Candidate minus baseline in this figure; None without a baseline.
    pub fn growth(self, candidate: &ImageCost, baseline: Option<&ImageCost>) -> Option<i128> {
        baseline.map(|b| i128::from(self.of(candidate)) - i128::from(self.of(b)))
    }

    pub fn is_bytes(self) -> bool {
        self != Figure::Inodes
    }

    /// A signed change of this figure, as a person reads it.
    pub fn show_delta(self, v: i128) -> String {
        if self.is_bytes() {
            human_delta(v)
        } else {
            format!("{v:+}")
        }
    }
}

impl std::str::FromStr for Figure {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Figure::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                Error::usage(format!(
                    "unknown figure {s:?}: expected pull_bytes, node_bytes, disk_bytes or inodes"
                ))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrowthLimit {
    Percent(#[schemars(range(min = 0.0))] f64),
    /// Bytes for byte figures, a count for inodes.
    Amount(u64),
}

/// A growth rule: `10%`, `200MiB`, or for one figure, `inodes=50000`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrowthRule {
    /// `None`: every figure the limit applies to (percentages: all four;
    /// byte amounts: the byte figures).
    pub figure: Option<Figure>,
    pub limit: GrowthLimit,
}

impl GrowthRule {
    /// Parses a rule as written in a flag or `sizeguard.toml`; a rule that
    /// does not parse is a usage error.
    pub fn parse(s: &str) -> Result<GrowthRule, Error> {
        let (figure, value) = match s.split_once('=') {
            Some((f, v)) => (Some(f.trim().parse::<Figure>()?), v.trim()),
            None => (None, s.trim()),
        };
        let limit = if let Some(p) = value.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| {
                Error::usage(format!(
                    "invalid growth limit {s:?}: expected e.g. 10%, 200MiB or inodes=50000"
                ))
            })?;
            if !(p.is_finite() && p >= 0.0) {
                return Err(Error::usage(format!(
                    "invalid growth limit {s:?}: a percentage must be 0 or more"
                )));
            }
            GrowthLimit::Percent(p)
        } else {
            GrowthLimit::Amount(
                crate::units::parse_bytes(value)
                    .map_err(|e| e.context(format!("invalid growth limit {s:?}")))?,
            )
        };
        Ok(GrowthRule { figure, limit })
    }

    /// The figures this rule judges.
    pub fn figures(&self) -> Vec<Figure> {
        match (self.figure, self.limit) {
            (Some(f), _) => vec![f],
            (None, GrowthLimit::Percent(_)) => Figure::ALL.to_vec(),
            (None, GrowthLimit::Amount(_)) => {
                Figure::ALL.into_iter().filter(|f| f.is_bytes()).collect()
            }
        }
    }

    /// The limit as written: `10%`, or the amount in the figure's unit.
    fn limit_text(&self, figure: Figure, limit: i128) -> String {
        match self.limit {
            GrowthLimit::Percent(max) => format!("{max}%"),
            GrowthLimit::Amount(_) => figure.show_delta(limit).trim_start_matches('+').to_string(),
        }
    }
}

/// Growth in percent of the baseline; growth from nothing is infinite.
fn pct(growth: i128, base: u64) -> f64 {
    if base == 0 {
        if growth > 0 { f64::INFINITY } else { 0.0 }
    } else {
        growth as f64 * 100.0 / base as f64
    }
}

/// `+12%`, `+3.5%`, or `new` for growth from nothing.
pub fn format_pct(p: f64) -> String {
    if p.is_infinite() {
        "new".to_string()
    } else if p.abs() >= 10.0 {
        format!("{p:+.0}%")
    } else {
        format!("{p:+.1}%")
    }
}

/// The growth rules' findings: fail rules first, then warn rules, at most
/// one finding per figure (a figure that fails is not also warned about).
pub fn findings(
    fail: &[GrowthRule],
    warn: &[GrowthRule],
    candidate: &ImageCost,
    baseline: &ImageCost,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for (level, rules) in [(Level::Fail, fail), (Level::Warn, warn)] {
        for rule in rules {
            for figure in rule.figures() {
                if out.iter().any(|x| x.figure == figure) {
                    continue;
                }
                out.extend(over_limit(rule, figure, level, candidate, baseline));
            }
        }
    }
    out
}

/// One rule on one figure: a finding when the growth is over the limit.
fn over_limit(
    rule: &GrowthRule,
    figure: Figure,
    level: Level,
    candidate: &ImageCost,
    baseline: &ImageCost,
) -> Option<Finding> {
    let base = figure.of(baseline);
    let growth = figure.of(candidate) as i128 - base as i128;
    let p = pct(growth, base);
    let (over, limit) = match rule.limit {
        GrowthLimit::Percent(max) => (p > max, (base as f64 * max / 100.0) as i128),
        GrowthLimit::Amount(max) => (growth > max as i128, max as i128),
    };
    if !over {
        return None;
    }
    let limit_text = rule.limit_text(figure, limit);
    let message = format!(
        "{} grew {} ({}), over the {limit_text} limit",
        figure.name(),
        figure.show_delta(growth),
        format_pct(p)
    );
    let mut finding = Finding::new(Rule::Growth, level, figure, growth, limit, message);
    finding.limit_text = limit_text;
    Some(finding)
}

/// The default growth warning: `node_bytes` over 10 % of the baseline's,
/// unless a rule of the user judges `node_bytes` already.
pub fn default_warning(
    policy: &super::Policy,
    candidate: &ImageCost,
    baseline: &ImageCost,
) -> Option<Finding> {
    let covered = policy
        .fail_growth
        .iter()
        .chain(&policy.warn_growth)
        .any(|r| r.figures().contains(&Figure::NodeBytes));
    if covered {
        return None;
    }
    let rule = GrowthRule {
        figure: Some(Figure::NodeBytes),
        limit: GrowthLimit::Percent(DEFAULT_WARN_GROWTH_PCT),
    };
    let mut f = over_limit(&rule, Figure::NodeBytes, Level::Warn, candidate, baseline)?;
    f.message.push_str(super::DEFAULT_NOTE);
    Some(f)
}

/// The default growth warning's limit, in percent of the baseline's `node_bytes`.
pub const DEFAULT_WARN_GROWTH_PCT: f64 = 10.0;
