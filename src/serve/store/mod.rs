//! The durable queue and the verdict records, behind one trait so that the
//! embedded SQLite file ([`sqlite`]) and a shared PostgreSQL database
//! ([`postgres`]) are interchangeable. Both run the same schema and
//! statements (`sql.rs`) and read rows with the same functions.
//!
//! One row per image (registry, repository, digest) holds both the job and,
//! once judged, its verdict: the same digest pushed twice (or a delivery
//! retried) finds the row and adds nothing, so an image is measured once
//! and has at most one verdict. A separate table remembers every event id
//! that pointed at a row, so a re-sent delivery is recognised even when
//! its digest field was garbled into another.

pub mod postgres;
mod sql;
pub mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::Error;
use crate::serve::events::{Push, Sender};

/// What became of a batch handed to [`Store::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enqueued {
    /// New jobs, durable when this is returned.
    pub queued: usize,
    /// Pushes that were already known (same event id, or same image).
    pub duplicates: usize,
}

/// Why an enqueue was refused without any error of the store itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Accepting the batch would put more than the configured number of
    /// jobs in the queue; nothing of it was written.
    QueueFull { depth: u64 },
}

/// A job a worker holds a lease on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub push: Push,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// Who holds the lease; completing or failing it needs the same name,
    /// so a worker whose lease expired cannot overwrite a later attempt.
    pub worker: String,
}

/// `pass`, `warn`, `fail`, or `error` when the image could not be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "pass" => Outcome::Pass,
            "warn" => Outcome::Warn,
            "fail" => Outcome::Fail,
            "error" => Outcome::Error,
            _ => return None,
        })
    }
}

/// What a worker hands back for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub outcome: Outcome,
    /// The `check --format json` document; absent for `error`.
    pub report: Option<String>,
    /// Why the image could not be judged (for `error`).
    pub error: Option<String>,
    pub duration: Duration,
}

/// A judged job as stored: the push, its judgement and when both
/// happened; what the verdict API shows. (The verdict a check reaches is
/// [`crate::budget::verdict::Verdict`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    /// The job's row id: with `judged_at_ms`, a listing's position.
    pub id: i64,
    pub push: Push,
    pub judgement: Judgement,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    pub judged_at_ms: i64,
}

/// The queue and the verdicts.
#[async_trait]
pub trait Store: Send + Sync {
    /// Writes every new push of a delivery as a job, all or nothing, and
    /// returns once that is durable. Pushes already known (by sender and
    /// event id, or by registry, repository and digest) are counted as
    /// duplicates and not queued again.
    async fn enqueue(
        &self,
        pushes: Vec<Push>,
        max_depth: u64,
    ) -> Result<Result<Enqueued, Refused>, Error>;

    /// Leases the oldest job that is due (queued and past its back-off, or
    /// leased by a worker whose lease ran out) to `worker` for `lease`.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, Error>;

    /// Extends a lease still held; false when it was lost meanwhile.
    async fn renew(&self, job: &Job, lease: Duration) -> Result<bool, Error>;

    /// Records the verdict and closes the job; false when the lease was
    /// lost (another worker judges it, and its verdict is the one kept).
    async fn complete(&self, job: &Job, judgement: &Judgement) -> Result<bool, Error>;

    /// Gives the job back to the queue, due again after `retry_in`.
    async fn retry_later(&self, job: &Job, retry_in: Duration, error: &str) -> Result<bool, Error>;

    /// Jobs not judged yet (queued or leased).
    async fn depth(&self) -> Result<u64, Error>;

    /// Whether the store answers a trivial query now, within
    /// [`PING_TIMEOUT`]: what `/readyz` reports. An error says why not.
    async fn ping(&self) -> Result<(), Error>;

    /// The verdict of a digest (the latest, if the same digest was pushed
    /// to several repositories).
    async fn verdict(&self, digest: &str) -> Result<Option<VerdictRecord>, Error>;

    /// The latest verdicts of a repository, newest first (by judgement
    /// time, then job id), starting after `after` when a page was read
    /// before.
    async fn verdicts(
        &self,
        repository: &str,
        limit: u32,
        after: Option<Position>,
    ) -> Result<Vec<VerdictRecord>, Error>;

    /// Each repository's latest verdict, ordered by repository name, at
    /// most `limit` of them: the dashboard's index.
    async fn repositories(&self, limit: u32) -> Result<Vec<VerdictRecord>, Error>;

    /// Deletes the verdicts judged before `before_ms` (milliseconds since
    /// the Unix epoch) and the event ids received before it, at most
    /// [`PRUNE_BATCH`] rows of each per call: a caller loops until less
    /// comes back, so one call never holds the writer for long.
    async fn prune(&self, before_ms: i64) -> Result<Pruned, Error>;
}

/// Where a listing stopped: the last verdict shown, in listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub judged_at_ms: i64,
    pub id: i64,
}

impl Position {
    /// Before the newest verdict: where a listing without a cursor starts,
    /// so the first page and the next ones are read by the same query.
    pub const TOP: Position = Position {
        judged_at_ms: i64::MAX,
        id: i64::MAX,
    };

    /// The cursor the API hands out: opaque to clients (32 hex digits),
    /// and read back only by [`Position::from_cursor`].
    pub fn cursor(self) -> String {
        format!("{:016x}{:016x}", self.judged_at_ms as u64, self.id as u64)
    }

    /// `None` for anything [`Position::cursor`] did not write.
    pub fn from_cursor(cursor: &str) -> Option<Position> {
        if cursor.len() != 32
            || !cursor
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let judged_at_ms = u64::from_str_radix(&cursor[..16], 16).ok()? as i64;
        let id = u64::from_str_radix(&cursor[16..], 16).ok()? as i64;
        (judged_at_ms >= 0 && id > 0).then_some(Position { judged_at_ms, id })
    }
}

/// Rows one [`Store::prune`] call deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub verdicts: u64,
    pub events: u64,
}

/// Rows of each table one prune call deletes at most.
pub const PRUNE_BATCH: i64 = 5000;

/// How long a readiness probe waits for the store: a probe that hangs
/// until the orchestrator's own timeout says nothing about why.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Milliseconds since the Unix epoch: the stores keep time as integers,
/// the same in SQLite and PostgreSQL.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn sender_name(s: Sender) -> &'static str {
    match s {
        Sender::Distribution => "distribution",
        Sender::Harbor => "harbor",
        Sender::Github => "github",
        Sender::Admission => "admission",
    }
}

pub(crate) fn parse_sender(s: &str) -> Result<Sender, Error> {
    Ok(match s {
        "distribution" => Sender::Distribution,
        "harbor" => Sender::Harbor,
        "github" => Sender::Github,
        "admission" => Sender::Admission,
        other => return Err(Error::corrupt(format!("store: unknown sender {other:?}"))),
    })
}

/// A database error: the store is unavailable for now (disk full, locked,
/// connection lost), which the receivers answer with 503.
pub(crate) fn db_error(what: &str, e: sqlx::Error) -> Error {
    Error::transient(format!("store: {what}")).with_source(e)
}

/// A column both stores decode: text, nullable text or a 64-bit integer.
pub(crate) trait Column<'r, R: sqlx::Row>: Sized {
    fn get(row: &'r R, name: &str, what: &str) -> Result<Self, Error>;
}

impl<'r, R, T> Column<'r, R> for T
where
    R: sqlx::Row,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn get(row: &'r R, name: &str, what: &str) -> Result<T, Error> {
        row.try_get(name).map_err(|e| db_error(what, e))
    }
}

/// A job row as a push; one reading for SQLite and PostgreSQL, which
/// share the schema.
pub(crate) fn push_row<'r, R>(row: &'r R) -> Result<Push, Error>
where
    R: sqlx::Row,
    String: Column<'r, R>,
    Option<String>: Column<'r, R>,
{
    let what = "reading a job";
    let digest: String = Column::get(row, "digest", what)?;
    let sender: String = Column::get(row, "sender", what)?;
    Ok(Push {
        event_id: Column::get(row, "event_id", what)?,
        sender: parse_sender(&sender)?,
        registry: Column::get(row, "registry", what)?,
        repository: Column::get(row, "repository", what)?,
        tag: Column::get(row, "tag", what)?,
        digest: Digest::parse(&digest)?,
        media_type: Column::get(row, "media_type", what)?,
    })
}

/// A claimed job row, leased to `worker`.
pub(crate) fn job_row<'r, R>(row: &'r R, worker: &str) -> Result<Job, Error>
where
    R: sqlx::Row,
    String: Column<'r, R>,
    Option<String>: Column<'r, R>,
    i64: Column<'r, R>,
{
    let what = "reading a job";
    let attempts: i64 = Column::get(row, "attempts", what)?;
    Ok(Job {
        id: Column::get(row, "id", what)?,
        push: push_row(row)?,
        attempts: attempts.max(0) as u32,
        worker: worker.to_string(),
    })
}

/// A judged job row as stored.
pub(crate) fn verdict_row<'r, R>(row: &'r R) -> Result<VerdictRecord, Error>
where
    R: sqlx::Row,
    String: Column<'r, R>,
    Option<String>: Column<'r, R>,
    i64: Column<'r, R>,
{
    let what = "reading a verdict";
    let outcome: String = Column::get(row, "outcome", what)?;
    let duration: i64 = Column::get(row, "duration_ms", what)?;
    let attempts: i64 = Column::get(row, "attempts", what)?;
    Ok(VerdictRecord {
        id: Column::get(row, "id", what)?,
        push: push_row(row)?,
        judgement: Judgement {
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| Error::corrupt(format!("store: unknown verdict {outcome:?}")))?,
            report: Column::get(row, "report", what)?,
            error: Column::get(row, "error", what)?,
            duration: Duration::from_millis(duration.max(0) as u64),
        },
        attempts: attempts.max(0) as u32,
        received_at_ms: Column::get(row, "received_at", what)?,
        judged_at_ms: Column::get(row, "judged_at", what)?,
    })
}

#[cfg(test)]
mod tests;
