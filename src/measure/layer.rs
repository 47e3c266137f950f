//! The streaming layer analyzer: blob bytes in, figures out.
//!
//! It knows nothing of registries or files: it is handed a `Read` of the
//! blob exactly as stored (compressed), and reads it once. The blob is hashed
//! as it passes, decompressed by sniffing its magic bytes (media types lie:
//! some builders label zstd layers as gzip), and parsed as a tar stream.
//! Nothing is buffered beyond the decoder's window and one tar header, so
//! memory does not grow with the layer; what does grow is the per-path index,
//! one small entry per path, which the merged-filesystem view needs.

use std::io::{self, BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::content::{ContentFacts, ContentScan};
use super::path_index::IndexBuilder;
pub use super::path_index::{LayerIndex, top_n};
use super::progress::LayerProgress;
use crate::tarstream::limits::{Budget, Counted};
use crate::tarstream::{self, MemberHeader, MemberKind, StreamError, TarStream};

/// The block size of the node filesystems we predict for (ext4 and xfs
/// default to 4 KiB).
pub const FS_BLOCK: u64 = 4096;

/// ext4 stores a symlink target shorter than this inside the inode itself
/// ("fast symlink"); a longer one costs a data block.
pub const FAST_SYMLINK_MAX: usize = 60;

/// The figures of one layer. Field names are part of the JSON schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFigures {
    /// Bytes of the blob as stored (what a pull downloads).
    pub compressed_bytes: u64,
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Sum of regular-file sizes, a hard-linked file counted once.
    pub content_bytes: u64,
    /// Predicted allocation of the unpacked layer on a 4 KiB-block filesystem.
    pub disk_bytes: u64,
    /// Inodes the unpacked layer uses.
    pub inodes: u64,
    /// `.wh.NAME` entries (each becomes a 0/0 character device in overlayfs).
    pub whiteouts: u64,
    /// Directories marked opaque by `.wh..wh..opq`.
    pub opaque_dirs: u64,
    /// Regular files (hard links to a file already counted are not).
    pub files: u64,
}

impl LayerFigures {
    /// Sums saturate: a sparse file may claim an apparent size near
    /// `u64::MAX`, and a sum that wrapped would read as small.
    pub fn add(&mut self, other: &LayerFigures) {
        let sum = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        sum(&mut self.compressed_bytes, other.compressed_bytes);
        sum(&mut self.tar_bytes, other.tar_bytes);
        sum(&mut self.content_bytes, other.content_bytes);
        sum(&mut self.disk_bytes, other.disk_bytes);
        sum(&mut self.inodes, other.inodes);
        sum(&mut self.whiteouts, other.whiteouts);
        sum(&mut self.opaque_dirs, other.opaque_dirs);
        sum(&mut self.files, other.files);
    }
}

/// What a path in a layer is, reduced to what sizing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum EntryKind {
    File {
        size: u64,
    },
    /// A hard link to another path of the same layer: no new inode, no content.
    HardLink,
    Dir,
    Symlink {
        target_len: usize,
    },
    /// Character or block device.
    Device,
    Fifo,
    /// `.wh.NAME`: deletes NAME (stored under NAME's path, not the marker's).
    Whiteout,
    /// `.wh..wh..opq`: hides the lower layers' content of this directory
    /// (stored under the directory's path).
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// A file and its size, for the largest-files lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileSize {
    /// Relative to the image root.
    pub path: String,
    pub size: u64,
}

/// Everything the analyzer learns from one blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeasurement {
    pub figures: LayerFigures,
    /// `sha256:` digest of the compressed blob, as computed while reading.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar (the config's `diff_id`).
    pub diff_id: String,
    /// Whether `diff_id` was computed from the tar stream, rather than
    /// taken from the image config.
    #[serde(default)]
    pub diff_id_verified: bool,
    pub compression: Compression,
    /// What the layer puts at each path; whiteouts and opaque markers are
    /// keyed by the path they act on.
    pub index: LayerIndex,
}

impl LayerMeasurement {
    /// The `n` largest regular files this layer adds.
    pub fn largest_files(&self, n: usize) -> Vec<FileSize> {
        self.index.largest_files(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || starts_with_skippable_frame(head) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A zstd skippable frame (magic `0x184D2A50` to `0x184D2A5F`, little
/// endian) may open a zstd stream: libzstd skips it, and so must the sniffing.
pub fn starts_with_skippable_frame(head: &[u8]) -> bool {
    matches!(head, [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..])
}

/// How layers are read: switches chosen once, at the command line, and
/// the same for every layer of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// Hash every file and scan ELF files for debug sections. The
    /// identical-file and debug-section hints need it; it is switched off
    /// only to measure what it costs.
    pub scan_content: bool,
    pub inflater: Inflater,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            scan_content: true,
            inflater: Inflater::Fastest,
        }
    }
}

/// Which gzip inflater reads gzip layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Inflater {
    /// ISA-L's igzip in the default build (about 1.4× as fast as zlib-rs
    /// here), zlib-rs in the `pure-rust` one.
    #[default]
    Fastest,
    /// zlib-rs in any build, so an ISA-L build can test both.
    ZlibRs,
}

/// What the caller knows about the blob before reading it, and how to
/// read it.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The descriptor's digest; verified at end of stream when given.
    pub digest: Option<String>,
    /// The descriptor's size; the stream must be exactly this long.
    pub size: Option<u64>,
    /// The config's `diff_id` for this layer. Hashing the whole tar costs as
    /// much as a third of the inflate, so it is only checked (and computed)
    /// when `verify_diff_id` is set or no `diff_id` is known.
    pub diff_id: Option<String>,
    pub verify_diff_id: bool,
    /// The source verifies the blob's digest itself, on another thread (the
    /// registry client does): hashing it again here would only slow the
    /// critical path.
    pub digest_checked_upstream: bool,
    /// The measurement the layer belongs to: its members and names count
    /// against that measurement's limits too.
    pub job: Option<std::sync::Arc<crate::tarstream::limits::JobBudget>>,
    pub analysis: AnalyzeOptions,
}

/// Why a layer could not be measured. The message names the stage and the
/// byte offset so a user can tell a flaky network from a corrupt blob.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("reading the blob failed after {offset} bytes: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("blob is truncated: got {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("blob is longer than its descriptor: more than {expected} bytes")]
    TooLong { expected: u64 },
    #[error("digest mismatch: descriptor says {expected}, content is {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("corrupt {format} data at compressed offset {offset}: {source}")]
    Decompress {
        format: &'static str,
        offset: u64,
        source: io::Error,
    },
    #[error("corrupt tar stream at uncompressed offset {offset}: {source}")]
    Tar { offset: u64, source: io::Error },
    #[error("uncompressed digest mismatch: config diff_id is {expected}, tar stream is {actual}")]
    DiffIdMismatch { expected: String, actual: String },
    #[error("unsupported digest {0} (sha256 or sha512, lowercase hex)")]
    UnsupportedDigest(String),
}

/// Reads the blob, counting and hashing every byte, and enforcing the
/// descriptor's size so a truncated or padded blob fails where it happens.
struct BlobReader<'p, R> {
    inner: R,
    hasher: Option<crate::digest::Hasher>,
    count: u64,
    expected_size: Option<u64>,
    failed: bool,
    progress: Option<&'p dyn LayerProgress>,
}

impl<R: Read> Read for BlobReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        if let Some(p) = self.progress {
            p.advanced(n as u64);
        }
        if let Some(expected) = self.expected_size {
            if self.count > expected {
                self.failed = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "blob longer than descriptor",
                ));
            }
            if n == 0 && self.count < expected && !buf.is_empty() {
                self.failed = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob truncated",
                ));
            }
        }
        Ok(n)
    }
}

/// Counts (and optionally hashes) the uncompressed tar stream, and remembers
/// whether the decoder below it failed, to tell corrupt compression from a
/// corrupt tar.
struct TarCounter<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
    decoder_failed: bool,
}

impl<R: Read> Read for TarCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if let Some(h) = &mut self.hasher {
                    h.update(&buf[..n]);
                }
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.decoder_failed = true;
                Err(e)
            }
        }
    }
}

/// Measures one layer blob, reading it exactly once.
pub fn analyze<R: Read>(
    reader: R,
    expected: &Expected,
    progress: Option<&dyn LayerProgress>,
) -> Result<LayerMeasurement, LayerError> {
    // The blob is hashed with the algorithm its digest names; without one,
    // with sha256, the algorithm blobs are addressed by.
    let algorithm = match &expected.digest {
        Some(d) => crate::digest::Digest::parse(d)
            .map_err(|_| LayerError::UnsupportedDigest(d.clone()))?
            .algorithm(),
        None => crate::digest::Algorithm::Sha256,
    };
    let hash_blob = !(expected.digest_checked_upstream && expected.digest.is_some());
    let hash_tar = expected.verify_diff_id || expected.diff_id.is_none();
    let mut blob = BlobReader {
        inner: reader,
        hasher: hash_blob.then(|| algorithm.hasher()),
        count: 0,
        expected_size: expected.size,
        failed: false,
        progress,
    };

    let parsed = parse_blob(&mut blob, hash_tar, expected);
    let (compression, tar_bytes, tar_hash, builder) = match parsed {
        Ok(v) => v,
        Err(stage) => return Err(stage.into_error(&blob)),
    };
    // The decoder may stop before the blob ends (gzip footer, tar padding
    // compressed after the end-of-archive blocks): read to EOF so the digest
    // and the size cover every byte.
    if let Err(source) = io::copy(&mut blob, &mut io::sink()) {
        return Err(read_error(&blob, source));
    }
    let compressed_bytes = blob.count;
    if let Some(size) = expected.size
        && compressed_bytes != size
    {
        return Err(LayerError::Truncated {
            got: compressed_bytes,
            expected: size,
        });
    }
    let digest = match (blob.hasher, &expected.digest) {
        (Some(h), want) => {
            let digest = h.finish().to_string();
            if let Some(want) = want
                && *want != digest
            {
                return Err(LayerError::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                });
            }
            digest
        }
        // Verified upstream: a mismatch would have failed the read.
        (None, want) => want.clone().unwrap_or_default(),
    };
    let (diff_id, diff_id_verified) = match tar_hash {
        Some(h) => (crate::digest::sha256_string(h), true),
        None if compression == Compression::None => (digest.clone(), true),
        None => (expected.diff_id.clone().unwrap_or_default(), false),
    };
    if expected.verify_diff_id
        && let Some(want) = &expected.diff_id
        && *want != diff_id
    {
        return Err(LayerError::DiffIdMismatch {
            expected: want.clone(),
            actual: diff_id,
        });
    }
    let (mut figures, index) = builder.finish();
    figures.compressed_bytes = compressed_bytes;
    figures.tar_bytes = tar_bytes;
    Ok(LayerMeasurement {
        figures,
        digest,
        diff_id,
        diff_id_verified,
        compression,
        index,
    })
}

fn read_error<R>(blob: &BlobReader<'_, R>, source: io::Error) -> LayerError {
    match (source.kind(), blob.expected_size) {
        (io::ErrorKind::UnexpectedEof, Some(expected)) if blob.count < expected => {
            LayerError::Truncated {
                got: blob.count,
                expected,
            }
        }
        (io::ErrorKind::InvalidData, Some(expected)) if blob.count > expected => {
            LayerError::TooLong { expected }
        }
        _ => LayerError::Read {
            offset: blob.count,
            source,
        },
    }
}

/// Where parsing stopped, resolved into a [`LayerError`] once the blob reader
/// can be inspected again.
enum Failure {
    Decode(Compression, io::Error),
    Tar(u64, io::Error),
}

impl Failure {
    fn into_error<R>(self, blob: &BlobReader<'_, R>) -> LayerError {
        let (source, stage) = match self {
            Failure::Decode(c, e) => (e, Some(c)),
            Failure::Tar(off, e) => {
                if blob.failed {
                    (e, None)
                } else {
                    return LayerError::Tar {
                        offset: off,
                        source: e,
                    };
                }
            }
        };
        if blob.failed {
            return read_error(blob, source);
        }
        match stage {
            Some(Compression::None) | None => LayerError::Tar { offset: 0, source },
            Some(c) => LayerError::Decompress {
                format: c.name(),
                offset: blob.count,
                source,
            },
        }
    }
}

type Parsed = (Compression, u64, Option<Sha256>, IndexBuilder);

fn parse_blob<R: Read>(
    blob: &mut BlobReader<'_, R>,
    hash_tar: bool,
    expected: &Expected,
) -> Result<Parsed, Failure> {
    let mut buffered = BufReader::with_capacity(256 * 1024, blob);
    let head = buffered
        .fill_buf()
        .map_err(|e| Failure::Decode(Compression::None, e))?;
    let compression = Compression::sniff(head);
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::Gzip => gzip_decoder(buffered, expected.analysis.inflater),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| Failure::Decode(compression, e))?,
        ),
        Compression::None => Box::new(buffered),
    };
    let mut tar = TarCounter {
        inner: decoder,
        // An uncompressed blob's tar digest is its blob digest.
        hasher: (hash_tar && compression != Compression::None).then(Sha256::new),
        count: 0,
        decoder_failed: false,
    };
    let builder = match parse_tar(
        &mut tar,
        expected.job.clone(),
        expected.analysis.scan_content,
    ) {
        Ok(b) => b,
        Err(StreamError::Read(e)) if tar.decoder_failed => {
            return Err(Failure::Decode(compression, e));
        }
        Err(StreamError::Read(e)) => return Err(Failure::Tar(tar.count, e)),
        Err(StreamError::Format { offset, message }) => {
            return Err(Failure::Tar(
                offset,
                io::Error::new(io::ErrorKind::InvalidData, message),
            ));
        }
    };
    // Zero blocks and padding after the end-of-archive marker still belong to
    // the tar stream (and to its diff_id).
    if let Err(e) = io::copy(&mut tar, &mut io::sink()) {
        return Err(Failure::Decode(compression, e));
    }
    Ok((compression, tar.count, tar.hasher, builder))
}

/// Indexes every member of the tar stream.
fn parse_tar<R: Read>(
    reader: &mut R,
    job: Option<std::sync::Arc<crate::tarstream::limits::JobBudget>>,
    scan_content: bool,
) -> Result<IndexBuilder, StreamError> {
    let mut stream = TarStream::new(reader).with_job_budget(job.clone());
    let mut builder = IndexBuilder::default();
    // The paths the index makes, implied directories included, are
    // counted apart from the members: a member's name may make thousands.
    let mut paths = Budget::new(job);
    let mut counted = builder.paths();
    while let Some(m) = stream.next_member()? {
        index_member(&mut stream, &mut builder, &m, scan_content)?;
        let now = builder.paths();
        if now > counted {
            paths
                .charge(Counted::Paths, (now - counted) as u64)
                .map_err(|why| member_error(&m, why))?;
            counted = now;
        }
    }
    Ok(builder)
}

fn index_member<R: Read>(
    stream: &mut TarStream<R>,
    builder: &mut IndexBuilder,
    m: &MemberHeader,
    scan_content: bool,
) -> Result<(), StreamError> {
    let kind = match m.kind {
        // Anything unknown is treated like a regular file, as GNU tar
        // does.
        MemberKind::File {
            size,
            sparse: false,
        }
        | MemberKind::Other { size, .. } => {
            let facts = if scan_content {
                let mut scan = ContentScan::new(size);
                stream.read_data(size, |chunk| scan.feed(chunk))?;
                scan.finish()
            } else {
                ContentFacts::default()
            };
            return builder
                .add_file(&m.name, size, facts)
                .map_err(|e| member_error(m, e));
        }
        // A sparse file's stored bytes are not its content.
        MemberKind::File { size, .. } => EntryKind::File { size },
        MemberKind::Dir => EntryKind::Dir,
        MemberKind::Symlink => EntryKind::Symlink {
            target_len: m.link.len(),
        },
        MemberKind::Device => EntryKind::Device,
        MemberKind::Fifo => EntryKind::Fifo,
        // containerd logs a global header and creates nothing.
        MemberKind::Global => return Ok(()),
        MemberKind::HardLink => {
            return builder
                .add_hard_link(&m.name, &m.link)
                .map_err(|e| member_error(m, e));
        }
        MemberKind::OldGnuSparse { size } => {
            return Err(member_error(
                m,
                format!(
                    "old GNU sparse file ({size} bytes apparent): containerd cannot \
                     unpack it (Go's archive/tar keeps its type flag 'S', which \
                     containerd's createTarFile refuses as an unhandled tar header type)"
                ),
            ));
        }
    };
    builder.add(&m.name, kind).map_err(|e| member_error(m, e))
}

/// A member that cannot be measured, named (escaped) with its offset.
fn member_error(m: &MemberHeader, why: impl std::fmt::Display) -> StreamError {
    StreamError::Format {
        offset: m.offset,
        message: format!("{}: {why}", tarstream::printable(&m.name)),
    }
}

fn gzip_decoder<'a, R: BufRead + 'a>(input: R, inflater: Inflater) -> Box<dyn Read + 'a> {
    #[cfg(feature = "isal")]
    if inflater == Inflater::Fastest {
        let empty_reads = std::rc::Rc::new(std::cell::Cell::new(0));
        let guarded = EofGuard {
            inner: input,
            empty_reads: empty_reads.clone(),
        };
        return Box::new(Isal {
            decoder: isal::read::GzipDecoder::new(guarded),
            empty_reads,
        });
    }
    // Without ISA-L, zlib-rs is the fastest there is.
    #[cfg(not(feature = "isal"))]
    let _ = inflater;
    Box::new(flate2::bufread::MultiGzDecoder::new(input))
}

/// ISA-L's reader asks for more input forever when a stream ends early.
/// A finished stream costs one empty read per call; several within one
/// call mean the input ran out mid-stream.
#[cfg(feature = "isal")]
struct Isal<R: Read> {
    decoder: isal::read::GzipDecoder<EofGuard<R>>,
    empty_reads: std::rc::Rc<std::cell::Cell<u32>>,
}

#[cfg(feature = "isal")]
impl<R: Read> Read for Isal<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.empty_reads.set(0);
        self.decoder.read(buf)
    }
}

#[cfg(feature = "isal")]
struct EofGuard<R> {
    inner: R,
    empty_reads: std::rc::Rc<std::cell::Cell<u32>>,
}

#[cfg(feature = "isal")]
impl<R: Read> Read for EofGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let k = self.empty_reads.get() + 1;
            self.empty_reads.set(k);
            if k > 4 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip stream ends early",
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, size: usize) {
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &vec![7u8; size][..]).unwrap();
    }

    fn special(b: &mut tar::Builder<Vec<u8>>, path: &str, t: tar::EntryType, link: Option<&str>) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(t);
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, io::empty()).unwrap(),
        }
    }

    #[test]
    fn counts_files_dirs_links_and_whiteouts() {
        let data = tar_of(|b| {
            special(b, "etc/", tar::EntryType::Directory, None);
            file(b, "etc/a", 10);
            file(b, "usr/lib/big", 5000);
            special(b, "usr/lib/big2", tar::EntryType::Link, Some("usr/lib/big"));
            special(
                b,
                "usr/bin/short",
                tar::EntryType::Symlink,
                Some("../lib/big"),
            );
            special(
                b,
                "usr/bin/long",
                tar::EntryType::Symlink,
                Some(&"x".repeat(70)),
            );
            special(b, "var/.wh.cache", tar::EntryType::Regular, None);
            special(b, "opt/.wh..wh..opq", tar::EntryType::Regular, None);
        });
        let m = analyze(&data[..], &Expected::default(), None).unwrap();
        let f = m.figures;
        assert_eq!(f.files, 2);
        assert_eq!(f.content_bytes, 5010);
        // dirs: root, etc, usr, usr/lib, usr/bin, var, opt = 7
        assert_eq!(f.inodes, 2 + 2 + 1 + 7);
        assert_eq!(f.disk_bytes, 4096 + 8192 + 4096 + 7 * 4096);
        assert_eq!(f.whiteouts, 1);
        assert_eq!(f.opaque_dirs, 1);
        assert_eq!(f.tar_bytes, data.len() as u64);
        assert_eq!(f.compressed_bytes, data.len() as u64);
        assert_eq!(m.compression, Compression::None);
        assert_eq!(m.digest, m.diff_id);
        assert!(
            m.index
                .entries()
                .iter()
                .any(|e| e.path == "var/cache" && e.kind == EntryKind::Whiteout)
        );
        assert!(
            m.index
                .entries()
                .iter()
                .any(|e| e.path == "opt" && e.kind == EntryKind::Opaque)
        );
    }

    #[test]
    fn later_entry_for_same_path_replaces_earlier() {
        let data = tar_of(|b| {
            file(b, "a", 100);
            file(b, "./a", 9000);
        });
        let m = analyze(&data[..], &Expected::default(), None).unwrap();
        assert_eq!(m.figures.files, 1);
        assert_eq!(m.figures.content_bytes, 9000);
    }

    #[test]
    fn gzip_and_zstd_give_same_figures_and_diff_id() {
        use std::io::Write;
        let data = tar_of(|b| file(b, "x/y", 123_456));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        let plain = analyze(&data[..], &Expected::default(), None).unwrap();
        let g = analyze(&gz[..], &Expected::default(), None).unwrap();
        let z = analyze(&zs[..], &Expected::default(), None).unwrap();
        assert_eq!(g.compression, Compression::Gzip);
        assert_eq!(z.compression, Compression::Zstd);
        for m in [&g, &z] {
            assert_eq!(m.diff_id, plain.digest);
            assert_eq!(m.figures.content_bytes, plain.figures.content_bytes);
            assert_eq!(m.figures.tar_bytes, data.len() as u64);
        }
        assert_eq!(g.figures.compressed_bytes, gz.len() as u64);
    }

    #[test]
    fn digest_mismatch_and_truncation_are_errors() {
        let data = tar_of(|b| file(b, "f", 10));
        let wrong = Expected {
            digest: Some(format!("sha256:{}", "0".repeat(64))),
            ..Default::default()
        };
        assert!(matches!(
            analyze(&data[..], &wrong, None),
            Err(LayerError::DigestMismatch { .. })
        ));
        let long = Expected {
            size: Some(data.len() as u64 + 10),
            ..Default::default()
        };
        assert!(matches!(
            analyze(&data[..], &long, None),
            Err(LayerError::Truncated { .. })
        ));
        let short = Expected {
            size: Some(data.len() as u64 - 512),
            ..Default::default()
        };
        assert!(matches!(
            analyze(&data[..], &short, None),
            Err(LayerError::TooLong { .. })
        ));
    }

    #[test]
    fn sha512_digests_are_verified() {
        let data = tar_of(|b| file(b, "f", 10));
        let d = crate::digest::Digest::of(crate::digest::Algorithm::Sha512, &data).to_string();
        let right = Expected {
            digest: Some(d.clone()),
            ..Default::default()
        };
        assert_eq!(analyze(&data[..], &right, None).unwrap().digest, d);
        let wrong = Expected {
            digest: Some(format!("sha512:{}", "0".repeat(128))),
            ..Default::default()
        };
        assert!(matches!(
            analyze(&data[..], &wrong, None),
            Err(LayerError::DigestMismatch { .. })
        ));
        let unknown = Expected {
            digest: Some(format!("sha384:{}", "0".repeat(96))),
            ..Default::default()
        };
        assert!(matches!(
            analyze(&data[..], &unknown, None),
            Err(LayerError::UnsupportedDigest(_))
        ));
    }

    #[test]
    fn corrupt_gzip_names_offset() {
        use std::io::Write;
        let data = tar_of(|b| file(b, "f", 100_000));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let mut gz = gz.finish().unwrap();
        let mid = gz.len() / 2;
        for b in &mut gz[mid..mid + 64] {
            *b ^= 0x5a;
        }
        let err = analyze(&gz[..], &Expected::default(), None).unwrap_err();
        assert!(
            matches!(
                err,
                LayerError::Decompress { format: "gzip", .. } | LayerError::Tar { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn truncated_gzip_without_a_known_size_is_an_error_not_a_hang() {
        use std::io::Write;
        let data = tar_of(|b| file(b, "f", 200_000));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        for cut in [gz.len() / 2, gz.len() - 4, 11] {
            let err = analyze(&gz[..cut], &Expected::default(), None).unwrap_err();
            assert!(
                matches!(
                    err,
                    LayerError::Decompress { format: "gzip", .. } | LayerError::Tar { .. }
                ),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn garbage_is_a_tar_error_not_a_panic() {
        let err = analyze(
            &b"this is not a tar stream at all, not even close"[..],
            &Expected::default(),
            None,
        );
        // Fewer than 512 bytes: the tar reader sees a short header.
        assert!(err.is_err() || err.unwrap().index.is_empty());
    }

    #[test]
    fn top_n_keeps_largest() {
        let items = vec![("a", 5u64), ("b", 50), ("c", 1), ("d", 50)];
        let t = top_n(items.into_iter(), 2, |p| p.to_string());
        assert_eq!(
            t.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            vec!["b", "d"]
        );
    }
}
