//! Workers: each takes a job from the queue, judges the pushed image with
//! the same app layer as `check`, and records the verdict. A transient
//! failure (the registry is down) puts the job back with a back-off, up to
//! [`MAX_JOB_ATTEMPTS`]; a judgement that used up the whole `--job-timeout` is
//! tried once more only if it was the first attempt (an image that takes
//! longer than the timeout would otherwise hold a worker for hours); a
//! corrupt image, or anything else, is an `error` verdict at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::Instrument;

use crate::app::{self, Services};
use crate::budget::Verdict;
use crate::budget::verdict::CheckReport;
use crate::error::Error;
use crate::report::json::Json;
use crate::report::markdown::{Style, headline};
use crate::report::view::CheckView;
use crate::serve::Shutdown;
use crate::serve::metrics::Metrics;
use crate::serve::outbound::{Judged, Publisher};
use crate::serve::policy::Policies;
use crate::serve::store::{Job, Judgement, Outcome, Store};

/// Attempts before a job that keeps failing transiently (or keeps killing
/// its worker) is given up with an `error` verdict.
pub const MAX_JOB_ATTEMPTS: u32 = 5;

/// What every worker shares.
pub struct Workers {
    pub store: Arc<dyn Store>,
    pub services: Services,
    pub policies: Arc<Policies>,
    pub allowed: HashSet<String>,
    pub metrics: Arc<Metrics>,
    /// Where a stored verdict goes next (commit status, notification).
    pub publisher: Arc<Publisher>,
    pub wake: Arc<Notify>,
    /// How long a claimed job stays leased without renewal.
    pub lease: Duration,
    /// Longest a single judgement may take.
    pub timeout: Duration,
    /// Back-off after the first transient failure; doubles per attempt.
    pub first_retry: Duration,
}

impl Workers {
    /// One worker's loop: claim, judge, record, until shutdown.
    pub async fn run(self: Arc<Self>, name: String, mut shutdown: Shutdown) {
        while !shutdown.is_set() {
            let job = match self.store.claim(&name, self.lease).await {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(worker = name, error = %e.one_line(), "claiming a job failed");
                    None
                }
            };
            let Some(job) = job else {
                // Woken by a receiver, or polling for back-offs that ended
                // and leases that expired.
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.wait() => {}
                }
                continue;
            };
            self.judge(job).await;
        }
    }

    async fn judge(&self, job: Job) {
        let span = tracing::info_span!(
            "job",
            id = job.id,
            registry = job.push.registry,
            repository = job.push.repository,
            digest = %job.push.digest,
            attempt = job.attempts
        );
        self.judge_in_span(job).instrument(span).await
    }

    async fn judge_in_span(&self, job: Job) {
        let push = &job.push;
        let started = Instant::now();
        let result = if job.attempts > MAX_JOB_ATTEMPTS {
            Err(Error::transient(format!(
                "gave up after {MAX_JOB_ATTEMPTS} attempts"
            )))
        } else if !self.allowed.contains(&push.registry) {
            // Queued under an earlier configuration that listed it.
            Err(Error::usage(format!(
                "registry {:?} is no longer allowed",
                push.registry
            )))
        } else {
            self.check_with_lease(&job).await
        };
        let elapsed = started.elapsed();
        let mut judged = None;
        let judgement = match result {
            Ok((outcome, report, publish)) => {
                judged = Some(publish);
                Judgement {
                    outcome,
                    report: Some(report),
                    error: None,
                    duration: elapsed,
                }
            }
            // The source's own deadline is the job timeout too, and may
            // notice first: whoever did, the attempt used up its time.
            Err(e) if elapsed >= self.timeout && job.attempts > 1 => Judgement {
                outcome: Outcome::Error,
                report: None,
                error: Some(format!(
                    "{}; not tried again: attempt {} ran out of the job timeout ({:?}) too",
                    e.one_line(),
                    job.attempts,
                    self.timeout
                )),
                duration: elapsed,
            },
            Err(e) if e.kind().is_retryable() && job.attempts < MAX_JOB_ATTEMPTS => {
                let retry_in = self.first_retry * 2u32.pow(job.attempts.saturating_sub(1));
                tracing::warn!(error = %e.one_line(), ?retry_in, "judging failed; will retry");
                self.metrics.retried();
                if let Err(e) = self.store.retry_later(&job, retry_in, &e.one_line()).await {
                    tracing::error!(error = %e.one_line(), "could not requeue the job");
                }
                return;
            }
            Err(e) => Judgement {
                outcome: Outcome::Error,
                report: None,
                error: Some(e.one_line()),
                duration: elapsed,
            },
        };
        match self.store.complete(&job, &judgement).await {
            Ok(true) => {
                self.metrics
                    .judged(judgement.outcome.as_str(), elapsed.as_secs_f64());
                tracing::info!(
                    verdict = judgement.outcome.as_str(),
                    seconds = elapsed.as_secs_f64(),
                    error = judgement.error.as_deref(),
                    "judged"
                );
                // Only a verdict this worker stored is published: one whose
                // lease was lost is another worker's to publish.
                if let Some(judged) = judged {
                    self.publisher.spawn(push.clone(), judged);
                }
            }
            Ok(false) => tracing::warn!("lease lost before the verdict was recorded"),
            Err(e) => tracing::error!(error = %e.one_line(), "recording the verdict failed"),
        }
    }

    /// Runs the check while renewing the job's lease, within the timeout:
    /// the outcome, the report's JSON, and what the verdict is published with.
    async fn check_with_lease(&self, job: &Job) -> Result<(Outcome, String, Judged), Error> {
        let request = self.policies.request(&job.push);
        tracing::info!(
            candidate = request.candidate,
            baseline = request.baseline.as_deref(),
            "judging"
        );
        let check = tokio::time::timeout(self.timeout, app::check(&self.services, &request));
        tokio::pin!(check);
        let mut renew = tokio::time::interval(self.lease / 3);
        renew.tick().await;
        loop {
            tokio::select! {
                result = &mut check => {
                    let report = result.map_err(|_| {
                        Error::transient(format!("judging took longer than {:?}", self.timeout))
                    })??;
                    let outcome = match report.verdict {
                        Verdict::Pass => Outcome::Pass,
                        Verdict::Warn => Outcome::Warn,
                        Verdict::Fail => Outcome::Fail,
                    };
                    return Ok((outcome, Json::check_document(&report), judged(&report)));
                }
                _ = renew.tick() => {
                    match self.store.renew(job, self.lease).await {
                        Ok(true) => {}
                        Ok(false) => return Err(Error::cancelled().context("lease lost")),
                        Err(e) => tracing::warn!(error = %e.one_line(), "renewing the lease failed"),
                    }
                }
            }
        }
    }
}

/// What a verdict is published with: its one-line headline without the
/// icon, and the labels of the first platform image that names a source.
fn judged(report: &CheckReport) -> Judged {
    let line = headline(&CheckView::from_report(report), Style::Plain);
    let summary = line
        .split_once(' ')
        .map_or(line.as_str(), |(_icon, rest)| rest)
        .to_string();
    let provenance = report
        .platforms
        .iter()
        .map(|p| &p.candidate.image.provenance)
        .find(|p| p.source.is_some())
        .cloned()
        .unwrap_or_default();
    Judged {
        verdict: report.verdict,
        summary,
        provenance,
    }
}
