//! Image references with transport prefixes, as skopeo spells them.
//!
//! `docker://` or no prefix: a registry; `oci:PATH[:TAG]`: an OCI image
//! layout directory; `oci-archive:FILE[:TAG]`: a tar of one;
//! `docker-archive:FILE[:REF]`: the output of `docker save`; `dir:PATH`:
//! the directory skopeo's and Podman's `dir` transport writes;
//! `docker-daemon:IMAGE`: an image in a local Docker engine (or any engine
//! that serves the Docker Engine API, Podman's included: `DOCKER_HOST`);
//! `podman:IMAGE`: the same through Podman's own socket.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_client::Reference;

use crate::digest::Digest;
use crate::error::Error;

/// A parsed reference. Its `Display` is the one spelling of a reference in
/// reports and messages: the transport prefix, the path, the tag; registry
/// references normalised (`alpine` is `docker.io/library/alpine:latest`).
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
    /// skopeo's `dir:` transport: one image, so no tag.
    Dir {
        path: PathBuf,
    },
    /// An image in a local engine, by the name or ID the engine knows it by.
    Daemon {
        engine: Engine,
        name: String,
    },
}

/// Which engine a daemon reference names, and so which socket is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `docker-daemon:`: `DOCKER_HOST`, else `/var/run/docker.sock`.
    Docker,
    /// `podman:`: `CONTAINER_HOST`, else Podman's socket for this user.
    Podman,
}

impl Engine {
    pub fn prefix(self) -> &'static str {
        match self {
            Engine::Docker => "docker-daemon",
            Engine::Podman => "podman",
        }
    }
}

/// The prefixes that name a transport other than a registry.
const TRANSPORTS: [&str; 6] = [
    "oci:",
    "oci-archive:",
    "docker-archive:",
    "dir:",
    "docker-daemon:",
    "podman:",
];

impl ImageRef {
    /// Parses a reference; what cannot be parsed is a usage error.
    pub fn parse(input: &str) -> Result<ImageRef, Error> {
        if input.trim().is_empty() {
            return Err(Error::usage("empty image reference"));
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
        } else if let Some(rest) = input.strip_prefix("dir:") {
            // As skopeo reads it: all of the rest is the path.
            if rest.is_empty() {
                return Err(Error::usage("dir: needs a path, e.g. dir:./image"));
            }
            if !Path::new(rest).is_dir() {
                return Err(Error::usage(format!("dir:{rest}: no such directory")));
            }
            Ok(ImageRef::Dir { path: rest.into() })
        } else if let Some(rest) = input.strip_prefix("docker-daemon:") {
            daemon_ref(Engine::Docker, rest)
        } else if let Some(rest) = input.strip_prefix("podman:") {
            daemon_ref(Engine::Podman, rest)
        } else {
            let name = input.strip_prefix("docker://").unwrap_or(input);
            if name.contains("://") {
                return Err(Error::usage(format!(
                    "unknown transport in {input:?}: use docker://, oci:, oci-archive:, docker-archive:, dir:, docker-daemon: or podman:"
                )));
            }
            match parse_common(name) {
                Some(r) => Ok(ImageRef::Registry(r)),
                None => {
                    let r = name.parse::<Reference>().map_err(|e| {
                        Error::usage(format!("invalid image reference {name:?}")).with_source(e)
                    })?;
                    // oci-spec takes an upper-case first component for a
                    // Docker Hub path, which no registry (and not its own
                    // parser, once printed) accepts.
                    if !r.repository().split('/').all(path_component_ok) {
                        return Err(Error::usage(format!(
                            "invalid image reference {name:?}: repository names are lower case"
                        )));
                    }
                    Ok(ImageRef::Registry(r))
                }
            }
        }
    }

    /// A short name for headings: the repository's last component
    /// (`ghcr.io/org/app:pr-7` is `app`), or the file or directory name of a
    /// layout or archive (`oci:fixtures/demo:v2` is `demo`).
    pub fn short_name(&self) -> String {
        let name = match self {
            ImageRef::Registry(r) => r.repository().rsplit('/').next().map(str::to_string),
            ImageRef::Daemon { name, .. } => {
                let repo = name.split('@').next().unwrap_or(name);
                let last = repo.rsplit('/').next().unwrap_or(repo);
                last.split(':').next().map(str::to_string)
            }
            ImageRef::Layout { path, .. }
            | ImageRef::OciArchive { path, .. }
            | ImageRef::DockerArchive { path, .. }
            | ImageRef::Dir { path } => path.file_name().map(|n| n.to_string_lossy().into_owned()),
        };
        name.filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.to_string())
    }
}

/// The name an engine knows an image by (`app:dev`, `localhost/app:dev`,
/// `repo@sha256:…`, an image ID) goes into the API's URL path as given: the
/// engine resolves it as `docker run` would. So only what could not be part
/// of such a name, or would change the URL, is refused.
fn daemon_ref(engine: Engine, name: &str) -> Result<ImageRef, Error> {
    let prefix = engine.prefix();
    if name.is_empty() {
        return Err(Error::usage(format!(
            "{prefix}: needs an image name, e.g. {prefix}:app:dev"
        )));
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@');
    if !name.chars().all(allowed) || name.starts_with('/') || name.contains("..") {
        return Err(Error::usage(format!(
            "{prefix}:{name}: not an image name or ID"
        )));
    }
    Ok(ImageRef::Daemon {
        engine,
        name: name.to_string(),
    })
}

/// Parses the references people write (ASCII names, tags, sha256/sha512
/// digests) without oci-spec's reference regex, whose Unicode classes take
/// ~80 ms to compile: most of a warm `check`. Anything this does not accept
/// goes to oci-spec's parser, which also words the errors; a unit test holds
/// the two to the same answers.
fn parse_common(s: &str) -> Option<Reference> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            Digest::parse(d).ok()?;
            (r, Some(d))
        }
        None => (s, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].find(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !tag_ok(t)) {
        return None;
    }
    let (domain, path) = split_domain(name)?;
    if path.is_empty() || !path.split('/').all(path_component_ok) {
        return None;
    }
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let repository = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if repository.len() > 255 {
        return None;
    }
    let domain = domain.to_string();
    Some(match (tag, digest) {
        (Some(t), Some(d)) => {
            Reference::with_tag_and_digest(domain, repository, t.to_string(), d.to_string())
        }
        (None, Some(d)) => Reference::with_digest(domain, repository, d.to_string()),
        (Some(t), None) => Reference::with_tag(domain, repository, t.to_string()),
        (None, None) => Reference::with_tag(domain, repository, "latest".to_string()),
    })
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.as_bytes()[0] != b'.'
        && t.as_bytes()[0] != b'-'
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `host[:port]/path` → (`host[:port]`, `path`); a first component that
/// does not look like a host is part of a Docker Hub path.
fn split_domain(name: &str) -> Option<(&str, &str)> {
    let first = name.split('/').next()?;
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_domain {
        return Some(("docker.io", name));
    }
    let (host, port) = match first.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (first, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !host.split('.').all(label_ok)
        || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((first, &name[first.len() + 1..]))
}

/// A path component: `[a-z0-9]+` joined by '.', '_', '__' or runs of '-'.
fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let last = b[b.len() - 1];
    if !last.is_ascii_lowercase() && !last.is_ascii_digit() {
        return false;
    }
    // The last byte is alphanumeric, so every separator has a successor.
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'a'..=b'z' | b'0'..=b'9' => i += 1,
            b'.' => {
                if !b[i + 1].is_ascii_alphanumeric() {
                    return false;
                }
                i += 1;
            }
            b'_' => {
                if b[i + 1] == b'_' {
                    i += 1;
                }
                if !b[i + 1].is_ascii_alphanumeric() {
                    return false;
                }
                i += 1;
            }
            b'-' => {
                while b[i] == b'-' {
                    i += 1;
                }
                if !b[i].is_ascii_alphanumeric() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Splits `PATH[:SUFFIX]`. Paths may contain colons, so the longest prefix
/// that exists on disk wins; the suffix (a tag, or a `repo:tag` for
/// docker-archive) is what follows it.
fn split_path(rest: &str, transport: &str) -> Result<(PathBuf, Option<String>), Error> {
    if rest.is_empty() {
        return Err(Error::usage(format!(
            "{transport}: needs a path, e.g. {transport}:./image"
        )));
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
    Err(Error::usage(format!(
        "{transport}:{rest}: {guess}: no such file or directory"
    )))
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
            ImageRef::Registry(r) => {
                let whole = r.whole();
                // A registry host spelt like a transport (`oci-archive:64`)
                // keeps its `docker://`, or it would read back as a file.
                let ambiguous = TRANSPORTS.iter().any(|t| whole.starts_with(t));
                if ambiguous {
                    write!(f, "docker://{whole}")
                } else {
                    write!(f, "{whole}")
                }
            }
            ImageRef::Layout { path, tag } => with(f, "oci", path, tag),
            ImageRef::OciArchive { path, tag } => with(f, "oci-archive", path, tag),
            ImageRef::DockerArchive { path, reference } => {
                with(f, "docker-archive", path, reference)
            }
            ImageRef::Dir { path } => with(f, "dir", path, &None),
            ImageRef::Daemon { engine, name } => write!(f, "{}:{name}", engine.prefix()),
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
        // Found by the reference fuzz target: oci-spec accepted it as a
        // Docker Hub path that prints as a reference nothing parses.
        let e = ImageRef::parse("dodockeckerrv-Ddl/tmp/savcshe:en").unwrap_err();
        assert!(e.to_string().contains("lower case"), "{e}");
        // Also found by it: a registry host spelt like a transport.
        for host in ["oci-archive:64", "podman:5000", "oci:1"] {
            let r = ImageRef::parse(&format!("docker://{host}/v8")).unwrap();
            assert_eq!(r.to_string(), format!("docker://{host}/v8:latest"));
            let again = ImageRef::parse(&r.to_string()).unwrap();
            assert_eq!(again.to_string(), r.to_string());
        }
    }

    #[test]
    fn daemon_references_keep_the_engine_name() {
        let parsed = |r: &str| match ImageRef::parse(r).unwrap() {
            ImageRef::Daemon { engine, name } => (engine, name),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parsed("docker-daemon:app:latest"),
            (Engine::Docker, "app:latest".to_string())
        );
        assert_eq!(
            parsed("podman:localhost/app:dev"),
            (Engine::Podman, "localhost/app:dev".to_string())
        );
        let id = format!("docker-daemon:sha256:{}", "ab".repeat(32));
        assert_eq!(ImageRef::parse(&id).unwrap().to_string(), id);
        assert_eq!(
            ImageRef::parse("docker-daemon:ghcr.io/org/app:dev")
                .unwrap()
                .short_name(),
            "app"
        );
        for bad in [
            "docker-daemon:",
            "docker-daemon:app dev",
            "podman:../x",
            "docker-daemon:a?b",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::Usage, "{bad}: {e}");
        }
    }

    #[test]
    fn the_fast_parser_agrees_with_oci_spec() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        let cases = [
            "alpine".to_string(),
            "alpine:3.19".into(),
            "library/alpine".into(),
            "docker.io/alpine".into(),
            "index.docker.io/library/alpine:edge".into(),
            "ghcr.io/acme/app:pr-42".into(),
            "127.0.0.1:5000/team/app:v1".into(),
            "localhost/app".into(),
            "localhost:5000/app".into(),
            "registry.example.com:443/a/b/c:1.0.0-rc_1".into(),
            format!("ghcr.io/acme/app@{d}"),
            format!("ghcr.io/acme/app:v1@{d}"),
            "my-registry.io/a__b/c.d/e--f:t".into(),
            "quay.io/x/y:_under".into(),
            // Not accepted by either, or only by oci-spec: must not differ.
            "UPPER/case".into(),
            "app:".into(),
            "app:-tag".into(),
            "a/-b".into(),
            "a/b_".into(),
            "a-_b".into(),
            "a._b".into(),
            "a_-b".into(),
            "a.-b".into(),
            "a___b".into(),
            "a..b/c".into(),
            "reg.io/app@sha256:abc".into(),
            "reg.io:port/app".into(),
            "app/".into(),
        ];
        for c in &cases {
            let fast = parse_common(c);
            let slow = c.parse::<Reference>();
            match (&fast, &slow) {
                (Some(f), Ok(s)) => assert_eq!(
                    (f.registry(), f.repository(), f.tag(), f.digest()),
                    (s.registry(), s.repository(), s.tag(), s.digest()),
                    "{c}"
                ),
                // The fast path may decline what oci-spec accepts (it then
                // decides), never accept what oci-spec rejects.
                (None, _) => {}
                (Some(_), Err(e)) => {
                    panic!("{c}: fast parser accepted what oci-spec rejects ({e})")
                }
            }
        }
        assert!(parse_common("ghcr.io/acme/app:pr-42").is_some());
        assert!(parse_common("127.0.0.1:5000/team/app:v1").is_some());
    }

    #[test]
    fn references_display_with_their_transport() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.tar");
        std::fs::write(&file, b"").unwrap();
        let (d, f) = (dir.path().display(), file.display());
        for (given, shown) in [
            (
                "alpine".to_string(),
                "docker.io/library/alpine:latest".to_string(),
            ),
            (
                "docker://127.0.0.1:5000/team/app:v1".into(),
                "127.0.0.1:5000/team/app:v1".into(),
            ),
            (format!("oci:{d}"), format!("oci:{d}")),
            (format!("oci:{d}:v2"), format!("oci:{d}:v2")),
            (format!("oci-archive:{f}:v1"), format!("oci-archive:{f}:v1")),
            (format!("docker-archive:{f}"), format!("docker-archive:{f}")),
            (
                format!("docker-archive:{f}:app:v1"),
                format!("docker-archive:{f}:app:v1"),
            ),
            (format!("dir:{d}"), format!("dir:{d}")),
            // A registry host spelt like the transport keeps its prefix.
            (
                "docker://dir:5000/app:v1".into(),
                "docker://dir:5000/app:v1".into(),
            ),
        ] {
            assert_eq!(ImageRef::parse(&given).unwrap().to_string(), shown);
        }
        // skopeo's `dir:` takes no tag: the whole rest is the directory.
        let e = ImageRef::parse(&format!("dir:{d}:v1")).unwrap_err();
        assert!(e.to_string().contains("no such directory"), "{e}");
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(
            ImageRef::parse(&format!("dir:{f}")).is_err(),
            "a file is no dir:"
        );
    }

    #[test]
    fn short_names() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo");
        std::fs::create_dir(&demo).unwrap();
        let name = |r: &str| ImageRef::parse(r).unwrap().short_name();
        assert_eq!(name("ghcr.io/org/app:pr-7"), "app");
        assert_eq!(
            name(&format!(
                "127.0.0.1:5000/team/app@sha256:{}",
                "ab".repeat(32)
            )),
            "app"
        );
        assert_eq!(name(&format!("oci:{}:v2", demo.display())), "demo");
        assert_eq!(name("alpine"), "alpine");
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
        assert!(err.to_string().contains("no such file"), "{err}");
        assert_eq!(err.kind(), crate::error::Kind::Usage);
    }
}
