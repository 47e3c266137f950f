use std::sync::Arc;
use std::time::Duration;

use super::sqlite::SqliteStore;
use super::*;
use crate::digest::Digest;

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
        duration: Duration::from_millis(12),
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn duplicates_by_event_id_and_by_image_are_queued_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let first = store
        .enqueue(vec![push("e1", "app", "a"), push("e2", "app", "b")], 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        Enqueued {
            queued: 2,
            duplicates: 0
        }
    );
    // The same delivery again, a new event for a known image, the same image
    // twice in one delivery, and the same digest in another repository.
    let again = store
        .enqueue(
            vec![
                push("e1", "app", "a"),
                push("e3", "app", "b"),
                push("e4", "app", "c"),
                push("e5", "app", "c"),
                push("e6", "other", "a"),
            ],
            100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again,
        Enqueued {
            queued: 2,
            duplicates: 3
        }
    );
    assert_eq!(store.depth().await.unwrap(), 4);
}

#[tokio::test]
async fn a_full_queue_refuses_the_whole_batch_but_not_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(vec![push("e1", "app", "a"), push("e2", "app", "b")], 3)
        .await
        .unwrap()
        .unwrap();
    let refused = store
        .enqueue(vec![push("e3", "app", "c"), push("e4", "app", "d")], 3)
        .await
        .unwrap();
    assert_eq!(refused, Err(Refused::QueueFull { depth: 2 }));
    assert_eq!(store.depth().await.unwrap(), 2);
    // Nothing of the refused batch was written: it is new when re-sent.
    let resent = store
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
    let only_duplicates = store
        .enqueue(vec![push("e2", "app", "b")], 3)
        .await
        .unwrap();
    assert_eq!(
        only_duplicates,
        Ok(Enqueued {
            queued: 0,
            duplicates: 1
        })
    );
}

#[tokio::test]
async fn jobs_are_claimed_in_order_judged_once_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(vec![push("e1", "app", "a"), push("e2", "app", "b")], 100)
        .await
        .unwrap()
        .unwrap();
    let a = store.claim("w1", LEASE).await.unwrap().unwrap();
    let b = store.claim("w2", LEASE).await.unwrap().unwrap();
    assert_eq!(a.push.event_id, "e1");
    assert_eq!(b.push.event_id, "e2");
    assert_eq!(a.attempts, 1);
    assert!(store.claim("w3", LEASE).await.unwrap().is_none());
    assert!(
        store
            .verdict(&a.push.digest.to_string())
            .await
            .unwrap()
            .is_none()
    );

    assert!(store.complete(&a, &judgement(Outcome::Pass)).await.unwrap());
    // A second completion of the same lease changes nothing.
    assert!(!store.complete(&a, &judgement(Outcome::Fail)).await.unwrap());
    assert!(store.complete(&b, &judgement(Outcome::Fail)).await.unwrap());
    assert_eq!(store.depth().await.unwrap(), 0);

    let v = store
        .verdict(&a.push.digest.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.judgement.outcome, Outcome::Pass);
    assert_eq!(v.push, a.push);
    let listed = store.verdicts("app", 10, None).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(store.verdicts("app", 1, None).await.unwrap().len(), 1);
    assert!(store.verdicts("other", 10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_the_old_holder_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(vec![push("e1", "app", "a")], 100)
        .await
        .unwrap()
        .unwrap();
    let crashed = store
        .claim("w1", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store.claim("w2", LEASE).await.unwrap().unwrap();
    assert_eq!(second.id, crashed.id);
    assert_eq!(second.attempts, 2);
    assert!(!store.renew(&crashed, LEASE).await.unwrap());
    assert!(
        !store
            .complete(&crashed, &judgement(Outcome::Pass))
            .await
            .unwrap()
    );
    assert!(store.renew(&second, LEASE).await.unwrap());
    assert!(
        store
            .complete(&second, &judgement(Outcome::Warn))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_retried_job_waits_for_its_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .enqueue(vec![push("e1", "app", "a")], 100)
        .await
        .unwrap()
        .unwrap();
    let job = store.claim("w1", LEASE).await.unwrap().unwrap();
    assert!(
        store
            .retry_later(&job, Duration::from_millis(200), "registry unavailable")
            .await
            .unwrap()
    );
    assert!(store.claim("w1", LEASE).await.unwrap().is_none());
    assert_eq!(store.depth().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = store.claim("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);
}

#[tokio::test]
async fn the_queue_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store
            .enqueue(vec![push("e1", "app", "a"), push("e2", "app", "b")], 100)
            .await
            .unwrap()
            .unwrap();
        let job = store.claim("w1", LEASE).await.unwrap().unwrap();
        store
            .complete(&job, &judgement(Outcome::Pass))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.depth().await.unwrap(), 1);
    let job = store.claim("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(job.push.event_id, "e2");
    let dup = store
        .enqueue(vec![push("e1", "app", "a")], 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dup.duplicates, 1);
}

/// Concurrent enqueues share transactions: many more events than commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let n = 2000;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue(
                        vec![push(&format!("e{i}"), "app", &format!("{i}"))],
                        1_000_000,
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().unwrap().queued, 1);
    }
    let elapsed = started.elapsed();
    assert_eq!(store.depth().await.unwrap(), n);
    // One fsync per event would take seconds on most disks; this only
    // guards against losing the batching altogether.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[tokio::test]
async fn one_process_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _store = SqliteStore::open(dir.path()).await.unwrap();
    let err = SqliteStore::open(dir.path()).await.err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test]
async fn the_readiness_probe_reads_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.ping().await.unwrap();
    // What a disk or an operator can do to the file under a running
    // service: the probe reads it, and says so.
    let file = dir.path().join(super::sqlite::FILE_NAME);
    std::fs::write(&file, vec![b'x'; 64 * 1024]).unwrap();
    let _ = std::fs::remove_file(dir.path().join(format!("{}-wal", super::sqlite::FILE_NAME)));
    let e = store.ping().await.unwrap_err();
    assert!(e.one_line().contains("probing the database file"), "{e:?}");
}

/// Enqueues, claims and judges `n` images of `repository`; their digests,
/// in the order judged.
async fn judged(store: &SqliteStore, repository: &str, n: usize) -> Vec<String> {
    let pushes = (0..n)
        .map(|i| {
            push(
                &format!("{repository}-{i}"),
                repository,
                &format!("{repository}{i}"),
            )
        })
        .collect();
    store.enqueue(pushes, 10_000).await.unwrap().unwrap();
    let mut order = Vec::new();
    while let Some(job) = store.claim("w", LEASE).await.unwrap() {
        assert!(
            store
                .complete(&job, &judgement(Outcome::Pass))
                .await
                .unwrap()
        );
        order.push(job.push.digest.to_string());
    }
    order
}

#[tokio::test]
async fn each_repository_is_listed_once_with_its_latest_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let b = judged(&store, "b/app", 3).await;
    let a = judged(&store, "a/app", 2).await;
    // Queued, not judged: not a verdict yet.
    store
        .enqueue(vec![push("later", "c/app", "later")], 100)
        .await
        .unwrap()
        .unwrap();
    let listed = store.repositories(10).await.unwrap();
    let names: Vec<_> = listed.iter().map(|v| v.push.repository.as_str()).collect();
    assert_eq!(names, ["a/app", "b/app"]);
    assert_eq!(listed[0].push.digest.to_string(), a[1]);
    assert_eq!(listed[1].push.digest.to_string(), b[2]);
    assert_eq!(store.repositories(1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn listings_page_through_every_verdict_once_in_a_stable_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    // Many judged within the same millisecond: the id breaks the tie.
    let mut expected = judged(&store, "app", 25).await;
    expected.reverse();
    judged(&store, "other", 3).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.verdicts("app", 7, after).await.unwrap();
        seen.extend(page.iter().map(|v| v.push.digest.to_string()));
        let Some(last) = page.last() else { break };
        let position = Position {
            judged_at_ms: last.judged_at_ms,
            id: last.id,
        };
        assert_eq!(Position::from_cursor(&position.cursor()), Some(position));
        after = Some(position);
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen, expected);
    for bad in [
        "",
        "zz",
        &"0".repeat(32),
        &"f".repeat(32),
        &"A".repeat(32),
        "0000000000000001000000000000000g",
    ] {
        assert_eq!(Position::from_cursor(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn retention_deletes_old_verdicts_and_event_ids_but_no_queued_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let old = judged(&store, "app", 3).await;
    store
        .enqueue(vec![push("waiting", "app", "waiting")], 100)
        .await
        .unwrap()
        .unwrap();
    let pruned = store.prune(now_ms() + 1000).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            verdicts: 3,
            events: 4
        }
    );
    for d in &old {
        assert!(store.verdict(d).await.unwrap().is_none());
    }
    assert_eq!(store.depth().await.unwrap(), 1);
    assert!(store.claim("w", LEASE).await.unwrap().is_some());
    // Nothing older than a past instant is left.
    assert_eq!(store.prune(0).await.unwrap(), Pruned::default());
}

#[tokio::test]
async fn the_data_directory_and_database_are_private_to_their_user() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let store = SqliteStore::open(&dir).await.unwrap();
    judged(&store, "app", 1).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for name in [
        super::sqlite::FILE_NAME.to_string(),
        format!("{}-wal", super::sqlite::FILE_NAME),
    ] {
        assert_eq!(mode(&dir.join(&name)), 0o600, "{name}");
    }
    drop(store);

    // A directory and file left readable by an earlier version are narrowed.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.join(super::sqlite::FILE_NAME);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = SqliteStore::open(&dir).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test]
async fn a_signed_github_body_replayed_under_new_delivery_ids_is_remembered_once() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let body = serde_json::json!({
        "action": "published",
        "package": {
            "name": "app",
            "package_type": "CONTAINER",
            "owner": {"login": "octo"},
            "package_version": {
                "version": format!("sha256:{}", "a".repeat(64)),
                "package_url": "ghcr.io/octo/app:v1",
            },
        },
    })
    .to_string();
    for delivery in ["d-1", "d-2", "d-3", "d-4"] {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-github-event", "package".parse().unwrap());
        headers.insert("x-github-delivery", delivery.parse().unwrap());
        let pushes: Vec<Push> = crate::serve::events::github::parse(body.as_bytes(), &headers)
            .unwrap()
            .into_iter()
            .map(|i| match i {
                crate::serve::events::Incoming::Push(p) => p,
                other => panic!("{other:?}"),
            })
            .collect();
        store.enqueue(pushes, 100).await.unwrap().unwrap();
    }
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.path().join(super::sqlite::FILE_NAME).display()
    ))
    .await
    .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(store.depth().await.unwrap(), 1);
}
