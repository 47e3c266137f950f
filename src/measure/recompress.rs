//! What a push would upload of a layer that a local source holds
//! uncompressed (a `docker save` archive, an engine's export, a layout
//! written without compression): `docker push`, `podman push` and skopeo
//! gzip such a layer (level 6, gzip's default), so its `compressed_bytes`
//! is an estimate of that, not the tar's length. While the layer streams
//! through the analyzer, stretches of it spread evenly over the whole tar go
//! through one level-6 deflate stream, and the ratio that comes out is
//! applied to the whole tar: all of a layer up to [`SAMPLE_BUDGET`], a
//! proportionally thinner sample of a larger one, so the cost stays bounded
//! and every region of the tar (a layer of text beside one of binaries) is
//! seen. The layer's report says so ([`super::EstimateNote::Recompressed`]),
//! and so do the rules that read pull sizes; a check against a registry
//! baseline then takes the registry's exact blob for every layer it
//! already holds (`app::published`).

use std::io::{self, Read, Write};

use flate2::write::DeflateEncoder;

/// The unit of the sample, and how much of a layer is deflated at most:
/// a whole layer up to this size, then one stretch in every so many.
const STRETCH: u64 = 64 << 10;
pub(super) const SAMPLE_BUDGET: u64 = 32 << 20;
/// gzip's default level, which `docker push` and `podman push` use.
const PUSH_LEVEL: u32 = 6;
/// gzip's header and trailer around the deflate stream.
const GZIP_FRAMING: u64 = 18;

/// Passes a stream through unchanged while estimating what gzip would make
/// of it from an even sample of its stretches.
pub(super) struct PullEstimate<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// One stretch in `every` is sampled, the first one always.
    every: u64,
    deflate: DeflateEncoder<ByteCount>,
    /// The sampled stretch being collected: deflate is fed whole stretches
    /// only, since its output depends on how its input is cut, and reads
    /// from a socket are cut differently every time.
    pending: Vec<u8>,
    sampled_in: u64,
    /// A stream that starts compressed is not sampled.
    compressed: Option<bool>,
}

impl<R: Read> PullEstimate<R> {
    /// `size` is the stream's length, as its descriptor says: what spreads
    /// the sample over all of it.
    pub(super) fn new(inner: R, size: u64) -> Self {
        let stretches = size.div_ceil(STRETCH);
        PullEstimate {
            inner,
            offset: 0,
            every: stretches.div_ceil(SAMPLE_BUDGET / STRETCH).max(1),
            deflate: DeflateEncoder::new(ByteCount(0), flate2::Compression::new(PUSH_LEVEL)),
            pending: Vec::new(),
            sampled_in: 0,
            compressed: None,
        }
    }

    /// Deflates the stretch collected so far.
    fn flush_stretch(&mut self) {
        // Writing to a counter cannot fail.
        let _ = self.deflate.write_all(&self.pending);
        self.sampled_in += self.pending.len() as u64;
        self.pending.clear();
    }

    /// What a push would upload of the whole stream.
    pub(super) fn estimate(&mut self) -> u64 {
        self.flush_stretch();
        // Writing to a counter cannot fail.
        let _ = self.deflate.try_finish();
        if self.sampled_in == 0 {
            return GZIP_FRAMING;
        }
        let out = self.deflate.get_ref().0;
        let scaled = out as u128 * self.offset as u128 / self.sampled_in as u128;
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
            let in_stretch = STRETCH - self.offset % STRETCH;
            let take = in_stretch.min(rest.len() as u64) as usize;
            if (self.offset / STRETCH).is_multiple_of(self.every) {
                self.pending.extend_from_slice(&rest[..take]);
            }
            self.offset += take as u64;
            rest = &rest[take..];
            if self.offset.is_multiple_of(STRETCH) && !self.pending.is_empty() {
                self.flush_stretch();
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
        let mut r = PullEstimate::new(bytes, bytes.len() as u64);
        io::copy(&mut r, &mut io::sink()).unwrap();
        r.estimate()
    }

    fn gzip_len(bytes: &[u8]) -> u64 {
        let mut gz =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(PUSH_LEVEL));
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap().len() as u64
    }

    /// Text-like and noise, alternating in runs of `run` bytes.
    fn mixed(len: usize, run: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        let mut x: u64 = 1;
        for i in 0..len {
            if (i / run).is_multiple_of(2) {
                data.push(b"the quick brown fox "[i % 20]);
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push(x as u8);
            }
        }
        data
    }

    #[test]
    fn a_layer_within_the_budget_is_deflated_whole() {
        let data = mixed(8 << 20, 100 << 10);
        let (estimate, real) = (estimate_of(&data), gzip_len(&data));
        // Not to the byte: deflate's blocks fall where its input was cut.
        assert!(
            estimate.abs_diff(real) * 1000 < real,
            "estimate {estimate}, gzip {real}"
        );
        let small = &data[..50_000];
        assert!(estimate_of(small).abs_diff(gzip_len(small)) < 64);
    }

    #[test]
    fn a_larger_layer_is_sampled_evenly_within_the_budget() {
        // Runs that a sample of every third stretch cuts across unevenly.
        let data = mixed(96 << 20, 300 << 10);
        let mut r = PullEstimate::new(&data[..], data.len() as u64);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert!(r.sampled_in <= SAMPLE_BUDGET, "{} sampled", r.sampled_in);
        assert!(
            r.sampled_in >= SAMPLE_BUDGET / 2,
            "{} sampled",
            r.sampled_in
        );
        let (estimate, real) = (r.estimate(), gzip_len(&data));
        let off = estimate.abs_diff(real) as f64 / real as f64;
        assert!(off < 0.05, "estimate {estimate}, gzip {real}");
    }

    /// A reader that hands out its bytes in pieces of pseudo-random length,
    /// as a socket does.
    struct Ragged<'a>(&'a [u8], u64);

    impl Read for Ragged<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self
                .1
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((self.1 >> 33) as usize % 9000 + 1)
                .min(buf.len())
                .min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_estimate_does_not_depend_on_how_reads_are_cut() {
        let data = mixed(3 << 20, 30 << 10);
        let whole = estimate_of(&data);
        for seed in 1..4 {
            let mut r = PullEstimate::new(Ragged(&data, seed), data.len() as u64);
            io::copy(&mut r, &mut io::sink()).unwrap();
            assert_eq!(r.estimate(), whole, "seed {seed}");
        }
    }

    #[test]
    fn compressed_streams_are_not_sampled() {
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&[0u8; 1 << 20]).unwrap();
            e.finish().unwrap()
        };
        let mut r = PullEstimate::new(&gz[..], gz.len() as u64);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.sampled_in, 0);
    }
}
