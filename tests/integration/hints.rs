//! Priced hints against ground truth: an image holding apt lists, a pip
//! cache, bytecode next to its sources, a file deleted by a later layer, a
//! file present at two paths in two layers, and a binary built with
//! `gcc -g`. Each hint's saving must match GNU tar + `du` on the matched
//! paths (for debug sections, the shrink `strip --strip-debug` gives)
//! within 1 %, and none fires on the same image built without them.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::layout::{BuiltLayer, Comp, LayerSpec, LayoutBuilder};
use support::require_tool;
use support::run::Run;

const SIX: [&str; 6] = [
    "apt_lists",
    "pip_cache",
    "pycache",
    "deleted_later",
    "duplicates",
    "debug_sections",
];

/// Host files the image is built from.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// A C file with enough types, functions and locals that `-g` adds a
/// sizeable DWARF section set.
fn c_source() -> String {
    let mut s = String::from("#include <stdio.h>\n");
    for i in 0..400 {
        s.push_str(&format!(
            "struct rec{i} {{ int a{i}; long b{i}; double c{i}; char name{i}[16]; struct rec{i} *next; }};\n\
             static long fn{i}(struct rec{i} *r, int n) {{ long acc = 0; for (int k = 0; k < n; k++) {{ \
             long t{i} = r->a{i} * k + r->b{i}; double u{i} = r->c{i} / (k + 1); acc += t{i} + (long)u{i}; }} return acc; }}\n"
        ));
    }
    s.push_str("int main(int argc, char **argv) { long total = 0;\n");
    for i in 0..400 {
        s.push_str(&format!(
            "{{ struct rec{i} r = {{ argc, {i}, 1.5, \"x\", 0 }}; total += fn{i}(&r, argc); }}\n"
        ));
    }
    s.push_str("printf(\"%ld\\n\", total); return 0; }\n");
    s
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Python sources with large constant tables, so their bytecode is sizeable.
fn python_sources(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for m in 0..30 {
        let mut s = format!("\"\"\"module {m}\"\"\"\nTABLE = [\n");
        for k in 0..1500 {
            s.push_str(&format!(
                "    ('entry-{m}-{k}', {k}, {k}.5, 'value number {k} of module {m}'),\n"
            ));
        }
        s.push_str("]\n\ndef lookup(i):\n    return TABLE[i % len(TABLE)]\n");
        fs::write(dir.join(format!("mod{m}.py")), s).unwrap();
    }
}

fn inputs(with: bool) -> Inputs {
    let python = require_tool("python3", "apt-get install python3");
    let gcc = require_tool("gcc", "apt-get install gcc");
    let dir = tempfile::Builder::new()
        .prefix("sizeguard-hints-")
        .tempdir()
        .unwrap();
    let i = Inputs { dir };
    python_sources(&i.path("app/pkg"));
    if with {
        run(Command::new(&python)
            .args(["-m", "compileall", "-q"])
            .arg(i.path("app/pkg")));
    }
    fs::write(i.path("prog.c"), c_source()).unwrap();
    let mut cc = Command::new(&gcc);
    if with {
        cc.arg("-g");
    }
    run(cc
        .arg("-O0")
        .arg("-o")
        .arg(i.path("prog"))
        .arg(i.path("prog.c")));
    i
}

/// Every regular file under `dir`, as (archive path under `prefix`, host path).
fn files_under(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), prefix.to_string())];
    while let Some((d, p)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push((e.path(), format!("{p}/{name}")));
            } else if t.is_file() {
                out.push((format!("{p}/{name}"), e.path()));
            }
        }
    }
    out.sort();
    out
}

/// The apt lists of this host (`apt-get update` in install-deps fills
/// them), or generated ones of the same shape when there are none.
fn apt_lists() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> =
        files_under(Path::new("/var/lib/apt/lists"), "var/lib/apt/lists")
            .into_iter()
            .filter(|(p, _)| !p.ends_with("/lock") && !p.contains("/partial/"))
            .filter_map(|(p, host)| Some((p, fs::read(host).ok()?)))
            .collect();
    if out.iter().map(|(_, b)| b.len()).sum::<usize>() < 2 << 20 {
        let mut text = String::new();
        for k in 0..20_000 {
            text.push_str(&format!(
                "Package: pkg{k}\nVersion: 1.{k}\nArchitecture: amd64\nSize: {}\nDescription: package {k}\n\n",
                k * 37
            ));
        }
        out.push((
            "var/lib/apt/lists/deb.debian.org_debian_dists_stable_main_binary-amd64_Packages"
                .into(),
            text.into_bytes(),
        ));
    }
    out
}

fn build(dir: &Path, with: bool) -> (Vec<BuiltLayer>, LayoutBuilder, Inputs) {
    let i = inputs(with);
    let mut base = LayerSpec::new().dir("app").dir("usr/local/bin");
    for (p, host) in files_under(&i.path("app"), "app") {
        base = base.file_bytes(&p, &fs::read(host).unwrap());
    }
    base = base.file_bytes("usr/local/bin/prog", &fs::read(i.path("prog")).unwrap());
    let twenty: Vec<u8> = (0..20u32 << 20)
        .map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut big = LayerSpec::new().dir("opt");
    let mut top = LayerSpec::new().dir("srv");
    if with {
        base = base.file("var/lib/apt/lists/lock", 0);
        for (p, bytes) in apt_lists() {
            base = base.file_bytes(&p, &bytes);
        }
        for k in 0..4 {
            base = base.file(
                &format!("root/.cache/pip/http-v2/{k}/a/b/c/entry{k}"),
                700_000 + k * 1000,
            );
        }
        base = base.file_bytes("opt/data/model.bin", &twenty);
        big = big.file("opt/scratch.bin", 50 << 20);
        top = top
            .whiteout("opt/scratch.bin")
            .file_bytes("srv/model-copy.bin", &twenty);
    } else {
        base = base.file("opt/data/model.bin", 20 << 20);
        top = top.file("srv/other.bin", 20 << 20);
    }
    let mut b = LayoutBuilder::new(dir);
    let layers = vec![
        b.add_layer(&base, Comp::Gzip),
        b.add_layer(&big, Comp::Gzip),
        b.add_layer(&top, Comp::Gzip),
    ];
    b.add_tagged_image(&layers, "v1");
    (layers, b, i)
}

/// Unpacks a layer with GNU tar.
fn unpack(layer: &BuiltLayer) -> tempfile::TempDir {
    let tar = require_tool("tar", "apt-get install tar");
    let root = tempfile::Builder::new()
        .prefix("sizeguard-hints-truth-")
        .tempdir()
        .unwrap();
    run(Command::new(tar)
        .arg("-xf")
        .arg(&layer.tar_path)
        .arg("-C")
        .arg(root.path())
        .arg("--no-same-owner"));
    root
}

/// `du --block-size=1 -c` of `paths` under `root`: their allocation.
fn du(root: &Path, paths: &[String]) -> u64 {
    let du = require_tool("du", "apt-get install coreutils");
    let mut total = 0;
    for chunk in paths.chunks(500) {
        let out = Command::new(&du)
            .args(["--block-size=1", "-c"])
            .args(chunk.iter().map(|p| root.join(p)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let last = text.lines().last().unwrap();
        total += last
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    total
}

fn within_1pct(got: u64, want: u64, what: &str) {
    let diff = got.abs_diff(want) as f64;
    eprintln!("{what}: sizeguard {got}, ground truth {want}");
    assert!(
        want > 0 && diff <= want as f64 * 0.01,
        "{what}: sizeguard says {got}, ground truth {want}"
    );
}

fn hints_of(layout: &Path, top: &str) -> Vec<Value> {
    let config = layout.join("hints.toml");
    fs::write(&config, "[hints]\nmin-bytes = \"0\"\n").unwrap();
    let reference = format!("oci:{}:v1", layout.display());
    let out = Run::new(["check", "--format", "json", "-q", "--no-cache"])
        .args(["--candidate", reference.as_str(), "--top", top])
        .args(["--config".to_string(), config.display().to_string()])
        .run();
    assert!(out.code <= 1, "check failed: {}", out.stderr);
    let doc = out.json();
    doc["platforms"][0]["candidate"]["hints"]
        .as_array()
        .unwrap()
        .clone()
}

fn hint<'a>(hints: &'a [Value], rule: &str) -> &'a Value {
    hints
        .iter()
        .find(|h| h["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} hint in {hints:#?}"))
}

fn matched_paths(root: &Path, prefix: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    files_under(&root.join(prefix), prefix)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| keep(p))
        .collect()
}

#[test]
fn six_hints_fire_with_savings_equal_to_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, _b, inputs) = build(dir.path(), true);
    let hints = hints_of(dir.path(), "100000");
    let base = unpack(&layers[0]);
    let apt = matched_paths(base.path(), "var/lib/apt/lists", |p| !p.ends_with("/lock"));
    within_1pct(
        u(hint(&hints, "apt_lists"), "disk_bytes"),
        du(base.path(), &apt),
        "apt lists",
    );
    let pip = matched_paths(base.path(), "root/.cache/pip", |_| true);
    within_1pct(
        u(hint(&hints, "pip_cache"), "disk_bytes"),
        du(base.path(), &pip),
        "pip cache",
    );
    let pyc = matched_paths(base.path(), "app", |p| p.contains("/__pycache__/"));
    assert!(!pyc.is_empty());
    within_1pct(
        u(hint(&hints, "pycache"), "disk_bytes"),
        du(base.path(), &pyc),
        "bytecode",
    );
    assert_eq!(u(hint(&hints, "pycache"), "files"), pyc.len() as u64);

    let big = unpack(&layers[1]);
    let deleted = hint(&hints, "deleted_later");
    assert_eq!(deleted["layers"]["added_in"], 1);
    assert_eq!(deleted["layers"]["hidden_by"], 2);
    assert_eq!(deleted["paths"][0], "opt/scratch.bin");
    within_1pct(
        u(deleted, "disk_bytes"),
        du(big.path(), &["opt/scratch.bin".into()]),
        "deleted later",
    );

    let top = unpack(&layers[2]);
    let dup = hint(&hints, "duplicates");
    assert_eq!(dup["paths"][0], "srv/model-copy.bin");
    within_1pct(
        u(dup, "disk_bytes"),
        du(top.path(), &["srv/model-copy.bin".into()]),
        "duplicates",
    );

    // Debug sections: what strip --strip-debug takes off a copy.
    let strip = require_tool("strip", "apt-get install binutils");
    let stripped = inputs.path("prog.stripped");
    run(Command::new(strip)
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(inputs.path("prog")));
    let before = fs::metadata(inputs.path("prog")).unwrap().len();
    let after = fs::metadata(&stripped).unwrap().len();
    let debug = hint(&hints, "debug_sections");
    assert_eq!(debug["paths"][0], "usr/local/bin/prog");
    let block = |n: u64| n.div_ceil(4096) * 4096;
    within_1pct(
        u(debug, "disk_bytes"),
        block(before) - block(after),
        "debug sections",
    );
    for h in &hints {
        assert!(u(h, "pull_bytes_estimate") > 0, "{h}");
    }
}

#[test]
fn none_of_the_six_fires_on_the_image_built_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_layers, _b, _inputs) = build(dir.path(), false);
    let hints = hints_of(dir.path(), "10");
    for rule in SIX {
        assert!(
            !hints.iter().any(|h| h["rule"] == rule),
            "{rule} fired: {hints:#?}"
        );
    }
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}
