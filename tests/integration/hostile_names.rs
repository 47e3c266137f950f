//! Reports of an image whose file names are chosen by an attacker (as a
//! pull request chooses them), rendered by GitHub's own Markdown renderer
//! (`cmark-gfm` with GitHub's extensions): the comment keeps exactly its
//! headings, tables and rows, shows no HTML, mention or link of the
//! attacker's, and the terminal report no control character.

use crate::support;

use std::path::Path;

use support::github_markdown::{outside_code, render};
use support::github_standin::GithubStandin;
use support::layout::{Comp, LayerSpec, LayoutBuilder};
use support::run::Run;

/// Breaks out of a table cell, a code span, a line; adds HTML, a mention
/// and a heading that says all is well.
const BREAKOUT: &str = "a|b`c <img src=x> @user\n## ✅ all clear";
/// Other ways out: a backslash escaping the cell's pipe escape, a longer
/// backtick fence and the end of the `<details>` block, a link and
/// emphasis, a terminal escape, a carriage return and a bidi override.
const ESCAPE_PIPE: &str = "x\\|y\\";
const FENCE: &str = "```</details>\n\n# done";
const LINK: &str = "[click](https://evil.example) *now* &amp; @org/team";
const TERMINAL: &str = "red\u{1b}[31m\rback\u{202e}txt.exe";
/// The build step of the hostile layer, as its author wrote it.
const HOSTILE_STEP: &str = "/bin/sh -c #(nop) COPY a|b`c <img src=x> @user\n## ✅ all clear [x](https://evil.example) \u{1b}[31m";

/// `oci:DIR:v1` (a small base) and `oci:DIR:v2` (the base and a layer of
/// hostile names, each larger than the base's files so that every list of
/// largest files shows them).
fn layout(dir: &Path) -> (String, String) {
    let mut b = LayoutBuilder::new(dir);
    let base = b.add_layer(
        &LayerSpec::new().dir("etc").file("etc/hostname", 2_000),
        Comp::Gzip,
    );
    let hostile = b.add_layer(
        &LayerSpec::new()
            .file(BREAKOUT, 90_000)
            .file(ESCAPE_PIPE, 80_000)
            .file(FENCE, 70_000)
            .file(LINK, 60_000)
            .file(TERMINAL, 50_000),
        Comp::Gzip,
    );
    b.add_tagged_image(std::slice::from_ref(&base), "v1");
    b.add_image_with_steps(&[base, hostile], &["FROM scratch", HOSTILE_STEP], "v2");
    let d = dir.display();
    (format!("oci:{d}:v1"), format!("oci:{d}:v2"))
}

fn check(candidate: &str, baseline: &str, extra: &[&str]) -> String {
    let out = Run::new(["check", "--no-config", "--candidate", candidate])
        .args(["--baseline", baseline])
        .args(extra)
        .run();
    out.assert_ok();
    out.stdout
}

/// The cells of each row of each table: `<th>`/`<td>` per `<tr>`.
fn tables(html: &str) -> Vec<Vec<usize>> {
    html.split("<table>")
        .skip(1)
        .map(|t| {
            let t = &t[..t.find("</table>").expect("closed table")];
            t.split("<tr>")
                .skip(1)
                .map(|row| row.matches("<td").count() + row.matches("<th").count())
                .collect()
        })
        .collect()
}

/// What every rendering of the hostile image must hold.
#[track_caller]
fn assert_inert(markdown: &str) {
    let html = render(markdown);
    let tags = |t: &str| html.matches(t).count();
    // Headings: the platform's only.
    assert_eq!(tags("<h4>"), 1, "{html}");
    for h in ["<h1>", "<h2>", "<h3>", "<h5>", "<h6>"] {
        assert_eq!(tags(h), 0, "{h} in {html}");
    }
    assert!(html.contains("<h4>linux/amd64</h4>"), "{html}");
    // Tables: figures (header + 4 figures + rollout cost), the layer diff
    // (header + 2 layers) and the growth by path (header + the 5 names),
    // each row with all its cells (the last one the build step).
    assert_eq!(
        tables(&html),
        [vec![4; 6], vec![8; 3], vec![6; 6]],
        "tables and cells:\n{html}"
    );
    // The hostile build step shows shortened, in code, in both tables.
    assert_eq!(
        html.matches("<code>COPY a|b`c &lt;img src=x&gt; @user ## ✅ all clear")
            .count(),
        6,
        "{html}"
    );
    // One <details> block, still open to its end; no attacker HTML, link
    // or mention.
    assert_eq!((tags("<details>"), tags("</details>")), (1, 1), "{html}");
    assert!(html.trim_end().ends_with("</details>"), "{html}");
    for bad in ["<img", "<a ", "<em>", "<strong>now", "<h2"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    let text = outside_code(&html);
    for mention in ["@user", "@org"] {
        assert!(!text.contains(mention), "{mention} outside code: {text}");
    }
    // The names are shown whole, in code, line breaks as `\n`.
    for shown in [
        "<code>/a|b`c &lt;img src=x&gt; @user\\n## ✅ all clear</code>",
        "<code>/```&lt;/details&gt;\\n\\n# done</code>",
        // (The layer's paths are normalised: `//` is one separator.)
        "<code>/[click](https:/evil.example) *now* &amp;amp; @org/team</code>",
        "<code>/red\\u{1b}[31m\\rback\\u{202e}txt.exe</code>",
    ] {
        assert!(html.contains(shown), "{shown} not in {html}");
    }
}

#[test]
fn hostile_file_names_render_inert_in_the_comment_and_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = layout(&dir.path().join("layout"));

    let markdown = check(&v2, &v1, &["--format", "markdown"]);
    assert_inert(&markdown);
    // A pipe escape escaped by the name's own backslash still ends no cell
    // (checked by the cell counts above): in a table the name shows one
    // backslash more, elsewhere as it is.
    let html = render(&markdown);
    assert!(html.contains("<td><code>/a|b`c"), "{html}");
    assert!(
        html.contains("<code>/x\\\\|y\\</code> 78.1 KiB, <code>/```"),
        "{html}"
    );
    assert!(
        html.contains("<code>/x\\|y\\</code> 78.1 KiB, <code>/```"),
        "{html}"
    );

    // The terminal report: one line per row, no control character.
    let table = check(&v2, &v1, &[]);
    assert!(
        !table
            .chars()
            .any(|c| c.is_control() && c != '\n' || c == '\u{202e}'),
        "{table:?}"
    );
    assert!(
        table.contains("/a|b`c <img src=x> @user\\n## ✅ all clear"),
        "{table}"
    );
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with("::") || l.starts_with("##"))
    );
}

#[test]
fn the_comment_of_a_hostile_image_is_rendered_from_the_json_and_inert() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = layout(&dir.path().join("layout"));
    let json = dir.path().join("report.json");
    check(
        &v2,
        &v1,
        &["--format", "json", "-o", json.to_str().unwrap()],
    );
    let markdown = check(&v2, &v1, &["--format", "markdown"]);

    let token = "ghs_hostileNamesT0ken";
    let api = GithubStandin::start(token);
    Run::new(["comment", "--report", json.to_str().unwrap(), "--pr", "3"])
        .env("GITHUB_API_URL", api.url())
        .env("GITHUB_TOKEN", token)
        .env("GITHUB_REPOSITORY", "octo-org/shop")
        .secret(token)
        .run()
        .assert_ok();
    let c = api.comments(3);
    assert_eq!(c.len(), 1);
    let (marker, body) = c[0].body.split_once('\n').unwrap();
    assert_eq!(marker, "<!-- sizeguard:layout -->");
    // Read back from JSON, the report renders exactly as in process; the
    // comment's one-line footer follows it.
    let (report, footer) = body.rsplit_once("\n\n<sub>").unwrap();
    assert_eq!(format!("{report}\n"), markdown);
    assert!(footer.starts_with("sizeguard "), "{footer}");
    assert_inert(report);
}

/// Text an image chooses that GitHub would turn into a link, emphasis or
/// strikethrough (cmark-gfm's autolink and strikethrough extensions), or
/// link after rendering (issue and commit references).
const ACTIVE: &[&str] = &[
    "https://evil.example/x",
    "see www.evil.example now",
    "a_b_c_",
    "_em_ and __strong__",
    "~~strike~~ and ~one~",
    "#123",
    "org/repo#1",
    "GH-7",
    "0123456789abcdef0123456789abcdef01234567",
    "fix deadbee1.",
    "mail me@evil.example",
];

/// Rendered as GitHub renders comment text, `md` shows no link, emphasis
/// or strikethrough, in a list item and in a table cell.
#[track_caller]
fn assert_no_markup(md: &str, what: &str) {
    let html = render(&format!("- {md}\n\n| x |\n|---|\n| {md} |\n"));
    for bad in ["<a", "<del", "<em", "<strong", "<s>"] {
        assert!(!html.contains(bad), "{bad} for {what:?}: {md:?} -> {html}");
    }
}

#[test]
fn links_emphasis_and_references_from_an_image_render_as_text() {
    use sizeguard::report::escape::md_text;
    for s in ACTIVE {
        assert_no_markup(&md_text(s), s);
    }
    // GitHub links `#123`, `org/repo#1` and commit ids in the rendered
    // text, where a backslash escape is already gone: a word joiner
    // (U+2060) inside each keeps it from being one.
    for (s, shown) in [
        ("#123", "#\u{2060}123"),
        ("org/repo#1", "org/repo#\u{2060}1"),
        ("GH-7", "GH-\u{2060}7"),
        (
            "0123456789abcdef0123456789abcdef01234567",
            "0\u{2060}123456789abcdef0123456789abcdef01234567",
        ),
        ("@user", "@\u{200b}user"),
    ] {
        let html = render(&md_text(s));
        assert!(html.contains(shown), "{s}: {html:?}");
    }
    // The URL still reads as itself.
    let html = render(&md_text("https://evil.example/x"));
    assert!(html.contains("https://evil.example/x"), "{html}");

    // End to end: an image whose name carries them (the headline's bold
    // name) and whose files and build step do (in code).
    let dir = tempfile::tempdir().unwrap();
    let name = "a_b_c_ ~~strike~~ #123 www.evil.example deadbee1 _x_";
    let mut b = LayoutBuilder::new(&dir.path().join(name));
    let base = b.add_layer(&LayerSpec::new().file("etc/hostname", 2_000), Comp::Gzip);
    let mut spec = LayerSpec::new();
    for (i, s) in ACTIVE.iter().enumerate() {
        spec = spec.file(&format!("{s}-{i}"), 10_000 + i as u64 * 1000);
    }
    let hostile = b.add_layer(&spec, Comp::Gzip);
    b.add_tagged_image(std::slice::from_ref(&base), "v1");
    b.add_image_with_steps(&[base, hostile], &["FROM scratch", &ACTIVE.join(" ")], "v2");
    let d = b.dir().display().to_string();
    let markdown = check(
        &format!("oci:{d}:v2"),
        &format!("oci:{d}:v1"),
        &["--format", "markdown"],
    );
    assert!(
        markdown.contains(
            "**a_b_c\\_ \\~\\~strike\\~\\~ #&#8288;123 www\\.evil.example d&#8288;eadbee1 \\_x\\_**"
        ),
        "{markdown}"
    );
    let html = render(&markdown);
    for bad in ["<a", "<del", "<em", "<s>"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
}
