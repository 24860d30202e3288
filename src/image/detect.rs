//! What an image file is, told by its content and never by its name: a
//! downloaded file is often renamed, and a wrong guess would write garbage
//! into a new base.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::ImageError;
use super::bundle;

/// How a tar root tree is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The kinds of image a base can be filled from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum Format {
    /// A squashfs 4 image (a liveimg, whose root is an ext4/xfs image).
    Squashfs,
    /// A bare filesystem image: "ext2", "ext3", "ext4" or "xfs".
    Filesystem { fs: String },
    /// A virtual disk that qemu-img reads, named as qemu-img spells it:
    /// "qcow2", "vmdk", "vhdx", "vdi" or "vpc".
    Disk { qemu_format: String },
    /// A root tree as a tar archive.
    Tar { compression: Compression },
    /// imgbase's own bundle (see [`super::bundle`]).
    Bundle,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Squashfs => write!(f, "squashfs image"),
            Format::Filesystem { fs } => write!(f, "{fs} filesystem image"),
            Format::Disk { qemu_format } => write!(f, "{qemu_format} disk image"),
            Format::Tar {
                compression: Compression::None,
            } => write!(f, "tar archive"),
            Format::Tar {
                compression: Compression::Gzip,
            } => write!(f, "gzip-compressed tar archive"),
            Format::Tar {
                compression: Compression::Zstd,
            } => write!(f, "zstd-compressed tar archive"),
            Format::Bundle => write!(f, "imgbase bundle"),
        }
    }
}

/// Enough of the start for every signature checked (ISO 9660's is at 32 KiB).
const HEAD: usize = 64 * 1024;
/// How much of a compressed file to decompress to look inside.
const PEEK: u64 = 16 * 1024;

/// The format of the image at `path` (a file or a block device), from its
/// first bytes (and its last 512, where a fixed-size VHD keeps its
/// footer). Compressed files are decompressed only as far as the first tar
/// header. A file too short for the format it starts like, or whose
/// filesystem claims more bytes than the file holds, is refused as
/// truncated.
pub fn sniff(path: &Path) -> Result<Format, ImageError> {
    let mut file = File::open(path).map_err(ImageError::io("open", path))?;
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(ImageError::io("read", path))?;
    let mut head = vec![0u8; HEAD];
    let n = read_at_most(&file, &mut head, 0).map_err(ImageError::io("read", path))?;
    head.truncate(n);
    let mut tail = [0u8; 512];
    let has_tail = len >= 1024
        && read_at_most(&file, &mut tail, len - 512).map_err(ImageError::io("read", path))? == 512;
    let unknown = |detail: String| ImageError::UnknownFormat {
        path: path.to_path_buf(),
        detail,
    };
    let class =
        classify(&head, len.max(n as u64), has_tail.then_some(&tail[..])).map_err(unknown)?;
    let compression = match class {
        Class::Known(f) => return Ok(f),
        Class::Compressed(c) => c,
    };
    file.rewind().map_err(ImageError::io("read", path))?;
    let mut inner = Vec::new();
    let reader = BufReader::with_capacity(PEEK as usize, file);
    let res = match compression {
        Compression::Gzip => flate2::bufread::MultiGzDecoder::new(reader)
            .take(PEEK)
            .read_to_end(&mut inner),
        _ => zstd::Decoder::with_buffer(reader).and_then(|d| d.take(PEEK).read_to_end(&mut inner)),
    };
    let what = if compression == Compression::Gzip {
        "gzip"
    } else {
        "zstd"
    };
    // A truncated stream may still have given the first header.
    if let Err(e) = res
        && inner.len() < 512
    {
        return Err(unknown(format!(
            "{what}-compressed, but it does not decompress: {e}"
        )));
    }
    if !is_tar(&inner) {
        return Err(unknown(format!(
            "{what}-compressed, but not a tar archive; only tar root trees may be compressed"
        )));
    }
    if compression == Compression::Zstd && bundle::starts_with_manifest(&inner) {
        return Ok(Format::Bundle);
    }
    Ok(Format::Tar { compression })
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum Class {
    Known(Format),
    /// Needs a look inside.
    Compressed(Compression),
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn is_tar(b: &[u8]) -> bool {
    b.len() >= 512 && &b[257..262] == b"ustar"
}

fn disk(name: &str) -> Class {
    Class::Known(Format::Disk {
        qemu_format: name.into(),
    })
}

fn filesystem(name: &str) -> Class {
    Class::Known(Format::Filesystem { fs: name.into() })
}

/// The format from the first bytes of a file of `len` bytes and its last
/// 512 (if it has more than 1 KiB); Err is the detail for UnknownFormat.
fn classify(head: &[u8], len: u64, tail: Option<&[u8]>) -> Result<Class, String> {
    let n = head.len();
    let truncated = |what: &str| format!("a truncated {what}: only {n} bytes");
    if n == 0 {
        return Err("an empty file".into());
    }
    if head.starts_with(b"hsqs") {
        if n < 96 {
            return Err(truncated("squashfs image"));
        }
        let (major, minor) = (le16(head, 28), le16(head, 30));
        if major != 4 {
            return Err(format!(
                "squashfs version {major}.{minor}; only version 4 is supported"
            ));
        }
        let used = le64(head, 40);
        if used > len {
            return Err(format!(
                "a truncated squashfs image: it needs {used} bytes, the file has {len}"
            ));
        }
        return Ok(Class::Known(Format::Squashfs));
    }
    if head.starts_with(b"XFSB") {
        if n < 512 {
            return Err(truncated("xfs image"));
        }
        let need = u64::from(be32(head, 4)).saturating_mul(be64(head, 8));
        if need > len {
            return Err(format!(
                "a truncated xfs image: it needs {need} bytes, the file has {len}"
            ));
        }
        return Ok(filesystem("xfs"));
    }
    for (magic, name, min) in [
        (&b"QFI\xfb"[..], "qcow2", 72),
        (b"KDMV", "vmdk", 512),
        (b"# Disk DescriptorFile", "vmdk", 21),
        (b"vhdxfile", "vhdx", 8),
        (b"conectix", "vpc", 512),
    ] {
        if head.starts_with(magic) {
            if n < min {
                return Err(truncated(&format!("{name} disk image")));
            }
            return Ok(disk(name));
        }
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Class::Compressed(Compression::Gzip));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Class::Compressed(Compression::Zstd));
    }
    if n >= 0x44 && le32(head, 0x40) == 0xbeda_107f {
        return Ok(disk("vdi"));
    }
    if is_tar(head) {
        return Ok(Class::Known(Format::Tar {
            compression: Compression::None,
        }));
    }
    // A fixed-size VHD is raw data followed by its footer.
    if tail.is_some_and(|t| t.starts_with(b"conectix")) {
        return Ok(disk("vpc"));
    }
    if n >= 1082 && le16(head, 1080) == 0xef53 {
        if n < 2048 {
            return Err(truncated("ext filesystem image"));
        }
        return ext(&head[1024..2048], len);
    }
    Err(other_hint(head))
}

/// ext2, ext3 or ext4 from the superblock's feature flags, as blkid tells
/// them apart: anything beyond ext3's features makes ext4, a journal ext3.
fn ext(sb: &[u8], len: u64) -> Result<Class, String> {
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    const INCOMPAT_64BIT: u32 = 0x80;
    // filetype, recover, meta_bg
    const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x10;
    // sparse_super, large_file, btree_dir
    const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;
    let (compat, incompat, ro_compat) = (le32(sb, 0x5c), le32(sb, 0x60), le32(sb, 0x64));
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return Err("an external ext journal, not a filesystem".into());
    }
    let mut blocks = u64::from(le32(sb, 4));
    if incompat & INCOMPAT_64BIT != 0 {
        blocks |= u64::from(le32(sb, 0x150)) << 32;
    }
    let log = le32(sb, 24);
    if log > 6 {
        return Err(format!(
            "an ext superblock with a bad block size (log {log})"
        ));
    }
    let need = blocks.saturating_mul(1024 << log);
    if need > len {
        return Err(format!(
            "a truncated ext filesystem image: it needs {need} bytes, the file has {len}"
        ));
    }
    let name = if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
        "ext4"
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Ok(filesystem(name))
}

/// What an unsupported file looks like, where a common mistake can be
/// recognised.
fn other_hint(head: &[u8]) -> String {
    if head.len() >= 32774 && &head[32769..32774] == b"CD001" {
        return "an ISO 9660 image: mount it and give the squashfs or filesystem image inside \
                (e.g. LiveOS/squashfs.img)"
            .into();
    }
    if head.starts_with(b"\xfd7zXZ\0") {
        return "xz-compressed: decompress it first, or repack a root tree as .tar.zst".into();
    }
    if head.starts_with(b"BZh") {
        return "bzip2-compressed: decompress it first, or repack a root tree as .tar.zst".into();
    }
    if head.len() >= 520 && (&head[512..520] == b"EFI PART" || head[510..512] == [0x55, 0xaa]) {
        return "a raw disk image with a partition table; give the filesystem image instead".into();
    }
    if head.len() < 2048 {
        return format!("only {} bytes", head.len());
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// A tool the tests need, found on PATH or in the sbin directories;
    /// a missing one fails the test naming its package.
    fn tool(name: &str, package: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|d: PathBuf| d.join(name))
            .find(|p| p.is_file());
        match found {
            Some(p) => Command::new(p),
            None => panic!("{name} is missing: install the {package} package"),
        }
    }

    fn run(mut cmd: Command) {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sniffed(p: &Path) -> Format {
        sniff(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn unknown(p: &Path) -> String {
        match sniff(p) {
            Err(e @ ImageError::UnknownFormat { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&p.display().to_string()), "{msg}");
                assert!(msg.contains("expected a squashfs liveimg"), "{msg}");
                msg
            }
            other => panic!("{}: {other:?}", p.display()),
        }
    }

    fn fs(name: &str) -> Format {
        Format::Filesystem { fs: name.into() }
    }

    fn truncate(p: &Path, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    #[test]
    fn ext_filesystems_by_feature() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ext2", "ext3", "ext4"] {
            let img = dir.path().join(name);
            let mut mkfs = tool(&format!("mkfs.{name}"), "e2fsprogs");
            mkfs.arg("-q").arg("-F").arg(&img).arg("8M");
            run(mkfs);
            assert_eq!(sniffed(&img), fs(name));
        }
        let img = dir.path().join("ext4");
        truncate(&img, 4 << 20);
        let msg = unknown(&img);
        assert!(msg.contains("truncated ext filesystem"), "{msg}");
    }

    #[test]
    fn xfs() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("xfs.img");
        File::create(&img).unwrap().set_len(320 << 20).unwrap();
        let mut mkfs = tool("mkfs.xfs", "xfsprogs");
        mkfs.arg("-q").arg("-f").arg(&img);
        run(mkfs);
        assert_eq!(sniffed(&img), fs("xfs"));
        truncate(&img, 100 << 20);
        assert!(unknown(&img).contains("truncated xfs"));
    }

    #[test]
    fn squashfs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("root");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/hostname"), "node\n").unwrap();
        let img = dir.path().join("squashfs.img");
        let mut mk = tool("mksquashfs", "squashfs-tools");
        mk.arg(&src)
            .arg(&img)
            .args(["-quiet", "-noappend", "-no-progress"]);
        run(mk);
        assert_eq!(sniffed(&img), Format::Squashfs);
        truncate(&img, 200);
        assert!(unknown(&img).contains("truncated squashfs"));
    }

    #[test]
    fn qemu_disk_images() {
        let dir = tempfile::tempdir().unwrap();
        for (format, opts) in [
            ("qcow2", None),
            ("vmdk", None),
            ("vmdk", Some("subformat=monolithicFlat")),
            ("vdi", None),
            ("vpc", None),
            ("vpc", Some("subformat=fixed")),
            ("vhdx", None),
        ] {
            let img = dir
                .path()
                .join(format!("{format}-{}", opts.unwrap_or("default")));
            let mut q = tool("qemu-img", "qemu-utils");
            q.args(["create", "-q", "-f", format]);
            if let Some(o) = opts {
                q.args(["-o", o]);
            }
            q.arg(&img).arg("4M");
            run(q);
            assert_eq!(
                sniffed(&img),
                Format::Disk {
                    qemu_format: format.into()
                },
                "{format} {opts:?}"
            );
        }
        let img = dir.path().join("qcow2-default");
        truncate(&img, 40);
        assert!(unknown(&img).contains("truncated qcow2"));
    }

    #[test]
    fn tar_archives_plain_and_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "node\n").unwrap();
        for (flag, name, compression) in [
            ("-cf", "t.tar", Compression::None),
            ("-czf", "t.tgz", Compression::Gzip),
            ("--zstd -cf", "t.tzst", Compression::Zstd),
        ] {
            let out = dir.path().join(name);
            let mut tar = tool("tar", "tar");
            tar.args(flag.split(' '))
                .arg(&out)
                .arg("-C")
                .arg(&root)
                .arg(".");
            run(tar);
            assert_eq!(sniffed(&out), Format::Tar { compression }, "{name}");
        }
        // A zstd tar made by GNU tar with manifest.json first is a bundle
        // by content, and the same members plain or gzipped are not.
        std::fs::write(root.join("manifest.json"), "{}").unwrap();
        std::fs::write(root.join("image.raw"), [0u8; 100]).unwrap();
        for (flag, expected) in [
            ("--zstd", Format::Bundle),
            (
                "--gzip",
                Format::Tar {
                    compression: Compression::Gzip,
                },
            ),
        ] {
            let out = dir.path().join(format!("b{flag}"));
            let mut tar = tool("tar", "tar");
            tar.arg(flag).arg("-cf").arg(&out).arg("-C").arg(&root);
            tar.args(["manifest.json", "image.raw"]);
            run(tar);
            assert_eq!(sniffed(&out), expected, "{flag}");
        }
    }

    #[test]
    fn a_written_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, vec![1u8; 10_000]).unwrap();
        let out = dir.path().join("node.imgbase");
        let m = bundle::Manifest {
            format: 1,
            name: "node".into(),
            version: "1.0".into(),
            release: "1".into(),
            sha256: String::new(),
            size: 0,
            fs_type: None,
        };
        bundle::write_bundle(&out, m, &raw, 10_000, &mut |_| {}).unwrap();
        assert_eq!(sniffed(&out), Format::Bundle);
    }

    #[test]
    fn garbage_empty_and_compressed_non_tars_are_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "").unwrap();
        assert!(unknown(&p).contains("(an empty file)"));

        let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&p, &garbage).unwrap();
        unknown(&p);
        std::fs::write(&p, &garbage[..100]).unwrap();
        assert!(unknown(&p).contains("only 100 bytes"));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &garbage).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(&p, &gz).unwrap();
        assert!(unknown(&p).contains("gzip-compressed, but not a tar"));
        std::fs::write(&p, &gz[..5]).unwrap();
        assert!(unknown(&p).contains("does not decompress"));

        std::fs::write(&p, zstd::encode_all(&garbage[..], 3).unwrap()).unwrap();
        assert!(unknown(&p).contains("zstd-compressed, but not a tar"));
        std::fs::write(&p, [0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap();
        assert!(unknown(&p).contains("does not decompress"));
    }

    #[test]
    fn common_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut iso = vec![0u8; 40_000];
        iso[32769..32774].copy_from_slice(b"CD001");
        std::fs::write(&p, &iso).unwrap();
        assert!(unknown(&p).contains("ISO 9660"));
        let mut mbr = vec![0u8; 4096];
        mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
        std::fs::write(&p, &mbr).unwrap();
        assert!(unknown(&p).contains("partition table"));
        std::fs::write(&p, b"\xfd7zXZ\0rest").unwrap();
        assert!(unknown(&p).contains("xz-compressed"));
    }

    #[test]
    fn json_shape() {
        let j = |f: Format| serde_json::to_value(f).unwrap();
        assert_eq!(
            j(Format::Squashfs),
            serde_json::json!({"format": "squashfs"})
        );
        assert_eq!(
            j(fs("xfs")),
            serde_json::json!({"format": "filesystem", "fs": "xfs"})
        );
        assert_eq!(
            j(Format::Disk {
                qemu_format: "qcow2".into()
            }),
            serde_json::json!({"format": "disk", "qemu_format": "qcow2"})
        );
        assert_eq!(
            j(Format::Tar {
                compression: Compression::Zstd
            }),
            serde_json::json!({"format": "tar", "compression": "zstd"})
        );
        assert_eq!(j(Format::Bundle), serde_json::json!({"format": "bundle"}));
        assert_eq!(Format::Bundle.to_string(), "imgbase bundle");
    }
}
