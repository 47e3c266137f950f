//! History kept with the images: a check report attached to its candidate
//! in the registry (an OCI artifact whose subject is the image), and a
//! repository's history read back from those reports.
//!
//! The artifact is an image manifest of `artifactType`
//! [`REPORT_ARTIFACT_TYPE`], the empty config, and one layer, the report's
//! JSON; its annotations carry the headline figures, so that reading a
//! history costs one referrers listing per image, not a report download.
//! A registry without the referrers API (Distribution 2.x) lists an
//! image's referrers in the index tagged `sha256-HEX` (the OCI
//! distribution spec's fallback), which is read and written keeping every
//! other tool's entries.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use oci_client::Reference;
use serde_json::{Value, json};

use super::{CheckRequest, Services};
use crate::budget::Verdict;
use crate::budget::kubelet::Thresholds;
use crate::budget::rules::Policy;
use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::report::history::{
    HistoryPoint, HistoryView, PointSource, REPORT_ARTIFACT_TYPE, annotation,
};
use crate::report::json::CheckView;
use crate::report::view::MAX_REPORT_BYTES;
use crate::source::manifest::OCI_MANIFEST;
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;
use crate::source::registry::RegistryPool;
use crate::source::registry::repository::{Descriptor, Repository};

/// The OCI empty descriptor's content (`{}`), the config of an artifact.
const EMPTY_JSON: &[u8] = b"{}";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Images whose reports are read at once.
const CONCURRENT_IMAGES: usize = 8;

/// The most tags one history resolves: each costs a few requests (its
/// manifest, its referrers, the config of an image without a report), so
/// a repository of thousands of tags would cost thousands of requests on
/// every check with a trend. Past it, the tags the registry lists last are
/// kept (Distribution lists them in lexical order, where versions of one
/// scheme end newest) and the note says to narrow them with `--tags`.
const MAX_EXAMINED: usize = 500;

/// Where a report was attached.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The artifact manifest's digest.
    pub report: Digest,
    /// `REGISTRY/REPOSITORY@DIGEST` of the subject.
    pub subject: String,
    /// Listed by the registry's referrers API (else by the fallback tag).
    pub by_api: bool,
}

/// A registry reference's repository, as `REGISTRY/REPOSITORY`, from a
/// reference that may carry a tag or digest.
pub fn repository_of(reference: &str) -> Option<Reference> {
    match ImageRef::parse(reference) {
        Ok(ImageRef::Registry(r)) => Some(r),
        _ => None,
    }
}

fn pool(services: &Services) -> Result<&RegistryPool, Error> {
    services
        .sources
        .registries()
        .ok_or_else(|| Error::usage("this sizeguard reads no registries"))
}

/// The artifact manifest of a report, and the report's layer.
fn artifact(view: &CheckView, subject: Descriptor, report: &Bytes, now: &str) -> Value {
    let point = HistoryPoint::from_check(view, None, None, String::new());
    let mut notes = BTreeMap::new();
    notes.insert(annotation::CREATED, now.to_string());
    if let Some(v) = point.verdict {
        notes.insert(annotation::VERDICT, verdict_name(v));
    }
    if let Some(p) = view.platforms.first() {
        notes.insert(annotation::PLATFORM, p.platform.clone());
    }
    for (key, value) in [
        (annotation::PULL_BYTES, point.pull_bytes),
        (annotation::DISK_BYTES, point.disk_bytes),
        (annotation::NODE_BYTES, point.node_bytes),
        (annotation::INODES, point.inodes),
    ] {
        if let Some(v) = value {
            notes.insert(key, v.to_string());
        }
    }
    if let Some(h) = point.gc_headroom {
        notes.insert(annotation::GC_HEADROOM, h.to_string());
    }
    if let Some(c) = &point.created {
        notes.insert(annotation::IMAGE_CREATED, c.clone());
    }
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": REPORT_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": Digest::sha256(EMPTY_JSON).to_string(),
            "size": EMPTY_JSON.len(),
            "data": "e30=",
        },
        "layers": [{
            "mediaType": REPORT_ARTIFACT_TYPE,
            "digest": Digest::sha256(report).to_string(),
            "size": report.len(),
        }],
        "subject": subject,
        "annotations": notes,
    })
}

fn verdict_name(v: Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Stores a check's JSON report in its candidate's repository, as an
/// artifact whose subject is the candidate (the index it was picked from,
/// when there is one); on a registry without the referrers API, also in
/// the subject's fallback index.
pub async fn attach(
    services: &Services,
    candidate: &str,
    view: &CheckView,
    report_json: &str,
) -> Result<Attached, Error> {
    let reference = repository_of(candidate).ok_or_else(|| {
        Error::usage(format!(
            "--attach needs a registry candidate, not {candidate}"
        ))
    })?;
    let subject = HistoryPoint::subject_of(view)
        .ok_or_else(|| Error::usage("the report has no candidate image to attach to"))?;
    let subject = Digest::parse(&subject)?;
    let repo = pool(services)?.repository(&reference, true).await?;
    let shown = format!("{}@{subject}", repo.name());
    let attach = async {
        let found = repo
            .manifest(&subject.to_string())
            .await?
            .ok_or_else(|| Error::not_found(format!("{shown} is not in the registry any more")))?;
        let report = Bytes::from(report_json.to_string());
        repo.push_blob(&Bytes::from_static(EMPTY_JSON)).await?;
        repo.push_blob(&report).await?;
        let manifest = artifact(view, found.descriptor(), &report, &now_rfc3339());
        let bytes = Bytes::from(
            serde_json::to_vec(&manifest)
                .map_err(|e| Error::corrupt("the report's manifest").with_source(e))?,
        );
        let digest = Digest::sha256(&bytes);
        let pushed = repo
            .put_manifest(&digest.to_string(), OCI_MANIFEST, &bytes)
            .await?;
        let by_api = pushed.indexes_subject
            || repo
                .referrers(&subject, REPORT_ARTIFACT_TYPE)
                .await
                .is_ok_and(|r| r.api);
        if !by_api {
            let descriptor = json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": bytes.len(),
                "artifactType": REPORT_ARTIFACT_TYPE,
                "annotations": manifest["annotations"],
            });
            repo.add_to_fallback_index(&subject, &descriptor).await?;
        }
        Ok::<_, Error>(Attached {
            report: digest,
            subject: shown.clone(),
            by_api,
        })
    };
    attach
        .await
        .map_err(|e| e.context(format!("attaching the report to {shown}")))
}

/// What history to read.
#[derive(Debug, Clone)]
pub struct HistoryRequest {
    /// `REGISTRY/REPOSITORY` (a tag or digest in it is ignored).
    pub repository: Reference,
    /// Only tags this glob matches; all when `None`.
    pub tags: Option<globset::GlobMatcher>,
    /// Keep the newest this many points.
    pub last: usize,
    /// The platform whose figures are taken (each report's first when `None`).
    pub platform: Option<String>,
    /// Measure the images that have no report.
    pub measure: bool,
    /// A digest left out (a check's own candidate).
    pub exclude: Option<String>,
}

/// A repository's images, oldest first, each with the figures of the
/// report attached to it.
pub async fn history(services: &Services, req: &HistoryRequest) -> Result<HistoryView, Error> {
    let repo = pool(services)?.repository(&req.repository, false).await?;
    let mut view = HistoryView::new(repo.name(), req.platform.clone());
    let listed = repo.tags().await?;
    let mut tags: Vec<String> = listed
        .tags
        .into_iter()
        .filter(|t| !is_fallback_tag(t))
        .filter(|t| req.tags.as_ref().is_none_or(|g| g.is_match(t)))
        .collect();
    let mut notes = Vec::new();
    if listed.cut {
        notes.push(format!(
            "only the first {} tags were read",
            crate::source::registry::repository::MAX_TAGS
        ));
    }
    if tags.len() > MAX_EXAMINED {
        notes.push(format!(
            "{} tags match, the last {MAX_EXAMINED} listed were looked at (narrow them with --tags)",
            tags.len()
        ));
        tags.drain(..tags.len() - MAX_EXAMINED);
    }

    // Tag → digest, a few at once; tags of one digest make one point.
    let resolved: Vec<Result<Option<(String, Digest)>, Error>> =
        futures::stream::iter(tags.into_iter().map(|tag| {
            let repo = &repo;
            async move { Ok(repo.manifest(&tag).await?.map(|m| (tag, m.digest))) }
        }))
        .buffer_unordered(CONCURRENT_IMAGES)
        .collect()
        .await;
    let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resolved {
        if let Some((tag, digest)) = r? {
            by_digest.entry(digest.to_string()).or_default().push(tag);
        }
    }
    if let Some(x) = &req.exclude {
        by_digest.remove(x);
    }

    let points: Vec<Result<(HistoryPoint, Option<String>), Error>> =
        futures::stream::iter(by_digest.into_iter().map(|(digest, tags)| {
            let repo = &repo;
            async move { point(services, repo, req, digest, pick_tag(tags)).await }
        }))
        .buffer_unordered(CONCURRENT_IMAGES)
        .collect()
        .await;
    let read = points.into_iter().collect::<Result<Vec<_>, _>>()?;
    let unread: Vec<String> = read.iter().filter_map(|(_, n)| n.clone()).collect();
    let mut points: Vec<HistoryPoint> = read.into_iter().map(|(p, _)| p).collect();
    points.sort_by(|a, b| {
        (a.created.is_some(), &a.created, &a.tag).cmp(&(b.created.is_some(), &b.created, &b.tag))
    });
    let found = points.len();
    if found > req.last {
        points.drain(..found - req.last);
        notes.push(format!("the last {} of {found} images", req.last));
    }
    if points.is_empty() {
        notes.push("no images".to_string());
    } else if points.iter().all(|p| p.source == PointSource::Missing) {
        notes.push("no reports attached yet (check --attach)".to_string());
    }
    if let Some(first) = unread.first() {
        notes.push(format!(
            "{} report(s) could not be read, their images shown without one: {first}",
            unread.len()
        ));
    }
    view.points = points;
    view.note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(view)
}

/// `sha256-HEX`: a referrers index, not an image.
fn is_fallback_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The tag a point is named by: a version rather than `latest`, then the
/// first in order.
fn pick_tag(mut tags: Vec<String>) -> Option<String> {
    tags.sort_by_key(|t| (t == "latest", t.clone()));
    tags.into_iter().next()
}

/// One image's point: its newest attached report's figures, else missing
/// (or measured now); with it, why a report that is there could not be
/// read (a broken or hostile report costs its point, not the history).
async fn point(
    services: &Services,
    repo: &Repository,
    req: &HistoryRequest,
    digest: String,
    tag: Option<String>,
) -> Result<(HistoryPoint, Option<String>), Error> {
    let subject = Digest::parse(&digest)?;
    let referrers = repo.referrers(&subject, REPORT_ARTIFACT_TYPE).await?;
    let newest = referrers.descriptors.iter().max_by_key(|d| {
        d["annotations"][annotation::CREATED]
            .as_str()
            .map(str::to_string)
    });
    let mut unread = None;
    if let Some(d) = newest {
        if let Some(p) = from_annotations(d, req.platform.as_deref(), &tag, &digest) {
            return Ok((p, None));
        }
        match from_report(repo, d, req.platform.as_deref(), &tag, &digest).await {
            Ok(Some(p)) => return Ok((p, None)),
            Ok(None) => {}
            Err(e) if matches!(e.kind(), Kind::Corrupt | Kind::NotFound) => {
                unread = Some(e.one_line());
            }
            Err(e) => return Err(e),
        }
    }
    let reference = format!("{}@{digest}", repo.name());
    if req.measure {
        let p = measured(services, &reference, req, tag, digest).await?;
        return Ok((p, unread));
    }
    let platforms = PlatformSelector::parse(req.platform.as_deref())?;
    let source = services.sources.open(&reference).await?;
    let created = source
        .resolve(&platforms)
        .await?
        .into_iter()
        .find_map(|i| i.created);
    Ok((HistoryPoint::missing(tag, digest, created), unread))
}

/// A point from a referrer's annotations, when they carry every figure
/// (and are of the platform asked for).
fn from_annotations(
    d: &Descriptor,
    platform: Option<&str>,
    tag: &Option<String>,
    digest: &str,
) -> Option<HistoryPoint> {
    let notes = &d["annotations"];
    let text = |k: &str| notes[k].as_str();
    let number = |k: &str| text(k).and_then(|v| v.parse::<u64>().ok());
    if platform.is_some_and(|p| text(annotation::PLATFORM) != Some(p)) {
        return None;
    }
    let verdict: Verdict =
        serde_json::from_value(Value::String(text(annotation::VERDICT)?.to_string())).ok()?;
    let mut p = HistoryPoint::missing(
        tag.clone(),
        digest.to_string(),
        text(annotation::IMAGE_CREATED).map(str::to_string),
    );
    p.source = PointSource::Report;
    p.verdict = Some(verdict);
    p.pull_bytes = Some(number(annotation::PULL_BYTES)?);
    p.disk_bytes = Some(number(annotation::DISK_BYTES)?);
    p.node_bytes = Some(number(annotation::NODE_BYTES)?);
    p.inodes = Some(number(annotation::INODES)?);
    p.gc_headroom = match text(annotation::GC_HEADROOM) {
        Some(h) => Some(h.parse::<i128>().ok()?),
        None => None,
    };
    p.report = d["digest"].as_str().map(str::to_string);
    Some(p)
}

/// A point from the attached report itself (its one layer), read up to
/// [`MAX_REPORT_BYTES`] and validated as a check report.
async fn from_report(
    repo: &Repository,
    d: &Descriptor,
    platform: Option<&str>,
    tag: &Option<String>,
    digest: &str,
) -> Result<Option<HistoryPoint>, Error> {
    let Some(report) = d["digest"].as_str() else {
        return Ok(None);
    };
    let Some(manifest) = repo.manifest(report).await? else {
        return Ok(None);
    };
    let doc: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::corrupt(format!("report {report}: not a manifest")).with_source(e))?;
    let Some(layer) = doc["layers"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["mediaType"] == REPORT_ARTIFACT_TYPE))
    else {
        return Ok(None);
    };
    let layer = Digest::parse(layer["digest"].as_str().unwrap_or_default())?;
    let bytes = repo.blob(&layer, MAX_REPORT_BYTES).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| Error::corrupt(format!("report {report}: not UTF-8")).with_source(e))?;
    let view = CheckView::from_json(text)
        .map_err(|e| Error::corrupt(format!("report {report}: {}", e.one_line())))?;
    let mut p = HistoryPoint::from_check(&view, platform, tag.clone(), digest.to_string());
    p.report = Some(report.to_string());
    Ok(Some(p))
}

/// An image without a report, measured now: the sizes of a check with no
/// baseline, no node and no rules; no verdict.
async fn measured(
    services: &Services,
    reference: &str,
    req: &HistoryRequest,
    tag: Option<String>,
    digest: String,
) -> Result<HistoryPoint, Error> {
    let check = CheckRequest {
        candidate: reference.to_string(),
        baseline: None,
        baseline_optional: false,
        platforms: PlatformSelector::parse(req.platform.as_deref())?,
        policy: Policy::default(),
        node: None,
        thresholds: Thresholds::default(),
        options: Default::default(),
        hints: Default::default(),
        paths: Default::default(),
    };
    let report = super::check(services, &check).await?;
    let view = CheckView::from_report(&report);
    let mut p = HistoryPoint::from_check(&view, req.platform.as_deref(), tag, digest);
    p.source = PointSource::Measured;
    p.verdict = None;
    p.gc_headroom = None;
    Ok(p)
}

/// Now, as RFC 3339 in UTC, to the second.
fn now_rfc3339() -> String {
    rfc3339(chrono::Utc::now().timestamp())
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_601_599), "2026-12-06T23:59:59Z");
    }

    #[test]
    fn fallback_tags_are_not_images() {
        assert!(is_fallback_tag(&format!("sha256-{}", "a".repeat(64))));
        assert!(!is_fallback_tag("sha256-abc"));
        assert!(!is_fallback_tag("v1"));
    }

    #[test]
    fn a_version_names_a_point_before_latest() {
        assert_eq!(
            pick_tag(vec!["latest".into(), "v2".into(), "stable".into()]).as_deref(),
            Some("stable")
        );
        assert_eq!(pick_tag(vec!["latest".into()]).as_deref(), Some("latest"));
    }
}
