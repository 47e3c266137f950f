//! The git pre-push hook end to end: a bare remote and a clone that
//! already has a pre-push hook of its own (it records its arguments and
//! the ref lines on its standard input), `sizeguard hook install`, and real
//! `git push`es: refused while the repository's policy fails, let through
//! once it passes, the previous hook run every time; `hook uninstall` puts
//! the previous hook back.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::fixture::demo;
use support::require_tool;
use support::run::Run;

/// `git ARGS` in `dir`, in an environment of the test's own (no global
/// configuration, a fixed identity, the layer cache off).
fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    let git = require_tool("git", "apt-get install git");
    Command::new(git)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("SIZEGUARD_NO_CACHE", "1")
        .output()
        .expect("spawn git")
}

#[track_caller]
fn git_ok(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = git(dir, home, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The policy: the demo's v2 against its v1, with a disk growth limit.
fn write_policy(work: &Path, max_growth: &str) {
    std::fs::write(
        work.join("sizeguard.toml"),
        format!(
            // Only the growth limit judges: the default warnings are off.
            "image = \"{}\"\nbaseline = \"{}\"\nmax-growth = \"disk_bytes={max_growth}\"\ndefault-rules = false\n",
            demo("v2"),
            demo("v1")
        ),
    )
    .unwrap();
}

struct Repo {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    remote: PathBuf,
    work: PathBuf,
    log: PathBuf,
}

/// A bare remote, a clone of it, and the clone's own pre-push hook that
/// logs what git hands it.
fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let (home, remote, work, log) = (
        tmp.path().join("home"),
        tmp.path().join("remote.git"),
        tmp.path().join("work"),
        tmp.path().join("log"),
    );
    for d in [&home, &log] {
        std::fs::create_dir(d).unwrap();
    }
    git_ok(
        tmp.path(),
        &home,
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git_ok(tmp.path(), &home, &["clone", "-q", "remote.git", "work"]);
    git_ok(&work, &home, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let hook = work.join(".git/hooks/pre-push");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{0}/args'\ncat >> '{0}/stdin'\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    Repo {
        _tmp: tmp,
        home,
        remote,
        work,
        log,
    }
}

impl Repo {
    fn commit(&self, file: &str) -> String {
        std::fs::write(self.work.join(file), file).unwrap();
        git_ok(&self.work, &self.home, &["add", "-A"]);
        git_ok(&self.work, &self.home, &["commit", "-q", "-m", file]);
        git_ok(&self.work, &self.home, &["rev-parse", "HEAD"])
    }

    /// `git push`: whether it went through, and everything it printed.
    fn push(&self) -> (bool, String) {
        let out = git(&self.work, &self.home, &["push", "origin", "main"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// The commit the remote's `main` points at, if any.
    fn remote_main(&self) -> Option<String> {
        let out = git(
            &self.remote,
            &self.home,
            &["rev-parse", "--verify", "-q", "main"],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn logged(&self, file: &str) -> String {
        std::fs::read_to_string(self.log.join(file)).unwrap_or_default()
    }

    fn sizeguard(&self, args: &[&str]) -> support::run::Out {
        Run::new(["hook"]).args(args).cwd(&self.work).run()
    }
}

#[test]
fn the_pre_push_hook_stops_a_failing_image_and_chains_the_previous_hook() {
    let repo = repo();
    let original = std::fs::read_to_string(repo.work.join(".git/hooks/pre-push")).unwrap();
    write_policy(&repo.work, "1KiB");
    repo.sizeguard(&["install"]).assert_ok();
    let hooks = repo.work.join(".git/hooks");
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-push.sizeguard-previous")).unwrap(),
        original,
        "the previous hook is moved aside, unchanged"
    );

    // The policy fails: the push is refused, the previous hook still ran.
    let first = repo.commit("a");
    let (pushed, stderr) = repo.push();
    assert!(!pushed, "the push went through:\n{stderr}");
    assert!(
        stderr.contains("FAIL") && stderr.contains("growth"),
        "{stderr}"
    );
    assert!(stderr.contains("full report: sizeguard check"), "{stderr}");
    assert!(stderr.contains("push stopped"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colours outside a terminal: {stderr}"
    );
    assert_eq!(repo.remote_main(), None);
    let zeros = "0".repeat(40);
    let url = git_ok(&repo.work, &repo.home, &["remote", "get-url", "origin"]);
    assert_eq!(repo.logged("args"), format!("origin {url}\n"));
    assert_eq!(
        repo.logged("stdin"),
        format!("refs/heads/main {first} refs/heads/main {zeros}\n")
    );

    // Within the policy, the same push goes through.
    write_policy(&repo.work, "1GiB");
    let second = repo.commit("b");
    let (pushed, stderr) = repo.push();
    assert!(pushed, "the push was refused:\n{stderr}");
    assert!(stderr.contains("PASS"), "{stderr}");
    assert_eq!(repo.remote_main(), Some(second.clone()));
    assert_eq!(repo.logged("args").lines().count(), 2);
    assert!(repo.logged("stdin").ends_with(&format!(
        "refs/heads/main {second} refs/heads/main {zeros}\n"
    )));

    // Reinstalling keeps the chain; uninstalling restores the previous hook.
    repo.sizeguard(&["install"]).assert_ok();
    assert!(hooks.join("pre-push.sizeguard-previous").exists());
    repo.sizeguard(&["uninstall"]).assert_ok();
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-push")).unwrap(),
        original
    );
    assert!(!hooks.join("pre-push.sizeguard-previous").exists());
    let out = repo.sizeguard(&["uninstall"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.error().contains("not installed by sizeguard"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_hook_follows_core_hooks_path_and_checks_what_install_names() {
    let repo = repo();
    git_ok(
        &repo.work,
        &repo.home,
        &["config", "core.hooksPath", ".githooks"],
    );
    // No policy file: without --image there is nothing to check.
    let out = repo.sizeguard(&["install"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.error().contains("--image"), "{}", out.stderr);
    let out = repo.sizeguard(&["install", "--image", "Not A Ref!"]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    repo.sizeguard(&["install", "--image", &demo("v2")])
        .assert_ok();
    let hook = repo.work.join(".githooks/pre-push");
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(script.contains(&demo("v2")), "{script}");
    // The image alone, no policy: nothing fails, the push goes through;
    // the hook git ran before (in .git/hooks) is not the one git runs now.
    repo.commit("a");
    let (pushed, output) = repo.push();
    assert!(pushed, "{output}");
    assert_eq!(repo.logged("args"), "");
    repo.sizeguard(&["uninstall"]).assert_ok();
    assert!(!hook.exists());
}

#[test]
fn a_forced_install_keeps_the_previous_hook_aside_without_running_it() {
    let repo = repo();
    let original = std::fs::read_to_string(repo.work.join(".git/hooks/pre-push")).unwrap();
    repo.sizeguard(&["install", "--force", "--image", &demo("v2")])
        .assert_ok();
    repo.commit("a");
    let (pushed, output) = repo.push();
    assert!(pushed, "{output}");
    assert_eq!(repo.logged("args"), "", "the replaced hook ran");
    // Installing again over a foreign hook while one is kept aside would
    // lose one of them: refused.
    let hooks = repo.work.join(".git/hooks");
    std::fs::write(hooks.join("pre-push"), "#!/bin/sh\nexit 0\n").unwrap();
    let out = repo.sizeguard(&["install", "--image", &demo("v2")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.error().contains("move one of them away"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(hooks.join("pre-push")).unwrap();
    repo.sizeguard(&["install", "--image", &demo("v2")])
        .assert_ok();
    repo.sizeguard(&["uninstall"]).assert_ok();
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-push")).unwrap(),
        original
    );
}
