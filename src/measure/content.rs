//! What the analyzer learns from a regular file's bytes as they stream past,
//! without unpacking it: a content hash (xxh3, 64 bits: for finding
//! identical files, not for security), and for an ELF file the bytes its
//! debug sections take, which `strip --strip-debug` would remove.
//!
//! The ELF reading is bounded whatever the file claims: the header is the
//! first [`ELF64_HEADER`] bytes; the section header table is captured when
//! the stream reaches `e_shoff`, at most [`MAX_SECTIONS`] entries; the
//! section-name string table is read from a window of the last
//! [`NAME_WINDOW`] bytes before `e_shoff`, where linkers put it (GNU ld,
//! gold, lld and `objcopy` all write `.shstrtab` last, just before the
//! section headers). A file whose name table lies elsewhere, or whose
//! figures do not add up, is reported as having no debug sections: the hint
//! then misses bytes, it never invents them.

use xxhash_rust::xxh3::Xxh3;

/// Section headers read at most; real binaries have a few dozen.
pub const MAX_SECTIONS: usize = 4096;
/// How far before the section header table the name table is looked for.
pub const NAME_WINDOW: u64 = 64 * 1024;
const ELF64_HEADER: usize = 64;
const ELF32_HEADER: usize = 52;
/// `SHT_NOBITS`: a section that occupies no file bytes (`.bss`).
const SHT_NOBITS: u32 = 8;

/// A file's content facts, once it has been read whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentFacts {
    /// xxh3-64 of the content; 0 for an empty file.
    pub hash: u64,
    /// Bytes `strip --strip-debug` would remove (0: none, or not an ELF).
    pub debug_bytes: u64,
}

/// Hashes and scans one file's content, chunk by chunk.
pub struct ContentScan {
    hasher: Xxh3,
    read: u64,
    elf: Option<ElfScan>,
}

impl ContentScan {
    pub fn new(size: u64) -> Self {
        ContentScan {
            hasher: Xxh3::new(),
            read: 0,
            // Too small to hold a header and one section: not worth a look.
            elf: (size > ELF64_HEADER as u64).then(|| ElfScan::new(size)),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        if let Some(elf) = &mut self.elf
            && !elf.feed(self.read, chunk)
        {
            self.elf = None;
        }
        self.read += chunk.len() as u64;
    }

    pub fn finish(self) -> ContentFacts {
        if self.read == 0 {
            return ContentFacts::default();
        }
        ContentFacts {
            // 0 stands for "no hash": a real 0 is moved aside.
            hash: self.hasher.digest().max(1),
            debug_bytes: self.elf.map_or(0, ElfScan::debug_bytes),
        }
    }
}

/// The ELF header fields the scan needs.
#[derive(Debug, Clone, Copy)]
struct ElfHeader {
    wide: bool,
    big_endian: bool,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

impl ElfHeader {
    fn parse(b: &[u8], size: u64) -> Option<ElfHeader> {
        if b.get(..4)? != b"\x7fELF" {
            return None;
        }
        let wide = match b[4] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let big_endian = match b[5] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let r = Fields { b, big_endian };
        let (shoff, at) = if wide {
            (r.u64(0x28)?, 0x3a)
        } else {
            (u64::from(r.u32(0x20)?), 0x2e)
        };
        let h = ElfHeader {
            wide,
            big_endian,
            shoff,
            shentsize: u64::from(r.u16(at)?),
            shnum: u64::from(r.u16(at + 2)?),
            shstrndx: u64::from(r.u16(at + 4)?),
        };
        let want_entry = if wide { 64 } else { 40 };
        let header_len = if wide { ELF64_HEADER } else { ELF32_HEADER } as u64;
        // Extended numbering (e_shnum 0, or e_shstrndx SHN_XINDEX) and
        // anything inconsistent is left alone.
        let table_end = h.shoff.checked_add(h.shnum * h.shentsize)?;
        let sane = h.shentsize == want_entry
            && (1..=MAX_SECTIONS as u64).contains(&h.shnum)
            && h.shstrndx < h.shnum
            && h.shoff >= header_len
            && table_end <= size;
        sane.then_some(h)
    }

    fn table_len(&self) -> u64 {
        self.shnum * self.shentsize
    }
}

/// Reads fixed-width fields of either endianness, `None` past the end.
struct Fields<'a> {
    b: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.b.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        let v = self.bytes::<2>(at)?;
        Some(if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let v = self.bytes::<4>(at)?;
        Some(if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        })
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let v = self.bytes::<8>(at)?;
        Some(if self.big_endian {
            u64::from_be_bytes(v)
        } else {
            u64::from_le_bytes(v)
        })
    }
}

/// One byte range of the file to keep as it streams past.
struct Capture {
    start: u64,
    buf: Vec<u8>,
    len: usize,
}

impl Capture {
    fn new(start: u64, len: u64) -> Self {
        let len = usize::try_from(len).unwrap_or(0);
        Capture {
            start,
            buf: Vec::with_capacity(len),
            len,
        }
    }

    /// Copies the part of `chunk` (at file offset `at`) that falls in range.
    fn take(&mut self, at: u64, chunk: &[u8]) {
        let end = self.start + self.len as u64;
        let chunk_end = at + chunk.len() as u64;
        let from = self.start + self.buf.len() as u64;
        if from >= end || chunk_end <= from || at > from {
            return;
        }
        let lo = (from - at) as usize;
        let hi = (end.min(chunk_end) - at) as usize;
        self.buf.extend_from_slice(&chunk[lo..hi]);
    }

    fn complete(&self) -> bool {
        self.buf.len() == self.len
    }
}

/// The streaming ELF reader: header, then name window and section table.
struct ElfScan {
    size: u64,
    head: Vec<u8>,
    header: Option<ElfHeader>,
    names: Option<Capture>,
    table: Option<Capture>,
}

impl ElfScan {
    fn new(size: u64) -> Self {
        ElfScan {
            size,
            head: Vec::with_capacity(ELF64_HEADER),
            header: None,
            names: None,
            table: None,
        }
    }

    /// Takes the chunk at file offset `at`; `false` once the file is known
    /// not to be a readable ELF.
    fn feed(&mut self, at: u64, chunk: &[u8]) -> bool {
        if self.header.is_none() {
            let want = ELF64_HEADER - self.head.len();
            let n = want.min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
            if self.head.len() < 4 {
                return true;
            }
            if &self.head[..4] != b"\x7fELF" {
                return false;
            }
            if self.head.len() < ELF64_HEADER {
                return true;
            }
            let Some(h) = ElfHeader::parse(&self.head, self.size) else {
                return false;
            };
            let window = h.shoff.min(NAME_WINDOW);
            self.names = Some(Capture::new(h.shoff - window, window));
            self.table = Some(Capture::new(h.shoff, h.table_len()));
            self.header = Some(h);
            // Earlier chunks went only to `head`: the ranges may start in it.
            for c in [&mut self.names, &mut self.table].into_iter().flatten() {
                c.take(0, &self.head);
            }
        }
        for c in [&mut self.names, &mut self.table].into_iter().flatten() {
            c.take(at, chunk);
        }
        true
    }

    fn debug_bytes(self) -> u64 {
        let (Some(h), Some(names), Some(table)) = (self.header, self.names, self.table) else {
            return 0;
        };
        if !table.complete() || !names.complete() {
            return 0;
        }
        let sections = Sections {
            h,
            table: &table.buf,
        };
        let Some((str_off, str_size)) = sections.range(h.shstrndx) else {
            return 0;
        };
        // The name table must lie within the window kept before the table.
        let Some(lo) = str_off.checked_sub(names.start) else {
            return 0;
        };
        let Some(hi) = lo.checked_add(str_size) else {
            return 0;
        };
        let Some(strtab) = names.buf.get(lo as usize..hi as usize) else {
            return 0;
        };
        let mut total: u64 = 0;
        for i in 0..h.shnum {
            let Some(name_at) = sections.name(i) else {
                continue;
            };
            let Some(name) = strtab.get(name_at as usize..) else {
                continue;
            };
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if !is_debug_section(name) {
                continue;
            }
            // The section's bytes, its header entry and its name go.
            let bytes = match sections.kind(i) {
                Some(SHT_NOBITS) | None => 0,
                Some(_) => sections.range(i).map_or(0, |(_, size)| size),
            };
            total = total
                .saturating_add(bytes)
                .saturating_add(h.shentsize)
                .saturating_add(name.len() as u64 + 1);
        }
        total.min(self.size)
    }
}

/// `.debug_*` and compressed `.zdebug_*` sections: what `strip
/// --strip-debug` removes. `.symtab` and `.strtab` stay (it keeps them).
fn is_debug_section(name: &[u8]) -> bool {
    name.starts_with(b".debug_") || name.starts_with(b".zdebug_")
}

/// The captured section header table.
struct Sections<'a> {
    h: ElfHeader,
    table: &'a [u8],
}

impl Sections<'_> {
    fn entry(&self, i: u64) -> Option<Fields<'_>> {
        let at = usize::try_from(i * self.h.shentsize).ok()?;
        let len = self.h.shentsize as usize;
        Some(Fields {
            b: self.table.get(at..at + len)?,
            big_endian: self.h.big_endian,
        })
    }

    fn name(&self, i: u64) -> Option<u32> {
        self.entry(i)?.u32(0)
    }

    fn kind(&self, i: u64) -> Option<u32> {
        self.entry(i)?.u32(4)
    }

    /// The section's file offset and size.
    fn range(&self, i: u64) -> Option<(u64, u64)> {
        let e = self.entry(i)?;
        if self.h.wide {
            Some((e.u64(0x18)?, e.u64(0x20)?))
        } else {
            Some((u64::from(e.u32(0x10)?), u64::from(e.u32(0x14)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: header, `.text`, `.debug_info`, `.shstrtab`, then the
    /// section table, in either width and endianness.
    fn elf(wide: bool, big_endian: bool, debug_len: usize) -> Vec<u8> {
        let hdr = if wide { 64 } else { 52 };
        let ent = if wide { 64 } else { 40 };
        let names = b"\0.text\0.debug_info\0.shstrtab\0".to_vec();
        let text_at = hdr;
        let debug_at = text_at + 16;
        let str_at = debug_at + debug_len;
        let shoff = str_at + names.len();
        let mut b = vec![0u8; shoff + 4 * ent];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if wide { 2 } else { 1 };
        b[5] = if big_endian { 2 } else { 1 };
        let put = |b: &mut Vec<u8>, at: usize, v: u64, width: usize| {
            let bytes = if big_endian {
                v.to_be_bytes()[8 - width..].to_vec()
            } else {
                v.to_le_bytes()[..width].to_vec()
            };
            b[at..at + width].copy_from_slice(&bytes);
        };
        let (shoff_at, at, word) = if wide {
            (0x28, 0x3a, 8)
        } else {
            (0x20, 0x2e, 4)
        };
        put(&mut b, shoff_at, shoff as u64, word);
        put(&mut b, at, ent as u64, 2);
        put(&mut b, at + 2, 4, 2);
        put(&mut b, at + 4, 3, 2);
        b[str_at..shoff].copy_from_slice(&names);
        let sections = [
            (1u64, 1u64, text_at, 16),
            (7, 1, debug_at, debug_len),
            (19, 3, str_at, names.len()),
        ];
        for (i, (name, kind, off, size)) in sections.into_iter().enumerate() {
            let e = shoff + (i + 1) * ent;
            put(&mut b, e, name, 4);
            put(&mut b, e + 4, kind, 4);
            if wide {
                put(&mut b, e + 0x18, off as u64, 8);
                put(&mut b, e + 0x20, size as u64, 8);
            } else {
                put(&mut b, e + 0x10, off as u64, 4);
                put(&mut b, e + 0x14, size as u64, 4);
            }
        }
        b
    }

    fn scan(bytes: &[u8], chunk: usize) -> ContentFacts {
        let mut s = ContentScan::new(bytes.len() as u64);
        for c in bytes.chunks(chunk.max(1)) {
            s.feed(c);
        }
        s.finish()
    }

    #[test]
    fn debug_sections_are_found_in_every_width_and_endianness() {
        for wide in [false, true] {
            for big in [false, true] {
                let b = elf(wide, big, 5000);
                let ent = if wide { 64 } else { 40 };
                let want = 5000 + ent + ".debug_info".len() as u64 + 1;
                for chunk in [1, 7, 512, 1 << 20] {
                    assert_eq!(scan(&b, chunk).debug_bytes, want, "{wide} {big} {chunk}");
                }
            }
        }
    }

    #[test]
    fn same_bytes_same_hash_and_empty_is_zero() {
        let a = scan(b"hello world, hello world", 3);
        let b = scan(b"hello world, hello world", 100);
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, 0);
        assert_eq!(scan(b"", 1).hash, 0);
        assert_ne!(scan(b"hello world, hello worle", 5).hash, a.hash);
    }

    #[test]
    fn hostile_headers_give_no_debug_bytes_and_no_panic() {
        let good = elf(true, false, 3000);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // Every single-byte corruption of the header and section table.
        for at in (0..64).chain(good.len() - 256..good.len()) {
            for v in [0u8, 0xff, 0x7f, 1, 2] {
                let mut b = good.clone();
                b[at] = v;
                cases.push(b);
            }
        }
        cases.push(good[..100].to_vec());
        cases.push(b"\x7fELF".to_vec());
        for b in &cases {
            let facts = scan(b, 61);
            assert!(facts.debug_bytes <= b.len() as u64);
        }
    }
}
