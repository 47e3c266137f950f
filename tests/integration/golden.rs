//! Golden reports: the JSON (and the Markdown and table renderings) of
//! `measure` and `check` over the committed fixture, its archive forms, and
//! the same pair pushed to a loopback registry, byte for byte. A change to
//! what sizeguard reports must show up here as a reviewed diff of
//! `tests/golden/`, never as a side effect of moving code around.
//!
//! Regenerate after an intended change with
//! `SIZEGUARD_REGEN_GOLDEN=1 cargo test --test integration golden::`.

use crate::support;

use std::path::{Path, PathBuf};

use support::layout::{Comp, LayerSpec, LayoutBuilder};
use support::registry::{Registry, copy_to_docker_archive, copy_to_oci_archive};
use support::run::sizeguard;

const FIXTURE: &str = "fixtures/demo";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with the stored golden file (or writes it when
/// regenerating). Machine-specific parts (a registry's port, a temporary
/// directory) are replaced by the caller before this.
#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("SIZEGUARD_REGEN_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (create it with SIZEGUARD_REGEN_GOLDEN=1)",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             (if the change is intended, regenerate with SIZEGUARD_REGEN_GOLDEN=1 and review the diff)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

/// Runs sizeguard and returns its standard output, which must be a report
/// (exit 0, or 1 for a failing check when `allow_fail`).
#[track_caller]
fn report(args: &[&str], allow_fail: bool) -> String {
    let out = sizeguard(args, &[], None);
    let ok = out.code == 0 || (allow_fail && out.code == 1);
    assert!(
        ok,
        "sizeguard {args:?} exited {}:\n{}",
        out.code, out.stderr
    );
    out.stdout
}

/// A check of v2 against v1 that fires fail, warn and pass rules and
/// carries a node, so every section of every renderer is exercised.
fn check_args<'a>(candidate: &'a str, baseline: &'a str, format: &'a str) -> Vec<&'a str> {
    vec![
        "check",
        "--no-config",
        "-q",
        "--candidate",
        candidate,
        "--baseline",
        baseline,
        "--format",
        format,
        "--node-capacity",
        "2000000",
        "--node-available",
        "700000",
        "--node-inodes",
        "1000",
        "--node-inodes-free",
        "200",
        "--max-growth",
        "disk_bytes=20%",
        "--warn-growth",
        "pull_bytes=1%",
        "--warn-layers",
        "2",
        "--max-unpacked-size",
        "10MiB",
    ]
}

#[test]
fn fixture_reports_are_unchanged() {
    let v1 = format!("oci:{FIXTURE}:v1");
    let v2 = format!("oci:{FIXTURE}:v2");
    assert_golden(
        "measure-fixture.json",
        &report(&["measure", "-q", "--format", "json", &v1, &v2], false),
    );
    assert_golden(
        "measure-fixture.txt",
        &report(&["measure", "-q", &v1, &v2], false),
    );
    for (format, ext) in [("json", "json"), ("markdown", "md"), ("table", "txt")] {
        assert_golden(
            &format!("check-fixture.{ext}"),
            &report(&check_args(&v2, &v1, format), true),
        );
    }
}

#[test]
fn archive_reports_are_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("demo-oci.tar");
    let docker = tmp.path().join("demo-docker.tar");
    copy_to_oci_archive(Path::new(FIXTURE), "v2", &oci);
    // Docker archives cannot hold the fixture's zstd layer: a gzip-only
    // image built the same deterministic way.
    let layout = tmp.path().join("gzip-layout");
    let mut b = LayoutBuilder::new(&layout);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("etc")
            .file("etc/passwd", 1200)
            .symlink("etc/mtab", "/proc/mounts"),
        Comp::Gzip,
    );
    let app = b.add_layer(
        &LayerSpec::new()
            .whiteout("etc/passwd")
            .dir("srv")
            .file_compressible("srv/data.bin", 40_000)
            .hardlink("srv/data.link", "srv/data.bin"),
        Comp::Gzip,
    );
    let img = b.add_image(&[base, app], "linux", "amd64", None, false);
    b.tag_image(&img, "v1");
    copy_to_docker_archive(&layout, "v1", &docker);
    let oci_ref = format!("oci-archive:{}:v2", oci.display());
    let docker_ref = format!("docker-archive:{}", docker.display());
    let text = report(
        &["measure", "-q", "--format", "json", &oci_ref, &docker_ref],
        false,
    );
    let text = text.replace(&tmp.path().display().to_string(), "TMP");
    assert_golden("measure-archives.json", &text);
}

#[test]
fn registry_reports_are_unchanged() {
    let reg = Registry::start();
    reg.push_layout(Path::new(FIXTURE), "v1", "demo/app:v1");
    reg.push_layout(Path::new(FIXTURE), "v2", "demo/app:v2");
    let v1 = format!("{}/demo/app:v1", reg.addr);
    let v2 = format!("{}/demo/app:v2", reg.addr);
    let normalise = |s: String| s.replace(&reg.addr, "REGISTRY");
    assert_golden(
        "measure-registry.json",
        &normalise(report(
            &["measure", "-q", "--format", "json", &v1, &v2],
            false,
        )),
    );
    for (format, ext) in [("json", "json"), ("markdown", "md")] {
        assert_golden(
            &format!("check-registry.{ext}"),
            &normalise(report(&check_args(&v2, &v1, format), true)),
        );
    }
}
