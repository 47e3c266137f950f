//! GitHub `package` webhooks (and the legacy `registry_package` ones) for
//! container images on ghcr.io.
//!
//! The event name comes from `X-GitHub-Event`; `ping` (sent when the hook
//! is created) and every event other than the two package events are
//! acknowledged and ignored. A push's event id is the SHA-256 of the body
//! (`sha256:HEX`), not the `X-GitHub-Delivery` GUID: the signature covers
//! the body only, so a captured delivery replayed under fresh GUIDs would
//! otherwise be a new event each time (a row each, for ever); a GitHub
//! redelivery repeats the body and is recognised all the same. Ignored
//! events keep the GUID, for the log. A missing delivery header, or
//! a body that is not a JSON object with the package, is an error of kind
//! `Usage` (400).
//!
//! The image: registry `ghcr.io`, repository from
//! `package_version.package_url` (`ghcr.io/owner/name:tag`, what
//! `docker pull` takes) or else `owner.login/name`, lower-cased because
//! ghcr.io refuses upper case in references while GitHub keeps the
//! owner's spelling in the payload. The digest is
//! `container_metadata.tag.digest`, else `package_version.version` /
//! `name` (GitHub names container versions by their manifest digest).

use serde_json::Value;

use super::fields::{self, str_at};
use super::{Incoming, Push, Sender};
use crate::error::Error;

const WHAT: &str = "github webhook";

/// The registry GitHub's container packages live in.
pub const GHCR: &str = "ghcr.io";

/// Parses one delivery to `/v1/events/github` (signature already checked).
pub fn parse(body: &[u8], headers: &http::HeaderMap) -> Result<Vec<Incoming>, Error> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = header("x-github-delivery")
        .and_then(fields::event_id)
        .ok_or_else(|| Error::usage(format!("{WHAT}: no valid X-GitHub-Delivery header")))?;
    let key = match header("x-github-event") {
        Some("package") => "package",
        Some("registry_package") => "registry_package",
        Some("ping") => return Ok(vec![ignored(delivery, "ping")]),
        Some(_) => return Ok(vec![ignored(delivery, "not_a_package_event")]),
        None => return Err(Error::usage(format!("{WHAT}: no X-GitHub-Event header"))),
    };
    let object = Value::Object(fields::parse_object(body, WHAT)?);
    let package = object
        .get(key)
        .filter(|p| p.is_object())
        .ok_or_else(|| Error::usage(format!("{WHAT}: {key} event without `{key}`")))?;
    match str_at(&object, &["action"]) {
        Some("published" | "updated") => {}
        _ => return Ok(vec![ignored(delivery, "not_a_push")]),
    }
    if !is_container(package) {
        return Ok(vec![ignored(delivery, "not_a_container")]);
    }
    // What the signature covers identifies the delivery (see above).
    let signed = crate::digest::Digest::sha256(body).to_string();
    Ok(vec![push(package, signed, &delivery)])
}

/// Whether the package is a container image. The webhook spells the type
/// `CONTAINER`, the REST API `container`; older payloads only say so in
/// `registry.type`.
fn is_container(package: &Value) -> bool {
    let says =
        |path: &[&str]| str_at(package, path).is_some_and(|t| t.eq_ignore_ascii_case("container"));
    says(&["package_type"]) || says(&["ecosystem"]) || says(&["registry", "type"])
}

fn push(package: &Value, event_id: String, delivery: &str) -> Incoming {
    let delivery = delivery.to_string();
    let version = package.get("package_version").unwrap_or(&Value::Null);
    let digest = [
        &["container_metadata", "tag", "digest"][..],
        &["version"][..],
        &["name"][..],
    ]
    .iter()
    .find_map(|path| str_at(version, path).and_then(fields::digest));
    let repository = repository(package, version).and_then(|r| fields::repository(&r));
    let tag = match str_at(version, &["container_metadata", "tag", "name"]) {
        None => None,
        Some(t) => match fields::tag(t) {
            Some(t) => Some(t),
            None => return ignored(delivery, "invalid"),
        },
    };
    let (Some(digest), Some(repository)) = (digest, repository) else {
        return ignored(delivery, "invalid");
    };
    Incoming::Push(Push {
        event_id,
        sender: Sender::Github,
        registry: GHCR.to_string(),
        repository,
        tag,
        digest,
        media_type: str_at(version, &["container_metadata", "manifest", "media_type"])
            .filter(|mt| mt.len() <= 255 && mt.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_ascii_lowercase),
    })
}

/// The repository path, lower-cased, before validation.
fn repository(package: &Value, version: &Value) -> Option<String> {
    let from_url = str_at(version, &["package_url"])
        .and_then(|u| u.strip_prefix("ghcr.io/"))
        .map(|path| {
            let path = path.split('@').next().unwrap_or(path);
            // A tag follows the last `:`; repository paths have none.
            path.split(':').next().unwrap_or(path)
        })
        .filter(|p| !p.is_empty());
    let name = match from_url {
        Some(p) => p.to_string(),
        None => format!(
            "{}/{}",
            str_at(package, &["owner", "login"])?,
            str_at(package, &["name"])?
        ),
    };
    Some(name.to_ascii_lowercase())
}

fn ignored(event_id: String, reason: &'static str) -> Incoming {
    Incoming::Ignored { event_id, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn headers(event: &str, delivery: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("X-GitHub-Event", event.parse().unwrap());
        h.insert("X-GitHub-Delivery", delivery.parse().unwrap());
        h
    }

    const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

    /// The container part of octokit/webhooks'
    /// payload-examples/api.github.com/package/published.docker.payload.json
    /// (the community-maintained examples GitHub's docs are generated
    /// from), verbatim except that the long `body`, `owner` URL fields,
    /// `organization`, `repository` and `sender` objects are cut and the
    /// layer list shortened. Its `tag.digest` is truncated to 40 hex
    /// digits in the original, which exercises the fallback to
    /// `package_version.version`.
    const OCTOKIT_PACKAGE_PUBLISHED: &str = r#"{
  "action": "published",
  "package": {
    "id": 10696,
    "name": "hello-world-npm",
    "namespace": "Codertocat/hello-world",
    "description": null,
    "ecosystem": "docker",
    "package_type": "npm",
    "html_url": "https://github.com/Codertocat/hello-world/packages/10696",
    "created_at": "2019-05-09T23:28:29Z",
    "updated_at": "2019-05-09T23:28:29Z",
    "owner": {
      "login": "Codertocat",
      "id": 21031067,
      "type": "User",
      "site_admin": false
    },
    "package_version": {
      "id": 57755790,
      "version": "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498",
      "name": "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498",
      "description": "Hello-World in a docker container",
      "summary": "Hello-World in a docker container",
      "manifest": "",
      "html_url": "https://github.com/Codertocat/container/hello-world/10696",
      "target_commitish": "master",
      "target_oid": "6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
      "created_at": "0001-01-01T00:00:00Z",
      "updated_at": "0001-01-01T00:00:00Z",
      "metadata": [],
      "container_metadata": {
        "tag": {
          "name": "",
          "digest": "sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"
        },
        "labels": {
          "description": "Hello-World in a docker container",
          "source": "https://github.com/Codertocat/hello-world",
          "revision": "",
          "image_url": "https://github.com/Codertocat/hello-world",
          "licenses": "",
          "all_labels": {
            "org.opencontainers.image.url": "https://github.com/Codertocat/hello-world",
            "org.opencontainers.image.revision": "6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
            "org.opencontainers.image.source": "https://github.com/Codertocat/hello-world"
          }
        },
        "manifest": {
          "digest": "sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
          "media_type": "application/vnd.docker.distribution.manifest.v2+json",
          "uri": "repositories/Codertocat/hello-world/manifests/sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
          "size": 1782,
          "config": {
            "digest": "sha256:37e1478a8ffb0513113dbbb172bfafdf56ba24014a671921a2593d83da7a0608",
            "media_type": "application/vnd.docker.container.image.v1+json",
            "size": 7205
          },
          "layers": [
            {
              "digest": "sha256:fd18d0201d0ce0c5e103902d894f5d601fc5dde76688aa7dae786840141d23e4",
              "media_type": "application/vnd.docker.image.rootfs.diff.tar.gzip",
              "size": 26576195
            }
          ]
        }
      },
      "package_files": [],
      "installation_command": "docker pull ghcr.io/Codertocat/hello-world:",
      "package_url": "ghcr.io/Codertocat/hello-world:"
    },
    "registry": {
      "about_url": "https://docs.github.com/packages/learn-github-packages/introduction-to-github-packages",
      "name": "GitHub CONTAINER registry",
      "type": "CONTAINER",
      "url": "https://CONTAINER.pkg.github.com/Codertocat",
      "vendor": "GitHub Inc"
    }
  }
}"#;

    fn expect_push(out: &[Incoming]) -> &Push {
        match out {
            [Incoming::Push(p)] => p,
            other => panic!("expected one push, got {other:?}"),
        }
    }

    #[test]
    fn octokit_package_published() {
        let out = parse(
            OCTOKIT_PACKAGE_PUBLISHED.as_bytes(),
            &headers("package", DELIVERY),
        )
        .unwrap();
        let p = expect_push(&out);
        assert_eq!(
            p.event_id,
            crate::digest::Digest::sha256(OCTOKIT_PACKAGE_PUBLISHED.as_bytes()).to_string()
        );
        // A replay under another delivery id is the same event.
        let replay = parse(
            OCTOKIT_PACKAGE_PUBLISHED.as_bytes(),
            &headers("package", "00000000-0000-0000-0000-000000000000"),
        )
        .unwrap();
        assert_eq!(expect_push(&replay).event_id, p.event_id);
        assert_eq!(p.sender, Sender::Github);
        assert_eq!(p.registry, "ghcr.io");
        assert_eq!(p.repository, "codertocat/hello-world");
        assert_eq!(p.tag, None);
        assert_eq!(
            p.digest.to_string(),
            "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"
        );
        assert_eq!(
            p.media_type.as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
    }

    /// The same payload under the legacy event name and key, as
    /// octokit/webhooks' registry_package/published.docker.payload.json
    /// has it.
    #[test]
    fn legacy_registry_package() {
        let body = OCTOKIT_PACKAGE_PUBLISHED.replacen("\"package\":", "\"registry_package\":", 1);
        let out = parse(body.as_bytes(), &headers("registry_package", DELIVERY)).unwrap();
        assert_eq!(expect_push(&out).repository, "codertocat/hello-world");
        // The key must match the event header.
        let e = parse(body.as_bytes(), &headers("package", DELIVERY)).unwrap_err();
        assert_eq!(e.kind(), Kind::Usage);
    }

    /// What ghcr.io sends for `docker push ghcr.io/Octo-Org/App:v1.2`:
    /// type `CONTAINER`, a full tag digest, a tagged package_url.
    #[test]
    fn tagged_container_push_prefers_the_tag_digest() {
        let mut v: Value = serde_json::from_str(OCTOKIT_PACKAGE_PUBLISHED).unwrap();
        let pkg = &mut v["package"];
        pkg["package_type"] = "CONTAINER".into();
        let digest = format!("sha256:{}", "ab".repeat(32));
        let version = &mut pkg["package_version"];
        version["container_metadata"]["tag"] =
            serde_json::json!({"name": "v1.2", "digest": digest});
        version["package_url"] = "ghcr.io/Octo-Org/App:v1.2".into();
        let out = parse(v.to_string().as_bytes(), &headers("package", DELIVERY)).unwrap();
        let p = expect_push(&out);
        assert_eq!(p.repository, "octo-org/app");
        assert_eq!(p.tag.as_deref(), Some("v1.2"));
        assert_eq!(p.digest.to_string(), digest);
        // Without package_url: owner login and package name.
        v["package"]["package_version"]
            .as_object_mut()
            .unwrap()
            .remove("package_url");
        let out = parse(v.to_string().as_bytes(), &headers("package", DELIVERY)).unwrap();
        assert_eq!(expect_push(&out).repository, "codertocat/hello-world-npm");
    }

    #[test]
    fn ping_other_events_and_non_containers_are_ignored() {
        // GitHub's ping body is not a package; it must not be parsed.
        let out = parse(
            b"{\"zen\": \"Keep it logically awesome.\"}",
            &headers("ping", DELIVERY),
        )
        .unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored { reason: "ping", .. }]
        ));
        let out = parse(b"{}", &headers("push", DELIVERY)).unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored {
                reason: "not_a_package_event",
                ..
            }]
        ));
        let mut v: Value = serde_json::from_str(OCTOKIT_PACKAGE_PUBLISHED).unwrap();
        v["package"]["registry"]["type"] = "NPM".into();
        let out = parse(v.to_string().as_bytes(), &headers("package", DELIVERY)).unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored {
                reason: "not_a_container",
                ..
            }]
        ));
        let mut v: Value = serde_json::from_str(OCTOKIT_PACKAGE_PUBLISHED).unwrap();
        v["action"] = "deleted".into();
        let out = parse(v.to_string().as_bytes(), &headers("package", DELIVERY)).unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored {
                reason: "not_a_push",
                ..
            }]
        ));
    }

    #[test]
    fn invalid_and_malformed() {
        let mut v: Value = serde_json::from_str(OCTOKIT_PACKAGE_PUBLISHED).unwrap();
        let version = &mut v["package"]["package_version"];
        version["version"] = "1.0.0".into();
        version["name"] = "1.0.0".into();
        let out = parse(v.to_string().as_bytes(), &headers("package", DELIVERY)).unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored {
                reason: "invalid",
                ..
            }]
        ));
        let mut v: Value = serde_json::from_str(OCTOKIT_PACKAGE_PUBLISHED).unwrap();
        v["package"]["package_version"]["package_url"] = "ghcr.io/a/../b:1".into();
        let out = parse(v.to_string().as_bytes(), &headers("package", DELIVERY)).unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored {
                reason: "invalid",
                ..
            }]
        ));

        let body = OCTOKIT_PACKAGE_PUBLISHED.as_bytes();
        let mut no_delivery = headers("package", DELIVERY);
        no_delivery.remove("X-GitHub-Delivery");
        let mut no_event = headers("package", DELIVERY);
        no_event.remove("X-GitHub-Event");
        for h in [no_delivery, no_event, headers("package", "has space")] {
            assert_eq!(parse(body, &h).unwrap_err().kind(), Kind::Usage);
        }
        for bad in [&b"not json"[..], b"[]", b"{}", b"{\"package\": 1}"] {
            let e = parse(bad, &headers("package", DELIVERY)).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage);
        }
    }
}
