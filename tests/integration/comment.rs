//! The sticky pull-request comment against a local stand-in for the GitHub
//! REST API: create, edit in place, modes, a fork's read-only token,
//! pagination, rate limits, GitHub Enterprise's API prefix, and
//! `check --comment`.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};
use support::fixture::demo;
use support::github_markdown::{outside_code, render};
use support::github_standin::{GithubStandin, Limit, Request};
use support::run::{Out, Run};

const TOKEN: &str = "ghs_s3cr3tT0kenForTests";
const REPO: &str = "octo-org/shop";
const MARKER: &str = "<!-- sizeguard:demo -->";

/// A real `check --format json` report of the demo fixtures; `fail` adds a
/// growth limit the candidate exceeds.
fn report(dir: &Path, fail: bool) -> PathBuf {
    let path = dir.join(if fail { "fail.json" } else { "pass.json" });
    let mut run = sizeguard(&["check", "--no-config", "--format", "json", "-o"])
        .arg(&path)
        .args(["--candidate", &demo("v2"), "--baseline", &demo("v1")]);
    // The passing report has a growth limit it stays within, which also
    // keeps the default growth warning out of it.
    if fail {
        run = run.args(["--max-growth", "10%"]);
    } else {
        run = run.args(["--warn-growth", "1000%"]);
    }
    let out = run.run();
    assert_eq!(out.code, if fail { 1 } else { 0 }, "{}", out.stderr);
    path
}

/// A posted body as the report part (marker and Markdown, ending in a line
/// break) and the footer line under it.
fn split_footer(body: &str) -> (&str, &str) {
    let at = body.rfind("\n\n<sub>").expect("a footer under the report");
    let footer = &body[at + 2..];
    assert!(footer.ends_with("</sub>\n"), "{footer:?}");
    (&body[..at + 1], footer.trim_end())
}

fn event(dir: &Path, value: Value) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = dir.join(format!("event-{n}.json"));
    std::fs::write(&p, value.to_string()).unwrap();
    p
}

fn pr_event(dir: &Path, n: u64) -> PathBuf {
    event(
        dir,
        json!({"action": "synchronize", "number": n, "pull_request": {"number": n}}),
    )
}

/// `sizeguard ARGS`, the layer cache off in the spelling clap's bool
/// parser takes.
fn sizeguard(args: &[&str]) -> Run {
    Run::new(args).env("SIZEGUARD_NO_CACHE", "true")
}

/// `sizeguard ARGS` with the GitHub environment pointed at the stand-in;
/// the token is never printed.
fn github(api: &GithubStandin, event: &Path, args: &[&str]) -> Run {
    sizeguard(args)
        .env("GITHUB_API_URL", api.url())
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", REPO)
        .env("GITHUB_EVENT_PATH", event)
        .env("SIZEGUARD_GITHUB_MAX_WAIT", "5")
        .env("SIZEGUARD_TEST_BACKOFF_MS", "20")
        .secret(TOKEN)
}

fn comment(api: &GithubStandin, event: &Path, report: &Path, extra: &[&str]) -> Out {
    github(
        api,
        event,
        &["comment", "--report", report.to_str().unwrap()],
    )
    .args(extra)
    .run()
}

/// GraphQL is read with POST: sizeguard's one query asks who the token is
/// and which comments are minimized.
fn is_graphql(r: &Request) -> bool {
    r.path.ends_with("/graphql")
}

/// Requests that change something: creating or editing a comment.
fn writes(reqs: &[Request]) -> Vec<&Request> {
    reqs.iter()
        .filter(|r| r.method != "GET" && !is_graphql(r))
        .collect()
}

/// The calls about comments themselves, without the identity lookups
/// (`GET /user`, GraphQL) made once a marked comment is found.
fn comment_calls(reqs: &[Request]) -> Vec<&Request> {
    reqs.iter()
        .filter(|r| r.path != "/user" && !is_graphql(r))
        .collect()
}

/// What GitHub requires of every request.
fn assert_github_headers(r: &Request) {
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "{r:?}"
    );
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert!(
        r.header("user-agent").is_some_and(|v| !v.is_empty()),
        "GitHub rejects requests without a User-Agent: {r:?}"
    );
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    if r.method != "GET" && !is_graphql(r) {
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        let text = body["body"].as_str().expect("a JSON {\"body\": ...}");
        assert!(text.starts_with(&format!("{MARKER}\n")), "{text}");
        assert_eq!(body.as_object().unwrap().len(), 1, "only the body is sent");
    }
}

#[test]
fn first_run_creates_the_comment_and_the_second_edits_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let other = api.seed(42, "reviewer", "Looks good, but check the size");
    let ev = pr_event(dir.path(), 42);
    let pass = report(dir.path(), false);

    let out = comment(&api, &ev, &pass, &[]);
    out.assert_ok();
    assert!(
        out.stderr.contains("comment created on #42"),
        "{}",
        out.stderr
    );
    let reqs = api.requests();
    for r in &reqs {
        assert_github_headers(r);
    }
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/repos/octo-org/shop/issues/42/comments");
    assert!(reqs[0].query.contains("per_page=100"), "{}", reqs[0].query);
    let w = writes(&reqs);
    assert_eq!(w.len(), 1, "{reqs:#?}");
    assert_eq!(w[0].method, "POST");
    assert_eq!(w[0].path, "/repos/octo-org/shop/issues/42/comments");
    let comments = api.comments(42);
    assert_eq!(comments.len(), 2);
    let ours = &comments[1];
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&pass).unwrap()).unwrap();
    // The marker, the report's Markdown, then the one-line footer.
    let (report_part, footer) = split_footer(&ours.body);
    assert_eq!(
        report_part,
        format!(
            "{MARKER}\n{}\n",
            json["markdown"].as_str().unwrap().trim_end()
        )
    );
    assert!(footer.contains("· updated "), "{footer}");
    let first_line = ours.body.lines().nth(1).unwrap();
    assert!(first_line.starts_with("✅ **demo** grew +"), "{first_line}");
    assert!(ours.body.contains("<details>"));

    // The next push: the same comment is edited, no new one appears.
    api.clear_requests();
    let fail = report(dir.path(), true);
    let out = comment(&api, &ev, &fail, &[]);
    out.assert_ok(); // the comment command does not judge: the check did
    assert!(
        out.stderr.contains("comment updated on #42"),
        "{}",
        out.stderr
    );
    let reqs = api.requests();
    for r in &reqs {
        assert_github_headers(r);
    }
    let w = writes(&reqs);
    assert_eq!(w.len(), 1, "{reqs:#?}");
    assert!(w[0].method == "PATCH" || w[0].method == "POST");
    assert_eq!(
        w[0].path,
        format!("/repos/octo-org/shop/issues/comments/{}", ours.id)
    );
    let comments = api.comments(42);
    assert_eq!(comments.len(), 2, "no second sizeguard comment");
    assert_eq!(comments[0].id, other);
    assert_eq!(comments[0].body, "Looks good, but check the size");
    assert_eq!(comments[1].id, ours.id);
    assert!(
        comments[1]
            .body
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("❌ **demo**")
    );
}

#[test]
fn on_change_leaves_an_unchanged_comment_alone() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let ev = pr_event(dir.path(), 5);
    let pass = report(dir.path(), false);
    comment(&api, &ev, &pass, &["--mode", "on-change"]).assert_ok();
    assert_eq!(writes(&api.requests()).len(), 1);

    api.clear_requests();
    let out = comment(&api, &ev, &pass, &["--mode", "on-change"]);
    out.assert_ok();
    assert!(out.stderr.contains("unchanged"), "{}", out.stderr);
    assert!(writes(&api.requests()).is_empty(), "{:#?}", api.requests());

    // A changed report is written.
    api.clear_requests();
    let fail = report(dir.path(), true);
    comment(&api, &ev, &fail, &["--mode", "on-change"]).assert_ok();
    assert_eq!(writes(&api.requests()).len(), 1);
    assert_eq!(api.comments(5).len(), 1);

    // `always` edits even an identical report (one call, still one comment).
    api.clear_requests();
    comment(&api, &ev, &fail, &[]).assert_ok();
    assert_eq!(writes(&api.requests()).len(), 1);
    assert_eq!(api.comments(5).len(), 1);
}

#[test]
fn on_failure_comments_only_on_failure_but_keeps_an_old_comment_current() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let ev = pr_event(dir.path(), 9);
    let pass = report(dir.path(), false);
    let fail = report(dir.path(), true);

    let out = comment(&api, &ev, &pass, &["--mode", "on-failure"]);
    out.assert_ok();
    assert!(out.stderr.contains("no comment"), "{}", out.stderr);
    assert!(api.comments(9).is_empty());

    comment(&api, &ev, &fail, &["--mode", "on-failure"]).assert_ok();
    assert_eq!(api.comments(9).len(), 1);
    assert!(api.comments(9)[0].body.contains("❌"));

    // Fixed: the failing comment must not stay stale.
    comment(&api, &ev, &pass, &["--mode", "on-failure"]).assert_ok();
    let c = api.comments(9);
    assert_eq!(c.len(), 1);
    assert!(c[0].body.contains("✅"), "{}", c[0].body);

    api.clear_requests();
    comment(&api, &ev, &fail, &["--mode", "never"]).assert_ok();
    assert!(api.requests().is_empty());
}

#[test]
fn a_read_only_fork_token_degrades_to_one_notice() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    api.state().read_only = true;
    let ev = pr_event(dir.path(), 77);
    let fail = report(dir.path(), true);

    let out = github(&api, &ev, &["comment", "--report", fail.to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .run();
    out.assert_ok();
    let err = &out.stderr;
    let notices: Vec<&str> = err.lines().filter(|l| l.starts_with("::notice")).collect();
    assert_eq!(notices.len(), 1, "{err}");
    assert!(notices[0].contains("403"), "{err}");
    assert!(notices[0].contains("fork"), "{err}");
    assert!(!err.contains("error"), "{err}");
    assert!(api.comments(77).is_empty());
    // One create attempt, no retry storm.
    assert_eq!(writes(&api.requests()).len(), 1);

    // `check --comment` keeps the verdict's exit code (1) and still wrote its report.
    let json = dir.path().join("r.json");
    let out = github(
        &api,
        &ev,
        &[
            "check",
            "--no-config",
            "--candidate",
            &demo("v2"),
            "--baseline",
            &demo("v1"),
            "--max-growth",
            "10%",
            "--format",
            "json",
            "-o",
            json.to_str().unwrap(),
            "--comment",
        ],
    )
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_OUTPUT", dir.path().join("out"))
    .env("GITHUB_STEP_SUMMARY", dir.path().join("summary"))
    .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(json.exists());
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("::notice"))
            .count(),
        1
    );
}

#[test]
fn the_marker_is_found_on_the_second_page() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    for i in 0..130 {
        api.seed(3, "someone", &format!("comment {i}"));
    }
    let old = api.seed(3, "github-actions[bot]", &format!("{MARKER}\nold report"));
    api.seed(3, "someone", &format!("> {MARKER}\n> quoted, not ours"));
    let ev = pr_event(dir.path(), 3);
    let pass = report(dir.path(), false);

    comment(&api, &ev, &pass, &[]).assert_ok();
    let reqs = api.requests();
    let gets: Vec<&Request> = comment_calls(&reqs)
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(gets[1].query.contains("page=2"), "{}", gets[1].query);
    let w = writes(&reqs);
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].path,
        format!("/repos/octo-org/shop/issues/comments/{old}")
    );
    assert_eq!(api.comments(3).len(), 132, "edited, not added");

    // Smaller pages (GitHub may cap per_page): three pages, same result.
    api.state().page_size = Some(50);
    api.clear_requests();
    comment(&api, &ev, &pass, &[]).assert_ok();
    let reqs = api.requests();
    assert_eq!(
        comment_calls(&reqs)
            .iter()
            .filter(|r| r.method == "GET")
            .count(),
        3
    );
    assert_eq!(
        writes(&reqs)[0].path,
        format!("/repos/octo-org/shop/issues/comments/{old}")
    );
}

#[test]
fn rate_limits_are_waited_out_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let ev = pr_event(dir.path(), 11);
    let pass = report(dir.path(), false);

    // Primary: 403 + x-ratelimit-remaining: 0 on the list; secondary: 429 +
    // retry-after on the create.
    api.state().limits = vec![Limit::Primary { secs: 1 }];
    let t = Instant::now();
    let out = comment(&api, &ev, &pass, &[]);
    out.assert_ok();
    assert!(t.elapsed().as_secs_f64() >= 1.0, "{:?}", t.elapsed());
    assert_eq!(api.comments(11).len(), 1, "{}", out.stderr);
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}"); // limited GET, GET, POST
    assert_eq!(reqs[0].path, reqs[1].path);

    api.clear_requests();
    {
        let mut s = api.state();
        s.limits = vec![Limit::Secondary { secs: 1 }, Limit::Secondary { secs: 1 }];
    }
    let t = Instant::now();
    comment(&api, &ev, &pass, &[]).assert_ok();
    assert!(t.elapsed().as_secs_f64() >= 2.0, "{:?}", t.elapsed());
    assert_eq!(api.comments(11).len(), 1);
    assert_eq!(comment_calls(&api.requests()).len(), 4); // 429, 429, GET, PATCH

    // Bounded: a limit that does not lift is an error (exit 3), not a hang;
    // each wait before it was announced on a notice line of its own.
    api.state().limits = vec![Limit::Secondary { secs: 1 }; 10];
    let out = github(&api, &ev, &["comment", "--report", pass.to_str().unwrap()])
        .failure_may_also_print("sizeguard: notice: GitHub API rate limit (429): waiting ")
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("rate limited"), "{}", out.stderr);
    // A reset further away than we wait fails at once.
    api.state().limits = vec![Limit::Primary { secs: 3600 }];
    let t = Instant::now();
    let out = comment(&api, &ev, &pass, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn github_enterprise_api_prefix_and_check_comment_with_pr_flag() {
    let api = GithubStandin::start_with_prefix(TOKEN, "/api/v3");
    api.seed(1, "someone", "first");
    // No event file: outside Actions, `--pr` says where.
    let out = sizeguard(&[
        "check",
        "--no-config",
        "--candidate",
        &demo("v2"),
        "--baseline",
        &demo("v1"),
        "--warn-growth",
        "1000%",
        "--comment",
        "--pr",
        "1",
    ])
    .env("GITHUB_API_URL", api.url())
    .env("GITHUB_TOKEN", TOKEN)
    .env("GITHUB_REPOSITORY", REPO)
    .secret(TOKEN)
    .run();
    out.assert_ok();
    // The table still goes to stdout.
    assert!(out.stdout.contains("demo"));
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .all(|r| r.path.starts_with("/api/v3/repos/octo-org/shop/"))
    );
    for r in &reqs {
        assert_github_headers(r);
    }
    let c = api.comments(1);
    assert_eq!(c.len(), 2);
    assert!(c[1].body.starts_with(MARKER));
    assert!(c[1].body.contains("✅ **demo**"));
}

#[test]
fn workflow_run_posts_on_the_pull_request_of_the_event_even_from_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let pass = report(dir.path(), false);

    let listed = event(
        dir.path(),
        json!({"workflow_run": {"event": "pull_request", "head_branch": "feat", "head_sha": "aaa",
            "head_repository": {"owner": {"login": "octo-org"}},
            "pull_requests": [{"number": 21}]}}),
    );
    comment(&api, &listed, &pass, &[]).assert_ok();
    assert_eq!(api.comments(21).len(), 1);

    // A fork: GitHub lists no pull request; it is found by head owner:branch and sha.
    api.state().pulls = vec![
        (30, "forker:other".into(), "bbb".into()),
        (31, "forker:feat".into(), "ccc".into()),
    ];
    let fork = event(
        dir.path(),
        json!({"workflow_run": {"event": "pull_request", "head_branch": "feat", "head_sha": "ccc",
            "head_repository": {"owner": {"login": "forker"}},
            "pull_requests": []}}),
    );
    api.clear_requests();
    let out = comment(&api, &fork, &pass, &[]);
    out.assert_ok();
    let reqs = api.requests();
    assert_eq!(reqs[0].path, "/repos/octo-org/shop/pulls");
    assert!(
        reqs[0].query.contains("head=forker%3Afeat"),
        "{}",
        reqs[0].query
    );
    assert_eq!(api.comments(31).len(), 1, "{}", out.stderr);
}

#[test]
fn missing_settings_are_usage_errors_and_bad_tokens_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let pass = report(dir.path(), false);
    let ev = pr_event(dir.path(), 2);

    let out = github(&api, &ev, &["comment", "--report", pass.to_str().unwrap()])
        .env_remove("GITHUB_TOKEN")
        .run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("GITHUB_TOKEN"), "{}", out.stderr);

    let push = event(dir.path(), json!({"ref": "refs/heads/main"}));
    let out = comment(&api, &push, &pass, &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--pr"), "{}", out.stderr);

    let out = github(&api, &ev, &["comment", "--report", pass.to_str().unwrap()])
        .env("GITHUB_TOKEN", "ghs_wrongWrongWrong")
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(!out.stderr.contains("ghs_wrongWrongWrong"));

    // The token can come on standard input instead.
    let out = github(
        &api,
        &ev,
        &[
            "comment",
            "--report",
            pass.to_str().unwrap(),
            "--github-token-stdin",
        ],
    )
    .env_remove("GITHUB_TOKEN")
    .stdin(format!("{TOKEN}\n"))
    .run();
    out.assert_ok();
    assert_eq!(api.comments(2).len(), 1);

    // Not a check report.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"schema_version\": 1, \"images\": []}").unwrap();
    let out = comment(&api, &ev, &junk, &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("kind"), "{}", out.stderr);
}

/// The comment sizeguard would write for `report`, as `comment` posts it.
fn posted_body(api: &GithubStandin, issue: u64) -> String {
    let c = api.comments(issue);
    let ours: Vec<_> = c.iter().filter(|c| c.user != "mallory").collect();
    assert_eq!(ours.len(), 1, "{c:#?}");
    ours[0].body.clone()
}

#[test]
fn a_marker_planted_by_someone_else_is_never_edited_nor_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let ev = pr_event(dir.path(), 6);
    let pass = report(dir.path(), false);

    // What sizeguard would post, planted first by another account: with
    // `on-change`, a marker it trusted would leave the real report unposted.
    comment(&api, &ev, &pass, &[]).assert_ok();
    let real = posted_body(&api, 6);
    let api = GithubStandin::start(TOKEN);
    let planted = api.seed(6, "mallory", &real);
    let fake = api.seed(6, "mallory", &format!("{MARKER}\n✅ **demo** all clear"));

    let out = comment(&api, &ev, &pass, &["--mode", "on-change"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("comment created on #6"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "ignored 2 comment(s) carrying sizeguard's marker not written by github-actions[bot]"
        ),
        "{}",
        out.stderr
    );
    let c = api.comments(6);
    assert_eq!(c.len(), 3);
    assert_eq!((c[0].id, c[0].body.as_str()), (planted, real.as_str()));
    assert_eq!(c[1].id, fake);
    assert!(
        c[1].body.ends_with("all clear"),
        "the planted comment is untouched"
    );
    assert_eq!(c[2].user, "github-actions[bot]");
    // Who the token is was asked: GET /user (403 for an installation
    // token), then GraphQL's viewer.
    let reqs = api.requests();
    let user = reqs.iter().find(|r| r.path == "/user").expect("GET /user");
    assert_eq!(user.method, "GET");
    // Only a bot's comment could be an installation token's: nothing to
    // ask GraphQL about mallory's.
    assert!(!reqs.iter().any(is_graphql), "{reqs:#?}");
    for r in &reqs {
        assert_github_headers(r);
    }

    // The next run edits its own comment, still never mallory's.
    let out = comment(&api, &ev, &report(dir.path(), true), &[]);
    out.assert_ok();
    let reqs = api.requests();
    let w = writes(&reqs);
    assert_eq!(
        w.last().unwrap().path,
        format!("/repos/octo-org/shop/issues/comments/{}", c[2].id)
    );
    let after = api.comments(6);
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].body, real);
    assert!(after[1].body.ends_with("all clear"));
    assert!(after[2].body.contains("❌ **demo**"), "{}", after[2].body);
    // GraphQL was asked about the bot's comment only, with the viewer.
    let gql: Vec<&Request> = reqs.iter().filter(|r| is_graphql(r)).collect();
    assert_eq!(gql.len(), 1, "{reqs:#?}");
    assert_eq!(
        (gql[0].method.as_str(), gql[0].path.as_str()),
        ("POST", "/graphql")
    );
    let q = gql[0].json();
    assert!(q["query"].as_str().unwrap().contains("isMinimized"), "{q}");
    assert!(q["query"].as_str().unwrap().contains("viewer"), "{q}");
    assert_eq!(
        q["variables"]["ids"],
        json!([format!("IC_kwDO{}", c[2].id)])
    );
}

#[test]
fn a_user_token_is_known_by_get_user_and_edits_only_its_own_comment() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    api.state().token_user = Some("octo-dev".into());
    let ev = pr_event(dir.path(), 12);
    let pass = report(dir.path(), false);
    // A workflow's comment with the marker: not this token's.
    let bot = api.seed(12, "github-actions[bot]", &format!("{MARKER}\nold"));

    comment(&api, &ev, &pass, &[]).assert_ok();
    let c = api.comments(12);
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(
        (c[0].id, c[0].body.as_str()),
        (bot, &*format!("{MARKER}\nold"))
    );
    assert_eq!(c[1].user, "octo-dev");
    // A user's token is named by GET /user; GraphQL only asks about its own.
    let gql: Vec<Request> = api.requests().into_iter().filter(is_graphql).collect();
    assert!(gql.is_empty(), "{gql:#?}");

    api.clear_requests();
    comment(&api, &ev, &report(dir.path(), true), &[]).assert_ok();
    let c = api.comments(12);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].body, format!("{MARKER}\nold"));
    assert!(c[1].body.contains("❌"));
    let gql: Vec<Request> = api.requests().into_iter().filter(is_graphql).collect();
    assert_eq!(gql.len(), 1);
    assert_eq!(
        gql[0].json()["variables"]["ids"],
        json!([format!("IC_kwDO{}", c[1].id)])
    );
}

#[test]
fn a_minimized_comment_is_left_alone_and_graphql_is_found_on_enterprise() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start_with_prefix(TOKEN, "/api/v3");
    let pass = report(dir.path(), false);
    let run = |extra: &[&str]| {
        sizeguard(&["comment", "--report", pass.to_str().unwrap(), "--pr", "15"])
            .args(extra)
            .env("GITHUB_API_URL", api.url())
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", REPO)
            .secret(TOKEN)
            .run()
    };
    run(&[]).assert_ok();
    let first = api.comments(15)[0].id;
    api.minimize(first);
    api.clear_requests();

    run(&[]).assert_ok();
    let c = api.comments(15);
    assert_eq!(
        c.len(),
        2,
        "a new comment instead of the hidden one: {c:#?}"
    );
    let reqs = api.requests();
    assert!(reqs.iter().any(|r| r.path == "/api/v3/user"), "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|r| r.method == "POST" && r.path == "/api/graphql"),
        "{reqs:#?}"
    );
    // The visible one is edited from now on.
    run(&[]).assert_ok();
    assert_eq!(api.comments(15).len(), 2);

    // No GraphQL answer for an app's token: said in a notice; which bot
    // the token writes as is unknown, so no marked comment is its own and
    // a new one is written; the planted one is never edited.
    api.state().graphql_down = true;
    let planted = api.seed(15, "mallory", &format!("{MARKER}\nfake"));
    let out = run(&[]);
    out.assert_ok();
    assert!(
        out.stderr.contains("GraphQL did not answer"),
        "{}",
        out.stderr
    );
    let c = api.comments(15);
    assert_eq!(c.len(), 4, "{c:#?}");
    assert_eq!(
        c.iter().find(|c| c.id == planted).unwrap().body,
        format!("{MARKER}\nfake")
    );
}

#[test]
fn an_app_token_whose_graphql_fails_takes_no_marked_comment_as_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let pass = report(dir.path(), false);
    let ev = pr_event(dir.path(), 21);
    for (how, down, errors) in [("502", true, false), ("errors", false, true)] {
        let api = GithubStandin::start(TOKEN);
        // Another workflow of the repository (or another app signing as
        // the Actions bot) left a comment carrying the marker.
        let other = api.seed(
            21,
            "github-actions[bot]",
            &format!("{MARKER}\n✅ **demo** all clear (planted)"),
        );
        {
            let mut s = api.state();
            s.graphql_down = down;
            s.graphql_errors = errors;
        }
        let out = comment(&api, &ev, &pass, &[]);
        out.assert_ok();
        assert!(
            out.stderr
                .contains("GitHub GraphQL did not say which app this token writes as"),
            "{how}: {}",
            out.stderr
        );
        let reqs = api.requests();
        assert!(reqs.iter().any(is_graphql), "{how}: {reqs:#?}");
        // A new comment was posted; the marked one was never edited.
        let w = writes(&reqs);
        assert_eq!(w.len(), 1, "{how}: {w:#?}");
        assert_eq!(
            (w[0].method.as_str(), w[0].path.as_str()),
            ("POST", "/repos/octo-org/shop/issues/21/comments"),
            "{how}"
        );
        let c = api.comments(21);
        assert_eq!(c.len(), 2, "{how}: {c:#?}");
        assert_eq!(c[0].id, other);
        assert!(c[0].body.ends_with("(planted)"), "{how}");
    }
}

/// A real report with `edit` applied to its JSON, written next to it.
fn tampered(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(report(dir, false)).unwrap()).unwrap();
    edit(&mut v);
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p
}

const HOSTILE: &str = "a|b`c <img src=x> @user\n## ✅ all clear";

#[test]
fn the_report_markdown_is_never_posted_and_its_texts_render_inert() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let ev = pr_event(dir.path(), 16);
    let evil = tampered(dir.path(), "evil.json", |v| {
        v["markdown"] = json!("## ✅ all clear\n\n@maintainer <img src=x onerror=alert(1)>");
        v["candidate"] = json!(format!("oci:fixtures/{HOSTILE}:v2"));
        let files = &mut v["platforms"][0]["candidate"]["final"]["largest_files"];
        files[0]["path"] = json!(HOSTILE);
        v["platforms"][0]["platform"] = json!("linux/amd64\n## all clear");
    });
    comment(&api, &ev, &evil, &[]).assert_ok();
    let body = &api.comments(16)[0].body;
    // Nothing of the report's own Markdown.
    assert!(
        !body.contains("@maintainer") && !body.contains("onerror"),
        "{body}"
    );
    assert!(!body.lines().any(|l| l.starts_with("## ")), "{body}");
    // Its texts, escaped: the name in the headline is text (entities, no
    // mention), the rest code spans that no backtick or newline ends.
    let headline = body.lines().nth(1).unwrap();
    assert!(
        headline.starts_with("✅ **a\\|b\\`c &lt;img src=x&gt; ** grew"),
        "{headline}"
    );
    let headings: Vec<&str> = body.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        headings,
        ["#### linux/amd64\\\\n\\#\\# all clear"],
        "{body}"
    );
    assert!(
        body.contains("Candidate ``oci:fixtures/a|b`c <img src=x> @user\\n## ✅ all clear:v2``"),
        "{body}"
    );
    assert!(
        body.contains(
            "Largest files in the image: ``/a|b`c <img src=x> @user\\n## ✅ all clear`` 146 KiB"
        ),
        "{body}"
    );
}

/// A change to a report's JSON.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[test]
fn reports_that_are_not_check_reports_are_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let ev = pr_event(dir.path(), 17);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "verdict",
            Box::new(|v| v["verdict"] = json!("pass\nnode-bytes=0")),
            "unknown variant `pass\\nnode-bytes=0`",
        ),
        (
            "lie",
            Box::new(|v| v["verdict"] = json!("fail")),
            "its verdict fail is not what its findings say",
        ),
        (
            "string",
            Box::new(|v| v["platforms"][0]["candidate_cost"]["pull_bytes"] = json!("1")),
            "invalid type",
        ),
        (
            "negative",
            Box::new(|v| v["platforms"][0]["candidate_cost"]["pull_bytes"] = json!(-1)),
            "invalid value",
        ),
        (
            "version",
            Box::new(|v| v["schema_version"] = json!(2)),
            "schema_version is 2",
        ),
        (
            "long",
            Box::new(|v| v["candidate"] = json!("x".repeat(9000))),
            "longer than 8192",
        ),
        (
            "rule",
            Box::new(|v| {
                v["findings"] = json!([{"rule": "all_clear", "level": "warn",
            "platform": "", "figure": "", "value": 0, "limit": 0, "limit_text": "", "message": ""}])
            }),
            "unknown rule id",
        ),
        (
            "huge",
            Box::new(|v| {
                v["verdict"] = json!("warn");
                v["findings"] = json!([{"rule": "growth", "level": "warn", "platform": "", "figure": "",
                "value": i128::MAX.to_string().parse::<serde_json::Number>().ok(), "limit": 0,
                "limit_text": "", "message": ""}]);
            }),
            "expected i128",
        ),
    ];
    for (name, edit, needle) in cases {
        let p = tampered(dir.path(), &format!("{name}.json"), edit);
        let out = comment(&api, &ev, &p, &[]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        let e = out.error();
        assert!(e.contains(&format!("{name}.json")), "{name}: {e}");
        assert!(e.contains("not a sizeguard check report"), "{name}: {e}");
        assert!(e.contains(needle), "{name}: {e}");
    }
    // Too large to be a report: refused by size, not parsed.
    let big = dir.path().join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((32 << 20) + 1).unwrap();
    let out = comment(&api, &ev, &big, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.error().contains("larger than the 32 MiB"),
        "{}",
        out.stderr
    );
    assert!(api.requests().is_empty(), "{:#?}", api.requests());
    assert!(api.comments(17).is_empty());
}

/// A baseline of one layer and a candidate that adds a second, built by a
/// hostile Dockerfile step; an `ENV` step (no layer) sits between the two
/// in the candidate's history.
fn hostile_history_layout(dir: &Path, step: &str) -> String {
    use support::layout::{Comp, LayerSpec, LayoutBuilder, Platform};
    let root = dir.join("layout");
    let mut b = LayoutBuilder::new(&root);
    let base = b.add_layer(&LayerSpec::new().file("bin/app", 40_000), Comp::Gzip);
    let added = b.add_layer(&LayerSpec::new().file("app/big.bin", 90_000), Comp::Gzip);
    let v1 = b.add_image(std::slice::from_ref(&base), "linux", "amd64", None, false);
    b.tag_image(&v1, "v1");
    let config = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [base.diff_id, added.diff_id]},
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD file:0123 in / "},
            {"created_by": "/bin/sh -c #(nop)  ENV SECRET_STEP=not-a-layer", "empty_layer": true},
            {"created_by": step},
        ],
    });
    let v2 = b.add_image_with_config(
        &[base, added],
        &config,
        Platform::new("linux", "amd64", None),
        false,
    );
    b.tag_image(&v2, "v2");
    root.display().to_string()
}

#[test]
fn the_comment_names_the_judged_commit_and_the_build_step_of_each_changed_layer() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    let step = "RUN echo `x`\n\n| @octocat <img src=x> [l](http://e.test) </code></td><td>\
                a long tail that goes well past sixty characters";
    let layout = hostile_history_layout(dir.path(), step);
    let json_path = dir.path().join("r.json");
    let out = sizeguard(&["check", "--no-config", "--format", "json", "-o"])
        .arg(&json_path)
        .args(["--candidate", &format!("oci:{layout}:v2")])
        .args(["--baseline", &format!("oci:{layout}:v1")])
        .run();
    out.assert_ok();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let layers = report
        .pointer("/platforms/0/candidate/layers")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("candidate layers in {report:#}"));
    assert_eq!(
        layers[0]["created_by"],
        json!("/bin/sh -c #(nop) ADD file:0123 in / ")
    );
    assert_eq!(
        layers[1]["created_by"],
        json!(step),
        "empty_layer steps skipped"
    );

    // A pull_request run: GITHUB_SHA is the merge commit; the head is judged.
    let head = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    let ev = event(
        dir.path(),
        json!({"number": 8, "pull_request": {"number": 8, "head": {"sha": head}}}),
    );
    let out = github(
        &api,
        &ev,
        &["comment", "--report", json_path.to_str().unwrap()],
    )
    .env("GITHUB_SHA", "ffffffffffffffffffffffffffffffffffffffff")
    .env("GITHUB_SERVER_URL", "https://github.example")
    .env(
        "SIZEGUARD_DOCS_URL",
        "https://github.example/octo/sizeguard/blob/v1/README.md#reading-the-comment",
    )
    .run();
    out.assert_ok();
    let body = &api.comments(8)[0].body;
    let (_, footer) = split_footer(body);
    let expected_start = format!(
        "<sub>judged [`a1b2c3d`](https://github.example/octo-org/shop/commit/{head}) · sizeguard {} · updated ",
        env!("CARGO_PKG_VERSION")
    );
    assert!(footer.starts_with(&expected_start), "{footer}");
    let time = &footer[expected_start.len()..];
    let stamp: String = time.chars().take(20).collect();
    assert_eq!(stamp.len(), 20, "{footer}");
    assert!(
        stamp.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 | 16 => b == b' ',
            13 => b == b':',
            17..=19 => b"UTC".contains(&b),
            _ => b.is_ascii_digit(),
        }),
        "{stamp:?} is not YYYY-MM-DD HH:MM UTC"
    );
    assert!(
        footer.ends_with(
            " · [how to read this report](https://github.example/octo/sizeguard/blob/v1/README.md#reading-the-comment)</sub>"
        ),
        "{footer}"
    );
    assert!(
        !body.contains("ffffffffff"),
        "the merge commit is not named"
    );

    // The added layer's row names its step, shortened and inert; the shared
    // layer's row does not.
    let html = render(body);
    let row = html
        .split("<tr>")
        .find(|r| r.contains("<strong>added</strong>"))
        .unwrap_or_else(|| panic!("an added row in {html}"));
    assert!(
        row.contains(
            "<code>RUN echo `x` | @octocat &lt;img src=x&gt; [l](http://e.test) &lt;/co…</code>"
        ),
        "{row}"
    );
    assert!(row.contains('…'), "shortened: {row}");
    assert!(!row.contains("long tail"), "{row}");
    assert!(
        !html.contains("SECRET_STEP"),
        "an empty_layer step is no layer's"
    );
    let shared = html
        .split("<tr>")
        .find(|r| r.contains("<td>shared</td>"))
        .unwrap_or_else(|| panic!("a shared row in {html}"));
    assert!(!shared.contains("ADD file"), "{shared}");
    let outside = outside_code(&html);
    assert!(!outside.contains("<img"), "{outside}");
    assert!(!outside.contains("@octocat"), "{outside}");
    assert!(!outside.contains("e.test"), "{outside}");
    // Every row of the layer table still has its 8 cells.
    let table = html
        .split("<table>")
        .find(|t| t.contains("created by"))
        .unwrap_or_else(|| panic!("the layer table in {html}"));
    let table = &table[..table.find("</table>").unwrap()];
    for row in table.split("<tr>").skip(2) {
        assert_eq!(row.matches("<td").count(), 8, "{row}");
    }
}

/// A pull_request event with the head and base repositories named.
fn pr_event_from(dir: &Path, n: u64, head_repo: &str) -> PathBuf {
    event(
        dir,
        json!({"number": n, "pull_request": {"number": n,
            "head": {"sha": "0123456789abcdef0123456789abcdef01234567",
                     "repo": {"full_name": head_repo}},
            "base": {"repo": {"full_name": REPO}}}}),
    )
}

#[test]
fn a_403_on_a_branch_of_the_repository_names_the_missing_permission() {
    let dir = tempfile::tempdir().unwrap();
    let api = GithubStandin::start(TOKEN);
    api.state().read_only = true;
    let pass = report(dir.path(), false);

    // Same repository: the workflow lacks `pull-requests: write`.
    let ev = pr_event_from(dir.path(), 12, REPO);
    let out = github(&api, &ev, &["comment", "--report", pass.to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    let err = out.error();
    assert!(
        err.contains("add `permissions: pull-requests: write`"),
        "{err}"
    );
    assert!(!out.stderr.contains("::notice"), "{}", out.stderr);

    // `check --comment` on a passing check: the lost comment fails it.
    let json = dir.path().join("r.json");
    let out = github(
        &api,
        &ev,
        &[
            "check",
            "--no-config",
            "--candidate",
            &demo("v2"),
            "--baseline",
            &demo("v1"),
            "--format",
            "json",
            "-o",
            json.to_str().unwrap(),
            "--comment",
        ],
    )
    .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.error().contains("pull-requests: write"),
        "{}",
        out.stderr
    );

    // A fork's pull request: the same 403 is the read-only token, one notice.
    let fork = pr_event_from(dir.path(), 13, "forker/shop");
    let out = github(
        &api,
        &fork,
        &["comment", "--report", pass.to_str().unwrap()],
    )
    .env("GITHUB_ACTIONS", "true")
    .run();
    out.assert_ok();
    let notices: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("::notice"))
        .collect();
    assert_eq!(notices.len(), 1, "{}", out.stderr);
    assert!(notices[0].contains("fork"), "{}", out.stderr);

    // workflow_run: posted with the base repository's token; a 403 there
    // is still told as a notice.
    let run = event(
        dir.path(),
        json!({"workflow_run": {"event": "pull_request", "head_branch": "f", "head_sha": "abc1234",
            "head_repository": {"owner": {"login": "forker"}},
            "pull_requests": [{"number": 14}]}}),
    );
    let out = github(&api, &run, &["comment", "--report", pass.to_str().unwrap()])
        .env("GITHUB_ACTIONS", "true")
        .run();
    out.assert_ok();
}
