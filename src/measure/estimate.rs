//! `--estimate`: figures from a few bytes of each blob, read with HTTP Range
//! requests (or a seek), instead of streaming the layer.
//!
//! What the trailer or header of a blob can tell:
//! - gzip ends with ISIZE, the uncompressed length modulo 2^32, of its *last
//!   member*: exact for the single-member streams docker, buildkit, skopeo
//!   and umoci write, as long as the tar is under 4 GiB;
//! - a zstd frame header may carry the frame's content size: exact only
//!   when the blob is one frame, which the header cannot promise;
//! - an uncompressed tar is its own length.
//!
//! Everything else about a layer (files, inodes, disk blocks) needs the tar
//! headers, so it is either taken from the layer cache or left unknown.

use serde::Serialize;

/// Bytes read from each end of a blob.
pub const PROBE_BYTES: u64 = 64;

/// Above this, a gzip blob's ISIZE may have wrapped without showing it (a
/// tar of more than 4 GiB compressed ~8× or more): the first
/// [`SAMPLE_BYTES`] are inflated to see how well the layer compresses.
const GZIP_TRUST_LIMIT: u64 = 512 << 20;

/// How much of a large gzip blob is inflated to sample its ratio.
pub const SAMPLE_BYTES: u64 = 1 << 20;

/// A sampled ratio may be this far off before a wrap becomes possible.
const RATIO_MARGIN: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The gzip trailer's ISIZE.
    GzipIsize,
    /// The first zstd frame header's Frame_Content_Size.
    ZstdFrameHeader,
    /// An uncompressed tar: its length is the blob's.
    Uncompressed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TarEstimate {
    pub method: Method,
    pub tar_bytes: u64,
    /// Whether `tar_bytes` is exact or only likely.
    pub exact: bool,
}

/// Why a layer must be streamed after all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreliable {
    TooLarge,
    /// Large enough that the first [`SAMPLE_BYTES`] must be inflated first.
    NeedSample,
    MultiMember,
    Stargz,
    NoContentSize,
    Unrecognised,
}

impl std::fmt::Display for Unreliable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreliable::TooLarge => "gzip blob too large for its 32-bit ISIZE to be trusted",
            Unreliable::NeedSample => "needs a sample of the stream",
            Unreliable::MultiMember => {
                "the trailer does not describe the whole stream (multi-member gzip?)"
            }
            Unreliable::Stargz => "eStargz blob (multi-member gzip)",
            Unreliable::NoContentSize => "zstd frame header carries no content size",
            Unreliable::Unrecognised => "unrecognised compression",
        })
    }
}

/// Estimates the tar length from the first and last bytes of a blob of
/// `size` bytes. `sample`, the blob's first [`SAMPLE_BYTES`], is needed for
/// large gzip blobs (the answer says so).
pub fn tar_bytes(
    head: &[u8],
    tail: &[u8],
    size: u64,
    sample: Option<&[u8]>,
) -> Result<TarEstimate, Unreliable> {
    if head.starts_with(&[0x1f, 0x8b]) {
        gzip(tail, size, sample)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd(head, size)
    } else if size.is_multiple_of(512) {
        Ok(TarEstimate {
            method: Method::Uncompressed,
            tar_bytes: size,
            exact: true,
        })
    } else {
        Err(Unreliable::Unrecognised)
    }
}

/// Uncompressed bytes per compressed byte in the start of a gzip stream.
fn sampled_ratio(sample: &[u8]) -> Option<f64> {
    use std::io::Read;
    let mut d = flate2::bufread::GzDecoder::new(sample);
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = 0u64;
    // The sample ends mid-stream: read until the decoder runs dry.
    while let Ok(n) = d.read(&mut buf) {
        if n == 0 {
            break;
        }
        out += n as u64;
    }
    (out > 0).then(|| out as f64 / sample.len() as f64)
}

fn gzip(tail: &[u8], size: u64, sample: Option<&[u8]>) -> Result<TarEstimate, Unreliable> {
    // The eStargz footer is a last, empty gzip member whose extra field
    // carries "STARGZ": the ISIZE would be that member's 0.
    if tail.windows(6).any(|w| w == b"STARGZ") {
        return Err(Unreliable::Stargz);
    }
    if size >= 1 << 32 {
        return Err(Unreliable::TooLarge);
    }
    if size >= GZIP_TRUST_LIMIT {
        let ratio =
            sampled_ratio(sample.ok_or(Unreliable::NeedSample)?).ok_or(Unreliable::TooLarge)?;
        // Trust the trailer only if the tar would stay under 4 GiB even
        // with the rest of the layer compressing RATIO_MARGIN× better.
        if size as f64 * ratio * RATIO_MARGIN >= (1u64 << 32) as f64 {
            return Err(Unreliable::TooLarge);
        }
    }
    if tail.len() < 8 {
        return Err(Unreliable::MultiMember);
    }
    let n = tail.len();
    let isize = u32::from_le_bytes([tail[n - 4], tail[n - 3], tail[n - 2], tail[n - 1]]) as u64;
    // A tar is a whole number of 512-byte blocks, and hardly smaller than
    // its own deflate stream (a good encoder falls back to stored blocks,
    // +0.01%; a fast one may still expand random data by ~10%): anything
    // else is the size of another member than the whole stream.
    if !isize.is_multiple_of(512) || isize + isize / 6 + 1024 < size {
        return Err(Unreliable::MultiMember);
    }
    Ok(TarEstimate {
        method: Method::GzipIsize,
        tar_bytes: isize,
        exact: true,
    })
}

fn zstd(head: &[u8], size: u64) -> Result<TarEstimate, Unreliable> {
    let fhd = *head.get(4).ok_or(Unreliable::NoContentSize)?;
    let fcs_flag = fhd >> 6;
    let single_segment = fhd & 0x20 != 0;
    let dict_bytes = [0usize, 1, 2, 4][(fhd & 0x03) as usize];
    let fcs_bytes = match (fcs_flag, single_segment) {
        (0, false) => return Err(Unreliable::NoContentSize),
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let start = 5 + usize::from(!single_segment) + dict_bytes;
    let field = head
        .get(start..start + fcs_bytes)
        .ok_or(Unreliable::NoContentSize)?;
    let mut buf = [0u8; 8];
    buf[..fcs_bytes].copy_from_slice(field);
    let mut fcs = u64::from_le_bytes(buf);
    if fcs_bytes == 2 {
        fcs += 256;
    }
    if !fcs.is_multiple_of(512) || fcs + 64 < size {
        return Err(Unreliable::MultiMember);
    }
    Ok(TarEstimate {
        method: Method::ZstdFrameHeader,
        tar_bytes: fcs,
        // The blob may hold more frames than the first.
        exact: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(n: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(n as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &vec![b'x'; n][..]).unwrap();
        b.into_inner().unwrap()
    }

    fn ends(blob: &[u8]) -> (&[u8], &[u8]) {
        let k = blob.len().min(PROBE_BYTES as usize);
        (&blob[..k], &blob[blob.len() - k..])
    }

    #[test]
    fn gzip_isize_is_exact_for_one_member() {
        let tar = tar_of(300_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let (h, t) = ends(&gz);
        let e = tar_bytes(h, t, gz.len() as u64, None).unwrap();
        assert_eq!(e.tar_bytes, tar.len() as u64);
        assert!(e.exact);
    }

    #[test]
    fn large_gzip_needs_a_sample_whose_ratio_rules_out_a_wrap() {
        let tar = tar_of(300_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let (h, t) = ends(&gz);
        // Pretend the blob is 600 MiB: it needs a sample first.
        assert_eq!(
            tar_bytes(h, t, 600 << 20, None),
            Err(Unreliable::NeedSample)
        );
        // `x` repeated compresses ~100×: 600 MiB of it could be a 60 GiB tar.
        assert_eq!(
            tar_bytes(h, t, 600 << 20, Some(&gz)),
            Err(Unreliable::TooLarge)
        );
        // Random content barely compresses: the trailer is trusted.
        use sha2::Digest;
        let random: Vec<u8> = (0..12_500u32)
            .flat_map(|i| sha2::Sha256::digest(i.to_le_bytes()))
            .collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&random).unwrap();
        let sample = e.finish().unwrap();
        let r = sampled_ratio(&sample[..sample.len() / 2]).unwrap();
        assert!(r < 2.0, "ratio {r}, sample {}", sample.len());
        // (A real 600 MiB blob would carry its own trailer; here the check
        // that the trailer fits the size rejects this small one.)
        assert_eq!(
            tar_bytes(h, t, 600 << 20, Some(&sample)),
            Err(Unreliable::MultiMember)
        );
        assert_eq!(
            tar_bytes(h, t, 5 << 30, Some(&sample)),
            Err(Unreliable::TooLarge)
        );
    }

    #[test]
    fn multi_member_gzip_is_refused() {
        let tar = tar_of(300_000);
        let mut gz = Vec::new();
        for chunk in [&tar[..200_000], &tar[200_000..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(chunk).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let (h, t) = ends(&gz);
        // The last member is 100 KB of a 300 KB tar: not 512-aligned here.
        assert!(tar_bytes(h, t, gz.len() as u64, None).is_err());
        assert_eq!(
            tar_bytes(h, t, 600 << 20, None),
            Err(Unreliable::NeedSample)
        );
        let mut stargz = gz.clone();
        stargz.extend_from_slice(b"\x1f\x8b\x08\x04\0\0\0\0\0\xff\x1a\0SG\x16\x00STARGZ");
        let (h, t) = ends(&stargz);
        assert_eq!(
            tar_bytes(h, t, stargz.len() as u64, None),
            Err(Unreliable::Stargz)
        );
    }

    #[test]
    fn zstd_header_content_size() {
        let tar = tar_of(70_000);
        let z = zstd::bulk::compress(&tar, 3).unwrap();
        let (h, t) = ends(&z);
        let e = tar_bytes(h, t, z.len() as u64, None).unwrap();
        assert_eq!(e.tar_bytes, tar.len() as u64);
        assert!(!e.exact);
        // A streaming encoder does not know the size up front.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.write_all(&tar).unwrap();
        let z = enc.finish().unwrap();
        let (h, t) = ends(&z);
        assert_eq!(
            tar_bytes(h, t, z.len() as u64, None),
            Err(Unreliable::NoContentSize)
        );
    }

    #[test]
    fn plain_tar_is_its_length() {
        let tar = tar_of(1000);
        let e = tar_bytes(&tar[..512], &tar[tar.len() - 64..], tar.len() as u64, None).unwrap();
        assert_eq!(e.tar_bytes, tar.len() as u64);
    }
}
