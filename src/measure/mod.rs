//! Measuring images: every unique layer streamed once, concurrently, then
//! assembled per image with the merged-filesystem view.

pub mod cache;
pub mod content;
pub mod estimate;
pub mod hidden;
pub mod layer;
pub mod merged;
mod one_pass;
pub mod path_index;
pub mod progress;
mod recompress;
pub mod tree;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

use crate::error::{Error, Kind};
use crate::source::{ImageSource, LayerDescriptor, ResolvedImage};
use crate::tarstream::limits;
use layer::{Expected, FileSize, LayerFigures, LayerMeasurement};
use merged::{FinalFigures, MergedFs};

use progress::{LayerProgress, Progress};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureOptions {
    /// Layers in flight at once.
    pub jobs: usize,
    /// Check each layer's uncompressed digest against the config's diff_ids.
    pub verify_diff_ids: bool,
    /// Length of the largest-files lists.
    pub top: usize,
    /// Read only each blob's ends (Range requests) where that tells enough;
    /// stream the rest.
    pub estimate: bool,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            verify_diff_ids: false,
            top: 10,
            estimate: false,
        }
    }
}

/// One layer of one image, as reported.
#[derive(Debug, Clone)]
pub struct LayerReport {
    pub descriptor: LayerDescriptor,
    /// `None` when the layer could not be fetched (foreign layers only;
    /// any other failure fails the whole measurement).
    pub measurement: Option<Arc<LayerMeasurement>>,
    pub not_measured_reason: Option<String>,
    pub largest_files: Vec<FileSize>,
    /// How the figures were obtained when not all of them come from
    /// streaming the blob itself: under `--estimate`, and for a local
    /// uncompressed layer (its pushed size estimated).
    pub estimate: Option<EstimateNote>,
}

/// How a layer was sized, where some figure is not the blob's own.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum EstimateNote {
    /// From the blob's ends: only `compressed_bytes` and (if `exact`)
    /// `tar_bytes` are exact; the other figures are unknown.
    Probed {
        method: estimate::Method,
        tar_bytes_exact: bool,
    },
    /// From the layer cache: every figure exact.
    Cached,
    /// Streamed after all, every figure exact, because the ends could not be
    /// trusted.
    Streamed { reason: String },
    /// A local source's uncompressed layer (an engine's export, a `docker
    /// save` archive): `compressed_bytes` estimates what a push would upload
    /// (see `recompress`); every other figure is exact.
    Recompressed,
}

impl EstimateNote {
    pub fn is_probed(&self) -> bool {
        matches!(self, EstimateNote::Probed { .. })
    }
}

impl LayerReport {
    /// Whether `compressed_bytes` is an estimate rather than a blob's size.
    pub fn compressed_estimated(&self) -> bool {
        self.estimate == Some(EstimateNote::Recompressed)
    }

    pub fn figures(&self) -> Option<&LayerFigures> {
        self.measurement.as_ref().map(|m| &m.figures)
    }

    /// For a layer only probed under `--estimate`: whether its `tar_bytes`
    /// is exact. `None` for a layer whose figures are all known.
    pub fn probed_tar_exact(&self) -> Option<bool> {
        match &self.estimate {
            Some(EstimateNote::Probed {
                tar_bytes_exact, ..
            }) => Some(*tar_bytes_exact),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MeasuredImage {
    pub image: ResolvedImage,
    pub layers: Vec<LayerReport>,
    /// Sums over the measured layers.
    pub totals: LayerFigures,
    pub final_fs: FinalFigures,
    pub wasted_bytes: u64,
    pub largest_files: Vec<FileSize>,
    /// False when a layer could not be measured: the totals are a lower bound.
    pub complete: bool,
    /// True when some layer was only probed (`--estimate`): the final view,
    /// the wasted bytes and the unknown figures are not reported.
    pub estimated: bool,
    /// dive's efficiency tally; `None` when some layer was only probed.
    pub dive: Option<merged::DiveFigures>,
    /// The final filesystem, for the hints and the path diff of a check
    /// (which drops it once done); `None` when some layer was only probed.
    pub merged: Option<Arc<MergedFs>>,
}

impl MeasuredImage {
    /// Whether some layer's compressed size, and so the pull size, is an
    /// estimate.
    pub fn compressed_estimated(&self) -> bool {
        self.layers.iter().any(LayerReport::compressed_estimated)
    }
}

/// How one layer came out: measured (streamed, cached or probed), or not
/// measured with the reason (foreign layers only).
#[derive(Debug, Clone)]
enum LayerOutcome {
    Measured(Arc<LayerMeasurement>, Option<EstimateNote>),
    NotMeasured(String),
}

/// What measuring shares across calls: the layer cache, how layers are
/// read, and the observer progress goes to.
#[derive(Clone)]
pub struct Measurer {
    pub cache: Option<cache::LayerCache>,
    pub analysis: layer::AnalyzeOptions,
    pub progress: Arc<dyn Progress>,
}

impl Default for Measurer {
    fn default() -> Self {
        Measurer {
            cache: None,
            analysis: layer::AnalyzeOptions::default(),
            progress: Arc::new(progress::NoProgress),
        }
    }
}

/// What a layer's outcome is kept under: its blob, and whether the image
/// reads it as a local uncompressed copy whose pushed size is estimated. A
/// registry's uncompressed blob of the same digest is exact, so the two
/// readings are two outcomes; a compressed blob is one, whoever holds it.
type LayerKey = (String, bool);

fn layer_key(desc: &LayerDescriptor, source: &dyn ImageSource) -> LayerKey {
    let estimated = !source.serves_pushed_blobs() && desc.is_uncompressed();
    (desc.digest.clone(), estimated)
}

/// One distinct layer blob to measure, and what its image says of it.
struct Job {
    source: Arc<dyn ImageSource>,
    desc: LayerDescriptor,
    diff_id: Option<String>,
    /// Check the tar against `diff_id` (asked for, or the source needs it).
    verify_diff_id: bool,
}

impl Job {
    /// The blob is a local copy: if it is uncompressed, estimate what a
    /// push would upload (see `recompress`).
    fn estimate_push(&self) -> bool {
        !self.source.serves_pushed_blobs()
    }
}

/// Every distinct layer of every image, largest first, so the longest layer
/// does not start last.
fn plan(
    images: &[(Arc<dyn ImageSource>, ResolvedImage)],
    opts: &MeasureOptions,
) -> Result<Vec<Job>, Error> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (source, image) in images {
        if source.one_pass().is_some() {
            continue;
        }
        if opts.verify_diff_ids && image.diff_ids.len() != image.layers.len() {
            return Err(Error::corrupt(format!(
                "{}: the config lists {} diff_ids for {} layers",
                image.reference,
                image.diff_ids.len(),
                image.layers.len()
            )));
        }
        for (i, desc) in image.layers.iter().enumerate() {
            if seen.insert(layer_key(desc, source.as_ref())) {
                jobs.push(Job {
                    source: source.clone(),
                    desc: desc.clone(),
                    diff_id: image.diff_ids.get(i).cloned(),
                    verify_diff_id: opts.verify_diff_ids || source.checks_diff_ids(),
                });
            }
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.desc.size));
    Ok(jobs)
}

impl Measurer {
    /// Measures every image, streaming each distinct layer once even when
    /// several images share it.
    pub async fn measure_images(
        &self,
        mut images: Vec<(Arc<dyn ImageSource>, ResolvedImage)>,
        opts: &MeasureOptions,
    ) -> Result<Vec<MeasuredImage>, Error> {
        let jobs = plan(&images, opts)?;
        // When one layer fails the others stop at their next read, and every
        // job is awaited before returning, so no analyzer outlives the runtime.
        let cancel = Arc::new(AtomicBool::new(false));
        // Every layer streamed for these images counts against one budget:
        // the merged views hold all their indexes at once.
        let budget = Arc::new(limits::JobBudget::default());
        let layer_jobs = futures::stream::iter(jobs)
            .map(|job| self.run_job(job, opts, &cancel, &budget))
            .buffer_unordered(opts.jobs.max(1))
            .collect::<Vec<_>>();
        // One-pass sources stream whole images, beside the layer jobs.
        let streams = futures::future::join_all(
            images
                .iter()
                .enumerate()
                .filter(|(_, (source, _))| source.one_pass().is_some())
                .map(|(i, (source, image))| {
                    let streamed = one_pass::measure(
                        self.progress.clone(),
                        self.analysis,
                        source.clone(),
                        image.clone(),
                        cancel.clone(),
                        budget.clone(),
                    );
                    async move { streamed.await.map(|s| (i, s)) }
                }),
        );
        let (outcomes, streamed) = tokio::join!(layer_jobs, streams);
        let mut by_key = HashMap::with_capacity(outcomes.len());
        let mut first_error: Option<Error> = None;
        let mut keep_first = |e: Error| {
            // The layer that failed first explains; the ones it cancelled don't.
            if first_error.is_none() && !e.is_cancelled() {
                first_error = Some(e);
            }
        };
        for o in outcomes {
            match o {
                Ok((key, outcome)) => {
                    by_key.insert(key, outcome);
                }
                Err(e) => keep_first(e),
            }
        }
        for s in streamed {
            match s {
                Ok((i, s)) => {
                    by_key.extend(s.outcomes);
                    images[i].1 = s.image;
                }
                Err(e) => keep_first(e),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(images
            .into_iter()
            .map(|(source, image)| {
                let keys = image
                    .layers
                    .iter()
                    .map(|d| layer_key(d, source.as_ref()))
                    .collect();
                assemble(image, keys, &by_key, opts.top)
            })
            .collect())
    }

    /// One layer: from the cache, from its ends (`--estimate`), or streamed.
    async fn run_job(
        &self,
        job: Job,
        opts: &MeasureOptions,
        cancel: &Arc<AtomicBool>,
        budget: &Arc<limits::JobBudget>,
    ) -> Result<(LayerKey, LayerOutcome), Error> {
        let key = layer_key(&job.desc, job.source.as_ref());
        let digest = job.desc.digest.clone();
        let verified_diff_id = job.diff_id.as_deref().filter(|_| job.verify_diff_id);
        let mut stream_reason: Option<String> = None;
        // A local uncompressed layer is streamed for its push estimate: the
        // cache and its ends know only the tar's length.
        let needs_recompressing =
            |m: &LayerMeasurement| job.estimate_push() && m.compression == layer::Compression::None;
        let cached = cached(&self.cache, &job.desc, verified_diff_id)
            .await
            .filter(|m| !needs_recompressing(m));
        let quick = match cached {
            Some(m) => {
                // A layer from the cache is held like a streamed one.
                let tree = m.index.tree();
                let charged = budget
                    .charge(limits::Counted::Paths, tree.len() as u64)
                    .and_then(|()| {
                        budget.charge(limits::Counted::NameBytes, tree.names().len() as u64)
                    });
                if let Err(why) = charged {
                    cancel.store(true, Ordering::Relaxed);
                    return Err(Error::corrupt(format!("layer {digest}: {why}")));
                }
                Some((Arc::new(m), opts.estimate.then_some(EstimateNote::Cached)))
            }
            // The key says whether the media type calls it a local tar.
            None if opts.estimate && !key.1 => {
                match probe_layer(job.source.as_ref(), &job.desc, job.diff_id.clone()).await {
                    Ok(p) if needs_recompressing(&p.0) => None,
                    Ok(p) => Some(p),
                    Err(refused) => {
                        stream_reason = Some(refused.0);
                        None
                    }
                }
            }
            None => None,
        };
        let result = match quick {
            Some((m, note)) => Ok(LayerOutcome::Measured(m, note)),
            None if cancel.load(Ordering::Relaxed) => Err(Error::cancelled()),
            None => self
                .stream_layer(&job, cancel, budget)
                .await
                .map(|(m, recompressed)| {
                    let note = if recompressed {
                        Some(EstimateNote::Recompressed)
                    } else {
                        stream_reason.map(|reason| EstimateNote::Streamed { reason })
                    };
                    LayerOutcome::Measured(m, note)
                }),
        };
        match result {
            Ok(outcome) => Ok((key, outcome)),
            Err(e) if job.desc.is_foreign() => Ok((key, LayerOutcome::NotMeasured(e.one_line()))),
            Err(e) => {
                cancel.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Streams a layer through the analyzer and keeps the result in the
    /// cache: the blob's own figures, before a push estimate replaces its
    /// compressed size (then the second value is true).
    async fn stream_layer(
        &self,
        job: &Job,
        cancel: &Arc<AtomicBool>,
        budget: &Arc<limits::JobBudget>,
    ) -> Result<(Arc<LayerMeasurement>, bool), Error> {
        let desc = &job.desc;
        let progress = self.progress.layer_started(&desc.digest, desc.size);
        let (m, pushed) =
            measure_layer(job, self.analysis, progress, cancel.clone(), budget.clone()).await?;
        let m = Arc::new(m);
        // A measurement taken with the content scan off has no hashes or
        // debug sizes; cached, it would hide those hints from every later
        // run that has the scan on.
        if let Some(c) = self.cache.clone().filter(|_| self.analysis.scan_content) {
            let m = m.clone();
            let _ = tokio::task::spawn_blocking(move || c.put(&m)).await;
        }
        Ok(match pushed {
            Some(bytes) => {
                // The cache's copy is gone once put: no second index held.
                let mut estimated = Arc::unwrap_or_clone(m);
                estimated.figures.compressed_bytes = bytes;
                (Arc::new(estimated), true)
            }
            None => (m, false),
        })
    }
}

/// A cached measurement of this blob, if there is one that also satisfies
/// the diff_id check.
async fn cached(
    cache: &Option<cache::LayerCache>,
    desc: &LayerDescriptor,
    diff_id: Option<&str>,
) -> Option<LayerMeasurement> {
    let cache = cache.clone()?;
    let (digest, size) = (desc.digest.clone(), desc.size);
    let m = tokio::task::spawn_blocking(move || cache.get(&digest, size))
        .await
        .ok()??;
    // A measurement kept by a run that did not check its diff_id does not
    // satisfy one that must.
    match diff_id {
        Some(want) if want != m.diff_id || !m.diff_id_verified => None,
        _ => Some(m),
    }
}

/// Stops a layer's stream once another layer has failed.
struct Cancellable<R> {
    inner: R,
    cancel: Arc<AtomicBool>,
}

impl<R: std::io::Read> std::io::Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::cancelled().into_io());
        }
        self.inner.read(buf)
    }
}

/// Why a layer's ends could not size it, so it must be streamed instead.
#[derive(Debug)]
struct ProbeRefused(String);

/// Sizes a layer from its first and last bytes.
async fn probe_layer(
    source: &dyn ImageSource,
    desc: &LayerDescriptor,
    diff_id: Option<String>,
) -> Result<(Arc<LayerMeasurement>, Option<EstimateNote>), ProbeRefused> {
    let n = estimate::PROBE_BYTES.min(desc.size);
    let refused = |e: Error| ProbeRefused(e.one_line());
    let head = source.read_range(desc, 0, n).await.map_err(refused)?;
    let tail = source
        .read_range(desc, desc.size - n, n)
        .await
        .map_err(refused)?;
    let (Some(head), Some(tail)) = (head, tail) else {
        return Err(ProbeRefused(
            "the source does not serve byte ranges".to_string(),
        ));
    };
    let e =
        estimate::tar_bytes(&head, &tail, desc.size).map_err(|u| ProbeRefused(u.to_string()))?;
    let m = LayerMeasurement {
        figures: LayerFigures {
            compressed_bytes: desc.size,
            tar_bytes: e.tar_bytes,
            ..Default::default()
        },
        digest: desc.digest.clone(),
        diff_id: diff_id.unwrap_or_default(),
        diff_id_verified: false,
        compression: match e.method {
            estimate::Method::GzipIsize => layer::Compression::Gzip,
            estimate::Method::ZstdFrameHeader => layer::Compression::Zstd,
            estimate::Method::Uncompressed => layer::Compression::None,
        },
        index: layer::LayerIndex::default(),
    };
    Ok((
        Arc::new(m),
        Some(EstimateNote::Probed {
            method: e.method,
            tar_bytes_exact: e.exact,
        }),
    ))
}

/// A layer streamed through the analyzer, and for a local uncompressed
/// one, what a push would upload of it.
async fn measure_layer(
    job: &Job,
    analysis: layer::AnalyzeOptions,
    progress: Box<dyn LayerProgress>,
    cancel: Arc<AtomicBool>,
    budget: Arc<limits::JobBudget>,
) -> Result<(LayerMeasurement, Option<u64>), Error> {
    let desc = job.desc.clone();
    let reader = Cancellable {
        inner: job.source.open_layer(&desc).await?,
        cancel: cancel.clone(),
    };
    let expected = Expected {
        digest: Some(desc.digest.clone()),
        size: Some(desc.size),
        diff_id: job.diff_id.clone(),
        verify_diff_id: job.verify_diff_id,
        digest_checked_upstream: job.source.verifies_digests(),
        job: Some(budget),
        analysis,
    };
    let estimate_push = job.estimate_push();
    // Decompression and tar parsing are CPU-bound: keep them off the reactor.
    let measured = tokio::task::spawn_blocking(move || {
        let measured = if estimate_push {
            let mut reader = recompress::PullEstimate::new(reader, expected.size.unwrap_or(0));
            layer::analyze(&mut reader, &expected, Some(progress.as_ref())).map(|m| {
                let pushed = (m.compression == layer::Compression::None).then(|| reader.estimate());
                (m, pushed)
            })
        } else {
            layer::analyze(reader, &expected, Some(progress.as_ref())).map(|m| (m, None))
        };
        progress.finished();
        measured
    })
    .await
    .map_err(|e| {
        Error::corrupt(format!("layer {}: analyzer crashed", desc.digest)).with_source(e)
    })?;
    measured.map_err(|e| {
        if cancel.load(Ordering::Relaxed) {
            Error::cancelled()
        } else {
            Error::new(layer_error_kind(&e), format!("layer {}", desc.digest)).with_source(e)
        }
    })
}

/// What a failed layer means for the next attempt: a stream that broke or
/// ended early may work again; bytes that are wrong will not.
fn layer_error_kind(e: &layer::LayerError) -> Kind {
    use layer::LayerError as E;
    match e {
        // A source's own error keeps its kind (a blob gone from the
        // registry is not found, a cancelled read cancelled); a bare I/O
        // error is corrupt data or worth another try.
        E::Read { source, .. } => Error::kind_in_io(source).unwrap_or(match source.kind() {
            std::io::ErrorKind::InvalidData => Kind::Corrupt,
            _ => Kind::Transient,
        }),
        E::Truncated { .. } => Kind::Transient,
        E::TooLong { .. }
        | E::DigestMismatch { .. }
        | E::Decompress { .. }
        | E::Tar { .. }
        | E::DiffIdMismatch { .. }
        | E::UnsupportedDigest(_) => Kind::Corrupt,
    }
}

/// One image's report from the outcomes of its layers, found by `keys`
/// (one per layer).
fn assemble(
    image: ResolvedImage,
    keys: Vec<LayerKey>,
    outcomes: &HashMap<LayerKey, LayerOutcome>,
    top: usize,
) -> MeasuredImage {
    let mut totals = LayerFigures::default();
    let mut fs = MergedFs::new();
    let mut complete = true;
    let mut estimated = false;
    let mut layers = Vec::with_capacity(image.layers.len());
    for (i, (desc, key)) in image.layers.iter().zip(&keys).enumerate() {
        let outcome = outcomes
            .get(key)
            .cloned()
            .unwrap_or_else(|| LayerOutcome::NotMeasured("not scheduled".to_string()));
        let report = match outcome {
            LayerOutcome::Measured(m, note) => {
                totals.add(&m.figures);
                fs.set_layer(u32::try_from(i).unwrap_or(u32::MAX));
                fs.apply(&m.index);
                estimated |= note.as_ref().is_some_and(EstimateNote::is_probed);
                LayerReport {
                    descriptor: desc.clone(),
                    largest_files: m.largest_files(top),
                    measurement: Some(m),
                    not_measured_reason: None,
                    estimate: note,
                }
            }
            LayerOutcome::NotMeasured(reason) => {
                complete = false;
                fs.skip_layer();
                LayerReport {
                    descriptor: desc.clone(),
                    measurement: None,
                    not_measured_reason: Some(reason),
                    largest_files: Vec::new(),
                    estimate: None,
                }
            }
        };
        layers.push(report);
    }
    MeasuredImage {
        final_fs: fs.figures(),
        wasted_bytes: fs.wasted_bytes(),
        largest_files: fs.largest_files(top),
        dive: (!estimated).then(|| fs.dive()),
        merged: (!estimated).then(|| Arc::new(fs)),
        image,
        layers,
        totals,
        complete,
        estimated,
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`, as docker shows image IDs.
pub fn short_digest(d: &str) -> &str {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::platform::Platform;
    use async_trait::async_trait;

    /// A source that serves a blob from memory but no byte ranges, like a
    /// registry that ignores `Range`.
    struct NoRanges(Vec<u8>);

    #[async_trait]
    impl ImageSource for NoRanges {
        fn reference(&self) -> String {
            "memory".into()
        }
        async fn resolve(
            &self,
            _: &crate::source::platform::PlatformSelector,
        ) -> Result<Vec<ResolvedImage>, Error> {
            unreachable!("not used")
        }
        async fn open_layer(
            &self,
            _: &LayerDescriptor,
        ) -> Result<Box<dyn std::io::Read + Send>, Error> {
            Ok(Box::new(std::io::Cursor::new(self.0.clone())))
        }
        async fn read_range(
            &self,
            _: &LayerDescriptor,
            _: u64,
            _: u64,
        ) -> Result<Option<Vec<u8>>, Error> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn estimate_streams_when_ranges_are_not_served() {
        use std::io::Write;
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5000);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &[1u8; 5000][..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let desc = LayerDescriptor {
            digest: crate::digest::sha256_digest(&gz),
            size: gz.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            urls: vec![],
        };
        let image = ResolvedImage {
            reference: "memory".into(),
            digest: "sha256:m".into(),
            index_digest: None,
            index_bytes: None,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platform: Platform::new("linux", "amd64", None),
            manifest_bytes: 1,
            config_digest: "sha256:c".into(),
            config_bytes: 1,
            created: None,
            diff_ids: vec![],
            created_by: vec![],
            locale_env: Vec::new(),
            layers: vec![desc],
            provenance: Default::default(),
        };
        let opts = MeasureOptions {
            estimate: true,
            ..Default::default()
        };
        let source: Arc<dyn ImageSource> = Arc::new(NoRanges(gz));
        let reports = Measurer::default()
            .measure_images(vec![(source, image)], &opts)
            .await
            .unwrap();
        let l = &reports[0].layers[0];
        assert_eq!(
            l.estimate,
            Some(EstimateNote::Streamed {
                reason: "the source does not serve byte ranges".into()
            })
        );
        assert_eq!(l.figures().unwrap().content_bytes, 5000);
        assert!(!reports[0].estimated);
    }
}
