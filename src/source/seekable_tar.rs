//! Reading members of a plain tar in place: where each member's content
//! lies is found once, by seeking over member contents, and a member is
//! then read straight from its offset. Nothing is extracted to disk. The archive is as untrusted as
//! the layers inside it, so its headers go through the same bounded reader
//! ([`TarStream`]) and are held to the same limits.
//!
//! The spans are found from any `Read + Seek`; the bytes behind them are
//! anything that can hand out independent readers ([`Seekable`]): a file
//! (`oci-archive:`, `docker-archive:`), or a buffer a source spooled a
//! stream into.

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::Error;
use crate::tarstream::{ArchiveMember, MemberHeader, StreamError, TarStream, normalize_member};

/// A reader that can also seek.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Bytes that several readers may read at once, each from its own offset
/// (layers stream in parallel).
pub trait Seekable: Send + Sync {
    fn reader(&self) -> std::io::Result<Box<dyn ReadSeek>>;
}

/// A file, opened again for every reader.
impl Seekable for PathBuf {
    fn reader(&self) -> std::io::Result<Box<dyn ReadSeek>> {
        Ok(Box::new(std::fs::File::open(self)?))
    }
}

/// A buffer in memory.
impl Seekable for bytes::Bytes {
    fn reader(&self) -> std::io::Result<Box<dyn ReadSeek>> {
        Ok(Box::new(Cursor::new(self.clone())))
    }
}

/// Where a member's content lies in the archive: the bytes a reader
/// seeks to, not the member's header ([`MemberHeader`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSpan {
    pub offset: u64,
    pub size: u64,
}

/// MemberSpan name → where its content is.
#[derive(Debug, Default)]
pub struct MemberSpans {
    spans: HashMap<String, MemberSpan>,
    /// Symlink or hard link member → target member: the legacy `docker
    /// save` format links a layer's `layer.tar` to the first copy of
    /// identical layers.
    links: HashMap<String, String>,
}

impl MemberSpans {
    /// Finds the spans of a plain tar. Compressed archives are refused with a hint:
    /// reading a member in place needs its offset in the file.
    pub fn build(mut reader: impl Read + Seek) -> Result<MemberSpans, Error> {
        let io = |e| Error::io("reading the archive", e);
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut reader, &mut magic).map_err(io)?;
        if magic[..n].starts_with(&[0x1f, 0x8b])
            || magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        {
            return Err(Error::corrupt(
                "the archive is compressed; decompress it first (e.g. gunzip), as skopeo expects a plain tar",
            ));
        }
        let mut stream = TarStream::seekable(reader).map_err(io)?;
        let mut spans = MemberSpans::default();
        while let Some(member) = stream.next_member().map_err(archive_error)? {
            spans.add(&member, stream.position());
        }
        Ok(spans)
    }

    /// Records a member whose data starts at `data_offset`.
    fn add(&mut self, m: &MemberHeader, data_offset: u64) {
        let name = normalize_member(&String::from_utf8_lossy(&m.name));
        match m.as_archive_member(&name) {
            ArchiveMember::Link(target) => {
                self.links.insert(name, target);
            }
            ArchiveMember::Content(size) => {
                let span = MemberSpan {
                    offset: data_offset,
                    size,
                };
                self.spans.insert(name, span);
            }
            ArchiveMember::Skipped => {}
        }
    }

    /// Where a member's content is, following links (bounded, so a link
    /// loop is an error, not a hang).
    pub fn locate(&self, member: &str) -> Option<MemberSpan> {
        let mut name = normalize_member(member);
        for _ in 0..16 {
            if let Some(&m) = self.spans.get(&name) {
                return Some(m);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

/// Why an archive's tar could not be read.
pub(crate) fn archive_error(e: StreamError) -> Error {
    match e {
        StreamError::Read(e) => Error::io("reading the archive", e),
        StreamError::Format { offset, message } => {
            Error::corrupt(format!("corrupt tar archive at offset {offset}: {message}"))
        }
    }
}

/// `read` until the buffer is full or the stream ends.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A tar's member spans and the bytes they lie in.
pub struct SeekableTar<S> {
    bytes: S,
    spans: MemberSpans,
}

impl<S: Seekable> SeekableTar<S> {
    pub fn open(bytes: S) -> Result<Self, Error> {
        let reader = bytes
            .reader()
            .map_err(|e| Error::io("opening the archive", e))?;
        let spans = MemberSpans::build(reader)?;
        Ok(SeekableTar { bytes, spans })
    }

    pub fn locate(&self, member: &str) -> Option<MemberSpan> {
        self.spans.locate(member)
    }

    fn member(&self, member: &str) -> Result<MemberSpan, Error> {
        self.locate(member)
            .ok_or_else(|| Error::not_found(format!("archive has no member {member}")))
    }

    /// A reader over a member's content, and its length.
    pub fn open_member(&self, member: &str) -> Result<(Box<dyn Read + Send>, u64), Error> {
        let m = self.member(member)?;
        Ok((
            Box::new(self.reader_at(member, m.offset)?.take(m.size)),
            m.size,
        ))
    }

    /// `len` bytes of a member from `offset` (fewer at its end).
    pub fn read_member_range(&self, member: &str, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let m = self.member(member)?;
        let len = len.min(m.size.saturating_sub(offset));
        let mut buf = Vec::with_capacity(len as usize);
        self.reader_at(member, m.offset + offset.min(m.size))?
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(member, e))?;
        Ok(buf)
    }

    fn reader_at(&self, member: &str, offset: u64) -> Result<Box<dyn ReadSeek>, Error> {
        let mut r = self.bytes.reader().map_err(|e| Error::io(member, e))?;
        r.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(member, e))?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add("./index.json", b"{}");
        let blob: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        add("abc/layer.tar", &blob);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "def/layer.tar", "../abc/layer.tar")
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn members_and_links_are_read_in_place() {
        let tar = SeekableTar::open(bytes::Bytes::from(archive())).unwrap();
        let (mut r, size) = tar.open_member("index.json").unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), size), ("{}", 2));
        let direct = tar.locate("abc/layer.tar").unwrap();
        assert_eq!(tar.locate("./def/layer.tar"), Some(direct));
        assert_eq!(direct.size, 3000);
        let e = tar.open_member("nope").err().unwrap();
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn range_reads_stop_at_the_member_end() {
        let tar = SeekableTar::open(bytes::Bytes::from(archive())).unwrap();
        let got = tar.read_member_range("def/layer.tar", 10, 5).unwrap();
        assert_eq!(got, vec![10, 11, 12, 13, 14]);
        let tail = tar.read_member_range("abc/layer.tar", 2990, 100).unwrap();
        assert_eq!(tail.len(), 10);
        assert_eq!(tail[9], (2999 % 251) as u8);
        assert!(
            tar.read_member_range("abc/layer.tar", 5000, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn compressed_archives_are_refused_with_a_hint() {
        let e = MemberSpans::build(Cursor::new(vec![0x1f, 0x8b, 8, 0])).unwrap_err();
        assert!(e.to_string().contains("gunzip"), "{e}");
    }
}
