//! `docker-daemon:` against a real engine: Podman's Docker-compatible API
//! service on a temporary socket, over a store of its own, holding images
//! that are also pushed to a loopback registry. Read from the engine, an
//! image measures exactly as its registry copy does, compressed sizes
//! aside (the engine exports layers uncompressed: those are estimates).

use crate::support;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::json::{LAYER_FIGURES, u};
use support::layout::{Comp, LayerSpec, LayoutBuilder};
use support::podman::Podman;
use support::registry::Registry;
use support::run::Run;

/// A base, a layer that deletes and hides some of it, and an application
/// layer of mixed content, so that every figure has something to count.
fn build(dir: &Path) {
    let mut b = LayoutBuilder::new(dir);
    let mut base = LayerSpec::new().dir("etc").dir("usr").dir("usr/lib");
    for i in 0..40 {
        base = base.file(&format!("usr/lib/lib{i}.so"), 3_000 + i * 997);
    }
    let base = b.add_layer(
        &base
            .file_bytes("etc/os-release", b"ID=test\n")
            .symlink("usr/lib/libcurrent.so", "lib0.so")
            .hardlink("usr/lib/lib0-again.so", "usr/lib/lib0.so")
            .dir("var")
            .dir("var/cache")
            .file("var/cache/big.bin", 300_000),
        Comp::Gzip,
    );
    let trim = b.add_layer(
        &LayerSpec::new()
            .dir("var")
            .whiteout("var/cache")
            .dir("usr/lib")
            .opaque("usr/lib")
            .file("usr/lib/only.so", 5_000),
        Comp::Gzip,
    );
    let text: Vec<u8> = b"GET /index.html 200 OK\n".repeat(120_000);
    let app = b.add_layer(
        &LayerSpec::new()
            .dir("app")
            .file("app/server", 2_000_000)
            .file_bytes("app/access.log", &text)
            .file_compressible("app/zeros", 1_000_000),
        Comp::Gzip,
    );
    b.add_tagged_image(&[base.clone(), trim.clone()], "v1");
    b.add_tagged_image(&[base, trim, app], "v2");
}

fn measure(reference: &str, host: Option<(&str, &str)>) -> Value {
    let mut run = Run::new(["measure", "--format", "json", reference]);
    if let Some((var, value)) = host {
        run = run.env(var, value);
    }
    let out = run.run();
    out.assert_ok();
    out.json()
}

/// Every figure of the two reports is the same, compressed sizes aside;
/// the daemon's compressed sizes are marked as estimates, and near the
/// registry's.
fn assert_same_but_compressed(daemon: &Value, registry: &Value) {
    let (d, r) = (&daemon["images"][0], &registry["images"][0]);
    for key in [
        "platform",
        "config_digest",
        "config_bytes",
        "final",
        "wasted_bytes",
    ] {
        assert_eq!(d[key], r[key], "{key}");
    }
    assert_eq!(d["complete"], true);
    for figure in &LAYER_FIGURES[1..] {
        assert_eq!(d["totals"][figure], r["totals"][figure], "totals {figure}");
    }
    let (dl, rl) = (
        d["layers"].as_array().unwrap(),
        r["layers"].as_array().unwrap(),
    );
    assert_eq!(dl.len(), rl.len());
    for (i, (d, r)) in dl.iter().zip(rl).enumerate() {
        for key in LAYER_FIGURES[1..]
            .iter()
            .chain(&["diff_id", "largest_files", "measured"])
        {
            assert_eq!(d[key], r[key], "layer {i} {key}");
        }
        // The engine's layers are named by their diff_ids.
        assert_eq!(d["digest"], r["diff_id"], "layer {i}");
        assert_eq!(d["estimate"]["source"], "recompressed", "layer {i}");
        let (estimate, real) = (u(&d["compressed_bytes"]), u(&r["compressed_bytes"]));
        assert!(
            estimate.abs_diff(real) <= real / 4 + 4096,
            "layer {i}: compressed estimate {estimate}, the registry's gzip blob {real}"
        );
    }
}

#[test]
fn daemon_images_measure_and_check_like_their_registry_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    build(&layout);
    let reg = Registry::start();
    reg.push_layout(&layout, "v1", "team/app:v1");
    reg.push_layout(&layout, "v2", "team/app:v2");
    let mut podman = Podman::new();
    podman.load(&layout, "v1", "localhost/app:v1");
    podman.load(&layout, "v2", "localhost/app:v2");
    podman.serve();
    let host = podman.host();
    let docker_host = Some(("DOCKER_HOST", host.as_str()));

    let registry = measure(&reg.reference("team/app:v2"), None);
    let daemon = measure("docker-daemon:localhost/app:v2", docker_host);
    assert_same_but_compressed(&daemon, &registry);
    // Podman's own prefix, through CONTAINER_HOST, reads the same image.
    let podman_ref = measure(
        "podman:localhost/app:v2",
        Some(("CONTAINER_HOST", host.as_str())),
    );
    assert_eq!(
        podman_ref["images"][0]["layers"],
        daemon["images"][0]["layers"]
    );

    check_against_the_registry_baseline(&reg, &host);

    let missing = Run::new(["measure", "docker-daemon:localhost/app:nope"])
        .env("DOCKER_HOST", &host)
        .run();
    missing.assert_measure_error(&[&["docker-daemon:localhost/app:nope"], &["no such image"]]);
}

/// A check of the local candidate against the published baseline judges
/// as one of the pushed candidate: shared layers are the registry's blobs
/// (exact sizes), only the new layer's compressed size is an estimate, and
/// findings that rest on it say so.
fn check_against_the_registry_baseline(reg: &Registry, host: &str) {
    let baseline = reg.reference("team/app:v1");
    let check = |candidate: &str| {
        let out = Run::new(["check", "--format", "json", "--no-config"])
            .args(["--candidate", candidate, "--baseline", &baseline])
            .args(["--max-growth", "disk_bytes=1MiB", "--max-pull-size", "1KiB"])
            .env("DOCKER_HOST", host)
            .run();
        assert_eq!(out.code, 1, "the policy fails: {}", out.stderr);
        out.json()
    };
    let daemon = check("docker-daemon:localhost/app:v2");
    let pushed = check(&reg.reference("team/app:v2"));
    let (d, p) = (&daemon["platforms"][0], &pushed["platforms"][0]);
    for figure in ["disk_bytes", "node_inodes", "layers"] {
        for cost in ["candidate_cost", "rollout_cost"] {
            assert_eq!(d[cost][figure], p[cost][figure], "{cost} {figure}");
        }
    }
    let rows = |v: &Value| -> Vec<(Value, Value)> {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["change"].clone(), l["candidate_disk_bytes"].clone()))
            .collect()
    };
    assert_eq!(rows(d), rows(p));
    let layers = |v: &Value| v["candidate"]["layers"].as_array().unwrap().clone();
    let (dl, pl) = (layers(d), layers(p));
    for i in 0..2 {
        assert_eq!(dl[i]["digest"], pl[i]["digest"], "shared layer {i}");
        assert_eq!(dl[i]["compressed_bytes"], pl[i]["compressed_bytes"]);
        assert!(dl[i].get("estimate").is_none(), "{}", dl[i]);
    }
    assert_eq!(dl[2]["estimate"]["source"], "recompressed");
    let verdicts = |v: &Value| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["rule"].clone(), f["level"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&daemon), verdicts(&pushed));
    let pull = daemon["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "max_pull_size")
        .expect("the pull-size rule fires");
    assert!(
        pull["message"].as_str().unwrap().contains("(estimated"),
        "{pull}"
    );
}

#[test]
fn an_engine_that_is_not_there_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let out = Run::new(["measure", "docker-daemon:app:dev"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .run();
    out.assert_measure_error(&[&["cannot talk to the engine"], &["none.sock"]]);
    let out = Run::new(["measure", "docker-daemon:app:dev"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error().contains("unix"), "{}", out.stderr);
}

/// An engine on a unix socket that answers the version and inspect calls
/// and then, asked for the export, sends the start of a tar and nothing
/// more: a stalled engine. Its export ends (the connection closes) after
/// `stall`, a bound for the test.
struct StalledEngine {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl StalledEngine {
    fn start(stall: Duration) -> StalledEngine {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            // The run makes a few connections; the listener lives as long
            // as the test process.
            for conn in listener.incoming().take(16) {
                let Ok(conn) = conn else { return };
                std::thread::spawn(move || serve_stalled(conn, stall));
            }
        });
        StalledEngine { socket, _dir: dir }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

/// Answers requests on one connection (keep-alive) until the export.
fn serve_stalled(mut conn: UnixStream, stall: Duration) {
    use std::io::{Read, Write};
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..16 {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match conn.read(&mut chunk) {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let body = if path.ends_with("/_ping") {
            "OK".to_string()
        } else if path.ends_with("/version") {
            r#"{"ApiVersion":"1.41","Version":"20.10.0","Os":"linux","Arch":"amd64"}"#.to_string()
        } else if path.ends_with("/json") {
            format!(
                r#"{{"Id":"sha256:{0}","Os":"linux","Architecture":"amd64","RootFS":{{"Type":"layers","Layers":["sha256:{0}"]}}}}"#,
                "ab".repeat(32)
            )
        } else if path.ends_with("/get") {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = conn.write_all(head.as_bytes());
            // Half a tar header, then nothing.
            let _ = conn.write_all(b"100\r\n");
            let _ = conn.write_all(&[b'a'; 256]);
            let _ = conn.write_all(b"\r\n");
            let _ = conn.flush();
            std::thread::sleep(stall);
            return;
        } else {
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_stalled_engine_fails_at_the_deadline() {
    let engine = StalledEngine::start(Duration::from_secs(40));
    for (reference, var) in [
        ("docker-daemon:app:dev", "DOCKER_HOST"),
        ("podman:app:dev", "CONTAINER_HOST"),
    ] {
        let t0 = std::time::Instant::now();
        let out = Run::new(["measure", "-q", "--timeout", "3s", reference])
            .env(var, engine.host())
            .run();
        let took = t0.elapsed();
        eprintln!("{reference}: export stalled, --timeout 3s: failed after {took:?}");
        out.assert_measure_error(&[&["timed out after 3s (--timeout)"], &[reference]]);
        assert!(took >= Duration::from_millis(2900), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
