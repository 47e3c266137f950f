//! The JSON Schema files in `schema/` describe what `measure --format
//! json` and `check --format json` really print: real outputs (the
//! fixture, its archive form, a loopback registry, `--estimate`, checks
//! with and without a baseline and a node, a capacity-only node) are
//! validated against them, so documentation and output cannot drift apart.

use crate::support;

use std::path::Path;

use jsonschema::{Registry, Validator};
use serde_json::Value;
use support::fixture::demo;
use support::registry::{Registry as DockerRegistry, copy_to_oci_archive};
use support::run::Run;

/// The committed schemas are what the code produces: a change to the
/// report's types (or their doc comments) changes the schema in the same
/// commit. `SIZEGUARD_REGEN_SCHEMA=1` rewrites them instead.
#[test]
fn committed_schemas_are_generated_from_the_types() {
    let regen = std::env::var_os("SIZEGUARD_REGEN_SCHEMA").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, generated) in [
        ("measure.schema.json", sizeguard::report::schema::measure()),
        ("check.schema.json", sizeguard::report::schema::check()),
        ("history.schema.json", sizeguard::report::schema::history()),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schema")
            .join(name);
        let mut text = serde_json::to_string_pretty(&generated).unwrap();
        text.push('\n');
        if regen {
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{} differ from what the report's types produce: run \
         `SIZEGUARD_REGEN_SCHEMA=1 cargo test --test integration schema::committed` and commit the result",
        stale.join(" and ")
    );
}

fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Both schemas are valid draft 2020-12 schemas, and the check schema's
/// references into the measure schema resolve.
fn validators() -> (Validator, Validator) {
    let measure = schema("measure.schema.json");
    let check = schema("check.schema.json");
    for s in [&measure, &check] {
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "draft 2020-12"
        );
        jsonschema::meta::validate(s).unwrap_or_else(|e| panic!("not a valid schema: {e}"));
    }
    let measure_id = measure["$id"].as_str().unwrap().to_string();
    let registry = Registry::new()
        .add(measure_id.as_str(), measure.clone())
        .expect("measure schema id")
        .prepare()
        .expect("registry");
    let m = jsonschema::options()
        .build(&measure)
        .expect("measure schema");
    let c = jsonschema::options()
        .with_registry(&registry)
        .build(&check)
        .expect("check schema");
    (m, c)
}

#[track_caller]
fn assert_valid(v: &Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(10)
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema:\n{}",
        errors.join("\n")
    );
}

fn json_of(args: &[&str], allow_fail: bool) -> Value {
    let out = Run::new(args).run();
    assert!(
        out.code == 0 || (allow_fail && out.code == 1),
        "sizeguard {args:?} exited {}: {}",
        out.code,
        out.stderr
    );
    out.json()
}

fn check_json(extra: &[&str]) -> Value {
    let mut args = vec!["check", "--no-config", "-q", "--format", "json"];
    args.extend_from_slice(extra);
    json_of(&args, true)
}

#[test]
fn measure_outputs_match_the_schema() {
    let (m, _) = validators();
    let (v1, v2) = (demo("v1"), demo("v2"));
    let doc = json_of(&["measure", "-q", "--format", "json", &v1, &v2], false);
    assert_valid(&m, &doc, "measure of the fixture");
    // Null, not missing: a figure the schema requires is there even when unknown.
    assert!(doc["images"][0]["layers"][0]["not_measured_reason"].is_null());

    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("demo.tar");
    copy_to_oci_archive(&support::fixture::demo_dir(), "v2", &archive);
    let archive_ref = format!("oci-archive:{}:v2", archive.display());
    let doc = json_of(&["measure", "-q", "--format", "json", &archive_ref], false);
    assert_valid(&m, &doc, "measure of an oci-archive");

    let reg = DockerRegistry::start();
    reg.push_layout(&support::fixture::demo_dir(), "v2", "demo/app:v2");
    let remote = format!("{}/demo/app:v2", reg.addr);
    let doc = json_of(&["measure", "-q", "--format", "json", &remote], false);
    assert_valid(&m, &doc, "measure from a registry");
    let doc = json_of(
        &["measure", "-q", "--format", "json", "--estimate", &remote],
        false,
    );
    assert_valid(&m, &doc, "measure --estimate from a registry");
    assert_eq!(doc["images"][0]["estimated"], true);
}

#[test]
fn check_outputs_match_the_schema() {
    let (m, c) = validators();
    let (v1, v2) = (demo("v1"), demo("v2"));
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("a check without baseline or node", vec!["--candidate", &v2]),
        (
            "a check with baseline and a full node",
            vec![
                "--candidate",
                &v2,
                "--baseline",
                &v1,
                "--node-capacity",
                "2000000",
                "--node-available",
                "700000",
                "--node-inodes",
                "1000",
                "--node-inodes-free",
                "200",
                "--max-growth",
                "disk_bytes=20%",
            ],
        ),
        (
            "a capacity-only check with a baseline",
            vec![
                "--candidate",
                &v2,
                "--baseline",
                &v1,
                "--node-capacity",
                "20Gi",
            ],
        ),
        (
            "a capacity-only check without a baseline",
            vec![
                "--candidate",
                &v2,
                "--node-capacity",
                "20Gi",
                "--node-system-reserved",
                "2Gi",
            ],
        ),
        (
            "a check that judges nothing",
            vec!["--candidate", &v2, "--no-default-rules"],
        ),
    ];
    for (what, extra) in cases {
        let doc = check_json(&extra);
        assert_valid(&c, &doc, what);
        for p in doc["platforms"].as_array().unwrap() {
            // Inside check, each image is exactly a measure image.
            let measure = serde_json::json!({"schema_version": 1, "images": [p["candidate"]]});
            assert_valid(&m, &measure, "a check's candidate as a measure report");
        }
    }
    // A node whose filesystem reports no inodes: the headroom is null, not missing.
    let doc = check_json(&["--candidate", &v2, "--node-capacity", "20Gi"]);
    let node = doc["node"].as_object().unwrap();
    assert!(node.contains_key("inode_headroom") && node["inode_headroom"].is_null());

    let reg = DockerRegistry::start();
    reg.push_layout(&support::fixture::demo_dir(), "v1", "demo/app:v1");
    reg.push_layout(&support::fixture::demo_dir(), "v2", "demo/app:v2");
    let doc = check_json(&[
        "--candidate",
        &format!("{}/demo/app:v2", reg.addr),
        "--baseline",
        &format!("{}/demo/app:v1", reg.addr),
        "--node-capacity",
        "20Gi",
    ]);
    assert_valid(&c, &doc, "a check on a registry");
}

/// `check` keeps `measure`'s key order for the images it embeds.
#[test]
fn check_keeps_the_measure_key_order() {
    let v2 = demo("v2");
    let measure = Run::new(["measure", "-q", "--format", "json", v2.as_str()]).run();
    let check = Run::new([
        "check",
        "--no-config",
        "-q",
        "--format",
        "json",
        "--candidate",
        v2.as_str(),
    ])
    .run();
    let keys = |text: &str, start: &str| -> Vec<String> {
        let at = text.find(start).expect("image object");
        text[at..]
            .lines()
            .take_while(|l| !l.trim_start().starts_with("\"layers\""))
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split('"').next())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        keys(&measure.stdout, "\"reference\""),
        keys(&check.stdout, "\"reference\""),
    );
}

/// The schemas can fail: a report missing a required figure, with a key
/// the schema does not know, or with a value outside an enum is rejected.
#[test]
fn reports_that_break_the_schema_are_rejected() {
    let (m, c) = validators();
    let v2 = demo("v2");
    let check = check_json(&["--candidate", &v2]);
    let measure = json_of(&["measure", "-q", "--format", "json", &v2], false);
    assert_valid(&c, &check, "the check report before tampering");
    assert_valid(&m, &measure, "the measure report before tampering");

    type Edit = Box<dyn Fn(&mut Value)>;
    let broken_checks: Vec<(&str, Edit)> = vec![
        (
            "a check without its verdict",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("verdict");
            }),
        ),
        (
            "a layer without disk_bytes",
            Box::new(|v| {
                v["platforms"][0]["candidate"]["layers"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("disk_bytes");
            }),
        ),
        (
            "a cost with an unknown key",
            Box::new(|v| v["platforms"][0]["candidate_cost"]["bonus_bytes"] = 1.into()),
        ),
        (
            "a finding of an unknown rule",
            Box::new(|v| {
                v["findings"] = serde_json::json!([{"rule": "all_clear", "level": "warn",
                    "platform": "", "figure": "", "value": 0, "limit": 0,
                    "limit_text": "", "message": ""}]);
            }),
        ),
        (
            "a verdict that is not one",
            Box::new(|v| v["verdict"] = "maybe".into()),
        ),
        ("another kind", Box::new(|v| v["kind"] = "measure".into())),
        (
            "a negative size",
            Box::new(|v| v["platforms"][0]["rollout_cost"]["pull_bytes"] = (-1).into()),
        ),
    ];
    for (what, edit) in broken_checks {
        let mut doc = check.clone();
        edit(&mut doc);
        assert!(!c.is_valid(&doc), "{what} passed the check schema");
    }

    let mut doc = measure.clone();
    doc["images"][0].as_object_mut().unwrap().remove("totals");
    assert!(
        !m.is_valid(&doc),
        "an image without totals passed the measure schema"
    );
    let mut doc = measure;
    doc["images"][0]["layers"][0]["digest"] = "not a digest".into();
    assert!(
        !m.is_valid(&doc),
        "a layer digest that is not one passed the measure schema"
    );
}
