//! `sizeguard serve`'s inbound edge against strangers: clients that send
//! headers and stall, half-sent headers, more requests than the caps take;
//! TLS with a certificate replaced while running; a receiver's own secret
//! and a receiver switched off.

#![cfg(feature = "server")]

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use support::require_tool;
use support::run::Run;
use support::serve::{SECRET, Service, self_signed};

/// The defaults the service runs with (src/serve/listener.rs); every
/// stalled client must be gone well within this.
const ALL_CLOSED_WITHIN: Duration = Duration::from_secs(45);
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// An envelope with one manifest push naming `host`.
fn envelope(id: &str, host: &str) -> Vec<u8> {
    let digest = format!("sha256:{:064x}", 7);
    json!({"events": [{
        "id": id,
        "timestamp": "2024-05-01T10:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 400, "digest": digest, "length": 400,
            "repository": "team/app",
            "url": format!("http://{host}/v2/team/app/manifests/{digest}"),
            "tag": "v1"
        },
        "request": {"id": "r1", "addr": "127.0.0.1:40000", "host": host, "method": "PUT", "useragent": "skopeo"},
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "i"}
    }]})
    .to_string()
    .into_bytes()
}

/// How a stalled client behaves.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// No credentials, a 1 MiB body announced, all of it but one byte sent.
    NoSecretBigBody,
    /// A (wrong) GitHub signature, whose check needs the body: a body
    /// under the size cap announced, all but one byte sent.
    GithubUnderCap,
    /// A (wrong) GitHub signature and a 1 MiB body announced.
    GithubBigBody,
    /// The request line and half a header, then nothing.
    HalfHeaders,
}

/// Opens the connection, sends what `stall` says, then waits for the
/// server to close it; the time from connecting to the close, or `None`
/// if it was still open after `give_up`.
fn stalled_client(addr: &str, stall: Stall, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(give_up)).unwrap();
    let signature = format!("sha256={}", "0".repeat(64));
    let (path, extra, length): (&str, String, usize) = match stall {
        Stall::NoSecretBigBody => ("/v1/events/distribution", String::new(), 1 << 20),
        Stall::GithubUnderCap => (
            "/v1/events/github",
            format!("X-Hub-Signature-256: {signature}\r\nX-GitHub-Event: package\r\n"),
            200_000,
        ),
        Stall::GithubBigBody => (
            "/v1/events/github",
            format!("X-Hub-Signature-256: {signature}\r\nX-GitHub-Event: package\r\n"),
            1 << 20,
        ),
        Stall::HalfHeaders => ("/v1/events/distribution", String::new(), 0),
    };
    let head = match stall {
        Stall::HalfHeaders => format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Le"),
        _ => format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             {extra}Content-Length: {length}\r\n\r\n"
        ),
    };
    let _ = s.write_all(head.as_bytes());
    if length > 0 {
        // The server may stop reading (it answered already): a write that
        // fails or blocks ends the sending, not the test.
        let _ = s.write_all(&vec![b'{'; length - 1]);
    }
    let left = give_up.saturating_sub(start.elapsed());
    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            // Reset by the server: closed too.
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// 200 clients without credentials that each send headers and stall (short
/// of their body, or in the middle of a header) against the defaults: the
/// service's memory barely moves, every one of them is closed within
/// [`ALL_CLOSED_WITHIN`], and health checks and a real delivery keep
/// getting through meanwhile.
#[test]
fn two_hundred_stalled_strangers_cost_little_and_are_all_closed() {
    let addr = Service::pick_addr();
    let svc = Service::start(&addr, &["--allow-registry", "127.0.0.1:9"]);
    let pid = svc.pid();
    let before = rss_kib(pid);

    let kinds = [
        Stall::NoSecretBigBody,
        Stall::GithubUnderCap,
        Stall::GithubBigBody,
        Stall::HalfHeaders,
    ];
    let give_up = ALL_CLOSED_WITHIN + Duration::from_secs(5);
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let addr = addr.clone();
            let kind = kinds[i % kinds.len()];
            let handle = std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || stalled_client(&addr, kind, give_up))
                .unwrap();
            (kind, handle)
        })
        .collect();

    // While they hang on: memory, health, and a real delivery.
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let mut peak = before;
    let mut delivered = None;
    let mut health_failures = Vec::new();
    while started.elapsed() < Duration::from_secs(8) && !done.load(Ordering::Relaxed) {
        peak = peak.max(rss_kib(pid));
        let health = svc.get("/healthz");
        if health.status != 200 {
            health_failures.push(health.status);
        }
        if delivered.is_none() && started.elapsed() > Duration::from_secs(2) {
            delivered = Some(svc.post_event("distribution", &envelope("good", "127.0.0.1:9")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut closed = Vec::new();
    for (kind, handle) in clients {
        peak = peak.max(rss_kib(pid));
        closed.push((kind, handle.join().unwrap()));
    }
    done.store(true, Ordering::Relaxed);

    let growth = peak.saturating_sub(before);
    let slowest = closed.iter().filter_map(|(_, c)| *c).max();
    eprintln!(
        "RSS before {before} KiB, peak {peak} KiB (+{growth} KiB); slowest close {slowest:?}"
    );
    let open: Vec<_> = closed.iter().filter(|(_, c)| c.is_none()).collect();
    assert!(
        open.is_empty(),
        "{} of 200 stalled connections still open after {give_up:?}: {:?}",
        open.len(),
        open.iter().map(|(k, _)| k).take(5).collect::<Vec<_>>()
    );
    let slowest = slowest.expect("every connection closed");
    assert!(
        slowest <= ALL_CLOSED_WITHIN,
        "the slowest stalled connection was closed after {slowest:?}"
    );
    for (kind, c) in &closed {
        if matches!(kind, Stall::HalfHeaders) {
            let c = c.unwrap();
            assert!(
                c >= Duration::from_secs(8),
                "half-sent headers closed after only {c:?}: nothing timed"
            );
        }
    }
    assert!(
        growth <= MAX_RSS_GROWTH_KIB,
        "200 stalled clients grew the service by {growth} KiB"
    );
    assert!(health_failures.is_empty(), "{health_failures:?}");
    let delivered = delivered.expect("the delivery was sent");
    assert_eq!(delivered.status, 202, "{}", delivered.body);
    assert!(
        svc.metric(
            "sizeguard_events_rejected_total{sender=\"distribution\",reason=\"unauthorized\"}"
        ) >= 50.0
    );
}

/// A small in-flight cap: requests past it get 503 with `Retry-After`,
/// health probes do not count; a small connection cap: the connection past
/// it is answered 503 and closed; once the holders leave, requests pass
/// again. A keep-alive connection left idle is closed.
#[test]
fn caps_answer_503_with_retry_after_and_idle_connections_close() {
    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            "127.0.0.1:9",
            "--max-in-flight",
            "2",
            "--max-connections",
            "6",
        ],
    );
    // A keep-alive connection answered once, then left alone.
    let idle_addr = addr.clone();
    let idle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&idle_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {idle_addr}\r\n\r\n").as_bytes())
            .unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return (got, start.elapsed()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // Two requests reading a body that does not come hold both permits.
    let signature = format!("sha256={}", "0".repeat(64));
    let holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(
                s,
                "POST /v1/events/github HTTP/1.1\r\nHost: {addr}\r\nX-Hub-Signature-256: {signature}\r\n\
                 Content-Length: 1000\r\n\r\n{{\"a\":"
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let refused = svc.post_event("distribution", &envelope("e1", "127.0.0.1:9"));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert_eq!(svc.get("/healthz").status, 200);
    assert_eq!(svc.get("/readyz").status, 200);

    // Connections: the idle one, the two holders, three more silent ones
    // make six; the seventh is turned away at once.
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("Retry-After: 1"),
        "{answer:?}"
    );
    drop(silent);
    drop(holders);
    std::thread::sleep(Duration::from_millis(500));
    assert!(svc.metric("sizeguard_inbound_refused_total{limit=\"max_connections\"}") >= 1.0);
    assert!(svc.metric("sizeguard_inbound_refused_total{limit=\"max_in_flight\"}") >= 1.0);
    let passed = svc.post_event("distribution", &envelope("e2", "127.0.0.1:9"));
    assert_eq!(passed.status, 202, "{}", passed.body);

    let (got, after) = idle.join().unwrap();
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        after <= Duration::from_secs(35),
        "an idle keep-alive connection stayed open {after:?}"
    );
}

/// The subject of the certificate a new connection to `addr` is served.
fn served_subject(addr: &str) -> String {
    let tool = require_tool("openssl", "apt-get install openssl");
    let out = Command::new(&tool)
        .args(["s_client", "-connect", addr, "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("0 s:"))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("no certificate: {text}"))
}

fn curl_healthz(addr: &str, ca: &Path) -> (bool, String) {
    let tool = require_tool("curl", "apt-get install curl");
    let out = Command::new(tool)
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(format!("https://{addr}/healthz"))
        .output()
        .expect("spawn curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// HTTPS with a self-signed pair; a new pair written over the files is
/// served to new connections without a restart; a broken pair keeps the
/// previous one (with a warning); one of the two flags alone is a usage
/// error.
#[test]
fn tls_is_served_and_reloaded_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path(), "sizeguard-first", "0x1001");
    let first_ca = dir.path().join("first-ca.pem");
    std::fs::copy(dir.path().join("cert.pem"), &first_ca).unwrap();
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();

    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            "127.0.0.1:9",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let (ok, out) = curl_healthz(&addr, &first_ca);
    assert!(ok && out.contains("ok"), "{out}\n{}", svc.log());
    assert!(served_subject(&addr).contains("sizeguard-first"));
    // Plain HTTP gets no answer a client would take for one.
    let plain = support::serve::request(&addr, "GET", "/healthz", &[], b"");
    assert!(plain.as_ref().is_none_or(|a| a.status != 200), "{plain:?}");

    self_signed(dir.path(), "sizeguard-second", "0x2002");
    let second_ca = dir.path().join("second-ca.pem");
    std::fs::copy(dir.path().join("cert.pem"), &second_ca).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !served_subject(&addr).contains("sizeguard-second") {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (ok, out) = curl_healthz(&addr, &second_ca);
    assert!(ok && out.contains("ok"), "{out}");
    let (ok, _) = curl_healthz(&addr, &first_ca);
    assert!(!ok, "the old certificate is still served");

    // A key that is not one: the running certificate stays.
    std::fs::write(dir.path().join("key.pem"), "not a key\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !svc.log().contains("do not load") {
        assert!(Instant::now() < deadline, "no warning:\n{}", svc.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(served_subject(&addr).contains("sizeguard-second"));
    let (ok, out) = curl_healthz(&addr, &second_ca);
    assert!(ok && out.contains("ok"), "{out}");

    let data = dir.path().join("data").display().to_string();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.display().to_string();
    for half in [["--tls-cert", &cert], ["--tls-key", &key]] {
        let out = Run::new([
            "serve",
            "--data-dir",
            &data,
            "--secret-file",
            &secret,
            "--allow-registry",
            "127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            half[0],
            half[1],
        ])
        .run();
        assert_eq!(out.code, 2, "{half:?}: {}", out.stderr);
        assert!(out.error().contains("go together"), "{}", out.stderr);
    }
}

fn github_signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", sizeguard::digest::hex(&bytes))
}

/// GitHub's HMAC key apart from the bearer secret; Harbor switched off; a
/// short secret warned of once, without showing it; a receiver's registry
/// that is not allowed stops the start.
#[test]
fn receivers_have_their_own_secrets_and_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let hmac_key = "gh-hmac-short";
    let key_file = dir.path().join("github-hmac");
    std::fs::write(&key_file, format!("{hmac_key}\n")).unwrap();
    let key_arg = key_file.display().to_string();

    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--allow-registry",
            "127.0.0.1:9",
            "--allow-registry",
            "ghcr.io",
            "--github-secret-file",
            &key_arg,
            "--disable-receiver",
            "harbor",
        ],
    );
    let auth = format!("Bearer {SECRET}");
    let harbor = svc.request(
        "POST",
        "/v1/events/harbor",
        &[("Authorization", auth.as_str())],
        b"{}",
    );
    assert_eq!(harbor.status, 404, "{}", harbor.body);

    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let github = |key: &[u8]| {
        let signature = github_signature(key, ping);
        svc.request(
            "POST",
            "/v1/events/github",
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("X-GitHub-Event", "ping"),
                ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("Content-Type", "application/json"),
            ],
            ping,
        )
    };
    assert_eq!(github(SECRET.as_bytes()).status, 401);
    let own = github(hmac_key.as_bytes());
    assert_eq!(own.status, 200, "{}", own.body);
    // The HMAC key is not a bearer secret of the other receivers.
    let crossed = svc.request(
        "POST",
        "/v1/events/distribution",
        &[("Authorization", &format!("Bearer {hmac_key}"))],
        &envelope("e1", "127.0.0.1:9"),
    );
    assert_eq!(crossed.status, 401);
    assert_eq!(
        svc.post_event("distribution", &envelope("e1", "127.0.0.1:9"))
            .status,
        202
    );

    let log = svc.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("shorter than 16 bytes"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(!log.contains(hmac_key), "{log}");

    // A receiver may only name allowed registries.
    let config = dir.path().join("sizeguard.toml");
    std::fs::write(
        &config,
        "[serve.receivers.github]\nregistries = [\"ghcr.io\", \"evil.example\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data").display().to_string();
    let long_secret = dir.path().join("secret");
    std::fs::write(&long_secret, SECRET).unwrap();
    let out = Run::new([
        "serve",
        "--config",
        &config.display().to_string(),
        "--data-dir",
        &data,
        "--secret-file",
        &long_secret.display().to_string(),
        "--allow-registry",
        "ghcr.io",
        "--listen",
        "127.0.0.1:0",
    ])
    .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error().contains("evil.example"), "{}", out.stderr);
}
