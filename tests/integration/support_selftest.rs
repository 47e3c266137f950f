//! Self-test of the shared test support library (tests/integration/support).

use crate::support;

use std::path::{Path, PathBuf};

use support::credentials::{basic_auth, write_auth_file, write_docker_config};
use support::ground_truth::unpack_and_measure;
use support::layout::*;
use support::registry::{self, Registry, RegistryOpts, http_status};
use support::run::Run;

const LONG_TARGET: &str = "../../usr/share/some/really/long/target/path/for/a/symlink/entry/ab.so"; // 70 chars

struct Built {
    amd64: ImageDesc,
    arm64: ImageDesc,
    att: ImageDesc,
    index: ImageDesc,
    gz: BuiltLayer,
    zst: BuiltLayer,
    raw: BuiltLayer,
    docker_img: ImageDesc,
    docker_list: ImageDesc,
    _b: LayoutBuilder,
}

fn build(dir: &Path) -> Built {
    assert_eq!(LONG_TARGET.len(), 70);
    let mut b = LayoutBuilder::new(dir);
    let gz = b.add_layer(
        &LayerSpec::new()
            .dir("etc")
            .file_bytes("etc/hostname", b"sizeguard\n")
            .dir("usr")
            .dir("usr/bin")
            .file("usr/bin/tool", 300_000)
            .hardlink("usr/bin/tool-link", "usr/bin/tool")
            .symlink("usr/bin/long", LONG_TARGET)
            .file_compressible("usr/zeros", 1 << 20)
            .whiteout("etc/removed.conf")
            .dir("var")
            .dir("var/cache")
            .opaque("var/cache")
            .fifo("var/pipe")
            .file(&format!("deep/{}/f", "x".repeat(120)), 10),
        Comp::Gzip,
    );
    let zst = b.add_layer(
        &LayerSpec::new().dir("opt").file("opt/blob", 200_000),
        Comp::Zstd,
    );
    let raw = b.add_layer(&LayerSpec::new().file("plain", 5000), Comp::None);
    let arm_layer = b.add_layer(&LayerSpec::new().file("arm", 1234), Comp::Gzip);

    let multi = b.add_multi_platform_index(
        &[gz.clone(), zst.clone(), raw.clone()],
        std::slice::from_ref(&arm_layer),
        "multi",
    );
    b.tag_image(&multi.amd64, "amd64");
    b.tag_image(&multi.arm64, "arm64");

    let docker = b.add_docker_list(
        &[gz.clone(), raw.clone()],
        &[arm_layer],
        "docker",
        "dockerlist",
    );
    Built {
        amd64: multi.amd64,
        arm64: multi.arm64,
        att: multi.attestation,
        index: multi.index,
        gz,
        zst,
        raw,
        docker_img: docker.image,
        docker_list: docker.list,
        _b: b,
    }
}

#[test]
fn layout_is_deterministic_and_well_formed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build(&tmp.path().join("a"));
    let b = build(&tmp.path().join("b"));
    assert_eq!(a.index, b.index);
    assert_eq!(a.amd64, b.amd64);
    assert_eq!(a.gz.blob_digest, b.gz.blob_digest);
    assert_eq!(a.zst.blob_digest, b.zst.blob_digest);
    assert_eq!(a.docker_list, b.docker_list);
    assert_eq!(a.raw.blob_digest, a.raw.diff_id);
    assert_eq!(a.raw.blob_size, a.raw.tar_size);
    // incompressible content really is incompressible
    assert!(a.zst.blob_size > 200_000, "zstd blob {}", a.zst.blob_size);
    // gzip layer: 300k random + 1 MiB zeros -> well under tar size but > 300k
    assert!(
        a.gz.blob_size > 300_000 && a.gz.blob_size < 400_000,
        "gz blob {}",
        a.gz.blob_size
    );

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("a/index.json")).unwrap()).unwrap();
    println!(
        "index.json: {}",
        serde_json::to_string_pretty(&index).unwrap()
    );
    let nested: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a._b.blob_path(&a.index.digest)).unwrap()).unwrap();
    println!(
        "nested index: {}",
        serde_json::to_string_pretty(&nested).unwrap()
    );
    assert_eq!(nested["manifests"][2]["platform"]["os"], "unknown");
    assert_eq!(
        nested["manifests"][2]["annotations"][ANN_REF_DIGEST],
        a.amd64.digest.as_str()
    );
    assert_eq!(nested["manifests"][1]["platform"]["variant"], "v8");
    assert_eq!(a.att.platform.as_ref().unwrap().architecture, "unknown");
    let _ = (&a.arm64, &a.docker_img);

    // tar listing via GNU tar
    let out = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&a.gz.tar_path)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    println!("{listing}");
    assert!(out.status.success());
    assert!(listing.contains("etc/.wh.removed.conf"));
    assert!(listing.contains("var/cache/.wh..wh..opq"));
    assert!(listing.contains(&format!("usr/bin/long -> {LONG_TARGET}")));
    assert!(listing.contains("usr/bin/tool-link link to usr/bin/tool"));
    assert!(listing.contains("etc/\n") || listing.contains("etc/"));
}

#[test]
fn ground_truth_measures_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build(&tmp.path().join("a"));
    let t = unpack_and_measure(&a.gz.tar_path);
    println!("{t:?}");
    // regular files: hostname(10) + tool(300000, hardlinked once) + zeros(1MiB) + 2 empty wh + deep f(10)
    assert_eq!(t.content_bytes, 10 + 300_000 + (1 << 20) + 10);
    // inodes: root, etc, hostname, usr, usr/bin, tool(+link), long, zeros, .wh.removed.conf,
    // var, var/cache, opq, pipe, deep, deep/xxx, deep/xxx/f  = 16
    assert_eq!(t.inodes, 16);
    assert!(t.disk_bytes >= 300_000 + (1 << 20));
}

#[test]
fn plain_registry_push_index() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build(&tmp.path().join("a"));
    let reg = Registry::start();
    println!("registry at {}", reg.url());
    reg.push_layout(&tmp.path().join("a"), "multi", "test/multi:v1");
    for d in [
        &a.index.digest,
        &a.amd64.digest,
        &a.arm64.digest,
        &a.att.digest,
    ] {
        let status = http_status(&reg.addr, &format!("/v2/test/multi/manifests/{d}"));
        assert_eq!(status, Some(200), "manifest {d} not in registry");
    }
    for l in [&a.gz, &a.zst, &a.raw] {
        let status = http_status(
            &reg.addr,
            &format!("/v2/test/multi/blobs/{}", l.blob_digest),
        );
        assert_eq!(
            status,
            Some(200),
            "blob {} ({}) not in registry",
            l.blob_digest,
            l.media_type
        );
    }
    // Docker schema-2 image and manifest list
    reg.push_layout(&tmp.path().join("a"), "docker", "test/docker:v1");
    assert_eq!(
        http_status(
            &reg.addr,
            &format!("/v2/test/docker/manifests/{}", a.docker_img.digest)
        ),
        Some(200)
    );
    reg.push_layout(&tmp.path().join("a"), "dockerlist", "test/dockerlist:v1");
    assert_eq!(
        http_status(
            &reg.addr,
            &format!("/v2/test/dockerlist/manifests/{}", a.docker_list.digest)
        ),
        Some(200)
    );
}

#[test]
fn auth_tls_registry_push_image() {
    let tmp = tempfile::tempdir().unwrap();
    let _a = build(&tmp.path().join("a"));
    let reg = Registry::start_with(RegistryOpts {
        htpasswd: Some(("alice".into(), "s3cret".into())),
        tls: true,
        notifications: Some("http://127.0.0.1:9/events".into()),
        ..Default::default()
    });
    println!("registry at {} ca={:?}", reg.url(), reg.ca_cert);
    assert!(reg.ca_cert.as_ref().unwrap().exists());
    reg.push_layout(&tmp.path().join("a"), "arm64", "secure/img:v1");
    // wrong credentials must fail
    let bad = std::panic::catch_unwind(|| {
        let mut args = vec!["copy".to_string(), "--dest-tls-verify=true".into()];
        args.push("--dest-cert-dir".into());
        args.push(reg.cert_dir.as_ref().unwrap().display().to_string());
        args.push("--dest-creds".into());
        args.push("alice:wrong".into());
        args.push(format!("oci:{}:arm64", tmp.path().join("a").display()));
        args.push(format!("docker://{}/secure/img:v2", reg.addr));
        registry::run_skopeo(&args, None);
    });
    assert!(bad.is_err(), "push with wrong password succeeded");
}

#[test]
fn archives() {
    let tmp = tempfile::tempdir().unwrap();
    let _a = build(&tmp.path().join("a"));
    let da = tmp.path().join("img.docker.tar");
    // "amd64" has a zstd layer: skopeo 1.9 refuses to write that to docker-archive.
    let bad = std::panic::catch_unwind(|| {
        registry::copy_to_docker_archive(&tmp.path().join("a"), "amd64", &da)
    });
    assert!(bad.is_err());
    registry::copy_to_docker_archive(&tmp.path().join("a"), "docker", &da);
    let oa = tmp.path().join("img.oci.tar");
    registry::copy_to_oci_archive(&tmp.path().join("a"), "multi", &oa);
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(&oa)
        .arg("index.json")
        .output()
        .unwrap();
    let idx = String::from_utf8_lossy(&out.stdout);
    println!("oci-archive index.json: {idx}");
    assert!(
        idx.contains(&_a.index.digest),
        "oci-archive does not preserve the index digest"
    );
    for f in [&da, &oa] {
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(f)
            .output()
            .unwrap();
        println!("{}:\n{}", f.display(), String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success());
    }
}

/// A bash script in `dir` for [`Run::script`].
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("script.sh");
    std::fs::write(&path, format!("set -euo pipefail\n{body}\n")).unwrap();
    path
}

/// Whether `run` fails one of the runner's checks.
fn rejected(run: Run) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run())).is_err()
}

#[test]
fn runner_isolates_home_and_puts_the_binary_on_path() {
    let tmp = tempfile::tempdir().unwrap();
    let real_home = std::env::var("HOME").unwrap_or_default();
    let out = Run::script(script(
        tmp.path(),
        r#"[ -z "$(ls -A "$HOME")" ] || { echo "HOME not empty"; exit 1; }
[ "$HOME" != "$REAL_HOME" ] || { echo "real HOME"; exit 1; }
[ -z "${GITHUB_ACTIONS:-}${GITHUB_TOKEN:-}${DOCKER_CONFIG:-}${REGISTRY_AUTH_FILE:-}" ] || { echo "not scrubbed"; exit 1; }
[ "$SIZEGUARD_NO_CACHE" = 1 ] || { echo "cache on"; exit 1; }
[ "$(command -v sizeguard)" = "$SIZEGUARD_BIN" ] || { echo "not on PATH"; exit 1; }
[ "$(cat)" = "in" ] || { echo "no stdin"; exit 1; }
pwd"#,
    ))
    .env("REAL_HOME", &real_home)
    .cwd(tmp.path())
    .stdin("in")
    .run();
    out.assert_ok();
    assert_eq!(
        Path::new(out.stdout.trim()).canonicalize().unwrap(),
        tmp.path().canonicalize().unwrap()
    );
}

#[test]
fn runner_rejects_noisy_failures_and_printed_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let fails = |body: &str| Run::script(script(tmp.path(), body));
    // A failed step: one annotation and one sizeguard error line is fine.
    fails("echo '::error title=t::why'; echo 'sizeguard: error: why' >&2; exit 2").run();
    assert!(rejected(fails(
        "echo 'sizeguard: error: a' >&2; echo 'sizeguard: error: b' >&2; exit 2"
    )));
    assert!(rejected(fails("echo 'oops' >&2; exit 2")));
    assert!(rejected(fails("exit 3")));
    assert!(rejected(fails("echo 'thread main panicked at x'; exit 0")));
    assert!(rejected(fails("echo 's3cret'").secret("s3cret")));

    // sizeguard itself: a failure is one error line (the runner checked).
    let out = Run::new(["measure", "oci:/nonexistent/layout:v1"]).run();
    assert!(out.code >= 2, "{}", out.stderr);
    assert!(
        out.error().contains("/nonexistent/layout"),
        "{}",
        out.stderr
    );
}

#[test]
fn credential_files_use_the_auths_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_docker_config(&tmp.path().join("docker"), "127.0.0.1:5000", "u", "p");
    let file = write_auth_file(&tmp.path().join("c/auth.json"), "127.0.0.1:5000", "u", "p");
    assert_eq!(basic_auth("u", "p"), "dTpw");
    for path in [dir.join("config.json"), file] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"auths": {"127.0.0.1:5000": {"auth": "dTpw"}}}),
            "{}",
            path.display()
        );
    }
}
