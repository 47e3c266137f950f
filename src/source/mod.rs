//! Where images come from. Every transport implements [`ImageSource`]: it
//! resolves a reference to one image per selected platform (manifest, config,
//! layer descriptors) and opens layer blobs as plain byte streams. Nothing
//! downstream knows which transport it is reading, as go-containerregistry's
//! `remote`, `layout` and `tarball` packages all serve one `v1.Image`.

pub mod auth;
pub mod blob_store;
pub mod docker_archive;
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

use crate::digest::Digest;
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

/// A raw manifest or config blob and the digest that addressed it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub bytes: bytes::Bytes,
    pub digest: Digest,
    /// The media type the transport reported (HTTP `Content-Type`, the
    /// descriptor that pointed here), if any.
    pub media_type: Option<String>,
}

#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The reference as given, normalised, for reports: the [`ImageRef`]
    /// the source was opened with, formatted by its `Display`.
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
/// OCI layout) share the index walk, and the digest verification, of
/// [`manifest::resolve`]; they only serve blobs.
#[async_trait]
pub trait ManifestStore: ImageSource {
    /// The manifest or index the reference points at.
    async fn root(&self) -> Result<Blob, Error>;
    /// A manifest (by digest, from an index) or a config blob, unverified.
    async fn fetch(
        &self,
        digest: &Digest,
        media_type: &str,
        is_manifest: bool,
    ) -> Result<Blob, Error>;
}

/// Options every transport may need.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub registry: registry::RegistryOptions,
}

/// Opens the right transport for a reference.
pub async fn open(reference: &str, opts: &SourceOptions) -> Result<Arc<dyn ImageSource>, Error> {
    let reference = ImageRef::parse(reference)?;
    Ok(match reference {
        ImageRef::Registry(ref r) => {
            let r = r.clone();
            Arc::new(registry::RegistrySource::connect(reference, r, &opts.registry).await?)
        }
        ImageRef::Layout { .. } | ImageRef::OciArchive { .. } => {
            Arc::new(layout::OciLayoutSource::open(reference)?)
        }
        ImageRef::DockerArchive { .. } => {
            Arc::new(docker_archive::DockerArchiveSource::open(reference)?)
        }
    })
}

/// Kept for callers that hash through `source`; the digest functions live
/// in [`crate::digest`].
pub use crate::digest::sha256_digest;
