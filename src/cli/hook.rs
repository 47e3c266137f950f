//! `sizeguard hook install|uninstall`: the git pre-push hook. The hook is a
//! short shell script that runs `sizeguard check --format short` at the top
//! of the work tree, so the repository's `sizeguard.toml` (the file CI
//! reads) supplies every rule, node and baseline; the check itself is the
//! app layer's, as for `sizeguard check`.
//!
//! A hook that was there before is never overwritten: it is moved aside to
//! `pre-push.sizeguard-previous` and the new hook runs it first, with git's
//! arguments and the ref lines git wrote on standard input, whatever the
//! check then decides (`--force` keeps it aside without running it).
//! `hook uninstall` puts it back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::args::{HookAction, HookArgs};
use crate::config::Settings;
use crate::error::{Error, ExitCode};
use crate::source::reference::ImageRef;

/// The line that tells our hook from anyone else's.
const MARKER: &str = "# sizeguard pre-push hook";
/// Where a hook that was there before goes.
const PREVIOUS: &str = "pre-push.sizeguard-previous";
/// The line of our hook that runs the previous one; its presence says the
/// hook chains.
const CHAIN_LINE: &str = "chain=1";

pub fn run(args: HookArgs) -> Result<ExitCode, Error> {
    let hooks = hooks_dir()?;
    let message = match args.action {
        HookAction::Install { image, force } => install(&hooks, image, force)?,
        HookAction::Uninstall => uninstall(&hooks)?,
    };
    eprintln!("sizeguard: {message}");
    Ok(ExitCode::Ok)
}

/// What git says about the repository of the working directory.
fn git(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| Error::usage("running git").with_source(e))?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The hooks directory git runs hooks from (`core.hooksPath` if set).
fn hooks_dir() -> Result<PathBuf, Error> {
    let dir = git(&["rev-parse", "--git-path", "hooks"])?;
    let cwd =
        std::env::current_dir().map_err(|e| Error::usage("working directory").with_source(e))?;
    Ok(cwd.join(dir))
}

fn is_ours(hook: &Path) -> bool {
    std::fs::read_to_string(hook).is_ok_and(|s| s.contains(MARKER))
}

fn io_error(what: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::usage(what.display()).with_source(e)
}

fn install(hooks: &Path, image: Option<String>, force: bool) -> Result<String, Error> {
    match &image {
        // A typo should fail now, not at the next push.
        Some(r) => {
            ImageRef::parse(r)?;
        }
        None => require_configured_image()?,
    }
    std::fs::create_dir_all(hooks).map_err(io_error(hooks))?;
    let hook = hooks.join("pre-push");
    let previous = hooks.join(PREVIOUS);
    let chain = if is_ours(&hook) {
        // Reinstalling keeps what the first install decided, unless forced.
        !force
            && std::fs::read_to_string(&hook)
                .is_ok_and(|s| s.lines().any(|l| l.trim() == CHAIN_LINE))
    } else if hook.exists() {
        if previous.exists() {
            return Err(Error::usage(format!(
                "{} exists and so does {}: move one of them away first",
                hook.display(),
                previous.display()
            )));
        }
        std::fs::rename(&hook, &previous).map_err(io_error(&hook))?;
        !force
    } else {
        false
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::usage("locating the sizeguard executable").with_source(e))?;
    write_hook(&hook, &script(&exe, image.as_deref(), chain))?;
    let what = image
        .as_deref()
        .unwrap_or("the image named in sizeguard.toml");
    Ok(format!(
        "installed {}: checks {what} before every push{}",
        hook.display(),
        match (chain, previous.exists()) {
            (true, _) => format!("; the previous hook ({PREVIOUS}) still runs first"),
            (false, true) => format!("; the previous hook is kept as {PREVIOUS}"),
            (false, false) => String::new(),
        }
    ))
}

/// Without `--image`, the image comes from `image` in the repository's
/// policy file at every push; it must be there now.
fn require_configured_image() -> Result<(), Error> {
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let file = Settings::discover(&top).ok_or_else(|| {
        Error::usage(format!(
            "no image: give --image REF, or write `image = \"docker-daemon:…\"` in {}",
            top.join(crate::config::FILE_NAME).display()
        ))
    })?;
    match Settings::load(&file)?.image {
        Some(_) => Ok(()),
        None => Err(Error::usage(format!(
            "no image: give --image REF, or set `image` in {}",
            file.display()
        ))),
    }
}

/// Writes the hook whole or not at all, executable.
fn write_hook(hook: &Path, text: &str) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let dir = hook.parent().unwrap_or(Path::new("."));
    let failed = io_error(hook);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(&failed)?;
    tmp.write_all(text.as_bytes()).map_err(&failed)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(&failed)?;
    tmp.persist(hook).map_err(|e| failed(e.error))?;
    Ok(())
}

/// `'text'` for sh, whatever the text holds.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The hook. sizeguard is called by the path that installed it (git
/// clients often run hooks with a bare `PATH`), else from `PATH`.
fn script(exe: &Path, image: Option<&str>, chain: bool) -> String {
    let candidate = image
        .map(|i| format!(" --candidate {}", sh_quote(i)))
        .unwrap_or_default();
    let previous = if chain {
        format!(
            r#"{CHAIN_LINE}
previous="$(dirname "$0")/{PREVIOUS}"
if [ -x "$previous" ]; then
    # The previous hook reads git's ref lines too: keep a copy for it.
    refs=$(mktemp) || exit 1
    trap 'rm -f "$refs"' EXIT
    cat >"$refs"
    "$previous" "$@" <"$refs" || status=$?
fi
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"#!/bin/sh
{MARKER}: checks the local image against the repository's
# sizeguard.toml before every push. `sizeguard hook uninstall` removes it;
# `git push --no-verify` skips it once.
sizeguard={exe}
[ -x "$sizeguard" ] || sizeguard=sizeguard
status=0
{previous}cd "$(git rev-parse --show-toplevel)" || exit 1
if ! "$sizeguard" check --format short{candidate} </dev/null >&2; then
    echo "sizeguard: push stopped by the image size check (git push --no-verify skips it)" >&2
    status=1
fi
exit $status
"#,
        exe = sh_quote(&exe.to_string_lossy()),
    )
}

fn uninstall(hooks: &Path) -> Result<String, Error> {
    let hook = hooks.join("pre-push");
    let previous = hooks.join(PREVIOUS);
    if !hook.exists() {
        return Err(Error::usage(format!(
            "{}: no pre-push hook to uninstall",
            hook.display()
        )));
    }
    if !is_ours(&hook) {
        return Err(Error::usage(format!(
            "{} was not installed by sizeguard; left as it is",
            hook.display()
        )));
    }
    std::fs::remove_file(&hook).map_err(io_error(&hook))?;
    if previous.exists() {
        std::fs::rename(&previous, &hook).map_err(io_error(&previous))?;
        return Ok(format!(
            "removed the sizeguard hook; {} is the previous hook again",
            hook.display()
        ));
    }
    Ok(format!("removed {}", hook.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_any_text() {
        assert_eq!(sh_quote("a'b c"), r"'a'\''b c'");
        let s = script(
            Path::new("/opt/x y/sizeguard"),
            Some("docker-daemon:app:dev"),
            true,
        );
        assert!(s.contains("sizeguard='/opt/x y/sizeguard'"), "{s}");
        assert!(s.contains("--candidate 'docker-daemon:app:dev'"), "{s}");
        assert!(s.lines().any(|l| l == CHAIN_LINE));
        let plain = script(Path::new("/bin/sizeguard"), None, false);
        assert!(!plain.contains(PREVIOUS) && !plain.contains("--candidate"));
    }
}
