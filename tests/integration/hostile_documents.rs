//! Hostile documents and blobs from local sources and node stats: devices
//! and oversized files where blobs should be, manifests, indexes and
//! configs past the 4 MiB cap, indexes that list indexes as images or nest
//! deeply, configs whose diff_ids disagree with the layers, node stats past
//! their cap or with more free than total. Each gives one clear error line
//! naming what was wrong, with the right exit code, under an address-space
//! limit so that an unbounded read fails the test instead of the machine.

use crate::support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::fixture::demo;
use support::layout::{
    BuiltLayer, Comp, ImageDesc, LayerSpec, LayoutBuilder, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use support::run::{Out, Run};
use support::sha256_digest as sha256;

/// Address space a run may use: room for the runtime's thread arenas, none
/// for a document or blob read whole.
const ADDRESS_SPACE: &str = "ulimit -v 2097152; exec \"$0\" \"$@\"";

/// `sizeguard measure --format json REF`, under the address-space limit.
fn measure(reference: &str) -> Out {
    Run::new(["measure", "-q", "--format", "json", reference])
        .wrapped_in(["sh", "-c", ADDRESS_SPACE])
        .run()
}

/// A layout at `dir/layout` holding one two-layer image tagged `v1`.
fn layout(dir: &Path) -> (LayoutBuilder, Vec<BuiltLayer>, ImageDesc) {
    let mut b = LayoutBuilder::new(&dir.join("layout"));
    let l1 = b.add_layer(&LayerSpec::new().dir("etc").file("etc/a", 5000), Comp::Gzip);
    let l2 = b.add_layer(&LayerSpec::new().file("etc/b", 700), Comp::None);
    let img = b.add_image(&[l1.clone(), l2.clone()], "linux", "amd64", None, false);
    b.tag_image(&img, "v1");
    (b, vec![l1, l2], img)
}

fn oci(b: &LayoutBuilder) -> String {
    format!("oci:{}:v1", b.dir().display())
}

/// Replaces a blob of the layout by a symlink to `/dev/zero`.
fn zero_blob(b: &LayoutBuilder, digest: &str) {
    let path = b.blob_path(digest);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
}

#[test]
fn blobs_that_are_devices_are_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, _, _) = layout(tmp.path());
    measure(&oci(&b)).assert_ok();
    // A layer, the config, the manifest: each in a layout of its own.
    for which in ["layer", "config", "manifest"] {
        let (b, layers, img) = layout(&tmp.path().join(which));
        let digest = match which {
            "layer" => layers[0].blob_digest.clone(),
            "config" => img.config_digest.clone(),
            _ => img.digest.clone(),
        };
        zero_blob(&b, &digest);
        measure(&oci(&b)).assert_measure_error(&[&[&digest[7..]], &["not a regular file"]]);
    }
}

#[test]
fn a_layer_longer_than_its_descriptor_is_caught_at_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, layers, _) = layout(tmp.path());
    let path = b.blob_path(&layers[1].blob_digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
    std::fs::write(&path, &bytes).unwrap();
    measure(&oci(&b))
        .assert_measure_error(&[&[&layers[1].blob_digest], &["longer than its descriptor"]]);
    // The same layout as an oci-archive.
    let tar = tmp.path().join("layout.tar");
    tar_dir(b.dir(), &tar);
    measure(&format!("oci-archive:{}:v1", tar.display()))
        .assert_measure_error(&[&[&layers[1].blob_digest], &["longer than its descriptor"]]);
}

/// Writes `dir` as a plain tar at `out`.
fn tar_dir(dir: &Path, out: &Path) {
    let mut t = tar::Builder::new(std::fs::File::create(out).unwrap());
    t.append_dir_all(".", dir).unwrap();
    t.finish().unwrap();
}

/// `bytes` padded with trailing spaces (still the same JSON) to `len`.
fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(len, b' ');
    out
}

const CAP: usize = 4 * 1024 * 1024;

#[test]
fn documents_past_four_mib_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // index.json, as a directory and inside an oci-archive.
    let (b, _, _) = layout(tmp.path());
    let index = b.dir().join("index.json");
    std::fs::write(&index, padded(&std::fs::read(&index).unwrap(), CAP + 1)).unwrap();
    measure(&oci(&b)).assert_measure_error(&[&["index.json"], &["more than the 4194304"]]);
    let tar = tmp.path().join("big-index.tar");
    tar_dir(b.dir(), &tar);
    measure(&format!("oci-archive:{}:v1", tar.display()))
        .assert_measure_error(&[&["index.json"], &["more than the 4194304"]]);

    // A manifest, addressed by its true digest and size.
    let mut b = LayoutBuilder::new(&tmp.path().join("big-manifest"));
    let l = b.add_layer(&LayerSpec::new().file("a", 10), Comp::Gzip);
    let img = b.add_image(&[l], "linux", "amd64", None, false);
    let manifest = std::fs::read(b.blob_path(&img.digest)).unwrap();
    let huge = b.add_raw_manifest(&padded(&manifest, CAP + 10), MT_OCI_MANIFEST, None);
    b.tag_image(&huge, "v1");
    measure(&oci(&b)).assert_measure_error(&[&[&huge.digest], &["more than the 4.00 MiB"]]);

    // A config, the same way.
    let mut b = LayoutBuilder::new(&tmp.path().join("big-config"));
    let l = b.add_layer(&LayerSpec::new().file("a", 10), Comp::Gzip);
    let config = json!({"os": "linux", "architecture": "amd64",
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id]},
        "padding": "x".repeat(CAP)});
    let platform = support::layout::Platform::new("linux", "amd64", None);
    let img = b.add_image_with_config(&[l], &config, platform, false);
    b.tag_image(&img, "v1");
    measure(&oci(&b)).assert_measure_error(&[&[&img.config_digest], &["more than the 4.00 MiB"]]);
}

/// An index (OCI) over raw descriptors, stored and tagged `v1`.
fn tag_raw_index(b: &mut LayoutBuilder, manifests: Vec<Value>) -> ImageDesc {
    let index = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests});
    let desc = b.add_raw_manifest(&serde_json::to_vec(&index).unwrap(), MT_OCI_INDEX, None);
    b.tag_image(&desc, "v1");
    desc
}

fn descriptor(media_type: &str, desc: &ImageDesc) -> Value {
    json!({"mediaType": media_type, "digest": desc.digest, "size": desc.size,
           "platform": {"os": "linux", "architecture": "amd64"}})
}

#[test]
fn indexes_listing_indexes_end_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = LayoutBuilder::new(&tmp.path().join("layout"));
    let l = b.add_layer(&LayerSpec::new().file("a", 10), Comp::Gzip);
    let img = b.add_image(&[l], "linux", "amd64", None, false);
    // An index typed as an image manifest inside another index.
    let inner = tag_raw_index(&mut b, vec![descriptor(MT_OCI_MANIFEST, &img)]);
    let outer = tag_raw_index(&mut b, vec![descriptor(MT_OCI_MANIFEST, &inner)]);
    measure(&oci(&b))
        .assert_measure_error(&[&[&outer.digest], &["lists another index as an image"]]);
    // A chain of 500 indexes, each typed as an index in the next.
    let mut top = inner;
    for _ in 0..500 {
        top = tag_raw_index(&mut b, vec![descriptor(MT_OCI_INDEX, &top)]);
    }
    measure(&oci(&b)).assert_measure_error(&[&["nested image indexes are not supported"]]);
    // An index whose entry points back at the index's own bytes under
    // another name: served, but not what its descriptor addressed.
    let looped = tag_raw_index(&mut b, vec![descriptor(MT_OCI_MANIFEST, &img)]);
    std::fs::copy(b.blob_path(&looped.digest), b.blob_path(&img.digest)).unwrap();
    measure(&oci(&b)).assert_measure_error(&[&[&img.digest], &["the descriptor says"]]);
}

#[test]
fn an_index_offering_hundreds_of_images_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = LayoutBuilder::new(&tmp.path().join("layout"));
    let l = b.add_layer(&LayerSpec::new().file("a", 10), Comp::Gzip);
    let img = b.add_image(&[l], "linux", "amd64", None, false);
    let entries = vec![descriptor(MT_OCI_MANIFEST, &img); 129];
    let index = tag_raw_index(&mut b, entries);
    let out = Run::new(["measure", "-q", "--platform", "all", &oci(&b)]).run();
    out.assert_measure_error(&[
        &[&index.digest[7..]],
        &["129 image manifests, more than the 128"],
    ]);
}

#[test]
fn a_config_whose_diff_ids_disagree_with_the_layers_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = LayoutBuilder::new(&tmp.path().join("layout"));
    let l1 = b.add_layer(&LayerSpec::new().file("a", 10), Comp::Gzip);
    let l2 = b.add_layer(&LayerSpec::new().file("b", 10), Comp::Gzip);
    let config = json!({"os": "linux", "architecture": "amd64",
        "rootfs": {"type": "layers", "diff_ids": [l1.diff_id]}});
    let platform = support::layout::Platform::new("linux", "amd64", None);
    let img = b.add_image_with_config(&[l1, l2], &config, platform, false);
    b.tag_image(&img, "v1");
    measure(&oci(&b))
        .assert_measure_error(&[&[&img.config_digest], &["lists 1 diff_ids for 2 layers"]]);
}

/// A docker-archive (legacy `docker save` layout) of one image: `config`
/// as its config, and plain-tar `layers`; `manifest_pad` bytes of spaces
/// after `manifest.json`'s JSON.
fn docker_archive(out: &Path, config: &Value, layers: &[&[u8]], manifest_pad: usize) {
    let mut t = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
    };
    let config = serde_json::to_vec(config).unwrap();
    add("config.json", &config);
    let mut names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("l{i}/layer.tar");
        add(&name, layer);
        names.push(name);
    }
    let manifest = json!([{"Config": "config.json", "RepoTags": ["app:v1"], "Layers": names}]);
    let mut manifest = serde_json::to_vec(&manifest).unwrap();
    manifest.resize(manifest.len() + manifest_pad, b' ');
    add("manifest.json", &manifest);
    t.into_inner().unwrap();
}

/// A plain tar layer holding one file.
fn layer_tar(name: &str) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, name, &b"abc"[..]).unwrap();
    t.into_inner().unwrap()
}

#[test]
fn docker_archive_documents_are_capped_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (layer_tar("a"), layer_tar("b"));
    let config = |ids: &[&[u8]]| {
        let ids: Vec<String> = ids.iter().map(|l| sha256(l)).collect();
        json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": ids}})
    };
    let path = |name: &str| -> PathBuf { tmp.path().join(name) };
    let reference = |p: &Path| format!("docker-archive:{}", p.display());

    docker_archive(&path("ok.tar"), &config(&[&a, &b]), &[&a, &b], 0);
    measure(&reference(&path("ok.tar"))).assert_ok();

    docker_archive(&path("big.tar"), &config(&[&a, &b]), &[&a, &b], CAP);
    measure(&reference(&path("big.tar")))
        .assert_measure_error(&[&["manifest.json"], &["more than the 4194304"]]);

    docker_archive(&path("ids.tar"), &config(&[&a]), &[&a, &b], 0);
    measure(&reference(&path("ids.tar")))
        .assert_measure_error(&[&["lists 1 diff_ids for 2 layers"]]);
}

/// A tar of `members` (name, bytes), in order.
fn tar_of(out: &Path, members: &[(String, Vec<u8>)]) {
    let mut t = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    t.into_inner().unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// go-containerregistry's tarball (`crane pull`, kaniko, ko): the config as
/// `sha256:<hex>`, each layer the compressed blob under `name(i, blob)`.
fn crane_archive(
    out: &Path,
    diff_ids: &[String],
    blobs: &[Vec<u8>],
    name: impl Fn(usize, &[u8]) -> String,
) {
    let config = serde_json::to_vec(&json!({
        "os": "linux", "architecture": "amd64",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_name = sha256(&config);
    let mut members = vec![(config_name.clone(), config)];
    let mut names = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        names.push(name(i, blob));
        members.push((name(i, blob), blob.clone()));
    }
    let manifest = json!([{"Config": config_name, "RepoTags": ["app:v1"], "Layers": names}]);
    members.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    tar_of(out, &members);
}

#[test]
fn compressed_archive_members_are_checked_against_their_names_and_diff_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (layer_tar("a"), layer_tar("b"));
    let (ga, gb) = (gzip(&a), gzip(&b));
    let ids = vec![sha256(&a), sha256(&b)];
    let blobs = vec![ga.clone(), gb.clone()];
    let by_digest = |_: usize, blob: &[u8]| format!("{}.tar.gz", &sha256(blob)[7..]);
    let path = |name: &str| -> PathBuf { tmp.path().join(name) };
    let reference = |p: &Path| format!("docker-archive:{}", p.display());

    // As crane writes it: each layer is the registry's blob, exact.
    crane_archive(&path("crane.tar"), &ids, &blobs, by_digest);
    let out = measure(&reference(&path("crane.tar")));
    let report = out.assert_ok().json();
    let layers = report["images"][0]["layers"].as_array().unwrap();
    for (layer, blob) in layers.iter().zip(&blobs) {
        assert_eq!(layer["digest"], json!(sha256(blob)), "{layer}");
        assert_eq!(layer["compressed_bytes"], json!(blob.len()), "{layer}");
        assert!(
            layer["media_type"].as_str().unwrap().ends_with("gzip"),
            "{layer}"
        );
        assert!(layer.get("estimate").is_none(), "{layer}");
    }

    // A member whose content is not the blob its name says.
    let swapped = |i: usize, _: &[u8]| format!("{}.tar.gz", &sha256(&blobs[1 - i])[7..]);
    crane_archive(&path("swapped.tar"), &ids, &blobs, swapped);
    measure(&reference(&path("swapped.tar"))).assert_measure_error(&[
        &["digest mismatch"],
        &[&sha256(&ga)[7..], &sha256(&gb)[7..]],
    ]);

    // The right blobs, but the config names other content.
    let other = vec![sha256(&layer_tar("c")), ids[1].clone()];
    crane_archive(&path("diff-id.tar"), &other, &blobs, by_digest);
    measure(&reference(&path("diff-id.tar")))
        .assert_measure_error(&[&["uncompressed digest mismatch"], &[&other[0]]]);

    // A compressed member whose name is no digest is known by its hash.
    let legacy = |i: usize, _: &[u8]| format!("l{i}/layer.tar");
    crane_archive(&path("unnamed.tar"), &ids, &blobs, legacy);
    let report = measure(&reference(&path("unnamed.tar"))).assert_ok().json();
    let digests = |r: &Value| -> Vec<Value> {
        r["images"][0]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect()
    };
    assert_eq!(digests(&report), [json!(sha256(&ga)), json!(sha256(&gb))]);
    // The same member listed twice, spelt `./…`: one layer, hashed once.
    let twice = |_: usize, _: &[u8]| "./l0/layer.tar".to_string();
    let same_ids = vec![ids[0].clone(), ids[0].clone()];
    crane_archive(
        &path("twice.tar"),
        &same_ids,
        &[ga.clone(), ga.clone()],
        twice,
    );
    let report = measure(&reference(&path("twice.tar"))).assert_ok().json();
    assert_eq!(digests(&report), [json!(sha256(&ga)), json!(sha256(&ga))]);

    // As `docker save` writes it: the tar, whose pushed size is estimated.
    crane_archive(&path("saved.tar"), &ids, &[a.clone(), b.clone()], legacy);
    let report = measure(&reference(&path("saved.tar"))).assert_ok().json();
    for layer in report["images"][0]["layers"].as_array().unwrap() {
        assert_eq!(
            layer["estimate"],
            json!({"source": "recompressed"}),
            "{layer}"
        );
        assert!(layer["compressed_bytes"].as_u64().unwrap() < layer["tar_bytes"].as_u64().unwrap());
    }
}

#[test]
fn go_nulls_read_as_empty_and_an_empty_index_falls_back_to_manifest_json() {
    let tmp = tempfile::tempdir().unwrap();
    let a = layer_tar("a");
    let config = serde_json::to_vec(&json!({
        "os": "linux", "architecture": "amd64", "config": {"Env": null, "Labels": null},
        "history": null, "rootfs": {"type": "layers", "diff_ids": [sha256(&a)]}
    }))
    .unwrap();
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", &sha256(bytes)[7..]);
    // Docker 25's `docker save`: an OCI layout whose index lists nothing,
    // and the `manifest.json` beside it.
    let manifest = json!([{"Config": blob(&config), "RepoTags": ["app:v1"], "Layers": [blob(&a)]}]);
    let members = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".to_string(),
            br#"{"schemaVersion":2,"manifests":null}"#.to_vec(),
        ),
        (blob(&config), config.clone()),
        (blob(&a), a.clone()),
        (
            "manifest.json".to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
    ];
    let archive = tmp.path().join("docker25.tar");
    tar_of(&archive, &members);
    for reference in [
        format!("oci-archive:{}", archive.display()),
        format!("oci-archive:{}:v1", archive.display()),
        format!("docker-archive:{}", archive.display()),
        format!("docker-archive:{}:app:v1", archive.display()),
    ] {
        let report = measure(&reference).assert_ok().json();
        let layer = &report["images"][0]["layers"][0];
        assert_eq!(layer["digest"], json!(sha256(&a)), "{reference}");
        assert_eq!(
            layer["estimate"],
            json!({"source": "recompressed"}),
            "{reference}"
        );
    }
    measure(&format!("oci-archive:{}:v2", archive.display()))
        .assert_measure_error(&[&["no image tagged \"v2\""], &["app:v1"]]);
    // Without a manifest.json, an empty index is an empty layout.
    tar_of(&tmp.path().join("empty.tar"), &members[..4]);
    measure(&format!(
        "oci-archive:{}",
        tmp.path().join("empty.tar").display()
    ))
    .assert_measure_error(&[&["holds no images"]]);
}

/// `sizeguard check` of the demo fixture against a node given as ARGS.
fn check_node(args: &[&str], stdin: Option<String>) -> Out {
    let (v1, v2) = (demo("v1"), demo("v2"));
    let mut run = Run::new(["check", "--no-config", "--format", "json"])
        .args(["--candidate", &v2, "--baseline", &v1])
        .args(args)
        .wrapped_in(["sh", "-c", ADDRESS_SPACE]);
    if let Some(text) = stdin {
        run = run.stdin(text);
    }
    run.run()
}

fn stats(capacity: u64, available: u64, inodes: u64, inodes_free: u64) -> String {
    json!({"node": {"nodeName": "n1", "runtime": {"imageFs": {
        "capacityBytes": capacity, "availableBytes": available,
        "inodes": inodes, "inodesFree": inodes_free}}}})
    .to_string()
}

#[test]
fn node_stats_past_the_cap_are_refused_from_a_file_and_from_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stats.json");
    let big = padded(
        stats(1 << 40, 1 << 39, 100, 50).as_bytes(),
        16 * 1024 * 1024 + 1,
    );
    std::fs::write(&file, &big).unwrap();
    let out = check_node(&["--node-stats", file.to_str().unwrap()], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error().contains("more than 16.0 MiB"), "{}", out.stderr);
    let out = check_node(&["--node-stats", "/dev/zero"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error().contains("more than 16.0 MiB"), "{}", out.stderr);
    let out = check_node(
        &["--node-stats", "-"],
        Some(String::from_utf8(big).unwrap()),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.error().contains("standard input: more than 16.0 MiB"),
        "{}",
        out.stderr
    );
    // Just under the cap is read.
    let fits = padded(
        stats(1 << 40, 1 << 39, 100, 50).as_bytes(),
        16 * 1024 * 1024,
    );
    std::fs::write(&file, &fits).unwrap();
    check_node(&["--node-stats", file.to_str().unwrap()], None).assert_ok();
}

#[test]
fn node_stats_with_more_free_than_total_are_refused_as_the_flags_are() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stats.json");
    let cases: [(String, [&str; 4]); 2] = [
        (
            stats(1000, 1001, 100, 50),
            ["--node-capacity", "1000", "--node-available", "1001"],
        ),
        (
            stats(1 << 40, 1 << 39, 100, 101),
            ["--node-inodes", "100", "--node-inodes-free", "101"],
        ),
    ];
    for (summary, flags) in cases {
        std::fs::write(&file, &summary).unwrap();
        let from_file = check_node(&["--node-stats", file.to_str().unwrap()], None);
        let mut flags = flags.to_vec();
        if flags[0] == "--node-inodes" {
            flags.extend(["--node-capacity", "1Ti", "--node-available", "512Gi"]);
        }
        let from_flags = check_node(&flags, None);
        assert_eq!((from_file.code, from_flags.code), (2, 2), "{summary}");
        let reason = from_flags.error().rsplit(": ").next().unwrap().to_string();
        assert!(
            from_file.error().ends_with(&reason),
            "{} / {}",
            from_file.error(),
            from_flags.error()
        );
    }
}

/// A layer media type carrying a carriage return and a workflow command:
/// the error line quotes it, escaped, and stays one line for GitHub's
/// runner (which ends a line at a lone `\r` as well as at `\n`).
#[test]
fn a_carriage_return_in_a_media_type_cannot_forge_a_workflow_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut b, _, img) = layout(tmp.path());
    let forged = "application/x\r::error::forged\r::stop-commands::x\u{2028}y";
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(b.blob_path(&img.digest)).unwrap()).unwrap();
    manifest["layers"][0]["mediaType"] = json!(forged);
    let raw = b.add_raw_manifest(
        &serde_json::to_vec(&manifest).unwrap(),
        MT_OCI_MANIFEST,
        img.platform.clone(),
    );
    b.tag_image(&raw, "v1");
    let out = Run::new(["measure", "-q", "--format", "json", &oci(&b)])
        .env("GITHUB_ACTIONS", "true")
        .run();
    out.assert_measure_error(&[&["unsupported layer media type"]]);
    assert!(
        !out.stderr.contains(['\r', '\u{2028}']),
        "a raw line break reached the log: {:?}",
        out.stderr
    );
    assert_eq!(
        out.stderr.trim_end().split('\n').count(),
        1,
        "{:?}",
        out.stderr
    );
    assert!(
        out.error()
            .contains("application/x\\r::error::forged\\r::stop-commands::x\\u{2028}y"),
        "{:?}",
        out.stderr
    );
}
