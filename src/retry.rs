//! How long a run may take and how a failed network exchange is tried
//! again, for every outbound call sizeguard makes (registries, GitHub, the
//! chat notification): the [`Deadline`] a run works under (`--timeout`),
//! the exponential [`Backoff`] with jitter between attempts, and the wait a
//! server asks for (`Retry-After`, GitHub's rate-limit headers).
//!
//! The policy, documented in the README: up to [`MAX_REQUEST_ATTEMPTS`] attempts
//! per request, waiting 0.5 s, 1 s, 2 s, 4 s (each between half and all of
//! that, at random, so that many clients do not retry in step), or what
//! the server asks if that is longer (up to [`MAX_RETRY_AFTER`]: a
//! registry asking for an hour is not waited for an hour); never past the
//! deadline. Only errors whose kind says so
//! ([`crate::error::Kind::is_retryable`]) are tried again, and each request
//! is retried in one place only: a caller of a client that retries does not
//! retry around it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::units::format_duration;

/// The whole run's budget unless `--timeout` says otherwise.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Attempts per request (the first one included).
pub const MAX_REQUEST_ATTEMPTS: u32 = 5;

/// The longest `Retry-After` honoured; a longer one is waited this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(8);

/// The backoff's first delay in microseconds; [`FIRST_DELAY`] unless
/// [`scale_backoff`] changed it.
static FIRST_DELAY_MICROS: AtomicU64 = AtomicU64::new(FIRST_DELAY.as_micros() as u64);

/// The environment variable that shortens the backoff, for tests only.
pub const TEST_BACKOFF_VAR: &str = "SIZEGUARD_TEST_BACKOFF_MS";

/// Test-only: makes the backoff's first delay `first` (the later ones
/// double from it as usual), so that fault tests running the binary do not
/// sleep through real backoff. The command line reads
/// [`TEST_BACKOFF_VAR`] once at start-up and calls this; nothing else
/// should. What servers ask for (`Retry-After`, rate-limit resets) is
/// never scaled: those waits are the server's, and tests check that they
/// are honoured.
pub fn scale_backoff(first: Duration) {
    let micros = u64::try_from(first.as_micros()).unwrap_or(u64::MAX);
    FIRST_DELAY_MICROS.store(micros, Ordering::Relaxed);
}

fn first_delay() -> Duration {
    Duration::from_micros(FIRST_DELAY_MICROS.load(Ordering::Relaxed))
}

/// A read that delivers nothing for this long is a stalled connection
/// (unless the deadline is so short that a tenth of it is shorter).
const MAX_STALL: Duration = Duration::from_secs(30);

/// The point in time a run must be done by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: tokio::time::Instant,
    budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        let now = Instant::now();
        let at = now.checked_add(budget).unwrap_or(now + DEFAULT_RUN_TIMEOUT);
        Deadline {
            at: at.into(),
            budget,
        }
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    pub fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }

    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// How long one read may deliver nothing before the connection is
    /// taken for dead and the request tried again: 30 s, or a tenth of the
    /// budget when that is shorter (at least a second).
    pub fn stall(&self) -> Duration {
        (self.budget / 10).clamp(Duration::from_secs(1), MAX_STALL)
    }

    /// The error for a run that ran out of time `while` doing something.
    pub fn timed_out(&self, what: impl std::fmt::Display) -> Error {
        Error::transient(format!(
            "timed out after {} (--timeout) while {what}",
            format_duration(self.budget)
        ))
    }

    /// Runs `fut` until the deadline.
    pub async fn run<T>(
        &self,
        what: impl std::fmt::Display,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        tokio::time::timeout_at(self.at, fut)
            .await
            .map_err(|_| self.timed_out(what))
    }

    /// Runs `fut` until the deadline or until it has been waiting for
    /// [`Deadline::stall`]; `Ok(None)` is a stall.
    pub async fn run_unless_stalled<T>(
        &self,
        what: impl std::fmt::Display,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>, Error> {
        self.run(what, tokio::time::timeout(self.stall(), fut))
            .await
            .map(Result::ok)
    }

    /// Sleeps before the next attempt, unless the deadline comes first:
    /// then the last error is what the run fails with, saying why it was
    /// not tried again.
    pub async fn sleep(&self, delay: Duration, last: Error) -> Result<(), Error> {
        let left = self.remaining();
        if delay >= left {
            return Err(Error::new(
                last.kind(),
                format!(
                    "{}; not tried again: waiting {} would pass the --timeout of {} ({} left)",
                    last.one_line(),
                    format_duration(delay),
                    format_duration(self.budget),
                    format_duration(left)
                ),
            ));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// A failed attempt: the error, and the wait the server asked for.
pub struct Failed {
    pub error: Error,
    pub retry_after: Option<Duration>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            retry_after: None,
        }
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not
/// worth trying again, or the attempts or the deadline run out. `what`
/// names what is fetched, for messages.
pub async fn retrying<T, F, Fut>(deadline: &Deadline, what: &str, attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failed>>,
{
    retrying_with(Backoff::new(), deadline, what, attempt).await
}

/// [`retrying`] with a backoff other than the default one (fewer attempts,
/// a longest wait).
pub async fn retrying_with<T, F, Fut>(
    mut backoff: Backoff,
    deadline: &Deadline,
    what: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failed>>,
{
    loop {
        let failed = match deadline.run(format!("fetching {what}"), attempt()).await? {
            Ok(v) => return Ok(v),
            Err(f) => f,
        };
        if !failed.error.kind().is_retryable() || already_retried(&failed.error) {
            return Err(failed.error);
        }
        if let Some(asked) = failed.retry_after.filter(|a| backoff.refuses(*a)) {
            return Err(Error::new(
                failed.error.kind(),
                format!(
                    "{}; not tried again: the server asks for {}, longer than the {} waited at most",
                    failed.error.one_line(),
                    format_duration(asked),
                    format_duration(backoff.longest_asked)
                ),
            )
            .with_source(Retried));
        }
        let Some(delay) = backoff.next(failed.retry_after) else {
            return Err(gave_up(&failed.error, backoff.failures()));
        };
        tracing::info!(
            "{}; trying again in {}",
            failed.error.one_line(),
            format_duration(delay)
        );
        deadline.sleep(delay, failed.error).await?;
    }
}

/// The last error of a request that was tried `attempts` times.
pub fn gave_up(last: &Error, attempts: u32) -> Error {
    Error::new(
        last.kind(),
        format!("{} (gave up after {attempts} attempts)", last.one_line()),
    )
    .with_source(Retried)
}

/// The mark of an error a retry loop has already given up on. An enclosing
/// loop (a manifest's, around the token request a 401 set off) returns it
/// as it is, so attempts never multiply: one policy, never nested. Its
/// text is empty, so messages do not show it.
#[derive(Debug)]
struct Retried;

impl std::fmt::Display for Retried {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Retried {}

fn already_retried(e: &Error) -> bool {
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        if cause.is::<Retried>() {
            return true;
        }
        next = cause.source();
    }
    false
}

/// The delays between the attempts of one request.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    attempts: u32,
    first: Duration,
    /// The longest wait asked for that is honoured.
    longest_asked: Duration,
    /// Whether a longer wait asked for gives up at once instead of waiting
    /// [`Backoff::longest_asked`].
    refuse_longer: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Backoff {
            failures: 0,
            attempts: MAX_REQUEST_ATTEMPTS,
            first: first_delay(),
            longest_asked: MAX_RETRY_AFTER,
            refuse_longer: false,
        }
    }

    /// At most `n` attempts (the first one included) instead of
    /// [`MAX_REQUEST_ATTEMPTS`]: for side channels that must not hold
    /// their caller long.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n.max(1);
        self
    }

    /// A server asking for a wait longer than `longest` gets none: the
    /// request fails at once (a rate limit that resets in an hour is not
    /// worth a minute's wait).
    pub fn refusing_waits_over(mut self, longest: Duration) -> Self {
        self.longest_asked = longest;
        self.refuse_longer = true;
        self
    }

    fn refuses(&self, asked: Duration) -> bool {
        self.refuse_longer && asked > self.longest_asked
    }

    /// Attempts that failed so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets earlier failures (a resumed download that made progress).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records a failed attempt and says how long to wait before the next
    /// one, or `None` when the attempts are used up. `asked` is the
    /// server's `Retry-After`: waited for when longer than the backoff.
    pub fn next(&mut self, asked: Option<Duration>) -> Option<Duration> {
        self.failures += 1;
        if self.failures >= self.attempts {
            return None;
        }
        let full = self
            .first
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_DELAY.max(self.first));
        let jittered = full.mul_f64(0.5 + 0.5 * random_fraction());
        let asked = asked.map(|a| a.min(self.longest_asked));
        Some(asked.map_or(jittered, |a| a.max(jittered)))
    }
}

/// A number in `[0, 1)`, different on every call: jitter needs no more.
fn random_fraction() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The wait a `Retry-After` value asks for: delay-seconds, or an HTTP date
/// in any of RFC 9110's three forms (then the time from `now` until it; a
/// date in the past asks for none). A date that is not one (a wrong
/// weekday included) asks for nothing: the backoff's own delay applies.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait an answer's `Retry-After` header asks for, if it has one that
/// reads.
pub fn retry_after_of(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        // In the past: no wait.
        assert_eq!(
            retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("Thu, 29 Feb 2024 00:00:00 GMT", UNIX_EPOCH),
            Some(Duration::from_secs(1_709_164_800))
        );
        // asctime's form, the third RFC 9110 names.
        assert_eq!(
            retry_after("Sun Nov  6 08:49:47 1994", now),
            Some(Duration::from_secs(10))
        );
        for bad in [
            "soon",
            "-1",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994",
            "Mon, 06 Nov 1994 08:49:40 GMT",
        ] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let mut b = Backoff::new();
        let mut delays = Vec::new();
        while let Some(d) = b.next(None) {
            delays.push(d);
        }
        assert_eq!(delays.len() as u32, MAX_REQUEST_ATTEMPTS - 1);
        for (i, d) in delays.iter().enumerate() {
            let full = FIRST_DELAY * (1 << i);
            assert!(*d >= full / 2 && *d <= full, "attempt {i}: {d:?}");
        }
        let mut b = Backoff::new();
        assert_eq!(
            b.next(Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        b.reset();
        assert!(b.next(None).unwrap() <= FIRST_DELAY);
        // An hour is asked for: a minute is waited.
        assert_eq!(
            Backoff::new().next(Some(Duration::from_secs(3600))),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[tokio::test]
    async fn only_retryable_kinds_are_tried_again_and_attempts_are_bounded() {
        let deadline = Deadline::after(Duration::from_secs(60));
        for kind in [
            Kind::NotFound,
            Kind::Unauthorized,
            Kind::Corrupt,
            Kind::Usage,
        ] {
            let mut calls = 0;
            let e = retrying(&deadline, "x", || {
                calls += 1;
                async move { Err::<(), _>(Failed::from(Error::new(kind, "no"))) }
            })
            .await
            .unwrap_err();
            assert_eq!((calls, e.kind()), (1, kind));
        }
        let mut calls = 0;
        let e = retrying(&deadline, "x", || {
            calls += 1;
            async move { Err::<(), _>(Failed::from(Error::transient("HTTP 503"))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, MAX_REQUEST_ATTEMPTS);
        assert!(e.to_string().contains("gave up after 5 attempts"), "{e}");
    }

    /// A backoff whose waits are a millisecond, as the test-only knob
    /// makes them.
    fn quick() -> Backoff {
        Backoff {
            first: Duration::from_millis(1),
            ..Backoff::new()
        }
    }

    #[tokio::test]
    async fn a_request_that_fails_once_is_tried_once_more_and_attempts_are_bounded() {
        let deadline = Deadline::after(Duration::from_secs(600));
        let mut calls = 0;
        retrying_with(quick(), &deadline, "x", || {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Err(Failed::from(Error::transient("once")))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(calls, 2);

        let mut calls = 0;
        let e = retrying_with(quick().attempts(3), &deadline, "x", || {
            calls += 1;
            async move { Err::<(), _>(Failed::from(Error::transient("down"))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 3);
        assert_eq!(e.one_line(), "down (gave up after 3 attempts)");
        assert_eq!(e.kind(), Kind::Transient);
    }

    #[tokio::test]
    async fn a_request_that_gave_up_inside_another_is_not_tried_again_by_it() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let deadline = &Deadline::after(Duration::from_secs(600));
        let (outer, inner) = (&AtomicU32::new(0), &AtomicU32::new(0));
        let e = retrying_with(quick().attempts(5), deadline, "manifest", || async move {
            outer.fetch_add(1, Ordering::Relaxed);
            // The token request a 401 sets off, with its own attempts.
            retrying_with(quick().attempts(3), deadline, "token", || async move {
                inner.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(Failed::from(Error::transient("503")))
            })
            .await
            .map_err(|e| Failed::from(e.context("token")))
        })
        .await
        .unwrap_err();
        let counts = (outer.load(Ordering::Relaxed), inner.load(Ordering::Relaxed));
        assert_eq!(counts, (1, 3));
        assert_eq!(e.one_line(), "token: 503 (gave up after 3 attempts)");
        assert_eq!(e.kind(), Kind::Transient);
    }

    #[tokio::test]
    async fn a_wait_longer_than_refused_fails_at_once() {
        let deadline = Deadline::after(Duration::from_secs(600));
        let mut calls = 0;
        let backoff = Backoff::new().refusing_waits_over(Duration::from_secs(5));
        let started = Instant::now();
        let e = retrying_with(backoff, &deadline, "x", || {
            calls += 1;
            async move {
                Err::<(), _>(Failed {
                    error: Error::transient("rate limited"),
                    retry_after: Some(Duration::from_secs(3600)),
                })
            }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(e.one_line().contains("asks for 1h0m0s"), "{e}");
        assert_eq!(e.kind(), Kind::Transient);
    }

    #[tokio::test]
    async fn the_deadline_bounds_waits_and_says_what_timed_out() {
        let d = Deadline::after(Duration::from_millis(50));
        assert_eq!(d.stall(), Duration::from_secs(1));
        let e = d
            .run("fetching X", std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timed out after 50ms (--timeout) while fetching X"
        );
        assert!(e.kind().is_retryable());
        let e = Deadline::after(Duration::from_secs(1))
            .sleep(Duration::from_secs(5), Error::transient("HTTP 429"))
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with("HTTP 429; not tried again"),
            "{e}"
        );
        assert_eq!(
            Deadline::after(DEFAULT_RUN_TIMEOUT).stall(),
            Duration::from_secs(30)
        );
    }
}
