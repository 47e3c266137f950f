//! The default, human-readable report.

use std::fmt::Write;

use super::Renderer;
use crate::measure::{ImageReport, short_digest};
use crate::units::human_bytes;

pub struct Table;

fn row(cells: &[String], widths: &[usize], out: &mut String) {
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i == 0 || i == 1 {
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
        row(r, &widths, out);
    }
}

impl Renderer for Table {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        let mut out = String::new();
        for (n, r) in reports.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "{}  {}  {}",
                r.image.reference, r.image.platform, r.image.digest
            );
            let mut rows = vec![
                [
                    "LAYER",
                    "TYPE",
                    "COMPRESSED",
                    "TAR",
                    "CONTENT",
                    "DISK",
                    "INODES",
                    "FILES",
                    "WHITEOUTS",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ];
            for l in &r.layers {
                let id = short_digest(&l.descriptor.digest).to_string();
                match (l.figures(), &l.measurement) {
                    (Some(f), Some(m)) => rows.push(vec![
                        id,
                        m.compression.name().to_string(),
                        human_bytes(f.compressed_bytes),
                        human_bytes(f.tar_bytes),
                        human_bytes(f.content_bytes),
                        human_bytes(f.disk_bytes),
                        f.inodes.to_string(),
                        f.files.to_string(),
                        f.whiteouts.to_string(),
                    ]),
                    _ => rows.push(vec![
                        id,
                        "-".into(),
                        human_bytes(l.descriptor.size),
                        format!(
                            "not measured: {}",
                            l.not_measured_reason.as_deref().unwrap_or("unknown")
                        ),
                    ]),
                }
            }
            let t = &r.totals;
            rows.push(vec![
                format!("TOTAL ({} layers)", r.layers.len()),
                String::new(),
                human_bytes(t.compressed_bytes),
                human_bytes(t.tar_bytes),
                human_bytes(t.content_bytes),
                human_bytes(t.disk_bytes),
                t.inodes.to_string(),
                t.files.to_string(),
                t.whiteouts.to_string(),
            ]);
            render_table(&rows, &mut out);
            let _ = writeln!(
                out,
                "final filesystem: {} in {} files, {} inodes; wasted (shadowed by upper layers): {}",
                human_bytes(r.final_fs.content_bytes),
                r.final_fs.files,
                r.final_fs.inodes,
                human_bytes(r.wasted_bytes)
            );
            if !r.complete {
                let _ = writeln!(
                    out,
                    "warning: some layers could not be measured; totals are a lower bound"
                );
            }
            if !r.largest_files.is_empty() {
                let _ = writeln!(out, "largest files:");
                for f in &r.largest_files {
                    let _ = writeln!(out, "  {:>10}  /{}", human_bytes(f.size), f.path);
                }
            }
        }
        out
    }
}
