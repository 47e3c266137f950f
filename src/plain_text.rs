//! Text that came from an image, a registry or a file, made inert for a
//! terminal or a CI log: no control character (so no new line that a
//! runner would read as a command of its own) and no terminal escape. It
//! sits below every module because errors, the layer cache and the
//! configuration quote such text too; the renderers' escapers for other
//! places (Markdown, workflow commands) build on it in `report::escape`.

use std::borrow::Cow;

/// Characters shown as an escape instead of themselves: control characters
/// (line breaks, terminal escapes) and the invisible ones that reorder or
/// hide text (bidirectional overrides, zero-width characters, the BOM).
pub(crate) fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}')
}

/// The text with every control or invisible character written as a
/// visible escape (`\n`, `\t`, `\u{202e}`): one line, shown as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
