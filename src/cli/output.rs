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
        // A device, a FIFO or `/dev/stdout` is written in place: renaming a
        // temporary file over `/dev/null` would replace the device itself
        // with a regular file, for every other program on the machine.
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) => {
            let failed = |e: std::io::Error| Error::usage(path.display()).with_source(e);
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(failed)?;
            out.write_all(text.as_bytes()).map_err(failed)
        }
        Some(path) => {
            // Through a symlink to the file it names, so the link stays.
            let resolved = std::fs::canonicalize(path).ok();
            let path = resolved.as_deref().unwrap_or(path);
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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    #[test]
    fn a_fifo_is_written_in_place_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("report");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo (coreutils) failed");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                std::fs::File::open(fifo)
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                text
            })
        };
        emit("the report\n", Some(&fifo)).unwrap();
        // Checked before joining: a replaced FIFO leaves the reader waiting.
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced by {kind:?}");
        assert_eq!(reader.join().unwrap(), "the report\n");
    }

    #[test]
    fn a_symlink_is_written_through_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        emit("new", Some(&link)).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    }
}
