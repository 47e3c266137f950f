//! A history in words and in Mermaid: the `history` table and Markdown,
//! and the trend chart of the pull-request comment (GitHub renders a
//! Mermaid `xychart-beta` block in comments).
//!
//! Tags, digests, dates and the repository come from a registry or from
//! an untrusted report: the table escapes them for a terminal, the
//! Markdown for cmark-gfm, and the chart keeps only characters that mean
//! nothing to Mermaid (no quote, no `%%` directive, no `#…;` entity, no
//! line break), so a tag cannot end a label or configure the renderer.

use std::fmt::Write;

use super::escape::{md_code_cell, md_text, plain};
use super::history::{ChartScale, HistoryPoint, HistoryView, PointSource};
use crate::units::{human_bytes, human_signed};

/// The longest label on the chart's x-axis, in characters: longer ones
/// would overlap their neighbours.
const MAX_LABEL_CHARS: usize = 24;
/// The longest repository name in the chart's title.
const MAX_TITLE_CHARS: usize = 60;
/// The candidate's label when it has no tag of its own.
pub const CANDIDATE_LABEL: &str = "this PR";

/// `history --format table`.
pub fn table(view: &HistoryView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}",
        plain(&view.repository),
        view.platform
            .as_deref()
            .map(|p| format!(" ({})", plain(p)))
            .unwrap_or_default()
    );
    out.push('\n');
    if view.points.is_empty() {
        let _ = writeln!(out, "{}", plain(&no_chart_line(view)));
        return out;
    }
    let mut rows = vec![
        [
            "tag",
            "digest",
            "created",
            "verdict",
            "pull",
            "disk",
            "node",
            "inodes",
            "GC headroom",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for p in &view.points {
        let mut row = vec![
            plain(p.tag.as_deref().unwrap_or("-")).into_owned(),
            plain(&short_digest(&p.digest)).into_owned(),
            plain(&date(p.created.as_deref())).into_owned(),
        ];
        if p.source == PointSource::Missing {
            row.push("no report".to_string());
        } else {
            row.extend([
                verdict_word(p),
                bytes(p.pull_bytes),
                bytes(p.disk_bytes),
                bytes(p.node_bytes),
                p.inodes.map_or_else(|| "-".to_string(), |n| n.to_string()),
                p.gc_headroom.map_or_else(|| "-".to_string(), human_signed),
            ]);
        }
        rows.push(row);
    }
    super::table::render_table_aligned(&rows, false, &mut out);
    if let Some(note) = &view.note {
        let _ = writeln!(out, "\n{}", plain(note));
    }
    out
}

/// `history --format markdown`: the trend chart and the table.
pub fn markdown(view: &HistoryView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Size history of {}{}\n",
        md_text(&view.repository),
        view.platform
            .as_deref()
            .map(|p| format!(" ({})", md_text(p)))
            .unwrap_or_default()
    );
    let charted = match mermaid(view, None) {
        Ok(chart) => {
            out.push_str(&chart);
            out.push('\n');
            true
        }
        Err(why) => {
            let _ = writeln!(out, "{}\n", md_text(&why));
            false
        }
    };
    if !view.points.is_empty() {
        let _ = writeln!(
            out,
            "| tag | digest | created | verdict | pull | disk | node | inodes | GC headroom |"
        );
        let _ = writeln!(out, "|---|---|---|---|---:|---:|---:|---:|---:|");
        for p in &view.points {
            let tag = p
                .tag
                .as_deref()
                .map_or_else(|| "—".to_string(), md_code_cell);
            let digest = md_code_cell(&short_digest(&p.digest));
            let created = md_text(&date(p.created.as_deref())).into_owned();
            if p.source == PointSource::Missing {
                let _ = writeln!(
                    out,
                    "| {tag} | {digest} | {created} | no report | | | | | |"
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {tag} | {digest} | {created} | {} | {} | {} | {} | {} | {} |",
                verdict_word(p),
                bytes(p.pull_bytes),
                bytes(p.disk_bytes),
                bytes(p.node_bytes),
                p.inodes.map_or_else(|| "—".to_string(), |n| n.to_string()),
                p.gc_headroom.map_or_else(|| "—".to_string(), human_signed),
            );
        }
        out.push('\n');
    }
    // Without a chart the note was its one line already.
    if let Some(note) = view.note.as_ref().filter(|_| charted) {
        let _ = writeln!(out, "{}\n", md_text(note));
    }
    out
}

/// The Mermaid `xychart-beta` block of the last releases and, when given,
/// the pull request's candidate; `Err` is the one line saying why there is
/// no chart (no history yet).
pub fn mermaid(view: &HistoryView, candidate: Option<&HistoryPoint>) -> Result<String, String> {
    let mut points: Vec<(String, &HistoryPoint)> = view
        .known()
        .filter(|p| p.node_bytes.is_some())
        .map(|p| (p.label(), p))
        .collect();
    if points.is_empty() {
        return Err(no_chart_line(view));
    }
    if let Some(c) = candidate.filter(|c| c.node_bytes.is_some()) {
        points.push((CANDIDATE_LABEL.to_string(), c));
    }
    let labels = unique_labels(points.iter().map(|(l, _)| l.as_str()));
    let nodes: Vec<i128> = points
        .iter()
        .map(|(_, p)| i128::from(p.node_bytes.unwrap_or(0)))
        .collect();
    // The line only when it is whole: a gap would read as a drop.
    let headroom: Option<Vec<i128>> = points.iter().map(|(_, p)| p.gc_headroom).collect();
    let all = nodes
        .iter()
        .chain(headroom.iter().flatten())
        .copied()
        .collect::<Vec<_>>();
    let scale = ChartScale::for_values(all.iter().copied());
    let lo = all.iter().copied().min().unwrap_or(0).min(0);
    let hi = all.iter().copied().max().unwrap_or(0).max(0);
    // Room above the tallest bar; an all-zero chart still needs a range.
    let top = if hi == lo {
        lo + 1
    } else {
        hi + (hi - lo) / 10
    };
    let series = |values: &[i128]| {
        values
            .iter()
            .map(|v| scale.format(*v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("```mermaid\nxychart-beta\n");
    let what = if headroom.is_some() {
        "node bytes (bars), GC headroom (line)"
    } else {
        "node bytes per release"
    };
    let _ = writeln!(
        out,
        "    title \"{}: {what}\"",
        mermaid_text(&view.repository, MAX_TITLE_CHARS)
    );
    let _ = writeln!(
        out,
        "    x-axis [{}]",
        labels
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "    y-axis \"node bytes ({})\" {} --> {}",
        scale.unit(),
        scale.format(lo),
        scale.format(top)
    );
    let _ = writeln!(out, "    bar [{}]", series(&nodes));
    if let Some(h) = &headroom {
        let _ = writeln!(out, "    line [{}]", series(h));
    }
    out.push_str("```\n");
    Ok(out)
}

/// Why a history has no chart: its note, else that no report is kept yet.
pub fn no_chart_line(view: &HistoryView) -> String {
    match &view.note {
        Some(n) if !n.trim().is_empty() => n.clone(),
        _ => format!("no sizeguard reports attached to {} yet", view.repository),
    }
}

/// Text Mermaid shows as it is: letters, digits and a few punctuation
/// marks tags and repository names use; anything else (a quote, `%`,
/// `#`, `;`, `{`, a backtick, `<`, a line break) becomes `_`. Cut at
/// `max` characters with an ellipsis.
pub fn mermaid_text(s: &str, max: usize) -> String {
    let kept = |c: char| c.is_alphanumeric() || " .-_+:/@()".contains(c);
    let mut out: String = s
        .chars()
        .map(|c| if kept(c) { c } else { '_' })
        .take(max + 1)
        .collect();
    if out.chars().count() > max {
        out = out.chars().take(max - 1).collect();
        out.push('…');
    }
    let out = out.trim().to_string();
    if out.is_empty() { "_".to_string() } else { out }
}

/// One label per bar: Mermaid's band axis merges equal categories, which
/// would draw two releases as one bar. A repeated label gets ` (2)`, …
fn unique_labels<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        let base = mermaid_text(l, MAX_LABEL_CHARS);
        let mut label = base.clone();
        let mut n = 2;
        while out.contains(&label) {
            label = format!("{base} ({n})");
            n += 1;
        }
        out.push(label);
    }
    out
}

fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// The date of an RFC 3339 time (its first ten characters when they look
/// like one), else the text as it is.
fn date(created: Option<&str>) -> String {
    match created {
        None => "-".to_string(),
        Some(c) => {
            let head: String = c.chars().take(10).collect();
            let is_date = head.len() == 10
                && head.char_indices().all(|(i, ch)| {
                    if i == 4 || i == 7 {
                        ch == '-'
                    } else {
                        ch.is_ascii_digit()
                    }
                });
            if is_date { head } else { c.to_string() }
        }
    }
}

fn bytes(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), human_bytes)
}

fn verdict_word(p: &HistoryPoint) -> String {
    match (p.verdict, p.source) {
        (Some(v), _) => v.to_string(),
        (None, PointSource::Measured) => "measured".to_string(),
        (None, _) => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Verdict;

    fn point(tag: &str, node: u64, headroom: Option<i128>) -> HistoryPoint {
        let mut p = HistoryPoint::missing(
            Some(tag.to_string()),
            format!("sha256:{}", "ab12".repeat(16)),
            Some("2026-11-02T10:00:00Z".to_string()),
        );
        p.source = PointSource::Report;
        p.verdict = Some(Verdict::Pass);
        p.pull_bytes = Some(node / 3);
        p.disk_bytes = Some(node / 2);
        p.node_bytes = Some(node);
        p.inodes = Some(40);
        p.gc_headroom = headroom;
        p
    }

    fn view(points: Vec<HistoryPoint>) -> HistoryView {
        let mut v = HistoryView::new("ghcr.io/acme/app", Some("linux/amd64".into()));
        v.points = points;
        v
    }

    #[test]
    fn the_chart_has_one_bar_per_known_point_and_the_candidate_last() {
        let mut gone = HistoryPoint::missing(Some("v0".into()), "sha256:00".into(), None);
        gone.source = PointSource::Missing;
        let v = view(vec![
            gone,
            point("v1", 300 << 20, Some(2 << 30)),
            point("v2", 310 << 20, Some(2 << 30)),
        ]);
        let c = point("v3", 400 << 20, Some(2 << 30));
        let chart = mermaid(&v, Some(&c)).unwrap();
        assert!(chart.starts_with("```mermaid\nxychart-beta\n"), "{chart}");
        assert!(chart.ends_with("```\n"), "{chart}");
        assert!(
            chart.contains(r#"x-axis ["v1", "v2", "this PR"]"#),
            "{chart}"
        );
        assert!(
            chart.contains("y-axis \"node bytes (GiB)\" 0.000 --> "),
            "{chart}"
        );
        assert!(chart.contains("bar [0.293, 0.303, 0.391]"), "{chart}");
        assert!(chart.contains("line [2.000, 2.000, 2.000]"), "{chart}");
    }

    #[test]
    fn the_line_is_left_out_unless_every_point_has_a_headroom() {
        let v = view(vec![
            point("v1", 1 << 20, Some(5 << 20)),
            point("v2", 2 << 20, None),
        ]);
        let chart = mermaid(&v, None).unwrap();
        assert!(chart.contains("bar [1.000, 2.000]"), "{chart}");
        assert!(!chart.contains("line"), "{chart}");
    }

    #[test]
    fn no_figures_no_chart_but_one_line() {
        let mut v = view(vec![]);
        assert_eq!(
            mermaid(&v, Some(&point("x", 1, None))).unwrap_err(),
            "no sizeguard reports attached to ghcr.io/acme/app yet"
        );
        v.note = Some("the tag listing was cut at 1000 tags".into());
        assert_eq!(
            mermaid(&v, None).unwrap_err(),
            "the tag listing was cut at 1000 tags"
        );
    }

    #[test]
    fn hostile_labels_cannot_leave_their_quotes() {
        let v = view(vec![
            point("v1\"]\n%%{init: {\"theme\":\"dark\"}}%%", 1 << 20, None),
            point("a`b<img src=x>#quot;", 2 << 20, None),
            point("a#b", 3 << 20, None),
            point("a;b", 3 << 20, None),
            point(&"x".repeat(200), 4 << 20, None),
        ]);
        let chart = mermaid(&v, None).unwrap();
        let body = chart
            .strip_prefix("```mermaid\n")
            .and_then(|c| c.strip_suffix("```\n"))
            .unwrap();
        assert_eq!(body.lines().count(), 5, "{chart}");
        for bad in ["%%", "{", "`", "<", "#", ";"] {
            assert!(!body.contains(bad), "{bad} in {chart}");
        }
        let axis = body.lines().find(|l| l.contains("x-axis")).unwrap();
        // Ten quotes: five labels, none cut open; equal labels kept apart.
        assert_eq!(axis.matches('"').count(), 10, "{axis}");
        assert!(axis.contains("\"a_b\", \"a_b (2)\""), "{axis}");
        assert!(axis.contains(&format!("\"{}…\"", "x".repeat(23))), "{axis}");
    }

    #[test]
    fn the_table_says_no_report_for_missing_points() {
        let mut v = view(vec![point("v1", 1 << 20, Some(-(5 << 20)))]);
        v.points.push(HistoryPoint::missing(
            Some("v2\u{1b}[31m".into()),
            "sha256:ffff".into(),
            None,
        ));
        let t = table(&v);
        assert!(t.contains("no report"), "{t}");
        assert!(t.contains("2026-11-02"), "{t}");
        assert!(t.contains("-5.00 MiB") || t.contains("-5.0 MiB"), "{t}");
        assert!(!t.contains('\u{1b}'), "{t}");
        let md = markdown(&v);
        assert!(md.contains("```mermaid\nxychart-beta\n"), "{md}");
        assert!(
            md.contains("| `v1` | `ab12ab12ab12` | 2026-11-02 | pass |"),
            "{md}"
        );
    }
}
