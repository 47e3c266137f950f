//! Which layer put each file of the merged view there, and every file a
//! later layer hid (deleted or overwrote): the facts the deleted-later,
//! duplicate and debug-section hints are priced from. Kept apart from the
//! stacking itself, which only calls in here.

use super::index::LayerIndex;
use super::layer::EntryKind;
use super::tree::NodeId;

/// A lower layer's file that an upper layer hid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiddenFile {
    /// Index (in the image's layer list) of the layer that added the bytes.
    pub lower: u32,
    /// Index of the layer that deleted or overwrote them.
    pub upper: u32,
    /// The merged view's node of the path.
    pub node: NodeId,
    pub bytes: u64,
}

/// Where a merged view's file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the layer in the image's layer list.
    pub layer: u32,
    /// The node of the path in that layer's index.
    pub layer_node: NodeId,
}

#[derive(Debug, Default)]
pub(crate) struct Origins {
    /// By merged node: the layer and layer node its file came from.
    by_node: Vec<Option<Origin>>,
    /// The layer being applied.
    layer: u32,
    hidden: Vec<HiddenFile>,
}

impl Origins {
    pub(crate) fn set_layer(&mut self, layer: u32) {
        self.layer = layer;
    }

    /// The file at `node`, of `bytes`, was just deleted or overwritten by
    /// the layer being applied.
    pub(crate) fn file_hidden(&mut self, node: NodeId, bytes: u64) {
        let Some(Some(origin)) = self.by_node.get(node as usize).copied() else {
            return;
        };
        self.by_node[node as usize] = None;
        // A file the same layer puts and hides again (a tar naming `x`, then
        // `x/y`) was never pulled twice; it is not a lower layer's waste.
        if origin.layer != self.layer {
            self.hidden.push(HiddenFile {
                lower: origin.layer,
                upper: self.layer,
                node,
                bytes,
            });
        }
    }

    /// Records the files the layer just applied put at `ids` (its nodes
    /// mapped to the merged view's).
    pub(crate) fn layer_applied(&mut self, index: &LayerIndex, ids: &[NodeId]) {
        for (i, &id) in ids.iter().enumerate() {
            if !matches!(index.view(i as NodeId).kind, Some(EntryKind::File { .. })) {
                continue;
            }
            let at = id as usize;
            if self.by_node.len() <= at {
                self.by_node.resize(at + 1, None);
            }
            self.by_node[at] = Some(Origin {
                layer: self.layer,
                layer_node: i as NodeId,
            });
        }
    }

    pub(crate) fn origin(&self, node: NodeId) -> Option<Origin> {
        self.by_node.get(node as usize).copied().flatten()
    }

    pub(crate) fn hidden(&self) -> &[HiddenFile] {
        &self.hidden
    }
}
