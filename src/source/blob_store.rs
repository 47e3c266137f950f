//! The files of an OCI image layout (`index.json`, `blobs/ALG/HEX`), from
//! wherever they are kept: a directory (`oci:`) or the members of a tar
//! (`oci-archive:`). The layout reader in [`super::layout`] sees only this
//! trait, so both transports share one reader, with streams and byte
//! ranges alike.
//!
//! Paths are relative to the layout's root and built by the reader from
//! fixed names and [`crate::digest::Digest::blob_path`], never from user
//! input.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::seekable_tar::{Seekable, SeekableTar};
use crate::error::Error;

pub trait BlobStore: Send + Sync {
    /// Whether the layout has this file.
    fn contains(&self, path: &str) -> bool;

    /// A reader over a file and its length.
    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error>;

    /// `len` bytes of a file from `offset` (fewer at its end).
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error>;

    /// A whole small file (an index, a manifest, a config), read no
    /// further than one byte past `limit`: the length a store reports is
    /// not trusted to bound the read.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let (r, size) = self.open(path)?;
        if size > limit {
            return Err(Error::corrupt(format!(
                "{path} is {size} bytes, more than the {limit} it may have"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        if buf.len() as u64 > limit {
            return Err(Error::corrupt(format!(
                "{path} holds more than the {limit} bytes it may have"
            )));
        }
        Ok(buf)
    }
}

/// An OCI layout directory.
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    /// A regular file of the layout (symlinks followed). Anything else is
    /// refused before it is opened: a FIFO would block the open, a device
    /// (`/dev/zero`) never ends and reports no length.
    fn file(&self, path: &str) -> Result<std::fs::File, Error> {
        let full = self.root.join(path);
        let meta = std::fs::metadata(&full).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::corrupt(format!("{path} is not a regular file")));
        }
        std::fs::File::open(full).map_err(|e| Error::io(path, e))
    }
}

impl BlobStore for DirStore {
    fn contains(&self, path: &str) -> bool {
        self.root.join(path).is_file()
    }

    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        let f = self.file(path)?;
        let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok((Box::new(f), size))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let mut f = self.file(path)?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        let mut buf = Vec::new();
        f.take(len)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        Ok(buf)
    }
}

/// A tar of an OCI layout, read in place.
impl<S: Seekable> BlobStore for SeekableTar<S> {
    fn contains(&self, path: &str) -> bool {
        self.locate(path).is_some()
    }

    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        self.open_member(path)
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        self.read_member_range(path, offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = "blobs/sha256/00";

    fn content() -> Vec<u8> {
        (0..5000u32).map(|i| (i % 253) as u8).collect()
    }

    /// The same file through both stores.
    fn stores(dir: &std::path::Path) -> Vec<(&'static str, Box<dyn BlobStore>)> {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join(BLOB), content()).unwrap();
        std::fs::write(dir.join("index.json"), b"{}").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.append_dir_all(".", dir).unwrap();
        let tar = bytes::Bytes::from(b.into_inner().unwrap());
        vec![
            ("dir", Box::new(DirStore::new(dir))),
            ("tar", Box::new(SeekableTar::open(tar).unwrap())),
        ]
    }

    #[test]
    fn both_stores_serve_files_streams_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        for (name, store) in stores(dir.path()) {
            assert!(store.contains("index.json"), "{name}");
            assert!(!store.contains("blobs/sha256/01"), "{name}");
            assert_eq!(store.read("index.json", 2).unwrap(), b"{}", "{name}");
            let e = store.read("index.json", 1).unwrap_err();
            assert!(e.to_string().contains("more than the 1"), "{name}: {e}");
            let (mut r, size) = store.open(BLOB).unwrap();
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            assert_eq!((all, size), (content(), 5000), "{name}");
            let range = store.read_range(BLOB, 4000, 8).unwrap();
            assert_eq!(range, content()[4000..4008], "{name}");
            let tail = store.read_range(BLOB, 4990, 64).unwrap();
            assert_eq!(tail, content()[4990..], "{name}");
            let e = store.open("blobs/sha256/01").err().unwrap();
            assert!(e.is_not_found(), "{name}: {e}");
        }
    }

    #[test]
    fn devices_and_fifos_in_a_layout_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("blobs/sha256/zero")).unwrap();
        let fifo = dir.path().join("blobs/sha256/fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let store = DirStore::new(dir.path());
        for path in ["blobs/sha256/zero", "blobs/sha256/fifo"] {
            let e = store.read(path, 1024).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
            assert!(store.open(path).is_err());
            assert!(store.read_range(path, 0, 16).is_err());
        }
    }

    /// A store whose length says nothing of its content, as a device's.
    struct Endless;

    impl BlobStore for Endless {
        fn contains(&self, _: &str) -> bool {
            true
        }
        fn open(&self, _: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
            Ok((Box::new(std::io::repeat(b' ')), 0))
        }
        fn read_range(&self, _: &str, _: u64, _: u64) -> Result<Vec<u8>, Error> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_small_file_is_read_no_further_than_its_limit() {
        let e = Endless.read("index.json", 4096).unwrap_err();
        assert!(e.to_string().contains("more than the 4096 bytes"), "{e}");
    }
}
