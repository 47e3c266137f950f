//! What the Markdown renderer reads of a check: the report's own types
//! (see [`super::json`]), with what the renderer asks of them.
//!
//! A view is built from a check report in process, or read back from a
//! `check --format json` document by `sizeguard comment`. In the fork
//! pattern that document is an artifact of the pull request's own workflow,
//! so it is untrusted: [`CheckView::from_json`] accepts only the documented
//! shape (kind, schema version, a verdict the findings agree with, numbers
//! that are numbers in range, bounded texts and lists), ignores the
//! document's `markdown`, and the comment is rendered from these figures by
//! the same renderer, escaping included.

use serde_json::Value;

use super::SCHEMA_VERSION;
use super::json::CHECK_KIND;
pub use super::json::{CheckView, FinalView, ImageView, LayerView, PathView, PlatformView};
use crate::budget::rules::Finding;
use crate::budget::verdict::verdict;
use crate::error::Error;

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
/// The most releases a report's history may carry (`check --trend` asks
/// for a few), and the longest of its texts.
const MAX_HISTORY_POINTS: usize = 100;
const MAX_TAG_CHARS: usize = 256;
const MAX_REPOSITORY_CHARS: usize = 512;
const MAX_NOTE_CHARS: usize = 1024;
const MAX_DIGEST_CHARS: usize = 256;
const MAX_DATE_CHARS: usize = 64;
/// Every signed figure in a report is a byte count, a count or a
/// difference of two: within ±u64::MAX.
const MAX_MAGNITUDE: u128 = u64::MAX as u128;

impl CheckView {
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
            .map(|p| node.headroom_left(&p.rollout_cost))
            .min()
    }

    /// Reads a `sizeguard check --format json` document, trusting nothing
    /// in it: a document that is not that shape is a usage error (the
    /// caller names the file).
    pub fn from_json(text: &str) -> Result<CheckView, Error> {
        let invalid = |why: String| Error::usage(format!("not a sizeguard check report: {why}"));
        let doc: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if doc.get("kind").and_then(Value::as_str) != Some(CHECK_KIND) {
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
        let mut view: CheckView = serde_json::from_value(doc)
            .map_err(|e| invalid(crate::report::escape::plain(&e.to_string()).into_owned()))?;
        view.validate().map_err(invalid)?;
        // What the document says of itself is never shown: the Markdown
        // and the name are derived again from the validated figures.
        view.markdown = String::new();
        view.image_name = view.image_name();
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
            in_range("path growth", p.growth.delta_bytes)?;
            at_most("layers of a path", p.growth.layers.len(), MAX_LAYERS)?;
            texts.extend([("platform", &*p.platform), ("path", &*p.growth.path)]);
            for l in &p.growth.layers {
                at_most("a layer position", l.index, MAX_LAYERS)?;
                texts.extend(l.created_by.as_deref().map(|c| ("build step", c)));
            }
        }
        if let Some(h) = &self.history {
            validate_history(h)?;
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
            if l.measured && (l.figures.disk_bytes.is_none() || l.figures.inodes.is_none()) {
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

/// A report's history: in the fork pattern the pull request wrote it, so
/// each text is bounded here and made inert where it lands (the chart
/// keeps only characters that mean nothing to Mermaid, the table escapes
/// for Markdown); digests must look like digests.
fn validate_history(h: &crate::budget::history::HistoryView) -> Result<(), String> {
    use crate::budget::history::HISTORY_KIND;
    if h.kind != HISTORY_KIND || h.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "its history is not a version {SCHEMA_VERSION} history document"
        ));
    }
    at_most("history points", h.points.len(), MAX_HISTORY_POINTS)?;
    let mut texts: Vec<(&str, &str, usize)> =
        vec![("history repository", &h.repository, MAX_REPOSITORY_CHARS)];
    texts.extend(
        h.platform
            .as_deref()
            .map(|p| ("history platform", p, MAX_TAG_CHARS)),
    );
    texts.extend(
        h.note
            .as_deref()
            .map(|n| ("history note", n, MAX_NOTE_CHARS)),
    );
    for p in &h.points {
        if !is_digest(&p.digest) {
            return Err(format!(
                "a history point's digest {:?} is not a digest",
                crate::report::escape::plain(&p.digest.chars().take(80).collect::<String>())
            ));
        }
        if let Some(v) = p.gc_headroom {
            in_range("history GC headroom", v)?;
        }
        texts.extend(p.tag.as_deref().map(|t| ("history tag", t, MAX_TAG_CHARS)));
        texts.extend(
            p.created
                .as_deref()
                .map(|c| ("history date", c, MAX_DATE_CHARS)),
        );
        texts.extend(
            p.report
                .as_deref()
                .map(|r| ("history report link", r, MAX_TEXT_CHARS)),
        );
    }
    for (what, text, max) in texts {
        if text.chars().count() > max {
            return Err(format!("a {what} is longer than {max} characters"));
        }
    }
    Ok(())
}

/// `algorithm:encoded` as the OCI image spec writes a digest.
fn is_digest(s: &str) -> bool {
    let Some((alg, enc)) = s.split_once(':') else {
        return false;
    };
    s.len() <= MAX_DIGEST_CHARS
        && !alg.is_empty()
        && !enc.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
}
