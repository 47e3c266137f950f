//! The shared PostgreSQL store against a real server: a throwaway cluster
//! from Debian's `postgresql` (tests/integration/support/postgres.rs). Two stores on
//! one database stand for two replicas: every delivery goes to both, every
//! job is claimed by exactly one, every digest gets exactly one verdict;
//! then two `sizeguard serve` processes on one database, a registry
//! notifying both of every push.

#![cfg(feature = "server")]

use crate::support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sizeguard::digest::Digest;
use sizeguard::serve::events::{Push, Sender};
use sizeguard::serve::store::postgres::PostgresStore;
use sizeguard::serve::store::{
    Enqueued, Judgement, Outcome, Position, Pruned, Refused, Store, now_ms,
};
use support::postgres::Postgres;

fn push(event: &str, repository: &str, content: &str) -> Push {
    Push {
        event_id: event.to_string(),
        sender: Sender::Distribution,
        registry: "127.0.0.1:5000".to_string(),
        repository: repository.to_string(),
        tag: Some("v1".to_string()),
        digest: Digest::sha256(content.as_bytes()),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".to_string()),
    }
}

fn judgement(outcome: Outcome) -> Judgement {
    Judgement {
        outcome,
        report: Some("{\"kind\":\"check\"}".to_string()),
        error: None,
        duration: Duration::from_millis(7),
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_queue_and_judge_every_digest_once() {
    let pg = Postgres::start();
    let url = pg.database("replicas");
    // Both replicas create the schema at the same moment.
    let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
    let stores: [Arc<dyn Store>; 2] = [Arc::new(a.unwrap()), Arc::new(b.unwrap())];

    // 200 images in deliveries of 5 events, every delivery sent to both
    // replicas at once; some deliveries re-sent, as senders do.
    const IMAGES: usize = 200;
    let deliveries: Vec<Vec<Push>> = (0..IMAGES / 5)
        .map(|d| {
            (0..5)
                .map(|i| {
                    let n = d * 5 + i;
                    push(
                        &format!("e{n}"),
                        &format!("team/app{}", n % 7),
                        &format!("image {n}"),
                    )
                })
                .collect()
        })
        .collect();
    let mut sends = Vec::new();
    for (d, delivery) in deliveries.iter().enumerate() {
        let copies = if d % 4 == 0 { 3 } else { 2 };
        for c in 0..copies {
            let store = stores[c % 2].clone();
            let delivery = delivery.clone();
            sends.push(tokio::spawn(async move {
                store.enqueue(delivery, 100_000).await.unwrap().unwrap()
            }));
        }
    }
    let mut total = Enqueued::default();
    for s in sends {
        let e = s.await.unwrap();
        total.queued += e.queued;
        total.duplicates += e.duplicates;
    }
    assert_eq!(total.queued, IMAGES, "{total:?}");
    assert_eq!(stores[0].depth().await.unwrap(), IMAGES as u64);
    assert_eq!(stores[1].depth().await.unwrap(), IMAGES as u64);

    // Eight workers, four per replica, claim until the queue is empty.
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = stores[w % 2].clone();
        workers.push(tokio::spawn(async move {
            let mut judged = Vec::new();
            let name = format!("replica{}-worker{w}", w % 2);
            while let Some(job) = store.claim(&name, LEASE).await.unwrap() {
                assert!(
                    store
                        .complete(&job, &judgement(Outcome::Pass))
                        .await
                        .unwrap()
                );
                judged.push((job.id, job.push.digest.to_string(), job.attempts));
            }
            judged
        }));
    }
    let mut ids = HashSet::new();
    let mut digests = BTreeSet::new();
    for w in workers {
        for (id, digest, attempts) in w.await.unwrap() {
            assert!(ids.insert(id), "job {id} claimed twice");
            assert!(digests.insert(digest.clone()), "{digest} judged twice");
            assert_eq!(attempts, 1);
        }
    }
    assert_eq!(ids.len(), IMAGES);
    for delivery in &deliveries {
        for p in delivery {
            let digest = p.digest.to_string();
            assert!(digests.contains(&digest));
            for store in &stores {
                let v = store.verdict(&digest).await.unwrap().expect("a verdict");
                assert_eq!(v.judgement.outcome, Outcome::Pass);
                assert_eq!(v.attempts, 1);
                assert_eq!(v.push.repository, p.repository);
            }
        }
    }
    assert_eq!(stores[0].depth().await.unwrap(), 0);
    let listed = stores[1].verdicts("team/app3", 1000, None).await.unwrap();
    assert_eq!(listed.len(), (0..IMAGES).filter(|n| n % 7 == 3).count());
}

/// Listings page by (judgement time, id) and retention deletes old
/// verdicts and event ids, but no job still queued: as on SQLite.
#[tokio::test]
async fn listings_page_and_retention_prunes_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database("paging");
    let store = PostgresStore::open(&url).await.unwrap();
    const N: usize = 9;
    let pushes = (0..N)
        .map(|i| push(&format!("e{i}"), "app", &format!("image {i}")))
        .collect();
    store.enqueue(pushes, 100).await.unwrap().unwrap();
    let mut judged = Vec::new();
    while let Some(job) = store.claim("w", LEASE).await.unwrap() {
        assert!(
            store
                .complete(&job, &judgement(Outcome::Pass))
                .await
                .unwrap()
        );
        judged.push(job.push.digest.to_string());
    }
    store
        .enqueue(vec![push("waiting", "app", "waiting")], 100)
        .await
        .unwrap()
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.verdicts("app", 4, after).await.unwrap();
        seen.extend(page.iter().map(|v| v.push.digest.to_string()));
        let Some(last) = page.last() else { break };
        after = Some(Position {
            judged_at_ms: last.judged_at_ms,
            id: last.id,
        });
    }
    judged.reverse();
    assert_eq!(seen, judged);
    let latest = store.repositories(10).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].push.digest.to_string(), judged[0]);

    let pruned = store.prune(now_ms() + 1000).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            verdicts: N as u64,
            events: N as u64 + 1
        }
    );
    assert!(store.verdicts("app", 100, None).await.unwrap().is_empty());
    assert_eq!(store.depth().await.unwrap(), 1);
    assert!(store.claim("w", LEASE).await.unwrap().is_some());
}

#[tokio::test]
async fn leases_queue_bound_and_back_off_across_replicas() {
    let pg = Postgres::start();
    let url = pg.database("leases");
    let a = PostgresStore::open(&url).await.unwrap();
    let b = PostgresStore::open(&url).await.unwrap();

    a.enqueue(vec![push("e1", "app", "a"), push("e2", "app", "b")], 3)
        .await
        .unwrap()
        .unwrap();
    // Past the bound: the whole delivery is refused and nothing written.
    let refused = b
        .enqueue(vec![push("e3", "app", "c"), push("e4", "app", "d")], 3)
        .await
        .unwrap();
    assert_eq!(refused, Err(Refused::QueueFull { depth: 2 }));
    assert_eq!(b.depth().await.unwrap(), 2);
    let resent = b
        .enqueue(vec![push("e1", "app", "a"), push("e3", "app", "c")], 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resent,
        Enqueued {
            queued: 1,
            duplicates: 1
        }
    );

    // A replica that stops renewing loses its lease to the other.
    let lost = a
        .claim("a", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let taken = b.claim("b", LEASE).await.unwrap().unwrap();
    assert_eq!(taken.id, lost.id);
    assert_eq!(taken.attempts, 2);
    assert!(!a.renew(&lost, LEASE).await.unwrap());
    assert!(!a.complete(&lost, &judgement(Outcome::Fail)).await.unwrap());
    assert!(b.complete(&taken, &judgement(Outcome::Warn)).await.unwrap());
    let v = a
        .verdict(&taken.push.digest.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.judgement.outcome, Outcome::Warn);

    // A job given back waits for its back-off, then any replica takes it.
    let job = a.claim("a", LEASE).await.unwrap().unwrap();
    assert!(
        a.retry_later(&job, Duration::from_millis(300), "registry 503")
            .await
            .unwrap()
    );
    let started = Instant::now();
    let other = b.claim("b", LEASE).await.unwrap().unwrap();
    assert_ne!(other.id, job.id, "not before its back-off");
    assert!(b.complete(&other, &judgement(Outcome::Pass)).await.unwrap());
    assert!(b.claim("b", LEASE).await.unwrap().is_none());
    while started.elapsed() < Duration::from_millis(350) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = b.claim("b", LEASE).await.unwrap().unwrap();
    assert_eq!(again.id, job.id);
    assert_eq!(again.attempts, 2);
    assert!(b.complete(&again, &judgement(Outcome::Pass)).await.unwrap());
    assert_eq!(a.depth().await.unwrap(), 0, "{}", pg.log());
}

#[tokio::test]
async fn a_bad_database_url_is_a_usage_error_and_an_unreachable_one_transient() {
    use sizeguard::error::Kind;
    let e = PostgresStore::open("mysql://x").await.err().unwrap();
    assert_eq!(e.kind(), Kind::Usage);
    let port = support::registry::free_port();
    let e = PostgresStore::open(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), Kind::Transient, "{e:?}");
    assert!(!e.one_line().contains("hunter2"), "{e:?}");
}

/// Two `sizeguard serve` processes on one database behind no balancer at
/// all: the registry notifies both of every push (two endpoints), so every
/// event reaches both replicas; each pushed digest still gets exactly one
/// judgement, the verdict is readable from either replica, and the two
/// replicas' counters add up to one measurement per digest.
#[test]
fn two_serve_replicas_on_one_database_judge_each_push_once() {
    use support::layout::{Comp, LayerSpec, LayoutBuilder};
    use support::registry::{Registry, RegistryOpts};
    use support::serve::{SECRET, Service};

    let pg = Postgres::start();
    let url = pg.database("serve");
    let (addr_a, addr_b) = (Service::pick_addr(), Service::pick_addr());
    let reg = Registry::start_with(RegistryOpts {
        notifications: Some(format!("http://{addr_a}/v1/events/distribution")),
        also_notify: vec![format!("http://{addr_b}/v1/events/distribution")],
        notification_headers: vec![("Authorization".into(), format!("Bearer {SECRET}"))],
        ..Default::default()
    });
    let args = [
        "--database-url",
        url.as_str(),
        "--allow-registry",
        reg.addr.as_str(),
        "--baseline-tag",
        "v0",
        "--max-growth",
        "50%",
        "--workers",
        "2",
    ];
    let a = Service::start(&addr_a, &args);
    let b = Service::start(&addr_b, &args);

    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mut builder = LayoutBuilder::new(&layout);
    let base = builder.add_layer(
        &LayerSpec::new()
            .dir("usr/bin")
            .file("usr/bin/app", 1_000_000),
        Comp::Gzip,
    );
    const IMAGES: usize = 4;
    let images: Vec<_> = (0..IMAGES)
        .map(|i| {
            let layers = if i == 0 {
                vec![base.clone()]
            } else {
                let extra = builder.add_layer(
                    &LayerSpec::new().file(&format!("opt/data{i}"), 300_000 * i as u64),
                    Comp::Gzip,
                );
                vec![base.clone(), extra]
            };
            builder.add_tagged_image(&layers, &format!("v{i}"))
        })
        .collect();
    for i in 0..IMAGES {
        reg.push_layout(&layout, &format!("v{i}"), &format!("team/app:v{i}"));
    }
    // A second push of a digest already pushed (another tag) is no new work.
    reg.push_layout(&layout, "v1", "team/app:again");

    let wait = Duration::from_secs(120);
    for img in &images {
        let from_a = a.wait_verdict(&img.digest, wait);
        let from_b = b.wait_verdict(&img.digest, wait);
        assert_eq!(from_a["digest"], img.digest.as_str());
        assert_eq!(
            from_a["verdict"], from_b["verdict"],
            "{from_a:#}\n{from_b:#}"
        );
        assert_eq!(from_a["report"], from_b["report"]);
        assert!(
            matches!(from_a["verdict"].as_str(), Some("pass" | "fail")),
            "{from_a:#}"
        );
    }
    // Give the second registry endpoint time to deliver the last events too.
    let deadline = Instant::now() + Duration::from_secs(30);
    let queued = |s: &Service| s.metric("sizeguard_events_queued_total{sender=\"distribution\"}");
    let dups = |s: &Service| s.metric("sizeguard_events_duplicate_total{sender=\"distribution\"}");
    while (dups(&a) + dups(&b)) < (IMAGES + 2) as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let judged = |s: &Service| s.metric("sizeguard_measurement_duration_seconds_count");
    assert_eq!(
        judged(&a) + judged(&b),
        IMAGES as f64,
        "each digest judged exactly once across both replicas\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // Every push reached both replicas: one queued it, the other found it.
    assert_eq!(queued(&a) + queued(&b), IMAGES as f64);
    assert!(dups(&a) + dups(&b) >= (IMAGES + 2) as f64);
    // Each replica keeps the depth in memory and reads it again from the
    // database every 15 s: the other replica's verdicts show by then.
    let deadline = Instant::now() + Duration::from_secs(40);
    while a.metric("sizeguard_queue_depth") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "queue depth never 0:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let listed = b.get("/v1/verdicts?repository=team/app&limit=50").json();
    assert_eq!(listed["verdicts"].as_array().unwrap().len(), IMAGES);
}

/// `/readyz` asks the database itself: with PostgreSQL stopped under a
/// running service it answers 503 and logs why, while `/healthz` (the
/// process is alive) stays 200; once PostgreSQL is back, 200 again and
/// deliveries are queued.
#[test]
fn readyz_follows_the_database_and_healthz_does_not() {
    use support::serve::Service;

    let pg = Postgres::start();
    let url = pg.database("ready");
    let addr = Service::pick_addr();
    let svc = Service::start(
        &addr,
        &[
            "--database-url",
            url.as_str(),
            "--allow-registry",
            "127.0.0.1:9",
        ],
    );
    assert_eq!(svc.get("/readyz").status, 200, "{}", svc.log());

    /// The first `/readyz` answer with `status` within `within`.
    fn readyz_until(svc: &Service, status: u16, within: Duration) -> support::serve::Answer {
        let deadline = Instant::now() + within;
        loop {
            let started = Instant::now();
            let a = svc.get("/readyz");
            // The probe is bounded: a down database is reported, not waited on.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "/readyz took {:?}",
                started.elapsed()
            );
            if a.status == status {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz still {} {} after {within:?}:\n{}",
                a.status,
                a.body,
                svc.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pg.stop();
    let down = readyz_until(&svc, 503, Duration::from_secs(20));
    // The probe is open to anyone: the reason is for the log only.
    assert_eq!(down.body, "not ready\n");
    let log = svc.log();
    let reason = log
        .lines()
        .rfind(|l| l.contains("not ready: the store does not answer"))
        .unwrap_or_else(|| panic!("no reason logged:\n{log}"));
    assert!(reason.contains("PostgreSQL"), "{reason}");
    assert!(!reason.contains("postgres://"), "{reason}");
    assert_eq!(svc.get("/healthz").status, 200);

    pg.start_again();
    readyz_until(&svc, 200, Duration::from_secs(30));
    assert_eq!(svc.get("/healthz").status, 200);
    let digest = format!("sha256:{:064x}", 7);
    let body = serde_json::json!({"events": [{
        "id": "after-restart",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "repository": "team/app",
            "tag": "v1",
        },
        "request": {"host": "127.0.0.1:9"},
    }]});
    let a = svc.post_event("distribution", body.to_string().as_bytes());
    assert_eq!(a.status, 202, "{}\n{}", a.body, svc.log());
}
