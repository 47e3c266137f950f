//! The layer cache and `--estimate`, end to end against a real registry.

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::layout::{BuiltLayer, Comp, LayerSpec, LayoutBuilder};
use support::registry::Registry;
use support::run::{Out, Run};

/// `sizeguard ARGS` with the layer cache on.
fn run(args: &[&str]) -> Out {
    Run::new(args).with_layer_cache().run()
}

/// The JSON report of a run that succeeded.
fn json(o: &Out) -> Value {
    o.assert_ok().json()
}

/// gzip, zstd (streamed: no content size in the frame header), and a
/// multi-member gzip layer, as parallel compressors write them.
fn build(dir: &Path) -> (LayoutBuilder, Vec<BuiltLayer>) {
    let mut b = LayoutBuilder::new(dir);
    let gz = b.add_layer(
        &LayerSpec::new()
            .dir("usr/lib")
            .file("usr/lib/a.so", 700_000)
            .file("usr/lib/b.so", 3),
        Comp::Gzip,
    );
    let zst = b.add_layer(&LayerSpec::new().file("opt/z.bin", 300_000), Comp::Zstd);
    let base = b.add_layer(
        &LayerSpec::new().file("srv/data", 400_000).file("srv/x", 1),
        Comp::Gzip,
    );
    let tar = std::fs::read(&base.tar_path).unwrap();
    let mut multi = Vec::new();
    for part in [&tar[..tar.len() / 3], &tar[tar.len() / 3..]] {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        multi.extend(e.finish().unwrap());
    }
    let (digest, size) = b.put_blob(&multi);
    let mut mm = base.clone();
    mm.blob_digest = digest;
    mm.blob_size = size;
    let layers = vec![gz, zst, mm];
    b.add_tagged_image(&layers, "v1");
    (b, layers)
}

/// The image of [`build`] pushed to a fresh registry as `repo_and_tag`: the
/// registry, a temporary directory for the test, the layers, the reference.
fn pushed(repo_and_tag: &str) -> (Registry, tempfile::TempDir, Vec<BuiltLayer>, String) {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (_b, layers) = build(&tmp.path().join("l"));
    reg.push_layout(&tmp.path().join("l"), "v1", repo_and_tag);
    let image = reg.reference(repo_and_tag);
    (reg, tmp, layers, image)
}

#[test]
fn warm_cache_never_fetches_a_layer_and_corrupt_entries_are_misses() {
    let (reg, tmp, layers, image) = pushed("c/app:v1");
    let cache = tmp.path().join("cache");
    let cached_entries = || {
        json(&run(&[
            "cache",
            "stats",
            "--json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ]))["entries"]
            .clone()
    };
    let args = [
        "measure",
        "--format",
        "json",
        "-q",
        "--cache-dir",
        cache.to_str().unwrap(),
        &image,
    ];

    let cold = json(&run(&args));
    assert_eq!(cached_entries(), 3);

    // With every layer blob gone from the registry, a warm run still
    // answers: the layers come from the cache, not the network.
    for l in &layers {
        std::fs::remove_file(reg.blob_path(&l.blob_digest)).unwrap();
    }
    let warm = json(&run(&args));
    assert_eq!(warm, cold, "a warm report is the cold report");

    // A corrupt entry is a miss: the layer is fetched again (and now fails,
    // since its blob is gone), it is never read as data.
    let layers_dir = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("layers-v")
        })
        .unwrap();
    let entries: Vec<_> = std::fs::read_dir(layers_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let victim = entries
        .iter()
        .find(|p| p.to_string_lossy().contains(&layers[0].blob_digest[7..]))
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    let out = run(&args);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains(&layers[0].blob_digest));

    // --no-cache reads nothing from the cache either.
    let out = run(&["measure", "-q", "--no-cache", &image]);
    assert_eq!(out.code, 3);

    // The cache was created private and marked as sizeguard's.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    assert!(cache.join("CACHEDIR.TAG").is_file());

    // prune empties it of its entries, and only of them: a file of
    // someone else's inside it stays.
    let foreign = entries[0].with_file_name("notes.txt");
    std::fs::write(&foreign, b"not an entry").unwrap();
    let out = run(&[
        "cache",
        "prune",
        "--max-size",
        "0",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0);
    assert_eq!(cached_entries(), 0);
    assert!(foreign.is_file());
    assert!(cache.join("CACHEDIR.TAG").is_file());
}

/// `cache prune` pointed at a directory sizeguard did not create (a home
/// directory, by flag or by `SIZEGUARD_CACHE_DIR`) refuses it whole, in
/// one line, and removes nothing.
#[test]
fn prune_refuses_a_directory_that_is_not_its_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(home.join(format!(
        "layers-v{}",
        sizeguard::measure::cache::FORMAT_VERSION
    )))
    .unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        home.join(".ssh/id_rsa"),
        b"-----BEGIN OPENSSH PRIVATE KEY-----",
    )
    .unwrap();
    std::fs::write(home.join("id_rsa"), b"key").unwrap();
    let entry_name = format!("sha256-{}", "ab".repeat(32));
    std::fs::write(
        home.join(format!(
            "layers-v{}",
            sizeguard::measure::cache::FORMAT_VERSION
        ))
        .join(&entry_name),
        b"looks like one",
    )
    .unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, home.join("link")).unwrap();
    let listing = |dir: &std::path::Path| {
        let mut v: Vec<String> = walk(dir);
        v.sort();
        v
    };
    let before = listing(&home);
    let h = home.to_str().unwrap();
    for out in [
        run(&["cache", "prune", "--max-size", "0", "--cache-dir", h]),
        Run::new(["cache", "prune", "--max-size", "0"])
            .with_layer_cache()
            .env("SIZEGUARD_CACHE_DIR", h)
            .run(),
        run(&["cache", "stats", "--cache-dir", h]),
    ] {
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.error().contains("is not a sizeguard cache directory"),
            "{}",
            out.stderr
        );
        assert!(out.error().contains("CACHEDIR.TAG"), "{}", out.stderr);
    }
    assert_eq!(listing(&home), before);
    assert!(!home.join("CACHEDIR.TAG").exists());
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
}

/// Every path under `dir`, symlinks listed and not followed.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn estimate_is_exact_for_single_member_gzip_and_streams_the_rest() {
    let (_reg, tmp, layers, image) = pushed("e/app:v1");

    let r = json(&run(&[
        "measure",
        "--estimate",
        "--no-cache",
        "--format",
        "json",
        "-q",
        &image,
    ]));
    let img = &r["images"][0];
    assert_eq!(img["estimated"], true, "{:#}", img["layers"][0]["estimate"]);
    assert!(img["final"].is_null() && img["wasted_bytes"].is_null());
    assert!(img["totals"]["inodes"].is_null());
    let l = img["layers"].as_array().unwrap();
    // gzip, one member: tar_bytes exact from the trailer, nothing else known.
    assert_eq!(l[0]["estimate"]["source"], "probed");
    assert_eq!(l[0]["estimate"]["method"], "gzip-isize");
    assert_eq!(l[0]["tar_bytes"], layers[0].tar_size);
    assert_eq!(l[0]["compressed_bytes"], layers[0].blob_size);
    assert!(l[0]["inodes"].is_null() && l[0]["disk_bytes"].is_null());
    // zstd from a streaming encoder, and multi-member gzip: streamed, exact.
    assert_eq!(l[1]["estimate"]["source"], "streamed");
    assert_eq!(
        l[1]["estimate"]["reason"],
        "zstd frame header carries no content size"
    );
    assert_eq!(l[1]["tar_bytes"], layers[1].tar_size);
    assert_eq!(l[2]["estimate"]["source"], "streamed");
    assert_eq!(l[2]["tar_bytes"], layers[2].tar_size);
    assert!(l[2]["inodes"].as_u64().unwrap() > 0);

    // With a warm cache, every layer is exact and the report is complete.
    let cache = tmp.path().join("cache");
    let c = cache.to_str().unwrap();
    assert_eq!(run(&["measure", "-q", "--cache-dir", c, &image]).code, 0);
    let r = json(&run(&[
        "measure",
        "--estimate",
        "--cache-dir",
        c,
        "--format",
        "json",
        "-q",
        &image,
    ]));
    let img = &r["images"][0];
    assert_eq!(img["estimated"], false);
    for l in img["layers"].as_array().unwrap() {
        assert_eq!(l["estimate"]["source"], "cached");
    }
    assert!(img["final"]["inodes"].as_u64().unwrap() > 0);

    // The table marks what it does not know.
    let out = run(&["measure", "--estimate", "--no-cache", &image]);
    let text = &out.stdout;
    assert!(text.contains('?') && text.contains("estimated:"), "{text}");
}
