//! The format `docker save` writes, read the same way wherever it is found:
//! a `docker-archive:` file ([`super::docker_archive`]), an engine's export
//! ([`super::daemon`]), a Docker 25 `oci-archive:` whose index is empty.
//!
//! `manifest.json` lists each image's config member and layer members. What
//! a layer member holds depends on the tool that wrote it: `docker save`,
//! `podman save`, skopeo and buildah write the uncompressed tar (named
//! `<id>/layer.tar`, `<hex>.tar`, or `blobs/sha256/<diff_id hex>` since
//! Docker 25); go-containerregistry's tarball format (`crane pull`,
//! kaniko's `--tar-path`, ko, Bazel's image rules) and BuildKit's docker
//! exporter write the registry's compressed blob, named `<hex>.tar.gz` or
//! `blobs/sha256/<hex>` after the compressed digest. So a member's
//! compression is read from its first bytes, never from its name, and a
//! layer is named by the digest of what the member holds.

use serde::Deserialize;

use super::manifest::{DOCKER_MANIFEST, ImageConfig, ManifestFacts, check_diff_ids};
use super::{LayerDescriptor, Provenance, ResolvedImage};
use crate::digest::Digest;
use crate::error::Error;

pub const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// An entry of `manifest.json`.
#[derive(Deserialize)]
pub struct SavedImage {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

impl SavedImage {
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.repo_tags.iter().flatten().map(String::as_str)
    }
}

/// Parses `manifest.json` (written by Go tools: `null` lists are empty);
/// `what` names the archive in errors.
pub fn parse_manifest_json(what: &str, raw: &[u8]) -> Result<Vec<SavedImage>, Error> {
    crate::go_json::from_slice(raw)
        .map_err(|e| Error::corrupt(format!("{what}: manifest.json is invalid")).with_source(e))
}

/// What the start of a member says it is: a layer's media type, or `None`
/// for anything that is not a tar, gzip or zstd stream.
pub fn sniff_layer(head: &[u8], size: u64) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(LAYER_GZIP)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(LAYER_ZSTD)
    } else if head.get(257..262) == Some(b"ustar".as_slice())
        // An empty layer: nothing but the end-of-archive blocks.
        || (size >= 1024 && size.is_multiple_of(512) && head.len() == 512 && head.iter().all(|&b| b == 0))
    {
        Some(LAYER_TAR)
    } else {
        None
    }
}

/// The digest a layer member is known by before it is read, if its name or
/// its content type tells: a `blobs/ALG/HEX` member is that blob; a
/// compressed member named `<sha256 hex>.tar.gz` (or `.tgz`, `.tar.zst`,
/// bare) is the blob of that digest, as go-containerregistry names them;
/// an uncompressed member is its tar, whose digest is the config's
/// `diff_id`. `None` for a compressed member with any other name: only
/// hashing it tells.
pub fn layer_digest(member: &str, media_type: &str, diff_id: Option<&str>) -> Option<String> {
    if let Some(d) = Digest::from_blob_path(member) {
        return Some(d.to_string());
    }
    if media_type == LAYER_TAR {
        return diff_id.map(str::to_string);
    }
    let file = member.rsplit('/').next().unwrap_or(member);
    let hex = [".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".gz", ".zst"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    Digest::parse(&format!("sha256:{hex}"))
        .ok()
        .map(|d| d.to_string())
}

/// An image config read from an archive, with the image ID taken from its
/// bytes (a saved image has no manifest to take a digest of).
pub struct SavedConfig {
    pub digest: Digest,
    pub bytes: u64,
    pub parsed: ImageConfig,
}

impl SavedConfig {
    /// Parses the config of an entry with `layers` layer members.
    pub fn read(what: &str, bytes: &[u8], layers: usize) -> Result<SavedConfig, Error> {
        let digest = Digest::sha256(bytes);
        let parsed = ImageConfig::parse(what, &digest, bytes)?;
        check_diff_ids(what, &digest, &parsed.diff_ids, layers)?;
        Ok(SavedConfig {
            digest,
            bytes: bytes.len() as u64,
            parsed,
        })
    }

    /// The image, once its layers are described: the image ID (the
    /// config's digest) stands for the manifest's.
    pub fn into_image(self, what: &str, layers: Vec<LayerDescriptor>) -> ResolvedImage {
        let manifest = ManifestFacts {
            digest: self.digest.to_string(),
            index_digest: None,
            index_bytes: None,
            media_type: DOCKER_MANIFEST.to_string(),
            bytes: 0,
            provenance: Provenance::default(),
        };
        let config = (&self.digest, self.bytes);
        self.parsed.into_image(what, manifest, config, layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1";

    #[test]
    fn layers_are_named_by_what_their_members_hold() {
        let diff_id = format!("sha256:{}", "a".repeat(64));
        let named = format!("sha256:{HEX}");
        // crane, kaniko, ko, Bazel: the compressed blob, named by its digest.
        let crane = format!("{HEX}.tar.gz");
        assert_eq!(
            layer_digest(&crane, LAYER_GZIP, Some(&diff_id)),
            Some(named.clone())
        );
        // BuildKit's docker exporter and Docker 25: the blob's path.
        let blob = format!("blobs/sha256/{HEX}");
        assert_eq!(
            layer_digest(&blob, LAYER_GZIP, Some(&diff_id)),
            Some(named.clone())
        );
        assert_eq!(layer_digest(&blob, LAYER_TAR, Some(&diff_id)), Some(named));
        // docker save before 25, podman, skopeo: the tar, by its diff_id,
        // whatever the member's name says.
        for legacy in [
            "0123/layer.tar",
            format!("{HEX}.tar").as_str(),
            crane.as_str(),
        ] {
            assert_eq!(
                layer_digest(legacy, LAYER_TAR, Some(&diff_id)),
                Some(diff_id.clone())
            );
        }
        // A compressed member with no digest in its name must be hashed.
        assert_eq!(
            layer_digest("0123/layer.tar", LAYER_GZIP, Some(&diff_id)),
            None
        );
        assert_eq!(layer_digest("short.tar.gz", LAYER_ZSTD, None), None);
    }

    #[test]
    fn members_are_sniffed_by_content() {
        assert_eq!(sniff_layer(&[0x1f, 0x8b, 8, 0], 4), Some(LAYER_GZIP));
        assert_eq!(sniff_layer(&[0x28, 0xb5, 0x2f, 0xfd], 4), Some(LAYER_ZSTD));
        let mut header = vec![0u8; 512];
        header[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff_layer(&header, 2048), Some(LAYER_TAR));
        assert_eq!(sniff_layer(&[0u8; 512], 1024), Some(LAYER_TAR));
        assert_eq!(sniff_layer(b"{\"config\":1}", 12), None);
    }

    #[test]
    fn go_nulls_in_manifest_json_are_empty_lists() {
        let m =
            parse_manifest_json("t", br#"[{"Config":"c","RepoTags":null,"Layers":null}]"#).unwrap();
        assert_eq!(m[0].tags().count(), 0);
        assert!(m[0].layers.is_empty());
        assert!(parse_manifest_json("t", b"null").unwrap().is_empty());
    }
}
