//! `--format json`: the stable, documented schema (see README, "JSON
//! schema") that scripts, the GitHub Action and `sizeguard comment` read.
//! Sizes are plain integers of bytes; what is not known is null, never 0.
//!
//! The report is one set of owned types: built here from the app's report
//! and serialized, read back by [`super::view`] from an untrusted document,
//! and described by the schemas in `schema/`, which [`super::schema`]
//! generates from them. A field is written once, here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Renderer, SCHEMA_VERSION};
use crate::analyze::ImageReport;
use crate::analyze::hints::Hint;
use crate::analyze::layer_diff::LayerDiffRow;
use crate::analyze::paths::PathGrowth;
use crate::budget::cost::ImageCost;
use crate::budget::rules::dive::DiveAnalysis;
use crate::budget::rules::{Figure, Finding, Policy};
use crate::budget::verdict::{CheckReport, NodeSummary, PlatformCheck, Verdict, verdict};
use crate::measure::layer::{FileSize, LayerFigures};
use crate::measure::{EstimateNote, LayerReport};
use crate::source::platform::Platform;

pub struct Json;

/// A content digest (`sha256:…`), as the OCI image spec defines one.
const DIGEST_PATTERN: &str = "^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$";

/// The report of `sizeguard measure --format json`, schema_version 1. Sizes
/// are integers of bytes; what is not known is null, never 0 and never
/// missing. The $id is a name, not a location.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "sizeguard measure --format json",
    extend("$id" = "https://sizeguard.invalid/schema/measure.schema.json")
)]
pub struct MeasureView {
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    pub images: Vec<ImageView>,
}

/// An image as `measure` reports it, and as `check` embeds both of its
/// images.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "image")]
pub struct ImageView {
    pub reference: String,
    /// The image manifest's digest (docker-archive: the config digest, the
    /// image ID).
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub digest: String,
    /// The index the image was picked from; absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub index_digest: Option<String>,
    /// That index's size in bytes; the runtime keeps it with the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_bytes: Option<u64>,
    pub media_type: String,
    pub platform: Platform,
    pub manifest_bytes: u64,
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub config_digest: String,
    pub config_bytes: u64,
    /// The config's `created` (RFC 3339): when the image was built; null
    /// when the config has none. Absent from older reports.
    #[serde(default)]
    pub created: Option<String>,
    /// false when a (foreign) layer could not be measured: totals are a
    /// lower bound.
    pub complete: bool,
    /// true when some layer was only probed (--estimate): final and
    /// wasted_bytes are then null, and totals sum what is known.
    pub estimated: bool,
    /// What could be removed, priced, largest disk saving first. Advice
    /// only: never changes a verdict. Empty when layers were only probed.
    /// Absent from older reports.
    #[serde(default)]
    pub hints: Vec<Hint>,
    pub layers: Vec<LayerView>,
    pub totals: FiguresView,
    /// The merged filesystem the container sees; null when some layer was
    /// only probed (--estimate).
    #[serde(rename = "final")]
    pub final_fs: Option<FinalView>,
    /// Bytes shadowed by upper layers.
    pub wasted_bytes: Option<u64>,
    /// dive's efficiency score and waste; null when some layer was only
    /// probed (--estimate). Absent from older reports.
    #[serde(default)]
    pub efficiency: Option<DiveAnalysis>,
}

/// The figures of a layer or of the totals; what is not known (a probed
/// layer under `--estimate`, a layer that could not be fetched) is null.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "totals")]
pub struct FiguresView {
    pub compressed_bytes: u64,
    pub tar_bytes: Option<u64>,
    pub content_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
    pub inodes: Option<u64>,
    pub whiteouts: Option<u64>,
    pub opaque_dirs: Option<u64>,
    pub files: Option<u64>,
}

/// The merged filesystem the container sees.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "final")]
pub struct FinalView {
    pub content_bytes: u64,
    pub inodes: u64,
    pub files: u64,
    pub largest_files: Vec<FileSize>,
}

/// A layer: measured (every figure known) or not (a foreign layer, with
/// the reason and its blob's size, or a layer only probed under
/// --estimate).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "layer")]
pub struct LayerView {
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub digest: String,
    pub media_type: String,
    /// false: the figures that need the tar are null, not_measured_reason
    /// says why (or, under --estimate, the layer was only probed).
    pub measured: bool,
    pub not_measured_reason: Option<String>,
    #[schemars(extend("enum" = ["gzip", "zstd", "tar", null]))]
    pub compression: Option<String>,
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub diff_id: Option<String>,
    /// Whether `diff_id` was computed from the tar (`--verify-diff-ids`, an
    /// uncompressed layer) or taken from the image config.
    pub diff_id_verified: Option<bool>,
    #[serde(flatten)]
    pub figures: FiguresView,
    pub largest_files: Vec<FileSize>,
    /// The build step that made the layer: the image config's
    /// history[].created_by, skipping empty_layer entries; null when the
    /// history does not pair with the layers. Absent from older reports.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Under --estimate, or for a local engine's layer: how the layer was
    /// sized; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateNote>,
}

/// The report of `sizeguard check --format json`, schema_version 1: the
/// verdict, the findings, the policy, and per platform the costs and both
/// images in the measure schema's shape. The $id is a name, not a location.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "sizeguard check --format json",
    extend("$id" = "https://sizeguard.invalid/schema/check.schema.json")
)]
pub struct CheckView {
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    #[schemars(extend("const" = CHECK_KIND))]
    pub kind: String,
    pub verdict: Verdict,
    pub candidate: String,
    pub baseline: Option<String>,
    /// Every finding: those not tied to a platform, then each platform's.
    pub findings: Vec<Finding>,
    pub node: Option<NodeSummary>,
    pub policy: Policy,
    pub platforms: Vec<PlatformView>,
    /// Growth by path of every platform, sorted by delta_bytes (largest
    /// first) within a platform; empty without a baseline. Absent from
    /// older reports.
    #[serde(default)]
    pub paths: Vec<PathView>,
    /// The baseline repository's earlier releases, oldest first, when a
    /// trend was asked for (`check --trend`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::budget::history::HistoryView>,
    /// The short candidate name (`app`), for comment markers.
    pub image_name: String,
    /// The Markdown report, for whoever reads the JSON. `sizeguard comment`
    /// never posts it: it renders its own from the figures.
    pub markdown: String,
}

/// What a check document's `kind` says.
pub(crate) const CHECK_KIND: &str = "check";

/// One entry of the growth by path, with the platform it belongs to: a
/// directory (its path ends with /) or file whose content grew or shrank
/// between the baseline's and the candidate's final filesystems, rolled up
/// as the README's "Growth by path" says.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "path_growth")]
pub struct PathView {
    pub platform: String,
    #[serde(flatten)]
    pub growth: PathGrowth,
}

/// One platform's judgement, with both images in the `measure` shape.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "platform_check")]
pub struct PlatformView {
    pub platform: String,
    pub verdict: Verdict,
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub candidate_digest: String,
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub baseline_digest: Option<String>,
    pub candidate_cost: ImageCost,
    pub baseline_cost: Option<ImageCost>,
    pub rollout_cost: ImageCost,
    /// Candidate minus baseline, per figure, by the names growth rules use:
    /// `inodes` is the growth of the costs' `node_inodes`; null without a
    /// baseline.
    #[schemars(schema_with = "super::schema::growth")]
    pub growth: Option<BTreeMap<String, i128>>,
    /// The tightest node's gc_headroom minus the rollout's node_bytes; null
    /// without a node.
    pub gc_headroom_left: Option<i128>,
    pub findings: Vec<Finding>,
    /// Per-position diff against the baseline; empty without one.
    pub layers: Vec<LayerDiffRow>,
    /// Both images as `measure` reports them, keys in the same order.
    pub candidate: ImageView,
    pub baseline: Option<ImageView>,
}

impl FiguresView {
    /// Sums over the layers; a figure some probed layer does not know is null.
    fn totals(r: &ImageReport) -> FiguresView {
        let t: &LayerFigures = &r.totals;
        let known = !r.estimated;
        let tar_known = r.layers.iter().all(|l| l.probed_tar_exact() != Some(false));
        FiguresView {
            compressed_bytes: t.compressed_bytes,
            tar_bytes: tar_known.then_some(t.tar_bytes),
            content_bytes: known.then_some(t.content_bytes),
            disk_bytes: known.then_some(t.disk_bytes),
            inodes: known.then_some(t.inodes),
            whiteouts: known.then_some(t.whiteouts),
            opaque_dirs: known.then_some(t.opaque_dirs),
            files: known.then_some(t.files),
        }
    }
}

impl LayerView {
    fn from_layer(l: &LayerReport, created_by: Option<String>) -> LayerView {
        // A probed layer (`--estimate`) knows its blob and maybe its tar
        // length; every other figure stays null rather than a guessed 0.
        let probed = l.probed_tar_exact();
        let f = l.figures();
        let known = f.filter(|_| probed.is_none());
        let measurement = known.and(l.measurement.as_ref());
        LayerView {
            digest: l.descriptor.digest.clone(),
            media_type: l.descriptor.media_type.clone(),
            measured: known.is_some(),
            not_measured_reason: l.not_measured_reason.clone(),
            compression: l
                .measurement
                .as_ref()
                .map(|m| m.compression.name().to_string()),
            diff_id: measurement.map(|m| m.diff_id.clone()),
            diff_id_verified: measurement.map(|m| m.diff_id_verified),
            figures: FiguresView {
                compressed_bytes: f.map_or(l.descriptor.size, |f| f.compressed_bytes),
                tar_bytes: f.filter(|_| probed != Some(false)).map(|f| f.tar_bytes),
                content_bytes: known.map(|f| f.content_bytes),
                disk_bytes: known.map(|f| f.disk_bytes),
                inodes: known.map(|f| f.inodes),
                whiteouts: known.map(|f| f.whiteouts),
                opaque_dirs: known.map(|f| f.opaque_dirs),
                files: known.map(|f| f.files),
            },
            largest_files: l.largest_files.clone(),
            created_by,
            estimate: l.estimate.clone(),
        }
    }
}

impl ImageView {
    pub fn from_image(r: &ImageReport) -> ImageView {
        ImageView {
            reference: r.image.reference.clone(),
            digest: r.image.digest.clone(),
            index_digest: r.image.index_digest.clone(),
            index_bytes: r.image.index_bytes,
            media_type: r.image.media_type.clone(),
            platform: r.image.platform.clone(),
            manifest_bytes: r.image.manifest_bytes,
            config_digest: r.image.config_digest.clone(),
            config_bytes: r.image.config_bytes,
            created: r.image.created.clone(),
            complete: r.complete,
            estimated: r.estimated,
            hints: r.hints.clone(),
            layers: r
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    LayerView::from_layer(l, r.image.created_by.get(i).cloned().flatten())
                })
                .collect(),
            totals: FiguresView::totals(r),
            final_fs: (!r.estimated).then(|| FinalView {
                content_bytes: r.final_fs.content_bytes,
                inodes: r.final_fs.inodes,
                files: r.final_fs.files,
                largest_files: r.largest_files.clone(),
            }),
            wasted_bytes: (!r.estimated).then_some(r.wasted_bytes),
            efficiency: crate::budget::rules::dive::analysis(r),
        }
    }

    pub fn largest_files(&self) -> &[FileSize] {
        self.final_fs.as_ref().map_or(&[][..], |f| &f.largest_files)
    }
}

impl PlatformView {
    fn from_check(p: &PlatformCheck, node: Option<&NodeSummary>) -> PlatformView {
        let e = &p.evaluation;
        PlatformView {
            platform: e.platform.clone(),
            verdict: verdict(&e.findings),
            candidate_digest: p.candidate.image.digest.clone(),
            baseline_digest: p.baseline.as_ref().map(|b| b.image.digest.clone()),
            candidate_cost: e.candidate_cost,
            baseline_cost: e.baseline_cost,
            rollout_cost: e.rollout_cost,
            growth: e.baseline_cost.map(|_| {
                Figure::ALL
                    .into_iter()
                    .filter_map(|f| e.growth(f).map(|g| (f.name().to_string(), g)))
                    .collect()
            }),
            gc_headroom_left: node.map(|n| n.headroom_left(&e.rollout_cost)),
            findings: e.findings.clone(),
            layers: p.layers.clone(),
            candidate: ImageView::from_image(&p.candidate),
            baseline: p.baseline.as_ref().map(ImageView::from_image),
        }
    }

    /// Candidate minus baseline for one figure; None without a baseline.
    pub fn growth(&self, f: Figure) -> Option<i128> {
        f.growth(&self.candidate_cost, self.baseline_cost.as_ref())
    }
}

impl CheckView {
    /// The report as every format shows it. `markdown` is left empty: it is
    /// rendered from this view, and only the JSON carries it.
    pub fn from_report(r: &CheckReport) -> CheckView {
        CheckView {
            schema_version: SCHEMA_VERSION,
            kind: CHECK_KIND.to_string(),
            verdict: r.verdict,
            candidate: r.candidate_ref.clone(),
            baseline: r.baseline_ref.clone(),
            findings: r.findings().cloned().collect(),
            node: r.node.clone(),
            policy: r.policy.clone(),
            platforms: r
                .platforms
                .iter()
                .map(|p| PlatformView::from_check(p, r.node.as_ref()))
                .collect(),
            paths: r
                .platforms
                .iter()
                .flat_map(|p| {
                    p.paths.iter().map(|growth| PathView {
                        platform: p.evaluation.platform.clone(),
                        growth: growth.clone(),
                    })
                })
                .collect(),
            history: r.history.clone(),
            image_name: r.image_name(),
            markdown: String::new(),
        }
    }
}

/// Why serializing a report cannot fail: it is plain data (strings,
/// integers, floats that are finite, maps keyed by strings). A failure is
/// a bug, said loudly, never an empty report with exit 0.
pub(crate) const SERIALIZES: &str =
    "a report is plain data with string keys: serializing it cannot fail";

fn pretty<T: Serialize>(doc: &T) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect(SERIALIZES);
    s.push('\n');
    s
}

impl Renderer for Json {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        pretty(&MeasureView {
            schema_version: SCHEMA_VERSION,
            images: reports.iter().map(ImageView::from_image).collect(),
        })
    }

    fn render_check(&self, report: &CheckReport) -> String {
        Json::check_document(report)
    }
}

impl Json {
    pub fn check_document(r: &CheckReport) -> String {
        let mut doc = CheckView::from_report(r);
        doc.markdown = super::markdown::Markdown.render_view(&doc);
        pretty(&doc)
    }
}
