//! The decision: what a pod's images would add to the node it lands on,
//! judged by the rules `check` applies to a candidate replacing its
//! baseline (`budget::cost`, `budget::kubelet`, `budget::rules`), from
//! what is already known of each image. Nothing here streams a layer: an
//! image is known from this process's memory, from the layer cache (every
//! layer cached: rebuilt from its manifest and config), or from the
//! verdict a worker stored; any other is queued for the workers and
//! follows `unmeasured`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::analyze::ImageReport;
use crate::app::Services;
use crate::budget::cost::{ImageCost, StoreModel, image_cost, rollout_costs};
use crate::budget::kubelet::Thresholds;
use crate::budget::rules::{NodeBudget, headroom, limits};
use crate::budget::verdict::{Level, NodeInput, node_holding};
use crate::digest::Digest;
use crate::error::Error;
use crate::measure::layer::{Compression, LayerFigures, LayerMeasurement};
use crate::measure::merged::FinalFigures;
use crate::measure::path_index::LayerIndex;
use crate::measure::{LayerReport, MeasuredImage};
use crate::report::json::CheckView;
use crate::serve::admission::pods::PodSpec;
use crate::serve::admission::review::Answer;
use crate::serve::events::{Push, Sender};
use crate::serve::metrics::Metrics;
use crate::serve::policy::{Policies, baseline_reference};
use crate::serve::store::Store;
use crate::source::reference::ImageRef;
use crate::source::{ImageSource, ResolvedImage};
use crate::units::human_bytes;

/// What `mode` says to do with a pod the rules would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Admit it, and say in `warnings` what enforce would have denied.
    Audit,
}

/// What to do with an image not measured yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmeasured {
    Allow,
    Deny,
}

/// A node a pod may land on: a profile's node, its thresholds and how it
/// stores images.
#[derive(Debug, Clone)]
pub struct PoolNode {
    /// The `[nodes.NAME]` profile, or `node` for the policy's own node.
    pub profile: String,
    pub input: NodeInput,
    pub thresholds: Thresholds,
    pub store: StoreModel,
    pub gc_level: Level,
}

/// `[[serve.admission.pools]]`: the nodes whose labels include `selector`.
#[derive(Debug, Clone)]
pub struct Pool {
    pub selector: BTreeMap<String, String>,
    pub node: PoolNode,
}

/// Images of one review looked up at once: a pod may name hundreds, each
/// a registry round trip when not known.
const LOOKUPS_AT_ONCE: usize = 16;

/// An image as messages and the log quote it: the pod's text, printable
/// and bounded.
fn shown(image: &str) -> String {
    crate::serve::admission::review::printable(image, 200)
}

/// How long a tag's digest is trusted before it is resolved again: a tag
/// moved by a push is seen within this. A digest never moves.
pub const TAG_TTL: Duration = Duration::from_secs(30);

/// Entries each memo keeps at most (then it starts over): images a
/// cluster runs, not every image ever pushed.
const MEMO_ENTRIES: usize = 2048;

type Opened = (Arc<dyn ImageSource>, Arc<ResolvedImage>);

/// What this process already knows: references resolved lately, and the
/// figures of images (without their file indexes) by digest.
#[derive(Default)]
pub struct Memo {
    resolved: Mutex<HashMap<String, (Instant, Opened)>>,
    reports: Mutex<HashMap<String, Arc<ImageReport>>>,
}

impl Memo {
    fn resolved(&self, reference: &str, pinned: bool) -> Option<Opened> {
        let map = self.resolved.lock().ok()?;
        let (at, opened) = map.get(reference)?;
        (pinned || at.elapsed() < TAG_TTL).then(|| opened.clone())
    }

    fn keep_resolved(&self, reference: &str, opened: Opened) {
        if let Ok(mut map) = self.resolved.lock() {
            if map.len() >= MEMO_ENTRIES {
                map.clear();
            }
            map.insert(reference.to_string(), (Instant::now(), opened));
        }
    }

    fn report(&self, digest: &str) -> Option<Arc<ImageReport>> {
        self.reports.lock().ok()?.get(digest).cloned()
    }

    fn keep_report(&self, report: Arc<ImageReport>) {
        if let Ok(mut map) = self.reports.lock() {
            if map.len() >= MEMO_ENTRIES {
                map.clear();
            }
            map.insert(report.image.digest.clone(), report);
        }
    }
}

/// Everything a review is judged with.
pub struct Admission {
    pub mode: Mode,
    pub unmeasured: Unmeasured,
    pub exempt: HashSet<String>,
    /// The bearer token the API server presents, when one is configured.
    pub token: Option<Vec<u8>>,
    /// Whether a client certificate the client CA verified is enough.
    pub client_certificates: bool,
    pub pools: Vec<Pool>,
    /// The policy's own node, for a pod no pool matches.
    pub default_node: Option<PoolNode>,
    pub services: Services,
    pub policies: Arc<Policies>,
    pub allowed: HashSet<String>,
    pub store: Arc<dyn Store>,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub max_queue: u64,
    pub memo: Memo,
}

/// Where an image's figures came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Memory,
    Cache,
    Verdict,
}

/// One image of the pod, as judged.
#[derive(Debug, Clone)]
pub enum ImageOutcome {
    Known {
        /// As the pod names it.
        shown: String,
        repository: String,
        candidate: Arc<ImageReport>,
        baseline: Option<Arc<ImageReport>>,
    },
    Unmeasured {
        shown: String,
        why: String,
    },
}

/// A judged review: the answer and the metric's `result`.
pub struct Decision {
    pub answer: Answer,
    pub result: &'static str,
}

impl Admission {
    /// Judges the pod whose spec this is, its images looked up until
    /// `deadline` (one not known by then counts as unmeasured).
    pub async fn judge(&self, spec: &PodSpec, images: &[String], deadline: Instant) -> Decision {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::from_std(deadline);
        let outcomes: Vec<ImageOutcome> = futures::stream::iter(images.iter().cloned())
            .map(|image: String| async move {
                match tokio::time::timeout_at(deadline, self.image(&image)).await {
                    Ok(outcome) => outcome,
                    Err(_) => ImageOutcome::Unmeasured {
                        shown: shown(&image),
                        why: "not judged within the webhook's timeout".to_string(),
                    },
                }
            })
            .buffered(LOOKUPS_AT_ONCE)
            .collect()
            .await;
        self.decide(spec, &outcomes)
    }

    /// One image: known (with its baseline when that is known too), or
    /// unmeasured and why (queued when it could be).
    pub async fn image(&self, image: &str) -> ImageOutcome {
        let unmeasured = |why: String| ImageOutcome::Unmeasured {
            shown: shown(image),
            why,
        };
        let parsed = match ImageRef::parse(image) {
            Ok(ImageRef::Registry(r)) => r,
            _ => return unmeasured("not a valid image reference".to_string()),
        };
        let registry = parsed.registry().to_ascii_lowercase();
        if !self.allowed.contains(&registry) {
            return unmeasured(format!(
                "registry {registry} is not one sizeguard measures from"
            ));
        }
        let repository = parsed.repository().to_string();
        let tag = parsed.tag().map(str::to_string);
        let pinned = parsed.digest().is_some();
        let reference = parsed.to_string();
        let (source, resolved) = match self.open(&reference, pinned).await {
            Ok(opened) => opened,
            Err(e) => {
                tracing::info!(image = reference, error = %e.one_line(), "admission: not resolved");
                // The registry's own words (hosts, paths) go to the log only.
                let why = match e.kind() {
                    crate::error::Kind::NotFound => "not found in its registry",
                    crate::error::Kind::Unauthorized => {
                        "its registry refused sizeguard's credentials"
                    }
                    _ => "its registry could not be read",
                };
                return unmeasured(why.to_string());
            }
        };
        let Some((candidate, known)) = self.known(&source, &resolved).await else {
            self.queue(&registry, &repository, tag, &resolved);
            return unmeasured("not measured yet: queued for measurement".to_string());
        };
        tracing::debug!(image = reference, known = ?known, "admission: image known");
        let rules = self.policies.rules(&repository);
        let as_push = Push {
            event_id: String::new(),
            sender: Sender::Admission,
            registry: registry.clone(),
            repository: repository.clone(),
            tag: parsed.tag().map(str::to_string),
            digest: match Digest::parse(&resolved.digest) {
                Ok(d) => d,
                Err(_) => return unmeasured("its registry sent an invalid digest".to_string()),
            },
            media_type: None,
        };
        let baseline = match baseline_reference(&rules.baseline, &as_push) {
            None => None,
            Some(b) => {
                let b_pinned = b.contains('@');
                match self.open(&b, b_pinned).await {
                    Ok((source, resolved)) => self.known(&source, &resolved).await.map(|(r, _)| r),
                    Err(_) => None,
                }
            }
        };
        ImageOutcome::Known {
            shown: shown(image),
            repository,
            candidate,
            baseline,
        }
    }

    async fn open(&self, reference: &str, pinned: bool) -> Result<Opened, Error> {
        if let Some(opened) = self.memo.resolved(reference, pinned) {
            return Ok(opened);
        }
        let source = self.services.sources.open(reference).await?;
        let resolved = source
            .resolve(&self.policies.platforms)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found("no image of the selected platform"))?;
        let opened: Opened = (source, Arc::new(resolved));
        self.memo.keep_resolved(reference, opened.clone());
        Ok(opened)
    }

    /// The image's figures, when this process, the layer cache or a stored
    /// verdict knows them.
    async fn known(
        &self,
        source: &Arc<dyn ImageSource>,
        resolved: &Arc<ResolvedImage>,
    ) -> Option<(Arc<ImageReport>, Known)> {
        if let Some(r) = self.memo.report(&resolved.digest) {
            return Some((r, Known::Memory));
        }
        let (report, known) = match self.rebuilt_from_cache(source, resolved).await {
            Some(r) => (r, Known::Cache),
            None => (self.read_from_verdict(resolved).await?, Known::Verdict),
        };
        let report = Arc::new(report);
        self.memo.keep_report(report.clone());
        Some((report, known))
    }

    /// Rebuilt from the layer cache, when every layer is in it: the
    /// measurer then reads no layer, only the cache's entries.
    async fn rebuilt_from_cache(
        &self,
        source: &Arc<dyn ImageSource>,
        resolved: &Arc<ResolvedImage>,
    ) -> Option<ImageReport> {
        let cache = self.services.measurer.cache.clone()?;
        let digests: Vec<String> = resolved.layers.iter().map(|l| l.digest.clone()).collect();
        let all_cached =
            tokio::task::spawn_blocking(move || digests.iter().all(|d| cache.contains(d)))
                .await
                .ok()?;
        if !all_cached {
            return None;
        }
        let measured = self
            .services
            .measurer
            .measure_images(
                vec![(source.clone(), (**resolved).clone())],
                &self.policies.options,
            )
            .await
            .map_err(|e| tracing::debug!(error = %e.one_line(), "admission: cache read failed"))
            .ok()?
            .into_iter()
            .next()?;
        Some(figures_only(measured))
    }

    /// Rebuilt from the report a worker stored for this digest (or for the
    /// index it was picked from).
    async fn read_from_verdict(&self, resolved: &ResolvedImage) -> Option<ImageReport> {
        for digest in std::iter::once(&resolved.digest).chain(resolved.index_digest.as_ref()) {
            let Ok(Some(record)) = self.store.verdict(digest).await else {
                continue;
            };
            let Some(text) = record.judgement.report.as_deref() else {
                continue;
            };
            let Ok(view) = serde_json::from_str::<CheckView>(text) else {
                continue;
            };
            if let Some(report) = view
                .platforms
                .iter()
                .find(|p| p.candidate.digest == resolved.digest)
                .and_then(|p| from_view(resolved, &p.candidate))
            {
                return Some(report);
            }
        }
        None
    }

    /// Queues an image for the workers, as a receiver would; in the
    /// background, so the answer does not wait for the store's write.
    fn queue(&self, registry: &str, repository: &str, tag: Option<String>, r: &ResolvedImage) {
        let digest = r.index_digest.as_deref().unwrap_or(&r.digest);
        let Ok(digest) = Digest::parse(digest) else {
            return;
        };
        let push = Push {
            event_id: format!("{registry}/{repository}@{digest}"),
            sender: Sender::Admission,
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.filter(|t| crate::serve::policy::is_tag(t)),
            digest,
            media_type: None,
        };
        if !crate::serve::policy::is_repository(repository) {
            return;
        }
        let store = self.store.clone();
        let wake = self.wake.clone();
        let metrics = self.metrics.clone();
        let max_queue = self.max_queue;
        tokio::spawn(async move {
            match store.enqueue(vec![push], max_queue).await {
                Ok(Ok(done)) => {
                    metrics.queued("admission", done.queued as u64);
                    metrics.duplicates("admission", done.duplicates as u64);
                    if done.queued > 0 {
                        tracing::info!("admission: an unmeasured image was queued for measurement");
                        wake.notify_one();
                    }
                }
                Ok(Err(_)) => tracing::warn!("admission: the queue is full; image not queued"),
                Err(e) => tracing::warn!(error = %e.one_line(), "admission: image not queued"),
            }
        });
    }

    /// The rules over what is known: the pod's rollout cost on the
    /// tightest node it may land on, and each image's absolute limits.
    pub fn decide(&self, spec: &PodSpec, outcomes: &[ImageOutcome]) -> Decision {
        let mut refusals: Vec<String> = Vec::new();
        let mut warnings: Vec<String> = Vec::new();
        let mut unmeasured_count = 0;
        for o in outcomes {
            if let ImageOutcome::Unmeasured { shown, why } = o {
                unmeasured_count += 1;
                let text = format!("image {shown}: {why}");
                match self.unmeasured {
                    Unmeasured::Allow => {
                        warnings.push(format!("sizeguard: {text}; admitted unjudged"))
                    }
                    Unmeasured::Deny => refusals.push(text),
                }
            }
        }
        let known: Vec<(&str, &str, &ImageReport, Option<&ImageReport>)> = outcomes
            .iter()
            .filter_map(|o| match o {
                ImageOutcome::Known {
                    shown,
                    repository,
                    candidate,
                    baseline,
                } => Some((
                    shown.as_str(),
                    repository.as_str(),
                    candidate.as_ref(),
                    baseline.as_deref(),
                )),
                ImageOutcome::Unmeasured { .. } => None,
            })
            .collect();
        if !known.is_empty() {
            let findings = self.findings(spec, &known);
            for (level, text) in findings {
                match level {
                    Level::Fail => refusals.push(text),
                    Level::Warn => warnings.push(format!("sizeguard: {text}")),
                }
            }
        }
        if refusals.is_empty() {
            let result = if unmeasured_count > 0 {
                "unmeasured_allowed"
            } else {
                "allowed"
            };
            return Decision {
                answer: Answer {
                    allowed: true,
                    message: None,
                    warnings,
                },
                result,
            };
        }
        match self.mode {
            Mode::Enforce => Decision {
                answer: Answer {
                    allowed: false,
                    message: Some(format!(
                        "sizeguard denied this pod: {}",
                        refusals.join("; ")
                    )),
                    warnings,
                },
                result: "denied",
            },
            Mode::Audit => {
                let mut all: Vec<String> = refusals
                    .iter()
                    .map(|r| format!("sizeguard audit, enforce would deny: {r}"))
                    .collect();
                all.extend(warnings);
                Decision {
                    answer: Answer {
                        allowed: true,
                        message: None,
                        warnings: all,
                    },
                    result: "audit_denied",
                }
            }
        }
    }

    /// Each finding as its level and one line naming the images, the
    /// node profile and the figures.
    fn findings(
        &self,
        spec: &PodSpec,
        known: &[(&str, &str, &ImageReport, Option<&ImageReport>)],
    ) -> Vec<(Level, String)> {
        let mut out = Vec::new();
        let candidates: Vec<&ImageReport> = known.iter().map(|k| k.2).collect();
        let mut seen = HashSet::new();
        let held: Vec<&ImageReport> = known
            .iter()
            .filter_map(|k| k.3)
            .filter(|b| seen.insert(b.image.digest.clone()))
            .collect();
        // Every pool the pod may land on is judged, not only the one with
        // the least GC headroom: another may be the one whose GC rule
        // fails rather than warns, or that runs out of inodes first.
        let nodes = self.priced(spec, &candidates, &held);
        let store = nodes
            .first()
            .map_or(self.policies.default.policy.store, |n| n.node.store);
        if nodes.is_empty() {
            out.push((
                Level::Warn,
                "no node profile judged this pod: no pool's selector matches it and the policy names no node".to_string(),
            ));
        }
        for n in &nodes {
            let shares: Vec<String> = known
                .iter()
                .zip(&n.shares)
                .filter(|(_, c)| c.node_bytes > 0)
                .map(|((shown, ..), c)| format!("{shown} +{}", human_bytes(c.node_bytes)))
                .collect();
            let rollout = headroom::findings(&n.budget, &n.total, "rollout cost", n.node.gc_level);
            for f in rollout {
                out.push((
                    f.level,
                    format!(
                        "node profile {}: {} (images: {})",
                        n.node.profile,
                        f.message,
                        shares.join(", ")
                    ),
                ));
            }
        }
        for (shown, repository, candidate, _) in known {
            let rules = self.policies.rules(repository);
            let cost = image_cost(candidate, store);
            for f in limits::findings(&rules.policy, candidate, &cost) {
                out.push((f.level, format!("image {shown}: {}", f.message)));
            }
        }
        out
    }

    /// The pools the pod may land on (the policy's own node when none
    /// matches), each priced, the one left with the least GC headroom
    /// first.
    fn priced(
        &self,
        spec: &PodSpec,
        candidates: &[&ImageReport],
        held: &[&ImageReport],
    ) -> Vec<Priced<'_>> {
        let matching: Vec<&PoolNode> = self
            .pools
            .iter()
            .filter(|p| spec.could_land_on(&p.selector))
            .map(|p| &p.node)
            .collect();
        let nodes = if matching.is_empty() {
            self.default_node.iter().collect()
        } else {
            matching
        };
        let mut priced: Vec<Priced<'_>> = nodes
            .into_iter()
            .filter_map(|node| match price(node, candidates, held) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(profile = node.profile, error = %e.one_line(), "admission: node not judged");
                    None
                }
            })
            .collect();
        priced.sort_by_key(|p| {
            let cost = i128::from(p.total.peak_pull_bytes);
            (
                p.budget.headroom.gc_headroom - cost,
                p.budget.headroom.eviction_headroom - cost,
            )
        });
        priced
    }
}

/// The policy's own node (`[node]`, `node-profile`, the node flags), for
/// a pod no pool matches.
pub fn default_node(policies: &Policies) -> Option<PoolNode> {
    let rules = &policies.default;
    rules.node.clone().map(|input| PoolNode {
        profile: input.label.clone(),
        input,
        thresholds: rules.thresholds,
        store: rules.policy.store,
        gc_level: rules.policy.gc_headroom_level.unwrap_or(Level::Fail),
    })
}

/// A node with the pod's cost on it.
struct Priced<'a> {
    node: &'a PoolNode,
    budget: NodeBudget,
    /// Each candidate's share, in the pod's order.
    shares: Vec<ImageCost>,
    total: ImageCost,
}

fn price<'a>(
    node: &'a PoolNode,
    candidates: &[&ImageReport],
    held: &[&ImageReport],
) -> Result<Priced<'a>, Error> {
    let sum = |costs: Vec<ImageCost>| costs.iter().fold(ImageCost::default(), |a, c| a.then(c));
    let shares = rollout_costs(candidates, held, node.store);
    let total = sum(shares.clone());
    let holds = (!held.is_empty()).then(|| sum(rollout_costs(held, &[], node.store)).node_bytes);
    let (_, budget) = node_holding(node.input.clone(), holds, node.thresholds)?;
    Ok(Priced {
        node,
        budget,
        shares,
        total,
    })
}

/// A measured image with only what the rules read: its figures per
/// layer, without the file indexes and the merged view (the largest part
/// of its memory), which the memo would otherwise hold for every image.
fn figures_only(m: MeasuredImage) -> ImageReport {
    let layers = m
        .layers
        .into_iter()
        .map(|l| LayerReport {
            measurement: l.measurement.map(|x| {
                Arc::new(LayerMeasurement {
                    figures: x.figures,
                    digest: x.digest.clone(),
                    diff_id: x.diff_id.clone(),
                    diff_id_verified: x.diff_id_verified,
                    compression: x.compression,
                    index: LayerIndex::default(),
                })
            }),
            largest_files: Vec::new(),
            ..l
        })
        .collect();
    ImageReport {
        measured: MeasuredImage {
            layers,
            largest_files: Vec::new(),
            merged: None,
            ..m
        },
        hints: Vec::new(),
    }
}

/// The figures a stored report gives of the image `resolved` names; `None`
/// when the report's layers are not this image's.
fn from_view(
    resolved: &ResolvedImage,
    view: &crate::report::json::ImageView,
) -> Option<ImageReport> {
    // A report whose layers were only probed or not all measured would
    // price those layers at nothing (and give them no chain ID to tell
    // them apart): such an image is not known yet.
    if view.layers.len() != resolved.layers.len()
        || !view.complete
        || view.estimated
        || view.layers.iter().any(|l| !l.measured)
    {
        return None;
    }
    let mut layers = Vec::with_capacity(view.layers.len());
    for (i, (desc, lv)) in resolved.layers.iter().zip(&view.layers).enumerate() {
        if lv.digest != desc.digest {
            return None;
        }
        let f = &lv.figures;
        let measurement = match (lv.measured, f.disk_bytes, f.inodes) {
            (true, Some(disk_bytes), Some(inodes)) => Some(Arc::new(LayerMeasurement {
                figures: LayerFigures {
                    compressed_bytes: f.compressed_bytes,
                    tar_bytes: f.tar_bytes.unwrap_or(0),
                    content_bytes: f.content_bytes.unwrap_or(0),
                    disk_bytes,
                    inodes,
                    whiteouts: f.whiteouts.unwrap_or(0),
                    opaque_dirs: f.opaque_dirs.unwrap_or(0),
                    files: f.files.unwrap_or(0),
                },
                digest: desc.digest.clone(),
                diff_id: lv
                    .diff_id
                    .clone()
                    .or_else(|| resolved.diff_ids.get(i).cloned())
                    .unwrap_or_default(),
                diff_id_verified: lv.diff_id_verified.unwrap_or(false),
                compression: Compression::Gzip,
                index: LayerIndex::default(),
            })),
            _ => None,
        };
        layers.push(LayerReport {
            descriptor: desc.clone(),
            not_measured_reason: measurement
                .is_none()
                .then(|| "not measured in the stored report".to_string()),
            measurement,
            largest_files: Vec::new(),
            estimate: None,
        });
    }
    let t = &view.totals;
    Some(ImageReport {
        measured: MeasuredImage {
            image: resolved.clone(),
            layers,
            totals: LayerFigures {
                compressed_bytes: t.compressed_bytes,
                tar_bytes: t.tar_bytes.unwrap_or(0),
                content_bytes: t.content_bytes.unwrap_or(0),
                disk_bytes: t.disk_bytes.unwrap_or(0),
                inodes: t.inodes.unwrap_or(0),
                whiteouts: t.whiteouts.unwrap_or(0),
                opaque_dirs: t.opaque_dirs.unwrap_or(0),
                files: t.files.unwrap_or(0),
            },
            final_fs: view
                .final_fs
                .as_ref()
                .map(|f| FinalFigures {
                    content_bytes: f.content_bytes,
                    inodes: f.inodes,
                    files: f.files,
                })
                .unwrap_or_default(),
            wasted_bytes: view.wasted_bytes.unwrap_or(0),
            largest_files: Vec::new(),
            complete: view.complete,
            estimated: view.estimated,
            dive: None,
            merged: None,
        },
        hints: Vec::new(),
    })
}
