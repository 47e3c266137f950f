//! `sizeguard comment` and `check --comment`: the Markdown report as the
//! sticky pull-request comment.
//!
//! A comment that cannot be posted because the token is read-only (a fork's
//! pull request) is one notice and changes no exit code; any other failure
//! is an error (exit 2 for configuration, 3 for the API).

use std::io::Read;
use std::path::Path;

use crate::budget::verdict::CheckReport;
use crate::cli::args::{CommentArgs, GithubArgs};
use crate::error::{Error, ExitCode};
use crate::publish::comment::{self, Mode, Outcome};
use crate::publish::github::client::{ClientOptions, DEFAULT_MAX_WAIT};
use crate::publish::github::{Context, Overrides, Token};
use crate::report::markdown::Markdown;
use crate::report::view::{CheckView, MAX_REPORT_BYTES};

/// What a report needs to become a comment.
struct Posting {
    image: String,
    markdown: String,
    failing: bool,
}

impl Posting {
    fn of(view: &CheckView) -> Posting {
        Posting {
            image: view.image_name(),
            markdown: Markdown.render_view(view),
            failing: view.verdict == crate::budget::Verdict::Fail,
        }
    }
}

/// The report of `comment --report`: in the fork pattern an artifact the
/// pull request wrote, so it is validated and its figures re-rendered by
/// sizeguard; its own `markdown` is never posted. A file that is not a
/// check report (too large, not JSON, not the documented shape) is a usage
/// error, exit 2.
fn read_report(path: &Path) -> Result<Posting, Error> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| Error::usage(format!("{name}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::usage(format!("{name}: {e}")))?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        return Err(Error::usage(format!(
            "{name}: larger than the {} MiB a sizeguard check report may be",
            MAX_REPORT_BYTES >> 20
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::usage(format!("{name}: not a JSON report: not UTF-8")))?;
    let view = CheckView::from_json(&text).map_err(|e| e.context(name))?;
    Ok(Posting::of(&view))
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
    let options = ClientOptions {
        max_wait: github_max_wait()?,
        ..ClientOptions::default()
    };
    let (pr, outcome) = comment::post(
        &ctx,
        &posting.image,
        &posting.markdown,
        posting.failing,
        mode,
        options,
    )
    .await?;
    let line = outcome.describe(pr.unwrap_or_default());
    match outcome {
        Outcome::ReadOnly(_) => crate::publish::actions::notice(&line),
        _ => eprintln!("sizeguard: {line}"),
    }
    Ok(())
}

/// The longest rate-limit wait: `SIZEGUARD_GITHUB_MAX_WAIT` in whole
/// seconds (0: never wait, fail at the first limit), else
/// [`DEFAULT_MAX_WAIT`].
fn github_max_wait() -> Result<std::time::Duration, Error> {
    match std::env::var("SIZEGUARD_GITHUB_MAX_WAIT") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| {
                Error::usage(format!(
                    "SIZEGUARD_GITHUB_MAX_WAIT {:?}: expected whole seconds",
                    crate::plain_text::escape(&v)
                ))
            }),
        _ => Ok(DEFAULT_MAX_WAIT),
    }
}

/// `sizeguard comment --report FILE`. The report is read and validated
/// whatever the mode: `--mode never` checks a report and posts nothing.
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
    let posting = Posting::of(&CheckView::from_report(report));
    match publish(&posting, github, None, mode).await {
        Ok(()) => Ok(verdict),
        Err(e) if verdict == ExitCode::Ok => Err(e.context("pull-request comment")),
        Err(e) => {
            eprintln!(
                "{}",
                crate::error::error_line(&format!("pull-request comment: {}", e.one_line()))
            );
            Ok(verdict)
        }
    }
}
