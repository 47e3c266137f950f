//! What the Markdown renderer reads of a check: the verdict, the findings,
//! the node, the policy, and per platform the costs, the layer diff and the
//! candidate's layers and largest files.
//!
//! It is built from a [`CheckReport`] in process, or read back from a
//! `check --format json` document by `sizeguard comment`. In the fork
//! pattern that document is an artifact of the pull request's own workflow,
//! so it is untrusted: [`CheckView::from_json`] accepts only the documented
//! shape (kind, schema version, a verdict the findings agree with, numbers
//! that are numbers in range, bounded texts and lists), ignores the
//! document's `markdown`, and the comment is rendered from these figures by
//! the same renderer, escaping included.

use serde::Deserialize;
use serde_json::Value;

use super::SCHEMA_VERSION;
use crate::analyze::ImageReport;
use crate::analyze::layer_diff::LayerDiffRow;
use crate::analyze::paths::PathLayer;
use crate::budget::cost::ImageCost;
use crate::budget::rules::dive::DiveAnalysis;
use crate::budget::rules::{Figure, Finding, Policy};
use crate::budget::verdict::{CheckReport, NodeSummary, PlatformCheck, Verdict, verdict};
use crate::error::Error;
use crate::measure::layer::FileSize;

/// The largest report `sizeguard comment` reads. A real report of a
/// 100-layer, multi-platform image is a few hundred KiB.
pub const MAX_REPORT_BYTES: u64 = 32 << 20;
/// The longest text (a path, a reference, a message) a report may carry.
const MAX_TEXT_CHARS: usize = 8192;
/// The most platforms, findings, layers, files per list a report may carry.
const MAX_PLATFORMS: usize = 64;
const MAX_FINDINGS: usize = 1024;
const MAX_LAYERS: usize = 1024;
const MAX_FILES: usize = 100;
/// Entries of the growth by path, over every platform.
const MAX_PATHS: usize = 4096;
/// Every signed figure in a report is a byte count, a count or a
/// difference of two: within ±u64::MAX.
const MAX_MAGNITUDE: u128 = u64::MAX as u128;

#[derive(Debug, Clone, Deserialize)]
pub struct CheckView {
    pub verdict: Verdict,
    pub candidate: String,
    pub baseline: Option<String>,
    /// Every finding: those not tied to a platform, then each platform's.
    pub findings: Vec<Finding>,
    pub node: Option<NodeSummary>,
    pub policy: Policy,
    pub platforms: Vec<PlatformView>,
    /// Growth by path of every platform; absent from older reports.
    #[serde(default)]
    pub paths: Vec<PathView>,
}

/// One entry of the growth by path, with the platform it belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct PathView {
    pub platform: String,
    pub path: String,
    pub baseline_bytes: u64,
    pub candidate_bytes: u64,
    pub delta_bytes: i128,
    pub files_added: u64,
    pub files_removed: u64,
    pub layers: Vec<PathLayer>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlatformView {
    pub platform: String,
    pub verdict: Verdict,
    pub candidate_cost: ImageCost,
    pub baseline_cost: Option<ImageCost>,
    pub rollout_cost: ImageCost,
    pub findings: Vec<Finding>,
    pub layers: Vec<LayerDiffRow>,
    pub candidate: ImageView,
}

/// The candidate image of a platform, as far as the comment shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageView {
    pub layers: Vec<LayerView>,
    #[serde(rename = "final")]
    pub final_fs: Option<FinalView>,
    /// dive's figures; absent from older reports.
    #[serde(default)]
    pub efficiency: Option<DiveAnalysis>,
    /// Absent from older reports.
    #[serde(default)]
    pub hints: Vec<crate::analyze::hints::Hint>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FinalView {
    pub largest_files: Vec<FileSize>,
}

/// A layer: measured (every figure known) or not (a foreign layer, with
/// the reason and its blob's size).
#[derive(Debug, Clone, Deserialize)]
pub struct LayerView {
    pub digest: String,
    pub measured: bool,
    pub not_measured_reason: Option<String>,
    pub compressed_bytes: u64,
    pub disk_bytes: Option<u64>,
    pub inodes: Option<u64>,
    pub largest_files: Vec<FileSize>,
    /// The build step that made the layer; absent from older reports.
    #[serde(default)]
    pub created_by: Option<String>,
}

impl PlatformView {
    pub fn growth(&self, f: Figure) -> Option<i128> {
        self.baseline_cost
            .map(|b| f.of(&self.candidate_cost) as i128 - f.of(&b) as i128)
    }

    fn from_check(p: &PlatformCheck) -> PlatformView {
        let e = &p.evaluation;
        PlatformView {
            platform: e.platform.clone(),
            verdict: verdict(&e.findings),
            candidate_cost: e.candidate_cost,
            baseline_cost: e.baseline_cost,
            rollout_cost: e.rollout_cost,
            findings: e.findings.clone(),
            layers: p.layers.clone(),
            candidate: ImageView::from_image(&p.candidate),
        }
    }
}

impl ImageView {
    pub fn from_image(r: &ImageReport) -> ImageView {
        let layers = r
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let f = l.figures();
                LayerView {
                    digest: l.descriptor.digest.clone(),
                    measured: f.is_some(),
                    not_measured_reason: l.not_measured_reason.clone(),
                    compressed_bytes: f.map_or(l.descriptor.size, |f| f.compressed_bytes),
                    disk_bytes: f.map(|f| f.disk_bytes),
                    inodes: f.map(|f| f.inodes),
                    largest_files: l.largest_files.clone(),
                    created_by: r.image.created_by.get(i).cloned().flatten(),
                }
            })
            .collect();
        ImageView {
            layers,
            final_fs: (!r.estimated).then(|| FinalView {
                largest_files: r.largest_files.clone(),
            }),
            efficiency: crate::budget::rules::dive::analysis(r),
            hints: r.hints.clone(),
        }
    }

    pub fn largest_files(&self) -> &[FileSize] {
        self.final_fs.as_ref().map_or(&[][..], |f| &f.largest_files)
    }
}

impl CheckView {
    pub fn from_report(r: &CheckReport) -> CheckView {
        CheckView {
            verdict: r.verdict,
            candidate: r.candidate_ref.clone(),
            baseline: r.baseline_ref.clone(),
            findings: r.findings().cloned().collect(),
            node: r.node.clone(),
            policy: r.policy.clone(),
            platforms: r.platforms.iter().map(PlatformView::from_check).collect(),
            paths: r
                .platforms
                .iter()
                .flat_map(|p| {
                    p.paths.iter().map(|g| PathView {
                        platform: p.evaluation.platform.clone(),
                        path: g.path.clone(),
                        baseline_bytes: g.baseline_bytes,
                        candidate_bytes: g.candidate_bytes,
                        delta_bytes: g.delta_bytes,
                        files_added: g.files_added,
                        files_removed: g.files_removed,
                        layers: g.layers.clone(),
                    })
                })
                .collect(),
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter()
    }

    /// The short name of the candidate (`app`), for headlines and markers.
    pub fn image_name(&self) -> String {
        crate::budget::verdict::image_name(&self.candidate)
    }

    /// GC headroom left on the tightest node after the rollout, for the
    /// platform that leaves the least.
    pub fn headroom_left(&self) -> Option<i128> {
        let node = self.node.as_ref()?;
        self.platforms
            .iter()
            .map(|p| node.gc_headroom - p.rollout_cost.node_bytes as i128)
            .min()
    }

    /// Reads a `sizeguard check --format json` document, trusting nothing
    /// in it: a document that is not that shape is a usage error (the
    /// caller names the file).
    pub fn from_json(text: &str) -> Result<CheckView, Error> {
        let invalid = |why: String| Error::usage(format!("not a sizeguard check report: {why}"));
        let doc: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if doc.get("kind").and_then(Value::as_str) != Some("check") {
            return Err(Error::usage(
                "not a `sizeguard check --format json` report (kind is not \"check\")",
            ));
        }
        let version = doc.get("schema_version").and_then(Value::as_u64);
        if version != Some(u64::from(SCHEMA_VERSION)) {
            return Err(invalid(format!(
                "schema_version is {}, this sizeguard reads {SCHEMA_VERSION}",
                doc.get("schema_version").unwrap_or(&Value::Null)
            )));
        }
        // serde quotes the offending value: the report's text, made one
        // visible line like any other.
        let view: CheckView = serde_json::from_value(doc)
            .map_err(|e| invalid(crate::report::escape::plain(&e.to_string()).into_owned()))?;
        view.validate().map_err(invalid)?;
        Ok(view)
    }

    /// Bounds and consistency: what the renderer and the comment may rely on.
    fn validate(&self) -> Result<(), String> {
        let mut texts: Vec<(&str, &str)> = vec![("candidate", &self.candidate)];
        if let Some(b) = &self.baseline {
            texts.push(("baseline", b));
        }
        if let Some(n) = &self.node {
            texts.extend([("node label", &*n.label), ("node name", &n.name)]);
            for v in [n.gc_headroom, n.eviction_headroom] {
                in_range("node headroom", v)?;
            }
            if let Some(v) = n.inode_headroom {
                in_range("node inode headroom", v)?;
            }
        }
        at_most("platforms", self.platforms.len(), MAX_PLATFORMS)?;
        at_most("findings", self.findings.len(), MAX_FINDINGS)?;
        check_findings(&self.findings, &mut texts)?;
        if verdict(&self.findings) != self.verdict {
            return Err(format!(
                "its verdict {} is not what its findings say ({})",
                self.verdict,
                verdict(&self.findings)
            ));
        }
        for p in &self.platforms {
            p.validate(&mut texts)?;
        }
        at_most("paths", self.paths.len(), MAX_PATHS)?;
        for p in &self.paths {
            in_range("path growth", p.delta_bytes)?;
            at_most("layers of a path", p.layers.len(), MAX_LAYERS)?;
            texts.extend([("platform", &*p.platform), ("path", &*p.path)]);
            for l in &p.layers {
                at_most("a layer position", l.index, MAX_LAYERS)?;
                texts.extend(l.created_by.as_deref().map(|c| ("build step", c)));
            }
        }
        for (what, text) in texts {
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(format!(
                    "a {what} is longer than {MAX_TEXT_CHARS} characters"
                ));
            }
        }
        Ok(())
    }
}

impl PlatformView {
    fn validate<'a>(&'a self, texts: &mut Vec<(&'static str, &'a str)>) -> Result<(), String> {
        texts.push(("platform", &self.platform));
        at_most("findings of a platform", self.findings.len(), MAX_FINDINGS)?;
        check_findings(&self.findings, texts)?;
        if verdict(&self.findings) != self.verdict {
            return Err(format!(
                "the verdict of platform {:?} is not what its findings say",
                crate::report::escape::plain(&self.platform)
            ));
        }
        at_most("layers", self.layers.len(), MAX_LAYERS)?;
        at_most("layers", self.candidate.layers.len(), MAX_LAYERS)?;
        for row in &self.layers {
            at_most("a layer position", row.index, MAX_LAYERS)?;
            at_most("largest files", row.largest_files.len(), MAX_FILES)?;
            texts.extend(row.candidate_digest.as_deref().map(|d| ("digest", d)));
            texts.extend(row.baseline_digest.as_deref().map(|d| ("digest", d)));
            texts.extend(row.largest_files.iter().map(|f| ("path", &*f.path)));
        }
        for l in &self.candidate.layers {
            at_most("largest files", l.largest_files.len(), MAX_FILES)?;
            if l.measured && (l.disk_bytes.is_none() || l.inodes.is_none()) {
                return Err("a measured layer lacks its figures".into());
            }
            texts.push(("digest", &l.digest));
            texts.extend(l.not_measured_reason.as_deref().map(|r| ("reason", r)));
            texts.extend(l.created_by.as_deref().map(|c| ("build step", c)));
            texts.extend(l.largest_files.iter().map(|f| ("path", &*f.path)));
        }
        let largest = self.candidate.largest_files();
        at_most("largest files", largest.len(), MAX_FILES)?;
        texts.extend(largest.iter().map(|f| ("path", &*f.path)));
        Ok(())
    }
}

fn check_findings<'a>(
    findings: &'a [Finding],
    texts: &mut Vec<(&'static str, &'a str)>,
) -> Result<(), String> {
    for f in findings {
        in_range("finding value", f.value)?;
        in_range("finding limit", f.limit)?;
        texts.extend([
            ("finding platform", &*f.platform),
            ("finding figure", f.figure.name()),
            ("limit", &f.limit_text),
            ("message", &f.message),
        ]);
    }
    Ok(())
}

fn at_most(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!("{n} {what}, more than the {max} a report may have"));
    }
    Ok(())
}

fn in_range(what: &str, v: i128) -> Result<(), String> {
    if v.unsigned_abs() > MAX_MAGNITUDE {
        return Err(format!("a {what} of {v} is out of range"));
    }
    Ok(())
}
