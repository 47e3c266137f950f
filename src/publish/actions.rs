//! GitHub Actions integration: the Markdown report appended to the step
//! summary, key figures as step outputs, and workflow annotations (one per
//! fired rule, plus the notices and warnings sizeguard gives along the way),
//! so a failure shows on the workflow run page and later steps can use the
//! figures. Everything goes through the environment files and workflow
//! commands the runner documents; nothing here talks to the API.

use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::io::Write;

use crate::budget::rules::Figure;
use crate::budget::verdict::{CheckReport, Level, PlatformCheck};
use crate::error::Error;
use crate::report::escape::{command_data, command_property, output_entry, plain};

pub fn in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// A workflow command that annotates the run: `::error title=T::message`.
/// Messages quote image and report text: escaped, they stay one command.
fn annotation(command: &str, title: &str, message: &str) -> String {
    format!(
        "::{command} title={}::{}",
        command_property(title),
        command_data(message)
    )
}

/// One line for the log: a `::notice::` annotation under Actions, else a
/// `sizeguard: notice:` line on stderr.
pub fn notice(msg: &str) {
    if in_actions() {
        eprintln!("{}", annotation("notice", "sizeguard", msg));
    } else {
        eprintln!("sizeguard: notice: {}", plain(msg));
    }
}

/// Same, as a warning.
pub fn warning(msg: &str) {
    if in_actions() {
        eprintln!("{}", annotation("warning", "sizeguard", msg));
    } else {
        eprintln!("sizeguard: warning: {}", plain(msg));
    }
}

/// The report in the job log, where a reader of the run looks first. The
/// runner is told to ignore workflow commands until the report has ended
/// (`::stop-commands::`, with a token the report cannot know), so no text
/// an image carries can act as one.
pub fn log_report(text: &str) {
    let token = format!(
        "sizeguard-report-{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(text)
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "::stop-commands::{token}");
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "::{token}::");
}

/// The figures a workflow can use in later steps.
pub fn outputs(r: &CheckReport) -> Vec<(&'static str, String)> {
    // For a multi-platform check, the largest figure across platforms.
    let max = |f: &dyn Fn(&PlatformCheck) -> Option<i128>| r.platforms.iter().filter_map(f).max();
    let mut out = vec![("verdict", r.verdict.to_string())];
    if let Some(v) = max(&|p| Some(p.evaluation.candidate_cost.pull_bytes as i128)) {
        out.push(("pull-bytes", v.to_string()));
    }
    if let Some(v) = max(&|p| Some(p.evaluation.candidate_cost.node_bytes as i128)) {
        out.push(("node-bytes", v.to_string()));
    }
    out.push((
        "growth-bytes",
        max(&|p| p.evaluation.growth(Figure::NodeBytes)).map_or(String::new(), |v| v.to_string()),
    ));
    out.push((
        "gc-headroom",
        r.headroom_left().map_or(String::new(), |v| v.to_string()),
    ));
    out
}

/// Appends to the file an environment variable names (`GITHUB_OUTPUT`,
/// `GITHUB_STEP_SUMMARY`); nothing when it is not set. The runner sets
/// these: one that cannot be written is the environment's fault, a usage
/// error.
fn append(var: &str, text: &str) -> Result<(), Error> {
    let Some(path) = std::env::var_os(var) else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::usage(format!("GitHub Actions outputs: {var}")).with_source(e))
}

/// Writes the summary, the outputs and the annotations.
pub fn publish(r: &CheckReport) -> Result<(), Error> {
    let mut summary = crate::report::markdown::Markdown.render_check_text(r);
    summary.push('\n');
    append("GITHUB_STEP_SUMMARY", &summary)?;
    let mut outs = String::new();
    for (k, v) in outputs(r) {
        outs.push_str(&output_entry(k, &v)?);
    }
    append("GITHUB_OUTPUT", &outs)?;
    let mut log = String::new();
    for f in r.findings() {
        let command = match f.level {
            Level::Fail => "error",
            Level::Warn => "warning",
        };
        let title = format!("sizeguard {}", f.rule);
        let _ = writeln!(log, "{}", annotation(command, &title, &f.message));
    }
    std::io::stderr()
        .lock()
        .write_all(log.as_bytes())
        .map_err(|e| Error::usage("GitHub Actions annotations").with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_data_is_escaped() {
        assert_eq!(
            annotation("error", "sizeguard growth", "a\nb"),
            "::error title=sizeguard growth::a%0Ab"
        );
        assert_eq!(
            annotation("warning", "x::y,z", "50%\n::error::forged"),
            "::warning title=x%3A%3Ay%2Cz::50%25%0A::error::forged"
        );
    }
}
