//! `sizeguard check` end to end: real registry, real images, the exit codes
//! and the content of every report format.

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::fixture::demo;
use support::json::u;
use support::layout::{Comp, LayerSpec, LayoutBuilder};
use support::registry::Registry;
use support::run::Run;

/// The real node of the issue: kubelet `/stats/summary`, `node.runtime.imageFs`.
const CAPACITY: u64 = 21_462_233_088;
const AVAILABLE: u64 = 17_310_752_768;
const GC_HEADROOM: i64 = 13_876_795_473;

fn summary(name: &str, capacity: u64, available: u64) -> Value {
    serde_json::json!({
        "node": {
            "nodeName": name,
            "fs": {"availableBytes": 1, "capacityBytes": 2},
            "runtime": {"imageFs": {
                "time": "2024-02-26T11:59:17Z",
                "availableBytes": available,
                "capacityBytes": capacity,
                "usedBytes": 1_291_296_768u64,
                "inodesFree": 10_375_082u64,
                "inodes": 10_484_720u64,
                "inodesUsed": 109_638u64
            }}
        },
        "pods": []
    })
}

/// `sizeguard check ARGS`.
fn check(args: &[&str]) -> Run {
    Run::new(["check"]).args(args)
}

/// A baseline and a candidate that adds a ~600 MB layer (compressible in
/// part, so the test pushes ~130 MB, not 600).
fn build_pair(dir: &Path) -> LayoutBuilder {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("usr/bin")
            .file("usr/bin/app", 2_000_000)
            .file("etc/conf", 100),
        Comp::Gzip,
    );
    let deps = b.add_layer(
        &LayerSpec::new()
            .dir("usr/lib")
            .file("usr/lib/libdep.so", 5_000_000),
        Comp::Gzip,
    );
    let cuda = b.add_layer(
        &LayerSpec::new()
            .dir("usr/local/cuda/lib64")
            .file("usr/local/cuda/lib64/libcudnn.so.9", 120 << 20)
            .file_compressible("usr/local/cuda/lib64/libcublasLt.so.12", 480 << 20),
        Comp::Gzip,
    );
    b.add_tagged_image(&[base.clone(), deps.clone()], "v1");
    b.add_tagged_image(&[base, deps, cuda], "v2");
    b
}

#[test]
fn growth_and_node_budget_on_a_real_registry() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let _b = build_pair(&tmp.path().join("layout"));
    reg.push_layout(&tmp.path().join("layout"), "v1", "team/app:v1");
    reg.push_layout(&tmp.path().join("layout"), "v2", "team/app:v2");
    let cand = format!("{}/team/app:v2", reg.addr);
    let base = format!("{}/team/app:v1", reg.addr);
    let pair = [
        "--candidate",
        cand.as_str(),
        "--baseline",
        base.as_str(),
        "-q",
        "--no-config",
    ];

    // 10% growth: fails, exit 1.
    let out = check(&pair)
        .args(["--max-growth", "10%", "--format", "json"])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["verdict"], "fail");
    let p = &report["platforms"][0];
    let growth = p["growth"]["disk_bytes"].as_i64().unwrap();
    // The added layer unpacks to 600 MiB of files plus 4 directories.
    assert_eq!(growth, (600 << 20) + 4 * 4096 + 4096, "{p:#}");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "growth" && f["level"] == "fail")
    );
    let changes: Vec<&str> = p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["shared", "shared", "added"]);
    assert_eq!(
        p["layers"][2]["largest_files"][0]["path"],
        "usr/local/cuda/lib64/libcublasLt.so.12"
    );

    // 2 GiB growth: passes, exit 0.
    let out = check(&pair)
        .args(["--max-growth", "2GiB", "--format", "json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["verdict"], "pass");

    // A node from the test vector, scaled down so the rollout cost exceeds
    // its GC headroom by one byte.
    let rollout = p["rollout_cost"]["node_bytes"].as_u64().unwrap();
    assert!(rollout > 700 << 20, "rollout cost {rollout}");
    let capacity = CAPACITY / 8;
    let floor = (16 * capacity as u128).div_ceil(100) as u64;
    let tight = (floor + rollout - 1).to_string();
    let cap = capacity.to_string();
    let out = check(&pair)
        .args([
            "--node-capacity",
            &cap,
            "--node-available",
            &tight,
            "--format",
            "json",
        ])
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["node"]["gc_headroom"].as_u64(), Some(rollout - 1));
    let f = &report["findings"][0];
    assert_eq!(f["rule"], "gc_headroom");
    assert_eq!(f["value"].as_u64(), Some(rollout));
    assert_eq!(
        report["platforms"][0]["gc_headroom_left"].as_i64(),
        Some(-1)
    );

    // Softened to a warning: exit 0, verdict warn.
    let out = check(&pair)
        .args([
            "--node-capacity",
            &cap,
            "--node-available",
            &tight,
            "--gc-headroom-level",
            "warn",
            "--format",
            "json",
        ])
        .run();
    assert_eq!(out.code, 0);
    assert_eq!(out.json()["verdict"], "warn");

    // A larger node: passes (the node alone judges: no default warnings).
    let roomy = (floor + rollout + (1 << 30)).to_string();
    let out = check(&pair)
        .args([
            "--node-capacity",
            &cap,
            "--node-available",
            &roomy,
            "--no-default-rules",
        ])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = &out.stdout;
    assert!(text.starts_with("✅ app grew +"), "{text}");
    assert!(text.contains("verdict: pass"), "{text}");

    // Exit codes: configuration error 2, unmeasurable 3.
    let out = check(&pair)
        .args(["--gc-high", "80", "--gc-low", "90"])
        .run();
    assert_eq!(out.code, 2);
    let err = &out.stderr;
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let missing = format!("{}/team/app:nope", reg.addr);
    let out = check(&[
        "--candidate",
        &missing,
        "--baseline",
        &base,
        "-q",
        "--no-config",
    ])
    .run();
    assert_eq!(out.code, 3);
    // A baseline that does not exist yet: an error, or a warning when optional.
    let out = check(&[
        "--candidate",
        &cand,
        "--baseline",
        &missing,
        "-q",
        "--no-config",
    ])
    .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = check(&[
        "--candidate",
        &cand,
        "--baseline",
        &missing,
        "--baseline-optional",
        "-q",
        "--no-config",
        "--format",
        "json",
    ])
    .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["verdict"], "warn");
    assert_eq!(report["findings"][0]["rule"], "baseline_missing");
}

#[test]
fn test_vector_gives_the_stated_gc_headroom() {
    let tmp = tempfile::tempdir().unwrap();
    let stats = tmp.path().join("summary.json");
    std::fs::write(
        &stats,
        serde_json::to_vec(&summary("ip-10-0-1-23", CAPACITY, AVAILABLE)).unwrap(),
    )
    .unwrap();
    let (c1, c2) = (demo("v2"), demo("v1"));
    let base = [
        "--candidate",
        c1.as_str(),
        "--baseline",
        c2.as_str(),
        "--format",
        "json",
        "--no-config",
    ];

    let out = check(&base)
        .args(["--node-stats", stats.to_str().unwrap()])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let node = &out.json()["node"];
    assert_eq!(node["gc_headroom"].as_i64(), Some(GC_HEADROOM));
    assert_eq!(node["usage_percent"], 20);
    assert_eq!(node["name"], "ip-10-0-1-23");
    assert_eq!(node["inode_headroom"].as_i64(), Some(10_375_082 - 524_236));

    let (c, a) = (CAPACITY.to_string(), AVAILABLE.to_string());
    let out = check(&base)
        .args(["--node-capacity", &c, "--node-available", &a])
        .run();
    assert_eq!(out.code, 0);
    assert_eq!(
        out.json()["node"]["gc_headroom"].as_i64(),
        Some(GC_HEADROOM)
    );

    // Quantities: 20Gi capacity, 5Gi used.
    let out = check(&base)
        .args(["--node-capacity", "20Gi", "--node-used", "5Gi"])
        .run();
    assert_eq!(out.code, 0);
    assert_eq!(
        out.json()["node"]["available_bytes"].as_u64(),
        Some(15 << 30)
    );

    // Several nodes: the tightest decides.
    let many = tmp.path().join("nodes.json");
    std::fs::write(
        &many,
        serde_json::to_vec(&serde_json::json!([
            summary("roomy", CAPACITY, AVAILABLE),
            summary("tight", CAPACITY, 4_000_000_000),
        ]))
        .unwrap(),
    )
    .unwrap();
    let out = check(&base)
        .args(["--node-stats", many.to_str().unwrap()])
        .run();
    let report = out.json();
    assert_eq!(report["node"]["name"], "tight");
    assert_eq!(report["node"]["nodes_considered"], 2);
    // From standard input too.
    let out = check(&base)
        .args(["--node-stats", "-"])
        .stdin(std::fs::read_to_string(&stats).unwrap())
        .run();
    assert_eq!(
        out.json()["node"]["gc_headroom"].as_i64(),
        Some(GC_HEADROOM)
    );

    // A stats file that is not one: exit 2, one line.
    std::fs::write(&stats, b"{\"node\": {}}").unwrap();
    let out = check(&base)
        .args(["--node-stats", stats.to_str().unwrap()])
        .run();
    assert_eq!(out.code, 2);
}

/// Figures recomputed from `measure`'s JSON, independently of `check`.
/// An image's pull bytes, the bytes containerd keeps of it on top of
/// them, and its inodes there, composed from `measure`'s figures as the
/// README's node model says: every file in 4 KiB blocks, two directories
/// beside each snapshot, and bbolt pages (6 per image, 1 per layer).
fn pull_and_disk(reference: &str) -> (u64, u64, u64) {
    let m = Run::new(["measure", "--format", "json", "-q", reference])
        .run()
        .json();
    let img = &m["images"][0];
    let pull =
        u(&img["manifest_bytes"]) + u(&img["config_bytes"]) + u(&img["totals"]["compressed_bytes"]);
    let layers = img["layers"].as_array().unwrap();
    let block = |n: u64| n.div_ceil(4096) * 4096;
    let blobs: u64 = block(u(&img["manifest_bytes"]))
        + block(u(&img["config_bytes"]))
        + layers
            .iter()
            .map(|l| block(u(&l["compressed_bytes"])))
            .sum::<u64>();
    let n = layers.len() as u64;
    let beside = blobs - pull + n * 3 * 4096 + 6 * 4096;
    (
        pull,
        u(&img["totals"]["disk_bytes"]) + beside,
        u(&img["totals"]["inodes"]) + 3 * n + 2,
    )
}

#[test]
fn json_and_markdown_reports_carry_the_figures() {
    let (c, b) = (demo("v2"), demo("v1"));
    let args = [
        "--candidate",
        c.as_str(),
        "--baseline",
        b.as_str(),
        "--no-config",
        "--max-growth",
        "50%",
        "--warn-growth",
        "node_bytes=100KiB",
    ];
    let out = check(&args).args(["--format", "json"]).run();
    assert_eq!(out.code, 1);
    let r = out.json();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["kind"], "check");
    let p = &r["platforms"][0];
    let (cp, cd, ci) = pull_and_disk(&c);
    let (bp, bd, bi) = pull_and_disk(&b);
    assert_eq!(p["candidate_cost"]["pull_bytes"].as_u64(), Some(cp));
    assert_eq!(p["candidate_cost"]["node_bytes"].as_u64(), Some(cp + cd));
    assert_eq!(p["candidate_cost"]["node_inodes"].as_u64(), Some(ci));
    assert_eq!(p["baseline_cost"]["node_bytes"].as_u64(), Some(bp + bd));
    assert_eq!(
        p["growth"]["pull_bytes"].as_i64(),
        Some(cp as i64 - bp as i64)
    );
    assert_eq!(p["growth"]["inodes"].as_i64(), Some(ci as i64 - bi as i64));
    // Which rules fired, at which level: pull +75% and disk +92% over 50%;
    // node_bytes +85% fails too; inodes +50% does not exceed 50%.
    let fired: Vec<(String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["figure"].as_str().unwrap().to_string(),
                f["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        fired.contains(&("pull_bytes".into(), "fail".into())),
        "{fired:?}"
    );
    assert!(
        fired.contains(&("disk_bytes".into(), "fail".into())),
        "{fired:?}"
    );
    assert!(
        fired.contains(&("node_bytes".into(), "fail".into())),
        "{fired:?}"
    );
    assert!(!fired.iter().any(|(f, _)| f == "inodes"), "{fired:?}");
    // The rollout adds only the new layer (blob + snapshot, its two
    // directories and bbolt page) and metadata (manifest, config, and 6
    // bbolt pages), each file in 4 KiB blocks.
    let new_layer = &p["candidate"]["layers"][2];
    let block = |v: &serde_json::Value| u(v).div_ceil(4096) * 4096;
    assert_eq!(
        p["rollout_cost"]["node_bytes"].as_u64(),
        Some(
            block(&new_layer["compressed_bytes"])
                + u(&new_layer["disk_bytes"])
                + 3 * 4096
                + block(&p["candidate"]["manifest_bytes"])
                + block(&p["candidate"]["config_bytes"])
                + 6 * 4096
        )
    );

    let out = check(&args).args(["--format", "markdown"]).run();
    assert_eq!(out.code, 1);
    let md = out.stdout;
    let first = md.lines().next().unwrap();
    let growth_kib = (cp + cd - bp - bd) as f64 / 1024.0;
    assert!(first.starts_with("❌ **demo** grew +"), "{first}");
    assert!(
        first.contains(&format!("{growth_kib:.0} KiB")),
        "{first} vs {growth_kib}"
    );
    assert!(first.ends_with("over the 50% growth limit"), "{first}");
    assert!(md.contains("<details>") && md.trim_end().ends_with("</details>"));
    assert!(md.contains("| 3 | `4cb7679daee6` | **added** |"), "{md}");
    assert!(md.contains("`/app/server` 146 KiB"), "{md}");
    assert!(md.contains("❌ fail `growth`: pull_bytes grew"), "{md}");
    assert!(
        md.contains("Policy: max growth 50%; warn growth node_bytes=100 KiB"),
        "{md}"
    );
}

#[test]
fn github_actions_outputs_summary_and_annotations() {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("output");
    let summary = tmp.path().join("summary.md");
    let (c, b) = (demo("v2"), demo("v1"));
    let out = check(&[
        "--candidate",
        &c,
        "--baseline",
        &b,
        "--no-config",
        "--max-growth",
        "10%",
    ])
    .args(["--node-capacity", "20Gi", "--node-available", "10Gi"])
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_OUTPUT", &output)
    .env("GITHUB_STEP_SUMMARY", &summary)
    .run();
    assert_eq!(out.code, 1);
    let outputs = std::fs::read_to_string(&output).unwrap();
    let kv: std::collections::HashMap<&str, &str> =
        outputs.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(kv["verdict"], "fail");
    let (cp, cd, _) = pull_and_disk(&c);
    let (bp, bd, _) = pull_and_disk(&b);
    assert_eq!(kv["pull-bytes"], cp.to_string());
    assert_eq!(kv["node-bytes"], (cp + cd).to_string());
    assert_eq!(kv["growth-bytes"], (cp + cd - bp - bd).to_string());
    let headroom: i64 = kv["gc-headroom"].parse().unwrap();
    assert!(headroom > 0 && headroom < 10 << 30);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("❌ **demo** grew"), "{md}");
    let stderr = &out.stderr;
    assert!(
        stderr.contains("::error title=sizeguard growth::pull_bytes grew"),
        "{stderr}"
    );
}

#[test]
fn policy_file_profiles_and_unknown_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let nested = tmp.path().join("sub/dir");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(
        tmp.path().join("sizeguard.toml"),
        "warn-growth = \"5%\"\n\n[nodes.gpu]\ncapacity = \"100Gi\"\navailable = \"16Gi\"\n\n[nodes.cpu]\ncapacity = \"50Gi\"\nused = \"10Gi\"\n",
    )
    .unwrap();
    let (c, b) = (demo("v2"), demo("v1"));
    let args = [
        "--candidate",
        c.as_str(),
        "--baseline",
        b.as_str(),
        "--format",
        "json",
    ];
    // Found in a parent directory; the warn rule applies.
    let out = check(&args).cwd(&nested).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["verdict"], "warn");
    assert!(r["node"].is_null());
    // A profile: 16Gi of 100Gi available is exactly the GC floor, so no headroom.
    let out = check(&args)
        .args(["--node-profile", "gpu"])
        .cwd(&nested)
        .run();
    assert_eq!(out.code, 1);
    let r = out.json();
    assert_eq!(r["node"]["label"], "gpu");
    assert_eq!(r["node"]["gc_headroom"], 0);
    let out = check(&args)
        .args(["--node-profile", "cpu", "--warn-growth", "1000%"])
        .cwd(&nested)
        .run();
    assert_eq!(out.code, 0);
    assert_eq!(out.json()["verdict"], "pass", "flags override the file");
    // Unknown profile and unknown keys: exit 2, named.
    let out = check(&args)
        .args(["--node-profile", "tpu"])
        .cwd(&nested)
        .run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cpu, gpu"));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "max-grwoth = \"10%\"\n").unwrap();
    let out = check(&args).args(["--config", bad.to_str().unwrap()]).run();
    assert_eq!(out.code, 2);
    let err = &out.stderr;
    assert!(err.contains("max-grwoth"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// The runtime picks the node model, every format names it, and where
/// blobs outlive nothing but the pull the headroom rules judge the peak.
#[test]
fn the_runtime_chooses_the_model_and_the_peak_is_judged() {
    let (c, b) = (demo("v2"), demo("v1"));
    let args = [
        "--candidate",
        c.as_str(),
        "--baseline",
        b.as_str(),
        "--no-config",
        "--node-capacity",
        "2000000",
        "--node-available",
        "700000",
    ];
    let gc = |r: &serde_json::Value| -> serde_json::Value {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "gc_headroom")
            .cloned()
            .unwrap_or_default()
    };
    let kept = check(&args).args(["--format", "json"]).run().json();
    assert_eq!(kept["policy"]["store"]["runtime"], "containerd");
    assert_eq!(gc(&kept)["figure"], "node_bytes");

    let eks = check(&args)
        .args(["--runtime", "eks", "--format", "json"])
        .run()
        .json();
    assert_eq!(eks["policy"]["store"]["runtime"], "containerd-discard");
    assert_eq!(eks["policy"]["store"]["preset"], "eks");
    let rollout = &eks["platforms"][0]["rollout_cost"];
    let (node, peak) = (u(&rollout["node_bytes"]), u(&rollout["peak_pull_bytes"]));
    // What stays fits the 371 KiB of GC headroom; the peak does not.
    assert!(node < 380_000 && peak > 380_000, "{rollout}");
    assert_eq!(gc(&eks)["figure"], "peak_pull_bytes");
    assert_eq!(gc(&eks)["value"].as_u64(), Some(peak));
    assert_eq!(
        peak,
        u(&kept["platforms"][0]["rollout_cost"]["node_bytes"]),
        "the peak is what containerd keeps with the blobs"
    );

    let crio = check(&args)
        .args(["--runtime", "cri-o", "--format", "json"])
        .run()
        .json();
    let crio_node = u(&crio["platforms"][0]["candidate_cost"]["node_bytes"]);
    let kept_node = u(&kept["platforms"][0]["candidate_cost"]["node_bytes"]);
    assert!(
        crio_node < kept_node,
        "no blobs kept: {crio_node} vs {kept_node}"
    );

    let md = check(&args)
        .args(["--runtime", "eks", "--format", "markdown"])
        .run()
        .stdout;
    assert!(md.contains("node model `containerd-discard (eks)`"), "{md}");
    assert!(md.contains("while pulling: judged"), "{md}");
    let table = check(&args).args(["--runtime", "cri-o"]).run().stdout;
    assert!(table.contains("node model: cri-o"), "{table}");

    let bad = check(&args).args(["--runtime", "docker"]).run();
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("unknown runtime \"docker\""),
        "{}",
        bad.stderr
    );
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
}
