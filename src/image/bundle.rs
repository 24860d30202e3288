//! imgbase's own distribution format: a zstd-compressed tar holding, in
//! this order, `manifest.json` and `image.raw` (a raw filesystem image, as
//! a plain member: zstd squeezes its runs of zeros to almost nothing).
//!
//! The manifest comes first so that the name, size and digest are known
//! after reading a few hundred bytes, before the image streams into a new
//! base; the image is read once, straight from the decompressor.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::EntryType;

use super::ImageError;
use super::digest::{HashingReader, hex, parse_sha256};
use crate::model::names::Nvr;

/// The only bundle format this imgbase reads and writes.
pub const FORMAT: u32 = 1;
pub const MANIFEST_NAME: &str = "manifest.json";
pub const IMAGE_NAME: &str = "image.raw";
/// A manifest is a few hundred bytes; anything near this is not one.
const MAX_MANIFEST: u64 = 1 << 20;
const ZSTD_LEVEL: i32 = 3;

/// What a bundle says about its image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: u32,
    pub name: String,
    pub version: String,
    pub release: String,
    /// Lowercase hex sha256 of image.raw's bytes.
    pub sha256: String,
    /// Bytes of image.raw.
    pub size: u64,
    /// The filesystem in image.raw ("ext4", "xfs"), if the writer knew it.
    #[serde(default)]
    pub fs_type: Option<String>,
}

impl Manifest {
    /// The base name the bundle proposes: `name-version-release`.
    pub fn nvr(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.release)
    }

    /// Name, version and release must join into an NVR that splits back
    /// into the same three parts.
    fn check_nvr(&self) -> Result<(), String> {
        let joined = self.nvr();
        match joined.parse::<Nvr>() {
            Ok(n)
                if n.name == self.name
                    && n.version == self.version
                    && n.release == self.release =>
            {
                Ok(())
            }
            Ok(_) => Err(format!(
                "version {:?} and release {:?} must not contain '-'",
                self.version, self.release
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One tar member, with the stream left at the start of its data.
struct Member {
    name: Vec<u8>,
    size: u64,
    kind: EntryType,
}

impl Member {
    /// The name without a leading "./", for display and comparison.
    fn name(&self) -> String {
        let n = self.name.strip_prefix(b"./").unwrap_or(&self.name);
        String::from_utf8_lossy(n).into_owned()
    }

    fn is_file(&self) -> bool {
        matches!(self.kind, EntryType::Regular | EntryType::Continuous)
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Padding after `size` bytes of member data, up to the next 512 bytes.
fn padding(size: u64) -> u64 {
    (512 - size % 512) % 512
}

fn skip(r: &mut dyn Read, n: u64) -> io::Result<()> {
    let skipped = io::copy(&mut r.take(n), &mut io::sink())?;
    if skipped < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Read a member's (small) data and its padding.
fn read_small(r: &mut dyn Read, size: u64) -> io::Result<Vec<u8>> {
    if size > MAX_MANIFEST {
        return Err(invalid(format!("a {size}-byte extension header")));
    }
    let mut data = vec![0u8; size as usize];
    r.read_exact(&mut data)?;
    skip(r, padding(size))?;
    Ok(data)
}

/// The next real member of a tar stream, read by hand so the stream can be
/// handed on positioned at the member's data. Pax (`x`) records for
/// `path` and `size`, pax global headers and GNU long names are handled as
/// GNU tar handles them. None at the end of the archive.
fn next_member(r: &mut dyn Read) -> io::Result<Option<Member>> {
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    loop {
        let mut header = tar::Header::new_old();
        let block = header.as_mut_bytes();
        let mut got = 0;
        while got < block.len() {
            match r.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got == 0 || block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if got < block.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let sum: u32 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u32
                }
            })
            .sum();
        if header.cksum().ok() != Some(sum) {
            return Err(invalid("not a tar header (bad checksum)"));
        }
        let size = header.entry_size()?;
        let kind = header.entry_type();
        if kind.is_pax_local_extensions() {
            let data = read_small(r, size)?;
            for ext in tar::PaxExtensions::new(&data) {
                let ext = ext?;
                match ext.key_bytes() {
                    b"path" => pax_path = Some(ext.value_bytes().to_vec()),
                    b"size" => {
                        let v = ext.value().ok().and_then(|v| v.parse().ok());
                        pax_size = Some(v.ok_or_else(|| invalid("a bad pax size record"))?);
                    }
                    _ => {}
                }
            }
        } else if kind.is_gnu_longname() {
            let mut data = read_small(r, size)?;
            while data.last() == Some(&0) {
                data.pop();
            }
            long_name = Some(data);
        } else if kind.is_pax_global_extensions() || kind.is_gnu_longlink() {
            skip(r, size + padding(size))?;
        } else {
            let name = long_name
                .or(pax_path)
                .unwrap_or_else(|| header.path_bytes().into_owned());
            return Ok(Some(Member {
                name,
                size: pax_size.unwrap_or(size),
                kind,
            }));
        }
    }
}

/// Whether a decompressed tar prefix starts with a `manifest.json` member:
/// what makes a `.tar.zst` a bundle.
pub(crate) fn starts_with_manifest(tar_prefix: &[u8]) -> bool {
    matches!(next_member(&mut &tar_prefix[..]), Ok(Some(m)) if m.name() == MANIFEST_NAME)
}

type Decoder = zstd::Decoder<'static, BufReader<File>>;

/// Parse and check a manifest's bytes.
fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, ImageError> {
    let bad = |reason: String| ImageError::BadBundle {
        path: path.to_path_buf(),
        reason,
    };
    // The format number first: a newer format may change everything else.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("{MANIFEST_NAME} is not JSON: {e}")))?;
    let format = value
        .get("format")
        .ok_or_else(|| bad(format!("{MANIFEST_NAME} has no format number")))?;
    let format = format
        .as_u64()
        .ok_or_else(|| bad(format!("{MANIFEST_NAME} has a bad format number {format}")))?;
    if format != u64::from(FORMAT) {
        return Err(ImageError::BundleFormat {
            path: path.to_path_buf(),
            format: u32::try_from(format).unwrap_or(u32::MAX),
            supported: FORMAT,
        });
    }
    let mut m: Manifest =
        serde_json::from_value(value).map_err(|e| bad(format!("{MANIFEST_NAME}: {e}")))?;
    m.sha256 = parse_sha256(&m.sha256)
        .map_err(|_| bad(format!("{MANIFEST_NAME}: bad sha256 {:?}", m.sha256)))?;
    m.check_nvr()
        .map_err(|e| bad(format!("{MANIFEST_NAME}: {e}")))?;
    Ok(m)
}

/// The manifest, and the decompressed stream positioned just after it.
fn read_head(path: &Path) -> Result<(Manifest, Decoder), ImageError> {
    let bad = |reason: String| ImageError::BadBundle {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(ImageError::io("open", path))?;
    let mut dec = zstd::Decoder::new(file).map_err(ImageError::io("read", path))?;
    let unreadable = |e: io::Error| bad(format!("cannot read it as a zstd-compressed tar: {e}"));
    let first = next_member(&mut dec)
        .map_err(unreadable)?
        .ok_or_else(|| bad("the archive is empty".into()))?;
    if first.name() != MANIFEST_NAME || !first.is_file() {
        return Err(bad(format!(
            "its first member is {:?}, not the file {MANIFEST_NAME}",
            first.name()
        )));
    }
    if first.size > MAX_MANIFEST {
        return Err(bad(format!("{MANIFEST_NAME} is {} bytes long", first.size)));
    }
    let bytes = read_small(&mut dec, first.size).map_err(unreadable)?;
    Ok((parse_manifest(path, &bytes)?, dec))
}

/// Read and check a bundle's manifest: refuses unknown format numbers,
/// missing fields, bad digest syntax and NVRs that do not split back.
pub fn read_manifest(path: &Path) -> Result<Manifest, ImageError> {
    read_head(path).map(|(m, _)| m)
}

/// A stream of image.raw's bytes (positioned after the manifest), and the
/// manifest.
///
/// The stream verifies itself: when read to its end it fails with an
/// error if the bundle was truncated or the bytes do not match the
/// manifest's sha256 (io::ErrorKind::UnexpectedEof / InvalidData), so a
/// copy that reads until EOF has checked the digest. It decompresses as it
/// is read; nothing else blocks.
pub fn open_image(path: &Path) -> Result<(Manifest, Box<dyn Read>), ImageError> {
    let bad = |reason: String| ImageError::BadBundle {
        path: path.to_path_buf(),
        reason,
    };
    let (m, mut dec) = read_head(path)?;
    let second = next_member(&mut dec)
        .map_err(|e| bad(format!("cannot read the member after {MANIFEST_NAME}: {e}")))?
        .ok_or_else(|| bad(format!("it holds no {IMAGE_NAME}")))?;
    if second.name() != IMAGE_NAME || !second.is_file() {
        return Err(bad(format!(
            "its second member is {:?}, not the file {IMAGE_NAME}",
            second.name()
        )));
    }
    if second.size != m.size {
        return Err(bad(format!(
            "{IMAGE_NAME} holds {} bytes but the manifest says {}",
            second.size, m.size
        )));
    }
    let reader = VerifyingReader {
        inner: dec.take(m.size),
        hasher: Some(Sha256::new()),
        done: 0,
        size: m.size,
        expected: m.sha256.clone(),
        path: path.to_path_buf(),
    };
    Ok((m, Box::new(reader)))
}

/// image.raw's bytes, checked against the manifest at the end.
struct VerifyingReader {
    inner: io::Take<Decoder>,
    /// None once the end was reached and checked.
    hasher: Option<Sha256>,
    done: u64,
    size: u64,
    expected: String,
    path: PathBuf,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(n);
        };
        if n > 0 {
            hasher.update(&buf[..n]);
            self.done += n as u64;
            return Ok(n);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let path = self.path.display();
        if self.done < self.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the bundle {path} ends after {} of {IMAGE_NAME}'s {} bytes: it is \
                     truncated; fetch it again",
                    self.done, self.size
                ),
            ));
        }
        let actual = hex(&self.hasher.take().expect("checked above").finalize());
        if actual != self.expected {
            return Err(invalid(format!(
                "{IMAGE_NAME} in {path} has sha256 {actual}, its manifest says {}: the \
                 bundle is corrupt; fetch it again",
                self.expected
            )));
        }
        Ok(0)
    }
}

/// Reports how far the two passes over the raw image have come together,
/// halved so that it ends at the image's size.
struct Progress<'p, R> {
    inner: R,
    base: u64,
    done: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)((self.base + self.done) / 2);
        Ok(n)
    }
}

/// Write a bundle: the manifest, then `size` bytes read from `raw` (a
/// block device or file).
///
/// The digest must be in the manifest, which comes first, so `raw` is read
/// twice: once to compute the sha256, once to compress it; if the second
/// read differs (something wrote to the device meanwhile) nothing is left
/// behind. `format`, `sha256` and `size` of the given manifest are filled
/// in. The bundle is written to a temporary file beside `out`, synced and
/// renamed into place, so `out` is never half-written. zstd level 3, on up
/// to 8 threads. progress(n) covers both passes, each counting half: it
/// rises from 0 to `size`. Blocks for the whole time; reading a device
/// needs the right to open it. An existing `out` is replaced.
pub fn write_bundle(
    out: &Path,
    manifest_without_digest: Manifest,
    raw: &Path,
    size: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<Manifest, ImageError> {
    let mut m = manifest_without_digest;
    m.format = FORMAT;
    m.size = size;
    m.check_nvr().map_err(|reason| ImageError::BadBundle {
        path: out.to_path_buf(),
        reason: format!("its manifest would be invalid: {reason}"),
    })?;
    let read_err = ImageError::io("read", raw);
    let short = |n: u64| {
        ImageError::io("read", raw)(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("it holds only {n} of the {size} bytes to bundle"),
        ))
    };

    // Pass 1: the digest.
    let file = File::open(raw).map_err(ImageError::io("open", raw))?;
    let mut hashing = HashingReader::new(Progress {
        inner: BufReader::with_capacity(1 << 20, file).take(size),
        base: 0,
        done: 0,
        progress: &mut *progress,
    });
    io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
    if hashing.bytes_read() < size {
        return Err(short(hashing.bytes_read()));
    }
    m.sha256 = hashing.finish();

    // Pass 2: the archive, into a temporary file beside `out`.
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let write_err = ImageError::io("write", out);
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(ImageError::io("create a temporary file in", &dir))?;
    let mut enc = zstd::Encoder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()), ZSTD_LEVEL)
        .map_err(ImageError::io("write", out))?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) as u32;
    if workers > 1 {
        // Single-threaded output is just as valid, so a failure is no error.
        let _ = enc.multithread(workers);
    }
    enc.include_checksum(true)
        .map_err(ImageError::io("write", out))?;

    let mut tar = tar::Builder::new(enc);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = |name: &str, len: u64| -> io::Result<tar::Header> {
        let mut h = tar::Header::new_gnu();
        h.set_path(name)?;
        h.set_entry_type(EntryType::Regular);
        h.set_size(len);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_cksum();
        Ok(h)
    };
    let mut json = serde_json::to_vec_pretty(&m).expect("a manifest serialises");
    json.push(b'\n');
    let h = header(MANIFEST_NAME, json.len() as u64).map_err(ImageError::io("write", out))?;
    tar.append(&h, &json[..])
        .map_err(ImageError::io("write", out))?;

    let file = File::open(raw).map_err(ImageError::io("open", raw))?;
    let mut hashing = HashingReader::new(Progress {
        inner: BufReader::with_capacity(1 << 20, file).take(size),
        base: size,
        done: 0,
        progress: &mut *progress,
    });
    let h = header(IMAGE_NAME, size).map_err(ImageError::io("write", out))?;
    tar.append(&h, &mut hashing)
        .map_err(ImageError::io("write", out))?;
    if hashing.bytes_read() != size || hashing.finish() != m.sha256 {
        return Err(ImageError::io("bundle", raw)(io::Error::other(
            "it changed while being read: make sure nothing writes to it (unmount it or mount \
             it read-only) and try again",
        )));
    }
    let enc = tar.into_inner().map_err(ImageError::io("write", out))?;
    let mut buffered = enc.finish().map_err(ImageError::io("write", out))?;
    buffered.flush().map_err(ImageError::io("write", out))?;
    drop(buffered);

    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(ImageError::io("write", out))?;
    tmp.persist(out).map_err(|e| write_err(e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io("sync", &dir))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::detect::{Compression, Format, sniff};
    use std::os::unix::fs::PermissionsExt;

    fn manifest() -> Manifest {
        Manifest {
            format: 0,
            name: "ovirt-node-ng".into(),
            version: "4.5.0".into(),
            release: "0.1".into(),
            sha256: String::new(),
            size: 0,
            fs_type: Some("ext4".into()),
        }
    }

    /// A raw image that is mostly zeros and not a multiple of 512 long.
    fn raw_bytes() -> Vec<u8> {
        let mut v = vec![0u8; 3 * (1 << 20) + 77];
        v[..4].copy_from_slice(b"data");
        v[2 << 20] = 9;
        *v.last_mut().unwrap() = 1;
        v
    }

    fn read_to_end(r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let bytes = raw_bytes();
        std::fs::write(&raw, &bytes).unwrap();
        // Only the first `size` bytes are bundled.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"not part of it");
        std::fs::write(&raw, &longer).unwrap();
        let size = bytes.len() as u64;
        let out = dir.path().join("node.imgbase");
        let mut seen = Vec::new();
        let m = write_bundle(&out, manifest(), &raw, size, &mut |n| seen.push(n)).unwrap();

        assert_eq!(m.format, FORMAT);
        assert_eq!(m.size, size);
        assert_eq!(m.sha256, hex(&Sha256::digest(&bytes)));
        assert_eq!(m.nvr(), "ovirt-node-ng-4.5.0-0.1");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress went back");
        assert_eq!(seen.last(), Some(&size));
        // Mostly zeros compress to almost nothing.
        let meta = std::fs::metadata(&out).unwrap();
        assert!(meta.len() < 64 * 1024, "{} bytes", meta.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "a temporary file was left behind");

        assert_eq!(read_manifest(&out).unwrap(), m);
        let (m2, mut image) = open_image(&out).unwrap();
        assert_eq!(m2, m);
        assert!(read_to_end(&mut image).unwrap() == bytes);
        assert_eq!(sniff(&out).unwrap(), Format::Bundle);
    }

    #[test]
    fn gnu_tar_reads_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let bytes = raw_bytes();
        std::fs::write(&raw, &bytes).unwrap();
        let out = dir.path().join("b.tar.zst");
        write_bundle(&out, manifest(), &raw, bytes.len() as u64, &mut |_| {}).unwrap();
        let x = dir.path().join("x");
        std::fs::create_dir(&x).unwrap();
        let status = std::process::Command::new("tar")
            .arg("--zstd")
            .arg("-xf")
            .arg(&out)
            .arg("-C")
            .arg(&x)
            .status()
            .expect("tar is missing: install the tar package");
        assert!(status.success());
        assert!(std::fs::read(x.join(IMAGE_NAME)).unwrap() == bytes);
        let m: Manifest =
            serde_json::from_slice(&std::fs::read(x.join(MANIFEST_NAME)).unwrap()).unwrap();
        assert_eq!(m.size, bytes.len() as u64);
    }

    #[test]
    fn a_raw_shorter_than_size_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [1u8; 1000]).unwrap();
        let out = dir.path().join("b");
        let e = write_bundle(&out, manifest(), &raw, 2000, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("only 1000 of the 2000 bytes"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_invalid_nvr_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [1u8; 10]).unwrap();
        let mut m = manifest();
        m.release = "0-1".into();
        let e = write_bundle(&dir.path().join("b"), m, &raw, 10, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("must not contain '-'"), "{e}");
    }

    /// A zstd-compressed tar of the given members, made by hand.
    fn zstd_tar(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let p = dir.join("bundle");
        std::fs::write(&p, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
        p
    }

    fn json(m: &Manifest) -> Vec<u8> {
        serde_json::to_vec(m).unwrap()
    }

    fn valid() -> Manifest {
        let mut m = manifest();
        m.format = 1;
        m.size = 3;
        m.sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into();
        m
    }

    fn bad_bundle(members: &[(&str, &[u8])], why: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = zstd_tar(dir.path(), members);
        let e = open_image(&p).err().expect("refused");
        assert!(matches!(e, ImageError::BadBundle { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("is not a valid imgbase bundle"), "{msg}");
        assert!(msg.contains(why), "{msg} should say {why}");
    }

    #[test]
    fn a_hand_made_bundle_reads_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let m = valid();
        let p = zstd_tar(
            dir.path(),
            &[("./manifest.json", &json(&m)), ("image.raw", b"abc")],
        );
        assert_eq!(read_manifest(&p).unwrap(), m);
        let (_, mut r) = open_image(&p).unwrap();
        assert_eq!(read_to_end(&mut r).unwrap(), b"abc");
        // A digest in capitals is normalised.
        let mut upper = valid();
        upper.sha256 = upper.sha256.to_uppercase();
        let p = zstd_tar(dir.path(), &[("manifest.json", &json(&upper))]);
        assert_eq!(read_manifest(&p).unwrap(), m);
    }

    #[test]
    fn corrupted_manifests_are_refused() {
        bad_bundle(&[("manifest.json", b"{not json")], "not JSON");
        bad_bundle(&[("manifest.json", b"{}")], "no format number");
        bad_bundle(
            &[("manifest.json", br#"{"format": 1, "name": "n"}"#)],
            "missing field",
        );
        let mut m = valid();
        m.sha256 = "xyz".into();
        bad_bundle(&[("manifest.json", &json(&m))], "bad sha256");
        let mut m = valid();
        m.version = String::new();
        bad_bundle(&[("manifest.json", &json(&m))], "manifest.json");
    }

    #[test]
    fn an_unknown_format_number_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = zstd_tar(dir.path(), &[("manifest.json", br#"{"format": 2}"#)]);
        let e = read_manifest(&p).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::BundleFormat {
                    format: 2,
                    supported: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("newer imgbase"), "{e}");
    }

    #[test]
    fn members_in_the_wrong_order_or_size() {
        let m = json(&valid());
        bad_bundle(
            &[("image.raw", b"abc"), ("manifest.json", &m)],
            "first member is \"image.raw\"",
        );
        bad_bundle(&[("manifest.json", &m)], "holds no image.raw");
        bad_bundle(
            &[("manifest.json", &m), ("other", b"abc")],
            "second member is \"other\"",
        );
        bad_bundle(
            &[("manifest.json", &m), ("image.raw", b"abcd")],
            "image.raw holds 4 bytes but the manifest says 3",
        );
    }

    #[test]
    fn a_zstd_tar_not_starting_with_the_manifest_is_a_tar() {
        let dir = tempfile::tempdir().unwrap();
        let p = zstd_tar(
            dir.path(),
            &[
                ("etc/hostname", b"node\n"),
                ("manifest.json", &json(&valid())),
            ],
        );
        assert_eq!(
            sniff(&p).unwrap(),
            Format::Tar {
                compression: Compression::Zstd
            }
        );
        assert!(read_manifest(&p).is_err());
    }

    #[test]
    fn wrong_bytes_fail_at_the_end_of_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = zstd_tar(
            dir.path(),
            &[("manifest.json", &json(&valid())), ("image.raw", b"abd")],
        );
        let (_, mut r) = open_image(&p).unwrap();
        let e = read_to_end(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("corrupt"), "{e}");
    }

    #[test]
    fn a_truncated_bundle_fails() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        // Incompressible data so that cutting the file cuts the image.
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&raw, &bytes).unwrap();
        let out = dir.path().join("b");
        write_bundle(&out, manifest(), &raw, bytes.len() as u64, &mut |_| {}).unwrap();
        let len = std::fs::metadata(&out).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&out)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        // Where it fails depends on how zstd framed the data.
        let failed = match open_image(&out) {
            Err(ImageError::BadBundle { .. }) => true,
            Err(e) => panic!("{e:?}"),
            Ok((_, mut r)) => read_to_end(&mut r).is_err(),
        };
        assert!(failed);
    }

    #[test]
    fn a_stream_that_ends_early_says_truncated() {
        // A well-formed zstd frame holding a tar cut inside image.raw.
        let mut m = valid();
        m.size = 1000;
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [(MANIFEST_NAME, json(&m)), (IMAGE_NAME, vec![7u8; 1000])] {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).unwrap();
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        // Before the two end blocks and image.raw padded to 1024 bytes.
        let cut = tar.len() - 1024 - 1024 + 400;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        std::fs::write(&p, zstd::encode_all(&tar[..cut], 3).unwrap()).unwrap();
        let (_, mut r) = open_image(&p).unwrap();
        let e = read_to_end(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            e.to_string()
                .contains("after 400 of image.raw's 1000 bytes"),
            "{e}"
        );
    }

    #[test]
    fn member_headers_with_large_sizes_and_pax_records() {
        let mut h = tar::Header::new_gnu();
        h.set_path("image.raw").unwrap();
        h.set_size(9 << 30); // beyond ustar's octal field: base-256
        h.set_cksum();
        let m = next_member(&mut &h.as_bytes()[..]).unwrap().unwrap();
        assert_eq!((m.name(), m.size), ("image.raw".to_string(), 9 << 30));

        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", &b"manifest.json"[..]), ("size", b"3")])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/x").unwrap();
        h.set_size(3);
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert!(starts_with_manifest(&tar));
        let mut r = &tar[..];
        let m = next_member(&mut r).unwrap().unwrap();
        assert_eq!((m.name(), m.size), (MANIFEST_NAME.to_string(), 3));
        assert_eq!(&r[..3], b"abc");
    }
}
