//! `sizeguard history`: a repository's images over its releases, with the
//! figures of the check reports attached to them; and the trend a check
//! embeds (`check --trend`), read the same way.

use oci_client::Reference;

use crate::app::Services;
use crate::app::history::{self, HistoryRequest};
use crate::cli::args::{HistoryArgs, HistoryFormat};
use crate::cli::{output, request};
use crate::error::Error;
use crate::report::history::HistoryView;
use crate::report::{chart, trend};
use crate::source::reference::ImageRef;

pub async fn run(args: HistoryArgs) -> Result<(), Error> {
    let repository = repository(&args.repository)?;
    let tags = glob(args.tags.as_deref(), "--tags")?;
    let platform = platform(args.source.platform.as_deref())?;
    if args.last == 0 {
        return Err(Error::usage("--last must be at least 1"));
    }
    let services = request::services(&args.source, &[&args.repository])?;
    let view = history::history(
        &services,
        &HistoryRequest {
            repository,
            tags,
            last: args.last,
            platform,
            measure: args.measure,
            exclude: None,
        },
    )
    .await?;
    let text = match args.format {
        HistoryFormat::Json => json(&view)?,
        HistoryFormat::Table => trend::table(&view),
        HistoryFormat::Markdown => trend::markdown(&view),
        HistoryFormat::Svg => chart::history_svg(&view),
    };
    output::emit(&text, args.output.as_deref())
}

/// The history as its schema's JSON.
fn json(view: &HistoryView) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(view)
        .map_err(|e| Error::corrupt("the history as JSON").with_source(e))?;
    text.push('\n');
    Ok(text)
}

/// `REGISTRY/REPOSITORY`: a registry reference with neither tag nor
/// digest (a history is of every tag).
fn repository(text: &str) -> Result<Reference, Error> {
    let bare = text.strip_prefix("docker://").unwrap_or(text);
    let last = bare.rsplit('/').next().unwrap_or(bare);
    if bare.contains('@') || (bare.contains('/') && last.contains(':')) {
        return Err(Error::usage(format!(
            "history takes a repository (REGISTRY/REPOSITORY), not an image: drop the tag or digest from {text}"
        )));
    }
    match ImageRef::parse(bare) {
        Ok(ImageRef::Registry(r)) if bare.contains('/') => Ok(r),
        Ok(_) | Err(_) => Err(Error::usage(format!(
            "history takes a registry repository (REGISTRY/REPOSITORY), not {text}"
        ))),
    }
}

/// A tag glob (`--tags`, `--trend-tags`).
pub(crate) fn glob(
    pattern: Option<&str>,
    flag: &str,
) -> Result<Option<globset::GlobMatcher>, Error> {
    pattern
        .map(|p| {
            globset::Glob::new(p)
                .map(|g| g.compile_matcher())
                .map_err(|e| Error::usage(format!("{flag} {p:?}: {e}")))
        })
        .transpose()
}

/// `--platform`, as a history takes it: one platform, or each report's
/// first.
pub(crate) fn platform(given: Option<&str>) -> Result<Option<String>, Error> {
    match given {
        Some("all") => Err(Error::usage(
            "a history is of one platform: give --platform os/arch, or none for each report's first",
        )),
        other => Ok(other.map(str::to_string)),
    }
}

/// The trend a check embeds: the history of the baseline's repository,
/// the candidate left out. A history that cannot be read does not fail
/// the check: it is the note.
pub(crate) async fn trend(
    services: &Services,
    baseline: Option<&str>,
    candidate_digest: Option<String>,
    last: usize,
    tags: Option<globset::GlobMatcher>,
    platform: Option<String>,
) -> HistoryView {
    let registry = baseline.and_then(|b| match ImageRef::parse(b) {
        Ok(ImageRef::Registry(r)) => Some(r),
        _ => None,
    });
    let Some(reference) = registry else {
        let mut view = HistoryView::new(baseline.unwrap_or_default(), platform);
        view.note = Some(match baseline {
            None => "no trend: the check has no baseline".to_string(),
            Some(_) => "no trend: the baseline is not in a registry".to_string(),
        });
        return view;
    };
    let repository = format!("{}/{}", reference.registry(), reference.repository());
    let req = HistoryRequest {
        repository: reference,
        tags,
        last,
        platform: platform.clone(),
        measure: false,
        exclude: candidate_digest,
    };
    match history::history(services, &req).await {
        Ok(view) => view,
        Err(e) => {
            let mut view = HistoryView::new(repository, platform);
            view.note = Some(format!("no trend: {}", e.one_line()));
            view
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_is_of_a_repository() {
        assert!(repository("127.0.0.1:5000/app").is_ok());
        assert!(repository("ghcr.io/org/app").is_ok());
        for bad in [
            "127.0.0.1:5000/app:v1",
            "127.0.0.1:5000/app@sha256:abc",
            "oci:dir",
            "app",
        ] {
            let e = repository(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::Usage, "{bad}: {e}");
        }
    }
}
