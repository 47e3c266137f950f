//! Measuring the images of one-pass sources (a daemon's export, see
//! `source::daemon`): the source streams every layer once, in its own
//! order, and each goes through the same analyzer as a registry's blob
//! while it passes. Which blob was which layer is known only when the
//! stream ends, so measurements are kept by blob name and matched to the
//! image's layers afterwards, each checked against the digest and the
//! diff_id the image names it by.
//!
//! The layer cache is not used: the engine exports the whole image in any
//! case, and an uncompressed layer costs little more to analyse than to read.
//!
//! # Compressed sizes
//!
//! An engine exports its layers as they sit in its store, uncompressed:
//! for those `compressed_bytes` is what a push would upload, estimated as
//! for every local source's uncompressed layers (see [`super::recompress`]).
//! A layer the engine exports compressed (the containerd image store keeps
//! what it pulled) is exact.

use std::collections::HashMap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::layer::{self, AnalyzeOptions, Compression, Expected, LayerMeasurement};
use super::progress::Progress;
use super::recompress::PullEstimate;
use super::{Cancellable, EstimateNote, LayerOutcome, layer_error_kind};
use crate::digest::Digest;
use crate::error::Error;
use crate::source::{BlobVisitor, ImageSource, PassingBlob, ResolvedImage};
use crate::tarstream::limits::JobBudget;

/// An image of a one-pass source, measured: the image as the stream
/// described it, and an outcome per layer digest.
pub(super) struct Streamed {
    pub image: ResolvedImage,
    pub outcomes: Vec<(super::LayerKey, LayerOutcome)>,
}

/// What the visitor learnt of one blob: its measurement, and for an
/// uncompressed one the estimate of its compressed size.
type Seen = HashMap<String, (LayerMeasurement, Option<u64>)>;

/// Streams one image of a one-pass source through the analyzer.
pub(super) async fn measure(
    progress: Arc<dyn Progress>,
    analysis: AnalyzeOptions,
    source: Arc<dyn ImageSource>,
    image: ResolvedImage,
    cancel: Arc<AtomicBool>,
    budget: Arc<JobBudget>,
) -> Result<Streamed, Error> {
    let Some(one_pass) = source.one_pass() else {
        return Err(Error::usage(format!(
            "{}: not a one-pass source",
            image.reference
        )));
    };
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let visit = visitor(progress, analysis, seen.clone(), cancel.clone(), budget);
    let streamed = one_pass.stream(&image, visit).await.inspect_err(|_| {
        // The other images' layers stop at their next read.
        cancel.store(true, Ordering::Relaxed);
    })?;
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| poisoned())?);
    let mut image = streamed.image;
    let mut outcomes = Vec::with_capacity(image.layers.len());
    let count = image.layers.len().min(streamed.layer_blobs.len());
    for (i, blob) in streamed.layer_blobs.iter().take(count).enumerate() {
        let (mut m, estimate) = match seen.get(blob) {
            Some(found) => found.clone(),
            None => {
                return Err(Error::corrupt(format!(
                    "{}: layer {} was not streamed",
                    image.reference, image.layers[i].digest
                )));
            }
        };
        // A compressed member whose name is no digest is known by the
        // digest of the stream that passed.
        if image.layers[i].digest.is_empty() {
            image.layers[i].digest.clone_from(&m.digest);
        }
        let desc = &image.layers[i];
        check_layer(&image, i, &m)?;
        let note = estimate.map(|bytes| {
            m.figures.compressed_bytes = bytes;
            EstimateNote::Recompressed
        });
        outcomes.push((
            super::layer_key(desc, source.as_ref()),
            LayerOutcome::Measured(Arc::new(m), note),
        ));
    }
    Ok(Streamed { image, outcomes })
}

fn poisoned() -> Error {
    Error::corrupt("a layer's analyzer crashed")
}

/// The layer is what the image names it: the blob's digest, and the tar's
/// digest is the config's diff_id.
fn check_layer(image: &ResolvedImage, i: usize, m: &LayerMeasurement) -> Result<(), Error> {
    let desc = &image.layers[i];
    if m.digest != desc.digest {
        return Err(Error::corrupt(format!(
            "{}: layer {}: the stream's content is {}",
            image.reference, desc.digest, m.digest
        )));
    }
    match image.diff_ids.get(i) {
        Some(want) if *want != m.diff_id => Err(Error::corrupt(format!(
            "{}: layer {}: uncompressed digest mismatch: config diff_id is {want}, tar stream is {}",
            image.reference, desc.digest, m.diff_id
        ))),
        _ => Ok(()),
    }
}

/// Analyzes every blob as it passes; keeps what it learnt by blob name.
fn visitor(
    progress: Arc<dyn Progress>,
    analysis: AnalyzeOptions,
    seen: Arc<Mutex<Seen>>,
    cancel: Arc<AtomicBool>,
    budget: Arc<JobBudget>,
) -> BlobVisitor {
    Box::new(move |blob: PassingBlob<'_>| {
        let shown =
            Digest::from_blob_path(blob.name).map_or(blob.name.to_string(), |d| d.to_string());
        let bar = progress.layer_started(&shown, blob.size);
        let mut reader = PullEstimate::new(
            Cancellable {
                inner: blob.reader,
                cancel: cancel.clone(),
            },
            blob.size,
        );
        // Nothing names the blob before it has passed: it is hashed, and
        // checked against the layer it turns out to be afterwards.
        let expected = Expected {
            size: Some(blob.size),
            job: Some(budget.clone()),
            analysis,
            ..Expected::default()
        };
        let measured = layer::analyze(&mut reader, &expected, Some(bar.as_ref()));
        bar.finished();
        let m = measured.map_err(|e| {
            if cancel.load(Ordering::Relaxed) {
                return Error::cancelled();
            }
            cancel.store(true, Ordering::Relaxed);
            Error::new(layer_error_kind(&e), format!("layer {shown}")).with_source(e)
        })?;
        let estimate = (m.compression == Compression::None).then(|| reader.estimate());
        seen.lock()
            .map_err(|_| poisoned())?
            .insert(blob.name.to_string(), (m, estimate));
        Ok(())
    })
}
