//! What the receivers hand to the queue: registry notifications of every
//! supported sender, reduced to the one shape the workers judge.
//!
//! Each sender has its own parser module. A parser sees the raw body and
//! the request headers (after authentication), and returns one
//! [`Incoming`] per event in the delivery: a [`Push`] for a manifest or
//! index push, [`Incoming::Ignored`] for everything a sender reports that
//! is not work (blob pushes, pulls, mounts, deletes), so that the receiver
//! can still answer 2xx for them — senders re-send anything else.

use crate::digest::Digest;

pub mod auth;
pub mod distribution;
mod fields;
pub mod github;
pub mod harbor;

/// Who sent the notification; part of the de-duplication key, since two
/// senders' event ids live in different namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// CNCF Distribution (and GitLab's registry, and Azure Container
    /// Registry's envelope-less events).
    Distribution,
    Harbor,
    /// GitHub `package` / `registry_package` events for ghcr.io.
    Github,
    /// Not a registry: the admission webhook, for an image a pod names
    /// that was not measured yet. Its event id is the image itself.
    Admission,
}

/// A manifest or index that landed in a registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Push {
    /// The sender's id for this event (Distribution's `events[].id`, the
    /// `X-GitHub-Delivery` header, Harbor's digest+time): retried
    /// deliveries carry the same id.
    pub event_id: String,
    pub sender: Sender,
    /// `host[:port]` of the registry as the event names it, lower-cased.
    /// Untrusted: the service only measures from registries its
    /// configuration names, and never fetches the event's URL itself.
    pub registry: String,
    /// Repository path inside that registry (`team/app`), lower-cased
    /// where the registry requires it (ghcr.io).
    pub repository: String,
    pub tag: Option<String>,
    /// Digest of the pushed manifest or index.
    pub digest: Digest,
    /// The pushed document's media type, when the event says.
    pub media_type: Option<String>,
}

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Push(Push),
    /// Acknowledged and dropped; `reason` is a short metric label
    /// (`blob`, `pull`, `mount`, `delete`, `not_a_manifest`, ...).
    Ignored {
        event_id: String,
        reason: &'static str,
    },
}
