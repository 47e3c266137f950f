//! Hints as one line each, for the table and the Markdown reports. Paths
//! are attacker-chosen: escaped for where they are shown.

use super::escape::{md_code, md_text, plain};
use crate::analyze::hints::Hint;
use crate::units::human_bytes;

/// Hints shown in a report; the JSON has them all.
pub const SHOWN: usize = 5;

/// What a hint saves: disk, inodes, the pull estimate, and the node shares.
fn savings(h: &Hint) -> String {
    let mut s = format!(
        "{} on disk, {} inodes, ~{} to pull",
        human_bytes(h.disk_bytes),
        h.inodes,
        human_bytes(h.pull_bytes_estimate)
    );
    if let Some(n) = &h.node {
        s.push_str(&format!(
            "; {}% of the rollout's cost to the node",
            n.rollout_cost_percent
        ));
        if let Some(g) = n.gc_headroom_percent {
            s.push_str(&format!(", {g}% of its GC headroom"));
        }
    }
    s
}

/// `layers 2→5: ` for a hint about hidden bytes.
fn layers(h: &Hint) -> String {
    h.layers
        .map(|l| {
            format!(
                " (added in layer {}, hidden by layer {})",
                l.added_in, l.hidden_by
            )
        })
        .unwrap_or_default()
}

/// One plain-text line: saving, what, how many files, an example path.
pub fn plain_line(h: &Hint) -> String {
    let example = h
        .paths
        .first()
        .map(|p| format!(", e.g. /{}", plain(p)))
        .unwrap_or_default();
    format!(
        "{:>10}  {}{}: {} files{example} ({}); {}",
        human_bytes(h.disk_bytes),
        plain(&h.title),
        plain(&layers(h)),
        h.files,
        savings(h),
        plain(&h.advice)
    )
}

/// One Markdown list item.
pub fn markdown_line(h: &Hint) -> String {
    let example = h
        .paths
        .first()
        .map(|p| format!(", e.g. {}", md_code(&format!("/{p}"))))
        .unwrap_or_default();
    format!(
        "- **{}** {}{}: {} files{example} ({}); {}",
        human_bytes(h.disk_bytes),
        md_text(&h.title),
        md_text(&layers(h)),
        h.files,
        md_text(&savings(h)),
        md_text(&h.advice)
    )
}
