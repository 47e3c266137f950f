//! `sizeguard serve` end to end: a real `docker-registry` notifying a
//! running service, images pushed with skopeo, verdicts read back over
//! HTTP; crash and restart; the receivers' refusals; a burst of events.

#![cfg(feature = "server")]

use crate::support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::layout::{Comp, ImageDesc, LayerSpec, LayoutBuilder};
use support::registry::{Registry, RegistryOpts};
use support::run::Run;
use support::serve::{SECRET, Service};

const VERDICT_WAIT: Duration = Duration::from_secs(90);

/// A registry whose notifications go to a service that will listen on `addr`.
fn notifying_registry(addr: &str) -> Registry {
    Registry::start_with(RegistryOpts {
        notifications: Some(format!("http://{addr}/v1/events/distribution")),
        notification_headers: vec![("Authorization".into(), format!("Bearer {SECRET}"))],
        ..Default::default()
    })
}

/// `v1`: a 2 MB layer; `v2`: the same and a 6 MB one (incompressible).
fn build_pair(dir: &Path) -> (ImageDesc, ImageDesc) {
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
    let v1 = b.add_tagged_image(std::slice::from_ref(&base), "v1");
    let v2 = b.add_tagged_image(&[base, big], "v2");
    (v1, v2)
}

/// The figures every layer must carry, as `measure --format json` has them.
fn layer_figures(image: &Value) -> Vec<BTreeMap<&'static str, Value>> {
    image["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            [
                "digest",
                "compressed_bytes",
                "tar_bytes",
                "content_bytes",
                "disk_bytes",
                "inodes",
            ]
            .into_iter()
            .map(|k| (k, l[k].clone()))
            .collect()
        })
        .collect()
}

#[test]
fn pushed_images_are_judged_with_the_figures_measure_gives() {
    let addr = Service::pick_addr();
    let reg = notifying_registry(&addr);
    let mut svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            &reg.addr,
            "--baseline-tag",
            "v1",
            "--max-growth",
            "50%",
            "--workers",
            "2",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let (v1, v2) = build_pair(&layout);

    reg.push_layout(&layout, "v1", "team/app:v1");
    let first = svc.wait_verdict(&v1.digest, VERDICT_WAIT);
    reg.push_layout(&layout, "v2", "team/app:v2");
    let second = svc.wait_verdict(&v2.digest, VERDICT_WAIT);

    assert_eq!(first["verdict"], "pass", "{first:#}");
    assert_eq!(first["repository"], "team/app");
    assert_eq!(first["tag"], "v1");
    assert_eq!(first["digest"], v1.digest.as_str());
    assert_eq!(first["event"]["sender"], "distribution");
    // v1 is the baseline tag itself: nothing to compare with.
    assert_eq!(first["report"]["baseline"], Value::Null);

    // v2 grew by 6 MB over v1's 2 MB: past --max-growth 50%.
    assert_eq!(second["verdict"], "fail", "{second:#}");
    assert_eq!(second["tag"], "v2");
    let baseline = format!("{}/team/app:v1", reg.addr);
    assert_eq!(second["report"]["baseline"], baseline.as_str());
    assert_eq!(second["report"]["verdict"], "fail");

    for (verdict, image) in [(&first, &v1), (&second, &v2)] {
        let reference = format!("{}/team/app@{}", reg.addr, image.digest);
        let measured = Run::new(["measure", "--format", "json", &reference])
            .run()
            .assert_ok()
            .json();
        let judged = &verdict["report"]["platforms"][0]["candidate"];
        assert_eq!(judged["digest"], image.digest.as_str());
        assert_eq!(
            layer_figures(judged),
            layer_figures(&measured["images"][0]),
            "the service's figures differ from `measure`'s"
        );
        assert_eq!(judged["totals"], measured["images"][0]["totals"]);
    }

    let listed = svc.get("/v1/verdicts?repository=team/app&limit=10").json();
    let digests: Vec<&str> = listed["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [v2.digest.as_str(), v1.digest.as_str()]);
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert_eq!(svc.get(&format!("/v1/verdicts/{unknown}")).status, 404);

    assert_eq!(
        svc.metric("sizeguard_verdicts_total{verdict=\"pass\"}"),
        1.0
    );
    assert_eq!(
        svc.metric("sizeguard_verdicts_total{verdict=\"fail\"}"),
        1.0
    );
    assert_eq!(
        svc.metric("sizeguard_measurement_duration_seconds_count"),
        2.0
    );
    // The registry also reported blob pushes and the service's own pulls.
    let metrics = svc.get("/metrics").body;
    assert!(
        metrics.contains("sizeguard_events_ignored_total{"),
        "{metrics}"
    );

    // Pushing the same digest again (another tag) measures nothing new.
    reg.push_layout(&layout, "v1", "team/app:also-v1");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        svc.metric("sizeguard_verdicts_total{verdict=\"pass\"}"),
        1.0
    );

    let status = svc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", svc.log());
}

/// `n` distinct images, each with a 4 MB incompressible layer of its own.
fn build_many(dir: &Path, n: usize) -> Vec<ImageDesc> {
    let mut b = LayoutBuilder::new(dir);
    (0..n)
        .map(|i| {
            let layer = b.add_layer(
                &LayerSpec::new()
                    .dir("data")
                    .file(&format!("data/part-{i}.bin"), 4_000_000),
                Comp::Gzip,
            );
            b.add_tagged_image(&[layer], &format!("t{i}"))
        })
        .collect()
}

#[test]
fn a_service_killed_with_work_queued_judges_every_push_once_after_restart() {
    let n = 8;
    let addr = Service::pick_addr();
    let reg = notifying_registry(&addr);
    let args = ["--allow-registry", &reg.addr, "--workers", "1"];
    let mut svc = Service::start(&addr, &args);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let images = build_many(&layout, n);
    for i in 0..n {
        reg.push_layout(&layout, &format!("t{i}"), &format!("crash/app:t{i}"));
    }
    // Every push acknowledged, then killed while work is left.
    let deadline = Instant::now() + Duration::from_secs(60);
    while svc.metric("sizeguard_events_queued_total{sender=\"distribution\"}") < n as f64 {
        assert!(
            Instant::now() < deadline,
            "pushes not queued:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = svc.metric("sizeguard_queue_depth");
    svc.kill();
    assert!(
        left > 0.0,
        "everything was judged before the kill: nothing tested"
    );

    svc.restart();
    for image in &images {
        let v = svc.wait_verdict(&image.digest, VERDICT_WAIT);
        assert_eq!(v["verdict"], "pass", "{v:#}");
    }
    let listed = svc
        .get("/v1/verdicts?repository=crash/app&limit=100")
        .json();
    let mut counts = BTreeMap::new();
    for v in listed["verdicts"].as_array().unwrap() {
        *counts
            .entry(v["digest"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), n, "{counts:?}");
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
}

/// A Distribution envelope with one manifest push naming `host`.
fn envelope(id: &str, host: &str, repository: &str, digest: &str) -> Vec<u8> {
    json!({"events": [{
        "id": id,
        "timestamp": "2024-05-01T10:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 400,
            "digest": digest,
            "length": 400,
            "repository": repository,
            "url": format!("http://{host}/v2/{repository}/manifests/{digest}"),
            "tag": "v1"
        },
        "request": {"id": "r1", "addr": "127.0.0.1:40000", "host": host, "method": "PUT", "useragent": "skopeo"},
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "i"}
    }]})
    .to_string()
    .into_bytes()
}

fn fake_digest(i: usize) -> String {
    format!("sha256:{:064x}", i + 1)
}

#[test]
fn receivers_refuse_what_they_must_and_stay_healthy() {
    // A listener standing for a registry the configuration does not name:
    // it counts every connection made to it.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_addr = trap.local_addr().unwrap().to_string();
    trap.set_nonblocking(true).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let watcher = std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            if trap.accept().is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });

    let addr = Service::pick_addr();
    // The allowed registry is never reached in this test.
    let svc = Service::start(
        &addr,
        &["--allow-registry", "127.0.0.1:9", "--log-format", "json"],
    );
    let body = envelope("e1", "127.0.0.1:9", "team/app", &fake_digest(1));

    let wrong = svc.request(
        "POST",
        "/v1/events/distribution",
        &[("Authorization", "Bearer not-the-secret")],
        &body,
    );
    assert_eq!(wrong.status, 401);
    let none = svc.request("POST", "/v1/events/distribution", &[], &body);
    assert_eq!(none.status, 401);
    let harbor = svc.request(
        "POST",
        "/v1/events/harbor",
        &[("Authorization", "wrong")],
        b"{}",
    );
    assert_eq!(harbor.status, 401);
    let bad_hmac = svc.request(
        "POST",
        "/v1/events/github",
        &[
            ("X-Hub-Signature-256", &format!("sha256:{}", "0".repeat(64))),
            ("X-GitHub-Event", "package"),
            ("X-GitHub-Delivery", "d1"),
        ],
        b"{\"action\":\"published\"}",
    );
    assert_eq!(bad_hmac.status, 401);

    // An authenticated event naming an unlisted host, or the same address
    // spelled as a name the configuration does not list: acknowledged (a
    // refused delivery would be re-sent forever) and dropped.
    let port = trap_addr.rsplit_once(':').unwrap().1;
    for host in [trap_addr.clone(), format!("localhost:{port}")] {
        let dropped = svc.post_event(
            "distribution",
            &envelope("e2", &host, "team/app", &fake_digest(2)),
        );
        assert_eq!(dropped.status, 200, "{host}: {}", dropped.body);
        assert_eq!(dropped.json()["queued"], 0, "{host}: {}", dropped.body);
    }

    let too_big = vec![b' '; 2 << 20];
    assert_eq!(svc.post_event("distribution", &too_big).status, 413);
    assert_eq!(
        svc.post_event("distribution", b"{\"events\": [").status,
        400
    );
    assert_eq!(svc.post_event("distribution", b"\xff\xfe").status, 400);

    assert_eq!(svc.get("/healthz").status, 200);
    assert_eq!(svc.get("/readyz").status, 200);
    // The one good delivery is accepted, and accepted once.
    assert_eq!(svc.post_event("distribution", &body).status, 202);
    let again = svc.post_event("distribution", &body);
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["duplicates"], 1);

    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(
        connections.load(Ordering::Relaxed),
        0,
        "the unlisted host was contacted"
    );
    assert_eq!(
        svc.metric("sizeguard_events_ignored_total{sender=\"distribution\",reason=\"registry_not_allowed\"}"),
        2.0
    );
    assert_eq!(
        svc.metric(
            "sizeguard_events_rejected_total{sender=\"distribution\",reason=\"unauthorized\"}"
        ),
        2.0
    );
    let verdicts = svc.get("/v1/verdicts?repository=team/app").json();
    assert_eq!(verdicts["verdicts"], json!([]));

    // Every log line is a JSON object; the refusals name the host.
    let log = svc.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["registry"] == trap_addr.as_str()
            && l["message"]
                .as_str()
                .unwrap_or("")
                .contains("does not list")),
        "{log}"
    );
}

/// An allow-list entry that a reference would not read back as its host
/// (`registry` in `registry/team/app` is a Docker Hub path) is refused
/// before anything listens: its events would be measured from Docker Hub,
/// with that entry's credentials.
#[test]
fn an_allowed_registry_that_reads_back_as_another_host_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let data = dir.path().join("data");
    for (host, said) in [
        ("registry", "read as registry \"docker.io\""),
        ("team", "read as registry \"docker.io\""),
        ("registry.example.com/path", "read as registry"),
    ] {
        let out = Run::new(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--secret-file")
            .arg(&secret)
            .args(["--allow-registry", host])
            .run();
        assert_eq!(out.code, 2, "{host}: {}", out.stderr);
        let line = out.error();
        assert!(line.contains(said), "{host}: {line}");
    }
    // With a port it is a host, and the service starts.
    let mut service = Service::start(
        &Service::pick_addr(),
        &["--allow-registry", "registry:5000"],
    );
    assert!(service.terminate(Duration::from_secs(10)).success());
}

/// `v1` pushed through a name of the registry the configuration does not
/// list (`localhost:PORT` for an allowed `127.0.0.1:PORT`: Distribution
/// takes an event's host from the pushing client's Host header), `v2`
/// through the listed one. The off-list event is acknowledged and dropped:
/// a refusal would have Distribution re-send it forever, ahead of `v2`'s.
#[test]
fn an_event_naming_an_unlisted_registry_does_not_hold_back_the_next() {
    let addr = Service::pick_addr();
    let reg = notifying_registry(&addr);
    let svc = Service::start(&addr, &["--allow-registry", &reg.addr]);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let (v1, v2) = build_pair(&layout);

    let port = reg.addr.rsplit_once(':').unwrap().1;
    let src = support::registry::SkopeoSource::new(&layout, "v1");
    let mut args: Vec<String> = vec!["copy".into(), "--all".into(), "--preserve-digests".into()];
    args.extend(reg.skopeo_dest_args());
    args.push(src.reference.clone());
    args.push(format!("docker://localhost:{port}/team/app:v1"));
    support::registry::run_skopeo(&args, Some(&reg));
    reg.push_layout(&layout, "v2", "team/app:v2");

    let second = svc.wait_verdict(&v2.digest, VERDICT_WAIT);
    assert_eq!(second["registry"], reg.addr.as_str(), "{second:#}");
    assert_eq!(second["tag"], "v2");
    let ignored =
        "sizeguard_events_ignored_total{sender=\"distribution\",reason=\"registry_not_allowed\"}";
    assert!(svc.metric(ignored) >= 1.0, "{}", svc.get("/metrics").body);
    assert_eq!(
        svc.metric("sizeguard_events_rejected_total{sender=\"distribution\",reason=\"registry_not_allowed\"}"),
        0.0
    );
    assert_eq!(svc.get(&format!("/v1/verdicts/{}", v1.digest)).status, 404);
    assert!(
        svc.log().contains(&format!("localhost:{port}")),
        "the dropped event's host is not in the log:\n{}",
        svc.log()
    );
}

/// A registry stand-in that answers every request with the same small
/// manifest, whatever digest was asked for: every image it serves is
/// corrupt (its bytes do not match its digest). Stops when the flag is set.
fn corrupt_registry() -> (String, Arc<std::sync::atomic::AtomicBool>) {
    support::proxy::serve(|mut conn| {
        use std::io::Write;
        if support::proxy::Head::read(&mut conn).is_none() {
            return;
        }
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    })
}

/// A registry stand-in that reads each request and never answers.
fn silent_registry() -> (String, Arc<std::sync::atomic::AtomicBool>) {
    support::proxy::serve(|mut conn| {
        let _ = support::proxy::Head::read(&mut conn);
        std::thread::sleep(Duration::from_secs(20));
    })
}

#[test]
fn the_read_api_needs_the_read_token_and_pages_with_a_cursor() {
    let (registry, stop) = corrupt_registry();
    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            &registry,
            "--insecure-registry",
            &registry,
        ],
    );
    const N: usize = 5;
    for i in 0..N {
        let body = envelope(
            &format!("page-{i}"),
            &registry,
            "paged/app",
            &fake_digest(100 + i),
        );
        assert_eq!(svc.post_event("distribution", &body).status, 202);
    }
    for i in 0..N {
        let v = svc.wait_verdict(&fake_digest(100 + i), VERDICT_WAIT);
        // A corrupt image is recorded at once, never tried again.
        assert_eq!(v["verdict"], "error", "{v:#}");
        assert_eq!(v["attempts"], 1, "{v:#}");
    }
    assert_eq!(svc.metric("sizeguard_job_retries_total"), 0.0);

    // Without the token, or with the delivery secret: 401 and a challenge.
    let list = "/v1/verdicts?repository=paged/app";
    let one = format!("/v1/verdicts/{}", fake_digest(100));
    for path in [list, one.as_str(), "/metrics"] {
        let a = svc.get_anonymous(path);
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        assert_eq!(
            a.header("www-authenticate"),
            Some("Bearer realm=\"sizeguard\"")
        );
        assert!(!a.body.contains("paged/app"), "{}", a.body);
        let secret = format!("Bearer {SECRET}");
        let a = svc.request("GET", path, &[("Authorization", secret.as_str())], b"");
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    // The probes stay open, and say nothing more than ok.
    assert_eq!(svc.get_anonymous("/healthz").status, 200);
    let ready = svc.get_anonymous("/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // Pages of two, each verdict once, newest first, then no cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..N {
        let path = match &cursor {
            None => format!("{list}&limit=2"),
            Some(c) => format!("{list}&limit=2&cursor={c}"),
        };
        let page = svc.get(&path).json();
        let verdicts = page["verdicts"].as_array().unwrap();
        assert!(verdicts.len() <= 2, "{page:#}");
        seen.extend(
            verdicts
                .iter()
                .map(|v| v["digest"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..N).map(|i| fake_digest(100 + i)).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{seen:?}");
    // A page asks for at most 100; a cursor must be one handed out.
    let all = svc.get(&format!("{list}&limit=100000")).json();
    assert_eq!(all["verdicts"].as_array().unwrap().len(), N);
    assert_eq!(all["next_cursor"], Value::Null);
    for bad in ["x", "0000000000000000000000000000000g", "../../etc"] {
        let a = svc.get(&format!("{list}&cursor={bad}"));
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn without_a_read_token_the_read_api_is_served_on_the_admin_listener_only_or_not_at_all() {
    let addr = Service::pick_addr();
    let off = Service::start_without_read_token(&addr, &["--allow-registry", "127.0.0.1:9"]);
    for path in ["/v1/verdicts?repository=a/b", "/metrics"] {
        let a = off.get(path);
        assert_eq!(a.status, 404, "{path}: {}", a.body);
    }
    assert_eq!(off.get("/healthz").status, 200);
    assert!(off.log().contains("--api-token-file"), "{}", off.log());
    drop(off);

    // An admin listener: the read API there (token or not, as configured),
    // and neither receivers there nor the read API on the main listener.
    let admin = Service::pick_addr();
    for with_token in [false, true] {
        let addr = Service::pick_addr();
        let args = [
            "--allow-registry",
            "127.0.0.1:9",
            "--admin-listen",
            admin.as_str(),
        ];
        let svc = if with_token {
            Service::start(&addr, &args)
        } else {
            Service::start_without_read_token(&addr, &args)
        };
        assert_eq!(svc.get("/metrics").status, 404);
        assert_eq!(svc.get("/v1/verdicts?repository=a/b").status, 404);
        let token = format!("Bearer {}", support::serve::API_TOKEN);
        let get = |headers: &[(&str, &str)]| {
            support::serve::request(&admin, "GET", "/metrics", headers, b"").unwrap()
        };
        assert_eq!(get(&[("Authorization", token.as_str())]).status, 200);
        assert_eq!(get(&[]).status, if with_token { 401 } else { 200 });
        let listed = support::serve::request(
            &admin,
            "GET",
            "/v1/verdicts?repository=a/b",
            &[("Authorization", token.as_str())],
            b"",
        )
        .unwrap();
        assert_eq!(listed.status, 200, "{}", listed.body);
        let auth = format!("Bearer {SECRET}");
        let body = envelope("adm", "127.0.0.1:9", "a/b", &fake_digest(7));
        let receiver = support::serve::request(
            &admin,
            "POST",
            "/v1/events/distribution",
            &[("Authorization", auth.as_str())],
            &body,
        )
        .unwrap();
        assert_eq!(receiver.status, 404, "{}", receiver.body);
    }
}

#[test]
fn a_read_token_equal_to_the_delivery_secret_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let data = tmp.path().join("data");
    let out = Run::new([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--secret-file",
        secret.to_str().unwrap(),
        "--api-token-file",
        secret.to_str().unwrap(),
        "--allow-registry",
        "127.0.0.1:9",
    ])
    .secret(SECRET)
    .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.error().contains("must not be the delivery secret"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_judgement_that_runs_out_of_time_is_tried_once_more_then_recorded() {
    let (registry, stop) = silent_registry();
    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            &registry,
            "--insecure-registry",
            &registry,
            "--job-timeout",
            "1",
        ],
    );
    let digest = fake_digest(200);
    let body = envelope("slow", &registry, "slow/app", &digest);
    assert_eq!(svc.post_event("distribution", &body).status, 202);
    // Two attempts of a second with a back-off of 5 s between them; five
    // would take more than a minute.
    let v = svc.wait_verdict(&digest, Duration::from_secs(30));
    assert_eq!(v["verdict"], "error", "{v:#}");
    assert_eq!(v["attempts"], 2, "{v:#}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("ran out of the job timeout"),
        "{v:#}"
    );
    assert_eq!(svc.metric("sizeguard_job_retries_total"), 1.0);
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn verdicts_and_delivery_records_older_than_the_keep_time_are_deleted() {
    let (registry, stop) = corrupt_registry();
    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            &registry,
            "--insecure-registry",
            &registry,
            "--keep-verdicts",
            "2s",
        ],
    );
    let digest = fake_digest(300);
    let body = envelope("kept", &registry, "kept/app", &digest);
    assert_eq!(svc.post_event("distribution", &body).status, 202);
    svc.wait_verdict(&digest, VERDICT_WAIT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while svc.get(&format!("/v1/verdicts/{digest}")).status != 404 {
        assert!(Instant::now() < deadline, "never pruned:\n{}", svc.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(svc.metric("sizeguard_pruned_total{what=\"verdicts\"}") >= 1.0);
    assert!(svc.metric("sizeguard_pruned_total{what=\"events\"}") >= 1.0);
    // The delivery's record went too: the same delivery is new work again.
    let again = svc.post_event("distribution", &body);
    assert_eq!(again.json()["queued"], 1, "{}", again.body);
    stop.store(true, Ordering::Relaxed);
}

/// A registry whose blob is gone when the download resumes: the first
/// answer breaks after 100 000 bytes and the `Range` request that resumes
/// it gets 404. That is not worth another try, from the command line
/// (exit 3, one resume asked for) or from the queue (recorded as an error
/// at the first attempt, never retried): the registry's answer keeps its
/// kind through the layer's byte stream.
#[test]
fn a_blob_gone_when_its_download_resumes_is_not_found_and_never_retried() {
    use support::proxy::{Fault, FaultProxy, Rule};
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mut b = LayoutBuilder::new(&layout);
    let big = b.add_layer(
        &LayerSpec::new().dir("opt").file("opt/model.bin", 1_000_000),
        Comp::Gzip,
    );
    let img = b.add_image(std::slice::from_ref(&big), "linux", "amd64", None, false);
    b.tag_image(&img, "v1");
    let reg = Registry::start();
    reg.push_layout(&layout, "v1", "gone/app:v1");
    let gone = || {
        FaultProxy::start(
            &reg.addr,
            vec![
                Rule::new(&big.blob_digest, 1, Fault::Cut { after: 100_000 }),
                Rule::new(
                    &big.blob_digest,
                    100,
                    Fault::Answer {
                        status: 404,
                        headers: Vec::new(),
                    },
                ),
            ],
        )
    };
    let resumes = |proxy: &FaultProxy| {
        proxy
            .seen()
            .iter()
            .filter(|s| s.header("range").is_some())
            .count()
    };

    let proxy = gone();
    let out = Run::new(["measure", "-q", "--format", "json"])
        .arg(format!("{}/gone/app:v1", proxy.addr))
        .args(["--insecure-registry", &proxy.addr])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.error().contains("404"), "{}", out.stderr);
    assert_eq!(resumes(&proxy), 1, "{:?}", proxy.seen());

    let proxy = gone();
    let svc = Service::start(
        &Service::pick_addr(),
        &[
            "--allow-registry",
            &proxy.addr,
            "--insecure-registry",
            &proxy.addr,
        ],
    );
    let body = envelope("gone", &proxy.addr, "gone/app", &img.digest);
    assert_eq!(svc.post_event("distribution", &body).status, 202);
    let v = svc.wait_verdict(&img.digest, VERDICT_WAIT);
    assert_eq!(v["verdict"], "error", "{v:#}");
    assert_eq!(v["attempts"], 1, "{v:#}");
    assert!(v["error"].as_str().unwrap().contains("404"), "{v:#}");
    assert_eq!(svc.metric("sizeguard_job_retries_total"), 0.0);
    assert_eq!(resumes(&proxy), 1, "{:?}", proxy.seen());
}
