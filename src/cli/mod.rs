//! The command line: clap's definitions ([`args`]), their mapping to the
//! app layer's requests ([`request`]), and one module per command that runs
//! a request and presents the answer (render, publish, exit code); [`hook`]
//! installs the git pre-push hook that runs `check`.

pub mod args;
pub mod cache;
pub mod check;
pub mod comment;
pub mod hook;
pub mod measure;
mod output;
mod progress;
mod request;
pub mod serve;

use clap::Parser;

use crate::error::ExitCode;

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage as i32
            } else {
                0
            };
            let _ = e.print();
            return code;
        }
    };
    match &cli.command {
        args::Command::Serve(a) => serve::init_logging(cli.verbose, a.log_format),
        _ => init_logging(cli.verbose),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sizeguard: error: starting the async runtime: {e}");
            return ExitCode::Measure as i32;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            args::Command::Measure(args) => measure::run(args).await.map(|()| ExitCode::Ok),
            args::Command::Check(args) => check::run(*args).await,
            args::Command::Cache(args) => cache::run(args).map(|()| ExitCode::Ok),
            args::Command::Comment(args) => comment::run(args).await,
            args::Command::Hook(args) => hook::run(args),
            args::Command::Serve(args) => serve::run(*args).await.map(|()| ExitCode::Ok),
        }
    });
    match result {
        Ok(code) => code as i32,
        Err(e) => {
            eprintln!("sizeguard: error: {}", e.one_line());
            e.exit_code() as i32
        }
    }
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
