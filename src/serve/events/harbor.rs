//! Harbor webhooks, in both payload formats a webhook policy offers.
//!
//! - "Default": `{"type": "PUSH_ARTIFACT", "occur_at": ..., "event_data":
//!   {"resources": [...], "repository": {...}}}`.
//! - "CloudEvents" (Harbor 2.10+): a structured-mode CloudEvent,
//!   `Content-Type: application/cloudevents+json`, `{"specversion": "1.0",
//!   "id": UUID, "type": "harbor.artifact.pushed", "time": ..., "data":
//!   {...}}` where `data` is the Default format's `event_data` (Harbor's
//!   `src/pkg/notifier/formats/cloudevents.go`, `CloudEvents.Format`). The
//!   binary mode (`ce-type`, `ce-id` headers, `data` as the body) is read
//!   too, for relays that convert to it.
//!
//! Only an artifact push (`PUSH_ARTIFACT`, `harbor.artifact.pushed`) is
//! work: one [`Push`] per entry of `resources[]` (a push of several tags of
//! one digest lists each). Every other event type (pulls, deletes, scans,
//! quota, replication, Harbor's "Test Endpoint" delivery) is acknowledged
//! and ignored.
//!
//! The Default format has no event id. A retried delivery repeats the
//! payload, so the id is built from what a retry keeps: the event time,
//! the repository, the digest and the tag. A CloudEvent's `id` is drawn
//! once, when Harbor formats the payload, and its webhook job re-sends
//! that payload unchanged, so it takes the time's place. The registry host
//! is the authority of `resource_url` (`harbor.example.com/project/app:tag`),
//! which Harbor builds from its configured external URL; the receiver
//! checks it against the configured registries like any other.
//!
//! Malformed deliveries are errors of kind `Usage` (400); a resource with
//! a value sizeguard refuses is ignored as `invalid`, the others in the
//! same delivery still count.

use serde_json::Value;

use super::fields::{self, MAX_EVENTS, str_at};
use super::{Incoming, Push, Sender};
use crate::error::Error;

const WHAT: &str = "harbor webhook";

/// The CloudEvents type of an artifact push (Harbor's `eventTypeMapping`).
const CE_PUSHED: &str = "harbor.artifact.pushed";

/// Parses one delivery to `/v1/events/harbor`, in either payload format.
pub fn parse(body: &[u8], headers: &http::HeaderMap) -> Result<Vec<Incoming>, Error> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(kind) = header("ce-type") {
        if header("ce-specversion").is_none() {
            return Err(Error::usage(format!(
                "{WHAT}: a binary-mode CloudEvent without `ce-specversion`"
            )));
        }
        let id = header("ce-id")
            .ok_or_else(|| Error::usage(format!("{WHAT}: a CloudEvent without `ce-id`")))?;
        if kind != CE_PUSHED {
            return Ok(vec![not_a_push(kind, id)]);
        }
        let data = Value::Object(fields::parse_object(body, WHAT)?);
        return pushes(&data, id);
    }
    let object = Value::Object(fields::parse_object(body, WHAT)?);
    if object.get("specversion").is_some() {
        return cloud_event(&object);
    }
    let kind =
        str_at(&object, &["type"]).ok_or_else(|| Error::usage(format!("{WHAT}: no `type`")))?;
    let occur_at = match object.get("occur_at") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    if kind != "PUSH_ARTIFACT" {
        return Ok(vec![not_a_push(kind, &occur_at)]);
    }
    let data = object
        .get("event_data")
        .ok_or_else(|| Error::usage(format!("{WHAT}: PUSH_ARTIFACT without `event_data`")))?;
    pushes(data, &occur_at)
}

/// A structured-mode CloudEvent.
fn cloud_event(object: &Value) -> Result<Vec<Incoming>, Error> {
    let field = |name: &str| {
        str_at(object, &[name])
            .ok_or_else(|| Error::usage(format!("{WHAT}: a CloudEvent without `{name}`")))
    };
    let (kind, id) = (field("type")?, field("id")?);
    if kind != CE_PUSHED {
        return Ok(vec![not_a_push(kind, id)]);
    }
    let data = object
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| Error::usage(format!("{WHAT}: {CE_PUSHED} without a `data` object")))?;
    pushes(data, id)
}

fn not_a_push(kind: &str, id: &str) -> Incoming {
    Incoming::Ignored {
        event_id: fields::event_id(&format!("{kind}/{id}")).unwrap_or_default(),
        reason: "not_a_push",
    }
}

/// The pushes of an artifact push's data (`event_data` in the Default
/// format, `data` in a CloudEvent); `id` is what tells this delivery from
/// another (the Default format's time, a CloudEvent's id).
fn pushes(data: &Value, id: &str) -> Result<Vec<Incoming>, Error> {
    let resources = match data.get("resources") {
        Some(Value::Array(r)) => r,
        _ => {
            return Err(Error::usage(format!(
                "{WHAT}: the artifact push's `resources` is not an array"
            )));
        }
    };
    if resources.len() > MAX_EVENTS {
        return Err(Error::usage(format!(
            "{WHAT}: {} resources in one delivery (at most {MAX_EVENTS})",
            resources.len()
        )));
    }
    let full_name = str_at(data, &["repository", "repo_full_name"])
        .map(str::to_string)
        .or_else(|| {
            let namespace = str_at(data, &["repository", "namespace"])?;
            let name = str_at(data, &["repository", "name"])?;
            Some(format!("{namespace}/{name}"))
        });
    Ok(resources
        .iter()
        .map(|r| resource(r, full_name.as_deref(), id))
        .collect())
}

/// One pushed artifact.
fn resource(r: &Value, full_name: Option<&str>, occur_at: &str) -> Incoming {
    let digest_text = str_at(r, &["digest"]).unwrap_or("");
    let tag_text = str_at(r, &["tag"]).unwrap_or("");
    let full_name_text = full_name.unwrap_or("");
    let Some(event_id) = fields::event_id(&format!(
        "{occur_at}/{full_name_text}@{digest_text}/{tag_text}"
    )) else {
        return invalid(String::new());
    };
    let registry = str_at(r, &["resource_url"]).and_then(|url| {
        let authority = url.split('/').next().unwrap_or("");
        fields::host_port(authority)
    });
    let tag = match tag_text {
        "" => None,
        t => match fields::tag(t) {
            Some(t) => Some(t),
            None => return invalid(event_id),
        },
    };
    let parsed = (
        registry,
        fields::repository(full_name_text),
        fields::digest(digest_text),
    );
    let (Some(registry), Some(repository), Some(digest)) = parsed else {
        return invalid(event_id);
    };
    Incoming::Push(Push {
        event_id,
        sender: Sender::Harbor,
        registry,
        repository,
        tag,
        digest,
        media_type: None,
    })
}

fn invalid(event_id: String) -> Incoming {
    Incoming::Ignored {
        event_id,
        reason: "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn parse_str(body: &str) -> Result<Vec<Incoming>, Error> {
        parse(body.as_bytes(), &http::HeaderMap::new())
    }

    /// The `PUSH_ARTIFACT` example of Harbor's documentation
    /// (goharbor/website, docs/working-with-projects/project-configuration/
    /// configure-webhooks.md, "Payload Format"), verbatim.
    const DOCS_PUSH: &str = r#"{
	"type": "PUSH_ARTIFACT",
	"occur_at": 1586922308,
	"operator": "admin",
	"event_data": {
		"resources": [{
			"digest": "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8",
			"tag": "latest",
			"resource_url": "hub.harbor.com/test-webhook/debian:latest"
		}],
		"repository": {
			"date_created": 1586922308,
			"name": "debian",
			"namespace": "test-webhook",
			"repo_full_name": "test-webhook/debian",
			"repo_type": "private"
		}
	}
}"#;

    #[test]
    fn docs_push_artifact() {
        let out = parse_str(DOCS_PUSH).unwrap();
        assert_eq!(out.len(), 1);
        let Incoming::Push(p) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(p.sender, Sender::Harbor);
        assert_eq!(p.registry, "hub.harbor.com");
        assert_eq!(p.repository, "test-webhook/debian");
        assert_eq!(p.tag.as_deref(), Some("latest"));
        assert_eq!(
            p.digest.to_string(),
            "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"
        );
        assert_eq!(
            p.event_id,
            "1586922308/test-webhook/debian@sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8/latest"
        );
        // A retry repeats the payload and so the id.
        assert_eq!(parse_str(DOCS_PUSH).unwrap(), out);
    }

    /// A CloudEvents delivery as Harbor builds it: the example in the doc
    /// comment of `CloudEvents.Format` (goharbor/harbor,
    /// src/pkg/notifier/formats/cloudevents.go; the `data` field as its
    /// test, cloudevents_test.go, checks it), with the type an artifact
    /// push gets from `eventTypeMapping` and a pushed tag.
    const CE_PUSH: &str = r#"{
   "specversion":"1.0",
   "requestid": "2eedfab8-61d3-4f3c-8ec3-8f82d1ec4c84",
   "id":"4b2f89a6-548d-4c12-9993-a1f5790b97d2",
   "source":"/projects/1/webhook/policies/3",
   "type":"harbor.artifact.pushed",
   "datacontenttype":"application/json",
   "time":"2023-03-06T06:08:43Z",
   "data":{
      "resources":[
         {
            "digest":"sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
            "tag":"1.36",
            "resource_url":"harbor.dev/library/busybox:1.36"
         }
      ],
      "repository":{
         "date_created":1677053165,
         "name":"busybox",
         "namespace":"library",
         "repo_full_name":"library/busybox",
         "repo_type":"public"
      }
   },
   "operator":"robot$library+scanner-Trivy-51fe4548-bbe5-11ed-9217-0242ac14000d"
}"#;

    fn ce_headers() -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            "content-type",
            "application/cloudevents+json".parse().unwrap(),
        );
        h
    }

    #[test]
    fn cloud_events_structured_push() {
        let out = parse(CE_PUSH.as_bytes(), &ce_headers()).unwrap();
        let [Incoming::Push(p)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(p.sender, Sender::Harbor);
        assert_eq!(p.registry, "harbor.dev");
        assert_eq!(p.repository, "library/busybox");
        assert_eq!(p.tag.as_deref(), Some("1.36"));
        assert_eq!(
            p.digest.to_string(),
            "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c"
        );
        assert_eq!(
            p.event_id,
            "4b2f89a6-548d-4c12-9993-a1f5790b97d2/library/busybox@sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c/1.36"
        );
        // Harbor's webhook job re-sends the formatted payload: same id.
        assert_eq!(parse(CE_PUSH.as_bytes(), &ce_headers()).unwrap(), out);
        // The structure decides, not the content type a proxy may rewrite.
        assert_eq!(parse_str(CE_PUSH).unwrap(), out);
    }

    #[test]
    fn cloud_events_other_types_are_acknowledged_and_ignored() {
        // Harbor's `eventTypeMapping`: everything but the push.
        for kind in [
            "harbor.artifact.pulled",
            "harbor.artifact.deleted",
            "harbor.quota.exceeded",
            "harbor.quota.warned",
            "harbor.replication.status.changed",
            "harbor.scan.failed",
            "harbor.scan.completed",
            "harbor.scan.stopped",
            "harbor.tag_retention.finished",
        ] {
            let body = CE_PUSH.replace(CE_PUSHED, kind);
            let out = parse(body.as_bytes(), &ce_headers()).unwrap();
            assert!(
                matches!(
                    &out[..],
                    [Incoming::Ignored {
                        reason: "not_a_push",
                        ..
                    }]
                ),
                "{kind}: {out:?}"
            );
        }
    }

    #[test]
    fn cloud_events_binary_mode() {
        let v: Value = serde_json::from_str(CE_PUSH).unwrap();
        let data = v["data"].to_string();
        let mut h = http::HeaderMap::new();
        h.insert("ce-specversion", "1.0".parse().unwrap());
        h.insert("ce-type", CE_PUSHED.parse().unwrap());
        h.insert(
            "ce-id",
            "4b2f89a6-548d-4c12-9993-a1f5790b97d2".parse().unwrap(),
        );
        h.insert(
            "ce-source",
            "/projects/1/webhook/policies/3".parse().unwrap(),
        );
        h.insert("content-type", "application/json".parse().unwrap());
        let binary = parse(data.as_bytes(), &h).unwrap();
        assert_eq!(binary, parse(CE_PUSH.as_bytes(), &ce_headers()).unwrap());

        h.insert("ce-type", "harbor.artifact.pulled".parse().unwrap());
        let out = parse(data.as_bytes(), &h).unwrap();
        assert!(matches!(
            &out[..],
            [Incoming::Ignored {
                reason: "not_a_push",
                ..
            }]
        ));
        h.remove("ce-id");
        assert_eq!(parse(data.as_bytes(), &h).unwrap_err().kind(), Kind::Usage);
    }

    #[test]
    fn malformed_cloud_events_are_usage_errors() {
        let mut no_data: Value = serde_json::from_str(CE_PUSH).unwrap();
        no_data.as_object_mut().unwrap().remove("data");
        let mut no_id: Value = serde_json::from_str(CE_PUSH).unwrap();
        no_id.as_object_mut().unwrap().remove("id");
        let mut string_data: Value = serde_json::from_str(CE_PUSH).unwrap();
        string_data["data"] = "{}".into();
        for bad in [no_data, no_id, string_data] {
            assert_eq!(
                parse(bad.to_string().as_bytes(), &ce_headers())
                    .unwrap_err()
                    .kind(),
                Kind::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn other_types_are_ignored() {
        for kind in [
            "PULL_ARTIFACT",
            "DELETE_ARTIFACT",
            "SCANNING_COMPLETED",
            "QUOTA_EXCEED",
        ] {
            let body = DOCS_PUSH.replace("PUSH_ARTIFACT", kind);
            let out = parse_str(&body).unwrap();
            assert!(
                matches!(
                    &out[..],
                    [Incoming::Ignored {
                        reason: "not_a_push",
                        ..
                    }]
                ),
                "{kind}: {out:?}"
            );
        }
    }

    #[test]
    fn several_resources_and_fallbacks() {
        let mut v: Value = serde_json::from_str(DOCS_PUSH).unwrap();
        let first = v["event_data"]["resources"][0].clone();
        let mut second = first.clone();
        second["tag"] = "v1".into();
        second["resource_url"] = "Harbor.Internal:8443/test-webhook/debian:v1".into();
        let mut bad = first.clone();
        bad["digest"] = "sha256:nothex".into();
        let mut untagged = first.clone();
        untagged.as_object_mut().unwrap().remove("tag");
        v["event_data"]["resources"] = Value::Array(vec![first, second, bad, untagged]);
        v["event_data"]["repository"]
            .as_object_mut()
            .unwrap()
            .remove("repo_full_name");
        let out = parse_str(&v.to_string()).unwrap();
        assert_eq!(out.len(), 4);
        let Incoming::Push(p) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(p.registry, "harbor.internal:8443");
        assert_eq!(p.repository, "test-webhook/debian");
        assert_eq!(p.tag.as_deref(), Some("v1"));
        assert!(matches!(
            &out[2],
            Incoming::Ignored {
                reason: "invalid",
                ..
            }
        ));
        let Incoming::Push(p) = &out[3] else {
            panic!("{out:?}")
        };
        assert_eq!(p.tag, None);
    }

    #[test]
    fn hostile_resource_urls_are_invalid() {
        for url in ["user@evil/x/y:1", "", "/x/y:1", "evil host/x"] {
            let mut v: Value = serde_json::from_str(DOCS_PUSH).unwrap();
            v["event_data"]["resources"][0]["resource_url"] = url.into();
            let out = parse_str(&v.to_string()).unwrap();
            assert!(
                matches!(
                    &out[..],
                    [Incoming::Ignored {
                        reason: "invalid",
                        ..
                    }]
                ),
                "{url:?}: {out:?}"
            );
        }
    }

    #[test]
    fn malformed_deliveries_are_usage_errors() {
        let too_many = format!(
            "{{\"type\":\"PUSH_ARTIFACT\",\"event_data\":{{\"resources\":[{}]}}}}",
            vec!["{}"; MAX_EVENTS + 1].join(",")
        );
        for bad in [
            "",
            "[]",
            "{}",
            "{\"type\": \"PUSH_ARTIFACT\"}",
            "{\"type\": \"PUSH_ARTIFACT\", \"event_data\": {\"resources\": 3}}",
            too_many.as_str(),
        ] {
            assert_eq!(parse_str(bad).unwrap_err().kind(), Kind::Usage, "{bad:.60}");
        }
    }
}
