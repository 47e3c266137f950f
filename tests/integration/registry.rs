//! `sizeguard measure` against real registries (CNCF distribution 2.x on
//! loopback, populated with skopeo): plain HTTP, indexes and platforms,
//! Docker media types, basic auth from every credential source, TLS with a
//! throwaway CA, corrupt storage, diff_id verification, unreachable hosts.
//!
//! Every test starts its own registry and keeps its images to a few hundred
//! KB, so the whole file runs in seconds.

use crate::support;

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use support::credentials::{basic_auth, write_auth_file, write_docker_config};
use support::ground_truth::unpack_and_measure;
use support::json::{LAYER_FIGURES, u, within_pct};
use support::layout::*;
use support::proxy::FaultProxy;
use support::registry::{Registry, RegistryOpts};
use support::run::{Out, Run};

// ---------------------------------------------------------------------------
// Running sizeguard
// ---------------------------------------------------------------------------

/// `measure --format json -q` of one reference, extra args appended.
fn measure_json(reference: &str, extra: &[&str]) -> Out {
    Run::new(["measure", "--format", "json", "-q", reference])
        .args(extra)
        .run()
}

fn image_platform(img: &Value) -> String {
    let p = &img["platform"];
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap(),
        p["architecture"].as_str().unwrap()
    );
    if let Some(v) = p["variant"].as_str() {
        s.push('/');
        s.push_str(v);
    }
    s
}

// ---------------------------------------------------------------------------
// 1. Anonymous plain-HTTP registry, every figure against ground truth
// ---------------------------------------------------------------------------

#[test]
fn plain_http_layers_match_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let gz = b.add_layer(
        &LayerSpec::new()
            .dir("etc")
            .file_bytes("etc/hostname", b"sizeguard\n")
            .dir("usr")
            .dir("usr/bin")
            .file("usr/bin/tool", 150_000)
            .hardlink("usr/bin/tool-link", "usr/bin/tool")
            .symlink("usr/bin/short", "tool")
            .symlink("usr/bin/long", &format!("../../{}", "l".repeat(70)))
            .file_compressible("usr/zeros", 64 << 10)
            .whiteout("etc/removed.conf")
            .dir("var")
            .dir("var/cache")
            .opaque("var/cache")
            .file("var/cache/fresh", 5000)
            .fifo("var/pipe"),
        Comp::Gzip,
    );
    let zst = b.add_layer(
        &LayerSpec::new()
            .dir("opt")
            .file("opt/blob", 100_000)
            .file("opt/small", 10)
            .hardlink("opt/blob2", "opt/blob")
            .whiteout("usr/zeros"),
        Comp::Zstd,
    );
    let raw = b.add_layer(
        &LayerSpec::new()
            .dir("srv")
            .opaque("srv")
            .file("srv/data", 20_000)
            .file("nested/implied/dir/f", 3),
        Comp::None,
    );
    let built = [gz, zst, raw];
    let img = b.add_tagged_image(&built, "v1");

    let reg = Registry::start();
    reg.push_layout(&dir, "v1", "test/plain:v1");

    let reference = reg.reference("test/plain:v1");
    let out = measure_json(&reference, &[]);
    out.assert_ok();
    let doc = out.json();
    assert_eq!(doc["schema_version"], 1);
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{doc:#}");
    let image = &images[0];
    assert!(
        image["reference"]
            .as_str()
            .unwrap()
            .contains(&reg.reference("test/plain")),
        "reference: {}",
        image["reference"]
    );
    assert_eq!(image["digest"], img.digest.as_str());
    assert!(image.get("index_digest").is_none(), "{image:#}");
    assert_eq!(image["media_type"], MT_OCI_MANIFEST);
    assert_eq!(
        image["platform"],
        json!({"os": "linux", "architecture": "amd64"})
    );
    assert_eq!(u(&image["manifest_bytes"]), img.size);
    assert_eq!(image["config_digest"], img.config_digest.as_str());
    assert_eq!(
        u(&image["config_bytes"]),
        fs::metadata(b.blob_path(&img.config_digest)).unwrap().len()
    );
    assert_eq!(image["complete"], true);

    let layers = image["layers"].as_array().unwrap();
    assert_eq!(layers.len(), built.len());
    let mut sums = [0u64; LAYER_FIGURES.len()];
    // (compression, opaque markers, whiteouts, regular files) per layer
    let expected = [("gzip", 1, 1, 4), ("zstd", 0, 1, 2), ("tar", 1, 0, 2)];
    for (i, (l, want)) in layers.iter().zip(&built).enumerate() {
        let ctx = format!("layer {i} ({}): {l:#}", want.media_type);
        assert_eq!(l["digest"], want.blob_digest.as_str(), "{ctx}");
        assert_eq!(l["media_type"], want.media_type.as_str(), "{ctx}");
        assert_eq!(l["measured"], true, "{ctx}");
        assert_eq!(l["compression"], expected[i].0, "{ctx}");
        assert_eq!(l["diff_id"], want.diff_id.as_str(), "{ctx}");
        assert_eq!(u(&l["compressed_bytes"]), want.blob_size, "{ctx}");
        assert_eq!(u(&l["tar_bytes"]), want.tar_size, "{ctx}");
        assert_eq!(u(&l["opaque_dirs"]), expected[i].1, "{ctx}");
        assert_eq!(u(&l["whiteouts"]), expected[i].2, "{ctx}");
        assert_eq!(u(&l["files"]), expected[i].3, "{ctx}");

        let truth = unpack_and_measure(&want.tar_path);
        // Content: sum of regular-file sizes, hard links once. Whiteout and
        // opaque markers are empty files to GNU tar, so they add 0: exact.
        assert_eq!(
            u(&l["content_bytes"]),
            truth.content_bytes,
            "{ctx}\n{truth:?}"
        );
        // Inodes: GNU tar unpacks `.wh..wh..opq` as an empty regular file
        // (one inode), while sizeguard counts the marker as a property of its
        // directory (overlayfs stores it as an xattr: no inode). `.wh.NAME`
        // markers are one inode on both sides (overlayfs: a 0/0 char device).
        // After removing the opaque markers from the ground truth the counts
        // must agree exactly (1% of a few dozen inodes rounds to zero).
        let opaque_markers = expected[i].1;
        let truth_inodes = truth.inodes - opaque_markers;
        assert!(
            within_pct(u(&l["inodes"]), truth_inodes, 1),
            "{ctx}\ninodes {} vs ground truth {} - {opaque_markers} opaque marker(s)",
            l["inodes"],
            truth.inodes
        );
        // Disk: du of the tree GNU tar unpacked on this (ext4, 4 KiB block)
        // filesystem. The empty marker files allocate nothing, so no
        // adjustment is needed; 1% absorbs filesystem allocation details.
        assert!(
            within_pct(u(&l["disk_bytes"]), truth.disk_bytes, 1),
            "{ctx}\ndisk_bytes {} vs du {}",
            l["disk_bytes"],
            truth.disk_bytes
        );
        for (k, name) in LAYER_FIGURES.iter().enumerate() {
            sums[k] += u(&l[*name]);
        }
    }
    for (k, name) in LAYER_FIGURES.iter().enumerate() {
        assert_eq!(u(&image["totals"][*name]), sums[k], "totals.{name}");
    }
    // The merged view: usr/zeros is deleted by layer 2, tool and blob are
    // the largest survivors.
    let finals = &image["final"];
    let largest: Vec<&str> = finals["largest_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(largest.first(), Some(&"usr/bin/tool"), "{finals:#}");
    assert!(!largest.contains(&"usr/zeros"), "{finals:#}");
    assert_eq!(
        u(&finals["content_bytes"]),
        10 + 150_000 + 5000 + 100_000 + 10 + 20_000 + 3,
        "{finals:#}"
    );
    // The deleted 64 KiB of zeros are shipped but not visible.
    assert!(u(&image["wasted_bytes"]) >= 64 << 10, "{image:#}");
}

// ---------------------------------------------------------------------------
// 2. Index: platform selection, attestations excluded
// ---------------------------------------------------------------------------

#[test]
fn index_platform_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let amd_layer = b.add_layer(&LayerSpec::new().file("amd", 30_000), Comp::Gzip);
    let arm_layer = b.add_layer(&LayerSpec::new().file("arm", 20_000), Comp::Gzip);
    let multi = b.add_multi_platform_index(
        std::slice::from_ref(&amd_layer),
        std::slice::from_ref(&arm_layer),
        "multi",
    );

    let reg = Registry::start();
    reg.push_layout(&dir, "multi", "test/multi:v1");
    let reference = reg.reference("test/multi:v1");

    // Default: linux/amd64 only.
    let out = measure_json(&reference, &[]);
    out.assert_ok();
    let doc = out.json();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{doc:#}");
    assert_eq!(images[0]["digest"], multi.amd64.digest.as_str());
    assert_eq!(images[0]["index_digest"], multi.index.digest.as_str());
    assert_eq!(image_platform(&images[0]), "linux/amd64");
    assert_eq!(
        images[0]["layers"][0]["digest"],
        amd_layer.blob_digest.as_str()
    );

    // A variant-less request matches linux/arm64/v8.
    let out = measure_json(&reference, &["--platform", "linux/arm64"]);
    out.assert_ok();
    let doc = out.json();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{doc:#}");
    assert_eq!(images[0]["digest"], multi.arm64.digest.as_str());
    assert_eq!(image_platform(&images[0]), "linux/arm64/v8");
    assert_eq!(
        images[0]["layers"][0]["digest"],
        arm_layer.blob_digest.as_str()
    );
    assert_eq!(u(&images[0]["layers"][0]["content_bytes"]), 20_000);

    // all: both images, never the attestation.
    let out = measure_json(&reference, &["--platform", "all"]);
    out.assert_ok();
    let doc = out.json();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{doc:#}");
    let mut got: Vec<(String, String)> = images
        .iter()
        .map(|i| (image_platform(i), i["digest"].as_str().unwrap().to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("linux/amd64".to_string(), multi.amd64.digest.clone()),
            ("linux/arm64/v8".to_string(), multi.arm64.digest.clone()),
        ]
    );
    assert!(
        !out.stdout.contains(&multi.attestation.digest),
        "attestation measured"
    );
    assert!(
        !out.stdout.contains(MT_IN_TOTO),
        "attestation layer measured"
    );
    for i in images {
        assert_eq!(i["index_digest"], multi.index.digest.as_str());
    }

    // A platform the index does not have: exit 3, naming what it has.
    let out = measure_json(&reference, &["--platform", "linux/s390x"]);
    out.assert_measure_error(&[&["linux/s390x"], &["linux/amd64"], &["linux/arm64/v8"]]);
    assert!(
        !out.error().contains("unknown/unknown"),
        "attestation platform listed: {}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "no report on failure: {}",
        out.stdout
    );
}

// ---------------------------------------------------------------------------
// 3. Docker schema 2 manifest and manifest list
// ---------------------------------------------------------------------------

#[test]
fn docker_media_types() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let gz = b.add_layer(
        &LayerSpec::new().dir("app").file("app/bin", 40_000),
        Comp::Gzip,
    );
    let raw = b.add_layer(&LayerSpec::new().file("plain", 3000), Comp::None);
    let arm_layer = b.add_layer(&LayerSpec::new().file("arm", 7000), Comp::Gzip);
    let DockerList {
        image: img,
        arm64: arm,
        list,
    } = b.add_docker_list(
        &[gz.clone(), raw.clone()],
        std::slice::from_ref(&arm_layer),
        "docker",
        "dockerlist",
    );

    let reg = Registry::start();
    reg.push_layout(&dir, "docker", "test/docker:v1");
    reg.push_layout(&dir, "dockerlist", "test/dockerlist:v1");

    // Schema 2 image manifest.
    let out = measure_json(&reg.reference("test/docker:v1"), &[]);
    out.assert_ok();
    let doc = out.json();
    let image = &doc["images"][0];
    assert_eq!(doc["images"].as_array().unwrap().len(), 1);
    assert_eq!(image["media_type"], MT_DOCKER_MANIFEST, "{image:#}");
    assert_eq!(image["digest"], img.digest.as_str());
    assert_eq!(u(&image["manifest_bytes"]), img.size);
    assert_eq!(image["config_digest"], img.config_digest.as_str());
    assert!(image.get("index_digest").is_none());
    let layers = image["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["media_type"], MT_DOCKER_LAYER_GZIP);
    assert_eq!(layers[0]["compression"], "gzip");
    assert_eq!(layers[0]["digest"], gz.blob_digest.as_str());
    assert_eq!(u(&layers[0]["compressed_bytes"]), gz.blob_size);
    assert_eq!(u(&layers[0]["tar_bytes"]), gz.tar_size);
    assert_eq!(layers[1]["media_type"], MT_DOCKER_LAYER);
    assert_eq!(layers[1]["compression"], "tar");
    assert_eq!(layers[1]["diff_id"], raw.diff_id.as_str());
    assert_eq!(u(&layers[1]["content_bytes"]), 3000);

    // Manifest list: default platform, then the arm64 instance.
    let reference = reg.reference("test/dockerlist:v1");
    let out = measure_json(&reference, &[]);
    out.assert_ok();
    let doc = out.json();
    let image = &doc["images"][0];
    assert_eq!(doc["images"].as_array().unwrap().len(), 1);
    assert_eq!(image["media_type"], MT_DOCKER_MANIFEST, "{image:#}");
    assert_eq!(image["digest"], img.digest.as_str());
    assert_eq!(image["index_digest"], list.digest.as_str());
    assert_eq!(image_platform(image), "linux/amd64");

    let out = measure_json(&reference, &["--platform", "linux/arm64/v8"]);
    out.assert_ok();
    let doc = out.json();
    let image = &doc["images"][0];
    assert_eq!(image["media_type"], MT_DOCKER_MANIFEST);
    assert_eq!(image["digest"], arm.digest.as_str());
    assert_eq!(image["index_digest"], list.digest.as_str());
    assert_eq!(image_platform(image), "linux/arm64/v8");
    assert_eq!(image["layers"][0]["digest"], arm_layer.blob_digest.as_str());

    let out = measure_json(&reference, &["--platform", "all"]);
    out.assert_ok();
    assert_eq!(out.json()["images"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// 4 + 6. Basic auth over plain loopback HTTP, every credential source
// ---------------------------------------------------------------------------

const USER: &str = "alice";
const PASSWORD: &str = "pw-Qx7Zr2-not-in-any-output";
const WRONG_PASSWORD: &str = "wrong-Jk4Lm9-also-secret";

/// A registry that wants `USER`/`PASSWORD` (over TLS when `tls`) holding one
/// small image at `repo_and_tag`: the registry, the image, its reference.
fn private_image(tmp: &Path, tls: bool, repo_and_tag: &str) -> (Registry, ImageDesc, String) {
    let dir = tmp.join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let l = b.add_layer(
        &LayerSpec::new().dir("etc").file("etc/data", 20_000),
        Comp::Gzip,
    );
    let img = b.add_tagged_image(&[l], "v1");
    let reg = Registry::start_with(RegistryOpts {
        htpasswd: Some((USER.into(), PASSWORD.into())),
        tls,
        ..Default::default()
    });
    reg.push_layout(&dir, "v1", repo_and_tag);
    let reference = reg.reference(repo_and_tag);
    (reg, img, reference)
}

/// `sizeguard ARGS` against a private registry: no secret (in clear or
/// base64) may appear in anything it prints.
fn private(args: &[&str]) -> Run {
    let mut run = Run::new(args);
    for secret in [PASSWORD, WRONG_PASSWORD] {
        run = run.secret(secret).secret(&basic_auth(USER, secret));
    }
    run
}

#[test]
fn basic_auth_plain_http() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, img, reference) = private_image(tmp.path(), false, "private/img:v1");
    let base = ["measure", "--format", "json", "-q", reference.as_str()];

    // No credentials anywhere: 401, and the message says it went anonymous.
    let out = private(&base).run();
    out.assert_measure_error(&[&["401", "unauthorized"], &["anonymous"]]);

    // --username / --password-stdin.
    let mut args = base.to_vec();
    args.extend(["--username", USER, "--password-stdin"]);
    let out = private(&args).stdin(format!("{PASSWORD}\n")).run();
    out.assert_ok();
    assert_eq!(out.json()["images"][0]["digest"], img.digest.as_str());

    // Wrong password on stdin: 401 naming the flags as the source.
    let out = private(&args).stdin(WRONG_PASSWORD).run();
    out.assert_measure_error(&[&["401", "unauthorized"], &["--username", "password-stdin"]]);

    // $DOCKER_CONFIG/config.json auths.
    let docker_cfg =
        write_docker_config(&tmp.path().join("docker-config"), &reg.addr, USER, PASSWORD);
    let out = private(&base).env("DOCKER_CONFIG", &docker_cfg).run();
    out.assert_ok();
    assert_eq!(out.json()["images"][0]["digest"], img.digest.as_str());

    // The same, under the `http://HOST:PORT` key spelling docker also writes.
    let docker_cfg2 = write_docker_config(
        &tmp.path().join("docker-config-url-key"),
        &format!("http://{}", reg.addr),
        USER,
        PASSWORD,
    );
    let out = private(&base).env("DOCKER_CONFIG", &docker_cfg2).run();
    out.assert_ok();

    // $HOME/.docker/config.json when DOCKER_CONFIG is unset.
    let home = tmp.path().join("home");
    write_docker_config(&home.join(".docker"), &reg.addr, USER, PASSWORD);
    let out = private(&base).env("HOME", &home).run();
    out.assert_ok();

    // Wrong password in config.json: 401 naming that file.
    let bad_cfg = write_docker_config(
        &tmp.path().join("docker-config-bad"),
        &reg.addr,
        USER,
        WRONG_PASSWORD,
    );
    let out = private(&base).env("DOCKER_CONFIG", &bad_cfg).run();
    out.assert_measure_error(&[
        &["401", "unauthorized"],
        &[&bad_cfg.join("config.json").display().to_string()],
    ]);

    // --username/--password-stdin wins over a config file with a wrong password.
    let out = private(&args)
        .env("DOCKER_CONFIG", &bad_cfg)
        .stdin(PASSWORD)
        .run();
    out.assert_ok();
}

#[test]
fn registry_auth_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, img, reference) = private_image(tmp.path(), false, "private/img:v1");
    let base = ["measure", "--format", "json", "-q", reference.as_str()];

    // $REGISTRY_AUTH_FILE (containers auth.json: the same `auths` format).
    let auth_file = write_auth_file(&tmp.path().join("auth.json"), &reg.addr, USER, PASSWORD);
    let out = private(&base).env("REGISTRY_AUTH_FILE", &auth_file).run();
    out.assert_ok();
    assert_eq!(out.json()["images"][0]["digest"], img.digest.as_str());

    // It is consulted before Docker's config.json (which has a wrong password).
    let bad_cfg = write_docker_config(
        &tmp.path().join("docker-config-bad"),
        &reg.addr,
        USER,
        WRONG_PASSWORD,
    );
    let out = private(&base)
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .env("DOCKER_CONFIG", &bad_cfg)
        .run();
    out.assert_ok();

    // A wrong password in it: 401 naming the auth file.
    let bad_auth = write_auth_file(
        &tmp.path().join("bad-auth.json"),
        &reg.addr,
        USER,
        WRONG_PASSWORD,
    );
    let out = private(&base).env("REGISTRY_AUTH_FILE", &bad_auth).run();
    out.assert_measure_error(&[&["401", "unauthorized"], &[&bad_auth.display().to_string()]]);

    // $XDG_CONFIG_HOME/containers/auth.json (podman/skopeo default location).
    let xdg = tmp.path().join("xdg-config");
    write_auth_file(&xdg.join("containers/auth.json"), &reg.addr, USER, PASSWORD);
    let out = private(&base).env("XDG_CONFIG_HOME", &xdg).run();
    out.assert_ok();
}

/// `--username`/`--password-stdin` belong to one registry: `--registry`,
/// else the first one the command line names. A pull request's
/// sizeguard.toml that names a baseline on a registry of its own choosing
/// never receives them: that registry (behind a proxy that records every
/// request) sees no `Authorization` carrying them, unless `--registry`
/// names it.
#[test]
fn explicit_credentials_never_go_to_a_registry_only_the_policy_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    // Registry A: the candidate's, anonymous.
    let a_layout = tmp.path().join("a-layout");
    let mut b = LayoutBuilder::new(&a_layout);
    let l = b.add_layer(&LayerSpec::new().file("app/bin", 30_000), Comp::Gzip);
    b.add_tagged_image(&[l], "v2");
    let reg_a = Registry::start();
    reg_a.push_layout(&a_layout, "v2", "team/app:v2");
    let candidate = reg_a.reference("team/app:v2");
    // Registry B: wants the very credentials the CI holds, and records
    // what it is sent.
    let (reg_b, _img, _) = private_image(&tmp.path().join("b"), false, "evil/base:v1");
    let proxy = FaultProxy::start(&reg_b.addr, Vec::new());
    let baseline = format!("{}/evil/base:v1", proxy.addr);
    let checkout = tmp.path().join("checkout");
    fs::create_dir_all(&checkout).unwrap();
    fs::write(
        checkout.join("sizeguard.toml"),
        format!("baseline = \"{baseline}\"\n"),
    )
    .unwrap();
    let leaked = format!("Basic {}", basic_auth(USER, PASSWORD));
    let got_credentials = |p: &FaultProxy| {
        p.seen()
            .iter()
            .any(|s| s.header("authorization") == Some(leaked.as_str()))
    };
    let check = |extra: &[&str]| {
        private(&["check", "--format", "json", "-q", "--candidate", &candidate])
            .args(["--username", USER, "--password-stdin"])
            .args(extra)
            .cwd(&checkout)
            .env("GITHUB_ACTIONS", "true")
            .stdin(PASSWORD)
            .run()
    };

    // The baseline comes from the policy file: B is asked, anonymously,
    // and refuses; the credentials went to A only.
    let out = check(&[]);
    out.assert_measure_error(&[&["401", "unauthorized"], &[&baseline]]);
    assert!(!proxy.seen().is_empty(), "B was never asked");
    assert!(!got_credentials(&proxy), "{:#?}", proxy.seen());
    // Under GitHub Actions the log names the policy file that was read.
    let policy = checkout.join("sizeguard.toml");
    assert!(
        out.stderr.contains(&format!(
            "sizeguard: policy file: {} (found in the working directory or a parent)",
            policy.display()
        )),
        "{}",
        out.stderr
    );

    // Named on the command line as the baseline, B still gets nothing:
    // the credentials are the candidate's registry's.
    let out = check(&["--baseline", &baseline]);
    out.assert_measure_error(&[&["401", "unauthorized"]]);
    assert!(!got_credentials(&proxy), "{:#?}", proxy.seen());

    // `--registry B`: the user says they are B's; B gets them.
    let out = check(&["--registry", &proxy.addr]);
    out.assert_ok();
    assert!(got_credentials(&proxy), "{:#?}", proxy.seen());

    // A candidate that only the policy file names gives the credentials
    // no registry to go to: a usage error, before any request.
    fs::write(
        checkout.join("sizeguard.toml"),
        format!("image = \"{candidate}\"\nbaseline = \"{baseline}\"\n"),
    )
    .unwrap();
    let out = private(&["check", "-q", "--username", USER, "--password-stdin"])
        .cwd(&checkout)
        .stdin(PASSWORD)
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error().contains("--registry"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// 5. TLS + htpasswd with a throwaway CA
// ---------------------------------------------------------------------------

#[test]
fn tls_with_private_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, img, reference) = private_image(tmp.path(), true, "secure/img:v1");
    let ca = reg.ca_cert.as_ref().unwrap().display().to_string();
    let mut args = vec![
        "measure",
        "--format",
        "json",
        "-q",
        reference.as_str(),
        "--username",
        USER,
        "--password-stdin",
    ];

    // Without the CA: the certificate cannot be verified. The probe must not
    // silently fall back to plain HTTP either.
    // Trying again cannot help, the user can: a usage error naming the fix.
    let out = private(&args).stdin(PASSWORD).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let msg = out.error().to_lowercase();
    for needles in [
        &["certificate"][..],
        &["unknownissuer", "unknown issuer"],
        &["--ca-file"],
    ] {
        assert!(
            needles.iter().any(|n| msg.contains(n)),
            "{needles:?}: {msg}"
        );
    }

    // SSL_CERT_FILE=CA instead of --ca-file.
    let out = private(&args)
        .env("SSL_CERT_FILE", &ca)
        .stdin(PASSWORD)
        .run();
    out.assert_ok();
    assert_eq!(out.json()["images"][0]["digest"], img.digest.as_str());

    // --ca-file CA.
    args.extend(["--ca-file", ca.as_str()]);
    let out = private(&args).stdin(PASSWORD).run();
    out.assert_ok();
    let doc = out.json();
    assert_eq!(doc["images"][0]["digest"], img.digest.as_str());
    assert_eq!(doc["images"][0]["complete"], true);

    // TLS works but the password is wrong: still an auth error, not TLS.
    let out = private(&args).stdin(WRONG_PASSWORD).run();
    out.assert_measure_error(&[&["401", "unauthorized"], &["--username", "password-stdin"]]);
}

// ---------------------------------------------------------------------------
// 7. Corrupt or missing data in the registry's storage
// ---------------------------------------------------------------------------

#[test]
fn corrupt_registry_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    // One distinct layer per scenario: blobs are shared by every repository
    // of a registry.
    let base = b.add_layer(&LayerSpec::new().file("base", 10_000), Comp::Gzip);
    let raw = b.add_layer(&LayerSpec::new().file("raw-victim", 60_000), Comp::None);
    let gz = b.add_layer(&LayerSpec::new().file("gz-victim", 60_000), Comp::Gzip);
    let trunc = b.add_layer(&LayerSpec::new().file("trunc-victim", 60_000), Comp::Zstd);
    let gone = b.add_layer(&LayerSpec::new().file("gone-victim", 30_000), Comp::Gzip);
    for (layer, tag) in [
        (&raw, "raw"),
        (&gz, "gz"),
        (&trunc, "trunc"),
        (&gone, "gone"),
    ] {
        b.add_tagged_image(&[base.clone(), layer.clone()], tag);
    }
    let reg = Registry::start();
    for tag in ["raw", "gz", "trunc", "gone"] {
        reg.push_layout(&dir, tag, &format!("test/corrupt:{tag}"));
    }
    let reference = |tag: &str| reg.reference(&format!("test/corrupt:{tag}"));
    // Sanity: intact before the damage.
    measure_json(&reference("raw"), &[]).assert_ok();

    // Flipped bytes in an uncompressed layer: the tar still parses, only the
    // digest can tell. (oci-client verifies the digest of the stream itself
    // and says "Invalid digest. Expected .., got .."; the analyzer says
    // "digest mismatch": either wording is fine.)
    let path = reg.blob_path(&raw.blob_digest);
    let mut data = fs::read(&path).unwrap();
    for i in [2000usize, 20_000, 40_000] {
        data[i] ^= 0xff;
    }
    fs::write(&path, &data).unwrap();
    let out = measure_json(&reference("raw"), &[]);
    out.assert_measure_error(&[&[&raw.blob_digest], &["digest mismatch", "invalid digest"]]);
    assert!(
        out.stdout.is_empty(),
        "no report on failure: {}",
        out.stdout
    );

    // Flipped bytes in a gzip layer: the digest (or the gzip CRC, whichever
    // is noticed first) fails.
    let path = reg.blob_path(&gz.blob_digest);
    let mut data = fs::read(&path).unwrap();
    let mid = data.len() / 2;
    for i in [mid, mid + 1, mid + 2] {
        data[i] ^= 0x55;
    }
    fs::write(&path, &data).unwrap();
    measure_json(&reference("gz"), &[]).assert_measure_error(&[
        &[&gz.blob_digest],
        &["digest mismatch", "corrupt", "crc", "invalid"],
    ]);

    // Layer blob missing from storage: named, not found.
    let path = reg.blob_path(&gone.blob_digest);
    fs::remove_file(&path).unwrap();
    measure_json(&reference("gone"), &[])
        .assert_measure_error(&[&[&gone.blob_digest], &["not found", "unknown", "404"]]);

    // Missing tag / missing repository.
    measure_json(&reference("no-such-tag"), &[])
        .assert_measure_error(&[&["not found", "manifest unknown"], &["no-such-tag"]]);
    measure_json(&reg.reference("no/such-repo:v1"), &[]).assert_measure_error(&[&[
        "not found",
        "manifest unknown",
        "name unknown",
    ]]);

    // (Last, so that the checks above run even while this one fails.)
    // Truncated layer: named, and called truncated (the registry serves
    // fewer bytes than the descriptor's size; the analyzer has a dedicated
    // "blob is truncated: got N of M bytes" error so that a user can tell a
    // short blob from a corrupt one; a bare digest error is not enough).
    let path = reg.blob_path(&trunc.blob_digest);
    let data = fs::read(&path).unwrap();
    fs::write(&path, &data[..data.len() / 2]).unwrap();
    measure_json(&reference("trunc"), &[]).assert_measure_error(&[
        &[&trunc.blob_digest],
        &["truncated", "unexpected end", "short"],
    ]);
}

// ---------------------------------------------------------------------------
// 8. --verify-diff-ids
// ---------------------------------------------------------------------------

#[test]
fn verify_diff_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let l1 = b.add_layer(&LayerSpec::new().file("one", 20_000), Comp::Gzip);
    let l2 = b.add_layer(&LayerSpec::new().file("two", 20_000), Comp::Zstd);
    let l3 = b.add_layer(&LayerSpec::new().file("three", 5000), Comp::None);
    b.add_tagged_image(&[l1.clone(), l2.clone(), l3.clone()], "good");

    // The same layers, but the config's second diff_id is the first layer's.
    let manifest_with_config = |b: &mut LayoutBuilder, diff_ids: Vec<&str>| {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        b.add_image_with_config(
            &[l1.clone(), l2.clone(), l3.clone()],
            &config,
            Platform::new("linux", "amd64", None),
            false,
        )
    };
    let bad = manifest_with_config(&mut b, vec![&l1.diff_id, &l1.diff_id, &l3.diff_id]);
    b.tag_image(&bad, "bad");
    let short = manifest_with_config(&mut b, vec![&l1.diff_id, &l2.diff_id]);
    b.tag_image(&short, "short");

    let reg = Registry::start();
    for tag in ["good", "bad", "short"] {
        reg.push_layout(&dir, tag, &format!("test/diffids:{tag}"));
    }
    let reference = |tag: &str| reg.reference(&format!("test/diffids:{tag}"));

    let out = measure_json(&reference("good"), &["--verify-diff-ids"]);
    out.assert_ok();
    let doc = out.json();
    let diff_ids: Vec<&str> = doc["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap())
        .collect();
    assert_eq!(diff_ids, vec![&l1.diff_id, &l2.diff_id, &l3.diff_id]);

    // Not asked to verify: the tar is not hashed (it would cost a third of
    // the inflate), so the bad config goes unnoticed and the reported
    // diff_id is the config's, marked as not verified.
    let out = measure_json(&reference("bad"), &[]);
    out.assert_ok();
    let layer = &out.json()["images"][0]["layers"][1];
    assert_ne!(layer["diff_id"], l2.diff_id.as_str());
    assert_eq!(layer["diff_id_verified"], false);

    // Asked: exit 3 naming the layer whose diff_id does not match.
    let out = measure_json(&reference("bad"), &["--verify-diff-ids"]);
    out.assert_measure_error(&[
        &[&l2.blob_digest],
        &["diff_id", "diff-id", "uncompressed digest"],
    ]);
    assert!(
        out.error().contains(&l2.diff_id) || out.error().contains(&l1.diff_id),
        "the error should show the digests involved: {}",
        out.stderr
    );

    // A config listing fewer diff_ids than there are layers.
    measure_json(&reference("short"), &["--verify-diff-ids"]).assert_measure_error(&[&["diff_id"]]);
}

// ---------------------------------------------------------------------------
// 9. Unreachable registry
// ---------------------------------------------------------------------------

#[test]
fn unreachable_registry() {
    // A port nothing listens on (bound, read, released), and that no other
    // test of this process is handed.
    let port = support::registry::free_port();
    let addr = format!("127.0.0.1:{port}");
    let reference = format!("{addr}/test/img:v1");

    let t0 = std::time::Instant::now();
    let out = Run::new(["measure", "-q", &reference, "--insecure-registry", &addr]).run();
    out.assert_measure_error(&[&[&addr]]);
    assert!(out.stdout.is_empty());

    // Without --insecure-registry: the loopback probe (HTTPS, then HTTP)
    // fails the same way.
    let out = Run::new(["measure", "-q", &reference]).run();
    out.assert_measure_error(&[&[&addr]]);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(30),
        "a refused connection should fail fast, took {:?}",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 7b. One layer fails while another is still streaming
// ---------------------------------------------------------------------------

/// A layer that cannot be fetched must fail the run with one clean line even
/// when other layers of the image are still being streamed at that moment
/// (they must be cancelled or awaited, not torn down mid-read).
#[test]
fn failing_layer_while_others_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    // Large enough (16 MiB, the one big image of this file) to still be
    // streaming when the other layer's 404 arrives.
    let big = b.add_layer(&LayerSpec::new().file("big", 16 << 20), Comp::Gzip);
    let gone = b.add_layer(&LayerSpec::new().file("gone", 1000), Comp::Gzip);
    b.add_tagged_image(&[big.clone(), gone.clone()], "v1");
    let reg = Registry::start();
    reg.push_layout(&dir, "v1", "test/partial:v1");
    fs::remove_file(reg.blob_path(&gone.blob_digest)).unwrap();
    let reference = reg.reference("test/partial:v1");
    // The race is lost most of the time; a few runs make it show reliably.
    for _ in 0..5 {
        measure_json(&reference, &["-j", "2"])
            .assert_measure_error(&[&[&gone.blob_digest], &["not found", "unknown", "404"]]);
    }
}
