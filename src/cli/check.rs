//! `sizeguard check`: flags → request → judge → render → publish, and the
//! verdict as the exit code.

use crate::app;
use crate::budget::Verdict;
use crate::budget::verdict::CheckReport;
use crate::cli::args::{CheckArgs, CheckFormat};
use crate::cli::{output, request};
use crate::error::{Error, ExitCode};
use crate::publish::actions;
use crate::report::terminal::Terminal;
use crate::report::{self, Renderer, renderer};

/// Runs the check; returns the exit code the verdict maps to.
pub async fn run(args: CheckArgs) -> Result<ExitCode, Error> {
    let req = request::check_request(&args)?;
    // Only references the command line gives choose where --username goes.
    let named: Vec<&str> = [&args.candidate, &args.baseline]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let services = request::services(&args.source, &named)?;
    let report = app::check(&services, &req).await?;

    let text = match args.format {
        CheckFormat::Short => short(&args).render_check(&report),
        format => renderer(format.into()).render_check(&report),
    };
    output::emit(&text, args.output.as_deref())?;
    if actions::in_actions() {
        actions::publish(&report)?;
        // A report written to a file is not in the job log: show the table.
        if args.output.is_some() {
            actions::log_report(&renderer(report::Format::Table).render_check(&report));
        }
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

/// The short verdict: coloured when it goes to a terminal (and `NO_COLOR`
/// is unset), ending with the command that shows the full report.
fn short(args: &CheckArgs) -> Terminal {
    use std::io::IsTerminal;
    let color = args.output.is_none()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    let mut full = String::from("sizeguard check");
    for (flag, value) in [
        ("--candidate", args.candidate.as_deref()),
        ("--baseline", args.baseline.as_deref()),
    ] {
        if let Some(v) = value {
            full.push_str(&format!(" {flag} {v}"));
        }
    }
    if let Some(config) = &args.config {
        full.push_str(&format!(" --config {}", config.display()));
    }
    if args.no_config {
        full.push_str(" --no-config");
    }
    full.push_str(" --format table");
    Terminal {
        color,
        full_report: Some(full),
    }
}

/// Markdown is what a pull-request comment shows.
pub fn markdown(report: &CheckReport) -> String {
    renderer(report::Format::Markdown).render_check(report)
}
