//! History kept with the images, against a real `docker-registry`
//! (Distribution 2.8, which has no referrers API: every attachment goes
//! through the `sha256-HEX` fallback index): `check --attach` stores the
//! report as an OCI artifact, `history` reads the figures back, `check
//! --trend` embeds them; the stored documents are read with curl, not
//! with sizeguard, and their shape checked against the OCI specs.

use crate::support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use support::layout::*;
use support::registry::{Registry, RegistryOpts};
use support::require_tool;
use support::run::{Out, Run};

const REPORT_TYPE: &str = "application/vnd.sizeguard.report.v1+json";
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const NODE: [&str; 4] = [
    "--node-capacity",
    "107374182400",
    "--node-available",
    "53687091200",
];

/// Pushes release `n` of `app` (each larger than the one before, built a
/// day later) to the registry as `app:TAG`; returns its manifest digest.
fn push_release(reg: &Registry, dir: &Path, n: u64, tag: &str) -> String {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new().dir("app").file("app/base", 120_000),
        Comp::Gzip,
    );
    let grown = b.add_layer(
        &LayerSpec::new()
            .dir("app")
            .file(&format!("app/release-{n}"), 40_000 * n),
        Comp::Gzip,
    );
    let layers = [base, grown];
    let created = format!("2024-0{n}-01T00:00:00Z");
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
    });
    let img = b.add_image_with_config(
        &layers,
        &config,
        Platform::new("linux", "amd64", None),
        false,
    );
    b.tag_image(&img, tag);
    reg.push_layout(dir, tag, &format!("app:{tag}"));
    img.digest
}

fn check(reg: &Registry, tag: &str, baseline: Option<&str>, extra: &[&str]) -> Out {
    let mut run = Run::new([
        "check",
        "--no-config",
        "--format",
        "json",
        "--candidate",
        &reg.reference(&format!("app:{tag}")),
    ])
    .args(NODE)
    .args(extra);
    if let Some(b) = baseline {
        run = run.args(["--baseline", &reg.reference(&format!("app:{b}"))]);
    }
    run.run()
}

/// `curl` of a registry path, with an `Accept`; (status, body).
fn curl_get(reg: &Registry, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let curl = require_tool("curl", "apt-get install curl");
    let out = Command::new(curl)
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!("{}{path}", reg.url()))
        .output()
        .expect("run curl");
    let mut body = out.stdout;
    let split = body.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap();
    body.truncate(split);
    (status, body)
}

fn curl_json(reg: &Registry, path: &str, accept: &str) -> Value {
    let (status, body) = curl_get(reg, path, accept);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// Uploads a blob with curl (`POST` then `PUT` of the `Location`).
fn curl_blob(reg: &Registry, repo: &str, bytes: &[u8]) -> String {
    let curl = require_tool("curl", "apt-get install curl");
    let digest = support::sha256_digest(bytes);
    let out = Command::new(&curl)
        .args(["-s", "-i", "-X", "POST"])
        .arg(format!("{}/v2/{repo}/blobs/uploads/", reg.url()))
        .output()
        .expect("run curl");
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no Location in {head}"))
        .trim()
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        location.clone()
    } else {
        format!("{}{location}", reg.url())
    };
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    let status = Command::new(&curl)
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args([
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", tmp.path().display()))
        .arg(format!("{url}{sep}digest={digest}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "201", "blob PUT");
    digest
}

/// PUTs a manifest with curl under `target`.
fn curl_manifest(reg: &Registry, repo: &str, target: &str, media_type: &str, doc: &Value) {
    let curl = require_tool("curl", "apt-get install curl");
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), serde_json::to_vec(doc).unwrap()).unwrap();
    let out = Command::new(curl)
        .args(["-s", "-w", "\n%{http_code}", "-X", "PUT", "-H"])
        .arg(format!("Content-Type: {media_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", tmp.path().display()))
        .arg(format!("{}/v2/{repo}/manifests/{target}", reg.url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("201"), "manifest PUT {target}: {text}");
}

fn history(reg: &Registry, extra: &[&str]) -> Value {
    let out = Run::new(["history", &reg.reference("app"), "--format", "json"])
        .args(extra)
        .run();
    out.assert_ok();
    let view = out.json();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/history.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .build(&schema)
        .expect("history schema");
    let errors: Vec<String> = validator
        .iter_errors(&view)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "history JSON off its schema: {errors:?}");
    view
}

fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The point's figures are the check's own.
#[track_caller]
fn assert_point_is_check(point: &Value, report: &Value, tag: &str, digest: &str) {
    let p = &report["platforms"][0];
    let cost = &p["candidate_cost"];
    assert_eq!(point["tag"], tag, "{point:#}");
    assert_eq!(point["digest"], digest);
    assert_eq!(point["source"], "report");
    assert_eq!(point["verdict"], p["verdict"]);
    assert_eq!(point["pull_bytes"], cost["pull_bytes"]);
    assert_eq!(point["disk_bytes"], cost["disk_bytes"]);
    assert_eq!(point["node_bytes"], cost["node_bytes"]);
    assert_eq!(point["inodes"], cost["node_inodes"]);
    assert_eq!(point["gc_headroom"], report["node"]["gc_headroom"]);
    assert_eq!(point["created"], p["candidate"]["created"]);
    assert!(point["pull_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn attached_reports_make_the_history_and_keep_other_referrers() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let digests: Vec<String> = (1..=3)
        .map(|n| push_release(&reg, &tmp.path().join(format!("v{n}")), n, &format!("v{n}")))
        .collect();

    // Another tool's referrer of v2 (a signature, as cosign or oras
    // would store it on a registry without the referrers API).
    let empty = curl_blob(&reg, "app", b"{}");
    assert_eq!(empty, EMPTY_DIGEST);
    let v2_manifest = curl_get(
        &reg,
        &format!("/v2/app/manifests/{}", digests[1]),
        MT_OCI_MANIFEST,
    )
    .1;
    let foreign = json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2}],
        "subject": {"mediaType": MT_OCI_MANIFEST, "digest": digests[1], "size": v2_manifest.len()},
    });
    let foreign_bytes = serde_json::to_vec(&foreign).unwrap();
    let foreign_digest = support::sha256_digest(&foreign_bytes);
    curl_manifest(&reg, "app", &foreign_digest, MT_OCI_MANIFEST, &foreign);
    let foreign_entry = json!({
        "mediaType": MT_OCI_MANIFEST,
        "digest": foreign_digest,
        "size": foreign_bytes.len(),
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    });
    curl_manifest(
        &reg,
        "app",
        &fallback_tag(&digests[1]),
        MT_OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [foreign_entry]}),
    );

    let mut reports = Vec::new();
    for n in 1..=3usize {
        let tag = format!("v{n}");
        let base = (n > 1).then(|| format!("v{}", n - 1));
        let out = check(&reg, &tag, base.as_deref(), &["--attach"]);
        assert!(
            out.code == 0 || out.code == 1,
            "check {tag}: {}",
            out.stderr
        );
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("attached report sha256:"))
            .unwrap_or_else(|| panic!("no attachment line: {}", out.stderr));
        assert!(
            line.ends_with(&format!(" to {}@{}", reg.reference("app"), digests[n - 1])),
            "{line}"
        );
        reports.push(out.json());
    }

    // The registry's own documents, read with curl.
    let index = curl_json(
        &reg,
        &format!("/v2/app/manifests/{}", fallback_tag(&digests[1])),
        MT_OCI_INDEX,
    );
    assert_eq!(index["mediaType"], MT_OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index:#}");
    assert_eq!(
        entries[0]["digest"], foreign_digest,
        "the other referrer kept"
    );
    let ours = &entries[1];
    assert_eq!(ours["artifactType"], REPORT_TYPE);
    assert_eq!(ours["mediaType"], MT_OCI_MANIFEST);
    let artifact = curl_json(
        &reg,
        &format!("/v2/app/manifests/{}", ours["digest"].as_str().unwrap()),
        MT_OCI_MANIFEST,
    );
    assert_eq!(artifact["mediaType"], MT_OCI_MANIFEST);
    assert_eq!(artifact["artifactType"], REPORT_TYPE);
    assert_eq!(
        artifact["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(artifact["config"]["digest"], EMPTY_DIGEST);
    assert_eq!(artifact["config"]["size"], 2);
    assert_eq!(artifact["subject"]["digest"], digests[1]);
    assert_eq!(artifact["subject"]["mediaType"], MT_OCI_MANIFEST);
    assert_eq!(artifact["subject"]["size"], v2_manifest.len());
    let layers = artifact["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], REPORT_TYPE);
    let notes = &artifact["annotations"];
    assert_eq!(
        notes["dev.sizeguard.pull-bytes"],
        reports[1]["platforms"][0]["candidate_cost"]["pull_bytes"]
            .as_u64()
            .unwrap()
            .to_string()
    );
    assert!(
        notes["org.opencontainers.image.created"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        ours["annotations"], *notes,
        "the index entry carries the figures"
    );
    // The layer is the report as the check printed it.
    let (status, layer) = curl_get(
        &reg,
        &format!("/v2/app/blobs/{}", layers[0]["digest"].as_str().unwrap()),
        "*/*",
    );
    assert_eq!(status, 200);
    let stored: Value = serde_json::from_slice(&layer).unwrap();
    assert_eq!(stored, reports[1]);

    // The history: three points, oldest first, the checks' own figures,
    // read from the referrers alone: the registry's access log shows no
    // blob (no layer, no config, no report) fetched while it is made.
    let blob_gets = || {
        std::fs::read_to_string(&reg.log_path)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"GET /v2/app/blobs/"))
            .count()
    };
    let before = blob_gets();
    let view = history(&reg, &[]);
    assert_eq!(blob_gets(), before, "history fetched a blob");
    assert_eq!(view["kind"], "history");
    assert_eq!(view["repository"], reg.reference("app"));
    let points = view["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{view:#}");
    for (n, point) in points.iter().enumerate() {
        assert_point_is_check(point, &reports[n], &format!("v{}", n + 1), &digests[n]);
    }
    let pulls: Vec<u64> = points
        .iter()
        .map(|p| p["pull_bytes"].as_u64().unwrap())
        .collect();
    assert!(pulls[0] < pulls[1] && pulls[1] < pulls[2], "{pulls:?}");

    // Entries without the annotations (another tool rewrote the index):
    // the figures come from the report itself, the same.
    let mut bare = index.clone();
    for entry in bare["manifests"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("annotations");
    }
    curl_manifest(&reg, "app", &fallback_tag(&digests[1]), MT_OCI_INDEX, &bare);
    let again = history(&reg, &[]);
    assert_eq!(again["points"], view["points"]);

    // A report that is not one costs its point, not the history.
    let junk = curl_blob(&reg, "app", br#"{"kind":"not a report"}"#);
    let v3_manifest = curl_get(
        &reg,
        &format!("/v2/app/manifests/{}", digests[2]),
        MT_OCI_MANIFEST,
    )
    .1;
    let bogus = json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "artifactType": REPORT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": REPORT_TYPE, "digest": junk, "size": 23}],
        "subject": {"mediaType": MT_OCI_MANIFEST, "digest": digests[2], "size": v3_manifest.len()},
    });
    let bogus_bytes = serde_json::to_vec(&bogus).unwrap();
    let bogus_digest = support::sha256_digest(&bogus_bytes);
    curl_manifest(&reg, "app", &bogus_digest, MT_OCI_MANIFEST, &bogus);
    let entry = json!({
        "mediaType": MT_OCI_MANIFEST,
        "digest": bogus_digest,
        "size": bogus_bytes.len(),
        "artifactType": REPORT_TYPE,
    });
    curl_manifest(
        &reg,
        "app",
        &fallback_tag(&digests[2]),
        MT_OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [entry]}),
    );
    let broken = history(&reg, &[]);
    assert_eq!(broken["points"][1], view["points"][1]);
    assert_eq!(broken["points"][2]["source"], "missing", "{broken:#}");
    assert_eq!(broken["points"][2]["tag"], "v3");
    let note = broken["note"].as_str().unwrap();
    assert!(note.contains("1 report(s) could not be read"), "{note}");
    assert!(note.contains(&bogus_digest), "{note}");
}

#[test]
fn history_keeps_the_last_tags_and_check_trend_embeds_it() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let digests: Vec<String> = (1..=4)
        .map(|n| push_release(&reg, &tmp.path().join(format!("v{n}")), n, &format!("v{n}")))
        .collect();
    // A tag the glob leaves out, of the newest image.
    push_release(&reg, &tmp.path().join("dev"), 5, "dev");
    let mut reports = Vec::new();
    for n in 1..=3usize {
        let base = (n > 1).then(|| format!("v{}", n - 1));
        let out = check(&reg, &format!("v{n}"), base.as_deref(), &["--attach", "-q"]);
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        assert!(
            !out.stderr.contains("attached report"),
            "-q: {}",
            out.stderr
        );
        reports.push(out.json());
    }

    // v4 has no report: missing, with its image's date.
    let view = history(&reg, &["--tags", "v*", "--last", "2"]);
    let points = view["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{view:#}");
    assert_point_is_check(&points[0], &reports[2], "v3", &digests[2]);
    assert_eq!(points[1]["tag"], "v4");
    assert_eq!(points[1]["digest"], digests[3]);
    assert_eq!(points[1]["source"], "missing");
    assert_eq!(points[1]["created"], "2024-04-01T00:00:00Z");
    assert!(points[1]["pull_bytes"].is_null() && points[1]["verdict"].is_null());
    assert!(
        view["note"].as_str().unwrap().contains("last 2 of 4"),
        "{view:#}"
    );
    // Measured instead: the sizes of the image alone, no verdict.
    let measured = history(&reg, &["--tags", "v*", "--last", "2", "--measure"]);
    assert_eq!(measured["points"][0], points[0]);
    let v4 = &measured["points"][1];
    assert_eq!(v4["source"], "measured", "{measured:#}");
    assert!(v4["verdict"].is_null() && v4["gc_headroom"].is_null());

    // Every tag: dev too, newest.
    let all = history(&reg, &[]);
    let tags: Vec<&str> = all["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["v1", "v2", "v3", "v4", "dev"]);

    // The trend of v4's check: the earlier releases, v4 itself left out.
    let out = check(
        &reg,
        "v4",
        Some("v3"),
        &["--trend", "10", "--trend-tags", "v*"],
    );
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let report = out.json();
    let trend = &report["history"];
    assert_eq!(trend["repository"], reg.reference("app"));
    let cost = &report["platforms"][0]["candidate_cost"];
    assert_eq!(v4["pull_bytes"], cost["pull_bytes"]);
    assert_eq!(v4["disk_bytes"], cost["disk_bytes"]);
    assert_eq!(v4["node_bytes"], cost["node_bytes"]);
    assert_eq!(v4["inodes"], cost["node_inodes"]);
    let points = trend["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{trend:#}");
    for (n, point) in points.iter().enumerate() {
        assert_point_is_check(point, &reports[n], &format!("v{}", n + 1), &digests[n]);
    }

    // A baseline outside a registry: no points, and why.
    let layout = tmp.path().join("v1");
    let out = Run::new(["check", "--no-config", "--format", "json", "--trend", "5"])
        .args(["--candidate", &reg.reference("app:v2")])
        .args(["--baseline", &format!("oci:{}:v1", layout.display())])
        .run();
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let trend = &out.json()["history"];
    assert_eq!(trend["points"], json!([]));
    assert!(
        trend["note"]
            .as_str()
            .unwrap()
            .contains("not in a registry"),
        "{trend:#}"
    );

    // Without --trend, no history at all.
    let out = check(&reg, "v4", Some("v3"), &[]);
    assert!(out.json().get("history").is_none());
}

#[test]
fn a_refused_push_is_one_line_after_the_report() {
    let writable = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let digest = push_release(&writable, &tmp.path().join("v1"), 1, "v1");
    let read_only = Registry::start_with(RegistryOpts {
        read_only_storage: Some(writable.storage_dir.clone()),
        ..Default::default()
    });
    let out = check(&read_only, "v1", None, &["--attach"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    // The check's own report is printed all the same.
    assert_eq!(out.json()["kind"], "check");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let expected = format!(
        "sizeguard: error: attaching the report to {}@{digest}: the registry refused the push (",
        read_only.reference("app")
    );
    assert!(lines[0].starts_with(&expected), "{}", lines[0]);
    assert!(lines[0].contains("405"), "{}", lines[0]);
    assert!(
        lines[0].ends_with("the credentials need push rights"),
        "{}",
        lines[0]
    );
}

#[test]
fn only_a_registry_candidate_can_be_attached() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let l = b.add_layer(&LayerSpec::new().file("a", 1000), Comp::Gzip);
    b.add_tagged_image(&[l], "v1");
    let out = Run::new(["check", "--no-config", "--attach"])
        .args(["--candidate", &format!("oci:{}:v1", dir.display())])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.error().contains("is not a registry image"),
        "{}",
        out.stderr
    );

    // A history is of a repository, not of one image.
    for bad in ["127.0.0.1:9/app:v1", "127.0.0.1:9/app@sha256:00"] {
        let out = Run::new(["history", bad]).run();
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(out.error().contains("repository"), "{}", out.stderr);
    }
}

#[test]
fn the_tag_list_is_read_page_by_page() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let digest = push_release(&reg, &tmp.path().join("v1"), 1, "v1");
    let manifest: Value = curl_json(
        &reg,
        &format!("/v2/app/manifests/{digest}"),
        MT_OCI_MANIFEST,
    );
    // More tags than three pages of the listing hold (100 a page).
    for i in 0..250 {
        curl_manifest(&reg, "app", &format!("t{i:03}"), MT_OCI_MANIFEST, &manifest);
    }
    // Only the last page's tags match: found only by following the links.
    let view = history(&reg, &["--tags", "t24*"]);
    let points = view["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{view:#}");
    assert_eq!(points[0]["tag"], "t240");
    assert_eq!(points[0]["digest"], digest);
    // Every tag of one image is one point.
    let all = history(&reg, &[]);
    assert_eq!(all["points"].as_array().unwrap().len(), 1, "{all:#}");
}
