//! Pictures of a history ([`crate::budget::history`]): every chart of one
//! (the `history` table, the pull request's Mermaid trend, the SVG charts
//! of `history --format svg` and of the dashboard) is drawn from its
//! points, and every figure on an axis or a label goes through
//! [`ChartScale`]: a chart says what the JSON says.

pub use crate::budget::history::*;

use super::json::CheckView;

impl HistoryPoint {
    /// The point a check report makes of its candidate, for `platform`
    /// (the report's first platform when `None` or not in the report):
    /// the candidate's own cost (`candidate_cost`), the platform's verdict
    /// and the node's GC headroom; its date is the candidate's `created`.
    /// `digest` is the subject the report is kept with
    /// ([`HistoryPoint::subject_of`]).
    pub fn from_check(
        view: &CheckView,
        platform: Option<&str>,
        tag: Option<String>,
        digest: String,
    ) -> HistoryPoint {
        let chosen = platform
            .and_then(|want| view.platforms.iter().find(|p| p.platform == want))
            .or_else(|| view.platforms.first());
        let created = chosen.and_then(|p| p.candidate.created.clone());
        let mut point = HistoryPoint::missing(tag, digest, created);
        point.source = PointSource::Report;
        point.verdict = Some(chosen.map_or(view.verdict, |p| p.verdict));
        if let Some(p) = chosen {
            let c = &p.candidate_cost;
            point.pull_bytes = Some(c.pull_bytes);
            point.disk_bytes = Some(c.disk_bytes);
            point.node_bytes = Some(c.node_bytes);
            point.inodes = Some(c.node_inodes);
        }
        point.gc_headroom = view.node.as_ref().map(|n| n.gc_headroom);
        point
    }

    /// The subject a check report is kept with: the index the candidate
    /// was picked from when there is one, else its manifest.
    pub fn subject_of(view: &CheckView) -> Option<String> {
        let first = view.platforms.first()?;
        Some(
            first
                .candidate
                .index_digest
                .clone()
                .unwrap_or_else(|| first.candidate_digest.clone()),
        )
    }
}

/// The one unit a chart's byte axis is drawn in: the binary unit of its
/// largest value (as [`crate::units::human_bytes`] would name it), so
/// every figure on the axis reads in one unit. A chart's numbers are
/// [`ChartScale::value`] of the JSON's bytes, printed by
/// [`ChartScale::format`]: a reader (or a test) gets the bytes back to
/// the printed precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartScale {
    /// 0 = bytes, 1 = KiB, 2 = MiB, …
    power: u32,
}

const CHART_UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

impl ChartScale {
    /// The scale for values up to `max` bytes.
    pub fn for_max(max: u64) -> ChartScale {
        let mut power = 0;
        let mut v = max;
        while v >= 1024 && (power as usize) < CHART_UNITS.len() - 1 {
            v /= 1024;
            power += 1;
        }
        ChartScale { power }
    }

    /// The scale for a set of byte figures (their largest).
    pub fn for_values(values: impl IntoIterator<Item = i128>) -> ChartScale {
        let max = values
            .into_iter()
            .map(|v| v.unsigned_abs().min(u64::MAX as u128) as u64)
            .max()
            .unwrap_or(0);
        ChartScale::for_max(max)
    }

    pub fn unit(self) -> &'static str {
        CHART_UNITS[self.power as usize]
    }

    pub fn divisor(self) -> f64 {
        1024f64.powi(self.power as i32)
    }

    /// Decimal places the chart prints: none for bytes, 3 otherwise (a
    /// thousandth of a MiB is about a KiB).
    pub fn decimals(self) -> usize {
        if self.power == 0 { 0 } else { 3 }
    }

    pub fn value(self, bytes: i128) -> f64 {
        bytes as f64 / self.divisor()
    }

    /// An axis tick, a position rather than a figure: in this unit, with
    /// only the decimals it needs (`30`, `2.5`), so the axis reads at a
    /// glance while the points keep [`ChartScale::format`]'s precision.
    pub fn tick(self, value: f64) -> String {
        let s = format!("{:.*}", self.decimals(), value);
        if s.contains('.') {
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".to_string()
            } else {
                s.to_string()
            }
        } else {
            s
        }
    }

    /// `bytes` in this unit, as the chart prints it (no unit).
    pub fn format(self, bytes: i128) -> String {
        format!("{:.*}", self.decimals(), self.value(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_the_unit_of_the_largest_value() {
        assert_eq!(ChartScale::for_max(1000).unit(), "B");
        assert_eq!(ChartScale::for_max(1024).unit(), "KiB");
        assert_eq!(ChartScale::for_max(958_464).unit(), "KiB");
        assert_eq!(ChartScale::for_max(3 << 30).unit(), "GiB");
        let s = ChartScale::for_values([450_560, -70_560, 958_464]);
        assert_eq!(s.format(958_464), "936.000");
        assert_eq!(s.format(-70_560), "-68.906");
        assert_eq!(ChartScale::for_max(512).format(512), "512");
        let mib = ChartScale::for_max(30 << 20);
        assert_eq!(mib.tick(30.0), "30");
        assert_eq!(mib.tick(2.5), "2.5");
        assert_eq!(mib.tick(0.0), "0");
        assert_eq!(mib.tick(-0.0001), "0");
    }
}
