//! GitHub Actions integration of `check`: the Markdown report appended to
//! the step summary, key figures as step outputs, and one annotation per
//! fired rule, so the failure shows on the workflow run page.

use std::fmt::Write as _;
use std::io::Write;

use crate::budget::rules::Figure;
use crate::budget::verdict::{CheckReport, Level};

pub fn in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Workflow-command data must not contain raw newlines or `%`.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The figures a workflow can use in later steps.
pub fn outputs(r: &CheckReport) -> Vec<(&'static str, String)> {
    // For a multi-platform check, the largest figure across platforms.
    let max = |f: &dyn Fn(&crate::budget::verdict::PlatformCheck) -> Option<i128>| {
        r.platforms.iter().filter_map(f).max()
    };
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

fn append(var: &str, text: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os(var) else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Writes the summary, the outputs and the annotations.
pub fn publish(r: &CheckReport) -> std::io::Result<()> {
    let mut summary = crate::report::markdown::Markdown.render_check_text(r);
    summary.push('\n');
    append("GITHUB_STEP_SUMMARY", &summary)?;
    let mut outs = String::new();
    for (k, v) in outputs(r) {
        let _ = writeln!(outs, "{k}={v}");
    }
    append("GITHUB_OUTPUT", &outs)?;
    let mut stdout = std::io::stderr().lock();
    for f in r.findings() {
        let kind = match f.level {
            Level::Fail => "error",
            Level::Warn => "warning",
        };
        writeln!(
            stdout,
            "::{kind} title=sizeguard {}::{}",
            f.rule,
            escape_data(&f.message)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn workflow_data_is_escaped() {
        assert_eq!(super::escape_data("50%\nnext"), "50%25%0Anext");
    }
}
