//! `dir:PATH`: the directory that skopeo's, Podman's and buildah's `dir`
//! transport writes (`skopeo copy … dir:PATH`, `podman save --format
//! docker-dir`). It holds the image's manifest as `manifest.json`, as the
//! source served it, and every blob (config and layers) as a file named by
//! its digest: `<hex>` since the format's version 1.1, `<hex>.tar` before.
//! A copy of a list (`skopeo copy --all`) keeps the list as `manifest.json`
//! and each image's manifest as `<hex>.manifest.json`. A `version` file
//! says which; both are read.
//!
//! Manifests are content-addressed blobs here as in a registry, so the
//! index walk, the platform choice and the digest checks are the shared
//! ones of [`super::manifest::resolve`]; this module only finds files.
//! What a blob holds is what the source held: a copy from a registry keeps
//! its compressed blobs (exact); `podman save --format docker-dir` writes
//! layers uncompressed, whose pushed size the measurer estimates.

use std::io::Read;

use async_trait::async_trait;

use super::blob_store::{BlobStore, DirStore};
use super::manifest::MAX_DOCUMENT_BYTES;
use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::digest::{Algorithm, Digest};
use crate::error::Error;
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;

pub struct DirSource {
    reference: ImageRef,
    store: DirStore,
}

impl DirSource {
    pub fn open(reference: ImageRef) -> Result<Self, Error> {
        let ImageRef::Dir { path } = &reference else {
            return Err(Error::usage(format!("{reference}: not a dir reference")));
        };
        let store = DirStore::new(path);
        if !store.contains("manifest.json") {
            let hint = if store.contains("index.json") {
                " (it has index.json: an OCI layout, read it as oci:)"
            } else {
                ""
            };
            return Err(Error::corrupt(format!(
                "{reference}: not a dir: image (no manifest.json){hint}"
            )));
        }
        Ok(DirSource { reference, store })
    }

    /// The file holding a blob, under either version's name.
    fn blob_file(&self, digest: &Digest) -> Result<String, Error> {
        let hex = digest.hex();
        let names = match digest.algorithm() {
            Algorithm::Sha256 => vec![hex.to_string(), format!("{hex}.tar")],
            other => vec![format!("{}-{hex}", other.as_str()), hex.to_string()],
        };
        names
            .iter()
            .find(|n| self.store.contains(n))
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "{}: no blob {digest} in the directory",
                    self.reference
                ))
            })
    }

    fn read(&self, file: &str) -> Result<Vec<u8>, Error> {
        self.store
            .read(file, MAX_DOCUMENT_BYTES)
            .map_err(|e| e.context(&self.reference))
    }
}

#[async_trait]
impl ManifestStore for DirSource {
    /// `manifest.json`, named by the digest of its bytes: the directory
    /// keeps the manifest exactly as it was served, so that is the digest
    /// the registry named it by.
    async fn root(&self) -> Result<Blob, Error> {
        let bytes = self.read("manifest.json")?;
        Ok(Blob {
            digest: Digest::sha256(&bytes),
            bytes: bytes.into(),
            media_type: None,
        })
    }

    async fn fetch(
        &self,
        digest: &Digest,
        media_type: &str,
        is_manifest: bool,
    ) -> Result<Blob, Error> {
        let file = if is_manifest {
            format!("{}.manifest.json", digest.hex())
        } else {
            self.blob_file(digest)?
        };
        Ok(Blob {
            bytes: self.read(&file)?.into(),
            digest: digest.clone(),
            media_type: (!media_type.is_empty()).then(|| media_type.to_string()),
        })
    }
}

#[async_trait]
impl ImageSource for DirSource {
    fn reference(&self) -> String {
        self.reference.to_string()
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        super::resolve(self, platforms).await
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let file = self.blob_file(&Digest::parse(&layer.digest)?)?;
        let (reader, _) = self
            .store
            .open(&file)
            .map_err(|e| e.context(&self.reference))?;
        // One byte past the descriptor's size: a longer blob is caught as
        // such, and no more is read.
        Ok(Box::new(reader.take(layer.size.saturating_add(1))))
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let file = self.blob_file(&Digest::parse(&layer.digest)?)?;
        self.store
            .read_range(&file, offset, len)
            .map(Some)
            .map_err(|e| e.context(&self.reference))
    }
}
