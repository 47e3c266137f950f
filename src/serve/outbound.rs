//! Verdicts out of the service, after they are stored: a GitHub commit
//! status on the commit the image names in its labels, and a JSON POST to
//! a chat webhook on the verdicts the configuration picks.
//!
//! Both are side channels. They run on tasks of their own (a few at a
//! time), so a slow or dead endpoint never holds a worker or the queue; a
//! failure is logged and counted (`sizeguard_publish_total{target,
//! result}`) and never makes the image judged again. Each client retries
//! what may pass under the shared policy ([`crate::retry`]); nothing here
//! retries around them.
//!
//! What an image says is not trusted: its `source` label picks the
//! repository a status goes to only when it is a repository URL on the
//! configured GitHub host (see [`crate::publish::status`]) that the
//! configuration ties to the image's repository (`github` in its
//! `[[serve.repositories]]` entry, or an owner of `[serve.github] owners`):
//! whoever can push an image must not be able to set a status on any
//! repository the token can write to. The token only ever goes to the
//! configured API URL. The notification URL comes from the configuration
//! alone.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::budget::verdict::Verdict;
use crate::publish::github::Token;
use crate::publish::notify::{Notification, Notifier};
use crate::publish::status::{self, Commit, State, Status};
use crate::serve::events::Push;
use crate::serve::metrics::Metrics;
use crate::serve::policy::Policies;
use crate::source::Provenance;

/// Publications under way at once; more wait for a turn.
const IN_FLIGHT: usize = 8;

/// Commit statuses on GitHub (or GitHub Enterprise Server).
#[derive(Debug, Clone)]
pub struct GithubStatuses {
    /// `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
    pub token: Token,
    /// The only host whose repository URLs get a status (`github.com`).
    pub web_host: String,
    /// Statuses are named `CONTEXT/REPOSITORY` (default `sizeguard`).
    pub context: String,
    /// Owners (lower-cased) whose repositories any image may name.
    pub owners: Vec<String>,
}

/// A chat webhook, and the verdicts it hears of.
#[derive(Debug, Clone)]
pub struct Notifications {
    pub notifier: Notifier,
    pub on: Vec<Verdict>,
}

/// Where verdicts go besides the store.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    pub github: Option<GithubStatuses>,
    pub notify: Option<Notifications>,
    /// The service's address as others reach it (`https://sizeguard.example`):
    /// statuses and notifications link the verdict under it.
    pub public_url: Option<String>,
}

/// What a stored verdict is published with.
#[derive(Debug, Clone)]
pub struct Judged {
    pub verdict: Verdict,
    /// One line: what the image needs or how it grew, and why the verdict.
    pub summary: String,
    pub provenance: Provenance,
}

/// Publishes verdicts on tasks of their own.
pub struct Publisher {
    outbound: Outbound,
    metrics: Arc<Metrics>,
    turns: Arc<Semaphore>,
    /// Which GitHub repositories each image repository is tied to.
    policies: Arc<Policies>,
}

impl Publisher {
    pub fn new(outbound: Outbound, metrics: Arc<Metrics>, policies: Arc<Policies>) -> Publisher {
        Publisher {
            outbound,
            metrics,
            turns: Arc::new(Semaphore::new(IN_FLIGHT)),
            policies,
        }
    }

    /// Whether the configuration ties `commit`'s repository to the image
    /// repository `repository`.
    fn tied(&self, github: &GithubStatuses, repository: &str, commit: &Commit) -> bool {
        let owner = commit.owner.to_ascii_lowercase();
        let full = format!("{owner}/{}", commit.repo.to_ascii_lowercase());
        github.owners.contains(&owner) || self.policies.rules(repository).github.contains(&full)
    }

    /// Starts publishing `judged` and returns at once. The task keeps the
    /// job's log fields.
    pub fn spawn(self: &Arc<Self>, push: Push, judged: Judged) {
        if self.outbound.github.is_none() && self.outbound.notify.is_none() {
            return;
        }
        let me = self.clone();
        let task = async move {
            let Ok(_turn) = me.turns.clone().acquire_owned().await else {
                return;
            };
            tokio::join!(me.status(&push, &judged), me.notify(&push, &judged));
        };
        tokio::spawn(task.instrument(tracing::Span::current()));
    }

    fn verdict_url(&self, push: &Push) -> Option<String> {
        let base = self.outbound.public_url.as_deref()?;
        Some(format!(
            "{}/v1/verdicts/{}",
            base.trim_end_matches('/'),
            push.digest
        ))
    }

    async fn status(&self, push: &Push, judged: &Judged) {
        let Some(github) = &self.outbound.github else {
            return;
        };
        let commit = match status::commit_of(&judged.provenance, &github.web_host) {
            Ok(Some(commit)) => commit,
            Ok(None) => {
                tracing::debug!("no commit status: the image names no source and revision");
                return;
            }
            Err(e) => {
                self.metrics.published("github_status", "refused");
                tracing::warn!(
                    error = %e.one_line(),
                    github_host = github.web_host,
                    "no commit status: the image's labels name no commit on the GitHub host"
                );
                return;
            }
        };
        if !self.tied(github, &push.repository, &commit) {
            self.metrics.published("github_status", "not_allowed");
            tracing::warn!(
                github_repository = format!("{}/{}", commit.owner, commit.repo),
                "no commit status: the image's source label names a GitHub repository \
                 the configuration does not tie to this image repository (github in its \
                 [[serve.repositories]] entry, or [serve.github] owners)"
            );
            return;
        }
        let description = format!("{}: {}", judged.verdict, judged.summary);
        let url = self.verdict_url(push);
        let s = Status::new(
            State::of(judged.verdict),
            &push.repository,
            &description,
            url.as_deref(),
        )
        .in_context(&github.context, &push.repository);
        let posted = status::post(&github.api_url, &github.token, &commit, &s).await;
        let on = format!("{}/{}@{}", commit.owner, commit.repo, commit.sha);
        match posted {
            Ok(()) => {
                self.metrics.published("github_status", "ok");
                tracing::info!(commit = on, state = s.state.as_str(), "commit status set");
            }
            Err(e) => {
                self.metrics.published("github_status", "error");
                tracing::warn!(commit = on, error = %e.one_line(), "commit status not set");
            }
        }
    }

    async fn notify(&self, push: &Push, judged: &Judged) {
        let Some(n) = &self.outbound.notify else {
            return;
        };
        if !n.on.contains(&judged.verdict) {
            return;
        }
        let url = self.verdict_url(push);
        let message = Notification::new(
            judged.verdict,
            &push.registry,
            &push.repository,
            push.tag.as_deref(),
            &push.digest.to_string(),
            &judged.summary,
            url.as_deref(),
        );
        match n.notifier.send(&message).await {
            Ok(()) => {
                self.metrics.published("notify", "ok");
                tracing::info!("notification sent");
            }
            Err(e) => {
                self.metrics.published("notify", "error");
                tracing::warn!(error = %e.one_line(), "notification not sent");
            }
        }
    }
}
