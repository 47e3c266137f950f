//! sizeguard: measure container images as a Kubernetes node pays for them.
//!
//! The crate is laid out by responsibility: [`source`] gets images from
//! registries, layouts and archives behind one trait; [`measure`] streams
//! layers into figures and knows nothing of where bytes come from;
//! [`report`] renders them; [`cli`] and [`commands`] wire it to a terminal.

pub mod check;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod digest;
pub mod error;
pub mod github;
pub mod measure;
pub mod node;
pub mod platform;
pub mod policy;
pub mod reference;
pub mod report;
pub mod source;
pub mod units;

use clap::Parser;

use crate::error::ExitCode;

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match cli::Cli::try_parse() {
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
    init_logging(cli.verbose);
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
            cli::Command::Measure(args) => {
                commands::measure::run(args).await.map(|()| ExitCode::Ok)
            }
            cli::Command::Check(args) => commands::check::run(*args).await,
            cli::Command::Cache(args) => commands::cache::run(args).map(|()| ExitCode::Ok),
            cli::Command::Comment(args) => commands::comment::run(args).await,
        }
    });
    match result {
        Ok(code) => code as i32,
        Err(e) => {
            eprintln!("sizeguard: error: {e}");
            e.code as i32
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
