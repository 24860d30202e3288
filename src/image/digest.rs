//! SHA-256 of images: of whole files, of streams as they pass, and the
//! expected value from a user or a `SHA256SUMS` file beside the image.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImageError;

/// Reads of 1 MiB keep syscalls few without a large buffer.
const CHUNK: usize = 1 << 20;

/// Lowercase hex of some bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Lowercase hex sha256 of a file, streaming in 1 MiB reads, calling
/// progress(bytes_done_so_far) after each read.
pub fn sha256_file(path: &Path, progress: &mut dyn FnMut(u64)) -> io::Result<String> {
    sha256_read(&mut File::open(path)?, CHUNK, progress)
}

/// Lowercase hex sha256 of what `r` yields, in reads of `chunk` bytes (a
/// small chunk for many small files: the buffer is zeroed each call).
pub(crate) fn sha256_read(
    r: &mut dyn Read,
    chunk: usize,
    progress: &mut dyn FnMut(u64),
) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; chunk];
    let mut done = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(hex(&hasher.finalize()))
}

/// Normalise a user-given digest: 64 hex chars, any case (optionally
/// prefixed "sha256:"), else ImageError::BadDigest.
pub fn parse_sha256(s: &str) -> Result<String, ImageError> {
    let t = s.trim();
    let t = match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256:") => &t[7..],
        _ => t,
    };
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(ImageError::BadDigest(s.to_string()))
    }
}

/// The expected digest of `image` from a `SHA256SUMS` file in the same
/// directory, if that file exists and names the image's file name.
///
/// Accepts both sha256sum formats, `<hex>  name` and `<hex> *name` (with
/// sha256sum's backslash escaping), and BSD `SHA256 (name) = <hex>`; a
/// leading `./` on the name is ignored. Lines that are neither (comments,
/// an OpenPGP clearsign wrapper) are skipped, so signed sums files work.
/// Ok(None) if there is no SHA256SUMS file; Err if the file exists but does
/// not list the image, or lists it twice with different digests.
pub fn digest_from_sums(image: &Path) -> Result<Option<String>, ImageError> {
    let name = image
        .file_name()
        .ok_or_else(|| ImageError::UnknownFormat {
            path: image.to_path_buf(),
            detail: "not a file name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let dir = match image.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let sums = dir.join("SHA256SUMS");
    let text = match std::fs::read(&sums) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io("read", &sums)(e)),
    };
    match lookup(&text, &name) {
        Ok(Some(d)) => Ok(Some(d)),
        Ok(None) => Err(ImageError::NotInSums { sums, name }),
        Err(reason) => Err(ImageError::BadSums { sums, reason }),
    }
}

/// The digest the text of a `SHA256SUMS` file gives for the file `name`,
/// in any of the formats [`digest_from_sums`] accepts; None if it does not
/// list the name, or lists it with a malformed digest or twice with
/// different digests (for sums fetched beside a URL, where there is no
/// file to name in an error).
pub fn digest_in_sums(sums: &str, name: &str) -> Option<String> {
    lookup(sums, name).ok().flatten()
}

/// The digest listed for `name`; Err says why the listing is unusable.
fn lookup(text: &str, name: &str) -> Result<Option<String>, String> {
    let mut found: Option<String> = None;
    for line in text.lines() {
        let Some((hex, entry)) = parse_sums_line(line) else {
            continue;
        };
        if entry.strip_prefix("./").unwrap_or(&entry) != name {
            continue;
        }
        let digest = parse_sha256(hex)
            .map_err(|_| format!("the entry for {name} has a malformed digest {hex:?}"))?;
        match &found {
            Some(prev) if *prev != digest => {
                return Err(format!("lists {name} twice with different digests"));
            }
            _ => found = Some(digest),
        }
    }
    Ok(found)
}

/// (digest text, file name) of one line of a sums file, or None.
fn parse_sums_line(line: &str) -> Option<(&str, String)> {
    let line = line.trim_end_matches('\r');
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (name, hex) = rest.rsplit_once(") = ")?;
        return Some((hex.trim(), name.to_string()));
    }
    // sha256sum escapes names holding '\\' or '\n' and marks the line with
    // a leading backslash.
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(l) => (true, l),
        None => (false, line),
    };
    let (hex, rest) = line.split_once(' ')?;
    if hex.len() != 64 {
        return None;
    }
    let name = rest.strip_prefix([' ', '*'])?;
    if name.is_empty() {
        return None;
    }
    let name = if escaped {
        unescape(name)
    } else {
        name.to_string()
    };
    Some((hex, name))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A reader that computes the sha256 of everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// How many bytes have passed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Lowercase hex sha256 of the bytes read.
    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vector_file_and_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let mut seen = Vec::new();
        assert_eq!(sha256_file(&p, &mut |n| seen.push(n)).unwrap(), ABC);
        assert_eq!(seen, vec![3]);

        let mut r = HashingReader::new(&b"abc"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.bytes_read(), 3);
        assert_eq!(r.finish(), ABC);
    }

    #[test]
    fn large_file_reports_progress_per_mib() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let data = vec![7u8; 3 * CHUNK + 5];
        std::fs::write(&p, &data).unwrap();
        let mut last = 0;
        let mut calls = 0;
        let d = sha256_file(&p, &mut |n| {
            assert!(n > last);
            last = n;
            calls += 1;
        })
        .unwrap();
        assert_eq!(last, data.len() as u64);
        assert!(calls >= 4);
        assert_eq!(d, hex(&Sha256::digest(&data)));
    }

    #[test]
    fn parse_user_digests() {
        assert_eq!(parse_sha256(ABC).unwrap(), ABC);
        assert_eq!(parse_sha256(&ABC.to_uppercase()).unwrap(), ABC);
        assert_eq!(parse_sha256(&format!("sha256:{ABC}")).unwrap(), ABC);
        assert_eq!(parse_sha256(&format!("SHA256:{ABC}\n")).unwrap(), ABC);
        for bad in [
            "",
            "abc",
            &ABC[1..],
            &format!("{ABC}0"),
            &format!("md5:{ABC}"),
            &ABC.replace('b', "g"),
        ] {
            let e = parse_sha256(bad).unwrap_err();
            assert!(matches!(e, ImageError::BadDigest(_)), "{bad}");
            assert!(e.to_string().contains("64 hex digits"), "{e}");
        }
    }

    fn image_with_sums(sums: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("node.qcow2");
        std::fs::write(&img, b"abc").unwrap();
        std::fs::write(dir.path().join("SHA256SUMS"), sums).unwrap();
        (dir, img)
    }

    #[test]
    fn sums_in_every_format() {
        let other = "0".repeat(64);
        for sums in [
            format!("{other}  other.iso\n{ABC}  node.qcow2\n"),
            format!("{other} *other.iso\n{} *node.qcow2\n", ABC.to_uppercase()),
            format!("{ABC}  ./node.qcow2\r\n"),
            format!("# comment\nSHA256 (other.iso) = {other}\nSHA256 (node.qcow2) = {ABC}\n"),
            format!(
                "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n\
                 SHA256 (node.qcow2) = {ABC}\n-----BEGIN PGP SIGNATURE-----\nxyz\n"
            ),
        ] {
            let (_dir, img) = image_with_sums(&sums);
            assert_eq!(
                digest_from_sums(&img).unwrap().as_deref(),
                Some(ABC),
                "{sums}"
            );
        }
    }

    #[test]
    fn sums_text_lookup() {
        let text = format!(
            "{ABC}  a.img\nSHA256 (b.img) = {ABC}\n{}  bad.img\n",
            &ABC[..10]
        );
        assert_eq!(digest_in_sums(&text, "a.img").as_deref(), Some(ABC));
        assert_eq!(digest_in_sums(&text, "b.img").as_deref(), Some(ABC));
        assert_eq!(digest_in_sums(&text, "c.img"), None);
        assert_eq!(digest_in_sums(&text, "bad.img"), None);
    }

    #[test]
    fn escaped_names() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a\\b");
        std::fs::write(dir.path().join("SHA256SUMS"), format!("\\{ABC}  a\\\\b\n")).unwrap();
        assert_eq!(digest_from_sums(&img).unwrap().as_deref(), Some(ABC));
    }

    #[test]
    fn no_sums_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("node.qcow2");
        assert_eq!(digest_from_sums(&img).unwrap(), None);
    }

    #[test]
    fn sums_without_the_image_is_an_error() {
        let (_dir, img) = image_with_sums(&format!("{ABC}  other.qcow2\n"));
        let e = digest_from_sums(&img).unwrap_err();
        assert!(matches!(e, ImageError::NotInSums { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("does not list node.qcow2"), "{msg}");
        assert!(msg.contains("SHA256SUMS"), "{msg}");
    }

    #[test]
    fn sums_with_bad_or_conflicting_entries() {
        let (_dir, img) = image_with_sums(&format!("SHA256 (node.qcow2) = {}\n", &ABC[..60]));
        let e = digest_from_sums(&img).unwrap_err().to_string();
        assert!(e.contains("malformed digest"), "{e}");

        let other = "1".repeat(64);
        let (_dir, img) = image_with_sums(&format!("{ABC}  node.qcow2\n{other}  node.qcow2\n"));
        let e = digest_from_sums(&img).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
