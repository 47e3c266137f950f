//! `--format markdown`: the text a pull-request comment and the GitHub step
//! summary show. The first line is the verdict with the key numbers, so it
//! reads well in a notification; everything else is inside `<details>`.

use std::borrow::Cow;
use std::fmt::Write;

use super::Renderer;
use super::escape::{md_code, md_code_cell, md_text, plain};
use super::history::HistoryPoint;
use super::trend;
use super::view::{CheckView, ImageView, PlatformView};
use crate::analyze::ImageReport;
use crate::analyze::layer_diff::LayerChange;
use crate::budget::rules::{Figure, Finding, Rule, format_pct};
use crate::budget::verdict::{CheckReport, Level, Verdict};
use crate::units::{human_bytes, human_delta, human_signed};

pub struct Markdown;

impl Markdown {
    pub fn render_check_text(&self, r: &CheckReport) -> String {
        Renderer::render_check(self, r)
    }

    /// The check report as Markdown, from what the renderer reads of it
    /// (also a report read back from JSON by `sizeguard comment`).
    pub fn render_view(&self, r: &CheckView) -> String {
        let mut out = headline(r, Style::Markdown);
        trend_part(r, &mut out);
        out.push_str("\n\n<details><summary>sizeguard report</summary>\n\n");
        let _ = writeln!(
            out,
            "Candidate {}{}\n",
            md_code(&r.candidate),
            r.baseline
                .as_ref()
                .map(|b| format!(", baseline {}", md_code(b)))
                .unwrap_or_default()
        );
        findings_list(r, &mut out);
        for p in &r.platforms {
            let _ = writeln!(out, "#### {}\n", md_text(&p.platform));
            figures_table(p, r.policy.store, &mut out);
            efficiency_line(&p.candidate, &mut out);
            layers_table(p, &mut out);
            paths_table(r, p, &mut out);
            largest_files_line(&p.candidate, &mut out);
            hints_list(&p.candidate.hints, &mut out);
        }
        node_table(r, &mut out);
        let _ = writeln!(out, "Policy: {}\n", policy_line(r));
        out.push_str("</details>\n");
        out
    }
}

/// The baseline repository's last releases and this candidate as a
/// chart, under the headline and outside `<details>`: the trend is part
/// of what a reader sees without opening the report. Without a history
/// (no `--trend`) the comment is what it always was.
fn trend_part(r: &CheckView, out: &mut String) {
    let Some(history) = &r.history else { return };
    let tag = candidate_tag(&r.candidate);
    let subject = HistoryPoint::subject_of(r).unwrap_or_default();
    let candidate = HistoryPoint::from_check(r, history.platform.as_deref(), tag, subject);
    out.push_str("\n\n#### Trend\n\n");
    match trend::mermaid(history, Some(&candidate)) {
        Ok(chart) => {
            let _ = write!(
                out,
                "Node bytes of the last releases of {} and of this pull request",
                md_code(&history.repository)
            );
            if chart.contains("\n    line [") {
                out.push_str(", with the node's GC headroom as the line");
            }
            let _ = write!(out, ".\n\n{}", chart.trim_end());
        }
        Err(why) => out.push_str(&md_text(&why)),
    }
}

/// The tag of an image reference (`ghcr.io/acme/app:pr-42` → `pr-42`);
/// none for a digest reference or a reference without a tag.
fn candidate_tag(reference: &str) -> Option<String> {
    if reference.contains('@') {
        return None;
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let (_, tag) = last.rsplit_once(':')?;
    (!tag.is_empty()).then(|| tag.to_string())
}

fn icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅",
        Verdict::Warn => "⚠️",
        Verdict::Fail => "❌",
    }
}

fn level_icon(l: Level) -> &'static str {
    match l {
        Level::Warn => "⚠️ warn",
        Level::Fail => "❌ fail",
    }
}

/// The platform the headline speaks of: the one with the worst finding.
fn headline_platform(r: &CheckView) -> Option<&PlatformView> {
    r.platforms
        .iter()
        .max_by_key(|p| p.findings.iter().map(|f| f.level).max())
}

/// How a headline is written: Markdown (the image name in bold), or plain
/// text for a terminal; each escapes what comes from the report its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Markdown,
    Plain,
}

impl Style {
    fn text(self, s: &str) -> Cow<'_, str> {
        match self {
            Style::Markdown => md_text(s),
            Style::Plain => plain(s),
        }
    }

    fn bold(self, s: &str) -> String {
        match self {
            Style::Markdown => format!("**{}**", md_text(s)),
            Style::Plain => plain(s).into_owned(),
        }
    }
}

/// Why the headline's verdict: a few words.
fn short_reason(f: &Finding, r: &CheckView, style: Style) -> String {
    let node = match r.node.as_ref() {
        Some(n) if n.label != "node" => format!("{} nodes", style.text(&n.label)),
        _ => "the node".to_string(),
    };
    let over = (f.value - f.limit).max(0);
    match f.rule {
        Rule::GcHeadroom => format!(
            "exceeds gc headroom on {node} by {}",
            human_bytes(over as u64)
        ),
        Rule::EvictionHeadroom => format!(
            "exceeds eviction headroom on {node} by {}",
            human_bytes(over as u64)
        ),
        Rule::InodeHeadroom => format!("exceeds inode headroom on {node} by {over} inodes"),
        Rule::Growth => format!("over the {} growth limit", style.text(&f.limit_text)),
        Rule::PullSize
        | Rule::UnpackedSize
        | Rule::LayerSize
        | Rule::LayerCount
        | Rule::Wasted
        | Rule::BaselineMissing
        | Rule::NotEvaluated
        | Rule::NothingJudged
        | Rule::LowestEfficiency
        | Rule::HighestWastedBytes
        | Rule::HighestUserWastedPercent => style.text(&f.message).into_owned(),
    }
}

/// Which finding the headline names, among the most severe ones: the node
/// rules first (they say the image does not fit), then growth on the node.
fn headline_rank(f: &Finding) -> u8 {
    match f.rule {
        Rule::EvictionHeadroom => 0,
        Rule::GcHeadroom => 1,
        Rule::InodeHeadroom => 2,
        Rule::Growth if f.figure == Figure::NodeBytes => 3,
        Rule::Growth => 4,
        Rule::PullSize
        | Rule::UnpackedSize
        | Rule::LayerSize
        | Rule::LayerCount
        | Rule::Wasted
        | Rule::BaselineMissing
        | Rule::NotEvaluated
        | Rule::NothingJudged
        | Rule::LowestEfficiency
        | Rule::HighestWastedBytes
        | Rule::HighestUserWastedPercent => 5,
    }
}

/// The first line: the verdict, the image and the key numbers.
pub fn headline(r: &CheckView, style: Style) -> String {
    let image = r.image_name();
    let Some(e) = headline_platform(r) else {
        return format!(
            "{} {}: nothing measured",
            icon(r.verdict),
            style.text(&image)
        );
    };
    let name = style.bold(&image);
    let mut s = match (e.growth(Figure::NodeBytes), e.baseline_cost) {
        (Some(g), Some(b)) => {
            let pct = if b.node_bytes == 0 {
                "new".to_string()
            } else {
                format_pct(g as f64 * 100.0 / b.node_bytes as f64)
            };
            let verb = if g < 0 { "shrank" } else { "grew" };
            format!(
                "{} {name} {verb} {} ({pct})",
                icon(r.verdict),
                human_delta(g)
            )
        }
        _ => format!(
            "{} {name} needs {} on a node ({} to pull)",
            icon(r.verdict),
            human_bytes(e.candidate_cost.node_bytes),
            human_bytes(e.candidate_cost.pull_bytes)
        ),
    };
    if r.platforms.len() > 1 {
        let _ = write!(s, " on {}", style.text(&e.platform));
    }
    let worst = r
        .findings()
        .filter(|f| Some(f.level) == r.findings().map(|f| f.level).max())
        .min_by_key(|f| headline_rank(f));
    match worst {
        Some(f) => {
            let _ = write!(s, " — {}", short_reason(f, r, style));
        }
        None => match (&r.node, r.headroom_left()) {
            (Some(n), Some(left)) => {
                let on = if n.label == "node" {
                    "the node".to_string()
                } else {
                    format!("{} nodes", style.text(&n.label))
                };
                let _ = write!(
                    s,
                    " — fits, {} of gc headroom left on {on}",
                    human_signed(left)
                );
            }
            _ => s.push_str(" — within limits"),
        },
    }
    s
}

fn figures_table(e: &PlatformView, store: crate::budget::cost::StoreModel, out: &mut String) {
    let c = &e.candidate_cost;
    let on_node = match store.runtime {
        crate::budget::cost::Runtime::Containerd => "on node (blobs + snapshots)",
        crate::budget::cost::Runtime::ContainerdDiscard => "on node (snapshots, blobs discarded)",
        crate::budget::cost::Runtime::CriO => "on node (layers + tar-split)",
    };
    let _ = writeln!(out, "| | candidate | baseline | growth |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let rows: [(&str, Figure, u64); 4] = [
        ("pull (compressed)", Figure::PullBytes, c.pull_bytes),
        (on_node, Figure::NodeBytes, c.node_bytes),
        ("unpacked (disk)", Figure::DiskBytes, c.disk_bytes),
        ("inodes", Figure::Inodes, c.node_inodes),
    ];
    for (label, f, v) in rows {
        let show = |v: u64| {
            if f == Figure::Inodes {
                v.to_string()
            } else {
                human_bytes(v)
            }
        };
        let (base, growth) = match (e.baseline_cost, e.growth(f)) {
            (Some(b), Some(g)) => {
                let bv = f.of(&b);
                let gs = if f == Figure::Inodes {
                    format!("{g:+}")
                } else {
                    human_delta(g)
                };
                let pct = if bv == 0 {
                    String::new()
                } else {
                    format!(" ({})", format_pct(g as f64 * 100.0 / bv as f64))
                };
                (show(bv), format!("{gs}{pct}"))
            }
            _ => ("—".to_string(), "—".to_string()),
        };
        let _ = writeln!(out, "| {label} | {} | {base} | {growth} |", show(v));
    }
    if e.baseline_cost.is_some() {
        let _ = writeln!(
            out,
            "| **rollout cost** on a node holding the baseline | {} | | |",
            human_bytes(e.rollout_cost.node_bytes)
        );
    }
    out.push('\n');
}

fn layers_table(p: &PlatformView, out: &mut String) {
    if p.layers.is_empty() {
        layers_of(&p.candidate, out);
        return;
    }
    let _ = writeln!(
        out,
        "| # | layer | change | compressed | unpacked | growth | largest files it adds | created by |"
    );
    let _ = writeln!(out, "|---:|---|---|---:|---:|---:|---|---|");
    for row in &p.layers {
        let change = match row.change {
            LayerChange::Shared => "shared",
            LayerChange::Recompressed => "recompressed (blob pulled again, snapshot shared)",
            LayerChange::Changed => "**changed**",
            LayerChange::Added => "**added**",
            LayerChange::Removed => "removed",
        };
        let digest = row
            .candidate_digest
            .as_deref()
            .or(row.baseline_digest.as_deref())
            .map(short)
            .unwrap_or_default();
        let files = file_list(&row.largest_files, 3, true);
        let growth = if matches!(row.change, LayerChange::Shared | LayerChange::Recompressed) {
            String::new()
        } else {
            human_delta(row.disk_growth())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {change} | {} | {} | {growth} | {files} | {} |",
            row.index + 1,
            md_code_cell(&digest),
            human_bytes(row.candidate_compressed_bytes),
            human_bytes(row.candidate_disk_bytes),
            build_step(p, row),
        );
    }
    out.push('\n');
}

/// The longest build step a layer row shows, in characters.
const STEP_CHARS: usize = 60;

/// The Dockerfile step that made a changed or added layer, shortened, as a
/// code span (the image's author wrote it: it is rendered inert). Shared
/// and removed layers leave the cell empty: the step did not change.
fn build_step(p: &PlatformView, row: &crate::analyze::layer_diff::LayerDiffRow) -> String {
    if !matches!(row.change, LayerChange::Changed | LayerChange::Added) {
        return String::new();
    }
    let Some(layer) = p.candidate.layers.get(row.index) else {
        return String::new();
    };
    if row.candidate_digest.as_deref() != Some(layer.digest.as_str()) {
        return String::new();
    }
    layer
        .created_by
        .as_deref()
        .map(|s| md_code_cell(&short_step(s)))
        .unwrap_or_default()
}

/// A build step as a reader wants it: without the shell and the markers
/// builders add (`/bin/sh -c #(nop) `, `# buildkit`), whitespace runs as
/// one space, at most [`STEP_CHARS`] characters.
pub fn short_step(step: &str) -> String {
    let mut s = step.trim();
    for prefix in ["/bin/sh -c #(nop) ", "/bin/sh -c "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
            break;
        }
    }
    let s = s.strip_suffix("# buildkit").unwrap_or(s);
    let words: Vec<&str> = s.split_whitespace().collect();
    let one_line = words.join(" ");
    if one_line.chars().count() <= STEP_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(STEP_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The short form of a digest a table shows (its first 12 hex digits),
/// cut by characters: a digest read back from a report may be any text.
fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

/// `/path` size, for the first `n` files, as code spans (escaped for a
/// table cell when `in_table`).
fn file_list(files: &[crate::measure::layer::FileSize], n: usize, in_table: bool) -> String {
    let code = if in_table { md_code_cell } else { md_code };
    files
        .iter()
        .take(n)
        .map(|f| format!("{} {}", code(&format!("/{}", f.path)), human_bytes(f.size)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn layers_of(r: &ImageView, out: &mut String) {
    let _ = writeln!(
        out,
        "| # | layer | compressed | unpacked | inodes | largest files it adds | created by |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---|---|");
    for (i, l) in r.layers.iter().enumerate() {
        let digest = md_code_cell(&short(&l.digest));
        let step = l
            .created_by
            .as_deref()
            .map(|s| md_code_cell(&short_step(s)))
            .unwrap_or_default();
        match (l.measured, l.figures.disk_bytes, l.figures.inodes) {
            (true, Some(disk), Some(inodes)) => {
                let _ = writeln!(
                    out,
                    "| {} | {digest} | {} | {} | {inodes} | {} | {step} |",
                    i + 1,
                    human_bytes(l.figures.compressed_bytes),
                    human_bytes(disk),
                    file_list(&l.largest_files, 3, true)
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "| {} | {digest} | {} | not measured | | {} | {step} |",
                    i + 1,
                    human_bytes(l.figures.compressed_bytes),
                    md_text(l.not_measured_reason.as_deref().unwrap_or(""))
                );
            }
        }
    }
    out.push('\n');
}

/// dive's score of the candidate, one line under the figures.
fn efficiency_line(r: &ImageView, out: &mut String) {
    let Some(a) = &r.efficiency else { return };
    let ratio = a
        .user_wasted_ratio
        .map(|x| format!(", {:.1}% of the user layers' bytes", x * 100.0))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Efficiency (dive's score): {:.4}; dive's wasted bytes {}{ratio}\n",
        a.score,
        human_bytes(a.wasted_bytes)
    );
}

/// Most candidate layers a path's row names.
const PATH_LAYERS: usize = 3;

/// Growth by path of one platform: a short table.
fn paths_table(r: &CheckView, p: &PlatformView, out: &mut String) {
    let mut rows = r
        .paths
        .iter()
        .filter(|e| e.platform == p.platform)
        .peekable();
    if rows.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "**Growth by path**\n");
    let _ = writeln!(
        out,
        "| path | growth | baseline | candidate | files | grown by |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for e in rows.map(|e| &e.growth) {
        let files = match (e.files_added, e.files_removed) {
            (0, 0) => String::new(),
            (a, 0) => format!("+{a}"),
            (0, d) => format!("−{d}"),
            (a, d) => format!("+{a} −{d}"),
        };
        let mut layers: Vec<String> = e
            .layers
            .iter()
            .take(PATH_LAYERS)
            .map(|l| {
                let step = l
                    .created_by
                    .as_deref()
                    .map(|s| format!(" {}", md_code_cell(&short_step(s))))
                    .unwrap_or_default();
                format!("#{}{step}", l.index + 1)
            })
            .collect();
        if e.layers.len() > PATH_LAYERS {
            layers.push("…".to_string());
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {files} | {} |",
            md_code_cell(&e.path),
            human_delta(e.delta_bytes),
            human_bytes(e.baseline_bytes),
            human_bytes(e.candidate_bytes),
            layers.join(", ")
        );
    }
    out.push('\n');
}

fn node_table(r: &CheckView, out: &mut String) {
    let Some(n) = &r.node else { return };
    let _ = writeln!(
        out,
        "**Node headroom** — {}{} (imageFS {} of {} available, {}% used; GC at {}%, eviction below {}%)\n",
        md_code(&n.name),
        if n.nodes_considered > 1 {
            format!(", tightest of {} nodes", n.nodes_considered)
        } else {
            String::new()
        },
        human_bytes(n.available_bytes),
        human_bytes(n.capacity_bytes),
        n.usage_percent,
        n.thresholds.gc_high,
        n.thresholds.eviction_available_pct
    );
    let _ = writeln!(out, "Node used space: {}\n", md_text(&n.used_text()));
    for line in crate::report::node_notes(n, r.policy.store) {
        let _ = writeln!(out, "{}\n", md_text(&line));
    }
    let _ = writeln!(
        out,
        "| platform | rollout cost | gc headroom | left after rollout | eviction headroom | inode headroom |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for p in &r.platforms {
        let cost = p.rollout_cost;
        let inode = match n.inode_headroom {
            Some(h) => format!("{} of {h}", cost.peak_pull_inodes.max(cost.node_inodes)),
            None => "unknown".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {inode} |",
            md_text(&p.platform),
            crate::report::judged_cost(&cost),
            human_signed(n.gc_headroom),
            human_signed(n.gc_headroom - cost.node_bytes as i128),
            human_signed(n.eviction_headroom),
        );
    }
    out.push('\n');
}

fn policy_line(r: &CheckView) -> String {
    let p = &r.policy;
    let mut parts = Vec::new();
    let growth = |rules: &[crate::budget::rules::GrowthRule]| -> Vec<String> {
        rules
            .iter()
            .map(|g| {
                let v = match g.limit {
                    crate::budget::rules::GrowthLimit::Percent(x) => format!("{x}%"),
                    crate::budget::rules::GrowthLimit::Amount(x) => human_bytes(x),
                };
                match g.figure {
                    Some(f) => format!("{}={v}", f.name()),
                    None => v,
                }
            })
            .collect()
    };
    let fail = growth(&p.fail_growth);
    if !fail.is_empty() {
        parts.push(format!("max growth {}", fail.join(", ")));
    }
    let warn = growth(&p.warn_growth);
    if !warn.is_empty() {
        parts.push(format!("warn growth {}", warn.join(", ")));
    }
    for (name, l, bytes) in [
        ("pull size", p.pull_size, true),
        ("unpacked size", p.unpacked_size, true),
        ("layer size", p.layer_size, true),
        ("layers", p.layers, false),
        ("wasted", p.wasted, true),
    ] {
        let show = |v: u64| if bytes { human_bytes(v) } else { v.to_string() };
        if let Some(f) = l.fail {
            parts.push(format!("max {name} {}", show(f)));
        }
        if let Some(w) = l.warn {
            parts.push(format!("warn {name} {}", show(w)));
        }
    }
    if p.default_rules {
        parts.push(
            "default warnings (node_bytes growth over 10%, wasted over 10% of the image)"
                .to_string(),
        );
    }
    if r.node.is_some() {
        parts.push(format!(
            "gc headroom: {}",
            match p.gc_headroom_level {
                Some(Level::Warn) => "warn",
                _ => "fail",
            }
        ));
    }
    let rules = if parts.is_empty() {
        "no rules configured".to_string()
    } else {
        parts.join("; ")
    };
    format!("{rules}; node model {}", md_code(&p.store.describe()))
}

/// Every rule that fired, naming the platform when there are several.
fn findings_list(r: &CheckView, out: &mut String) {
    let findings: Vec<&Finding> = r.findings().collect();
    if findings.is_empty() {
        return;
    }
    out.push_str("**Rules fired**\n\n");
    for f in findings {
        let platform = if f.platform.is_empty() || r.platforms.len() < 2 {
            String::new()
        } else {
            format!(" ({})", md_text(&f.platform))
        };
        let _ = writeln!(
            out,
            "- {} `{}`{platform}: {}",
            level_icon(f.level),
            f.rule,
            md_text(&f.message)
        );
    }
    out.push('\n');
}

/// The largest hints, one list item each.
fn hints_list(hints: &[crate::analyze::hints::Hint], out: &mut String) {
    if hints.is_empty() {
        return;
    }
    out.push_str("What could be removed (advice, not judged):\n\n");
    for h in hints.iter().take(super::hints::SHOWN) {
        out.push_str(&super::hints::markdown_line(h));
        out.push('\n');
    }
    out.push('\n');
}

fn largest_files_line(image: &ImageView, out: &mut String) {
    let largest = image.largest_files();
    if largest.is_empty() {
        return;
    }
    out.push_str("Largest files in the image: ");
    out.push_str(&file_list(largest, 5, false));
    out.push_str("\n\n");
}

impl Renderer for Markdown {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        let mut out = String::new();
        for r in reports {
            let _ = writeln!(
                out,
                "**{}** ({}): {} to pull, {} unpacked in {} inodes; {} wasted\n",
                md_text(&r.image.reference),
                md_text(&r.image.platform.to_string()),
                human_bytes(r.totals.compressed_bytes),
                human_bytes(r.totals.disk_bytes),
                r.totals.inodes,
                human_bytes(r.wasted_bytes)
            );
            layers_of(&ImageView::from_image(r), &mut out);
            hints_list(&r.hints, &mut out);
        }
        out
    }

    fn render_check(&self, r: &CheckReport) -> String {
        self.render_view(&CheckView::from_report(r))
    }
}
