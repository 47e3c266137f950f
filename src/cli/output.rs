//! Where a report goes: standard output, or a file written atomically.

use std::io::Write;
use std::path::Path;

use crate::error::Error;

/// Writes a report to a file atomically (temp file + rename: a reader never
/// sees half a report), or to standard output.
pub fn emit(text: &str, output: Option<&Path>) -> Result<(), Error> {
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::io("writing the report", e))
                }
                _ => Ok(()),
            }
        }
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let failed = |e: std::io::Error| Error::usage(path.display()).with_source(e);
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
            tmp.write_all(text.as_bytes()).map_err(failed)?;
            tmp.persist(path).map_err(|e| failed(e.error))?;
            Ok(())
        }
    }
}
