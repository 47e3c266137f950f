//! `docker-archive:FILE[:REF]`: the output of `docker save`/`podman save`.
//! It has no manifests: `manifest.json` lists each image's config and layer
//! members, and the layers are read in place from the indexed tar. Config
//! parsing, the platform check and picking an image by tag are the shared
//! ones of [`super::manifest`].

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;

use super::manifest::{
    ImageConfig, LocalIndex, MAX_DOCUMENT_BYTES, check_diff_ids, check_single_platform, pick_tagged,
};
use super::tar_index::{IndexedTar, normalize_member};
use super::{ImageSource, LayerDescriptor, ResolvedImage};
use crate::digest::Digest;
use crate::error::Error;
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;

/// `docker save` writes layers as plain tars.
const LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar";

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Parses an archive's `manifest.json`; `what` names the archive in errors.
fn parse_manifest_json(what: &str, raw: &[u8]) -> Result<Vec<DockerManifestEntry>, Error> {
    serde_json::from_slice(raw)
        .map_err(|e| Error::corrupt(format!("{what}: manifest.json is invalid")).with_source(e))
}

/// What the fuzz targets feed a docker-archive's `manifest.json` parser:
/// it must answer, never panic.
#[doc(hidden)]
pub fn parse_archive_manifest(raw: &[u8]) -> Result<usize, Error> {
    parse_manifest_json("fuzz", raw).map(|m| m.len())
}

pub struct DockerArchiveSource {
    reference: ImageRef,
    /// The image named in the reference (`repo:tag`), if any.
    wanted: Option<String>,
    tar: IndexedTar<PathBuf>,
    /// Layer digest → archive member, filled by `resolve`.
    members: Mutex<HashMap<String, String>>,
}

impl DockerArchiveSource {
    pub fn open(reference: ImageRef) -> Result<Self, Error> {
        let ImageRef::DockerArchive {
            path,
            reference: wanted,
        } = &reference
        else {
            return Err(Error::usage(format!(
                "{reference}: not a docker-archive reference"
            )));
        };
        let tar = IndexedTar::open(path.clone()).map_err(|e| e.context(&reference))?;
        if tar.locate("manifest.json").is_none() {
            return Err(Error::corrupt(format!(
                "{reference}: not a docker-archive (no manifest.json; is it an oci-archive?)"
            )));
        }
        Ok(DockerArchiveSource {
            wanted: wanted.clone(),
            reference,
            tar,
            members: Default::default(),
        })
    }

    /// The archive member holding a layer (recorded by `resolve`).
    fn member_of(&self, layer: &LayerDescriptor) -> Result<String, Error> {
        self.members
            .lock()
            // Entries are inserted whole: a poisoned lock still holds a
            // valid map.
            .unwrap_or_else(|p| p.into_inner())
            .get(&layer.digest)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "{}: unknown layer {}",
                    self.reference, layer.digest
                ))
            })
    }

    fn read(&self, member: &str) -> Result<Vec<u8>, Error> {
        super::blob_store::BlobStore::read(&self.tar, member, MAX_DOCUMENT_BYTES)
            .map_err(|e| e.context(&self.reference))
    }

    /// The layers of an image, each named by digest: a layer stored under
    /// `blobs/ALG/HEX` (newer `docker save`) by that, a legacy `ID/layer.tar`
    /// by its diff_id, since the layers are stored uncompressed.
    fn layers(
        &self,
        entry: &DockerManifestEntry,
        diff_ids: &[String],
    ) -> Result<Vec<LayerDescriptor>, Error> {
        let what = &self.reference;
        let mut layers = Vec::with_capacity(entry.layers.len());
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        for (i, member) in entry.layers.iter().enumerate() {
            let stored = self.tar.locate(member).ok_or_else(|| {
                Error::not_found(format!("{what}: archive has no layer {member}"))
            })?;
            let digest = match Digest::from_blob_path(&normalize_member(member)) {
                Some(d) => d.to_string(),
                None => diff_ids.get(i).cloned().ok_or_else(|| {
                    Error::corrupt(format!(
                        "{what}: config lists fewer diff_ids than the archive has layers"
                    ))
                })?,
            };
            members.insert(digest.clone(), member.clone());
            layers.push(LayerDescriptor {
                digest,
                size: stored.size,
                media_type: LAYER_MEDIA_TYPE.to_string(),
                urls: Vec::new(),
            });
        }
        Ok(layers)
    }
}

/// `alpine:3` and `docker.io/library/alpine:3` name the same image.
fn same_repo_tag(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        s.trim_start_matches("docker.io/")
            .trim_start_matches("library/")
            .to_string()
    };
    strip(a) == strip(b)
}

#[async_trait]
impl ImageSource for DockerArchiveSource {
    fn reference(&self) -> String {
        self.reference.to_string()
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        let what = self.reference.to_string();
        let raw = self.read("manifest.json")?;
        let entries = parse_manifest_json(&what, &raw)?;
        let entry = pick_tagged(
            &what,
            LocalIndex {
                noun: "archive",
                hint: ":REPO:TAG",
            },
            &entries,
            |e| e.repo_tags.iter().flatten().map(String::as_str).collect(),
            self.wanted.as_deref(),
            same_repo_tag,
        )?;
        let config = self.read(&entry.config)?;
        // The image ID: docker-archive has no manifest to take a digest of.
        let config_digest = Digest::sha256(&config);
        let ImageConfig {
            platform,
            diff_ids,
            created_by,
            provenance,
            locale_env,
        } = ImageConfig::parse(&what, &config_digest, &config)?;
        check_single_platform(&what, &platform, platforms)?;
        check_diff_ids(&what, &config_digest, &diff_ids, entry.layers.len())?;
        let layers = self.layers(entry, &diff_ids)?;
        Ok(vec![ResolvedImage {
            reference: what,
            digest: config_digest.to_string(),
            index_digest: None,
            media_type: super::manifest::DOCKER_MANIFEST.to_string(),
            platform,
            manifest_bytes: 0,
            config_digest: config_digest.to_string(),
            config_bytes: config.len() as u64,
            diff_ids,
            created_by,
            locale_env,
            layers,
            provenance,
        }])
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let member = self.member_of(layer)?;
        let (reader, _) = self
            .tar
            .open_member(&member)
            .map_err(|e| e.context(&self.reference))?;
        Ok(reader)
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let member = self.member_of(layer)?;
        self.tar
            .read_member_range(&member, offset, len)
            .map(Some)
            .map_err(|e| e.context(&self.reference))
    }
}
