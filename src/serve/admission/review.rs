//! The AdmissionReview wire format (`admission.k8s.io/v1`): the request
//! as the API server sends it, read leniently where Kubernetes adds fields
//! and strictly where a wrong value would change the answer; and the
//! response, whose text is bounded and printable whatever the images
//! named.

use serde::Deserialize;
use serde_json::{Value, json};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// Longest `uid` echoed: the API server's are UUIDs (36 characters).
const MAX_UID: usize = 128;

/// Longest `status.message`: `kubectl` prints it whole to whoever applied
/// the object, so it says what matters and stops.
pub const MAX_MESSAGE: usize = 1024;

/// Longest warning. Kubernetes recommends 120 characters and truncates
/// long ones; a denial in audit mode must still carry its figures, which
/// come first in every warning written here.
pub const MAX_WARNING: usize = 256;

/// Most warnings one answer carries; the rest are counted in the last.
pub const MAX_WARNINGS: usize = 12;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<Request>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    operation: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old_object: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    version: String,
    kind: String,
}

/// A review, read.
#[derive(Debug, Clone)]
pub struct Review {
    pub uid: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: String,
    pub namespace: String,
    pub name: String,
    /// The object as it would be stored; absent for DELETE.
    pub object: Option<Value>,
    /// On UPDATE, the object as it is stored now.
    pub old_object: Option<Value>,
}

/// Reads a review; `Err` is the one line a 400 answers with.
pub fn parse(body: &[u8]) -> Result<Review, String> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| format!("not an AdmissionReview: {}", one_line(&e.to_string())))?;
    match envelope.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(format!(
                "apiVersion {:?} is not {API_VERSION} (admissionReviewVersions: [\"v1\"])",
                printable(other, 64)
            ));
        }
        None => return Err(format!("apiVersion is missing (want {API_VERSION})")),
    }
    if envelope.kind.as_deref() != Some(KIND) {
        return Err(format!("kind is not {KIND}"));
    }
    let r = envelope
        .request
        .ok_or_else(|| "request is missing".to_string())?;
    if r.uid.is_empty() || r.uid.len() > MAX_UID || !r.uid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "request.uid must be 1 to {MAX_UID} printable ASCII characters"
        ));
    }
    Ok(Review {
        uid: r.uid,
        group: r.kind.group,
        version: r.kind.version,
        kind: r.kind.kind,
        operation: r.operation,
        namespace: r.namespace.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
        object: r.object,
        old_object: r.old_object,
    })
}

/// What the webhook answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    /// Why it was denied; shown to whoever applied the object.
    pub message: Option<String>,
    pub warnings: Vec<String>,
}

impl Answer {
    pub fn allow() -> Answer {
        Answer {
            allowed: true,
            ..Answer::default()
        }
    }
}

/// The AdmissionReview the API server expects back: the request's uid,
/// and text bounded and printable.
pub fn response(uid: &str, answer: &Answer) -> Value {
    let mut warnings: Vec<String> = answer
        .warnings
        .iter()
        .take(MAX_WARNINGS)
        .map(|w| printable(w, MAX_WARNING))
        .collect();
    if answer.warnings.len() > MAX_WARNINGS {
        warnings.pop();
        warnings.push(format!(
            "sizeguard: {} more warnings not shown",
            answer.warnings.len() - MAX_WARNINGS + 1
        ));
    }
    let mut response = json!({
        "uid": uid,
        "allowed": answer.allowed,
    });
    if let Some(message) = &answer.message {
        response["status"] = json!({
            "code": if answer.allowed { 200 } else { 403 },
            "reason": if answer.allowed { "" } else { "Forbidden" },
            "message": printable(message, MAX_MESSAGE),
        });
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "response": response,
    })
}

/// Printable ASCII only (anything else `?`), at most `max` characters,
/// cut with `...`: what the API server turns into a `Warning` header and
/// `kubectl` into a terminal line.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(max + 1)
        .collect();
    if out.len() > max {
        out.truncate(max.saturating_sub(3));
        out.push_str("...");
    }
    out
}

fn one_line(s: &str) -> String {
    printable(s, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(extra: &str) -> String {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{{"group":"apps","version":"v1","kind":"Deployment"}},"resource":{{"group":"apps","version":"v1","resource":"deployments"}},"operation":"CREATE","namespace":"team","userInfo":{{"username":"admin"}}{extra}}}}}"#
        )
    }

    #[test]
    fn reads_a_review_and_ignores_what_it_does_not_need() {
        let r =
            parse(review(r#","object":{"kind":"Deployment"},"dryRun":false"#).as_bytes()).unwrap();
        assert_eq!(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!((r.group.as_str(), r.kind.as_str()), ("apps", "Deployment"));
        assert_eq!(r.operation, "CREATE");
        assert_eq!(r.namespace, "team");
        assert!(r.object.is_some());
    }

    #[test]
    fn refuses_what_is_not_a_v1_review() {
        let v1beta1 = review("").replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
        assert!(parse(v1beta1.as_bytes()).unwrap_err().contains("v1beta1"));
        let kind = review("").replace("\"AdmissionReview\"", "\"Pod\"");
        assert!(parse(kind.as_bytes()).unwrap_err().contains("kind"));
        for bad in [
            "",
            "null",
            "[]",
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":7}}",
        ] {
            let e = parse(bad.as_bytes()).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        let uid = review("").replace("705ab4f5", "705ab4f5\\u001b[31m");
        assert!(parse(uid.as_bytes()).unwrap_err().contains("uid"));
    }

    #[test]
    fn answers_are_bounded_and_printable() {
        let answer = Answer {
            allowed: false,
            message: Some(format!("deny \u{1b}[31m{}", "x".repeat(5000))),
            warnings: (0..20).map(|i| format!("w{i}\n\u{202e}")).collect(),
        };
        let v = response("u-1", &answer);
        assert_eq!(v["response"]["uid"], "u-1");
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        let message = v["response"]["status"]["message"].as_str().unwrap();
        assert!(message.len() <= MAX_MESSAGE && message.ends_with("..."));
        assert!(message.bytes().all(|b| (b' '..=b'~').contains(&b)));
        let warnings = v["response"]["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), MAX_WARNINGS);
        assert!(
            warnings
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .contains("9 more")
        );
        assert_eq!(warnings[0], "w0??");
        let allowed = response("u-2", &Answer::allow());
        assert!(allowed["response"].get("warnings").is_none());
        assert!(allowed["response"].get("status").is_none());
    }
}
