//! The facts hints are priced from, gathered from the merged view and the
//! layers' indexes once an image's layers are stacked.

use crate::measure::layer::LayerMeasurement;
use crate::measure::merged::MergedFs;
use crate::measure::tree::NodeId;

/// A regular file of the final filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalFile {
    /// Names the file for [`Facts::path_of`].
    pub node: NodeId,
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

/// What the hints read. The final filesystem's files are not held here
/// but read from the merged view one at a time ([`Facts::for_each_file`]),
/// each path built only while its file is looked at, so the hints cost
/// memory for what they match, not for every file of the image.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// Files given outright, numbered by position (the unit tests); unused
    /// when the facts come from a merged view.
    pub files: Vec<FinalFile>,
    pub(super) merged: Option<Merged<'a>>,
    pub hidden: Vec<HiddenPath>,
    /// Per layer index, compressed / tar bytes (1 when unknown).
    pub pull_ratio: Vec<f64>,
    /// The values of the image's `LANG`, `LC_ALL`, `LC_MESSAGES` and
    /// `LANGUAGE`.
    pub locale_env: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Merged<'a> {
    fs: &'a MergedFs,
    layers: Vec<Option<&'a LayerMeasurement>>,
}

impl<'a> Facts<'a> {
    /// Gathers the facts of a stacked image; `layers[i]` is the measurement
    /// of layer `i` (`None` where it was not measured).
    pub fn gather(
        fs: &'a MergedFs,
        layers: &[Option<&'a LayerMeasurement>],
        locale_env: Vec<String>,
    ) -> Facts<'a> {
        let pull_ratio = layers
            .iter()
            .map(|m| match m {
                Some(m) if m.figures.tar_bytes > 0 => {
                    m.figures.compressed_bytes as f64 / m.figures.tar_bytes as f64
                }
                _ => 1.0,
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
            files: Vec::new(),
            merged: Some(Merged {
                fs,
                layers: layers.to_vec(),
            }),
            hidden,
            pull_ratio,
            locale_env,
        }
    }

    /// Calls `visit` with every regular file of the final filesystem, in
    /// the same order each time.
    pub fn for_each_file(&self, mut visit: impl FnMut(&FinalFile)) {
        let Some(m) = &self.merged else {
            for (i, f) in self.files.iter().enumerate() {
                visit(&FinalFile {
                    node: i as NodeId,
                    ..f.clone()
                });
            }
            return;
        };
        let mut file = FinalFile::default();
        for (id, size, origin) in m.fs.final_files() {
            let Some(index) = m.layers.get(origin.layer as usize).copied().flatten() else {
                continue;
            };
            file.node = id;
            file.path = m.fs.path_of(id);
            file.size = size;
            file.layer = origin.layer;
            file.hash = index.index.content_hash(origin.layer_node);
            file.debug_bytes = index.index.debug_bytes(origin.layer_node);
            visit(&file);
        }
    }

    /// The path of the file [`Self::for_each_file`] numbered `node`.
    pub fn path_of(&self, node: NodeId) -> String {
        match &self.merged {
            Some(m) => m.fs.path_of(node),
            None => self
                .files
                .get(node as usize)
                .map(|f| f.path.clone())
                .unwrap_or_default(),
        }
    }

    /// The pull bytes `size` bytes of layer `layer` are estimated to cost.
    pub fn pull_of(&self, layer: u32, size: u64) -> f64 {
        size as f64 * self.pull_ratio.get(layer as usize).copied().unwrap_or(1.0)
    }
}
