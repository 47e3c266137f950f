//! Debian's Chromium, headless, for what a person looks at: a page is
//! loaded with its scripts run (`--dump-dom`) or drawn to a PNG
//! (`--screenshot`). Each run has a fresh profile and none of Chromium's
//! own network traffic (this machine's network is closed; Chromium would
//! otherwise try Google's hosts at every start).
//!
//! The JavaScript a page needs comes from `tests/js/node_modules`, which
//! `scripts/install-deps.sh` fills with `npm ci` (versions pinned by
//! `tests/js/package-lock.json`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::require_tool;

pub fn chromium() -> PathBuf {
    require_tool("chromium", "apt-get install chromium")
}

/// The flags every run takes.
pub fn base_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// The repository's `tests/js` directory.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// A file of an npm package under `tests/js/node_modules`, or a panic
/// saying how to install it.
pub fn npm_file(relative: &str) -> PathBuf {
    let path = js_dir().join("node_modules").join(relative);
    assert!(
        path.is_file(),
        "{} missing: install the browser tests' JavaScript with \
         `npm ci --prefix tests/js` (or run scripts/test.sh)",
        path.display()
    );
    path
}

/// Runs Chromium on `url` with `extra` flags and returns its stdout; a
/// run that fails or takes over a minute fails the test with Chromium's
/// stderr.
fn run(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args(base_flags(profile.path())).args(extra).arg(url);
    let stdout = profile.path().join("stdout");
    let stderr = profile.path().join("stderr");
    cmd.stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = cmd.spawn().expect("start chromium");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {url} took over a minute: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium {url} failed ({status}): {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    std::fs::read_to_string(&stdout).unwrap()
}

/// The page's DOM after its scripts ran (up to `budget` of virtual time:
/// timers fire at once, so a page that renders on load is done well
/// before).
pub fn dump_dom(url: &str, budget: Duration) -> String {
    run(
        url,
        &[
            "--allow-file-access-from-files".to_string(),
            format!("--virtual-time-budget={}", budget.as_millis()),
            "--dump-dom".to_string(),
        ],
    )
}

/// The page drawn to `out` (PNG) in a `width`×`height` window.
pub fn screenshot(url: &str, out: &Path, width: u32, height: u32) {
    run(
        url,
        &[
            "--allow-file-access-from-files".to_string(),
            "--virtual-time-budget=5000".to_string(),
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", out.display()),
        ],
    );
    assert!(
        std::fs::metadata(out).is_ok_and(|m| m.len() > 0),
        "chromium wrote no screenshot to {}",
        out.display()
    );
}
