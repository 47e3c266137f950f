//! `sizeguard serve` as a process of its own: started (the built binary, in
//! the scrubbed environment of [`super::run`]) on a free loopback port,
//! killed (SIGTERM or SIGKILL) and restarted on the same data directory;
//! and a small HTTP/1.1 client to talk to it.

#![cfg(feature = "server")]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::registry::free_port;
use super::run::Run;

pub const SECRET: &str = "sizeguard-webhook-test-secret";

/// The read token of the verdict API and `/metrics`, which [`Service::get`]
/// presents.
pub const API_TOKEN: &str = "sizeguard-read-test-token";

pub struct Service {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub data_dir: PathBuf,
    pub secret_file: PathBuf,
    /// Passed as `--api-token-file` unless started without a read token.
    pub api_token_file: Option<PathBuf>,
    pub log_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Service {
    /// The port the service will listen on, for a registry's notification
    /// URL configured before the service starts.
    pub fn pick_addr() -> String {
        format!("127.0.0.1:{}", free_port())
    }

    /// `sizeguard serve --listen ADDR --data-dir D --secret-file F ARGS`.
    pub fn start(addr: &str, args: &[&str]) -> Service {
        Self::start_with_env(addr, args, &[])
    }

    /// The same, with variables set in the service's (otherwise scrubbed)
    /// environment.
    pub fn start_with_env(addr: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        Self::start_with(addr, args, env, true)
    }

    /// The same without `--api-token-file`: the verdict API and metrics
    /// are then served only where `args` say (`--admin-listen`), or not.
    pub fn start_without_read_token(addr: &str, args: &[&str]) -> Service {
        Self::start_with(addr, args, &[], false)
    }

    fn start_with(addr: &str, args: &[&str], env: &[(&str, &str)], read_token: bool) -> Service {
        let dir = tempfile::Builder::new()
            .prefix("sizeguard-serve-")
            .tempdir()
            .unwrap();
        let secret_file = dir.path().join("secret");
        // As `echo` writes it: the final newline is not part of the secret.
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let data_dir = dir.path().join("data");
        let api_token_file = read_token.then(|| {
            let file = dir.path().join("api-token");
            std::fs::write(&file, format!("{API_TOKEN}\n")).unwrap();
            file
        });
        let mut service = Service {
            addr: addr.to_string(),
            data_dir,
            secret_file,
            api_token_file,
            log_path: dir.path().join("serve.log"),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            dir,
        };
        service.spawn();
        service
    }

    /// Starts the process again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the service is still running");
        self.spawn();
    }

    fn spawn(&mut self) {
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            self.addr.clone(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--secret-file".into(),
            self.secret_file.display().to_string(),
        ];
        if let Some(file) = &self.api_token_file {
            args.extend(["--api-token-file".into(), file.display().to_string()]);
        }
        args.extend(self.args.iter().cloned());
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut run = Run::new(&args).with_layer_cache();
        for (k, v) in &self.env {
            run = run.env(k, v);
        }
        let mut cmd = run.command(&home);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        self.child = Some(cmd.spawn().expect("spawn sizeguard serve"));
        let deadline = Instant::now() + Duration::from_secs(20);
        // Over TLS the plain client cannot ask; the log says when it listens.
        let tls = self.args.iter().any(|a| a == "--tls-cert");
        loop {
            if tls {
                if self.log().contains("listening") && TcpStream::connect(&self.addr).is_ok() {
                    return;
                }
            } else if let Some(a) = self.try_request("GET", "/healthz", &[], b"")
                && a.status == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sizeguard serve exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sizeguard serve did not answer on {}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// SIGKILL: no chance to finish or clean anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (within `within`).
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "sizeguard serve ignored SIGTERM for {within:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET with the read token.
    pub fn get(&self, path: &str) -> Answer {
        let auth = format!("Bearer {API_TOKEN}");
        self.request("GET", path, &[("Authorization", auth.as_str())], b"")
    }

    /// GET without any credentials.
    pub fn get_anonymous(&self, path: &str) -> Answer {
        self.request("GET", path, &[], b"")
    }

    /// POST with the right secret.
    pub fn post_event(&self, sender: &str, body: &[u8]) -> Answer {
        let auth = format!("Bearer {SECRET}");
        self.request(
            "POST",
            &format!("/v1/events/{sender}"),
            &[
                ("Authorization", auth.as_str()),
                (
                    "Content-Type",
                    "application/vnd.docker.distribution.events.v1+json",
                ),
            ],
            body,
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer:\n{}", self.log()))
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Answer> {
        request(&self.addr, method, path, headers, body)
    }

    /// The verdict of a digest, waiting for it (at most `timeout`).
    pub fn wait_verdict(&self, digest: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.get(&format!("/v1/verdicts/{digest}"));
            match a.status {
                200 => return a.json(),
                404 => {}
                other => panic!("GET verdict: {other}: {}", a.body),
            }
            assert!(
                Instant::now() < deadline,
                "no verdict for {digest} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One sample of `/metrics` (`name{labels}` exactly as exposed), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == series)
            .map_or(0.0, |(_, v)| v.parse().unwrap())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request over a fresh connection; `None` if nothing answers.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) before it read the whole body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let tool = super::require_tool("openssl", "apt-get install openssl");
    let out = std::process::Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("spawn openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate for 127.0.0.1 named `cn`, written to
/// `cert.pem` and `key.pem` in `dir` (replaced as an operator's tool would).
pub fn self_signed(dir: &Path, cn: &str, serial: &str) {
    let tmp = dir.join("new");
    std::fs::create_dir_all(&tmp).unwrap();
    openssl(
        &tmp,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-set_serial",
            serial,
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    );
    std::fs::copy(tmp.join("cert.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(tmp.join("key.pem"), dir.join("key.pem")).unwrap();
}

/// An HTTPS POST through curl, the server checked against `ca`: the
/// status and the body.
pub fn https_post(
    addr: &str,
    ca: &Path,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    https_post_as(addr, ca, None, path, headers, body)
}

/// [`https_post`] presenting a client certificate and its key.
pub fn https_post_as(
    addr: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let tool = super::require_tool("curl", "apt-get install curl");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let mut cmd = std::process::Command::new(tool);
    cmd.args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}", "--data-binary"])
        .arg(format!("@{}", file.display()));
    for (n, v) in headers {
        cmd.args(["-H", &format!("{n}: {v}")]);
    }
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("spawn curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl https://{addr}{path}: no status: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (status, body.to_string())
}
