//! An optional outbound notification: one JSON POST to a URL from the
//! configuration (a chat webhook: Slack, Mattermost, Google Chat and
//! Teams workflows all read a top-level `text`) when `serve` judges an
//! image `warn` or `fail`.
//!
//! Bounded: each attempt has a timeout, a failed attempt that may succeed
//! later (connection error, timeout, 429, 5xx) is tried once more after the
//! shared backoff's first pause ([`crate::retry`]), and redirects are not
//! followed (the configured host is
//! the only one ever contacted). A notification is a side channel: its
//! failure is an error for the caller to log, never a reason to judge the
//! image again.
//!
//! Nothing secret travels: the body holds the verdict, the image's
//! registry, repository, tag and digest, a summary and the verdict URL;
//! never a token, a credential or the service's webhook secret. The URL
//! itself often is a secret (a chat webhook's path is its password), so
//! errors and logs name only its scheme and host.

use std::time::Duration;

use serde::Serialize;

use crate::budget::verdict::Verdict;
use crate::error::{Error, Kind};
use crate::report::escape;
use crate::retry::{Backoff, DEFAULT_RUN_TIMEOUT, Deadline, Failed, retry_after_of, retrying_with};

/// Default time one attempt may take, connection included.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per notification: a side channel gets one retry, not a
/// registry's patience.
const ATTEMPTS: u32 = 2;

/// Longest summary sent; chat messages are read at a glance.
const MAX_SUMMARY: usize = 1000;

/// What is posted. Every string is made plain (no control characters):
/// the repository and tag come from a registry event. `text` is also
/// escaped as Slack's message formatting asks (`&`, `<`, `>`), so a name
/// from an image cannot write a link (`<https://…|click>`) or a mention
/// (`<!channel>`) into a chat.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notification {
    /// One line for chat services: `sizeguard: fail for registry/team/app:v2 (sha256:…): summary`.
    pub text: String,
    pub verdict: Verdict,
    pub registry: String,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict_url: Option<String>,
}

impl Notification {
    pub fn new(
        verdict: Verdict,
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: &str,
        summary: &str,
        verdict_url: Option<&str>,
    ) -> Notification {
        let p = |s: &str| escape::plain(s).into_owned();
        let summary: String = p(summary.trim()).chars().take(MAX_SUMMARY).collect();
        let image = match tag {
            Some(t) => format!("{}/{}:{}", p(registry), p(repository), p(t)),
            None => format!("{}/{}", p(registry), p(repository)),
        };
        Notification {
            text: chat_text(&format!(
                "sizeguard: {verdict} for {image} ({}): {summary}",
                p(digest)
            )),
            verdict,
            registry: p(registry),
            repository: p(repository),
            tag: tag.map(p),
            digest: p(digest),
            summary,
            verdict_url: verdict_url.map(p),
        }
    }
}

/// Text with Slack's control characters escaped, as its "Formatting text
/// for app surfaces" asks: the three it reads as markup, and no other.
fn chat_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a verdict is worth a notification: warnings and failures.
pub fn wanted(verdict: Verdict) -> bool {
    matches!(verdict, Verdict::Warn | Verdict::Fail)
}

/// A configured notification endpoint.
#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    url: url::Url,
    /// A header the endpoint expects (`Authorization: Bearer …`, an API
    /// key), from a secret file; never logged.
    header: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({})", shown(&self.url))
    }
}

/// `scheme://host[:port]/…`: the URL without the part that is a secret.
fn shown(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

impl Notifier {
    /// An endpoint at an `http(s)` URL without user info; `timeout` bounds
    /// each attempt. A bad URL is a usage error (it is configuration); the
    /// error does not repeat it, since it may hold a token.
    pub fn new(url: &str, timeout: Duration) -> Result<Notifier, Error> {
        let bad = |why: &str| Error::usage(format!("notification URL: {why}"));
        let url = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("not an http(s) URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("user info is not supported; put the token in the path"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sizeguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::transient("notification client").with_source(e))?;
        Ok(Notifier {
            client,
            url,
            header: None,
        })
    }

    /// Sends `name: value` with every notification. Errors name the header,
    /// never its value.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Notifier, Error> {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::usage(format!("notification header {name:?} is not a header name"))
        })?;
        let mut value = reqwest::header::HeaderValue::from_str(value.trim()).map_err(|_| {
            Error::usage(format!(
                "notification header {name}: the secret is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        self.header = Some((name, value));
        Ok(self)
    }

    /// Posts `n`, once more after a pause if the first attempt may
    /// succeed later. The error names the endpoint by scheme and host only.
    pub async fn send(&self, n: &Notification) -> Result<(), Error> {
        let what = format!("notification to {}", shown(&self.url));
        let deadline = Deadline::after(DEFAULT_RUN_TIMEOUT);
        let backoff = Backoff::new().attempts(ATTEMPTS);
        retrying_with(backoff, &deadline, &what, || self.attempt(n, &what)).await
    }

    async fn attempt(&self, n: &Notification, what: &str) -> Result<(), Failed> {
        let mut request = self.client.post(self.url.clone()).json(n);
        if let Some((name, value)) = &self.header {
            request = request.header(name, value);
        }
        let resp = request
            .send()
            .await
            // The transport error's text quotes the URL: keep only its kind.
            .map_err(|e| Error::transient(format!("{what}: {}", transport_kind(&e))))?;
        let status = resp.status().as_u16();
        let kind = match status {
            200..=299 => return Ok(()),
            429 | 500..=599 => Kind::Transient,
            300..=399 => Kind::Usage,
            401 | 403 | 404 => Kind::Usage,
            _ => Kind::Corrupt,
        };
        Err(Failed {
            error: Error::new(kind, format!("{what}: HTTP {status}")),
            retry_after: retry_after_of(resp.headers()),
        })
    }
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback listener that answers each connection with the next
    /// scripted `(delay, status)` (the last one repeats) and records the
    /// request heads and bodies.
    struct Listener {
        url: String,
        seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    }

    async fn listener(script: Vec<(Duration, u16)>) -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/T000/SECRETPATH", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let Ok((mut conn, _)) = l.accept().await else {
                    return;
                };
                let (delay, status) = script[i.min(script.len() - 1)];
                let record = record.clone();
                tokio::spawn(async move {
                    let (head, body) = read_request(&mut conn).await;
                    record.lock().unwrap().push((head, body));
                    tokio::time::sleep(delay).await;
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Listener { url, seen }
    }

    async fn read_request(conn: &mut tokio::net::TcpStream) -> (String, serde_json::Value) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len || n == 0 {
                    return (
                        head.to_string(),
                        serde_json::from_str(body).unwrap_or_default(),
                    );
                }
            }
            if n == 0 {
                return (text, serde_json::Value::Null);
            }
        }
    }

    fn sample() -> Notification {
        Notification::new(
            Verdict::Fail,
            "registry.example:5000",
            "team/app",
            Some("v2\n::error::x"),
            "sha256:0123",
            "image grew 40% (limit 10%)",
            Some("http://sizeguard.example/v1/verdicts/sha256:0123"),
        )
    }

    #[test]
    fn chat_markup_from_an_image_is_inert() {
        let n = Notification::new(
            Verdict::Fail,
            "registry.example",
            "team/app",
            Some("<!channel>"),
            "sha256:0123",
            "grew by <https://evil.example|a & b> > limit",
            None,
        );
        assert_eq!(
            n.text,
            "sizeguard: fail for registry.example/team/app:&lt;!channel&gt; (sha256:0123): \
             grew by &lt;https://evil.example|a &amp; b&gt; &gt; limit"
        );
        assert!(!n.text.contains('<') && !n.text.contains('>'));
        // The data fields stay as they were: only the chat text is markup.
        assert_eq!(n.tag.as_deref(), Some("<!channel>"));
    }

    #[tokio::test]
    async fn posts_json_once_when_accepted() {
        let l = listener(vec![(Duration::ZERO, 200)]).await;
        let n = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT).unwrap();
        n.send(&sample()).await.unwrap();
        let seen = l.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (head, body) = &seen[0];
        assert!(
            head.starts_with("POST /hooks/T000/SECRETPATH HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "{head}"
        );
        assert_eq!(body["verdict"], "fail");
        assert_eq!(body["repository"], "team/app");
        assert_eq!(body["tag"], "v2\\n::error::x");
        assert_eq!(
            body["text"],
            "sizeguard: fail for registry.example:5000/team/app:v2\\n::error::x (sha256:0123): image grew 40% (limit 10%)"
        );
        let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "digest",
                "registry",
                "repository",
                "summary",
                "tag",
                "text",
                "verdict",
                "verdict_url"
            ]
        );
    }

    #[tokio::test]
    async fn a_configured_header_is_sent_and_never_shown() {
        let l = listener(vec![(Duration::ZERO, 200)]).await;
        let n = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT)
            .unwrap()
            .with_header("X-Hook-Token", "s3cr3t-value\n")
            .unwrap();
        assert!(!format!("{n:?}").contains("s3cr3t"));
        n.send(&sample()).await.unwrap();
        let (head, _) = l.seen.lock().unwrap()[0].clone();
        assert!(
            head.to_ascii_lowercase()
                .contains("x-hook-token: s3cr3t-value"),
            "{head}"
        );
        let bad = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT)
            .unwrap()
            .with_header("X-Hook-Token", "a\u{7f}b-s3cr3t");
        assert!(!bad.unwrap_err().one_line().contains("s3cr3t"));
        assert!(
            Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT)
                .unwrap()
                .with_header("bad header", "x")
                .is_err()
        );
    }

    #[tokio::test]
    async fn one_retry_on_server_errors_then_gives_up() {
        let l = listener(vec![(Duration::ZERO, 503), (Duration::ZERO, 204)]).await;
        let n = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT).unwrap();
        n.send(&sample()).await.unwrap();
        assert_eq!(l.seen.lock().unwrap().len(), 2);

        let l = listener(vec![(Duration::ZERO, 500)]).await;
        let n = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT).unwrap();
        let e = n.send(&sample()).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Transient);
        assert_eq!(l.seen.lock().unwrap().len(), 2, "exactly one retry");
        assert!(!e.one_line().contains("SECRETPATH"), "{e:?}");

        // A refusal is not retried.
        let l = listener(vec![(Duration::ZERO, 404)]).await;
        let n = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT).unwrap();
        assert_eq!(n.send(&sample()).await.unwrap_err().kind(), Kind::Usage);
        assert_eq!(l.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn slow_endpoints_time_out() {
        let l = listener(vec![(Duration::from_secs(30), 200)]).await;
        let n = Notifier::new(&l.url, Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        let e = n.send(&sample()).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Transient);
        assert!(e.one_line().contains("timed out"), "{e:?}");
        assert!(!e.one_line().contains("SECRETPATH"), "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn refused_urls_and_redirects() {
        for bad in [
            "",
            "ftp://x/y",
            "http://user:pw@x/y",
            "/relative",
            "mailto:a@b",
        ] {
            let e = Notifier::new(bad, DEFAULT_NOTIFY_TIMEOUT).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad}");
            assert!(!e.one_line().contains("pw"), "{e:?}");
        }
        let n = Notifier::new(
            "https://hooks.example.com/services/T/B/SECRET",
            DEFAULT_NOTIFY_TIMEOUT,
        )
        .unwrap();
        assert_eq!(format!("{n:?}"), "Notifier(https://hooks.example.com/…)");
        let l = listener(vec![(Duration::ZERO, 302)]).await;
        let n = Notifier::new(&l.url, DEFAULT_NOTIFY_TIMEOUT).unwrap();
        assert_eq!(n.send(&sample()).await.unwrap_err().kind(), Kind::Usage);
        assert!(wanted(Verdict::Warn) && wanted(Verdict::Fail) && !wanted(Verdict::Pass));
    }
}
