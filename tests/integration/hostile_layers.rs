//! Hostile and huge layers: header records past the limit, endless
//! long-name chains, deep paths, sparse files, a zstd stream behind a
//! skippable frame, `..` components, and the memory a million files cost.
//!
//! Crafted layers go through the analyzer in-process (exact figures or a
//! clear error, in bounded time); memory is the peak RSS of the `sizeguard`
//! binary measuring an `oci:` layout, from GNU time, under an address-space
//! limit so a regression fails instead of exhausting the machine.

use crate::support;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use sizeguard::digest::sha256_digest as sha256;
use sizeguard::measure::layer::{Expected, LayerError, LayerMeasurement, analyze};
use support::run::{Out, Run};

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
    let mut diff_ids = Vec::new();
    for l in layers {
        // The config names each layer's uncompressed digest; a count that
        // disagrees with the layers is refused before anything is measured.
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&l[..]), &mut tar)
            .unwrap();
        diff_ids.push(sha256(&tar));
        let (digest, size) = put(l);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
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

/// Runs sizeguard with `args` (the one runner: a failure must be one error
/// line, nothing may panic) under GNU time and a 4 GiB address-space limit
/// (room for the allocator's per-thread arenas, none for a runaway);
/// returns (peak RSS KiB, the run).
fn run_under_time(args: &[&str]) -> (u64, Out) {
    support::require_tool("/usr/bin/time", "time");
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("rss");
    let script = format!(
        "ulimit -v 4194304; exec /usr/bin/time -f %M -o '{}' \"$0\" \"$@\"",
        report.display()
    );
    let out = Run::new(args).wrapped_in(["sh", "-c", &script]).run();
    // GNU time writes "Command exited with non-zero status N" first on a
    // failure; the figure is the last line.
    let text = std::fs::read_to_string(&report).unwrap();
    let rss = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {text}"));
    (rss, out)
}

/// `sizeguard measure --format json` of the layout under [`run_under_time`];
/// returns (peak RSS KiB, stdout, stderr, ok).
fn measure_binary(dir: &Path) -> (u64, String, String, bool) {
    let (rss, out) = measure_reference(&format!("oci:{}:v1", dir.display()));
    (rss, out.stdout, out.stderr, out.code == 0)
}

/// `sizeguard measure --format json REFERENCE` under [`run_under_time`].
fn measure_reference(reference: &str) -> (u64, Out) {
    run_under_time(&[
        "measure", "-q", "--jobs", "2", "--format", "json", reference,
    ])
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

/// `sizeguard check` of the candidate layout against the baseline one
/// under [`run_under_time`]; returns (peak RSS KiB, stdout, stderr, ran).
fn check_binary(candidate: &Path, baseline: &Path) -> (u64, String, String, bool) {
    let (candidate, baseline) = (
        format!("oci:{}:v1", candidate.display()),
        format!("oci:{}:v1", baseline.display()),
    );
    let (rss, out) = run_under_time(&[
        "check",
        "-q",
        "--no-config",
        "--jobs",
        "2",
        "--format",
        "json",
        "--candidate",
        &candidate,
        "--baseline",
        &baseline,
    ]);
    // A check that judged a growth exits 0 (warn) or 1 (fail): both ran.
    (rss, out.stdout, out.stderr, matches!(out.code, 0 | 1))
}

/// The check holds both final trees and the path diff's per-node figures
/// at once: a candidate of 1 000 000 empty files against a small baseline.
#[test]
fn a_million_file_check_with_its_path_diff_peaks_under_200_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let (cand, base) = (tmp.path().join("cand"), tmp.path().join("base"));
    std::fs::create_dir_all(&cand).unwrap();
    std::fs::create_dir_all(&base).unwrap();
    write_layout(&cand, &[many_files_layer(1000, 1000, "")]);
    write_layout(&base, &[many_files_layer(10, 10, "")]);
    let started = std::time::Instant::now();
    let (rss, stdout, stderr, ran) = check_binary(&cand, &base);
    eprintln!(
        "check of 1 000 000 files: peak RSS {rss} KiB, in {:?}",
        started.elapsed()
    );
    assert!(ran, "check failed: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let c = &doc["platforms"][0]["candidate"];
    assert_eq!(c["final"]["files"], 1_000_000);
    // Empty files grow no content: the diff walks both trees all the same,
    // and lists nothing.
    assert_eq!(doc["paths"], serde_json::json!([]));
    assert!(rss < 200 * 1024, "peak RSS {rss} KiB is over 200 MiB");
}

/// The deepest path a node can create: 2048 components of one letter,
/// 4095 bytes, in a PAX record.
fn deep_path() -> Vec<u8> {
    let mut p = b"a/".repeat(2048);
    p.pop();
    assert_eq!(p.len(), 4095);
    p
}

#[test]
fn a_deep_path_costs_memory_linear_in_its_components() {
    let mut tar = pax(&[("path", &deep_path())]);
    tar.extend(member(b"placeholder", b'0', b"hello"));
    tar.extend(end_of_archive());
    let layer = gzip(&tar);
    let tmp = tempfile::tempdir().unwrap();
    write_layout(tmp.path(), &[layer]);
    let (rss, stdout, stderr, ok) = measure_binary(tmp.path());
    eprintln!("deep path: peak RSS {rss} KiB");
    assert!(ok, "measure failed: {stderr}");
    let depth = 2048;
    assert_eq!(figure(&stdout, &["totals", "files"]), 1);
    assert_eq!(figure(&stdout, &["totals", "content_bytes"]), 5);
    // The file, its ancestors and the root.
    assert_eq!(figure(&stdout, &["totals", "inodes"]), depth + 1);
    assert_eq!(figure(&stdout, &["final", "inodes"]), depth + 1);
    assert!(rss < 200 * 1024, "peak RSS {rss} KiB");
}

/// A name of `len` bytes, distinct for each `i`: a short directory, then
/// one component of the rest.
fn long_name(i: usize, len: usize) -> Vec<u8> {
    let mut name = format!("{i:03}/").into_bytes();
    name.resize(len, b'n');
    name
}

/// The layer that took a measure to 630 MiB: 300 members whose names are
/// a megabyte each (GNU long names and PAX paths in turn, both under the
/// 1 MiB a record may have), about 300 KiB of gzip.
fn megabyte_names_layer() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..300 {
        let name = long_name(i, 1_000_000);
        let record = if i % 2 == 0 {
            member(b"././@LongLink", b'L', &[&name[..], b"\0"].concat())
        } else {
            pax(&[("path", &name)])
        };
        gz.write_all(&record).unwrap();
        gz.write_all(&member(b"placeholder", b'0', b"x")).unwrap();
    }
    gz.write_all(&end_of_archive()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_layer_of_megabyte_names_is_refused_at_its_first_name() {
    let layer = megabyte_names_layer();
    eprintln!("megabyte-names layer: {} bytes gzip", layer.len());
    assert!(layer.len() < 512 << 10);
    let digest = sha256(&layer);
    let tmp = tempfile::tempdir().unwrap();
    write_layout(tmp.path(), &[layer]);
    let started = std::time::Instant::now();
    let (rss, out) = measure_reference(&format!("oci:{}:v1", tmp.path().display()));
    let took = started.elapsed();
    eprintln!("megabyte names: peak RSS {rss} KiB, refused in {took:?}");
    out.assert_measure_error(&[
        &[&format!("layer {digest}")],
        &["offset 0:"],
        &["long name ('L' record) of more than 4095 bytes"],
        &["4095-byte path limit"],
    ]);
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB is over 256 MiB");
    assert!(took.as_secs() < 10, "took {took:?}");
}

/// `record` (metadata records) then a member `kind` named "placeholder"
/// and the end of the archive.
fn with_member(record: Vec<u8>, kind: u8) -> Vec<u8> {
    [record, member(b"placeholder", kind, b""), end_of_archive()].concat()
}

/// A GNU long name (`L`) or link (`K`) record.
fn gnu_long(kind: u8, name: &[u8]) -> Vec<u8> {
    member(b"././@LongLink", kind, &[name, b"\0"].concat())
}

#[test]
fn names_are_held_to_the_kernel_limits() {
    // 4095 bytes: 15 components of 255 and their slashes, a last of 255.
    let component = vec![b'c'; 255];
    let mut at_limit = Vec::new();
    while at_limit.len() + 256 <= 4095 {
        at_limit.extend_from_slice(&component);
        at_limit.push(b'/');
    }
    at_limit.resize(4095, b'f');
    // 4096 bytes, no component over 255.
    let mut over = at_limit[..4094].to_vec();
    over.extend_from_slice(b"/x");
    let mut wide = b"dir/".to_vec();
    wide.extend_from_slice(&[b'w'; 256]);

    for name in [&at_limit, &over, &wide] {
        for (how, record) in [
            ("L", gnu_long(b'L', name)),
            ("PAX path", pax(&[("path", name)])),
        ] {
            let got = measure(&with_member(record, b'0'));
            let what = format!("{how}, {} bytes", name.len());
            if name == &at_limit {
                let m = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(m.largest_files(1)[0].path.len(), 4095, "{what}");
                continue;
            }
            let e = got.unwrap_err().to_string();
            let why = if name == &wide {
                "has a component of 256 bytes, over the 255-byte limit (Linux's NAME_MAX"
            } else {
                "4095-byte path limit (Linux's PATH_MAX"
            };
            assert!(e.contains(why) && e.contains("offset 0"), "{what}: {e}");
        }
    }

    // Link targets: 4095 bytes at most; a hard link's components too.
    let long_target = vec![b't'; 4096];
    for (how, record, kind) in [
        ("K symlink", gnu_long(b'K', &long_target), b'2'),
        ("K hard link", gnu_long(b'K', &long_target), b'1'),
        ("PAX linkpath", pax(&[("linkpath", &long_target)]), b'2'),
    ] {
        let e = measure(&with_member(record, kind)).unwrap_err().to_string();
        assert!(e.contains("4095-byte link target limit"), "{how}: {e}");
    }
    let e = measure(&with_member(pax(&[("linkpath", &wide)]), b'1'))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the hard link's target has a component of 256 bytes"),
        "{e}"
    );
    // A symlink's target is not a path of the layer: only its length counts.
    let m = measure(&with_member(pax(&[("linkpath", &wide)]), b'2')).unwrap();
    assert_eq!(m.index.len(), 1);
    let m = measure(&with_member(gnu_long(b'K', &at_limit), b'2')).unwrap();
    assert_eq!(m.index.len(), 1);
}

#[test]
fn a_pax_header_is_held_to_its_cap_and_may_fill_it() {
    // One extended attribute that fills the header to exactly 1 MiB.
    let key = "SCHILY.xattr.user.big";
    let value = vec![b'v'; (1 << 20) - 7 - 3 - key.len()];
    let header = pax(&[(key, &value)]);
    assert_eq!(header.len(), 512 + (1 << 20));
    let m = measure(&with_member(header, b'0')).unwrap();
    assert_eq!(m.figures.files, 1);
    let value = [&value[..], b"v"].concat();
    for kind in [b'x', b'g'] {
        let mut header = pax(&[(key, &value)]);
        header[156] = kind;
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(&header[..512]);
        h.set_cksum();
        header[..512].copy_from_slice(h.as_bytes());
        let e = measure(&with_member(header, b'0')).unwrap_err().to_string();
        assert!(
            e.contains("of 1048577 bytes is over the 1048576-byte limit"),
            "{}: {e}",
            kind as char
        );
    }
}

#[test]
fn a_long_name_is_refused_before_it_is_read_whole() {
    // Records under the 1 MiB cap whose names are not: the reader stops
    // a few KiB in, not at the record's end.
    let chunk = |byte: u8| move |_| vec![byte; 16 << 10];
    let cases: Vec<(&str, Endless)> = vec![
        (
            "L",
            Endless::new(
                header(b"././@LongLink", b'L', 1_000_000, |_| {}),
                chunk(b'n'),
            ),
        ),
        (
            "K",
            Endless::new(
                header(b"././@LongLink", b'K', 1_000_000, |_| {}),
                chunk(b'n'),
            ),
        ),
        (
            "PAX path",
            Endless::new(
                [
                    header(b"PaxHeaders/x", b'x', 1_000_000, |_| {}),
                    b"1000000 path=".to_vec(),
                ]
                .concat(),
                chunk(b'n'),
            ),
        ),
        (
            "PAX global path",
            Endless::new(
                [
                    header(b"PaxHeaders/g", b'g', 1_000_000, |_| {}),
                    b"1000000 path=".to_vec(),
                ]
                .concat(),
                chunk(b'n'),
            ),
        ),
    ];
    for (how, mut r) in cases {
        let e = analyze_counting(&mut r).unwrap_err().to_string();
        assert!(e.contains("limit (Linux's PATH_MAX"), "{how}: {e}");
        assert!(r.served < 64 << 10, "{how}: read {} bytes", r.served);
    }
}

// ---------------------------------------------------------------------------
// Header records: bounded before they are read
// ---------------------------------------------------------------------------

/// Serves `head`, then `filler` bytes forever (or up to `limit`), counting
/// what was pulled: a reader that refuses a record must stop early.
struct Endless {
    head: Vec<u8>,
    filler: Box<dyn FnMut(u64) -> Vec<u8>>,
    served: u64,
    buf: Vec<u8>,
}

impl Endless {
    fn new(head: Vec<u8>, filler: impl FnMut(u64) -> Vec<u8> + 'static) -> Self {
        Endless {
            head,
            filler: Box::new(filler),
            served: 0,
            buf: Vec::new(),
        }
    }
}

impl std::io::Read for Endless {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = if self.head.is_empty() {
                (self.filler)(self.served)
            } else {
                std::mem::take(&mut self.head)
            };
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        self.served += n as u64;
        Ok(n)
    }
}

fn analyze_counting(r: &mut Endless) -> Result<LayerMeasurement, LayerError> {
    analyze(&mut *r, &Expected::default(), None)
}

#[test]
fn a_pax_record_claiming_a_gib_is_refused_before_it_is_read() {
    for kind in [b'x', b'g', b'L', b'K'] {
        let mut r = Endless::new(header(b"PaxHeaders/x", kind, 1 << 30, |_| {}), |_| {
            b"30 path=aaaaaaaaaaaaaaaaaaaa\n".repeat(1000)
        });
        let started = std::time::Instant::now();
        let err = analyze_counting(&mut r).unwrap_err().to_string();
        assert!(
            err.contains("offset 0")
                && err.contains("1073741824 bytes")
                && err.contains("1048576-byte limit"),
            "{err}"
        );
        assert!(
            r.served < 64 * 1024,
            "read {} bytes of the record",
            r.served
        );
        assert!(started.elapsed().as_secs() < 2);
    }
}

#[test]
fn an_endless_chain_of_long_names_is_cut_short() {
    for kinds in [&[b'L'][..], b"LK", b"xLK"] {
        let kinds = kinds.to_vec();
        let mut i = 0;
        let mut r = Endless::new(Vec::new(), move |_| {
            let k = kinds[i % kinds.len()];
            i += 1;
            if k == b'x' {
                pax(&[("path", b"some/name")])
            } else {
                member(b"././@LongLink", k, b"some/long/name\0")
            }
        });
        let err = analyze_counting(&mut r).unwrap_err().to_string();
        assert!(
            err.contains("more than 8 metadata records before one member")
                && err.contains("offset 0"),
            "{err}"
        );
        assert!(r.served < 64 * 1024, "read {} bytes", r.served);
    }
}

#[test]
fn errors_never_copy_raw_header_bytes() {
    // A name full of terminal escapes and a PAX sparse map that lies.
    let name = b"\x1b[2J\x1b]0;owned\x07evil\xff\x00";
    let mut tar = pax(&[
        ("path", &name[..name.len() - 1]),
        ("GNU.sparse.major", b"0"),
        ("GNU.sparse.minor", b"1"),
        ("GNU.sparse.size", b"100"),
        ("GNU.sparse.numblocks", b"1"),
        ("GNU.sparse.map", b"0,50"),
    ]);
    tar.extend(member(b"x", b'0', b"short"));
    tar.extend(end_of_archive());
    let err = measure(&tar).unwrap_err().to_string();
    assert!(err.contains("offset 0"), "{err}");
    assert!(err.contains("\\x1b[2J"), "{err}");
    assert!(
        !err.bytes().any(|b| b.is_ascii_control()),
        "control bytes in: {err:?}"
    );
    // Garbage that is no header at all: the offset, no bytes.
    let mut garbage = member(b"ok", b'0', b"fine");
    garbage.extend(b"\x1b[31m\x00\x01\x02".repeat(128));
    let err = measure(&garbage).unwrap_err().to_string();
    assert!(
        err.contains("offset 1024") && err.contains("checksum"),
        "{err}"
    );
    assert!(!err.bytes().any(|b| b.is_ascii_control()), "{err:?}");
}

#[test]
fn a_zero_block_then_a_header_is_refused_as_containerd_would() {
    let mut tar = member(b"a", b'0', b"x");
    tar.extend([0u8; 512]);
    tar.extend(member(b"b", b'0', b"y"));
    tar.extend(end_of_archive());
    let err = measure(&tar).unwrap_err().to_string();
    assert!(err.contains("zero block followed by a header"), "{err}");
}

// ---------------------------------------------------------------------------
// Compression sniffing, paths
// ---------------------------------------------------------------------------

#[test]
fn zstd_behind_a_skippable_frame_is_zstd() {
    let mut tar = member(b"etc/hosts", b'0', &[b'h'; 300]);
    tar.extend(end_of_archive());
    for magic in [0x184D_2A50u32, 0x184D_2A5F] {
        let mut blob = magic.to_le_bytes().to_vec();
        blob.extend(6u32.to_le_bytes());
        blob.extend(b"sizegd");
        blob.extend(zstd::encode_all(&tar[..], 3).unwrap());
        let m = measure(&blob).unwrap();
        assert_eq!(m.compression, sizeguard::measure::layer::Compression::Zstd);
        assert_eq!(m.figures.content_bytes, 300);
        assert_eq!(m.figures.tar_bytes, tar.len() as u64);
        assert_eq!(m.diff_id, sha256(&tar));
        // Its ends cannot size it: the content size is in the next frame.
        let head = &blob[..64];
        let tail = &blob[blob.len() - 64..];
        assert!(sizeguard::measure::estimate::tar_bytes(head, tail, blob.len() as u64).is_err());
    }
}

#[test]
fn dot_dot_is_resolved_under_the_root_as_containerd_does() {
    let mut tar = Vec::new();
    tar.extend(member(b"a/../b", b'0', &[1; 10]));
    tar.extend(member(b"../../etc/passwd", b'0', &[2; 20]));
    tar.extend(member(b"x/y/../../../z", b'0', &[3; 30]));
    tar.extend(member(b"..", b'5', b""));
    tar.extend(member(b"d/..", b'0', b"ignored: it is the root"));
    tar.extend(member(b"lib/../lib/./libc.so", b'0', &[4; 40]));
    tar.extend(member(b"lib/link", b'1', b""));
    tar.extend(end_of_archive());
    // The hard link's target goes through `..` too.
    let link_at = tar.len() - 1024 - 512;
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()
        .copy_from_slice(&tar[link_at..link_at + 512]);
    h.set_link_name("../lib/libc.so").unwrap();
    h.set_cksum();
    tar[link_at..link_at + 512].copy_from_slice(h.as_bytes());
    let m = measure(&tar).unwrap();
    let mut paths: Vec<String> = m.index.entries().into_iter().map(|e| e.path).collect();
    paths.sort();
    assert_eq!(paths, ["b", "etc/passwd", "lib/libc.so", "lib/link", "z"]);
    let f = m.figures;
    assert_eq!(f.files, 4);
    assert_eq!(f.content_bytes, 100);
    // 4 files + etc + lib + root; the link shares libc.so's inode.
    assert_eq!(f.inodes, 4 + 2 + 1);
    let err = measure(&[member(b"d/.wh..", b'0', b""), end_of_archive()].concat())
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid whiteout name"), "{err}");
}

// ---------------------------------------------------------------------------
// Sparse files, against the node's own allocation
// ---------------------------------------------------------------------------

const SPARSE_SIZE: u64 = 10 << 20;
const HOLE_SIZE: u64 = 3 << 20;

/// `sparse.img`: 10 MiB with two 5-byte islands of data; `hole.img`: 3 MiB
/// with none.
fn sparse_sources(dir: &Path) {
    use std::io::{Seek, SeekFrom};
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::File::create(dir.join("sparse.img")).unwrap();
    f.set_len(SPARSE_SIZE).unwrap();
    for (at, data) in [(1 << 20, b"hello"), (9_000_000, b"world")] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(data).unwrap();
    }
    std::fs::File::create(dir.join("hole.img"))
        .unwrap()
        .set_len(HOLE_SIZE)
        .unwrap();
}

fn gnu_tar(src: &Path, out: &Path, format: &[&str]) -> Vec<u8> {
    support::require_tool("tar", "tar");
    let status = Command::new("tar")
        .args(["--sparse", "-C"])
        .arg(src)
        .args(format)
        .arg("-cf")
        .arg(out)
        .args(["sparse.img", "hole.img"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// Bytes allocated to the files of `dir`, as `du` counts them.
fn du(dir: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let dir_itself = 4096;
    s.split_whitespace().next().unwrap().parse::<u64>().unwrap() - dir_itself
}

/// Unpacks `tar` into `dir` as containerd does: every regular file's data
/// read through a reader that returns holes as zeros (Python's
/// `extractfile`, like Go's `tar.Reader.Read`) and written with plain
/// writes (containerd's `copyBuffered`), no seeking over holes.
fn unpack_like_containerd(tar: &Path, dir: &Path) {
    support::require_tool("python3", "python3");
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import os, sys, tarfile
t = tarfile.open(sys.argv[1])
for m in t.getmembers():
    if m.isfile():
        src = t.extractfile(m)
        with open(os.path.join(sys.argv[2], m.name), "wb") as out:
            while chunk := src.read(32 * 1024):
                out.write(chunk)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(tar)
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn pax_sparse_files_cost_their_apparent_size_as_containerd_unpacks_them() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sparse_sources(&src);
    for version in ["0.0", "0.1", "1.0"] {
        let tar_path = tmp.path().join(format!("pax-{version}.tar"));
        let tar = gnu_tar(
            &src,
            &tar_path,
            &["--format=posix", &format!("--sparse-version={version}")],
        );
        let m = measure(&tar).unwrap_or_else(|e| panic!("{version}: {e}"));
        let paths: Vec<String> = m.index.entries().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["hole.img", "sparse.img"], "{version}");
        let f = m.figures;
        assert_eq!(f.files, 2, "{version}");
        assert_eq!(f.content_bytes, SPARSE_SIZE + HOLE_SIZE, "{version}");
        // No phantom GNUSparseFile.N directory: the two files and the root.
        assert_eq!(f.inodes, 3, "{version}");
        assert_eq!(f.disk_bytes, SPARSE_SIZE + HOLE_SIZE + 4096, "{version}");

        let as_containerd = tmp.path().join(format!("containerd-{version}"));
        unpack_like_containerd(&tar_path, &as_containerd);
        assert_eq!(du(&as_containerd), f.disk_bytes - 4096, "{version}");

        // GNU tar recreates the holes (with or without --sparse): not what
        // a node does.
        let as_gnu_tar = tmp.path().join(format!("gnutar-{version}"));
        std::fs::create_dir_all(&as_gnu_tar).unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tar_path)
            .arg("-C")
            .arg(&as_gnu_tar)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(du(&as_gnu_tar) < 64 * 1024, "{version}");
        eprintln!(
            "PAX {version}: apparent {} B, containerd-style unpack {} B (du), GNU tar unpack {} B (du), modelled disk_bytes {} B",
            f.content_bytes,
            du(&as_containerd),
            du(&as_gnu_tar),
            f.disk_bytes - 4096
        );
    }
}

#[test]
fn old_gnu_sparse_files_are_refused_as_containerd_refuses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sparse_sources(&src);
    let tar = gnu_tar(&src, &tmp.path().join("gnu.tar"), &["--format=gnu"]);
    let err = measure(&tar).unwrap_err().to_string();
    assert!(
        err.contains("sparse.img")
            && err.contains("old GNU sparse file (10485760 bytes apparent)")
            && err.contains("containerd cannot unpack it"),
        "{err}"
    );
}

#[test]
fn sparse_maps_that_lie_are_refused() {
    let records = |map: &'static [u8], size: &'static [u8]| {
        vec![
            ("GNU.sparse.major", &b"0"[..]),
            ("GNU.sparse.minor", b"1"),
            ("GNU.sparse.name", b"real"),
            ("GNU.sparse.size", size),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.map", map),
        ]
    };
    for (map, size, stored, why) in [
        (&b"0,5,100,5"[..], &b"200"[..], 10, None),
        (b"0,5,100,5", b"104", 10, Some("ends past")),
        (b"100,5,0,5", b"200", 10, Some("overlaps")),
        (b"0,5,100,5", b"200", 9, Some("refers to 10 bytes of data")),
        (b"0,5,100", b"200", 10, Some("disagrees with numblocks")),
        (b"0,5,x,5", b"200", 10, Some("bad PAX sparse map")),
    ] {
        let mut tar = pax(&records(map, size));
        tar.extend(member(b"GNUSparseFile.1/real", b'0', &vec![7u8; stored]));
        tar.extend(end_of_archive());
        match (measure(&tar), why) {
            (Ok(m), None) => {
                assert_eq!(m.figures.content_bytes, 200);
                assert_eq!(m.largest_files(1)[0].path, "real");
            }
            (Err(e), Some(why)) => {
                let e = e.to_string();
                assert!(e.contains(why) && e.contains("real"), "{e}");
            }
            (other, why) => panic!("{why:?}: {other:?}"),
        }
    }
}

/// An ELF header claiming section tables past the file, a huge section
/// count, a name table outside the file, or sizes near `u64::MAX`: the file
/// is measured, its debug bytes are 0 or at most its size, nothing panics.
#[test]
fn hostile_elf_headers_are_measured_without_debug_bytes_or_panics() {
    let mut elf = vec![0u8; 4096];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    let cases: Vec<(usize, Vec<u8>)> = vec![
        // e_shoff far past the end.
        (0x28, u64::MAX.to_le_bytes().to_vec()),
        // e_shoff inside the header.
        (0x28, 8u64.to_le_bytes().to_vec()),
        // 65535 sections of 64 bytes from offset 64.
        (0x28, 64u64.to_le_bytes().to_vec()),
        (0x3a, [64, 0, 0xff, 0xff, 0xfe, 0xff].to_vec()),
    ];
    let mut tar = Vec::new();
    for (i, (at, bytes)) in cases.iter().enumerate() {
        let mut b = elf.clone();
        b[*at..*at + bytes.len()].copy_from_slice(bytes);
        // A table that fits, whose entries claim sizes near u64::MAX.
        if i == 2 {
            b[0x3a..0x40].copy_from_slice(&[64, 0, 8, 0, 1, 0]);
            for e in 0..8 {
                let at = 64 + e * 64;
                b[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
                b[at + 0x18..at + 0x20].copy_from_slice(&u64::MAX.to_le_bytes());
                b[at + 0x20..at + 0x28].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
            }
        }
        tar.extend(member(format!("bin/elf{i}").as_bytes(), b'0', &b));
    }
    tar.extend(end_of_archive());
    let m = measure(&gzip(&tar)).unwrap();
    assert_eq!(m.figures.files, cases.len() as u64);
    for (path, bytes) in m.index.debug_sections() {
        assert!(bytes <= elf.len() as u64, "{path}: {bytes}");
    }
}

// ---------------------------------------------------------------------------
// The outer tar of an archive: the same reader, the same limits
// ---------------------------------------------------------------------------

/// Writes `hostile` (raw tar members) and then the members of `dir` as a
/// plain tar at `out`.
fn tar_after(hostile: &[u8], dir: &Path, out: &Path) {
    let mut file = std::fs::File::create(out).unwrap();
    file.write_all(hostile).unwrap();
    let mut t = tar::Builder::new(file);
    t.append_dir_all(".", dir).unwrap();
    t.finish().unwrap();
}

/// Members of megabyte names, one a GNU long name and one a PAX path.
fn megabyte_name_members() -> Vec<u8> {
    let mut out = gnu_long(b'L', &long_name(0, 1_000_000));
    out.extend(member(b"junk", b'0', b"x"));
    out.extend(pax(&[("path", &long_name(1, 1_000_000))]));
    out.extend(member(b"junk", b'0', b"x"));
    out
}

#[test]
fn archives_whose_own_tar_has_megabyte_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = gzip(&[member(b"etc/hosts", b'0', b"127.0.0.1"), end_of_archive()].concat());
    let layout = tmp.path().join("layout");
    write_layout(&layout, &[layer]);
    let hostile = megabyte_name_members();

    let oci_archive = tmp.path().join("oci.tar");
    tar_after(&[], &layout, &oci_archive);
    let (_, out) = measure_reference(&format!("oci-archive:{}:v1", oci_archive.display()));
    out.assert_ok();
    tar_after(&hostile, &layout, &oci_archive);
    let (rss, out) = measure_reference(&format!("oci-archive:{}:v1", oci_archive.display()));
    eprintln!("oci-archive with megabyte names: peak RSS {rss} KiB");
    out.assert_measure_error(&[
        &["oci-archive:"],
        &["corrupt tar archive at offset 0"],
        &["4095-byte path limit"],
    ]);
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB");

    // A docker-archive: manifest.json, the config, the layer as a plain tar.
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(docker.join("l0")).unwrap();
    let layer_tar = [member(b"etc/hosts", b'0', b"127.0.0.1"), end_of_archive()].concat();
    std::fs::write(docker.join("l0/layer.tar"), &layer_tar).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer_tar)]},
    });
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([
        {"Config": "config.json", "RepoTags": ["app:v1"], "Layers": ["l0/layer.tar"]}
    ]);
    std::fs::write(docker.join("manifest.json"), manifest.to_string()).unwrap();
    let docker_archive = tmp.path().join("docker.tar");
    tar_after(&[], &docker, &docker_archive);
    let (_, out) = measure_reference(&format!("docker-archive:{}", docker_archive.display()));
    out.assert_ok();
    // The PAX path first this time.
    let pax_first = [
        pax(&[("path", &long_name(1, 1_000_000))]),
        member(b"junk", b'0', b"x"),
    ]
    .concat();
    tar_after(&pax_first, &docker, &docker_archive);
    let (rss, out) = measure_reference(&format!("docker-archive:{}", docker_archive.display()));
    eprintln!("docker-archive with megabyte names: peak RSS {rss} KiB");
    out.assert_measure_error(&[
        &["docker-archive:"],
        &["corrupt tar archive at offset 0"],
        &["PAX 'path' record of 1000000 bytes"],
        &["4095-byte path limit"],
    ]);
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB");
}
