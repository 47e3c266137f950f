//! Where images come from. Every transport implements [`ImageSource`]: it
//! resolves a reference to one image per selected platform (manifest, config,
//! layer descriptors) and opens layer blobs as plain byte streams. Nothing
//! downstream knows which transport it is reading, as go-containerregistry's
//! `remote`, `layout` and `tarball` packages all serve one `v1.Image`.
//!
//! A [`SourceFactory`] opens sources from references and keeps what
//! registries need between opens. The transports: [`registry`] (with
//! [`auth`] for credentials), [`layout`] (`oci:` and `oci-archive:`, over a
//! [`blob_store::BlobStore`]), [`docker_archive`], [`dir`] (skopeo's
//! `dir:`), [`daemon`]; [`manifest`] is the walk they share,
//! [`docker_save`] the `docker save` format two of them read,
//! [`seekable_tar`] reads archives in place,
//! [`reference`](mod@reference) and [`platform`] say what the user asked for.
//!
//! A daemon cannot serve one layer on request: it exports a whole image as
//! one stream. Such a source is a [`OnePassSource`]: the measurer asks it to
//! stream every layer once instead of opening them one by one.

pub mod auth;
pub mod blob_store;
pub mod daemon;
pub mod dir;
pub mod docker_archive;
pub mod docker_save;
pub mod layout;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod seekable_tar;
mod timed;

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

    /// Whether the media type says the blob is a plain tar (every such
    /// type, OCI's and Docker's, ends in `tar`).
    pub fn is_uncompressed(&self) -> bool {
        self.media_type.ends_with("tar")
    }
}

/// Where an image says it was built from: the OCI
/// `org.opencontainers.image.source` and `org.opencontainers.image.revision`
/// keys, from the manifest's annotations or else the config's labels. As
/// the image wrote them, bounded in length but not checked: whoever acts
/// on them (the commit status) validates them first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub source: Option<String>,
    pub revision: Option<String>,
}

impl Provenance {
    pub const SOURCE_KEY: &str = "org.opencontainers.image.source";
    pub const REVISION_KEY: &str = "org.opencontainers.image.revision";
    /// Longer values are dropped: a URL or a commit id is far shorter.
    const MAX_VALUE: usize = 2048;

    /// The two keys from a string map (labels, annotations), each kept
    /// only when it is a string of sensible length.
    pub fn from_map<'m>(get: impl Fn(&str) -> Option<&'m str>) -> Provenance {
        let keep = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty() && v.len() <= Self::MAX_VALUE)
                .map(str::to_string)
        };
        Provenance {
            source: keep(Self::SOURCE_KEY),
            revision: keep(Self::REVISION_KEY),
        }
    }

    /// Each key from `self`, else from `fallback`.
    pub fn or(self, fallback: Provenance) -> Provenance {
        Provenance {
            source: self.source.or(fallback.source),
            revision: self.revision.or(fallback.revision),
        }
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
    /// That index's size: the runtime keeps it with the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_bytes: Option<u64>,
    pub media_type: String,
    pub platform: Platform,
    pub manifest_bytes: u64,
    pub config_digest: String,
    pub config_bytes: u64,
    /// The config's `created` (RFC 3339), when it has one that reads as a
    /// date: when the image was built, for a history's order.
    #[serde(default)]
    pub created: Option<String>,
    #[serde(skip)]
    pub diff_ids: Vec<String>,
    /// Per layer, the config history's `created_by` (the Dockerfile step),
    /// `None` where the history does not say: a label for reports only.
    #[serde(skip)]
    pub created_by: Vec<Option<String>>,
    /// The config's `LANG`, `LC_ALL`, `LC_MESSAGES` and `LANGUAGE` values:
    /// which translations the locale hint keeps.
    #[serde(skip)]
    pub locale_env: Vec<String>,
    #[serde(skip)]
    pub layers: Vec<LayerDescriptor>,
    /// Not part of the report: read by `serve` for the commit status.
    #[serde(skip)]
    pub provenance: Provenance,
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

    /// Whether the blobs served are the ones nodes pull: a registry's. A
    /// local copy (an archive, a layout, an engine's store) may hold a layer
    /// uncompressed that a push would compress (`docker push`, `podman
    /// push` and skopeo gzip it), so the measurer estimates the compressed
    /// size of such a layer instead of taking the tar's length.
    fn serves_pushed_blobs(&self) -> bool {
        false
    }

    /// Whether each layer's tar is checked against the config's diff_id
    /// whatever `--verify-diff-ids` says: where only an archive's member
    /// names tie the blobs to the config (a docker-archive), nothing else
    /// would notice a member that is not the layer the config names.
    fn checks_diff_ids(&self) -> bool {
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

    /// A source that delivers an image's layers all at once, in one stream,
    /// rather than one blob at a time: the measurer then streams it instead
    /// of calling `open_layer`.
    fn one_pass(&self) -> Option<&dyn OnePassSource> {
        None
    }
}

/// A blob of a one-pass stream as it passes, not yet known to be a layer of
/// the image: the stream says which blob is which layer only at its end.
pub struct PassingBlob<'a> {
    /// Its name in the stream (an archive member), as
    /// [`StreamedImage::layer_blobs`] names it.
    pub name: &'a str,
    /// Its length in bytes.
    pub size: u64,
    pub reader: &'a mut dyn Read,
}

/// What is done with each blob as it passes; called on a blocking thread.
pub type BlobVisitor = Box<dyn FnMut(PassingBlob<'_>) -> Result<(), Error> + Send>;

/// What a one-pass stream turned out to hold.
#[derive(Debug, Clone)]
pub struct StreamedImage {
    /// The image as the stream describes it: its config, its layers with
    /// their sizes, in order.
    pub image: ResolvedImage,
    /// For each of `image.layers`, the name of the blob that held it.
    pub layer_blobs: Vec<String>,
}

#[async_trait]
pub trait OnePassSource: Send + Sync {
    /// Streams the image `resolve` returned once, handing every blob that
    /// may be a layer to `visit` as it passes, and says at the end which
    /// blob was which layer.
    async fn stream(
        &self,
        image: &ResolvedImage,
        visit: BlobVisitor,
    ) -> Result<StreamedImage, Error>;
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

/// Opens sources for references. One factory keeps what registries need
/// between opens (certificates, credentials, the loopback probe's answer,
/// HTTP clients and their connections), so open one per process, or per
/// set of options, and reuse it.
pub struct SourceFactory {
    registries: registry::RegistryPool,
}

impl SourceFactory {
    pub fn new(opts: SourceOptions) -> Self {
        SourceFactory {
            registries: registry::RegistryPool::new(opts.registry),
        }
    }

    /// The registry connections, for requests other than reading images
    /// (attaching reports, listing tags and referrers).
    pub fn registries(&self) -> &registry::RegistryPool {
        &self.registries
    }

    /// Parses a reference and opens the right transport for it.
    pub async fn open(&self, reference: &str) -> Result<Arc<dyn ImageSource>, Error> {
        self.open_ref(ImageRef::parse(reference)?).await
    }

    /// Opens the right transport for a parsed reference. Every source works
    /// under the run's deadline (`--timeout`): registries request by
    /// request, the others through [`timed::Timed`].
    pub async fn open_ref(&self, reference: ImageRef) -> Result<Arc<dyn ImageSource>, Error> {
        let local: Arc<dyn ImageSource> = match reference {
            ImageRef::Registry(ref r) => {
                let r = r.clone();
                return Ok(Arc::new(self.registries.open(reference, r).await?));
            }
            ImageRef::Layout { .. } => Arc::new(layout::OciLayoutSource::open(reference)?),
            ImageRef::OciArchive { .. } => layout::open_archive(reference)?,
            ImageRef::Dir { .. } => Arc::new(dir::open(reference)?),
            ImageRef::DockerArchive { .. } => {
                Arc::new(docker_archive::DockerArchiveSource::open(reference)?)
            }
            ImageRef::Daemon { .. } => Arc::new(daemon::DaemonSource::open(reference)?),
        };
        Ok(Arc::new(timed::Timed {
            inner: local,
            deadline: self.registries.deadline(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_ref(r: &str) -> oci_client::Reference {
        match ImageRef::parse(r).unwrap() {
            ImageRef::Registry(r) => r,
            other => panic!("{other} is not a registry reference"),
        }
    }

    #[tokio::test]
    async fn one_registry_connection_per_host() {
        // Plain-HTTP hosts and explicit credentials: opening touches
        // neither the network nor credential files.
        let opts = SourceOptions {
            registry: registry::RegistryOptions {
                insecure: vec!["127.0.0.1:9".into(), "127.0.0.2:9".into()],
                basic: Some(auth::Explicit {
                    host: "127.0.0.1:9".into(),
                    username: "user".into(),
                    password: "secret".into(),
                    source: "test".into(),
                }),
                ..Default::default()
            },
        };
        let factory = SourceFactory::new(opts);
        let pool = &factory.registries;
        let a = pool
            .host(&registry_ref("127.0.0.1:9/team/a:v1"))
            .await
            .unwrap();
        let b = pool
            .host(&registry_ref("127.0.0.1:9/other/b:v2"))
            .await
            .unwrap();
        let c = pool
            .host(&registry_ref("127.0.0.2:9/team/a:v1"))
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same host, one connection");
        assert!(!Arc::ptr_eq(&a, &c), "another host, another connection");

        // Sources opened through the factory share it too.
        let one = pool
            .open(
                ImageRef::parse("127.0.0.1:9/x:1").unwrap(),
                registry_ref("127.0.0.1:9/x:1"),
            )
            .await
            .unwrap();
        let two = pool
            .open(
                ImageRef::parse("127.0.0.1:9/y:2").unwrap(),
                registry_ref("127.0.0.1:9/y:2"),
            )
            .await
            .unwrap();
        assert!(Arc::ptr_eq(one.host(), &a) && Arc::ptr_eq(two.host(), &a));
        assert_eq!(one.reference(), "127.0.0.1:9/x:1");
        let src = factory.open("127.0.0.1:9/team/z:3").await.unwrap();
        assert_eq!(src.reference(), "127.0.0.1:9/team/z:3");
    }

    #[tokio::test]
    async fn references_that_cannot_be_parsed_are_usage_errors() {
        let factory = SourceFactory::new(SourceOptions::default());
        let e = factory.open("Not A Ref!").await.err().unwrap();
        assert_eq!(e.kind(), crate::error::Kind::Usage, "{e}");
    }
}
