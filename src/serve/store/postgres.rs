//! The shared store: the SQLite store's schema and statements on
//! PostgreSQL, for several `serve` replicas behind one load balancer.
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
use sqlx::Acquire;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use super::sql::{self, POSTGRES};
use super::{
    Enqueued, Job, Judgement, PING_TIMEOUT, PRUNE_BATCH, Position, Pruned, Refused, Store,
    VerdictRecord, db_error, job_row, millis, now_ms, sender_name, verdict_row,
};
use crate::error::Error;
use crate::serve::events::Push;

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
        for statement in POSTGRES.schema() {
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
        let row = sqlx::query(POSTGRES.claim)
            .bind(now + millis(lease))
            .bind(worker)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("claiming a job", e))?;
        row.map(|row| job_row(&row, worker)).transpose()
    }

    async fn renew(&self, job: &Job, lease: Duration) -> Result<bool, Error> {
        let done = sqlx::query(sql::RENEW)
            .bind(now_ms() + millis(lease))
            .bind(job.id)
            .bind(&job.worker)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("renewing a lease", e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, job: &Job, j: &Judgement) -> Result<bool, Error> {
        let done = sqlx::query(sql::COMPLETE)
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
        let done = sqlx::query(sql::RETRY)
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

    async fn verdict(&self, digest: &str) -> Result<Option<VerdictRecord>, Error> {
        let row = sqlx::query(sql::VERDICT_OF_DIGEST)
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
    ) -> Result<Vec<VerdictRecord>, Error> {
        let after = after.unwrap_or(Position::TOP);
        let rows = sqlx::query(sql::VERDICTS_PAGE)
            .bind(repository)
            .bind(after.judged_at_ms)
            .bind(after.id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing verdicts", e))?;
        rows.iter().map(verdict_row).collect()
    }

    async fn repositories(&self, limit: u32) -> Result<Vec<VerdictRecord>, Error> {
        let rows = sqlx::query(sql::LATEST_PER_REPOSITORY)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing repositories", e))?;
        rows.iter().map(verdict_row).collect()
    }

    async fn prune(&self, before_ms: i64) -> Result<Pruned, Error> {
        let what = |e| db_error("pruning old verdicts", e);
        let verdicts = sqlx::query(sql::PRUNE_VERDICTS)
            .bind(before_ms)
            .bind(PRUNE_BATCH)
            .execute(&self.pool)
            .await
            .map_err(what)?
            .rows_affected();
        let events = sqlx::query(sql::PRUNE_EVENTS)
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
    let n: i64 = sqlx::query_scalar(sql::COUNT_DEPTH)
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
        let event_known: Option<i64> = sqlx::query_scalar(sql::EVENT_JOB)
            .bind(sender_name(push.sender))
            .bind(&push.event_id)
            .fetch_optional(&mut *conn)
            .await?;
        if event_known.is_some() {
            done.duplicates += 1;
            continue;
        }
        let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_JOB)
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
                sqlx::query_scalar(sql::IMAGE_JOB)
                    .bind(&push.registry)
                    .bind(&push.repository)
                    .bind(push.digest.to_string())
                    .fetch_one(&mut *conn)
                    .await?
            }
        };
        sqlx::query(sql::INSERT_EVENT)
            .bind(sender_name(push.sender))
            .bind(&push.event_id)
            .bind(job)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(done)
}
