//! The dashboard (`/ui/`): the repositories with their latest verdict and
//! a sparkline, a repository's trend charts and verdicts, and a stored
//! check report as a page. Server-rendered HTML with inline SVG and
//! embedded CSS, no JavaScript: the Content-Security-Policy allows no
//! script at all, so a report's text can never run in a reader's browser.
//!
//! It shows what the verdict API shows, so it sits behind the same
//! placement and token ([`ReadApi`]). A browser cannot send a bearer
//! token, so `/ui/login` takes the token once and answers with a session
//! cookie.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::report::chart;
use crate::report::history::{HistoryPoint, HistoryView};
use crate::report::html::{check_html, escape};
use crate::report::json::CheckView;
use crate::serve::http::{AppState, MAX_LIST};
use crate::serve::store::{Outcome, VerdictRecord};
use crate::units::human_bytes;

pub const COOKIE: &str = "sizeguard_session";

/// How long a sign-in lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 3600);

/// A sign-in form is one short field.
const LOGIN_BODY_LIMIT: usize = 4096;

/// Repositories the index lists, and verdicts a repository page reads.
const INDEX_LIMIT: u32 = 100;
const PAGE_VERDICTS: u32 = 50;
/// Points of an index row's sparkline.
const SPARK_POINTS: u32 = 20;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("dashboard.css");

/// The session cookie is an expiry time signed with HMAC-SHA256 under a
/// key drawn at start-up and never stored. Chosen over a set of random
/// ids because it needs no memory to bound and no lock on every page:
/// the price is that signing out clears the browser's cookie but cannot
/// revoke a copy of it before it expires (at most [`SESSION`]); a restart
/// revokes every session.
pub struct Sessions {
    key: [u8; 32],
    /// `Secure` on the cookie: the listener speaks TLS.
    secure: bool,
}

impl Sessions {
    pub fn new(secure: bool) -> Result<Sessions, crate::error::Error> {
        let mut key = [0u8; 32];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut key)
            .map_err(|_| crate::error::Error::transient("no random bytes for the session key"))?;
        Ok(Sessions { key, secure })
    }

    fn mac(&self, expiry: u64) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(b"sizeguard dashboard session\0");
        mac.update(&expiry.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn issue(&self) -> String {
        let expiry = now_secs() + SESSION.as_secs();
        format!("{expiry}.{}", hex(&self.mac(expiry)))
    }

    fn valid(&self, value: &str) -> bool {
        let Some((expiry, mac)) = value.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        if expiry <= now_secs() {
            return false;
        }
        let expected = hex(&self.mac(expiry));
        bool::from(expected.as_bytes().ct_eq(mac.as_bytes()))
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
        .expect("the cookie is ASCII")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The pages, behind a session when a read token is set; the sign-in page
/// and every answer with the security headers.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/ui/", get(index))
        .route("/ui/repository", get(repository))
        .route("/ui/report/{digest}", get(report))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .merge(pages)
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn signed_in(s: &AppState, headers: &HeaderMap) -> bool {
    s.api_token.is_none() || session_cookie(headers).is_some_and(|c| s.sessions.valid(c))
}

async fn require_session(
    State(s): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !signed_in(&s, request.headers()) {
        return redirect("/ui/login");
    }
    next.run(request).await
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

async fn login_form(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if signed_in(&s, &headers) {
        return redirect("/ui/");
    }
    html(StatusCode::OK, "Sign in", &login_body(None), false)
}

fn login_body(problem: Option<&str>) -> String {
    let problem = problem.map_or(String::new(), |p| {
        format!("<p class=\"problem\" role=\"alert\">{}</p>", escape(p))
    });
    format!(
        "<section class=\"login\"><h1>Sign in</h1>{problem}\
         <p class=\"muted\">The dashboard shows what the verdict API shows: give its read token.</p>\
         <form method=\"post\" action=\"/ui/login\">\
         <label for=\"token\">Read token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Sign in</button></form></section>"
    )
}

async fn login(State(s): State<Arc<AppState>>, body: Body) -> Response {
    let Some(token) = &s.api_token else {
        return redirect("/ui/");
    };
    let body = match Limited::new(body, LOGIN_BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return html(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Sign in",
                &login_body(Some("The form was too large.")),
                false,
            );
        }
    };
    let given = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // Digests of both, as the bearer check does: the length stays out of
    // the timing too.
    let matches = !token.is_empty()
        && bool::from(
            Sha256::digest(token)
                .as_slice()
                .ct_eq(Sha256::digest(given.as_bytes()).as_slice()),
        );
    if !matches {
        tracing::warn!("dashboard sign-in refused: wrong read token");
        return html(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            &login_body(Some("That is not the read token.")),
            false,
        );
    }
    let mut r = redirect("/ui/");
    r.headers_mut().insert(
        header::SET_COOKIE,
        s.sessions
            .set_cookie(&s.sessions.issue(), SESSION.as_secs()),
    );
    r
}

async fn logout(State(s): State<Arc<AppState>>) -> Response {
    let mut r = redirect("/ui/login");
    r.headers_mut()
        .insert(header::SET_COOKIE, s.sessions.set_cookie("", 0));
    r
}

/// A whole page.
fn html(status: StatusCode, title: &str, body: &str, signed_in: bool) -> Response {
    let logout = if signed_in {
        "<form method=\"post\" action=\"/ui/logout\" class=\"logout\"><button type=\"submit\">Sign out</button></form>"
    } else {
        ""
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · sizeguard</title><style>{CSS}</style></head>\n<body>\
         <header class=\"top\"><a class=\"brand\" href=\"/ui/\">sizeguard</a>{logout}</header>\n\
         <main>{body}</main></body></html>\n",
        escape(title)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        "Error",
        &format!("<h1>{}</h1><p>{}</p>", status.as_u16(), escape(message)),
        true,
    )
}

fn store_down(e: &crate::error::Error) -> Response {
    tracing::warn!(error = %e.one_line(), "dashboard: the store did not answer");
    error_page(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable.")
}

/// A repository's history from its verdicts (`records` newest first, as
/// the store lists them): oldest first, each point's figures from its
/// stored report and its `report` the verdict's API path.
pub fn history_of(repository: &str, records: &[VerdictRecord]) -> HistoryView {
    let registry = records.first().map(|r| r.push.registry.as_str());
    let name = match registry {
        Some(reg) => format!("{reg}/{repository}"),
        None => repository.to_string(),
    };
    let mut view = HistoryView::new(name, None);
    for r in records.iter().rev() {
        let digest = r.push.digest.to_string();
        let parsed = r
            .judgement
            .report
            .as_deref()
            .and_then(|t| CheckView::from_json(t).ok());
        let mut point = match &parsed {
            Some(v) => HistoryPoint::from_check(v, None, r.push.tag.clone(), digest.clone()),
            None => HistoryPoint::missing(r.push.tag.clone(), digest.clone(), None),
        };
        point.report = Some(format!("/v1/verdicts/{digest}"));
        view.points.push(point);
    }
    view
}

async fn index(State(s): State<Arc<AppState>>) -> Response {
    let latest = match s.store.repositories(INDEX_LIMIT).await {
        Ok(l) => l,
        Err(e) => return store_down(&e),
    };
    let mut rows = String::new();
    for v in &latest {
        let repo = &v.push.repository;
        let spark = match s.store.verdicts(repo, SPARK_POINTS, None).await {
            Ok(list) => chart::sparkline(&history_of(repo, &list)),
            Err(e) => return store_down(&e),
        };
        let node = v
            .judgement
            .report
            .as_deref()
            .and_then(|t| CheckView::from_json(t).ok())
            .and_then(|c| c.platforms.first().map(|p| p.candidate_cost.node_bytes));
        rows.push_str(&format!(
            "<tr><td><a href=\"/ui/repository?name={}\">{}</a><div class=\"muted small\">{}</div></td>\
             <td>{}</td><td>{}</td><td class=\"num\"{}>{}</td><td>{spark}</td><td class=\"muted small\">{}</td></tr>\n",
            escape(&query_value(repo)),
            escape(repo),
            escape(&v.push.registry),
            escape(v.push.tag.as_deref().unwrap_or("–")),
            badge(v.judgement.outcome),
            node.map_or(String::new(), |n| format!(" data-bytes=\"{n}\"")),
            node.map_or_else(|| "–".to_string(), human_bytes),
            when(v.judged_at_ms),
        ));
    }
    let body = if latest.is_empty() {
        "<h1>Repositories</h1><p class=\"muted\">No verdict yet: push an image to a registry that notifies this service.</p>".to_string()
    } else {
        format!(
            "<h1>Repositories</h1>\n<table class=\"list\"><thead><tr><th>repository</th><th>latest tag</th>\
             <th>verdict</th><th class=\"num\">node bytes</th><th>trend</th><th>judged</th></tr></thead>\n\
             <tbody>\n{rows}</tbody></table>"
        )
    };
    html(StatusCode::OK, "Repositories", &body, true)
}

#[derive(Deserialize)]
struct RepositoryQuery {
    name: String,
}

async fn repository(
    State(s): State<Arc<AppState>>,
    query: Result<Query<RepositoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error_page(StatusCode::BAD_REQUEST, "Give ?name=REPOSITORY.");
    };
    let list = match s.store.verdicts(&q.name, PAGE_VERDICTS, None).await {
        Ok(l) => l,
        Err(e) => return store_down(&e),
    };
    if list.is_empty() {
        return error_page(StatusCode::NOT_FOUND, "No verdict for this repository.");
    }
    let view = history_of(&q.name, &list);
    let mut rows = String::new();
    for v in &list {
        let digest = v.push.digest.to_string();
        let cost = v
            .judgement
            .report
            .as_deref()
            .and_then(|t| CheckView::from_json(t).ok())
            .and_then(|c| c.platforms.first().map(|p| p.candidate_cost));
        let cell = |b: Option<u64>| match b {
            Some(b) => format!(
                "<td class=\"num\" data-bytes=\"{b}\">{}</td>",
                human_bytes(b)
            ),
            None => "<td class=\"num\">–</td>".to_string(),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"/ui/report/{}\"><code>{}</code></a></td><td>{}</td>{}{}<td class=\"num\">{}</td><td class=\"muted small\">{}</td></tr>\n",
            escape(v.push.tag.as_deref().unwrap_or("–")),
            escape(&digest),
            escape(&digest.chars().take(19).collect::<String>()),
            badge(v.judgement.outcome),
            cell(cost.as_ref().map(|c| c.node_bytes)),
            cell(cost.as_ref().map(|c| c.pull_bytes)),
            cost.as_ref().map_or_else(|| "–".to_string(), |c| c.node_inodes.to_string()),
            when(v.judged_at_ms),
        ));
    }
    let body = format!(
        "<p class=\"crumbs\"><a href=\"/ui/\">Repositories</a> /</p><h1>{}</h1>\n\
         <div class=\"card\">{}</div>\n<h2>Verdicts</h2>\n<table class=\"list\"><thead><tr><th>tag</th><th>digest</th>\
         <th>verdict</th><th class=\"num\">node bytes</th><th class=\"num\">pull bytes</th><th class=\"num\">inodes</th>\
         <th>judged</th></tr></thead>\n<tbody>\n{rows}</tbody></table>",
        escape(&view.repository),
        chart::charts_svg(&view, chart::WIDTH),
    );
    html(StatusCode::OK, &q.name, &body, true)
}

async fn report(State(s): State<Arc<AppState>>, Path(digest): Path<String>) -> Response {
    let v = match s.store.verdict(&digest).await {
        Ok(Some(v)) => v,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No verdict for this digest (yet)."),
        Err(e) => return store_down(&e),
    };
    let image = format!(
        "{}/{}{}",
        v.push.registry,
        v.push.repository,
        v.push
            .tag
            .as_deref()
            .map_or(String::new(), |t| format!(":{t}"))
    );
    let report = match v.judgement.report.as_deref().map(CheckView::from_json) {
        Some(Ok(view)) => check_html(&view),
        Some(Err(e)) => format!(
            "<p class=\"problem\">The stored report cannot be read: {}</p>",
            escape(&e.one_line())
        ),
        None => format!(
            "<p class=\"problem\">Not judged: {}</p>",
            escape(v.judgement.error.as_deref().unwrap_or("no report"))
        ),
    };
    let body = format!(
        "<p class=\"crumbs\"><a href=\"/ui/\">Repositories</a> / <a href=\"/ui/repository?name={}\">{}</a> /</p>\
         <h1><code>{}</code></h1><p class=\"muted small\">{} · judged {}</p>\n{report}",
        escape(&query_value(&v.push.repository)),
        escape(&v.push.repository),
        escape(&image),
        escape(&v.push.digest.to_string()),
        when(v.judged_at_ms),
    );
    html(StatusCode::OK, &image, &body, true)
}

fn badge(o: Outcome) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", o.as_str())
}

fn query_value(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn when(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// `GET /v1/history?repository=R[&last=N]`: the repository's last N
/// verdicts (20 unless asked, at most [`MAX_LIST`]) as a history.
#[derive(Deserialize)]
pub struct HistoryQuery {
    repository: String,
    last: Option<u32>,
}

pub async fn history_api(
    State(s): State<Arc<AppState>>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                serde_json::json!({"error": "give ?repository=NAME (and optionally &last=N)"}),
            ),
        )
            .into_response();
    };
    let last = q.last.unwrap_or(20).clamp(1, MAX_LIST);
    match s.store.verdicts(&q.repository, last + 1, None).await {
        Ok(mut list) => {
            let more = list.len() > last as usize;
            list.truncate(last as usize);
            let mut view = history_of(&q.repository, &list);
            if more {
                view.note = Some(format!(
                    "the last {last} verdicts; older ones are kept (ask with &last=N, at most {MAX_LIST})"
                ));
            } else if list.is_empty() {
                view.note = Some("no verdict for this repository yet".to_string());
            }
            axum::Json(view).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e.one_line(), "history API: the store did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"error": "the store is unavailable"})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_with_its_key() {
        let a = Sessions::new(false).unwrap();
        let b = Sessions::new(true).unwrap();
        let c = a.issue();
        assert!(a.valid(&c));
        assert!(!b.valid(&c));
        let expired = now_secs() - 1;
        assert!(!a.valid(&format!("{expired}.{}", hex(&a.mac(expired)))));
        let (e, _) = c.split_once('.').unwrap();
        assert!(!a.valid(&format!(
            "{}.{}",
            e.parse::<u64>().unwrap() + 1,
            &c[e.len() + 1..]
        )));
        assert!(!a.valid("garbage"));
        let cookie = b.set_cookie(&c, 60);
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("; Secure") && cookie.contains("Path=/ui"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sizeguard_session=123.ab; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("123.ab"));
    }
}
