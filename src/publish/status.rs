//! A GitHub commit status for an image judged outside a pull request: when
//! `serve` judges a pushed image whose annotations or labels name the
//! commit it was built from (`org.opencontainers.image.source` and
//! `org.opencontainers.image.revision`), the verdict appears on that
//! commit as `sizeguard/<repository>`, next to the CI checks.
//!
//! `POST /repos/{owner}/{repo}/statuses/{sha}` through the same client as
//! the pull-request comment ([`super::github::client`]: base URI, token,
//! rate-limit waits, the shared retry policy).
//!
//! Both labels are written by whoever built the image, so they are checked
//! before anything is sent: the source must be an `https://` URL of
//! exactly `HOST/OWNER/REPO` on the GitHub host the token belongs to
//! (github.com, or the GitHub Enterprise Server host of the API URL), and
//! the revision a full 40-hex commit id. Anything else is refused with an
//! error of kind `Corrupt` (the image's data, not the service's
//! configuration), and no request is made.

use serde_json::{Value, json};

use super::github::client::{Client, ClientOptions};
use super::github::{Context, DEFAULT_API_URL, Token};
use crate::budget::verdict::Verdict;
use crate::error::Error;
use crate::report::escape;
use crate::source::Provenance;

/// GitHub refuses longer descriptions (422).
pub const MAX_DESCRIPTION: usize = 140;

/// Longest context sent; GitHub shows about 100 characters, and a context
/// names one image repository.
const MAX_CONTEXT: usize = 255;

/// The commit a status is posted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub owner: String,
    pub repo: String,
    /// 40 lowercase hex digits.
    pub sha: String,
}

/// A status's state as GitHub names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Success,
    Failure,
    /// The image could not be judged.
    Error,
}

impl State {
    /// A warning does not fail the commit: the description says `warn`.
    pub fn of(verdict: Verdict) -> State {
        match verdict {
            Verdict::Pass | Verdict::Warn => State::Success,
            Verdict::Fail => State::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Success => "success",
            State::Failure => "failure",
            State::Error => "error",
        }
    }
}

/// One status, its text already made safe and short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub context: String,
    pub description: String,
    pub target_url: Option<String>,
}

impl Status {
    /// `repository` is the image repository (`team/app`); `description` a
    /// one-line summary (control characters are escaped, it is cut to
    /// [`MAX_DESCRIPTION`] characters); `target_url` is dropped unless it
    /// is an `http(s)` URL (the verdict API's page for this digest).
    pub fn new(
        state: State,
        repository: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Status {
        let context = cut(
            &escape::plain(&format!("sizeguard/{repository}")),
            MAX_CONTEXT,
        );
        let one_line = escape::plain(description.trim());
        Status {
            state,
            context,
            description: cut(&one_line, MAX_DESCRIPTION),
            target_url: target_url
                .filter(|u| {
                    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                })
                .map(str::to_string),
        }
    }

    /// The same status under another context prefix than `sizeguard`
    /// (`PREFIX/repository`), for several services posting on one commit.
    pub fn in_context(mut self, prefix: &str, repository: &str) -> Status {
        self.context = cut(
            &escape::plain(&format!("{prefix}/{repository}")),
            MAX_CONTEXT,
        );
        self
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "state": self.state.as_str(),
            "context": self.context,
            "description": self.description,
        });
        if let Some(url) = &self.target_url {
            body["target_url"] = url.clone().into();
        }
        body
    }
}

/// At most `max` characters, the last one `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The web host whose repositories an API URL's token can reach:
/// `https://api.github.com` → `github.com`; GitHub Enterprise Server's
/// `https://HOST/api/v3` → `HOST`. `None` for any other URL: the caller
/// then names the host in its configuration.
pub fn web_host_of_api(api_url: &str) -> Option<String> {
    let api_url = api_url.trim_end_matches('/');
    if api_url.eq_ignore_ascii_case(DEFAULT_API_URL) {
        return Some("github.com".into());
    }
    let u = url::Url::parse(api_url).ok()?;
    if u.path().trim_end_matches('/') != "/api/v3" {
        return None;
    }
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// The commit an image names, if it names one: `Ok(None)` when either
/// label is absent, an error of kind `Corrupt` when one is present but not
/// something a status may be posted for (see the module documentation).
pub fn commit_of(p: &Provenance, web_host: &str) -> Result<Option<Commit>, Error> {
    let (Some(source), Some(revision)) = (&p.source, &p.revision) else {
        return Ok(None);
    };
    let (owner, repo) = repository_of(source, web_host)?;
    let revision_ok = revision.len() == 40
        && revision
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !revision_ok {
        return Err(Error::corrupt(format!(
            "{}: {} is not a full commit id",
            Provenance::REVISION_KEY,
            escape::plain(revision)
        )));
    }
    Ok(Some(Commit {
        owner,
        repo,
        sha: revision.clone(),
    }))
}

/// `https://HOST/OWNER/REPO` (optionally `.git`, a trailing `/`) on
/// `web_host`: GitHub's own spelling of a repository URL.
fn repository_of(source: &str, web_host: &str) -> Result<(String, String), Error> {
    let refuse = |why: &str| {
        Error::corrupt(format!(
            "{}: {} {why}",
            Provenance::SOURCE_KEY,
            escape::plain(source)
        ))
    };
    let u = url::Url::parse(source).map_err(|_| refuse("is not a URL"))?;
    if u.scheme() != "https" {
        return Err(refuse("is not an https URL"));
    }
    if !u.username().is_empty()
        || u.password().is_some()
        || u.query().is_some()
        || u.fragment().is_some()
    {
        return Err(refuse("carries credentials, a query or a fragment"));
    }
    let host = match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(refuse("has no host")),
    };
    if !host.eq_ignore_ascii_case(web_host) {
        return Err(refuse(&format!("is not on {web_host}")));
    }
    let path = u.path().trim_start_matches('/').trim_end_matches('/');
    let mut parts = path.split('/');
    let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(refuse("is not a repository URL (https://HOST/OWNER/REPO)"));
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let owner_ok = (1..=39).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let repo_ok = (1..=100).contains(&repo.len())
        && repo != "."
        && repo != ".."
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !owner_ok || !repo_ok {
        return Err(refuse("does not name a GitHub repository"));
    }
    Ok((owner.to_string(), repo.to_string()))
}

/// Posts `status` on `commit` through the API at `api_url` with `token`.
/// Rate limits, 5xx and connection errors are retried as for the comment;
/// what is left is an error of its kind: 401 usage (the configured token),
/// 403 unauthorized (a token without `repo:status`), 404 not found (no
/// such repository or commit, or not visible to the token), 422 corrupt,
/// 429 and 5xx transient.
pub async fn post(
    api_url: &str,
    token: &Token,
    commit: &Commit,
    status: &Status,
) -> Result<(), Error> {
    let ctx = Context {
        api_url: api_url.trim_end_matches('/').to_string(),
        owner: commit.owner.clone(),
        repo: commit.repo.clone(),
        pr: None,
        head: None,
        token: token.clone(),
        commit: None,
        server_url: String::new(),
        docs_url: None,
        same_repository: false,
    };
    // Only `serve` posts statuses: its output is a log, not a workflow's.
    let client = Client::new(
        &ctx,
        ClientOptions {
            workflow_commands: false,
            ..ClientOptions::default()
        },
    )?;
    let route = format!("{}/statuses/{}", client.repo_path(), commit.sha);
    let what = format!(
        "setting status {} on {}/{}@{}",
        status.context, commit.owner, commit.repo, commit.sha
    );
    match client
        .post::<_, serde::de::IgnoredAny>(&what, &route, &status.body())
        .await?
    {
        Ok(_) => Ok(()),
        Err(refused) => Err(Error::new(
            refused.kind(),
            format!("GitHub API {what}: {} {}", refused.status, refused.message),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn prov(source: &str, revision: &str) -> Provenance {
        Provenance {
            source: Some(source.into()),
            revision: Some(revision.into()),
        }
    }

    #[test]
    fn commits_from_labels() {
        for source in [
            "https://github.com/octo-org/shop",
            "https://github.com/octo-org/shop/",
            "https://github.com/octo-org/shop.git",
            "https://GitHub.com/octo-org/shop",
        ] {
            let c = commit_of(&prov(source, SHA), "github.com")
                .unwrap()
                .unwrap();
            assert_eq!(
                (c.owner.as_str(), c.repo.as_str(), c.sha.as_str()),
                ("octo-org", "shop", SHA)
            );
        }
        let ghe = commit_of(
            &prov("https://ghe.example.com/team/app", SHA),
            "ghe.example.com",
        );
        assert_eq!(ghe.unwrap().unwrap().repo, "app");
        assert_eq!(
            commit_of(&Provenance::default(), "github.com").unwrap(),
            None
        );
        let half = Provenance {
            source: Some("https://github.com/o/r".into()),
            revision: None,
        };
        assert_eq!(commit_of(&half, "github.com").unwrap(), None);
    }

    #[test]
    fn refused_labels() {
        for source in [
            "http://github.com/o/r",
            "https://gitlab.com/o/r",
            "https://github.com.evil.example/o/r",
            "https://user:pw@github.com/o/r",
            "https://github.com/o/r?x=1",
            "https://github.com/o/r#frag",
            "https://github.com/o",
            "https://github.com/o/r/tree/main",
            "https://github.com/o/..",
            "https://github.com/o%2Fx/r",
            "git@github.com:o/r.git",
            "github.com/o/r",
            "",
        ] {
            let e = commit_of(&prov(source, SHA), "github.com").unwrap_err();
            assert_eq!(e.kind(), Kind::Corrupt, "{source}");
        }
        for revision in [
            "0123456",
            "0123456789ABCDEF0123456789ABCDEF01234567",
            "main",
            "0123456789abcdef0123456789abcdef012345678",
            "g123456789abcdef0123456789abcdef01234567",
        ] {
            let e = commit_of(&prov("https://github.com/o/r", revision), "github.com").unwrap_err();
            assert_eq!(e.kind(), Kind::Corrupt, "{revision}");
        }
        let evil = commit_of(
            &prov("https://github.com/o/r\n::warning::x", SHA),
            "github.com",
        );
        assert!(!evil.unwrap_err().one_line().contains('\n'));
    }

    #[test]
    fn api_hosts() {
        assert_eq!(
            web_host_of_api("https://api.github.com").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            web_host_of_api("https://api.github.com/").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            web_host_of_api("https://ghe.example.com/api/v3").as_deref(),
            Some("ghe.example.com")
        );
        assert_eq!(
            web_host_of_api("https://ghe.example.com:8443/api/v3/").as_deref(),
            Some("ghe.example.com:8443")
        );
        assert_eq!(web_host_of_api("http://127.0.0.1:9/"), None);
    }

    #[test]
    fn status_text_is_safe_and_short() {
        let s = Status::new(
            State::of(Verdict::Warn),
            "team/app",
            "warn: +12 MB\n::error::x",
            None,
        );
        assert_eq!(s.state, State::Success);
        assert_eq!(s.context, "sizeguard/team/app");
        assert!(!s.description.contains('\n'), "{}", s.description);
        assert!(s.description.starts_with("warn: +12 MB"));
        let long = "é".repeat(300);
        let s = Status::new(
            State::of(Verdict::Fail),
            "a",
            &long,
            Some("https://v.example/d"),
        );
        assert_eq!(s.state, State::Failure);
        assert_eq!(s.description.chars().count(), MAX_DESCRIPTION);
        assert!(s.description.ends_with('…'));
        assert_eq!(s.target_url.as_deref(), Some("https://v.example/d"));
        let s = Status::new(State::Error, "a", "x", Some("javascript:alert(1)"));
        assert_eq!(s.target_url, None);
        assert_eq!(s.body().get("target_url"), None);
        assert_eq!(s.body()["state"], "error");
    }
}
