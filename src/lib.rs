//! sizeguard: measure container images as a Kubernetes node pays for them,
//! and stop the ones that grow past what the node can hold.
//!
//! One judging core, several entry points. The modules, from bytes to
//! verdict to the places it is shown:
//!
//! - [`source`]: where images come from (registry, `oci:`, `oci-archive:`,
//!   `docker-archive:`, `dir:`, a local engine), one transport per module
//!   behind one trait.
//! - [`tarstream`]: the bounded tar reader every tar goes through, a
//!   layer's or an archive's, and the limits it holds them to.
//! - [`measure`]: streams each layer once into figures (compressed, tar,
//!   disk blocks, inodes), the merged filesystem view, the layer cache.
//! - [`analyze`]: what a measured image's layers and merged view explain:
//!   the hints, the path diff, the layer diff.
//! - [`budget`]: the node cost model per runtime, the kubelet arithmetic, the
//!   rules and the verdict; pure functions.
//! - [`config`]: every setting once: `sizeguard.toml`, `.dive-ci` and the
//!   flags, merged field by field.
//! - [`app`]: the requests every entry point builds (`MeasureRequest`,
//!   `CheckRequest`) and the one function each that answers them.
//! - [`report`]: one renderer per format (table, JSON, Markdown, HTML)
//!   over the same report, and a repository's history as a table, a
//!   Mermaid trend and SVG charts.
//! - [`publish`]: verdicts out: the pull-request comment, the commit
//!   status, the chat notification, Actions outputs.
//! - [`cli`]: the command line: flags, their mapping to requests, and the
//!   commands (render, publish, exit code).
//! - [`serve`] (cargo feature `server`, on by default): `sizeguard serve`,
//!   the registry webhook validator: event parsers and authentication, the
//!   inbound listener, the durable queue and verdict records (SQLite or
//!   PostgreSQL), the workers, per-repository policies, the verdict API,
//!   metrics, and verdicts out (commit status, chat).
//! - [`retry`]: the one retry policy of every outbound call: deadline,
//!   backoff, `Retry-After`.
//! - [`error`], [`digest`], [`units`], [`go_json`], [`plain_text`]: the
//!   error kinds, content digests, byte quantities and durations, JSON as
//!   Go tools write it, text made inert for a terminal or a log.
//! - `fuzzing` (hidden): what each fuzz target does with one input.
//!
//! No two modules use each other. From the bottom: the shared leaves
//! (`error`, `plain_text`, `units`, `digest`, `go_json`, `retry`),
//! `tarstream`, `source`, `measure`, `analyze`, `budget`; then `config`
//! and `report` over them, `publish`, `app`, and the entry points `serve`
//! and `cli`.

pub mod analyze;
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
pub mod plain_text;
pub mod publish;
pub mod report;
pub mod retry;
#[cfg(feature = "server")]
pub mod serve;
pub mod source;
pub mod tarstream;
pub mod units;

pub use cli::run;
