//! Growth by path and dive's CI rules, end to end: a pair of images built
//! here with GNU-tar-compatible layers, where the candidate adds a known
//! directory, grows a file and deletes one; the `paths[]` figures against
//! GNU tar + du of the layer that adds the directory.

use crate::support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::layout::{Comp, LayerSpec, LayoutBuilder};
use support::require_tool;
use support::run::Run;

/// The directory the candidate adds: nested, sizes around block
/// boundaries, an empty file, one file much larger than the rest but not
/// 90 % of the directory (so the directory, not the file, is listed).
const ADDED: [(&str, u64); 6] = [
    ("opt/app/lib/big.bin", 120_000),
    ("opt/app/share/doc/a.txt", 17),
    ("opt/app/share/doc/b.txt", 4096),
    ("opt/app/share/doc/c.txt", 4097),
    ("opt/app/share/data/d.bin", 30_000),
    ("opt/app/bin/tool", 9_000),
];
const STEP_ADD: &str = "/bin/sh -c #(nop) COPY   dir:0123abcd in /opt/app ";
const STEP_GROW: &str = "/bin/sh -c echo more >> /var/log/app.log && rm /etc/old.conf";

struct Pair {
    baseline: String,
    candidate: String,
    /// The uncompressed tar of the layer that adds `opt/app`.
    added_tar: std::path::PathBuf,
    _builder: LayoutBuilder,
}

fn pair(dir: &Path) -> Pair {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("etc")
            .file("etc/hostname", 10)
            .file("etc/old.conf", 4321)
            .dir("var/log")
            .file("var/log/app.log", 1000)
            .dir("usr/bin")
            .file("usr/bin/sh", 50_000),
        Comp::Gzip,
    );
    let mut spec = LayerSpec::new()
        .dir("opt")
        .dir("opt/app")
        .dir("opt/app/lib")
        .dir("opt/app/share")
        .dir("opt/app/share/doc")
        .dir("opt/app/share/data")
        .dir("opt/app/bin");
    for (path, size) in ADDED {
        spec = spec.file(path, size);
    }
    spec = spec.file("opt/app/empty", 0);
    let added = b.add_layer(&spec, Comp::Gzip);
    let grown = b.add_layer(
        &LayerSpec::new()
            .file("var/log/app.log", 50_000)
            .whiteout("etc/old.conf"),
        Comp::Zstd,
    );
    b.add_image_with_steps(std::slice::from_ref(&base), &["FROM scratch"], "v1");
    b.add_image_with_steps(
        &[base, added.clone(), grown],
        &["FROM scratch", STEP_ADD, STEP_GROW],
        "v2",
    );
    let d = dir.display();
    Pair {
        baseline: format!("oci:{d}:v1"),
        candidate: format!("oci:{d}:v2"),
        added_tar: added.tar_path.clone(),
        _builder: b,
    }
}

/// `du --block-size=1 -s` of `opt/app` once GNU tar has unpacked the layer,
/// and the sum of its regular files' sizes (`find -printf %s`).
fn truth(tar_path: &Path) -> (u64, u64) {
    let tar = require_tool("tar", "apt-get install tar");
    let du = require_tool("du", "apt-get install coreutils");
    let find = require_tool("find", "apt-get install findutils");
    let root = tempfile::tempdir().unwrap();
    let ok = Command::new(tar)
        .arg("-xf")
        .arg(tar_path)
        .arg("-C")
        .arg(root.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let app = root.path().join("opt/app");
    let out = Command::new(du)
        .args(["--block-size=1", "-s"])
        .arg(&app)
        .output()
        .unwrap();
    let disk: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap();
    let out = Command::new(find)
        .arg(&app)
        .args(["-type", "f", "-printf", "%s\n"])
        .output()
        .unwrap();
    let content = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse::<u64>().unwrap())
        .sum();
    (content, disk)
}

fn entry<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {:#}", doc["paths"]))
}

#[test]
fn growth_by_path_matches_tar_and_du_and_names_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let p = pair(&dir.path().join("layout"));
    let out = Run::new(["check", "--no-config", "--format", "json"])
        .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
        .run();
    out.assert_ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let (content, disk) = truth(&p.added_tar);

    let app = entry(&doc, "/opt/app/");
    assert_eq!(app["platform"], "linux/amd64");
    assert_eq!(app["baseline_bytes"], 0);
    assert_eq!(app["candidate_bytes"], content);
    assert_eq!(app["delta_bytes"], content);
    assert_eq!(app["files_added"], ADDED.len() as u64 + 1);
    assert_eq!(app["files_removed"], 0);
    let ours = app["candidate_disk_bytes"].as_u64().unwrap();
    assert!(
        ours.abs_diff(disk) * 100 <= disk,
        "disk {ours} vs du {disk}"
    );
    assert_eq!(
        app["layers"],
        serde_json::json!([{"index": 1, "created_by": STEP_ADD}])
    );
    // Nothing above it is listed: its whole growth is the directory's.
    for above in ["/opt/", "/"] {
        assert!(
            !doc["paths"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["path"] == above)
        );
    }

    let log = entry(&doc, "/var/log/app.log");
    assert_eq!(
        (
            log["baseline_bytes"].as_u64(),
            log["candidate_bytes"].as_u64()
        ),
        (Some(1000), Some(50_000))
    );
    assert_eq!(log["delta_bytes"], 49_000);
    assert_eq!(log["layers"][0]["index"], 2);

    let old = entry(&doc, "/etc/old.conf");
    assert_eq!(old["delta_bytes"], -4321);
    assert_eq!(old["files_removed"], 1);
    assert_eq!(old["candidate_bytes"], 0);

    let deltas: Vec<i64> = doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["delta_bytes"].as_i64().unwrap())
        .collect();
    assert!(deltas.windows(2).all(|w| w[0] >= w[1]), "{deltas:?}");

    // The candidate's efficiency: app.log is written twice (1000 then
    // 50 000 bytes) and old.conf deleted (a visit of 0): dive's figures.
    let eff = &doc["platforms"][0]["candidate"]["efficiency"];
    let total: u64 = 10 + 4321 + 1000 + 50_000 + content + 50_000;
    let smallest: u64 = total - (50_000 + 1000 - 1000) - 4321;
    let score = eff["score"].as_f64().unwrap();
    assert!(
        (score - smallest as f64 / total as f64).abs() < 1e-12,
        "{eff}"
    );
    assert_eq!(eff["wasted_bytes"], 51_000 + 4321);
}

#[test]
fn build_steps_show_shortened_in_the_table_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let p = pair(&dir.path().join("layout"));
    let run = |format: &str| {
        let out = Run::new(["check", "--no-config", "--format", format])
            .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
            .run();
        out.assert_ok();
        out.stdout
    };
    let table = run("table");
    assert!(table.contains("COPY dir:0123abcd in /opt/app"), "{table}");
    assert!(table.contains("growth by path:"), "{table}");
    assert!(table.contains("/opt/app/"), "{table}");
    assert!(!table.contains("#(nop)"), "{table}");
    let md = run("markdown");
    assert!(md.contains("**Growth by path**"), "{md}");
    assert!(
        md.contains("| `/opt/app/` | +") && md.contains("#2 `COPY dir:0123abcd in /opt/app`"),
        "{md}"
    );
    assert!(md.contains("Efficiency (dive's score): "), "{md}");
    // `--top 1` keeps the one largest entry.
    let out = Run::new(["check", "--no-config", "--format", "json", "--top", "1"])
        .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
        .run();
    out.assert_ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["paths"].as_array().unwrap().len(), 1);
    assert_eq!(doc["paths"][0]["path"], "/opt/app/");
}

#[test]
fn a_dive_ci_file_judges_the_candidate() {
    // Without the default warnings, the dive rule is the only one.
    let dir = tempfile::tempdir().unwrap();
    let p = pair(&dir.path().join("layout"));
    let ci = dir.path().join(".dive-ci");
    std::fs::write(
        &ci,
        "rules:\n  # as dive's README writes it\n  lowestEfficiency: 0.99\n  highestWastedBytes: disabled\n  highestUserWastedPercent: disabled\n",
    )
    .unwrap();
    let out = Run::new([
        "check",
        "--no-config",
        "--no-default-rules",
        "--format",
        "json",
    ])
    .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
    .args(["--dive-ci", ci.to_str().unwrap()])
    .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["verdict"], "fail");
    let rules: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["lowest_efficiency"], "{:#}", doc["findings"]);
    assert_eq!(doc["policy"]["dive"]["lowest_efficiency"], 0.99);

    // A flag wins over the file: a lower threshold passes.
    let out = Run::new(["check", "--no-config"])
        .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
        .args([
            "--dive-ci",
            ci.to_str().unwrap(),
            "--lowest-efficiency",
            "0.1",
        ])
        .run();
    out.assert_ok();

    // A file that is not a .dive-ci is a usage error, on one line.
    std::fs::write(&ci, "rules:\n  lowestEfficiency: [0.9\n").unwrap();
    let out = Run::new(["check", "--no-config"])
        .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
        .args(["--dive-ci", ci.to_str().unwrap()])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--dive-ci"), "{}", out.stderr);
    std::fs::write(&ci, "rules:\n  highestWastedBytes: lots\n").unwrap();
    let out = Run::new(["check", "--no-config"])
        .args(["--candidate", &p.candidate, "--baseline", &p.baseline])
        .args(["--dive-ci", ci.to_str().unwrap()])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
}
