//! The embedded store: one SQLite file in WAL mode.
//!
//! Every write goes through one writer task that owns the only writing
//! connection. It takes whatever commands have piled up while the previous
//! transaction committed, runs them all in one transaction, and answers each
//! caller only after that commit (group commit): a thousand receivers
//! waiting on a thousand fsyncs become a few dozen fsyncs. Readers use a
//! separate pool; WAL lets them read while the writer writes.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::sql::{self, SQLITE};
use super::{
    Enqueued, Job, Judgement, PING_TIMEOUT, PRUNE_BATCH, Position, Pruned, Refused, Store,
    VerdictRecord, db_error, job_row, millis, now_ms, sender_name, verdict_row,
};
use crate::error::Error;
use crate::serve::events::Push;

pub const FILE_NAME: &str = "sizeguard-serve.db";

/// Commands one transaction takes at most: bounds the latency a large
/// burst adds to the first caller of a batch.
const MAX_BATCH: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Command {
    Enqueue {
        pushes: Vec<Push>,
        max_depth: u64,
        reply: Reply<Result<Enqueued, Refused>>,
    },
    Claim {
        worker: String,
        lease: Duration,
        reply: Reply<Option<Job>>,
    },
    Renew {
        job: Job,
        lease: Duration,
        reply: Reply<bool>,
    },
    Complete {
        job: Job,
        judgement: Judgement,
        reply: Reply<bool>,
    },
    Retry {
        job: Job,
        retry_in: Duration,
        error: String,
        reply: Reply<bool>,
    },
    Prune {
        before_ms: i64,
        reply: Reply<Pruned>,
    },
}

pub struct SqliteStore {
    /// Held for the store's life: one process per data directory, since
    /// each one takes back every lease at start.
    _lock: std::fs::File,
    writer: mpsc::Sender<Command>,
    readers: SqlitePool,
    /// Jobs not judged yet, kept by the writer (the only one that changes it).
    depth: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating when missing) the store in `dir`.
    pub async fn open(dir: &Path) -> Result<SqliteStore, Error> {
        private_dir(dir)?;
        let lock_path = dir.join("lock");
        let lock = private_file(&lock_path)?;
        lock.try_lock().map_err(|_| {
            Error::usage(format!(
                "data directory {} is in use by another sizeguard serve \
                 (several replicas share a PostgreSQL database instead)",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        // Created here rather than by SQLite, whose mode follows the umask:
        // the file holds whole reports. SQLite gives its -wal and -shm
        // files the mode of the database file.
        drop(private_file(&path)?);
        for suffix in ["-wal", "-shm"] {
            let side = dir.join(format!("{FILE_NAME}{suffix}"));
            if side.exists() {
                drop(private_file(&side)?);
            }
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| db_error("options", e))?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the caller is answered, which
            // is what the 202 promises.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| db_error(&format!("opening {}", path.display()), e))?;
        for statement in SQLITE.schema() {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .map_err(|e| db_error("creating the schema", e))?;
        }
        // Only this process uses the file (the lock above): whatever is
        // leased was leased by a process that died, and is due again now.
        let released = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_until = NULL, worker = NULL \
             WHERE state = 'leased'",
        )
        .execute(&mut conn)
        .await
        .map_err(|e| db_error("taking back leases", e))?;
        if released.rows_affected() > 0 {
            tracing::info!(
                jobs = released.rows_affected(),
                "jobs left leased by a previous run are queued again"
            );
        }
        let depth: i64 = sqlx::query_scalar(sql::COUNT_DEPTH)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_error("counting the queue", e))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| db_error("opening readers", e))?;
        let depth = Arc::new(AtomicU64::new(depth.max(0) as u64));
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(conn, rx, depth.clone()));
        Ok(SqliteStore {
            _lock: lock,
            writer: tx,
            readers,
            depth,
        })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(make(tx))
            .await
            .map_err(|_| Error::transient("store: the writer stopped"))?;
        rx.await
            .map_err(|_| Error::transient("store: the writer stopped"))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(
        &self,
        pushes: Vec<Push>,
        max_depth: u64,
    ) -> Result<Result<Enqueued, Refused>, Error> {
        self.call(|reply| Command::Enqueue {
            pushes,
            max_depth,
            reply,
        })
        .await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, Error> {
        let worker = worker.to_string();
        self.call(|reply| Command::Claim {
            worker,
            lease,
            reply,
        })
        .await
    }

    async fn renew(&self, job: &Job, lease: Duration) -> Result<bool, Error> {
        let job = job.clone();
        self.call(|reply| Command::Renew { job, lease, reply })
            .await
    }

    async fn complete(&self, job: &Job, judgement: &Judgement) -> Result<bool, Error> {
        let (job, judgement) = (job.clone(), judgement.clone());
        self.call(|reply| Command::Complete {
            job,
            judgement,
            reply,
        })
        .await
    }

    async fn retry_later(&self, job: &Job, retry_in: Duration, error: &str) -> Result<bool, Error> {
        let (job, error) = (job.clone(), error.to_string());
        self.call(|reply| Command::Retry {
            job,
            retry_in,
            error,
            reply,
        })
        .await
    }

    async fn depth(&self) -> Result<u64, Error> {
        Ok(self.depth.load(Ordering::Relaxed))
    }

    async fn ping(&self) -> Result<(), Error> {
        if self.writer.is_closed() {
            return Err(Error::transient("store: the writer stopped"));
        }
        let query = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE id = 0")
            .fetch_one(&self.readers);
        match tokio::time::timeout(PING_TIMEOUT, query).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(db_error("probing the database file", e)),
            Err(_) => Err(Error::transient(format!(
                "store: the database file did not answer within {PING_TIMEOUT:?}"
            ))),
        }
    }

    async fn verdict(&self, digest: &str) -> Result<Option<VerdictRecord>, Error> {
        let row = sqlx::query(sql::VERDICT_OF_DIGEST)
            .bind(digest)
            .fetch_optional(&self.readers)
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
            .fetch_all(&self.readers)
            .await
            .map_err(|e| db_error("listing verdicts", e))?;
        rows.iter().map(verdict_row).collect()
    }

    async fn repositories(&self, limit: u32) -> Result<Vec<VerdictRecord>, Error> {
        let rows = sqlx::query(sql::LATEST_PER_REPOSITORY)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(|e| db_error("listing repositories", e))?;
        rows.iter().map(verdict_row).collect()
    }

    async fn prune(&self, before_ms: i64) -> Result<Pruned, Error> {
        self.call(|reply| Command::Prune { before_ms, reply }).await
    }
}

/// The data directory, created `0700` when missing. One that exists must
/// belong to this user (another user could read or swap the database); its
/// mode is narrowed to `0700` when wider.
fn private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let shown = || format!("data directory {}", dir.display());
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(shown(), e))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(shown(), e))?;
    if !meta.is_dir() {
        return Err(Error::usage(format!("{} is not a directory", shown())));
    }
    let uid = crate::measure::cache::effective_uid();
    if meta.uid() != uid {
        return Err(Error::usage(format!(
            "{} belongs to another user (uid {}, this process runs as {uid}): \
             give a directory of this user's, or one sizeguard may create",
            shown(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(shown(), e))?;
        tracing::info!(dir = %dir.display(), "data directory made private to this user (0700)");
    }
    Ok(())
}

/// A file of the data directory, opened (created when missing) with mode
/// `0600`, and narrowed to it when it was wider.
fn private_file(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("{}", path.display()), e))?;
    let mode = file
        .metadata()
        .map_err(|e| Error::io(format!("{}", path.display()), e))?
        .permissions();
    if std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("{}", path.display()), e))?;
    }
    Ok(file)
}

/// The writer task: one transaction per batch of commands, each answered
/// after its batch committed.
async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Command>,
    depth: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut current = depth.load(Ordering::Relaxed);
        let mut answers = Vec::with_capacity(batch.len());
        let result = async {
            let mut tx = conn.begin().await?;
            for command in batch.drain(..) {
                answers.push(execute(&mut tx, command, &mut current).await?);
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                depth.store(current, Ordering::Relaxed);
                for answer in answers {
                    answer.send();
                }
            }
            Err(e) => {
                // The whole batch rolled back; commands not reached yet are
                // still in `batch` and fail with it.
                let message = format!("store: writing a batch: {e}");
                tracing::error!(error = %e, "store: a batch failed and was rolled back");
                for answer in answers {
                    answer.fail(&message);
                }
                for command in batch.drain(..) {
                    Answer::of(command).fail(&message);
                }
            }
        }
    }
}

/// A command's answer, held until its batch committed.
enum Answer {
    Enqueue(Reply<Result<Enqueued, Refused>>, Result<Enqueued, Refused>),
    Claim(Reply<Option<Job>>, Option<Job>),
    Flag(Reply<bool>, bool),
    Pruned(Reply<Pruned>, Pruned),
}

impl Answer {
    fn send(self) {
        // A caller that gave up waiting (its request was dropped) needs no answer.
        let _ = match self {
            Answer::Enqueue(r, v) => r.send(Ok(v)).is_ok(),
            Answer::Claim(r, v) => r.send(Ok(v)).is_ok(),
            Answer::Flag(r, v) => r.send(Ok(v)).is_ok(),
            Answer::Pruned(r, v) => r.send(Ok(v)).is_ok(),
        };
    }

    fn fail(self, message: &str) {
        let e = || Error::transient(message);
        let _ = match self {
            Answer::Enqueue(r, _) => r.send(Err(e())).is_ok(),
            Answer::Claim(r, _) => r.send(Err(e())).is_ok(),
            Answer::Flag(r, _) => r.send(Err(e())).is_ok(),
            Answer::Pruned(r, _) => r.send(Err(e())).is_ok(),
        };
    }

    /// The answer slot of a command that never ran.
    fn of(command: Command) -> Answer {
        match command {
            Command::Enqueue { reply, .. } => Answer::Enqueue(reply, Ok(Enqueued::default())),
            Command::Claim { reply, .. } => Answer::Claim(reply, None),
            Command::Renew { reply, .. }
            | Command::Complete { reply, .. }
            | Command::Retry { reply, .. } => Answer::Flag(reply, false),
            Command::Prune { reply, .. } => Answer::Pruned(reply, Pruned::default()),
        }
    }
}

async fn execute(
    conn: &mut SqliteConnection,
    command: Command,
    depth: &mut u64,
) -> Result<Answer, sqlx::Error> {
    Ok(match command {
        Command::Enqueue {
            pushes,
            max_depth,
            reply,
        } => Answer::Enqueue(reply, enqueue(conn, pushes, max_depth, depth).await?),
        Command::Claim {
            worker,
            lease,
            reply,
        } => Answer::Claim(reply, claim(conn, &worker, lease).await?),
        Command::Renew { job, lease, reply } => {
            let done = sqlx::query(sql::RENEW)
                .bind(now_ms() + millis(lease))
                .bind(job.id)
                .bind(&job.worker)
                .execute(&mut *conn)
                .await?;
            Answer::Flag(reply, done.rows_affected() == 1)
        }
        Command::Complete {
            job,
            judgement,
            reply,
        } => {
            let done = complete(conn, &job, &judgement).await?;
            if done {
                *depth = depth.saturating_sub(1);
            }
            Answer::Flag(reply, done)
        }
        Command::Retry {
            job,
            retry_in,
            error,
            reply,
        } => {
            let done = sqlx::query(sql::RETRY)
                .bind(now_ms() + millis(retry_in))
                .bind(&error)
                .bind(job.id)
                .bind(&job.worker)
                .execute(&mut *conn)
                .await?;
            Answer::Flag(reply, done.rows_affected() == 1)
        }
        Command::Prune { before_ms, reply } => {
            let verdicts = sqlx::query(sql::PRUNE_VERDICTS)
                .bind(before_ms)
                .bind(PRUNE_BATCH)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            let events = sqlx::query(sql::PRUNE_EVENTS)
                .bind(before_ms)
                .bind(PRUNE_BATCH)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Answer::Pruned(reply, Pruned { verdicts, events })
        }
    })
}

/// Whether a push is new: neither its event id nor its image is known.
/// Returns the job an already-known image has.
async fn known(
    conn: &mut SqliteConnection,
    push: &Push,
) -> Result<(bool, Option<i64>), sqlx::Error> {
    let event: Option<i64> = sqlx::query_scalar(sql::EVENT_JOB)
        .bind(sender_name(push.sender))
        .bind(&push.event_id)
        .fetch_optional(&mut *conn)
        .await?;
    let job: Option<i64> = sqlx::query_scalar(sql::IMAGE_JOB)
        .bind(&push.registry)
        .bind(&push.repository)
        .bind(push.digest.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok((event.is_some(), job))
}

async fn enqueue(
    conn: &mut SqliteConnection,
    pushes: Vec<Push>,
    max_depth: u64,
    depth: &mut u64,
) -> Result<Result<Enqueued, Refused>, sqlx::Error> {
    // Decide first, write after: a refused batch writes nothing.
    let mut fresh = Vec::new();
    let mut duplicates = 0;
    let mut seen = std::collections::HashSet::new();
    for push in pushes {
        let (event_known, job) = known(conn, &push).await?;
        let image = (
            push.registry.clone(),
            push.repository.clone(),
            push.digest.clone(),
        );
        if event_known {
            duplicates += 1;
        } else if job.is_some() || !seen.insert(image) {
            duplicates += 1;
            // A new event for a known image: remember its id, so a retry of
            // this delivery is recognised by id too.
            if let Some(job) = job {
                remember_event(conn, &push, job).await?;
            }
        } else {
            fresh.push(push);
        }
    }
    if !fresh.is_empty() && *depth + fresh.len() as u64 > max_depth {
        return Ok(Err(Refused::QueueFull { depth: *depth }));
    }
    let now = now_ms();
    for push in &fresh {
        // Never a conflict: `known` found no job for this image in this same
        // transaction, and this task is the only writer.
        let id: i64 = sqlx::query_scalar(sql::INSERT_JOB)
            .bind(&push.registry)
            .bind(&push.repository)
            .bind(push.digest.to_string())
            .bind(&push.tag)
            .bind(&push.media_type)
            .bind(sender_name(push.sender))
            .bind(&push.event_id)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        remember_event(conn, push, id).await?;
    }
    *depth += fresh.len() as u64;
    Ok(Ok(Enqueued {
        queued: fresh.len(),
        duplicates,
    }))
}

async fn remember_event(
    conn: &mut SqliteConnection,
    push: &Push,
    job: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql::INSERT_EVENT)
        .bind(sender_name(push.sender))
        .bind(&push.event_id)
        .bind(job)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn claim(
    conn: &mut SqliteConnection,
    worker: &str,
    lease: Duration,
) -> Result<Option<Job>, sqlx::Error> {
    let now = now_ms();
    let row = sqlx::query(SQLITE.claim)
        .bind(now + millis(lease))
        .bind(worker)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| job_row(&row, worker))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(e.one_line().into()))
}

async fn complete(
    conn: &mut SqliteConnection,
    job: &Job,
    j: &Judgement,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(sql::COMPLETE)
        .bind(j.outcome.as_str())
        .bind(&j.report)
        .bind(&j.error)
        .bind(millis(j.duration))
        .bind(now_ms())
        .bind(job.id)
        .bind(&job.worker)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
