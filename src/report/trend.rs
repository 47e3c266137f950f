//! A history in words and in Mermaid: the `history` table and Markdown,
//! and the trend chart of the pull-request comment (GitHub renders a
//! Mermaid `xychart-beta` block in comments).
//!
//! PLACEHOLDER BODIES: being written; not done.

use super::history::{HistoryPoint, HistoryView};

/// `history --format table`.
pub fn table(view: &HistoryView) -> String {
    let _ = view;
    String::new()
}

/// `history --format markdown`: the trend chart and the table.
pub fn markdown(view: &HistoryView) -> String {
    let _ = view;
    String::new()
}

/// The Mermaid `xychart-beta` block of the last releases and, when given,
/// the pull request's candidate; `Err` is the one line saying why there is
/// no chart (no history yet).
pub fn mermaid(view: &HistoryView, candidate: Option<&HistoryPoint>) -> Result<String, String> {
    let _ = (view, candidate);
    Err(String::new())
}
