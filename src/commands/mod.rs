//! What each subcommand does, glued from the library's parts.

pub mod cache;
pub mod check;
pub mod comment;
pub mod measure;

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use crate::cli::SourceArgs;
use crate::error::Error;
use crate::measure::MeasureOptions;
use crate::platform::PlatformSelector;
use crate::source::SourceOptions;
use crate::source::registry::RegistryOptions;

/// Turns the shared flags into source and measurement options.
pub fn source_options(
    args: &SourceArgs,
) -> Result<(SourceOptions, MeasureOptions, PlatformSelector), Error> {
    let platforms = PlatformSelector::parse(args.platform.as_deref()).map_err(Error::usage)?;
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
