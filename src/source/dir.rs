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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::platform::PlatformSelector;

    /// A `dir:` copy of a one-layer image, with the blobs named as
    /// `version` says (`1.1`: `<hex>`, `1.0`: `<hex>.tar`).
    fn dir_image(dir: &std::path::Path, version: &str) -> (Digest, Vec<u8>) {
        let layer = b"not really a tar, only read back".to_vec();
        let layer_digest = Digest::sha256(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "os": "linux", "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}
        }))
        .unwrap();
        let config_digest = Digest::sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": super::super::manifest::OCI_MANIFEST,
            "config": {"mediaType": super::super::manifest::OCI_CONFIG,
                       "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest.to_string(), "size": layer.len()}]
        }))
        .unwrap();
        let name = |d: &Digest| match version {
            "1.0" => format!("{}.tar", d.hex()),
            _ => d.hex().to_string(),
        };
        std::fs::write(
            dir.join("version"),
            format!("Directory Transport Version: {version}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
        std::fs::write(dir.join(name(&config_digest)), &config).unwrap();
        std::fs::write(dir.join(name(&layer_digest)), &layer).unwrap();
        (Digest::sha256(&manifest), layer)
    }

    #[tokio::test]
    async fn both_versions_of_the_format_are_read() {
        for version in ["1.0", "1.1"] {
            let tmp = tempfile::tempdir().unwrap();
            let (manifest, layer) = dir_image(tmp.path(), version);
            let reference = ImageRef::Dir {
                path: tmp.path().into(),
            };
            let source = DirSource::open(reference).unwrap();
            let images = source.resolve(&PlatformSelector::default()).await.unwrap();
            assert_eq!(images[0].digest, manifest.to_string(), "{version}");
            let mut read = Vec::new();
            let mut r = source.open_layer(&images[0].layers[0]).await.unwrap();
            r.read_to_end(&mut read).unwrap();
            assert_eq!(read, layer, "{version}");
        }
    }

    #[test]
    fn a_directory_without_manifest_json_is_refused_with_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("index.json"), b"{}").unwrap();
        let reference = ImageRef::Dir {
            path: tmp.path().into(),
        };
        let e = DirSource::open(reference).err().unwrap();
        assert!(e.to_string().contains("read it as oci:"), "{e}");
    }
}
