//! `docker-archive:FILE[:REF]`: the output of `docker save`, `podman
//! save`, `skopeo copy … docker-archive:`, `crane pull` and the tools that
//! share go-containerregistry's tarball format. It has no manifests:
//! `manifest.json` lists each image's config and layer members (read by
//! [`super::docker_save`], the format's one reader), and the layers are read
//! in place from the indexed tar. Config parsing, the platform check and
//! picking an image by tag are the shared ones of [`super::manifest`].
//!
//! A member holding an uncompressed tar is what `docker save` wrote, not
//! what a registry would serve: the measurer estimates what a push would
//! upload (see [`ImageSource::serves_pushed_blobs`]). A member holding a
//! compressed blob (the registry's, as crane copied it, or one the tool
//! compressed itself) is what a push of the archive uploads: its size is
//! exact.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use super::docker_save::{SavedConfig, SavedImage, layer_digest, parse_manifest_json, sniff_layer};
use super::manifest::{LocalIndex, MAX_DOCUMENT_BYTES, check_single_platform, pick_tagged};
use super::seekable_tar::SeekableTar;
use super::{ImageSource, LayerDescriptor, ResolvedImage};
use crate::error::Error;
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;
use crate::tarstream::normalize_member;

pub struct DockerArchiveSource {
    reference: ImageRef,
    /// The image named in the reference, if any.
    wanted: Option<String>,
    /// Whether `wanted` is only a tag (`v1` for `app:v1`): a Docker 25
    /// archive read as `oci-archive:FILE:TAG`.
    tag_only: bool,
    tar: SeekableTar<PathBuf>,
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
        let tar = SeekableTar::open(path.clone()).map_err(|e| e.context(&reference))?;
        if tar.locate("manifest.json").is_none() {
            return Err(Error::corrupt(format!(
                "{reference}: not a docker-archive (no manifest.json; is it an oci-archive?)"
            )));
        }
        let wanted = wanted.clone();
        Ok(Self::with_tar(reference, wanted, false, tar))
    }

    /// The `manifest.json` of an archive already indexed, named by
    /// `reference` in reports; `wanted` picks the image by `REPO:TAG`, or by
    /// tag alone when `tag_only`.
    pub fn with_tar(
        reference: ImageRef,
        wanted: Option<String>,
        tag_only: bool,
        tar: SeekableTar<PathBuf>,
    ) -> Self {
        DockerArchiveSource {
            reference,
            wanted,
            tag_only,
            tar,
            members: Default::default(),
        }
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

    /// The layers of an image, each named by the digest of what its member
    /// holds (see [`layer_digest`]) and typed by its first bytes.
    async fn layers(
        &self,
        entry: &SavedImage,
        diff_ids: &[String],
    ) -> Result<Vec<LayerDescriptor>, Error> {
        let what = &self.reference;
        let mut layers = Vec::with_capacity(entry.layers.len());
        // A member listed twice is hashed once.
        let mut hashed: HashMap<String, String> = HashMap::new();
        for (i, listed) in entry.layers.iter().enumerate() {
            let member = normalize_member(listed);
            let stored = self.tar.locate(&member).ok_or_else(|| {
                Error::not_found(format!("{what}: archive has no layer {listed}"))
            })?;
            let head = self
                .tar
                .read_member_range(&member, 0, 512)
                .map_err(|e| e.context(what))?;
            let media_type = sniff_layer(&head, stored.size).ok_or_else(|| {
                Error::corrupt(format!(
                    "{what}: layer {listed} is neither a tar nor a gzip or zstd stream"
                ))
            })?;
            let named = layer_digest(&member, media_type, diff_ids.get(i).map(String::as_str));
            let digest = match named {
                Some(d) => d,
                None => match hashed.get(&member) {
                    Some(d) => d.clone(),
                    None => {
                        let d = self.hash_member(&member).await?;
                        hashed.insert(member.clone(), d.clone());
                        d
                    }
                },
            };
            self.members
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(digest.clone(), member);
            layers.push(LayerDescriptor {
                digest,
                size: stored.size,
                media_type: media_type.to_string(),
                urls: Vec::new(),
            });
        }
        Ok(layers)
    }

    /// The digest of a compressed member whose name does not say it: read
    /// once more, since a layer is known by its blob's digest. Off the
    /// runtime's threads, so that the run's deadline still holds.
    async fn hash_member(&self, member: &str) -> Result<String, Error> {
        let (mut reader, _) = self
            .tar
            .open_member(member)
            .map_err(|e| e.context(&self.reference))?;
        let hashed = tokio::task::spawn_blocking(move || {
            let mut hasher = crate::digest::Algorithm::Sha256.hasher();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return Ok(hasher.finish().to_string()),
                    Ok(n) => hasher.update(&buf[..n]),
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .map_err(|e| {
            Error::corrupt(format!("{}: hashing {member} crashed", self.reference)).with_source(e)
        })?;
        hashed.map_err(|e| Error::io(member, e).context(&self.reference))
    }

    /// Whether a tag of the archive names the image asked for.
    fn names(&self, tag: &str, wanted: &str) -> bool {
        if self.tag_only {
            tag.rsplit_once(':').is_some_and(|(_, t)| t == wanted)
        } else {
            same_repo_tag(tag, wanted)
        }
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
                hint: if self.tag_only { ":TAG" } else { ":REPO:TAG" },
            },
            &entries,
            |e| e.tags().collect(),
            self.wanted.as_deref(),
            |tag, wanted| self.names(tag, wanted),
        )?;
        let config = SavedConfig::read(&what, &self.read(&entry.config)?, entry.layers.len())?;
        check_single_platform(&what, &config.parsed.platform, platforms)?;
        let layers = self.layers(entry, &config.parsed.diff_ids).await?;
        Ok(vec![config.into_image(&what, layers)])
    }

    fn checks_diff_ids(&self) -> bool {
        true
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
