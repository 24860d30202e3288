//! Builders of small REAL OS images for the guest-tier import tests, and
//! the checks that go with them: a sample root tree, ext4/xfs filesystem
//! images, an oVirt Node liveimg (squashfs holding LiveOS/rootfs.img),
//! qcow2/vmdk disk images, root-tree tarballs (plain, gzip, zstd), unsafe
//! tarballs, SHA256SUMS, a tree comparison, a base mounted read-only, a
//! leftover check for refused commands, and a tiny HTTP server with fault
//! knobs. Everything is built with the host's tools (the guest's userland
//! is the host's) and runs as root in the guest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn mib(n: u64) -> u64 {
    n << 20
}

// ---------------------------------------------------------------------------
// Work dir
// ---------------------------------------------------------------------------

/// A scratch dir for one test: images go in `path()` (the guest's /tmp,
/// a tmpfs), root trees in `trees()`, a loop-mounted ext4, because the
/// guest kernel's tmpfs (6.1) cannot hold user.* xattrs. Removed on drop.
pub struct Work {
    dir: tempfile::TempDir,
    trees: PathBuf,
}

impl Work {
    pub fn new() -> Work {
        require_guest();
        let dir = tempfile::Builder::new()
            .prefix("imgwork.")
            .tempdir_in("/tmp")
            .unwrap();
        let backing = dir.path().join("trees.ext4");
        let trees = dir.path().join("trees");
        fs::create_dir(&trees).unwrap();
        sh("truncate", &["-s", "384M", p(&backing)]);
        // Few inodes, no journal, lazy init: quick to make under TCG.
        sh(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-O",
                "^has_journal",
                "-N",
                "4096",
                "-E",
                "lazy_itable_init=1,nodiscard",
                p(&backing),
            ],
        );
        // discard: deleted files give their memory back to the tmpfs.
        sh(
            "mount",
            &["-o", "loop,discard,acl,user_xattr", p(&backing), p(&trees)],
        );
        Work { dir, trees }
    }

    /// Where images go (tmpfs).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path()/name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Where root trees go (ext4: xattrs, ACLs, device nodes).
    pub fn trees(&self) -> &Path {
        &self.trees
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let t = p(&self.trees).to_string();
        if Command::new("umount")
            .arg(&t)
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            let _ = Command::new("umount").args(["-l", &t]).status();
        }
    }
}

// ---------------------------------------------------------------------------
// Sample root tree
// ---------------------------------------------------------------------------

pub const NVR_FILE: &str = "usr/share/imgbase/build/meta/nvr";
pub const OWNED_UID: u32 = 1234;
pub const OWNED_GID: u32 = 5678;

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic incompressible bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A POSIX access ACL in the kernel's xattr format: owner rw, user `uid`
/// rw, group r, mask rw, other none (what `setfacl -m u:UID:rw` gives a
/// 0640 file).
fn acl_user_rw(uid: u32) -> Vec<u8> {
    const UNDEF: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEF), // ACL_USER_OBJ
        (0x02, 6, uid),   // ACL_USER
        (0x04, 4, UNDEF), // ACL_GROUP_OBJ
        (0x10, 6, UNDEF), // ACL_MASK
        (0x20, 0, UNDEF), // ACL_OTHER
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

/// Write the NVR metadata file (`usr/share/imgbase/build/meta/nvr`).
pub fn set_nvr(tree: &Path, nvr: &str) {
    write_mode(&tree.join(NVR_FILE), format!("{nvr}\n").as_bytes(), 0o644);
}

/// A small root tree under `work.trees()/name` with every kind of inode an
/// OS tree has: dirs (0755, sticky 1777, 0711 empty), files 0644/0600/
/// setuid 4755, a file owned by 1234:5678, relative and absolute symlinks
/// (none escaping), a hardlink pair, char and block device nodes, a fifo,
/// user.* xattrs on a file and a dir, SELinux labels (`security.selinux`,
/// stored as-is: the guest runs no SELinux policy), a POSIX ACL, and the NVR file when
/// `nvr` is given.
pub fn sample_tree(work: &Work, name: &str, nvr: Option<&str>) -> PathBuf {
    let t = work.trees().join(name);
    assert!(!t.exists(), "{} exists", t.display());
    mkdir(&t, 0o755);
    for (d, mode) in [
        ("etc", 0o755),
        ("usr/bin", 0o755),
        ("usr/lib", 0o755),
        ("usr/share/zoneinfo", 0o755),
        ("dev", 0o755),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("var/empty", 0o711),
        ("root", 0o550),
    ] {
        mkdir(&t.join(d), mode);
    }
    write_mode(&t.join("etc/hostname"), b"node\n", 0o644);
    write_mode(
        &t.join("etc/shadow"),
        b"root:!locked::0:99999:7:::\n",
        0o600,
    );
    let owned = t.join("etc/owned-by-1234");
    write_mode(&owned, b"not root's\n", 0o640);
    std::os::unix::fs::lchown(&owned, Some(OWNED_UID), Some(OWNED_GID)).unwrap();
    fs::set_permissions(&owned, fs::Permissions::from_mode(0o640)).unwrap();
    write_mode(
        &t.join("usr/share/zoneinfo/UTC"),
        b"TZif2 fake zone\n",
        0o644,
    );
    std::os::unix::fs::symlink("../usr/share/zoneinfo/UTC", t.join("etc/localtime")).unwrap();
    std::os::unix::fs::symlink("/proc/self/mounts", t.join("etc/mtab")).unwrap();
    std::os::unix::fs::symlink("usr/bin", t.join("bin")).unwrap();
    // chown clears setuid: set the mode after any ownership change.
    write_mode(
        &t.join("usr/bin/helper"),
        b"#!/bin/sh\necho helper\n",
        0o4755,
    );
    write_mode(
        &t.join("usr/lib/libdemo.so.1"),
        &pseudo_random(10_000, 7),
        0o755,
    );
    fs::hard_link(
        t.join("usr/lib/libdemo.so.1"),
        t.join("usr/lib/libdemo.so.1.hardlink"),
    )
    .unwrap();
    let cwd = rustix::fs::CWD;
    rustix::fs::mknodat(
        cwd,
        t.join("dev/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        cwd,
        t.join("dev/loop7"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o660),
        rustix::fs::makedev(7, 7),
    )
    .unwrap();
    rustix::fs::mknodat(
        cwd,
        t.join("run/initctl"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for (n, mode) in [
        ("dev/null", 0o666),
        ("dev/loop7", 0o660),
        ("run/initctl", 0o600),
    ] {
        fs::set_permissions(t.join(n), fs::Permissions::from_mode(mode)).unwrap();
    }
    set_xattr(&t.join("etc/hostname"), "user.test", b"imgbase test xattr");
    set_xattr(&t.join("etc"), "user.dir", b"on a directory");
    set_xattr(
        &t.join("etc/shadow"),
        SELINUX,
        b"system_u:object_r:shadow_t:s0\0",
    );
    set_xattr(&t.join("usr/bin"), SELINUX, b"system_u:object_r:bin_t:s0\0");
    let acl = t.join("etc/acl-file");
    write_mode(&acl, b"shared with uid 1234\n", 0o640);
    set_xattr(&acl, "system.posix_acl_access", &acl_user_rw(OWNED_UID));
    if let Some(nvr) = nvr {
        set_nvr(&t, nvr);
    }
    t
}

/// Add `mib` MiB of incompressible data to a tree, in 4 MiB files under
/// usr/share/payload.
pub fn add_payload(tree: &Path, mib_total: u64, seed: u64) {
    let d = tree.join("usr/share/payload");
    fs::create_dir_all(&d).unwrap();
    let mut left = mib(mib_total);
    let mut i = 0;
    while left > 0 {
        let n = left.min(mib(4));
        write_mode(
            &d.join(format!("blob{i}")),
            &pseudo_random(n as usize, seed * 1000 + i),
            0o644,
        );
        left -= n;
        i += 1;
    }
}

/// `cp -a`: a copy with owners, modes, links, devices, xattrs and ACLs.
pub fn copy_tree(src: &Path, dst: &Path) {
    sh("cp", &["-a", "--", p(src), p(dst)]);
}

/// Copy a file keeping holes.
pub fn copy_sparse(src: &Path, dst: &Path) {
    sh("cp", &["--sparse=always", "--", p(src), p(dst)]);
}

// ---------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------

/// An ext4 image of `mib` MiB holding `tree`, packed by `mkfs.ext4 -d`
/// (no mount); the output is sparse.
pub fn ext4_image(tree: &Path, out: &Path, size_mib: u64) -> PathBuf {
    let _ = fs::remove_file(out);
    sh(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-L",
            "imgroot",
            "-d",
            p(tree),
            p(out),
            &format!("{size_mib}M"),
        ],
    );
    out.to_path_buf()
}

/// Mount an ext4/xfs image file read-write by loop, run `f` on the mount
/// point, unmount.
pub fn with_image_mounted<R>(image: &Path, f: impl FnOnce(&Path) -> R) -> R {
    let mnt = tempfile::tempdir().unwrap();
    sh("mount", &["-o", "loop", p(image), p(mnt.path())]);
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let guard = Unmount(mnt.path());
    let r = f(mnt.path());
    drop(guard);
    r
}

/// An xfs image of `mib` (>= 300) MiB holding `tree`: mkfs.xfs, then a loop
/// mount and `cp -a` as root (mkfs.xfs's protofile cannot carry xattrs).
/// mkfs.xfs writes its (64 MiB) log out as zeros: holes are dug after, so
/// the image is sparse.
pub fn xfs_image(tree: &Path, out: &Path, size_mib: u64) -> PathBuf {
    assert!(size_mib >= 300, "xfs needs at least 300 MiB");
    let _ = fs::remove_file(out);
    sh("truncate", &["-s", &format!("{size_mib}M"), p(out)]);
    sh("mkfs.xfs", &["-q", "-f", "-L", "imgroot", p(out)]);
    with_image_mounted(out, |mnt| {
        sh(
            "cp",
            &[
                "-a",
                "--",
                &format!("{}/.", tree.display()),
                &format!("{}/", mnt.display()),
            ],
        );
    });
    sh("fallocate", &["--dig-holes", p(out)]);
    out.to_path_buf()
}

/// An oVirt Node liveimg: a squashfs holding `LiveOS/rootfs.img`.
pub fn liveimg(rootfs_img: &Path, out: &Path) -> PathBuf {
    let src = out.with_extension("src");
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(src.join("LiveOS")).unwrap();
    let dst = src.join("LiveOS/rootfs.img");
    if fs::hard_link(rootfs_img, &dst).is_err() {
        copy_sparse(rootfs_img, &dst);
    }
    let _ = fs::remove_file(out);
    sh(
        "mksquashfs",
        &[p(&src), p(out), "-noappend", "-quiet", "-no-progress"],
    );
    fs::remove_dir_all(&src).unwrap();
    out.to_path_buf()
}

/// A disk image (`qcow2`, `vmdk`, …) whose whole disk is the raw filesystem.
pub fn disk_image(raw: &Path, out: &Path, format: &str) -> PathBuf {
    let _ = fs::remove_file(out);
    sh(
        "qemu-img",
        &["convert", "-q", "-f", "raw", "-O", format, p(raw), p(out)],
    );
    out.to_path_buf()
}

pub fn qcow2(raw: &Path, out: &Path) -> PathBuf {
    disk_image(raw, out, "qcow2")
}

/// A qcow2 overlay naming `backing` (raw) as its backing file.
pub fn qcow2_with_backing(backing: &Path, out: &Path) -> PathBuf {
    let backing = fs::canonicalize(backing).unwrap();
    let _ = fs::remove_file(out);
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            p(&backing),
            p(out),
        ],
    );
    out.to_path_buf()
}

/// A qcow2 whose data lives in an external raw data file (`out.data`).
pub fn qcow2_with_data_file(raw: &Path, out: &Path) -> PathBuf {
    let data = PathBuf::from(format!("{}.data", out.display()));
    let _ = fs::remove_file(out);
    let _ = fs::remove_file(&data);
    sh(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            &format!("data_file={},data_file_raw=on", data.display()),
            p(raw),
            p(out),
        ],
    );
    out.to_path_buf()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A root tree as a GNU tar (pax format) with xattrs, ACLs and numeric
/// owners, optionally gzip'd or zstd'd. Entries are `./…`.
pub fn tar_image(tree: &Path, out: &Path, c: Compression) -> PathBuf {
    let _ = fs::remove_file(out);
    let mut args = vec![
        "--create",
        "--file",
        p(out),
        "--format=posix",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "--numeric-owner",
        "--sort=name",
    ];
    match c {
        Compression::None => {}
        Compression::Gzip => args.push("--gzip"),
        Compression::Zstd => args.push("--zstd"),
    }
    args.extend(["-C", p(tree), "."]);
    sh("tar", &args);
    out.to_path_buf()
}

/// Ways a tarball tries to write outside the root it is extracted into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evil {
    /// an entry `../escaped`
    DotDot,
    /// an entry `usr/../../escaped` (escapes after normalisation)
    InnerDotDot,
    /// an entry `/etc/escaped`
    Absolute,
    /// `etc/escape` -> `../../outside` (relative symlink leaving the root)
    SymlinkEscape,
    /// `etc/hard-escape` hardlinked to `../outside`
    HardlinkEscape,
}

impl Evil {
    pub const ALL: [Evil; 5] = [
        Evil::DotDot,
        Evil::InnerDotDot,
        Evil::Absolute,
        Evil::SymlinkEscape,
        Evil::HardlinkEscape,
    ];
    fn key(self) -> &'static str {
        match self {
            Evil::DotDot => "dotdot",
            Evil::InnerDotDot => "innerdotdot",
            Evil::Absolute => "absolute",
            Evil::SymlinkEscape => "symlink",
            Evil::HardlinkEscape => "hardlink",
        }
    }
    /// The offending entry name or link target, for matching the refusal.
    pub fn culprit(self) -> &'static [&'static str] {
        match self {
            Evil::DotDot | Evil::InnerDotDot | Evil::Absolute => &["escaped"],
            Evil::SymlinkEscape => &["etc/escape", "../../outside"],
            Evil::HardlinkEscape => &["etc/hard-escape", "../outside"],
        }
    }
}

const EVIL_TAR_PY: &str = r#"
import io, sys, tarfile
out, kind, nvr = sys.argv[1], sys.argv[2], sys.argv[3]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    def d(name):
        ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
    def f(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; t.addfile(ti, io.BytesIO(data))
    def link(name, target, typ):
        ti = tarfile.TarInfo(name); ti.type = typ; ti.linkname = target; ti.mode = 0o777; t.addfile(ti)
    for x in ["./", "etc", "usr", "usr/share", "usr/share/imgbase", "usr/share/imgbase/build",
              "usr/share/imgbase/build/meta"]:
        d(x)
    f("etc/hostname", b"evil\n")
    f("usr/share/imgbase/build/meta/nvr", (nvr + "\n").encode())
    if kind == "dotdot":
        f("../escaped", b"outside the root\n")
    elif kind == "innerdotdot":
        f("usr/../../escaped", b"outside the root\n")
    elif kind == "absolute":
        f("/etc/escaped", b"absolute\n")
    elif kind == "symlink":
        link("etc/escape", "../../outside", tarfile.SYMTYPE)
        f("etc/escape/written-through", b"through the link\n")
    elif kind == "hardlink":
        link("etc/hard-escape", "../outside", tarfile.LNKTYPE)
    else:
        sys.exit("unknown kind " + kind)
    f("etc/after", b"an entry after the bad one\n")
"#;

/// A tarball (python3's tarfile) of a tiny valid root tree plus one entry
/// that escapes the root the `kind` way.
pub fn evil_tar(out: &Path, kind: Evil, nvr: &str) -> PathBuf {
    let _ = fs::remove_file(out);
    sh("python3", &["-c", EVIL_TAR_PY, p(out), kind.key(), nvr]);
    out.to_path_buf()
}

// ---------------------------------------------------------------------------
// Checksums
// ---------------------------------------------------------------------------

pub fn sha256_hex(path: &Path) -> String {
    let out = sh("sha256sum", &["--", p(path)]);
    let hex = out.split_whitespace().next().unwrap().to_string();
    assert_eq!(hex.len(), 64, "{out}");
    hex
}

/// Write `SHA256SUMS` beside `image` naming it (`<hex>  <file name>`),
/// with `hex` or the real digest, plus an unrelated line before it.
pub fn write_sha256sums(image: &Path, hex: Option<&str>) -> PathBuf {
    let real;
    let hex = match hex {
        Some(h) => h,
        None => {
            real = sha256_hex(image);
            &real
        }
    };
    let name = image.file_name().unwrap().to_str().unwrap();
    let sums = image.parent().unwrap().join("SHA256SUMS");
    fs::write(
        &sums,
        format!("{}  some-other-file.iso\n{hex}  {name}\n", "0".repeat(64)),
    )
    .unwrap();
    sums
}

// ---------------------------------------------------------------------------
// Tree comparison
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    perm: u32,
    uid: u32,
    gid: u32,
    size: Option<u64>,
    target: Option<PathBuf>,
    rdev: Option<(u32, u32)>,
    xattrs: BTreeMap<String, Vec<u8>>,
    nlink: Option<u64>,
    ino: u64,
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "?"
    }
}

/// The SELinux label xattr: a root tree's files carry one on SELinux OSes.
pub const SELINUX: &str = "security.selinux";

/// The xattrs a root tree must keep: user.*, SELinux labels and POSIX ACLs
/// (other security.* depend on the kernel, trusted.* on privilege).
pub fn xattrs_of(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::NOTSUP => 0,
        Err(e) => panic!("listxattr {}: {e}", path.display()),
    };
    let mut out = BTreeMap::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if !(name.starts_with("user.") || name.starts_with("system.posix_acl_") || name == SELINUX)
        {
            continue;
        }
        let mut val = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut val[..])
            .unwrap_or_else(|e| panic!("getxattr {name} {}: {e}", path.display()));
        val.truncate(len);
        out.insert(name, val);
    }
    out
}

fn scan(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let full = root.join(&r);
            let md = fs::symlink_metadata(&full).unwrap();
            let ft = md.file_type();
            let kind = kind_of(&ft);
            let is_dev = ft.is_char_device() || ft.is_block_device();
            let node = Node {
                kind,
                perm: if ft.is_symlink() {
                    0
                } else {
                    md.mode() & 0o7777
                },
                uid: md.uid(),
                gid: md.gid(),
                size: ft.is_file().then_some(md.len()),
                target: ft.is_symlink().then(|| fs::read_link(&full).unwrap()),
                rdev: is_dev.then(|| {
                    let d = md.rdev();
                    (rustix::fs::major(d), rustix::fs::minor(d))
                }),
                xattrs: xattrs_of(&full),
                nlink: (!ft.is_dir()).then(|| md.nlink()),
                ino: md.ino(),
            };
            if ft.is_dir() {
                stack.push(r.clone());
            }
            out.insert(r, node);
        }
    }
    out
}

fn first_difference(a: &Path, b: &Path) -> Option<String> {
    let x = fs::read(a).unwrap();
    let y = fs::read(b).unwrap();
    if x == y {
        return None;
    }
    let at = x
        .iter()
        .zip(&y)
        .position(|(p, q)| p != q)
        .unwrap_or(x.len().min(y.len()));
    Some(format!(
        "content differs from byte {at} (sizes {} / {})",
        x.len(),
        y.len()
    ))
}

/// The differences between two trees, one line each (empty: the same).
pub fn tree_differences(expected: &Path, actual: &Path) -> Vec<String> {
    let e = scan(expected);
    let mut a = scan(actual);
    // mkfs makes lost+found; the source tree need not have it.
    if !e.contains_key(Path::new("lost+found")) {
        a.retain(|k, _| !k.starts_with("lost+found"));
    }
    let mut diffs = Vec::new();
    for (path, en) in &e {
        let Some(an) = a.get(path) else {
            diffs.push(format!("- {}  ({}) missing", path.display(), en.kind));
            continue;
        };
        let mut what = Vec::new();
        macro_rules! cmp {
            ($f:ident, $fmt:literal) => {
                if en.$f != an.$f {
                    what.push(format!(
                        concat!(stringify!($f), " ", $fmt, " != ", $fmt),
                        en.$f, an.$f
                    ));
                }
            };
        }
        if en.kind != an.kind {
            what.push(format!("type {} != {}", en.kind, an.kind));
        } else {
            cmp!(perm, "{:04o}");
            cmp!(uid, "{}");
            cmp!(gid, "{}");
            cmp!(size, "{:?}");
            cmp!(target, "{:?}");
            cmp!(rdev, "{:?}");
            cmp!(nlink, "{:?}");
            if en.xattrs != an.xattrs {
                let names = |m: &BTreeMap<String, Vec<u8>>| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v).escape_debug()))
                        .collect::<Vec<_>>()
                };
                what.push(format!(
                    "xattrs {:?} != {:?}",
                    names(&en.xattrs),
                    names(&an.xattrs)
                ));
            }
            if en.kind == "file"
                && en.size == an.size
                && let Some(d) = first_difference(&expected.join(path), &actual.join(path))
            {
                what.push(d);
            }
        }
        if !what.is_empty() {
            diffs.push(format!("~ {}  {}", path.display(), what.join("; ")));
        }
    }
    for (path, an) in &a {
        if !e.contains_key(path) {
            diffs.push(format!("+ {}  ({}) unexpected", path.display(), an.kind));
        }
    }
    // Hardlinks: paths sharing an inode in the expected tree share one in
    // the actual tree.
    let mut groups: HashMap<u64, Vec<&PathBuf>> = HashMap::new();
    for (path, n) in &e {
        if n.kind != "dir" && n.nlink.unwrap_or(1) > 1 {
            groups.entry(n.ino).or_default().push(path);
        }
    }
    for paths in groups.values() {
        let inos: BTreeSet<Option<u64>> = paths.iter().map(|p| a.get(*p).map(|n| n.ino)).collect();
        if inos.len() != 1 {
            diffs.push(format!("~ hardlinks {paths:?} are not one inode"));
        }
    }
    diffs
}

/// Panic with a diff-like list unless `actual` holds exactly the tree at
/// `expected`: relative paths, type, content, mode, owner, symlink target,
/// device numbers, hardlinks, user.* xattrs and ACLs.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let diffs = tree_differences(expected, actual);
    if !diffs.is_empty() {
        let shown: Vec<&str> = diffs.iter().take(40).map(String::as_str).collect();
        panic!(
            "tree {} differs from the expected {} ({} differences):\n{}",
            actual.display(),
            expected.display(),
            diffs.len(),
            shown.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Bases and the pool
// ---------------------------------------------------------------------------

fn lvs_field(vg: &TestVg, lv: &str, field: &str) -> String {
    lvm(&[
        "lvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        field,
        &format!("{}/{lv}", vg.name),
    ])
    .trim()
    .to_string()
}

pub fn lv_size(vg: &TestVg, lv: &str) -> u64 {
    lvs_field(vg, lv, "lv_size").parse().unwrap()
}

pub fn lv_origin(vg: &TestVg, lv: &str) -> String {
    lvs_field(vg, lv, "origin")
}

/// Bytes of the thin pool's data in use.
pub fn pool_used(vg: &TestVg) -> u64 {
    let out = lvs_field(vg, "pool", "lv_size,data_percent");
    let mut it = out.split_whitespace();
    let size: f64 = it.next().unwrap().parse().unwrap();
    let pct: f64 = it.next().unwrap().parse().unwrap();
    (size * pct / 100.0) as u64
}

/// The `imgbase:sha256=` tag of an LV, if any.
pub fn sha256_tag(vg: &TestVg, lv: &str) -> Option<String> {
    vg.tags(lv)
        .into_iter()
        .find_map(|t| t.strip_prefix("imgbase:sha256=").map(str::to_string))
}

pub fn fs_type(dev: &str) -> String {
    sh("blkid", &["-p", "-o", "value", "-s", "TYPE", dev])
        .trim()
        .to_string()
}

/// A base activated (it has activation skip) and mounted read-only; on drop
/// unmounted and, if it was inactive, deactivated again.
pub struct MountedBase {
    pub dev: String,
    pub fstype: String,
    dir: tempfile::TempDir,
    lv: String,
    was_active: bool,
}

impl MountedBase {
    pub fn new(vg: &TestVg, lv: &str) -> MountedBase {
        let attr = vg.attr(lv);
        let was_active = attr.get(4..5) == Some("a");
        let full = format!("{}/{lv}", vg.name);
        if !was_active {
            lvm(&["lvchange", "-qq", "-ay", "-K", &full]);
        }
        let dev = vg.dev(lv);
        let fstype = fs_type(&dev);
        let opts = match fstype.as_str() {
            "ext4" | "ext3" => "ro,noload",
            "xfs" => "ro,nouuid,norecovery",
            _ => "ro",
        };
        // tempfile's default ".tmp" prefix: TestVg's drop unmounts it if a
        // failing test never drops this guard.
        let dir = tempfile::tempdir().unwrap();
        sh("mount", &["-o", opts, &dev, p(dir.path())]);
        MountedBase {
            dev,
            fstype,
            dir,
            lv: full,
            was_active,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Size of the filesystem (what a grow must bring to the LV size).
    pub fn fs_size(&self) -> u64 {
        match self.fstype.as_str() {
            "xfs" => {
                let info = sh("xfs_info", &[p(self.path())]);
                let data = info
                    .lines()
                    .find(|l| l.trim_start().starts_with("data") && l.contains("bsize="))
                    .unwrap_or_else(|| panic!("no data line in xfs_info: {info}"));
                let num = |key: &str| -> u64 {
                    let s = &data[data.find(key).unwrap() + key.len()..];
                    s.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                        .parse()
                        .unwrap()
                };
                num("bsize=") * num("blocks=")
            }
            _ => {
                let h = sh("dumpe2fs", &["-h", &self.dev]);
                let num = |key: &str| -> u64 {
                    h.lines()
                        .find_map(|l| l.strip_prefix(key))
                        .unwrap_or_else(|| panic!("no {key} in dumpe2fs -h"))
                        .trim()
                        .parse()
                        .unwrap()
                };
                num("Block count:") * num("Block size:")
            }
        }
    }
}

impl Drop for MountedBase {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
        if !self.was_active {
            let _ = Command::new("lvm")
                .args(["lvchange", "-qq", "-an", &self.lv])
                .output();
        }
    }
}

/// Everything an import must show of a new base: listed by `layout
/// --bases`, read-only, tagged with its image's digest (`sha256`, when
/// known), holding exactly `tree`, its filesystem grown to the LV.
/// Returns the base's filesystem type.
pub fn check_base(vg: &TestVg, nvr: &str, tree: &Path, sha256: Option<&str>) -> String {
    let t0 = Instant::now();
    let bases = vg.ok(&["layout", "--bases"]);
    assert!(
        bases.lines().any(|l| l.trim() == nvr),
        "layout --bases lacks {nvr}: {bases}"
    );
    let attr = vg.attr(nvr);
    assert_eq!(&attr[1..2], "r", "base {nvr} not read-only: {attr}");
    let tag = sha256_tag(vg, nvr);
    assert!(
        tag.is_some(),
        "{nvr} has no imgbase:sha256= tag: {:?}",
        vg.tags(nvr)
    );
    if let Some(want) = sha256 {
        assert_eq!(tag.as_deref(), Some(want), "digest tag of {nvr}");
    }
    let m = MountedBase::new(vg, nvr);
    assert_same_tree(tree, m.path());
    let lv = lv_size(vg, nvr);
    let fs = m.fs_size();
    assert!(
        fs <= lv && fs + lv / 100 >= lv,
        "{nvr}: {} filesystem of {fs} bytes not grown to its LV of {lv}",
        m.fstype
    );
    eprintln!("[{:6.1}s] check_base {nvr}", t0.elapsed().as_secs_f64());
    m.fstype.clone()
}

// ---------------------------------------------------------------------------
// Refusals that must leave nothing behind
// ---------------------------------------------------------------------------

/// What a failed import could leave outside the VG: files under /tmp and
/// /var/tmp, mounts, loop devices, device-mapper devices.
#[derive(Debug, PartialEq, Eq)]
pub struct Leftovers {
    files: BTreeSet<PathBuf>,
    mounts: Vec<String>,
    loops: Vec<String>,
    dm: Vec<String>,
}

/// Every path under `root` on `root`'s own filesystem (not into mounts:
/// test trees, or a crate dir shared into the guest's /tmp over 9p).
fn walk_names(root: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(md) = fs::metadata(root) else { return };
    walk_dev(root, md.dev(), out);
}

fn walk_dev(dir: &Path, dev: u64, out: &mut BTreeSet<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let path = e.path();
        out.insert(path.clone());
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue;
        };
        if md.is_dir() && md.dev() == dev {
            walk_dev(&path, dev, out);
        }
    }
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

impl Leftovers {
    pub fn now() -> Leftovers {
        let mut files = BTreeSet::new();
        walk_names(Path::new("/tmp"), &mut files);
        walk_names(Path::new("/var/tmp"), &mut files);
        Leftovers {
            files,
            mounts: sorted_lines(&fs::read_to_string("/proc/self/mounts").unwrap()),
            loops: sorted_lines(&sh(
                "losetup",
                &["--list", "--noheadings", "-O", "NAME,BACK-FILE"],
            )),
            dm: sorted_lines(&sh("dmsetup", &["ls"])),
        }
    }

    /// Panic naming what appeared or vanished since `self`.
    pub fn assert_same_as(&self, later: &Leftovers, what: &str) {
        let mut d = Vec::new();
        for f in later.files.difference(&self.files) {
            d.push(format!("+ file {}", f.display()));
        }
        for f in self.files.difference(&later.files) {
            d.push(format!("- file {}", f.display()));
        }
        for (name, a, b) in [
            ("mount", &self.mounts, &later.mounts),
            ("loop", &self.loops, &later.loops),
            ("dm", &self.dm, &later.dm),
        ] {
            for x in b.iter().filter(|x| !a.contains(x)) {
                d.push(format!("+ {name} {x}"));
            }
            for x in a.iter().filter(|x| !b.contains(x)) {
                d.push(format!("- {name} {x}"));
            }
        }
        assert!(d.is_empty(), "{what} left things behind:\n{}", d.join("\n"));
    }
}

/// imgbase that must fail: exit 1, one line on stderr mentioning one of
/// `any_of` (case-insensitive; empty: any message), the VG unchanged (LVs,
/// tags), and no file, mount, loop or dm device left behind. Returns the
/// error line.
pub fn refused_clean(vg: &TestVg, args: &[&str], any_of: &[&str]) -> String {
    let t0 = Instant::now();
    let left = Leftovers::now();
    let before = vg.state();
    let out = vg.imgbase(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "imgbase {args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "imgbase {args:?}: not one line: {err}"
    );
    let low = err.to_lowercase();
    assert!(
        any_of.is_empty() || any_of.iter().any(|w| low.contains(&w.to_lowercase())),
        "imgbase {args:?}: {err:?} mentions none of {any_of:?}"
    );
    assert_eq!(vg.state(), before, "imgbase {args:?} changed the VG");
    left.assert_same_as(&Leftovers::now(), &format!("imgbase {args:?}"));
    eprintln!("[{:6.1}s] refused {args:?}", t0.elapsed().as_secs_f64());
    err
}

/// imgbase with this VG, a long lock wait (for concurrent runs), spawned.
pub fn spawn_imgbase(vg: &TestVg, args: &[&str]) -> Child {
    Command::new(IMGBASE)
        .args(["--vg", &vg.name, "--lock-wait", "600"])
        .args(args)
        .env("IMGBASE_LOCK_FILE", &vg.lock)
        .env_remove("IMGBASE_LOCK_WAIT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// ---------------------------------------------------------------------------
// HTTP server
// ---------------------------------------------------------------------------

const HTTP_PY: &str = r#"
import http.server, json, os, socket, sys, threading, time
cfg = json.load(open(sys.argv[1]))
root, logf, rate, ranges = cfg["dir"], cfg["log"], cfg["rate"], cfg["ranges"]
lock = threading.Lock()
state = {p: dict(v) for p, v in cfg["paths"].items()}

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def record(self, status, start, sent, length):
        with lock, open(logf, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path.split("?")[0],
                                "range": self.headers.get("Range"), "status": status,
                                "start": start, "bytes": sent, "length": length}) + "\n")
    def do_HEAD(self):
        self.serve(False)
    def do_GET(self):
        self.serve(True)
    def plain(self, status, extra=()):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.record(status, 0, 0, 0)
    def serve(self, body):
        path = self.path.split("?")[0]
        with lock:
            st = state.setdefault(path, {})
            fail = st.get("fail", 0) > 0
            if fail:
                st["fail"] -= 1
            cut = False
            if not fail and body and st.get("cut"):
                st["cut"] = False
                cut = True
        if fail:
            return self.plain(503, [("Retry-After", "1")])
        fp = os.path.join(root, path.lstrip("/"))
        if ".." in path.split("/") or not os.path.isfile(fp):
            return self.plain(404)
        size = os.path.getsize(fp)
        mtime = os.stat(fp).st_mtime_ns
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if ranges and rng and rng.startswith("bytes=") and "," not in rng:
            a, _, b = rng[6:].partition("-")
            if a == "":
                start = max(0, size - int(b))
            else:
                start = int(a)
                if b:
                    end = min(int(b), size - 1)
            if start >= size:
                return self.plain(416, [("Content-Range", "bytes */%d" % size)])
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes" if ranges else "none")
        self.send_header("ETag", '"%d-%d"' % (size, mtime))
        self.send_header("Last-Modified", self.date_time_string(mtime // 10**9))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        sent = 0
        if body:
            limit = length // 2 if cut else length
            with open(fp, "rb") as f:
                f.seek(start)
                while sent < limit:
                    chunk = f.read(min(65536, limit - sent))
                    if not chunk:
                        break
                    try:
                        self.wfile.write(chunk)
                    except OSError:
                        break
                    sent += len(chunk)
                    if rate:
                        time.sleep(len(chunk) / rate)
        self.record(status, start, sent, length)
        if cut:
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

srv = S(("127.0.0.1", 0), H)
tmp = cfg["port_file"] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, cfg["port_file"])
srv.serve_forever()
"#;

/// Fault knobs of [`HttpServer`].
#[derive(Clone, Debug, Default)]
pub struct ServeOpts {
    /// `(url path, n)`: the first n requests for that path get 503.
    pub fail_first: Vec<(String, u32)>,
    /// url paths whose first GET (after the 503s) sends half its body,
    /// then closes the connection.
    pub cut_once: Vec<String>,
    /// Refuse Range requests (always send the whole file with 200).
    pub no_ranges: bool,
    /// Bytes per second per response (0: as fast as it goes).
    pub rate: u64,
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    /// First byte sent.
    pub start: u64,
    /// Body bytes actually sent.
    pub bytes: u64,
    /// Content-Length announced.
    pub length: u64,
}

/// python3's http.server on 127.0.0.1, a free port, serving `dir`; it
/// logs every request (one JSON object per line) to a file. Killed on drop.
pub struct HttpServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl HttpServer {
    pub fn start(dir: &Path, opts: &ServeOpts) -> HttpServer {
        loopback_up();
        let tmp = tempfile::Builder::new()
            .prefix("http.")
            .tempdir_in("/tmp")
            .unwrap();
        let script = tmp.path().join("serve.py");
        fs::write(&script, HTTP_PY).unwrap();
        let log = tmp.path().join("requests.jsonl");
        fs::write(&log, "").unwrap();
        let port_file = tmp.path().join("port");
        let mut paths = serde_json::Map::new();
        for (path, n) in &opts.fail_first {
            paths.insert(path.clone(), serde_json::json!({ "fail": n }));
        }
        for path in &opts.cut_once {
            let e = paths.entry(path.clone()).or_insert(serde_json::json!({}));
            e["cut"] = serde_json::Value::Bool(true);
        }
        let cfg = serde_json::json!({
            "dir": p(dir),
            "log": p(&log),
            "port_file": p(&port_file),
            "rate": opts.rate,
            "ranges": !opts.no_ranges,
            "paths": paths,
        });
        let cfg_file = tmp.path().join("cfg.json");
        fs::write(&cfg_file, cfg.to_string()).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&cfg_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let port = loop {
            if let Ok(s) = fs::read_to_string(&port_file) {
                break s.trim().parse().unwrap();
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("http server exited: {st}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "http server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        HttpServer {
            child,
            port,
            log,
            _tmp: tmp,
        }
    }

    /// `http://127.0.0.1:PORT/name`
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                Request {
                    method: v["method"].as_str().unwrap().into(),
                    path: v["path"].as_str().unwrap().into(),
                    range: v["range"].as_str().map(str::to_string),
                    status: v["status"].as_u64().unwrap() as u16,
                    start: v["start"].as_u64().unwrap(),
                    bytes: v["bytes"].as_u64().unwrap(),
                    length: v["length"].as_u64().unwrap(),
                }
            })
            .collect()
    }

    /// Requests for one url path (`/name`).
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Body bytes sent for one url path, over all requests.
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.requests_for(path).iter().map(|r| r.bytes).sum()
    }

    /// Requests per path (GET and HEAD).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.requests() {
            *m.entry(r.path).or_default() += 1;
        }
        m
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guest boots with `lo` down (connect to 127.0.0.1: "network is
/// unreachable"); bring it up. Idempotent.
pub fn loopback_up() {
    sh("ip", &["link", "set", "lo", "up"]);
}

/// A localhost port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    loopback_up();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Fetch a URL with curl (for the server's own sanity checks).
pub fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-s", "-S"])
        .args(args)
        .output()
        .unwrap()
}

/// Overwrite bytes of a file in place (to corrupt an image).
pub fn overwrite_at(path: &Path, offset: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(data).unwrap();
}
