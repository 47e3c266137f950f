//! Progress bars for a terminal: one per streamed layer, drawn on stderr
//! only when it is a terminal and `--quiet` was not given.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::measure::progress::{LayerProgress, Progress};
use crate::measure::short_digest;

pub struct Bars {
    bars: MultiProgress,
    style: ProgressStyle,
}

impl Bars {
    /// Bars that draw on stderr when `visible`, and nowhere otherwise.
    pub fn new(visible: bool) -> Self {
        let bars = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        // The template is a constant: it parses, or no bar is worth drawing.
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        Bars { bars, style }
    }
}

impl Progress for Bars {
    fn layer_started(&self, digest: &str, total_bytes: u64) -> Box<dyn LayerProgress> {
        let bar = self.bars.add(ProgressBar::new(total_bytes));
        bar.set_style(self.style.clone());
        bar.set_prefix(short_digest(digest).to_string());
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl LayerProgress for Bar {
    fn advanced(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finished(&self) {
        self.0.finish_and_clear();
    }
}
