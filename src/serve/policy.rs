//! Which rules judge a pushed image, and against which baseline: the
//! configuration's repository globs resolved once at start-up (so a broken
//! policy stops the service before it accepts anything), then one
//! [`CheckRequest`] per job.

use crate::app::CheckRequest;
use crate::budget::kubelet::Thresholds;
use crate::budget::rules::Policy;
use crate::budget::verdict::NodeInput;
use crate::config::{ServeRepository, Settings};
use crate::error::Error;
use crate::measure::MeasureOptions;
use crate::serve::events::Push;
use crate::source::platform::PlatformSelector;
use crate::source::reference::ImageRef;

/// Where a repository's baseline comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// Absolute and node rules only.
    None,
    /// A reference, or a template over `{registry}`, `{repository}`,
    /// `{tag}`, `{tag_without_suffix}`.
    Reference(String),
    /// A tag (or tag template) of the pushed image's own repository.
    Tag(String),
}

/// The rules of the repositories one glob matches.
#[derive(Debug, Clone)]
pub struct RepositoryRules {
    /// `None` for the rules of every repository no glob matches.
    pub pattern: Option<String>,
    pub policy: Policy,
    pub node: Option<NodeInput>,
    pub thresholds: Thresholds,
    pub baseline: Baseline,
    /// GitHub repositories (`owner/repo`, lower-cased) whose commits may get
    /// this repository's statuses, besides the configured owners'.
    pub github: Vec<String>,
}

/// Every repository's rules, and what every request shares.
#[derive(Debug, Clone)]
pub struct Policies {
    pub repositories: Vec<RepositoryRules>,
    pub default: RepositoryRules,
    pub platforms: PlatformSelector,
    pub options: MeasureOptions,
}

/// What the policies are built from.
pub struct PolicyInputs<'a> {
    /// The policy file's top level (the default policy).
    pub file: &'a Settings,
    /// The rule and node flags, which win over the file (a node they name
    /// replaces any profile).
    pub flags: &'a Settings,
    pub repositories: &'a [ServeRepository],
    pub default_baseline: Baseline,
}

impl Policies {
    pub fn build(
        inputs: PolicyInputs<'_>,
        platforms: PlatformSelector,
        options: MeasureOptions,
    ) -> Result<Policies, Error> {
        let rules =
            |layer: Settings, pattern: Option<String>, baseline: Baseline, github: Vec<String>| {
                let settings =
                    Settings::layered([inputs.flags.clone(), layer, inputs.file.clone()]);
                let what = pattern
                    .as_deref()
                    .unwrap_or("the default policy")
                    .to_string();
                let judging = settings
                    .judging(inputs.flags)
                    .map_err(|e| e.context(&what))?;
                Ok::<_, Error>(RepositoryRules {
                    policy: judging.policy,
                    node: judging.node,
                    thresholds: judging.thresholds,
                    pattern,
                    baseline,
                    github,
                })
            };
        let mut repositories = Vec::new();
        for r in inputs.repositories {
            let baseline = match (&r.baseline, &r.baseline_tag) {
                (Some(_), Some(_)) => {
                    return Err(Error::usage(format!(
                        "serve.repositories {:?}: baseline and baseline-tag exclude each other",
                        r.pattern
                    )));
                }
                (Some(b), None) => Baseline::Reference(b.clone()),
                (None, Some(t)) => Baseline::Tag(t.clone()),
                (None, None) => inputs.default_baseline.clone(),
            };
            let mut github = Vec::new();
            for name in &r.github {
                github.push(github_repository(name).ok_or_else(|| {
                    Error::usage(format!(
                        "serve.repositories {:?}: github {name:?} is not OWNER/REPO",
                        r.pattern
                    ))
                })?);
            }
            repositories.push(rules(
                r.policy.clone(),
                Some(r.pattern.clone()),
                baseline,
                github,
            )?);
        }
        let default = rules(
            Settings::default(),
            None,
            inputs.default_baseline.clone(),
            Vec::new(),
        )?;
        Ok(Policies {
            repositories,
            default,
            platforms,
            options,
        })
    }

    /// The rules of a repository: the first glob that matches, else the default.
    pub fn rules(&self, repository: &str) -> &RepositoryRules {
        self.repositories
            .iter()
            .find(|r| {
                r.pattern
                    .as_deref()
                    .is_some_and(|p| glob_match(p, repository))
            })
            .unwrap_or(&self.default)
    }

    /// The check a pushed image gets.
    pub fn request(&self, push: &Push) -> CheckRequest {
        let rules = self.rules(&push.repository);
        let baseline = baseline_reference(&rules.baseline, push);
        let mut policy = rules.policy.clone();
        // Without a baseline only the absolute and node rules judge, by
        // design of the baseline rule (the baseline tag itself, a rule of
        // none): its growth rules are not "not evaluated", they do not
        // apply, and every such push would otherwise warn.
        if baseline.is_none() {
            policy.fail_growth.clear();
            policy.warn_growth.clear();
        }
        CheckRequest {
            candidate: format!("{}/{}@{}", push.registry, push.repository, push.digest),
            baseline,
            // The first push of a repository has nothing to compare with.
            baseline_optional: true,
            platforms: self.platforms.clone(),
            policy,
            node: rules.node.clone(),
            thresholds: rules.thresholds,
            options: self.options.clone(),
            hints: Default::default(),
            paths: Default::default(),
        }
    }
}

/// `owner/repo` as GitHub spells a repository, lower-cased (GitHub's names
/// are case-insensitive); `None` for anything else.
pub fn github_repository(name: &str) -> Option<String> {
    let (owner, repo) = name.split_once('/')?;
    (github_owner(owner).is_some()
        && (1..=100).contains(&repo.len())
        && repo != "."
        && repo != ".."
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    .then(|| name.to_ascii_lowercase())
}

/// A GitHub user or organisation name, lower-cased; `None` for anything else.
pub fn github_owner(name: &str) -> Option<String> {
    ((1..=39).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| name.to_ascii_lowercase())
}

/// The baseline reference of a push, or none: when the rule has none, when
/// its template needs a tag the push lacks, or when it names the pushed
/// tag itself (that tag now is the candidate: comparing it with itself
/// would hide any growth).
pub fn baseline_reference(rule: &Baseline, push: &Push) -> Option<String> {
    match rule {
        Baseline::None => None,
        Baseline::Tag(template) => {
            let tag = expand(template, push)?;
            if !is_tag(&tag) || push.tag.as_deref() == Some(tag.as_str()) {
                return None;
            }
            Some(format!("{}/{}:{tag}", push.registry, push.repository))
        }
        Baseline::Reference(template) => {
            let reference = expand(template, push)?;
            let in_own_registry =
                template.starts_with("{repository}") && !template.contains("{registry}");
            let reference = if in_own_registry {
                format!("{}/{reference}", push.registry)
            } else {
                reference
            };
            let own = push
                .tag
                .as_ref()
                .map(|t| format!("{}/{}:{t}", push.registry, push.repository));
            (own.as_deref() != Some(reference.as_str())).then_some(reference)
        }
    }
}

/// Fills a template's placeholders; `None` when it needs a tag the push
/// does not have.
fn expand(template: &str, push: &Push) -> Option<String> {
    let needs_tag = template.contains("{tag}") || template.contains("{tag_without_suffix}");
    let tag = push.tag.as_deref().unwrap_or("");
    if needs_tag && tag.is_empty() {
        return None;
    }
    let without_suffix = tag.rsplit_once('-').map_or(tag, |(base, _)| base);
    Some(
        template
            .replace("{registry}", &push.registry)
            .replace("{repository}", &push.repository)
            .replace("{tag_without_suffix}", without_suffix)
            .replace("{tag}", tag),
    )
}

/// Refuses a registry host that a reference would not be read back as:
/// `registry` (no dot, no port, not `localhost`) in `registry/team/app`
/// is a Docker Hub path, so events from such a host would be measured
/// from Docker Hub, with that host's credentials.
pub fn check_registry_host(host: &str) -> Result<(), Error> {
    let probe = format!("{host}/sizeguard/probe:latest");
    let read_back = match ImageRef::parse(&probe) {
        Ok(ImageRef::Registry(r)) => r.registry().to_ascii_lowercase(),
        _ => String::new(),
    };
    if host.is_empty() || read_back != host.to_ascii_lowercase() {
        let hint = if !host.contains(['.', ':']) {
            format!(
                " (a name without a dot or port is a Docker Hub path; give {host}:PORT or its full name)"
            )
        } else {
            String::new()
        };
        let read = match read_back.as_str() {
            "" => "is not a valid reference".to_string(),
            other => format!("is read as registry {other:?}"),
        };
        return Err(Error::usage(format!(
            "registry {host:?} is not a registry host: a reference beginning with it {read}{hint}"
        )));
    }
    Ok(())
}

/// A tag as the distribution spec allows it.
pub fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A repository name as the distribution spec allows it: lower-case
/// path components of letters and digits joined by `.`, `_`, `__` or
/// `-`, separated by `/`.
pub fn is_repository(s: &str) -> bool {
    s.len() <= 255
        && !s.is_empty()
        && s.split('/').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
                && !part.contains("..")
        })
}

/// Glob over a repository path: `*` matches within one segment, `**` across
/// segments, `?` one character other than `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) if rest.first() == Some(&b'*') => {
                let rest = &rest[1..];
                // `**/` also matches no segment at all.
                if let Some(after) = rest.strip_prefix(b"/")
                    && go(after, n)
                {
                    return true;
                }
                (0..=n.len()).any(|i| go(rest, &n[i..]))
            }
            Some((b'*', rest)) => {
                let segment = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=segment).any(|i| go(rest, &n[i..]))
            }
            Some((b'?', rest)) => n.first().is_some_and(|&c| c != b'/') && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::serve::events::Sender;

    fn push(tag: Option<&str>) -> Push {
        Push {
            event_id: "e".into(),
            sender: Sender::Distribution,
            registry: "reg.example:5000".into(),
            repository: "team/app".into(),
            tag: tag.map(str::to_string),
            digest: Digest::sha256(b"x"),
            media_type: None,
        }
    }

    #[test]
    fn registry_hosts_must_read_back_as_themselves() {
        for ok in [
            "registry.example.com",
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "registry:5000",
            "ghcr.io",
        ] {
            check_registry_host(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // oci-client's grammar has no bracketed IPv6 hosts: such a registry
        // could never be read from, so it is refused at start too.
        for bad in [
            "registry",
            "team",
            "a/b",
            "registry.example.com/path",
            "",
            "[::1]:5000",
        ] {
            let e = check_registry_host(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::Usage, "{bad}");
        }
        let e = check_registry_host("registry").unwrap_err().one_line();
        assert!(e.contains("read as registry \"docker.io\""), "{e}");
        assert!(e.contains("Docker Hub"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("team/*", "team/app"));
        assert!(!glob_match("team/*", "team/app/sub"));
        assert!(glob_match("team/**", "team/app/sub"));
        assert!(glob_match("**/app", "app"));
        assert!(glob_match("**/app", "a/b/app"));
        assert!(glob_match("**", "anything/at/all"));
        assert!(glob_match("te?m/a*p", "team/ap"));
        assert!(!glob_match("team/a", "team/ab"));
    }

    #[test]
    fn baselines() {
        let tag = |t: &str, push: &Push| baseline_reference(&Baseline::Tag(t.into()), push);
        assert_eq!(
            tag("main", &push(Some("v2"))).as_deref(),
            Some("reg.example:5000/team/app:main")
        );
        // The pushed tag itself is the candidate, not its baseline.
        assert_eq!(tag("main", &push(Some("main"))), None);
        assert_eq!(
            tag("{tag}-base", &push(Some("v2"))).as_deref(),
            Some("reg.example:5000/team/app:v2-base")
        );
        assert_eq!(tag("{tag}-base", &push(None)), None);
        let reference =
            |t: &str, push: &Push| baseline_reference(&Baseline::Reference(t.into()), push);
        assert_eq!(
            reference("{repository}:{tag_without_suffix}", &push(Some("1.4-rc1"))).as_deref(),
            Some("reg.example:5000/team/app:1.4")
        );
        assert_eq!(
            reference("ghcr.io/org/app:stable", &push(None)).as_deref(),
            Some("ghcr.io/org/app:stable")
        );
        assert_eq!(
            reference("{repository}:{tag_without_suffix}", &push(Some("v2"))),
            None
        );
        assert_eq!(baseline_reference(&Baseline::None, &push(Some("v2"))), None);
    }

    #[test]
    fn repositories_get_the_first_matching_policy_over_the_defaults() {
        let file: Settings = toml::from_str(
            r#"
max-growth = "10%"
[serve]
baseline-tag = "main"
[[serve.repositories]]
match = "ml/**"
baseline = "{repository}:{tag_without_suffix}"
github = ["Org/Legacy"]
[serve.repositories.policy]
max-growth = "50%"
max-layers = 40
[[serve.repositories]]
match = "ml/legacy"
baseline-tag = "old"
"#,
        )
        .unwrap();
        let serve = file.serve.clone().unwrap();
        let policies = Policies::build(
            PolicyInputs {
                file: &file,
                flags: &Settings::default(),
                repositories: &serve.repositories,
                default_baseline: Baseline::Tag("main".into()),
            },
            PlatformSelector::parse(None).unwrap(),
            MeasureOptions::default(),
        )
        .unwrap();
        let ml = policies.rules("ml/vision/train");
        assert_eq!(ml.pattern.as_deref(), Some("ml/**"));
        assert_eq!(ml.github, ["org/legacy"]);
        assert!(policies.rules("team/app").github.is_empty());
        assert_eq!(ml.policy.layers.fail, Some(40));
        // First match wins: ml/legacy is under ml/**.
        assert_eq!(
            policies.rules("ml/legacy").pattern.as_deref(),
            Some("ml/**")
        );
        let other = policies.rules("team/app");
        assert!(other.pattern.is_none());
        assert_eq!(other.policy.layers.fail, None);
        assert_eq!(other.policy.fail_growth.len(), 1);

        let mut p = push(Some("2.0-rc1"));
        p.repository = "ml/vision".into();
        let req = policies.request(&p);
        assert_eq!(
            req.candidate,
            format!("reg.example:5000/ml/vision@{}", p.digest)
        );
        assert_eq!(
            req.baseline.as_deref(),
            Some("reg.example:5000/ml/vision:2.0")
        );
        assert!(req.baseline_optional);
        let req = policies.request(&push(Some("v2")));
        assert_eq!(
            req.baseline.as_deref(),
            Some("reg.example:5000/team/app:main")
        );
        assert_eq!(req.policy.fail_growth.len(), 1);
        // A push of the baseline tag itself has no baseline: its growth
        // rules do not apply (rather than warn that they were not judged).
        let req = policies.request(&push(Some("main")));
        assert_eq!(req.baseline, None);
        assert!(req.policy.fail_growth.is_empty() && req.policy.warn_growth.is_empty());
        assert_eq!(req.policy.layers.fail, None);
    }

    #[test]
    fn names() {
        assert!(is_repository("team/app"));
        assert!(is_repository("a.b/c_d/e-f"));
        assert!(!is_repository("Team/app"));
        assert!(!is_repository("team//app"));
        assert!(!is_repository("../app"));
        assert!(!is_repository("app@sha256"));
        assert!(is_tag("v1.2-rc_1"));
        assert!(!is_tag("-v1"));
        assert!(!is_tag("v1:2"));
    }

    #[test]
    fn github_names() {
        assert_eq!(
            github_repository("Org/App.js").as_deref(),
            Some("org/app.js")
        );
        assert_eq!(github_owner("octo-org").as_deref(), Some("octo-org"));
        for bad in [
            "org",
            "org/",
            "/app",
            "org/app/x",
            "org/..",
            "o rg/app",
            "org/a?p",
        ] {
            assert_eq!(github_repository(bad), None, "{bad}");
        }
        assert_eq!(github_owner(&"a".repeat(40)), None);
        assert_eq!(github_owner("a/b"), None);
    }
}
