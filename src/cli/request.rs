//! Flags become requests here, once, right after parsing (as ripgrep turns
//! its flags into `HiArgs`): the policy file and the flags are merged, sizes
//! and percentages parsed, the password read, the cache located. The
//! commands then only run the request and present the answer.

use std::io::{IsTerminal, Read};
use std::sync::Arc;

use crate::app::{CheckRequest, MeasureRequest, Services};
use crate::cli::args::{CheckArgs, MeasureArgs, SourceArgs};
use crate::cli::progress::Bars;
use crate::config::{HintsConfig, Scalar, Settings};
use crate::error::Error;
use crate::measure::cache::{LayerCache, default_dir};
use crate::measure::layer::AnalyzeOptions;
use crate::measure::{MeasureOptions, Measurer};
use crate::source::auth::{Explicit, normalize_key};
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;
use crate::source::registry::RegistryOptions;
use crate::source::{SourceFactory, SourceOptions};
use crate::units::parse_duration;

/// The services a command's requests share: sources configured by the
/// flags, the layer cache unless disabled, bars on a terminal. `named`:
/// the image references the command line gives, in order (the first
/// registry among them is the one `--username` is for, unless
/// `--registry` says).
pub fn services(args: &SourceArgs, named: &[&str]) -> Result<Services, Error> {
    let options = SourceOptions {
        registry: RegistryOptions {
            insecure: args.insecure_registry.clone(),
            ca_files: args.ca_file.clone(),
            basic: basic_credentials(args, first_registry(named))?,
            timeout: Some(parse_duration(&args.timeout)?),
        },
    };
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir
            .clone()
            .or_else(default_dir)
            .map(LayerCache::new)
    };
    let visible = !args.quiet && std::io::stderr().is_terminal();
    Ok(Services {
        sources: Arc::new(SourceFactory::new(options)),
        measurer: Measurer {
            cache,
            analysis: analysis(args),
            progress: Arc::new(Bars::new(visible)),
        },
    })
}

/// How layers are read, as `--content-scan` and `--inflate` (or their
/// environment variables) say.
pub(crate) fn analysis(args: &SourceArgs) -> AnalyzeOptions {
    AnalyzeOptions {
        scan_content: args.content_scan,
        inflater: args.inflate,
    }
}

/// The registry host of the first of `references` that is a registry
/// reference, as the user wrote it.
pub(crate) fn first_registry(references: &[&str]) -> Option<String> {
    references.iter().find_map(|r| match ImageRef::parse(r) {
        Ok(ImageRef::Registry(r)) => Some(r.registry().to_string()),
        _ => None,
    })
}

/// `--username` with the password from standard input, for one registry
/// host: `--registry`, else `default_host` (a registry the command line
/// names). Never a host that only a policy file or an image names: those
/// get what the user's credential files hold for them, or nothing.
pub(crate) fn basic_credentials(
    args: &SourceArgs,
    default_host: Option<String>,
) -> Result<Option<Explicit>, Error> {
    let (Some(user), true) = (&args.username, args.password_stdin) else {
        return Ok(None);
    };
    let (host, source) = match &args.registry {
        Some(r) => {
            let host = normalize_key(r.trim()).to_ascii_lowercase();
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(Error::usage(format!(
                    "--registry {:?} is not a registry host (HOST or HOST:PORT)",
                    crate::report::escape::plain(r)
                )));
            }
            let source = format!("--username/--password-stdin (for --registry {host})");
            (host, source)
        }
        None => {
            let host = default_host.ok_or_else(|| {
                Error::usage(
                    "--username/--password-stdin: no registry on the command line to send them to; \
                     name it with --registry HOST (a registry only a policy file names never gets them)",
                )
            })?;
            let source = format!("--username/--password-stdin (for {host})");
            (host, source)
        }
    };
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| Error::usage("reading the password from standard input").with_source(e))?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Error::usage("--password-stdin: standard input was empty"));
    }
    Ok(Some(Explicit {
        host,
        username: user.clone(),
        password,
        source,
    }))
}

pub(crate) fn platforms(args: &SourceArgs) -> Result<PlatformSelector, Error> {
    PlatformSelector::parse(args.platform.as_deref())
}

pub(crate) fn measure_options(args: &SourceArgs, top: usize) -> Result<MeasureOptions, Error> {
    if args.jobs == Some(0) {
        return Err(Error::usage("--jobs must be at least 1"));
    }
    let mut options = MeasureOptions {
        verify_diff_ids: args.verify_diff_ids,
        top,
        ..Default::default()
    };
    if let Some(j) = args.jobs {
        options.jobs = j;
    }
    Ok(options)
}

pub fn measure_request(args: &MeasureArgs) -> Result<MeasureRequest, Error> {
    Ok(MeasureRequest {
        references: args.references.clone(),
        platforms: platforms(&args.source)?,
        options: MeasureOptions {
            estimate: args.estimate,
            ..measure_options(&args.source, args.top)?
        },
    })
}

pub fn check_request(args: &CheckArgs) -> Result<CheckRequest, Error> {
    let settings = settings(args)?;
    let crate::config::Judging {
        policy,
        node,
        thresholds,
    } = settings.judging(&args.settings)?;
    let candidate = settings.image.clone().ok_or_else(|| {
        Error::usage("no candidate: give --candidate REF, or `image` in sizeguard.toml")
    })?;
    Ok(CheckRequest {
        candidate,
        baseline: settings.baseline.clone(),
        baseline_optional: settings.baseline_optional.unwrap_or(false),
        platforms: platforms(&args.source)?,
        policy,
        node,
        thresholds,
        options: measure_options(&args.source, args.top)?,
        hints: settings
            .hints
            .as_ref()
            .map(HintsConfig::settings)
            .transpose()?
            .unwrap_or_default(),
        paths: crate::analyze::paths::PathOptions {
            top: args.top,
            depth: args.depth,
        },
    })
}

/// The policy file (unless `--no-config`) under the flags.
fn settings(args: &CheckArgs) -> Result<Settings, Error> {
    let file = if args.no_config {
        Settings::default()
    } else {
        match &args.config {
            Some(path) => {
                announce_policy(path, "--config");
                Settings::load(path)?
            }
            None => {
                let cwd = std::env::current_dir()
                    .map_err(|e| Error::usage("working directory").with_source(e))?;
                match Settings::discover(&cwd) {
                    Some(path) => {
                        announce_policy(&path, "found in the working directory or a parent");
                        Settings::load(&path)?
                    }
                    None => Settings::default(),
                }
            }
        }
    };
    let dive_ci = match &args.dive_ci {
        Some(path) => {
            let f = crate::config::dive_ci::load(path)?;
            let text = |v: Option<String>| v.map(Scalar::Text);
            Settings {
                lowest_efficiency: text(f.lowest_efficiency),
                highest_wasted_bytes: text(f.highest_wasted_bytes),
                highest_user_wasted_percent: text(f.highest_user_wasted_percent),
                ..Settings::default()
            }
        }
        None => Settings::default(),
    };
    Ok(Settings::layered([flag_settings(args), dive_ci, file]))
}

/// Under GitHub Actions, the log says which policy file the check reads
/// (in a pull request's checkout, the pull request chose its contents):
/// one line on stderr, escaped like any text a pull request controls.
fn announce_policy(path: &std::path::Path, how: &str) {
    if crate::publish::actions::in_actions() {
        eprintln!(
            "{POLICY_LINE}{} ({how})",
            crate::report::escape::plain(&path.display().to_string())
        );
    }
}

/// How the line naming the policy file read starts.
pub const POLICY_LINE: &str = "sizeguard: policy file: ";

/// The command line as a [`Settings`] layer over the policy file: the
/// rule and node flags, and the images, which only `check` takes as flags.
fn flag_settings(args: &CheckArgs) -> Settings {
    Settings {
        image: args.candidate.clone(),
        baseline: args.baseline.clone(),
        baseline_optional: args.baseline_optional.then_some(true),
        ..args.settings.clone()
    }
}
