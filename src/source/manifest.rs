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
enum Kind {
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

fn classify(what: &str, blob: &Blob) -> Result<(Kind, String), Error> {
    let probe: Probe = serde_json::from_slice(&blob.bytes).map_err(|e| {
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
    rootfs: Option<RootFs>,
    /// Read as a plain value so that odd labels (not strings, not a map)
    /// never make an otherwise measurable config unreadable.
    #[serde(default)]
    config: serde_json::Value,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// What an image config says about sizing: the platform it was built for
/// and the digests of its uncompressed layers.
pub(crate) struct ImageConfig {
    pub platform: Platform,
    pub diff_ids: Vec<String>,
    /// From the config's `Labels`.
    pub provenance: Provenance,
}

impl ImageConfig {
    /// Parses an image config blob (OCI or Docker; the same fields).
    pub(crate) fn parse(reference: &str, digest: &Digest, bytes: &[u8]) -> Result<Self, Error> {
        let probe: ConfigProbe = serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!("{reference}: invalid image config {digest}")).with_source(e)
        })?;
        let labels = probe.config.get("Labels");
        Ok(ImageConfig {
            platform: Platform::new(&probe.os, &probe.architecture, probe.variant.as_deref()),
            diff_ids: probe.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
            provenance: Provenance::from_map(|k| labels?.get(k)?.as_str()),
        })
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

/// A manifest or config from the store, checked against the digest that
/// addressed it: the one place content from any store is verified.
async fn fetch_verified(
    store: &dyn ManifestStore,
    reference: &str,
    digest: &Digest,
    media_type: &str,
    is_manifest: bool,
) -> Result<Blob, Error> {
    let blob = store.fetch(digest, media_type, is_manifest).await?;
    verify(reference, &blob)?;
    Ok(blob)
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
            "{reference}: nested image indexes are not supported"
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

async fn resolve_index(
    store: &dyn ManifestStore,
    reference: &str,
    root: &Blob,
    sel: &PlatformSelector,
) -> Result<Vec<ResolvedImage>, Error> {
    let index: ImageIndex = serde_json::from_slice(&root.bytes)
        .map_err(|e| Error::corrupt(format!("{reference}: invalid image index")).with_source(e))?;
    let candidates = image_candidates(reference, &index)?;
    let mut images = Vec::new();
    let mut seen_platforms = Vec::new();
    for (desc, _) in choose(reference, &candidates, sel)? {
        let digest = parse_digest(reference, desc.digest().as_ref())?;
        let mt = desc.media_type().to_string();
        let blob = fetch_verified(store, reference, &digest, &mt, true).await?;
        let index_digest = Some(root.digest.to_string());
        if let Some(image) = image_from_manifest(store, reference, &blob, &mt, index_digest).await?
        {
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

fn parse_digest(reference: &str, digest: &str) -> Result<Digest, Error> {
    Digest::parse(digest).map_err(|e| e.context(reference))
}

/// Builds the resolved image from a manifest blob, or `None` when the
/// manifest is not a container image (an artifact with its own config type).
async fn image_from_manifest(
    store: &dyn ManifestStore,
    reference: &str,
    blob: &Blob,
    media_type: &str,
    index_digest: Option<String>,
) -> Result<Option<ResolvedImage>, Error> {
    let manifest: ImageManifest = serde_json::from_slice(&blob.bytes).map_err(|e| {
        Error::corrupt(format!(
            "{reference}: invalid image manifest {}",
            blob.digest
        ))
        .with_source(e)
    })?;
    let config_desc = manifest.config();
    let config_mt = config_desc.media_type().to_string();
    if config_mt != OCI_CONFIG && config_mt != DOCKER_CONFIG {
        return Ok(None);
    }
    let config_digest = parse_digest(reference, config_desc.digest().as_ref())?;
    let config = fetch_verified(store, reference, &config_digest, &config_mt, false).await?;
    let ImageConfig {
        platform,
        diff_ids,
        provenance,
    } = ImageConfig::parse(reference, &config_digest, &config.bytes)?;
    let annotations = manifest.annotations().as_ref();
    let provenance =
        Provenance::from_map(|k| annotations?.get(k).map(String::as_str)).or(provenance);
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
    Ok(Some(ResolvedImage {
        reference: reference.to_string(),
        digest: blob.digest.to_string(),
        index_digest,
        media_type: media_type.to_string(),
        platform,
        manifest_bytes: blob.bytes.len() as u64,
        config_digest: config_digest.to_string(),
        config_bytes: config.bytes.len() as u64,
        diff_ids,
        layers,
        provenance,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_from_config_labels_never_breaks_parsing() {
        let d = Digest::sha256(b"x");
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Labels":{"org.opencontainers.image.source":"https://github.com/o/r",
            "org.opencontainers.image.revision":"0123456789abcdef0123456789abcdef01234567"}}}"#;
        let c = ImageConfig::parse("t", &d, config).unwrap();
        assert_eq!(
            c.provenance.source.as_deref(),
            Some("https://github.com/o/r")
        );
        assert_eq!(
            c.provenance.revision.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        for odd in [
            r#"{"os":"linux","config":null}"#,
            r#"{"os":"linux","config":{"Labels":null}}"#,
            r#"{"os":"linux","config":{"Labels":["a"]}}"#,
            r#"{"os":"linux","config":{"Labels":{"org.opencontainers.image.source":7}}}"#,
            r#"{"os":"linux"}"#,
        ] {
            let c = ImageConfig::parse("t", &d, odd.as_bytes()).unwrap();
            assert_eq!(c.provenance, Provenance::default(), "{odd}");
        }
        let long = format!(
            r#"{{"config":{{"Labels":{{"org.opencontainers.image.source":"{}"}}}}}}"#,
            "a".repeat(3000)
        );
        let c = ImageConfig::parse("t", &d, long.as_bytes()).unwrap();
        assert_eq!(c.provenance.source, None);
    }
}
