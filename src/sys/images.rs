//! Reading OS images and writing them into a base LV: the parts that need
//! root (loop mounts, block devices, mkfs, qemu-img). The format logic
//! itself lives in `crate::image`; this is the thin system layer over it.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cmd::{Cmd, CmdError, Runner};
use super::inroot::{InRootError, Tree};
use super::loopdev::{self, LoopDev};
use super::mount::{Mounted, temp_mount_point};
use super::progress::Progress;
use crate::image::ImageError;
use crate::image::bundle;
use crate::image::detect::{Format, sniff};
use crate::image::sparse::{self, WriteStats};
use crate::image::tarball;

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Command(#[from] CmdError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    InRoot(#[from] InRootError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImagesError {
    let what = what.into();
    move |source| ImagesError::Io { what, source }
}

/// What imgbase learned about an image before touching any LV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageInfo {
    pub path: PathBuf,
    #[serde(flatten)]
    pub format: Format,
    /// Of the file as given (what `--sha256` and SHA256SUMS speak of).
    pub sha256: String,
    /// Bytes the base must hold at least.
    pub size: u64,
    /// About how much pool data writing it allocates.
    pub data_bytes: u64,
    /// Filesystem the base will hold, when known before writing.
    pub fs_type: Option<String>,
    /// The NVR the image records for itself.
    pub nvr: Option<String>,
}

/// How a fill writes: into a fresh (all-zero) LV, or over a snapshot of
/// the previous base, writing only blocks that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum FillMode {
    Fresh,
    Delta { old_len: u64 },
}

pub trait Images {
    /// Verify and describe an image. `want_nvr`: the caller has no NVR,
    /// so look inside even where that costs a conversion.
    fn inspect(
        &self,
        path: &Path,
        want_nvr: bool,
        progress: &Progress,
    ) -> Result<ImageInfo, ImagesError>;
    /// Write the image into `device` (an LV of `size` bytes).
    fn fill(
        &self,
        device: &str,
        image: &Path,
        format: &Format,
        size: u64,
        mode: FillMode,
        progress: &Progress,
    ) -> Result<WriteStats, ImagesError>;
    /// Grow the filesystem on `device` to the size of the device.
    fn grow(&self, device: &str, fs: &str) -> Result<(), ImagesError>;
    /// Run `f` on the root tree inside an inspected image, read-only,
    /// without writing it anywhere (for previews such as `update
    /// --dry-run`). A tar archive gives only its `etc/`. Formats that
    /// must be converted first are refused with [`ImagesError::Invalid`].
    fn with_root(
        &self,
        image: &Path,
        format: &Format,
        f: &mut dyn FnMut(&Path) -> Result<(), ImagesError>,
    ) -> Result<(), ImagesError> {
        let _ = (image, f);
        Err(ImagesError::Invalid(format!(
            "the tree inside {} is known only once it is written: import it first \
             (`imgbase base --add --from`) and compare against that base",
            describe(format)
        )))
    }
}

/// The filesystem name [`Images::grow`] takes for "probe the device first"
/// (a disk image whose whole disk may be a filesystem).
pub const PROBE_FS: &str = "auto";

/// The trait's defaults alone: formats without a readable tree.
struct NoRoot;

impl Images for NoRoot {
    fn inspect(&self, _: &Path, _: bool, _: &Progress) -> Result<ImageInfo, ImagesError> {
        unreachable!("only with_root is used")
    }
    fn fill(
        &self,
        _: &str,
        _: &Path,
        _: &Format,
        _: u64,
        _: FillMode,
        _: &Progress,
    ) -> Result<WriteStats, ImagesError> {
        unreachable!("only with_root is used")
    }
    fn grow(&self, _: &str, _: &str) -> Result<(), ImagesError> {
        unreachable!("only with_root is used")
    }
}

/// Where imgbased-built images record their NVR.
pub const NVR_FILE: &str = "usr/share/imgbase/build/meta/nvr";

pub struct RealImages<'r> {
    pub runner: &'r dyn Runner,
    /// Room for converted images (not /tmp: that is often RAM).
    pub work_dir: PathBuf,
    /// Converted images, deleted when the command ends.
    pub temps: std::cell::RefCell<Vec<tempfile::TempPath>>,
    /// Images opened by `inspect`, by the path shown to the operator:
    /// `fill` writes from the same open file, never the path again.
    opened: std::cell::RefCell<Vec<Opened>>,
}

impl<'r> RealImages<'r> {
    pub fn new(runner: &'r dyn Runner, work_dir: PathBuf) -> Self {
        RealImages {
            runner,
            work_dir,
            temps: Default::default(),
            opened: Default::default(),
        }
    }
}

/// An image file opened once. Everything after (hashing, parsing, qemu-img,
/// tar, the loop device, the write) reads this descriptor, through
/// `/proc/PID/fd/N` for tools, so a file swapped in at the path after it
/// was verified is never read. `stamp` catches a change of the file itself
/// (its ctime moves on any write) between the check and the write.
#[derive(Debug)]
struct Opened {
    shown: PathBuf,
    file: File,
    stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(f: &File) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = f.metadata()?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The path by which this process and its children reach an open file.
pub fn fd_path(f: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd()))
}

/// Open an image without blocking on a FIFO, and accept only a regular
/// file or a block device.
fn open_image_file(path: &Path) -> Result<File, ImagesError> {
    use rustix::fs::{FileType, OFlags};
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    let st =
        rustix::fs::fstat(&f).map_err(|e| io(format!("reading {}", path.display()))(e.into()))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile | FileType::BlockDevice => {}
        _ => {
            return Err(ImagesError::Invalid(format!(
                "{} is not a regular file: give the path of an image file",
                path.display()
            )));
        }
    }
    rustix::fs::fcntl_setfl(&f, OFlags::empty())
        .map_err(|e| io(format!("reading {}", path.display()))(e.into()))?;
    Ok(f)
}

/// Errors about `/proc/PID/fd/N` name the file the operator gave.
fn shown_as(e: ImageError, access: &Path, shown: &Path) -> ImageError {
    let fix = |p: PathBuf| if p == access { shown.to_path_buf() } else { p };
    match e {
        ImageError::UnknownFormat { path, detail } => ImageError::UnknownFormat {
            path: fix(path),
            detail,
        },
        ImageError::Io { what, path, source } => ImageError::Io {
            what,
            path: fix(path),
            source,
        },
        ImageError::BadBundle { path, reason } => ImageError::BadBundle {
            path: fix(path),
            reason,
        },
        ImageError::BundleFormat {
            path,
            format,
            supported,
        } => ImageError::BundleFormat {
            path: fix(path),
            format,
            supported,
        },
        other => other,
    }
}

fn tempdir(prefix: &str) -> Result<tempfile::TempDir, ImagesError> {
    temp_mount_point(prefix).map_err(io("temporary mount point"))
}

/// Mount options that let a possibly unclean or duplicate-UUID image be
/// read without being changed.
fn ro_options(fs: &str) -> &'static str {
    match fs {
        "xfs" => "loop,ro,nouuid,norecovery",
        "ext2" | "ext3" | "ext4" => "loop,ro,noload",
        _ => "loop,ro",
    }
}

/// sha256 of a file, and how many bytes of it are not all-zero blocks
/// (what writing it sparsely allocates), in one read.
fn scan(path: &Path, progress: &Progress) -> Result<(String, u64), ImagesError> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::FileExt;
    let reading = || io(format!("reading {}", path.display()));
    let f = File::open(path).map_err(reading())?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start("verify", total);
    let mut hash = Sha256::new();
    let zeros = vec![0u8; sparse::BLOCK];
    let mut buf = vec![0u8; sparse::BLOCK];
    let (mut pos, mut data) = (0u64, 0u64);
    // Holes (SEEK_HOLE) are hashed as the zeros they read as, without
    // reading them: most of a sparse image is holes.
    while pos < total {
        let (start, end) = sparse::next_data(&f, pos, total)?;
        let mut hole = start - pos;
        while hole > 0 {
            let n = hole.min(zeros.len() as u64);
            hash.update(&zeros[..n as usize]);
            hole -= n;
        }
        let mut off = start;
        while off < end {
            // Blocks aligned to BLOCK, as the write counts them.
            let stop = end.min((off / sparse::BLOCK as u64 + 1) * sparse::BLOCK as u64);
            let block = &mut buf[..(stop - off) as usize];
            f.read_exact_at(block, off).map_err(reading())?;
            hash.update(&*block);
            if !sparse::is_zero(block) {
                data += block.len() as u64;
            }
            off = stop;
            progress.update(off);
        }
        pos = end;
    }
    progress.finish();
    Ok((hex(&hash.finalize()), data))
}

/// Count the non-zero blocks of a stream (for admission), without a digest.
fn count_data(r: &mut dyn Read) -> std::io::Result<(u64, u64)> {
    let mut buf = vec![0u8; sparse::BLOCK];
    let (mut len, mut data) = (0u64, 0u64);
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            return Ok((len, data));
        }
        if buf[..n].iter().any(|&b| b != 0) {
            data += n as u64;
        }
        len += n as u64;
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RealImages<'_> {
    /// Mount a file read-only through a loop device bound to the open file
    /// itself (see [`loopdev`]); no device nodes or set-id bits from it.
    fn mount_file(
        &self,
        file: &File,
        label: &Path,
        dir: &Path,
        fs: &str,
    ) -> Result<(Mounted<'_>, LoopDev), ImagesError> {
        let dev = loopdev::attach(file, &label.display().to_string())
            .map_err(io(format!("a loop device for {}", label.display())))?;
        let opts = format!("{},nodev,nosuid,noexec", ro_options(fs));
        let m = Mounted::new(self.runner, &dev.path.display().to_string(), dir, &opts)?;
        Ok((m, dev))
    }

    /// The NVR recorded inside a filesystem image, if any. The NVR file is
    /// read from inside the image only, never through a link out of it.
    fn nvr_in_fs(
        &self,
        image: &File,
        label: &Path,
        fs: &str,
    ) -> Result<Option<String>, ImagesError> {
        let dir = tempdir("imgbase-img-")?;
        let (m, _dev) = self.mount_file(image, label, dir.path(), fs)?;
        let nvr = Tree::open(m.path())
            .map_err(io(format!("reading {}", label.display())))
            .and_then(|t| match t.read_small(Path::new(NVR_FILE), 4096) {
                Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.into()),
            });
        m.unmount()?;
        Ok(nvr?.filter(|s| !s.is_empty()))
    }

    /// Run `f` on the root filesystem image inside a liveimg squashfs,
    /// opened inside the squashfs (a link out of it is refused).
    fn with_liveimg<T>(
        &self,
        squashfs: &File,
        label: &Path,
        f: impl FnOnce(&File, &Path, &str) -> Result<T, ImagesError>,
    ) -> Result<T, ImagesError> {
        let dir = tempdir("imgbase-sqfs-")?;
        let (m, _dev) = self.mount_file(squashfs, label, dir.path(), "squashfs")?;
        let out = (|| {
            let tree = Tree::open(m.path()).map_err(io(format!("reading {}", label.display())))?;
            let rel = find_rootfs_img(&tree)?;
            let inner = tree.open_file(&rel)?;
            let access = fd_path(&inner);
            let shown = label.join(&rel);
            let fs = match sniff(&access).map_err(|e| shown_as(e, &access, &shown))? {
                Format::Filesystem { fs } => fs,
                other => {
                    return Err(ImagesError::Invalid(format!(
                        "{} holds {} as its root image, not an ext4 or xfs filesystem",
                        label.display(),
                        describe(&other)
                    )));
                }
            };
            f(&inner, &shown, &fs)
        })();
        m.unmount()?;
        out
    }

    /// Size and allocated bytes of a disk image, refusing one that would
    /// make qemu-img read any other file: a backing file, an external data
    /// file, or VMDK extents outside the image itself.
    fn qemu_info(&self, access: &Path, shown: &Path, fmt: &str) -> Result<(u64, u64), ImagesError> {
        let out = self.runner.run(&Cmd::new("qemu-img").args([
            "info",
            "--output=json",
            "-f",
            fmt,
            &access.display().to_string(),
        ]))?;
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .map_err(|e| ImagesError::Invalid(format!("qemu-img info: {e}")))?;
        if let Some(file) = external_file(&v, &access.display().to_string()) {
            return Err(ImagesError::Invalid(format!(
                "{} refers to another file ({file}); imgbase only imports self-contained \
                 images: flatten it with `qemu-img convert -O qcow2` first",
                shown.display()
            )));
        }
        let virt = v["virtual-size"].as_u64().unwrap_or(0);
        let actual = v["actual-size"].as_u64().unwrap_or(virt);
        if virt == 0 {
            return Err(ImagesError::Invalid(format!(
                "{}: qemu-img reports no size",
                shown.display()
            )));
        }
        Ok((virt, actual.min(virt)))
    }
}

/// A file other than `itself` that a `qemu-img info` report says the
/// image reads.
fn external_file(v: &serde_json::Value, itself: &str) -> Option<String> {
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(String::from);
    if let Some(b) = s("/backing-filename").or_else(|| s("/full-backing-filename")) {
        return Some(b);
    }
    if let Some(d) = s("/format-specific/data/data-file") {
        return Some(d);
    }
    let extents = v
        .pointer("/format-specific/data/extents")
        .and_then(|e| e.as_array())?;
    extents
        .iter()
        .filter_map(|e| e.get("filename").and_then(|f| f.as_str()))
        .find(|f| *f != itself)
        .map(String::from)
}

/// `LiveOS/rootfs.img`, or the one `*/*.img` (as imgbased finds it),
/// relative to the squashfs root.
fn find_rootfs_img(tree: &Tree) -> Result<PathBuf, ImagesError> {
    let preferred = Path::new("LiveOS/rootfs.img");
    if tree.kind(preferred).is_some() {
        return Ok(preferred.to_path_buf());
    }
    let mut found = Vec::new();
    for d in tree.read_dir(Path::new(""))? {
        if tree.kind(Path::new(&d)) != Some(super::inroot::Kind::Dir) {
            continue;
        }
        for f in tree.read_dir(Path::new(&d)).unwrap_or_default() {
            if f.ends_with(".img") {
                found.push(Path::new(&d).join(f));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        _ => Err(ImagesError::Invalid(
            "this squashfs is not a liveimg: it has no LiveOS/rootfs.img".into(),
        )),
    }
}

pub fn describe(f: &Format) -> String {
    match f {
        Format::Squashfs => "a squashfs liveimg".into(),
        Format::Filesystem { fs } => format!("an {fs} filesystem image"),
        Format::Disk { qemu_format } => format!("a {qemu_format} disk image"),
        Format::Tar { compression } => format!("a tar archive ({compression:?})").to_lowercase(),
        Format::Bundle => "an imgbase bundle".into(),
    }
}

impl RealImages<'_> {
    /// A disk image as a sparse raw file in the work dir, to look inside.
    /// The raw file is ours (root's cache), opened and remembered like any
    /// image.
    fn convert_to_raw(&self, access: &Path, fmt: &str) -> Result<PathBuf, ImagesError> {
        std::fs::create_dir_all(&self.work_dir)
            .map_err(io(format!("creating {}", self.work_dir.display())))?;
        let temp = tempfile::Builder::new()
            .prefix("imgbase-raw-")
            .tempfile_in(&self.work_dir)
            .map_err(io(format!("a file in {}", self.work_dir.display())))?
            .into_temp_path();
        self.runner.run(&Cmd::new("qemu-img").args([
            "convert",
            "-f",
            fmt,
            "-O",
            "raw",
            &access.display().to_string(),
            &temp.display().to_string(),
        ]))?;
        let raw = temp.to_path_buf();
        self.temps.borrow_mut().push(temp);
        self.remember(&raw)?;
        Ok(raw)
    }

    /// Open `path` once and remember it; returns its `/proc` path.
    fn remember(&self, path: &Path) -> Result<PathBuf, ImagesError> {
        let file = open_image_file(path)?;
        let stamp = Stamp::of(&file).map_err(io(format!("reading {}", path.display())))?;
        let access = fd_path(&file);
        self.opened.borrow_mut().push(Opened {
            shown: path.to_path_buf(),
            file,
            stamp,
        });
        Ok(access)
    }

    /// The file `inspect` opened as `shown`, and its `/proc` path.
    fn recall<T>(
        &self,
        shown: &Path,
        f: impl FnOnce(&File, &Path) -> Result<T, ImagesError>,
    ) -> Result<T, ImagesError> {
        // A second handle of the same open file: `f` may open more images.
        let (file, stamp) = {
            let opened = self.opened.borrow();
            let o = opened
                .iter()
                .rev()
                .find(|o| o.shown == shown)
                .ok_or_else(|| {
                    ImagesError::Invalid(format!(
                        "{} was not inspected before being written (imgbase bug)",
                        shown.display()
                    ))
                })?;
            let file = o
                .file
                .try_clone()
                .map_err(io(format!("reading {}", shown.display())))?;
            (file, o.stamp.clone())
        };
        let out = f(&file, &fd_path(&file))?;
        // Any write to the file since it was opened moved its ctime.
        let now = Stamp::of(&file).map_err(io(format!("reading {}", shown.display())))?;
        if now != stamp {
            return Err(ImagesError::Invalid(format!(
                "{} changed while it was being imported; import it again once nothing \
                 writes to it",
                shown.display()
            )));
        }
        Ok(out)
    }
}

impl Images for RealImages<'_> {
    fn inspect(
        &self,
        path: &Path,
        want_nvr: bool,
        progress: &Progress,
    ) -> Result<ImageInfo, ImagesError> {
        let access = self.remember(path)?;
        self.recall(path, |file, access| {
            self.inspect_open(file, access, path, want_nvr, progress)
        })
        .map_err(|e| match e {
            ImagesError::Image(e) => ImagesError::Image(shown_as(e, access.as_path(), path)),
            other => other,
        })
    }

    fn fill(
        &self,
        device: &str,
        image: &Path,
        format: &Format,
        size: u64,
        mode: FillMode,
        progress: &Progress,
    ) -> Result<WriteStats, ImagesError> {
        self.recall(image, |file, access| {
            self.fill_open(device, file, access, image, format, size, mode, progress)
        })
    }

    fn with_root(
        &self,
        image: &Path,
        format: &Format,
        f: &mut dyn FnMut(&Path) -> Result<(), ImagesError>,
    ) -> Result<(), ImagesError> {
        self.recall(image, |file, access| match format {
            Format::Filesystem { fs } => {
                let dir = tempdir("imgbase-img-")?;
                let (m, _dev) = self.mount_file(file, image, dir.path(), fs)?;
                let out = f(m.path());
                m.unmount()?;
                out
            }
            Format::Squashfs => self.with_liveimg(file, image, |inner, shown, fs| {
                let dir = tempdir("imgbase-img-")?;
                let (m, _dev) = self.mount_file(inner, shown, dir.path(), fs)?;
                let out = f(m.path());
                m.unmount()?;
                out
            }),
            Format::Tar { compression } => {
                std::fs::create_dir_all(&self.work_dir)
                    .map_err(io(format!("creating {}", self.work_dir.display())))?;
                let dir = tempfile::Builder::new()
                    .prefix("imgbase-etc-")
                    .tempdir_in(&self.work_dir)
                    .map_err(io(format!("a directory in {}", self.work_dir.display())))?;
                let mut r = tarball::open(access, *compression).map_err(io("opening the tar"))?;
                tarball::unpack_etc(&mut r, dir.path())?;
                f(dir.path())
            }
            other => Images::with_root(&NoRoot, image, other, f),
        })
    }

    fn grow(&self, device: &str, fs: &str) -> Result<(), ImagesError> {
        if fs == PROBE_FS {
            // -p: probe the device itself, not the blkid cache.
            let out = self
                .runner
                .output(&Cmd::new("blkid").args(["-p", "-o", "value", "-s", "TYPE", device]))?;
            let found = out.stdout.trim();
            if found.is_empty() || found == PROBE_FS {
                tracing::info!(
                    device,
                    "no filesystem on the whole disk (partitioned?); not grown"
                );
                return Ok(());
            }
            return self.grow(device, found);
        }
        match fs {
            "ext2" | "ext3" | "ext4" => {
                super::fs::fsck_ext(self.runner, device)?;
                self.runner.run(&Cmd::new("resize2fs").arg(device))?;
            }
            "xfs" => {
                let dir = tempdir("imgbase-grow-")?;
                let m = Mounted::new(self.runner, device, dir.path(), "nouuid")?;
                self.runner
                    .run(&Cmd::new("xfs_growfs").arg(m.path().display().to_string()))?;
                m.unmount()?;
            }
            other => tracing::warn!(
                device,
                fs = other,
                "cannot grow this filesystem; left as is"
            ),
        }
        Ok(())
    }
}

impl RealImages<'_> {
    fn inspect_open(
        &self,
        file: &File,
        access: &Path,
        shown: &Path,
        want_nvr: bool,
        progress: &Progress,
    ) -> Result<ImageInfo, ImagesError> {
        let format = sniff(access)?;
        if matches!(&format, Format::Disk { qemu_format } if qemu_format == "vmdk")
            && is_vmdk_descriptor(file)
        {
            // A text descriptor holds no data: its extents name other files
            // (any file on the host), which qemu-img would read.
            return Err(ImagesError::Invalid(format!(
                "{} is a VMDK descriptor whose data lives in other files (its extents); \
                 imgbase imports only self-contained images: make one with \
                 `qemu-img convert -O qcow2`",
                shown.display()
            )));
        }
        let (sha256, file_data) = scan(access, progress)?;
        let file_len = Stamp::of(file)
            .map_err(io(format!("reading {}", shown.display())))?
            .size;
        let mut info = ImageInfo {
            path: shown.to_path_buf(),
            format: format.clone(),
            sha256,
            size: file_len,
            data_bytes: file_data,
            fs_type: None,
            nvr: None,
        };
        match &format {
            Format::Filesystem { fs } => {
                info.fs_type = Some(fs.clone());
                info.nvr = self.nvr_in_fs(file, shown, fs)?;
            }
            Format::Squashfs => {
                let (size, data, fs, nvr) =
                    self.with_liveimg(file, shown, |inner, label, fs| {
                        let size = Stamp::of(inner).map_err(io("rootfs.img"))?.size;
                        let mut r = inner;
                        let (_, data) = count_data(&mut r).map_err(io("reading rootfs.img"))?;
                        Ok((
                            size,
                            data,
                            fs.to_string(),
                            self.nvr_in_fs(inner, label, fs)?,
                        ))
                    })?;
                (info.size, info.data_bytes, info.fs_type, info.nvr) = (size, data, Some(fs), nvr);
            }
            Format::Disk { qemu_format } => {
                let (virt, actual) = self.qemu_info(access, shown, qemu_format)?;
                (info.size, info.data_bytes) = (virt, actual);
                // The NVR is inside the disk's filesystem: convert once to
                // raw and import that (written sparsely, delta-capable).
                if want_nvr {
                    let raw = self.convert_to_raw(access, qemu_format)?;
                    // The /proc path lives as long as the handle `recall`
                    // lends: use it inside only.
                    let found = self.recall(&raw, |f, a| match sniff(a)? {
                        Format::Filesystem { fs } => Ok(Some((self.nvr_in_fs(f, &raw, &fs)?, fs))),
                        _ => Ok(None),
                    })?;
                    if let Some((nvr, fs)) = found {
                        info.nvr = nvr;
                        info.fs_type = Some(fs.clone());
                        info.format = Format::Filesystem { fs };
                        info.path = raw;
                    }
                }
            }
            Format::Tar { compression } => {
                let mut r = tarball::open(access, *compression).map_err(io("opening the tar"))?;
                let (summary, nvr) = tarball::validate_and_read(&mut r, NVR_FILE)?;
                info.nvr = nvr
                    .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                    .filter(|s| !s.is_empty());
                // Room for the files, their inodes and the journal.
                // (a journal and inode tables of a few MiB for small trees).
                let meta = summary.entries * 4096 + (8 << 20);
                info.data_bytes = summary.bytes + meta;
                info.size = round_up(summary.bytes + summary.bytes / 4 + meta, 1 << 20);
                info.fs_type = Some("ext4".into());
            }
            Format::Bundle => {
                let (manifest, mut r) = bundle::open_image(access)?;
                let mut hashing = crate::image::digest::HashingReader::new(&mut r);
                let (len, data) = count_data(&mut hashing).map_err(io("reading the bundle"))?;
                let digest = hashing.finish();
                if digest != manifest.sha256 || len != manifest.size {
                    return Err(ImagesError::Invalid(format!(
                        "bundle {} is corrupt: its image does not match its manifest \
                         (sha256 {digest}, {len} bytes; manifest says {}, {} bytes)",
                        shown.display(),
                        manifest.sha256,
                        manifest.size
                    )));
                }
                info.size = manifest.size;
                info.data_bytes = data;
                info.fs_type = manifest.fs_type.clone();
                info.nvr = Some(format!(
                    "{}-{}-{}",
                    manifest.name, manifest.version, manifest.release
                ));
            }
        }
        Ok(info)
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_open(
        &self,
        device: &str,
        file: &File,
        access: &Path,
        shown: &Path,
        format: &Format,
        size: u64,
        mode: FillMode,
        progress: &Progress,
    ) -> Result<WriteStats, ImagesError> {
        let open_dev = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(device)
                .map_err(io(format!("opening {device}")))
        };
        let write_file = |f: &File| -> Result<WriteStats, ImagesError> {
            let dst = open_dev()?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            progress.start("write", len);
            let mut tick = |n: u64| progress.update(n);
            let stats = match mode {
                FillMode::Fresh => sparse::copy_file_sparse(f, &dst, size, &mut tick)?,
                FillMode::Delta { old_len } => {
                    // From the start, whatever was read of it before.
                    let mut src = std::io::BufReader::new(
                        f.try_clone()
                            .map_err(io(format!("reading {}", shown.display())))?,
                    );
                    std::io::Seek::rewind(&mut src)
                        .map_err(io(format!("reading {}", shown.display())))?;
                    let mut discard = |off: u64, len: u64| punch(&dst, off, len);
                    sparse::copy_delta(&mut src, &dst, size, old_len, &mut discard, &mut tick)?
                }
            };
            progress.finish();
            Ok(stats)
        };
        match format {
            Format::Filesystem { .. } => write_file(file),
            Format::Squashfs => self.with_liveimg(file, shown, |inner, _, _| write_file(inner)),
            Format::Bundle => {
                let (manifest, r) = bundle::open_image(access)?;
                let dst = open_dev()?;
                progress.start("write", manifest.size);
                let mut hashing = crate::image::digest::HashingReader::new(r);
                let mut tick = |n: u64| progress.update(n);
                let stats = match mode {
                    FillMode::Fresh => sparse::copy_sparse(&mut hashing, &dst, size, &mut tick)?,
                    FillMode::Delta { old_len } => {
                        let mut discard = |off: u64, len: u64| punch(&dst, off, len);
                        sparse::copy_delta(
                            &mut hashing,
                            &dst,
                            size,
                            old_len,
                            &mut discard,
                            &mut tick,
                        )?
                    }
                };
                progress.finish();
                if hashing.finish() != manifest.sha256 {
                    return Err(ImagesError::Invalid(format!(
                        "bundle {} changed while it was being imported",
                        shown.display()
                    )));
                }
                Ok(stats)
            }
            Format::Disk { qemu_format } => {
                // qemu-img streams the conversion and, told the target is
                // zero, writes only data.
                self.runner.run(&Cmd::new("qemu-img").args([
                    "convert",
                    "-n",
                    "--target-is-zero",
                    "-f",
                    qemu_format,
                    "-O",
                    "raw",
                    &access.display().to_string(),
                    device,
                ]))?;
                Ok(WriteStats::default())
            }
            Format::Tar { .. } => {
                self.runner.run(&Cmd::new("mkfs.ext4").args([
                    "-q",
                    "-F",
                    "-E",
                    "nodiscard",
                    device,
                ]))?;
                let dir = tempdir("imgbase-tar-")?;
                let m = Mounted::new(self.runner, device, dir.path(), "rw")?;
                progress.start("extract", 0);
                // GNU tar keeps owners, modes, hardlinks, device nodes,
                // xattrs (SELinux labels among them) and ACLs; the archive
                // it reads (the same open file) was validated against
                // escapes before any LV existed.
                self.runner.run(&Cmd::new("tar").args([
                    "--extract",
                    "--file",
                    &access.display().to_string(),
                    "--directory",
                    &m.path().display().to_string(),
                    "--preserve-permissions",
                    "--same-owner",
                    "--numeric-owner",
                    "--xattrs",
                    "--xattrs-include=*",
                    "--acls",
                ]))?;
                progress.finish();
                m.unmount()?;
                Ok(WriteStats::default())
            }
        }
    }
}

/// Whether a VMDK file is a text descriptor (its data in other files)
/// rather than a sparse file with its descriptor embedded.
fn is_vmdk_descriptor(f: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 21];
    f.read_exact_at(&mut head, 0).is_ok() && &head == b"# Disk DescriptorFile"
}

/// Give a range of a thin LV back to the pool (reads as zeros after).
fn punch(dev: &File, off: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    fallocate(
        dev,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        off,
        len,
    )
    .map_err(std::io::Error::from)
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_sparse_image_hashes_as_its_bytes_and_counts_only_its_data() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        let f = File::create(&p).unwrap();
        let block = sparse::BLOCK as u64;
        // Data, a hole, data straddling a block edge, a trailing hole.
        f.write_all_at(&[7u8; 5000], 0).unwrap();
        f.write_all_at(&[9u8; 3000], 3 * block - 1000).unwrap();
        f.set_len(6 * block + 123).unwrap();
        drop(f);
        let bytes = std::fs::read(&p).unwrap();
        let (sum, data) = scan(&p, &Progress::silent()).unwrap();
        assert_eq!(sum, hex(&Sha256::digest(&bytes)));
        // Whole blocks holding any data: the first, and the two the
        // second write straddles (at most; a filesystem without holes
        // reads the rest as zeros, which are not data either).
        assert!(data <= 3 * block && data >= 3000, "{data}");
        let empty = d.path().join("empty");
        File::create(&empty).unwrap();
        let (sum, data) = scan(&empty, &Progress::silent()).unwrap();
        assert_eq!(sum, hex(&Sha256::digest(b"")));
        assert_eq!(data, 0);
    }
}
