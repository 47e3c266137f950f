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

use super::tar_index::{IndexedTar, Seekable};
use crate::error::Error;

/// Manifests, configs and `index.json` are small; a store refuses to hold
/// more than this of one in memory.
const MAX_SMALL_FILE: u64 = 64 * 1024 * 1024;

pub trait BlobStore: Send + Sync {
    /// Whether the layout has this file.
    fn contains(&self, path: &str) -> bool;

    /// A reader over a file and its length.
    fn open(&self, path: &str) -> Result<(Box<dyn Read + Send>, u64), Error>;

    /// `len` bytes of a file from `offset` (fewer at its end).
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error>;

    /// A whole small file: an index, a manifest, a config.
    fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        let (mut r, size) = self.open(path)?;
        if size > MAX_SMALL_FILE {
            return Err(Error::corrupt(format!(
                "{path}: unexpectedly large ({size} bytes)"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
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

    fn file(&self, path: &str) -> Result<std::fs::File, Error> {
        std::fs::File::open(self.root.join(path)).map_err(|e| Error::io(path, e))
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
impl<S: Seekable> BlobStore for IndexedTar<S> {
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
            ("tar", Box::new(IndexedTar::open(tar).unwrap())),
        ]
    }

    #[test]
    fn both_stores_serve_files_streams_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        for (name, store) in stores(dir.path()) {
            assert!(store.contains("index.json"), "{name}");
            assert!(!store.contains("blobs/sha256/01"), "{name}");
            assert_eq!(store.read("index.json").unwrap(), b"{}", "{name}");
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
}
