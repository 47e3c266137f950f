//! Verdicts out of `sizeguard serve`, end to end: a real `docker-registry`
//! notifying the service, images pushed with skopeo whose labels name the
//! commit they were built from, the GitHub API stand-in receiving commit
//! statuses, and a local chat-webhook receiver receiving notifications.
//! Every request either of them gets is checked; an image whose source
//! label names another host gets no request anywhere.

#![cfg(feature = "server")]

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::github_standin::{GithubStandin, Limit};
use support::layout::{Comp, ImageDesc, LayerSpec, LayoutBuilder, Platform};
use support::registry::{Registry, RegistryOpts};
use support::serve::{SECRET, Service};

const TOKEN: &str = "ghs_serveStatusT0ken";
const HOOK_PATH: &str = "/hooks/T0/B0/SECRETPATH";
const SHA_PASS: &str = "1111111111111111111111111111111111111111";
const SHA_FAIL: &str = "2222222222222222222222222222222222222222";
const SHA_ELSEWHERE: &str = "3333333333333333333333333333333333333333";

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

/// A chat webhook standing in: records every request, answers 200.
struct HookReceiver {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HookReceiver {
    fn start() -> HookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if let Some(s) = read_request(&mut conn) {
                    record.lock().unwrap().push(s);
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        HookReceiver { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Seen> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// A listener standing for a host no request may go to: counts connections.
struct Trap {
    addr: String,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Trap {
    fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopping) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if listener.accept().is_ok() {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Trap {
            addr,
            connections,
            stop,
        }
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An image of `layers` whose config labels name `source` at `revision`.
fn labelled(
    b: &mut LayoutBuilder,
    layers: &[support::layout::BuiltLayer],
    source: &str,
    revision: &str,
    tag: &str,
) -> ImageDesc {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {
            "org.opencontainers.image.source": source,
            "org.opencontainers.image.revision": revision,
        }},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let image = b.add_image_with_config(
        layers,
        &config,
        Platform::new("linux", "amd64", None),
        false,
    );
    b.tag_image(&image, tag);
    image
}

/// Waits until `metric` reaches `value` (at most a minute).
fn wait_metric(svc: &Service, metric: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while svc.metric(metric) < value {
        assert!(
            Instant::now() < deadline,
            "{metric} did not reach {value}:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn verdicts_reach_the_commit_and_the_chat_webhook_and_foreign_sources_reach_nothing() {
    let github = GithubStandin::start(TOKEN);
    let hook = HookReceiver::start();
    let trap = Trap::start();

    let addr = Service::pick_addr();
    let reg = Registry::start_with(RegistryOpts {
        notifications: Some(format!("http://{addr}/v1/events/distribution")),
        notification_headers: vec![("Authorization".into(), format!("Bearer {SECRET}"))],
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("github-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let notify_url = format!("http://{}{HOOK_PATH}", hook.addr);
    let public_url = format!("http://{addr}");
    let api_url = github.url();
    // Statuses go to the GitHub repositories the configuration ties to an
    // image repository: team/* to octo-org/shop only.
    let config = tmp.path().join("sizeguard.toml");
    std::fs::write(
        &config,
        "[serve]\n[[serve.repositories]]\nmatch = \"team/*\"\ngithub = [\"Octo-Org/shop\"]\n",
    )
    .unwrap();
    let svc = Service::start(
        &addr,
        &[
            "--config",
            config.to_str().unwrap(),
            "--allow-registry",
            &reg.addr,
            "--baseline-tag",
            "v1",
            "--max-growth",
            "50%",
            "--github-token-file",
            token_file.to_str().unwrap(),
            "--github-api-url",
            &api_url,
            "--notify-url",
            &notify_url,
            "--public-url",
            &public_url,
            "--log-format",
            "json",
        ],
    );

    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&layout);
    let base = b.add_layer(
        &LayerSpec::new()
            .dir("usr/bin")
            .file("usr/bin/app", 2_000_000),
        Comp::Gzip,
    );
    let big = b.add_layer(
        &LayerSpec::new().dir("opt").file("opt/model.bin", 6_000_000),
        Comp::Gzip,
    );
    let shop = "https://github.com/octo-org/shop";
    let v1 = labelled(&mut b, std::slice::from_ref(&base), shop, SHA_PASS, "v1");
    let v2 = labelled(&mut b, &[base.clone(), big], shop, SHA_FAIL, "v2");
    let elsewhere = format!("https://{}/octo-org/shop", trap.addr);
    let v3 = labelled(
        &mut b,
        std::slice::from_ref(&base),
        &elsewhere,
        SHA_ELSEWHERE,
        "v3",
    );

    // A repository on the GitHub host the token may well write to, but
    // that nothing ties to team/app.
    let v4 = labelled(
        &mut b,
        std::slice::from_ref(&base),
        "https://github.com/octo-org/payments",
        SHA_ELSEWHERE,
        "v4",
    );

    reg.push_layout(&layout, "v1", "team/app:v1");
    let wait = Duration::from_secs(90);
    assert_eq!(svc.wait_verdict(&v1.digest, wait)["verdict"], "pass");
    reg.push_layout(&layout, "v2", "team/app:v2");
    reg.push_layout(&layout, "v3", "team/app:v3");
    reg.push_layout(&layout, "v4", "team/app:v4");
    assert_eq!(svc.wait_verdict(&v2.digest, wait)["verdict"], "fail");
    assert_eq!(svc.wait_verdict(&v3.digest, wait)["verdict"], "pass");
    assert_eq!(svc.wait_verdict(&v4.digest, wait)["verdict"], "pass");

    let ok = "sizeguard_publish_total{target=\"github_status\",result=\"ok\"}";
    let refused = "sizeguard_publish_total{target=\"github_status\",result=\"refused\"}";
    let not_allowed = "sizeguard_publish_total{target=\"github_status\",result=\"not_allowed\"}";
    let notified = "sizeguard_publish_total{target=\"notify\",result=\"ok\"}";
    wait_metric(&svc, ok, 2.0);
    wait_metric(&svc, refused, 1.0);
    wait_metric(&svc, not_allowed, 1.0);
    wait_metric(&svc, notified, 1.0);
    // Anything late would show up now.
    std::thread::sleep(Duration::from_secs(2));

    // GitHub: exactly the two statuses, each as GitHub documents it.
    let requests = github.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let mut by_sha = std::collections::BTreeMap::new();
    for r in &requests {
        assert_eq!(r.method, "POST");
        let sha = r
            .path
            .strip_prefix("/repos/octo-org/shop/statuses/")
            .unwrap_or_else(|| panic!("{}", r.path));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        by_sha.insert(sha.to_string(), r.json());
    }
    for (sha, image, state, word) in [
        (SHA_PASS, &v1, "success", "pass: "),
        (SHA_FAIL, &v2, "failure", "fail: "),
    ] {
        let body = &by_sha[sha];
        assert_eq!(body["state"], state, "{body:#}");
        assert_eq!(body["context"], "sizeguard/team/app", "{body:#}");
        let description = body["description"].as_str().unwrap();
        assert!(description.starts_with(word), "{description}");
        assert!(description.chars().count() <= 140, "{description}");
        assert_eq!(
            body["target_url"],
            format!("{public_url}/v1/verdicts/{}", image.digest).as_str()
        );
        let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["context", "description", "state", "target_url"]);
    }
    assert!(
        by_sha[SHA_FAIL]["description"]
            .as_str()
            .unwrap()
            .contains("growth limit"),
        "{:#}",
        by_sha[SHA_FAIL]
    );

    // The chat webhook: one message, for the failure only.
    let hooks = hook.seen();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    let h = &hooks[0];
    assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", HOOK_PATH));
    assert!(
        h.headers
            .iter()
            .all(|(k, v)| k != "authorization" && !v.contains(TOKEN)),
        "{h:#?}"
    );
    assert_eq!(h.body["verdict"], "fail");
    assert_eq!(h.body["registry"], reg.addr.as_str());
    assert_eq!(h.body["repository"], "team/app");
    assert_eq!(h.body["tag"], "v2");
    assert_eq!(h.body["digest"], v2.digest.as_str());
    assert_eq!(
        h.body["verdict_url"],
        format!("{public_url}/v1/verdicts/{}", v2.digest).as_str()
    );
    assert!(
        h.body["text"]
            .as_str()
            .unwrap()
            .starts_with("sizeguard: fail for "),
        "{:#}",
        h.body
    );

    // The foreign source: no connection, one log line naming why.
    assert_eq!(trap.connections.load(Ordering::Relaxed), 0);
    let log = svc.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let refusals: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no commit status"))
        })
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    assert!(refusals.iter().all(|r| r["level"] == "WARN"), "{log}");
    assert!(
        refusals
            .iter()
            .any(|r| r["error"].as_str().unwrap_or("").contains(&trap.addr)),
        "{log}"
    );
    // The untied repository: named in one warning, and not one request.
    let untied: Vec<&&Value> = refusals
        .iter()
        .filter(|r| r["github_repository"] == "octo-org/payments")
        .collect();
    assert_eq!(untied.len(), 1, "{log}");
    assert!(
        requests.iter().all(|r| !r.path.contains("payments")),
        "{requests:#?}"
    );
    // No secret in the log, and no workflow command either.
    for secret in [TOKEN, "SECRETPATH", SECRET] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(!log.lines().any(|l| l.starts_with("::")), "{log}");
    assert_eq!(
        svc.metric("sizeguard_publish_total{target=\"github_status\",result=\"error\"}"),
        0.0
    );
}

/// A GitHub API that refuses (a revoked token) and a webhook that is down
/// cost a log line and a metric each; the verdict stands, and the image is
/// judged once.
#[test]
fn publishing_failures_are_counted_and_never_judge_again() {
    let github = GithubStandin::start("ghs_someOtherToken");
    // Down: a port no other test of this process is handed.
    let down_addr = format!("127.0.0.1:{}", support::registry::free_port());

    let addr = Service::pick_addr();
    let reg = Registry::start_with(RegistryOpts {
        notifications: Some(format!("http://{addr}/v1/events/distribution")),
        notification_headers: vec![("Authorization".into(), format!("Bearer {SECRET}"))],
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("github-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let notify_url = format!("http://{down_addr}{HOOK_PATH}");
    let api_url = github.url();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            &reg.addr,
            "--max-pull-size",
            "1MiB",
            "--github-token-file",
            token_file.to_str().unwrap(),
            "--github-api-url",
            &api_url,
            "--github-owner",
            "octo-org",
            "--notify-url",
            &notify_url,
        ],
    );
    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&layout);
    let layer = b.add_layer(
        &LayerSpec::new().dir("opt").file("opt/blob.bin", 3_000_000),
        Comp::Gzip,
    );
    let image = labelled(
        &mut b,
        &[layer],
        "https://github.com/octo-org/shop",
        SHA_FAIL,
        "v1",
    );
    reg.push_layout(&layout, "v1", "team/app:v1");
    let v = svc.wait_verdict(&image.digest, Duration::from_secs(90));
    assert_eq!(v["verdict"], "fail", "{v:#}");

    wait_metric(
        &svc,
        "sizeguard_publish_total{target=\"github_status\",result=\"error\"}",
        1.0,
    );
    wait_metric(
        &svc,
        "sizeguard_publish_total{target=\"notify\",result=\"error\"}",
        1.0,
    );
    // A 401 is not retried: one request.
    assert_eq!(github.requests().len(), 1, "{:#?}", github.requests());
    assert_eq!(
        svc.metric("sizeguard_measurement_duration_seconds_count"),
        1.0
    );
    assert_eq!(svc.metric("sizeguard_job_retries_total"), 0.0);
    let again = svc.wait_verdict(&image.digest, Duration::from_secs(1));
    assert_eq!(again["attempts"], 1);
    assert_eq!(again["verdict"], "fail");
    let log = svc.log();
    assert!(log.contains("commit status not set"), "{log}");
    assert!(log.contains("notification not sent"), "{log}");
    assert!(!log.contains("SECRETPATH") && !log.contains(TOKEN), "{log}");
}

/// Run where a GitHub Actions runner reads its output (`GITHUB_ACTIONS=true`)
/// and rate-limited once, the service still prints no workflow command:
/// the wait is a log line, and the status is posted after it.
#[test]
fn a_rate_limited_status_is_logged_not_announced_as_a_workflow_command() {
    let github = GithubStandin::start(TOKEN);
    github.state().limits.push(Limit::Secondary { secs: 1 });
    let addr = Service::pick_addr();
    let reg = Registry::start_with(RegistryOpts {
        notifications: Some(format!("http://{addr}/v1/events/distribution")),
        notification_headers: vec![("Authorization".into(), format!("Bearer {SECRET}"))],
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("github-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let api_url = github.url();
    let svc = Service::start_with_env(
        &addr,
        &[
            "--allow-registry",
            &reg.addr,
            "--github-token-file",
            token_file.to_str().unwrap(),
            "--github-api-url",
            &api_url,
            "--github-owner",
            "octo-org",
        ],
        &[("GITHUB_ACTIONS", "true")],
    );
    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&layout);
    let layer = b.add_layer(&LayerSpec::new().file("app/bin", 100_000), Comp::Gzip);
    let image = labelled(
        &mut b,
        &[layer],
        "https://github.com/octo-org/shop",
        SHA_PASS,
        "v1",
    );
    reg.push_layout(&layout, "v1", "team/app:v1");
    assert_eq!(
        svc.wait_verdict(&image.digest, Duration::from_secs(90))["verdict"],
        "pass"
    );
    wait_metric(
        &svc,
        "sizeguard_publish_total{target=\"github_status\",result=\"ok\"}",
        1.0,
    );
    assert_eq!(github.requests().len(), 2, "one limited, one posted");
    assert_eq!(github.state().statuses.len(), 1);
    let log = svc.log();
    assert!(log.contains("rate limit"), "{log}");
    assert!(!log.contains("::notice"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("::")), "{log}");
}
