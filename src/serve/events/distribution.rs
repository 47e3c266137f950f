//! CNCF Distribution notifications (`docker-registry`, GitLab's
//! self-managed registry, and Azure Container Registry's webhooks).
//!
//! Distribution posts an envelope `{"events": [...]}` with the media type
//! `application/vnd.docker.distribution.events.v1+json` (2.x) or
//! `...events.v2+json` (3.x); the body is the same either way, so the
//! content type is not checked here. Azure Container Registry posts one
//! event without the envelope; it is accepted as a delivery of one.
//!
//! A malformed delivery (not JSON, not an object, neither an envelope nor
//! an event, too many events, nested too deep) is an [`Error`] of kind
//! `Usage`, which the receiver answers with 400. An event that parses but
//! carries a value sizeguard refuses (a digest it cannot verify, a
//! repository name outside the grammar, no registry host) is
//! [`Incoming::Ignored`] with reason `invalid`, not an error: Distribution
//! re-sends a delivery it gets no 2xx for, forever, and holds up every
//! later event behind it, so one bad event must not block the good ones
//! it was batched with.
//!
//! Which registry host an event names: the host of `target.url` wins,
//! `request.host` is the fallback. Distribution builds `target.url` with
//! the URL builder it uses for its own `Location` headers: from the
//! `http.host` setting when the operator configured one (the registry's
//! canonical external name), else from the push request's `Host` /
//! `X-Forwarded-Host`. So the URL is never a worse name than
//! `request.host` (the raw `Host` header of the push), and behind a proxy
//! it is the name clients pull by. With `http.relativeurls: true` the URL
//! has no host and `request.host` is all there is. `source.addr` is not
//! used: it is the registry node's own hostname and port, which clients
//! cannot reach through the load balancer. Either way the result is
//! untrusted; the receiver checks it against the configured registries.

use serde_json::Value;

use super::fields::{self, MAX_EVENTS, str_at};
use super::{Incoming, Push, Sender};
use crate::error::Error;

const WHAT: &str = "distribution notification";

/// The manifest media types that name an image or an index of images:
/// what a push of is work. Docker's schema 1 is not among them: it has no
/// config and sizeguard does not measure it.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Docker's schema 1 manifests, reported apart from blobs so that the
/// metric says why a push was not judged.
const SCHEMA1_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Parses one delivery to `/v1/events/distribution`.
pub fn parse(body: &[u8], _headers: &http::HeaderMap) -> Result<Vec<Incoming>, Error> {
    let mut object = fields::parse_object(body, WHAT)?;
    let events = match object.remove("events") {
        Some(Value::Array(events)) => events,
        // Go writes an empty list as null.
        Some(Value::Null) => Vec::new(),
        Some(_) => return Err(Error::usage(format!("{WHAT}: `events` is not an array"))),
        // Azure Container Registry: one event, no envelope.
        None if object.contains_key("action") && object.contains_key("target") => {
            vec![Value::Object(object)]
        }
        None => {
            return Err(Error::usage(format!(
                "{WHAT}: neither an `events` envelope nor a single event"
            )));
        }
    };
    if events.len() > MAX_EVENTS {
        return Err(Error::usage(format!(
            "{WHAT}: {} events in one delivery (at most {MAX_EVENTS})",
            events.len()
        )));
    }
    Ok(events.iter().map(event).collect())
}

/// One event of the envelope.
fn event(e: &Value) -> Incoming {
    let target = e.get("target").unwrap_or(&Value::Null);
    let digest_text = str_at(target, &["digest"]).unwrap_or("");
    let repository_text = str_at(target, &["repository"]).unwrap_or("");
    // Events without an id are rare (hand-written tests, old proxies);
    // the digest still de-duplicates them, so they get a derived one.
    let event_id = match str_at(e, &["id"]) {
        Some(id) => fields::event_id(id),
        None => fields::event_id(&format!("{repository_text}@{digest_text}")),
    };
    let Some(event_id) = event_id else {
        return ignored(String::new(), "invalid");
    };
    match str_at(e, &["action"]) {
        Some("push") => {}
        Some("pull") => return ignored(event_id, "pull"),
        Some("mount") => return ignored(event_id, "mount"),
        Some("delete") => return ignored(event_id, "delete"),
        _ => return ignored(event_id, "unknown_action"),
    }
    let media_type = str_at(target, &["mediaType"]).map(normalize_media_type);
    if let Some(reason) = not_work(media_type.as_deref(), str_at(target, &["url"])) {
        return ignored(event_id, reason);
    }
    let registry = str_at(target, &["url"])
        .and_then(fields::url_host_port)
        .or_else(|| str_at(e, &["request", "host"]).and_then(fields::host_port));
    let parsed = (
        registry,
        fields::repository(repository_text),
        fields::digest(digest_text),
    );
    let (Some(registry), Some(repository), Some(digest)) = parsed else {
        return ignored(event_id, "invalid");
    };
    let tag = match str_at(target, &["tag"]) {
        None => None,
        Some(t) => match fields::tag(t) {
            Some(t) => Some(t),
            None => return ignored(event_id, "invalid"),
        },
    };
    Incoming::Push(Push {
        event_id,
        sender: Sender::Distribution,
        registry,
        repository,
        tag,
        digest,
        media_type,
    })
}

/// Why a pushed target is not a manifest or index sizeguard judges, or
/// `None` when it is one. Without a media type (some proxies and GitLab
/// versions drop it) the URL's `/v2/<name>/manifests/` path decides.
fn not_work(media_type: Option<&str>, url: Option<&str>) -> Option<&'static str> {
    match media_type {
        Some(mt) if MANIFEST_MEDIA_TYPES.contains(&mt) => None,
        Some(mt) if SCHEMA1_MEDIA_TYPES.contains(&mt) => Some("unsupported_manifest"),
        Some(_) => Some("blob"),
        None => {
            let path = url.map(url_path).unwrap_or("");
            if path.starts_with("/v2/") && path.contains("/manifests/") {
                None
            } else if path.starts_with("/v2/") && path.contains("/blobs/") {
                Some("blob")
            } else {
                Some("not_a_manifest")
            }
        }
    }
}

/// The path of an absolute or relative URL, without query or fragment.
fn url_path(url: &str) -> &str {
    let after_scheme = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let end = after_scheme.find(['?', '#']).unwrap_or(after_scheme.len());
    &after_scheme[..end]
}

/// `type/subtype` lower-cased, parameters dropped.
fn normalize_media_type(mt: &str) -> String {
    mt.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn ignored(event_id: String, reason: &'static str) -> Incoming {
    Incoming::Ignored { event_id, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn parse_str(body: &str) -> Result<Vec<Incoming>, Error> {
        parse(body.as_bytes(), &http::HeaderMap::new())
    }

    fn push(i: &Incoming) -> &Push {
        match i {
            Incoming::Push(p) => p,
            other => panic!("expected a push, got {other:?}"),
        }
    }

    fn reason(i: &Incoming) -> &'static str {
        match i {
            Incoming::Ignored { reason, .. } => reason,
            other => panic!("expected an ignored event, got {other:?}"),
        }
    }

    /// The manifest-pull example of Distribution's
    /// docs/content/about/notifications.md ("Events"), verbatim.
    const DOCS_PULL: &str = r#"{
  "events": [
    {
      "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
      "timestamp": "2016-03-09T14:44:26.402973972-08:00",
      "action": "pull",
      "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
        "size": 708,
        "length": 708,
        "repository": "hello-world",
        "url": "http://192.168.100.227:5000/v2/hello-world/manifests/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
        "tag": "latest"
      },
      "request": {
        "id": "6df24a34-0959-4923-81ca-14f09767db19",
        "addr": "192.168.64.11:42961",
        "host": "192.168.100.227:5000",
        "method": "GET",
        "useragent": "curl/7.38.0"
      },
      "actor": {},
      "source": {
        "addr": "xtal.local:5000",
        "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4"
      }
    }
  ]
}"#;

    /// The full-envelope example of Distribution's
    /// docs/content/about/notifications.md ("Envelope"), verbatim: one
    /// manifest push and two layer pushes. (The docs' manifest URL carries
    /// a layer's digest; the target's `digest` is what counts.)
    const DOCS_ENVELOPE: &str = r#"{
  "events": [
    {
      "id": "asdf-asdf-asdf-asdf-0",
      "timestamp": "2006-01-02T15:04:05Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
        "length": 1,
        "repository": "library/test",
        "url": "https://example.com/v2/library/test/manifests/sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5"
      },
      "request": {
        "id": "asdfasdf",
        "addr": "client.local",
        "host": "registrycluster.local",
        "method": "PUT",
        "useragent": "test/0.1"
      },
      "actor": {
        "name": "test-actor"
      },
      "source": {
        "addr": "hostname.local:port"
      }
    },
    {
      "id": "asdf-asdf-asdf-asdf-1",
      "timestamp": "2006-01-02T15:04:05Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.docker.container.image.rootfs.diff+x-gtar",
        "digest": "sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5",
        "length": 2,
        "repository": "library/test",
        "url": "https://example.com/v2/library/test/blobs/sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5"
      },
      "request": {
        "id": "asdfasdf",
        "addr": "client.local",
        "host": "registrycluster.local",
        "method": "PUT",
        "useragent": "test/0.1"
      },
      "actor": {
        "name": "test-actor"
      },
      "source": {
        "addr": "hostname.local:port"
      }
    },
    {
      "id": "asdf-asdf-asdf-asdf-2",
      "timestamp": "2006-01-02T15:04:05Z",
      "action": "push",
      "target": {
        "mediaType": "application/vnd.docker.container.image.rootfs.diff+x-gtar",
        "digest": "sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5",
        "length": 3,
        "repository": "library/test",
        "url": "https://example.com/v2/library/test/blobs/sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5"
      },
      "request": {
        "id": "asdfasdf",
        "addr": "client.local",
        "host": "registrycluster.local",
        "method": "PUT",
        "useragent": "test/0.1"
      },
      "actor": {
        "name": "test-actor"
      },
      "source": {
        "addr": "hostname.local:port"
      }
    }
  ]
}"#;

    #[test]
    fn docs_envelope_one_manifest_push_two_blobs() {
        let out = parse_str(DOCS_ENVELOPE).unwrap();
        assert_eq!(out.len(), 3);
        let p = push(&out[0]);
        assert_eq!(p.event_id, "asdf-asdf-asdf-asdf-0");
        assert_eq!(p.sender, Sender::Distribution);
        // target.url's host wins over request.host.
        assert_eq!(p.registry, "example.com");
        assert_eq!(p.repository, "library/test");
        assert_eq!(p.tag, None);
        assert_eq!(
            p.digest.to_string(),
            "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
        );
        assert_eq!(p.media_type.as_deref(), Some(MANIFEST_MEDIA_TYPES[0]));
        assert_eq!(reason(&out[1]), "blob");
        assert_eq!(reason(&out[2]), "blob");
    }

    #[test]
    fn docs_pull_is_ignored() {
        let out = parse_str(DOCS_PULL).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(reason(&out[0]), "pull");
        assert!(
            matches!(&out[0], Incoming::Ignored { event_id, .. } if event_id == "320678d8-ca14-430f-8bb6-4ca139cd83f7")
        );
    }

    /// The docs' pull event turned into a push (what `docker-registry`
    /// sends for `skopeo copy ... docker://host:5000/hello-world:latest`),
    /// for the fields the pull example has and the push example lacks.
    fn docs_push_with(target_edits: &[(&str, Value)], request_host: Option<&str>) -> String {
        let mut v: Value = serde_json::from_str(DOCS_PULL).unwrap();
        let e = &mut v["events"][0];
        e["action"] = "push".into();
        e["request"]["method"] = "PUT".into();
        for (k, val) in target_edits {
            if val.is_null() {
                e["target"].as_object_mut().unwrap().remove(*k);
            } else {
                e["target"][*k] = val.clone();
            }
        }
        match request_host {
            Some(h) => e["request"]["host"] = h.into(),
            None => {
                e["request"].as_object_mut().unwrap().remove("host");
            }
        }
        v.to_string()
    }

    #[test]
    fn every_manifest_media_type_is_work() {
        for mt in MANIFEST_MEDIA_TYPES {
            let body = docs_push_with(&[("mediaType", mt.into())], Some("ignored:1"));
            let out = parse_str(&body).unwrap();
            let p = push(&out[0]);
            assert_eq!(p.registry, "192.168.100.227:5000");
            assert_eq!(p.repository, "hello-world");
            assert_eq!(p.tag.as_deref(), Some("latest"));
            assert_eq!(p.media_type.as_deref(), Some(mt));
        }
        let with_params = docs_push_with(
            &[(
                "mediaType",
                "Application/VND.oci.image.index.v1+json; charset=utf-8".into(),
            )],
            None,
        );
        let out = parse_str(&with_params).unwrap();
        assert_eq!(
            push(&out[0]).media_type.as_deref(),
            Some(MANIFEST_MEDIA_TYPES[3])
        );
        for (mt, why) in [
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                "unsupported_manifest",
            ),
            ("application/vnd.oci.image.layer.v1.tar+gzip", "blob"),
            ("application/vnd.oci.image.config.v1+json", "blob"),
        ] {
            let out = parse_str(&docs_push_with(&[("mediaType", mt.into())], None)).unwrap();
            assert_eq!(reason(&out[0]), why, "{mt}");
        }
    }

    #[test]
    fn missing_media_type_decided_by_url() {
        let manifest = docs_push_with(&[("mediaType", Value::Null)], None);
        let out = parse_str(&manifest).unwrap();
        assert_eq!(push(&out[0]).media_type, None);
        let blob_url = "http://192.168.100.227:5000/v2/hello-world/blobs/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";
        let blob = docs_push_with(
            &[("mediaType", Value::Null), ("url", blob_url.into())],
            None,
        );
        assert_eq!(reason(&parse_str(&blob).unwrap()[0]), "blob");
        let neither = docs_push_with(&[("mediaType", Value::Null), ("url", Value::Null)], None);
        assert_eq!(reason(&parse_str(&neither).unwrap()[0]), "not_a_manifest");
    }

    #[test]
    fn relative_url_falls_back_to_request_host() {
        let rel = "/v2/hello-world/manifests/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";
        let body = docs_push_with(&[("url", rel.into())], Some("Registry.Internal:5000"));
        let p = parse_str(&body).unwrap();
        assert_eq!(push(&p[0]).registry, "registry.internal:5000");
        let body = docs_push_with(&[("url", rel.into())], None);
        assert_eq!(reason(&parse_str(&body).unwrap()[0]), "invalid");
        let body = docs_push_with(&[("url", rel.into())], Some("evil.example@x"));
        assert_eq!(reason(&parse_str(&body).unwrap()[0]), "invalid");
    }

    #[test]
    fn invalid_fields_ignore_the_event_not_the_delivery() {
        for (k, v) in [
            ("digest", "sha256:abc"),
            ("digest", "md5:d41d8cd98f00b204e9800998ecf8427e"),
            ("repository", "../etc"),
            ("repository", "Hello-World"),
            ("tag", "bad tag"),
            ("url", "https://user:pw@host/v2/x/manifests/y"),
        ] {
            let body = docs_push_with(&[(k, v.into())], None);
            let mut v2: Value = serde_json::from_str(&body).unwrap();
            let good = v2["events"][0].clone();
            v2["events"].as_array_mut().unwrap().push(good);
            v2["events"][1]["target"] = serde_json::from_str::<Value>(&docs_push_with(&[], None))
                .unwrap()["events"][0]["target"]
                .clone();
            let out = parse(v2.to_string().as_bytes(), &http::HeaderMap::new()).unwrap();
            assert_eq!(reason(&out[0]), "invalid", "{k}={v}");
            push(&out[1]);
        }
    }

    #[test]
    fn other_actions_are_ignored() {
        for (action, why) in [
            ("mount", "mount"),
            ("delete", "delete"),
            ("quarantine", "unknown_action"),
        ] {
            let mut v: Value = serde_json::from_str(DOCS_PULL).unwrap();
            v["events"][0]["action"] = action.into();
            assert_eq!(reason(&parse_str(&v.to_string()).unwrap()[0]), why);
        }
        // The docs' delete target: digest and repository only.
        let delete = r#"{"events":[{"id":"d1","action":"delete","target":{"digest":"sha256:d89e1bee20d9cb344674e213b581f14fbd8e70274ecf9d10c514bab78a307845","repository":"library/test"}}]}"#;
        assert_eq!(reason(&parse_str(delete).unwrap()[0]), "delete");
    }

    /// An Azure Container Registry push as its webhook reference
    /// (learn.microsoft.com/azure/container-registry/
    /// container-registry-webhook-reference, "Push event") documents it:
    /// the example payload's fields and values, a single event with no
    /// envelope and no `target.url`, so the host comes from `request.host`.
    const ACR_PUSH: &str = r#"{
  "id": "cb8c3971-9adc-488b-xxxx-43cbb4974ff5",
  "timestamp": "2017-11-17T16:52:01.343145347Z",
  "action": "push",
  "target": {
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "size": 524,
    "digest": "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d",
    "length": 524,
    "repository": "hello-world",
    "tag": "v1"
  },
  "request": {
    "id": "3cbb6949-7549-4fa1-xxxx-a6d5451dffc7",
    "host": "myregistry.azurecr.io",
    "method": "PUT",
    "useragent": "docker/17.09.0-ce go/go1.8.3 git-commit/afdb6d4 kernel/4.10.0-27-generic os/Linux arch/amd64 UpstreamClient(Docker-Client/17.09.0-ce \\(linux\\))"
  }
}"#;

    #[test]
    fn azure_single_event() {
        let out = parse_str(ACR_PUSH).unwrap();
        assert_eq!(out.len(), 1);
        let p = push(&out[0]);
        assert_eq!(p.event_id, "cb8c3971-9adc-488b-xxxx-43cbb4974ff5");
        assert_eq!(p.registry, "myregistry.azurecr.io");
        assert_eq!(p.repository, "hello-world");
        assert_eq!(p.tag.as_deref(), Some("v1"));
    }

    #[test]
    fn malformed_deliveries_are_usage_errors() {
        let too_many = format!("{{\"events\":[{}]}}", vec!["{}"; MAX_EVENTS + 1].join(","));
        let deep = format!("{{\"events\":{}{}}}", "[".repeat(40), "]".repeat(40));
        for bad in [
            "",
            "not json",
            "[]",
            "{}",
            "{\"events\": {}}",
            "{\"events\": [",
            too_many.as_str(),
            deep.as_str(),
        ] {
            let e = parse_str(bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad:.40}");
        }
        // Events of the wrong shape are ignored one by one.
        let out = parse_str("{\"events\": [1, \"x\", {}, {\"action\": \"push\"}]}").unwrap();
        assert_eq!(out.len(), 4);
        for i in &out {
            assert!(matches!(i, Incoming::Ignored { .. }), "{i:?}");
        }
        let exactly_max = format!("{{\"events\":[{}]}}", vec!["{}"; MAX_EVENTS].join(","));
        assert_eq!(parse_str(&exactly_max).unwrap().len(), MAX_EVENTS);
    }
}
