//! Root trees shipped as tar archives: opening them through their
//! compression, and refusing, before anything is extracted, an archive that
//! could write outside the directory it is extracted into.
//!
//! Extraction itself is done by GNU tar (it keeps owners, xattrs, ACLs and
//! device nodes); this validation runs over the whole stream first, so a
//! bad archive is refused before the new base is touched.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::ImageError;
use super::detect::Compression;

/// What a valid archive holds.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TarSummary {
    /// Every member, directories and links included.
    pub entries: u64,
    /// Sum of the regular files' sizes (sparse files at their full size).
    pub bytes: u64,
}

/// Read every header of the (decompressed) tar stream and refuse, naming
/// the entry, anything that could reach outside the extraction directory:
///
/// - absolute member names (`/etc/x`) and names with a `..` component;
/// - a symlink whose *relative* target climbs above the root when resolved
///   lexically from the symlink's own directory (`etc/x -> ../../tmp`).
///   Absolute targets (`etc/localtime -> /usr/share/zoneinfo/UTC`) are
///   allowed: they are normal in root trees and the kernel resolves them
///   against the root the system boots into, i.e. inside the tree. The
///   danger of any symlink is only that something is later written
///   *through* it during extraction, which the next rule forbids;
/// - a member at, or below, a path that an earlier member made a symlink
///   (`a -> /tmp`, then `a/evil` or a second `a`): extracting it would
///   follow the symlink out of the tree. A tar made from a real tree never
///   holds such a member, since tar does not descend into symlinks;
/// - a hardlink whose target is absolute, has a `..` component, or lies
///   below an earlier symlink (link(2) would then reach outside).
///
/// Names are taken as GNU tar takes them: GNU long names, pax `path` and
/// `linkpath` records, and the real name of a pax sparse file
/// (`GNU.sparse.name`) are all checked. Reads the whole stream (it blocks
/// until the source ends).
pub fn validate(src: &mut dyn Read) -> Result<TarSummary, ImageError> {
    validate_and_read(src, "").map(|(summary, _)| summary)
}

/// [`validate`], also returning the content of the member named `want`
/// (a small file such as the image's NVR record), read in the same pass.
pub fn validate_and_read(
    src: &mut dyn Read,
    want: &str,
) -> Result<(TarSummary, Option<Vec<u8>>), ImageError> {
    let mut walker = Walker::new(src);
    let mut summary = TarSummary::default();
    let mut found = None;
    // Every path an earlier member made a symlink, as normalised bytes.
    let mut symlinks: HashSet<Vec<u8>> = HashSet::new();
    let tar_err = |entries, source: io::Error| match source
        .get_ref()
        .and_then(|e| e.downcast_ref::<Refused>())
    {
        Some(r) => ImageError::UnsafeTarEntry {
            entry: r.entry.clone(),
            reason: r.reason.clone(),
        },
        None => ImageError::Tar { entries, source },
    };
    while let Some(m) = walker.next().map_err(|e| tar_err(summary.entries, e))? {
        let shown = String::from_utf8_lossy(&m.name).into_owned();
        let refuse = |reason: String| ImageError::UnsafeTarEntry {
            entry: shown.clone(),
            reason,
        };
        let mut comps = components(&m.name).map_err(|r| refuse(r.into()))?;
        if let Some(real) = &m.sparse_name {
            comps = components(real).map_err(|r| {
                refuse(format!(
                    "its real name {:?} is {r}",
                    String::from_utf8_lossy(real)
                ))
            })?;
        }
        if comps.is_empty() && m.kind != b'5' {
            return Err(refuse("it names the root directory itself".into()));
        }
        if let Some(link) = first_symlink(&comps, comps.len(), &symlinks) {
            return Err(refuse(format!(
                "it would be written through the symlink {link:?} made by an earlier entry"
            )));
        }
        // GNU tar extracts these types without reading their data, so any
        // bytes after the header would be its next member while we skip them.
        if let (Some(what), 1..) = (dataless(m.kind), m.size) {
            return Err(refuse(format!(
                "the {what} carries {} bytes of data, which GNU tar would read as further members",
                m.size
            )));
        }
        let target_shown = || String::from_utf8_lossy(&m.link).into_owned();
        match m.kind {
            b'2' => {
                if m.link.is_empty() {
                    return Err(refuse("the symlink has no target".into()));
                }
                if !m.link.starts_with(b"/") && climbs_out(comps.len() - 1, &m.link) {
                    return Err(refuse(format!(
                        "the symlink's target {:?} leads out of the root",
                        target_shown()
                    )));
                }
                symlinks.insert(comps.join(&b'/'));
            }
            b'1' => {
                let tcomps = components(&m.link).map_err(|r| {
                    refuse(format!("the hardlink's target {:?} is {r}", target_shown()))
                })?;
                if tcomps.is_empty() {
                    return Err(refuse("the hardlink has no target".into()));
                }
                // link(2) does not follow a symlink in the last component,
                // so only the directories leading to the target matter.
                if let Some(link) = first_symlink(&tcomps, tcomps.len() - 1, &symlinks) {
                    return Err(refuse(format!(
                        "the hardlink's target {:?} lies below the symlink {link:?}",
                        target_shown()
                    )));
                }
            }
            b'0' | 0 | b'7' | b'S' => {
                summary.bytes += m.real_size;
                if !want.is_empty() && comps.join(&b'/') == want.as_bytes() && m.size <= 4096 {
                    found = Some(
                        walker
                            .read_data(&m)
                            .map_err(|e| tar_err(summary.entries, e))?,
                    );
                }
            }
            _ => {}
        }
        walker
            .skip_data(&m)
            .map_err(|e| tar_err(summary.entries, e))?;
        summary.entries += 1;
    }
    // Read to the very end, so a compressed stream's own checksum (gzip's
    // CRC, zstd's) is checked now, not halfway through extraction.
    io::copy(walker.src, &mut io::sink()).map_err(|e| tar_err(summary.entries, e))?;
    Ok((summary, found))
}

/// What a member type that stores no data is, for messages.
fn dataless(kind: u8) -> Option<&'static str> {
    Some(match kind {
        b'1' => "hardlink",
        b'2' => "symlink",
        b'3' | b'4' => "device node",
        b'5' => "directory",
        b'6' => "fifo",
        _ => return None,
    })
}

/// One member of a tar stream, with GNU and pax extended names applied.
#[derive(Debug, Default)]
struct Member {
    kind: u8,
    name: Vec<u8>,
    link: Vec<u8>,
    /// Bytes of data stored after the header.
    size: u64,
    /// Bytes of the file once extracted (differs for sparse files).
    real_size: u64,
    /// The real name of a pax-format sparse file.
    sparse_name: Option<Vec<u8>>,
}

/// What the pax `x` headers before a member say about it.
#[derive(Debug, Default)]
struct Pax {
    name: Vec<u8>,
    link: Vec<u8>,
    /// `size`: GNU tar takes it as the length of the data stored in the
    /// archive, overriding the header's size field.
    size: Option<u64>,
    /// `GNU.sparse.realsize` / `GNU.sparse.size`: a sparse file's full size.
    real_size: Option<u64>,
    sparse_name: Option<Vec<u8>>,
}

/// A reader of tar headers of our own: the `tar` crate splits pax records
/// on newlines, which breaks on the binary xattr and ACL values GNU tar
/// writes; here records are read by their length, as POSIX defines them.
struct Walker<'a> {
    src: &'a mut dyn Read,
    /// Data of the current member not yet consumed.
    left: u64,
}

const BLOCK: usize = 512;

impl<'a> Walker<'a> {
    fn new(src: &'a mut dyn Read) -> Self {
        Walker { src, left: 0 }
    }

    fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut n = 0;
        while n < BLOCK {
            match self.src.read(&mut b[n..]) {
                Ok(0) if n == 0 => return Ok(None),
                Ok(0) => return Err(truncated()),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(b))
    }

    /// The next member, or None at the end-of-archive marker.
    fn next(&mut self) -> io::Result<Option<Member>> {
        let mut pending = Pax::default();
        let (mut long_name, mut long_link) = (None, None);
        loop {
            let Some(h) = self.block()? else {
                // A real archive ends with zero blocks; without them it
                // was cut short, and extracting it would lose files.
                return Err(truncated());
            };
            if h.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            check_sum(&h)?;
            let kind = h[156];
            let mut size = numeric(&h[124..136])?;
            match kind {
                b'L' | b'K' | b'x' | b'g' => {
                    let data = self.read_exact_data(size)?;
                    match kind {
                        b'L' => long_name = Some(trim_nul(&data).to_vec()),
                        b'K' => long_link = Some(trim_nul(&data).to_vec()),
                        b'x' => apply_pax(&data, &mut pending)?,
                        _ => refuse_global(trim_nul(&h[0..100]), &data)?,
                    }
                    continue;
                }
                _ => {}
            }
            if let Some(s) = pending.size.take() {
                size = s;
            }
            let ustar = &h[257..263] == b"ustar\0";
            let mut name = trim_nul(&h[0..100]).to_vec();
            let prefix = trim_nul(&h[345..500]);
            if ustar && !prefix.is_empty() {
                name = [prefix, b"/", &name].concat();
            }
            let mut m = Member {
                kind,
                name: long_name.take().unwrap_or(name),
                link: long_link
                    .take()
                    .unwrap_or_else(|| trim_nul(&h[157..257]).to_vec()),
                size,
                real_size: size,
                sparse_name: None,
            };
            if kind == b'S' {
                // Old GNU sparse: the full size is in the header's realsize.
                m.real_size = numeric(&h[483..495])?;
            }
            if !pending.name.is_empty() {
                m.name = std::mem::take(&mut pending.name);
            }
            if !pending.link.is_empty() {
                m.link = std::mem::take(&mut pending.link);
            }
            if let Some(real) = pending.real_size.take() {
                m.real_size = real;
            }
            m.sparse_name = pending.sparse_name.take();
            self.left = m.size;
            return Ok(Some(m));
        }
    }

    fn read_exact_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > 64 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an extended header larger than 64 MiB",
            ));
        }
        let mut data = vec![0u8; size as usize];
        self.src.read_exact(&mut data).map_err(eof_is_truncated)?;
        self.skip(padding(size))?;
        Ok(data)
    }

    fn read_data(&mut self, m: &Member) -> io::Result<Vec<u8>> {
        let data = self.read_exact_data(m.size)?;
        self.left = 0;
        Ok(data)
    }

    fn skip_data(&mut self, _m: &Member) -> io::Result<()> {
        let left = std::mem::take(&mut self.left);
        self.skip(left + padding(left))
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut *self.src).take(n), &mut io::sink())?;
        if copied < n {
            return Err(truncated());
        }
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive ends in the middle (no end-of-archive marker)",
    )
}

fn eof_is_truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        truncated()
    } else {
        e
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// A header number: octal text, or GNU's base-256 when the top bit is set.
fn numeric(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| bad_header("a size that does not fit 64 bits"))?;
        }
        return Ok(v);
    }
    let text = std::str::from_utf8(trim_nul(field))
        .map_err(|_| bad_header("a number that is not text"))?
        .trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| bad_header("a number that is not octal"))
}

fn bad_header(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt tar header: {what}"),
    )
}

/// The header checksum: the sum of its bytes, the checksum field counted
/// as spaces (signed sums are accepted too, as old tars wrote them).
fn check_sum(h: &[u8; BLOCK]) -> io::Result<()> {
    let want = numeric(&h[148..156])?;
    let field = 148..156;
    let unsigned: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| if field.contains(&i) { 32 } else { u64::from(b) })
        .sum();
    let signed: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if field.contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    if want == unsigned || want as i64 == signed {
        Ok(())
    } else {
        Err(bad_header("the header checksum does not match"))
    }
}

/// Apply the records of a pax extended header to the next member.
fn apply_pax(data: &[u8], m: &mut Pax) -> io::Result<()> {
    for (key, value) in pax_records(data)? {
        match key {
            b"path" => m.name = value.to_vec(),
            b"linkpath" => m.link = value.to_vec(),
            b"GNU.sparse.name" => m.sparse_name = Some(value.to_vec()),
            b"size" => m.size = Some(pax_number(key, value)?),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                m.real_size = Some(pax_number(key, value)?)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuse a global pax header ('g') that sets names or sizes: GNU tar
/// applies its records to every later member, which would make one header
/// rename, or resize the data of, the whole archive.
fn refuse_global(name: &[u8], data: &[u8]) -> io::Result<()> {
    for (key, _) in pax_records(data)? {
        if matches!(key, b"path" | b"linkpath" | b"size") || key.starts_with(b"GNU.sparse.") {
            let refused = Refused {
                entry: String::from_utf8_lossy(name).into_owned(),
                reason: format!(
                    "a global pax header setting {}, which imgbase refuses",
                    String::from_utf8_lossy(key)
                ),
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, refused));
        }
    }
    Ok(())
}

/// A header refused for what it says, not because the stream is broken;
/// carried through the walker's io::Error to become `UnsafeTarEntry`.
#[derive(Debug)]
struct Refused {
    entry: String,
    reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.entry, self.reason)
    }
}

impl std::error::Error for Refused {}

/// A pax size: decimal digits only, at most what GNU tar's off_t holds
/// (it refuses anything else, so we must not guess a value).
fn pax_number(key: &[u8], value: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v <= i64::MAX as u64)
        .ok_or_else(|| {
            bad_header(&format!(
                "the pax record {}={:?} is not a decimal size",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            ))
        })
}

/// The (key, value) records of a pax extended header: "<len> <key>=<value>\n",
/// where len counts the whole record, so values may hold any byte.
fn pax_records(mut data: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad_header("a pax record without a length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|t| t.parse().ok())
            .filter(|&l| l > sp + 1 && l <= data.len())
            .ok_or_else(|| bad_header("a pax record with a bad length"))?;
        let record = &data[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((&record[..eq], &record[eq + 1..]));
        }
        data = &data[len..];
    }
    Ok(out)
}

/// The normal components of a member name ("./" and "." dropped), or why
/// the name is unsafe.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.starts_with(b"/") {
        return Err("an absolute path");
    }
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a path with a \"..\" component"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The first of the leading `upto` components of `comps` that names an
/// earlier symlink, as a path.
fn first_symlink(comps: &[&[u8]], upto: usize, symlinks: &HashSet<Vec<u8>>) -> Option<String> {
    (1..=upto)
        .map(|i| comps[..i].join(&b'/'))
        .find(|p| symlinks.contains(p))
        .map(|p| String::from_utf8_lossy(&p).into_owned())
}

/// Whether a relative symlink target, resolved lexically from a directory
/// `depth` levels below the root, goes above the root at any point.
fn climbs_out(mut depth: usize, target: &[u8]) -> bool {
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// Unpack the `etc/` of a (validated) root archive into `dir`, with
/// owners, modes and xattrs, for a look at it (`update --dry-run`). The
/// tar crate's `unpack_in` refuses anything that would land outside
/// `dir`; a hard link to a file outside `etc/` is skipped.
pub fn unpack_etc(src: &mut dyn Read, dir: &Path) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(src);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(rustix::process::geteuid().is_root());
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let bad = |e: io::Error| ImageError::Io {
        what: "unpack etc/ of",
        path: dir.to_path_buf(),
        source: e,
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let rel = path.strip_prefix("./").unwrap_or(&path);
        if !(rel == Path::new("etc") || rel.starts_with("etc/")) {
            continue;
        }
        if let Err(e) = entry.unpack_in(dir)
            && entry.header().entry_type() != tar::EntryType::Link
        {
            return Err(bad(e));
        }
    }
    Ok(())
}

/// Open a tar (any Compression) as a decompressed, buffered stream.
pub fn open(path: &Path, compression: Compression) -> io::Result<Box<dyn Read>> {
    let file = BufReader::with_capacity(1 << 20, File::open(path)?);
    Ok(match compression {
        Compression::None => Box::new(file),
        // Multi-member, like gzip -d: pigz and appended archives make those.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(file)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tar::EntryType;

    /// An archive built member by member; names are written raw into the
    /// header, bypassing the tar crate's own refusal of unsafe names.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Self {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn add(mut self, kind: EntryType, name: &str, link: Option<&str>, data: &[u8]) -> Self {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                h.set_link_name_literal(l).unwrap();
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }

        fn dir(self, name: &str) -> Self {
            self.add(EntryType::Directory, name, None, b"")
        }
        fn file(self, name: &str, data: &[u8]) -> Self {
            self.add(EntryType::Regular, name, None, data)
        }
        fn symlink(self, name: &str, target: &str) -> Self {
            self.add(EntryType::Symlink, name, Some(target), b"")
        }
        fn hardlink(self, name: &str, target: &str) -> Self {
            self.add(EntryType::Link, name, Some(target), b"")
        }
        fn pax(mut self, key: &str, value: &str) -> Self {
            self.0
                .append_pax_extensions([(key, value.as_bytes())])
                .unwrap();
            self
        }

        /// A global pax header ('g'): records for every later member.
        fn pax_global(mut self, key: &str, value: &str) -> Self {
            let rec = pax_record(key, value);
            let mut h = tar::Header::new_ustar();
            h.as_ustar_mut().unwrap().name[..13].copy_from_slice(b"pax_global_hd");
            h.set_entry_type(EntryType::XGlobalHeader);
            h.set_size(rec.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.0.append(&h, &rec[..]).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }

        fn validate(self) -> Result<TarSummary, ImageError> {
            let bytes = self.bytes();
            validate(&mut &bytes[..])
        }
    }

    /// One pax record, "<len> key=value\n", len counting itself.
    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while (len.to_string().len() + body.len()) != len {
            len += 1;
        }
        format!("{len}{body}").into_bytes()
    }

    /// A file "a" whose ustar header says 1024 bytes of data, but whose pax
    /// header says `size=0`; those 1024 bytes hold a complete header of a
    /// member `../evil`, then a zero block.
    fn hidden_member() -> Vec<u8> {
        Tar::new()
            .pax("size", "0")
            .file("a", &hiding_data())
            .bytes()
    }

    /// A complete header of a member `../evil`, then a zero block.
    fn hiding_data() -> Vec<u8> {
        let mut evil = tar::Header::new_ustar();
        evil.as_ustar_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        evil.set_entry_type(EntryType::Regular);
        evil.set_size(0);
        evil.set_mode(0o644);
        evil.set_cksum();
        let mut data = evil.as_bytes().to_vec();
        data.extend_from_slice(&[0u8; 512]);
        data
    }

    fn good_tree() -> Tar {
        let mut dev = tar::Header::new_gnu();
        dev.set_path("dev/null").unwrap();
        dev.set_entry_type(EntryType::Char);
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        dev.set_mode(0o666);
        dev.set_size(0);
        dev.set_cksum();
        let mut t = Tar::new()
            .dir("./")
            .dir("./etc/")
            .file("./etc/hostname", b"node\n")
            .symlink("./etc/localtime", "/usr/share/zoneinfo/UTC")
            .dir("usr")
            .dir("usr/bin")
            .file("usr/bin/a", &[1u8; 1000])
            .hardlink("usr/bin/b", "usr/bin/a")
            .hardlink("usr/bin/c", "./usr/bin/a")
            .symlink("bin", "usr/bin")
            .hardlink("usr/bin/bin-link", "bin")
            .dir("usr/lib64")
            .symlink("usr/lib64/libx.so", "../../usr/lib64/libx.so.1")
            .symlink("usr/lib64/self", ".")
            .dir("dev");
        t.0.append(&dev, &b""[..]).unwrap();
        // A long name (GNU longname member) through the tar crate.
        let long = format!("usr/{}/f", "d".repeat(150));
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        t.0.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        t
    }

    #[test]
    fn a_good_root_tree_is_counted() {
        let s = good_tree().validate().unwrap();
        assert_eq!(s.entries, 17);
        assert_eq!(s.bytes, 5 + 1000 + 3);
    }

    fn refused(t: Tar, entry: &str, why: &str) {
        let e = t.validate().unwrap_err();
        assert!(matches!(e, ImageError::UnsafeTarEntry { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{entry:?}")),
            "{msg} should name {entry}"
        );
        assert!(msg.contains(why), "{msg} should say {why}");
    }

    #[test]
    fn absolute_names_are_refused() {
        refused(Tar::new().dir("etc").file("/abs", b"x"), "/abs", "absolute");
    }

    #[test]
    fn dotdot_names_are_refused() {
        refused(Tar::new().file("a/../../x", b"x"), "a/../../x", "\"..\"");
        refused(Tar::new().file("a/..", b"x"), "a/..", "\"..\"");
    }

    #[test]
    fn symlinks_climbing_out_are_refused() {
        refused(
            Tar::new().dir("etc").symlink("etc/evil", "../../../tmp"),
            "etc/evil",
            "leads out of the root",
        );
        // Climbing out and back in is still out on the way.
        refused(
            Tar::new().symlink("etc/x", "../../etc/passwd"),
            "etc/x",
            "leads out",
        );
        refused(Tar::new().symlink("up", ".."), "up", "leads out");
        refused(Tar::new().symlink("none", ""), "none", "no target");
    }

    #[test]
    fn hardlinks_out_of_the_tree_are_refused() {
        refused(Tar::new().hardlink("h", "../x"), "h", "\"..\"");
        refused(Tar::new().hardlink("h", "/etc/shadow"), "h", "absolute");
        refused(
            Tar::new().symlink("a", "/tmp").hardlink("h", "a/x"),
            "h",
            "below the symlink \"a\"",
        );
    }

    #[test]
    fn writing_through_an_earlier_symlink_is_refused() {
        refused(
            Tar::new().symlink("a", "/tmp").file("a/evil", b"x"),
            "a/evil",
            "through the symlink \"a\"",
        );
        refused(
            Tar::new().dir("d").symlink("d/a", "..").dir("d/a/b"),
            "d/a/b",
            "through the symlink \"d/a\"",
        );
        refused(
            Tar::new().dir("d").symlink("./d/a", "b").dir("d/a/"),
            "d/a/",
            "through the symlink \"d/a\"",
        );
        refused(
            Tar::new().symlink("a", "/etc/passwd").file("./a", b"x"),
            "./a",
            "through the symlink",
        );
    }

    #[test]
    fn pax_and_long_names_are_checked() {
        refused(
            Tar::new().pax("path", "../../evil").file("ok", b"x"),
            "../../evil",
            "\"..\"",
        );
        refused(
            Tar::new()
                .pax("linkpath", "../../../tmp")
                .symlink("etc/ok", "ok"),
            "etc/ok",
            "leads out",
        );
        refused(
            Tar::new()
                .pax("GNU.sparse.name", "/etc/shadow")
                .file("GNUSparseFile.0/shadow", b"x"),
            "GNUSparseFile.0/shadow",
            "real name \"/etc/shadow\" is an absolute path",
        );
        // A GNU long name member carrying "..".
        let long = format!("{}/../../../x", "d".repeat(120));
        let mut t = Tar::new();
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(long.len() as u64 + 1);
        h.set_cksum();
        t.0.append(&h, format!("{long}\0").as_bytes()).unwrap();
        refused(t.file("short", b"x"), &long, "\"..\"");
    }

    #[test]
    fn a_pax_size_sets_the_data_length_as_gnu_tar_takes_it() {
        let bytes = hidden_member();
        let e = validate(&mut &bytes[..]).unwrap_err();
        assert!(matches!(e, ImageError::UnsafeTarEntry { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("\"../evil\""), "{msg}");
        assert!(msg.contains("\"..\""), "{msg}");
        // A pax size equal to the header's is what tars write for big
        // files; it changes nothing.
        let t = Tar::new().pax("size", "700").file("big", &[3u8; 700]);
        let s = t.validate().unwrap();
        assert_eq!((s.entries, s.bytes), (1, 700));
        let t = Tar::new().pax("size", "0x10").file("f", b"x");
        let msg = t.validate().unwrap_err().to_string();
        assert!(msg.contains("size"), "{msg}");
    }

    #[test]
    fn gnu_tar_sees_the_member_hidden_by_a_pax_size() {
        // Documents why the validator must honour a pax size: GNU tar
        // (which extracts) reads the bytes after "a" as a member. tar is
        // essential on Debian, so the test runs wherever the suite does.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hidden.tar");
        std::fs::write(&path, hidden_member()).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&path)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.lines().any(|l| l == "../evil"), "{listed}");
    }

    #[test]
    fn gnu_tar_sparse_files_count_at_their_real_size() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let f = File::create(root.join("holes")).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_at(b"head", 0).unwrap();
        f.write_at(b"tail", (1 << 20) - 4).unwrap();
        std::fs::write(root.join("after"), b"after").unwrap();
        for args in [
            &["--format=gnu"][..],
            &["--format=posix", "--sparse-version=0.0"],
            &["--format=posix", "--sparse-version=0.1"],
            &["--format=posix", "--sparse-version=1.0"],
        ] {
            let out = dir.path().join("t.tar");
            let st = std::process::Command::new("tar")
                .args(args)
                .arg("--sparse")
                .arg("-cf")
                .arg(&out)
                .arg("-C")
                .arg(&root)
                .args(["holes", "after"])
                .status()
                .unwrap();
            assert!(st.success(), "{args:?}");
            let bytes = std::fs::read(&out).unwrap();
            let s = validate(&mut &bytes[..]).unwrap();
            assert_eq!((s.entries, s.bytes), (2, (1 << 20) + 5), "{args:?}");
        }
    }

    #[test]
    fn links_dirs_and_devices_carry_no_data() {
        // GNU tar extracts these without reading any data, so bytes after
        // their header are read as the next member, as for a pax size=0.
        for kind in [
            EntryType::Link,
            EntryType::Symlink,
            EntryType::Char,
            EntryType::Block,
            EntryType::Directory,
            EntryType::Fifo,
        ] {
            let link = matches!(kind, EntryType::Link | EntryType::Symlink).then_some("tgt");
            let t = Tar::new().add(kind, "m", link, &hiding_data());
            refused(t, "m", "carries 1024 bytes of data");
        }
    }

    #[test]
    fn global_pax_headers_may_not_set_names_or_sizes() {
        for (key, value) in [
            ("path", "../x"),
            ("linkpath", "/tmp"),
            ("size", "0"),
            ("GNU.sparse.name", "x"),
            ("GNU.sparse.realsize", "10"),
        ] {
            let t = Tar::new().pax_global(key, value).file("f", b"x");
            refused(
                t,
                "pax_global_hd",
                &format!("a global pax header setting {key}, which imgbase refuses"),
            );
        }
        let t = Tar::new()
            .pax_global("comment", "built by mkimage")
            .pax_global("mtime", "1700000000")
            .file("f", b"x");
        assert_eq!(t.validate().unwrap().entries, 1);
    }

    #[test]
    fn the_root_itself_only_as_a_directory() {
        assert_eq!(Tar::new().dir(".").dir("./").validate().unwrap().entries, 2);
        refused(Tar::new().file("./", b"x"), "./", "root directory");
    }

    #[test]
    fn broken_streams_are_errors() {
        let mut bytes = good_tree().bytes();
        bytes[700] ^= 0xff; // a header checksum no longer matches
        let e = validate(&mut &bytes[..]).unwrap_err();
        assert!(matches!(e, ImageError::Tar { .. }), "{e:?}");
        let bytes = good_tree().bytes();
        let e = validate(&mut &bytes[..2000]).unwrap_err();
        assert!(matches!(e, ImageError::Tar { .. }), "{e:?}");
    }

    #[test]
    fn open_decompresses_every_compression() {
        let tar = good_tree().bytes();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("root.tar");
        std::fs::write(&plain, &tar).unwrap();
        let gz = dir.path().join("root.tgz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&tar).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let zst = dir.path().join("root.tzst");
        std::fs::write(&zst, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
        for (p, c) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let mut r = open(p, c).unwrap();
            assert_eq!(validate(&mut r).unwrap().entries, 17, "{c:?}");
        }
    }

    #[test]
    fn pax_values_may_hold_any_byte() {
        // GNU tar --xattrs writes binary values; a newline inside one must
        // not end the record (the tar crate's parser trips on this).
        let t = Tar::new()
            .pax("SCHILY.xattr.user.blob", "line one\nline two\n")
            .file("etc/f", b"x");
        assert_eq!(t.validate().unwrap().entries, 1);
    }

    #[test]
    fn an_archive_without_its_end_marker_is_truncated() {
        let mut bytes = good_tree().bytes();
        // Drop the two zero blocks (and builder padding) at the end.
        while bytes.ends_with(&[0u8; 512]) {
            bytes.truncate(bytes.len() - 512);
        }
        let err = validate(&mut bytes.as_slice()).unwrap_err().to_string();
        assert!(err.contains("ends in the middle"), "{err}");
    }

    #[test]
    fn a_member_is_read_in_the_same_pass() {
        let bytes = Tar::new()
            .dir("usr")
            .file("./usr/share/imgbase/build/meta/nvr", b"Node-4.5-0\n")
            .file("big", &[7u8; 3000])
            .bytes();
        let (summary, found) =
            validate_and_read(&mut bytes.as_slice(), "usr/share/imgbase/build/meta/nvr").unwrap();
        assert_eq!(found.as_deref(), Some(&b"Node-4.5-0\n"[..]));
        assert_eq!(summary.bytes, 11 + 3000);
    }

    #[test]
    fn a_corrupt_header_is_an_error() {
        let mut bytes = good_tree().bytes();
        bytes[10] ^= 0x55;
        let err = validate(&mut bytes.as_slice()).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_corrupt_compressed_trailer_is_caught_by_validation() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&good_tree().bytes()).unwrap();
        let mut bytes = gz.finish().unwrap();
        // The CRC32 sits in the last 8 bytes of a gzip member.
        let n = bytes.len();
        bytes[n - 6] ^= 0xff;
        let mut r = flate2::read::MultiGzDecoder::new(bytes.as_slice());
        assert!(validate(&mut r).is_err());
    }
}
