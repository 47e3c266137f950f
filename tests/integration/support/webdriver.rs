//! Headless Chromium driven through ChromeDriver over W3C WebDriver: a
//! person's browser session (a form typed into and submitted, cookies
//! kept, links followed) for pages that run no script of their own.
//! ChromeDriver listens on a free loopback port; each session has a fresh
//! profile and the flags of [`super::chromium::base_flags`].

#![cfg(feature = "server")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::chromium::{base_flags, chromium};
use super::registry::free_port;
use super::require_tool;

/// One request to ChromeDriver. It keeps connections open whatever the
/// request says, so the answer ends where its Content-Length says, not at
/// the end of the stream.
fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())?;
            while raw.len() < end + 4 + length {
                let n = s.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                raw.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned();
            return Some((status, body));
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The key W3C WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    addr: String,
    child: Child,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// ChromeDriver started and one headless Chromium session opened,
    /// its window `width`×`height`.
    pub fn start(width: u32, height: u32) -> Driver {
        let chromedriver = require_tool("chromedriver", "apt-get install chromium-driver");
        let browser = chromium();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut d = Driver {
            addr,
            child,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while request(&d.addr, "GET", "/status", b"").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut args = base_flags(d._profile.path());
        args.push(format!("--window-size={width},{height}"));
        let created = d.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": browser, "args": args},
            }}}),
        );
        d.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        d
    }

    /// One WebDriver command; its `value`. An error answer fails the test.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if method == "GET" || method == "DELETE" {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, answer) = request(&self.addr, method, path, &body)
            .unwrap_or_else(|| panic!("{method} {path}: chromedriver did not answer"));
        let v: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {answer}"));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.session_call("GET", "/url", Value::Null)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's URL once it is `want`, polled for up to ten seconds: a
    /// click that submits a form returns before the navigation it starts
    /// has ended. The last URL seen when it never becomes `want`.
    pub fn url_once(&self, want: &str) -> String {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let url = self.url();
            if url == want || std::time::Instant::now() > until {
                return url;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The first element `css` selects; its reference.
    pub fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    pub fn click(&self, element: &str) {
        self.session_call("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn execute(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Emulates `prefers-color-scheme` (`light` or `dark`) through the
    /// DevTools protocol.
    pub fn color_scheme(&self, scheme: &str) {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{"name": "prefers-color-scheme", "value": scheme}]
            }}),
        );
    }

    /// The viewport as a PNG at `out`.
    pub fn screenshot(&self, out: &Path) {
        let b64 = self.session_call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(out, png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                b"",
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
