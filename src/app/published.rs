//! A local image (an engine's, exported uncompressed) checked against a
//! baseline a registry publishes: the layers they share.

use std::collections::HashMap;
use std::sync::Arc;

use crate::analyze::ImageReport;
use crate::measure::{LayerReport, MeasuredImage};

/// A candidate layer whose compressed size is only estimated (an engine's
/// uncompressed layer) but whose content the baseline's registry already
/// holds (the same diff_id) is not uploaded again by a push: the pushed
/// manifest names the registry's blob, and that is what nodes pull. So the
/// layer takes that blob's digest, size and media type, and its compressed
/// size is exact; only the layers the registry lacks stay estimates.
pub(super) fn adopt_published_blobs(candidate: &mut ImageReport, baselines: &[ImageReport]) {
    let published: HashMap<&str, &LayerReport> = baselines
        .iter()
        .flat_map(|b| &b.layers)
        .filter(|l| !l.compressed_estimated())
        .filter_map(|l| Some((l.measurement.as_ref()?.diff_id.as_str(), l)))
        .filter(|(diff_id, _)| !diff_id.is_empty())
        .collect();
    let MeasuredImage { layers, totals, .. } = &mut candidate.measured;
    for layer in layers.iter_mut().filter(|l| l.compressed_estimated()) {
        let Some(ours) = &layer.measurement else {
            continue;
        };
        let Some(theirs) = published.get(ours.diff_id.as_str()) else {
            continue;
        };
        let Some(blob) = &theirs.measurement else {
            continue;
        };
        let mut adopted = (**ours).clone();
        totals.compressed_bytes -= ours.figures.compressed_bytes;
        totals.compressed_bytes += blob.figures.compressed_bytes;
        adopted.figures.compressed_bytes = blob.figures.compressed_bytes;
        adopted.digest.clone_from(&blob.digest);
        adopted.compression = blob.compression;
        layer.descriptor = theirs.descriptor.clone();
        layer.measurement = Some(Arc::new(adopted));
        layer.estimate = None;
    }
}
