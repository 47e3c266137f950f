//! Markdown as GitHub renders a comment: cmark-gfm, the reference
//! implementation of GitHub Flavored Markdown, with the extensions GitHub
//! turns on (tables, strikethrough, autolinks, the tag filter, task lists).
//! Raw HTML is passed through (`--unsafe`): GitHub sanitises it afterwards,
//! so any that got out of its code span shows here.

use std::io::Write;
use std::process::{Command, Stdio};

use super::require_tool;

/// The HTML GitHub would make of `markdown`.
pub fn render(markdown: &str) -> String {
    let cmark = require_tool("cmark-gfm", "apt-get install cmark-gfm");
    let mut child = Command::new(cmark)
        .args(["--unsafe", "--to", "html"])
        .args(["-e", "table", "-e", "strikethrough", "-e", "autolink"])
        .args(["-e", "tagfilter", "-e", "tasklist"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run cmark-gfm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(markdown.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The HTML with every `<code>…</code>` taken out: what GitHub scans for
/// mentions and references.
pub fn outside_code(html: &str) -> String {
    let mut rest = html;
    let mut out = String::new();
    while let Some(i) = rest.find("<code>") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("</code>").expect("closed code") + i;
        rest = &rest[end + "</code>".len()..];
    }
    out.push_str(rest);
    out
}
