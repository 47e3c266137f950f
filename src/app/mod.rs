//! The judging core every entry point calls. The command line, the
//! pre-push hook and the webhook server each build a request ([`MeasureRequest`],
//! [`CheckRequest`]) and hand it, with the [`Services`] they share across
//! requests, to one function that answers it. Nothing here knows of flags,
//! environment variables, terminals or HTTP: those are the callers' business,
//! and so are rendering and publishing the answer.

pub mod history;
mod published;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;

use crate::analyze::hints::HintSettings;
use crate::analyze::paths::{PathOptions, path_diff};
use crate::analyze::{ImageReport, explain};
use crate::budget::kubelet::Thresholds;
use crate::budget::rules::{Finding, Policy};
use crate::budget::verdict::NodeInput;
use crate::budget::verdict::{CheckReport, assemble};
use crate::error::Error;
use crate::measure::{MeasureOptions, Measurer};
use crate::source::platform::PlatformSelector;
use crate::source::{ImageSource, ResolvedImage, SourceFactory};

/// Opens image references. The real one reuses registry clients and
/// credentials across requests; tests serve images from memory.
#[async_trait]
pub trait Sources: Send + Sync {
    async fn open(&self, reference: &str) -> Result<Arc<dyn ImageSource>, Error>;

    /// The registry connections, for what is not reading an image (a
    /// report attached, tags and referrers listed); `None` where images
    /// come from elsewhere.
    fn registries(&self) -> Option<&crate::source::registry::RegistryPool> {
        None
    }
}

#[async_trait]
impl Sources for SourceFactory {
    async fn open(&self, reference: &str) -> Result<Arc<dyn ImageSource>, Error> {
        SourceFactory::open(self, reference).await
    }

    fn registries(&self) -> Option<&crate::source::registry::RegistryPool> {
        Some(SourceFactory::registries(self))
    }
}

/// What requests share: where images come from, the layer cache, and the
/// observer measuring progress goes to.
#[derive(Clone)]
pub struct Services {
    pub sources: Arc<dyn Sources>,
    pub measurer: Measurer,
}

/// Measure images as they are, without judging them.
#[derive(Debug, Clone)]
pub struct MeasureRequest {
    pub references: Vec<String>,
    pub platforms: PlatformSelector,
    pub options: MeasureOptions,
}

/// Judge a candidate image, against the image it replaces when there is
/// one, the policy's rules and the node that must hold it.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub candidate: String,
    pub baseline: Option<String>,
    /// A baseline that does not exist (a first release) is a warning.
    pub baseline_optional: bool,
    pub platforms: PlatformSelector,
    pub policy: Policy,
    /// The node (or nodes: the tightest decides) the image must fit on.
    pub node: Option<NodeInput>,
    pub thresholds: Thresholds,
    pub options: MeasureOptions,
    /// Which hints are looked for, from `[hints]`.
    pub hints: HintSettings,
    /// How much of the growth by path to list.
    pub paths: PathOptions,
}

type Resolved = Vec<(Arc<dyn ImageSource>, ResolvedImage)>;

/// One image per selected platform of a reference, each with its source.
async fn resolve(
    services: &Services,
    reference: &str,
    platforms: &PlatformSelector,
) -> Result<Resolved, Error> {
    let source = services.sources.open(reference).await?;
    let images = source.resolve(platforms).await?;
    Ok(images.into_iter().map(|i| (source.clone(), i)).collect())
}

/// Measures every image a request names, one report per image and platform,
/// in the order the references were given.
pub async fn measure(services: &Services, req: &MeasureRequest) -> Result<Vec<ImageReport>, Error> {
    // Resolve every reference first: a typo in the third one should fail
    // before the first one's layers are streamed.
    let resolved = futures::future::try_join_all(
        req.references
            .iter()
            .map(|r| resolve(services, r, &req.platforms)),
    )
    .await?;
    let measured = services
        .measurer
        .measure_images(resolved.into_iter().flatten().collect(), &req.options)
        .await?;
    // `sizeguard measure` reads no `[hints]`: every hint is looked for.
    let settings = HintSettings::default();
    Ok(measured
        .into_iter()
        .map(|m| explain(m, &settings, req.options.top))
        .collect())
}

/// Measures the candidate and its baseline in one pass (a layer they share
/// is streamed once) and judges every candidate platform.
pub async fn check(services: &Services, req: &CheckRequest) -> Result<CheckReport, Error> {
    let baseline = async {
        match &req.baseline {
            None => Ok(None),
            Some(b) => resolve(services, b, &req.platforms).await.map(Some),
        }
    };
    let (candidate, baseline) =
        tokio::join!(resolve(services, &req.candidate, &req.platforms), baseline);
    let candidate = candidate.map_err(|e| e.context("candidate"))?;
    let mut general = Vec::new();
    let baseline = match baseline {
        Ok(b) => b.unwrap_or_default(),
        Err(e) if e.is_not_found() && req.baseline_optional => {
            general.push(Finding::baseline_missing(format!(
                "no baseline yet (first release?): {}",
                e.one_line()
            )));
            Vec::new()
        }
        Err(e) => return Err(e.context("baseline")),
    };

    let n_candidate = candidate.len();
    let mut reports: Vec<ImageReport> = services
        .measurer
        .measure_images(
            candidate.into_iter().chain(baseline).collect(),
            &req.options,
        )
        .await?
        .into_iter()
        .map(|m| explain(m, &req.hints, req.options.top))
        .collect();
    let baselines = reports.split_off(n_candidate);
    for candidate in &mut reports {
        published::adopt_published_blobs(candidate, &baselines);
    }
    let mut report = assemble(
        req.candidate.clone(),
        req.baseline.clone(),
        reports,
        baselines,
        general,
        req.node.clone().map(|n| (n, req.thresholds)),
        req.policy.clone(),
    )?;
    for p in &mut report.platforms {
        p.paths = growth_by_path(p, req.paths);
    }
    Ok(report)
}

/// The path diff of one platform, and its final filesystems let go: they
/// are the largest part of a check's memory, and nothing reads them after.
fn growth_by_path(
    p: &mut crate::budget::verdict::PlatformCheck,
    opts: PathOptions,
) -> Vec<crate::analyze::paths::PathGrowth> {
    let cand = p.candidate.measured.merged.take();
    let base = p.baseline.as_mut().and_then(|b| b.measured.merged.take());
    match (cand, base) {
        (Some(c), Some(b)) => path_diff(&c, &b, &p.candidate.image.created_by, opts),
        _ => Vec::new(),
    }
}
