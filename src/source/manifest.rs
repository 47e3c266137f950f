//! Manifest formats and the walk from a reference to per-platform images,
//! shared by every transport that stores manifests as blobs (a registry, an
//! OCI layout): index walking, platform selection, digest verification.
//! The pieces a transport without manifests (docker-archive) needs too live
//! here as well: config parsing, the single-platform check, picking an
//! image by tag from a local store.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use super::{Blob, LayerDescriptor, ManifestStore, Provenance, ResolvedImage};
use crate::digest::Digest;
use crate::error::Error;
use crate::source::platform::{Platform, PlatformSelector};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The most a JSON document of an image may weigh: a manifest, an index, an
/// image config, a layout's `index.json`, a docker-archive's
/// `manifest.json`. Real ones are a few KiB; the OCI distribution spec has
/// registries accept manifests of at least 4 MiB and lets them refuse
/// larger ones. Every reader of such a document, local or over the network,
/// stops one byte past this, so a wrong or hostile file (`/dev/zero`, a
/// layer where a config should be) costs at most this much memory.
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

/// The most image manifests one index may offer for measuring. Real
/// indexes list a handful of platforms (and attestations, which are not
/// fetched); each image listed costs a fetch and a resolved image held in
/// memory, so a hostile index is refused rather than followed.
pub const MAX_INDEX_IMAGES: usize = 128;

/// Everything a registry may answer with; schema 1 is asked for only so
/// that it can be refused with a clear message rather than a 404.
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_LIST,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA1,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
}

/// Just enough of a manifest to tell what it is: `mediaType` is optional in
/// OCI, so the shape decides when it is absent.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

pub(crate) fn classify(what: &str, blob: &Blob) -> Result<(Kind, String), Error> {
    let probe: Probe = crate::go_json::from_slice(&blob.bytes).map_err(|e| {
        Error::corrupt(format!("{what}: manifest is not valid JSON")).with_source(e)
    })?;
    let media_type = probe
        .media_type
        .clone()
        .or_else(|| blob.media_type.clone())
        .unwrap_or_default();
    if probe.schema_version == Some(1)
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        return Err(Error::corrupt(format!(
            "{what}: Docker schema 1 manifests are not supported (deprecated since 2017); re-push the image with a current docker or skopeo"
        )));
    }
    let kind = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        _ if probe.manifests.is_some() => Kind::Index,
        _ if probe.layers.is_some() => Kind::Manifest,
        other => {
            return Err(Error::corrupt(format!(
                "{what}: unsupported manifest media type {other:?}"
            )));
        }
    };
    let media_type = if media_type.is_empty() {
        match kind {
            Kind::Index => OCI_INDEX.to_string(),
            Kind::Manifest => OCI_MANIFEST.to_string(),
        }
    } else {
        media_type
    };
    Ok((kind, media_type))
}

/// The part of an image config that sizing needs.
#[derive(Deserialize)]
struct ConfigProbe {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    variant: Option<String>,
    /// Any shape: only a string that reads as an RFC 3339 date is kept.
    #[serde(default)]
    created: serde_json::Value,
    rootfs: Option<RootFs>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
    /// Read as a plain value so that odd labels (not strings, not a map)
    /// never make an otherwise measurable config unreadable.
    #[serde(default)]
    config: serde_json::Value,
}

/// One build step of the config's `history`. Any shape is tolerated: the
/// history is a label for people, never needed to measure.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HistoryEntry {
    created_by: Option<serde_json::Value>,
    empty_layer: Option<serde_json::Value>,
}

impl HistoryEntry {
    fn makes_layer(&self) -> bool {
        self.empty_layer
            .as_ref()
            .and_then(serde_json::Value::as_bool)
            != Some(true)
    }
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// What an image config says about sizing: the platform it was built for
/// and the digests of its uncompressed layers.
pub struct ImageConfig {
    pub platform: Platform,
    pub diff_ids: Vec<String>,
    /// Per layer, the build step that created it: see [`layer_steps`].
    pub created_by: Vec<Option<String>>,
    /// From the config's `Labels`.
    pub provenance: Provenance,
    /// The locale variables of the config's `Env`.
    pub locale_env: Vec<String>,
    /// `created`, when it reads as an RFC 3339 date.
    pub created: Option<String>,
}

/// A config's `created` as sizeguard keeps it: an RFC 3339 date of at most
/// 40 characters (Go writes nanoseconds and a zone), digits and the date's
/// punctuation only; anything else is not a date and is dropped.
fn config_created(v: &serde_json::Value) -> Option<String> {
    let s = v.as_str()?;
    let shaped = s.len() >= 20
        && s.len() <= 40
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[10] == b'T'
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"-:T.Z+".contains(&b));
    shaped.then(|| s.to_string())
}

impl ImageConfig {
    /// Parses an image config blob (OCI or Docker; the same fields).
    pub fn parse(reference: &str, digest: &Digest, bytes: &[u8]) -> Result<Self, Error> {
        let probe: ConfigProbe = crate::go_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!("{reference}: invalid image config {digest}")).with_source(e)
        })?;
        let diff_ids = probe.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        let labels = probe.config.get("Labels");
        Ok(ImageConfig {
            provenance: Provenance::from_map(|k| labels?.get(k)?.as_str()),
            platform: Platform::new(&probe.os, &probe.architecture, probe.variant.as_deref()),
            created_by: layer_steps(&probe.history, diff_ids.len()),
            locale_env: locale_env(&probe.config),
            created: config_created(&probe.created),
            diff_ids,
        })
    }
}

/// What an image's manifest says beside its layers, for
/// [`ImageConfig::into_image`]; a saved image without a manifest gives its
/// config's.
pub struct ManifestFacts {
    pub digest: String,
    pub index_digest: Option<String>,
    /// The index's size, kept by the runtime beside the manifest.
    pub index_bytes: Option<u64>,
    pub media_type: String,
    pub bytes: u64,
    /// From its annotations: they win over the config's labels.
    pub provenance: Provenance,
}

impl ImageConfig {
    /// The image this config, its manifest and its layers describe.
    pub fn into_image(
        self,
        reference: &str,
        manifest: ManifestFacts,
        (config_digest, config_bytes): (&Digest, u64),
        layers: Vec<LayerDescriptor>,
    ) -> ResolvedImage {
        ResolvedImage {
            reference: reference.to_string(),
            digest: manifest.digest,
            index_digest: manifest.index_digest,
            index_bytes: manifest.index_bytes,
            media_type: manifest.media_type,
            platform: self.platform,
            manifest_bytes: manifest.bytes,
            config_digest: config_digest.to_string(),
            config_bytes,
            created: self.created,
            diff_ids: self.diff_ids,
            created_by: self.created_by,
            locale_env: self.locale_env,
            layers,
            provenance: manifest.provenance.or(self.provenance),
        }
    }
}

/// The values of `LANG`, `LC_ALL`, `LC_MESSAGES` and `LANGUAGE` in the
/// config's `Env` (entries of another shape are skipped).
fn locale_env(config: &serde_json::Value) -> Vec<String> {
    const NAMES: [&str; 4] = ["LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"];
    let Some(env) = config.get("Env").and_then(serde_json::Value::as_array) else {
        return Vec::new();
    };
    env.iter()
        .filter_map(serde_json::Value::as_str)
        .filter_map(|e| e.split_once('='))
        .filter(|(k, v)| NAMES.contains(k) && !v.is_empty())
        .map(|(_, v)| v.to_string())
        .collect()
}

/// The history entries that made a layer (`empty_layer` ones did not),
/// matched to the layers by order, as builders write them. A history that
/// does not have one entry per layer cannot be matched reliably, so no
/// layer gets a step then.
fn layer_steps(history: &[HistoryEntry], layers: usize) -> Vec<Option<String>> {
    let steps: Vec<Option<String>> = history
        .iter()
        .filter(|h| h.makes_layer())
        .map(|h| {
            h.created_by
                .as_ref()
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        })
        .collect();
    if steps.len() == layers {
        steps
    } else {
        vec![None; layers]
    }
}

/// A single-platform image (no index) is measured whatever the default
/// platform is; a platform the user asked for must match.
pub(crate) fn check_single_platform(
    reference: &str,
    platform: &Platform,
    sel: &PlatformSelector,
) -> Result<(), Error> {
    match sel {
        PlatformSelector::One {
            platform: want,
            explicit: true,
        } if !platform.satisfies(want) => Err(Error::not_found(format!(
            "{reference}: platform {want} not found; the image is single-platform: {platform}"
        ))),
        _ => Ok(()),
    }
}

/// The platform asked for is not among those an index offers.
fn platform_not_found(reference: &str, want: &Platform, mut present: Vec<String>) -> Error {
    present.sort();
    present.dedup();
    Error::not_found(format!(
        "{reference}: platform {want} not found; the index has: {}",
        if present.is_empty() {
            "no image manifests".to_string()
        } else {
            present.join(", ")
        }
    ))
}

/// How a local store (an OCI layout's `index.json`, a docker-archive's
/// `manifest.json`) names its images, for [`pick_tagged`]'s messages.
pub(crate) struct LocalIndex<'a> {
    /// `layout`, `archive`.
    pub noun: &'a str,
    /// How a user names one image: `:TAG`, `:REPO:TAG`.
    pub hint: &'a str,
}

/// Picks the entry of a local store a tag names; without a tag, the only
/// entry.
pub(crate) fn pick_tagged<'e, T>(
    what: &str,
    store: LocalIndex<'_>,
    entries: &'e [T],
    tags: impl Fn(&T) -> Vec<&str>,
    wanted: Option<&str>,
    matches: impl Fn(&str, &str) -> bool,
) -> Result<&'e T, Error> {
    let all_tags = || -> Vec<&str> { entries.iter().flat_map(&tags).collect() };
    let LocalIndex { noun, hint } = store;
    match wanted {
        Some(want) => entries
            .iter()
            .find(|e| tags(e).into_iter().any(|t| matches(t, want)))
            .ok_or_else(|| {
                let present = all_tags();
                Error::not_found(format!(
                    "{what}: no image tagged {want:?} in the {noun}; tags present: {}",
                    if present.is_empty() {
                        "none".to_string()
                    } else {
                        present.join(", ")
                    }
                ))
            }),
        None => match entries {
            [only] => Ok(only),
            [] => Err(Error::not_found(format!(
                "{what}: the {noun} holds no images"
            ))),
            many => Err(Error::usage(format!(
                "{what}: the {noun} holds {} images; name one with {hint} (tags: {})",
                many.len(),
                all_tags().join(", ")
            ))),
        },
    }
}

fn is_image_manifest_type(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

fn is_index_type(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// Layer media types we can measure: tar, optionally gzip or zstd, in their
/// OCI, Docker, foreign and non-distributable spellings.
pub fn check_layer_media_type(mt: &str) -> Result<(), Error> {
    const KNOWN: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    if KNOWN.contains(&mt) {
        Ok(())
    } else if mt.contains("+encrypted") {
        Err(Error::corrupt(format!(
            "encrypted layer media type {mt} cannot be measured"
        )))
    } else {
        Err(Error::corrupt(format!("unsupported layer media type {mt}")))
    }
}

fn descriptor_platform(d: &Descriptor) -> Option<Platform> {
    d.platform().as_ref().map(|p| {
        Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        )
    })
}

/// A document larger than [`MAX_DOCUMENT_BYTES`] is refused, named.
pub fn check_document_size(what: &str, noun: &str, len: u64) -> Result<(), Error> {
    if len > MAX_DOCUMENT_BYTES {
        return Err(Error::corrupt(format!(
            "{what}: {noun} is {len} bytes, more than the {} an image's JSON documents may have",
            crate::units::human_bytes(MAX_DOCUMENT_BYTES)
        )));
    }
    Ok(())
}

/// A manifest or config from the store, checked against the descriptor
/// that addressed it (its size, then its digest): the one place content
/// from any store is verified. The digest checked is the one asked for,
/// not the one the store says it served.
async fn fetch_verified(
    store: &dyn ManifestStore,
    reference: &str,
    desc: &Descriptor,
    is_manifest: bool,
) -> Result<Blob, Error> {
    let digest = parse_digest(reference, desc.digest().as_ref())?;
    let noun = format!(
        "{} {digest}",
        if is_manifest { "manifest" } else { "config" }
    );
    check_document_size(
        reference,
        &format!("{noun} (by its descriptor)"),
        desc.size(),
    )?;
    let media_type = desc.media_type().to_string();
    let blob = store.fetch(&digest, &media_type, is_manifest).await?;
    let len = blob.bytes.len() as u64;
    check_document_size(reference, &noun, len)?;
    if len != desc.size() {
        return Err(Error::corrupt(format!(
            "{reference}: {noun}: the descriptor says {} bytes, the store has {len}",
            desc.size()
        )));
    }
    digest
        .verify(&blob.bytes)
        .map_err(|e| e.context(format!("{reference}: {noun}")))?;
    Ok(Blob { digest, ..blob })
}

fn verify(reference: &str, blob: &Blob) -> Result<(), Error> {
    blob.digest
        .verify(&blob.bytes)
        .map_err(|e| e.context(format!("{reference}: blob")))
}

/// Resolves the store's root reference to images, one per selected platform.
pub async fn resolve(
    store: &dyn ManifestStore,
    sel: &PlatformSelector,
) -> Result<Vec<ResolvedImage>, Error> {
    let reference = store.reference();
    let root = store.root().await?;
    check_document_size(&reference, "manifest", root.bytes.len() as u64)?;
    verify(&reference, &root)?;
    let (kind, media_type) = classify(&reference, &root)?;
    match kind {
        Kind::Manifest => {
            let image = image_from_manifest(store, &reference, &root, &media_type, None)
                .await?
                .ok_or_else(|| {
                    Error::corrupt(format!(
                        "{reference}: is not a container image (an OCI artifact?)"
                    ))
                })?;
            check_single_platform(&reference, &image.platform, sel)?;
            Ok(vec![image])
        }
        Kind::Index => resolve_index(store, &reference, &root, sel).await,
    }
}

type Candidate<'a> = (&'a Descriptor, Option<Platform>);

/// The entries of an index that may be images a node would run.
fn image_candidates<'a>(
    reference: &str,
    digest: &Digest,
    index: &'a ImageIndex,
) -> Result<Vec<Candidate<'a>>, Error> {
    // Image manifests only: attestations (unknown/unknown), nested indexes
    // and artifacts are not images a node would run.
    let candidates: Vec<Candidate<'a>> = index
        .manifests()
        .iter()
        .filter(|d| is_image_manifest_type(d.media_type().as_ref()))
        .map(|d| (d, descriptor_platform(d)))
        .filter(|(_, p)| !p.as_ref().is_some_and(Platform::is_unknown))
        .collect();
    if candidates.is_empty()
        && index
            .manifests()
            .iter()
            .any(|d| is_index_type(d.media_type().as_ref()))
    {
        return Err(Error::corrupt(format!(
            "{reference}: image index {digest}: nested image indexes are not supported"
        )));
    }
    Ok(candidates)
}

/// The candidates worth fetching for the selection.
fn choose<'c, 'a>(
    reference: &str,
    candidates: &'c [Candidate<'a>],
    sel: &PlatformSelector,
) -> Result<Vec<&'c Candidate<'a>>, Error> {
    let PlatformSelector::One { platform, .. } = sel else {
        return Ok(candidates.iter().collect());
    };
    // An exact variant match beats a variant-less one.
    let exact = candidates
        .iter()
        .find(|(_, p)| p.as_ref() == Some(platform));
    let loose = candidates
        .iter()
        .find(|(_, p)| p.as_ref().is_some_and(|p| p.satisfies(platform)));
    if let Some(c) = exact.or(loose) {
        return Ok(vec![c]);
    }
    // Entries without a platform: the config will tell.
    let unlabeled: Vec<_> = candidates.iter().filter(|(_, p)| p.is_none()).collect();
    if unlabeled.is_empty() {
        let present = candidates
            .iter()
            .filter_map(|(_, p)| p.as_ref().map(|p| p.to_string()))
            .collect();
        return Err(platform_not_found(reference, platform, present));
    }
    Ok(unlabeled)
}

/// The image manifests of an index worth fetching for the selection, read
/// from the index's bytes alone. An index offering more than
/// [`MAX_INDEX_IMAGES`] images is refused.
pub fn index_choices(
    reference: &str,
    digest: &Digest,
    bytes: &[u8],
    sel: &PlatformSelector,
) -> Result<Vec<Descriptor>, Error> {
    let index: ImageIndex = crate::go_json::from_slice(bytes).map_err(|e| {
        Error::corrupt(format!("{reference}: invalid image index {digest}")).with_source(e)
    })?;
    let candidates = image_candidates(reference, digest, &index)?;
    if candidates.len() > MAX_INDEX_IMAGES {
        return Err(Error::corrupt(format!(
            "{reference}: image index {digest} lists {} image manifests, more than the {MAX_INDEX_IMAGES} sizeguard follows",
            candidates.len()
        )));
    }
    Ok(choose(reference, &candidates, sel)?
        .into_iter()
        .map(|(d, _)| (*d).clone())
        .collect())
}

async fn resolve_index(
    store: &dyn ManifestStore,
    reference: &str,
    root: &Blob,
    sel: &PlatformSelector,
) -> Result<Vec<ResolvedImage>, Error> {
    let mut images = Vec::new();
    let mut seen_platforms = Vec::new();
    for desc in index_choices(reference, &root.digest, &root.bytes, sel)? {
        let blob = fetch_verified(store, reference, &desc, true).await?;
        // An entry typed as an image that is an index (this one, or
        // another): nested indexes are not followed, so no cycle either.
        if classify(reference, &blob)?.0 == Kind::Index {
            let which = if blob.digest == root.digest {
                "lists itself"
            } else {
                "lists another index"
            };
            return Err(Error::corrupt(format!(
                "{reference}: image index {} {which} as an image ({}); nested indexes are not supported",
                root.digest, blob.digest
            )));
        }
        let mt = desc.media_type().to_string();
        let index = Some((root.digest.to_string(), root.bytes.len() as u64));
        if let Some(image) = image_from_manifest(store, reference, &blob, &mt, index).await? {
            seen_platforms.push(image.platform.to_string());
            images.push(image);
        }
    }
    if let PlatformSelector::One { platform, .. } = sel {
        images.retain(|i| i.platform.satisfies(platform));
        images.truncate(1);
        if images.is_empty() {
            return Err(platform_not_found(reference, platform, seen_platforms));
        }
    }
    if images.is_empty() {
        return Err(Error::not_found(format!(
            "{reference}: the index lists no container images"
        )));
    }
    Ok(images)
}

pub(crate) fn parse_digest(reference: &str, digest: &str) -> Result<Digest, Error> {
    Digest::parse(digest).map_err(|e| e.context(reference))
}

/// What an image manifest says about sizing: where its config is and its
/// layers, in order.
pub struct ManifestParts {
    pub config: Descriptor,
    pub layers: Vec<LayerDescriptor>,
    /// From the manifest's annotations (they win over the config's labels).
    pub provenance: Provenance,
}

/// Reads an image manifest's config descriptor and layers from its bytes
/// alone; `None` when the manifest is not a container image (an artifact
/// with its own config type).
pub fn manifest_parts(
    reference: &str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<Option<ManifestParts>, Error> {
    let manifest: ImageManifest = crate::go_json::from_slice(bytes).map_err(|e| {
        Error::corrupt(format!("{reference}: invalid image manifest {digest}")).with_source(e)
    })?;
    let config_mt = manifest.config().media_type().to_string();
    if config_mt != OCI_CONFIG && config_mt != DOCKER_CONFIG {
        return Ok(None);
    }
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for l in manifest.layers() {
        let mt = l.media_type().to_string();
        check_layer_media_type(&mt)
            .map_err(|e| e.context(format!("{reference}: layer {}", l.digest())))?;
        layers.push(LayerDescriptor {
            digest: parse_digest(reference, l.digest().as_ref())?.to_string(),
            size: l.size(),
            media_type: mt,
            urls: l.urls().clone().unwrap_or_default(),
        });
    }
    let annotations = manifest.annotations().as_ref();
    Ok(Some(ManifestParts {
        config: manifest.config().clone(),
        provenance: Provenance::from_map(|k| annotations?.get(k).map(String::as_str)),
        layers,
    }))
}

/// The config names one uncompressed digest per layer, in order; a count
/// that disagrees would pair layers with the wrong diff_ids.
pub fn check_diff_ids(
    reference: &str,
    config: &Digest,
    diff_ids: &[String],
    layers: usize,
) -> Result<(), Error> {
    if diff_ids.len() != layers {
        return Err(Error::corrupt(format!(
            "{reference}: image config {config} lists {} diff_ids for {layers} layers",
            diff_ids.len()
        )));
    }
    Ok(())
}

/// Builds the resolved image from a manifest blob, or `None` when the
/// manifest is not a container image (an artifact with its own config type).
async fn image_from_manifest(
    store: &dyn ManifestStore,
    reference: &str,
    blob: &Blob,
    media_type: &str,
    index: Option<(String, u64)>,
) -> Result<Option<ResolvedImage>, Error> {
    let Some(ManifestParts {
        config,
        layers,
        provenance: annotated,
    }) = manifest_parts(reference, &blob.digest, &blob.bytes)?
    else {
        return Ok(None);
    };
    let config = fetch_verified(store, reference, &config, false).await?;
    let parsed = ImageConfig::parse(reference, &config.digest, &config.bytes)?;
    check_diff_ids(reference, &config.digest, &parsed.diff_ids, layers.len())?;
    let manifest = ManifestFacts {
        digest: blob.digest.to_string(),
        index_bytes: index.as_ref().map(|(_, bytes)| *bytes),
        index_digest: index.map(|(digest, _)| digest),
        media_type: media_type.to_string(),
        bytes: blob.bytes.len() as u64,
        provenance: annotated,
    };
    Ok(Some(parsed.into_image(
        reference,
        manifest,
        (&config.digest, config.bytes.len() as u64),
        layers,
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Read;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::source::ImageSource;

    /// Blobs by digest; `lie` serves the root for every digest asked for.
    struct Store {
        root: bytes::Bytes,
        blobs: HashMap<String, bytes::Bytes>,
        lie: bool,
    }

    impl Store {
        fn of(root: bytes::Bytes, blobs: &[&bytes::Bytes]) -> Store {
            let blobs = blobs
                .iter()
                .map(|b| (Digest::sha256(b).to_string(), (*b).clone()))
                .collect();
            Store {
                root,
                blobs,
                lie: false,
            }
        }
    }

    #[async_trait]
    impl ImageSource for Store {
        fn reference(&self) -> String {
            "mem:x".into()
        }
        async fn resolve(&self, sel: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
            resolve(self, sel).await
        }
        async fn open_layer(&self, _: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
            Err(Error::not_found("no layers here"))
        }
    }

    #[async_trait]
    impl ManifestStore for Store {
        async fn root(&self) -> Result<Blob, Error> {
            Ok(Blob {
                bytes: self.root.clone(),
                digest: Digest::sha256(&self.root),
                media_type: None,
            })
        }
        async fn fetch(&self, digest: &Digest, _: &str, _: bool) -> Result<Blob, Error> {
            let bytes = match self.lie {
                true => self.root.clone(),
                false => self
                    .blobs
                    .get(&digest.to_string())
                    .cloned()
                    .ok_or_else(|| Error::not_found(format!("{digest}")))?,
            };
            // The lying store names what it served, not what was asked for:
            // only checking against the request catches it.
            let digest = match self.lie {
                true => Digest::sha256(&bytes),
                false => digest.clone(),
            };
            Ok(Blob {
                bytes,
                digest,
                media_type: None,
            })
        }
    }

    fn entry(media_type: &str, bytes: &[u8]) -> serde_json::Value {
        json!({
            "mediaType": media_type,
            "digest": Digest::sha256(bytes).to_string(),
            "size": bytes.len(),
            "platform": {"os": "linux", "architecture": "amd64"},
        })
    }

    fn index(entries: Vec<serde_json::Value>) -> bytes::Bytes {
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
            .to_string()
            .into()
    }

    const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    fn config(diff_ids: usize) -> bytes::Bytes {
        let ids: Vec<String> = (0..diff_ids)
            .map(|i| Digest::sha256(&[i as u8]).to_string())
            .collect();
        json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": ids}})
            .to_string()
            .into()
    }

    fn manifest(config: &[u8], layers: usize) -> bytes::Bytes {
        let layers: Vec<_> = (0..layers)
            .map(|i| json!({"mediaType": LAYER, "digest": Digest::sha256(&[i as u8]).to_string(), "size": 1}))
            .collect();
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": Digest::sha256(config).to_string(), "size": config.len()},
            "layers": layers,
        })
        .to_string()
        .into()
    }

    async fn resolve_err(store: Store) -> Error {
        store
            .resolve(&PlatformSelector::default())
            .await
            .err()
            .unwrap()
    }

    #[tokio::test]
    async fn an_index_listed_as_an_image_is_refused_not_followed() {
        let inner = index(vec![]);
        let root = index(vec![entry(OCI_MANIFEST, &inner)]);
        let e = resolve_err(Store::of(root, &[&inner])).await;
        assert!(
            e.to_string().contains("lists another index as an image"),
            "{e}"
        );
        assert_eq!(e.kind(), crate::error::Kind::Corrupt);

        // Entries typed as indexes: not images, and said so.
        let root = index(vec![entry(OCI_INDEX, &inner)]);
        let e = resolve_err(Store::of(root, &[])).await;
        assert!(
            e.to_string()
                .contains("nested image indexes are not supported"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_cycle_of_indexes_ends_at_the_first_step() {
        // Two indexes naming each other cannot exist (each digest would
        // cover the other), so the cycle is a store serving them anyway.
        let root = index(vec![entry(OCI_MANIFEST, b"{}")]);
        let e = resolve_err(Store {
            root: root.clone(),
            blobs: HashMap::new(),
            lie: true,
        })
        .await;
        assert!(e.to_string().contains("the descriptor says 2 bytes"), "{e}");
        // Deep nesting: an index of an index of … is refused at the first.
        let mut doc = index(vec![]);
        let mut docs = Vec::new();
        for _ in 0..1000 {
            let next = index(vec![entry(OCI_INDEX, &doc)]);
            docs.push(std::mem::replace(&mut doc, next));
        }
        let refs: Vec<_> = docs.iter().collect();
        let e = resolve_err(Store::of(doc, &refs)).await;
        assert!(e.to_string().contains("nested image indexes"), "{e}");
    }

    #[tokio::test]
    async fn a_store_serving_the_index_for_every_digest_gets_no_loop() {
        // With the entry's size the root's own, only the digest tells.
        let with_size = |n: usize| {
            let mut e = entry(OCI_MANIFEST, b"{}");
            e["size"] = json!(n);
            index(vec![e])
        };
        // A fixed point: the length only changes with the number's digits.
        let mut n = 0;
        for _ in 0..8 {
            n = with_size(n).len();
        }
        assert_eq!(with_size(n).len(), n);
        let e = resolve_err(Store {
            root: with_size(n),
            blobs: HashMap::new(),
            lie: true,
        })
        .await;
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }

    #[tokio::test]
    async fn fetched_documents_must_match_their_descriptor_size() {
        let config = config(0);
        let manifest = manifest(&config, 0);
        let mut e = entry(OCI_MANIFEST, &manifest);
        e["size"] = json!(manifest.len() + 1);
        let e = resolve_err(Store::of(index(vec![e]), &[&manifest, &config])).await;
        assert!(e.to_string().contains("the descriptor says"), "{e}");
        // The whole walk, when sizes and digests agree.
        let store = Store::of(
            index(vec![entry(OCI_MANIFEST, &manifest)]),
            &[&manifest, &config],
        );
        let images = store.resolve(&PlatformSelector::default()).await.unwrap();
        assert_eq!(images.len(), 1);
    }

    #[tokio::test]
    async fn documents_past_the_cap_are_refused_by_descriptor_and_by_content() {
        let config = config(0);
        let manifest = manifest(&config, 0);
        let mut e = entry(OCI_MANIFEST, &manifest);
        e["size"] = json!(MAX_DOCUMENT_BYTES + 1);
        let e = resolve_err(Store::of(index(vec![e]), &[&manifest, &config])).await;
        assert!(e.to_string().contains("more than the 4.00 MiB"), "{e}");
        assert!(e.to_string().contains("(by its descriptor)"), "{e}");
        // A root past the cap, from a store that did not stop reading.
        let mut huge = manifest.to_vec();
        huge.resize(MAX_DOCUMENT_BYTES as usize + 1, b' ');
        let e = resolve_err(Store::of(huge.into(), &[&config])).await;
        assert!(e.to_string().contains("manifest is 4194305 bytes"), "{e}");
    }

    #[tokio::test]
    async fn a_config_whose_diff_ids_disagree_with_the_layers_is_refused() {
        let config = config(1);
        let manifest = manifest(&config, 2);
        let e = resolve_err(Store::of(manifest, &[&config])).await;
        let want = format!(
            "image config {} lists 1 diff_ids for 2 layers",
            Digest::sha256(&config)
        );
        assert!(e.to_string().contains(&want), "{e}");
        assert_eq!(e.kind(), crate::error::Kind::Corrupt);
    }

    #[test]
    fn an_index_offering_too_many_images_is_refused() {
        let entries = (0..=MAX_INDEX_IMAGES)
            .map(|i| entry(OCI_MANIFEST, &[i as u8]))
            .collect();
        let bytes = index(entries);
        let e = index_choices("x", &Digest::sha256(&bytes), &bytes, &PlatformSelector::All)
            .unwrap_err();
        assert!(e.to_string().contains("lists 129 image manifests"), "{e}");
    }
}
