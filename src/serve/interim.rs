//! Stand-ins for the sender parsers and the secret checks of
//! [`crate::serve::events`], with their signatures, until those land:
//! CNCF Distribution's envelope and the bearer secret only.

use http::HeaderMap;
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::Error;
use crate::serve::events::{Incoming, Push, Sender};

pub mod auth {
    use http::HeaderMap;

    pub fn bearer_matches(secret: &[u8], headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return false;
        };
        let Some(token) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return false;
        };
        // Constant time over the secret's length.
        token.len() == secret.len()
            && token
                .iter()
                .zip(secret)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    pub fn github_signature_matches(_secret: &[u8], _body: &[u8], _headers: &HeaderMap) -> bool {
        false
    }
}

pub mod harbor {
    use super::*;

    pub fn parse(_body: &[u8], _headers: &HeaderMap) -> Result<Vec<Incoming>, Error> {
        Err(Error::corrupt("harbor events are not read yet"))
    }
}

pub mod github {
    use super::*;

    pub fn parse(_body: &[u8], _headers: &HeaderMap) -> Result<Vec<Incoming>, Error> {
        Err(Error::corrupt("github events are not read yet"))
    }
}

pub mod distribution {
    use super::*;

    #[derive(Deserialize)]
    struct Envelope {
        events: Vec<Event>,
    }

    #[derive(Deserialize)]
    struct Event {
        id: String,
        action: String,
        #[serde(default)]
        target: Target,
        #[serde(default)]
        request: Request,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Target {
        media_type: Option<String>,
        digest: Option<String>,
        repository: Option<String>,
        tag: Option<String>,
        url: Option<String>,
    }

    #[derive(Deserialize, Default)]
    struct Request {
        host: Option<String>,
    }

    const MANIFESTS: &[&str] = &[
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ];

    pub fn parse(body: &[u8], _headers: &HeaderMap) -> Result<Vec<Incoming>, Error> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| Error::corrupt("distribution envelope").with_source(e))?;
        envelope.events.into_iter().map(event).collect()
    }

    fn event(e: Event) -> Result<Incoming, Error> {
        let ignored = |reason| {
            Ok(Incoming::Ignored {
                event_id: e.id.clone(),
                reason,
            })
        };
        if e.action != "push" {
            return ignored("pull");
        }
        let Some(media_type) = e.target.media_type.clone() else {
            return ignored("not_a_manifest");
        };
        if !MANIFESTS.contains(&media_type.as_str()) {
            return ignored("blob");
        }
        let digest = Digest::parse(e.target.digest.as_deref().unwrap_or(""))?;
        let registry = e
            .target
            .url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
            })
            .or(e.request.host.clone())
            .ok_or_else(|| Error::corrupt("distribution event without a registry host"))?;
        Ok(Incoming::Push(Push {
            event_id: e.id,
            sender: Sender::Distribution,
            registry: registry.to_ascii_lowercase(),
            repository: e.target.repository.unwrap_or_default(),
            tag: e.target.tag,
            digest,
            media_type: Some(media_type),
        }))
    }
}
