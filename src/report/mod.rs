//! One renderer per output format, behind one trait (as hyperfine keeps
//! its exporters), over the same measured and judged reports: what the
//! table says, the JSON and the Markdown say too.
//!
//! - [`table`]: the default, for a terminal or a CI log.
//! - [`json`]: the stable, documented schema for machines.
//! - [`markdown`]: the pull-request comment and the step summary, over
//!   [`view`]: what it reads of a check, built in process or read back
//!   from an untrusted JSON report.
//! - [`terminal`]: the verdict in a few lines, for the pre-push hook.
//! - [`history`]: a repository's releases as a series, and the one unit
//!   scale every chart of it is drawn in; [`trend`] writes it as a table,
//!   Markdown and the pull request's Mermaid chart, [`chart`] as SVG.
//! - [`html`]: a check report for the dashboard, and the one HTML escape
//!   of its pages and of the SVG charts ([`chart`]).
//! - [`escape`]: the one place text from an image or a report is made
//!   inert for the terminal, Markdown, workflow commands and output files.
//!
//! Which formats a command offers is the command line's business; this
//! module renders any of them.

pub mod chart;
pub mod escape;
pub mod hints;
pub mod history;
pub mod html;
pub mod json;
pub mod markdown;
pub mod schema;
pub mod table;
pub mod terminal;
pub mod trend;
pub mod view;

use crate::analyze::ImageReport;
use crate::budget::verdict::CheckReport;

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

pub trait Renderer {
    fn render_measure(&self, reports: &[ImageReport]) -> String;
    fn render_check(&self, report: &CheckReport) -> String;
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
    Short,
}

pub fn renderer(format: Format) -> Box<dyn Renderer> {
    match format {
        Format::Table => Box::new(table::Table),
        Format::Json => Box::new(json::Json),
        Format::Markdown => Box::new(markdown::Markdown),
        Format::Short => Box::new(terminal::Terminal::default()),
    }
}

/// How a line names a node: a node given by flags is already called by its
/// capacity (`20 GiB node`), a profile by its name (`node small`); never
/// `node 20 GiB node`.
pub fn node_title(name: &str) -> String {
    let name = escape::plain(name);
    if name.ends_with(" node") {
        name.into_owned()
    } else {
        format!("node {name}")
    }
}

/// A rollout's cost as the headroom rules judge it: what stays, and the
/// peak of the pull when layer blobs exist only until they are discarded.
pub fn judged_cost(cost: &crate::budget::cost::ImageCost) -> String {
    if cost.peak_pull_bytes > cost.node_bytes {
        format!(
            "{} (peak {} while pulling: judged)",
            crate::units::human_bytes(cost.node_bytes),
            crate::units::human_bytes(cost.peak_pull_bytes)
        )
    } else {
        crate::units::human_bytes(cost.node_bytes)
    }
}

/// What every format says about a node besides its headroom: the
/// runtime the figures follow and which figure the rules judged, a split
/// image filesystem, and `imageMaximumGCAge`.
pub fn node_notes(
    n: &crate::budget::verdict::NodeSummary,
    store: crate::budget::cost::StoreModel,
) -> Vec<String> {
    use crate::units::human_bytes;
    let judged = if store.runtime.keeps_layer_blobs() {
        "what stays on the node (blobs and unpacked layers)"
    } else if store.runtime == crate::budget::cost::Runtime::CriO {
        "the peak of the pull (blobs staged until committed, then removed)"
    } else {
        "the peak of the pull (layer blobs kept until unpacked, then discarded)"
    };
    let mut notes = vec![format!(
        "Runtime {}: the headroom rules judge {judged}",
        store.describe()
    )];
    if let Some(c) = n.container_fs {
        notes.push(format!(
            "Split image filesystem: containerFs {} of {} available holds the writable layers and is not judged; the image rules judge imageFs",
            human_bytes(c.available_bytes),
            human_bytes(c.capacity_bytes)
        ));
    }
    if let Some(age) = n.thresholds.image_maximum_gc_age_seconds {
        notes.push(format!(
            "imageMaximumGCAge {}: an unused image (the replaced baseline) is removed after that long, whatever the usage",
            crate::units::format_duration(std::time::Duration::from_secs(age))
        ));
    }
    notes
}
