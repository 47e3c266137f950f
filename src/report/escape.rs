//! Every string that comes from an image or a report (file names, image
//! references, platforms, labels, messages quoting them) is chosen by
//! whoever built the image: in a pull request, the attacker. This is the
//! one place such text is made inert for the place it lands in, and every
//! renderer and publisher goes through it:
//!
//! - [`plain`]: a terminal or a CI log (`--format table`, log lines): no
//!   control character, so no new line (a `::command::` the runner would
//!   obey) and no terminal escape sequence.
//! - [`md_text`]: Markdown prose, headings, list items and table cells
//!   (GitHub's renderer, cmark-gfm): no HTML (entities), no `@mention`
//!   (`@` followed by a zero-width space, as Renovate and Dependabot write
//!   it), no link, emphasis or strikethrough syntax, no autolink (the colon
//!   of `://` and the dot of `www.` escaped), no reference GitHub links
//!   after rendering (`#123`, `org/repo#1`, `GH-1` and commit-like hex
//!   words get a word joiner, U+2060, which its matching does not cross;
//!   a backslash escape would be gone by then), no `|` that ends a cell,
//!   no line break that starts a block of its own.
//! - [`md_code`] and [`md_code_cell`]: a code span whose fence is longer
//!   than any backtick run inside, so the text cannot close it early.
//! - [`command_data`] and [`command_property`]: a workflow command
//!   (`::warning title=...::message`), escaped as the runner unescapes it.
//! - [`output_entry`]: one `NAME=value` entry of `$GITHUB_OUTPUT` or
//!   `$GITHUB_ENV`, in the documented delimiter form when the value has a
//!   line break, with a random delimiter that does not occur in it.
//!
//! Benign text (no control character, none of the few Markdown characters
//! escaped) comes out unchanged: the reports of ordinary images are byte for
//! byte what they were.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};

use crate::error::Error;

pub use crate::plain_text::escape as plain;
use crate::plain_text::hidden;

/// Inline Markdown text, safe in a paragraph, a heading, a list item and a
/// table cell.
pub fn md_text(s: &str) -> Cow<'_, str> {
    let chars: Vec<char> = s.chars().collect();
    if !chars
        .iter()
        .any(|&c| hidden(c) || "\\|&<>@[]`*~#".contains(c))
        && !(0..chars.len()).any(|i| needs_inert(&chars, i))
    {
        return Cow::Borrowed(s);
    }
    let s = plain(s);
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // GitHub links `@name` (a notification) in text, never in code.
            '@' => out.push_str("@&#8203;"),
            // `#123`, `org/repo#123`: GitHub links issues and pull
            // requests by number after rendering (a backslash escape is
            // gone by then); a word joiner keeps the number apart.
            '#' if chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                out.push_str("#&#8288;");
            }
            // Backslashes first doubled, so none can escape what follows;
            // `~` is strikethrough (one or two, even inside a word).
            '\\' | '|' | '[' | ']' | '`' | '*' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            // `_` only emphasises where it is not inside a word.
            '_' if !inside_word(&chars, i) => out.push_str("\\_"),
            // `scheme://`: the autolink extension links it at the colon;
            // escaped, the colon is no longer one.
            ':' if chars.get(i + 1) == Some(&'/') && chars.get(i + 2) == Some(&'/') => {
                out.push_str("\\:");
            }
            // `www.`: linked when the dot follows; escaped, it does not.
            '.' if i >= 3 && chars[i - 3..i].iter().all(|c| c.eq_ignore_ascii_case(&'w')) => {
                out.push_str("\\.");
            }
            // `GH-123`: another issue reference GitHub links.
            '-' if i >= 2
                && chars[i - 2..i]
                    .iter()
                    .collect::<String>()
                    .eq_ignore_ascii_case("gh")
                && chars.get(i + 1).is_some_and(char::is_ascii_digit) =>
            {
                out.push_str("-&#8288;");
            }
            c if c.is_ascii_hexdigit() && commit_like(&chars, i).is_some() => {
                // A commit id (7 to 40 hex digits, a word of its own):
                // GitHub links it after rendering; a word joiner after
                // its first digit leaves no such word.
                let end = commit_like(&chars, i).unwrap_or(i + 1);
                out.push(c);
                out.push_str("&#8288;");
                out.extend(&chars[i + 1..end]);
                i = end;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Whether the character at `i` is one that [`md_text`] changes although it
/// is not always special: a `_` outside a word, the colon of `://`, the dot
/// of `www.`, the dash of `GH-1`, the start of a commit-like word.
fn needs_inert(chars: &[char], i: usize) -> bool {
    match chars[i] {
        '_' => !inside_word(chars, i),
        ':' => chars.get(i + 1) == Some(&'/') && chars.get(i + 2) == Some(&'/'),
        '.' => i >= 3 && chars[i - 3..i].iter().all(|c| c.eq_ignore_ascii_case(&'w')),
        '-' => {
            i >= 2
                && chars[i - 2..i]
                    .iter()
                    .collect::<String>()
                    .eq_ignore_ascii_case("gh")
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        }
        c => c.is_ascii_hexdigit() && commit_like(chars, i).is_some(),
    }
}

/// A `_` between two letters or digits: it can neither open nor close
/// emphasis (CommonMark's flanking rules for `_`).
fn inside_word(chars: &[char], i: usize) -> bool {
    let alnum = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    i > 0 && alnum(chars.get(i - 1)) && alnum(chars.get(i + 1))
}

/// Where the word starting at `i` ends, when it looks like a commit id
/// GitHub would link: 7 to 40 hex digits, at least one a decimal digit
/// (words such as `defaced` stay as they are), with no letter, digit or
/// `_` on either side.
fn commit_like(chars: &[char], i: usize) -> Option<usize> {
    let word = |c: &char| c.is_alphanumeric() || *c == '_';
    if i > 0 && word(&chars[i - 1]) {
        return None;
    }
    let end = chars[i..]
        .iter()
        .position(|c| !c.is_ascii_hexdigit())
        .map_or(chars.len(), |n| i + n);
    let run = &chars[i..end];
    let bounded = chars.get(end).is_none_or(|c| !word(c));
    (bounded && (7..=40).contains(&run.len()) && run.iter().any(char::is_ascii_digit))
        .then_some(end)
}

/// A code span of `s` outside a table.
pub fn md_code(s: &str) -> String {
    code_span(&plain(s))
}

/// A code span of `s` inside a table cell. cmark-gfm splits a row on every
/// `|` not preceded by a backslash (even inside a code span) and then drops
/// that backslash; a backslash right before a `|` is doubled so that it
/// cannot pair with the escape.
pub fn md_code_cell(s: &str) -> String {
    let s = plain(s);
    if !s.contains('|') {
        return code_span(&s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut backslashes = 0;
    for c in s.chars() {
        match c {
            '\\' => backslashes += 1,
            '|' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('|');
                backslashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes));
    code_span(&out)
}

/// CommonMark code span: a fence one backtick longer than the longest run
/// inside, padded with a space when the text starts or ends with a
/// backtick (the padding is stripped again by the renderer).
fn code_span(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || (s.starts_with(' ') && s.ends_with(' '))
    {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// The message of a workflow command (`::warning::MESSAGE`), as the
/// runner's `CommandStringEscape` reads it back.
pub fn command_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value of a workflow command (`title=VALUE`): also `:` and
/// `,`, which would end the value.
pub fn command_property(s: &str) -> String {
    command_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// How many delimiters are tried before a value is refused: a random
/// 128-bit delimiter found inside a value is already beyond chance.
const DELIMITER_TRIES: usize = 8;

/// One entry of `$GITHUB_OUTPUT` / `$GITHUB_ENV`, with its final newline:
/// `NAME=value` for a one-line value, else the documented multiline form
/// `NAME<<DELIMITER`, the value, `DELIMITER`, with a random delimiter that
/// does not occur in the value (so the value cannot end the entry and
/// start one of its own).
pub fn output_entry(name: &str, value: &str) -> Result<String, Error> {
    if name.is_empty() || name.contains(['=', '<', '\n', '\r']) {
        return Err(Error::usage(format!(
            "GitHub Actions output name {:?} is not a plain name",
            plain(name)
        )));
    }
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    for _ in 0..DELIMITER_TRIES {
        let delimiter = format!("ghadelimiter_{}", random_hex());
        if !value.contains(&delimiter) {
            return Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        }
    }
    Err(Error::usage(format!(
        "GitHub Actions output {name}: no delimiter could be found that the value does not contain"
    )))
}

/// 128 random bits as hex, from the standard library's randomly keyed
/// hasher (a fresh key per call): unpredictable to whoever wrote the value.
fn random_hex() -> String {
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a|b`c <img src=x> @user\n## ✅ all clear";

    #[test]
    fn benign_text_is_unchanged() {
        for s in [
            "app/server",
            "disk_bytes grew +236 KiB (+92%), over the 20% limit",
            "127.0.0.1:5000/demo/app:v2",
            "--node-capacity",
            "linux/arm64/v8",
        ] {
            assert!(matches!(plain(s), Cow::Borrowed(_)), "{s}");
            assert!(matches!(md_text(s), Cow::Borrowed(_)), "{s}");
            assert_eq!(md_code(s), format!("`{s}`"));
            assert_eq!(md_code_cell(s), format!("`{s}`"));
        }
    }

    #[test]
    fn control_and_invisible_characters_become_visible() {
        assert_eq!(plain("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(plain("x\u{1b}[31m"), "x\\u{1b}[31m");
        assert_eq!(plain("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(plain("a\u{2028}b\u{feff}"), "a\\u{2028}b\\u{feff}");
    }

    #[test]
    fn markdown_text_is_inert() {
        assert_eq!(
            md_text(HOSTILE),
            "a\\|b\\`c &lt;img src=x&gt; @&#8203;user\\\\n\\#\\# ✅ all clear"
        );
        assert_eq!(
            md_text("[x](https://e) *y* a&b"),
            "\\[x\\](https\\://e) \\*y\\* a&amp;b"
        );
        assert_eq!(md_text("a\\|b"), "a\\\\\\|b");
    }

    #[test]
    fn links_emphasis_strikethrough_and_references_are_inert() {
        for (hostile, inert) in [
            ("https://evil.example/x", "https\\://evil.example/x"),
            ("see www.evil.example", "see www\\.evil.example"),
            ("a_b_c_", "a_b_c\\_"),
            ("_em_ __strong__", "\\_em\\_ \\_\\_strong\\_\\_"),
            ("~~strike~~ a~b~c", "\\~\\~strike\\~\\~ a\\~b\\~c"),
            ("fixes #123", "fixes #&#8288;123"),
            ("org/repo#1", "org/repo#&#8288;1"),
            ("GH-42", "GH-&#8288;42"),
            (
                "0123456789abcdef0123456789abcdef01234567",
                "0&#8288;123456789abcdef0123456789abcdef01234567",
            ),
            ("commit 1a2b3c4.", "commit 1&#8288;a2b3c4."),
            ("user@example.com", "user@&#8203;example.com"),
        ] {
            assert_eq!(md_text(hostile), inert, "{hostile}");
        }
        // Words, figures and digests that GitHub does not link stay as
        // they are: a `_` inside a word, hex words without a digit, runs
        // shorter than 7 or longer than 40, colons without `//`.
        for benign in [
            "disk_bytes",
            "defaced",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "v1.2.3 abc123",
            "127.0.0.1:5000/demo/app:v2",
        ] {
            assert!(matches!(md_text(benign), Cow::Borrowed(_)), "{benign}");
        }
    }

    #[test]
    fn code_spans_cannot_be_closed_early() {
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("``x```"), "```` ``x``` ````");
        assert_eq!(md_code("a\nb"), "`a\\nb`");
        assert_eq!(md_code_cell("a|b"), "`a\\|b`");
        // A backslash before a pipe would otherwise escape the escape.
        assert_eq!(md_code_cell("a\\|b\\"), "`a\\\\\\|b\\`");
        assert_eq!(
            md_code_cell(HOSTILE),
            "``a\\|b`c <img src=x> @user\\n## ✅ all clear``"
        );
    }

    #[test]
    fn workflow_commands_are_escaped_as_the_runner_reads_them() {
        assert_eq!(command_data("50%\nnext\r"), "50%25%0Anext%0D");
        assert_eq!(command_property("a: b, c%\n"), "a%3A b%2C c%25%0A");
    }

    #[test]
    fn output_entries_cannot_add_entries() {
        assert_eq!(output_entry("verdict", "pass").unwrap(), "verdict=pass\n");
        let evil = "pass\nnode-bytes=0\ngrowth-bytes<<EOF";
        let entry = output_entry("verdict", evil).unwrap();
        let (head, rest) = entry.split_once('\n').unwrap();
        let delimiter = head.strip_prefix("verdict<<").unwrap();
        assert!(
            delimiter.starts_with("ghadelimiter_") && delimiter.len() == 45,
            "{head}"
        );
        assert_eq!(rest, format!("{evil}\n{delimiter}\n"));
        assert_ne!(
            output_entry("a", "x\ny").unwrap(),
            output_entry("a", "x\ny").unwrap()
        );
        assert!(output_entry("a=b", "x").is_err());
    }
}
