//! The one way integration tests run the `sizeguard` binary: a scrubbed
//! environment (no real credentials, CA bundles, proxies or GitHub Actions
//! variables of the machine), a temporary `HOME`, and the checks that hold
//! for every run (no panic, no signal, a failure is one `sizeguard: error:`
//! line).

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

/// Environment variables that could make a run depend on the machine it runs
/// on (real credentials, CA bundles, proxies, log level). They are removed
/// for every run unless the test sets them explicitly.
pub const SCRUBBED_ENV: &[&str] = &[
    "REGISTRY_AUTH_FILE",
    "DOCKER_CONFIG",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "RUST_LOG",
    "GITHUB_ACTIONS",
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_ENV",
    "GITHUB_EVENT_PATH",
    "GITHUB_TOKEN",
    "DOCKER_HOST",
    "SIZEGUARD_CACHE_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The single error line, without the `sizeguard: error: ` prefix.
    pub fn error(&self) -> &str {
        self.stderr
            .trim()
            .strip_prefix("sizeguard: error: ")
            .unwrap_or_else(|| panic!("stderr is not a sizeguard error: {:?}", self.stderr))
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "sizeguard failed (exit {}):\nstderr: {}\nstdout: {}",
            self.code, self.stderr, self.stdout
        );
        self
    }

    /// Exit 3 and a one-line error that contains every `needles` entry
    /// (case-insensitive; each entry is a list of alternatives).
    #[track_caller]
    pub fn assert_measure_error(&self, needles: &[&[&str]]) -> &Self {
        assert_eq!(
            self.code, 3,
            "expected exit 3:\nstderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        let msg = self.error().to_lowercase();
        for alternatives in needles {
            assert!(
                alternatives.iter().any(|n| msg.contains(&n.to_lowercase())),
                "error should mention one of {alternatives:?}: {}",
                self.stderr.trim()
            );
        }
        self
    }
}

/// Runs sizeguard with `args`, extra `env` (which may override the scrubbed
/// variables and `HOME`) and optional `stdin`. `HOME` is a fresh empty temp
/// dir unless `env` sets it, so the machine's real credentials
/// (~/.docker/config.json, ~/.config/containers/auth.json) are never read.
///
/// Checks what holds for every run: nothing panicked, the process exited
/// (not killed by a signal), and a failure is exactly one non-empty stderr
/// line starting with `sizeguard: error: `.
pub fn sizeguard(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let home = tempfile::Builder::new()
        .prefix("sizeguard-home-")
        .tempdir()
        .unwrap();
    let mut cmd = super::sizeguard();
    cmd.args(args);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn sizeguard");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // sizeguard may exit before reading (usage errors): ignore EPIPE.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("wait for sizeguard");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("sizeguard killed by a signal: {:?}\n{stderr}", out.status));
    assert!(
        !stderr.contains("panicked at"),
        "sizeguard panicked (args {args:?}):\n{stderr}"
    );
    // Exit 1 is a verdict (a fail rule fired), not an error: it prints a
    // report, not an error line.
    if code >= 2 {
        // Shown with `--nocapture`: what each failure looks like.
        eprintln!("sizeguard {args:?} -> exit {code}: {}", stderr.trim());
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "a failure must be exactly one stderr line (exit {code}, args {args:?}):\n{stderr}"
        );
        assert!(
            lines[0].starts_with("sizeguard: error: "),
            "error line lacks the `sizeguard: error: ` prefix: {stderr}"
        );
    }
    Out {
        code,
        stdout,
        stderr,
    }
}
