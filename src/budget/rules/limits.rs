//! Absolute limits: sizes and counts a candidate may not exceed whatever
//! its baseline was (pull size, unpacked size, largest layer, layer count,
//! wasted bytes). They catch the image that was already too big and the
//! first release, which has no baseline to grow from.

use serde::{Deserialize, Serialize};

use super::{Finding, FindingFigure, Policy, Rule};
use crate::analyze::ImageReport;
use crate::budget::cost::ImageCost;
use crate::budget::verdict::Level;
use crate::units::human_bytes;

/// A threshold at two levels.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Levels {
    pub warn: Option<u64>,
    pub fail: Option<u64>,
}

impl Levels {
    /// The most severe level whose limit `value` exceeds, and that limit.
    pub fn exceeded(&self, value: u64) -> Option<(Level, u64)> {
        match (self.fail, self.warn) {
            (Some(f), _) if value > f => Some((Level::Fail, f)),
            (_, Some(w)) if value > w => Some((Level::Warn, w)),
            _ => None,
        }
    }
}

/// The absolute limits' findings for `candidate`, whose cost is `cost`.
pub fn findings(policy: &Policy, candidate: &ImageReport, cost: &ImageCost) -> Vec<Finding> {
    let bytes = &human_bytes;
    let count = &|v: u64| v.to_string();
    let layers = candidate.layers.len() as u64;
    [
        Limit::new(Rule::PullSize, FindingFigure::PullBytes, "pull size", bytes)
            .check(&policy.pull_size, cost.pull_bytes),
        Limit::new(
            Rule::UnpackedSize,
            FindingFigure::DiskBytes,
            "unpacked size",
            bytes,
        )
        .check(&policy.unpacked_size, cost.disk_bytes),
        Limit::new(
            Rule::LayerCount,
            FindingFigure::Layers,
            "layer count",
            count,
        )
        .check(&policy.layers, layers),
        Limit::new(
            Rule::Wasted,
            FindingFigure::WastedBytes,
            "wasted (shadowed) bytes",
            bytes,
        )
        .check(&policy.wasted, candidate.wasted_bytes),
        largest_layer(policy, candidate),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// One absolute limit: which rule, on which figure, and how it reads.
struct Limit<'a> {
    rule: Rule,
    figure: FindingFigure,
    what: String,
    show: &'a dyn Fn(u64) -> String,
}

impl<'a> Limit<'a> {
    fn new(
        rule: Rule,
        figure: FindingFigure,
        what: impl Into<String>,
        show: &'a dyn Fn(u64) -> String,
    ) -> Self {
        Limit {
            rule,
            figure,
            what: what.into(),
            show,
        }
    }

    fn check(&self, levels: &Levels, value: u64) -> Option<Finding> {
        let (level, limit) = levels.exceeded(value)?;
        Some(Finding::new(
            self.rule,
            level,
            self.figure,
            value as i128,
            limit as i128,
            format!(
                "{} {} is over the {} limit",
                self.what,
                (self.show)(value),
                (self.show)(limit)
            ),
        ))
    }
}

/// The layer-size limit judges the largest compressed layer (the last of
/// equals, as `max_by_key` picks), named by position and digest.
fn largest_layer(policy: &Policy, candidate: &ImageReport) -> Option<Finding> {
    let size = |l: &crate::measure::LayerReport| {
        l.figures()
            .map_or(l.descriptor.size, |f| f.compressed_bytes)
    };
    let (i, l) = candidate
        .layers
        .iter()
        .enumerate()
        .max_by_key(|(_, l)| size(l))?;
    let what = format!(
        "layer {} ({})",
        i + 1,
        crate::measure::short_digest(&l.descriptor.digest)
    );
    Limit::new(
        Rule::LayerSize,
        FindingFigure::CompressedBytes,
        what,
        &human_bytes,
    )
    .check(&policy.layer_size, size(l))
}

/// The default wasted-bytes warning's limit, in percent of the image's
/// content bytes (Σ layers).
pub const DEFAULT_WARN_WASTED_PCT: u64 = 10;

/// The default wasted-bytes warning: bytes shadowed by upper layers over
/// 10 % of the bytes the layers carry, unless a wasted limit is set.
pub fn default_wasted_warning(policy: &Policy, candidate: &ImageReport) -> Option<Finding> {
    if policy.wasted.warn.is_some() || policy.wasted.fail.is_some() || candidate.estimated {
        return None;
    }
    let content = candidate.totals.content_bytes;
    let limit =
        content / 100 * DEFAULT_WARN_WASTED_PCT + content % 100 * DEFAULT_WARN_WASTED_PCT / 100;
    let wasted = candidate.wasted_bytes;
    if wasted <= limit {
        return None;
    }
    let mut f = Finding::new(
        Rule::Wasted,
        Level::Warn,
        FindingFigure::WastedBytes,
        wasted as i128,
        limit as i128,
        format!(
            "wasted (shadowed) bytes {} are over {DEFAULT_WARN_WASTED_PCT}% of the {} the layers carry{}",
            human_bytes(wasted),
            human_bytes(content),
            super::DEFAULT_NOTE
        ),
    );
    f.limit_text = format!("{DEFAULT_WARN_WASTED_PCT}% of the image");
    Some(f)
}
