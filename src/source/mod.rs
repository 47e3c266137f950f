//! Where images come from. Every transport implements [`ImageSource`]: it
//! resolves a reference to one image per selected platform (manifest, config,
//! layer descriptors) and opens layer blobs as plain byte streams. Nothing
//! downstream knows which transport it is reading, as go-containerregistry's
//! `remote`, `layout` and `tarball` packages all serve one `v1.Image`.

pub mod archive;
pub mod auth;
pub mod blob_store;
pub mod layout;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod tar_index;

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Error;
use crate::source::platform::{Platform, PlatformSelector};
use crate::source::reference::ImageRef;

pub use manifest::resolve;

/// A layer as the manifest describes it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerDescriptor {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl LayerDescriptor {
    /// Foreign (Windows base) and non-distributable layers may be missing
    /// from the registry; they are measured when fetchable, never assumed empty.
    pub fn is_foreign(&self) -> bool {
        self.media_type.contains("foreign") || self.media_type.contains("nondistributable")
    }
}

/// One image of one platform, ready to measure.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedImage {
    /// The reference as the user gave it, normalised.
    pub reference: String,
    /// The image manifest's digest (for docker-archive, which has no
    /// manifest, the config digest: the image ID).
    pub digest: String,
    /// The index this image was picked from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    pub media_type: String,
    pub platform: Platform,
    pub manifest_bytes: u64,
    pub config_digest: String,
    pub config_bytes: u64,
    #[serde(skip)]
    pub diff_ids: Vec<String>,
    #[serde(skip)]
    pub layers: Vec<LayerDescriptor>,
}

/// A raw manifest or config blob and its digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: bytes::Bytes,
    pub digest: String,
    /// The media type the transport reported (HTTP `Content-Type`, the
    /// descriptor that pointed here), if any.
    pub media_type: Option<String>,
}

#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The reference as given, normalised, for reports.
    fn reference(&self) -> String;

    /// Resolves the reference to one image per selected platform.
    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error>;

    /// Opens a layer blob for streaming, exactly as stored (compressed).
    /// The reader is consumed on a blocking thread.
    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error>;

    /// Whether the readers `open_layer` returns fail on a digest mismatch
    /// themselves, so the analyzer need not hash the blob again.
    fn verifies_digests(&self) -> bool {
        false
    }

    /// `len` bytes of a blob from `offset`, for `--estimate`; `None` when the
    /// source cannot serve a range (a registry that ignores `Range`).
    async fn read_range(
        &self,
        _layer: &LayerDescriptor,
        _offset: u64,
        _len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
}

/// Sources that store manifests as content-addressed blobs (a registry, an
/// OCI layout) share the index-walking logic in [`manifest::resolve`].
#[async_trait]
pub trait ManifestStore: Send + Sync {
    fn reference(&self) -> String;
    /// The manifest or index the reference points at.
    async fn root(&self) -> Result<Blob, Error>;
    /// A manifest (by digest, from an index) or a config blob.
    async fn fetch(&self, digest: &str, media_type: &str, is_manifest: bool)
    -> Result<Blob, Error>;
}

/// Options every transport may need.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub registry: registry::RegistryOptions,
}

/// Opens the right transport for a reference.
pub async fn open(reference: &str, opts: &SourceOptions) -> Result<Arc<dyn ImageSource>, Error> {
    let parsed = ImageRef::parse(reference).map_err(Error::usage)?;
    Ok(match parsed {
        ImageRef::Registry(r) => {
            Arc::new(registry::RegistrySource::connect(r, &opts.registry).await?)
        }
        ImageRef::Layout { path, tag } => Arc::new(layout::LayoutSource::open(&path, tag)?),
        ImageRef::OciArchive { path, tag } => {
            Arc::new(archive::OciArchiveSource::open(&path, tag)?)
        }
        ImageRef::DockerArchive { path, reference } => {
            Arc::new(archive::DockerArchiveSource::open(&path, reference)?)
        }
    })
}

pub use crate::digest::sha256_digest;

/// Verifies content against the digest that addressed it.
pub fn verify_digest(what: &str, expected: &str, bytes: &[u8]) -> Result<(), Error> {
    if !expected.starts_with("sha256:") {
        return Err(Error::measure(format!(
            "{what}: unsupported digest algorithm in {expected} (only sha256 is supported)"
        )));
    }
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(Error::measure(format!(
            "{what}: digest mismatch: expected {expected}, content is {actual}"
        )));
    }
    Ok(())
}

/// `len` bytes at `base + offset` of a file (a blob, or a member inside an
/// archive that starts at `base`).
pub(crate) fn read_file_range(
    path: &std::path::Path,
    base: u64,
    offset: u64,
    len: u64,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(base + offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A blocking `Read` over chunks sent by an async task: the bridge between
/// a download on the runtime and an analyzer on a blocking thread.
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelReader {
            rx,
            chunk: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                // The sender finished: end of stream.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        bytes::Buf::advance(&mut self.chunk, n);
        Ok(n)
    }
}
