//! The size of an image repository over its releases: one point per image,
//! oldest first, each with the figures of the sizeguard check report kept
//! with it (attached to the image in its registry by `check --attach`, or
//! stored by `sizeguard serve`). A check carries the history of its
//! baseline's repository when asked for a trend; the reports draw it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::verdict::Verdict;

/// Version of the history document (the reports' schema version).
/// The reports' schema version ([`crate::report::SCHEMA_VERSION`]).
const SCHEMA_VERSION: u32 = 1;

/// The artifact type of a check report attached to its image, and the
/// media type of the artifact's one layer (the report itself).
pub const REPORT_ARTIFACT_TYPE: &str = "application/vnd.sizeguard.report.v1+json";

/// What a history document's `kind` says.
pub const HISTORY_KIND: &str = "history";

/// Annotations on an attached report's manifest: the headline figures, so
/// that `history` reads them from the referrers listing without fetching
/// the report. Values are decimal integers (bytes) or the verdict's name.
pub mod annotation {
    pub const VERDICT: &str = "dev.sizeguard.verdict";
    pub const PLATFORM: &str = "dev.sizeguard.platform";
    pub const PULL_BYTES: &str = "dev.sizeguard.pull-bytes";
    pub const DISK_BYTES: &str = "dev.sizeguard.disk-bytes";
    pub const NODE_BYTES: &str = "dev.sizeguard.node-bytes";
    pub const INODES: &str = "dev.sizeguard.inodes";
    pub const GC_HEADROOM: &str = "dev.sizeguard.gc-headroom";
    /// The image's own `created` (from its config), RFC 3339.
    pub const IMAGE_CREATED: &str = "dev.sizeguard.image-created";
    /// When the report was made, RFC 3339 (the OCI annotation).
    pub const CREATED: &str = "org.opencontainers.image.created";
}

/// `sizeguard history --format json` (and `GET /v1/history`), schema
/// version 1: a repository's images, oldest first. Sizes are integers of
/// bytes; what is not known is null. The $id is a name, not a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "sizeguard history --format json",
    extend("$id" = "https://sizeguard.invalid/schema/history.schema.json")
)]
pub struct HistoryView {
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    #[schemars(extend("const" = HISTORY_KIND))]
    pub kind: String,
    /// `registry/repository`, as the points' images are named.
    pub repository: String,
    /// The platform whose figures the points carry (`linux/amd64`); null
    /// when each report's first platform was taken.
    pub platform: Option<String>,
    /// Oldest first (by the image's `created`, then tag).
    pub points: Vec<HistoryPoint>,
    /// Why there are fewer points than asked for, or none (no reports
    /// attached yet, the tag listing was cut): one line for a person.
    pub note: Option<String>,
}

/// Where a point's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PointSource {
    /// A sizeguard check report kept with the image.
    Report,
    /// Measured now (`history --measure`): sizes only, no verdict.
    Measured,
    /// No report, not measured: the figures are null.
    Missing,
}

/// One image of the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "history_point")]
pub struct HistoryPoint {
    /// The tag it was found by; null for a pushed digest without one.
    pub tag: Option<String>,
    /// The digest the tag resolves to (an index's for a multi-platform
    /// image): the attached report's subject.
    pub digest: String,
    /// The image's `created`, RFC 3339, as its config says; null when it
    /// says nothing.
    pub created: Option<String>,
    pub source: PointSource,
    /// The check's verdict; null unless the source is a report.
    pub verdict: Option<Verdict>,
    pub pull_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
    /// What the node pays for the image alone (its `candidate_cost`).
    pub node_bytes: Option<u64>,
    pub inodes: Option<u64>,
    /// The image GC headroom of the node the check judged against (the
    /// tightest one), bytes; null when the check had no node.
    pub gc_headroom: Option<i128>,
    /// The attached report's manifest digest, or the server's verdict
    /// link; null when there is none.
    pub report: Option<String>,
}

impl HistoryView {
    pub fn new(repository: impl Into<String>, platform: Option<String>) -> HistoryView {
        HistoryView {
            schema_version: SCHEMA_VERSION,
            kind: HISTORY_KIND.to_string(),
            repository: repository.into(),
            platform,
            points: Vec::new(),
            note: None,
        }
    }

    /// The points that have figures (a report or a measurement).
    pub fn known(&self) -> impl Iterator<Item = &HistoryPoint> {
        self.points
            .iter()
            .filter(|p| p.source != PointSource::Missing)
    }
}

impl HistoryPoint {
    /// A point with no figures: an image without a report.
    pub fn missing(tag: Option<String>, digest: String, created: Option<String>) -> HistoryPoint {
        HistoryPoint {
            tag,
            digest,
            created,
            source: PointSource::Missing,
            verdict: None,
            pull_bytes: None,
            disk_bytes: None,
            node_bytes: None,
            inodes: None,
            gc_headroom: None,
            report: None,
        }
    }

    /// A short label for an axis or a row: the tag, else the digest's
    /// first 12 hex digits.
    pub fn label(&self) -> String {
        match &self.tag {
            Some(t) => t.clone(),
            None => {
                let hex = self
                    .digest
                    .split_once(':')
                    .map_or(&*self.digest, |(_, h)| h);
                hex.chars().take(12).collect()
            }
        }
    }
}
