//! `sizeguard check`: flags → request → judge → render → publish, and the
//! verdict as the exit code.

use crate::app;
use crate::budget::Verdict;
use crate::budget::verdict::CheckReport;
use crate::cli::args::{CheckArgs, CheckFormat};
use crate::cli::{output, request};
use crate::error::{Error, ExitCode};
use crate::publish::actions;
use crate::report::history::HistoryPoint;
use crate::report::json::CheckView;
use crate::report::terminal::Terminal;
use crate::report::{self, Renderer, renderer};

/// Runs the check; returns the exit code the verdict maps to.
pub async fn run(args: CheckArgs) -> Result<ExitCode, Error> {
    let req = request::check_request(&args)?;
    // Refused before anything is measured: only a registry holds an
    // artifact next to its image.
    if args.attach && crate::app::history::repository_of(&req.candidate).is_none() {
        return Err(Error::usage(format!(
            "--attach stores the report next to the candidate in its registry: {} is not a registry image",
            crate::report::escape::plain(&req.candidate)
        )));
    }
    let trend_tags = super::history::glob(args.trend_tags.as_deref(), "--trend-tags")?;
    let trend_platform = if args.trend > 0 {
        super::history::platform(args.source.platform.as_deref()).unwrap_or(None)
    } else {
        None
    };
    // Only references the command line gives choose where --username goes.
    let named: Vec<&str> = [&args.candidate, &args.baseline]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let services = request::services(&args.source, &named)?;
    let mut report = app::check(&services, &req).await?;
    if args.trend > 0 {
        let candidate = HistoryPoint::subject_of(&CheckView::from_report(&report));
        report.history = Some(
            super::history::trend(
                &services,
                req.baseline.as_deref(),
                candidate,
                args.trend,
                trend_tags,
                trend_platform,
            )
            .await,
        );
    }

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
    if args.attach {
        let json = match args.format {
            CheckFormat::Json => text.clone(),
            _ => renderer(report::Format::Json).render_check(&report),
        };
        let view = CheckView::from_report(&report);
        let attached = crate::app::history::attach(&services, &req.candidate, &view, &json).await?;
        if !args.source.quiet {
            eprintln!(
                "attached report {} to {}",
                attached.report,
                crate::report::escape::plain(&attached.subject)
            );
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
