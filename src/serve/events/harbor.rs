//! Harbor webhooks (the "HTTP" notify type, payload format "Default").
//!
//! Only `PUSH_ARTIFACT` is work: one [`Push`] per entry of
//! `event_data.resources[]` (a push of several tags of one digest lists
//! each). Every other event type (pulls, deletes, scans, quota,
//! replication, Harbor's "Test Endpoint" delivery) is acknowledged and
//! ignored.
//!
//! Harbor sends no event id. A retried delivery repeats the payload, so
//! the id is built from what a retry keeps: the event time, the
//! repository, the digest and the tag. The registry host is the authority
//! of `resource_url` (`harbor.example.com/project/app:tag`), which Harbor
//! builds from its configured external URL; the receiver checks it
//! against the configured registries like any other.
//!
//! Malformed deliveries are errors of kind `Usage` (400); a resource with
//! a value sizeguard refuses is ignored as `invalid`, the others in the
//! same delivery still count.

use serde_json::Value;

use super::fields::{self, MAX_EVENTS, str_at};
use super::{Incoming, Push, Sender};
use crate::error::Error;

const WHAT: &str = "harbor webhook";

/// Parses one delivery to `/v1/events/harbor`.
pub fn parse(body: &[u8], _headers: &http::HeaderMap) -> Result<Vec<Incoming>, Error> {
    let object = Value::Object(fields::parse_object(body, WHAT)?);
    let kind =
        str_at(&object, &["type"]).ok_or_else(|| Error::usage(format!("{WHAT}: no `type`")))?;
    let occur_at = match object.get("occur_at") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    if kind != "PUSH_ARTIFACT" {
        let id = fields::event_id(&format!("{kind}/{occur_at}")).unwrap_or_default();
        return Ok(vec![Incoming::Ignored {
            event_id: id,
            reason: "not_a_push",
        }]);
    }
    let data = object
        .get("event_data")
        .ok_or_else(|| Error::usage(format!("{WHAT}: PUSH_ARTIFACT without `event_data`")))?;
    let resources = match data.get("resources") {
        Some(Value::Array(r)) => r,
        _ => {
            return Err(Error::usage(format!(
                "{WHAT}: `event_data.resources` is not an array"
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
        .map(|r| resource(r, full_name.as_deref(), &occur_at))
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
