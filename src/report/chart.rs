//! SVG charts of a history, for `history --format svg` and the
//! dashboard of `sizeguard serve`.
//!
//! PLACEHOLDER BODIES: being written; not done.

use super::history::HistoryView;

/// `history --format svg`: the trend of node and pull bytes, the GC
/// headroom line, and inodes, as one standalone SVG document.
pub fn history_svg(view: &HistoryView) -> String {
    let _ = view;
    String::new()
}
