//! The HTTP side: receivers that authenticate, parse, filter and queue
//! registry notifications; the verdict API and the dashboard
//! ([`dashboard`]); health and metrics.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::serve::admission::{self, Admission};
use crate::serve::dashboard;
use crate::serve::events::{Incoming, Push, Sender, auth, distribution, github, harbor};
use crate::serve::listener::{BodyTimeout, ClientCertificate, caused_by};
use crate::serve::metrics::Metrics;
use crate::serve::policy::{is_repository, is_tag};
use crate::serve::store::{Position, Refused, Store, VerdictRecord, sender_name};

/// Largest delivery read: a Distribution envelope of a few events, a
/// Harbor payload, is a few kB, GitHub's package payload tens of kB. With
/// the in-flight cap it bounds the memory bodies can hold at once.
pub const BODY_LIMIT: usize = 256 << 10;

/// Most verdicts one listing page returns; the next page is asked for
/// with the answer's `next_cursor`.
pub const MAX_LIST: u32 = 100;

/// Where the verdict API and `/metrics` are served: they show whole
/// reports (paths, build steps with their arguments, labels), so never to
/// whoever reaches a receiver unless the operator chose so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadApi {
    /// Nowhere: neither a read token nor an admin listener is configured.
    Off,
    /// On the receivers' listener, behind the read token.
    Main,
    /// On the admin listener only (behind the read token if one is set).
    Admin,
}

/// One sender's receiver.
pub struct Receiver {
    /// The bearer secret (Distribution, Harbor) or HMAC key (GitHub).
    pub secret: Vec<u8>,
    /// `host[:port]`, lower-cased: the registries its events may name, all
    /// of them allowed ones. An event naming another is dropped and
    /// counted, the rest of its delivery still queued.
    pub registries: HashSet<String>,
}

/// Each sender's receiver; `None`: switched off, its path answers 404.
#[derive(Default)]
pub struct Receivers {
    pub distribution: Option<Receiver>,
    pub harbor: Option<Receiver>,
    pub github: Option<Receiver>,
}

impl Receivers {
    pub fn get(&self, sender: Sender) -> Option<&Receiver> {
        match sender {
            Sender::Distribution => self.distribution.as_ref(),
            Sender::Harbor => self.harbor.as_ref(),
            Sender::Github => self.github.as_ref(),
            Sender::Admission => None,
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub receivers: Receivers,
    pub max_queue: u64,
    /// Seconds a sender is told to wait when the queue is full.
    pub retry_after: u64,
    pub metrics: Arc<Metrics>,
    /// Workers wait on this when the queue is empty.
    pub wake: Arc<Notify>,
    /// False once shutdown began: `/readyz` then says so.
    pub ready: AtomicBool,
    /// The bearer token the verdict API and `/metrics` require, when set.
    pub api_token: Option<Vec<u8>>,
    pub read_api: ReadApi,
    /// The admission webhook, when `[serve.admission]` enables it.
    pub admission: Option<Arc<Admission>>,
    /// The dashboard's sign-in sessions.
    pub sessions: dashboard::Sessions,
}

/// The receivers' listener: receivers and probes, and the verdict API and
/// metrics when they are served here.
pub fn router(state: Arc<AppState>) -> Router {
    let main = Router::new()
        .route("/v1/events/distribution", post(distribution_events))
        .route("/v1/events/harbor", post(harbor_events))
        .route("/v1/events/github", post(github_events))
        .route("/v1/admission", post(admission_review))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    let read = match state.read_api {
        ReadApi::Main => read_routes(&state),
        ReadApi::Off | ReadApi::Admin => Router::new()
            .route("/v1/verdicts", get(read_api_elsewhere))
            .route("/v1/verdicts/{digest}", get(read_api_elsewhere))
            .route("/v1/history", get(read_api_elsewhere))
            .route("/metrics", get(read_api_elsewhere))
            .route("/ui", get(read_api_elsewhere))
            .route("/ui/", get(read_api_elsewhere))
            .route(
                "/ui/{*rest}",
                get(read_api_elsewhere).post(read_api_elsewhere),
            ),
    };
    main.merge(read).with_state(state)
}

/// The admin listener (`--admin-listen`): the verdict API, metrics and
/// probes, no receivers.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(read_routes(&state))
        .with_state(state)
}

/// The verdict API and metrics, behind the read token when one is set,
/// and the dashboard, behind a session signed in with that token.
fn read_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/verdicts", get(list_verdicts))
        .route("/v1/verdicts/{digest}", get(one_verdict))
        .route("/v1/history", get(dashboard::history_api))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_read_token,
        ))
        .merge(dashboard::routes(state))
}

/// 401 with a Bearer challenge unless the request carries the read token
/// (compared in constant time, as the delivery secret is).
async fn require_read_token(
    State(s): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &s.api_token
        && !auth::bearer_matches(token, request.headers())
    {
        let mut r = error(StatusCode::UNAUTHORIZED, "a read token is required");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sizeguard\""),
        );
        return r;
    }
    next.run(request).await
}

async fn read_api_elsewhere(State(s): State<Arc<AppState>>) -> Response {
    let message = match s.read_api {
        ReadApi::Admin => "not served on this listener (see the admin listener)",
        _ => "not served: the service was started without --api-token-file or --admin-listen",
    };
    error(StatusCode::NOT_FOUND, message)
}

async fn distribution_events(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(&s, Sender::Distribution, &headers, body).await
}

async fn harbor_events(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    receive(&s, Sender::Harbor, &headers, body).await
}

async fn github_events(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    receive(&s, Sender::Github, &headers, body).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Authenticate, read, parse, filter, queue durably, answer. The body is
/// read only after the headers authenticated the sender, where they can:
/// a stranger's request costs no more than its headers.
async fn receive(s: &AppState, sender: Sender, headers: &HeaderMap, body: Body) -> Response {
    let name = sender_name(sender);
    let Some(receiver) = s.receivers.get(sender) else {
        return error(StatusCode::NOT_FOUND, "this receiver is switched off");
    };
    // GitHub signs the body, so its check must wait for it; a delivery
    // without a well-formed signature is refused before.
    let authentic = match sender {
        Sender::Github => auth::github_signature(headers).is_some(),
        _ => auth::bearer_matches(&receiver.secret, headers),
    };
    if !authentic {
        return unauthorized(s, name);
    }
    let body = match read_body(s, headers, body, BODY_LIMIT).await {
        Ok(b) => b,
        Err((status, reason, message)) => {
            s.metrics.rejected(name, reason);
            return error(status, &message);
        }
    };
    if matches!(sender, Sender::Github)
        && !auth::github_signature_matches(&receiver.secret, &body, headers)
    {
        return unauthorized(s, name);
    }
    let parsed = match sender {
        Sender::Distribution => distribution::parse(&body, headers),
        Sender::Harbor => harbor::parse(&body, headers),
        Sender::Github => github::parse(&body, headers),
        Sender::Admission => return error(StatusCode::NOT_FOUND, "not a receiver"),
    };
    let incoming = match parsed {
        Ok(i) => i,
        Err(e) => {
            s.metrics.rejected(name, "malformed");
            tracing::warn!(sender = name, error = %e.one_line(), "delivery refused: malformed");
            return error(StatusCode::BAD_REQUEST, &e.one_line());
        }
    };
    s.metrics.received(name, incoming.len() as u64);
    let mut pushes = Vec::new();
    for i in incoming {
        match i {
            Incoming::Ignored { event_id, reason } => {
                s.metrics.ignored(name, reason);
                tracing::debug!(sender = name, event_id, reason, "event ignored");
            }
            Incoming::Push(push) => match admit(receiver, &push) {
                Ok(()) => pushes.push(push),
                Err(reason) => s.metrics.ignored(name, reason),
            },
        }
    }
    if pushes.is_empty() {
        return (
            StatusCode::OK,
            axum::Json(json!({ "queued": 0, "duplicates": 0 })),
        )
            .into_response();
    }
    enqueue(s, name, pushes).await
}

/// `POST /v1/admission`: the token or the client certificate first, then
/// the body (at most
/// [`admission::BODY_LIMIT`]), then the review.
async fn admission_review(
    State(s): State<Arc<AppState>>,
    uri: axum::http::Uri,
    certificate: Option<axum::Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(a) = &s.admission else {
        return error(
            StatusCode::NOT_FOUND,
            "the admission webhook is off ([serve.admission] enables it)",
        );
    };
    let by_token = a
        .token
        .as_ref()
        .is_some_and(|t| auth::bearer_matches(t, &headers));
    let by_certificate = a.client_certificates && certificate.is_some();
    if !by_token && !by_certificate {
        s.metrics.admission("unauthorized");
        tracing::warn!("admission review refused: wrong or missing token");
        let mut r = error(StatusCode::UNAUTHORIZED, "wrong or missing token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sizeguard\""),
        );
        return r;
    }
    let body = match read_body(&s, &headers, body, admission::BODY_LIMIT).await {
        Ok(b) => b,
        Err((status, _, message)) => {
            s.metrics.admission("malformed");
            return error(status, &message);
        }
    };
    let answered = admission::answer(a, &body, uri.query()).await;
    s.metrics.admission(answered.result);
    answered.response
}

fn unauthorized(s: &AppState, name: &'static str) -> Response {
    s.metrics.rejected(name, "unauthorized");
    tracing::warn!(sender = name, "delivery refused: wrong or missing secret");
    error(StatusCode::UNAUTHORIZED, "wrong or missing secret")
}

/// The body, at most `limit` bytes; the listener's deadline bounds how
/// long it may take. Errors: the status, the metric's reason, the message.
async fn read_body(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, (StatusCode, &'static str, String)> {
    let too_big = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if caused_by::<LengthLimitError>(e.as_ref()) => Err(too_big()),
        Err(e) if caused_by::<BodyTimeout>(e.as_ref()) => {
            s.metrics.inbound_refused("body_timeout");
            Err((StatusCode::REQUEST_TIMEOUT, "body", e.to_string()))
        }
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            "body",
            format!("the body could not be read: {e}"),
        )),
    }
}

/// Whether a push may be queued: its registry is one this receiver may
/// name (the event's own URL is never fetched), and its names are ones a
/// registry could have sent. `Err`: the reason it is dropped. A dropped
/// event does not fail its delivery: Distribution re-sends a refused
/// delivery until it is accepted, holding back every later one.
fn admit(receiver: &Receiver, push: &Push) -> Result<(), &'static str> {
    let name = sender_name(push.sender);
    if !receiver.registries.contains(&push.registry) {
        tracing::warn!(
            sender = name,
            event_id = push.event_id,
            registry = push.registry,
            repository = push.repository,
            "event ignored: it names a registry the configuration does not list for this receiver"
        );
        return Err("registry_not_allowed");
    }
    let tag_ok = push.tag.as_deref().is_none_or(is_tag);
    if !is_repository(&push.repository) || !tag_ok {
        tracing::warn!(
            sender = name,
            event_id = push.event_id,
            "event ignored: its repository or tag is not a valid name"
        );
        return Err("invalid_name");
    }
    Ok(())
}

async fn enqueue(s: &AppState, name: &'static str, pushes: Vec<Push>) -> Response {
    match s.store.enqueue(pushes, s.max_queue).await {
        Ok(Ok(done)) => {
            s.metrics.queued(name, done.queued as u64);
            s.metrics.duplicates(name, done.duplicates as u64);
            for _ in 0..done.queued {
                s.wake.notify_one();
            }
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "queued": done.queued, "duplicates": done.duplicates })),
            )
                .into_response()
        }
        Ok(Err(Refused::QueueFull { depth })) => {
            s.metrics.rejected(name, "queue_full");
            tracing::warn!(sender = name, depth, "delivery refused: the queue is full");
            busy(s.retry_after, "the queue is full")
        }
        Err(e) => {
            s.metrics.rejected(name, "store_error");
            tracing::error!(sender = name, error = %e.one_line(), "delivery not queued");
            busy(1, "the queue is unavailable")
        }
    }
}

/// A 503 that says when to try again: the one shape of every refusal for
/// load, from the queue and from the inbound caps.
pub(crate) fn busy(retry_after: u64, message: &str) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
    }
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            // The probe is open to anyone who reaches the port: the reason
            // goes to the log only.
            tracing::warn!(error = %e.one_line(), "not ready: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
        }
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn one_verdict(State(s): State<Arc<AppState>>, Path(digest): Path<String>) -> Response {
    match s.store.verdict(&digest).await {
        Ok(Some(v)) => axum::Json(verdict_json(&v)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no verdict for this digest (yet)"),
        Err(e) => store_unavailable(&e),
    }
}

/// A store error: logged, answered without its text.
fn store_unavailable(e: &crate::error::Error) -> Response {
    tracing::warn!(error = %e.one_line(), "verdict API: the store did not answer");
    error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
}

#[derive(Deserialize)]
struct ListQuery {
    repository: String,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_verdicts(
    State(s): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "give ?repository=NAME (and optionally &limit=N, &cursor=C)",
        );
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => match Position::from_cursor(c) {
            Some(p) => Some(p),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "cursor: not one this API handed out (give next_cursor as it came)",
                );
            }
        },
    };
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_LIST);
    // One more than shown tells whether a next page exists.
    match s.store.verdicts(&q.repository, limit + 1, after).await {
        Ok(mut list) => {
            let next = (list.len() > limit as usize).then(|| {
                list.truncate(limit as usize);
                list.last().map(|v| {
                    Position {
                        judged_at_ms: v.judged_at_ms,
                        id: v.id,
                    }
                    .cursor()
                })
            });
            axum::Json(json!({
                "repository": q.repository,
                "verdicts": list.iter().map(verdict_json).collect::<Vec<_>>(),
                "next_cursor": next.flatten(),
            }))
            .into_response()
        }
        Err(e) => store_unavailable(&e),
    }
}

/// A verdict as the API shows it: the image, the event it came from, and
/// the `check --format json` document under `report`.
pub fn verdict_json(v: &VerdictRecord) -> serde_json::Value {
    let report = v
        .judgement
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok());
    json!({
        "verdict": v.judgement.outcome.as_str(),
        "registry": v.push.registry,
        "repository": v.push.repository,
        "tag": v.push.tag,
        "digest": v.push.digest.to_string(),
        "media_type": v.push.media_type,
        "event": {
            "sender": sender_name(v.push.sender),
            "id": v.push.event_id,
            "received_at_ms": v.received_at_ms,
        },
        "judged_at_ms": v.judged_at_ms,
        "duration_ms": v.judgement.duration.as_millis() as u64,
        "attempts": v.attempts,
        "error": v.judgement.error,
        "report": report,
    })
}
