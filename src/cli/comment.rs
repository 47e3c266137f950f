//! `sizeguard comment` and `check --comment`: the Markdown report as the
//! sticky pull-request comment.
//!
//! A comment that cannot be posted because the token is read-only (a fork's
//! pull request) is one notice and changes no exit code; any other failure
//! is an error (exit 2 for configuration, 3 for the API).

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::budget::verdict::CheckReport;
use crate::cli::args::{CommentArgs, GithubArgs};
use crate::error::{Error, ExitCode};
use crate::publish::comment::{self, Mode, Outcome};
use crate::publish::github::{Context, Overrides, Token};

/// What a report needs to become a comment.
struct Posting {
    image: String,
    markdown: String,
    failing: bool,
}

fn read_report(path: &Path) -> Result<Posting, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::usage(format!("{}: not a JSON report: {e}", path.display())))?;
    if v.get("kind").and_then(Value::as_str) != Some("check") {
        return Err(Error::usage(format!(
            "{}: not a `sizeguard check --format json` report (kind is not \"check\")",
            path.display()
        )));
    }
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::usage(format!("{}: the report has no {k:?}", path.display())))
    };
    Ok(Posting {
        image: field("image_name")?,
        markdown: field("markdown")?,
        failing: field("verdict")? == "fail",
    })
}

fn read_token_stdin() -> Result<Token, Error> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::usage(format!("reading the GitHub token from standard input: {e}")))?;
    Token::new(s).ok_or_else(|| Error::usage("--github-token-stdin: standard input was empty"))
}

async fn publish(
    posting: &Posting,
    github: &GithubArgs,
    token: Option<Token>,
    mode: Mode,
) -> Result<(), Error> {
    if mode == Mode::Never {
        return Ok(());
    }
    let ctx = Context::from_env(Overrides {
        repo: github.repo.clone(),
        pr: github.pr,
        token,
    })?;
    let (pr, outcome) = comment::post(
        &ctx,
        &posting.image,
        &posting.markdown,
        posting.failing,
        mode,
    )
    .await?;
    let line = outcome.describe(pr.unwrap_or_default());
    match outcome {
        Outcome::ReadOnly(_) => crate::publish::actions::notice(&line),
        _ => eprintln!("sizeguard: {line}"),
    }
    Ok(())
}

/// `sizeguard comment --report FILE`.
pub async fn run(args: CommentArgs) -> Result<ExitCode, Error> {
    let posting = read_report(&args.report)?;
    let token = if args.github_token_stdin {
        Some(read_token_stdin()?)
    } else {
        None
    };
    publish(&posting, &args.github, token, args.mode.into()).await?;
    Ok(ExitCode::Ok)
}

/// `check --comment`: after the report is written. A failure to comment
/// is reported; the exit code is the verdict's, or 2/3 when the verdict
/// passed (a guard that silently lost its comment would look green).
pub async fn after_check(
    report: &CheckReport,
    github: &GithubArgs,
    mode: Mode,
    verdict: ExitCode,
) -> Result<ExitCode, Error> {
    let posting = Posting {
        image: report.image_name(),
        markdown: super::check::markdown(report),
        failing: report.verdict == crate::budget::Verdict::Fail,
    };
    match publish(&posting, github, None, mode).await {
        Ok(()) => Ok(verdict),
        Err(e) if verdict == ExitCode::Ok => Err(e.context("pull-request comment")),
        Err(e) => {
            eprintln!("sizeguard: error: pull-request comment: {}", e.one_line());
            Ok(verdict)
        }
    }
}
