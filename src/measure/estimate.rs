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

/// ISIZE is the tar length modulo 4 GiB. Reading it as the length assumes
/// no wrap; a wrap would mean the layer compresses at least
/// `(ISIZE + 4 GiB) / size` times overall. Below this ratio a wrap is ruled
/// out, and the layer is streamed instead. (For blobs under 512 MiB no
/// ratio below 8 can hide a wrap at all.)
const WRAP_RATIO: u64 = 8;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
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
    MultiMember,
    Stargz,
    NoContentSize,
    Unrecognised,
}

impl std::fmt::Display for Unreliable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreliable::TooLarge => "gzip blob too large for its 32-bit ISIZE to be trusted",
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
/// `size` bytes.
pub fn tar_bytes(head: &[u8], tail: &[u8], size: u64) -> Result<TarEstimate, Unreliable> {
    if head.starts_with(&[0x1f, 0x8b]) {
        gzip(tail, size)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd(head, size)
    } else if super::layer::starts_with_skippable_frame(head) {
        // The frame header that carries the content size comes later.
        Err(Unreliable::NoContentSize)
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

fn gzip(tail: &[u8], size: u64) -> Result<TarEstimate, Unreliable> {
    // The eStargz footer is a last, empty gzip member whose extra field
    // carries "STARGZ": the ISIZE would be that member's 0.
    if tail.windows(6).any(|w| w == b"STARGZ") {
        return Err(Unreliable::Stargz);
    }
    if size >= 1 << 32 {
        return Err(Unreliable::TooLarge);
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
    if isize + (1 << 32) < size * WRAP_RATIO {
        return Err(Unreliable::TooLarge);
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
        let e = tar_bytes(h, t, gz.len() as u64).unwrap();
        assert_eq!(e.tar_bytes, tar.len() as u64);
        assert!(e.exact);
    }

    #[test]
    fn a_large_gzip_blob_is_trusted_only_when_a_wrap_is_implausible() {
        let tail = |isize: u32| {
            let mut t = vec![0u8; 64];
            t[60..].copy_from_slice(&isize.to_le_bytes());
            t
        };
        let head = [0x1f, 0x8b, 8, 0];
        // 594 MB of blob, 870 MB of tar: a wrap would need 8.7× compression.
        let e = tar_bytes(&head, &tail(869_601_280), 594_383_427).unwrap();
        assert_eq!(e.tar_bytes, 869_601_280);
        // 700 MB of blob with a 100 MB trailer: a multi-member or wrapped
        // stream either way.
        assert!(tar_bytes(&head, &tail(100 << 20), 700 << 20).is_err());
        // 1 GB of blob, 1.2 GB of tar: a 5.2 GB tar (5.2×) is as likely.
        assert_eq!(
            tar_bytes(&head, &tail(1_200_000_512), 1_000_000_000),
            Err(Unreliable::TooLarge)
        );
        assert_eq!(
            tar_bytes(&head, &tail(0), 5 << 30),
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
        assert!(tar_bytes(h, t, gz.len() as u64).is_err());
        let mut stargz = gz.clone();
        stargz.extend_from_slice(b"\x1f\x8b\x08\x04\0\0\0\0\0\xff\x1a\0SG\x16\x00STARGZ");
        let (h, t) = ends(&stargz);
        assert_eq!(
            tar_bytes(h, t, stargz.len() as u64),
            Err(Unreliable::Stargz)
        );
    }

    #[test]
    fn zstd_header_content_size() {
        let tar = tar_of(70_000);
        let z = zstd::bulk::compress(&tar, 3).unwrap();
        let (h, t) = ends(&z);
        let e = tar_bytes(h, t, z.len() as u64).unwrap();
        assert_eq!(e.tar_bytes, tar.len() as u64);
        assert!(!e.exact);
        // A streaming encoder does not know the size up front.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.write_all(&tar).unwrap();
        let z = enc.finish().unwrap();
        let (h, t) = ends(&z);
        assert_eq!(
            tar_bytes(h, t, z.len() as u64),
            Err(Unreliable::NoContentSize)
        );
    }

    #[test]
    fn plain_tar_is_its_length() {
        let tar = tar_of(1000);
        let e = tar_bytes(&tar[..512], &tar[tar.len() - 64..], tar.len() as u64).unwrap();
        assert_eq!(e.tar_bytes, tar.len() as u64);
    }
}
