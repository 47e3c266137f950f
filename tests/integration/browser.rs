//! The pull-request comment's trend chart as a reader sees it: a real
//! check report with a history of real check reports, posted by
//! `sizeguard comment` to the GitHub stand-in, the body rendered by
//! cmark-gfm, and its Mermaid block drawn by the Mermaid library in
//! headless Chromium. The SVG and a PNG of each chart are kept under
//! `target/test-artifacts/browser/`.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sizeguard::report::history::{ChartScale, HistoryPoint, HistoryView};
use sizeguard::report::view::CheckView;
use support::chromium::{dump_dom, npm_file, screenshot};
use support::fixture::demo;
use support::github_markdown::{outside_code, render};
use support::github_standin::GithubStandin;
use support::run::{Out, Run};

const TOKEN: &str = "ghs_browserTestToken";
const REPOSITORY: &str = "ghcr.io/acme/demo";

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real `check --format json` report of the demo fixture: `candidate`
/// against `baseline` (none: the candidate alone) on a node of `capacity`.
fn check(dir: &Path, name: &str, candidate: &str, baseline: Option<&str>, capacity: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    let mut run = Run::new(["check", "--no-config", "--format", "json", "-o"])
        .env("SIZEGUARD_NO_CACHE", "true")
        .arg(&path)
        .args(["--candidate", &demo(candidate)])
        .args(["--node-capacity", capacity, "--warn-growth", "1000%"]);
    if let Some(b) = baseline {
        run = run.args(["--baseline", &demo(b)]);
    }
    let out = run.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Four earlier releases, each the point its real check report makes.
fn releases(dir: &Path) -> Vec<HistoryPoint> {
    [
        ("1.0.0", "v1", None, "16Mi"),
        ("1.1.0", "v2", Some("v1"), "20Mi"),
        ("1.2.0", "v1", Some("v2"), "24Mi"),
        ("1.3.0", "v2", None, "12Mi"),
    ]
    .into_iter()
    .map(|(tag, candidate, baseline, capacity)| {
        let report = check(dir, tag, candidate, baseline, capacity);
        let view = CheckView::from_json(&report.to_string()).unwrap();
        let subject = HistoryPoint::subject_of(&view).unwrap();
        HistoryPoint::from_check(&view, None, Some(tag.to_string()), subject)
    })
    .collect()
}

/// The pull request's report (demo v2 against v1) carrying `history`.
fn report_with(dir: &Path, history: &HistoryView) -> (PathBuf, Value) {
    let mut report = check(dir, "candidate", "v2", Some("v1"), "20Mi");
    report["history"] = serde_json::to_value(history).unwrap();
    let path = dir.join("with-history.json");
    std::fs::write(&path, report.to_string()).unwrap();
    (path, report)
}

/// `sizeguard comment --report FILE` against the stand-in; the body posted.
fn comment_body(dir: &Path, report: &Path) -> String {
    let (out, api) = comment(dir, report);
    out.assert_ok();
    let comments = api.comments(7);
    assert_eq!(comments.len(), 1, "{}", out.stderr);
    comments[0].body.clone()
}

fn comment(dir: &Path, report: &Path) -> (Out, GithubStandin) {
    let api = GithubStandin::start(TOKEN);
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        json!({"action": "synchronize", "number": 7, "pull_request": {"number": 7}}).to_string(),
    )
    .unwrap();
    let out = Run::new(["comment", "--report"])
        .arg(report)
        .env("SIZEGUARD_NO_CACHE", "true")
        .env("GITHUB_API_URL", api.url())
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "octo-org/shop")
        .env("GITHUB_EVENT_PATH", &event)
        .env("SIZEGUARD_GITHUB_MAX_WAIT", "5")
        .secret(TOKEN)
        .run();
    (out, api)
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Mermaid blocks GitHub finds in the rendered comment: cmark-gfm
/// writes a ```mermaid fence as `<pre lang="mermaid"><code>` with
/// `--github-pre-lang` (GitHub's form), else with a `language-mermaid`
/// class on the code.
fn mermaid_blocks(html: &str) -> Vec<String> {
    const OPENS: [&str; 2] = [
        "<pre lang=\"mermaid\"><code>",
        "<pre><code class=\"language-mermaid\">",
    ];
    let mut blocks = Vec::new();
    let mut rest = html;
    while let Some((i, open)) = OPENS
        .iter()
        .filter_map(|o| rest.find(o).map(|i| (i, *o)))
        .min()
    {
        let code = &rest[i + open.len()..];
        let end = code.find("</code></pre>").expect("a closed code block");
        blocks.push(html_unescape(&code[..end]));
        rest = &code[end..];
    }
    blocks
}

/// What Mermaid drew of `code` in Chromium: the page's DOM after the run.
/// The page and the chart's SVG and PNG are kept as `name.*`.
fn draw(code: &str, name: &str) -> String {
    let dir = artifacts();
    let page = dir.join(format!("{name}.html"));
    let script = npm_file("mermaid/dist/mermaid.min.js");
    std::fs::write(
        &page,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"></head><body>\
             <pre class=\"mermaid\">{}</pre>\
             <script src=\"file://{}\"></script>\
             <script>mermaid.initialize({{startOnLoad:false}});\
             mermaid.run().then(()=>document.body.setAttribute('data-done','1'))\
             .catch(e=>document.body.setAttribute('data-error',String(e)))</script>\
             </body></html>",
            html_escape(code),
            script.display()
        ),
    )
    .unwrap();
    let url = format!("file://{}", page.display());
    let dom = dump_dom(&url, Duration::from_secs(10));
    let body = dom
        .find("<body")
        .map(|i| &dom[i..i + dom[i..].find('>').unwrap()])
        .expect("a body");
    assert!(
        !body.contains("data-error"),
        "Mermaid refused it: {body}\n{code}"
    );
    assert!(
        body.contains("data-done=\"1\""),
        "Mermaid did not finish: {body}"
    );
    let svg = between(&dom, "<svg", "</svg>").expect("an <svg> drawn");
    std::fs::write(dir.join(format!("{name}.svg")), format!("<svg{svg}</svg>")).unwrap();
    screenshot(&url, &dir.join(format!("{name}.png")), 800, 600);
    dom
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let i = s.find(open)? + open.len();
    let j = s[i..].find(close)? + i;
    Some(&s[i..j])
}

/// The drawn bars (their `y`, top edge) and how many points the line has.
fn bars_and_line(dom: &str) -> (Vec<f64>, Option<usize>) {
    let bars = between(dom, "<g class=\"bar-plot-0\">", "</g>").expect("a bar plot");
    let ys = bars
        .split("<rect")
        .skip(1)
        .map(|r| {
            between(r, " y=\"", "\"")
                .expect("a bar's y")
                .parse::<f64>()
                .unwrap()
        })
        .collect();
    let line = between(dom, "<g class=\"line-plot-", "</g>").map(|g| {
        let d = between(g, " d=\"", "\"").expect("the line's path");
        d.matches(['M', 'L']).count()
    });
    (ys, line)
}

/// The numbers of a `bar [...]` or `line [...]` row of the chart.
fn series(code: &str, row: &str) -> Option<Vec<String>> {
    let line = code
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{row} [")))?;
    let inner = between(line, "[", "]").unwrap();
    Some(inner.split(',').map(|s| s.trim().to_string()).collect())
}

#[test]
fn the_comment_trend_chart_is_drawn_by_mermaid_with_the_reports_figures() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = HistoryView::new(REPOSITORY, Some("linux/amd64".into()));
    history.points = releases(dir.path());
    let (path, report) = report_with(dir.path(), &history);
    let body = comment_body(dir.path(), &path);
    assert!(body.contains("\n#### Trend\n"), "{body}");
    let html = render(&body);
    let blocks = mermaid_blocks(&html);
    assert_eq!(blocks.len(), 1, "{html}");
    let code = &blocks[0];
    assert!(code.starts_with("xychart-beta\n"), "{code}");
    assert!(
        code.contains(r#"x-axis ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "this PR"]"#),
        "{code}"
    );

    // The chart's figures are the JSON's, in one unit.
    let mut nodes: Vec<i128> = report["history"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node_bytes"].as_i64().unwrap() as i128)
        .collect();
    let mut headroom: Vec<i128> = report["history"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["gc_headroom"].as_i64().unwrap() as i128)
        .collect();
    nodes.push(
        report["platforms"][0]["candidate_cost"]["node_bytes"]
            .as_i64()
            .unwrap() as i128,
    );
    headroom.push(report["node"]["gc_headroom"].as_i64().unwrap() as i128);
    let scale = ChartScale::for_values(nodes.iter().chain(&headroom).copied());
    assert_eq!(scale.unit(), "MiB");
    assert!(code.contains("y-axis \"node bytes (MiB)\""), "{code}");
    let format = |v: &[i128]| v.iter().map(|b| scale.format(*b)).collect::<Vec<_>>();
    assert_eq!(series(code, "bar").unwrap(), format(&nodes), "{code}");
    assert_eq!(series(code, "line").unwrap(), format(&headroom), "{code}");

    let dom = draw(code, "trend");
    let (bars, line) = bars_and_line(&dom);
    assert_eq!(bars.len(), history.points.len() + 1, "{dom}");
    assert_eq!(line, Some(history.points.len() + 1), "{dom}");
    // Each bar's top is where its figure lies on one linear axis: the
    // taller figure, the higher top (a smaller y).
    let values: Vec<f64> = format(&nodes).iter().map(|v| v.parse().unwrap()).collect();
    let (lo, hi) = (0..values.len()).fold((0, 0), |(lo, hi), i| {
        (
            if values[i] < values[lo] { i } else { lo },
            if values[i] > values[hi] { i } else { hi },
        )
    });
    assert!(values[hi] > values[lo], "{values:?}");
    let per_unit = (bars[lo] - bars[hi]) / (values[hi] - values[lo]);
    for (y, v) in bars.iter().zip(&values) {
        let expected = bars[lo] - (v - values[lo]) * per_unit;
        assert!(
            (y - expected).abs() < 0.5,
            "bar at {y} for {v}: {bars:?} {values:?}"
        );
    }
}

#[test]
fn without_reports_the_comment_says_so_in_one_line_and_draws_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let history = HistoryView::new(REPOSITORY, None);
    let (path, _) = report_with(dir.path(), &history);
    let body = comment_body(dir.path(), &path);
    assert!(
        body.contains(&format!(
            "\n#### Trend\n\nno sizeguard reports attached to {REPOSITORY} yet\n\n<details>"
        )),
        "{body}"
    );
    assert!(!body.contains("```mermaid"), "{body}");
    assert!(mermaid_blocks(&render(&body)).is_empty());

    // A note says why instead, in the same place.
    let mut noted = history.clone();
    noted.note = Some("the registry lists no referrers for ghcr.io/acme/demo".into());
    let (path, _) = report_with(dir.path(), &noted);
    let body = comment_body(dir.path(), &path);
    assert!(
        body.contains("#### Trend\n\nthe registry lists no referrers for ghcr.io/acme/demo\n"),
        "{body}"
    );
}

#[test]
fn hostile_tags_are_neutralized_and_the_chart_still_draws() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = HistoryView::new("ghcr.io/acme/demo\"]\n%%{init: {}}%%", None);
    history.points = releases(dir.path());
    let hostile = [
        "v1\"]\n%%{init: {\"theme\":\"dark\"}}%%",
        "`<img src=x onerror=alert(1)>`",
        "@admin #1 </code></pre><script>x</script>",
        "v1\"]",
    ];
    for (p, tag) in history.points.iter_mut().zip(hostile) {
        p.tag = Some(tag.to_string());
    }
    let (path, _) = report_with(dir.path(), &history);
    let body = comment_body(dir.path(), &path);
    let html = render(&body);
    // What GitHub scans for mentions and HTML: neither code spans nor
    // code blocks (the chart's source is one).
    let mut prose = html.clone();
    while let (Some(i), Some(j)) = (prose.find("<pre"), prose.find("</pre>")) {
        prose.replace_range(i..j + "</pre>".len(), "");
    }
    let prose = outside_code(&prose);
    for bad in ["<img", "<script", "@admin"] {
        assert!(!prose.contains(bad), "{bad} outside code: {prose}");
    }
    let blocks = mermaid_blocks(&html);
    assert_eq!(blocks.len(), 1, "{html}");
    let code = &blocks[0];
    assert_eq!(code.lines().count(), 6, "{code}");
    for bad in ["%%", "{", "`", "<", "#", ";"] {
        assert!(!code.contains(bad), "{bad} in {code}");
    }
    let axis = code.lines().find(|l| l.contains("x-axis")).unwrap();
    assert_eq!(axis.matches('"').count(), 10, "{axis}");
    let dom = draw(code, "trend-hostile");
    let (bars, line) = bars_and_line(&dom);
    assert_eq!(bars.len(), 5, "{dom}");
    assert_eq!(line, Some(5), "{dom}");
    let svg = between(&dom, "<svg", "</svg>").unwrap();
    assert!(!svg.contains("<img") && !svg.contains("<script"), "{svg}");
}

#[test]
fn a_history_out_of_bounds_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = HistoryView::new(REPOSITORY, None);
    let point = releases(dir.path()).remove(0);
    history.points = vec![point.clone(); 101];
    let (path, _) = report_with(dir.path(), &history);
    let (out, api) = comment(dir.path(), &path);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("101 history points"), "{}", out.stderr);
    assert!(api.requests().is_empty());

    let mut bad = point;
    bad.digest = "sha256:abc\"]\n%%".into();
    history.points = vec![bad];
    let (path, _) = report_with(dir.path(), &history);
    let (out, api) = comment(dir.path(), &path);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not a digest"), "{}", out.stderr);
    assert!(api.requests().is_empty());

    history.points = vec![];
    history.note = Some("n".repeat(5000));
    let (path, _) = report_with(dir.path(), &history);
    let (out, _) = comment(dir.path(), &path);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("history note is longer"),
        "{}",
        out.stderr
    );
}
