//! What an image costs a node, and what a candidate adds to a node that
//! already holds its baseline, for each way a runtime keeps images on the
//! image filesystem. Every node rule and every report figure is computed
//! from here.
//!
//! The figures are what a `statvfs` of the imageFS sees: every file is
//! counted in 4 KiB blocks, every directory and link file the runtime
//! creates around a layer is counted, because on a real node those are
//! what the kubelet's GC and eviction arithmetic reads. The sources each
//! model follows are cited in `docs/runtime-storage-research.md`; the
//! test suite holds each model against a real store on a fresh ext4
//! filesystem (`tests/integration/real_store.rs`).
//!
//! Layers are shared as every runtime shares them: the unpacked layer by
//! chain ID (containerd's snapshot key; containers/storage chains its
//! layer IDs the same way), so the same layer on top of a different base
//! is unpacked again, while containerd's compressed blob is shared by
//! digest.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::analyze::ImageReport;
use crate::analyze::layer_diff::{chain_ids, diff_ids};
use crate::error::Error;
use crate::measure::layer::FS_BLOCK;

/// The figures the node model works with, for one image.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ImageCost {
    /// Manifest + config + compressed layers: what a pull downloads (an
    /// index the image was picked from is counted in `node_bytes` only).
    pub pull_bytes: u64,
    /// Σ layer `disk_bytes`: the unpacked layers.
    pub disk_bytes: u64,
    /// What the image occupies on imageFS once pulled, in the runtime's
    /// layout: unpacked layers, the directories and files the runtime keeps
    /// beside each, the metadata blobs, and the compressed layer blobs
    /// where the runtime keeps them.
    pub node_bytes: u64,
    /// What it needs on imageFS while being pulled: layer blobs discarded
    /// after unpacking (or staged in a temporary directory) still exist.
    pub peak_pull_bytes: u64,
    /// Inodes of the image once pulled: the layers' own and the runtime's
    /// files and directories around them.
    pub node_inodes: u64,
    /// Inodes while being pulled.
    #[serde(default)]
    pub peak_pull_inodes: u64,
    pub layers: u64,
}

/// How a runtime keeps images on the image filesystem.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// containerd with the overlayfs snapshotter: the compressed blob in
    /// the content store (shared by digest) and the unpacked snapshot
    /// (shared by chain ID), each kept.
    #[default]
    Containerd,
    /// containerd with `discard_unpacked_layers`: layer blobs are deleted
    /// once unpacked (manifest, config and index stay).
    ContainerdDiscard,
    /// containers/storage's overlay driver, as CRI-O and Podman keep
    /// images: the unpacked layer and its tar-split, no compressed blob.
    CriO,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [
        Runtime::Containerd,
        Runtime::ContainerdDiscard,
        Runtime::CriO,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::ContainerdDiscard => "containerd-discard",
            Runtime::CriO => "cri-o",
        }
    }

    /// Whether compressed layer blobs stay on imageFS after the pull.
    pub fn keeps_layer_blobs(self) -> bool {
        self == Runtime::Containerd
    }

    fn layout(self) -> Layout {
        match self {
            Runtime::Containerd | Runtime::ContainerdDiscard => CONTAINERD,
            Runtime::CriO => CONTAINERS_STORAGE,
        }
    }
}

/// A node distribution whose runtime configuration is known, so a user
/// can name the platform instead of the storage details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Amazon EKS's AMIs: nodeadm's containerd templates set
    /// `discard_unpacked_layers = true` (awslabs/amazon-eks-ami
    /// `nodeadm/internal/containerd/config.template.toml` and
    /// `config2.template.toml`); AL2 AMIs since release v20230728.
    Eks,
    /// k3s: its containerd template does not set `discard_unpacked_layers`,
    /// so containerd's default (off) holds (k3s-io/k3s
    /// `pkg/agent/templates/templates_linux.go`).
    K3s,
    /// OpenShift: nodes run CRI-O, whose images live in containers/storage
    /// with the overlay driver.
    Openshift,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Eks, Preset::K3s, Preset::Openshift];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Eks => "eks",
            Preset::K3s => "k3s",
            Preset::Openshift => "openshift",
        }
    }

    pub fn runtime(self) -> Runtime {
        match self {
            Preset::Eks => Runtime::ContainerdDiscard,
            Preset::K3s => Runtime::Containerd,
            Preset::Openshift => Runtime::CriO,
        }
    }
}

/// How the node stores images: the runtime model, and the preset it was
/// named by, if any (reports show both).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct StoreModel {
    pub runtime: Runtime,
    /// The platform named instead of the runtime (`eks`), or null.
    #[serde(default)]
    pub preset: Option<Preset>,
}

impl StoreModel {
    pub fn of(runtime: Runtime) -> StoreModel {
        StoreModel {
            runtime,
            preset: None,
        }
    }

    /// A runtime (`containerd`, `containerd-discard`, `cri-o`) or a preset
    /// (`eks`, `k3s`, `openshift`), as `--runtime` and `runtime =` take it.
    pub fn parse(s: &str) -> Result<StoreModel, Error> {
        if let Some(r) = Runtime::ALL.into_iter().find(|r| r.name() == s) {
            return Ok(StoreModel::of(r));
        }
        if let Some(p) = Preset::ALL.into_iter().find(|p| p.name() == s) {
            return Ok(StoreModel {
                runtime: p.runtime(),
                preset: Some(p),
            });
        }
        let names: Vec<&str> = Runtime::ALL
            .iter()
            .map(|r| r.name())
            .chain(Preset::ALL.iter().map(|p| p.name()))
            .collect();
        Err(Error::usage(format!(
            "unknown runtime {s:?}: expected one of {}",
            names.join(", ")
        )))
    }

    /// `containerd-discard (eks)`: how reports name it.
    pub fn describe(self) -> String {
        match self.preset {
            Some(p) => format!("{} ({})", self.runtime.name(), p.name()),
            None => self.runtime.name().to_string(),
        }
    }
}

/// What a runtime keeps around each layer and each image besides their
/// contents, in blocks and inodes, as measured on ext4 against containerd
/// 1.6 and containers/storage (Podman 4.3); the sources name the files
/// (`docs/runtime-storage-research.md`).
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Per unpacked layer, beyond the layer's own root directory (which
    /// the layer figures count): containerd's `snapshots/N/` and its
    /// `work/`; containers/storage's `<id>/`, `work/`, `merged/`, `empty/`
    /// or `lower`, `link`, and the `l/` symlink (its 72-byte target is
    /// longer than ext4 keeps in the inode, so it takes a block).
    layer_blocks: u64,
    layer_inodes: u64,
    /// containers/storage keeps a gzipped tar-split per layer: the tar
    /// headers without the contents, 56 to 68 bytes per entry measured on
    /// a Debian root filesystem, plus a fixed part.
    tar_split_bytes_per_entry: u64,
    tar_split_fixed_bytes: u64,
    /// Copies of the manifest kept per image (containers/storage records
    /// it under its digest and again as `manifest`).
    manifest_copies: u64,
    /// Per image, beyond its manifest, config and index files:
    /// containers/storage's `overlay-images/<id>/` directory and its empty
    /// `signature-<digest>` file.
    image_blocks: u64,
    image_inodes: u64,
    /// Metadata databases that grow with each image and layer without a
    /// file of their own: containerd's bbolt `meta.db` took 7 to 10 pages
    /// per image pulled (it never shrinks); containers/storage's
    /// `images.json` and `layers.json` gain a record of about 1.6 KB per
    /// image and 700 bytes per layer.
    metadata_bytes_per_image: u64,
    metadata_bytes_per_layer: u64,
}

const CONTAINERD: Layout = Layout {
    layer_blocks: 2,
    layer_inodes: 2,
    tar_split_bytes_per_entry: 0,
    tar_split_fixed_bytes: 0,
    manifest_copies: 1,
    image_blocks: 0,
    image_inodes: 0,
    metadata_bytes_per_image: 6 * FS_BLOCK,
    metadata_bytes_per_layer: FS_BLOCK,
};

const CONTAINERS_STORAGE: Layout = Layout {
    layer_blocks: 6,
    layer_inodes: 6,
    tar_split_bytes_per_entry: 70,
    tar_split_fixed_bytes: 200,
    manifest_copies: 2,
    image_blocks: 1,
    image_inodes: 2,
    metadata_bytes_per_image: 1600,
    metadata_bytes_per_layer: 700,
};

/// A file of `n` bytes on a 4 KiB-block filesystem.
fn blocks(n: u64) -> u64 {
    n.div_ceil(FS_BLOCK).saturating_mul(FS_BLOCK)
}

/// Sums over a subset of an image's layers: `blob_new[i]` says whether
/// layer i's blob is new to the node, `snapshot_new[i]` its unpacked
/// layer; `meta_new` whether its manifest, config and index are.
fn cost_of(
    r: &ImageReport,
    blob_new: &[bool],
    snapshot_new: &[bool],
    meta_new: bool,
    store: StoreModel,
) -> ImageCost {
    let layout = store.runtime.layout();
    let image = &r.image;
    let (mut meta_pulled, mut meta_bytes, mut meta_inodes) = (0, 0, 0);
    if meta_new {
        meta_pulled = image.manifest_bytes + image.config_bytes;
        meta_bytes = layout.manifest_copies * blocks(image.manifest_bytes)
            + blocks(image.config_bytes)
            + image.index_bytes.map_or(0, blocks)
            + layout.image_blocks * FS_BLOCK
            + layout.metadata_bytes_per_image;
        meta_inodes = layout.manifest_copies
            + 1
            + u64::from(image.index_bytes.is_some())
            + layout.image_inodes;
    }
    let (mut compressed, mut blob_bytes, mut blob_files) = (0u64, 0u64, 0u64);
    let (mut unpacked, mut unpacked_inodes, mut layers) = (0u64, 0u64, 0u64);
    let mut disk_bytes = 0u64;
    for (i, l) in r.layers.iter().enumerate() {
        let size = l
            .figures()
            .map_or(l.descriptor.size, |f| f.compressed_bytes);
        if blob_new[i] {
            compressed += size;
            blob_bytes += blocks(size);
            blob_files += 1;
        }
        if snapshot_new[i] {
            layers += 1;
            unpacked += layout.layer_blocks * FS_BLOCK + layout.metadata_bytes_per_layer;
            unpacked_inodes += layout.layer_inodes;
            if let Some(f) = l.figures() {
                disk_bytes = disk_bytes.saturating_add(f.disk_bytes);
                unpacked = unpacked.saturating_add(f.disk_bytes);
                unpacked_inodes = unpacked_inodes.saturating_add(f.inodes);
                if layout.tar_split_bytes_per_entry > 0 {
                    let entries = tar_entries(f);
                    unpacked += blocks(
                        entries.saturating_mul(layout.tar_split_bytes_per_entry)
                            + layout.tar_split_fixed_bytes,
                    );
                    unpacked_inodes += 1;
                }
            }
        }
    }
    // Every runtime has the layer blobs on imageFS at the end of the pull;
    // only containerd without discard keeps them.
    let without_blobs = (
        unpacked.saturating_add(meta_bytes),
        unpacked_inodes + meta_inodes,
    );
    let with_blobs = (
        without_blobs.0.saturating_add(blob_bytes),
        without_blobs.1 + blob_files,
    );
    let (peak_pull_bytes, peak_pull_inodes) = with_blobs;
    let (node_bytes, node_inodes) = if store.runtime.keeps_layer_blobs() {
        with_blobs
    } else {
        without_blobs
    };
    ImageCost {
        pull_bytes: meta_pulled + compressed,
        disk_bytes,
        node_bytes,
        peak_pull_bytes,
        node_inodes,
        peak_pull_inodes,
        layers,
    }
}

/// Members of the layer's tar stream, which its tar-split records one by
/// one: about one per inode (a hard link is a member without an inode of
/// its own: each costs the estimate some 70 bytes).
fn tar_entries(f: &crate::measure::layer::LayerFigures) -> u64 {
    f.inodes + f.opaque_dirs
}

/// The whole image, pulled onto a node that holds none of it.
pub fn image_cost(r: &ImageReport, store: StoreModel) -> ImageCost {
    let all = vec![true; r.layers.len()];
    cost_of(r, &all, &all, true, store)
}

/// What pulling `candidate` adds to a node that already holds `baseline`.
pub fn rollout_cost(
    candidate: &ImageReport,
    baseline: &ImageReport,
    store: StoreModel,
) -> ImageCost {
    rollout_cost_onto(candidate, &[baseline], store)
}

/// What pulling `candidate` adds to a node that already holds every image
/// of `held`: a blob any of them has is stored once, a snapshot any of
/// them has (same chain ID) is not unpacked again.
pub fn rollout_cost_onto(
    candidate: &ImageReport,
    held: &[&ImageReport],
    store: StoreModel,
) -> ImageCost {
    OnNode::holding(held).cost(candidate, &chain_ids(&diff_ids(candidate)), store)
}

/// What pulling every image of `candidates`, one after the other, adds to
/// a node that holds `held`: each image's share, in order, a layer an
/// earlier candidate brought counted with that one only (the images of one
/// pod share their base layers).
pub fn rollout_costs(
    candidates: &[&ImageReport],
    held: &[&ImageReport],
    store: StoreModel,
) -> Vec<ImageCost> {
    let mut on_node = OnNode::holding(held);
    candidates
        .iter()
        .map(|c| {
            let chains = chain_ids(&diff_ids(c));
            let cost = on_node.cost(c, &chains, store);
            on_node.add(c, chains);
            cost
        })
        .collect()
}

/// What a node holds, as sharing is keyed: blobs by digest, unpacked
/// layers by chain ID, images by manifest digest. Built once per set of
/// held images, so each image's chain IDs are hashed once.
#[derive(Default)]
struct OnNode<'a> {
    blobs: HashSet<&'a str>,
    chains: HashSet<String>,
    manifests: HashSet<&'a str>,
}

impl<'a> OnNode<'a> {
    fn holding(held: &[&'a ImageReport]) -> OnNode<'a> {
        let mut on_node = OnNode::default();
        for h in held {
            on_node.add(h, chain_ids(&diff_ids(h)));
        }
        on_node
    }

    fn add(&mut self, image: &'a ImageReport, chains: Vec<String>) {
        self.blobs
            .extend(image.layers.iter().map(|l| l.descriptor.digest.as_str()));
        self.chains.extend(chains);
        self.manifests.insert(image.image.digest.as_str());
    }

    /// `candidate` pulled onto this node; `chains` are its chain IDs.
    fn cost(&self, candidate: &ImageReport, chains: &[String], store: StoreModel) -> ImageCost {
        let blob_new: Vec<bool> = candidate
            .layers
            .iter()
            .map(|l| !self.blobs.contains(l.descriptor.digest.as_str()))
            .collect();
        let snapshot_new: Vec<bool> = chains.iter().map(|c| !self.chains.contains(c)).collect();
        let meta_new = !self.manifests.contains(candidate.image.digest.as_str());
        cost_of(candidate, &blob_new, &snapshot_new, meta_new, store)
    }
}

impl ImageCost {
    /// This pull, then `o` (the kubelet pulls a pod's images one at a
    /// time): what stays adds up, and the peak is the larger of this
    /// pull's and what stays of it plus the next one's; sums saturate.
    pub fn then(&self, o: &ImageCost) -> ImageCost {
        ImageCost {
            pull_bytes: self.pull_bytes.saturating_add(o.pull_bytes),
            disk_bytes: self.disk_bytes.saturating_add(o.disk_bytes),
            node_bytes: self.node_bytes.saturating_add(o.node_bytes),
            peak_pull_bytes: self
                .peak_pull_bytes
                .max(self.node_bytes.saturating_add(o.peak_pull_bytes)),
            node_inodes: self.node_inodes.saturating_add(o.node_inodes),
            peak_pull_inodes: self
                .peak_pull_inodes
                .max(self.node_inodes.saturating_add(o.peak_pull_inodes)),
            layers: self.layers.saturating_add(o.layers),
        }
    }
}
