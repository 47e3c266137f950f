//! The one way integration tests run the `sizeguard` binary: a scrubbed
//! environment (no real credentials, CA bundles, proxies or GitHub Actions
//! variables of the machine), a temporary `HOME`, and the checks that hold
//! for every run (no panic, no signal, valid UTF-8 output, a failure is one
//! `sizeguard: error:` line).
//!
//! ```ignore
//! let out = Run::new(["check", "--candidate", &c]).cwd(&dir).env("GITHUB_ACTIONS", "true").run();
//! ```
//!
//! [`Run::script`] runs a shell script (the GitHub Action's step) the same
//! way, with sizeguard on `PATH`.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Environment variables that could make a run depend on the machine it runs
/// on (real credentials, CA bundles, proxies, log level, cache location).
/// They are removed for every run unless the test sets them explicitly;
/// the inflater is chosen by the build (scripts/test.sh runs the streaming
/// tests again in the pure-Rust build), not by the caller's environment.
pub const SCRUBBED_ENV: &[&str] = &[
    "REGISTRY_AUTH_FILE",
    "DOCKER_CONFIG",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "RUST_LOG",
    "GH_TOKEN",
    "DOCKER_HOST",
    "SIZEGUARD_CACHE_DIR",
    "SIZEGUARD_CONTENT_SCAN",
    "SIZEGUARD_INFLATE",
    "SIZEGUARD_GITHUB_MAX_WAIT",
    "SIZEGUARD_TEST_BACKOFF_MS",
    "SIZEGUARD_BIN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// Prefixes of variables removed as well: a GitHub Actions runner (this
/// project's CI) sets dozens of them, and sizeguard reads several.
pub const SCRUBBED_PREFIXES: &[&str] = &["GITHUB_", "RUNNER_", "INPUT_", "ACTIONS_"];

const ERROR_PREFIX: &str = "sizeguard: error: ";

/// The one line besides the error that a failing `check` may print: under
/// GitHub Actions, which policy file it read.
pub const POLICY_LINE: &str = "sizeguard: policy file: ";

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

    /// The error line, without the `sizeguard: error: ` prefix.
    pub fn error(&self) -> &str {
        self.stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(ERROR_PREFIX))
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

/// What a run starts: the binary itself, or a bash script that finds it.
#[derive(Debug)]
enum Program {
    Sizeguard,
    Script(PathBuf),
}

/// A sizeguard run being set up; [`Run::run`] starts it and checks it.
#[derive(Debug)]
#[must_use = "a Run does nothing until .run()"]
pub struct Run {
    program: Program,
    args: Vec<OsString>,
    /// In order; `None` removes the variable.
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    stdin: Option<String>,
    wrapper: Vec<OsString>,
    secrets: Vec<String>,
    failure_extra_lines: Vec<String>,
}

impl Run {
    /// `sizeguard ARGS`, the layer cache off (`SIZEGUARD_NO_CACHE`), so every
    /// run streams its layers and no test leans on another's results; cache
    /// tests call [`Run::with_layer_cache`] and pass `--cache-dir`.
    pub fn new<I, S>(args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Run {
            program: Program::Sizeguard,
            args: Vec::new(),
            env: vec![("SIZEGUARD_NO_CACHE".into(), Some("1".into()))],
            cwd: None,
            stdin: None,
            wrapper: Vec::new(),
            secrets: Vec::new(),
            failure_extra_lines: Vec::new(),
        }
        .args(args)
    }

    /// `bash SCRIPT`, with the sizeguard under test first on `PATH` and in
    /// `$SIZEGUARD_BIN` (as action.yml's install step leaves it), in the
    /// same scrubbed environment.
    pub fn script(path: impl Into<PathBuf>) -> Run {
        let bin = Path::new(env!("CARGO_BIN_EXE_sizeguard"));
        let mut path_var = vec![bin.parent().unwrap().to_path_buf()];
        path_var.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut run = Run::new(std::iter::empty::<&str>());
        run.program = Program::Script(path.into());
        run.env("SIZEGUARD_BIN", bin)
            .env("PATH", std::env::join_paths(path_var).unwrap())
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a variable, also one of the scrubbed ones or `HOME`.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Lets the run read and write a layer cache (`--cache-dir` says where;
    /// without it, the cache lives in the temporary `HOME`).
    pub fn with_layer_cache(self) -> Self {
        self.env_remove("SIZEGUARD_NO_CACHE")
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// Runs the program under `wrapper` (e.g. `/usr/bin/time -v -o FILE`);
    /// the wrapper must pass the exit code through and print nothing itself.
    pub fn wrapped_in<I, S>(mut self, wrapper: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = wrapper.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// A string that must appear on neither stdout nor stderr.
    pub fn secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.to_string());
        self
    }

    /// Stderr lines starting with `prefix` that a failing run legitimately
    /// prints besides its one error line (the rest of stderr stays checked).
    pub fn failure_may_also_print(mut self, prefix: &str) -> Self {
        self.failure_extra_lines.push(prefix.to_string());
        self
    }

    /// Starts the run with a fresh empty `HOME` (unless the test set one), so
    /// the machine's real credentials (~/.docker/config.json,
    /// ~/.config/containers/auth.json) and cache are never read, waits for it,
    /// and checks what holds for every run: nothing panicked, the process
    /// exited (not killed by a signal), stdout and stderr are UTF-8, no
    /// secret was printed, and a failure (exit 2 or more: exit 1 is a
    /// verdict, with a report) is exactly one `sizeguard: error:` line.
    #[track_caller]
    pub fn run(self) -> Out {
        let home = tempfile::Builder::new()
            .prefix("sizeguard-home-")
            .tempdir()
            .unwrap();
        let mut cmd = self.command(home.path());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let writer = child.stdin.take().map(|mut pipe| {
            let input = self.stdin.clone().unwrap_or_default();
            // A thread, so that a large stdin cannot deadlock against a full
            // stdout pipe; sizeguard may exit before reading (usage errors),
            // so EPIPE is not a failure.
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            })
        });
        let output = child.wait_with_output().expect("wait for sizeguard");
        if let Some(w) = writer {
            w.join().unwrap();
        }
        let what = self.describe();
        let text = |name: &str, bytes: Vec<u8>| {
            String::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: {name} is not UTF-8: {e}"))
        };
        let stderr = text("stderr", output.stderr);
        let stdout = text("stdout", output.stdout);
        let code = output
            .status
            .code()
            .unwrap_or_else(|| panic!("{what}: killed by a signal: {:?}\n{stderr}", output.status));
        let out = Out {
            code,
            stdout,
            stderr,
        };
        self.check(&out);
        out
    }

    /// The command [`Run::run`] starts, for a test that runs a long-lived
    /// process itself (`sizeguard serve`) in the same scrubbed environment.
    pub fn command(&self, home: &Path) -> Command {
        let bin = OsString::from(env!("CARGO_BIN_EXE_sizeguard"));
        let mut argv = self.wrapper.clone();
        match &self.program {
            Program::Sizeguard => argv.push(bin),
            Program::Script(path) => argv.extend(["bash".into(), path.into()]),
        }
        argv.extend(self.args.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        for (var, _) in std::env::vars_os() {
            let name = var.to_string_lossy();
            if SCRUBBED_PREFIXES.iter().any(|p| name.starts_with(p)) {
                cmd.env_remove(&var);
            }
        }
        cmd.env("HOME", home);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    fn describe(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|a| a.to_string_lossy()).collect();
        match &self.program {
            Program::Sizeguard => format!("sizeguard {args:?}"),
            Program::Script(path) => format!("{} {args:?}", path.display()),
        }
    }

    #[track_caller]
    fn check(&self, out: &Out) {
        let what = self.describe();
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains("panicked"),
                "{what} panicked ({name}):\n{text}"
            );
            for secret in &self.secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{what}: a secret was printed on {name}:\n{text}"
                );
            }
        }
        if out.code < 2 {
            return;
        }
        // Shown with `--nocapture`: what each failure looks like.
        eprintln!("{what} -> exit {}: {}", out.code, out.stderr.trim());
        match self.program {
            Program::Sizeguard => self.check_error_line(out, &what),
            Program::Script(_) => {
                eprintln!("{what} -> stdout: {}", out.stdout.trim());
                check_failed_step(out, &what)
            }
        }
    }

    #[track_caller]
    fn check_error_line(&self, out: &Out, what: &str) {
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| !self.failure_extra_lines.iter().any(|p| l.starts_with(p)))
            .filter(|l| !l.starts_with(POLICY_LINE))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "a failure must be exactly one stderr line (exit {}, {what}):\n{}",
            out.code,
            out.stderr
        );
        assert!(
            lines[0].starts_with(ERROR_PREFIX),
            "error line lacks the `{ERROR_PREFIX}` prefix: {}",
            out.stderr
        );
    }
}

/// A failed action step explains itself in one line each way: at most one
/// `::error` annotation of its own on stdout, at most one sizeguard error
/// line on stderr and nothing else there, and at least one of the two.
#[track_caller]
fn check_failed_step(out: &Out, what: &str) {
    let annotations = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .count();
    let stderr: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(POLICY_LINE))
        .collect();
    assert!(
        annotations <= 1 && stderr.len() <= 1 && annotations + stderr.len() >= 1,
        "a failed step must say why in one annotation and/or one error line (exit {}, {what}):\nstdout:\n{}\nstderr:\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    if let Some(line) = stderr.first() {
        assert!(
            line.starts_with(ERROR_PREFIX),
            "the step's stderr is not a sizeguard error line: {}",
            out.stderr
        );
    }
}

/// `Run::new(args)` with extra `env` and an optional `stdin`: the short form
/// golden.rs uses.
pub fn sizeguard(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut run = Run::new(args);
    for (key, value) in env {
        run = run.env(key, value);
    }
    if let Some(text) = stdin {
        run = run.stdin(text);
    }
    run.run()
}
