//! Node headroom rules: whether what the rollout adds to a node crosses
//! the line where the kubelet starts image garbage collection, evicts pods
//! for lack of imageFS space, or for lack of inodes. These are the rules
//! that say "this image does not fit the node", whatever its growth.
//!
//! They judge the peak of the pull: where the runtime discards layer blobs
//! once unpacked (or stages them in a temporary directory), blobs and
//! unpacked layers are both on disk until then, and that is when the
//! kubelet's next housekeeping pass reads the filesystem. Where the
//! runtime keeps the blobs, the peak is what stays.

use super::{Finding, FindingFigure, NodeBudget, Rule};
use crate::budget::cost::ImageCost;
use crate::budget::verdict::Level;
use crate::units::{human_bytes, human_signed};

/// The headroom rules' findings for a rollout that adds `rollout` to the
/// node. `what` names the cost in messages (`rollout cost` against a
/// baseline, `node_bytes` for a fresh pull); `gc_level` is the GC rule's
/// level, which a team may soften to a warning.
pub fn findings(
    node: &NodeBudget,
    rollout: &ImageCost,
    what: &str,
    gc_level: Level,
) -> Vec<Finding> {
    [
        gc_headroom(node, rollout, what, gc_level),
        eviction_headroom(node, rollout, what),
        inode_headroom(node, rollout),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The bytes the headroom rules judge, the figure's name, and how a
/// message calls it.
pub fn judged_bytes(rollout: &ImageCost, what: &str) -> (i128, FindingFigure, String) {
    if rollout.peak_pull_bytes > rollout.node_bytes {
        (
            rollout.peak_pull_bytes as i128,
            FindingFigure::PeakPullBytes,
            format!("{what} at its peak (layer blobs not yet discarded)"),
        )
    } else {
        (
            rollout.node_bytes as i128,
            FindingFigure::NodeBytes,
            what.to_string(),
        )
    }
}

fn gc_headroom(
    node: &NodeBudget,
    rollout: &ImageCost,
    what: &str,
    level: Level,
) -> Option<Finding> {
    let (cost, figure, what) = judged_bytes(rollout, what);
    let room = node.headroom.gc_headroom;
    (cost > room).then(|| {
        Finding::new(
            Rule::GcHeadroom,
            level,
            figure,
            cost,
            room,
            format!(
                "{what} {} exceeds the image GC headroom of {} ({}) by {}: pulling it starts image garbage collection",
                human_bytes(cost as u64),
                node_phrase(&node.fs.name),
                human_signed(room),
                human_bytes((cost - room) as u64)
            ),
        )
    })
}

fn eviction_headroom(node: &NodeBudget, rollout: &ImageCost, what: &str) -> Option<Finding> {
    let (cost, figure, what) = judged_bytes(rollout, what);
    let room = node.headroom.eviction_headroom;
    (cost > room).then(|| {
        Finding::new(
            Rule::EvictionHeadroom,
            Level::Fail,
            figure,
            cost,
            room,
            format!(
                "{what} {} exceeds the imagefs.available eviction headroom of {} ({}) by {}: pods would be evicted",
                human_bytes(cost as u64),
                node_phrase(&node.fs.name),
                human_signed(room),
                human_bytes((cost - room) as u64)
            ),
        )
    })
}

/// Silent when the filesystem does not report inodes.
fn inode_headroom(node: &NodeBudget, rollout: &ImageCost) -> Option<Finding> {
    let room = node.headroom.inode_headroom?;
    let (inodes, figure) = if rollout.peak_pull_inodes > rollout.node_inodes {
        (
            rollout.peak_pull_inodes as i128,
            FindingFigure::PeakPullInodes,
        )
    } else {
        (rollout.node_inodes as i128, FindingFigure::Inodes)
    };
    (inodes > room).then(|| {
        Finding::new(
            Rule::InodeHeadroom,
            Level::Fail,
            figure,
            inodes,
            room,
            format!(
                "{inodes} new inodes exceed the imagefs.inodesFree headroom of {} ({room})",
                node_phrase(&node.fs.name)
            ),
        )
    })
}

/// How a message names a node: `node worker-1`, or `the 20 GiB node` for
/// a name that already says it is a node.
fn node_phrase(name: &str) -> String {
    if name.ends_with(" node") {
        format!("the {name}")
    } else {
        format!("node {name}")
    }
}
