//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::measure::layer::Inflater;

/// `measure --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `check --format`: also Markdown, the text a pull-request comment uses,
/// and a verdict short enough for a terminal (what the pre-push hook shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
    Markdown,
    Short,
}

impl From<Format> for crate::report::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => crate::report::Format::Table,
            Format::Json => crate::report::Format::Json,
        }
    }
}

impl From<CheckFormat> for crate::report::Format {
    fn from(f: CheckFormat) -> Self {
        match f {
            CheckFormat::Table => crate::report::Format::Table,
            CheckFormat::Json => crate::report::Format::Json,
            CheckFormat::Markdown => crate::report::Format::Markdown,
            CheckFormat::Short => crate::report::Format::Short,
        }
    }
}

/// `history --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    Table,
    Json,
    Markdown,
    Svg,
}

/// When to comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentMode {
    /// Create the comment, or edit it on every run.
    Always,
    /// Like `always`, but leave the comment alone when the report did not change.
    OnChange,
    /// Only when the verdict is fail; an earlier comment is still kept current.
    OnFailure,
    /// Never comment.
    Never,
}

impl From<CommentMode> for crate::publish::comment::Mode {
    fn from(m: CommentMode) -> Self {
        use crate::publish::comment::Mode;
        match m {
            CommentMode::Always => Mode::Always,
            CommentMode::OnChange => Mode::OnChange,
            CommentMode::OnFailure => Mode::OnFailure,
            CommentMode::Never => Mode::Never,
        }
    }
}

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
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`,
    /// `dir:DIR`, `docker-daemon:IMAGE`, `podman:IMAGE`.
    Measure(MeasureArgs),
    /// Compare a candidate with its baseline and judge it against the
    /// node's imageFS budget and the growth and size limits.
    Check(Box<CheckArgs>),
    /// Inspect or trim the layer cache.
    Cache(CacheArgs),
    /// Post a `check --format json` report as the sticky pull-request
    /// comment (e.g. from a `workflow_run` workflow, for fork pull requests).
    Comment(CommentArgs),
    /// A repository's images over its releases, with the figures of the
    /// check reports attached to them (`check --attach`).
    History(HistoryArgs),
    /// Install or remove the git pre-push hook that checks the local image
    /// with the repository's sizeguard.toml before every push.
    Hook(HookArgs),
    /// Run the registry webhook validator: receive push notifications,
    /// judge every pushed image, serve the verdicts.
    #[cfg(feature = "server")]
    Serve(Box<ServeArgs>),
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `serve --disable-receiver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReceiverName {
    Distribution,
    Harbor,
    Github,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file: the default policy at the top, a `[serve]`
    /// section with registries and per-repository policies.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Directory of the embedded queue and verdicts (SQLite), and of the
    /// layer cache unless --cache-dir says otherwise.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A PostgreSQL database (`postgres://...`) instead of --data-dir, for
    /// several replicas sharing one queue.
    #[arg(long = "database-url", value_name = "URL")]
    pub database_url: Option<String>,

    /// A registry images may be measured from (repeatable), as its events
    /// name it; events naming any other host are refused.
    #[arg(long = "allow-registry", value_name = "HOST[:PORT]")]
    pub allow_registry: Vec<String>,

    /// File holding the shared secret senders present (`Authorization:
    /// Bearer SECRET`, or GitHub's HMAC key); a final newline is ignored.
    #[arg(long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// File holding the bearer token the verdict API and /metrics require
    /// (`Authorization: Bearer TOKEN`); not the delivery secret. Without
    /// it (or --admin-listen) they are not served.
    #[arg(long = "api-token-file", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Serve the verdict API and /metrics on this address only (e.g.
    /// 127.0.0.1:9090), not on --listen; the read token still applies.
    #[arg(long = "admin-listen", value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// How long verdicts and delivery records are kept (default 90d;
    /// `2160h`, `30d`, `90m`); older ones are deleted hourly and at start.
    #[arg(long = "keep-verdicts", value_name = "DURATION")]
    pub keep_verdicts: Option<String>,

    /// A GitHub owner whose repositories may get commit statuses from any
    /// image (repeatable); others only as `github` in a
    /// [[serve.repositories]] entry ties them.
    #[arg(long = "github-owner", value_name = "OWNER")]
    pub github_owner: Vec<String>,

    /// The baseline of every pushed image: a tag of its own repository,
    /// or a template (`main`, `{tag}-base`, `{tag_without_suffix}`).
    #[arg(
        long = "baseline-tag",
        value_name = "TEMPLATE",
        conflicts_with = "baseline"
    )]
    pub baseline_tag: Option<String>,

    /// The baseline as a reference or reference template
    /// (`{repository}:{tag_without_suffix}`, `reg.example/app:stable`).
    #[arg(long, value_name = "TEMPLATE")]
    pub baseline: Option<String>,

    /// Images judged at once (default 2).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Jobs waiting at most before receivers answer 503 (default 10000).
    #[arg(long = "max-queue", value_name = "N")]
    pub max_queue: Option<u64>,

    /// Seconds a job stays leased to a worker without renewal: how soon a
    /// replica that died is taken over.
    #[arg(long = "lease", value_name = "SECONDS", default_value_t = 60)]
    pub lease: u64,

    /// Seconds one judgement may take; one that runs out is tried once
    /// more at most.
    #[arg(long = "job-timeout", value_name = "SECONDS", default_value_t = 1800)]
    pub job_timeout: u64,

    /// Seconds judgements in flight may take to finish after SIGTERM.
    #[arg(long = "shutdown-grace", value_name = "SECONDS", default_value_t = 25)]
    pub shutdown_grace: u64,

    /// The service's address as others reach it: commit statuses and
    /// notifications link each verdict under it.
    #[arg(long = "public-url", value_name = "URL")]
    pub public_url: Option<String>,

    /// Post a commit status on the commit an image's
    /// `org.opencontainers.image.source`/`.revision` labels name, with the
    /// token in FILE (`repo:status`).
    #[arg(long = "github-token-file", value_name = "FILE")]
    pub github_token_file: Option<PathBuf>,

    /// The GitHub API for commit statuses (default https://api.github.com;
    /// GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(long = "github-api-url", value_name = "URL")]
    pub github_api_url: Option<String>,

    /// POST a JSON message (a chat webhook) on warn and fail verdicts.
    #[arg(long = "notify-url", value_name = "URL")]
    pub notify_url: Option<String>,

    /// Log lines as text or JSON objects.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Connections open at once (default 512); past it, 503 and closed.
    #[arg(long = "max-connections", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Requests handled at once (default 64), health probes aside; past
    /// it, 503 with Retry-After.
    #[arg(long = "max-in-flight", value_name = "N")]
    pub max_in_flight: Option<usize>,

    /// Serve HTTPS with this PEM certificate chain (and --tls-key); both
    /// files are re-read when they change.
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// The Distribution receiver's bearer secret (default --secret-file's).
    #[arg(long = "distribution-secret-file", value_name = "FILE")]
    pub distribution_secret_file: Option<PathBuf>,

    /// The Harbor receiver's bearer secret (default --secret-file's).
    #[arg(long = "harbor-secret-file", value_name = "FILE")]
    pub harbor_secret_file: Option<PathBuf>,

    /// The GitHub receiver's HMAC key (default --secret-file's).
    #[arg(long = "github-secret-file", value_name = "FILE")]
    pub github_secret_file: Option<PathBuf>,

    /// Switch a receiver off (repeatable): its path answers 404.
    #[arg(long = "disable-receiver", value_enum, value_name = "NAME")]
    pub disable_receiver: Vec<ReceiverName>,

    /// Length of the largest-files lists in the reports.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    #[command(flatten)]
    pub source: SourceArgs,

    /// The default policy's rules and node, over the file's.
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    pub action: HookAction,
}

#[derive(Debug, Subcommand)]
pub enum HookAction {
    /// Write `.git/hooks/pre-push` (or under `core.hooksPath`). An existing
    /// hook is moved aside and still runs first, with git's arguments and
    /// ref lines, whatever the check decides.
    Install {
        /// The image to check, e.g. `docker-daemon:ghcr.io/org/app:dev`
        /// (default: `image` in sizeguard.toml, read at every push).
        #[arg(long, value_name = "REF")]
        image: Option<String>,

        /// Replace an existing hook instead of chaining to it (it is kept
        /// aside, and `hook uninstall` restores it).
        #[arg(long)]
        force: bool,
    },
    /// Remove the hook and put back the one it moved aside, if any.
    Uninstall,
}

/// Where a pull-request comment goes (the rest comes from GITHUB_* variables).
#[derive(Debug, Args, Clone, Default)]
pub struct GithubArgs {
    /// Pull request number (default: from the event file at GITHUB_EVENT_PATH).
    #[arg(long, value_name = "N")]
    pub pr: Option<u64>,

    /// Repository (default: GITHUB_REPOSITORY).
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: Option<String>,
}

#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The JSON report written by `sizeguard check --format json`.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,

    /// When to comment.
    #[arg(long, value_enum, default_value = "always")]
    pub mode: CommentMode,

    #[command(flatten)]
    pub github: GithubArgs,

    /// Read the GitHub token from standard input (default: GITHUB_TOKEN).
    #[arg(long = "github-token-stdin")]
    pub github_token_stdin: bool,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,

    /// Cache directory (default as for `measure`).
    #[arg(long = "cache-dir", value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Entries, bytes and location.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete entries, least recently used first, down to a size.
    Prune {
        /// Keep at most this much (e.g. 1GiB; 0 empties the cache).
        #[arg(long = "max-size", value_name = "SIZE")]
        max_size: String,
    },
}

/// Options shared by every command that reads images.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Image source")]
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

    /// Registry user name; the password is read from standard input. They
    /// are sent to one registry only: --registry, else the first registry
    /// the command line names (never one a policy file names).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,

    /// The registry --username and --password-stdin are for (default: the
    /// registry of the first image reference on the command line). No
    /// other host ever receives them.
    #[arg(long, value_name = "HOST[:PORT]", requires = "username")]
    pub registry: Option<String>,

    /// Read the registry password (or token) from standard input.
    #[arg(long = "password-stdin", requires = "username")]
    pub password_stdin: bool,

    /// Give up after this long, for the whole run: every request, retry
    /// and download (e.g. 90s, 10m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub timeout: String,

    /// Layers streamed at once (default: number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Check every layer's uncompressed digest against the config's diff_ids.
    #[arg(long = "verify-diff-ids")]
    pub verify_diff_ids: bool,

    /// No progress bars.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,

    /// Layer cache directory (default: $SIZEGUARD_CACHE_DIR, else
    /// $XDG_CACHE_HOME/sizeguard, else ~/.cache/sizeguard).
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Measure every layer afresh, neither reading nor writing the cache.
    #[arg(
        long = "no-cache",
        env = "SIZEGUARD_NO_CACHE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_cache: bool,

    /// `off`: neither hash files nor scan them for debug sections (the
    /// identical-file and debug-section hints then find nothing), to
    /// measure what that costs.
    #[arg(
        long = "content-scan",
        env = "SIZEGUARD_CONTENT_SCAN",
        hide = true,
        action = clap::ArgAction::Set,
        default_value = "on",
        value_parser = on_unless_off
    )]
    pub content_scan: bool,

    /// `zlib`: inflate gzip layers with zlib-rs even in a build with
    /// ISA-L, so both stay tested.
    #[arg(
        long = "inflate",
        env = "SIZEGUARD_INFLATE",
        hide = true,
        default_value = "fastest",
        value_parser = inflater
    )]
    pub inflate: Inflater,
}

// Both switches have always taken any other value as the default: a typo
// measures as usual rather than failing the run.
fn on_unless_off(value: &str) -> Result<bool, std::convert::Infallible> {
    Ok(value != "off")
}

fn inflater(value: &str) -> Result<Inflater, std::convert::Infallible> {
    Ok(match value {
        "zlib" => Inflater::ZlibRs,
        _ => Inflater::Fastest,
    })
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

    /// Answer in milliseconds: size layers from a few bytes of each blob
    /// (HTTP Range) where that is reliable, streaming only the others.
    /// Figures that are only estimated are marked so, or left out.
    #[arg(long)]
    pub estimate: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The repository, `REGISTRY/REPOSITORY` (no tag, no digest).
    #[arg(value_name = "REPOSITORY")]
    pub repository: String,

    /// Only tags matching this glob (e.g. `v*`).
    #[arg(long, value_name = "GLOB")]
    pub tags: Option<String>,

    /// Keep the newest N images.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub last: usize,

    /// Measure the images that have no report attached (sizes only, no
    /// verdict).
    #[arg(long)]
    pub measure: bool,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "table", help_heading = "Output")]
    pub format: HistoryFormat,

    /// Write the history to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image that wants to ship (default: `image` in sizeguard.toml).
    /// `docker-daemon:IMAGE` reads it from the local engine.
    #[arg(long, value_name = "REF", help_heading = "Image source")]
    pub candidate: Option<String>,

    /// The image it replaces, what nodes already hold (default: `baseline`
    /// in sizeguard.toml).
    #[arg(long, value_name = "REF", help_heading = "Image source")]
    pub baseline: Option<String>,

    /// A baseline that does not exist yet (first release) is a warning, not an error.
    #[arg(long = "baseline-optional", help_heading = "Image source")]
    pub baseline_optional: bool,

    /// After the check, store its JSON report in the candidate's registry
    /// as an OCI artifact whose subject is the candidate (needs push
    /// rights). The candidate must be a registry reference.
    #[arg(long, help_heading = "History")]
    pub attach: bool,

    /// Embed the last N releases of the baseline's repository (their
    /// attached reports) in the report; 0 is off.
    #[arg(long, default_value_t = 0, value_name = "N", help_heading = "History")]
    pub trend: usize,

    /// Only tags matching this glob make the trend (e.g. `v*`).
    #[arg(long = "trend-tags", value_name = "GLOB", help_heading = "History")]
    pub trend_tags: Option<String>,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Output format. `short`: the verdict, the top reasons and the largest
    /// new files, coloured on a terminal; `markdown`: the pull-request
    /// comment's text.
    #[arg(long, value_enum, default_value = "table", help_heading = "Output")]
    pub format: CheckFormat,

    /// Length of the largest-files lists and of the growth by path.
    #[arg(long, default_value_t = 10, value_name = "N", help_heading = "Output")]
    pub top: usize,

    /// Deepest directory the growth by path drills down to, in path
    /// components.
    #[arg(long, default_value_t = 8, value_name = "D", help_heading = "Output")]
    pub depth: usize,

    /// Write the report to FILE (atomically) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,

    /// The rules and the node, over the policy file's.
    #[command(flatten)]
    pub settings: Settings,

    /// Policy file (default: sizeguard.toml in the working directory or a parent).
    #[arg(long, value_name = "FILE", help_heading = "Rules")]
    pub config: Option<PathBuf>,

    /// Ignore any sizeguard.toml.
    #[arg(long = "no-config", conflicts_with = "config", help_heading = "Rules")]
    pub no_config: bool,

    /// dive's `.dive-ci` file: its rules (lowestEfficiency,
    /// highestWastedBytes, highestUserWastedPercent) judge the candidate,
    /// under the flags and over sizeguard.toml.
    #[arg(long = "dive-ci", value_name = "FILE", help_heading = "Rules")]
    pub dive_ci: Option<PathBuf>,

    /// Post the Markdown report as the sticky pull-request comment (needs
    /// GITHUB_TOKEN, GITHUB_REPOSITORY and --pr or GITHUB_EVENT_PATH).
    #[arg(long, help_heading = "GitHub")]
    pub comment: bool,

    /// When to comment.
    #[arg(
        long = "comment-mode",
        value_enum,
        default_value = "always",
        value_name = "MODE",
        help_heading = "GitHub"
    )]
    pub comment_mode: CommentMode,

    #[command(flatten, next_help_heading = "GitHub")]
    pub github: GithubArgs,
}
