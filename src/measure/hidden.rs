//! Which layer put each file of the merged view there, and every file a
//! later layer hid (deleted or overwrote): the facts the deleted-later,
//! duplicate and debug-section hints are priced from. Kept apart from the
//! stacking itself, which only calls in here.

use super::layer::EntryKind;
use super::path_index::LayerIndex;
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

/// A node no file of any layer is recorded at.
const NO_FILE: NodeId = NodeId::MAX;

#[derive(Debug, Default)]
pub(crate) struct Origins {
    /// By merged node: the node, in the index of the layer that put it, of
    /// the file there ([`NO_FILE`]: none). Which layer that is, the merged
    /// view already keeps for every node; four bytes a node here.
    by_node: Vec<NodeId>,
    /// The layer being applied.
    layer: u32,
    hidden: Vec<HiddenFile>,
}

impl Origins {
    pub(crate) fn set_layer(&mut self, layer: u32) {
        self.layer = layer;
    }

    /// The file at `node`, of `bytes`, put there by layer `lower`, was just
    /// deleted or overwritten by the layer being applied.
    pub(crate) fn file_hidden(&mut self, node: NodeId, bytes: u64, lower: u32) {
        match self.by_node.get_mut(node as usize) {
            Some(n) if *n != NO_FILE => *n = NO_FILE,
            _ => return,
        }
        // A file the same layer puts and hides again (a tar naming `x`, then
        // `x/y`) was never pulled twice; it is not a lower layer's waste.
        if lower != self.layer {
            self.hidden.push(HiddenFile {
                lower,
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
                self.by_node.resize(at + 1, NO_FILE);
            }
            self.by_node[at] = i as NodeId;
        }
    }

    /// Where the file at `node` came from, given the layer that last wrote
    /// the node.
    pub(crate) fn origin(&self, node: NodeId, layer: u32) -> Option<Origin> {
        let layer_node = *self.by_node.get(node as usize)?;
        (layer_node != NO_FILE).then_some(Origin { layer, layer_node })
    }

    pub(crate) fn hidden(&self) -> &[HiddenFile] {
        &self.hidden
    }
}
