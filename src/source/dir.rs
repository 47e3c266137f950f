//! `dir:PATH`: the directory that skopeo's, Podman's and buildah's `dir`
//! transport writes (`skopeo copy … dir:PATH`, `podman save --format
//! docker-dir`). It holds the image's manifest as `manifest.json`, as the
//! source served it, and every blob (config and layers) as a file named by
//! its digest: `<hex>` since the format's version 1.1, `<hex>.tar` before.
//! A copy of a list (`skopeo copy --all`) keeps the list as `manifest.json`
//! and each image's manifest as `<hex>.manifest.json`. A `version` file
//! says which; both are read.
//!
//! Manifests are content-addressed blobs here as in an OCI layout, so the
//! layout reader serves this transport too ([`OciLayoutSource`] with its
//! root in `manifest.json`): the index walk, the platform choice and the
//! digest checks are the shared ones. This module only says where a blob's
//! file is. What a blob holds is what the source held: a copy from a
//! registry keeps its compressed blobs (exact); `podman save --format
//! docker-dir` writes layers uncompressed (while its manifest calls them
//! gzip), whose pushed size the measurer estimates.

use std::io::Read;

use super::blob_store::{BlobStore, DirStore};
use super::layout::{OciLayoutSource, Root};
use crate::digest::{Algorithm, Digest};
use crate::error::Error;
use crate::source::reference::ImageRef;

/// Opens the directory a `dir:` reference names.
pub fn open(reference: ImageRef) -> Result<OciLayoutSource, Error> {
    let ImageRef::Dir { path } = &reference else {
        return Err(Error::usage(format!("{reference}: not a dir reference")));
    };
    let store = Box::new(DirTransport(DirStore::new(path)));
    OciLayoutSource::new(reference, Root::Manifest, store)
}

/// The directory, with the layout reader's blob paths (`blobs/ALG/HEX`)
/// mapped onto the transport's file names; other paths are its own files.
struct DirTransport(DirStore);

impl DirTransport {
    /// The file holding a blob or an image manifest of a copied list, under
    /// either version's name; `path` itself when it is not a blob path.
    fn file(&self, path: &str) -> String {
        let Some(digest) = Digest::from_blob_path(path) else {
            return path.to_string();
        };
        let hex = digest.hex();
        let names = match digest.algorithm() {
            Algorithm::Sha256 => [
                hex.to_string(),
                format!("{hex}.tar"),
                format!("{hex}.manifest.json"),
            ],
            other => [
                format!("{}-{hex}", other.as_str()),
                hex.to_string(),
                format!("{hex}.manifest.json"),
            ],
        };
        names
            .into_iter()
            .find(|n| self.0.contains(n))
            .unwrap_or_else(|| hex.to_string())
    }
}

impl BlobStore for DirTransport {
    fn contains(&self, path: &str) -> bool {
        self.0.contains(&self.file(path))
    }

    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        self.0.open(&self.file(path))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        self.0.read_range(&self.file(path), offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ImageSource;
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
            let source = open(reference).unwrap();
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
        let e = open(reference).err().unwrap();
        assert!(e.to_string().contains("read it as oci:"), "{e}");
    }
}
