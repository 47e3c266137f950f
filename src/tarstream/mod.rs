//! A tar stream, member by member, read as Go's `archive/tar` reads it
//! (containerd unpacks layers with it: `pkg/archive/tar.go`, `applyNaive`),
//! with every metadata record bounded and every name held to the limits of
//! [`limits`]. Layers and the outer tars of archives and exports are
//! all read through it.
//!
//! The `tar` crate reads GNU long-name/long-link and PAX records into memory
//! whole, whatever size they claim, and has no hook to refuse one first; so
//! the 512-byte blocks are read here, and only the header layouts and their
//! numeric fields come from the crate. Nothing is held beyond one block and
//! the pending metadata of the next member (one PAX header of at most
//! [`MAX_RECORD_BYTES`], names of at most [`MAX_PATH_BYTES`]); a name past
//! its limit is refused once its first bytes past the limit (or its
//! length, in a PAX record) have been read, never held whole; sparse maps
//! are checked as they stream past.
//!
//! It sits below both `measure` (layers) and `source` (archives and engine
//! exports), which read their tars through it and share no other code.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use tar::{GnuExtSparseHeader, GnuSparseHeader, Header};

pub mod limits;

pub use limits::MAX_RECORD_BYTES;
use limits::{Budget, Counted, JobBudget, MAX_LINK_BYTES, MAX_PATH_BYTES};

/// The most metadata records one member may carry. Writers use at most
/// three (`x`, `L`, `K`); Go keeps only the last of each kind, so a longer
/// chain is either junk or an attempt to make the reader spin.
pub const MAX_RECORDS_PER_MEMBER: usize = 8;

/// A PAX header is read this much at a time, and the records read so far
/// checked, so that a name past its limit is refused from its length
/// before its bytes are read.
const PAX_CHUNK: usize = 4096;

/// A tar record: headers and data are padded to it.
const TAR_BLOCK: u64 = 512;

/// One member's header, its metadata records applied: what it is and
/// where, not its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    /// Offset of its first header block (metadata records included).
    pub offset: u64,
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: MemberKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file; `size` is its apparent size, a sparse file's holes
    /// included.
    File {
        size: u64,
        sparse: bool,
    },
    Dir,
    Symlink,
    HardLink,
    Device,
    Fifo,
    /// A PAX global header: describes the archive, creates nothing.
    Global,
    /// Old GNU sparse (`S`), with its apparent size.
    OldGnuSparse {
        size: u64,
    },
    /// Any other type flag, with the size of its data.
    Other {
        typeflag: u8,
        size: u64,
    },
}

/// What a reader of an archive's members (an `oci-archive:`, a `docker
/// save` export; not a layer's files) makes of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveMember {
    /// A symlink or hard link to the member named, resolved to a name from
    /// the archive's root: the legacy `docker save` format links a layer's
    /// `layer.tar` to the first copy of identical layers.
    Link(String),
    /// Content of this many bytes.
    Content(u64),
    /// Nothing an archive reader reads (a directory, a device, a sparse
    /// file, a link without a target).
    Skipped,
}

impl MemberHeader {
    /// This member to a reader of archive members, named by
    /// [`normalize_member`] as `name` is.
    pub fn as_archive_member(&self, name: &str) -> ArchiveMember {
        match self.kind {
            MemberKind::Symlink | MemberKind::HardLink if !self.link.is_empty() => {
                let target = String::from_utf8_lossy(&self.link);
                // Symlink targets are relative to the link's directory;
                // hard link targets to the archive root.
                ArchiveMember::Link(
                    match (self.kind == MemberKind::Symlink, name.rsplit_once('/')) {
                        (true, Some((dir, _))) if !target.starts_with('/') => {
                            resolve_relative(dir, &target)
                        }
                        _ => normalize_member(&target),
                    },
                )
            }
            // '7' is a contiguous file, a regular file to every reader.
            MemberKind::File {
                size,
                sparse: false,
            }
            | MemberKind::Other {
                typeflag: b'7',
                size,
            } => ArchiveMember::Content(size),
            _ => ArchiveMember::Skipped,
        }
    }
}

/// `./a/b` and `/a/b` are the member `a/b`.
pub fn normalize_member(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

/// `a/b` + `../c/d` → `a/c/d`.
fn resolve_relative(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[derive(Debug)]
pub enum StreamError {
    /// The bytes below could not be read (decoder or transport).
    Read(io::Error),
    /// The bytes are not a tar stream Go's reader accepts.
    Format { offset: u64, message: String },
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Read(e)
    }
}

fn format_error(offset: u64, message: impl Into<String>) -> StreamError {
    StreamError::Format {
        offset,
        message: message.into(),
    }
}

/// Bytes from the archive shown in a message: non-printable ones escaped,
/// and cut short, so a hostile name can neither write control sequences to
/// a terminal nor flood it.
pub fn printable(bytes: &[u8]) -> String {
    const SHOWN: usize = 120;
    let mut s: String = bytes[..bytes.len().min(SHOWN)].escape_ascii().to_string();
    if bytes.len() > SHOWN {
        s.push('…');
    }
    s
}

/// Metadata records read so far for the next member.
#[derive(Default)]
struct Pending {
    count: usize,
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

/// Moves a seekable stream forward by a number of bytes.
type SeekForward<R> = fn(&mut R, u64) -> io::Result<()>;

pub struct TarStream<R> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    /// Data and padding of the current member not consumed yet.
    unread: u64,
    /// The current member's padding (the tail of `unread`).
    pad: u64,
    /// For a stream that can seek (an archive file): its length, and how
    /// to move forward without reading.
    seek: Option<(u64, SeekForward<R>)>,
    budget: Budget,
}

impl<R: Read> TarStream<R> {
    pub fn new(inner: R) -> Self {
        TarStream {
            inner,
            pos: 0,
            unread: 0,
            pad: 0,
            seek: None,
            budget: Budget::default(),
        }
    }

    /// Counts what the stream holds against `job` too.
    pub fn with_job_budget(mut self, job: Option<Arc<JobBudget>>) -> Self {
        self.budget = Budget::new(job);
        self
    }

    /// Bytes consumed so far: right after [`Self::next_member`], where the
    /// member's data starts (sparse members aside).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// A reader of the current member's first `len` data bytes (at most
    /// what is left of them), for a member whose data has not been touched.
    pub fn data(&mut self, len: u64) -> MemberData<'_, R> {
        let left = len.min(self.unread.saturating_sub(self.pad));
        MemberData { stream: self, left }
    }

    /// The next member, `None` at the end of the archive.
    pub fn next_member(&mut self) -> Result<Option<MemberHeader>, StreamError> {
        self.skip(self.unread)?;
        self.unread = 0;
        self.pad = 0;
        let mut pending = Pending::default();
        let mut first = self.pos;
        loop {
            let offset = self.pos;
            let Some(header) = self.read_header()? else {
                return match pending.count {
                    0 => Ok(None),
                    _ => Err(format_error(
                        first,
                        "metadata records at the end of the archive describe no member",
                    )),
                };
            };
            let typeflag = header.entry_type().as_byte();
            if !matches!(typeflag, b'x' | b'L' | b'K') {
                if typeflag == b'g' {
                    // Go returns a global header as a member of its own: the
                    // records before it describe nothing.
                    first = offset;
                }
                return self.member(&header, first, pending).map(Some);
            }
            pending.count += 1;
            if pending.count > MAX_RECORDS_PER_MEMBER {
                return Err(format_error(
                    first,
                    format!(
                        "more than {MAX_RECORDS_PER_MEMBER} metadata records before one member"
                    ),
                ));
            }
            match typeflag {
                b'x' => {
                    let record = self.read_pax(&header, offset)?;
                    check_pax(&record, offset)?;
                    pending.pax = Some(record);
                }
                b'L' => pending.long_name = Some(self.read_long_name(&header, offset)?),
                _ => pending.long_link = Some(self.read_long_name(&header, offset)?),
            }
        }
    }

    /// Reads one header block; `None` at the end of the archive (end of
    /// input, or two zero blocks, as Go's `readHeader` decides).
    fn read_header(&mut self) -> Result<Option<Header>, StreamError> {
        let mut header = Header::new_old();
        let offset = self.pos;
        if !self.read_block(header.as_mut_bytes(), true)? {
            return Ok(None);
        }
        if header.as_bytes().iter().all(|&b| b == 0) {
            if !self.read_block(header.as_mut_bytes(), true)? {
                return Ok(None);
            }
            if header.as_bytes().iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Err(format_error(
                offset,
                "a zero block followed by a header (Go's reader, and so containerd, refuses it)",
            ));
        }
        check_checksum(&header, offset)?;
        Ok(Some(header))
    }

    /// Fills `buf` from the stream; `false` if the stream ended before its
    /// first byte and `eof_ok`.
    fn read_block(&mut self, buf: &mut [u8], eof_ok: bool) -> Result<bool, StreamError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 && eof_ok => return Ok(false),
                Ok(0) => {
                    return Err(format_error(
                        self.pos,
                        "the archive ends in the middle of a block",
                    ));
                }
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StreamError::Read(e)),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, n: u64) -> Result<(), StreamError> {
        let Some((len, seek)) = self.seek else {
            return self.consume(n, |_| {});
        };
        // A seek past the end succeeds: the archive's length tells a member
        // that claims more than there is.
        let left = len.saturating_sub(self.pos);
        if n > left {
            return Err(format_error(
                len,
                format!(
                    "the archive ends {} bytes before its last member does",
                    n - left
                ),
            ));
        }
        seek(&mut self.inner, n)?;
        self.pos += n;
        Ok(())
    }

    /// Hands the current member's first `len` data bytes to `sink` as they
    /// stream past; its padding is left for [`Self::next_member`] to skip.
    /// For a member whose data has not been touched yet (not a sparse file,
    /// whose map may sit in its data), and `len` at most its size.
    pub fn read_data(&mut self, len: u64, sink: impl FnMut(&[u8])) -> Result<(), StreamError> {
        let len = len.min(self.unread.saturating_sub(self.pad));
        self.consume(len, sink)?;
        self.unread -= len;
        Ok(())
    }

    fn consume(&mut self, mut n: u64, mut sink: impl FnMut(&[u8])) -> Result<(), StreamError> {
        let mut buf = [0u8; 32 * 1024];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(format_error(
                        self.pos,
                        format!("the archive ends {n} bytes before its last member does"),
                    ));
                }
                Ok(k) => {
                    sink(&buf[..k]);
                    n -= k as u64;
                    self.pos += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StreamError::Read(e)),
            }
        }
        Ok(())
    }

    /// A metadata record's size, refused when it claims more than
    /// [`MAX_RECORD_BYTES`].
    fn record_size(&self, header: &Header, offset: u64) -> Result<u64, StreamError> {
        let size = entry_size(header, offset)?;
        if size > MAX_RECORD_BYTES {
            return Err(format_error(
                offset,
                format!(
                    "a '{}' metadata record of {size} bytes is over the {MAX_RECORD_BYTES}-byte \
                     limit (Go's archive/tar, which containerd unpacks with, refuses it too)",
                    header.entry_type().as_byte().escape_ascii()
                ),
            ));
        }
        Ok(size)
    }

    /// A GNU long name or link (`L`, `K`): a C string, cut at its first NUL
    /// as Go does. No more than its limit and a NUL are read before a longer
    /// one is refused, whatever size the record claims.
    fn read_long_name(&mut self, header: &Header, offset: u64) -> Result<Vec<u8>, StreamError> {
        let (limit, what, bound) = match header.entry_type().as_byte() {
            b'L' => (MAX_PATH_BYTES, "a GNU long name ('L' record)", "path"),
            _ => (
                MAX_LINK_BYTES,
                "a GNU long link target ('K' record)",
                "link target",
            ),
        };
        let size = self.record_size(header, offset)?;
        let kept = size.min(limit as u64 + 1);
        let mut name = vec![0u8; kept as usize];
        self.read_block(&mut name, false)?;
        let name = c_string(name);
        if name.len() > limit {
            return Err(format_error(
                offset,
                format!(
                    "{what} of more than {limit} bytes ({}) is over the {limit}-byte {bound} \
                     limit (Linux's PATH_MAX: containerd could not create it)",
                    printable(&name)
                ),
            ));
        }
        self.skip(size - kept + padding(size))?;
        Ok(name)
    }

    /// A PAX header (`x` or `g`), read [`PAX_CHUNK`] at a time: a `path`,
    /// `linkpath` or `GNU.sparse.name` record longer than its limit is
    /// refused from the length it declares, before its value is read.
    fn read_pax(&mut self, header: &Header, offset: u64) -> Result<Vec<u8>, StreamError> {
        let size = self.record_size(header, offset)?;
        self.budget
            .charge(Counted::PaxBytes, size)
            .map_err(|why| format_error(offset, why))?;
        let mut record = Vec::new();
        let mut scanned = Some(0);
        while (record.len() as u64) < size {
            let start = record.len();
            let n = (size - start as u64).min(PAX_CHUNK as u64) as usize;
            record.resize(start + n, 0);
            self.read_block(&mut record[start..], false)?;
            if let Some(from) = scanned {
                scanned = scan_pax_names(&record, from).map_err(|why| format_error(offset, why))?;
            }
        }
        self.skip(padding(size))?;
        Ok(record)
    }

    /// Applies the pending records to the member header `header`, as Go's
    /// `Reader.next` does: PAX `path`/`linkpath`/`size` first, then GNU long
    /// names, then a PAX sparse file's real name and size.
    fn member(
        &mut self,
        header: &Header,
        offset: u64,
        pending: Pending,
    ) -> Result<MemberHeader, StreamError> {
        let header_offset = self.pos - TAR_BLOCK;
        let pax = pending.pax.as_deref().unwrap_or_default();
        let mut name = header.path_bytes().into_owned();
        let mut link = header.link_name_bytes().map(|l| l.into_owned());
        if let Some(p) = pax_value(pax, b"path").filter(|v| !v.is_empty()) {
            name = p.to_vec();
        }
        if let Some(l) = pax_value(pax, b"linkpath").filter(|v| !v.is_empty()) {
            link = Some(l.to_vec());
        }
        if let Some(n) = pending.long_name.filter(|n| !n.is_empty()) {
            name = n;
        }
        if let Some(l) = pending.long_link.filter(|l| !l.is_empty()) {
            link = Some(l);
        }
        let typeflag = header.entry_type().as_byte();
        let mut size = entry_size(header, header_offset)?;
        if let Some(v) = pax_value(pax, b"size").filter(|v| !v.is_empty()) {
            size = decimal(v)
                .ok_or_else(|| format_error(offset, format!("bad PAX size {:?}", printable(v))))?;
        }
        let header_only = matches!(typeflag, b'1'..=b'6');
        let mut kind = match typeflag {
            // Old archives mark a directory by a trailing slash alone.
            b'\0' if name.ends_with(b"/") => MemberKind::Dir,
            b'0' | b'\0' => MemberKind::File {
                size,
                sparse: false,
            },
            b'1' => MemberKind::HardLink,
            b'2' => MemberKind::Symlink,
            b'3' | b'4' => MemberKind::Device,
            b'5' => MemberKind::Dir,
            b'6' => MemberKind::Fifo,
            b'g' => MemberKind::Global,
            b'S' => MemberKind::OldGnuSparse { size },
            _ => MemberKind::Other { typeflag, size },
        };
        if typeflag == b'g' {
            let record = self.read_pax(header, offset)?;
            check_pax(&record, offset)?;
        } else if typeflag == b'S' {
            let apparent = self
                .old_gnu_sparse(header, header_offset, size)
                .map_err(|e| named(e, &name))?;
            kind = MemberKind::OldGnuSparse { size: apparent };
            self.unread = size.saturating_add(padding(size));
            self.pad = padding(size);
        } else {
            (self.unread, self.pad) = if header_only {
                (0, 0)
            } else {
                (size.saturating_add(padding(size)), padding(size))
            };
            if let Some(sparse) = PaxSparse::detect(pax) {
                if header_only {
                    return Err(format_error(
                        offset,
                        "a PAX sparse map on a non-file member",
                    ));
                }
                if let Some(n) = sparse.name.filter(|n| !n.is_empty()) {
                    name = n.to_vec();
                }
                let apparent = self
                    .pax_sparse(&sparse, offset, size)
                    .map_err(|e| named(e, &name))?;
                kind = match kind {
                    MemberKind::File { .. } => MemberKind::File {
                        size: apparent,
                        sparse: true,
                    },
                    MemberKind::Other { typeflag, .. } => MemberKind::Other {
                        typeflag,
                        size: apparent,
                    },
                    other => other,
                };
            }
        }
        let link = link.unwrap_or_default();
        self.admit(&name, &link, typeflag, offset)?;
        Ok(MemberHeader {
            offset,
            name,
            link,
            kind,
        })
    }

    /// Holds a member to the name limits (a global header names nothing
    /// that is created) and counts it against the budget.
    fn admit(
        &mut self,
        name: &[u8],
        link: &[u8],
        typeflag: u8,
        offset: u64,
    ) -> Result<(), StreamError> {
        let refused = |why: String| format_error(offset, format!("{}: {why}", printable(name)));
        if typeflag != b'g' {
            limits::check_path(name, "the name").map_err(refused)?;
            match typeflag {
                b'1' => limits::check_path(link, "the hard link's target").map_err(refused)?,
                b'2' => limits::check_link(link).map_err(refused)?,
                _ => {}
            }
        }
        let over = |why: String| format_error(offset, why);
        self.budget.charge(Counted::Members, 1).map_err(over)?;
        self.budget
            .charge(Counted::NameBytes, (name.len() + link.len()) as u64)
            .map_err(over)
    }

    /// Reads an old GNU sparse member's map (in its header, then in
    /// extension blocks while `isextended` says so), checks it against the
    /// `stored` bytes of data, and returns the apparent size.
    fn old_gnu_sparse(
        &mut self,
        header: &Header,
        offset: u64,
        stored: u64,
    ) -> Result<u64, StreamError> {
        let Some(gnu) = header.as_gnu() else {
            return Err(format_error(
                offset,
                "an old GNU sparse member without GNU magic",
            ));
        };
        let apparent = gnu
            .real_size()
            .map_err(|_| format_error(offset, "the sparse real-size field is not a number"))?;
        let mut map = SparseMap::new(offset, apparent);
        let add = |map: &mut SparseMap, entries: &[GnuSparseHeader]| -> Result<(), StreamError> {
            // GNU and BSD tar stop at the first entry whose offset is empty.
            for e in entries.iter().take_while(|e| e.offset[0] != 0) {
                let bad = |_| format_error(offset, "a sparse map entry is not a number");
                map.add(e.offset().map_err(bad)?, e.length().map_err(bad)?)?;
            }
            Ok(())
        };
        add(&mut map, &gnu.sparse)?;
        let mut extended = gnu.is_extended();
        while extended {
            let mut ext = GnuExtSparseHeader::new();
            self.read_block(ext.as_mut_bytes(), false)?;
            add(&mut map, ext.sparse())?;
            extended = ext.is_extended();
        }
        map.finish(stored)?;
        Ok(apparent)
    }

    /// Checks a PAX sparse member's map (in its records for 0.0 and 0.1, at
    /// the start of its data for 1.0) against its `stored` bytes of data;
    /// returns the apparent size.
    fn pax_sparse(
        &mut self,
        sparse: &PaxSparse<'_>,
        offset: u64,
        stored: u64,
    ) -> Result<u64, StreamError> {
        let bad = |what: &str| format_error(offset, format!("bad PAX sparse {what}"));
        let apparent = match sparse.size {
            Some(v) => decimal(v).ok_or_else(|| bad("size"))?,
            None => stored,
        };
        let mut map = SparseMap::new(offset, apparent);
        let data = if sparse.v1 {
            let map_bytes = self.sparse_map_1x0(&mut map, offset, stored)?;
            stored - map_bytes
        } else {
            let blocks = decimal(sparse.numblocks.ok_or_else(|| bad("numblocks"))?)
                .ok_or_else(|| bad("numblocks"))?;
            for v in sparse.map_values() {
                let v = decimal(v).ok_or_else(|| bad("map"))?;
                map.push(v)?;
            }
            if Some(map.numbers) != blocks.checked_mul(2) {
                return Err(bad("map: its length disagrees with numblocks"));
            }
            stored
        };
        map.finish(data)?;
        Ok(apparent)
    }

    /// Streams a 1.0 sparse map (decimal numbers, one per line: the count,
    /// then offset and length pairs) from the member's data, whole blocks
    /// at a time as Go's `readGNUSparseMap1x0` does; returns the bytes it
    /// took from the data.
    fn sparse_map_1x0(
        &mut self,
        map: &mut SparseMap,
        offset: u64,
        stored: u64,
    ) -> Result<u64, StreamError> {
        let bad = || format_error(offset, "bad PAX 1.0 sparse map");
        let mut taken = 0u64;
        let mut token: Option<u64> = None;
        let mut digits = 0;
        let mut wanted: Option<u64> = None;
        let mut block = [0u8; TAR_BLOCK as usize];
        while wanted.is_none_or(|w| map.numbers < w) {
            if taken + TAR_BLOCK > stored {
                return Err(bad());
            }
            self.read_block(&mut block, false)?;
            taken += TAR_BLOCK;
            self.unread -= TAR_BLOCK;
            for &b in &block {
                if wanted.is_some_and(|w| map.numbers >= w) {
                    break;
                }
                match b {
                    b'0'..=b'9' if digits < 19 => {
                        let t = token.unwrap_or(0) * 10 + u64::from(b - b'0');
                        token = Some(t);
                        digits += 1;
                    }
                    b'\n' => {
                        let value = token.take().ok_or_else(bad)?;
                        digits = 0;
                        match wanted {
                            None => {
                                wanted = Some(value.checked_mul(2).ok_or_else(bad)?);
                            }
                            Some(_) => map.push(value)?,
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        }
        Ok(taken)
    }
}

impl<R: Read + Seek> TarStream<R> {
    /// A stream over an archive file (positioned at its start): members'
    /// data is sought over, not read.
    pub fn seekable(mut inner: R) -> io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        let mut stream = TarStream::new(inner);
        stream.seek = Some((len, |r, n| {
            let n = i64::try_from(n).map_err(io::Error::other)?;
            r.seek(SeekFrom::Current(n)).map(drop)
        }));
        Ok(stream)
    }
}

/// The data of the member a [`TarStream`] is at, as a reader.
pub struct MemberData<'a, R> {
    stream: &'a mut TarStream<R>,
    left: u64,
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.stream.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the archive ends {} bytes before its member does",
                    self.left
                ),
            ));
        }
        self.stream.pos += n as u64;
        self.stream.unread -= n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A format error about the member `name`, named.
fn named(e: StreamError, name: &[u8]) -> StreamError {
    match e {
        StreamError::Format { offset, message } => StreamError::Format {
            offset,
            message: format!("{}: {message}", printable(name)),
        },
        other => other,
    }
}

fn padding(size: u64) -> u64 {
    (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK
}

/// A C string, cut at its first NUL as Go does.
fn c_string(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(i);
    }
    bytes
}

fn entry_size(header: &Header, offset: u64) -> Result<u64, StreamError> {
    header
        .entry_size()
        .map_err(|_| format_error(offset, "the size field is not a number"))
}

/// Accepts the sum of the header's bytes taken as unsigned or as signed,
/// as Go's reader (and GNU tar) do.
fn check_checksum(header: &Header, offset: u64) -> Result<(), StreamError> {
    let bytes = header.as_bytes();
    let fields = bytes[..148].iter().chain(&bytes[156..]);
    let unsigned: i64 = fields.clone().map(|&b| i64::from(b)).sum::<i64>() + 8 * 32;
    let signed: i64 = fields.map(|&b| i64::from(b as i8)).sum::<i64>() + 8 * 32;
    match header.cksum() {
        Ok(sum) if i64::from(sum) == unsigned || i64::from(sum) == signed => Ok(()),
        _ => Err(format_error(
            offset,
            "header checksum mismatch (not a tar header)",
        )),
    }
}

/// A decimal number as PAX records and sparse maps write them.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The records of a PAX header, `LEN key=value\n` each. Parsed by their
/// length prefix, as Go's `parsePAXRecord` does: the `tar` crate's
/// `PaxExtensions` splits at newlines instead, so a value holding one (a
/// file name may) would be refused.
fn pax_records(mut buf: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8]), ()>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let record = (|| {
            let sp = buf.iter().position(|&b| b == b' ')?;
            let len = usize::try_from(decimal(&buf[..sp])?).ok()?;
            if len < 5 || len > buf.len() || sp + 1 >= len || buf[len - 1] != b'\n' {
                return None;
            }
            let body = &buf[sp + 1..len - 1];
            let eq = body.iter().position(|&b| b == b'=')?;
            let rest = &buf[len..];
            Some(((&body[..eq], &body[eq + 1..]), rest))
        })();
        match record {
            Some((kv, rest)) => {
                buf = rest;
                Some(Ok(kv))
            }
            None => {
                buf = &[];
                Some(Err(()))
            }
        }
    })
}

/// Checks the records of a PAX header read up to `buf.len()`, from the
/// record starting at `from`: a name record whose declared length puts its
/// value past the limit is refused, with at most the record's prefix read.
/// Returns where the first record not read whole starts, or `None` when a
/// record is malformed (left for [`check_pax`] to refuse whole).
fn scan_pax_names(buf: &[u8], mut from: usize) -> Result<Option<usize>, String> {
    loop {
        let rest = &buf[from..];
        let Some(sp) = rest.iter().take(21).position(|&b| b == b' ') else {
            return Ok((rest.len() < 21).then_some(from));
        };
        let Some(len) = decimal(&rest[..sp]).and_then(|l| usize::try_from(l).ok()) else {
            return Ok(None);
        };
        if len < sp + 3 {
            return Ok(None);
        }
        let key_area = &rest[sp + 1..rest.len().min(len)];
        let Some(eq) = key_area.iter().position(|&b| b == b'=') else {
            return Ok((rest.len() < len).then_some(from));
        };
        let key = &key_area[..eq];
        // The value runs from after `=` to the record's closing newline.
        let value_len = len.saturating_sub(sp + 1 + eq + 1 + 1);
        let limit = match key {
            b"path" | b"GNU.sparse.name" => Some((MAX_PATH_BYTES, "path")),
            b"linkpath" => Some((MAX_LINK_BYTES, "link target")),
            _ => None,
        };
        if let Some((limit, bound)) = limit
            && value_len > limit
        {
            return Err(format!(
                "a PAX '{}' record of {value_len} bytes is over the {limit}-byte {bound} \
                 limit (Linux's PATH_MAX: containerd could not create it)",
                key.escape_ascii()
            ));
        }
        if rest.len() < len {
            return Ok(Some(from));
        }
        from += len;
    }
}

/// Refuses a PAX header Go's `parsePAX` refuses: a malformed record, an
/// empty key, a NUL in a name, sparse offsets and lengths out of turn.
fn check_pax(record: &[u8], offset: u64) -> Result<(), StreamError> {
    let bad = || format_error(offset, "malformed PAX record");
    let mut sparse_fields = 0u32;
    for r in pax_records(record) {
        let (k, v) = r.map_err(|()| bad())?;
        let nul_free = match k {
            b"path" | b"linkpath" | b"uname" | b"gname" => !v.contains(&0),
            _ => !k.contains(&0),
        };
        if k.is_empty() || !nul_free {
            return Err(bad());
        }
        let expected: &[u8] = if sparse_fields.is_multiple_of(2) {
            b"GNU.sparse.offset"
        } else {
            b"GNU.sparse.numbytes"
        };
        if k == b"GNU.sparse.offset" || k == b"GNU.sparse.numbytes" {
            if k != expected || v.contains(&b',') {
                return Err(bad());
            }
            sparse_fields += 1;
        }
    }
    Ok(())
}

/// The last value of `key` (a later record overrides an earlier one).
fn pax_value<'a>(pax: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    pax_records(pax)
        .filter_map(Result::ok)
        .filter(|(k, _)| *k == key)
        .last()
        .map(|(_, v)| v)
}

/// The GNU sparse records of a PAX header, found as Go's
/// `readGNUSparsePAXHeaders` finds them.
struct PaxSparse<'a> {
    pax: &'a [u8],
    v1: bool,
    name: Option<&'a [u8]>,
    size: Option<&'a [u8]>,
    numblocks: Option<&'a [u8]>,
}

impl<'a> PaxSparse<'a> {
    fn detect(pax: &'a [u8]) -> Option<PaxSparse<'a>> {
        let get = |k: &[u8]| pax_value(pax, k).filter(|v| !v.is_empty());
        let (major, minor) = (get(b"GNU.sparse.major"), get(b"GNU.sparse.minor"));
        let v1 = match (major, minor) {
            (Some(b"0"), Some(b"0" | b"1")) => false,
            (Some(b"1"), Some(b"0")) => true,
            (None, None) => {
                let has_map =
                    get(b"GNU.sparse.map").is_some() || get(b"GNU.sparse.offset").is_some();
                if !has_map {
                    return None;
                }
                false
            }
            // An unknown version: Go reads the member as a plain file.
            _ => return None,
        };
        Some(PaxSparse {
            pax,
            v1,
            name: get(b"GNU.sparse.name"),
            size: get(b"GNU.sparse.size").or_else(|| get(b"GNU.sparse.realsize")),
            numblocks: get(b"GNU.sparse.numblocks"),
        })
    }

    /// The 0.x map's numbers in order: `GNU.sparse.map` split at commas,
    /// or (0.0) the `GNU.sparse.offset`/`numbytes` records, which Go folds
    /// into a map.
    fn map_values(&self) -> Box<dyn Iterator<Item = &'a [u8]> + 'a> {
        let pairs: Vec<&'a [u8]> = pax_records(self.pax)
            .filter_map(Result::ok)
            .filter(|(k, _)| *k == b"GNU.sparse.offset" || *k == b"GNU.sparse.numbytes")
            .map(|(_, v)| v)
            .collect();
        if !pairs.is_empty() {
            return Box::new(pairs.into_iter());
        }
        match pax_value(self.pax, b"GNU.sparse.map").filter(|m| !m.is_empty()) {
            Some(m) => Box::new(m.split(|&b| b == b',')),
            None => Box::new(std::iter::empty()),
        }
    }
}

/// Checks a sparse map as it streams past, as Go's
/// `validateSparseEntries` does, and counts the data it refers to.
struct SparseMap {
    /// The member's offset, for errors.
    at: u64,
    apparent: u64,
    end: u64,
    data: u64,
    /// Numbers pushed so far, and the offset awaiting its length.
    numbers: u64,
    offset: u64,
}

impl SparseMap {
    fn new(at: u64, apparent: u64) -> Self {
        SparseMap {
            at,
            apparent,
            end: 0,
            data: 0,
            numbers: 0,
            offset: 0,
        }
    }

    /// Takes the map's numbers one at a time: offset, length, offset, ...
    fn push(&mut self, v: u64) -> Result<(), StreamError> {
        self.numbers += 1;
        if self.numbers.is_multiple_of(2) {
            self.add(self.offset, v)
        } else {
            self.offset = v;
            Ok(())
        }
    }

    fn add(&mut self, offset: u64, length: u64) -> Result<(), StreamError> {
        let end = offset
            .checked_add(length)
            .filter(|&e| e <= self.apparent && offset >= self.end && e <= i64::MAX as u64)
            .ok_or_else(|| {
                format_error(
                    self.at,
                    format!(
                        "sparse map entry {offset}+{length} overlaps another or ends past \
                         the file's {} bytes",
                        self.apparent
                    ),
                )
            })?;
        self.end = end;
        self.data += length;
        Ok(())
    }

    /// The map must refer to exactly the data stored: Go's reader fails
    /// on either side (`errMissData`, `errUnrefData`).
    fn finish(self, stored: u64) -> Result<(), StreamError> {
        if self.data == stored {
            Ok(())
        } else {
            Err(format_error(
                self.at,
                format!(
                    "the sparse map refers to {} bytes of data, the member stores {stored}",
                    self.data
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(name: &str, kind: u8, size: u64) -> Vec<u8> {
        let mut h = Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn members(tar: &[u8]) -> Result<Vec<MemberHeader>, StreamError> {
        let mut s = TarStream::new(tar);
        let mut out = Vec::new();
        while let Some(m) = s.next_member()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn header_only_types_have_no_data_whatever_their_size_says() {
        // Go's reader (isHeaderOnlyType) reads the next header right after
        // a directory's, so the "data" below is the next member.
        let mut tar = block("d/", b'5', 512);
        tar.extend(block("f", b'0', 0));
        let names: Vec<_> = members(&tar).unwrap().into_iter().map(|m| m.name).collect();
        assert_eq!(names, [b"d/".to_vec(), b"f".to_vec()]);
    }

    #[test]
    fn a_size_near_u64_max_is_an_error_not_an_overflow() {
        let mut tar = block("f", b'0', 0);
        // Base-256: a set high bit, then the value.
        let size_field = &mut tar[124..136];
        size_field.fill(0xff);
        let mut h = Header::new_old();
        h.as_mut_bytes().copy_from_slice(&tar[..512]);
        h.set_cksum();
        tar[..512].copy_from_slice(h.as_bytes());
        assert!(h.entry_size().unwrap() > u64::MAX - 512);
        assert!(members(&tar).is_err());
    }

    #[test]
    fn one_zero_block_then_the_end_is_an_end() {
        let mut tar = block("f", b'0', 0);
        tar.extend([0u8; 512]);
        assert_eq!(members(&tar).unwrap().len(), 1);
        tar.extend([0u8; 100]);
        assert!(members(&tar).is_err(), "a partial block after a zero block");
    }

    #[test]
    fn pax_records_are_read_by_their_length() {
        let recs: Vec<_> = pax_records(b"18 path=a\nb/c.txt\n10 size=5\n").collect();
        assert_eq!(
            recs,
            [
                Ok((&b"path"[..], &b"a\nb/c.txt"[..])),
                Ok((&b"size"[..], &b"5"[..]))
            ]
        );
        assert!(check_pax(b"8 path=a\n", 0).is_err());
        assert!(check_pax(b"12 path=a\0b\n", 0).is_err());
    }

    #[test]
    fn printable_escapes_and_cuts() {
        assert_eq!(printable(b"a\x1b[0m\n"), "a\\x1b[0m\\n");
        assert!(printable(&[b'x'; 500]).ends_with('…'));
    }
}
