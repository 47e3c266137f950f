//! Image references with transport prefixes, as skopeo spells them.
//!
//! `docker://` or no prefix: a registry; `oci:PATH[:TAG]`: an OCI image
//! layout directory; `oci-archive:FILE[:TAG]`: a tar of one;
//! `docker-archive:FILE[:REF]`: the output of `docker save`.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_client::Reference;

#[derive(Debug, Clone)]
pub enum ImageRef {
    Registry(Reference),
    Layout {
        path: PathBuf,
        tag: Option<String>,
    },
    OciArchive {
        path: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, String> {
        if input.trim().is_empty() {
            return Err("empty image reference".into());
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (path, tag) = split_path(rest, "oci")?;
            Ok(ImageRef::Layout { path, tag })
        } else if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = split_path(rest, "oci-archive")?;
            Ok(ImageRef::OciArchive { path, tag })
        } else if let Some(rest) = input.strip_prefix("docker-archive:") {
            let (path, reference) = split_path(rest, "docker-archive")?;
            Ok(ImageRef::DockerArchive { path, reference })
        } else if input.starts_with("docker-daemon:") {
            Err("the docker-daemon: transport is not supported yet; export the image with `docker save IMAGE -o image.tar` and use docker-archive:image.tar".into())
        } else {
            let name = input.strip_prefix("docker://").unwrap_or(input);
            if name.contains("://") {
                return Err(format!(
                    "unknown transport in {input:?}: use docker://, oci:, oci-archive: or docker-archive:"
                ));
            }
            name.parse::<Reference>()
                .map(ImageRef::Registry)
                .map_err(|e| format!("invalid image reference {name:?}: {e}"))
        }
    }
}

/// Splits `PATH[:SUFFIX]`. Paths may contain colons, so the longest prefix
/// that exists on disk wins; the suffix (a tag, or a `repo:tag` for
/// docker-archive) is what follows it.
fn split_path(rest: &str, transport: &str) -> Result<(PathBuf, Option<String>), String> {
    if rest.is_empty() {
        return Err(format!(
            "{transport}: needs a path, e.g. {transport}:./image"
        ));
    }
    if Path::new(rest).exists() {
        return Ok((PathBuf::from(rest), None));
    }
    for (i, _) in rest.match_indices(':') {
        let (p, suffix) = (&rest[..i], &rest[i + 1..]);
        if !p.is_empty() && Path::new(p).exists() {
            let suffix = (!suffix.is_empty()).then(|| suffix.to_string());
            return Ok((PathBuf::from(p), suffix));
        }
    }
    // Nothing exists: report the path the user most likely meant.
    let guess = rest.split(':').next().unwrap_or(rest);
    Err(format!(
        "{transport}:{rest}: {guess}: no such file or directory"
    ))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, t: &str, p: &Path, s: &Option<String>| {
            write!(f, "{t}:{}", p.display())?;
            if let Some(s) = s {
                write!(f, ":{s}")?;
            }
            Ok(())
        };
        match self {
            ImageRef::Registry(r) => write!(f, "{}", r.whole()),
            ImageRef::Layout { path, tag } => with(f, "oci", path, tag),
            ImageRef::OciArchive { path, tag } => with(f, "oci-archive", path, tag),
            ImageRef::DockerArchive { path, reference } => {
                with(f, "docker-archive", path, reference)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_normalised() {
        match ImageRef::parse("alpine").unwrap() {
            ImageRef::Registry(r) => {
                assert_eq!(r.whole(), "docker.io/library/alpine:latest");
            }
            other => panic!("{other:?}"),
        }
        match ImageRef::parse("docker://127.0.0.1:5000/team/app:v1").unwrap() {
            ImageRef::Registry(r) => {
                assert_eq!(r.registry(), "127.0.0.1:5000");
                assert_eq!(r.repository(), "team/app");
                assert_eq!(r.tag(), Some("v1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(ImageRef::parse("Not A Ref!").is_err());
        assert!(ImageRef::parse("docker-daemon:app:latest").is_err());
    }

    #[test]
    fn layout_paths_split_on_existing_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lay:out");
        std::fs::create_dir(&p).unwrap();
        let s = format!("oci:{}:v2", p.display());
        match ImageRef::parse(&s).unwrap() {
            ImageRef::Layout { path, tag } => {
                assert_eq!(path, p);
                assert_eq!(tag.as_deref(), Some("v2"));
            }
            other => panic!("{other:?}"),
        }
        let err = ImageRef::parse("oci:/definitely/not/here:tag").unwrap_err();
        assert!(err.contains("no such file"), "{err}");
    }
}
