//! Hostile and huge layers: header records past the limit, endless
//! long-name chains, deep paths, sparse files, a zstd stream behind a
//! skippable frame, `..` components, and the memory a million files cost.
//!
//! Crafted layers go through the analyzer in-process (exact figures or a
//! clear error, in bounded time); memory is the peak RSS of the `sizeguard`
//! binary measuring an `oci:` layout, from GNU time, under an address-space
//! limit so a regression fails instead of exhausting the machine.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use sha2::{Digest as _, Sha256};

use sizeguard::measure::layer::{Expected, LayerError, LayerMeasurement, analyze};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sizeguard::digest::hex(&Sha256::digest(bytes)))
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

fn measure(blob: &[u8]) -> Result<LayerMeasurement, LayerError> {
    analyze(blob, &Expected::default(), None)
}

/// One 512-byte header block: `name`, type `kind`, `size`, GNU magic, and a
/// valid checksum; `edit` may change any field before the checksum is set.
fn header(name: &[u8], kind: u8, size: u64, edit: impl FnOnce(&mut tar::Header)) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    edit(&mut h);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A member: its header, then `data` padded to a block.
fn member(name: &[u8], kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = header(name, kind, data.len() as u64, |_| {});
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// A PAX `x` record holding `records` (key, value).
fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(format!("{len} {k}=").as_bytes());
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    member(b"PaxHeaders/x", b'x', &body)
}

fn end_of_archive() -> Vec<u8> {
    vec![0u8; 1024]
}

// ---------------------------------------------------------------------------
// Images on disk, measured by the binary
// ---------------------------------------------------------------------------

/// Writes an OCI layout at `dir` holding one image, tagged `v1`, whose
/// layers are the given gzip blobs.
fn write_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, u64) {
        let d = sha256(bytes);
        std::fs::write(blobs.join(&d["sha256:".len()..]), bytes).unwrap();
        (d, bytes.len() as u64)
    };
    let mut descs = Vec::new();
    for l in layers {
        let (digest, size) = put(l);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Runs `sizeguard measure --format json` on the layout under GNU time and
/// a 2 GiB address-space limit; returns (peak RSS KiB, stdout, stderr, ok).
fn measure_binary(dir: &Path) -> (u64, String, String, bool) {
    support::require_tool("/usr/bin/time", "time");
    let script = format!(
        "ulimit -v 2097152; exec /usr/bin/time -v '{}' measure -q --format json 'oci:{}:v1'",
        env!("CARGO_BIN_EXE_sizeguard"),
        dir.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("SIZEGUARD_NO_CACHE", "1")
        .output()
        .expect("run /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (rss, stdout, stderr, out.status.success())
}

/// A gzip layer of `dirs` × `per_dir` empty files, streamed into the
/// encoder (the tar itself is never held).
fn many_files_layer(dirs: usize, per_dir: usize, prefix: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for d in 0..dirs {
        for f in 0..per_dir {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("{prefix}d{d:04}/f{f:06}"), std::io::empty())
                .unwrap();
        }
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn figure(json: &str, path: &[&str]) -> u64 {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut v = &v["images"][0];
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("no {path:?} in {json}"))
}

#[test]
fn a_million_files_peak_under_100_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let layer = many_files_layer(1000, 1000, "");
    write_layout(tmp.path(), &[layer]);
    eprintln!("built in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let (rss, stdout, stderr, ok) = measure_binary(tmp.path());
    eprintln!(
        "1 000 000 files: peak RSS {rss} KiB, measured in {:?}",
        started.elapsed()
    );
    assert!(ok, "measure failed: {stderr}");
    assert_eq!(figure(&stdout, &["totals", "files"]), 1_000_000);
    assert_eq!(figure(&stdout, &["final", "files"]), 1_000_000);
    // Files, the 1000 directories and the root.
    assert_eq!(figure(&stdout, &["final", "inodes"]), 1_001_001);
    assert!(rss < 100 * 1024, "peak RSS {rss} KiB is over 100 MiB");
}

/// A path of 1 MiB minus a little: ~500 000 components of one letter, in a
/// PAX record (the longest a record may be).
fn deep_path() -> Vec<u8> {
    let depth = ((1 << 20) - 64) / 2;
    let mut p = b"a/".repeat(depth);
    p.push(b'f');
    p
}

#[test]
fn a_deep_path_costs_memory_linear_in_its_components() {
    let mut tar = pax(&[("path", &deep_path())]);
    tar.extend(member(b"placeholder", b'0', b"hello"));
    tar.extend(end_of_archive());
    let layer = gzip(&tar);
    eprintln!("deep-path layer: {} bytes gzip", layer.len());
    let tmp = tempfile::tempdir().unwrap();
    write_layout(tmp.path(), &[layer]);
    let (rss, stdout, stderr, ok) = measure_binary(tmp.path());
    eprintln!("deep path: peak RSS {rss} KiB");
    assert!(ok, "measure failed: {stderr}");
    let depth = ((1 << 20) - 64) / 2;
    assert_eq!(figure(&stdout, &["totals", "files"]), 1);
    assert_eq!(figure(&stdout, &["totals", "content_bytes"]), 5);
    // The file, its ancestors and the root.
    assert_eq!(figure(&stdout, &["totals", "inodes"]), 1 + depth as u64 + 1);
    assert_eq!(figure(&stdout, &["final", "inodes"]), 1 + depth as u64 + 1);
    assert!(rss < 200 * 1024, "peak RSS {rss} KiB");
}
