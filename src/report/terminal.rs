//! `--format short`: the verdict in a few lines, for a terminal and the
//! pre-push hook: the key figures, the top reasons, the largest files the
//! candidate adds, and how to see the full report. Colour only when the
//! caller says the output is a terminal.

use std::fmt::Write;

use super::Renderer;
use crate::analyze::ImageReport;
use crate::analyze::layer_diff::LayerChange;
use crate::budget::Verdict;
use crate::budget::rules::{Figure, Finding};
use crate::budget::verdict::{CheckReport, Level, PlatformCheck};
use crate::measure::layer::FileSize;
use crate::units::{human_bytes, human_delta};

/// Reasons and files shown; the rest is counted.
const TOP_REASONS: usize = 3;
const TOP_FILES: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct Terminal {
    /// ANSI colours (the caller knows whether its output is a terminal).
    pub color: bool,
    /// The command that shows the full report.
    pub full_report: Option<String>,
}

impl Terminal {
    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn verdict(&self, v: Verdict) -> String {
        match v {
            Verdict::Pass => self.paint("PASS", "1;32"),
            Verdict::Warn => self.paint("WARN", "1;33"),
            Verdict::Fail => self.paint("FAIL", "1;31"),
        }
    }

    fn level(&self, l: Level) -> String {
        match l {
            Level::Warn => self.paint("warn", "33"),
            Level::Fail => self.paint("fail", "31"),
        }
    }
}

impl Renderer for Terminal {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        let mut out = String::new();
        for r in reports {
            let t = &r.totals;
            let _ = writeln!(
                out,
                "{} {}: {} layers, pull {}{}, unpacked {}, {} inodes",
                r.image.reference,
                r.image.platform,
                r.layers.len(),
                human_bytes(t.compressed_bytes),
                if r.compressed_estimated() {
                    " (est.)"
                } else {
                    ""
                },
                human_bytes(t.disk_bytes),
                t.inodes
            );
        }
        out
    }

    fn render_check(&self, r: &CheckReport) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sizeguard: {} {}",
            r.image_name(),
            self.verdict(r.verdict)
        );
        if let Some(p) = worst_platform(r) {
            figures_line(p, r.platforms.len() > 1, r.policy.store, &mut out);
        }
        self.reasons(r, &mut out);
        if let Some(n) = &r.node {
            let _ = writeln!(
                out,
                "  {}: {}",
                crate::report::node_title(&n.name),
                crate::report::escape::plain(&n.used_text())
            );
        }
        if let Some(p) = worst_platform(r) {
            files(p, &mut out);
        }
        let _ = writeln!(
            out,
            "full report: {}",
            self.full_report
                .as_deref()
                .unwrap_or("run the check again with --format table")
        );
        out
    }
}

impl Terminal {
    /// The most severe findings first, at most [`TOP_REASONS`].
    fn reasons(&self, r: &CheckReport, out: &mut String) {
        let mut findings: Vec<&Finding> = r.findings().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.level));
        for f in findings.iter().take(TOP_REASONS) {
            let _ = writeln!(out, "  {} {}: {}", self.level(f.level), f.rule, f.message);
        }
        if findings.len() > TOP_REASONS {
            let _ = writeln!(out, "  … and {} more", findings.len() - TOP_REASONS);
        }
    }
}

/// The platform with the most severe finding (the first on a tie).
fn worst_platform(r: &CheckReport) -> Option<&PlatformCheck> {
    r.platforms.iter().reduce(|worst, p| {
        let level = |p: &PlatformCheck| p.evaluation.findings.iter().map(|f| f.level).max();
        if level(p) > level(worst) { p } else { worst }
    })
}

/// Pull size, what the node stores, and the growth of both.
fn figures_line(
    p: &PlatformCheck,
    name_platform: bool,
    store: crate::budget::cost::StoreModel,
    out: &mut String,
) {
    let e = &p.evaluation;
    let growth = |f: Figure| {
        e.growth(f)
            .map(|g| format!(" ({})", human_delta(g)))
            .unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "  {}pull {}{}{}, on the node {}{}, rollout adds {} on {}",
        if name_platform {
            format!("{}: ", e.platform)
        } else {
            String::new()
        },
        human_bytes(e.candidate_cost.pull_bytes),
        if p.candidate.compressed_estimated() {
            " (est.)"
        } else {
            ""
        },
        growth(Figure::PullBytes),
        human_bytes(e.candidate_cost.node_bytes),
        growth(Figure::NodeBytes),
        crate::report::judged_cost(&e.rollout_cost),
        store.describe()
    );
}

/// The largest files of the layers the baseline lacks (of the whole image
/// without a baseline).
fn files(p: &PlatformCheck, out: &mut String) {
    let mut new: Vec<&FileSize> = if p.baseline.is_some() {
        p.layers
            .iter()
            .filter(|l| matches!(l.change, LayerChange::Changed | LayerChange::Added))
            .flat_map(|l| &l.largest_files)
            .collect()
    } else {
        p.candidate.largest_files.iter().collect()
    };
    if new.is_empty() {
        return;
    }
    new.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    new.dedup_by(|a, b| a.path == b.path);
    let _ = writeln!(
        out,
        "  largest {}files:",
        if p.baseline.is_some() { "new " } else { "" }
    );
    for f in new.iter().take(TOP_FILES) {
        let _ = writeln!(out, "    {:>10}  /{}", human_bytes(f.size), f.path);
    }
}
