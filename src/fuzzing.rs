//! What each fuzz target (`fuzz/fuzz_targets/`) does with one input, and
//! so what their corpus replay on the stable toolchain
//! (`tests/integration/fuzz_corpus.rs`) does: one definition, so the two cannot drift.
//! Not part of sizeguard's interface; nothing in sizeguard calls it.

use std::io::Write;

use crate::digest::Digest;
use crate::measure::layer::{Expected, analyze};
use crate::measure::merged::MergedFs;
use crate::source::manifest::{
    ImageConfig, check_diff_ids, check_single_platform, classify, index_choices, manifest_parts,
    parse_digest,
};
use crate::source::platform::{Platform, PlatformSelector};
use crate::source::reference::ImageRef;
use crate::source::{Blob, docker_save, layout};

/// The layer analyzer fed bytes as they are (it sniffs gzip, zstd or a
/// plain tar), or compressed first with gzip or zstd so that mutations
/// reach the tar parser through a valid stream, as the first byte says;
/// then the merged view stacks the index twice (a layer over itself).
pub fn analyze_layer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let blob = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            // Into memory: cannot fail.
            let _ = gz.write_all(rest);
            gz.finish().unwrap_or_default()
        }
        _ => zstd::encode_all(rest, 1).unwrap_or_default(),
    };
    if let Ok(m) = analyze(&blob[..], &Expected::default(), None) {
        let _ = m.largest_files(3);
        let mut fs = MergedFs::new();
        fs.apply(&m.index);
        fs.apply(&m.index);
        let _ = (fs.figures(), fs.wasted_bytes(), fs.largest_files(3));
    }
}

/// Every parser of an image's JSON documents over one input: manifests,
/// indexes (with platform choice), image configs, a layout's `index.json`
/// (with tag picking), a `docker save` `manifest.json`, a kubelet stats
/// summary. Each must answer, never panic; what they answer is not looked
/// at.
pub fn parse_untrusted_document(data: &[u8]) {
    let what = "fuzz";
    let digest = Digest::sha256(data);
    let blob = Blob {
        bytes: bytes::Bytes::copy_from_slice(data),
        digest: digest.clone(),
        media_type: None,
    };
    let _ = classify(what, &blob);
    let arm = PlatformSelector::One {
        platform: Platform::new("linux", "arm64", Some("v8")),
        explicit: true,
    };
    for sel in [PlatformSelector::default(), PlatformSelector::All, arm] {
        let _ = index_choices(what, &digest, data, &sel);
    }
    let layers = match manifest_parts(what, &digest, data) {
        Ok(Some(parts)) => {
            let _ = parse_digest(what, parts.config.digest().as_ref());
            parts.layers.len()
        }
        _ => 0,
    };
    if let Ok(config) = ImageConfig::parse(what, &digest, data) {
        let _ = check_diff_ids(what, &digest, &config.diff_ids, layers);
        let _ = check_single_platform(what, &config.platform, &PlatformSelector::default());
    }
    if let Ok(index) = layout::parse_index(what, data) {
        for tag in [None, Some("latest")] {
            if let Ok(entry) = layout::pick_entry(what, &index, tag) {
                let _ = Digest::parse(&entry.digest);
            }
        }
    }
    let _ = docker_save::parse_manifest_json(what, data);
    let _ = crate::budget::kubelet::parse_stats_summary(data);
}

/// The oracle of the `reference` fuzz target and its corpus replay: any
/// string may be given to the parser without a panic, and a registry or
/// daemon reference that parses prints as one that parses back to itself,
/// on the same transport (reports and messages name images by that
/// spelling). It panics on a violation, as a fuzz oracle must; sizeguard
/// itself never calls it.
pub fn check_reference_round_trip(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = ImageRef::parse(input) else {
        return;
    };
    let _ = parsed.short_name();
    if matches!(parsed, ImageRef::Registry(_) | ImageRef::Daemon { .. }) {
        let printed = parsed.to_string();
        let again = match ImageRef::parse(&printed) {
            Ok(r) => r,
            Err(e) => panic!("{input:?} prints as {printed:?}, which does not parse: {e}"),
        };
        assert_eq!(again.to_string(), printed, "{input:?} does not read back");
        assert_eq!(
            std::mem::discriminant(&again),
            std::mem::discriminant(&parsed),
            "{input:?} prints as {printed:?}, which names another transport"
        );
    }
}
