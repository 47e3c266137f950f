//! Manifest formats and the walk from a reference to per-platform images,
//! shared by every transport that stores manifests as blobs.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use super::{Blob, LayerDescriptor, ManifestStore, ResolvedImage};
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
    let probe: Probe = serde_json::from_slice(&blob.bytes)
        .map_err(|e| Error::measure(format!("{what}: manifest is not valid JSON: {e}")))?;
    let media_type = probe
        .media_type
        .clone()
        .or_else(|| blob.media_type.clone())
        .unwrap_or_default();
    if probe.schema_version == Some(1)
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        return Err(Error::measure(format!(
            "{what}: Docker schema 1 manifests are not supported (deprecated since 2017); re-push the image with a current docker or skopeo"
        )));
    }
    let kind = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => Kind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        _ if probe.manifests.is_some() => Kind::Index,
        _ if probe.layers.is_some() => Kind::Manifest,
        other => {
            return Err(Error::measure(format!(
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
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn is_image_manifest_type(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

fn is_index_type(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// Layer media types we can measure: tar, optionally gzip or zstd, in their
/// OCI, Docker, foreign and non-distributable spellings.
pub fn check_layer_media_type(mt: &str) -> Result<(), String> {
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
        Err(format!(
            "encrypted layer media type {mt} cannot be measured"
        ))
    } else {
        Err(format!("unsupported layer media type {mt}"))
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

/// Resolves the store's root reference to images, one per selected platform.
pub async fn resolve(
    store: &dyn ManifestStore,
    sel: &PlatformSelector,
) -> Result<Vec<ResolvedImage>, Error> {
    let reference = store.reference();
    let root = store.root().await?;
    let (kind, media_type) = classify(&reference, &root)?;
    match kind {
        Kind::Manifest => {
            let image = image_from_manifest(store, &reference, &root, &media_type, None)
                .await?
                .ok_or_else(|| {
                    Error::measure(format!(
                        "{reference}: is not a container image (an OCI artifact?)"
                    ))
                })?;
            if let PlatformSelector::One {
                platform,
                explicit: true,
            } = sel
                && !image.platform.satisfies(platform)
            {
                return Err(Error::measure(format!(
                    "{reference}: platform {platform} not found; the image is single-platform: {}",
                    image.platform
                )));
            }
            Ok(vec![image])
        }
        Kind::Index => resolve_index(store, &reference, &root, sel).await,
    }
}

async fn resolve_index(
    store: &dyn ManifestStore,
    reference: &str,
    root: &Blob,
    sel: &PlatformSelector,
) -> Result<Vec<ResolvedImage>, Error> {
    let index: ImageIndex = serde_json::from_slice(&root.bytes)
        .map_err(|e| Error::measure(format!("{reference}: invalid image index: {e}")))?;
    // Image manifests only: attestations (unknown/unknown), nested indexes
    // and artifacts are not images a node would run.
    let candidates: Vec<(&Descriptor, Option<Platform>)> = index
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
        return Err(Error::measure(format!(
            "{reference}: nested image indexes are not supported"
        )));
    }

    let chosen: Vec<&(&Descriptor, Option<Platform>)> = match sel {
        PlatformSelector::All => candidates.iter().collect(),
        PlatformSelector::One { platform, .. } => {
            // An exact variant match beats a variant-less one.
            let exact = candidates
                .iter()
                .find(|(_, p)| p.as_ref() == Some(platform));
            let loose = candidates
                .iter()
                .find(|(_, p)| p.as_ref().is_some_and(|p| p.satisfies(platform)));
            match exact.or(loose) {
                Some(c) => vec![c],
                None => {
                    // Entries without a platform: the config will tell.
                    let unlabeled: Vec<_> =
                        candidates.iter().filter(|(_, p)| p.is_none()).collect();
                    if unlabeled.is_empty() {
                        let mut present: Vec<String> = candidates
                            .iter()
                            .filter_map(|(_, p)| p.as_ref().map(|p| p.to_string()))
                            .collect();
                        present.sort();
                        present.dedup();
                        return Err(Error::measure(format!(
                            "{reference}: platform {platform} not found; the index has: {}",
                            if present.is_empty() {
                                "no image manifests".to_string()
                            } else {
                                present.join(", ")
                            }
                        )));
                    }
                    unlabeled
                }
            }
        }
    };

    let mut images = Vec::new();
    let mut seen_platforms = Vec::new();
    for (desc, _) in chosen {
        let digest = desc.digest().to_string();
        let mt = desc.media_type().to_string();
        let blob = store.fetch(&digest, &mt, true).await?;
        if let Some(image) =
            image_from_manifest(store, reference, &blob, &mt, Some(root.digest.clone())).await?
        {
            seen_platforms.push(image.platform.to_string());
            images.push(image);
        }
    }
    if let PlatformSelector::One { platform, .. } = sel {
        images.retain(|i| i.platform.satisfies(platform));
        images.truncate(1);
        if images.is_empty() {
            return Err(Error::measure(format!(
                "{reference}: platform {platform} not found; the index has: {}",
                seen_platforms.join(", ")
            )));
        }
    }
    if images.is_empty() {
        return Err(Error::measure(format!(
            "{reference}: the index lists no container images"
        )));
    }
    Ok(images)
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
        Error::measure(format!(
            "{reference}: invalid image manifest {}: {e}",
            blob.digest
        ))
    })?;
    let config_desc = manifest.config();
    let config_mt = config_desc.media_type().to_string();
    if config_mt != OCI_CONFIG && config_mt != DOCKER_CONFIG {
        return Ok(None);
    }
    let config_digest = config_desc.digest().to_string();
    let config = store.fetch(&config_digest, &config_mt, false).await?;
    let probe: ConfigProbe = serde_json::from_slice(&config.bytes).map_err(|e| {
        Error::measure(format!(
            "{reference}: invalid image config {config_digest}: {e}"
        ))
    })?;
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for l in manifest.layers() {
        let mt = l.media_type().to_string();
        check_layer_media_type(&mt)
            .map_err(|e| Error::measure(format!("{reference}: layer {}: {e}", l.digest())))?;
        layers.push(LayerDescriptor {
            digest: l.digest().to_string(),
            size: l.size(),
            media_type: mt,
            urls: l.urls().clone().unwrap_or_default(),
        });
    }
    Ok(Some(ResolvedImage {
        reference: reference.to_string(),
        digest: blob.digest.clone(),
        index_digest,
        media_type: media_type.to_string(),
        platform: Platform::new(&probe.os, &probe.architecture, probe.variant.as_deref()),
        manifest_bytes: blob.bytes.len() as u64,
        config_digest,
        config_bytes: config.bytes.len() as u64,
        diff_ids: probe.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
        layers,
    }))
}
