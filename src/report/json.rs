//! `--format json`: the stable, documented schema (see README, "JSON
//! schema") that scripts, the GitHub Action and `sizeguard comment` read.
//! Sizes are plain integers of bytes; what is not known is null, never 0.

use serde::Serialize;

use super::{Renderer, SCHEMA_VERSION};
use crate::analyze::ImageReport;
use crate::measure::LayerReport;
use crate::measure::layer::{FileSize, LayerFigures};
use crate::measure::merged::FinalFigures;
use crate::source::platform::Platform;

pub struct Json;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    images: Vec<ImageJson<'a>>,
}

#[derive(Serialize)]
struct ImageJson<'a> {
    reference: &'a str,
    digest: &'a str,
    /// Absent (not null) for an image that was not picked from an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<&'a str>,
    media_type: &'a str,
    platform: &'a Platform,
    manifest_bytes: u64,
    config_digest: &'a str,
    config_bytes: u64,
    complete: bool,
    /// True when some layer was only probed (`--estimate`); `final` and
    /// `wasted_bytes` are then null, and totals sum what is known.
    estimated: bool,
    /// What could be removed, priced, largest saving first.
    hints: &'a [crate::analyze::hints::Hint],
    layers: Vec<LayerJson<'a>>,
    totals: FiguresJson,
    #[serde(rename = "final")]
    final_fs: Option<FinalJson<'a>>,
    wasted_bytes: Option<u64>,
    /// dive's efficiency score and waste; null when some layer was only
    /// probed (`--estimate`).
    efficiency: Option<crate::budget::rules::dive::DiveAnalysis>,
}

/// The figures of a layer or of the totals; what is not known (a probed
/// layer under `--estimate`, a layer that could not be fetched) is null.
#[derive(Serialize)]
struct FiguresJson {
    compressed_bytes: u64,
    tar_bytes: Option<u64>,
    content_bytes: Option<u64>,
    disk_bytes: Option<u64>,
    inodes: Option<u64>,
    whiteouts: Option<u64>,
    opaque_dirs: Option<u64>,
    files: Option<u64>,
}

/// Sums over the layers; a figure some probed layer does not know is null.
fn totals(r: &ImageReport) -> FiguresJson {
    let t: &LayerFigures = &r.totals;
    let known = !r.estimated;
    let tar_known = r.layers.iter().all(|l| l.probed_tar_exact() != Some(false));
    FiguresJson {
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

#[derive(Serialize)]
struct FinalJson<'a> {
    #[serde(flatten)]
    figures: &'a FinalFigures,
    largest_files: &'a [FileSize],
}

/// Figures are `null` (never 0) for a layer that could not be measured.
#[derive(Serialize)]
struct LayerJson<'a> {
    digest: &'a str,
    media_type: &'a str,
    measured: bool,
    not_measured_reason: Option<&'a str>,
    compression: Option<&'static str>,
    diff_id: Option<&'a str>,
    /// Whether `diff_id` was computed from the tar (`--verify-diff-ids`, an
    /// uncompressed layer) or taken from the image config.
    diff_id_verified: Option<bool>,
    #[serde(flatten)]
    figures: FiguresJson,
    largest_files: &'a [FileSize],
    /// The build step that made the layer (the config history's
    /// `created_by`); null when the history does not say.
    created_by: Option<&'a str>,
    /// Under `--estimate` (or for a local engine's layer): how this layer
    /// was sized; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    estimate: Option<&'a crate::measure::EstimateNote>,
}

fn layer<'a>(l: &'a LayerReport, created_by: Option<&'a str>) -> LayerJson<'a> {
    // A probed layer (`--estimate`) knows its blob and maybe its tar length;
    // every other figure stays null rather than a guessed 0.
    let probed = l.probed_tar_exact();
    let f = l.figures();
    let known = f.filter(|_| probed.is_none());
    LayerJson {
        digest: &l.descriptor.digest,
        media_type: &l.descriptor.media_type,
        measured: known.is_some(),
        not_measured_reason: l.not_measured_reason.as_deref(),
        compression: l.measurement.as_ref().map(|m| m.compression.name()),
        diff_id: known
            .and(l.measurement.as_ref())
            .map(|m| m.diff_id.as_str()),
        diff_id_verified: known
            .and(l.measurement.as_ref())
            .map(|m| m.diff_id_verified),
        figures: FiguresJson {
            compressed_bytes: f.map_or(l.descriptor.size, |f| f.compressed_bytes),
            tar_bytes: f.filter(|_| probed != Some(false)).map(|f| f.tar_bytes),
            content_bytes: known.map(|f| f.content_bytes),
            disk_bytes: known.map(|f| f.disk_bytes),
            inodes: known.map(|f| f.inodes),
            whiteouts: known.map(|f| f.whiteouts),
            opaque_dirs: known.map(|f| f.opaque_dirs),
            files: known.map(|f| f.files),
        },
        largest_files: &l.largest_files,
        created_by,
        estimate: l.estimate.as_ref(),
    }
}

fn image(r: &ImageReport) -> ImageJson<'_> {
    ImageJson {
        reference: &r.image.reference,
        digest: &r.image.digest,
        index_digest: r.image.index_digest.as_deref(),
        media_type: &r.image.media_type,
        platform: &r.image.platform,
        manifest_bytes: r.image.manifest_bytes,
        config_digest: &r.image.config_digest,
        config_bytes: r.image.config_bytes,
        complete: r.complete,
        estimated: r.estimated,
        hints: &r.hints,
        layers: r
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| layer(l, r.image.created_by.get(i).and_then(Option::as_deref)))
            .collect(),
        totals: totals(r),
        final_fs: (!r.estimated).then_some(FinalJson {
            figures: &r.final_fs,
            largest_files: &r.largest_files,
        }),
        wasted_bytes: (!r.estimated).then_some(r.wasted_bytes),
        efficiency: crate::budget::rules::dive::analysis(r),
    }
}

/// Why serializing a report cannot fail: it is plain data (strings,
/// integers, floats that are finite, maps keyed by strings). A failure is
/// a bug, said loudly, never an empty report with exit 0.
pub(crate) const SERIALIZES: &str =
    "a report is plain data with string keys: serializing it cannot fail";

impl Renderer for Json {
    fn render_measure(&self, reports: &[ImageReport]) -> String {
        let doc = Document {
            schema_version: SCHEMA_VERSION,
            images: reports.iter().map(image).collect(),
        };
        let mut s = serde_json::to_string_pretty(&doc).expect(SERIALIZES);
        s.push('\n');
        s
    }

    fn render_check(&self, report: &crate::budget::verdict::CheckReport) -> String {
        Json::check_document(report)
    }
}

/// The `check` document: the verdict, the findings, the policy, and per
/// platform the costs and both images as `measure` reports them.
mod check {
    use serde::Serialize;

    use crate::analyze::layer_diff::LayerDiffRow;
    use crate::analyze::paths::PathGrowth;
    use crate::budget::cost::ImageCost;
    use crate::budget::rules::{Figure, Finding, Policy};
    use crate::budget::verdict::{CheckReport, NodeSummary, PlatformCheck, Verdict, verdict};

    #[derive(Serialize)]
    pub(super) struct CheckDocument<'a> {
        schema_version: u32,
        kind: &'static str,
        verdict: Verdict,
        candidate: &'a str,
        baseline: Option<&'a str>,
        findings: Vec<&'a Finding>,
        node: Option<&'a NodeSummary>,
        policy: &'a Policy,
        platforms: Vec<PlatformJson<'a>>,
        /// Growth by path of every platform, each entry naming its platform.
        paths: Vec<PathJson<'a>>,
        /// The short candidate name (`app`), for comment markers.
        image_name: String,
        /// The Markdown report, for whoever reads the JSON. `sizeguard
        /// comment` never posts it: it renders its own from the figures.
        markdown: String,
    }

    #[derive(Serialize)]
    struct PathJson<'a> {
        platform: &'a str,
        #[serde(flatten)]
        growth: &'a PathGrowth,
    }

    #[derive(Serialize)]
    struct PlatformJson<'a> {
        platform: &'a str,
        verdict: Verdict,
        candidate_digest: &'a str,
        baseline_digest: Option<&'a str>,
        candidate_cost: &'a ImageCost,
        baseline_cost: Option<&'a ImageCost>,
        rollout_cost: &'a ImageCost,
        /// Candidate minus baseline, per figure (by the figure names growth
        /// rules use: `inodes` is the growth of `node_inodes`); null without
        /// a baseline.
        growth: Option<std::collections::BTreeMap<&'static str, i128>>,
        /// Null without a node.
        gc_headroom_left: Option<i128>,
        findings: &'a [Finding],
        layers: &'a [LayerDiffRow],
        /// Both images as `measure` reports them, keys in the same order.
        candidate: super::ImageJson<'a>,
        baseline: Option<super::ImageJson<'a>>,
    }

    pub(super) fn document(r: &CheckReport) -> CheckDocument<'_> {
        CheckDocument {
            schema_version: super::SCHEMA_VERSION,
            kind: "check",
            verdict: r.verdict,
            candidate: &r.candidate_ref,
            baseline: r.baseline_ref.as_deref(),
            findings: r.findings().collect(),
            node: r.node.as_ref(),
            policy: &r.policy,
            platforms: r
                .platforms
                .iter()
                .map(|p| platform(p, r.node.as_ref()))
                .collect(),
            paths: r
                .platforms
                .iter()
                .flat_map(|p| {
                    p.paths.iter().map(|growth| PathJson {
                        platform: &p.evaluation.platform,
                        growth,
                    })
                })
                .collect(),
            image_name: r.image_name(),
            markdown: crate::report::markdown::Markdown.render_check_text(r),
        }
    }

    /// One platform's judgement, with both images in the `measure` shape.
    fn platform<'a>(p: &'a PlatformCheck, node: Option<&NodeSummary>) -> PlatformJson<'a> {
        let e = &p.evaluation;
        PlatformJson {
            platform: &e.platform,
            verdict: verdict(&e.findings),
            candidate_digest: &p.candidate.image.digest,
            baseline_digest: p.baseline.as_ref().map(|b| b.image.digest.as_str()),
            candidate_cost: &e.candidate_cost,
            baseline_cost: e.baseline_cost.as_ref(),
            rollout_cost: &e.rollout_cost,
            growth: e.baseline_cost.map(|_| {
                Figure::ALL
                    .into_iter()
                    .filter_map(|f| e.growth(f).map(|g| (f.name(), g)))
                    .collect()
            }),
            gc_headroom_left: node.map(|n| n.gc_headroom - e.rollout_cost.node_bytes as i128),
            findings: &e.findings,
            layers: &p.layers,
            candidate: super::image(&p.candidate),
            baseline: p.baseline.as_ref().map(super::image),
        }
    }
}

impl Json {
    pub fn check_document(r: &crate::budget::verdict::CheckReport) -> String {
        let mut s = serde_json::to_string_pretty(&check::document(r)).expect(SERIALIZES);
        s.push('\n');
        s
    }
}
