//! sizeguard: measure container images as a Kubernetes node pays for them,
//! and stop the ones that grow past what the node can hold.
//!
//! One judging core, several entry points. The modules, from bytes to
//! verdict to the places it is shown:
//!
//! - [`source`]: where images come from (registry, `oci:`, `oci-archive:`,
//!   `docker-archive:`, `dir:`, a local engine), one transport per module
//!   behind one trait.
//! - [`measure`]: streams each layer once into figures (compressed, tar,
//!   disk blocks, inodes), the merged filesystem view, the layer cache.
//! - [`budget`]: the containerd cost model, the kubelet arithmetic, the
//!   rules and the verdict; pure functions.
//! - [`config`]: `sizeguard.toml`, merged with the command line.
//! - [`app`]: the requests every entry point builds (`MeasureRequest`,
//!   `CheckRequest`) and the one function each that answers them.
//! - [`report`]: one renderer per format (table, JSON, Markdown) over the
//!   same report.
//! - [`publish`]: GitHub: the pull-request comment and Actions outputs.
//! - [`cli`]: the command line: flags, their mapping to requests, and the
//!   commands (render, publish, exit code).
//! - [`serve`] (cargo feature `server`, on by default): `sizeguard serve`,
//!   the registry webhook validator: event parsers and authentication, the
//!   inbound listener, the durable queue and verdict records (SQLite or
//!   PostgreSQL), the workers, per-repository policies, the verdict API,
//!   metrics, and verdicts out (commit status, chat).
//! - [`error`], [`digest`], [`units`], [`go_json`]: the error kinds,
//!   content digests, byte quantities, JSON as Go tools write it.
//! - `fuzzing` (hidden): what each fuzz target does with one input.

pub mod app;
pub mod budget;
pub mod cli;
pub mod config;
pub mod digest;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod go_json;
pub mod measure;
pub mod publish;
pub mod report;
#[cfg(feature = "server")]
pub mod serve;
pub mod source;
pub mod units;

pub use cli::run;
