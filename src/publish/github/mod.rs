//! GitHub pull-request integration: where the comment goes (repository,
//! pull request, API base, token), read from the environment GitHub Actions
//! sets, so the same code runs in a workflow, in another CI, or by hand.
//! Anything missing or malformed here is a usage error naming what to set.
//! [`client`] is the API client the comment and the commit status share.
//!
//! The token is never printed: it lives in a [`Token`] whose `Debug` is
//! redacted, and no error message quotes it.

pub mod client;

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::error::Error;

/// The public API; `GITHUB_API_URL` overrides it (GitHub Enterprise Server:
/// `https://HOST/api/v3`).
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// A GitHub token. Deliberately opaque: no `Display`, a redacted `Debug`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Option<Self> {
        let s = secret.into().trim().to_string();
        (!s.is_empty()).then_some(Token(s))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Everything needed to talk about one pull request.
#[derive(Debug, Clone)]
pub struct Context {
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    /// `None` for a `workflow_run` event whose pull request GitHub did not
    /// list (a fork): [`comment::post`] then looks it up by head branch.
    pub pr: Option<u64>,
    /// From a `workflow_run` event: `(head owner, head branch, head sha)`,
    /// to find a fork's pull request through the API.
    pub head: Option<(String, String, String)>,
    pub token: Token,
    /// The commit the report judged (the pull request's head, not the merge
    /// commit a `pull_request` run checks out), for the comment's footer.
    pub commit: Option<String>,
    /// `GITHUB_SERVER_URL`, to link the commit.
    pub server_url: String,
    /// The README section that explains the figures, when known
    /// (`SIZEGUARD_DOCS_URL`, which the Action sets, or the package's
    /// repository).
    pub docs_url: Option<String>,
    /// The event shows a pull request whose head is in this repository:
    /// its token is not read-only by design, so a 403 means the workflow
    /// lacks `pull-requests: write`.
    pub same_repository: bool,
}

/// What the command line may say; the rest comes from the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub token: Option<Token>,
}

impl Context {
    /// `GITHUB_TOKEN` (or `GH_TOKEN`), `GITHUB_REPOSITORY`, `GITHUB_API_URL`,
    /// and the pull request from `--pr` or the event file at
    /// `GITHUB_EVENT_PATH`. Missing pieces are usage errors naming what to set.
    pub fn from_env(o: Overrides) -> Result<Self, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let token = o
            .token
            .or_else(|| var("GITHUB_TOKEN").and_then(Token::new))
            .or_else(|| var("GH_TOKEN").and_then(Token::new))
            .ok_or_else(|| {
                Error::usage(
                    "commenting needs a GitHub token: set GITHUB_TOKEN (in a workflow: \
                     env: GITHUB_TOKEN: ${{ github.token }})",
                )
            })?;
        let full = o.repo.or_else(|| var("GITHUB_REPOSITORY")).ok_or_else(|| {
            Error::usage(
                "commenting needs the repository: set GITHUB_REPOSITORY or pass --repo OWNER/NAME",
            )
        })?;
        let (owner, repo) = split_repo(&full)?;
        let api_url = var("GITHUB_API_URL")
            .unwrap_or_else(|| DEFAULT_API_URL.to_string())
            .trim_end_matches('/')
            .to_string();
        url::Url::parse(&api_url)
            .map_err(|e| Error::usage(format!("GITHUB_API_URL {api_url:?}")).with_source(e))?;

        let event = match var("GITHUB_EVENT_PATH") {
            Some(p) => Some(read_event(Path::new(&p))?),
            None => None,
        };
        let from_event = event.as_ref().map(pr_from_event).unwrap_or_default();
        let pr = o.pr.or(from_event.number);
        if pr.is_none() && from_event.head.is_none() {
            return Err(Error::usage(
                "no pull request to comment on: pass --pr N (in GitHub Actions the number \
                 comes from the pull_request or workflow_run event)",
            ));
        }
        let commit = event
            .as_ref()
            .and_then(commit_from_event)
            .or_else(|| var("GITHUB_SHA"))
            .filter(|s| is_commit_sha(s));
        let server_url = var("GITHUB_SERVER_URL")
            .filter(|u| http_url(u).is_some())
            .unwrap_or_else(|| DEFAULT_SERVER_URL.to_string())
            .trim_end_matches('/')
            .to_string();
        let docs_url = var("SIZEGUARD_DOCS_URL")
            .or_else(|| {
                option_env!("CARGO_PKG_REPOSITORY")
                    .filter(|r| !r.is_empty())
                    .map(|r| {
                        format!(
                            "{}/blob/v{}/README.md{DOCS_SECTION}",
                            r.trim_end_matches('/'),
                            env!("CARGO_PKG_VERSION")
                        )
                    })
            })
            .and_then(|u| http_url(&u));
        Ok(Context {
            api_url,
            owner,
            repo,
            pr,
            head: if pr.is_none() { from_event.head } else { None },
            token,
            commit,
            server_url,
            docs_url,
            same_repository: event.as_ref().is_some_and(same_repository),
        })
    }
}

/// Where a commit is linked when `GITHUB_SERVER_URL` is not set.
pub const DEFAULT_SERVER_URL: &str = "https://github.com";

/// The README section that explains a report's figures.
pub const DOCS_SECTION: &str = "#reading-the-comment";

/// `u` as an http(s) URL that is safe as a Markdown link target (no
/// space, no parenthesis), or `None`.
fn http_url(u: &str) -> Option<String> {
    let parsed = url::Url::parse(u.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    Some(
        parsed
            .as_str()
            .replace('(', "%28")
            .replace(')', "%29")
            .replace(' ', "%20"),
    )
}

/// A full or abbreviated hexadecimal commit id.
fn is_commit_sha(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit a run judged, from its event: a pull request's head (a
/// `pull_request` run checks out a merge commit, `GITHUB_SHA`, which no
/// reviewer sees) or a `workflow_run`'s head.
pub fn commit_from_event(event: &Value) -> Option<String> {
    ["/pull_request/head/sha", "/workflow_run/head_sha"]
        .iter()
        .find_map(|p| event.pointer(p).and_then(Value::as_str))
        .map(str::to_string)
}

/// Whether the event is a pull request whose head branch lives in the base
/// repository. A fork's (head repository elsewhere or deleted), a
/// `workflow_run`, or an event that does not say are not: their 403 is
/// the read-only token GitHub gives forks.
pub fn same_repository(event: &Value) -> bool {
    if event.get("workflow_run").is_some() {
        return false;
    }
    let name = |p: &str| event.pointer(p).and_then(Value::as_str);
    match (
        name("/pull_request/head/repo/full_name"),
        name("/pull_request/base/repo/full_name"),
    ) {
        (Some(head), Some(base)) => head.eq_ignore_ascii_case(base),
        _ => false,
    }
}

fn split_repo(full: &str) -> Result<(String, String), Error> {
    match full.trim().split_once('/') {
        Some((o, r))
            if !o.is_empty()
                && !r.is_empty()
                && !r.contains('/')
                && full
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) =>
        {
            Ok((o.to_string(), r.to_string()))
        }
        _ => Err(Error::usage(format!(
            "repository {full:?} is not OWNER/NAME"
        ))),
    }
}

/// The event file is the environment's configuration: a missing or
/// unreadable one is a usage error, like a bad flag.
fn read_event(path: &Path) -> Result<Value, Error> {
    let what = || Error::usage(format!("GITHUB_EVENT_PATH {}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| what().with_source(e))?;
    serde_json::from_str(&text).map_err(|e| what().with_source(e))
}

/// What an event payload says about its pull request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EventPr {
    pub number: Option<u64>,
    pub head: Option<(String, String, String)>,
}

/// `pull_request` / `pull_request_target`: `pull_request.number` (and the
/// top-level `number`); `issue_comment` on a pull request: `issue.number`;
/// `workflow_run`: `workflow_run.pull_requests[0].number`, which GitHub
/// leaves empty for forks, so the head owner, branch and sha are kept to
/// look the pull request up.
pub fn pr_from_event(event: &Value) -> EventPr {
    let num = |v: &Value| v.as_u64().filter(|n| *n > 0);
    if let Some(n) = event.pointer("/pull_request/number").and_then(num) {
        return EventPr {
            number: Some(n),
            head: None,
        };
    }
    if let Some(run) = event.get("workflow_run") {
        let number = run.pointer("/pull_requests/0/number").and_then(num);
        let s = |p: &str| run.pointer(p).and_then(Value::as_str).map(str::to_string);
        let head = match (
            s("/head_repository/owner/login"),
            s("/head_branch"),
            s("/head_sha"),
        ) {
            (Some(o), Some(b), Some(h))
                if run.get("event").and_then(Value::as_str) != Some("push") =>
            {
                Some((o, b, h))
            }
            _ => None,
        };
        return EventPr { number, head };
    }
    if event.pointer("/issue/pull_request").is_some()
        && let Some(n) = event.pointer("/issue/number").and_then(num)
    {
        return EventPr {
            number: Some(n),
            head: None,
        };
    }
    EventPr {
        number: event.get("number").and_then(num),
        head: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pr_numbers_from_events() {
        let pr = json!({"number": 7, "pull_request": {"number": 7}});
        assert_eq!(pr_from_event(&pr).number, Some(7));
        let run = json!({"workflow_run": {"event": "pull_request",
            "pull_requests": [{"number": 12}],
            "head_branch": "b", "head_sha": "abc",
            "head_repository": {"owner": {"login": "someone"}}}});
        assert_eq!(pr_from_event(&run).number, Some(12));
        let fork = json!({"workflow_run": {"event": "pull_request", "pull_requests": [],
            "head_branch": "feature", "head_sha": "abc",
            "head_repository": {"owner": {"login": "forker"}}}});
        assert_eq!(
            pr_from_event(&fork),
            EventPr {
                number: None,
                head: Some(("forker".into(), "feature".into(), "abc".into()))
            }
        );
        let comment = json!({"issue": {"number": 3, "pull_request": {}}});
        assert_eq!(pr_from_event(&comment).number, Some(3));
        let push = json!({"ref": "refs/heads/main"});
        assert_eq!(pr_from_event(&push), EventPr::default());
    }

    #[test]
    fn the_judged_commit_and_whether_the_head_is_in_this_repository() {
        let same = json!({"pull_request": {"number": 1,
            "head": {"sha": "abc1234def", "repo": {"full_name": "octo/app"}},
            "base": {"repo": {"full_name": "octo/app"}}}});
        assert_eq!(commit_from_event(&same).as_deref(), Some("abc1234def"));
        assert!(same_repository(&same));
        let fork = json!({"pull_request": {"number": 1,
            "head": {"sha": "abc1234def", "repo": {"full_name": "forker/app"}},
            "base": {"repo": {"full_name": "octo/app"}}}});
        assert!(!same_repository(&fork));
        let deleted_fork = json!({"pull_request": {"number": 1,
            "head": {"sha": "abc1234def", "repo": null},
            "base": {"repo": {"full_name": "octo/app"}}}});
        assert!(!same_repository(&deleted_fork));
        let run = json!({"workflow_run": {"head_sha": "0123456789",
            "pull_requests": [{"number": 3}]}});
        assert_eq!(commit_from_event(&run).as_deref(), Some("0123456789"));
        assert!(!same_repository(&run));
        assert!(!same_repository(
            &json!({"number": 1, "pull_request": {"number": 1}})
        ));
        assert!(is_commit_sha("0123abc"));
        assert!(!is_commit_sha("0123ab"));
        assert!(!is_commit_sha("main\n@x"));
        assert_eq!(
            http_url("https://example.com/a (b)").as_deref(),
            Some("https://example.com/a%20%28b%29")
        );
        assert_eq!(http_url("javascript:alert(1)"), None);
    }

    #[test]
    fn repos_and_tokens() {
        assert_eq!(
            split_repo("octo/app").unwrap(),
            ("octo".to_string(), "app".to_string())
        );
        assert!(split_repo("octo").is_err());
        assert!(split_repo("a/b/c").is_err());
        assert!(split_repo("a/b c").is_err());
        let t = Token::new("ghs_secret").unwrap();
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert!(Token::new("  ").is_none());
    }
}
