//! The admission webhook: Kubernetes asks, before it stores a Pod or a
//! workload, whether the images it names fit the nodes it may land on.
//! `POST /v1/admission` answers `ValidatingAdmissionWebhook` calls
//! (AdmissionReview `admission.k8s.io/v1`) from what is already known of
//! each image, within the API server's timeout.
//!
//! - [`review`]: the wire types, read and written.
//! - [`pods`]: the pod spec of each kind, its images, the pools its node
//!   selector and required node affinity allow.
//! - [`judge`]: the decision, with `budget`'s cost model and rules.
//!
//! Choices, as the README documents them:
//! - the API server only calls webhooks over HTTPS: admission refuses to
//!   start without `--tls-cert`/`--tls-key`, nor without a token or a
//!   client CA (the answers reveal image figures);
//! - the pod's images are priced as one rollout: each image against the
//!   baseline its repository's policy names (when measured), a layer two
//!   images share counted once, on the tightest pool the pod may land on;
//! - an image whose figures are not known yet is queued for the workers
//!   and admitted with a warning (`unmeasured = "allow"`) or refused.

pub mod judge;
pub mod pods;
pub mod review;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use judge::{Admission, Memo, Mode, Pool, PoolNode, Unmeasured};
use review::{Answer, Review};

/// The largest AdmissionReview read: the API server's own limit on a
/// request body is 3 MiB, and a review of an object near it (a pod with
/// many containers and a large environment, wrapped with its old version
/// on UPDATE) can be larger than the receivers' 256 KiB.
pub const BODY_LIMIT: usize = 3 << 20;

/// The API server's default webhook timeout, when the URL does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest timeout Kubernetes allows a webhook.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Admission settings resolved from `[serve.admission]`, before the
/// service's shared parts exist.
#[derive(Clone)]
pub struct AdmissionOptions {
    pub mode: Mode,
    pub unmeasured: Unmeasured,
    pub exempt: HashSet<String>,
    pub token: Option<Vec<u8>>,
    /// The CA client certificates are verified against (the listener's).
    pub client_ca: Option<std::path::PathBuf>,
    pub pools: Vec<Pool>,
}

/// The token is never printed.
impl std::fmt::Debug for AdmissionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionOptions")
            .field("mode", &self.mode)
            .field("unmeasured", &self.unmeasured)
            .field("exempt", &self.exempt)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("client_ca", &self.client_ca)
            .field("pools", &self.pools.len())
            .finish()
    }
}

/// How long the lookups of a review may take: the API server's timeout
/// (`?timeout=10s`, at most 30 s) less a margin for the answer to travel
/// and for this process to be slow. An unreadable value is the default.
pub fn budget(query: Option<&str>) -> Duration {
    let timeout = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(|t| crate::units::parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(MAX_TIMEOUT);
    (timeout * 7 / 10).max(Duration::from_millis(200))
}

/// A review answered: the HTTP answer and the metric's `result`.
pub struct Answered {
    pub response: Response,
    pub result: &'static str,
    pub uid: Option<String>,
}

/// Reads the review, judges it, answers it.
pub async fn answer(a: &Admission, body: &[u8], query: Option<&str>) -> Answered {
    let started = Instant::now();
    let deadline = started + budget(query);
    let review = match review::parse(body) {
        Ok(r) => r,
        Err(message) => return bad_request(message, None),
    };
    let untouched = |result: &'static str| {
        tracing::info!(
            uid = review.uid,
            namespace = logged(&review.namespace),
            kind = logged(&review.kind),
            name = logged(&review.name),
            operation = logged(&review.operation),
            result,
            allowed = true,
            "admission review"
        );
    };
    let reply = |answer: &Answer, result: &'static str| Answered {
        response: (
            StatusCode::OK,
            axum::Json(review::response(&review.uid, answer)),
        )
            .into_response(),
        result,
        uid: Some(review.uid.clone()),
    };
    if !matches!(review.operation.as_str(), "CREATE" | "UPDATE") {
        untouched("skipped");
        return reply(&Answer::allow(), "skipped");
    }
    if a.exempt.contains(&review.namespace) {
        untouched("exempt");
        return reply(&Answer::allow(), "exempt");
    }
    let Some(object) = &review.object else {
        return bad_request(
            format!("{}: request.object is missing", review.kind),
            Some(&review),
        );
    };
    // An object being deleted only loses finalizers: refusing that would
    // keep it from going away.
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        untouched("skipped");
        return reply(&Answer::allow(), "skipped");
    }
    // A well-formed review whose object cannot be judged is answered,
    // not refused with a 400: with `failurePolicy: Ignore` a 400 would
    // admit it unjudged. Enforce denies it, audit says so.
    let unjudgeable = |message: String| {
        let message = format!("sizeguard cannot judge this {}: {message}", review.kind);
        let answer = match a.mode {
            Mode::Enforce => Answer {
                allowed: false,
                message: Some(message.clone()),
                warnings: Vec::new(),
            },
            Mode::Audit => Answer {
                allowed: true,
                message: None,
                warnings: vec![message.clone()],
            },
        };
        tracing::warn!(
            uid = review.uid,
            namespace = logged(&review.namespace),
            kind = logged(&review.kind),
            name = logged(&review.name),
            allowed = answer.allowed,
            error = review::printable(&message, review::MAX_MESSAGE),
            "admission review: object not judged"
        );
        reply(&answer, "malformed")
    };
    let spec = match pods::pod_spec(&review.group, &review.kind, object) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            untouched("skipped");
            return reply(&Answer::allow(), "skipped");
        }
        Err(message) => return unjudgeable(message),
    };
    let named = match spec.images() {
        Ok(named) => named,
        Err(message) => return unjudgeable(message),
    };
    let mut images: Vec<String> = Vec::new();
    for n in &named {
        if !images.contains(&n.image) {
            images.push(n.image.clone());
        }
    }
    // An UPDATE that names the images the stored object already named
    // (labels, annotations, replicas, a restart) adds nothing to a node.
    if review.operation == "UPDATE"
        && let Some(old) = &review.old_object
        && let Ok(Some(old_spec)) = pods::pod_spec(&review.group, &review.kind, old)
        && let Ok(old_named) = old_spec.images()
    {
        let before: HashSet<&str> = old_named.iter().map(|n| n.image.as_str()).collect();
        let after: HashSet<&str> = images.iter().map(String::as_str).collect();
        if before == after {
            untouched("unchanged");
            return reply(&Answer::allow(), "unchanged");
        }
    }
    let decision = a.judge(&spec, &images, deadline).await;
    tracing::info!(
        uid = review.uid,
        namespace = logged(&review.namespace),
        kind = logged(&review.kind),
        name = logged(&review.name),
        operation = logged(&review.operation),
        images = images.len(),
        result = decision.result,
        allowed = decision.answer.allowed,
        message = decision.answer.message.as_deref(),
        milliseconds = started.elapsed().as_secs_f64() * 1000.0,
        "admission review"
    );
    reply(&decision.answer, decision.result)
}

/// A field of the review as the log writes it: printable and no longer
/// than a Kubernetes name may be.
fn logged(s: &str) -> String {
    review::printable(s, 253)
}

fn bad_request(message: String, review: Option<&Review>) -> Answered {
    let message = review::printable(&message, review::MAX_MESSAGE);
    tracing::warn!(
        uid = review.map(|r| r.uid.as_str()),
        error = message,
        "admission review refused: malformed"
    );
    Answered {
        response: (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": message })),
        )
            .into_response(),
        result: "malformed",
        uid: review.map(|r| r.uid.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_a_margin_within_the_api_servers_timeout() {
        assert_eq!(budget(None), Duration::from_secs(7));
        assert_eq!(budget(Some("timeout=10s")), Duration::from_secs(7));
        assert_eq!(budget(Some("a=b&timeout=2s")), Duration::from_millis(1400));
        assert_eq!(budget(Some("timeout=300s")), Duration::from_secs(21));
        assert_eq!(budget(Some("timeout=nonsense")), Duration::from_secs(7));
        assert_eq!(budget(Some("timeout=0s")), Duration::from_secs(7));
    }
}
