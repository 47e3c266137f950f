//! The sticky pull-request comment: one per image and pull request, found
//! again by a hidden marker (`<!-- sizeguard:IMAGE -->`) and edited in place
//! on every push instead of piling up new ones.
//!
//! REST calls, through the shared client ([`super::github::client`]):
//! `GET /repos/{o}/{r}/issues/{n}/comments?per_page=100` (every page, by the
//! `Link: rel="next"` header), `POST /repos/{o}/{r}/issues/{n}/comments`,
//! `PATCH /repos/{o}/{r}/issues/comments/{id}`.
//!
//! Anyone can write a comment holding the marker, so a comment is ours
//! only when the token's own identity wrote it and it is not minimized
//! (hidden by a maintainer): see [`author`]. A planted marker is never
//! edited, and never taken for the report already posted.
//!
//! Rate limits are waited out by the client, as GitHub documents them. A
//! 403 that is not a rate limit is a read-only token (a fork's pull
//! request): the comment is skipped with one notice, never a failure.
//!
//! Errors carry their kind: a rejected token is a usage error (the user
//! configured it), a missing repository or pull request is not found,
//! connection errors, lasting rate limits and 5xx are transient, and an
//! answer that is not the JSON GitHub documents is corrupt.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;

use super::actions::notice;
use super::github::Context;
use super::github::client::{Client, ClientOptions, Refused};
use crate::error::{Error, Kind};

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

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
fn utc_minute(secs: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
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
    options: ClientOptions,
) -> Result<(Option<u64>, Outcome), Error> {
    if mode == Mode::Never {
        return Ok((ctx.pr, Outcome::Skipped("comment mode is never".into())));
    }
    let api = Api {
        client: Client::new(ctx, options)?,
    };
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

/// A refusal as an error of its kind, or on 403 the reason the comment is
/// skipped (a read-only token).
fn judge(refused: Refused, what: &str) -> Result<String, Error> {
    let Refused { status, message } = &refused;
    match refused.kind() {
        Kind::Unauthorized => Ok(format!(
            "the GitHub token may not comment on this pull request ({what}: 403 {message}); \
             a pull request from a fork gets a read-only token: the report is in the step \
             summary and the JSON report, and `sizeguard comment` can post it from a \
             workflow_run workflow"
        )),
        Kind::Usage => Err(Error::usage(format!(
            "GitHub API {what}: 401 {message}: the token was rejected"
        ))),
        Kind::NotFound => Err(Error::not_found(format!(
            "GitHub API {what}: 404 {message}: check the repository and pull request number, and that the token can see them"
        ))),
        kind => Err(Error::new(
            kind,
            format!("GitHub API {what}: {status} {message}"),
        )),
    }
}

/// A comment as GitHub lists it: what is read of it.
#[derive(Debug, Deserialize)]
struct Listed {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<Login>,
    #[serde(default)]
    node_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Login {
    pub(super) login: String,
}

/// A comment written: its id and where it is shown.
#[derive(Debug, Deserialize)]
struct Written {
    id: u64,
    #[serde(default)]
    html_url: String,
}

/// An open pull request, as the head search lists it.
#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    head: Head,
}

#[derive(Debug, Deserialize)]
struct Head {
    sha: String,
}

/// The comment's calls on one repository.
pub(super) struct Api {
    pub(super) client: Client,
}

impl Api {
    /// Our comment for `marker` on the pull request, if there is one: every
    /// page is read, then the marked comments are judged by author.
    async fn find_comment(&self, pr: u64, marker: &str) -> Result<Step<Option<Existing>>, Error> {
        let what = "listing comments";
        let route = format!("{}/issues/{pr}/comments", self.client.repo_path());
        let listed: Vec<Listed> = match self
            .client
            .all_pages(what, &route, &[("per_page", "100")])
            .await?
        {
            Ok(items) => items,
            Err(refused) => return Ok(Step::ReadOnly(judge(refused, what)?)),
        };
        let marked = listed
            .into_iter()
            .filter_map(|c| marked_comment(c, marker))
            .collect();
        Ok(Step::Ok(self.ours(marked).await?))
    }

    async fn create(&self, pr: u64, body: &str) -> Result<Step<(u64, String)>, Error> {
        let what = "creating the comment";
        let route = format!("{}/issues/{pr}/comments", self.client.repo_path());
        match self
            .client
            .post::<_, Written>(what, &route, &json!({ "body": body }))
            .await?
        {
            Ok(w) => Ok(Step::Ok((w.id, w.html_url))),
            Err(refused) => Ok(Step::ReadOnly(judge(refused, what)?)),
        }
    }

    async fn update(&self, id: u64, body: &str) -> Result<Step<String>, Error> {
        let what = "editing the comment";
        let route = format!("{}/issues/comments/{id}", self.client.repo_path());
        match self
            .client
            .patch::<_, Written>(what, &route, &json!({ "body": body }))
            .await?
        {
            Ok(w) => Ok(Step::Ok(w.html_url)),
            Err(refused) => Ok(Step::ReadOnly(judge(refused, what)?)),
        }
    }

    /// A fork's `workflow_run` lists no pull request: find the open one
    /// whose head is the run's owner, branch and commit.
    async fn find_pr(&self, ctx: &Context) -> Result<Found, Error> {
        let Some((owner, branch, sha)) = &ctx.head else {
            return Ok(Found::None("no pull request number".into()));
        };
        let what = "finding the pull request";
        let head = format!("{owner}:{branch}");
        let route = format!("{}/pulls", self.client.repo_path());
        let query = [
            ("state", "open"),
            ("per_page", "100"),
            ("head", head.as_str()),
        ];
        let pulls: Vec<Pull> = match self.client.get(what, &route, Some(&query)).await? {
            Ok(list) => list,
            Err(refused) => return Ok(Found::ReadOnly(judge(refused, what)?)),
        };
        Ok(match pulls.iter().find(|p| p.head.sha == *sha) {
            Some(p) => Found::Pr(p.number),
            None => Found::None(format!(
                "no open pull request has head {owner}:{branch} at {sha} (pushed again since?)"
            )),
        })
    }
}

/// A listed comment that carries `marker`, whoever wrote it.
fn marked_comment(c: Listed, marker: &str) -> Option<Existing> {
    let body = c.body?;
    if !is_ours(&body, marker) {
        return None;
    }
    Some(Existing {
        id: c.id,
        body,
        author: c.user.map(|u| u.login).unwrap_or_default(),
        node_id: c.node_id,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let refused = |status: u16, message: &str| Refused {
            status,
            message: message.to_string(),
        };
        let why = judge(refused(403, "Resource not accessible"), "x").unwrap();
        assert!(why.contains("403 Resource not accessible"), "{why}");
        for (status, kind) in [
            (401, Kind::Usage),
            (404, Kind::NotFound),
            (429, Kind::Transient),
            (502, Kind::Transient),
            (422, Kind::Corrupt),
        ] {
            let e = judge(refused(status, "m"), "x").unwrap_err();
            assert_eq!(e.kind(), kind, "{status}");
            assert!(
                e.to_string()
                    .starts_with(&format!("GitHub API x: {status} m"))
            );
        }
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
}
