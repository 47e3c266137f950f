//! `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]`: an OCI image layout, as a
//! directory (what `skopeo copy oci:...`, `umoci` and `buildctl --output
//! type=oci` write) or as a tar of one. One reader serves both over a
//! [`BlobStore`]: `index.json` is parsed, the tag picked and the manifests
//! walked the same way, and both serve layer streams and byte ranges.
//!
//! Docker 25 and later write `docker save` as an OCI layout with a
//! `manifest.json` beside it, and may leave `index.json` empty (`"manifests":
//! null`, as Go writes an empty list): such an archive is read through its
//! `manifest.json`, as a docker-archive.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::blob_store::{BlobStore, DirStore};
use super::docker_archive::DockerArchiveSource;
use super::manifest::{LocalIndex, MAX_DOCUMENT_BYTES, check_document_size, pick_tagged};
use super::seekable_tar::SeekableTar;
use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::digest::Digest;
use crate::error::Error;
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;

/// The annotation that tags an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Deserialize)]
pub(crate) struct LayoutIndex {
    #[serde(default)]
    pub(crate) manifests: Vec<LayoutEntry>,
}

#[derive(Deserialize)]
pub(crate) struct LayoutEntry {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    pub(crate) digest: String,
    size: Option<u64>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// Parses a layout's `index.json`; `what` names the layout in errors.
pub(crate) fn parse_index(what: &str, raw: &[u8]) -> Result<LayoutIndex, Error> {
    crate::go_json::from_slice(raw)
        .map_err(|e| Error::corrupt(format!("{what}: index.json is invalid")).with_source(e))
}

/// The entry of `index.json` a tag names (its `ref.name` annotation).
pub(crate) fn pick_entry<'i>(
    what: &str,
    index: &'i LayoutIndex,
    tag: Option<&str>,
) -> Result<&'i LayoutEntry, Error> {
    pick_tagged(
        what,
        LocalIndex {
            noun: "layout",
            hint: ":TAG",
        },
        &index.manifests,
        |m| {
            m.annotations
                .get(REF_NAME)
                .map(String::as_str)
                .into_iter()
                .collect()
        },
        tag,
        |tag, wanted| tag == wanted,
    )
}

pub struct OciLayoutSource {
    reference: ImageRef,
    root: Root,
    store: Box<dyn BlobStore>,
}

/// Where the image (or index) to measure is named.
pub enum Root {
    /// `index.json`, and the tag that picks an entry of it.
    Index { tag: Option<String> },
    /// `manifest.json`, the manifest or index itself, as skopeo's `dir:`
    /// keeps it (see [`super::dir`]).
    Manifest,
}

/// Opens what an `oci-archive:` reference names: the layout in the tar, or,
/// when its `index.json` lists no image and a `manifest.json` is there,
/// the `docker save` format beside it.
pub fn open_archive(reference: ImageRef) -> Result<Arc<dyn ImageSource>, Error> {
    let ImageRef::OciArchive { path, tag } = &reference else {
        return Err(Error::usage(format!("{reference}: not an oci-archive")));
    };
    let tag = tag.clone();
    let tar = SeekableTar::open(path.clone()).map_err(|e| e.context(&reference))?;
    let lists_nothing = BlobStore::read(&tar, "index.json", MAX_DOCUMENT_BYTES)
        .ok()
        .and_then(|raw| parse_index("", &raw).ok())
        .is_some_and(|index| index.manifests.is_empty());
    if lists_nothing && tar.contains("manifest.json") {
        return Ok(Arc::new(DockerArchiveSource::with_tar(
            reference, tag, true, tar,
        )));
    }
    let root = Root::Index { tag };
    Ok(Arc::new(OciLayoutSource::new(
        reference,
        root,
        Box::new(tar),
    )?))
}

impl OciLayoutSource {
    /// Opens the layout directory an `oci:` reference names.
    pub fn open(reference: ImageRef) -> Result<Self, Error> {
        let ImageRef::Layout { path, tag } = &reference else {
            return Err(Error::usage(format!(
                "{reference}: not an OCI layout reference"
            )));
        };
        let store = Box::new(DirStore::new(path));
        let root = Root::Index { tag: tag.clone() };
        Self::new(reference, root, store)
    }

    /// A layout kept in any store, named by `reference` in reports and
    /// messages, whose images `root` names.
    pub fn new(reference: ImageRef, root: Root, store: Box<dyn BlobStore>) -> Result<Self, Error> {
        let file = match root {
            Root::Index { .. } => "index.json",
            Root::Manifest => "manifest.json",
        };
        if !store.contains(file) {
            let what = match reference {
                ImageRef::OciArchive { .. } => "not an OCI archive",
                ImageRef::Dir { .. } => "not a dir: image",
                _ => "not an OCI image layout",
            };
            let hint = match root {
                Root::Manifest if store.contains("index.json") => {
                    " (it has index.json: an OCI layout, read it as oci:)"
                }
                _ => "",
            };
            return Err(Error::corrupt(format!(
                "{reference}: {what} (no {file}){hint}"
            )));
        }
        Ok(OciLayoutSource {
            reference,
            root,
            store,
        })
    }

    /// Errors of the store, named after the reference.
    fn named(&self, e: Error) -> Error {
        e.context(&self.reference)
    }
}

#[async_trait]
impl ManifestStore for OciLayoutSource {
    async fn root(&self) -> Result<Blob, Error> {
        let tag = match &self.root {
            Root::Index { tag } => tag.as_deref(),
            // The manifest as it was served, so the digest of its bytes is
            // the one its registry named it by.
            Root::Manifest => {
                let bytes = self
                    .store
                    .read("manifest.json", MAX_DOCUMENT_BYTES)
                    .map_err(|e| self.named(e))?;
                return Ok(Blob {
                    digest: Digest::sha256(&bytes),
                    bytes: bytes.into(),
                    media_type: None,
                });
            }
        };
        let what = self.reference.to_string();
        let raw = self
            .store
            .read("index.json", MAX_DOCUMENT_BYTES)
            .map_err(|e| self.named(e))?;
        let index = parse_index(&what, &raw)?;
        let entry = pick_entry(&what, &index, tag)?;
        let digest = Digest::parse(&entry.digest).map_err(|e| self.named(e))?;
        let noun = format!("manifest {digest}");
        if let Some(size) = entry.size {
            check_document_size(&what, &format!("{noun} (by index.json)"), size)?;
        }
        let blob = self.fetch(&digest, &entry.media_type, true).await?;
        let len = blob.bytes.len() as u64;
        match entry.size {
            Some(size) if size != len => Err(Error::corrupt(format!(
                "{what}: {noun}: index.json says {size} bytes, the layout has {len}"
            ))),
            _ => Ok(blob),
        }
    }

    async fn fetch(
        &self,
        digest: &Digest,
        media_type: &str,
        _is_manifest: bool,
    ) -> Result<Blob, Error> {
        let bytes = self
            .store
            .read(&digest.blob_path(), MAX_DOCUMENT_BYTES)
            .map_err(|e| self.named(e))?;
        Ok(Blob {
            bytes: bytes.into(),
            digest: digest.clone(),
            media_type: (!media_type.is_empty()).then(|| media_type.to_string()),
        })
    }
}

#[async_trait]
impl ImageSource for OciLayoutSource {
    fn reference(&self) -> String {
        self.reference.to_string()
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        super::resolve(self, platforms).await
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let path = Digest::parse(&layer.digest)?.blob_path();
        let (reader, _) = self.store.open(&path).map_err(|e| self.named(e))?;
        // One byte past the descriptor's size, so that a longer blob is
        // caught as such, and no more is ever read.
        Ok(Box::new(reader.take(layer.size.saturating_add(1))))
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let path = Digest::parse(&layer.digest)?.blob_path();
        self.store
            .read_range(&path, offset, len)
            .map(Some)
            .map_err(|e| self.named(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_layer_stream_ends_one_byte_past_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("index.json"), b"{}").unwrap();
        let blob = vec![7u8; 10_000];
        let digest = Digest::sha256(&blob);
        std::fs::write(dir.path().join(digest.blob_path()), &blob).unwrap();
        let reference = ImageRef::Layout {
            path: dir.path().into(),
            tag: None,
        };
        let root = Root::Index { tag: None };
        let store = Box::new(DirStore::new(dir.path()));
        let source = OciLayoutSource::new(reference, root, store).unwrap();
        let layer = LayerDescriptor {
            digest: digest.to_string(),
            size: 100,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            urls: Vec::new(),
        };
        let mut read = Vec::new();
        let mut r = source.open_layer(&layer).await.unwrap();
        r.read_to_end(&mut read).unwrap();
        assert_eq!(read.len(), 101);
    }
}
