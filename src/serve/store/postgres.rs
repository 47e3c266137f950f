//! The shared store: the SQLite store's schema on PostgreSQL, for several
//! `serve` replicas behind one load balancer.
//!
//! Replicas coordinate through the database only:
//!
//! - a delivery sent to several replicas is de-duplicated by the unique
//!   (registry, repository, digest) key and the (sender, event id) key:
//!   `INSERT ... ON CONFLICT DO NOTHING` makes a concurrent second insert
//!   wait for the first transaction and then insert nothing;
//! - workers claim with `SELECT ... FOR UPDATE SKIP LOCKED`, so two
//!   replicas never lease the same job, and neither waits on the other's
//!   row lock;
//! - a replica that dies leaves its leases to expire; any replica then
//!   claims the job again (unlike the SQLite store, leases are not taken
//!   back at start: other replicas may hold them).
//!
//! Every enqueue is one transaction, committed (PostgreSQL's default
//! `synchronous_commit`) before the receiver answers 202. The queue bound
//! is checked inside that transaction against the committed depth, so
//! replicas enqueueing at the same instant may overshoot it by what they
//! add together; it is a bound on backlog, not an exact count.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Acquire, Row};

use super::{
    Enqueued, Job, Judgement, PING_TIMEOUT, PRUNE_BATCH, Position, Pruned, Refused, SELECT_VERDICT,
    Store, Verdict, db_error, millis, now_ms, push_row, sender_name, verdict_row,
};
use crate::error::Error;
use crate::serve::events::Push;

/// The SQLite schema with PostgreSQL's types: BIGINT wherever the SQLite
/// store reads an `i64`.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jobs (
        id BIGSERIAL PRIMARY KEY,
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        tag TEXT,
        media_type TEXT,
        sender TEXT NOT NULL,
        event_id TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        due_at BIGINT NOT NULL,
        lease_until BIGINT,
        worker TEXT,
        last_error TEXT,
        outcome TEXT,
        report TEXT,
        error TEXT,
        duration_ms BIGINT,
        judged_at BIGINT,
        UNIQUE (registry, repository, digest)
    )",
    "CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, due_at)",
    "CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (state, lease_until)",
    "CREATE INDEX IF NOT EXISTS jobs_digest ON jobs (digest)",
    "CREATE INDEX IF NOT EXISTS jobs_repository ON jobs (repository, judged_at)",
    "CREATE TABLE IF NOT EXISTS events (
        sender TEXT NOT NULL,
        event_id TEXT NOT NULL,
        job_id BIGINT NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY (sender, event_id)
    )",
    // What retention deletes by.
    "CREATE INDEX IF NOT EXISTS jobs_judged ON jobs (state, judged_at)",
    "CREATE INDEX IF NOT EXISTS events_received ON events (received_at)",
];

/// Serialises schema creation between replicas starting together
/// (`CREATE ... IF NOT EXISTS` alone races on the catalog). The value is
/// arbitrary; only sizeguard takes it.
const SCHEMA_LOCK: i64 = 0x5123_6761_7264;

/// Connections per replica: receivers and workers share them.
const MAX_CONNECTIONS: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://...`) and creates the schema when
    /// missing. A URL that cannot be parsed is a usage error; a server that
    /// cannot be reached is transient.
    pub async fn open(url: &str) -> Result<PostgresStore, Error> {
        // The URL may hold a password: the errors do not quote it.
        let not_postgres = || Error::usage("--database-url is not a postgres:// URL");
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(not_postgres());
        }
        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|_| not_postgres())?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| db_error("connecting to PostgreSQL", e))?;
        let mut tx = pool
            .begin()
            .await
            .map_err(|e| db_error("creating the schema", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("creating the schema", e))?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("creating the schema", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| db_error("creating the schema", e))?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn enqueue(
        &self,
        pushes: Vec<Push>,
        max_depth: u64,
    ) -> Result<Result<Enqueued, Refused>, Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error("enqueueing", e))?;
        let mut tx = conn.begin().await.map_err(|e| db_error("enqueueing", e))?;
        let depth = count_depth(&mut tx)
            .await
            .map_err(|e| db_error("enqueueing", e))?;
        let done = insert_all(&mut tx, &pushes)
            .await
            .map_err(|e| db_error("enqueueing", e))?;
        if done.queued > 0 && depth + done.queued as u64 > max_depth {
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(Err(Refused::QueueFull { depth }));
        }
        tx.commit().await.map_err(|e| db_error("enqueueing", e))?;
        Ok(Ok(done))
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, Error> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = 'leased', attempts = attempts + 1, lease_until = $1, \
             worker = $2 \
             WHERE id = (SELECT id FROM jobs \
                         WHERE (state = 'queued' AND due_at <= $3) \
                            OR (state = 'leased' AND lease_until < $3) \
                         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now + millis(lease))
        .bind(worker)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("claiming a job", e))?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| db_error("reading a job", e);
        Ok(Some(Job {
            id: row.try_get("id").map_err(get)?,
            push: push_row(&row)?,
            attempts: row.try_get::<i64, _>("attempts").map_err(get)?.max(0) as u32,
            worker: worker.to_string(),
        }))
    }

    async fn renew(&self, job: &Job, lease: Duration) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND state = 'leased' AND worker = $3",
        )
        .bind(now_ms() + millis(lease))
        .bind(job.id)
        .bind(&job.worker)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("renewing a lease", e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, job: &Job, j: &Judgement) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_until = NULL, outcome = $1, report = $2, \
             error = $3, duration_ms = $4, judged_at = $5 \
             WHERE id = $6 AND state = 'leased' AND worker = $7",
        )
        .bind(j.outcome.as_str())
        .bind(&j.report)
        .bind(&j.error)
        .bind(millis(j.duration))
        .bind(now_ms())
        .bind(job.id)
        .bind(&job.worker)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("recording a verdict", e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_later(&self, job: &Job, retry_in: Duration, error: &str) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', due_at = $1, lease_until = NULL, worker = NULL, \
             last_error = $2 WHERE id = $3 AND state = 'leased' AND worker = $4",
        )
        .bind(now_ms() + millis(retry_in))
        .bind(error)
        .bind(job.id)
        .bind(&job.worker)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("giving a job back", e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn depth(&self) -> Result<u64, Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| db_error("counting the queue", e))?;
        count_depth(&mut conn)
            .await
            .map_err(|e| db_error("counting the queue", e))
    }

    async fn ping(&self) -> Result<(), Error> {
        // A fresh round-trip, not a pooled connection's last state: a pool
        // keeps connections to a server that has since gone away.
        let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        match tokio::time::timeout(PING_TIMEOUT, query).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(db_error("probing PostgreSQL", e)),
            Err(_) => Err(Error::transient(format!(
                "store: PostgreSQL did not answer within {PING_TIMEOUT:?}"
            ))),
        }
    }

    async fn verdict(&self, digest: &str) -> Result<Option<Verdict>, Error> {
        let row = sqlx::query(&format!(
            "{SELECT_VERDICT} WHERE digest = $1 AND state = 'done' \
             ORDER BY judged_at DESC LIMIT 1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("reading a verdict", e))?;
        row.map(|r| verdict_row(&r)).transpose()
    }

    async fn verdicts(
        &self,
        repository: &str,
        limit: u32,
        after: Option<Position>,
    ) -> Result<Vec<Verdict>, Error> {
        // Without a position, one past every row: the same query serves both.
        let after = after.unwrap_or(Position {
            judged_at_ms: i64::MAX,
            id: i64::MAX,
        });
        let rows = sqlx::query(&format!(
            "{SELECT_VERDICT} WHERE repository = $1 AND state = 'done' \
             AND (judged_at < $2 OR (judged_at = $2 AND id < $3)) \
             ORDER BY judged_at DESC, id DESC LIMIT $4"
        ))
        .bind(repository)
        .bind(after.judged_at_ms)
        .bind(after.id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("listing verdicts", e))?;
        rows.iter().map(verdict_row).collect()
    }

    async fn prune(&self, before_ms: i64) -> Result<Pruned, Error> {
        let what = |e| db_error("pruning old verdicts", e);
        let verdicts = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
             WHERE state = 'done' AND judged_at < $1 LIMIT $2)",
        )
        .bind(before_ms)
        .bind(PRUNE_BATCH)
        .execute(&self.pool)
        .await
        .map_err(what)?
        .rows_affected();
        let events = sqlx::query(
            "DELETE FROM events WHERE (sender, event_id) IN (SELECT sender, event_id \
             FROM events WHERE received_at < $1 LIMIT $2)",
        )
        .bind(before_ms)
        .bind(PRUNE_BATCH)
        .execute(&self.pool)
        .await
        .map_err(what)?
        .rows_affected();
        Ok(Pruned { verdicts, events })
    }
}

async fn count_depth(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state <> 'done'")
        .fetch_one(&mut *conn)
        .await?;
    Ok(n.max(0) as u64)
}

/// Inserts every push that is new by event id and by image; the others
/// are counted as duplicates (a new event id for a known image is still
/// remembered, so a retry of that delivery is recognised by id too).
async fn insert_all(conn: &mut PgConnection, pushes: &[Push]) -> Result<Enqueued, sqlx::Error> {
    let mut done = Enqueued::default();
    let now = now_ms();
    // Every replica takes row locks in the same order, so two replicas
    // enqueueing the same multi-event delivery cannot deadlock.
    let mut ordered: Vec<&Push> = pushes.iter().collect();
    ordered.sort_by(|a, b| {
        (
            &a.registry,
            &a.repository,
            a.digest.to_string(),
            &a.event_id,
        )
            .cmp(&(
                &b.registry,
                &b.repository,
                b.digest.to_string(),
                &b.event_id,
            ))
    });
    for push in ordered {
        let event_known: Option<i64> =
            sqlx::query_scalar("SELECT job_id FROM events WHERE sender = $1 AND event_id = $2")
                .bind(sender_name(push.sender))
                .bind(&push.event_id)
                .fetch_optional(&mut *conn)
                .await?;
        if event_known.is_some() {
            done.duplicates += 1;
            continue;
        }
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (registry, repository, digest, tag, media_type, sender, event_id, \
             received_at, state, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $8) \
             ON CONFLICT (registry, repository, digest) DO NOTHING RETURNING id",
        )
        .bind(&push.registry)
        .bind(&push.repository)
        .bind(push.digest.to_string())
        .bind(&push.tag)
        .bind(&push.media_type)
        .bind(sender_name(push.sender))
        .bind(&push.event_id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let job = match inserted {
            Some(id) => {
                done.queued += 1;
                id
            }
            None => {
                done.duplicates += 1;
                sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE registry = $1 AND repository = $2 AND digest = $3",
                )
                .bind(&push.registry)
                .bind(&push.repository)
                .bind(push.digest.to_string())
                .fetch_one(&mut *conn)
                .await?
            }
        };
        sqlx::query(
            "INSERT INTO events (sender, event_id, job_id, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(sender_name(push.sender))
        .bind(&push.event_id)
        .bind(job)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(done)
}

const JOB_COLUMNS: &str = "id, registry, repository, digest, tag, media_type, sender, event_id, \
                           attempts, received_at";
