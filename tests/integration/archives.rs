//! Images as other tools write them. One image, pushed to a loopback
//! registry, is saved, pushed and exported the way podman, buildah,
//! skopeo, go-containerregistry, Docker 25+ and BuildKit write it, and
//! every form measures exactly as the registry copy does. Only the
//! compressed size may differ: exact where the archive holds the
//! registry's blobs, a marked estimate where it holds uncompressed layers,
//! near where a tool compressed the layers again with its own gzip.

use crate::support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::json::{LAYER_FIGURES, u, within_pct};
use support::layout::{
    Comp, LayerSpec, LayoutBuilder, MT_DOCKER_CONFIG, MT_DOCKER_LAYER_GZIP, MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER, MT_OCI_MANIFEST,
};
use support::podman::Podman;
use support::registry::{Registry, run_skopeo};
use support::run::Run;
use support::sha256_digest;

const IN_STORE: &str = "localhost/app:v2";

/// Text that compresses the way documentation and locale files do.
fn prose(seed: usize, lines: usize) -> Vec<u8> {
    (0..lines)
        .map(|i| {
            format!(
                "{seed:05} line {i}: the quick brown fox {} jumps\n",
                seed * 31 + i
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// v1: a distribution-like base of a couple of thousand files (libraries
/// of incompressible bytes, a hard link, a symlink) and a patch layer that
/// deletes one library with a whiteout and rewrites a file; v2 adds an
/// application layer.
fn build(dir: &Path) {
    let mut b = LayoutBuilder::new(dir);
    let mut base = LayerSpec::new()
        .dir("etc")
        .file_bytes("etc/os-release", b"ID=test\nVERSION_ID=1\n")
        .dir("usr")
        .dir("usr/lib");
    for i in 0..24 {
        base = base.file(&format!("usr/lib/lib{i}.so.1"), 20_000 + i * 2_311);
    }
    base = base
        .file("usr/lib/libold.so.1", 150_000)
        .symlink("usr/lib/libcurrent.so", "lib0.so.1")
        .hardlink("usr/lib/lib0-again.so.1", "usr/lib/lib0.so.1")
        .dir("usr/share")
        .dir("usr/share/doc");
    for p in 0..120 {
        base = base.dir(&format!("usr/share/doc/pkg{p}"));
        for f in 0..14 {
            base = base.file_bytes(
                &format!("usr/share/doc/pkg{p}/note{f}.txt"),
                &prose(p * 100 + f, 3 + f),
            );
        }
    }
    let base = b.add_layer(&base, Comp::None);

    let mut patch = LayerSpec::new()
        .dir("etc")
        .file_bytes("etc/os-release", b"ID=test\nVERSION_ID=1.1\n")
        .dir("usr")
        .dir("usr/lib")
        .whiteout("usr/lib/libold.so.1")
        .dir("usr/share")
        .dir("usr/share/locale");
    for l in 0..40 {
        patch = patch.dir(&format!("usr/share/locale/l{l}"));
        for f in 0..15 {
            patch = patch.file_bytes(
                &format!("usr/share/locale/l{l}/m{f}.mo"),
                &prose(10_000 + l * 100 + f, 2 + f % 5),
            );
        }
    }
    let patch = b.add_layer(&patch, Comp::None);

    let mut app = LayerSpec::new()
        .dir("app")
        .file("app/server", 1_200_000)
        .file_bytes("app/access.log", &prose(99_999, 8_000))
        .dir("app/static");
    for f in 0..400 {
        app = app.file_bytes(
            &format!("app/static/s{f}.js"),
            &prose(20_000 + f, 1 + f % 9),
        );
    }
    let app = b.add_layer(&app, Comp::None);
    b.add_tagged_image(&[base.clone(), patch.clone()], "v1");
    b.add_tagged_image(&[base, patch, app], "v2");
}

/// The image pushed as `team/app:v1` and `:v2`. The layout's layers are
/// uncompressed and skopeo compresses them on the push, as an engine's
/// push does: the registry's blobs are Go's gzip at its default level, the
/// compression the other tools' own blobs and sizeguard's estimates are
/// compared with.
fn registry_with_image(tmp: &Path) -> Registry {
    let layout = tmp.join("layout");
    build(&layout);
    let reg = Registry::start();
    for tag in ["v1", "v2"] {
        run_skopeo(
            &[
                "copy".into(),
                "--dest-tls-verify=false".into(),
                format!("oci:{}:{tag}", layout.display()),
                format!("docker://{}", reg.reference(&format!("team/app:{tag}"))),
            ],
            Some(&reg),
        );
    }
    reg
}

fn measure(reference: &str) -> Result<Value, String> {
    let out = Run::new(["measure", "-q", "--format", "json", reference]).run();
    if out.code != 0 {
        return Err(format!("exit {}: {}", out.code, out.stderr.trim()));
    }
    Ok(out.json())
}

/// What an archive holds for each layer, which decides what its
/// compressed size can be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Blobs {
    /// The registry's gzip blobs, byte for byte: the size is exact.
    Registry,
    /// Uncompressed tars: the size is an estimate (recompressed) and says so.
    Uncompressed,
    /// Gzip blobs the tool compressed itself from its store's uncompressed
    /// layers: real sizes of this archive's blobs, so not marked as
    /// estimates, and near the registry's. (podman 4.3 and buildah 1.28
    /// compress with the same containers/image code skopeo pushed with, so
    /// here their blobs come out byte for byte the registry's; a registry
    /// blob of another compressor, or another level, makes them differ.)
    OwnGzip,
}

struct Form {
    what: String,
    reference: String,
    blobs: Blobs,
}

impl Form {
    fn new(what: &str, reference: String, blobs: Blobs) -> Form {
        Form {
            what: what.to_string(),
            reference,
            blobs,
        }
    }
}

/// Every way in which `got` does not measure as the registry copy `reg`.
fn differences(form: &Form, got: &Value, reg: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    fn same(diffs: &mut Vec<String>, what: String, a: &Value, b: &Value) {
        if a != b {
            diffs.push(format!("{what}: {a} (registry: {b})"));
        }
    }
    let (g, r) = (&got["images"][0], &reg["images"][0]);
    for key in ["final", "wasted_bytes", "platform", "config_digest"] {
        same(&mut diffs, key.to_string(), &g[key], &r[key]);
    }
    for figure in &LAYER_FIGURES[1..] {
        same(
            &mut diffs,
            format!("totals.{figure}"),
            &g["totals"][figure],
            &r["totals"][figure],
        );
    }
    let (gl, rl) = (
        g["layers"].as_array().cloned().unwrap_or_default(),
        r["layers"].as_array().unwrap(),
    );
    if gl.len() != rl.len() {
        diffs.push(format!("{} layers (registry: {})", gl.len(), rl.len()));
        return diffs;
    }
    for (i, (gl, rl)) in gl.iter().zip(rl).enumerate() {
        for key in LAYER_FIGURES[1..].iter().chain(&["diff_id"]) {
            same(&mut diffs, format!("layer {i} {key}"), &gl[key], &rl[key]);
        }
        let (size, real) = (u(&gl["compressed_bytes"]), u(&rl["compressed_bytes"]));
        let estimate = gl.get("estimate");
        match form.blobs {
            Blobs::Registry => {
                for key in ["compressed_bytes", "digest"] {
                    same(&mut diffs, format!("layer {i} {key}"), &gl[key], &rl[key]);
                }
                if let Some(e) = estimate {
                    diffs.push(format!("layer {i}: the registry's blob marked as {e}"));
                }
            }
            Blobs::Uncompressed => {
                if estimate.map(|e| &e["source"]) != Some(&json!("recompressed")) {
                    diffs.push(format!(
                        "layer {i}: an uncompressed layer's size not marked as recompressed: estimate {estimate:?}"
                    ));
                }
            }
            Blobs::OwnGzip => {
                if let Some(e) = estimate {
                    diffs.push(format!("layer {i}: the archive's own blob marked as {e}"));
                }
            }
        }
        if !within_pct(size, real, 10) {
            diffs.push(format!(
                "layer {i}: compressed_bytes {size}, not within 10% of the registry's {real}"
            ));
        }
    }
    let (size, real) = (
        u(&g["totals"]["compressed_bytes"]),
        u(&r["totals"]["compressed_bytes"]),
    );
    if (form.blobs == Blobs::Registry && size != real) || !within_pct(size, real, 10) {
        diffs.push(format!("totals.compressed_bytes {size} (registry: {real})"));
    }
    diffs
}

/// The registry's copy of `team/app:v2` as skopeo's `dir:` transport
/// writes it: `manifest.json`, `version`, and every blob named by its hex
/// digest, bytes unchanged. The hand-assembled archives take their blobs
/// from here; the uncompressed layers are inflated from them.
struct RegistryBlobs {
    dir: PathBuf,
    manifest: Vec<u8>,
    config_hex: String,
    /// Compressed layer blobs' hex digests, in order.
    layers: Vec<String>,
    /// The uncompressed layer tars and their hex digests (the diff_ids).
    tars: Vec<(PathBuf, String)>,
}

impl RegistryBlobs {
    fn copy(reg: &Registry, dir: &Path, scratch: &Path) -> RegistryBlobs {
        run_skopeo(
            &[
                "copy".into(),
                "--src-tls-verify=false".into(),
                format!("docker://{}", reg.reference("team/app:v2")),
                format!("dir:{}", dir.display()),
            ],
            Some(reg),
        );
        let manifest = fs::read(dir.join("manifest.json")).unwrap();
        let m: Value = serde_json::from_slice(&manifest).unwrap();
        let strip = |d: &Value| {
            d.as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap()
                .to_string()
        };
        let config_hex = strip(&m["config"]["digest"]);
        let layers: Vec<String> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| strip(&l["digest"]))
            .collect();
        fs::create_dir_all(scratch).unwrap();
        let tars = layers
            .iter()
            .map(|hex| {
                let mut tar = Vec::new();
                flate2::read::GzDecoder::new(fs::File::open(dir.join(hex)).unwrap())
                    .read_to_end(&mut tar)
                    .unwrap();
                let diff_hex = sha256_digest(&tar)[7..].to_string();
                let path = scratch.join(&diff_hex);
                fs::write(&path, &tar).unwrap();
                (path, diff_hex)
            })
            .collect::<Vec<_>>();
        let config: Value =
            serde_json::from_slice(&fs::read(dir.join(&config_hex)).unwrap()).unwrap();
        let diff_ids: Vec<String> = tars.iter().map(|(_, h)| format!("sha256:{h}")).collect();
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!(diff_ids),
            "the inflated blobs are the config's layers"
        );
        RegistryBlobs {
            dir: dir.to_path_buf(),
            manifest,
            config_hex,
            layers,
            tars,
        }
    }

    fn blob(&self, hex: &str) -> PathBuf {
        self.dir.join(hex)
    }

    fn config(&self) -> Vec<u8> {
        fs::read(self.blob(&self.config_hex)).unwrap()
    }
}

/// A member of a hand-assembled archive.
enum Member {
    Dir(String),
    Bytes(String, Vec<u8>),
    File(String, PathBuf),
}

/// Writes `members`, in order, as a tar (regular files 0644, directories
/// 0755, as Go's archive/tar writes them in these tools).
fn write_tar(out: &Path, members: &[Member]) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    for m in members {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_700_000_000);
        match m {
            Member::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
            Member::Bytes(name, bytes) => {
                h.set_mode(0o644);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, name, &bytes[..]).unwrap();
            }
            Member::File(name, path) => {
                let f = fs::File::open(path).unwrap();
                h.set_mode(0o644);
                h.set_size(f.metadata().unwrap().len());
                b.append_data(&mut h, name, f).unwrap();
            }
        }
    }
    b.finish().unwrap();
}

/// Writes `members` into a directory instead of a tar.
fn write_dir(out: &Path, members: &[Member]) {
    for m in members {
        match m {
            Member::Dir(name) => fs::create_dir_all(out.join(name)).unwrap(),
            Member::Bytes(name, bytes) => fs::write(out.join(name), bytes).unwrap(),
            Member::File(name, path) => {
                fs::copy(path, out.join(name)).unwrap();
            }
        }
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
}

/// go-containerregistry's tarball format, what `crane pull` writes by
/// default (and kaniko's `--tar-path`, ko, rules_oci's tarball): per
/// pkg/v1/tarball/write.go (MultiRefWrite), the config member named
/// `sha256:<hex>`, each layer the registry's compressed blob named
/// `<compressed hex>.tar.gz`, and a `manifest.json` naming them, last.
fn crane_tarball(blobs: &RegistryBlobs, out: &Path) {
    let mut members = vec![Member::Bytes(
        format!("sha256:{}", blobs.config_hex),
        blobs.config(),
    )];
    for hex in &blobs.layers {
        members.push(Member::File(format!("{hex}.tar.gz"), blobs.blob(hex)));
    }
    let manifest = json!([{
        "Config": format!("sha256:{}", blobs.config_hex),
        "RepoTags": ["team/app:v2"],
        "Layers": blobs.layers.iter().map(|h| format!("{h}.tar.gz")).collect::<Vec<_>>(),
    }]);
    members.push(Member::Bytes(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    write_tar(out, &members);
}

/// `docker save` of Docker 25 and later (moby image/tarexport/save.go):
/// an OCI layout whose layers are the uncompressed tars, named by their
/// diff_ids and typed `application/vnd.oci.image.layer.v1.tar`, whose
/// `index.json` entry carries the containerd image name and the tag, and
/// beside it the `manifest.json` (and `repositories`) older readers know,
/// naming the same blobs by their `blobs/sha256/…` paths. With
/// `null_manifests`, `index.json` says `"manifests": null`, as Go encodes
/// an empty slice: a reader of the layout must fall back to
/// `manifest.json`.
fn docker25_save(blobs: &RegistryBlobs, out: &Path, null_manifests: bool) {
    let config = blobs.config();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": descriptor(MT_OCI_CONFIG, &config),
        "layers": blobs.tars.iter().map(|(path, hex)| json!({
            "mediaType": MT_OCI_LAYER,
            "digest": format!("sha256:{hex}"),
            "size": fs::metadata(path).unwrap().len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mut entry = descriptor(MT_OCI_MANIFEST, &manifest);
    entry["annotations"] = json!({
        "io.containerd.image.name": "docker.io/team/app:v2",
        "org.opencontainers.image.ref.name": "v2",
    });
    let manifests = if null_manifests {
        Value::Null
    } else {
        json!([entry])
    };
    let index = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests});
    let legacy = json!([{
        "Config": format!("blobs/sha256/{}", blobs.config_hex),
        "RepoTags": ["team/app:v2"],
        "Layers": blobs.tars.iter().map(|(_, h)| format!("blobs/sha256/{h}")).collect::<Vec<_>>(),
    }]);
    let last = &blobs.tars.last().unwrap().1;
    let mut members = vec![
        Member::Dir("blobs/".into()),
        Member::Dir("blobs/sha256/".into()),
    ];
    for (path, hex) in &blobs.tars {
        members.push(Member::File(format!("blobs/sha256/{hex}"), path.clone()));
    }
    members.extend([
        Member::Bytes(format!("blobs/sha256/{}", blobs.config_hex), config),
        Member::Bytes(
            format!("blobs/sha256/{}", &sha256_digest(&manifest)[7..]),
            manifest,
        ),
        Member::Bytes("index.json".into(), serde_json::to_vec(&index).unwrap()),
        Member::Bytes("manifest.json".into(), serde_json::to_vec(&legacy).unwrap()),
        Member::Bytes(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        Member::Bytes(
            "repositories".into(),
            serde_json::to_vec(&json!({"team/app": {"v2": last}})).unwrap(),
        ),
    ]);
    write_tar(out, &members);
}

/// BuildKit's exporters, which write through containerd's archive
/// exporter (containerd core/images/archive/exporter.go): an OCI layout
/// of the compressed blobs, the `index.json` entry annotated with
/// `io.containerd.image.name` and `org.opencontainers.image.ref.name`.
/// `type=oci` keeps OCI media types (the registry's manifest, bytes
/// unchanged); `type=docker` writes Docker media types and adds the
/// `manifest.json` that `docker load` reads, its `Layers` the compressed
/// blobs' paths. `tar=false` writes the same layout into a directory.
fn buildkit_members(blobs: &RegistryBlobs, docker: bool) -> Vec<Member> {
    let config = blobs.config();
    let (manifest, media_type) = if docker {
        let m: Value = serde_json::from_slice(&blobs.manifest).unwrap();
        let layers: Vec<Value> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| json!({"mediaType": MT_DOCKER_LAYER_GZIP, "digest": l["digest"], "size": l["size"]}))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_DOCKER_MANIFEST,
            "config": descriptor(MT_DOCKER_CONFIG, &config),
            "layers": layers,
        });
        (serde_json::to_vec(&manifest).unwrap(), MT_DOCKER_MANIFEST)
    } else {
        (blobs.manifest.clone(), MT_OCI_MANIFEST)
    };
    let mut entry = descriptor(media_type, &manifest);
    entry["annotations"] = json!({
        "io.containerd.image.name": "docker.io/team/app:v2",
        "org.opencontainers.image.ref.name": "v2",
    });
    let index = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [entry]});
    let mut members = vec![
        Member::Dir("blobs/".into()),
        Member::Dir("blobs/sha256/".into()),
        Member::Bytes(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
    ];
    for hex in &blobs.layers {
        members.push(Member::File(format!("blobs/sha256/{hex}"), blobs.blob(hex)));
    }
    members.push(Member::Bytes(
        format!("blobs/sha256/{}", blobs.config_hex),
        config,
    ));
    members.push(Member::Bytes(
        format!("blobs/sha256/{}", &sha256_digest(&manifest)[7..]),
        manifest,
    ));
    members.push(Member::Bytes(
        "index.json".into(),
        serde_json::to_vec(&index).unwrap(),
    ));
    if docker {
        let legacy = json!([{
            "Config": format!("blobs/sha256/{}", blobs.config_hex),
            "RepoTags": ["team/app:v2"],
            "Layers": blobs.layers.iter().map(|h| format!("blobs/sha256/{h}")).collect::<Vec<_>>(),
        }]);
        members.push(Member::Bytes(
            "manifest.json".into(),
            serde_json::to_vec(&legacy).unwrap(),
        ));
    }
    members
}

/// skopeo reads the hand-assembled archive and copies it to an OCI layout,
/// checking every layer against the config's diff_ids on the way: the
/// archive is one a real tool accepts.
fn skopeo_accepts(reference: &str, scratch: &Path) {
    let _ = fs::remove_dir_all(scratch);
    run_skopeo(
        &[
            "copy".into(),
            reference.into(),
            format!("oci:{}:check", scratch.display()),
        ],
        None,
    );
}

#[test]
fn every_tool_s_archive_measures_like_the_registry_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| tmp.path().join(name);
    let reg = registry_with_image(tmp.path());
    let registry = measure(&reg.reference("team/app:v2")).expect("the registry copy");
    let r = &registry["images"][0];
    assert_eq!(r["layers"].as_array().unwrap().len(), 3);
    assert!(u(&r["totals"]["files"]) > 2_000, "{}", r["totals"]);
    assert!(u(&r["totals"]["whiteouts"]) >= 1, "{}", r["totals"]);
    assert!(u(&r["wasted_bytes"]) > 0, "{r}");

    let mut podman = Podman::new();
    podman.copy_in(
        &format!("docker://{}", reg.reference("team/app:v2")),
        &["--src-tls-verify=false"],
        IN_STORE,
    );
    let mut forms = Vec::new();

    podman.save("docker-archive", IN_STORE, &t("podman.docker.tar"));
    forms.push(Form::new(
        "podman save --format docker-archive",
        format!("docker-archive:{}", t("podman.docker.tar").display()),
        Blobs::Uncompressed,
    ));
    podman.save("oci-archive", IN_STORE, &t("podman.oci.tar"));
    forms.push(Form::new(
        "podman save --format oci-archive",
        format!("oci-archive:{}", t("podman.oci.tar").display()),
        Blobs::OwnGzip,
    ));
    podman.save("oci-dir", IN_STORE, &t("podman.oci-dir"));
    forms.push(Form::new(
        "podman save --format oci-dir",
        format!("oci:{}", t("podman.oci-dir").display()),
        Blobs::OwnGzip,
    ));
    // podman 4.3 writes the layers uncompressed but its manifest.json
    // still types them `…rootfs.diff.tar.gzip`: a reader must look at the
    // bytes, not the media type.
    podman.save("docker-dir", IN_STORE, &t("podman.docker-dir"));
    forms.push(Form::new(
        "podman save --format docker-dir",
        format!("dir:{}", t("podman.docker-dir").display()),
        Blobs::Uncompressed,
    ));

    let blobs = RegistryBlobs::copy(&reg, &t("skopeo.dir"), &t("inflated"));
    forms.push(Form::new(
        "skopeo copy docker:// dir:",
        format!("dir:{}", blobs.dir.display()),
        Blobs::Registry,
    ));
    for (dest, what, blob_kind) in [
        (
            format!("oci-archive:{}:v2", t("skopeo.oci.tar").display()),
            "skopeo copy docker:// oci-archive:",
            Blobs::Registry,
        ),
        (
            format!(
                "docker-archive:{}:team/app:v2",
                t("skopeo.docker.tar").display()
            ),
            "skopeo copy docker:// docker-archive:",
            Blobs::Uncompressed,
        ),
    ] {
        run_skopeo(
            &[
                "copy".into(),
                "--src-tls-verify=false".into(),
                format!("docker://{}", reg.reference("team/app:v2")),
                dest.clone(),
            ],
            Some(&reg),
        );
        forms.push(Form::new(what, dest, blob_kind));
    }

    podman.buildah_push(
        IN_STORE,
        &format!("oci-archive:{}:v2", t("buildah.oci.tar").display()),
    );
    forms.push(Form::new(
        "buildah push oci-archive:",
        format!("oci-archive:{}:v2", t("buildah.oci.tar").display()),
        Blobs::OwnGzip,
    ));
    podman.buildah_push(
        IN_STORE,
        &format!(
            "docker-archive:{}:team/app:v2",
            t("buildah.docker.tar").display()
        ),
    );
    forms.push(Form::new(
        "buildah push docker-archive:",
        format!("docker-archive:{}", t("buildah.docker.tar").display()),
        Blobs::Uncompressed,
    ));

    crane_tarball(&blobs, &t("crane.tar"));
    let crane = format!("docker-archive:{}", t("crane.tar").display());
    skopeo_accepts(&crane, &t("accepted"));
    forms.push(Form::new("crane pull (tarball)", crane, Blobs::Registry));

    docker25_save(&blobs, &t("docker25.tar"), false);
    docker25_save(&blobs, &t("docker25-null.tar"), true);
    for (name, what) in [
        ("docker25.tar", "docker save (Docker 25+)"),
        (
            "docker25-null.tar",
            "docker save (Docker 25+, \"manifests\": null)",
        ),
    ] {
        let archive = t(name).display().to_string();
        skopeo_accepts(&format!("docker-archive:{archive}"), &t("accepted"));
        for transport in ["docker-archive", "oci-archive"] {
            forms.push(Form::new(
                &format!("{what} as {transport}:"),
                format!("{transport}:{archive}"),
                Blobs::Uncompressed,
            ));
        }
    }
    skopeo_accepts(
        &format!("oci-archive:{}", t("docker25.tar").display()),
        &t("accepted"),
    );

    write_tar(&t("buildkit.oci.tar"), &buildkit_members(&blobs, false));
    write_tar(&t("buildkit.docker.tar"), &buildkit_members(&blobs, true));
    fs::create_dir(t("buildkit.oci-dir")).unwrap();
    write_dir(&t("buildkit.oci-dir"), &buildkit_members(&blobs, false));
    let bk_oci = format!("oci-archive:{}", t("buildkit.oci.tar").display());
    let bk_docker = t("buildkit.docker.tar").display().to_string();
    let bk_dir = format!("oci:{}", t("buildkit.oci-dir").display());
    for reference in [&bk_oci, &bk_dir] {
        skopeo_accepts(&format!("{reference}:v2"), &t("accepted"));
    }
    skopeo_accepts(&format!("docker-archive:{bk_docker}"), &t("accepted"));
    // skopeo 1.9's oci: transport ignores index entries of Docker media
    // types, so the docker tar's layout side is left to sizeguard alone.
    forms.push(Form::new(
        "buildx --output type=oci",
        bk_oci,
        Blobs::Registry,
    ));
    for transport in ["docker-archive", "oci-archive"] {
        forms.push(Form::new(
            &format!("buildx --output type=docker as {transport}:"),
            format!("{transport}:{bk_docker}"),
            Blobs::Registry,
        ));
    }
    forms.push(Form::new(
        "buildx --output type=oci,tar=false",
        bk_dir,
        Blobs::Registry,
    ));

    let mut failures = Vec::new();
    for form in &forms {
        let (diffs, pulled) = match measure(&form.reference) {
            Ok(got) => (
                differences(form, &got, &registry),
                got["images"][0]["totals"]["compressed_bytes"].clone(),
            ),
            Err(e) => (vec![e], Value::Null),
        };
        let verdict = if diffs.is_empty() { "same" } else { "DIFFERS" };
        eprintln!(
            "{verdict:8} {} ({}): compressed {pulled}, registry {}",
            form.what, form.reference, registry["images"][0]["totals"]["compressed_bytes"]
        );
        for d in &diffs {
            eprintln!("         {d}");
        }
        if !diffs.is_empty() {
            failures.push(form.what.clone());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} forms do not measure as the registry copy: {failures:?}",
        failures.len(),
        forms.len()
    );
}

/// A release checked from the archive `podman save` writes, against the
/// published previous release, costs what the pushed release costs: the
/// layers the baseline holds are shared, and only the new layer's
/// compressed size is an estimate, marked as one.
#[test]
fn a_saved_candidate_checks_like_the_pushed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry_with_image(tmp.path());
    let mut podman = Podman::new();
    podman.copy_in(
        &format!("docker://{}", reg.reference("team/app:v2")),
        &["--src-tls-verify=false"],
        IN_STORE,
    );
    let archive = tmp.path().join("app-v2.tar");
    podman.save("docker-archive", IN_STORE, &archive);
    let baseline = reg.reference("team/app:v1");
    let check = |candidate: &str| {
        let out = Run::new(["check", "--format", "json", "--no-config"])
            .args(["--candidate", candidate, "--baseline", &baseline])
            .run();
        out.assert_ok();
        out.json()
    };
    let saved = check(&format!("docker-archive:{}", archive.display()));
    let pushed = check(&reg.reference("team/app:v2"));
    let (s, p) = (&saved["platforms"][0], &pushed["platforms"][0]);
    let changes = |v: &Value| -> Vec<Value> {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["change"].clone())
            .collect()
    };
    assert_eq!(
        changes(p),
        [json!("shared"), json!("shared"), json!("added")]
    );
    assert_eq!(changes(s), changes(p));
    for figure in ["disk_bytes", "node_inodes", "layers"] {
        assert_eq!(
            s["rollout_cost"][figure], p["rollout_cost"][figure],
            "rollout_cost.{figure}"
        );
    }
    // Only the added layer is pulled, and its size is the one estimate.
    for figure in ["pull_bytes", "node_bytes", "peak_pull_bytes"] {
        let (saved, pushed) = (u(&s["rollout_cost"][figure]), u(&p["rollout_cost"][figure]));
        eprintln!("rollout_cost.{figure}: {saved} from the archive, {pushed} pushed");
        assert!(
            within_pct(saved, pushed, 5),
            "rollout_cost.{figure}: {saved} from the archive, {pushed} pushed"
        );
    }
    let layers = s["candidate"]["layers"].as_array().unwrap();
    assert_eq!(
        layers[2]["estimate"]["source"], "recompressed",
        "{}",
        layers[2]
    );
}

/// A registry may hold a layer uncompressed (crane and nix2container push
/// them so); `docker save` of that image holds the same tar, same digest.
/// Read in one run, the registry's blob is exact and the archive's copy is
/// an estimate, whichever comes first; checked against that registry, the
/// archive's layer is the registry's blob.
#[test]
fn one_uncompressed_blob_read_from_a_registry_and_an_archive_is_two_readings() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&layout);
    let text = LayerSpec::new()
        .dir("doc")
        .file_bytes("doc/a.txt", &prose(1, 20_000))
        .file_bytes("doc/b.txt", &prose(2, 20_000));
    let raw = b.add_layer(&text, Comp::None);
    let img = b.add_image(std::slice::from_ref(&raw), "linux", "amd64", None, false);
    b.tag_image(&img, "v1");
    let reg = Registry::start();
    reg.push_layout(&layout, "v1", "raw/app:v1");
    let archive = tmp.path().join("saved.tar");
    support::registry::copy_to_docker_archive(&layout, "v1", &archive);
    let (registry, saved) = (
        reg.reference("raw/app:v1"),
        format!("docker-archive:{}", archive.display()),
    );
    for order in [[&registry, &saved], [&saved, &registry]] {
        let out = Run::new(["measure", "-q", "--format", "json", order[0], order[1]]).run();
        let doc = out.assert_ok().json();
        for image in doc["images"].as_array().unwrap() {
            let layer = &image["layers"][0];
            assert_eq!(layer["digest"], json!(raw.blob_digest), "{layer}");
            if image["reference"] == json!(registry) {
                assert!(layer.get("estimate").is_none(), "{order:?}: {layer}");
                assert_eq!(layer["compressed_bytes"], layer["tar_bytes"], "{order:?}");
            } else {
                assert_eq!(
                    layer["estimate"],
                    json!({"source": "recompressed"}),
                    "{order:?}"
                );
                assert!(
                    u(&layer["compressed_bytes"]) < u(&layer["tar_bytes"]) / 4,
                    "{layer}"
                );
            }
        }
    }
    let out = Run::new(["check", "--format", "json", "--no-config"])
        .args(["--candidate", &saved, "--baseline", &registry])
        .run();
    let doc = out.assert_ok().json();
    let layer = &doc["platforms"][0]["candidate"]["layers"][0];
    assert!(layer.get("estimate").is_none(), "adopted: {layer}");
    assert_eq!(layer["compressed_bytes"], layer["tar_bytes"], "{layer}");
    assert_eq!(doc["platforms"][0]["layers"][0]["change"], "shared");
}
