//! Registry requests and their answers: the `/v2/` probe that says how a
//! registry wants to be authenticated, the Bearer token request (to decide
//! which credentials the token service may get, and to see its status and
//! `Retry-After`), documents read as a stream and cut at
//! [`MAX_DOCUMENT_BYTES`](crate::source::manifest::MAX_DOCUMENT_BYTES)
//! (the cap every image document has), and the failures of any of them
//! as one line with a kind.
//!
//! Credential rules (the README's "Network behaviour" section):
//! - Credentials go over plain HTTP only to a host given with
//!   `--insecure-registry`, or to a loopback registry itself (which, as
//!   for Docker, may speak plain HTTP without being named).
//! - A token service (`WWW-Authenticate: Bearer realm=…`) on the
//!   registry's own host and port gets the registry's credentials; on
//!   another host it gets only what the user's credential configuration
//!   names for that host (Docker Hub's registry and `auth.docker.io` are
//!   one service). Otherwise the token is asked for anonymously, and a
//!   refusal says the credentials were withheld and why.
//!
//! Redirects are followed by reqwest, which drops the `Authorization`
//! header when the next hop is on another host, port or scheme (a blob
//! store's signed URL gets no registry credential), and only to the hosts
//! [`egress`](super::egress) allows; a token service's `realm` is checked
//! by the same rules.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{self, HeaderValue};
use reqwest::{Response, StatusCode, Url};

use super::egress::{self, Egress};
use crate::error::{Error, Kind, chain};
use crate::retry::{Deadline, Failed, retry_after_of};
use crate::source::auth::{self, Credential, Secret};
use crate::units::format_duration;

/// A token answer is a small JSON object; more than this is not one.
const MAX_TOKEN_ANSWER: u64 = 1024 * 1024;

/// Error bodies are read this far, for their message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How a registry asks to be authenticated (its `/v2/` answer).
#[derive(Debug, Clone)]
pub enum Challenge {
    /// It does not.
    None,
    /// `WWW-Authenticate: Basic`.
    Basic,
    /// `WWW-Authenticate: Bearer realm=…,service=…`.
    Bearer(HashMap<String, String>),
}

impl Challenge {
    pub fn of(resp: &Response) -> Challenge {
        let values: Vec<&str> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if let Some(params) = values.iter().find_map(|v| auth::parse_bearer_challenge(v)) {
            return Challenge::Bearer(params);
        }
        if values
            .iter()
            .any(|v| v.trim_start().to_ascii_lowercase().starts_with("basic"))
        {
            return Challenge::Basic;
        }
        Challenge::None
    }
}

/// Scheme-independent host and port (explicit or the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// How credential files and `--insecure-registry` spell it.
    fn spellings(&self, url: &Url) -> [String; 2] {
        let with_port = format!("{}:{}", self.host, self.port);
        match url.port() {
            Some(_) => [with_port.clone(), with_port],
            None => [self.host.clone(), with_port],
        }
    }
}

/// What may go to a URL.
pub enum Decision {
    Send(Credential),
    /// Nothing, for this reason.
    Withhold(String),
}

/// The credential a registry's requests may carry, and where else it may go.
pub struct CredentialRules {
    pub credential: Credential,
    registry: Origin,
    /// A loopback registry probed to plain HTTP: its own credentials may
    /// go to it over plain HTTP.
    registry_plain: bool,
    /// `--insecure-registry` entries, `HOST[:PORT]`, lowercased.
    insecure: Vec<String>,
    /// What the user's credential files hold for a host.
    lookup: fn(&str) -> Result<Credential, Error>,
}

impl CredentialRules {
    /// Rules for a registry reached at `SCHEME://HOST[:PORT]`.
    pub fn new(
        credential: Credential,
        host: &str,
        scheme: &str,
        insecure: &[String],
    ) -> Result<Self, Error> {
        let url = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| Error::usage(format!("registry host {host:?}")).with_source(e))?;
        let registry = Origin::of(&url)
            .ok_or_else(|| Error::usage(format!("registry host {host:?} has no host name")))?;
        Ok(CredentialRules {
            credential,
            registry,
            registry_plain: scheme == "http",
            insecure: insecure.iter().map(|h| h.to_ascii_lowercase()).collect(),
            lookup: |host| auth::lookup(host, None),
        })
    }

    /// The credential that may be sent to `url`, or why none may (every
    /// reason that applies).
    pub fn decide(&self, url: &Url) -> Result<Decision, Error> {
        let Some(target) = Origin::of(url) else {
            return Ok(Decision::Withhold(format!("{} has no host", url.scheme())));
        };
        let same = target == self.registry;
        let names = target.spellings(url);
        let shown = format!("{}://{}", url.scheme(), names[1]);
        let mut why = Vec::new();
        let credential = if same || auth::same_service(&self.registry.host, &target.host) {
            Some(self.credential.clone())
        } else {
            // Another host: only what the user's files say for it (the
            // --username flag names no host, so it never goes there).
            let found = self.named_in_files(&names)?;
            if found.is_none() {
                why.push("is not the registry's host, and no credential configuration names it");
            }
            found
        };
        match url.scheme() {
            "https" => {}
            "http" => {
                let named_insecure = names.iter().any(|n| self.insecure.contains(n))
                    || self.insecure.contains(&target.host);
                if !(named_insecure || (same && self.registry_plain)) {
                    why.push("is plain HTTP and not an --insecure-registry");
                }
            }
            _ => why.push("is not HTTP"),
        }
        Ok(match credential {
            Some(c) if why.is_empty() => Decision::Send(c),
            _ => Decision::Withhold(format!("{shown} {}", why.join(", and "))),
        })
    }

    fn named_in_files(&self, names: &[String]) -> Result<Option<Credential>, Error> {
        for name in names {
            let found = (self.lookup)(name)?;
            if !matches!(found.secret, Secret::Anonymous) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// A header value that `Debug` output and HTTP/2's header compression
/// treat as secret.
pub fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

pub fn basic_header(username: &str, password: &str) -> Option<HeaderValue> {
    let pair = format!("{username}:{password}");
    sensitive(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// What an HTTP status says about the next attempt, when it says anything.
pub fn status_kind(code: u16) -> Option<Kind> {
    match code {
        401 | 403 => Some(Kind::Unauthorized),
        404 => Some(Kind::NotFound),
        429 | 500..=599 => Some(Kind::Transient),
        _ => None,
    }
}

/// A request that got no answer. reqwest's message names the URL, which
/// after a redirect may be a signed one: the URL is dropped and the
/// registry named instead.
pub fn request_error(e: reqwest::Error, what: &str, host: &str) -> Error {
    let e = e.without_url();
    // A registry that sends sizeguard where it must not go will send it
    // there again.
    if let Some(refused) = egress::refusal_in(&e) {
        return Error::corrupt(format!("{what}: {refused}"));
    }
    if certificate_refused(&e) {
        // Trying again cannot make a certificate trusted; the user can.
        let why = chain(&e);
        return Error::usage(format!(
            "{what}: registry {host}: TLS certificate not trusted ({why}); pass its CA with --ca-file or SSL_CERT_FILE"
        ));
    }
    Error::transient(format!("{what}: registry {host} unreachable")).with_source(e)
}

/// Whether a request failed because the registry's certificate was not
/// accepted, told by the TLS library's own error in the chain. An
/// `io::Error` hides the error it carries from `source()` (and hyper wraps
/// one `io::Error` in another), so those are opened as well.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(cause) = next {
        let mut opened = cause;
        loop {
            if let Some(tls) = opened.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
            match opened
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => opened = inner,
                None => break,
            }
        }
        next = cause.source();
    }
    false
}

/// Sends a request, under the stall limit: no answer within it is a
/// transient failure like a refused connection.
pub async fn send(
    req: reqwest::RequestBuilder,
    what: &str,
    host: &str,
    deadline: &Deadline,
) -> Result<Response, Failed> {
    match deadline
        .run_unless_stalled(format!("fetching {what}"), req.send())
        .await?
    {
        Some(Ok(resp)) => Ok(resp),
        Some(Err(e)) => Err(request_error(e, what, host).into()),
        None => Err(Error::transient(format!(
            "{what}: registry {host} sent no answer for {}",
            format_duration(deadline.stall())
        ))
        .into()),
    }
}

/// A 429 or 5xx (or any other failure status) as an attempt's failure:
/// the status named, the `Retry-After` kept. `who` describes the
/// credentials sent, for 401 and 403.
pub async fn status_failure(resp: Response, what: &str, who: &str) -> Failed {
    let status = resp.status();
    let asked = retry_after_of(resp.headers());
    let url = resp.url().clone();
    // A redirect's signed query string is not for logs.
    let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
    let text = error_text(resp).await;
    let code = status.as_u16();
    let message = match code {
        401 => format!("401 unauthorized at {shown} (credentials: {who}){text}"),
        403 => format!("403 denied at {shown} (credentials: {who}){text}"),
        404 => format!("404 not found at {shown}{text}"),
        _ => format!("HTTP {status} from {shown}{text}"),
    };
    // Anything else the registry refuses will be refused again.
    let kind = status_kind(code).unwrap_or(Kind::Corrupt);
    Failed {
        error: Error::new(kind, format!("{what}: {message}")),
        retry_after: asked,
    }
}

/// `: MESSAGE` from a registry's error body (`{"errors":[{"code",
/// "message"}]}`, or its first line of text), cut short and stripped of
/// control characters; empty when there is none.
async fn error_text(resp: Response) -> String {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    // An error body that trickles is not worth waiting for.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read).await;
    registry_message(&body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

fn registry_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match crate::go_json::from_slice::<Envelope>(body) {
        Ok(env) => env
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(body)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string(),
    };
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

/// Reads a body, refusing one longer than `cap` bytes as soon as that is
/// known: from `Content-Length`, or while streaming (so an endless body
/// costs `cap` bytes of memory, not more).
pub async fn read_capped(
    resp: Response,
    cap: u64,
    what: &str,
    deadline: &Deadline,
) -> Result<Bytes, Failed> {
    let too_large = |len: Option<u64>| {
        let got = len.map_or(String::new(), |n| format!("{n} bytes, "));
        Error::corrupt(format!(
            "{what}: {got}larger than the {} a manifest or config may have",
            crate::units::human_bytes(cap)
        ))
    };
    if let Some(len) = resp.content_length().filter(|l| *l > cap) {
        return Err(too_large(Some(len)).into());
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    let mut stream = resp.bytes_stream();
    loop {
        let next = deadline
            .run_unless_stalled(format!("fetching {what}"), stream.next())
            .await?;
        let chunk = match next {
            None => {
                return Err(Error::transient(format!(
                    "{what}: the registry sent nothing for {}",
                    format_duration(deadline.stall())
                ))
                .into());
            }
            Some(None) => return Ok(body.into()),
            Some(Some(Err(e))) => {
                return Err(Error::transient(format!("{what}: the answer broke off"))
                    .with_source(e.without_url())
                    .into());
            }
            Some(Some(Ok(c))) => c,
        };
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large(None).into());
        }
        body.extend_from_slice(&chunk);
    }
}

/// A Bearer token and what was withheld to get it.
pub struct Token {
    pub value: String,
    /// Why the credentials did not go to the token service, if they did not.
    pub withheld: Option<String>,
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// Asks the token service a challenge names for a token of `scope`, with
/// the credentials the rules let go there; one attempt (the caller
/// retries).
pub async fn fetch_token(
    http: &reqwest::Client,
    egress: &Egress,
    rules: &CredentialRules,
    challenge: &HashMap<String, String>,
    scope: &str,
    what: &str,
    deadline: &Deadline,
) -> Result<Token, Failed> {
    let realm = challenge.get("realm").map(String::as_str).unwrap_or("");
    let bad_realm = || {
        Error::corrupt(format!(
            "{what}: the registry names an invalid token service {realm:?}"
        ))
    };
    let url = Url::parse(realm).map_err(|_| bad_realm())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad_realm().into());
    }
    egress
        .check_url(&url)
        .map_err(|refused| Error::corrupt(format!("{what}: token service: {refused}")))?;
    let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
    let (credential, withheld) = match rules.decide(&url)? {
        Decision::Send(c) => (c, None),
        Decision::Withhold(why) => (Credential::anonymous(), Some(why)),
    };
    let who = match &withheld {
        Some(why) => format!(
            "{}, withheld from the token service: {why}",
            rules.credential.source
        ),
        None => credential.source.clone(),
    };
    let token_what = format!("a token for {what} from {shown}");
    let req = token_request(http, url, &credential, scope, challenge.get("service"));
    let resp = send(req, &token_what, &shown, deadline).await?;
    let status = resp.status();
    if !status.is_success() {
        let mut failed = status_failure(resp, &token_what, &who).await;
        // A token service that answers anything but a refusal or a
        // temporary failure refuses the credentials all the same.
        if status_kind(status.as_u16()).is_none() {
            failed.error =
                Error::unauthorized(format!("{}; credentials: {who}", failed.error.one_line()));
        }
        return Err(failed);
    }
    let body = read_capped(resp, MAX_TOKEN_ANSWER, &token_what, deadline).await?;
    let answer: TokenAnswer = crate::go_json::from_slice(&body).map_err(|e| {
        Error::corrupt(format!("{token_what}: the answer is not a token")).with_source(e)
    })?;
    let value = answer
        .access_token
        .or(answer.token)
        .filter(|t| !t.is_empty());
    let value = value.ok_or_else(|| {
        Error::corrupt(format!(
            "{what}: the token service at {shown} returned no token"
        ))
    })?;
    Ok(Token { value, withheld })
}

/// An identity token is exchanged with the OAuth2 refresh-token POST; a
/// password goes as Basic on a GET; without either, an anonymous GET.
fn token_request(
    http: &reqwest::Client,
    mut url: Url,
    credential: &Credential,
    scope: &str,
    service: Option<&String>,
) -> reqwest::RequestBuilder {
    match &credential.secret {
        Secret::IdentityToken(t) => {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("client_id", "sizeguard"),
                ("refresh_token", t.as_str()),
                ("scope", scope),
            ];
            form.extend(service.map(|s| ("service", s.as_str())));
            http.post(url).form(&form)
        }
        secret => {
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("scope", scope);
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
            }
            let req = http.get(url);
            match secret {
                Secret::Basic { username, password } => match basic_header(username, password) {
                    Some(h) => req.header(header::AUTHORIZATION, h),
                    None => req,
                },
                _ => req,
            }
        }
    }
}

/// Whether a status is one a later attempt may not get.
pub fn is_retryable(status: StatusCode) -> bool {
    status_kind(status.as_u16()).is_some_and(Kind::is_retryable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> Credential {
        Credential {
            secret: Secret::Basic {
                username: "u".into(),
                password: "p".into(),
            },
            source: "--username/--password-stdin".into(),
        }
    }

    /// Rules whose credential files name `auth.example` only.
    fn rules(host: &str, scheme: &str, insecure: &[String]) -> CredentialRules {
        let mut r = CredentialRules::new(basic(), host, scheme, insecure).unwrap();
        r.lookup = |host| {
            Ok(if host == "auth.example" {
                Credential {
                    source: "files (auths)".into(),
                    ..basic()
                }
            } else {
                Credential::anonymous()
            })
        };
        r
    }

    fn decide(rules: &CredentialRules, url: &str) -> Option<String> {
        match rules.decide(&Url::parse(url).unwrap()).unwrap() {
            Decision::Send(c) => Some(c.source),
            Decision::Withhold(_) => None,
        }
    }

    #[test]
    fn credentials_stay_with_the_registry_and_off_plain_http() {
        let tls = rules("reg.example:5000", "https", &[]);
        assert!(decide(&tls, "https://reg.example:5000/token").is_some());
        // Same host over plain HTTP, another port, another host: nothing.
        assert!(decide(&tls, "http://reg.example:5000/token").is_none());
        assert!(decide(&tls, "https://reg.example:5001/token").is_none());
        assert!(decide(&tls, "https://auth2.example/token").is_none());
        assert!(decide(&tls, "http://auth2.example/token").is_none());
        // Another host the credential files name: its own credential, over TLS.
        assert_eq!(
            decide(&tls, "https://auth.example/token").as_deref(),
            Some("files (auths)")
        );
        assert!(decide(&tls, "http://auth.example/token").is_none());
        assert!(decide(&tls, "ftp://reg.example:5000/token").is_none());

        // A loopback registry probed to plain HTTP keeps its own credentials;
        // another loopback port over plain HTTP does not get them.
        let plain = rules("127.0.0.1:5000", "http", &[]);
        assert!(decide(&plain, "http://127.0.0.1:5000/token").is_some());
        assert!(decide(&plain, "http://127.0.0.1:5001/token").is_none());

        // Docker Hub's token service is Docker Hub.
        let hub = rules("index.docker.io", "https", &[]);
        assert!(decide(&hub, "https://auth.docker.io/token").is_some());
        assert!(decide(&hub, "http://auth.docker.io/token").is_none());
    }

    #[test]
    fn an_insecure_registry_may_get_credentials_over_plain_http() {
        let rules = rules("10.0.0.5:5000", "http", &["10.0.0.5:5000".to_string()]);
        assert!(decide(&rules, "http://10.0.0.5:5000/v2/").is_some());
        assert!(decide(&rules, "http://10.0.0.6:5000/v2/").is_none());
    }

    #[test]
    fn basic_headers_are_marked_sensitive() {
        let h = basic_header("u", "p").unwrap();
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("dTpw"), "{h:?}");
    }

    #[test]
    fn registry_messages_are_one_short_clean_line() {
        assert_eq!(
            registry_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#
            )
            .as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(
            registry_message(b"\n  upstream down\x1b[31m\nmore").as_deref(),
            Some("upstream down [31m")
        );
        assert_eq!(registry_message(b""), None);
        assert_eq!(registry_message(&[b'x'; 1000]).unwrap().len(), 300);
    }

    #[test]
    fn statuses_classify() {
        assert_eq!(status_kind(401), Some(Kind::Unauthorized));
        assert_eq!(status_kind(403), Some(Kind::Unauthorized));
        assert_eq!(status_kind(404), Some(Kind::NotFound));
        assert_eq!(status_kind(429), Some(Kind::Transient));
        assert_eq!(status_kind(503), Some(Kind::Transient));
        assert_eq!(status_kind(400), None);
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 206, 400, 401, 403, 404, 416] {
            assert!(!is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
