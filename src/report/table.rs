//! `--format table`, the default: a human-readable report for a terminal
//! or a CI log, columns aligned, one section per image or platform.

use std::fmt::Write;

use super::Renderer;
use super::escape::plain;
use super::markdown::{Style, headline, short_step};
use crate::analyze::ImageReport;
use crate::analyze::layer_diff::LayerDiffRow;
use crate::analyze::paths::PathGrowth;
use crate::budget::rules::{Evaluation, Figure};
use crate::budget::verdict::{CheckReport, Level};
use crate::measure::{LayerReport, short_digest};
use crate::units::{human_bytes, human_delta, human_signed};

pub struct Table;

/// Columns aligned left: the first two and, in tables that end with a
/// build step or a path, the last.
fn row(cells: &[String], widths: &[usize], left_last: bool, out: &mut String) {
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i == 0 || i == 1 || (left_last && i + 1 == widths.len()) {
            let _ = write!(out, "{c:<w$}  ");
        } else {
            let _ = write!(out, "{c:>w$}  ");
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
}

fn render_table(rows: &[Vec<String>], out: &mut String) {
    render_table_aligned(rows, false, out);
}

pub(super) fn render_table_aligned(rows: &[Vec<String>], left_last: bool, out: &mut String) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        row(r, &widths, left_last, out);
    }
}

impl Renderer for Table {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        let mut out = String::new();
        for (n, r) in reports.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            measure_image(r, &mut out);
        }
        out
    }

    fn render_check(&self, r: &CheckReport) -> String {
        let mut out = String::new();
        let view = super::view::CheckView::from_report(r);
        let _ = writeln!(out, "{}", headline(&view, Style::Plain));
        for f in r.findings() {
            let level = match f.level {
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            let _ = writeln!(out, "  {level}  {}: {}", f.rule, plain(&f.message));
        }
        for p in &r.platforms {
            let _ = writeln!(
                out,
                "\n{}  candidate {}",
                plain(&p.evaluation.platform),
                plain(&p.candidate.image.digest)
            );
            render_table(&figure_rows(&p.evaluation), &mut out);
            if !p.layers.is_empty() {
                let steps = &p.candidate.image.created_by;
                render_table_aligned(&layer_diff_rows(&p.layers, steps), true, &mut out);
            }
            efficiency_line(&p.candidate, &mut out);
            path_lines(&p.paths, &mut out);
            hint_lines(&p.candidate.hints, &mut out);
        }
        node_lines(r, &mut out);
        let _ = writeln!(out, "node model: {}", r.policy.store.describe());
        let _ = writeln!(out, "verdict: {}", r.verdict);
        out
    }
}

fn header(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

/// One image of `measure`: its layers, the totals, then the final
/// filesystem and the largest files.
fn measure_image(r: &ImageReport, out: &mut String) {
    let _ = writeln!(
        out,
        "{}  {}  {}",
        plain(&r.image.reference),
        plain(&r.image.platform.to_string()),
        plain(&r.image.digest)
    );
    let mut rows = vec![header(&[
        "LAYER",
        "TYPE",
        "COMPRESSED",
        "TAR",
        "CONTENT",
        "DISK",
        "INODES",
        "FILES",
        "WHITEOUTS",
        "CREATED BY",
    ])];
    rows.extend(r.layers.iter().enumerate().map(|(i, l)| {
        let mut cells = layer_row(l);
        if cells.len() == 9 {
            cells.push(step(&r.image.created_by, i));
        }
        cells
    }));
    rows.push(totals_row(r));
    render_table_aligned(&rows, true, out);
    if r.estimated {
        let _ = writeln!(
            out,
            "estimated: `?` needs the layer streamed (run without --estimate); `~` is likely, not exact"
        );
        return;
    }
    let _ = writeln!(
        out,
        "final filesystem: {} in {} files, {} inodes; wasted (shadowed by upper layers): {}",
        human_bytes(r.final_fs.content_bytes),
        r.final_fs.files,
        r.final_fs.inodes,
        human_bytes(r.wasted_bytes)
    );
    efficiency_line(r, out);
    if !r.complete {
        let _ = writeln!(
            out,
            "warning: some layers could not be measured; totals are a lower bound"
        );
    }
    if r.compressed_estimated() {
        let _ = writeln!(
            out,
            "compressed sizes are estimates: the local engine's layers are uncompressed, a push gzips them"
        );
    }
    if !r.largest_files.is_empty() {
        let _ = writeln!(out, "largest files:");
        for f in &r.largest_files {
            let _ = writeln!(out, "  {:>10}  /{}", human_bytes(f.size), plain(&f.path));
        }
    }
    hint_lines(&r.hints, out);
}

/// The largest hints, one line each.
fn hint_lines(hints: &[crate::analyze::hints::Hint], out: &mut String) {
    if hints.is_empty() {
        return;
    }
    let _ = writeln!(out, "could be removed (advice, not judged):");
    for h in hints.iter().take(super::hints::SHOWN) {
        let _ = writeln!(out, "  {}", super::hints::plain_line(h));
    }
}

/// A measured layer, a probed one (`--estimate`: `?` for what only
/// streaming knows, `~` for a likely tar size), or one not measured.
fn layer_row(l: &LayerReport) -> Vec<String> {
    let id = short_digest(&l.descriptor.digest).to_string();
    let probed = l.probed_tar_exact();
    match (l.figures(), &l.measurement) {
        (Some(f), Some(m)) if probed.is_some() => vec![
            id,
            m.compression.name().to_string(),
            human_bytes(f.compressed_bytes),
            format!(
                "{}{}",
                if probed == Some(true) { "" } else { "~" },
                human_bytes(f.tar_bytes)
            ),
            "?".into(),
            "?".into(),
            "?".into(),
            "?".into(),
            "?".into(),
        ],
        (Some(f), Some(m)) => vec![
            id,
            m.compression.name().to_string(),
            human_bytes(f.compressed_bytes),
            human_bytes(f.tar_bytes),
            human_bytes(f.content_bytes),
            human_bytes(f.disk_bytes),
            f.inodes.to_string(),
            f.files.to_string(),
            f.whiteouts.to_string(),
        ],
        _ => vec![
            id,
            "-".into(),
            human_bytes(l.descriptor.size),
            format!(
                "not measured: {}",
                plain(l.not_measured_reason.as_deref().unwrap_or("unknown"))
            ),
        ],
    }
}

fn totals_row(r: &ImageReport) -> Vec<String> {
    let t = &r.totals;
    let tar_exact = r.layers.iter().all(|l| l.probed_tar_exact() != Some(false));
    // Under --estimate, a sum over partly unknown layers is unknown.
    let known = |v: String| if r.estimated { "?".to_string() } else { v };
    vec![
        format!("TOTAL ({} layers)", r.layers.len()),
        String::new(),
        human_bytes(t.compressed_bytes),
        format!(
            "{}{}",
            if tar_exact { "" } else { "~" },
            human_bytes(t.tar_bytes)
        ),
        known(human_bytes(t.content_bytes)),
        known(human_bytes(t.disk_bytes)),
        known(t.inodes.to_string()),
        known(t.files.to_string()),
        known(t.whiteouts.to_string()),
    ]
}

/// Candidate, baseline and growth of each figure, then the rollout cost.
fn figure_rows(e: &Evaluation) -> Vec<Vec<String>> {
    let mut rows = vec![header(&["FIGURE", "", "CANDIDATE", "BASELINE", "GROWTH"])];
    for f in Figure::ALL {
        let show = |v: u64| {
            if f.is_bytes() {
                human_bytes(v)
            } else {
                v.to_string()
            }
        };
        let (base, growth) = match (e.baseline_cost, e.growth(f)) {
            (Some(b), Some(g)) => (show(f.of(&b)), f.show_delta(g)),
            _ => ("-".into(), "-".into()),
        };
        rows.push(vec![
            f.name().to_string(),
            String::new(),
            show(f.of(&e.candidate_cost)),
            base,
            growth,
        ]);
    }
    rows.push(vec![
        "rollout cost".into(),
        String::new(),
        crate::report::judged_cost(&e.rollout_cost),
        String::new(),
        String::new(),
    ]);
    rows
}

/// The build step of layer `i`, shortened and made one visible line.
fn step(created_by: &[Option<String>], i: usize) -> String {
    created_by
        .get(i)
        .and_then(Option::as_deref)
        .map(|s| plain(&short_step(s)).into_owned())
        .unwrap_or_default()
}

/// dive's figures of an image, on one line.
fn efficiency_line(r: &ImageReport, out: &mut String) {
    let Some(a) = crate::budget::rules::dive::analysis(r) else {
        return;
    };
    let ratio = a
        .user_wasted_ratio
        .map(|x| format!(", {x:.4} of the user layers' bytes"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "efficiency (dive's score): {:.4}; dive's wasted bytes {}{ratio}",
        a.score,
        human_bytes(a.wasted_bytes)
    );
}

/// Growth by path: one line a directory or file.
fn path_lines(paths: &[PathGrowth], out: &mut String) {
    if paths.is_empty() {
        return;
    }
    let _ = writeln!(out, "growth by path:");
    let mut rows = Vec::new();
    for p in paths {
        let files = match (p.files_added, p.files_removed) {
            (0, 0) => String::new(),
            (a, 0) => format!("(+{a} files)"),
            (0, r) => format!("(-{r} files)"),
            (a, r) => format!("(+{a} -{r} files)"),
        };
        let layers = p
            .layers
            .iter()
            .map(|l| match &l.created_by {
                Some(s) => format!("#{} {}", l.index + 1, plain(&short_step(s))),
                None => format!("#{}", l.index + 1),
            })
            .collect::<Vec<_>>()
            .join("; ");
        rows.push(vec![
            format!("  {}", plain(&p.path)),
            String::new(),
            human_delta(p.delta_bytes),
            files,
            layers,
        ]);
    }
    render_table_aligned(&rows, true, out);
}

fn layer_diff_rows(layers: &[LayerDiffRow], created_by: &[Option<String>]) -> Vec<Vec<String>> {
    let mut rows = vec![header(&[
        "#",
        "CHANGE",
        "LAYER",
        "COMPRESSED",
        "DISK",
        "GROWTH",
        "LARGEST NEW FILE",
        "CREATED BY",
    ])];
    for l in layers {
        let digest = l
            .candidate_digest
            .as_deref()
            .or(l.baseline_digest.as_deref())
            .map(short_digest)
            .unwrap_or("")
            .to_string();
        rows.push(vec![
            (l.index + 1).to_string(),
            format!("{:?}", l.change).to_lowercase(),
            digest,
            human_bytes(l.candidate_compressed_bytes),
            human_bytes(l.candidate_disk_bytes),
            human_delta(l.disk_growth()),
            l.largest_files
                .first()
                .map(|f| format!("/{} {}", plain(&f.path), human_bytes(f.size)))
                .unwrap_or_default(),
            if l.candidate_digest.is_some() {
                step(created_by, l.index)
            } else {
                String::new()
            },
        ]);
    }
    rows
}

/// The tightest node and what the rollout leaves of its GC headroom.
fn node_lines(r: &CheckReport, out: &mut String) {
    let Some(n) = &r.node else { return };
    let _ = writeln!(
        out,
        "\n{}: capacity {}, available {}, usage {}%; gc headroom {}, eviction headroom {}{}",
        if n.name == n.label || n.label == "node" {
            crate::report::node_title(&n.name)
        } else {
            format!(
                "{} ({})",
                crate::report::node_title(&n.name),
                plain(&n.label)
            )
        },
        human_bytes(n.capacity_bytes),
        human_bytes(n.available_bytes),
        n.usage_percent,
        human_signed(n.gc_headroom),
        human_signed(n.eviction_headroom),
        n.inode_headroom
            .map(|h| format!(", inode headroom {h}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "{}", plain(&n.used_text()));
    for line in crate::report::node_notes(n, r.policy.store) {
        let _ = writeln!(out, "{}", plain(&line));
    }
    if let Some(left) = r.headroom_left() {
        let _ = writeln!(
            out,
            "gc headroom left after the rollout: {}",
            human_signed(left)
        );
    }
}
