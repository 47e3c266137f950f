//! The dashboard of `sizeguard serve` in a real browser: three releases
//! pushed to a real registry that notifies the service, then headless
//! Chromium (through ChromeDriver) signs in with the read token, reads the
//! index, a repository's charts and a report, and the charts' figures are
//! compared with the verdict API's. The sign-in's HTTP details, and
//! `/v1/history` against its schema, are checked with a plain client.

#![cfg(feature = "server")]

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::layout::{Comp, ImageDesc, LayerSpec, LayoutBuilder};
use support::registry::{Registry, RegistryOpts};
use support::serve::{API_TOKEN, SECRET, Service};
use support::webdriver::Driver;

const VERDICT_WAIT: Duration = Duration::from_secs(90);

/// `v1` 2 MB, `v2` 2 + 6 MB, `v3` 2 + 3 MB: three sizes, incompressible.
fn build_releases(dir: &Path) -> [ImageDesc; 3] {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("usr/bin")
            .file("usr/bin/app", 2_000_000)
            .file("etc/conf", 100),
        Comp::Gzip,
    );
    let big = b.add_layer(
        &LayerSpec::new().dir("opt").file("opt/model.bin", 6_000_000),
        Comp::Gzip,
    );
    let mid = b.add_layer(
        &LayerSpec::new()
            .dir("opt")
            .file("opt/model.bin", 3_000_000)
            .file("opt/extra", 10),
        Comp::Gzip,
    );
    let v1 = b.add_tagged_image(std::slice::from_ref(&base), "v1");
    let v2 = b.add_tagged_image(&[base.clone(), big], "v2");
    let v3 = b.add_tagged_image(&[base, mid], "v3");
    [v1, v2, v3]
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/dashboard")
}

fn set_cookie_of(a: &support::serve::Answer) -> String {
    a.header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {a:?}"))
        .to_string()
}

#[test]
fn the_dashboard_shows_what_the_verdict_api_says() {
    let addr = Service::pick_addr();
    let reg = Registry::start_with(RegistryOpts {
        notifications: Some(format!("http://{addr}/v1/events/distribution")),
        notification_headers: vec![("Authorization".into(), format!("Bearer {SECRET}"))],
        ..Default::default()
    });
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            &reg.addr,
            "--baseline-tag",
            "v1",
            "--max-growth",
            "200%",
            "--node-capacity",
            "64Mi",
            "--node-available",
            "40Mi",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let releases = build_releases(&layout);
    for (i, image) in releases.iter().enumerate() {
        let tag = format!("v{}", i + 1);
        reg.push_layout(&layout, &tag, &format!("team/app:{tag}"));
        svc.wait_verdict(&image.digest, VERDICT_WAIT);
    }

    // The figures of record: the verdict API's reports.
    let listed = svc.get("/v1/verdicts?repository=team/app&limit=10").json();
    let mut verdicts: Vec<Value> = listed["verdicts"].as_array().unwrap().clone();
    verdicts.reverse();
    assert_eq!(verdicts.len(), 3, "{listed:#}");
    let figure = |v: &Value, k: &str| {
        v["report"]["platforms"][0]["candidate_cost"][k]
            .as_u64()
            .unwrap()
    };
    let node: Vec<u64> = verdicts.iter().map(|v| figure(v, "node_bytes")).collect();
    assert!(
        node[0] < node[2] && node[2] < node[1],
        "three sizes: {node:?}"
    );

    // `/v1/history`: the history shape, validated by its schema, and the
    // same figures.
    assert_eq!(
        svc.get_anonymous("/v1/history?repository=team/app").status,
        401
    );
    let history = svc.get("/v1/history?repository=team/app").json();
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
        .iter_errors(&history)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{history:#}");
    assert_eq!(history["kind"], "history");
    assert_eq!(
        history["repository"],
        format!("{}/team/app", reg.addr).as_str()
    );
    let points = history["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for (p, v) in points.iter().zip(&verdicts) {
        assert_eq!(p["digest"], v["digest"]);
        assert_eq!(p["tag"], v["tag"]);
        for k in ["pull_bytes", "disk_bytes", "node_bytes"] {
            assert_eq!(p[k].as_u64(), Some(figure(v, k)), "{k}");
        }
        assert_eq!(p["inodes"].as_u64(), Some(figure(v, "node_inodes")));
        assert_eq!(p["gc_headroom"], v["report"]["node"]["gc_headroom"]);
        assert_eq!(
            p["report"],
            format!("/v1/verdicts/{}", v["digest"].as_str().unwrap()).as_str()
        );
    }
    let last = svc.get("/v1/history?repository=team/app&last=2").json();
    assert_eq!(last["points"].as_array().unwrap().len(), 2);
    assert_eq!(last["points"][1]["digest"], verdicts[2]["digest"]);
    assert!(last["note"].is_string());

    // Sign-in over plain HTTP: no cookie → the login page; a wrong token
    // → 401, not echoed, one log line; the right one → a strict cookie.
    let bare = svc.get_anonymous("/ui/");
    assert_eq!(bare.status, 303);
    assert_eq!(bare.header("location"), Some("/ui/login"));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let wrong = svc.request("POST", "/ui/login", &form, b"token=not-the-token-xyzzy");
    assert_eq!(wrong.status, 401);
    assert!(!wrong.body.contains("xyzzy"));
    assert!(wrong.header("set-cookie").is_none());
    assert_eq!(
        svc.log().matches("dashboard sign-in refused").count(),
        1,
        "{}",
        svc.log()
    );
    assert!(!svc.log().contains("xyzzy"));
    let right = svc.request(
        "POST",
        "/ui/login",
        &form,
        format!("token={API_TOKEN}").as_bytes(),
    );
    assert_eq!(right.status, 303, "{right:?}");
    let cookie = set_cookie_of(&right);
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let index = svc.request("GET", "/ui/", &[("Cookie", session.as_str())], b"");
    assert_eq!(index.status, 200);
    let csp = index.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(index.header("referrer-policy"), Some("no-referrer"));
    assert!(!index.body.contains("<script"));
    let huge = vec![b'a'; 64 << 10];
    assert_eq!(svc.request("POST", "/ui/login", &form, &huge).status, 413);

    // The browser.
    let base = format!("http://{addr}");
    let d = Driver::start(1280, 1500);
    d.goto(&format!("{base}/ui/"));
    assert_eq!(d.url(), format!("{base}/ui/login"));
    let out = artifacts();
    d.screenshot(&out.join("login-light.png"));
    let field = d.find("input[name=token]");
    d.type_into(&field, API_TOKEN);
    d.click(&d.find("button[type=submit]"));
    assert_eq!(d.url_once(&format!("{base}/ui/")), format!("{base}/ui/"));
    let rows = d.execute(
        "return [...document.querySelectorAll('table.list tbody tr')].map(r => r.querySelector('a').textContent)",
    );
    assert_eq!(rows, serde_json::json!(["team/app"]));
    let spark = d.execute("return document.querySelector('svg.sparkline').dataset.bytes");
    let joined: Vec<String> = node.iter().map(u64::to_string).collect();
    assert_eq!(spark.as_str(), Some(joined.join(",").as_str()));
    for scheme in ["light", "dark"] {
        d.color_scheme(scheme);
        d.screenshot(&out.join(format!("index-{scheme}.png")));
    }
    d.color_scheme("light");

    d.click(&d.find("table.list tbody a"));
    let want = format!("{base}/ui/repository?name=team%2Fapp");
    assert_eq!(d.url_once(&want), want);
    let marks = d.execute(
        "return [...document.querySelectorAll('svg.chart circle.point')].map(c => ({\
            series: c.dataset.series, tag: c.dataset.tag, digest: c.dataset.digest,\
            bytes: c.dataset.bytes === undefined ? null : Number(c.dataset.bytes),\
            inodes: c.dataset.inodes === undefined ? null : Number(c.dataset.inodes),\
            title: c.querySelector('title').textContent}))",
    );
    let marks = marks.as_array().unwrap();
    let pick =
        |series: &str| -> Vec<&Value> { marks.iter().filter(|m| m["series"] == series).collect() };
    for (series, key) in [("node_bytes", "node_bytes"), ("pull_bytes", "pull_bytes")] {
        let got = pick(series);
        assert_eq!(got.len(), 3, "{series}: {marks:?}");
        for (m, v) in got.iter().zip(&verdicts) {
            assert_eq!(m["digest"], v["digest"]);
            assert_eq!(m["tag"], v["tag"]);
            assert_eq!(m["bytes"].as_u64(), Some(figure(v, key)), "{series}");
        }
    }
    for (m, v) in pick("gc_headroom").iter().zip(&verdicts) {
        assert_eq!(
            m["bytes"].as_i64(),
            v["report"]["node"]["gc_headroom"].as_i64()
        );
    }
    assert_eq!(pick("gc_headroom").len(), 3);
    for (m, v) in pick("inodes").iter().zip(&verdicts) {
        assert_eq!(m["inodes"].as_u64(), Some(figure(v, "node_inodes")));
    }
    // The title prints the figure in the axis' unit, to its precision.
    let v2 = pick("node_bytes")[1];
    let title = v2["title"].as_str().unwrap();
    let mib = node[1] as f64 / 1048576.0;
    assert_eq!(title, format!("v2: node bytes {mib:.3} MiB"));
    let axis = d.execute(
        "return [...document.querySelectorAll('svg.chart text')].map(t => t.textContent.trim())",
    );
    assert!(
        axis.as_array().unwrap().iter().any(|t| t == "bytes (MiB)"),
        "{axis}"
    );
    for scheme in ["light", "dark"] {
        d.color_scheme(scheme);
        d.screenshot(&out.join(format!("repository-{scheme}.png")));
    }
    d.color_scheme("light");

    let link = d.find(&format!(
        "a[href='/ui/report/{}']",
        verdicts[1]["digest"].as_str().unwrap()
    ));
    d.click(&link);
    let want = format!(
        "{base}/ui/report/{}",
        verdicts[1]["digest"].as_str().unwrap()
    );
    assert_eq!(d.url_once(&want), want);
    let heading = d.execute("return document.querySelector('h1').textContent");
    assert_eq!(
        heading.as_str(),
        Some(format!("{}/team/app:v2", reg.addr).as_str())
    );
    let cells = d.execute(
        "return [...document.querySelectorAll('section.report td[data-bytes]')].map(c => Number(c.dataset.bytes))",
    );
    let v = &verdicts[1];
    assert_eq!(
        cells,
        serde_json::json!([
            figure(v, "pull_bytes"),
            figure(v, "disk_bytes"),
            figure(v, "node_bytes")
        ])
    );
    for scheme in ["light", "dark"] {
        d.color_scheme(scheme);
        d.screenshot(&out.join(format!("report-{scheme}.png")));
    }

    // Signing out ends the browser's session.
    d.click(&d.find("form.logout button"));
    assert_eq!(
        d.url_once(&format!("{base}/ui/login")),
        format!("{base}/ui/login")
    );
    d.goto(&format!("{base}/ui/"));
    assert_eq!(d.url(), format!("{base}/ui/login"));
}

#[test]
fn without_a_read_token_the_dashboard_follows_the_read_api() {
    let addr = Service::pick_addr();
    let admin = Service::pick_addr();
    let svc = Service::start_without_read_token(
        &addr,
        &[
            "--allow-registry",
            "127.0.0.1:5000",
            "--admin-listen",
            &admin,
        ],
    );
    let elsewhere = svc.get_anonymous("/ui/");
    assert_eq!(elsewhere.status, 404);
    assert!(
        elsewhere.body.contains("admin listener"),
        "{}",
        elsewhere.body
    );
    // On the admin listener, without a token, no sign-in.
    let a = support::serve::request(&admin, "GET", "/ui/", &[], b"").unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains("No verdict yet"), "{}", a.body);
    drop(svc);

    let addr = Service::pick_addr();
    let off = Service::start_without_read_token(&addr, &["--allow-registry", "127.0.0.1:5000"]);
    let a = off.get_anonymous("/ui/");
    assert_eq!(a.status, 404);
    assert!(a.body.contains("--api-token-file"), "{}", a.body);
}
