//! `sizeguard check`: flags → request → judge → render → publish, and the
//! verdict as the exit code.

use crate::app;
use crate::budget::Verdict;
use crate::cli::args::CheckArgs;
use crate::cli::{output, request};
use crate::error::{Error, ExitCode};
use crate::publish::actions;
use crate::report::renderer;

/// Runs the check; returns the exit code the verdict maps to.
pub async fn run(args: CheckArgs) -> Result<ExitCode, Error> {
    let req = request::check_request(&args)?;
    let services = request::services(&args.source)?;
    let report = app::check(&services, &req).await?;

    let text = renderer(args.format.into()).render_check(&report);
    output::emit(&text, args.output.as_deref())?;
    if actions::in_actions() {
        actions::publish(&report)?;
    }
    let verdict = match report.verdict {
        Verdict::Fail => ExitCode::PolicyFailed,
        _ => ExitCode::Ok,
    };
    if args.comment {
        return super::comment::after_check(
            &report,
            &args.github,
            args.comment_mode.into(),
            verdict,
        )
        .await;
    }
    Ok(verdict)
}
