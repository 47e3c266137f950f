//! `sizeguard check`: measure a candidate and its baseline together, judge
//! the candidate, report, and exit with the verdict.

use std::sync::Arc;

use crate::budget::rules::Finding;
use crate::budget::verdict::{CheckReport, assemble};
use crate::cli::args::CheckArgs;
use crate::config::{NodeConfig, OneOrMany, Settings};
use crate::error::{Error, ExitCode};
use crate::measure::{ImageReport, measure_images};
use crate::publish::actions as github;
use crate::report::{self, renderer};
use crate::source::platform::PlatformSelector;
use crate::source::{self, ImageSource, ResolvedImage, SourceOptions};

/// The command line as a [`Settings`] layer over the policy file.
fn flag_settings(args: &CheckArgs) -> Settings {
    let n = &args.node;
    let p = &args.policy;
    let many = |v: &Vec<String>| (!v.is_empty()).then(|| OneOrMany::Many(v.clone()));
    Settings {
        max_growth: many(&p.max_growth),
        warn_growth: many(&p.warn_growth),
        max_pull_size: p.max_pull_size.clone(),
        warn_pull_size: p.warn_pull_size.clone(),
        max_unpacked_size: p.max_unpacked_size.clone(),
        warn_unpacked_size: p.warn_unpacked_size.clone(),
        max_layer_size: p.max_layer_size.clone(),
        warn_layer_size: p.warn_layer_size.clone(),
        max_layers: p.max_layers,
        warn_layers: p.warn_layers,
        max_wasted: p.max_wasted.clone(),
        warn_wasted: p.warn_wasted.clone(),
        gc_headroom_level: p.gc_headroom_level.clone(),
        fresh_pull: p.fresh_pull.then_some(true),
        discard_unpacked_layers: n.discard_unpacked_layers.then_some(true),
        baseline_optional: args.baseline_optional.then_some(true),
        gc_high: n.gc_high,
        gc_low: n.gc_low,
        eviction_imagefs_available: n.eviction_imagefs_available.clone(),
        eviction_imagefs_inodes_free: n.eviction_imagefs_inodes_free.clone(),
        node_profile: n.node_profile.clone(),
        node: Some(NodeConfig {
            stats: n.node_stats.clone(),
            capacity: n.node_capacity.clone(),
            available: n.node_available.clone(),
            used: n.node_used.clone(),
            inodes: n.node_inodes,
            inodes_free: n.node_inodes_free,
        }),
        nodes: Default::default(),
    }
}

fn settings(args: &CheckArgs) -> Result<Settings, Error> {
    let file = if args.no_config {
        Settings::default()
    } else {
        match &args.config {
            Some(path) => Settings::load(path)?,
            None => {
                let cwd = std::env::current_dir()
                    .map_err(|e| Error::usage(format!("working directory: {e}")))?;
                match Settings::discover(&cwd) {
                    Some(path) => Settings::load(&path)?,
                    None => Settings::default(),
                }
            }
        }
    };
    Ok(flag_settings(args).over(file))
}

async fn resolve(
    reference: &str,
    opts: &SourceOptions,
    platforms: &PlatformSelector,
) -> Result<Vec<(Arc<dyn ImageSource>, ResolvedImage)>, Error> {
    let src = source::open(reference, opts).await?;
    let images = src.resolve(platforms).await?;
    Ok(images.into_iter().map(|i| (src.clone(), i)).collect())
}

/// Runs the check; returns the exit code the verdict maps to.
pub async fn run(args: CheckArgs) -> Result<ExitCode, Error> {
    let settings = settings(&args)?;
    let policy = settings.policy()?;
    let thresholds = settings.thresholds()?;
    let cli_node = args.node.node_stats.is_some() || args.node.node_capacity.is_some();
    let node = settings.node_choice(cli_node)?;
    let baseline_optional = settings.baseline_optional.unwrap_or(false);

    let (source_opts, mut measure_opts, platforms) = super::source_options(&args.source)?;
    measure_opts.top = args.top;

    let baseline_future = async {
        match &args.baseline {
            None => Ok(None),
            Some(b) => resolve(b, &source_opts, &platforms).await.map(Some),
        }
    };
    let (candidate, baseline) = tokio::join!(
        resolve(&args.candidate, &source_opts, &platforms),
        baseline_future
    );
    let candidate = candidate.map_err(|e| e.context("candidate"))?;
    let mut general = Vec::new();
    let baseline = match baseline {
        Ok(b) => b.unwrap_or_default(),
        Err(e) if e.is_not_found() && baseline_optional => {
            general.push(Finding::baseline_missing(format!(
                "no baseline yet (first release?): {}",
                e.one_line()
            )));
            Vec::new()
        }
        Err(e) => return Err(e.context("baseline")),
    };

    let n_candidate = candidate.len();
    // One measurement pass over both images: a layer they share is
    // streamed once.
    let mut reports: Vec<ImageReport> = measure_images(
        candidate.into_iter().chain(baseline).collect(),
        &measure_opts,
    )
    .await?;
    let baselines = reports.split_off(n_candidate);
    let report: CheckReport = assemble(
        args.candidate.clone(),
        args.baseline.clone(),
        reports,
        baselines,
        general,
        node.map(|c| (c.label, c.nodes, thresholds)),
        policy,
    )?;

    let text = renderer(args.format.into()).render_check(&report);
    super::emit(&text, args.output.as_deref())?;
    if github::in_actions() {
        github::publish(&report)?;
    }
    let verdict = match report.verdict {
        crate::budget::Verdict::Fail => ExitCode::PolicyFailed,
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

/// Markdown is what a pull-request comment shows.
pub fn markdown(report: &CheckReport) -> String {
    renderer(report::Format::Markdown).render_check(report)
}
