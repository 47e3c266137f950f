//! The policy file, `sizeguard.toml`, and its merge with the command line.
//!
//! Keys are spelled like the flags (`max-growth`, `gc-high`, …) so a team
//! can move a flag into the file without looking anything up. Unknown keys
//! are an error that names them: a typo must not silently disable a rule.
//! [`dive_ci`] reads a `.dive-ci` file, the layer of dive's rules under
//! the flags.

pub mod dive_ci;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use merge::Merge;
use serde::Deserialize;

use crate::analyze::hints::{HintSettings, rules as hint_rules};
use crate::budget::cost::{Runtime, StoreModel};
use crate::budget::kubelet::{self, NodeFs, Thresholds};
use crate::budget::rules::dive::{self, DiveRules};
use crate::budget::rules::{GrowthRule, Levels, Policy};
use crate::budget::verdict::{Level, NodeInput, UsedSource};
use crate::error::Error;
use crate::units::parse_bytes;

pub const FILE_NAME: &str = "sizeguard.toml";

/// A node's imageFS, from a kubelet stats summary or from figures: `[node]`
/// and `[nodes.NAME]` in the file, the `--node-*` flags on the command line.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// A kubelet stats summary (`kubectl get --raw /api/v1/nodes/NODE/proxy/stats/summary`),
    /// or a JSON array of them (the tightest node decides); `-` reads standard input.
    #[arg(
        id = "node_stats",
        long = "node-stats",
        value_name = "FILE",
        conflicts_with = "node_capacity",
        help_heading = "Node"
    )]
    pub stats: Option<PathBuf>,

    /// imageFS capacity (Kubernetes quantity: 20Gi, 100G, or bytes). Alone,
    /// the node is assumed to hold the baseline and --node-system-reserved.
    #[arg(
        id = "node_capacity",
        long = "node-capacity",
        value_name = "SIZE",
        help_heading = "Node"
    )]
    pub capacity: Option<String>,

    /// imageFS available bytes.
    #[arg(
        id = "node_available",
        long = "node-available",
        value_name = "SIZE",
        requires = "node_capacity",
        conflicts_with = "node_used",
        help_heading = "Node"
    )]
    pub available: Option<String>,

    /// imageFS used bytes (available = capacity - used).
    #[arg(
        id = "node_used",
        long = "node-used",
        value_name = "SIZE",
        requires = "node_capacity",
        help_heading = "Node"
    )]
    pub used: Option<String>,

    /// With --node-capacity alone: imageFS space the system's own images
    /// take besides the baseline [default: 0].
    #[arg(
        id = "node_system_reserved",
        long = "node-system-reserved",
        value_name = "SIZE",
        requires = "node_capacity",
        conflicts_with_all = ["node_used", "node_available"],
        help_heading = "Node"
    )]
    pub system_reserved: Option<String>,

    /// What reports call a node given by --node-capacity [default: its
    /// capacity, e.g. `20 GiB node`].
    #[arg(
        id = "node_name",
        long = "node-name",
        value_name = "NAME",
        requires = "node_capacity",
        help_heading = "Node"
    )]
    pub name: Option<String>,

    /// imageFS inode count.
    #[arg(
        id = "node_inodes",
        long = "node-inodes",
        value_name = "N",
        requires = "node_inodes_free",
        help_heading = "Node"
    )]
    pub inodes: Option<u64>,

    /// imageFS free inodes.
    #[arg(
        id = "node_inodes_free",
        long = "node-inodes-free",
        value_name = "N",
        requires = "node_inodes",
        help_heading = "Node"
    )]
    pub inodes_free: Option<u64>,

    /// A split image filesystem (the kubelet's `containerFs` holding the
    /// containers' writable layers apart from `imageFs`): its capacity.
    /// Shown beside the node; the image rules judge imageFS.
    #[arg(
        id = "node_container_fs_capacity",
        long = "node-container-fs-capacity",
        value_name = "SIZE",
        requires = "node_capacity",
        help_heading = "Node"
    )]
    pub container_fs_capacity: Option<String>,

    /// The split containerFs's available bytes.
    #[arg(
        id = "node_container_fs_available",
        long = "node-container-fs-available",
        value_name = "SIZE",
        requires = "node_container_fs_capacity",
        help_heading = "Node"
    )]
    pub container_fs_available: Option<String>,

    /// The runtime this node keeps images with (`[nodes.NAME] runtime =
    /// "eks"`); it wins over the file's top-level `runtime`, and
    /// `--runtime` over it.
    #[arg(skip)]
    pub runtime: Option<String>,
}

impl NodeConfig {
    /// Whether it names a node at all: inode counts alone do not.
    fn names_a_node(&self) -> bool {
        self.stats.is_some() || self.capacity.is_some()
    }
}

/// A setting written as a number or as text (`0.95`, `"disabled"`); a flag
/// gives text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(f64),
    Text(String),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

impl From<String> for Scalar {
    fn from(text: String) -> Self {
        Scalar::Text(text)
    }
}

/// The policy, node and thresholds a check is judged by.
#[derive(Debug, Clone)]
pub struct Judging {
    pub policy: Policy,
    pub node: Option<NodeInput>,
    pub thresholds: Thresholds,
}

/// Every setting, defined once: each field is a key of `sizeguard.toml`
/// and, unless `#[arg(skip)]`, the flag of the same name that `check` and
/// `serve` take (both flatten this struct). `None` means "not said here".
/// Layers (the flags, `.dive-ci`, the file, a `[[serve.repositories]]`
/// policy) are merged field by field by [`Settings::layered`].
///
/// A new setting is one field here, and its use where the settings are
/// read ([`Settings::policy`], [`Settings::thresholds`], …).
#[derive(Debug, Clone, Default, Deserialize, clap::Args, Merge)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct Settings {
    // `check` names these `--candidate`, `--baseline` and
    // `--baseline-optional`; `serve` has a `--baseline` of its own.
    /// The image a local check judges (`--candidate`): what the pre-push
    /// hook checks, e.g. `docker-daemon:ghcr.io/org/app:dev`.
    #[arg(skip)]
    pub image: Option<String>,
    /// The image it replaces (`--baseline`): the last published one,
    /// e.g. `ghcr.io/org/app:main`.
    #[arg(skip)]
    pub baseline: Option<String>,
    #[arg(skip)]
    pub baseline_optional: Option<bool>,

    /// A `[nodes.NAME]` profile of the policy file.
    #[arg(long, value_name = "NAME", help_heading = "Node")]
    pub node_profile: Option<String>,

    /// The default node, when no profile is selected; on the command line,
    /// the node that replaces any profile.
    #[command(flatten)]
    #[merge(strategy = named_node_first)]
    pub node: Option<NodeConfig>,

    /// How the node keeps images: containerd, containerd-discard, cri-o, or
    /// a platform that implies one (eks, k3s, openshift) [default:
    /// containerd, or the node profile's].
    #[arg(long, value_name = "RUNTIME", help_heading = "Node")]
    pub runtime: Option<String>,

    /// Same as --runtime containerd-discard: containerd deletes layer blobs
    /// once unpacked.
    #[arg(
        long,
        num_args = 0,
        default_missing_value = "true",
        help_heading = "Node"
    )]
    pub discard_unpacked_layers: Option<bool>,

    /// Kubelet imageGCHighThresholdPercent: image GC starts at this usage [default: 85].
    #[arg(long, value_name = "PCT", help_heading = "Kubelet thresholds")]
    pub gc_high: Option<i64>,

    /// Kubelet imageGCLowThresholdPercent: GC frees down to this usage [default: 80].
    #[arg(long, value_name = "PCT", help_heading = "Kubelet thresholds")]
    pub gc_low: Option<i64>,

    /// Kubelet imageMaximumGCAge (`168h`, `7d`): unused images are removed
    /// after this long whatever the usage; shown with the node.
    #[arg(long, value_name = "DURATION", help_heading = "Kubelet thresholds")]
    pub image_maximum_gc_age: Option<String>,

    /// Kubelet hard eviction threshold imagefs.available [default: 15%].
    #[arg(long, value_name = "PCT", help_heading = "Kubelet thresholds")]
    pub eviction_imagefs_available: Option<String>,

    /// Kubelet hard eviction threshold imagefs.inodesFree [default: 5%].
    #[arg(long, value_name = "PCT", help_heading = "Kubelet thresholds")]
    pub eviction_imagefs_inodes_free: Option<String>,

    // The rules. Each `max-*` fails the check; each `warn-*` only warns.
    /// Growth versus the baseline that fails: `10%`, `200MiB`, or one figure
    /// (`pull_bytes=`, `node_bytes=`, `disk_bytes=`, `inodes=`). Repeatable.
    #[arg(long, value_name = "LIMIT", help_heading = "Rules")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub max_growth: Option<Vec<String>>,

    /// Growth versus the baseline that warns. Repeatable.
    #[arg(long, value_name = "LIMIT", help_heading = "Rules")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub warn_growth: Option<Vec<String>>,

    // `default-rules = false` in the file.
    /// Turn off the default warnings: growth of node_bytes over 10% of the
    /// baseline's, wasted (shadowed) bytes over 10% of the image.
    #[arg(
        long = "no-default-rules",
        num_args = 0,
        default_missing_value = "false",
        help_heading = "Rules"
    )]
    pub default_rules: Option<bool>,

    /// Level of the image-GC headroom rule (the eviction rule always fails)
    /// [default: fail].
    #[arg(
        long,
        value_name = "LEVEL",
        value_parser = ["warn", "fail"],
        help_heading = "Rules"
    )]
    pub gc_headroom_level: Option<String>,

    /// Judge the whole image against the node, not just what the baseline lacks.
    #[arg(
        long,
        num_args = 0,
        default_missing_value = "true",
        help_heading = "Rules"
    )]
    pub fresh_pull: Option<bool>,

    /// Pull size (manifest + config + compressed layers) that fails.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub max_pull_size: Option<String>,
    /// Pull size that warns.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub warn_pull_size: Option<String>,
    /// Unpacked size (Σ layer disk_bytes) that fails.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub max_unpacked_size: Option<String>,
    /// Unpacked size that warns.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub warn_unpacked_size: Option<String>,
    /// Any one layer's compressed size that fails.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub max_layer_size: Option<String>,
    /// Any one layer's compressed size that warns.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub warn_layer_size: Option<String>,
    /// Layer count that fails.
    #[arg(long, value_name = "N", help_heading = "Rules")]
    pub max_layers: Option<u64>,
    /// Layer count that warns.
    #[arg(long, value_name = "N", help_heading = "Rules")]
    pub warn_layers: Option<u64>,
    /// Bytes shadowed by upper layers that fail.
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub max_wasted: Option<String>,
    /// Bytes shadowed by upper layers that warn (replaces the default 10% warning).
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub warn_wasted: Option<String>,

    // dive's CI rules, as a `.dive-ci` file writes them (`disabled` too).
    /// dive's lowestEfficiency: an efficiency score (0 to 1) below this fails.
    #[arg(long, value_name = "RATIO", help_heading = "Rules")]
    pub lowest_efficiency: Option<Scalar>,
    /// dive's highestWastedBytes: dive's wasted bytes above this fail
    /// (`20MB` is 20 000 000 bytes, as dive reads it).
    #[arg(long, value_name = "SIZE", help_heading = "Rules")]
    pub highest_wasted_bytes: Option<Scalar>,
    /// dive's highestUserWastedPercent: wasted bytes over the bytes of the
    /// layers above the first, as a ratio (0 to 1), above this fail.
    #[arg(long, value_name = "RATIO", help_heading = "Rules")]
    pub highest_user_wasted_percent: Option<Scalar>,

    /// `[nodes.NAME]`, chosen by `node-profile`.
    #[arg(skip)]
    #[serde(default)]
    #[merge(strategy = first_profile_of_a_name)]
    pub nodes: BTreeMap<String, NodeConfig>,
    /// `sizeguard serve`: registries, receivers, per-repository policies.
    /// The keys above are the policy of every repository no entry matches.
    #[arg(skip)]
    pub serve: Option<ServeConfig>,
    /// `[hints]`: which removable-bytes hints `check` shows.
    #[arg(skip)]
    pub hints: Option<HintsConfig>,
}

/// `max-growth = "10%"` or `["10%", "1GiB"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

/// A layer's node replaces the ones under it only if it names a node:
/// `--node-inodes` alone leaves the file's `[node]` in force.
fn named_node_first(node: &mut Option<NodeConfig>, under: Option<NodeConfig>) {
    if !node.as_ref().is_some_and(NodeConfig::names_a_node) {
        *node = under;
    }
}

/// Every layer's profiles; a name defined in several is the first layer's.
fn first_profile_of_a_name(
    nodes: &mut BTreeMap<String, NodeConfig>,
    under: BTreeMap<String, NodeConfig>,
) {
    for (name, node) in under {
        nodes.entry(name).or_insert(node);
    }
}

/// The `[hints]` table:
///
/// ```toml
/// [hints]
/// disable = ["docs", "locales"]
/// min-bytes = "1MiB"            # hints saving less are not shown
/// [hints.rules.apt_lists]
/// min-bytes = "64KiB"           # this rule's own threshold
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HintsConfig {
    #[serde(default)]
    pub disable: Vec<String>,
    pub min_bytes: Option<String>,
    #[serde(default)]
    pub rules: BTreeMap<String, HintRuleConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HintRuleConfig {
    pub min_bytes: Option<String>,
}

impl HintsConfig {
    /// The settings the hints engine takes; an unknown rule id is a usage
    /// error, so a typo does not silently keep a rule on.
    pub fn settings(&self) -> Result<HintSettings, Error> {
        let known = |id: &str| hint_rules::ids().any(|k| k == id);
        let unknown = self
            .disable
            .iter()
            .chain(self.rules.keys())
            .find(|id| !known(id));
        if let Some(id) = unknown {
            let ids: Vec<&str> = hint_rules::ids().collect();
            return Err(Error::usage(format!(
                "[hints]: no rule {id:?} (rules: {})",
                ids.join(", ")
            )));
        }
        let mut out = HintSettings {
            disabled: self.disable.iter().cloned().collect(),
            ..Default::default()
        };
        if let Some(min) = bytes("hints.min-bytes", &self.min_bytes)? {
            out.min_bytes = min;
        }
        for (id, rule) in &self.rules {
            if let Some(min) = bytes(&format!("hints.rules.{id}.min-bytes"), &rule.min_bytes)? {
                out.rule_min_bytes.insert(id.clone(), min);
            }
        }
        Ok(out)
    }
}

/// The `[serve]` section: what the webhook validator listens on, which
/// registries it measures from, and the policy of each repository.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeConfig {
    pub listen: Option<String>,
    /// Where the embedded queue (SQLite) lives.
    pub data_dir: Option<PathBuf>,
    /// `postgres://...`: a shared queue for several replicas instead.
    pub database_url: Option<String>,
    /// The shared secret receivers expect (`Authorization: Bearer`), and
    /// the key of GitHub's signature.
    pub secret_file: Option<PathBuf>,
    /// The bearer token the verdict API and `/metrics` require (not the
    /// delivery secret).
    pub api_token_file: Option<PathBuf>,
    /// A listener of its own for the verdict API and `/metrics` (they are
    /// then not served on `listen`).
    pub admin_listen: Option<String>,
    /// How long verdicts and event ids are kept (`2160h`, `90d`; default 90 days).
    pub keep_verdicts: Option<String>,
    pub workers: Option<usize>,
    /// Jobs waiting at most; past that, receivers answer 503.
    pub max_queue: Option<u64>,
    /// The baseline of repositories no entry matches, as in an entry.
    pub baseline: Option<String>,
    pub baseline_tag: Option<String>,
    /// The registries images are measured from; events naming any other
    /// host are refused.
    #[serde(default)]
    pub registries: Vec<ServeRegistry>,
    /// First match wins.
    #[serde(default)]
    pub repositories: Vec<ServeRepository>,
    /// The service's address as others reach it: statuses and
    /// notifications link each verdict under it.
    pub public_url: Option<String>,
    /// Commit statuses on the commit an image's labels name.
    pub github: Option<ServeGithub>,
    /// A chat webhook told of some verdicts.
    pub notify: Option<ServeNotify>,
    /// Connections open at once; past it, `503` and closed.
    pub max_connections: Option<usize>,
    /// Requests handled at once, health probes aside; past it, `503`.
    pub max_in_flight: Option<usize>,
    /// PEM certificate chain and its key: serve HTTPS. Both files are
    /// re-read when they change.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `[serve.receivers.NAME]`: each sender's own secret and registries.
    #[serde(default)]
    pub receivers: ServeReceivers,
    /// `[serve.admission]`: the Kubernetes admission webhook.
    pub admission: Option<AdmissionConfig>,
}

/// `[serve.admission]`: answers `ValidatingAdmissionWebhook` calls at
/// `POST /v1/admission` (see `serve::admission`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdmissionConfig {
    /// Default: true when the table is present.
    pub enabled: Option<bool>,
    /// `enforce` (default) denies; `audit` admits and warns.
    pub mode: Option<String>,
    /// An image not measured yet: `allow` (default, with a warning) or `deny`.
    pub unmeasured: Option<String>,
    /// Namespaces admitted untouched; default `["kube-system"]`.
    pub exempt_namespaces: Option<Vec<String>>,
    /// The bearer token the API server presents (its AdmissionConfiguration
    /// kubeconfig's `token:`).
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) the API server's client certificate is
    /// verified against (its kubeconfig's `client-certificate`); with
    /// token-file, either one admits a review.
    pub client_ca_file: Option<PathBuf>,
    /// Node pools: a node profile and the labels of its nodes.
    #[serde(default)]
    pub pools: Vec<AdmissionPool>,
}

/// `[[serve.admission.pools]]`: the nodes labelled `selector` are `profile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdmissionPool {
    pub selector: BTreeMap<String, String>,
    /// A `[nodes.NAME]` table.
    pub profile: String,
}

/// `[serve.receivers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeReceivers {
    pub distribution: Option<ServeReceiver>,
    pub harbor: Option<ServeReceiver>,
    pub github: Option<ServeReceiver>,
}

/// One receiver:
///
/// ```toml
/// [serve.receivers.github]
/// enabled = true                  # default: when a secret for it is known
/// secret-file = "/run/secrets/github-hmac"  # default: [serve] secret-file
/// registries = ["ghcr.io"]        # default: ghcr.io for GitHub, else every allowed one
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeReceiver {
    pub enabled: Option<bool>,
    pub secret_file: Option<PathBuf>,
    /// Allowed registries this receiver's events may name; others are
    /// dropped (and counted), the rest of the delivery queued.
    pub registries: Option<Vec<String>>,
}

/// `[serve.github]`: commit statuses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeGithub {
    /// A token allowed to write commit statuses (`repo:status`).
    pub token_file: Option<PathBuf>,
    /// Default `https://api.github.com`; GitHub Enterprise Server:
    /// `https://HOST/api/v3`.
    pub api_url: Option<String>,
    /// The web host whose repository URLs get statuses; default the API
    /// URL's (`github.com` for the public API).
    pub host: Option<String>,
    /// Statuses are named `CONTEXT/REPOSITORY`; default `sizeguard`.
    pub context: Option<String>,
    /// GitHub owners (users, organisations) whose repositories may get
    /// statuses from any image; others only as `[[serve.repositories]]
    /// github` ties them to an image repository.
    #[serde(default)]
    pub owners: Vec<String>,
}

/// `[serve.notify]`: a JSON POST on chosen verdicts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeNotify {
    pub url: Option<String>,
    /// Verdicts notified: `pass`, `warn`, `fail`; default warn and fail.
    pub on: Option<Vec<String>>,
    /// A file whose content is sent as the value of `header`.
    pub secret_file: Option<PathBuf>,
    /// Default `Authorization`.
    pub header: Option<String>,
}

/// A registry the validator may measure from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeRegistry {
    /// `host[:port]`, as the registry's events name it.
    pub host: String,
    /// Plain HTTP.
    #[serde(default)]
    pub insecure: bool,
    /// Credentials; without them, the docker config file's (or anonymous).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// The policy and baseline of the repositories a glob matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeRepository {
    /// Glob over `repository` (`team/*`, `**`): `*` stays within one path
    /// segment, `**` crosses them, `?` is one character.
    #[serde(rename = "match")]
    pub pattern: String,
    /// A fixed reference, or a template over `{registry}`, `{repository}`,
    /// `{tag}` and `{tag_without_suffix}` (`{repository}:{tag_without_suffix}`
    /// is read in the pushed image's registry).
    pub baseline: Option<String>,
    /// The tag of the same repository to compare with (`latest`, `main`,
    /// `{tag}-base`).
    pub baseline_tag: Option<String>,
    /// The policy's keys (as at the top of the file); unset keys are the
    /// top level's.
    #[serde(default)]
    pub policy: Settings,
    /// GitHub repositories (`owner/repo`) whose commits may get the
    /// statuses of the images this entry matches (besides
    /// `[serve.github] owners`): an image's source label naming any other
    /// repository gets none.
    #[serde(default)]
    pub github: Vec<String>,
}

impl Settings {
    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Settings, Error> {
        // A policy file the user named (or that was found) and cannot be
        // read is a usage error, whatever the I/O error says.
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(path.display()).with_source(e))?;
        let mut s: Settings = toml::from_str(&text)
            .map_err(|e| Error::usage(format!("{}: {}", path.display(), e.message())))?;
        // Stats paths and image files in the file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        for n in s.node.iter_mut().chain(s.nodes.values_mut()) {
            if let Some(p) = &n.stats
                && p.is_relative()
            {
                n.stats = Some(base.join(p));
            }
        }
        for r in [&mut s.image, &mut s.baseline].into_iter().flatten() {
            *r = relative_to(base, r);
        }
        if let Some(serve) = &mut s.serve {
            serve.relative_to(base);
        }
        Ok(s)
    }

    /// `sizeguard.toml` in the working directory or the nearest parent.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .map(|d| d.join(FILE_NAME))
            .find(|p| p.is_file())
    }

    /// The layers merged field by field, each setting from the first layer
    /// that gives it: `[flags, file]` is the file under the flags.
    pub fn layered(layers: impl IntoIterator<Item = Settings>) -> Settings {
        layers
            .into_iter()
            .reduce(|mut top, under| {
                top.merge(under);
                top
            })
            .unwrap_or_default()
    }

    /// Whether these settings name a node themselves (on the command
    /// line: `--node-stats` or `--node-capacity`), which then replaces
    /// any profile.
    pub fn names_a_node(&self) -> bool {
        self.node.as_ref().is_some_and(NodeConfig::names_a_node)
    }
}

impl ServeConfig {
    /// Paths in the file are relative to the file.
    fn relative_to(&mut self, base: &Path) {
        let paths = [
            &mut self.data_dir,
            &mut self.secret_file,
            &mut self.api_token_file,
        ]
        .into_iter()
        .chain(
            self.admission
                .iter_mut()
                .flat_map(|a| [&mut a.token_file, &mut a.client_ca_file]),
        )
        .chain(self.registries.iter_mut().map(|r| &mut r.password_file));
        for p in paths.flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for r in &mut self.repositories {
            for n in r.policy.node.iter_mut().chain(r.policy.nodes.values_mut()) {
                if let Some(p) = &n.stats
                    && p.is_relative()
                {
                    n.stats = Some(base.join(p));
                }
            }
        }
    }
}

/// A reference to an image file or directory (`oci:`, `oci-archive:`,
/// `docker-archive:`) with a relative path, made relative to `base`; any
/// other reference as it is.
fn relative_to(base: &Path, reference: &str) -> String {
    for transport in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = reference.strip_prefix(transport)
            && Path::new(rest).is_relative()
        {
            return format!("{transport}{}", base.join(rest).display());
        }
    }
    reference.to_string()
}

fn bytes(key: &str, v: &Option<String>) -> Result<Option<u64>, Error> {
    v.as_deref()
        .map(|s| parse_bytes(s).map_err(|e| e.context(key)))
        .transpose()
}

fn levels(
    warn_key: &str,
    warn: &Option<String>,
    fail_key: &str,
    fail: &Option<String>,
) -> Result<Levels, Error> {
    Ok(Levels {
        warn: bytes(warn_key, warn)?,
        fail: bytes(fail_key, fail)?,
    })
}

fn growth(key: &str, v: &Option<Vec<String>>) -> Result<Vec<GrowthRule>, Error> {
    v.iter()
        .flatten()
        .map(|s| GrowthRule::parse(s).map_err(|e| e.context(key)))
        .collect()
}

impl Settings {
    pub fn policy(&self) -> Result<Policy, Error> {
        Ok(Policy {
            fail_growth: growth("max-growth", &self.max_growth)?,
            warn_growth: growth("warn-growth", &self.warn_growth)?,
            pull_size: levels(
                "warn-pull-size",
                &self.warn_pull_size,
                "max-pull-size",
                &self.max_pull_size,
            )?,
            unpacked_size: levels(
                "warn-unpacked-size",
                &self.warn_unpacked_size,
                "max-unpacked-size",
                &self.max_unpacked_size,
            )?,
            layer_size: levels(
                "warn-layer-size",
                &self.warn_layer_size,
                "max-layer-size",
                &self.max_layer_size,
            )?,
            layers: Levels {
                warn: self.warn_layers,
                fail: self.max_layers,
            },
            wasted: levels(
                "warn-wasted",
                &self.warn_wasted,
                "max-wasted",
                &self.max_wasted,
            )?,
            gc_headroom_level: match self.gc_headroom_level.as_deref() {
                None | Some("fail") => Some(Level::Fail),
                Some("warn") => Some(Level::Warn),
                Some(other) => {
                    return Err(Error::usage(format!(
                        "gc-headroom-level: {other:?} is not warn or fail"
                    )));
                }
            },
            fresh_pull: self.fresh_pull.unwrap_or(false),
            default_rules: self.default_rules.unwrap_or(true),
            dive: self.dive_rules()?,
            store: self.store_model()?,
            node_expected: self.gc_headroom_level.is_some()
                || self.gc_high.is_some()
                || self.gc_low.is_some()
                || self.eviction_imagefs_available.is_some()
                || self.eviction_imagefs_inodes_free.is_some(),
        })
    }

    fn dive_rules(&self) -> Result<DiveRules, Error> {
        let text = |v: &Option<Scalar>| v.as_ref().map(Scalar::text);
        let ratio = |key: &str, v: &Option<Scalar>| {
            text(v).map_or(Ok(None), |t| dive::parse_ratio(key, &t))
        };
        Ok(DiveRules {
            lowest_efficiency: ratio("lowest-efficiency", &self.lowest_efficiency)?,
            highest_wasted_bytes: text(&self.highest_wasted_bytes)
                .map_or(Ok(None), |t| dive::parse_bytes("highest-wasted-bytes", &t))?,
            highest_user_wasted_percent: ratio(
                "highest-user-wasted-percent",
                &self.highest_user_wasted_percent,
            )?,
        })
    }

    /// The runtime the settings name (`runtime`, or the older
    /// `discard-unpacked-layers`), before a node profile's own.
    fn store_model(&self) -> Result<StoreModel, Error> {
        let named = self
            .runtime
            .as_deref()
            .map(|s| StoreModel::parse(s).map_err(|e| e.context("runtime")))
            .transpose()?;
        match (named, self.discard_unpacked_layers) {
            (Some(m), Some(true)) if m.runtime != Runtime::ContainerdDiscard => {
                Err(Error::usage(format!(
                    "runtime {} and discard-unpacked-layers disagree: discarding layer blobs is containerd-discard",
                    m.describe()
                )))
            }
            (Some(m), _) => Ok(m),
            (None, Some(true)) => Ok(StoreModel::of(Runtime::ContainerdDiscard)),
            (None, _) => Ok(StoreModel::default()),
        }
    }

    /// What a check is judged by: the policy, the node and the kubelet's
    /// thresholds, under the flags given on the command line (`flags`,
    /// also merged into `self`): a node they name replaces any profile,
    /// and a runtime they name replaces the node profile's, which in turn
    /// replaces the file's top-level one.
    pub fn judging(&self, flags: &Settings) -> Result<Judging, Error> {
        let mut policy = self.policy()?;
        let node = self.node_choice(flags.names_a_node())?;
        let flags_name_a_runtime =
            flags.runtime.is_some() || flags.discard_unpacked_layers.is_some();
        if !flags_name_a_runtime && let Some(store) = node.as_ref().and_then(|n| n.store) {
            policy.store = store;
        }
        Ok(Judging {
            policy,
            node,
            thresholds: self.thresholds()?,
        })
    }

    pub fn thresholds(&self) -> Result<Thresholds, Error> {
        let d = Thresholds::default();
        let pct = |key: &str, v: &Option<String>, default: f64| -> Result<f64, Error> {
            v.as_deref()
                .map(|s| kubelet::parse_percent(s).map_err(|e| e.context(key)))
                .transpose()
                .map(|p| p.unwrap_or(default))
        };
        let whole = |key: &str, v: Option<i64>, default: u8| -> Result<u8, Error> {
            match v {
                None => Ok(default),
                Some(n) if (0..=100).contains(&n) => Ok(n as u8),
                Some(n) => Err(Error::usage(format!(
                    "{key}: {n} is not a percentage between 0 and 100"
                ))),
            }
        };
        let t = Thresholds {
            gc_high: whole("gc-high", self.gc_high, d.gc_high)?,
            gc_low: whole("gc-low", self.gc_low, d.gc_low)?,
            eviction_available_pct: pct(
                "eviction-imagefs-available",
                &self.eviction_imagefs_available,
                d.eviction_available_pct,
            )?,
            eviction_inodes_free_pct: pct(
                "eviction-imagefs-inodes-free",
                &self.eviction_imagefs_inodes_free,
                d.eviction_inodes_free_pct,
            )?,
            image_maximum_gc_age_seconds: self
                .image_maximum_gc_age
                .as_deref()
                .map(|s| {
                    crate::units::parse_duration(s)
                        .map(|d| d.as_secs())
                        .map_err(|e| e.context("image-maximum-gc-age"))
                })
                .transpose()?,
        };
        t.validate()?;
        Ok(t)
    }

    /// Resolves which node to judge against: the node given on the command
    /// line (merged into `node`), else the selected profile, else the file's
    /// default node, else none.
    pub fn node_choice(&self, cli_node_given: bool) -> Result<Option<NodeInput>, Error> {
        let (label, cfg) = if cli_node_given {
            ("node".to_string(), self.node.clone())
        } else if let Some(p) = &self.node_profile {
            let cfg = self.nodes.get(p).cloned().ok_or_else(|| {
                Error::usage(format!(
                    "node profile {p:?} is not defined; profiles: {}",
                    if self.nodes.is_empty() {
                        "none".to_string()
                    } else {
                        self.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ))
            })?;
            (p.clone(), Some(cfg))
        } else {
            ("node".to_string(), self.node.clone())
        };
        let Some(cfg) = cfg else { return Ok(None) };
        let store = cfg
            .runtime
            .as_deref()
            .map(|r| StoreModel::parse(r).map_err(|e| e.context(format!("{label}: runtime"))))
            .transpose()?;
        let container_fs = match &cfg.container_fs_capacity {
            None => None,
            Some(capacity) => {
                let capacity_bytes =
                    parse_bytes(capacity).map_err(|e| e.context("node-container-fs-capacity"))?;
                let available_bytes = match &cfg.container_fs_available {
                    Some(a) => {
                        parse_bytes(a).map_err(|e| e.context("node-container-fs-available"))?
                    }
                    None => capacity_bytes,
                };
                if available_bytes > capacity_bytes {
                    return Err(Error::usage(format!(
                        "{label}: containerFs available space {available_bytes} bytes exceeds its capacity {capacity_bytes} bytes"
                    )));
                }
                Some(kubelet::ContainerFs {
                    capacity_bytes,
                    available_bytes,
                })
            }
        };
        let system_reserved_bytes = bytes("node-system-reserved", &cfg.system_reserved)?;
        if let Some(stats) = &cfg.stats {
            if system_reserved_bytes.is_some() || cfg.name.is_some() {
                return Err(Error::usage(
                    "node: a stats summary names its nodes and says what they use; system-reserved and name go with a capacity",
                ));
            }
            if container_fs.is_some() {
                return Err(Error::usage(
                    "node: a stats summary says whether the node splits its image filesystem; container-fs figures go with a capacity",
                ));
            }
            let nodes = read_stats(stats)?;
            return Ok(Some(NodeInput {
                label,
                nodes,
                used_source: UsedSource::Stats,
                system_reserved_bytes: 0,
                store,
            }));
        }
        let Some(capacity) = &cfg.capacity else {
            if cfg.available.is_some() || cfg.used.is_some() {
                return Err(Error::usage(
                    "node: --node-available/--node-used need --node-capacity",
                ));
            }
            return Ok(None);
        };
        let given = cfg.available.is_some() || cfg.used.is_some();
        if given && system_reserved_bytes.is_some() {
            return Err(Error::usage(
                "node: --node-system-reserved is counted only when the used space is assumed; with --node-used or --node-available it is already in the figure",
            ));
        }
        let mut fs = kubelet::from_flags(
            capacity,
            cfg.available.as_deref(),
            // Capacity only: nothing used yet; what the node is assumed to
            // hold is added once the baseline is measured.
            cfg.used.as_deref().or((!given).then_some("0")),
            cfg.inodes,
            cfg.inodes_free,
        )
        .map_err(|e| e.context("node"))?;
        fs.container_fs = container_fs;
        fs.name = match &cfg.name {
            Some(name) => name.clone(),
            None if cli_node_given || label == "node" => capacity_name(fs.capacity_bytes),
            None => label.clone(),
        };
        Ok(Some(NodeInput {
            label,
            nodes: vec![fs],
            used_source: if given {
                UsedSource::Given
            } else {
                UsedSource::Assumed
            },
            system_reserved_bytes: system_reserved_bytes.unwrap_or(0),
            store,
        }))
    }
}

/// The most a `--node-stats` file (or standard input) may weigh. One
/// node's summary is tens to hundreds of KiB (it lists every pod's
/// volumes); this holds an array of dozens of busy nodes, and keeps a
/// wrong file (a disk image, `/dev/zero`) from being read whole.
pub const MAX_NODE_STATS_BYTES: u64 = 16 * 1024 * 1024;

/// A node given by its figures, named by its capacity as a person says it:
/// `20 GiB node` for 20Gi, `2.00 MiB node` otherwise.
fn capacity_name(capacity: u64) -> String {
    const GIB: u64 = 1 << 30;
    if capacity >= GIB && capacity.is_multiple_of(GIB) {
        format!("{} GiB node", capacity / GIB)
    } else {
        format!("{} node", crate::units::human_bytes(capacity))
    }
}

/// The nodes of a kubelet stats summary file (`-`: standard input).
fn read_stats(stats: &Path) -> Result<Vec<NodeFs>, Error> {
    let what = || {
        if stats.as_os_str() == "-" {
            "node stats from standard input".to_string()
        } else {
            format!("node stats {}", stats.display())
        }
    };
    let reader: Box<dyn std::io::Read> = if stats.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(stats).map_err(|e| Error::usage(what()).with_source(e))?)
    };
    let raw = read_at_most(reader, MAX_NODE_STATS_BYTES)
        .map_err(|e| Error::usage(what()).with_source(e))?
        .ok_or_else(|| {
            Error::usage(format!(
                "{}: more than {} (a kubelet stats summary is far smaller)",
                what(),
                crate::units::human_bytes(MAX_NODE_STATS_BYTES)
            ))
        })?;
    // The summary itself is corrupt, but the user named the file: that
    // makes it a usage error (exit 2), with the reason kept.
    kubelet::parse_stats_summary(&raw).map_err(|e| Error::usage(what()).with_source(e))
}

/// All of `reader` if it holds at most `limit` bytes; `None` if it holds
/// more (read no further than one byte past the limit).
fn read_at_most(reader: impl std::io::Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut reader.take(limit.saturating_add(1)), &mut buf)?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dive_rule_keys_read_numbers_sizes_and_disabled() {
        let s: Settings = toml::from_str(
            "lowest-efficiency = 0.95\nhighest-wasted-bytes = \"20MB\"\nhighest-user-wasted-percent = \"disabled\"\n",
        )
        .unwrap();
        let d = s.policy().unwrap().dive;
        assert_eq!(d.lowest_efficiency, Some(0.95));
        assert_eq!(d.highest_wasted_bytes, Some(20_000_000));
        assert_eq!(d.highest_user_wasted_percent, None);
        let bytes: Settings = toml::from_str("highest-wasted-bytes = 1048576\n").unwrap();
        assert_eq!(
            bytes.policy().unwrap().dive.highest_wasted_bytes,
            Some(1 << 20)
        );
        let bad: Settings = toml::from_str("lowest-efficiency = 2\n").unwrap();
        assert_eq!(bad.policy().unwrap_err().kind(), crate::error::Kind::Usage);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<Settings>("max-grwoth = \"10%\"").unwrap_err();
        assert!(err.message().contains("max-grwoth"), "{}", err.message());
        let err = toml::from_str::<Settings>("[nodes.gpu]\ncapacty = \"1Gi\"").unwrap_err();
        assert!(err.message().contains("capacty"), "{}", err.message());
    }

    #[test]
    fn flags_override_file_and_profiles_resolve() {
        let file: Settings = toml::from_str(
            "max-growth = [\"10%\", \"1GiB\"]\nnode-profile = \"gpu\"\n[nodes.gpu]\ncapacity = \"100Gi\"\nused = \"30Gi\"\n",
        )
        .unwrap();
        let flags = Settings {
            max_growth: Some(vec!["5%".into()]),
            ..Default::default()
        };
        let merged = Settings::layered([flags, file]);
        assert_eq!(merged.policy().unwrap().fail_growth.len(), 1);
        let choice = merged.node_choice(false).unwrap().unwrap();
        assert_eq!(choice.label, "gpu");
        assert_eq!(choice.nodes[0].capacity_bytes, 100 << 30);
        assert_eq!(choice.nodes[0].available_bytes, 70 << 30);
        let bad = Settings {
            node_profile: Some("cpu".into()),
            ..merged
        };
        let err = bad.node_choice(false).err().unwrap();
        assert!(err.to_string().contains("gpu"), "{err}");
    }

    #[test]
    fn unset_flags_leave_the_file_alone() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: Settings,
        }
        let parse = |args: &[&str]| {
            <Flags as clap::Parser>::try_parse_from(
                std::iter::once("sizeguard").chain(args.iter().copied()),
            )
            .unwrap()
            .settings
        };
        let none = parse(&[]);
        assert_eq!(none.default_rules, None);
        assert_eq!(none.fresh_pull, None);
        assert_eq!(none.discard_unpacked_layers, None);
        assert_eq!(none.max_growth, None);
        assert!(none.node.is_none());
        let flags = parse(&[
            "--no-default-rules",
            "--fresh-pull",
            "--max-growth",
            "10%",
            "--max-growth",
            "1GiB",
            "--lowest-efficiency",
            "0.9",
            "--node-inodes",
            "10",
            "--node-inodes-free",
            "5",
        ]);
        assert_eq!(flags.default_rules, Some(false));
        assert_eq!(flags.fresh_pull, Some(true));
        assert_eq!(
            flags.max_growth,
            Some(vec!["10%".to_string(), "1GiB".to_string()])
        );
        assert_eq!(flags.lowest_efficiency, Some(Scalar::Text("0.9".into())));
        assert!(!flags.names_a_node());
        let file: Settings = toml::from_str(
            "fresh-pull = false\ndefault-rules = true\ndiscard-unpacked-layers = true\n[node]\ncapacity = \"20Gi\"\n",
        )
        .unwrap();
        let merged = Settings::layered([flags, file]);
        assert_eq!(merged.fresh_pull, Some(true));
        assert_eq!(merged.default_rules, Some(false));
        assert_eq!(merged.discard_unpacked_layers, Some(true));
        assert_eq!(
            merged.node.and_then(|n| n.capacity).as_deref(),
            Some("20Gi"),
            "inode counts alone name no node"
        );
        let node = parse(&["--node-capacity", "8Gi"]);
        assert!(node.names_a_node());
    }

    #[test]
    fn image_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(
            &file,
            "image = \"oci:build/app:dev\"\nbaseline = \"ghcr.io/org/app:main\"\n",
        )
        .unwrap();
        let s = Settings::load(&file).unwrap();
        let image = format!("oci:{}:dev", dir.path().join("build/app").display());
        assert_eq!(s.image.as_deref(), Some(image.as_str()));
        assert_eq!(s.baseline.as_deref(), Some("ghcr.io/org/app:main"));
        let flags = Settings {
            baseline: Some("oci:/elsewhere:v1".into()),
            ..Default::default()
        };
        let merged = Settings::layered([flags, s]);
        assert_eq!(merged.baseline.as_deref(), Some("oci:/elsewhere:v1"));
        assert_eq!(merged.image.as_deref(), Some(image.as_str()));
        assert_eq!(
            relative_to(Path::new("/repo"), "docker-daemon:app:dev"),
            "docker-daemon:app:dev"
        );
    }

    #[test]
    fn node_stats_are_read_no_further_than_the_cap() {
        assert!(read_at_most(std::io::repeat(0), 1000).unwrap().is_none());
        assert_eq!(read_at_most(&b"{}"[..], 2).unwrap().unwrap(), b"{}");
        assert!(read_at_most(&b"{} "[..], 2).unwrap().is_none());
        let e = read_stats(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage);
        assert!(e.to_string().contains("more than 16.0 MiB"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("s.json");
        std::fs::write(
            &stats,
            r#"{"node": {"fs": {"capacityBytes": 10, "availableBytes": 11}}}"#,
        )
        .unwrap();
        let e = read_stats(&stats).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::Usage, "{e}");
    }

    #[test]
    fn a_capacity_alone_is_an_assumed_node_named_by_its_capacity() {
        let s: Settings =
            toml::from_str("[node]\ncapacity = \"20Gi\"\nsystem-reserved = \"1Gi\"\n").unwrap();
        let n = s.node_choice(false).unwrap().unwrap();
        assert_eq!(n.used_source, UsedSource::Assumed);
        assert_eq!(n.system_reserved_bytes, 1 << 30);
        assert_eq!(n.nodes[0].name, "20 GiB node");
        assert_eq!(capacity_name(2_000_000), "1.91 MiB node");
        let s: Settings =
            toml::from_str("[nodes.small]\ncapacity = \"8Gi\"\nused = \"1Gi\"\n").unwrap();
        let s = Settings {
            node_profile: Some("small".into()),
            ..s
        };
        let n = s.node_choice(false).unwrap().unwrap();
        assert_eq!(n.used_source, UsedSource::Given);
        assert_eq!(n.nodes[0].name, "small", "a profile keeps its name");
        let both: Settings = toml::from_str(
            "[node]\ncapacity = \"8Gi\"\nused = \"1Gi\"\nsystem-reserved = \"1Gi\"\n",
        )
        .unwrap();
        assert!(both.node_choice(false).is_err());
    }

    #[test]
    fn thresholds_are_validated() {
        let s = Settings {
            gc_high: Some(80),
            gc_low: Some(85),
            ..Default::default()
        };
        assert!(s.thresholds().is_err());
        let s = Settings {
            gc_high: Some(101),
            ..Default::default()
        };
        assert!(s.thresholds().is_err());
        assert!(Settings::default().thresholds().is_ok());
    }

    #[test]
    fn the_runtime_comes_from_the_flag_then_the_node_profile_then_the_file() {
        use crate::budget::cost::Preset;
        let file: Settings = toml::from_str(
            "runtime = \"cri-o\"\nnode-profile = \"eks\"\n[nodes.eks]\ncapacity = \"100Gi\"\nruntime = \"eks\"\ncontainer-fs-capacity = \"50Gi\"\ncontainer-fs-available = \"20Gi\"\n[nodes.plain]\ncapacity = \"100Gi\"\n",
        )
        .unwrap();
        let none = Settings::default();
        let j = Settings::layered([none.clone(), file.clone()])
            .judging(&none)
            .unwrap();
        assert_eq!(j.policy.store.runtime, Runtime::ContainerdDiscard);
        assert_eq!(j.policy.store.preset, Some(Preset::Eks));
        let split = j.node.unwrap().nodes[0].container_fs.unwrap();
        assert_eq!(
            (split.capacity_bytes, split.available_bytes),
            (50 << 30, 20 << 30)
        );

        // A profile that names none leaves the file's.
        let plain = Settings {
            node_profile: Some("plain".into()),
            ..Default::default()
        };
        let j = Settings::layered([plain.clone(), file.clone()])
            .judging(&plain)
            .unwrap();
        assert_eq!(j.policy.store.runtime, Runtime::CriO);

        // The flag wins over the profile.
        let flag = Settings {
            runtime: Some("containerd".into()),
            ..Default::default()
        };
        let j = Settings::layered([flag.clone(), file.clone()])
            .judging(&flag)
            .unwrap();
        assert_eq!(j.policy.store, StoreModel::of(Runtime::Containerd));

        // The older switch still means containerd-discard, and cannot
        // contradict a runtime.
        let discard = Settings {
            discard_unpacked_layers: Some(true),
            ..Default::default()
        };
        assert_eq!(
            discard.judging(&discard).unwrap().policy.store.runtime,
            Runtime::ContainerdDiscard
        );
        let both = Settings {
            runtime: Some("cri-o".into()),
            ..discard
        };
        assert_eq!(
            both.judging(&both).unwrap_err().kind(),
            crate::error::Kind::Usage
        );
        let bad: Settings =
            toml::from_str("[nodes.x]\ncapacity = \"1Gi\"\nruntime = \"docker\"\n").unwrap();
        let bad = Settings {
            node_profile: Some("x".into()),
            ..bad
        };
        let err = bad.judging(&Settings::default()).unwrap_err();
        assert!(err.to_string().contains("x: runtime"), "{err}");
    }

    #[test]
    fn image_maximum_gc_age_is_a_duration() {
        let s = Settings {
            image_maximum_gc_age: Some("168h".into()),
            ..Default::default()
        };
        assert_eq!(
            s.thresholds().unwrap().image_maximum_gc_age_seconds,
            Some(168 * 3600)
        );
        let bad = Settings {
            image_maximum_gc_age: Some("a week".into()),
            ..Default::default()
        };
        assert!(bad.thresholds().is_err());
    }

    #[test]
    fn the_readme_example_file_is_read_and_its_profiles_judge() {
        let readme = include_str!("../../README.md");
        let at = readme
            .find("### `sizeguard.toml`")
            .expect("the README documents the file");
        let block = &readme[at..];
        let start = block.find("```toml\n").unwrap() + "```toml\n".len();
        let text = &block[start..start + block[start..].find("```").unwrap()];
        let file: Settings = toml::from_str(text).unwrap();
        for (profile, runtime) in [
            ("gpu", Runtime::ContainerdDiscard),
            ("crio", Runtime::CriO),
            ("small", Runtime::Containerd),
        ] {
            let chosen = Settings {
                node_profile: Some(profile.into()),
                ..Default::default()
            };
            let j = Settings::layered([chosen.clone(), file.clone()])
                .judging(&chosen)
                .unwrap();
            assert_eq!(j.policy.store.runtime, runtime, "{profile}");
        }
    }
}
