//! `oci-archive:FILE[:TAG]` (a tar of an OCI layout) and
//! `docker-archive:FILE[:REF]` (the output of `docker save`/`podman save`).
//!
//! The outer tar is indexed once, by seeking over member contents, so a
//! layer blob is read straight from its offset in the archive: nothing is
//! extracted to disk.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;

use super::layout::{LayoutIndex, blob_relpath, pick_entry};
use super::{Blob, ImageSource, LayerDescriptor, ManifestStore, ResolvedImage};
use crate::error::Error;
use crate::source::platform::{Platform, PlatformSelector};

/// Member name → (offset of its content, length).
struct TarIndex {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
    /// Symlink member → target member: the legacy `docker save` format
    /// links a layer's `layer.tar` to the first copy of identical layers.
    links: HashMap<String, String>,
}

impl TarIndex {
    fn build(path: &Path, what: &str) -> Result<TarIndex, Error> {
        let mut file = File::open(path).map_err(|e| Error::measure(format!("{what}: {e}")))?;
        let mut magic = [0u8; 4];
        let n = file
            .read(&mut magic)
            .map_err(|e| Error::measure(format!("{what}: {e}")))?;
        if magic[..n].starts_with(&[0x1f, 0x8b])
            || magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        {
            return Err(Error::measure(format!(
                "{what}: the archive is compressed; decompress it first (e.g. gunzip), as skopeo expects a plain tar"
            )));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::measure(format!("{what}: {e}")))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| Error::measure(format!("{what}: not a tar archive: {e}")))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::measure(format!("{what}: corrupt tar archive: {e}")))?;
            let name = normalize_member(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                if let Some(target) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).to_string();
                    // Symlink targets are relative to the link's directory;
                    // hard link targets to the archive root.
                    let resolved = match (kind.is_symlink(), name.rsplit_once('/')) {
                        (true, Some((dir, _))) if !target.starts_with('/') => {
                            resolve_relative(dir, &target)
                        }
                        _ => normalize_member(&target),
                    };
                    links.insert(name, resolved);
                }
            } else if kind.is_file() {
                members.insert(name, (entry.raw_file_position(), entry.size()));
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            links,
        })
    }

    /// Content offset and length of a member, following links (bounded, so
    /// a link loop is an error, not a hang).
    fn locate(&self, member: &str) -> Option<(u64, u64)> {
        let mut name = normalize_member(member);
        for _ in 0..16 {
            if let Some(&m) = self.members.get(&name) {
                return Some(m);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    fn open(&self, member: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        let &(offset, size) = self.members.get(&normalize_member(member)).ok_or_else(|| {
            Error::measure(format!(
                "{}: archive has no member {member}",
                self.path.display()
            ))
        })?;
        let mut f = File::open(&self.path)
            .map_err(|e| Error::measure(format!("{}: {e}", self.path.display())))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::measure(format!("{}: {e}", self.path.display())))?;
        Ok((Box::new(f.take(size)), size))
    }

    fn read_range(&self, member: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let (base, size) = self.locate(member).ok_or_else(|| {
            Error::measure(format!(
                "{}: archive has no member {member}",
                self.path.display()
            ))
        })?;
        super::read_file_range(
            &self.path,
            base,
            offset,
            len.min(size.saturating_sub(offset)),
        )
        .map_err(|e| Error::measure(format!("{}: {member}: {e}", self.path.display())))
    }

    fn read(&self, member: &str) -> Result<Vec<u8>, Error> {
        let (mut r, size) = self.open(member)?;
        // Manifests and configs only: cap what we are willing to hold.
        if size > 64 * 1024 * 1024 {
            return Err(Error::measure(format!(
                "{member}: unexpectedly large ({size} bytes)"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf)
            .map_err(|e| Error::measure(format!("{}: {member}: {e}", self.path.display())))?;
        Ok(buf)
    }
}

/// `a/b` + `../c/d` → `a/c/d`.
fn resolve_relative(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn normalize_member(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

pub struct OciArchiveSource {
    index: TarIndex,
    tag: Option<String>,
}

impl OciArchiveSource {
    pub fn open(path: &Path, tag: Option<String>) -> Result<Self, Error> {
        let what = format!("oci-archive:{}", path.display());
        let index = TarIndex::build(path, &what)?;
        if index.locate("index.json").is_none() {
            return Err(Error::measure(format!(
                "{what}: not an OCI archive (no index.json)"
            )));
        }
        Ok(OciArchiveSource { index, tag })
    }
}

#[async_trait]
impl ManifestStore for OciArchiveSource {
    fn reference(&self) -> String {
        let mut s = format!("oci-archive:{}", self.index.path.display());
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        s
    }

    async fn root(&self) -> Result<Blob, Error> {
        let what = ManifestStore::reference(self);
        let raw = self.index.read("index.json")?;
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
        let rel = blob_relpath(digest)?;
        let bytes = self.index.read(&rel.to_string_lossy())?;
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
impl ImageSource for OciArchiveSource {
    fn reference(&self) -> String {
        ManifestStore::reference(self)
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        super::resolve(self, platforms).await
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let rel = blob_relpath(&layer.digest)?;
        Ok(self.index.open(&rel.to_string_lossy())?.0)
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let rel = blob_relpath(&layer.digest)?;
        self.index
            .read_range(&rel.to_string_lossy(), offset, len)
            .map(Some)
    }
}

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct DockerConfigProbe {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    variant: Option<String>,
    rootfs: Option<DockerRootFs>,
}

#[derive(Deserialize)]
struct DockerRootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

pub struct DockerArchiveSource {
    index: TarIndex,
    reference: Option<String>,
    /// Layer digest → archive member, filled by `resolve`.
    members: std::sync::Mutex<HashMap<String, String>>,
}

impl DockerArchiveSource {
    pub fn open(path: &Path, reference: Option<String>) -> Result<Self, Error> {
        let what = format!("docker-archive:{}", path.display());
        let index = TarIndex::build(path, &what)?;
        if index.locate("manifest.json").is_none() {
            return Err(Error::measure(format!(
                "{what}: not a docker-archive (no manifest.json; is it an oci-archive?)"
            )));
        }
        Ok(DockerArchiveSource {
            index,
            reference,
            members: Default::default(),
        })
    }

    /// The archive member holding a layer (recorded by `resolve`).
    fn member_of(&self, layer: &LayerDescriptor) -> Result<String, Error> {
        self.members
            .lock()
            .expect("members lock")
            .get(&layer.digest)
            .cloned()
            .ok_or_else(|| {
                Error::measure(format!("{}: unknown layer {}", self.what(), layer.digest))
            })
    }

    fn what(&self) -> String {
        let mut s = format!("docker-archive:{}", self.index.path.display());
        if let Some(r) = &self.reference {
            s.push(':');
            s.push_str(r);
        }
        s
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
        self.what()
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        let what = self.what();
        let raw = self.index.read("manifest.json")?;
        let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&raw)
            .map_err(|e| Error::measure(format!("{what}: manifest.json is invalid: {e}")))?;
        let entry = match &self.reference {
            Some(r) => entries
                .iter()
                .find(|e| e.repo_tags.iter().flatten().any(|t| same_repo_tag(t, r)))
                .ok_or_else(|| {
                    Error::not_found(format!("{what}: no image tagged {r:?} in the archive"))
                })?,
            None => match entries.as_slice() {
                [only] => only,
                [] => {
                    return Err(Error::measure(format!(
                        "{what}: the archive holds no images"
                    )));
                }
                many => {
                    let tags: Vec<&str> = many
                        .iter()
                        .flat_map(|e| e.repo_tags.iter().flatten())
                        .map(String::as_str)
                        .collect();
                    return Err(Error::usage(format!(
                        "{what}: the archive holds {} images; name one with :REPO:TAG (tags: {})",
                        many.len(),
                        tags.join(", ")
                    )));
                }
            },
        };
        let config = self.index.read(&entry.config)?;
        let config_digest = super::sha256_digest(&config);
        let probe: DockerConfigProbe = serde_json::from_slice(&config)
            .map_err(|e| Error::measure(format!("{what}: invalid image config: {e}")))?;
        let diff_ids = probe.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        let platform = Platform::new(&probe.os, &probe.architecture, probe.variant.as_deref());
        if let PlatformSelector::One {
            platform: want,
            explicit: true,
        } = platforms
            && !platform.satisfies(want)
        {
            return Err(Error::measure(format!(
                "{what}: platform {want} not found; the image is single-platform: {platform}"
            )));
        }
        let mut layers = Vec::new();
        let mut members = self.members.lock().expect("members lock");
        for (i, member) in entry.layers.iter().enumerate() {
            let (_, size) = self
                .index
                .locate(member)
                .ok_or_else(|| Error::measure(format!("{what}: archive has no layer {member}")))?;
            // `docker save` stores layers uncompressed, so the blob digest is
            // the diff_id; newer versions also name blobs by digest.
            let digest = match normalize_member(member).strip_prefix("blobs/sha256/") {
                Some(hex) => format!("sha256:{hex}"),
                None => diff_ids.get(i).cloned().ok_or_else(|| {
                    Error::measure(format!(
                        "{what}: config lists fewer diff_ids than the archive has layers"
                    ))
                })?,
            };
            members.insert(digest.clone(), member.clone());
            layers.push(LayerDescriptor {
                digest,
                size,
                media_type: "application/vnd.docker.image.rootfs.diff.tar".to_string(),
                urls: Vec::new(),
            });
        }
        Ok(vec![ResolvedImage {
            reference: what,
            digest: config_digest.clone(),
            index_digest: None,
            media_type: "application/vnd.docker.distribution.manifest.v2+json".to_string(),
            platform,
            manifest_bytes: 0,
            config_digest,
            config_bytes: config.len() as u64,
            diff_ids,
            layers,
        }])
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let member = self.member_of(layer)?;
        Ok(self.index.open(&member)?.0)
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let member = self.member_of(layer)?;
        self.index.read_range(&member, offset, len).map(Some)
    }
}
