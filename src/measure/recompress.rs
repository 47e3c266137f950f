//! What a push would upload of a layer that a local source holds
//! uncompressed (a `docker save` archive, an engine's export, a layout
//! written without compression): `docker push`, `podman push` and skopeo
//! gzip such a layer (level 6, gzip's default), so its `compressed_bytes`
//! is an estimate of that, not the tar's length. A sample of the tar (every
//! eighth 256 KiB stretch) is deflated at level 6 while the layer streams
//! through the analyzer, and its ratio applied to the whole tar. The
//! layer's report says so ([`super::EstimateNote::Recompressed`]), and so
//! do the rules that read pull sizes; a check against a registry baseline
//! then takes the registry's exact blob for every layer it already holds
//! (`app::published`).

use std::io::{self, Read, Write};

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
pub(super) struct PullEstimate<R> {
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
    pub(super) fn new(inner: R) -> Self {
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
    pub(super) fn estimate(&mut self) -> u64 {
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
