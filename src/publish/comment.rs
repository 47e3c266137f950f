//! The sticky pull-request comment: one per image and pull request, found
//! again by a hidden marker (`<!-- sizeguard:IMAGE -->`) and edited in place
//! on every push instead of piling up new ones.
//!
//! REST calls (octocrab, raw requests so the base URI, pagination and
//! retries stay ours):
//! `GET /repos/{o}/{r}/issues/{n}/comments?per_page=100` (every page, by the
//! `Link: rel="next"` header), `POST /repos/{o}/{r}/issues/{n}/comments`,
//! `PATCH /repos/{o}/{r}/issues/comments/{id}`.
//!
//! Anyone can write a comment holding the marker, so a comment is ours
//! only when the token's own identity wrote it and it is not minimized
//! (hidden by a maintainer): see [`author`]. A planted marker is never
//! edited, and never taken for the report already posted.
//!
//! Rate limits are retried as GitHub documents them: `retry-after` seconds,
//! else until `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, else a
//! minute for a secondary limit, each wait capped and a bounded number of
//! times. A 403 that is not a rate limit is a read-only token (a fork's pull
//! request): the comment is skipped with one notice, never a failure.
//!
//! Errors carry their kind: a rejected token is a usage error (the user
//! configured it), a missing repository or pull request is not found,
//! connection errors, lasting rate limits and 5xx are transient, and an
//! answer that is not the JSON GitHub documents is corrupt.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use octocrab::Octocrab;
use serde_json::{Value, json};

use super::actions::notice;
use super::github::Context;
use crate::error::{Error, Kind, chain};

mod author;

/// When to comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create the comment, or edit it on every run.
    Always,
    /// Like `always`, but leave the comment alone when the report did not change.
    OnChange,
    /// Only when the verdict is fail; an earlier comment is still kept current.
    OnFailure,
    /// Never comment.
    Never,
}

/// What happened to the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        id: u64,
        url: String,
    },
    Updated {
        id: u64,
        url: String,
    },
    /// `on-change`: the comment already says this.
    Unchanged {
        id: u64,
    },
    /// Nothing to do (mode `never`, `on-failure` while passing, ...).
    Skipped(String),
    /// The token may not comment (read-only: a fork's pull request).
    ReadOnly(String),
}

impl Outcome {
    /// One line for the log.
    pub fn describe(&self, pr: u64) -> String {
        match self {
            Outcome::Created { url, .. } => format!("comment created on #{pr}: {url}"),
            Outcome::Updated { url, .. } => format!("comment updated on #{pr}: {url}"),
            Outcome::Unchanged { id } => {
                format!("comment {id} on #{pr} unchanged: the report is the same")
            }
            Outcome::Skipped(why) => format!("no comment: {why}"),
            Outcome::ReadOnly(why) => why.clone(),
        }
    }
}

/// The hidden marker that identifies this image's comment.
pub fn marker(image: &str) -> String {
    let name: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._/:@-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("<!-- sizeguard:{name} -->")
}

/// GitHub refuses comment bodies over 65 536 characters.
const MAX_BODY: usize = 65_536;

/// The comment: marker line, the Markdown report, then the footer (what
/// was judged, by which sizeguard, when), which a cut report keeps.
pub fn body(image: &str, markdown: &str, footer: &str) -> String {
    let marker = marker(image);
    let md = markdown.trim_end();
    let footer = if footer.is_empty() {
        String::new()
    } else {
        format!("\n{footer}\n")
    };
    let budget = MAX_BODY - marker.len() - footer.chars().count() - 200;
    if md.chars().count() <= budget {
        return format!("{marker}\n{md}\n{footer}");
    }
    let mut cut: String = md.chars().take(budget).collect();
    if let Some(nl) = cut.rfind('\n') {
        cut.truncate(nl);
    }
    let close = if cut.matches("<details").count() > cut.matches("</details>").count() {
        "\n\n</details>"
    } else {
        ""
    };
    format!(
        "{marker}\n{cut}{close}\n\n_… truncated: GitHub comments hold 65 536 characters; \
         the whole report is in the step summary and the JSON report._\n{footer}"
    )
}

/// The footer's words before the time of the update, which `on-change`
/// does not count as a change.
const UPDATED: &str = " · updated ";

/// One line under the report: the commit judged (short, linked), when the
/// comment was written (UTC), the sizeguard version, and where the figures
/// are explained. Every part comes from the workflow's own environment,
/// checked to be a hexadecimal commit id and http(s) URLs.
pub fn footer(ctx: &Context, now: SystemTime) -> String {
    let mut parts = Vec::new();
    if let Some(sha) = &ctx.commit {
        let short: String = sha.chars().take(7).collect();
        parts.push(format!(
            "judged [`{short}`]({}/{}/{}/commit/{sha})",
            ctx.server_url, ctx.owner, ctx.repo
        ));
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut s = format!(
        "sizeguard {}{UPDATED}{}",
        env!("CARGO_PKG_VERSION"),
        utc_minute(secs)
    );
    if !parts.is_empty() {
        s = format!("{} · {s}", parts.join(" · "));
    }
    if let Some(docs) = &ctx.docs_url {
        s.push_str(&format!(" · [how to read this report]({docs})"));
    }
    format!("<sub>{s}</sub>")
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time, by the civil-from-days algorithm
/// (Howard Hinnant's), so no calendar crate is needed for one line.
fn utc_minute(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A body without the time of its update: two runs over the same report
/// and commit are the same comment.
fn without_update_time(body: &str) -> String {
    body.lines()
        .map(
            |line| match (line.starts_with("<sub>"), line.find(UPDATED)) {
                (true, Some(at)) => {
                    let start = at + UPDATED.len();
                    let end = line[start..].find(" UTC").map_or(line.len(), |e| start + e);
                    format!("{}{}", &line[..start], &line[end..])
                }
                _ => line.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ours(existing: &str, marker: &str) -> bool {
    existing.trim_start().starts_with(marker)
}

fn same(a: &str, b: &str) -> bool {
    let norm = |s: &str| without_update_time(s.replace("\r\n", "\n").trim_end());
    norm(a) == norm(b)
}

/// A 403 for a pull request whose head is in this repository is not the
/// fork's read-only token: the workflow did not grant the permission.
fn refused(ctx: &Context, why: String) -> Result<Outcome, Error> {
    if ctx.same_repository {
        return Err(Error::usage(format!(
            "the GitHub token may not comment on this pull request from a branch of {}/{} \
             (403): add `permissions: pull-requests: write` to the workflow or job",
            ctx.owner, ctx.repo
        )));
    }
    Ok(Outcome::ReadOnly(why))
}

/// Posts (or edits) the comment for `image` on the context's pull request.
/// `failing`: the verdict is fail (for [`Mode::OnFailure`]).
pub async fn post(
    ctx: &Context,
    image: &str,
    markdown: &str,
    failing: bool,
    mode: Mode,
) -> Result<(Option<u64>, Outcome), Error> {
    if mode == Mode::Never {
        return Ok((ctx.pr, Outcome::Skipped("comment mode is never".into())));
    }
    let api = Api::new(ctx)?;
    let pr = match ctx.pr {
        Some(n) => n,
        None => match api.find_pr(ctx).await? {
            Found::Pr(n) => n,
            Found::None(why) => return Ok((None, Outcome::Skipped(why))),
            Found::ReadOnly(why) => return Ok((None, refused(ctx, why)?)),
        },
    };
    let marker = marker(image);
    let new_body = body(image, markdown, &footer(ctx, SystemTime::now()));
    let existing = match api.find_comment(pr, &marker).await? {
        Step::Ok(c) => c,
        Step::ReadOnly(why) => return Ok((Some(pr), refused(ctx, why)?)),
    };
    let outcome = match (existing, mode) {
        (None, Mode::OnFailure) if !failing => Outcome::Skipped(
            "comment mode is on-failure, the check passed and there is no earlier comment".into(),
        ),
        (Some(c), Mode::OnChange) if same(&c.body, &new_body) => Outcome::Unchanged { id: c.id },
        (Some(c), _) => match api.update(c.id, &new_body).await? {
            Step::Ok(url) => Outcome::Updated { id: c.id, url },
            Step::ReadOnly(why) => refused(ctx, why)?,
        },
        (None, _) => match api.create(pr, &new_body).await? {
            Step::Ok((id, url)) => Outcome::Created { id, url },
            Step::ReadOnly(why) => refused(ctx, why)?,
        },
    };
    Ok((Some(pr), outcome))
}

/// A comment that carries the marker, and what decides whether it is ours.
#[derive(Debug)]
struct Existing {
    id: u64,
    body: String,
    /// `user.login`.
    author: String,
    /// The GraphQL id, to ask whether it is minimized.
    node_id: Option<String>,
}

enum Step<T> {
    Ok(T),
    ReadOnly(String),
}

enum Found {
    Pr(u64),
    None(String),
    ReadOnly(String),
}

pub(super) struct Reply {
    pub(super) status: u16,
    headers: HeaderMap,
    pub(super) body: String,
}

impl Reply {
    fn json(&self, what: &str) -> Result<Value, Error> {
        serde_json::from_str(&self.body).map_err(|e| {
            Error::corrupt(format!("GitHub API {what}: unreadable answer")).with_source(e)
        })
    }

    /// GitHub's `{"message": ...}`, shortened.
    pub(super) fn message(&self) -> String {
        let m = serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| self.body.clone());
        m.chars().take(200).collect()
    }

    /// A non-2xx answer as an error, or on 403 the reason the comment is
    /// skipped (a read-only token); `Ok(None)` for a success.
    fn judge(&self, what: &str) -> Result<Option<String>, Error> {
        match self.status {
            200..=299 => Ok(None),
            403 => Ok(Some(format!(
                "the GitHub token may not comment on this pull request ({what}: 403 {}); \
                 a pull request from a fork gets a read-only token: the report is in the step \
                 summary and the JSON report, and `sizeguard comment` can post it from a \
                 workflow_run workflow",
                self.message()
            ))),
            // The token is the user's configuration: fixing it is a usage
            // matter (exit 2), unlike a registry refusing credentials.
            401 => Err(Error::usage(format!(
                "GitHub API {what}: 401 {}: the token was rejected",
                self.message()
            ))),
            404 => Err(Error::not_found(format!(
                "GitHub API {what}: 404 {}: check the repository and pull request number, and that the token can see them",
                self.message()
            ))),
            s => {
                // 5xx and 429 outlasted the retries; any other answer means
                // GitHub will not take this request as it is.
                let kind = if s == 429 || s >= 500 {
                    Kind::Transient
                } else {
                    Kind::Corrupt
                };
                Err(Error::new(
                    kind,
                    format!("GitHub API {what}: {s} {}", self.message()),
                ))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// How many times a rate-limited or failing call is retried.
const RETRIES: u32 = 3;
/// The longest single wait, in seconds (`SIZEGUARD_GITHUB_MAX_WAIT` overrides):
/// a primary rate limit that resets later than this fails at once.
const MAX_WAIT_SECS: u64 = 60;
/// Pages of comments read at most (100 each).
const MAX_PAGES: usize = 100;

/// The REST client with its retries, shared with the commit status.
pub(super) struct Api {
    crab: Octocrab,
    /// The GraphQL endpoint's client: `{api}/graphql`, or on GitHub
    /// Enterprise Server `https://HOST/api/graphql` beside `/api/v3`.
    graphql: Octocrab,
    owner: String,
    repo: String,
    max_wait: Duration,
    /// Rate-limit waits as `::notice::` lines (the CLI, in a workflow), or
    /// only through `tracing` (the service: its stderr is a log, and an
    /// Actions runner reading it must not take text for commands).
    workflow_commands: bool,
}

impl Api {
    pub(super) fn new(ctx: &Context) -> Result<Self, Error> {
        let crab = client(&ctx.api_url, ctx)?;
        let graphql = client(author::graphql_base(&ctx.api_url), ctx)?;
        let max_wait = std::env::var("SIZEGUARD_GITHUB_MAX_WAIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_WAIT_SECS);
        Ok(Api {
            crab,
            graphql,
            owner: ctx.owner.clone(),
            repo: ctx.repo.clone(),
            max_wait: Duration::from_secs(max_wait),
            workflow_commands: true,
        })
    }

    /// The same client for a long-running service: nothing is printed,
    /// everything it would say goes to the log.
    pub(super) fn without_workflow_commands(mut self) -> Self {
        self.workflow_commands = false;
        self
    }

    pub(super) fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.repo)
    }

    /// One REST call, retried on rate limits, 5xx and transport errors.
    pub(super) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        self.send_via(&self.crab, method, uri, body).await
    }

    /// One call through `crab`, retried on rate limits, 5xx and transport
    /// errors.
    async fn send_via(
        &self,
        crab: &Octocrab,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let what = format!("{} {}", method.as_str(), strip_query(uri));
        let mut attempt = 0;
        loop {
            let reply = match call(crab, method, uri, body).await {
                Ok(r) => r,
                Err(e) if attempt < RETRIES => {
                    tracing::info!("GitHub API {what}: {}; retrying", chain(&e));
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => {
                    return Err(Error::transient(format!("GitHub API {what}")).with_source(e));
                }
            };
            if let Some(wait) = rate_limit_wait(reply.status, &reply.headers, &reply.body) {
                if attempt >= RETRIES {
                    return Err(Error::transient(format!(
                        "GitHub API {what}: still rate limited after {RETRIES} retries"
                    )));
                }
                if wait > self.max_wait {
                    return Err(Error::transient(format!(
                        "GitHub API {what}: rate limited for another {}s (more than the {}s this tool waits)",
                        wait.as_secs(),
                        self.max_wait.as_secs()
                    )));
                }
                let message = format!(
                    "GitHub API rate limit ({}): waiting {}s before retrying {what}",
                    reply.status,
                    wait.as_secs()
                );
                if self.workflow_commands {
                    notice(&message);
                } else {
                    tracing::info!("{message}");
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            if matches!(reply.status, 500 | 502 | 503 | 504) && attempt < RETRIES {
                tracing::info!("GitHub API {what}: {}; retrying", reply.status);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Ok(reply);
        }
    }

    /// Our comment for `marker` on the pull request, if there is one: every
    /// page is read, then the marked comments are judged by author.
    async fn find_comment(&self, pr: u64, marker: &str) -> Result<Step<Option<Existing>>, Error> {
        let mut uri = format!("{}/issues/{pr}/comments?per_page=100", self.repo_path());
        let mut marked = Vec::new();
        for _ in 0..MAX_PAGES {
            let reply = self.send(Method::Get, &uri, None).await?;
            if let Some(w) = reply.judge("listing comments")? {
                return Ok(Step::ReadOnly(w));
            }
            let page = reply.json("listing comments")?;
            let items = page.as_array().ok_or_else(|| {
                Error::corrupt("GitHub API listing comments: the answer is not a list")
            })?;
            marked.extend(items.iter().filter_map(|c| marked_comment(c, marker)));
            match next_link(&reply.headers) {
                Some(next) => uri = next,
                None => break,
            }
        }
        Ok(Step::Ok(self.ours(marked).await?))
    }

    async fn create(&self, pr: u64, body: &str) -> Result<Step<(u64, String)>, Error> {
        let uri = format!("{}/issues/{pr}/comments", self.repo_path());
        let reply = self
            .send(Method::Post, &uri, Some(&json!({ "body": body })))
            .await?;
        if let Some(w) = reply.judge("creating the comment")? {
            return Ok(Step::ReadOnly(w));
        }
        let v = reply.json("creating the comment")?;
        let id = v.get("id").and_then(Value::as_u64).ok_or_else(|| {
            Error::corrupt("GitHub API creating the comment: no id in the answer")
        })?;
        Ok(Step::Ok((id, html_url(&v))))
    }

    async fn update(&self, id: u64, body: &str) -> Result<Step<String>, Error> {
        let uri = format!("{}/issues/comments/{id}", self.repo_path());
        let reply = self
            .send(Method::Patch, &uri, Some(&json!({ "body": body })))
            .await?;
        if let Some(w) = reply.judge("editing the comment")? {
            return Ok(Step::ReadOnly(w));
        }
        Ok(Step::Ok(html_url(&reply.json("editing the comment")?)))
    }

    /// A fork's `workflow_run` lists no pull request: find the open one
    /// whose head is the run's owner, branch and commit.
    async fn find_pr(&self, ctx: &Context) -> Result<Found, Error> {
        let Some((owner, branch, sha)) = &ctx.head else {
            return Ok(Found::None("no pull request number".into()));
        };
        let head: String =
            url::form_urlencoded::byte_serialize(format!("{owner}:{branch}").as_bytes()).collect();
        let uri = format!(
            "{}/pulls?state=open&per_page=100&head={head}",
            self.repo_path()
        );
        let reply = self.send(Method::Get, &uri, None).await?;
        if let Some(w) = reply.judge("finding the pull request")? {
            return Ok(Found::ReadOnly(w));
        }
        let list = reply.json("finding the pull request")?;
        let hit = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p.pointer("/head/sha").and_then(Value::as_str) == Some(sha.as_str()));
        Ok(
            match hit.and_then(|p| p.get("number")).and_then(Value::as_u64) {
                Some(n) => Found::Pr(n),
                None => Found::None(format!(
                    "no open pull request has head {owner}:{branch} at {sha} (pushed again since?)"
                )),
            },
        )
    }
}

/// A listed comment that carries `marker`, whoever wrote it.
fn marked_comment(c: &Value, marker: &str) -> Option<Existing> {
    let body = c.get("body").and_then(Value::as_str)?;
    if !is_ours(body, marker) {
        return None;
    }
    Some(Existing {
        id: c.get("id").and_then(Value::as_u64)?,
        body: body.to_string(),
        author: c
            .pointer("/user/login")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        node_id: c.get("node_id").and_then(Value::as_str).map(str::to_string),
    })
}

/// A client for the API at `base` with the context's token.
fn client(base: &str, ctx: &Context) -> Result<Octocrab, Error> {
    Octocrab::builder()
        .base_uri(base)
        .map_err(|e| Error::usage(format!("GITHUB_API_URL {:?}", ctx.api_url)).with_source(e))?
        .personal_token(ctx.token.expose().to_string())
        .add_header(
            http::header::ACCEPT,
            "application/vnd.github+json".to_string(),
        )
        .set_connect_timeout(Some(Duration::from_secs(15)))
        .set_read_timeout(Some(Duration::from_secs(60)))
        .build()
        // Building the client fails only on local resources (TLS roots).
        .map_err(|e| Error::transient("GitHub client").with_source(e))
}

/// One request and its whole answer; transport errors only.
async fn call(
    crab: &Octocrab,
    method: Method,
    uri: &str,
    body: Option<&Value>,
) -> Result<Reply, octocrab::Error> {
    let resp = match method {
        Method::Get => crab._get(uri).await?,
        Method::Post => crab._post(uri, body).await?,
        Method::Patch => crab._patch(uri, body).await?,
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = crab.body_to_string(resp).await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn html_url(v: &Value) -> String {
    v.get("html_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strip_query(uri: &str) -> &str {
    uri.split('?').next().unwrap_or(uri)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.min(6))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// How long GitHub asks us to wait, if this answer is a rate limit
/// (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>).
fn rate_limit_wait(status: u16, headers: &HeaderMap, body: &str) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(secs) = header(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs.max(1)));
    }
    if header(headers, "x-ratelimit-remaining") == Some("0") {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reset = header(headers, "x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(now + 60);
        // The reset second itself may still be limited: one more.
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    if status == 429 || body.to_ascii_lowercase().contains("secondary rate limit") {
        return Some(Duration::from_secs(60));
    }
    None
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = header(headers, "link")?;
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let is_next = pieces.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        (is_next && target.starts_with('<') && target.ends_with('>'))
            .then(|| target[1..target.len() - 1].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_bodies() {
        assert_eq!(marker("app"), "<!-- sizeguard:app -->");
        assert_eq!(marker("a-->b c"), "<!-- sizeguard:a--_b_c -->");
        let b = body("app", "✅ **app** within limits\n\n", "");
        assert_eq!(b, "<!-- sizeguard:app -->\n✅ **app** within limits\n");
        assert!(is_ours(&b, &marker("app")));
        assert!(!is_ours(&b, &marker("ap")));
        assert!(!is_ours(&format!("> {b}"), &marker("app")));
        assert!(same(&b.replace('\n', "\r\n"), &b));
    }

    #[test]
    fn api_answers_become_errors_of_their_kind() {
        let reply = |status: u16, body: &str| Reply {
            status,
            headers: HeaderMap::new(),
            body: body.to_string(),
        };
        assert!(reply(201, "{}").judge("x").unwrap().is_none());
        let why = reply(403, r#"{"message": "Resource not accessible"}"#)
            .judge("x")
            .unwrap()
            .unwrap();
        assert!(why.contains("403 Resource not accessible"), "{why}");
        for (status, kind) in [
            (401, Kind::Usage),
            (404, Kind::NotFound),
            (429, Kind::Transient),
            (502, Kind::Transient),
            (422, Kind::Corrupt),
        ] {
            let e = reply(status, r#"{"message": "m"}"#).judge("x").unwrap_err();
            assert_eq!(e.kind(), kind, "{status}");
            assert!(
                e.to_string()
                    .starts_with(&format!("GitHub API x: {status} m"))
            );
        }
        let e = reply(200, "<html>").json("x").unwrap_err();
        assert_eq!(e.kind(), Kind::Corrupt);
        assert!(
            e.one_line()
                .starts_with("GitHub API x: unreadable answer: ")
        );
    }

    #[test]
    fn long_reports_are_cut_and_closed() {
        let md = format!(
            "verdict\n\n<details>\n\n{}\n</details>\n",
            "| row |\n".repeat(20_000)
        );
        let b = body("app", &md, "<sub>the footer</sub>");
        assert!(b.chars().count() <= MAX_BODY, "{}", b.len());
        assert!(b.contains("</details>"));
        assert!(b.contains("truncated"));
        assert!(
            b.ends_with("\n<sub>the footer</sub>\n"),
            "the footer survives the cut"
        );
    }

    fn context(commit: Option<&str>, docs: Option<&str>) -> Context {
        Context {
            api_url: "https://api.github.com".into(),
            owner: "octo".into(),
            repo: "app".into(),
            pr: Some(1),
            head: None,
            token: crate::publish::github::Token::new("t").unwrap(),
            commit: commit.map(str::to_string),
            server_url: "https://github.com".into(),
            docs_url: docs.map(str::to_string),
            same_repository: true,
        }
    }

    #[test]
    fn the_footer_names_commit_time_version_and_docs() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let f = footer(&context(Some(sha), Some("https://x.test/README.md#r")), at);
        assert_eq!(
            f,
            format!(
                "<sub>judged [`0123456`](https://github.com/octo/app/commit/{sha}) · sizeguard {} \
                 · updated 2023-11-14 22:13 UTC · [how to read this report](https://x.test/README.md#r)</sub>",
                env!("CARGO_PKG_VERSION")
            )
        );
        let later = footer(&context(Some(sha), None), at + Duration::from_secs(3600));
        assert!(later.contains("updated 2023-11-14 23:13 UTC"), "{later}");
        let a = body("app", "report", &f);
        let b = body(
            "app",
            "report",
            &footer(
                &context(Some(sha), Some("https://x.test/README.md#r")),
                at + Duration::from_secs(86_400 * 400),
            ),
        );
        assert_ne!(a, b);
        assert!(same(&a, &b), "only the update time differs");
        let other = footer(
            &context(Some("fedcba9"), Some("https://x.test/README.md#r")),
            at,
        );
        assert!(
            !same(&a, &body("app", "report", &other)),
            "another commit is a change"
        );
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn links_and_rate_limits() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        h.insert(
            "link",
            "<https://a/x?page=1>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h), None);

        let mut h = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(403, &h, "Resource not accessible by integration"),
            None
        );
        assert_eq!(rate_limit_wait(429, &h, ""), Some(Duration::from_secs(60)));
        assert_eq!(
            rate_limit_wait(403, &h, "You have exceeded a secondary rate limit"),
            Some(Duration::from_secs(60))
        );
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(rate_limit_wait(403, &h, ""), Some(Duration::from_secs(3)));
        assert_eq!(rate_limit_wait(200, &h, ""), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 5;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let w = rate_limit_wait(403, &h, "API rate limit exceeded").unwrap();
        assert!(
            w >= Duration::from_secs(5) && w <= Duration::from_secs(7),
            "{w:?}"
        );
    }
}
