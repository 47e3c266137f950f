//! The command line: clap's definitions ([`args`]), their mapping to the
//! app layer's requests ([`request`]), and one module per command that runs
//! a request and presents the answer (render, publish, exit code); [`hook`]
//! installs the git pre-push hook that runs `check`.

pub mod args;
pub mod cache;
pub mod check;
pub mod comment;
pub mod history;
pub mod hook;
pub mod measure;
mod output;
mod progress;
mod request;
#[cfg(feature = "server")]
pub mod serve;

use clap::Parser;

use crate::error::{ExitCode, error_line};

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own text, exit 0.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            eprintln!("{}", error_line(&usage_error_line(&e)));
            return ExitCode::Usage as i32;
        }
    };
    match &cli.command {
        #[cfg(feature = "server")]
        args::Command::Serve(a) => serve::init_logging(cli.verbose, a.log_format),
        _ => init_logging(cli.verbose),
    }
    // Test-only: fault tests shorten the backoff rather than sleep through it.
    if let Some(ms) = std::env::var(crate::retry::TEST_BACKOFF_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        crate::retry::scale_backoff(std::time::Duration::from_millis(ms));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "{}",
                error_line(&format!("starting the async runtime: {e}"))
            );
            return ExitCode::Measure as i32;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            args::Command::Measure(args) => measure::run(args).await.map(|()| ExitCode::Ok),
            args::Command::Check(args) => check::run(*args).await,
            args::Command::Cache(args) => cache::run(args).map(|()| ExitCode::Ok),
            args::Command::Comment(args) => comment::run(args).await,
            args::Command::History(args) => history::run(args).await.map(|()| ExitCode::Ok),
            args::Command::Hook(args) => hook::run(args),
            #[cfg(feature = "server")]
            args::Command::Serve(args) => serve::run(*args).await.map(|()| ExitCode::Ok),
        }
    });
    match result {
        Ok(code) => code as i32,
        Err(e) => {
            eprintln!("{}", error_line(&e.one_line()));
            e.exit_code() as i32
        }
    }
}

/// clap's usage error as the one line every sizeguard error is: the error,
/// its details and tips, and the command whose `--help` explains the flags.
fn usage_error_line(e: &clap::Error) -> String {
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return format!(
            "a subcommand is required; see `{} --help`",
            command_of(None)
        );
    }
    let text = e.render().to_string();
    let mut out = String::new();
    let mut usage = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.to_string());
            continue;
        }
        let line = line.strip_prefix("error:").unwrap_or(line).trim();
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    if out.is_empty() {
        out.push_str("invalid command line");
    }
    format!("{out}; see `{} --help`", command_of(usage.as_deref()))
}

/// `sizeguard SUBCOMMAND…` from clap's usage line, else from the arguments.
fn command_of(usage: Option<&str>) -> String {
    if let Some(u) = usage {
        return u
            .split_whitespace()
            .take_while(|w| !w.starts_with(['[', '<', '-']))
            .collect::<Vec<_>>()
            .join(" ");
    }
    let cmd = <args::Cli as clap::CommandFactory>::command();
    let mut words = vec!["sizeguard".to_string()];
    let mut current = &cmd;
    for arg in std::env::args().skip(1) {
        match current.find_subcommand(&arg) {
            Some(sub) => {
                words.push(arg.clone());
                current = sub;
            }
            None if arg.starts_with('-') => {}
            None => break,
        }
    }
    words.join(" ")
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // Only our own warnings: dependencies (rustls' verifier) log errors
        // that sizeguard reports itself, in one line.
        0 => "sizeguard=warn",
        1 => "sizeguard=info",
        _ => "sizeguard=debug,oci_client=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
