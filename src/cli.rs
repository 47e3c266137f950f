//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;

#[derive(Debug, Parser)]
#[command(
    name = "sizeguard",
    version,
    about = "Measure container images as a Kubernetes node pays for them, and stop the ones that grow too much",
    after_help = "Exit codes: 0 ok (or only warnings), 1 a fail rule fired, 2 usage or configuration error, 3 the images could not be measured."
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream every layer of one or more images and report their real size.
    ///
    /// References: `registry/repo:tag`, `repo@sha256:...`, `docker://...`,
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`.
    Measure(MeasureArgs),
}

/// Options shared by every command that reads images.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Platform to measure in an index: os/arch[/variant], or `all`.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// A registry that speaks plain HTTP (repeatable). Loopback registries
    /// are probed for TLS first and fall back to HTTP by themselves.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,

    /// Extra CA certificate (PEM) to trust for registries (repeatable); the
    /// system store and SSL_CERT_FILE are used too.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,

    /// Registry user name; the password is read from standard input.
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the registry password (or token) from standard input.
    #[arg(long = "password-stdin", requires = "username")]
    pub password_stdin: bool,

    /// Layers streamed at once (default: number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Check every layer's uncompressed digest against the config's diff_ids.
    #[arg(long = "verify-diff-ids")]
    pub verify_diff_ids: bool,

    /// No progress bars.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Images to measure.
    #[arg(required = true, value_name = "REF")]
    pub references: Vec<String>,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Length of the largest-files lists (final filesystem and per layer).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// Write the report to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}
