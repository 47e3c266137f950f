//! The GitHub API client the pull-request comment and the commit status
//! share: octocrab, pointed at `GITHUB_API_URL` (GitHub Enterprise Server's
//! `https://HOST/api/v3` included) with the token, every call tried again
//! under the one retry policy ([`crate::retry`]), octocrab's own retries
//! left off so that nothing retries twice.
//!
//! What is GitHub's own is kept here: rate limits are waited out as GitHub
//! documents them (`retry-after` seconds, else until `x-ratelimit-reset`
//! when `x-ratelimit-remaining` is 0, else a minute for a secondary limit),
//! and a limit that lifts later than [`ClientOptions::max_wait`] fails at
//! once instead of holding the run. 5xx and connection errors are
//! transient, so the shared backoff retries them; an answer that is not the
//! JSON GitHub documents is corrupt; any other refusal (401, 403, 404, 422)
//! is handed to the caller as a [`Refused`], whose meaning depends on the
//! call (a 403 on a comment is a fork's read-only token).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use octocrab::{FromResponse, Octocrab, Page};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use crate::error::{Error, Kind};
use crate::publish::actions::notice;
use crate::retry::{Backoff, DEFAULT_RUN_TIMEOUT, Deadline, Failed, retry_after_of, retrying_with};

/// The longest rate-limit wait when nothing says otherwise.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);

/// Pages of a list read at most.
const MAX_PAGES: usize = 100;

/// How a client behaves, decided by whoever starts it.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// The longest single rate-limit wait: a limit that lifts later fails
    /// at once.
    pub max_wait: Duration,
    /// Rate-limit waits as `::notice::` lines (the CLI, in a workflow), or
    /// only through `tracing` (the service: its stderr is a log, and an
    /// Actions runner reading it must not take text for commands).
    pub workflow_commands: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_wait: DEFAULT_MAX_WAIT,
            workflow_commands: true,
        }
    }
}

/// A call GitHub refused with a status the retries do not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    /// GitHub's `message`, shortened.
    pub message: String,
}

impl Refused {
    /// The kind of error the refusal is when the caller has no better
    /// reading: the token is the user's configuration (401: usage, unlike
    /// a registry refusing credentials), a 403 a token without the
    /// permission, a 404 something missing or invisible to the token, a
    /// 429 or 5xx a limit or an outage that outlasted the retries, anything
    /// else a request GitHub will not take as it is.
    pub fn kind(&self) -> Kind {
        match self.status {
            401 => Kind::Usage,
            403 => Kind::Unauthorized,
            404 => Kind::NotFound,
            429 | 500..=599 => Kind::Transient,
            _ => Kind::Corrupt,
        }
    }
}

/// One repository's API.
pub struct Client {
    crab: Octocrab,
    /// The GraphQL endpoint's client: `{api}/graphql`, or on GitHub
    /// Enterprise Server `https://HOST/api/graphql` beside `/api/v3`.
    graphql: Octocrab,
    owner: String,
    repo: String,
    options: ClientOptions,
}

impl Client {
    pub fn new(ctx: &Context, options: ClientOptions) -> Result<Self, Error> {
        Ok(Client {
            crab: octocrab_for(&ctx.api_url, ctx)?,
            graphql: octocrab_for(graphql_base(&ctx.api_url), ctx)?,
            owner: ctx.owner.clone(),
            repo: ctx.repo.clone(),
            options,
        })
    }

    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// `/repos/{owner}/{repo}`, the start of the repository's routes.
    pub fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.repo)
    }

    /// `GET route?query`.
    pub async fn get<R: FromResponse>(
        &self,
        what: &str,
        route: &str,
        query: Option<&[(&str, &str)]>,
    ) -> Result<Result<R, Refused>, Error> {
        self.call(what, || self.crab.get(route, query)).await
    }

    /// `POST route` with a JSON body.
    pub async fn post<B: Serialize + ?Sized, R: FromResponse>(
        &self,
        what: &str,
        route: &str,
        body: &B,
    ) -> Result<Result<R, Refused>, Error> {
        self.call(what, || self.crab.post(route, Some(body))).await
    }

    /// `PATCH route` with a JSON body.
    pub async fn patch<B: Serialize + ?Sized, R: FromResponse>(
        &self,
        what: &str,
        route: &str,
        body: &B,
    ) -> Result<Result<R, Refused>, Error> {
        self.call(what, || self.crab.patch(route, Some(body))).await
    }

    /// A GraphQL query; the answer as GitHub sent it (data and errors may
    /// come together, and the caller reads what it can).
    pub async fn graphql<B: Serialize + ?Sized, R: FromResponse>(
        &self,
        body: &B,
    ) -> Result<Result<R, Refused>, Error> {
        self.call("POST /graphql", || {
            self.graphql.post("/graphql", Some(body))
        })
        .await
    }

    /// Every page of a list, following octocrab's reading of the `Link`
    /// header, up to [`MAX_PAGES`].
    pub async fn all_pages<T: DeserializeOwned>(
        &self,
        what: &str,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<Result<Vec<T>, Refused>, Error> {
        let first: Page<T> = match self.get(what, route, Some(query)).await? {
            Ok(page) => page,
            Err(refused) => return Ok(Err(refused)),
        };
        let mut next = first.next;
        let mut items = first.items;
        for _ in 1..MAX_PAGES {
            if next.is_none() {
                break;
            }
            let page: Option<Page<T>> = match self.call(what, || self.crab.get_page(&next)).await? {
                Ok(page) => page,
                Err(refused) => return Ok(Err(refused)),
            };
            let Some(page) = page else { break };
            items.extend(page.items);
            next = page.next;
        }
        Ok(Ok(items))
    }

    /// One call, tried again under the shared policy. `Ok(Err(_))` is a
    /// refusal for the caller to read.
    async fn call<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<Result<T, Refused>, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = octocrab::Result<T>>,
    {
        let deadline = Deadline::after(DEFAULT_RUN_TIMEOUT);
        let backoff = Backoff::new().refusing_waits_over(self.options.max_wait);
        retrying_with(backoff, &deadline, what, || {
            let sent = attempt();
            async move {
                match sent.await {
                    Ok(v) => Ok(Ok(v)),
                    Err(e) => self.failure(what, e).map(Err),
                }
            }
        })
        .await
    }

    /// What an octocrab error means for the next attempt.
    fn failure(&self, what: &str, e: octocrab::Error) -> Result<Refused, Failed> {
        let source = match e {
            octocrab::Error::GitHub { source, .. } => source,
            e @ (octocrab::Error::Serde { .. } | octocrab::Error::Json { .. }) => {
                return Err(unreadable(what, e).into());
            }
            e => {
                return Err(Error::transient(format!("GitHub API {what}"))
                    .with_source(e)
                    .into());
            }
        };
        let status = source.status_code.as_u16();
        let message: String = source.message.chars().take(200).collect();
        let headers = source.headers.unwrap_or_default();
        if let Some(wait) = rate_limit_wait(status, &headers, &message) {
            if wait <= self.options.max_wait {
                let line = format!(
                    "GitHub API rate limit ({status}): waiting {}s before retrying {what}",
                    wait.as_secs()
                );
                if self.options.workflow_commands {
                    notice(&line);
                } else {
                    tracing::info!("{line}");
                }
            }
            return Err(Failed {
                error: Error::transient(format!(
                    "GitHub API {what}: rate limited ({status} {message})"
                )),
                retry_after: Some(wait),
            });
        }
        if (500..=599).contains(&status) {
            return Err(Failed {
                error: Error::transient(format!("GitHub API {what}: {status} {message}")),
                retry_after: retry_after_of(&headers),
            });
        }
        Ok(Refused { status, message })
    }
}

/// An answer that is not the JSON GitHub documents.
fn unreadable(what: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::corrupt(format!("GitHub API {what}: unreadable answer")).with_source(e)
}

/// Where GraphQL is, for the REST API at `api_url`: beside it
/// (`https://api.github.com/graphql`), or on GitHub Enterprise Server at
/// `https://HOST/api/graphql` for `https://HOST/api/v3`.
pub(crate) fn graphql_base(api_url: &str) -> &str {
    api_url
        .strip_suffix("/v3")
        .filter(|base| base.ends_with("/api"))
        .unwrap_or(api_url)
}

/// A client for the API at `base` with the context's token.
fn octocrab_for(base: &str, ctx: &Context) -> Result<Octocrab, Error> {
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

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// How long GitHub asks us to wait, if this answer is a rate limit
/// (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>).
fn rate_limit_wait(status: u16, headers: &HeaderMap, message: &str) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(wait) = retry_after_of(headers) {
        return Some(wait.max(Duration::from_secs(1)));
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
    if status == 429
        || message
            .to_ascii_lowercase()
            .contains("secondary rate limit")
    {
        return Some(Duration::from_secs(60));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_sits_beside_the_rest_api() {
        assert_eq!(
            graphql_base("https://api.github.com"),
            "https://api.github.com"
        );
        assert_eq!(
            graphql_base("https://ghe.example/api/v3"),
            "https://ghe.example/api"
        );
        assert_eq!(
            graphql_base("http://127.0.0.1:9/v3"),
            "http://127.0.0.1:9/v3"
        );
    }

    #[test]
    fn refusals_have_kinds_and_unreadable_answers_are_corrupt() {
        for (status, kind) in [
            (401, Kind::Usage),
            (403, Kind::Unauthorized),
            (404, Kind::NotFound),
            (429, Kind::Transient),
            (502, Kind::Transient),
            (422, Kind::Corrupt),
        ] {
            let r = Refused {
                status,
                message: "m".into(),
            };
            assert_eq!(r.kind(), kind, "{status}");
        }
        let json = serde_json::from_str::<serde_json::Value>("<html>").unwrap_err();
        let e = unreadable("x", json);
        assert_eq!(e.kind(), Kind::Corrupt);
        assert!(
            e.one_line()
                .starts_with("GitHub API x: unreadable answer: ")
        );
    }

    #[test]
    fn rate_limits() {
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
