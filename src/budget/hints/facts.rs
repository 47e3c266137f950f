//! The facts hints are priced from, gathered from the merged view and the
//! layers' indexes once an image's layers are stacked.

use crate::measure::layer::LayerMeasurement;
use crate::measure::merged::MergedFs;

/// A regular file of the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalFile {
    pub path: String,
    pub size: u64,
    /// Index of the layer that holds it.
    pub layer: u32,
    /// Content hash (0: unknown).
    pub hash: u64,
    pub debug_bytes: u64,
}

/// A lower layer's file a later layer hid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenPath {
    pub path: String,
    pub size: u64,
    pub lower: u32,
    pub upper: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub files: Vec<FinalFile>,
    pub hidden: Vec<HiddenPath>,
    /// Per layer index, compressed / tar bytes (1 when unknown).
    pub pull_ratio: Vec<f64>,
    /// The values of the image's `LANG`, `LC_ALL`, `LC_MESSAGES` and
    /// `LANGUAGE`.
    pub locale_env: Vec<String>,
}

impl Facts {
    /// Gathers the facts of a stacked image; `layers[i]` is the measurement
    /// of layer `i` (`None` where it was not measured).
    pub fn gather(
        fs: &MergedFs,
        layers: &[Option<&LayerMeasurement>],
        locale_env: Vec<String>,
    ) -> Facts {
        let pull_ratio = layers
            .iter()
            .map(|m| match m {
                Some(m) if m.figures.tar_bytes > 0 => {
                    m.figures.compressed_bytes as f64 / m.figures.tar_bytes as f64
                }
                _ => 1.0,
            })
            .collect();
        let files = fs
            .final_files()
            .filter_map(|(id, size, origin)| {
                let index = &layers.get(origin.layer as usize).copied().flatten()?.index;
                Some(FinalFile {
                    path: fs.path_of(id),
                    size,
                    layer: origin.layer,
                    hash: index.content_hash(origin.layer_node),
                    debug_bytes: index.debug_bytes(origin.layer_node),
                })
            })
            .collect();
        let hidden = fs
            .hidden_files()
            .iter()
            .filter(|h| h.bytes > 0)
            .map(|h| HiddenPath {
                path: fs.path_of(h.node),
                size: h.bytes,
                lower: h.lower,
                upper: h.upper,
            })
            .collect();
        Facts {
            files,
            hidden,
            pull_ratio,
            locale_env,
        }
    }

    /// The pull bytes `size` bytes of layer `layer` are estimated to cost.
    pub fn pull_of(&self, layer: u32, size: u64) -> f64 {
        size as f64 * self.pull_ratio.get(layer as usize).copied().unwrap_or(1.0)
    }
}
