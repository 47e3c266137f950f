//! `oci:PATH[:TAG]`: an OCI image layout directory (what `skopeo copy
//! oci:...`, `umoci` and `buildctl --output type=oci` write).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;

use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::error::Error;
use crate::source::platform::PlatformSelector;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Deserialize)]
pub(crate) struct LayoutIndex {
    #[serde(default)]
    pub manifests: Vec<LayoutEntry>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct LayoutEntry {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
}

/// Picks the `index.json` entry a tag names; without a tag, the only entry.
pub(crate) fn pick_entry(
    what: &str,
    index: &LayoutIndex,
    tag: Option<&str>,
) -> Result<LayoutEntry, Error> {
    let tags: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|m| m.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    match tag {
        Some(t) => index
            .manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(t))
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "{what}: no image tagged {t:?}; tags present: {}",
                    if tags.is_empty() {
                        "none".to_string()
                    } else {
                        tags.join(", ")
                    }
                ))
            }),
        None => match index.manifests.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Error::measure(format!(
                "{what}: the layout's index.json lists no images"
            ))),
            _ => Err(Error::usage(format!(
                "{what}: the layout holds {} images; name one with :TAG (tags: {})",
                index.manifests.len(),
                tags.join(", ")
            ))),
        },
    }
}

/// `sha256:<64 hex>` and nothing else, so a digest can never name a path
/// outside `blobs/`.
pub(crate) fn blob_relpath(digest: &str) -> Result<PathBuf, Error> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| Error::measure(format!("invalid digest {digest:?}")))?;
    let ok = match alg {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => false,
    } && hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(Error::measure(format!("invalid digest {digest:?}")));
    }
    Ok(Path::new("blobs").join(alg).join(hex))
}

pub struct LayoutSource {
    dir: PathBuf,
    tag: Option<String>,
}

impl LayoutSource {
    pub fn open(dir: &Path, tag: Option<String>) -> Result<Self, Error> {
        if !dir.join("index.json").is_file() {
            return Err(Error::measure(format!(
                "oci:{}: not an OCI image layout (no index.json)",
                dir.display()
            )));
        }
        Ok(LayoutSource {
            dir: dir.to_path_buf(),
            tag,
        })
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.dir.join(blob_relpath(digest)?);
        std::fs::read(&path).map_err(|e| {
            Error::measure(format!(
                "{}: blob {digest}: {e}",
                ManifestStore::reference(self)
            ))
        })
    }
}

#[async_trait]
impl ManifestStore for LayoutSource {
    fn reference(&self) -> String {
        let mut s = format!("oci:{}", self.dir.display());
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        s
    }

    async fn root(&self) -> Result<Blob, Error> {
        let what = ManifestStore::reference(self);
        let raw = std::fs::read(self.dir.join("index.json"))
            .map_err(|e| Error::measure(format!("{what}: index.json: {e}")))?;
        let index: LayoutIndex = serde_json::from_slice(&raw)
            .map_err(|e| Error::measure(format!("{what}: index.json is invalid: {e}")))?;
        let entry = pick_entry(&what, &index, self.tag.as_deref())?;
        self.fetch(&entry.digest, &entry.media_type, true).await
    }

    async fn fetch(
        &self,
        digest: &str,
        media_type: &str,
        _is_manifest: bool,
    ) -> Result<Blob, Error> {
        let bytes = self.read_blob(digest)?;
        super::verify_digest(
            &format!("{}: blob", ManifestStore::reference(self)),
            digest,
            &bytes,
        )?;
        Ok(Blob {
            bytes: bytes.into(),
            digest: digest.to_string(),
            media_type: (!media_type.is_empty()).then(|| media_type.to_string()),
        })
    }
}

#[async_trait]
impl ImageSource for LayoutSource {
    fn reference(&self) -> String {
        ManifestStore::reference(self)
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        super::resolve(self, platforms).await
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let path = self.dir.join(blob_relpath(&layer.digest)?);
        let f =
            File::open(&path).map_err(|e| Error::measure(format!("blob {}: {e}", layer.digest)))?;
        Ok(Box::new(f))
    }
}
