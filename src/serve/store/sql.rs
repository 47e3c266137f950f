//! The statements both stores run. SQLite and PostgreSQL agree on all of
//! them but two: the type of the job id, and the row lock a PostgreSQL
//! claim takes so that replicas never lease the same job ([`Dialect`]).
//!
//! Parameters are numbered (`$1`): PostgreSQL's only form, and one sqlx's
//! SQLite driver binds by number too, so a parameter used twice is bound
//! once in either.

/// Integers the stores read as `i64` are `BIGINT`: 64 bits in PostgreSQL,
/// and the same integer affinity as `INTEGER` in SQLite.
macro_rules! jobs_table {
    ($id:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS jobs (
                id ",
            $id,
            ",
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
            )"
        )
    };
}

macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'leased', attempts = attempts + 1, lease_until = $1, \
             worker = $2 \
             WHERE id = (SELECT id FROM jobs \
                         WHERE (state = 'queued' AND due_at <= $3) \
                            OR (state = 'leased' AND lease_until < $3) \
                         ORDER BY id LIMIT 1",
            $lock,
            ") RETURNING ",
            job_columns!()
        )
    };
}

/// The columns `super::job_row` reads.
macro_rules! job_columns {
    () => {
        "id, registry, repository, digest, tag, media_type, sender, event_id, attempts, \
         received_at"
    };
}

/// What the two databases spell differently.
pub(crate) struct Dialect {
    /// `CREATE TABLE jobs`, whose id column each spells its own way.
    jobs_table: &'static str,
    /// Leases the oldest due job: `$1` lease end, `$2` worker, `$3` now.
    /// Returns the columns `super::job_row` reads.
    pub(crate) claim: &'static str,
}

/// One writer (the SQLite store's writer task), so a claim needs no lock;
/// `INTEGER PRIMARY KEY` makes the id the rowid.
pub(crate) const SQLITE: Dialect = Dialect {
    jobs_table: jobs_table!("INTEGER PRIMARY KEY"),
    claim: claim!(""),
};

/// Replicas claim concurrently: each skips the rows another one has
/// locked instead of waiting for them.
pub(crate) const POSTGRES: Dialect = Dialect {
    jobs_table: jobs_table!("BIGSERIAL PRIMARY KEY"),
    claim: claim!(" FOR UPDATE SKIP LOCKED"),
};

impl Dialect {
    /// The tables and indexes, created when missing.
    pub(crate) fn schema(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.jobs_table).chain(SHARED_SCHEMA.iter().copied())
    }
}

/// The schema after the `jobs` table, the same in both.
const SHARED_SCHEMA: &[&str] = &[
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

/// Jobs not judged yet.
pub(crate) const COUNT_DEPTH: &str = "SELECT COUNT(*) FROM jobs WHERE state <> 'done'";

/// The job an event id already pointed at: `$1` sender, `$2` event id.
pub(crate) const EVENT_JOB: &str = "SELECT job_id FROM events WHERE sender = $1 AND event_id = $2";

/// The job of an image: `$1` registry, `$2` repository, `$3` digest.
pub(crate) const IMAGE_JOB: &str =
    "SELECT id FROM jobs WHERE registry = $1 AND repository = $2 AND digest = $3";

/// A new job, due at once: `$1` registry, `$2` repository, `$3` digest,
/// `$4` tag, `$5` media type, `$6` sender, `$7` event id, `$8` now.
/// Returns its id, or no row when the image has a job already.
pub(crate) const INSERT_JOB: &str = "INSERT INTO jobs (registry, repository, digest, tag, \
     media_type, sender, event_id, received_at, state, due_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $8) \
     ON CONFLICT (registry, repository, digest) DO NOTHING RETURNING id";

/// Remembers an event id: `$1` sender, `$2` event id, `$3` job, `$4` now.
pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (sender, event_id, job_id, \
     received_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

/// `$1` lease end, `$2` job, `$3` worker.
pub(crate) const RENEW: &str =
    "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND state = 'leased' AND worker = $3";

/// `$1` outcome, `$2` report, `$3` error, `$4` duration, `$5` now, `$6`
/// job, `$7` worker.
pub(crate) const COMPLETE: &str = "UPDATE jobs SET state = 'done', lease_until = NULL, \
     outcome = $1, report = $2, error = $3, duration_ms = $4, judged_at = $5 \
     WHERE id = $6 AND state = 'leased' AND worker = $7";

/// `$1` due again at, `$2` error, `$3` job, `$4` worker.
pub(crate) const RETRY: &str = "UPDATE jobs SET state = 'queued', due_at = $1, \
     lease_until = NULL, worker = NULL, last_error = $2 \
     WHERE id = $3 AND state = 'leased' AND worker = $4";

/// The columns `super::verdict_row` reads.
macro_rules! select_verdict {
    () => {
        "SELECT id, registry, repository, digest, tag, media_type, sender, event_id, attempts, \
         received_at, outcome, report, error, duration_ms, judged_at FROM jobs"
    };
}

/// The latest verdict of `$1`, a digest.
pub(crate) const VERDICT_OF_DIGEST: &str = concat!(
    select_verdict!(),
    " WHERE digest = $1 AND state = 'done' ORDER BY judged_at DESC LIMIT 1"
);

/// A page of a repository's verdicts, newest first: `$1` repository, `$2`
/// and `$3` the position (judged at, id) the page starts after, `$4` limit.
pub(crate) const VERDICTS_PAGE: &str = concat!(
    select_verdict!(),
    " WHERE repository = $1 AND state = 'done' \
     AND (judged_at < $2 OR (judged_at = $2 AND id < $3)) \
     ORDER BY judged_at DESC, id DESC LIMIT $4"
);

/// Each repository's latest verdict, by repository name: `$1` limit.
/// The correlated subquery walks `jobs_repository` (repository,
/// judged_at) backwards once per repository, so the cost follows the
/// number of repositories shown, not of verdicts kept.
pub(crate) const LATEST_PER_REPOSITORY: &str = concat!(
    select_verdict!(),
    " AS j WHERE j.state = 'done' AND j.id = (SELECT k.id FROM jobs AS k \
     WHERE k.repository = j.repository AND k.state = 'done' \
     ORDER BY k.judged_at DESC, k.id DESC LIMIT 1) \
     ORDER BY j.repository LIMIT $1"
);

/// Verdicts judged before `$1`, at most `$2` of them.
pub(crate) const PRUNE_VERDICTS: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
     WHERE state = 'done' AND judged_at < $1 LIMIT $2)";

/// Event ids received before `$1`, at most `$2` of them.
pub(crate) const PRUNE_EVENTS: &str = "DELETE FROM events WHERE (sender, event_id) IN \
     (SELECT sender, event_id FROM events WHERE received_at < $1 LIMIT $2)";
