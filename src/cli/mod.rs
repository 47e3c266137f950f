//! What each subcommand does, glued from the library's parts.

pub mod args;
pub mod cache;
pub mod check;
pub mod comment;
pub mod measure;

use std::io::{IsTerminal, Read, Write};

use clap::Parser;

use crate::error::ExitCode;
use std::path::Path;

use crate::cli::args::SourceArgs;
use crate::error::Error;
use crate::measure::MeasureOptions;
use crate::source::SourceOptions;
use crate::source::platform::PlatformSelector;
use crate::source::registry::RegistryOptions;

/// Turns the shared flags into source and measurement options.
pub fn source_options(
    args: &SourceArgs,
) -> Result<(SourceOptions, MeasureOptions, PlatformSelector), Error> {
    let platforms = PlatformSelector::parse(args.platform.as_deref())?;
    let basic = match (&args.username, args.password_stdin) {
        (Some(user), true) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| {
                    Error::usage(format!("reading the password from standard input: {e}"))
                })?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                return Err(Error::usage("--password-stdin: standard input was empty"));
            }
            Some((user.clone(), password))
        }
        _ => None,
    };
    if args.jobs == Some(0) {
        return Err(Error::usage("--jobs must be at least 1"));
    }
    let mut measure = MeasureOptions {
        verify_diff_ids: args.verify_diff_ids,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        ..Default::default()
    };
    if let Some(j) = args.jobs {
        measure.jobs = j;
    }
    if !args.no_cache {
        measure.cache = args
            .cache_dir
            .clone()
            .or_else(crate::measure::cache::default_dir)
            .map(crate::measure::cache::LayerCache::new);
    }
    Ok((
        SourceOptions {
            registry: RegistryOptions {
                insecure: args.insecure_registry.clone(),
                ca_files: args.ca_file.clone(),
                basic,
            },
        },
        measure,
        platforms,
    ))
}

/// Writes a report to a file atomically (temp file + rename: a reader never
/// sees half a report), or to standard output.
pub fn emit(text: &str, output: Option<&Path>) -> Result<(), Error> {
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::measure(format!("writing the report: {e}")))
                }
                _ => Ok(()),
            }
        }
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
            tmp.write_all(text.as_bytes())
                .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
            tmp.persist(path)
                .map_err(|e| Error::usage(format!("{}: {}", path.display(), e.error)))?;
            Ok(())
        }
    }
}

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
            args::Command::Measure(args) => measure::run(args).await.map(|()| ExitCode::Ok),
            args::Command::Check(args) => check::run(*args).await,
            args::Command::Cache(args) => cache::run(args).map(|()| ExitCode::Ok),
            args::Command::Comment(args) => comment::run(args).await,
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
