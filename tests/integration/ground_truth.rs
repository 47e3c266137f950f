//! The acceptance test of the measuring core: a multi-hundred-MB image,
//! measured from a real registry, an OCI layout, an oci-archive and a
//! docker-archive, gzip and zstd, against GNU tar + du ground truth; and
//! peak memory that does not grow with the image.

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::ground_truth::{Truth, unpack_and_measure};
use support::json::{LAYER_FIGURES, u, within_pct};
use support::layout::{BuiltLayer, Comp, LayerSpec, LayoutBuilder};
use support::registry::{Registry, copy_to_docker_archive, copy_to_oci_archive};
use support::run::Run;

/// A Debian-like base: thousands of small files in a deep tree, symlinks
/// short and long, hard links.
fn base_spec() -> LayerSpec {
    let mut s = LayerSpec::new()
        .dir("usr")
        .dir("usr/lib")
        .dir("usr/share")
        .dir("etc");
    for d in 0..40 {
        let dir = format!("usr/share/doc/pkg{d:02}");
        s = s.dir(&dir);
        for f in 0..50 {
            // Sizes straddle block boundaries: 0, small, exactly 4096, 4097…
            let size = [0u64, 17, 4096, 4097, 12_000, 1][f % 6] + (d as u64 * 13);
            s = s.file(&format!("{dir}/file{f:02}"), size);
        }
        s = s.symlink(&format!("{dir}/short"), "file00");
        s = s.symlink(
            &format!("{dir}/long"),
            "../../../../lib/x86_64-linux-gnu/some-library-with-a-rather-long-name.so.1.2.3",
        );
    }
    for i in 0..30 {
        s = s.file(&format!("usr/lib/libthing{i}.so.1"), 150_000 + i * 7_777);
    }
    s.hardlink("usr/lib/libthing0-link.so", "usr/lib/libthing0.so.1")
        .file_compressible("etc/zeros.dat", 3 << 20)
        .file("etc/to-delete.conf", 4321)
        .dir("var/cache/apt")
        .file("var/cache/apt/pkgcache.bin", 2_000_000)
}

/// A "CUDA wheel": a few large incompressible libraries.
fn library_spec(total_mb: u64) -> LayerSpec {
    let mut s = LayerSpec::new().dir("opt/cuda/lib64");
    let n = 4;
    for i in 0..n {
        s = s.file(
            &format!("opt/cuda/lib64/libcublas{i}.so"),
            total_mb * 1024 * 1024 / n,
        );
    }
    s
}

/// Deletes, overwrites and hides files of the base.
fn change_spec() -> LayerSpec {
    LayerSpec::new()
        .whiteout("etc/to-delete.conf")
        .opaque("var/cache/apt")
        .file("var/cache/apt/new.bin", 1000)
        .file("usr/lib/libthing1.so.1", 10)
        .file("app/server", 777_777)
}

struct Image {
    layers: Vec<BuiltLayer>,
    _builder: LayoutBuilder,
}

fn build(dir: &Path, comp: Comp, library_mb: u64) -> Image {
    let mut b = LayoutBuilder::new(dir);
    let layers = vec![
        b.add_layer(&base_spec(), comp),
        b.add_layer(&library_spec(library_mb), comp),
        b.add_layer(&change_spec(), comp),
    ];
    b.add_tagged_image(&layers, "v1");
    Image {
        layers,
        _builder: b,
    }
}

fn measure_json(args: &[&str]) -> Value {
    let out = Run::new(["measure", "--format", "json", "-q"])
        .args(args)
        .run();
    assert_eq!(out.code, 0, "sizeguard {args:?} failed: {}", out.stderr);
    out.json()
}

/// The opaque marker `.wh..wh..opq` is a file to GNU tar but no inode to
/// overlayfs (it becomes an xattr), so GNU tar's count has one extra inode
/// per opaque directory.
fn expected_inodes(truth: &Truth, layer: &Value) -> u64 {
    truth.inodes - layer["opaque_dirs"].as_u64().unwrap()
}

fn check_against_truth(
    report: &Value,
    built: &[BuiltLayer],
    truths: &[Truth],
    form: &str,
    blob_exact: bool,
) {
    let layers = report["images"][0]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), built.len(), "{form}");
    for (i, ((l, b), t)) in layers.iter().zip(built).zip(truths).enumerate() {
        if blob_exact {
            assert_eq!(l["digest"], b.blob_digest.as_str(), "{form} layer {i}");
            assert_eq!(l["compressed_bytes"], b.blob_size, "{form} layer {i}");
        }
        assert_eq!(l["diff_id"], b.diff_id.as_str(), "{form} layer {i}");
        assert_eq!(l["tar_bytes"], b.tar_size, "{form} layer {i}");
        assert_eq!(
            l["content_bytes"], t.content_bytes,
            "{form} layer {i} content"
        );
        let disk = l["disk_bytes"].as_u64().unwrap();
        eprintln!(
            "{form} layer {i}: disk {disk} vs du {} ({:+.3}%), inodes {} vs {}",
            t.disk_bytes,
            (disk as f64 - t.disk_bytes as f64) * 100.0 / t.disk_bytes as f64,
            l["inodes"],
            expected_inodes(t, l)
        );
        assert!(
            within_pct(disk, t.disk_bytes, 1),
            "{form} layer {i}: disk {disk} vs du {}",
            t.disk_bytes
        );
        let inodes = l["inodes"].as_u64().unwrap();
        let want = expected_inodes(t, l);
        assert!(
            within_pct(inodes, want, 1),
            "{form} layer {i}: inodes {inodes} vs {want}"
        );
    }
    // The totals are the sums of the layers.
    let totals = &report["images"][0]["totals"];
    for key in [
        "compressed_bytes",
        "tar_bytes",
        "content_bytes",
        "disk_bytes",
        "inodes",
        "files",
    ] {
        let sum: u64 = layers.iter().map(|l| l[key].as_u64().unwrap()).sum();
        assert_eq!(totals[key], sum, "{form} totals.{key}");
    }
}

/// Figures that do not depend on the compression or the transport.
fn unpacked_figures(report: &Value) -> Vec<Vec<u64>> {
    report["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| LAYER_FIGURES[1..].iter().map(|k| u(&l[*k])).collect())
        .collect()
}

#[test]
fn big_image_matches_gnu_tar_and_du_in_every_form() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let gz = build(&tmp.path().join("gz"), Comp::Gzip, 240);
    let zst = build(&tmp.path().join("zst"), Comp::Zstd, 240);
    let truths: Vec<Truth> = gz
        .layers
        .iter()
        .map(|l| unpack_and_measure(&l.tar_path))
        .collect();
    let total_blob: u64 = gz.layers.iter().map(|l| l.blob_size).sum();
    assert!(
        total_blob > 250_000_000,
        "the image should be multi-hundred-MB, is {total_blob}"
    );

    reg.push_layout(&tmp.path().join("gz"), "v1", "big/app:gz");
    reg.push_layout(&tmp.path().join("zst"), "v1", "big/app:zst");
    let docker_archive = tmp.path().join("docker.tar");
    copy_to_docker_archive(&tmp.path().join("gz"), "v1", &docker_archive);
    let oci_archive = tmp.path().join("oci.tar");
    copy_to_oci_archive(&tmp.path().join("gz"), "v1", &oci_archive);

    let registry_gz = measure_json(&[&reg.reference("big/app:gz")]);
    check_against_truth(&registry_gz, &gz.layers, &truths, "registry gzip", true);
    let registry_zst = measure_json(&[&reg.reference("big/app:zst")]);
    check_against_truth(&registry_zst, &zst.layers, &truths, "registry zstd", true);
    let layout = measure_json(&[&format!("oci:{}:v1", tmp.path().join("gz").display())]);
    check_against_truth(&layout, &gz.layers, &truths, "oci layout", true);
    let archive = measure_json(&[&format!("oci-archive:{}:v1", oci_archive.display())]);
    check_against_truth(&archive, &gz.layers, &truths, "oci-archive", true);
    // docker-archive stores layers uncompressed: what a push would upload
    // is estimated, and marked, against what gzip -6 (the level `docker
    // push` uses) makes of the same tar.
    let docker = measure_json(&[&format!("docker-archive:{}", docker_archive.display())]);
    check_against_truth(&docker, &gz.layers, &truths, "docker-archive", false);
    let pigz = support::require_tool("pigz", "apt-get install pigz");
    let docker_layers = docker["images"][0]["layers"].as_array().unwrap();
    for (l, built) in docker_layers.iter().zip(&gz.layers) {
        assert_eq!(l["compression"], "tar");
        assert_eq!(l["estimate"]["source"], "recompressed", "{l}");
        let out = std::process::Command::new(&pigz)
            .args(["-6", "-c"])
            .arg(&built.tar_path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let (estimate, gzip) = (
            l["compressed_bytes"].as_u64().unwrap(),
            out.stdout.len() as u64,
        );
        println!("docker-archive: estimate {estimate}, pigz -6 {gzip}");
        assert!(
            within_pct(estimate, gzip, 10),
            "estimate {estimate}, pigz -6 {gzip}"
        );
    }

    let reference = unpacked_figures(&registry_gz);
    for (form, r) in [
        ("zstd", &registry_zst),
        ("layout", &layout),
        ("oci-archive", &archive),
        ("docker-archive", &docker),
    ] {
        assert_eq!(
            unpacked_figures(r),
            reference,
            "{form} differs from registry gzip"
        );
    }

    // The merged view: the whiteout, the opaque dir and the overwrite of
    // libthing1 (157777 bytes shadowed by 10) are all wasted bytes.
    let image = &registry_gz["images"][0];
    let wasted = image["wasted_bytes"].as_u64().unwrap();
    assert_eq!(wasted, 4321 + 2_000_000 + (150_000 + 7_777));
    let final_content = image["final"]["content_bytes"].as_u64().unwrap();
    let total_content = image["totals"]["content_bytes"].as_u64().unwrap();
    assert_eq!(final_content, total_content - wasted);
    let top = &image["final"]["largest_files"][0];
    assert!(
        top["path"]
            .as_str()
            .unwrap()
            .starts_with("opt/cuda/lib64/libcublas")
    );
}

/// Peak RSS of one `sizeguard measure` run, from GNU time (which writes its
/// figures to a file, so that sizeguard's stderr stays its own).
fn peak_rss_kib(reference: &str) -> u64 {
    let time = support::require_tool("/usr/bin/time", "apt-get install time");
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = Run::new(["measure", "-q", "--format", "json", reference])
        .wrapped_in([
            time.as_os_str(),
            "-v".as_ref(),
            "-o".as_ref(),
            report.path().as_os_str(),
        ])
        .run();
    assert_eq!(out.code, 0, "measure failed: {}", out.stderr);
    let figures = std::fs::read_to_string(report.path()).unwrap();
    figures
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {figures}"))
}

#[test]
fn peak_memory_is_flat_and_under_64_mib() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let _small = build(&tmp.path().join("small"), Comp::Gzip, 30);
    let _large = build(&tmp.path().join("large"), Comp::Gzip, 600);
    reg.push_layout(&tmp.path().join("small"), "v1", "mem/app:small");
    reg.push_layout(&tmp.path().join("large"), "v1", "mem/app:large");
    let small = peak_rss_kib(&reg.reference("mem/app:small"));
    let large = peak_rss_kib(&reg.reference("mem/app:large"));
    eprintln!("peak RSS: small image {small} KiB, large image {large} KiB");
    assert!(large < 64 * 1024, "peak RSS {large} KiB is over 64 MiB");
    // Flat: a 20x larger image may not cost more than a few MiB more (the
    // allocator's arenas for concurrent layers, not the data).
    assert!(
        large <= small + 8 * 1024,
        "peak RSS grew from {small} KiB to {large} KiB"
    );
}
