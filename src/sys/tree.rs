//! Reading a mounted layer's tree into a [`Manifest`] and changing it by
//! [`Op`]s, for carrying `/etc` and `/var` over to a new layer.
//!
//! Layers are untrusted: a symlink in one (`etc/ssh -> ../../../root`)
//! must never lead imgbase elsewhere. Every directory is resolved beneath
//! the layer's root following no symlink at all (openat2 `RESOLVE_BENEATH
//! | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`, see [`open_beneath`]), and
//! every read or change of an entry is an `*at` call on that directory's
//! descriptor, never following the entry itself. Nothing on another
//! filesystem (a volume mounted inside the layer) is read or changed.
//!
//! Extended attributes are read and set through `/proc/self/fd/N` of the
//! entry's descriptor: the only way to reach a symlink's or a device's
//! attributes without following or opening it. `/proc` must be mounted.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, ResolveFlags, Stat, Uid};
use rustix::io::Errno;

use crate::carry::{Kind, Manifest, Meta, Op, imgnew};
use crate::image::digest::{hex, sha256_read};
use crate::sys::inroot::open_beneath;

/// Why a layer's tree could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{}: {source}", shown(.root, .path))]
    Io {
        root: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} goes through a symlink or onto another filesystem; imgbase follows no link in a layer",
        shown(.root, .path)
    )]
    Escapes { root: PathBuf, path: PathBuf },
    #[error(
        "{} is on another filesystem (a volume mounted there); imgbase leaves it alone",
        shown(.root, .path)
    )]
    OtherFs { root: PathBuf, path: PathBuf },
    #[error(
        "{} is a directory; only a non-directory can be replaced (set the directory aside first)",
        shown(.root, .path)
    )]
    DirInTheWay { root: PathBuf, path: PathBuf },
    #[error("{} is missing", shown(.root, .path))]
    Missing { root: PathBuf, path: PathBuf },
    #[error("{}: {what}", shown(.root, .path))]
    Unsupported {
        root: PathBuf,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{}: not a relative path inside a layer (no `..`, no `/` at the start)", .0.display())]
    BadPath(PathBuf),
}

fn shown(root: &Path, path: &Path) -> String {
    root.join(path).display().to_string()
}

/// Everything under `root/sub` (`sub` included), by path relative to
/// `root`. A missing `sub` gives an empty manifest; symlinks are recorded,
/// never followed; volumes mounted inside are left out.
pub fn manifest(root: &Path, sub: &Path) -> Result<Manifest, TreeError> {
    let layer = Layer::open(root)?;
    let mut out = Manifest::new();
    layer.walk(sub, &mut |node| {
        out.insert(node.rel.to_path_buf(), layer.read(node, true)?.0);
        Ok(Next::Descend)
    })?;
    Ok(out)
}

/// The uids and gids owning anything under `root/sub` for each of `subs`.
pub fn owners(root: &Path, subs: &[&Path]) -> Result<(BTreeSet<u32>, BTreeSet<u32>), TreeError> {
    let layer = Layer::open(root)?;
    let (mut uids, mut gids) = (BTreeSet::new(), BTreeSet::new());
    for sub in subs {
        layer.walk(sub, &mut |node| {
            uids.insert(node.st.st_uid);
            gids.insert(node.st.st_gid);
            Ok(Next::Descend)
        })?;
    }
    Ok((uids, gids))
}

/// Run `ops` in their order on `target_root` (the new layer, mounted
/// read-write), copying from `admin_root` where asked. Each op can run
/// again after a crash with the same result. Returns notes for the report.
pub fn apply(admin_root: &Path, target_root: &Path, ops: &[Op]) -> Result<Vec<String>, TreeError> {
    let admin = Layer::open(admin_root)?;
    let target = Layer::open(target_root)?;
    let mut notes = Vec::new();
    for op in ops {
        match op {
            Op::SetAside { path } => target.set_aside(&admin, path)?,
            Op::CopyFromAdmin { path } => target.copy_from(&admin, path)?,
            Op::Write {
                path,
                content,
                meta,
            } => target.write(path, content.as_bytes(), meta)?,
            Op::Remove { path } => notes.extend(target.remove(path)?),
        }
    }
    target.sync()?;
    Ok(notes)
}

/// Copy everything under `src_root/sub` that `dst_root` lacks at the same
/// path, with its metadata; nothing in `dst_root` is changed. Where `dst`
/// has a symlink or a non-directory in place of a directory of `src`, that
/// subtree is skipped. Returns the paths added, parents first.
pub fn add_missing(
    src_root: &Path,
    dst_root: &Path,
    sub: &Path,
) -> Result<Vec<PathBuf>, TreeError> {
    let src = Layer::open(src_root)?;
    let dst = Layer::open(dst_root)?;
    let mut added = Vec::new();
    src.walk(sub, &mut |node| {
        let slot = match dst.slot(node.rel) {
            Ok(Some(slot)) => slot,
            Ok(None) | Err(TreeError::Escapes { .. } | TreeError::OtherFs { .. }) => {
                return Ok(Next::Prune);
            }
            Err(e) => return Err(e),
        };
        if let Some(st) = &slot.st {
            let both_dirs = is_dir(st) && is_dir(&node.st);
            return Ok(if both_dirs {
                Next::Descend
            } else {
                Next::Prune
            });
        }
        let (meta, obj) = src.read(node, false)?;
        let body = src.body(node, meta.kind, obj)?;
        dst.place(&slot, body, &meta, false)?;
        added.push(node.rel.to_path_buf());
        Ok(Next::Descend)
    })?;
    dst.sync()?;
    Ok(added)
}

/// Resolution of every directory in a layer: beneath its root, through no
/// symlink, onto no other filesystem.
const HOW: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// The name temporary objects get beside the one they replace; a leftover
/// from a crash is removed by the next write in that directory.
const TMP: &str = ".imgbase-tmp";

/// Reads of files being hashed: most in `/etc` are small.
const CHUNK: usize = 64 << 10;

/// A mounted layer.
struct Layer {
    root: PathBuf,
    fd: OwnedFd,
    dev: u64,
}

/// An entry found in a directory of the layer.
struct Node<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    rel: &'a Path,
    st: Stat,
}

/// A path of the layer: its directory (opened beneath the root) and what
/// is there now, if anything.
struct Slot<'p> {
    dir: OwnedFd,
    name: &'p OsStr,
    rel: &'p Path,
    st: Option<Stat>,
}

impl Slot<'_> {
    fn node(&self) -> Option<Node<'_>> {
        Some(Node {
            dir: self.dir.as_fd(),
            name: self.name,
            rel: self.rel,
            st: self.st?,
        })
    }
}

/// Whether a walk goes into a directory it has visited.
#[derive(PartialEq, Eq)]
enum Next {
    Descend,
    Prune,
}

/// What a new object is made of.
enum Body<'a> {
    Bytes(&'a [u8]),
    Copy(File),
    Dir,
    Symlink(OsString),
    Special(FileType, u64),
}

impl Layer {
    fn open(root: &Path) -> Result<Layer, TreeError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let opened = rustix::fs::open(root, flags, Mode::empty())
            .and_then(|fd| Ok((rustix::fs::fstat(&fd)?.st_dev, fd)));
        let (dev, fd) = opened.map_err(|e| TreeError::Io {
            root: root.to_path_buf(),
            path: PathBuf::new(),
            source: e.into(),
        })?;
        Ok(Layer {
            root: root.to_path_buf(),
            fd,
            dev,
        })
    }

    fn err(&self, rel: &Path, e: impl Into<io::Error>) -> TreeError {
        let (root, path, source) = (self.root.clone(), rel.to_path_buf(), e.into());
        let escaped = [Errno::LOOP, Errno::XDEV].map(|e| Some(e.raw_os_error()));
        if escaped.contains(&source.raw_os_error()) {
            TreeError::Escapes { root, path }
        } else {
            TreeError::Io { root, path, source }
        }
    }

    fn io<E: Into<io::Error>>(&self, rel: &Path) -> impl FnOnce(E) -> TreeError {
        move |e| self.err(rel, e)
    }

    /// A directory of the layer (`""` is the root), as an `O_PATH` fd.
    fn dir(&self, rel: &Path) -> rustix::io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        if rel.as_os_str().is_empty() {
            rustix::fs::openat(&self.fd, ".", flags | OFlags::CLOEXEC, Mode::empty())
        } else {
            open_beneath(&self.fd, rel, flags, HOW)
        }
    }

    /// The slot of `rel`; None when its directory is missing. An entry on
    /// another filesystem is an error: it is never read or replaced.
    fn slot<'p>(&self, rel: &'p Path) -> Result<Option<Slot<'p>>, TreeError> {
        let (parent, name) = split(rel)?;
        let dir = match self.dir(parent) {
            Ok(dir) => dir,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(self.err(parent, e)),
        };
        let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev != self.dev => {
                return Err(TreeError::OtherFs {
                    root: self.root.clone(),
                    path: rel.to_path_buf(),
                });
            }
            Ok(st) => Some(st),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(self.err(rel, e)),
        };
        Ok(Some(Slot { dir, name, rel, st }))
    }

    /// Visit `sub` and everything under it, parents first, in name order.
    fn walk(
        &self,
        sub: &Path,
        visit: &mut dyn FnMut(&Node<'_>) -> Result<Next, TreeError>,
    ) -> Result<(), TreeError> {
        match self.slot(sub)?.as_ref().and_then(Slot::node) {
            Some(node) => self.visit(&node, visit),
            None => Ok(()), // a missing `sub` is an empty tree
        }
    }

    fn visit(
        &self,
        node: &Node<'_>,
        visit: &mut dyn FnMut(&Node<'_>) -> Result<Next, TreeError>,
    ) -> Result<(), TreeError> {
        if visit(node)? == Next::Prune || !is_dir(&node.st) {
            return Ok(());
        }
        let dir = open_dir(node.dir, node.name).map_err(self.io(node.rel))?;
        for name in entries(&dir).map_err(self.io(node.rel))? {
            let rel = node.rel.join(&name);
            let st = match rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.err(&rel, e)),
            };
            // A volume mounted here is no part of this layer.
            if st.st_dev != self.dev {
                continue;
            }
            let child = Node {
                dir: dir.as_fd(),
                name: &name,
                rel: &rel,
                st,
            };
            self.visit(&child, visit)?;
        }
        Ok(())
    }

    /// The entry's metadata (a file's hash only if `hash`), and the entry
    /// opened: a regular file for reading, anything else as `O_PATH`.
    fn read(&self, node: &Node<'_>, hash: bool) -> Result<(Meta, File), TreeError> {
        let kind = self.kind(node)?;
        let obj = self.open_node(node, kind)?;
        let content = match kind {
            Kind::File if hash => {
                sha256_read(&mut &obj, CHUNK, &mut |_| ()).map_err(self.io(node.rel))?
            }
            Kind::Symlink => self.link(node)?.to_string_lossy().into_owned(),
            Kind::CharDevice | Kind::BlockDevice => {
                let dev = node.st.st_rdev;
                format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev))
            }
            _ => String::new(),
        };
        let meta = Meta {
            kind,
            mode: node.st.st_mode & 0o7777,
            uid: node.st.st_uid,
            gid: node.st.st_gid,
            xattrs: xattrs(obj.as_fd()).map_err(self.io(node.rel))?,
            content,
        };
        Ok((meta, obj))
    }

    fn kind(&self, node: &Node<'_>) -> Result<Kind, TreeError> {
        kind_of(&node.st).ok_or_else(|| TreeError::Unsupported {
            root: self.root.clone(),
            path: node.rel.to_path_buf(),
            what: "of an unknown file type",
        })
    }

    /// Open the entry without following it, and check it is still the one
    /// stat'ed (it was not swapped for another in between).
    fn open_node(&self, node: &Node<'_>, kind: Kind) -> Result<File, TreeError> {
        let flags = match kind {
            // Non-blocking: were it swapped for a FIFO, open would hang.
            Kind::File => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            _ => OFlags::PATH,
        };
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(node.dir, node.name, flags, Mode::empty())
            .map_err(self.io(node.rel))?;
        let st = rustix::fs::fstat(&fd).map_err(self.io(node.rel))?;
        if (st.st_dev, st.st_ino) != (node.st.st_dev, node.st.st_ino) {
            let changed = io::Error::other("changed while being read");
            return Err(self.err(node.rel, changed));
        }
        Ok(File::from(fd))
    }

    fn link(&self, node: &Node<'_>) -> Result<OsString, TreeError> {
        let target = rustix::fs::readlinkat(node.dir, node.name, Vec::new());
        let target = target.map_err(self.io(node.rel))?;
        Ok(OsString::from_vec(target.into_bytes()))
    }

    /// What a copy of the entry is made of.
    fn body(&self, node: &Node<'_>, kind: Kind, obj: File) -> Result<Body<'static>, TreeError> {
        Ok(match kind {
            Kind::File => Body::Copy(obj),
            Kind::Dir => Body::Dir,
            Kind::Symlink => Body::Symlink(self.link(node)?),
            _ => Body::Special(file_type(kind), node.st.st_rdev),
        })
    }

    /// Put a new object made of `body` with `meta` at the slot: built under
    /// a temporary name, then renamed into place, so a crash leaves either
    /// the old object or the whole new one. Only a missing entry or (with
    /// `replace`) a non-directory is replaced.
    fn place(
        &self,
        slot: &Slot<'_>,
        body: Body<'_>,
        meta: &Meta,
        replace: bool,
    ) -> Result<(), TreeError> {
        let dir = slot.dir.as_fd();
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        let build = || -> io::Result<()> {
            clear_tmp(dir)?;
            let obj = create(dir, body)?;
            set_meta(obj.as_fd(), meta)?;
            if meta.kind == Kind::File {
                rustix::fs::fsync(&obj)?;
            }
            Ok(rustix::fs::renameat_with(dir, TMP, dir, slot.name, flags)?)
        };
        let built = build();
        if built.is_err() {
            let _ = clear_tmp(dir); // best effort: the next write clears it too
        }
        built.map_err(self.io(slot.rel))
    }

    /// `SetAside`: move the object at `rel` to `<rel>.imgnew`, replacing
    /// an older one. Run again after the admin's copy took its place, it
    /// does nothing (else it would set the admin's copy aside).
    fn set_aside(&self, admin: &Layer, rel: &Path) -> Result<(), TreeError> {
        let Some(slot) = self.slot(rel)? else {
            return Ok(());
        };
        let Some(node) = slot.node() else {
            return Ok(()); // already set aside, or never there
        };
        let aside = imgnew(Path::new(slot.name)).into_os_string();
        let aside_rel = rel.with_file_name(&aside);
        let dir = slot.dir.as_fd();
        if exists(dir, &aside).map_err(self.io(&aside_rel))? {
            if Some(self.read(&node, true)?.0) == admin.meta_at(rel)? {
                return Ok(());
            }
            self.remove_all(dir, &aside, &aside_rel)?;
        }
        rustix::fs::renameat(dir, slot.name, dir, &aside).map_err(self.io(rel))
    }

    /// The metadata of `rel`, if it is there.
    fn meta_at(&self, rel: &Path) -> Result<Option<Meta>, TreeError> {
        let slot = self.slot(rel)?;
        let node = slot.as_ref().and_then(Slot::node);
        node.map(|node| Ok(self.read(&node, true)?.0)).transpose()
    }

    /// Remove an entry and, for a directory, all it holds, following no
    /// symlink and touching no other filesystem.
    fn remove_all(&self, dir: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> Result<(), TreeError> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.err(rel, e)),
        };
        if st.st_dev != self.dev {
            return Err(TreeError::OtherFs {
                root: self.root.clone(),
                path: rel.to_path_buf(),
            });
        }
        if !is_dir(&st) {
            return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(self.io(rel));
        }
        let sub = open_dir(dir, name).map_err(self.io(rel))?;
        for child in entries(&sub).map_err(self.io(rel))? {
            self.remove_all(sub.as_fd(), &child, &rel.join(&child))?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(self.io(rel))
    }

    /// `CopyFromAdmin`: the admin's object at `rel`, with its metadata. A
    /// directory already there only gets the metadata.
    fn copy_from(&self, admin: &Layer, rel: &Path) -> Result<(), TreeError> {
        let src = admin.slot(rel)?;
        let node = src.as_ref().and_then(Slot::node);
        let node = node.ok_or_else(|| admin.missing(rel))?;
        let (meta, obj) = admin.read(&node, false)?;
        let slot = self.slot(rel)?.ok_or_else(|| self.missing(parent(rel)))?;
        match &slot.st {
            Some(st) if is_dir(st) && meta.kind == Kind::Dir => {
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let dir = rustix::fs::openat(&slot.dir, slot.name, flags, Mode::empty());
                set_meta(dir.map_err(self.io(rel))?.as_fd(), &meta).map_err(self.io(rel))
            }
            Some(st) if is_dir(st) => Err(self.dir_in_the_way(rel)),
            Some(_) if meta.kind == Kind::Dir => {
                // A directory cannot be renamed over a non-directory.
                rustix::fs::unlinkat(&slot.dir, slot.name, AtFlags::empty())
                    .map_err(self.io(rel))?;
                self.place(&slot, Body::Dir, &meta, false)
            }
            _ => self.place(&slot, admin.body(&node, meta.kind, obj)?, &meta, true),
        }
    }

    /// `Write`: a file with these bytes and `meta`.
    fn write(&self, rel: &Path, content: &[u8], meta: &Meta) -> Result<(), TreeError> {
        if meta.kind != Kind::File {
            return Err(TreeError::Unsupported {
                root: self.root.clone(),
                path: rel.to_path_buf(),
                what: "only a regular file can be written",
            });
        }
        let slot = self.slot(rel)?.ok_or_else(|| self.missing(parent(rel)))?;
        if slot.st.as_ref().is_some_and(is_dir) {
            return Err(self.dir_in_the_way(rel));
        }
        self.place(&slot, Body::Bytes(content), meta, true)
    }

    /// `Remove`: unlink `rel`, or remove it if an empty directory; a
    /// directory still holding something stays, with a note why.
    fn remove(&self, rel: &Path) -> Result<Option<String>, TreeError> {
        let Some(Slot {
            dir,
            name,
            st: Some(st),
            ..
        }) = self.slot(rel)?
        else {
            return Ok(None); // already gone
        };
        let flags = if is_dir(&st) {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(&dir, name, flags) {
            Ok(()) | Err(Errno::NOENT) => Ok(None),
            Err(Errno::NOTEMPTY | Errno::EXIST) => Ok(Some(format!(
                "{} kept: not empty (the vendor added files to it)",
                rel.display()
            ))),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Make what was written durable: files are fsync'd before being
    /// renamed into place; this commits the renames and directories.
    fn sync(&self) -> Result<(), TreeError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::openat(&self.fd, ".", flags, Mode::empty())
            .and_then(rustix::fs::syncfs)
            .map_err(self.io(Path::new("")))
    }

    fn missing(&self, rel: &Path) -> TreeError {
        TreeError::Missing {
            root: self.root.clone(),
            path: rel.to_path_buf(),
        }
    }

    fn dir_in_the_way(&self, rel: &Path) -> TreeError {
        TreeError::DirInTheWay {
            root: self.root.clone(),
            path: rel.to_path_buf(),
        }
    }
}

/// `rel`'s directory and name; only plain components are allowed.
fn split(rel: &Path) -> Result<(&Path, &OsStr), TreeError> {
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) if plain => Ok((parent, name)),
        _ => Err(TreeError::BadPath(rel.to_path_buf())),
    }
}

fn parent(rel: &Path) -> &Path {
    rel.parent().unwrap_or(rel)
}

fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty())
}

/// The names in a directory, sorted.
fn entries(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    names.sort();
    Ok(names)
}

fn exists(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<bool> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn kind_of(st: &Stat) -> Option<Kind> {
    Some(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::Fifo => Kind::Fifo,
        FileType::CharacterDevice => Kind::CharDevice,
        FileType::BlockDevice => Kind::BlockDevice,
        FileType::Socket => Kind::Socket,
        _ => return None,
    })
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::Fifo,
        Kind::CharDevice => FileType::CharacterDevice,
        Kind::BlockDevice => FileType::BlockDevice,
        Kind::Socket => FileType::Socket,
    }
}

/// Remove a temporary object a crash left behind (only ever a
/// non-directory or an empty directory).
fn clear_tmp(dir: BorrowedFd<'_>) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, TMP, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => Ok(rustix::fs::unlinkat(dir, TMP, AtFlags::REMOVEDIR)?),
        Err(e) => Err(e.into()),
    }
}

/// Create the temporary object, private until its metadata is set.
fn create(dir: BorrowedFd<'_>, body: Body<'_>) -> io::Result<OwnedFd> {
    let private = Mode::from_raw_mode(0o600);
    let opath = |flags: OFlags| {
        let flags = flags | OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(dir, TMP, flags, Mode::empty())
    };
    let file = || {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        rustix::fs::openat(dir, TMP, flags | OFlags::CLOEXEC, private).map(File::from)
    };
    Ok(match body {
        Body::Bytes(bytes) => {
            let mut f = file()?;
            f.write_all(bytes)?;
            f.into()
        }
        Body::Copy(mut src) => {
            let mut f = file()?;
            io::copy(&mut src, &mut f)?;
            f.into()
        }
        Body::Dir => {
            rustix::fs::mkdirat(dir, TMP, Mode::from_raw_mode(0o700))?;
            opath(OFlags::DIRECTORY)?
        }
        Body::Symlink(target) => {
            rustix::fs::symlinkat(target.as_os_str(), dir, TMP)?;
            opath(OFlags::empty())?
        }
        Body::Special(kind, dev) => {
            rustix::fs::mknodat(dir, TMP, kind, private, dev)?;
            opath(OFlags::empty())?
        }
    })
}

/// Give an object (any kind, opened without following it) `meta`'s owner,
/// extended attributes and mode, in that order: a chown clears set-id bits
/// and file capabilities.
fn set_meta(obj: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    let st = rustix::fs::fstat(obj)?;
    if (st.st_uid, st.st_gid) != (meta.uid, meta.gid) {
        let at = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
        let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
        tolerate(rustix::fs::chownat(obj, "", Some(uid), Some(gid), at))?;
    }
    sync_xattrs(obj, &meta.xattrs)?;
    if meta.kind != Kind::Symlink {
        rustix::fs::chmod(proc_path(obj), Mode::from_raw_mode(meta.mode))?;
    }
    Ok(())
}

/// Set every attribute of `want` that differs, remove those it lacks.
fn sync_xattrs(obj: BorrowedFd<'_>, want: &BTreeMap<String, String>) -> io::Result<()> {
    let path = proc_path(obj);
    let have = xattrs(obj)?;
    for (name, value) in want {
        if have.get(name) != Some(value) {
            let bytes = unhex(value).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("xattr {name}: not hex"))
            })?;
            let flags = rustix::fs::XattrFlags::empty();
            tolerate(rustix::fs::setxattr(&path, name, &bytes, flags))?;
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        tolerate(rustix::fs::removexattr(&path, name))?;
    }
    Ok(())
}

/// An object's extended attributes, values hex-encoded; none where the
/// filesystem has no support for them.
fn xattrs(obj: BorrowedFd<'_>) -> io::Result<BTreeMap<String, String>> {
    let path = proc_path(obj);
    let list = match sized(
        || rustix::fs::listxattr_query(&path),
        |buf| rustix::fs::listxattr(&path, buf),
    ) {
        Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => Vec::new(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::other(format!(
                "{path} missing: is /proc mounted?"
            )));
        }
        other => other?,
    };
    let mut out = BTreeMap::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let value = sized(
            || rustix::fs::getxattr_query(&path, name),
            |buf| rustix::fs::getxattr(&path, name, buf),
        )?;
        let name = name.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("xattr {name:?}: name not UTF-8"),
            )
        })?;
        out.insert(name.to_string(), hex(&value));
    }
    Ok(out)
}

/// A value of unknown size: ask the size, then read (again if it grew).
fn sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    read: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    loop {
        let mut buf = vec![0; query()?];
        if buf.is_empty() {
            return Ok(buf);
        }
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The magic link to an open object: following it reaches the object
/// itself, even a symlink opened with `O_PATH | O_NOFOLLOW`.
fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Without root, owners and privileged attributes (`security.*`,
/// `trusted.*`) cannot be set: that is expected there, not an error.
fn tolerate(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(Errno::PERM) if !rustix::process::geteuid().is_root() => Ok(()),
        other => Ok(other?),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::time::Instant;

    use sha2::{Digest, Sha256};

    /// A tempdir with an admin layer, a target layer and an outside
    /// directory no operation may touch (`outside/x` holds a victim file).
    struct Layers {
        t: tempfile::TempDir,
    }

    impl Layers {
        fn new() -> Layers {
            let t = tempfile::tempdir().unwrap();
            for d in ["admin/etc", "target/etc", "empty", "outside"] {
                fs::create_dir_all(t.path().join(d)).unwrap();
            }
            fs::write(t.path().join("outside/x"), "victim").unwrap();
            Layers { t }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.t.path().join(rel)
        }
        fn admin(&self) -> PathBuf {
            self.path("admin")
        }
        fn target(&self) -> PathBuf {
            self.path("target")
        }
        fn apply(&self, ops: &[Op]) -> Result<Vec<String>, TreeError> {
            apply(&self.admin(), &self.target(), ops)
        }
        /// The outside directories are as they were made.
        fn assert_outside_untouched(&self) {
            assert_eq!(fs::read_dir(self.path("empty")).unwrap().count(), 0);
            let names: Vec<_> = fs::read_dir(self.path("outside")).unwrap().collect();
            assert_eq!(names.len(), 1, "{names:?}");
            assert_eq!(
                fs::read_to_string(self.path("outside/x")).unwrap(),
                "victim"
            );
        }
    }

    fn file(path: PathBuf, content: &str, mode: u32) {
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn dir(path: PathBuf, mode: u32) {
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn fifo(path: PathBuf, mode: u32) {
        let mode = Mode::from_raw_mode(mode);
        rustix::fs::mknodat(rustix::fs::CWD, &path, FileType::Fifo, mode, 0).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode.bits())).unwrap();
    }

    /// Set a user xattr; false where the filesystem has none.
    fn xattr(path: &Path, name: &str, value: &[u8]) -> bool {
        match rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()) {
            Ok(()) => true,
            Err(Errno::OPNOTSUPP) => false,
            Err(e) => panic!("{e}"),
        }
    }

    /// As root: give these paths (links themselves) to 4321:4322.
    fn give_away(root: &Path, rels: &[&str]) {
        for rel in rels {
            let at = AtFlags::SYMLINK_NOFOLLOW;
            let ids = (Some(Uid::from_raw(4321)), Some(Gid::from_raw(4322)));
            rustix::fs::chownat(rustix::fs::CWD, root.join(rel), ids.0, ids.1, at).unwrap();
        }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn copy(s: &str) -> Op {
        Op::CopyFromAdmin { path: p(s) }
    }

    fn keys(m: &Manifest) -> Vec<&str> {
        m.keys().map(|k| k.to_str().unwrap()).collect()
    }

    fn link_of(path: PathBuf) -> PathBuf {
        assert!(
            fs::symlink_metadata(&path).unwrap().is_symlink(),
            "{path:?}"
        );
        fs::read_link(path).unwrap()
    }

    #[test]
    fn manifest_records_kinds_modes_links_and_xattrs() {
        let l = Layers::new();
        let r = l.admin();
        dir(r.join("etc"), 0o755);
        file(r.join("etc/file"), "hello", 0o4750);
        dir(r.join("etc/dir"), 0o710);
        file(r.join("etc/dir/inner"), "x", 0o600);
        symlink("file", r.join("etc/link")).unwrap();
        fifo(r.join("etc/fifo"), 0o640);
        let has_xattrs = xattr(&r.join("etc/file"), "user.test", b"\x01v");

        let m = manifest(&r, Path::new("etc")).unwrap();
        assert_eq!(
            keys(&m),
            [
                "etc",
                "etc/dir",
                "etc/dir/inner",
                "etc/fifo",
                "etc/file",
                "etc/link"
            ]
        );
        let f = &m[&p("etc/file")];
        assert_eq!((f.kind, f.mode), (Kind::File, 0o4750));
        assert_eq!(f.content, hex(&Sha256::digest(b"hello")));
        let me = (rustix::process::geteuid(), rustix::process::getegid());
        assert_eq!((f.uid, f.gid), (me.0.as_raw(), me.1.as_raw()));
        if has_xattrs {
            assert_eq!(f.xattrs.get("user.test").map(String::as_str), Some("0176"));
        }
        let d = &m[&p("etc/dir")];
        assert_eq!((d.kind, d.mode, d.content.as_str()), (Kind::Dir, 0o710, ""));
        let s = &m[&p("etc/link")];
        assert_eq!((s.kind, s.content.as_str()), (Kind::Symlink, "file"));
        let q = &m[&p("etc/fifo")];
        assert_eq!(
            (q.kind, q.mode, q.content.as_str()),
            (Kind::Fifo, 0o640, "")
        );
    }

    #[test]
    fn manifest_records_links_and_never_goes_through_them() {
        let l = Layers::new();
        let r = l.admin();
        dir(r.join("etc/dir"), 0o755);
        file(r.join("etc/dir/inner"), "x", 0o644);
        symlink("/", r.join("etc/root")).unwrap();
        symlink("../..", r.join("etc/up")).unwrap();
        symlink("dir", r.join("etc/dirlink")).unwrap();
        symlink(l.path("outside/x"), r.join("etc/secret")).unwrap();
        symlink("etc", r.join("etc2")).unwrap();

        let m = manifest(&r, Path::new("etc")).unwrap();
        let expected = ["etc", "etc/dir", "etc/dir/inner", "etc/dirlink", "etc/root"];
        assert_eq!(
            keys(&m),
            [&expected[..], &["etc/secret", "etc/up"]].concat()
        );
        assert_eq!(m[&p("etc/root")].content, "/");
        let secret = &m[&p("etc/secret")];
        assert_eq!(secret.kind, Kind::Symlink);
        assert_eq!(secret.content, l.path("outside/x").to_str().unwrap());

        // A linked `sub` is one symlink; a missing one is empty.
        let linked = manifest(&r, Path::new("etc2")).unwrap();
        assert_eq!(keys(&linked), ["etc2"]);
        assert_eq!(linked[&p("etc2")].kind, Kind::Symlink);
        assert!(manifest(&r, Path::new("nope")).unwrap().is_empty());
        let e = manifest(&r, Path::new("etc/dirlink/inner")).unwrap_err();
        assert!(matches!(e, TreeError::Escapes { .. }), "{e}");
        assert!(manifest(&r, Path::new("../outside")).is_err());
    }

    #[test]
    fn manifest_of_two_thousand_files_is_fast() {
        let l = Layers::new();
        let r = l.admin();
        for d in 0..40 {
            let sub = r.join(format!("etc/d{d}"));
            fs::create_dir(&sub).unwrap();
            for f in 0..50 {
                fs::write(sub.join(format!("f{f}")), [b'x'; 2048]).unwrap();
            }
        }
        let start = Instant::now();
        let m = manifest(&r, Path::new("etc")).unwrap();
        let took = start.elapsed();
        assert_eq!(m.len(), 1 + 40 + 2000);
        eprintln!("manifest of 2,041 paths: {took:?}");
        assert!(took.as_millis() < 1000, "{took:?}");
    }

    #[test]
    fn owners_are_read_without_following_links() {
        let l = Layers::new();
        let r = l.admin();
        file(r.join("etc/f"), "", 0o644);
        dir(r.join("var/lib"), 0o755);
        // `/` belongs to root: were the link followed, uid 0 would show.
        symlink("/", r.join("etc/root")).unwrap();
        let root = rustix::process::geteuid().is_root();
        let (uid, gid) = if root {
            give_away(&r, &["etc", "etc/f", "etc/root", "var", "var/lib"]);
            (4321, 4322)
        } else {
            let me = (rustix::process::geteuid(), rustix::process::getegid());
            (me.0.as_raw(), me.1.as_raw())
        };
        let (uids, gids) = owners(&r, &[Path::new("etc"), Path::new("var")]).unwrap();
        assert_eq!(uids.into_iter().collect::<Vec<_>>(), [uid]);
        assert_eq!(gids.into_iter().collect::<Vec<_>>(), [gid]);
    }

    /// The admin's tree of every kind, with modes and (where the
    /// filesystem allows) a user xattr; the target has the vendor's
    /// versions of some. Returns whether xattrs are supported.
    fn admin_and_vendor(l: &Layers) -> bool {
        let (a, t) = (l.admin(), l.target());
        for r in [&a, &t] {
            dir(r.join("etc"), 0o755);
        }
        file(a.join("etc/file"), "admin", 0o640);
        dir(a.join("etc/sub"), 0o2750);
        file(a.join("etc/sub/f"), "admin f", 0o600);
        symlink("../outside/x", a.join("etc/link")).unwrap();
        fifo(a.join("etc/fifo"), 0o620);
        file(t.join("etc/file"), "vendor", 0o644);
        dir(t.join("etc/sub"), 0o755);
        let xattrs = xattr(&a.join("etc/file"), "user.test", b"admin");
        if xattrs {
            assert!(xattr(&a.join("etc/sub"), "user.test", b"admin dir"));
            assert!(xattr(
                &t.join("etc/sub"),
                "user.vendor",
                b"only the vendor's"
            ));
            assert!(xattr(
                &t.join("etc/file"),
                "user.vendor",
                b"only the vendor's"
            ));
        }
        xattrs
    }

    #[test]
    fn copy_from_admin_puts_every_kind_with_its_metadata_and_is_idempotent() {
        let l = Layers::new();
        let xattrs = admin_and_vendor(&l);
        let mut ops = ["etc/fifo", "etc/file", "etc/link", "etc/sub", "etc/sub/f"]
            .map(copy)
            .to_vec();
        if rustix::process::geteuid().is_root() {
            give_away(
                &l.admin(),
                &["etc/fifo", "etc/file", "etc/link", "etc/sub", "etc/sub/f"],
            );
            // Where devices can be made at all (not in every container).
            let null = l.admin().join("etc/null");
            let dev = rustix::fs::makedev(1, 3);
            let made = rustix::fs::mknodat(
                rustix::fs::CWD,
                &null,
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o666),
                dev,
            );
            if made.is_ok() {
                ops.insert(0, copy("etc/null"));
            }
        }
        // Set after the chown above, which clears it; a chown in `apply`
        // must come before the chmod too.
        file(l.admin().join("etc/file"), "admin", 0o4750);
        assert!(l.apply(&ops).unwrap().is_empty());

        let admin = manifest(&l.admin(), Path::new("etc")).unwrap();
        let target = manifest(&l.target(), Path::new("etc")).unwrap();
        assert_eq!(target, admin);
        assert_eq!(target[&p("etc/file")].mode, 0o4750);
        if xattrs {
            let sub = &target[&p("etc/sub")].xattrs;
            assert_eq!(sub.keys().collect::<Vec<_>>(), ["user.test"]);
        }
        // The link was copied as a link, not what it points to.
        assert_eq!(link_of(l.target().join("etc/link")), p("../outside/x"));

        assert!(l.apply(&ops).unwrap().is_empty());
        assert_eq!(manifest(&l.target(), Path::new("etc")).unwrap(), admin);
        l.assert_outside_untouched();
    }

    #[test]
    fn copy_replaces_a_file_by_a_link_and_a_link_by_a_file_without_following() {
        let l = Layers::new();
        let (a, t) = (l.admin(), l.target());
        symlink(l.path("outside/x"), a.join("etc/a")).unwrap();
        file(a.join("etc/b"), "admin b", 0o644);
        file(t.join("etc/a"), "vendor a", 0o644);
        symlink(l.path("outside/x"), t.join("etc/b")).unwrap();

        l.apply(&[copy("etc/a"), copy("etc/b")]).unwrap();
        assert_eq!(link_of(t.join("etc/a")), l.path("outside/x"));
        assert!(fs::symlink_metadata(t.join("etc/b")).unwrap().is_file());
        assert_eq!(fs::read_to_string(t.join("etc/b")).unwrap(), "admin b");
        l.assert_outside_untouched();
    }

    #[test]
    fn copy_from_admin_refuses_to_replace_a_directory() {
        let l = Layers::new();
        file(l.admin().join("etc/d"), "admin", 0o644);
        dir(l.target().join("etc/d"), 0o755);
        file(l.target().join("etc/d/vendor"), "v", 0o644);
        let e = l.apply(&[copy("etc/d")]).unwrap_err();
        assert!(matches!(e, TreeError::DirInTheWay { .. }), "{e}");
        assert!(l.target().join("etc/d/vendor").exists());
    }

    #[test]
    fn set_aside_keeps_the_vendors_directory_and_runs_again_harmlessly() {
        let l = Layers::new();
        let t = l.target();
        file(l.admin().join("etc/d"), "admin", 0o600);
        dir(t.join("etc/d/b"), 0o755);
        file(t.join("etc/d/a"), "vendor a", 0o644);
        file(t.join("etc/d/b/c"), "vendor c", 0o644);
        // An older set-aside copy is replaced.
        dir(t.join("etc/d.imgnew"), 0o755);
        file(t.join("etc/d.imgnew/old"), "old", 0o644);
        let ops = [Op::SetAside { path: p("etc/d") }, copy("etc/d")];

        // A crash after the first op, then the whole list again, twice.
        l.apply(&ops[..1]).unwrap();
        l.apply(&ops).unwrap();
        let once = manifest(&t, Path::new("etc")).unwrap();
        assert_eq!(
            keys(&once),
            [
                "etc",
                "etc/d",
                "etc/d.imgnew",
                "etc/d.imgnew/a",
                "etc/d.imgnew/b",
                "etc/d.imgnew/b/c"
            ]
        );
        assert_eq!(once[&p("etc/d")].kind, Kind::File);
        l.apply(&ops).unwrap();
        assert_eq!(manifest(&t, Path::new("etc")).unwrap(), once);
        assert_eq!(fs::read_to_string(t.join("etc/d")).unwrap(), "admin");
    }

    #[test]
    fn set_aside_drops_an_old_imgnew_link_without_following_it() {
        let l = Layers::new();
        let t = l.target();
        file(l.admin().join("etc/f"), "admin", 0o644);
        file(t.join("etc/f"), "vendor", 0o644);
        symlink(l.path("outside"), t.join("etc/f.imgnew")).unwrap();
        l.apply(&[Op::SetAside { path: p("etc/f") }]).unwrap();
        assert_eq!(
            fs::read_to_string(t.join("etc/f.imgnew")).unwrap(),
            "vendor"
        );
        assert!(!t.join("etc/f").exists());
        l.assert_outside_untouched();
    }

    #[test]
    fn write_replaces_a_link_with_the_file_and_its_meta() {
        let l = Layers::new();
        let t = l.target();
        symlink(l.path("outside/x"), t.join("etc/passwd")).unwrap();
        let me = (rustix::process::geteuid(), rustix::process::getegid());
        let meta = Meta {
            kind: Kind::File,
            mode: 0o604,
            uid: me.0.as_raw(),
            gid: me.1.as_raw(),
            xattrs: BTreeMap::new(),
            content: String::new(),
        };
        let write = |meta: &Meta| Op::Write {
            path: p("etc/passwd"),
            content: "root:x:0:0::/root:/bin/sh\n".into(),
            meta: meta.clone(),
        };
        l.apply(&[write(&meta), write(&meta)]).unwrap();
        let m = manifest(&t, Path::new("etc/passwd")).unwrap();
        let got = &m[&p("etc/passwd")];
        assert_eq!((got.kind, got.mode), (Kind::File, 0o604));
        assert_eq!(
            got.content,
            hex(&Sha256::digest(b"root:x:0:0::/root:/bin/sh\n"))
        );
        l.assert_outside_untouched();

        let dir_meta = Meta {
            kind: Kind::Dir,
            ..meta
        };
        let e = l.apply(&[write(&dir_meta)]).unwrap_err();
        assert!(matches!(e, TreeError::Unsupported { .. }), "{e}");
    }

    #[test]
    fn remove_is_idempotent_and_keeps_directories_still_holding_files() {
        let l = Layers::new();
        let t = l.target();
        file(t.join("etc/f"), "", 0o644);
        symlink("/", t.join("etc/link")).unwrap();
        dir(t.join("etc/empty"), 0o755);
        dir(t.join("etc/full"), 0o755);
        file(t.join("etc/full/x"), "", 0o644);
        let ops = [
            "etc/f",
            "etc/link",
            "etc/empty",
            "etc/full",
            "etc/gone",
            "etc/no/x",
        ]
        .map(|s| Op::Remove { path: p(s) });
        for _ in 0..2 {
            let notes = l.apply(&ops).unwrap();
            assert_eq!(
                notes,
                ["etc/full kept: not empty (the vendor added files to it)"]
            );
            let m = manifest(&t, Path::new("etc")).unwrap();
            assert_eq!(keys(&m), ["etc", "etc/full", "etc/full/x"]);
        }
    }

    #[test]
    fn operations_through_a_link_in_the_target_fail_and_touch_nothing_outside() {
        let l = Layers::new();
        dir(l.admin().join("etc/evil"), 0o755);
        file(l.admin().join("etc/evil/x"), "admin", 0o644);
        file(l.admin().join("etc/evil/y"), "admin", 0o644);
        let meta = manifest(&l.admin(), Path::new("etc/evil/y")).unwrap()[&p("etc/evil/y")].clone();
        let links = [
            (l.path("empty"), l.path("outside")),
            (p("../../empty"), p("../../outside")),
        ];
        for (empty, outside) in links {
            let evil = l.target().join("etc/evil");
            let _ = fs::remove_file(&evil);
            // Creations would land in `empty`; removals in `outside`.
            symlink(&empty, &evil).unwrap();
            let creations = [
                copy("etc/evil/x"),
                Op::Write {
                    path: p("etc/evil/y"),
                    content: "evil".into(),
                    meta: meta.clone(),
                },
            ];
            for op in creations {
                let e = l.apply(&[op]).unwrap_err();
                assert!(matches!(e, TreeError::Escapes { .. }), "{e}");
                l.assert_outside_untouched();
            }
            fs::remove_file(&evil).unwrap();
            symlink(&outside, &evil).unwrap();
            for op in [
                Op::Remove {
                    path: p("etc/evil/x"),
                },
                Op::SetAside {
                    path: p("etc/evil/x"),
                },
            ] {
                let e = l.apply(&[op]).unwrap_err();
                assert!(matches!(e, TreeError::Escapes { .. }), "{e}");
                l.assert_outside_untouched();
            }
        }
    }

    #[test]
    fn links_inside_the_layer_are_not_followed_either() {
        let l = Layers::new();
        let t = l.target();
        dir(l.admin().join("etc/ssh"), 0o755);
        file(l.admin().join("etc/ssh/y"), "admin", 0o644);
        dir(t.join("usr"), 0o755);
        file(t.join("usr/x"), "vendor", 0o644);
        // Following it would change `/usr` of the new layer.
        symlink("../usr", t.join("etc/ssh")).unwrap();
        for op in [
            copy("etc/ssh/y"),
            Op::Remove {
                path: p("etc/ssh/x"),
            },
        ] {
            let e = l.apply(&[op]).unwrap_err();
            assert!(matches!(e, TreeError::Escapes { .. }), "{e}");
        }
        let usr = manifest(&t, Path::new("usr")).unwrap();
        assert_eq!(keys(&usr), ["usr", "usr/x"]);
    }

    /// A tmpfs mounted for a test, unmounted when dropped.
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        fn mount(at: &Path) -> Option<Tmpfs> {
            let mount = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(at)
                .status();
            mount
                .is_ok_and(|s| s.success())
                .then(|| Tmpfs(at.to_path_buf()))
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }

    #[test]
    fn a_filesystem_mounted_inside_is_left_alone() {
        let l = Layers::new();
        let t = l.target();
        dir(t.join("etc/mnt"), 0o755);
        // Mounting needs root (and a container that allows it).
        let Some(_mounted) = Tmpfs::mount(&t.join("etc/mnt")) else {
            eprintln!("no tmpfs mounted: skipped");
            return;
        };
        file(t.join("etc/mnt/x"), "another volume", 0o644);
        assert_eq!(keys(&manifest(&t, Path::new("etc")).unwrap()), ["etc"]);
        let e = manifest(&t, Path::new("etc/mnt")).unwrap_err();
        assert!(matches!(e, TreeError::OtherFs { .. }), "{e}");
        let e = l
            .apply(&[Op::Remove {
                path: p("etc/mnt/x"),
            }])
            .unwrap_err();
        assert!(matches!(e, TreeError::Escapes { .. }), "{e}");
        let e = l.apply(&[Op::SetAside { path: p("etc/mnt") }]).unwrap_err();
        assert!(matches!(e, TreeError::OtherFs { .. }), "{e}");
        assert!(t.join("etc/mnt/x").exists());
    }

    #[test]
    fn paths_leaving_the_layer_are_refused() {
        let l = Layers::new();
        let abs = l.path("outside/x");
        for path in [abs, p("../outside/x"), p("etc/../../outside/x"), p("")] {
            let e = l.apply(&[Op::Remove { path }]).unwrap_err();
            assert!(matches!(e, TreeError::BadPath(_)), "{e}");
        }
        l.assert_outside_untouched();
    }

    #[test]
    fn add_missing_adds_only_what_is_missing_and_skips_links_and_files() {
        let l = Layers::new();
        let (src, dst) = (l.admin(), l.target());
        dir(src.join("var/lib/sub"), 0o750);
        file(src.join("var/lib/a"), "src a", 0o644);
        file(src.join("var/lib/new"), "new", 0o600);
        file(src.join("var/lib/sub/deep"), "deep", 0o640);
        dir(src.join("var/cache"), 0o755);
        file(src.join("var/cache/c"), "c", 0o644);
        dir(src.join("var/spool"), 0o755);
        file(src.join("var/spool/s"), "s", 0o644);
        symlink("../run", src.join("var/run")).unwrap();
        fifo(src.join("var/lib/fifo"), 0o600);
        dir(dst.join("var/lib"), 0o700);
        file(dst.join("var/lib/a"), "dst a", 0o600);
        symlink(l.path("empty"), dst.join("var/cache")).unwrap();
        file(dst.join("var/spool"), "a file", 0o644);
        let before = manifest(&dst, Path::new("var")).unwrap();

        let added = add_missing(&src, &dst, Path::new("var")).unwrap();
        let expected = [
            "var/lib/fifo",
            "var/lib/new",
            "var/lib/sub",
            "var/lib/sub/deep",
            "var/run",
        ];
        assert_eq!(added, expected.map(p));
        let after = manifest(&dst, Path::new("var")).unwrap();
        let src_m = manifest(&src, Path::new("var")).unwrap();
        for (path, meta) in &after {
            match before.get(path) {
                Some(old) => assert_eq!(meta, old, "{path:?} changed"),
                None => assert_eq!(meta, &src_m[path], "{path:?} copied"),
            }
        }
        assert_eq!(after.len(), before.len() + added.len());
        l.assert_outside_untouched();
        assert!(
            add_missing(&src, &dst, Path::new("var"))
                .unwrap()
                .is_empty()
        );

        // Into a layer without the directory at all.
        let added = add_missing(&src, &l.path("empty"), Path::new("var")).unwrap();
        assert_eq!(added.len(), src_m.len());
        assert_eq!(manifest(&l.path("empty"), Path::new("var")).unwrap(), src_m);
    }
}
