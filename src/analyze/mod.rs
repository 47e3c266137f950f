//! Explaining a measured image: everything that reads the layers and the
//! merged filesystem `measure` produced to say where the bytes are and
//! what could go. Advice and comparisons, never a verdict (that is
//! `budget`'s, which reads what this module finds).
//!
//! - [`hints`]: priced hints, what an image could drop.
//! - [`paths`]: the path diff of two final filesystems.
//! - [`layer_diff`]: the per-layer diff of two images, and the chain IDs
//!   it matches layers by.
//!
//! [`ImageReport`] is a measured image with its hints: what every later
//! step (the rules, the verdict, the renderers) reads.
//!
//! Why `explain` runs after `measure` returns rather than inside it: the
//! hints read the merged view, and `measure` keeps that view on each
//! [`MeasuredImage`] anyway (the path diff of a check needs it), so
//! reading it once measuring is done holds nothing longer than before,
//! and `measure` needs to know nothing of hints.

pub mod hints;
pub mod layer_diff;
pub mod paths;

use std::ops::Deref;

use crate::measure::MeasuredImage;
use hints::{Facts, Hint, HintSettings};

/// A measured image and what could be removed from it, priced.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub measured: MeasuredImage,
    /// What could be removed, priced; empty when the layers were only
    /// probed.
    pub hints: Vec<Hint>,
}

/// The report reads as the measured image it explains: its figures are
/// the measurement's, only the hints are added.
impl Deref for ImageReport {
    type Target = MeasuredImage;

    fn deref(&self) -> &MeasuredImage {
        &self.measured
    }
}

/// The hints of a measured image (at most `top` paths each); none when its
/// layers were only probed, since then there is no merged view to read.
pub fn explain(measured: MeasuredImage, settings: &HintSettings, top: usize) -> ImageReport {
    let hints = match &measured.merged {
        Some(fs) if !measured.estimated => {
            let layers: Vec<_> = measured
                .layers
                .iter()
                .map(|l| l.measurement.as_deref())
                .collect();
            let facts = Facts::gather(fs, &layers, measured.image.locale_env.clone());
            hints::find(&facts, settings, top)
        }
        _ => Vec::new(),
    };
    ImageReport { measured, hints }
}
