//! dive's CI rules, for teams moving their `.dive-ci` over: the image's
//! efficiency score, its wasted bytes and the wasted share of the bytes the
//! user's layers add, with dive's own definitions (wagoodman/dive):
//!
//! - efficiency (`dive/filetree/efficiency.go`): each layer's leaf paths
//!   are visits, at the entry's tar size (a file's content, 0 for the
//!   rest); a whiteout is a visit of the path it deletes, at the content of
//!   the directory it deletes below it (0 for anything else). The score is
//!   Σ over paths of the smallest visit / Σ of every visit, 1 when nothing
//!   was visited. Tallied by [`crate::measure::merged::MergedFs`].
//! - wasted bytes (`dive/image/analysis.go`): Σ of every visit of the paths
//!   visited more than once, the surviving copy included.
//! - user wasted percent (same file): wasted bytes / the bytes of every
//!   layer but the first (the base image's), a ratio from 0 to 1 despite
//!   its name.
//! - the rules (`cmd/dive/cli/internal/command/ci/rules.go`): fail when the
//!   efficiency is below `lowestEfficiency`, the wasted bytes above
//!   `highestWastedBytes` (a go-humanize size: `20MB` is 20 000 000
//!   bytes, `20MiB` 20 971 520), the ratio above
//!   `highestUserWastedPercent`; a value of `disabled`, `off`, `false` or
//!   empty turns a rule off. Thresholds outside 0..1 are refused.
//!
//! Where sizeguard's reading differs: a layer's bytes are its
//! `content_bytes` (a path written twice in one tar counts once, where dive
//! sums both headers); a directory only implied by its children's paths is
//! still a directory when a whiteout deletes it; a whiteout of a path the
//! layers below lack is no visit (dive stops walking that layer there); an
//! opaque directory hides the lower layers' content from later whiteouts'
//! sizes (dive ignores opaque markers).

use serde::{Deserialize, Serialize};

use super::{Finding, FindingFigure, Rule};
use crate::analyze::ImageReport;
use crate::budget::verdict::Level;
use crate::error::Error;
use crate::units::human_bytes;

/// The three rules; `None` is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiveRules {
    #[schemars(range(min = 0.0, max = 1.0))]
    pub lowest_efficiency: Option<f64>,
    pub highest_wasted_bytes: Option<u64>,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub highest_user_wasted_percent: Option<f64>,
}

impl DiveRules {
    pub fn any(&self) -> bool {
        self.lowest_efficiency.is_some()
            || self.highest_wasted_bytes.is_some()
            || self.highest_user_wasted_percent.is_some()
    }
}

/// dive's figures of the image, with dive's definitions (see README,
/// "dive's CI rules").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiveAnalysis {
    /// dive's efficiency score: Σ smallest visit per path / Σ visits; 1
    /// when nothing was visited.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f64,
    /// Σ of every visit of the paths visited in more than one layer, the
    /// surviving copy included.
    pub wasted_bytes: u64,
    /// content_bytes of every layer but the first.
    pub user_bytes: u64,
    /// wasted_bytes / user_bytes (dive's highestUserWastedPercent, a
    /// ratio); null when user_bytes is 0.
    #[schemars(range(min = 0.0))]
    pub user_wasted_ratio: Option<f64>,
}

/// dive's figures of an image, unless some layer was only probed.
pub fn analysis(r: &ImageReport) -> Option<DiveAnalysis> {
    let d = r.dive?;
    let user_bytes = r
        .layers
        .iter()
        .skip(1)
        .filter_map(|l| l.figures())
        .fold(0u64, |sum, f| sum.saturating_add(f.content_bytes));
    Some(DiveAnalysis {
        score: d.efficiency,
        wasted_bytes: d.wasted_bytes,
        user_bytes,
        user_wasted_ratio: (user_bytes > 0).then(|| d.wasted_bytes as f64 / user_bytes as f64),
    })
}

/// Ratios travel in findings as ten-thousandths.
fn bp(x: f64) -> i128 {
    (x * 10_000.0).round() as i128
}

/// The findings of dive's rules on one candidate. dive's rules only fail.
pub fn findings(rules: &DiveRules, candidate: &ImageReport) -> Vec<Finding> {
    let Some(a) = analysis(candidate) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(t) = rules.lowest_efficiency
        && a.score < t
    {
        out.push(finding(
            Rule::LowestEfficiency,
            FindingFigure::Efficiency,
            bp(a.score),
            bp(t),
            format!("{t}"),
            format!(
                "image efficiency is too low (efficiency {:.4} < {t}; dive's lowestEfficiency)",
                a.score
            ),
        ));
    }
    if let Some(t) = rules.highest_wasted_bytes
        && a.wasted_bytes > t
    {
        out.push(finding(
            Rule::HighestWastedBytes,
            FindingFigure::DiveWastedBytes,
            i128::from(a.wasted_bytes),
            i128::from(t),
            human_bytes(t),
            format!(
                "too many bytes wasted ({} > {}; dive's highestWastedBytes)",
                human_bytes(a.wasted_bytes),
                human_bytes(t)
            ),
        ));
    }
    if let Some(t) = rules.highest_user_wasted_percent {
        // dive divides by zero user bytes too: any waste is then infinitely
        // over, and none is not over (NaN compares false).
        let over = match a.user_wasted_ratio {
            Some(r) => r > t,
            None => a.wasted_bytes > 0,
        };
        if over {
            let shown = a
                .user_wasted_ratio
                .map_or_else(|| "∞ (no user bytes)".to_string(), |r| format!("{r:.4}"));
            out.push(finding(
                Rule::HighestUserWastedPercent,
                FindingFigure::UserWastedRatio,
                a.user_wasted_ratio.map_or(i128::from(u64::MAX), bp),
                bp(t),
                format!("{t}"),
                format!(
                    "too many bytes wasted relative to the user's layers ({shown} > {t}; dive's highestUserWastedPercent)"
                ),
            ));
        }
    }
    out
}

fn finding(
    rule: Rule,
    figure: FindingFigure,
    value: i128,
    limit: i128,
    limit_text: String,
    message: String,
) -> Finding {
    let mut f = Finding::new(rule, Level::Fail, figure, value, limit, message);
    f.limit_text = limit_text;
    f
}

/// dive's word for a rule that is off.
fn disabled(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "disabled" | "off" | "false"
    )
}

/// A ratio from 0 to 1 (`lowestEfficiency`, `highestUserWastedPercent`).
pub fn parse_ratio(key: &str, v: &str) -> Result<Option<f64>, Error> {
    if disabled(v) {
        return Ok(None);
    }
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("{key}: {v:?} is not a number from 0 to 1")))?;
    if !(0.0..=1.0).contains(&x) {
        return Err(Error::usage(format!(
            "{key}: {v:?} is outside the range 0 to 1"
        )));
    }
    Ok(Some(x))
}

/// A size as dive reads it (go-humanize): a number, then an optional
/// unit, any case: none or `B` bytes, `K`/`KB` 1000, `KI`/`KIB` 1024, and
/// so on up to `E`.
pub fn parse_bytes(key: &str, v: &str) -> Result<Option<u64>, Error> {
    if disabled(v) {
        return Ok(None);
    }
    let bad = || {
        Error::usage(format!(
            "{key}: {v:?} is not a size (e.g. 20MB, 20MiB, 1048576)"
        ))
    };
    let t: String = v.trim().chars().filter(|&c| c != ',').collect();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let (base, power): (f64, i32) = match unit {
        "" => (1.0, 0),
        "k" | "m" | "g" | "t" | "p" | "e" => (1000.0, 1 + "kmgtpe".find(unit).unwrap_or(0) as i32),
        "ki" | "mi" | "gi" | "ti" | "pi" | "ei" => {
            (1024.0, 1 + "kmgtpe".find(&unit[..1]).unwrap_or(0) as i32)
        }
        _ => return Err(bad()),
    };
    let bytes = n * base.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Some(bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::layer::{EntryKind, IndexEntry, LayerIndex};
    use crate::measure::merged::MergedFs;

    fn e(path: &str, kind: EntryKind) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind,
        }
    }

    fn f(path: &str, size: u64) -> IndexEntry {
        e(path, EntryKind::File { size })
    }

    fn stack(layers: &[Vec<IndexEntry>]) -> MergedFs {
        let mut m = MergedFs::new();
        for l in layers {
            m.apply(&LayerIndex::from_entries(l.iter()));
        }
        m
    }

    #[test]
    fn efficiency_follows_dive_definitions_by_hand() {
        // Layer 0: a (100), d/x (30), d/y (20). Layer 1: a again (10), d
        // deleted. Visits: a 100 and 10; d/x 30; d/y 20; d (the whiteout)
        // at the content it deletes, 50.
        let m = stack(&[
            vec![
                f("a", 100),
                e("d", EntryKind::Dir),
                f("d/x", 30),
                f("d/y", 20),
            ],
            vec![f("a", 10), e("d", EntryKind::Whiteout)],
        ]);
        let d = m.dive();
        // Σ smallest = 10 + 30 + 20 + 50 = 110; Σ visits = 210.
        assert!((d.efficiency - 110.0 / 210.0).abs() < 1e-12, "{d:?}");
        assert_eq!(d.wasted_bytes, 110);
    }

    #[test]
    fn deleting_a_file_zeroes_its_smallest_visit() {
        // dive sizes the whiteout of a file at 0: the path's smallest
        // visit is 0, so its 500 bytes count against the score in full.
        let m = stack(&[
            vec![f("big", 500), f("keep", 500)],
            vec![e("big", EntryKind::Whiteout)],
        ]);
        let d = m.dive();
        assert_eq!(d.efficiency, 0.5);
        assert_eq!(d.wasted_bytes, 500);
    }

    #[test]
    fn dive_test_vector_with_real_directories() {
        // dive's own TestEfficiency stack (efficiency_test.go): its
        // directories are implied, and dive sizes their whiteout at 0, for
        // 0.75. Here the deleted directory holds what layer 1 left there
        // (nginx.conf 5000 and public 3000), so the whiteout is a visit
        // of 8000: (2000 + 3000 + 10000 + 8000) / (7000 + 3000 + 10000 + 8000).
        let m = stack(&[
            vec![f("etc/nginx/nginx.conf", 2000), f("etc/nginx/public", 3000)],
            vec![f("etc/nginx/nginx.conf", 5000), f("etc/athing", 10000)],
            vec![e("etc/nginx", EntryKind::Whiteout)],
        ]);
        let d = m.dive();
        assert!((d.efficiency - 23000.0 / 28000.0).abs() < 1e-12, "{d:?}");
        assert_eq!(d.wasted_bytes, 7000);
        // An empty image is fully efficient (dive's scratch test).
        assert_eq!(stack(&[vec![f("nothing", 0)]]).dive().efficiency, 1.0);
    }

    #[test]
    fn sizes_and_ratios_read_as_dive_reads_them() {
        assert_eq!(parse_bytes("k", "20MB").unwrap(), Some(20_000_000));
        assert_eq!(parse_bytes("k", "20MiB").unwrap(), Some(20 << 20));
        assert_eq!(parse_bytes("k", "1.5 kb").unwrap(), Some(1500));
        assert_eq!(parse_bytes("k", "1,000").unwrap(), Some(1000));
        assert_eq!(parse_bytes("k", "disabled").unwrap(), None);
        assert!(parse_bytes("k", "20XB").is_err());
        assert_eq!(parse_ratio("k", "0.95").unwrap(), Some(0.95));
        assert_eq!(parse_ratio("k", "Off").unwrap(), None);
        assert!(parse_ratio("k", "1.5").is_err());
        assert!(parse_ratio("k", "x").is_err());
    }
}
