//! `--format markdown`: the text a pull-request comment and the GitHub step
//! summary show. The first line is the verdict with the key numbers, so it
//! reads well in a notification; everything else is inside `<details>`.

use std::fmt::Write;

use super::Renderer;
use crate::budget::layer_diff::LayerChange;
use crate::budget::rules::{Figure, Finding, Rule, format_pct};
use crate::budget::verdict::{CheckReport, Level, PlatformCheck, Verdict};
use crate::measure::{ImageReport, short_digest};
use crate::units::{human_bytes, human_delta, human_signed};

pub struct Markdown;

impl Markdown {
    pub fn render_check_text(&self, r: &CheckReport) -> String {
        Renderer::render_check(self, r)
    }
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

/// Pipes would end a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The platform the headline speaks of: the one with the worst finding.
fn headline_platform(r: &CheckReport) -> Option<&PlatformCheck> {
    r.platforms
        .iter()
        .max_by_key(|p| p.evaluation.findings.iter().map(|f| f.level).max())
}

fn short_reason(f: &Finding, r: &CheckReport) -> String {
    let node = match r.node.as_ref() {
        Some(n) if n.label != "node" => format!("{} nodes", n.label),
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
        Rule::Growth => format!("over the {} growth limit", f.limit_text),
        Rule::PullSize
        | Rule::UnpackedSize
        | Rule::LayerSize
        | Rule::LayerCount
        | Rule::Wasted
        | Rule::BaselineMissing => f.message.clone(),
    }
}

/// Which finding the headline names, among the most severe ones: the node
/// rules first (they say the image does not fit), then growth on the node.
fn headline_rank(f: &Finding) -> u8 {
    match f.rule {
        Rule::EvictionHeadroom => 0,
        Rule::GcHeadroom => 1,
        Rule::InodeHeadroom => 2,
        Rule::Growth if f.figure == Figure::NodeBytes.name() => 3,
        Rule::Growth => 4,
        Rule::PullSize
        | Rule::UnpackedSize
        | Rule::LayerSize
        | Rule::LayerCount
        | Rule::Wasted
        | Rule::BaselineMissing => 5,
    }
}

pub fn headline(r: &CheckReport) -> String {
    let name = r.image_name();
    let Some(p) = headline_platform(r) else {
        return format!("{} {name}: nothing measured", icon(r.verdict));
    };
    let e = &p.evaluation;
    let mut s = match (e.growth(Figure::NodeBytes), e.baseline_cost) {
        (Some(g), Some(b)) => {
            let pct = if b.node_bytes == 0 {
                "new".to_string()
            } else {
                format_pct(g as f64 * 100.0 / b.node_bytes as f64)
            };
            let verb = if g < 0 { "shrank" } else { "grew" };
            format!(
                "{} **{name}** {verb} {} ({pct})",
                icon(r.verdict),
                human_delta(g)
            )
        }
        _ => format!(
            "{} **{name}** needs {} on a node ({} to pull)",
            icon(r.verdict),
            human_bytes(e.candidate_cost.node_bytes),
            human_bytes(e.candidate_cost.pull_bytes)
        ),
    };
    if r.platforms.len() > 1 {
        let _ = write!(s, " on {}", e.platform);
    }
    let worst = r
        .findings()
        .filter(|f| Some(f.level) == r.findings().map(|f| f.level).max())
        .min_by_key(|f| headline_rank(f));
    match worst {
        Some(f) => {
            let _ = write!(s, " — {}", short_reason(f, r));
        }
        None => match (&r.node, r.headroom_left()) {
            (Some(n), Some(left)) => {
                let on = if n.label == "node" {
                    "the node".to_string()
                } else {
                    format!("{} nodes", n.label)
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

fn figures_table(p: &PlatformCheck, out: &mut String) {
    let e = &p.evaluation;
    let c = &e.candidate_cost;
    let _ = writeln!(out, "| | candidate | baseline | growth |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let rows: [(&str, Figure, u64); 4] = [
        ("pull (compressed)", Figure::PullBytes, c.pull_bytes),
        (
            "on node (blobs + snapshots)",
            Figure::NodeBytes,
            c.node_bytes,
        ),
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
    if p.baseline.is_some() {
        let _ = writeln!(
            out,
            "| **rollout cost** on a node holding the baseline | {} | | |",
            human_bytes(e.rollout_cost.node_bytes)
        );
    }
    out.push('\n');
}

fn layers_table(p: &PlatformCheck, out: &mut String) {
    if p.layers.is_empty() {
        layers_of(&p.candidate, out);
        return;
    }
    let _ = writeln!(
        out,
        "| # | layer | change | compressed | unpacked | growth | largest files it adds |"
    );
    let _ = writeln!(out, "|---:|---|---|---:|---:|---:|---|");
    for row in &p.layers {
        let change = match row.change {
            LayerChange::Shared => "shared",
            LayerChange::Changed => "**changed**",
            LayerChange::Added => "**added**",
            LayerChange::Removed => "removed",
        };
        let digest = row
            .candidate_digest
            .as_deref()
            .or(row.baseline_digest.as_deref())
            .map(short_digest)
            .unwrap_or("");
        let files: Vec<String> = row
            .largest_files
            .iter()
            .take(3)
            .map(|f| format!("`/{}` {}", cell(&f.path), human_bytes(f.size)))
            .collect();
        let growth = if row.change == LayerChange::Shared {
            String::new()
        } else {
            human_delta(row.disk_growth())
        };
        let _ = writeln!(
            out,
            "| {} | `{digest}` | {change} | {} | {} | {growth} | {} |",
            row.index + 1,
            human_bytes(row.candidate_compressed_bytes),
            human_bytes(row.candidate_disk_bytes),
            files.join(", ")
        );
    }
    out.push('\n');
}

fn layers_of(r: &ImageReport, out: &mut String) {
    let _ = writeln!(
        out,
        "| # | layer | compressed | unpacked | inodes | largest files it adds |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---|");
    for (i, l) in r.layers.iter().enumerate() {
        let files: Vec<String> = l
            .largest_files
            .iter()
            .take(3)
            .map(|f| format!("`/{}` {}", cell(&f.path), human_bytes(f.size)))
            .collect();
        match l.figures() {
            Some(f) => {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} | {} | {} |",
                    i + 1,
                    short_digest(&l.descriptor.digest),
                    human_bytes(f.compressed_bytes),
                    human_bytes(f.disk_bytes),
                    f.inodes,
                    files.join(", ")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | not measured | | {} |",
                    i + 1,
                    short_digest(&l.descriptor.digest),
                    human_bytes(l.descriptor.size),
                    cell(l.not_measured_reason.as_deref().unwrap_or(""))
                );
            }
        }
    }
    out.push('\n');
}

fn node_table(r: &CheckReport, out: &mut String) {
    let Some(n) = &r.node else { return };
    let _ = writeln!(
        out,
        "**Node headroom** — `{}`{} (imageFS {} of {} available, {}% used; GC at {}%, eviction below {}%)\n",
        n.name,
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
    let _ = writeln!(
        out,
        "| platform | rollout cost | gc headroom | left after rollout | eviction headroom | inode headroom |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for p in &r.platforms {
        let cost = p.evaluation.rollout_cost;
        let inode = match n.inode_headroom {
            Some(h) => format!("{} of {h}", cost.node_inodes),
            None => "unknown".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {inode} |",
            p.evaluation.platform,
            human_bytes(cost.node_bytes),
            human_signed(n.gc_headroom),
            human_signed(n.gc_headroom - cost.node_bytes as i128),
            human_signed(n.eviction_headroom),
        );
    }
    out.push('\n');
}

fn policy_line(r: &CheckReport) -> String {
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
    if r.node.is_some() {
        parts.push(format!(
            "gc headroom: {}",
            match p.gc_headroom_level {
                Some(Level::Warn) => "warn",
                _ => "fail",
            }
        ));
    }
    if parts.is_empty() {
        "no rules configured".to_string()
    } else {
        parts.join("; ")
    }
}

/// Every rule that fired, naming the platform when there are several.
fn findings_list(r: &CheckReport, out: &mut String) {
    let findings: Vec<&Finding> = r.findings().collect();
    if findings.is_empty() {
        return;
    }
    out.push_str("**Rules fired**\n\n");
    for f in findings {
        let platform = if f.platform.is_empty() || r.platforms.len() < 2 {
            String::new()
        } else {
            format!(" ({})", f.platform)
        };
        let _ = writeln!(
            out,
            "- {} `{}`{platform}: {}",
            level_icon(f.level),
            f.rule,
            f.message
        );
    }
    out.push('\n');
}

fn largest_files_line(image: &ImageReport, out: &mut String) {
    let largest = &image.largest_files;
    if largest.is_empty() {
        return;
    }
    out.push_str("Largest files in the image: ");
    let list: Vec<String> = largest
        .iter()
        .take(5)
        .map(|f| format!("`/{}` {}", cell(&f.path), human_bytes(f.size)))
        .collect();
    out.push_str(&list.join(", "));
    out.push_str("\n\n");
}

impl Renderer for Markdown {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        let mut out = String::new();
        for r in reports {
            let _ = writeln!(
                out,
                "**{}** ({}): {} to pull, {} unpacked in {} inodes; {} wasted\n",
                r.image.reference,
                r.image.platform,
                human_bytes(r.totals.compressed_bytes),
                human_bytes(r.totals.disk_bytes),
                r.totals.inodes,
                human_bytes(r.wasted_bytes)
            );
            layers_of(r, &mut out);
        }
        out
    }

    fn render_check(&self, r: &CheckReport) -> String {
        let mut out = headline(r);
        out.push_str("\n\n<details><summary>sizeguard report</summary>\n\n");
        let _ = writeln!(
            out,
            "Candidate `{}`{}\n",
            r.candidate_ref,
            r.baseline_ref
                .as_ref()
                .map(|b| format!(", baseline `{b}`"))
                .unwrap_or_default()
        );
        findings_list(r, &mut out);
        for p in &r.platforms {
            let _ = writeln!(out, "#### {}\n", p.evaluation.platform);
            figures_table(p, &mut out);
            layers_table(p, &mut out);
            largest_files_line(&p.candidate, &mut out);
        }
        node_table(r, &mut out);
        let _ = writeln!(out, "Policy: {}\n", policy_line(r));
        out.push_str("</details>\n");
        out
    }
}
