//! Registries as networks deliver them: rate-limited, failing, cutting and
//! stalling bodies, ignoring `Range`, trickling, sending documents that
//! never end, redirecting to blob storage, naming token services on other
//! hosts. A fault-injecting proxy sits in front of the real loopback
//! `docker-registry`, and `measure` must still give exactly the figures of
//! a clean run; stand-in registries fake what a proxy cannot. Secrets given
//! to sizeguard never appear in anything it prints.
//!
//! Loopback only; every wait is bounded by a `--timeout` or a small count,
//! and the backoff between attempts is shortened ([`fast_backoff`]).
//! The figures each fault case costs (requests, retries, seconds) are
//! printed: `cargo test --test integration network_faults:: -- --nocapture`.

use crate::support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use support::credentials::{basic_auth, write_docker_config};
use support::layout::*;
use support::proxy::{Fault, FaultProxy, Rule, Seen, TlsOnlyRelay, too_many_requests, unavailable};
use support::registry::{Registry, RegistryOpts};
use support::run::{Out, Run};
use support::standin_registry::{Behaviour, StandIn, TokenService};

const USER: &str = "carol";
const PASSWORD: &str = "pw-Vb8Nq3-never-printed";
const REFRESH_TOKEN: &str = "rt-Hc5Wd1-never-printed";
const ACCESS_TOKEN: &str = "at-Zp2Kf7-never-printed";

/// An image of three layers (gzip, zstd, plain tar; the first a few MB) in
/// a layout under `tmp`, tagged `v1`.
fn build_image(tmp: &Path) -> (std::path::PathBuf, ImageDesc, Vec<BuiltLayer>) {
    let dir = tmp.join("layout");
    let mut b = LayoutBuilder::new(&dir);
    let big = b.add_layer(
        &LayerSpec::new()
            .dir("usr")
            .file("usr/big", 3 << 20)
            .file("usr/small", 3000),
        Comp::Gzip,
    );
    let zst = b.add_layer(&LayerSpec::new().file("opt/mid", 600_000), Comp::Zstd);
    let raw = b.add_layer(&LayerSpec::new().file("srv/raw", 300_000), Comp::None);
    let layers = vec![big, zst, raw];
    let img = b.add_tagged_image(&layers, "v1");
    (dir, img, layers)
}

/// A registry holding the image as `test/img:v1`, and the image's layers.
fn registry_with_image(tmp: &Path, opts: RegistryOpts) -> (Registry, Vec<BuiltLayer>) {
    let (dir, _, layers) = build_image(tmp);
    let reg = Registry::start_with(opts);
    reg.push_layout(&dir, "v1", "test/img:v1");
    (reg, layers)
}

fn measure(reference: &str, extra: &[&str]) -> Run {
    fast_backoff(Run::new(["measure", "--format", "json", "-q", reference]).args(extra))
}

/// The run with the backoff's first delay at 20 ms instead of 0.5 s (a
/// test-only knob): fault tests count attempts and check the waits servers
/// ask for, which stay as asked, and need not sleep through the backoff.
fn fast_backoff(run: Run) -> Run {
    run.env("SIZEGUARD_TEST_BACKOFF_MS", "20")
}

/// The report of a run through `proxy`, with the proxy's address put back
/// to the registry's, must be the clean run's, byte for byte.
#[track_caller]
fn assert_same_figures(out: &Out, clean: &str, proxy: &str, registry: &str) {
    out.assert_ok();
    assert_eq!(out.stdout.replace(proxy, registry), clean, "figures differ");
}

fn clean_run(reg: &Registry, extra: &[&str]) -> String {
    let out = measure(&reg.reference("test/img:v1"), extra).run();
    out.assert_ok();
    out.stdout.clone()
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

#[test]
fn rate_limits_and_server_errors_are_waited_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, img, layers) = build_image(tmp.path());
    let reg = Registry::start();
    reg.push_layout(&dir, "v1", "test/img:v1");
    let clean = clean_run(&reg, &[]);
    // Whole seconds: the date is exactly the instant it names.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let retry_at = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs() + 4);
    let retry_date = httpdate(retry_at);
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![
            Rule::new("/manifests/", 1, too_many_requests("1")),
            Rule::new("/manifests/", 1, too_many_requests(&retry_date)),
            Rule::new("/manifests/", 1, unavailable()),
            Rule::new(&layers[0].blob_digest, 1, too_many_requests("1")),
            Rule::new(&layers[1].blob_digest, 2, unavailable()),
            Rule::new(&img.config_digest, 1, unavailable()),
        ],
    );
    let reference = format!("{}/test/img:v1", proxy.addr);
    let t0 = Instant::now();
    let out = measure(&reference, &[]).run();
    let took = t0.elapsed();
    assert_same_figures(&out, &clean, &proxy.addr, &reg.addr);
    assert_eq!(proxy.faults(), 7, "{:#?}", proxy.seen());
    eprintln!(
        "429/503 faults: {} requests, {} retried, {took:?}",
        proxy.seen().len(),
        proxy.faults()
    );

    // Retry-After was honoured on the manifest: in seconds, then as an
    // HTTP date.
    let manifests: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/manifests/"))
        .collect();
    assert!(manifests[1].at - manifests[0].at >= Duration::from_millis(950));
    assert!(
        manifests[2].wall + Duration::from_millis(50) >= retry_at,
        "retried {:?} before the date it was given",
        retry_at.duration_since(manifests[2].wall)
    );
}

#[test]
fn token_requests_are_retried_honouring_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, _) = build_image(tmp.path());
    let service = TokenService {
        token: ACCESS_TOKEN.into(),
        anonymous: true,
        ..Default::default()
    };
    let realm = StandIn::start(Behaviour {
        tokens: Some(service.clone()),
        ..Default::default()
    });
    let proxy = FaultProxy::start(
        &realm.addr,
        vec![
            Rule::new("/token", 1, too_many_requests("2")),
            Rule::new("/token", 1, unavailable()),
        ],
    );
    let registry = StandIn::start(Behaviour {
        layout: Some(dir),
        tokens: Some(service),
        realm: Some(format!("http://{}/token", proxy.addr)),
        ..Default::default()
    });
    let out = measure(&registry.reference("test/img:v1"), &[])
        .secret(ACCESS_TOKEN)
        .run();
    out.assert_ok();
    let asked: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/token"))
        .collect();
    assert_eq!(asked.len(), 3, "{asked:#?}");
    assert!(asked[1].at - asked[0].at >= Duration::from_millis(1950));
}

/// A fault that does not lift, and how the run that gives up says so.
struct GivesUp {
    name: &'static str,
    rules: fn(&[BuiltLayer]) -> Vec<Rule>,
    repository: &'static str,
    args: &'static [&'static str],
    check: fn(&Out, &FaultProxy, &[BuiltLayer], Duration),
}

const GIVES_UP: &[GivesUp] = &[
    GivesUp {
        name: "503 forever on the manifest",
        rules: |_| vec![Rule::new("/manifests/", 100, unavailable())],
        repository: "test/img:v1",
        args: &[],
        check: |out, proxy, _, took| {
            out.assert_measure_error(&[
                &["503 Service Unavailable"],
                &["gave up after 5 attempts"],
            ]);
            assert_eq!(proxy.faults(), 5);
            assert!(took < Duration::from_secs(30), "{took:?}");
        },
    },
    GivesUp {
        // A 429 on a blob, named as such, after five attempts.
        name: "429 forever on a blob",
        rules: |layers| {
            vec![Rule::new(
                &layers[2].blob_digest,
                100,
                too_many_requests("1"),
            )]
        },
        repository: "test/img:v1",
        args: &[],
        check: |out, proxy, layers, _| {
            out.assert_measure_error(&[&["429 Too Many Requests"], &[&layers[2].blob_digest]]);
            let gets = proxy
                .seen()
                .iter()
                .filter(|s| s.fault.is_some() && s.method == "GET")
                .count();
            assert_eq!(gets, 5);
        },
    },
    GivesUp {
        // A Retry-After past the deadline is not waited for: the 429 is
        // the error, at once.
        name: "429 asking for an hour, --timeout 30s",
        rules: |_| vec![Rule::new("/manifests/", 100, too_many_requests("3600"))],
        repository: "test/img:v1",
        args: &["--timeout", "30s"],
        check: |out, proxy, _, took| {
            out.assert_measure_error(&[
                &["429 Too Many Requests"],
                &["not tried again"],
                &["--timeout of 30s"],
            ]);
            assert_eq!(proxy.faults(), 1);
            assert!(took < Duration::from_secs(10), "{took:?}");
        },
    },
    GivesUp {
        // Refusals are not tried again.
        name: "404",
        rules: |_| vec![],
        repository: "test/none:v1",
        args: &[],
        check: |out, proxy, _, _| {
            out.assert_measure_error(&[&["404", "not found", "unknown"]]);
            let asked = proxy
                .seen()
                .iter()
                .filter(|s| s.path.contains("/manifests/"))
                .count();
            assert_eq!(asked, 1);
        },
    },
];

#[test]
fn retries_give_up_naming_the_status() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, layers) = registry_with_image(tmp.path(), RegistryOpts::default());
    for case in GIVES_UP {
        let proxy = FaultProxy::start(&reg.addr, (case.rules)(&layers));
        let t0 = Instant::now();
        let out = measure(&format!("{}/{}", proxy.addr, case.repository), case.args).run();
        let took = t0.elapsed();
        eprintln!("{}: {} requests, {took:?}", case.name, proxy.seen().len());
        (case.check)(&out, &proxy, &layers, took);
    }
}

#[test]
fn a_blob_429_waits_what_its_retry_after_asks() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, layers) = registry_with_image(tmp.path(), RegistryOpts::default());
    let clean = clean_run(&reg, &[]);
    let raw = &layers[2].blob_digest;
    // A rate limiter in front of the blob: the first GET answered 429
    // with a Retry-After in seconds, then as an HTTP date 3 to 4 s ahead
    // (whole seconds: the date is exactly the instant it names).
    for as_date in [false, true] {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let retry_at = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs() + 4);
        let asked = match as_date {
            false => "2".to_string(),
            true => httpdate(retry_at),
        };
        let proxy = FaultProxy::start(
            &reg.addr,
            vec![Rule::new(raw, 1, too_many_requests(&asked))],
        );
        let out = measure(&format!("{}/test/img:v1", proxy.addr), &[]).run();
        assert_same_figures(&out, &clean, &proxy.addr, &reg.addr);
        let asked_blob: Vec<_> = proxy
            .seen()
            .into_iter()
            .filter(|s| s.path.contains(raw.as_str()))
            .collect();
        let gets: Vec<_> = asked_blob.iter().filter(|s| s.method == "GET").collect();
        assert_eq!(gets.len(), 2, "{asked_blob:#?}");
        let waited = gets[1].at - gets[0].at;
        eprintln!("blob 429, Retry-After: {asked}: the GET tried again {waited:?} later");
        if !as_date {
            assert!(waited >= Duration::from_secs(2), "{waited:?}");
        } else {
            assert!(
                gets[1].wall + Duration::from_millis(50) >= retry_at,
                "tried again {:?} before the date it was given",
                retry_at.duration_since(gets[1].wall)
            );
        }
    }
}

#[test]
fn the_deadline_bounds_local_sources_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, _) = build_image(tmp.path());
    let reference = format!("oci:{}:v1", dir.display());
    measure(&reference, &["--timeout", "10m"]).run().assert_ok();
    let out = measure(&reference, &["--timeout", "1ms"]).run();
    out.assert_measure_error(&[&["timed out after 1ms (--timeout) while"]]);
}

#[test]
fn timeout_flag_is_checked() {
    for bad in ["0", "soon", "10d"] {
        let out = Run::new(["measure", "--timeout", bad, "oci:/nonexistent"]).run();
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(out.error().contains("--timeout") || out.error().contains("duration"));
    }
}

// ---------------------------------------------------------------------------
// Cut, stalled and close-delimited bodies; Range
// ---------------------------------------------------------------------------

/// A body the network interrupts, and what the proxy must have seen of
/// the download that went on from where it stopped.
struct Interrupted {
    name: &'static str,
    /// The proxy answers every `Range` with the whole blob.
    ignoring_range: bool,
    rules: fn(&[BuiltLayer]) -> Vec<Rule>,
    args: &'static [&'static str],
    check: fn(&[BuiltLayer], &[Seen]),
}

const INTERRUPTED: &[Interrupted] = &[
    Interrupted {
        // The big layer is cut twice (the second time in its resumed
        // part), the zstd one ends early and cleanly (no Content-Length):
        // both must go on from where they stopped.
        name: "cut twice + close-delimited end",
        ignoring_range: false,
        rules: |layers| {
            let (big, mid) = (&layers[0].blob_digest, &layers[1].blob_digest);
            vec![
                Rule::new(big, 1, Fault::Cut { after: 100_000 }),
                Rule::new(big, 1, Fault::Cut { after: 250_000 }),
                Rule::new(mid, 1, Fault::CutCloseDelimited { after: 70_000 }),
            ]
        },
        args: &[],
        check: |_, seen| {
            let ranges: Vec<&str> = seen.iter().filter_map(|s| s.header("range")).collect();
            for want in ["bytes=100000-", "bytes=350000-", "bytes=70000-"] {
                assert!(ranges.contains(&want), "{want} not in {ranges:?}");
            }
        },
    },
    Interrupted {
        name: "Range ignored, cut twice",
        ignoring_range: true,
        rules: |layers| {
            let big = &layers[0].blob_digest;
            vec![
                Rule::new(big, 1, Fault::Cut { after: 200_000 }),
                Rule::new(big, 1, Fault::CutCloseDelimited { after: 300_000 }),
            ]
        },
        args: &[],
        check: |layers, seen| {
            let big = &layers[0].blob_digest;
            assert_eq!(seen.iter().filter(|s| s.path.contains(big)).count(), 3);
        },
    },
    Interrupted {
        // Longer than the whole run may take: only giving up on the
        // stalled connection (after a tenth of --timeout, 2 s) and
        // resuming works.
        name: "stalled 25s, --timeout 20s",
        ignoring_range: false,
        rules: |layers| {
            vec![Rule::new(
                &layers[0].blob_digest,
                1,
                Fault::Stall {
                    after: 150_000,
                    pause: Duration::from_secs(25),
                },
            )]
        },
        args: &["--timeout", "20s"],
        check: |_, seen| {
            assert!(
                seen.iter()
                    .any(|s| s.header("range") == Some("bytes=150000-"))
            );
        },
    },
];

#[test]
fn interrupted_bodies_resume_where_they_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, layers) = registry_with_image(tmp.path(), RegistryOpts::default());
    for case in INTERRUPTED {
        let clean = clean_run(&reg, case.args);
        let rules = (case.rules)(&layers);
        let proxy = match case.ignoring_range {
            true => FaultProxy::ignoring_range(&reg.addr, rules),
            false => FaultProxy::start(&reg.addr, rules),
        };
        let t0 = Instant::now();
        let out = measure(&format!("{}/test/img:v1", proxy.addr), case.args).run();
        eprintln!(
            "{}: {} requests through the proxy, {} faults, {:?}",
            case.name,
            proxy.seen().len(),
            proxy.faults(),
            t0.elapsed()
        );
        assert_same_figures(&out, &clean, &proxy.addr, &reg.addr);
        (case.check)(&layers, &proxy.seen());
    }
}

#[test]
fn a_truncated_close_delimited_body_is_called_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, layers) = registry_with_image(tmp.path(), RegistryOpts::default());
    let mid = &layers[1].blob_digest;
    // Every answer for the layer ends early and cleanly.
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Rule::new(mid, 1000, Fault::CutCloseDelimited { after: 0 })],
    );
    let t0 = Instant::now();
    let out = measure(&format!("{}/test/img:v1", proxy.addr), &[]).run();
    eprintln!(
        "truncated every time: {} requests through the proxy, {} faults, {:?}",
        proxy.seen().len(),
        proxy.faults(),
        t0.elapsed()
    );
    out.assert_measure_error(&[&[mid], &["truncated"], &["0 of"]]);
    assert!(!out.error().contains("digest mismatch"), "{}", out.stderr);
}

#[test]
fn a_range_answered_with_another_range_restarts_once_never_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, layers) = build_image(tmp.path());
    let reg = Registry::start();
    reg.push_layout(&dir, "v1", "test/img:v1");
    let clean = clean_run(&reg, &[]);
    let big = &layers[0].blob_digest;
    // A registry that answers every Range past byte 0 with the whole blob
    // as a 206, behind a proxy that cuts the first answer for the layer.
    let standin = StandIn::start(Behaviour {
        layout: Some(dir.clone()),
        wrong_range: true,
        ..Default::default()
    });
    let proxy = FaultProxy::start(
        &standin.addr,
        vec![Rule::new(big, 1, Fault::Cut { after: 100_000 })],
    );
    let out = measure(&format!("{}/test/img:v1", proxy.addr), &[]).run();
    assert_same_figures(&out, &clean, &proxy.addr, &reg.addr);
    let asked: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(big.as_str()))
        .collect();
    // From 0, the range (refused: another range came), the whole blob.
    assert_eq!(asked.len(), 3, "{asked:#?}");
    assert_eq!(asked[1].header("range"), Some("bytes=100000-"));
    assert_eq!(asked[2].header("range"), None);

    // Every answer cut at the same place: the restarts are counted, and
    // the download gives up.
    let proxy = FaultProxy::start(
        &standin.addr,
        vec![Rule::new(big, 1000, Fault::Cut { after: 100_000 })],
    );
    let t0 = Instant::now();
    let out = measure(&format!("{}/test/img:v1", proxy.addr), &[]).run();
    out.assert_measure_error(&[&[big], &["started again from byte 0 3 times"]]);
    let requests = proxy
        .seen()
        .iter()
        .filter(|s| s.path.contains(big.as_str()))
        .count();
    eprintln!(
        "cut every time, wrong ranges: {requests} requests, {:?}",
        t0.elapsed()
    );
    assert!(requests <= 6, "{requests} requests");
}

#[test]
fn a_part_that_starts_at_another_byte_is_caught_by_its_content_range() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, layers) = build_image(tmp.path());
    let reg = Registry::start();
    reg.push_layout(&dir, "v1", "test/img:v1");
    let clean = clean_run(&reg, &[]);
    let big = &layers[0].blob_digest;
    // A registry that answers every Range past byte 0 with a part of the
    // right length from byte 0 (the wrong bytes), behind a proxy that cuts
    // the first answer for the layer.
    let standin = StandIn::start(Behaviour {
        layout: Some(dir),
        shifted_range: true,
        ..Default::default()
    });
    let proxy = FaultProxy::start(
        &standin.addr,
        vec![Rule::new(big, 1, Fault::Cut { after: 100_000 })],
    );
    let reference = format!("{}/test/img:v1", proxy.addr);
    let out = fast_backoff(Run::new([
        "-v", "measure", "--format", "json", "-q", &reference,
    ]))
    .run();
    assert_same_figures(&out, &clean, &proxy.addr, &reg.addr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("Content-Range"))
        .unwrap_or_else(|| panic!("no line names the Content-Range: {}", out.stderr));
    eprintln!("{line}");
    assert!(line.contains("starts at byte 0"), "{line}");
    assert!(line.contains("reading again from byte 0"), "{line}");
    let asked: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(big.as_str()))
        .collect();
    // From 0, the range (refused: the part starts at byte 0), the whole
    // blob.
    assert_eq!(asked.len(), 3, "{asked:#?}");
    assert_eq!(asked[1].header("range"), Some("bytes=100000-"));
    assert_eq!(asked[2].header("range"), None);
}

#[test]
fn an_expired_token_is_renewed_in_the_middle_of_a_resumed_download() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, layers) = build_image(tmp.path());
    // Tokens that live a second; an expired one gets a 401 and a challenge.
    let standin = StandIn::start(Behaviour {
        layout: Some(dir),
        tokens: Some(TokenService {
            token: ACCESS_TOKEN.into(),
            anonymous: true,
            expires_in: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    });
    let clean = measure(&standin.reference("test/img:v1"), &["--timeout", "20s"])
        .secret(ACCESS_TOKEN)
        .run();
    clean.assert_ok();
    let big = &layers[0].blob_digest;
    // The big layer stalls long enough (2 s, a tenth of --timeout) for
    // its token to expire before the download is resumed.
    let proxy = FaultProxy::start(
        &standin.addr,
        vec![Rule::new(
            big,
            1,
            Fault::Stall {
                after: 150_000,
                pause: Duration::from_secs(25),
            },
        )],
    );
    let t0 = Instant::now();
    let out = measure(
        &format!("{}/test/img:v1", proxy.addr),
        &["--timeout", "20s"],
    )
    .secret(ACCESS_TOKEN)
    .run();
    eprintln!(
        "token expired during a stalled download: {} requests through the proxy, {:?}",
        proxy.seen().len(),
        t0.elapsed()
    );
    assert_same_figures(&out, &clean.stdout, &proxy.addr, &standin.addr);
    let resumes: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.contains(big.as_str()) && s.header("range") == Some("bytes=150000-"))
        .collect();
    // Refused with the expired token, then made with a new one.
    assert_eq!(resumes.len(), 2, "{resumes:#?}");
    assert_ne!(
        resumes[0].header("authorization"),
        resumes[1].header("authorization")
    );
}

#[test]
fn the_deadline_stops_a_trickling_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, layers) = build_image(tmp.path());
    // One byte a second.
    let standin = StandIn::start(Behaviour {
        layout: Some(dir),
        trickle: Some(Duration::from_secs(1)),
        ..Default::default()
    });
    for command in ["measure", "check"] {
        let args: Vec<&str> = match command {
            "measure" => vec!["measure", "-q", "--timeout", "5s"],
            _ => vec![
                "check",
                "--no-config",
                "-q",
                "--timeout",
                "5s",
                "--candidate",
            ],
        };
        let t0 = Instant::now();
        let out = Run::new(args).arg(standin.reference("test/img:v1")).run();
        let took = t0.elapsed();
        eprintln!("{command}: 1 byte/s, --timeout 5s: failed after {took:?}");
        out.assert_measure_error(&[
            &["timed out after 5s", "--timeout of 5s"],
            &["layer sha256:"],
        ]);
        assert!(
            layers.iter().any(|l| out.error().contains(&l.blob_digest)),
            "{}",
            out.stderr
        );
        assert!(took >= Duration::from_millis(4500), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}

// ---------------------------------------------------------------------------
// Bounded documents
// ---------------------------------------------------------------------------

/// Peak RSS in KiB of the run `/usr/bin/time` wrote to `file`.
fn max_rss_kib(file: &Path) -> u64 {
    fs::read_to_string(file)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn documents_that_never_end_are_cut_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, _) = build_image(tmp.path());
    let endless_manifest = StandIn::start(Behaviour {
        layout: Some(dir.clone()),
        endless_manifest: true,
        ..Default::default()
    });
    let huge_length = StandIn::start(Behaviour {
        layout: Some(dir.clone()),
        manifest_length: Some(1 << 30),
        ..Default::default()
    });
    let endless_config = StandIn::start(Behaviour {
        layout: Some(dir),
        endless_config: true,
        ..Default::default()
    });
    let rss = tmp.path().join("rss");
    for (standin, needle) in [
        (
            &endless_manifest,
            "larger than the 4.00 MiB a manifest or config may have",
        ),
        (&huge_length, "1073741824 bytes, larger than the 4.00 MiB"),
        (
            &endless_config,
            "larger than the 4.00 MiB a manifest or config may have",
        ),
    ] {
        let t0 = Instant::now();
        let out = measure(&standin.reference("test/img:v1"), &[])
            .wrapped_in(["/usr/bin/time", "-f", "%M", "-o", rss.to_str().unwrap()])
            .run();
        out.assert_measure_error(&[&[needle]]);
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
        let kib = max_rss_kib(&rss);
        eprintln!("{needle}: peak RSS {kib} KiB, {:?}", t0.elapsed());
        assert!(kib < 100 * 1024, "peak RSS {kib} KiB");
    }
}

// ---------------------------------------------------------------------------
// Credentials: token services on other hosts, redirects, secrets
// ---------------------------------------------------------------------------

fn with_password(args: &[&str]) -> Run {
    fast_backoff(Run::new(args))
        .args(["--username", USER, "--password-stdin"])
        .stdin(PASSWORD)
        .secret(PASSWORD)
        .secret(&basic_auth(USER, PASSWORD))
}

/// A plain-HTTP loopback registry (stand-in) whose token service is
/// another stand-in, which wants `USER`/`PASSWORD`.
fn registry_with_foreign_realm(tmp: &Path) -> (StandIn, StandIn) {
    let (dir, _, _) = build_image(tmp);
    let service = TokenService {
        basic: Some((USER.into(), PASSWORD.into())),
        token: ACCESS_TOKEN.into(),
        ..Default::default()
    };
    let realm = StandIn::start(Behaviour {
        tokens: Some(service.clone()),
        ..Default::default()
    });
    let registry = StandIn::start(Behaviour {
        layout: Some(dir),
        tokens: Some(service),
        realm: Some(format!("http://{}/token", realm.addr)),
        ..Default::default()
    });
    (registry, realm)
}

#[test]
fn a_realm_on_another_host_gets_only_what_the_credential_files_name_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (registry, realm) = registry_with_foreign_realm(tmp.path());
    let reference = registry.reference("test/img:v1");

    // The --username password is the registry's: the realm does not get it.
    let out = with_password(&["measure", "-q", &reference])
        .secret(ACCESS_TOKEN)
        .run();
    out.assert_measure_error(&[&["401"], &["withheld"], &["not the registry's host"]]);
    assert!(
        realm
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );

    // A credential file that names the realm's host: still plain HTTP, so
    // only when that host is an --insecure-registry too.
    let cfg = write_docker_config(&tmp.path().join("docker"), &realm.addr, USER, PASSWORD);
    let run = |extra: &[&str]| {
        Run::new(["measure", "--format", "json", "-q", &reference])
            .args(extra)
            .env("DOCKER_CONFIG", &cfg)
            .secret(PASSWORD)
            .secret(&basic_auth(USER, PASSWORD))
            .secret(ACCESS_TOKEN)
            .run()
    };
    run(&[]).assert_measure_error(&[&["withheld"], &["plain HTTP"]]);
    assert!(
        realm
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
    let out = run(&["--insecure-registry", &realm.addr]);
    out.assert_ok();
    assert_eq!(out.json()["images"][0]["complete"], true);
    let want = format!("Basic {}", basic_auth(USER, PASSWORD));
    assert!(
        realm
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(want.as_str()))
    );
}

#[test]
fn redirected_blobs_carry_no_registry_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, layers) = build_image(tmp.path());
    let reg = Registry::start_with(RegistryOpts {
        htpasswd: Some((USER.into(), PASSWORD.into())),
        ..Default::default()
    });
    reg.push_layout(&dir, "v1", "test/img:v1");
    let clean = with_password(&[
        "measure",
        "--format",
        "json",
        "-q",
        &reg.reference("test/img:v1"),
    ])
    .run();
    clean.assert_ok();
    // Blob storage on another host (port): it serves the same blobs.
    let storage = StandIn::start(Behaviour {
        layout: Some(dir),
        ..Default::default()
    });
    let rules = layers
        .iter()
        .map(|l| {
            let location = format!(
                "http://{}/v2/storage/blobs/{}?sig=x",
                storage.addr, l.blob_digest
            );
            Rule::new(
                &l.blob_digest,
                1,
                Fault::Answer {
                    status: 307,
                    headers: vec![("Location".into(), location)],
                },
            )
        })
        .collect();
    let proxy = FaultProxy::start(&reg.addr, rules);
    let reference = format!("{}/test/img:v1", proxy.addr);
    let out = with_password(&["measure", "--format", "json", "-q", &reference]).run();
    assert_same_figures(&out, &clean.stdout, &proxy.addr, &reg.addr);
    let fetched = storage.requests();
    assert_eq!(fetched.len(), layers.len(), "{fetched:#?}");
    for r in fetched {
        assert_eq!(r.header("authorization"), None, "credentials leaked: {r:?}");
    }
    // The registry itself did get them.
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.header("authorization").is_some())
    );
}

/// Where a registry may send sizeguard: a stand-in for the network beyond
/// loopback. The child's `http_proxy` points at it (`no_proxy` keeps
/// loopback direct), so a request for any other address reaches this
/// listener instead of leaving the machine, whatever the build does; it
/// records what reached it.
fn network_trap() -> (StandIn, Vec<(&'static str, String)>) {
    let trap = StandIn::start(Behaviour::default());
    let url = format!("http://{}", trap.addr);
    let loopback = "127.0.0.1,localhost,::1".to_string();
    let env = vec![
        ("http_proxy", url.clone()),
        ("HTTP_PROXY", url.clone()),
        ("https_proxy", url.clone()),
        ("HTTPS_PROXY", url),
        ("no_proxy", loopback.clone()),
        ("NO_PROXY", loopback),
    ];
    (trap, env)
}

#[test]
fn a_registry_cannot_send_sizeguard_to_metadata_or_link_local_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, layers) = registry_with_image(tmp.path(), RegistryOpts::default());
    let (trap, env) = network_trap();
    let raw = &layers[2].blob_digest;
    for target in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/blob",
        "http://0.0.0.0/blob",
    ] {
        let proxy = FaultProxy::start(
            &reg.addr,
            vec![Rule::new(
                raw,
                100,
                Fault::Answer {
                    status: 307,
                    headers: vec![("Location".into(), target.into())],
                },
            )],
        );
        let t0 = Instant::now();
        let mut run = measure(&format!("{}/test/img:v1", proxy.addr), &[]);
        for (k, v) in &env {
            run = run.env(k, v);
        }
        let out = run.run();
        out.assert_measure_error(&[&[raw], &["link-local, metadata or unspecified"]]);
        // Refused once, not tried again until the deadline.
        let gets = proxy
            .seen()
            .iter()
            .filter(|s| s.path.contains(raw.as_str()))
            .count();
        assert_eq!(gets, 1, "{target}");
        eprintln!("redirect to {target}: refused in {:?}", t0.elapsed());
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    }

    // A token service named at the metadata address gets no request.
    let (dir, _, _) = build_image(&tmp.path().join("realm"));
    let registry = StandIn::start(Behaviour {
        layout: Some(dir),
        tokens: Some(TokenService {
            anonymous: true,
            token: ACCESS_TOKEN.into(),
            ..Default::default()
        }),
        realm: Some("http://169.254.169.254/latest/api/token".into()),
        ..Default::default()
    });
    let mut run = measure(&registry.reference("test/img:v1"), &[]);
    for (k, v) in &env {
        run = run.env(k, v);
    }
    run.run()
        .assert_measure_error(&[&["token service"], &["169.254.169.254"]]);
    assert!(trap.requests().is_empty(), "{:#?}", trap.requests());
}

#[test]
fn a_registry_on_loopback_may_redirect_to_loopback_storage() {
    // The redirect rules judge the target by where the registry itself is:
    // a registry on loopback may send its clients to storage on loopback
    // (the loopback test registries do); see the unit tests of
    // `source::registry::egress` for the private and public cases.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, layers) = build_image(tmp.path());
    let reg = Registry::start();
    reg.push_layout(&dir, "v1", "test/img:v1");
    let clean = clean_run(&reg, &[]);
    let storage = StandIn::start(Behaviour {
        layout: Some(dir),
        ..Default::default()
    });
    let rules = layers
        .iter()
        .map(|l| {
            let location = format!(
                "http://localhost:{}/v2/storage/blobs/{}",
                storage.addr.rsplit_once(':').unwrap().1,
                l.blob_digest
            );
            Rule::new(
                &l.blob_digest,
                1,
                Fault::Answer {
                    status: 302,
                    headers: vec![("Location".into(), location)],
                },
            )
        })
        .collect();
    let proxy = FaultProxy::start(&reg.addr, rules);
    let out = measure(&format!("{}/test/img:v1", proxy.addr), &[]).run();
    assert_same_figures(&out, &clean, &proxy.addr, &reg.addr);
    assert_eq!(storage.requests().len(), layers.len());
}

#[test]
fn secrets_never_appear_in_anything_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _, _) = build_image(tmp.path());
    // A registry whose token service takes an identity (refresh) token.
    let registry = StandIn::start(Behaviour {
        layout: Some(dir),
        tokens: Some(TokenService {
            refresh_token: Some(REFRESH_TOKEN.into()),
            token: ACCESS_TOKEN.into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let reference = registry.reference("test/img:v1");
    let config = |token: &str| {
        let d = tmp.path().join(format!("cfg-{}", token.len()));
        fs::create_dir_all(&d).unwrap();
        let cfg = json!({"auths": {registry.addr.clone(): {"identitytoken": token}}});
        fs::write(d.join("config.json"), cfg.to_string()).unwrap();
        d
    };
    let good = config(REFRESH_TOKEN);
    let bad = config("rt-wrong-but-also-secret");
    let run = |cfg: &Path, args: &[&str], log: &str| {
        guarded(
            fast_backoff(Run::new(args)),
            &[REFRESH_TOKEN, ACCESS_TOKEN, "rt-wrong-but-also-secret"],
        )
        .env("DOCKER_CONFIG", cfg)
        .env("RUST_LOG", log)
        .run()
    };
    // The JSON report, then the table with every log line there is.
    let out = run(
        &good,
        &["measure", "--format", "json", "-q", &reference],
        "",
    );
    out.assert_ok();
    for log in ["", "debug", "trace"] {
        let out = run(&good, &["-vv", "measure", &reference], log);
        assert_eq!(out.code, 0, "{}", out.stderr);
        // Refused: the error names where the credential came from, not what it is.
        let out = run(&bad, &["-vv", "measure", "-q", &reference], log);
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(out.stderr.contains("identitytoken"), "{}", out.stderr);
    }
    let posted = registry.requests();
    assert!(
        posted
            .iter()
            .any(|r| r.method == "POST" && r.body.contains("grant_type=refresh_token"))
    );

    // A password, right and wrong, with every log line (htpasswd registry).
    let (reg, _) = registry_with_image(
        &tmp.path().join("basic"),
        RegistryOpts {
            htpasswd: Some((USER.into(), PASSWORD.into())),
            ..Default::default()
        },
    );
    let reference = reg.reference("test/img:v1");
    for log in ["", "debug", "trace"] {
        for (stdin, code) in [(PASSWORD, 0), ("wrong-Qm4-secret", 3)] {
            let out = guarded(
                fast_backoff(Run::new(["-vv", "measure", "--format", "json", &reference])),
                &[stdin],
            )
            .args(["--username", USER, "--password-stdin"])
            .stdin(stdin)
            .secret(&basic_auth(USER, stdin))
            .env("RUST_LOG", log)
            .run();
            assert_eq!(out.code, code, "{}", out.stderr);
            if code == 0 {
                assert_eq!(out.json()["images"][0]["complete"], true);
            }
        }
    }
}

/// A run that must print none of `secrets`, nor their base64, and may log.
fn guarded(mut run: Run, secrets: &[&str]) -> Run {
    use base64::Engine;
    for s in secrets {
        run = run
            .secret(s)
            .secret(&base64::engine::general_purpose::STANDARD.encode(s));
    }
    for level in [" INFO", "DEBUG", " WARN", "TRACE", "ERROR"] {
        run = run.failure_may_also_print(level);
    }
    run
}

// ---------------------------------------------------------------------------
// Probing a loopback registry's scheme
// ---------------------------------------------------------------------------

#[test]
fn a_loopback_registry_that_resets_plain_http_is_tried_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, _) = registry_with_image(
        tmp.path(),
        RegistryOpts {
            tls: true,
            ..Default::default()
        },
    );
    let ca = reg.ca_cert.as_ref().unwrap().display().to_string();
    let clean = clean_run(&reg, &["--ca-file", &ca]);
    let relay = TlsOnlyRelay::start(&reg.addr);
    let out = measure(&format!("{}/test/img:v1", relay.addr), &["--ca-file", &ca]).run();
    assert_same_figures(&out, &clean, &relay.addr, &reg.addr);
    assert!(relay.resets() >= 1, "the plain-HTTP probe was never reset");
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for a time.
fn httpdate(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}
