//! `check` as a new user meets it, with the README and `--help` only: the
//! question "does it fit on my 20 GiB node?" answered on a stated
//! assumption, nodes named by what the user gave, no green check that
//! judged nothing, recompressed layers called what they are, usage errors
//! in one line, and a `--help` that explains every flag.

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::fixture::demo;
use support::layout::{Comp, LayerSpec, LayoutBuilder};
use support::run::{Out, Run};

fn check(args: &[&str]) -> Out {
    Run::new(["check", "--no-config", "-q"]).args(args).run()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

/// The fixture's baseline as a node holds it (`node_bytes`).
fn baseline_node_bytes() -> u64 {
    let v1 = demo("v1");
    let out = check(&["--candidate", &v1, "--format", "json"]);
    u(&out.json()["platforms"][0]["candidate_cost"]["node_bytes"])
}

#[test]
fn capacity_only_assumes_the_baseline_and_says_so_in_every_format() {
    let (v1, v2) = (demo("v1"), demo("v2"));
    let held = baseline_node_bytes();
    let reserve = 100_000u64;
    let capacity = 1_000_000u64;
    let (cap, res) = (capacity.to_string(), reserve.to_string());
    let args = [
        "--candidate",
        &v2,
        "--baseline",
        &v1,
        "--node-capacity",
        &cap,
        "--node-system-reserved",
        &res,
    ];
    let out = check(&[&args[..], &["--format", "json"]].concat());
    // The baseline and the reserve leave too little for the new layer.
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc = out.json();
    let node = &doc["node"];
    assert_eq!(node["used_source"], "assumed");
    assert_eq!(u(&node["assumed_baseline_bytes"]), held);
    assert_eq!(u(&node["system_reserved_bytes"]), reserve);
    assert_eq!(u(&node["available_bytes"]), capacity - held - reserve);
    let assumption = node["assumption"].as_str().unwrap();
    assert!(
        assumption.contains("assumed to hold the baseline"),
        "{assumption}"
    );
    assert_eq!(doc["verdict"], "fail");
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "gc_headroom"),
        "{doc}"
    );
    for format in ["table", "markdown", "short"] {
        let out = check(&[&args[..], &["--format", format]].concat());
        assert_eq!(out.code, 1, "{format}: {}", out.stderr);
        assert!(
            out.stdout.contains("assumed to hold the baseline"),
            "{format} does not state the assumption:\n{}",
            out.stdout
        );
    }

    // With room to spare, the same assumption passes the node rules.
    let out = check(&[
        "--candidate",
        &v2,
        "--baseline",
        &v1,
        "--node-capacity",
        "20Gi",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let node = &out.json()["node"];
    assert_eq!(u(&node["available_bytes"]), (20u64 << 30) - held);
    assert_eq!(node["name"], "20 GiB node");
}

#[test]
fn capacity_only_without_a_baseline_assumes_only_the_reserve() {
    let v2 = demo("v2");
    for format in ["json", "table", "markdown", "short"] {
        let out = check(&[
            "--candidate",
            &v2,
            "--node-capacity",
            "20Gi",
            "--node-system-reserved",
            "2Gi",
            "--format",
            format,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout
                .contains("no baseline, so the node is assumed to hold only"),
            "{format}:\n{}",
            out.stdout
        );
        if format == "json" {
            let node = &out.json()["node"];
            assert_eq!(u(&node["available_bytes"]), 18u64 << 30);
            assert!(node["assumed_baseline_bytes"].is_null());
        }
    }
}

#[test]
fn a_node_given_by_flags_is_named_by_what_the_user_gave() {
    let (v1, v2) = (demo("v1"), demo("v2"));
    let tight = [
        "--candidate",
        v2.as_str(),
        "--baseline",
        v1.as_str(),
        "--node-capacity",
        "2000000",
        "--node-available",
        "400000",
        "--format",
        "json",
    ];
    let out = check(&tight);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stdout.contains("--node-capacity"), "{}", out.stdout);
    let doc = out.json();
    assert_eq!(doc["node"]["used_source"], "given");
    assert_eq!(doc["node"]["name"], "1.91 MiB node");
    let gc = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "gc_headroom")
        .expect("a gc finding");
    assert!(
        gc["message"]
            .as_str()
            .unwrap()
            .contains("of the 1.91 MiB node"),
        "{gc}"
    );
    let out = check(&[&tight[..], &["--node-name", "ci-small"]].concat());
    assert_eq!(out.json()["node"]["name"], "ci-small");
    assert!(out.stdout.contains("of node ci-small"), "{}", out.stdout);
}

fn rules_of(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f["rule"].as_str().unwrap(),
                f["level"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn nothing_passes_silently() {
    let (v1, v2) = (demo("v1"), demo("v2"));
    // A growth rule without a baseline, node settings without a node.
    let out = check(&[
        "--candidate",
        &v2,
        "--max-growth",
        "10%",
        "--gc-high",
        "90",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["verdict"], "warn");
    let messages: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "not_evaluated")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("growth rules (max 10%) not evaluated")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("node rules")),
        "{messages:?}"
    );

    // No rule at all: a warning that nothing was judged, still exit 0.
    let out = check(&["--candidate", &v2, "--no-default-rules", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["verdict"], "warn");
    assert_eq!(rules_of(&doc), ["nothing_judged/warn"]);
    let table = check(&["--candidate", &v2, "--no-default-rules"]);
    assert!(
        table.stdout.contains("no rule judged this image"),
        "{}",
        table.stdout
    );

    // The default warnings: v2 grows node_bytes by 85 %; off with the flag.
    let out = check(&["--candidate", &v2, "--baseline", &v1, "--format", "json"]);
    assert_eq!(out.code, 0);
    let doc = out.json();
    assert_eq!(doc["policy"]["default_rules"], true);
    let growth = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "growth")
        .expect("the default growth warning");
    assert_eq!(growth["level"], "warn");
    assert_eq!(growth["figure"], "node_bytes");
    assert!(
        growth["message"]
            .as_str()
            .unwrap()
            .contains("--no-default-rules")
    );
    let out = check(&[
        "--candidate",
        &v2,
        "--baseline",
        &v1,
        "--no-default-rules",
        "--max-growth",
        "200%",
        "--format",
        "json",
    ]);
    assert_eq!(out.json()["verdict"], "pass", "{}", out.stdout);

    // A user's own node_bytes rule replaces the default one.
    let out = check(&[
        "--candidate",
        &v2,
        "--baseline",
        &v1,
        "--warn-growth",
        "node_bytes=200%",
        "--format",
        "json",
    ]);
    assert!(
        !rules_of(&out.json()).contains(&"growth/warn".to_string()),
        "{}",
        out.stdout
    );
}

#[test]
fn the_default_wasted_warning_fires_on_a_shadowing_image() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = LayoutBuilder::new(&tmp.path().join("layout"));
    let big = b.add_layer(
        &LayerSpec::new().dir("srv").file("srv/blob", 200_000),
        Comp::Gzip,
    );
    let gone = b.add_layer(&LayerSpec::new().whiteout("srv/blob"), Comp::Gzip);
    b.add_tagged_image(&[big, gone], "v1");
    let image = format!("oci:{}:v1", tmp.path().join("layout").display());
    let out = check(&["--candidate", &image, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(rules_of(&doc), ["max_wasted/warn"], "{}", out.stdout);
    let out = check(&[
        "--candidate",
        &image,
        "--no-default-rules",
        "--format",
        "json",
    ]);
    assert_eq!(rules_of(&out.json()), ["nothing_judged/warn"]);
}

#[test]
fn a_recompressed_layer_is_never_called_shared() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let base = LayerSpec::new().dir("usr/bin").file("usr/bin/app", 300_000);
    let base_gzip = b.add_layer(&base, Comp::Gzip);
    let base_zstd = b.add_layer(&base, Comp::Zstd);
    // The same tar in both: only the blob differs.
    assert_eq!(base_gzip.diff_id, base_zstd.diff_id);
    assert_ne!(base_gzip.blob_digest, base_zstd.blob_digest);
    let app = b.add_layer(&LayerSpec::new().file("etc/app.conf", 100), Comp::Gzip);
    b.add_tagged_image(&[base_gzip, app.clone()], "v1");
    b.add_tagged_image(&[base_zstd.clone(), app], "v2");
    let (v1, v2) = (
        format!("oci:{}:v1", dir.display()),
        format!("oci:{}:v2", dir.display()),
    );
    let args = ["--candidate", v2.as_str(), "--baseline", v1.as_str()];
    let out = check(&[&args[..], &["--format", "json"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    let p = &doc["platforms"][0];
    let changes: Vec<&str> = p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["recompressed", "shared"]);
    // Its blob is pulled again, its snapshot is not unpacked again.
    let rollout = &p["rollout_cost"];
    assert!(
        u(&rollout["pull_bytes"]) >= base_zstd.blob_size,
        "{rollout}"
    );
    assert_eq!(u(&rollout["disk_bytes"]), 0, "{rollout}");
    let table = check(&args);
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("1 "))
        .expect("layer 1's row");
    assert!(row.contains("recompressed"), "{}", table.stdout);
    let md = check(&[&args[..], &["--format", "markdown"]].concat());
    let row = md
        .stdout
        .lines()
        .find(|l| l.starts_with("| 1 |"))
        .expect("layer 1's row");
    assert!(
        row.contains("recompressed") && !row.contains("| shared |"),
        "{row}"
    );
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    let v2 = demo("v2");
    let cases: [(&[&str], &str); 6] = [
        (&["check", "--no-such-flag"], "unexpected argument"),
        (&["check", "--top"], "a value is required"),
        (&["check", "--format", "yaml"], "invalid value 'yaml'"),
        (
            &["check", "--node-stats", "x.json", "--node-capacity", "1Gi"],
            "cannot be used with",
        ),
        (&["measure"], "required arguments were not provided"),
        (
            &["check", "--candidate", &v2, "--node-used", "1Gi"],
            "--node-capacity",
        ),
    ];
    for (args, needle) in cases {
        // Run checks that a failure is exactly one `sizeguard: error:` line.
        let out = Run::new(args).run();
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.error().contains(needle), "{args:?}: {}", out.stderr);
        assert!(out.error().contains("--help"), "{args:?}: {}", out.stderr);
    }
    for args in [["--help"], ["--version"]] {
        let out = Run::new(args).run();
        assert_eq!(out.code, 0, "{args:?}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn check_help_describes_every_flag_under_headings() {
    let out = Run::new(["check", "--help"]).run();
    assert_eq!(out.code, 0);
    let help = &out.stdout;
    for heading in [
        "Image source:",
        "Node:",
        "Kubelet thresholds:",
        "Rules:",
        "Output:",
        "GitHub:",
    ] {
        assert!(
            help.lines().any(|l| l == heading),
            "no heading {heading}:\n{help}"
        );
    }
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = 0;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if !(t.starts_with("--") || (t.starts_with('-') && t.chars().nth(1) != Some(' '))) {
            continue;
        }
        if line.len() - t.len() > 6 {
            continue; // a description's continuation, not a flag
        }
        flags += 1;
        let described = lines.get(i + 1).is_some_and(|next| {
            next.len() - next.trim_start().len() > 6 && !next.trim().is_empty()
        });
        assert!(described, "{t} has no description:\n{help}");
    }
    assert!(flags > 40, "{flags} flags found:\n{help}");
    for default in [
        "[default: 85]",
        "[default: 80]",
        "[default: 15%]",
        "[default: 5%]",
    ] {
        assert!(help.contains(default), "{default} not shown:\n{help}");
    }
    assert!(!help.contains("`github`"), "--format github does not exist");
}

/// The README's example outputs are what sizeguard prints: every fenced
/// block that starts with `$ sizeguard …` is run and compared.
#[test]
fn readme_examples_are_real_outputs() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut examples = 0;
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("```\n$ sizeguard ") {
        let block = &rest[at + 4..];
        let end = block.find("\n```").expect("a closed block");
        let (command, expected) = block[..end + 1].split_once('\n').unwrap();
        rest = &block[end..];
        let args: Vec<&str> = command
            .trim_start_matches("$ sizeguard ")
            .split_whitespace()
            .collect();
        let out = Run::new(&args).run();
        assert!(out.code == 0 || out.code == 1, "{command}: {}", out.stderr);
        assert_eq!(
            out.stdout, expected,
            "the README's output of `{command}` is stale"
        );
        examples += 1;
    }
    assert!(examples >= 2, "{examples} examples found");
}
