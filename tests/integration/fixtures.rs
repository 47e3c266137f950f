//! The committed demo fixture (`fixtures/demo`, used by the README's first
//! command) is exactly what the layout builder produces, and sizeguard's
//! figures for it agree with GNU tar + du.
//!
//! Regenerate after changing the builder or the specs below with
//! `SIZEGUARD_REGEN_FIXTURES=1 cargo test --test integration fixtures::`.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::fixture::{DEMO, demo, demo_dir};
use support::ground_truth::unpack_and_measure;
use support::layout::{BuiltLayer, Comp, LayerSpec, LayoutBuilder};
use support::run::Run;

/// v1: a small base and a library layer; v2 adds an application layer that
/// also deletes and shadows files of the base.
fn build(dir: &Path) -> (LayoutBuilder, Vec<BuiltLayer>) {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("etc")
            .file_bytes("etc/os-release", b"PRETTY_NAME=\"sizeguard demo\"\n")
            .file("etc/ld.so.cache", 9000)
            .dir("usr/bin")
            .file("usr/bin/busybox", 60_000)
            .hardlink("usr/bin/sh", "usr/bin/busybox")
            .symlink("usr/bin/ls", "busybox")
            .symlink(
                "usr/bin/python3",
                "../lib/python3.11/site-packages/very/long/path/to/an/interpreter",
            )
            .dir("var/cache")
            .file("var/cache/index.db", 20_000),
        Comp::Gzip,
    );
    let lib = b.add_layer(
        &LayerSpec::new()
            .dir("usr/lib")
            .file("usr/lib/libdemo.so.1", 120_000),
        Comp::Zstd,
    );
    let app = b.add_layer(
        &LayerSpec::new()
            .whiteout("etc/ld.so.cache")
            .opaque("var/cache")
            .file("var/cache/fresh.db", 3000)
            .dir("app")
            .file("app/server", 150_000)
            .file_compressible("app/assets.pak", 64 * 1024),
        Comp::Gzip,
    );
    b.add_tagged_image(&[base.clone(), lib.clone()], "v1");
    b.add_tagged_image(&[base.clone(), lib.clone(), app.clone()], "v2");
    (b, vec![base, lib, app])
}

fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn committed_fixture_is_reproducible_and_measured_right() {
    let fixture = demo_dir();
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("demo");
    let (_b, layers) = build(&fresh);

    if std::env::var_os("SIZEGUARD_REGEN_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        for (rel, bytes) in files_under(&fresh) {
            let dest = fixture.join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(dest, bytes).unwrap();
        }
    }
    assert!(
        files_under(&fixture) == files_under(&fresh),
        "{DEMO} differs from what the builder makes; regenerate with SIZEGUARD_REGEN_FIXTURES=1 cargo test --test integration fixtures::"
    );

    let out = Run::new(["measure", "--format", "json", "-q", &demo("v2")]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    let got = report["images"][0]["layers"].as_array().unwrap();
    assert_eq!(got.len(), 3);
    for (l, b) in got.iter().zip(&layers) {
        let truth = unpack_and_measure(&b.tar_path);
        assert_eq!(l["digest"], b.blob_digest.as_str());
        assert_eq!(l["compressed_bytes"], b.blob_size);
        assert_eq!(l["tar_bytes"], b.tar_size);
        assert_eq!(l["content_bytes"], truth.content_bytes);
        // Small layers: directories dominate, so these are exact, not 1%.
        assert_eq!(l["disk_bytes"], truth.disk_bytes, "layer {}", b.blob_digest);
        let opaque = l["opaque_dirs"].as_u64().unwrap();
        assert_eq!(
            l["inodes"].as_u64().unwrap() + opaque,
            truth.inodes,
            "layer {}",
            b.blob_digest
        );
    }
    let image = &report["images"][0];
    // Shadowed: ld.so.cache (whiteout) and var/cache/index.db (opaque dir).
    assert_eq!(image["wasted_bytes"], 9000 + 20_000);
    assert_eq!(image["final"]["largest_files"][0]["path"], "app/server");
}
