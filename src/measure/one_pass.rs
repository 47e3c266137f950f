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
//! An engine exports its layers as they sit in its store, uncompressed;
//! `docker push` and `podman push` gzip them (level 6, gzip's default). So
//! for an uncompressed layer `compressed_bytes` is an estimate of what the
//! push would upload: a sample of the tar (every eighth 256 KiB stretch)
//! deflated at level 6, its ratio applied to the whole tar. The layer's
//! report says so ([`EstimateNote::Recompressed`]), and so do the rules
//! that read pull sizes. A layer the engine exports compressed (the
//! containerd image store keeps what it pulled) is exact.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::layer::{self, Compression, Expected, LayerMeasurement};
use super::limits::JobBudget;
use super::progress::Progress;
use super::{Cancellable, EstimateNote, LayerOutcome, layer_error_kind};
use crate::digest::Digest;
use crate::error::Error;
use crate::source::{BlobVisitor, ImageSource, PassingBlob, ResolvedImage};

/// An image of a one-pass source, measured: the image as the stream
/// described it, and an outcome per layer digest.
pub(super) struct Streamed {
    pub image: ResolvedImage,
    pub outcomes: Vec<(String, LayerOutcome)>,
}

/// What the visitor learnt of one blob: its measurement, and for an
/// uncompressed one the estimate of its compressed size.
type Seen = HashMap<String, (LayerMeasurement, Option<u64>)>;

/// Streams one image of a one-pass source through the analyzer.
pub(super) async fn measure(
    progress: Arc<dyn Progress>,
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
    let visit = visitor(progress, seen.clone(), cancel.clone(), budget);
    let streamed = one_pass.stream(&image, visit).await.inspect_err(|_| {
        // The other images' layers stop at their next read.
        cancel.store(true, Ordering::Relaxed);
    })?;
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| poisoned())?);
    let image = streamed.image;
    let mut outcomes = Vec::with_capacity(image.layers.len());
    for (i, (desc, blob)) in image.layers.iter().zip(&streamed.layer_blobs).enumerate() {
        let (mut m, estimate) = match seen.get(blob) {
            Some(found) => found.clone(),
            None => {
                return Err(Error::corrupt(format!(
                    "{}: layer {} was not streamed",
                    image.reference, desc.digest
                )));
            }
        };
        check_layer(&image, i, &m)?;
        let note = estimate.map(|bytes| {
            m.figures.compressed_bytes = bytes;
            EstimateNote::Recompressed
        });
        outcomes.push((
            desc.digest.clone(),
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
    seen: Arc<Mutex<Seen>>,
    cancel: Arc<AtomicBool>,
    budget: Arc<JobBudget>,
) -> BlobVisitor {
    Box::new(move |blob: PassingBlob<'_>| {
        let shown =
            Digest::from_blob_path(blob.name).map_or(blob.name.to_string(), |d| d.to_string());
        let bar = progress.layer_started(&shown, blob.size);
        let mut reader = PullEstimate::new(Cancellable {
            inner: blob.reader,
            cancel: cancel.clone(),
        });
        // Nothing names the blob before it has passed: it is hashed, and
        // checked against the layer it turns out to be afterwards.
        let expected = Expected {
            size: Some(blob.size),
            job: Some(budget.clone()),
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

/// Stretches of the stream deflated for the estimate, and how often.
const SAMPLE_BYTES: usize = 256 << 10;
const SAMPLE_EVERY: u64 = 8;
/// gzip's default level, which `docker push` and `podman push` use.
const PUSH_LEVEL: u32 = 6;
/// gzip's header and trailer around the deflate stream.
const GZIP_FRAMING: u64 = 18;

/// Passes a stream through unchanged while estimating what gzip would make
/// of it, from a sample: every [`SAMPLE_EVERY`]th stretch of
/// [`SAMPLE_BYTES`] is deflated on its own, the first one always.
struct PullEstimate<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// The stretch being collected, when the current one is sampled.
    pending: Vec<u8>,
    sampled_in: u64,
    sampled_out: u64,
    /// A stream that starts compressed is not sampled.
    compressed: Option<bool>,
}

impl<R: Read> PullEstimate<R> {
    fn new(inner: R) -> Self {
        PullEstimate {
            inner,
            offset: 0,
            pending: Vec::with_capacity(SAMPLE_BYTES),
            sampled_in: 0,
            sampled_out: 0,
            compressed: None,
        }
    }

    fn sampling(&self) -> bool {
        (self.offset / SAMPLE_BYTES as u64).is_multiple_of(SAMPLE_EVERY)
    }

    /// Deflates the collected stretch and counts what came out.
    fn flush_sample(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut counter = ByteCount(0);
        let mut deflate =
            flate2::write::DeflateEncoder::new(&mut counter, flate2::Compression::new(PUSH_LEVEL));
        // Writing to a counter cannot fail.
        let _ = deflate
            .write_all(&self.pending)
            .and_then(|_| deflate.try_finish());
        drop(deflate);
        self.sampled_in += self.pending.len() as u64;
        self.sampled_out += counter.0;
        self.pending.clear();
    }

    /// What a push would upload of the whole stream.
    fn estimate(&mut self) -> u64 {
        self.flush_sample();
        if self.sampled_in == 0 {
            return GZIP_FRAMING;
        }
        let scaled = self.sampled_out as u128 * self.offset as u128 / self.sampled_in as u128;
        scaled as u64 + GZIP_FRAMING
    }
}

impl<R: Read> Read for PullEstimate<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.compressed.is_none() && n > 0 {
            let head = &buf[..n];
            self.compressed = Some(
                head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            );
        }
        if self.compressed == Some(true) {
            self.offset += n as u64;
            return Ok(n);
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let in_stretch = SAMPLE_BYTES - (self.offset % SAMPLE_BYTES as u64) as usize;
            let take = in_stretch.min(rest.len());
            if self.sampling() {
                self.pending.extend_from_slice(&rest[..take]);
            }
            self.offset += take as u64;
            rest = &rest[take..];
            if self.offset.is_multiple_of(SAMPLE_BYTES as u64) {
                self.flush_sample();
            }
        }
        Ok(n)
    }
}

struct ByteCount(u64);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate_of(bytes: &[u8]) -> u64 {
        let mut r = PullEstimate::new(bytes);
        io::copy(&mut r, &mut io::sink()).unwrap();
        r.estimate()
    }

    fn gzip_len(bytes: &[u8]) -> u64 {
        let mut gz =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(PUSH_LEVEL));
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap().len() as u64
    }

    #[test]
    fn a_sample_estimates_what_gzip_makes_of_the_whole() {
        // Half text-like, half noise, interleaved in 100 KiB runs: the
        // sample sees both.
        let mut data = Vec::new();
        let mut x: u64 = 1;
        for run in 0..80 {
            for i in 0..100 << 10 {
                if run % 2 == 0 {
                    data.push(b"the quick brown fox "[i % 20]);
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    data.push(x as u8);
                }
            }
        }
        let (estimate, real) = (estimate_of(&data), gzip_len(&data));
        let off = estimate.abs_diff(real) as f64 / real as f64;
        assert!(off < 0.10, "estimate {estimate}, gzip {real}");
        // A small stream is deflated whole.
        let small = &data[..50_000];
        assert!(estimate_of(small).abs_diff(gzip_len(small)) < 64);
    }

    #[test]
    fn compressed_streams_are_not_sampled() {
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&[0u8; 1 << 20]).unwrap();
            e.finish().unwrap()
        };
        let mut r = PullEstimate::new(&gz[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.sampled_in, 0);
    }
}
