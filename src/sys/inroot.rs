//! Reading files of an untrusted tree (a mounted image or layer) without
//! ever leaving it.
//!
//! A path in such a tree is resolved by the kernel *beneath* the tree's
//! root (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`): a
//! symlink that stays inside is followed, one that is absolute or climbs
//! out with `..` is refused, as are `/proc` magic links. Plain path joins
//! would resolve `boot/vmlinuz -> /etc/shadow` on the host. Kernels older
//! than openat2 (5.6) get a stricter walk that follows no symlink at all.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

/// What a path in the tree is, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Why a file of the tree cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InRootError {
    #[error(
        "{shown} leads outside {root} (an absolute or climbing symlink); imgbase reads only \
         files inside an image or layer: make it a regular file or a relative link inside"
    )]
    Escapes { root: PathBuf, shown: String },
    #[error("{shown} in {root} is {what}, not a regular file; imgbase refuses to read it")]
    NotRegular {
        root: PathBuf,
        shown: String,
        what: &'static str,
    },
    #[error("{shown} in {root} is larger than {limit} bytes; refusing to read it")]
    TooLarge {
        root: PathBuf,
        shown: String,
        limit: u64,
    },
    #[error("{shown} in {root}: {source}")]
    Io {
        root: PathBuf,
        shown: String,
        #[source]
        source: io::Error,
    },
}

impl InRootError {
    /// The file is simply not there (callers often treat that as "none").
    pub fn is_not_found(&self) -> bool {
        matches!(self, InRootError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// A directory tree opened once; every lookup is relative to it.
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    dir: OwnedFd,
}

impl Tree {
    pub fn open(root: &Path) -> io::Result<Tree> {
        let dir = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Tree {
            root: root.to_path_buf(),
            dir,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, rel: &Path) -> impl FnOnce(io::Error) -> InRootError + '_ {
        let shown = rel.display().to_string();
        move |source| {
            // EXDEV: the path left the root; ELOOP with no-symlink walks.
            if source.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) {
                InRootError::Escapes {
                    root: self.root.clone(),
                    shown,
                }
            } else {
                InRootError::Io {
                    root: self.root.clone(),
                    shown,
                    source,
                }
            }
        }
    }

    /// Open `rel` inside the tree. `flags` are added to O_CLOEXEC.
    fn open_at(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, InRootError> {
        let rel = relative(rel);
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        open_beneath(&self.dir, &rel, flags, how).map_err(|e| self.err(&rel)(e.into()))
    }

    /// A regular file of the tree, opened for reading. Symlinks are
    /// followed only while they stay inside; FIFOs and devices are refused
    /// (opened without blocking, then checked).
    pub fn open_file(&self, rel: &Path) -> Result<File, InRootError> {
        let fd = self.open_at(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err(rel)(e.into()))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind != FileType::RegularFile {
            return Err(InRootError::NotRegular {
                root: self.root.clone(),
                shown: rel.display().to_string(),
                what: describe(kind),
            });
        }
        // Back to blocking reads for the caller.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| self.err(rel)(e.into()))?;
        Ok(File::from(fd))
    }

    /// A small regular file's bytes (NVR files, cmdlines), at most `limit`.
    pub fn read_small(&self, rel: &Path, limit: u64) -> Result<Vec<u8>, InRootError> {
        let f = self.open_file(rel)?;
        let mut out = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(self.err(rel))?;
        if out.len() as u64 > limit {
            return Err(InRootError::TooLarge {
                root: self.root.clone(),
                shown: rel.display().to_string(),
                limit,
            });
        }
        Ok(out)
    }

    /// What `rel` is, not following a final symlink; None if it is absent
    /// (or a parent is missing or leads out).
    pub fn kind(&self, rel: &Path) -> Option<Kind> {
        let rel = relative(rel);
        if rel.file_name().is_none() {
            return Some(Kind::Dir); // the root itself
        }
        let (dir, name) = self.parent_of(&rel)?;
        let st = rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        })
    }

    /// Where a symlink of the tree points (for messages).
    pub fn link_target(&self, rel: &Path) -> Option<PathBuf> {
        let rel = relative(rel);
        let (dir, name) = self.parent_of(&rel)?;
        let t = rustix::fs::readlinkat(&dir, name, Vec::new()).ok()?;
        Some(PathBuf::from(OsString::from_vec(t.into_bytes())))
    }

    /// The directory holding `rel` (opened inside the tree) and its last
    /// component; None for the root itself, or when the parent is missing
    /// or leads out.
    fn parent_of<'p>(&self, rel: &'p Path) -> Option<(OwnedFd, &'p std::ffi::OsStr)> {
        let (parent, name) = (rel.parent()?, rel.file_name()?);
        let dir = if parent.as_os_str().is_empty() {
            rustix::io::dup(&self.dir).ok()?
        } else {
            self.open_at(parent, OFlags::PATH | OFlags::DIRECTORY)
                .ok()?
        };
        Some((dir, name))
    }

    /// Names in a directory of the tree, sorted; a missing directory is
    /// empty. The directory itself must lie inside.
    pub fn read_dir(&self, rel: &Path) -> Result<Vec<String>, InRootError> {
        let fd = match self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        let dir = rustix::fs::Dir::read_from(fd.as_fd()).map_err(|e| self.err(rel)(e.into()))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.err(rel)(e.into()))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if let Ok(s) = std::str::from_utf8(name) {
                names.push(s.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Open `rel` beneath `dir` (`flags` are added to O_CLOEXEC), resolved by
/// openat2 with `how`. Kernels without openat2 get a walk that follows no
/// symlink at all, the strictest reading of any `how`; a link on the way
/// is EXDEV, as is leaving the filesystem when `how` has NO_XDEV.
pub(crate) fn open_beneath(
    dir: &OwnedFd,
    rel: &Path,
    flags: OFlags,
    how: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let open = || rustix::fs::openat2(dir, rel, flags | OFlags::CLOEXEC, Mode::empty(), how);
    match open() {
        Err(rustix::io::Errno::NOSYS) => walk(dir, rel, flags, how.contains(ResolveFlags::NO_XDEV)),
        // openat2 restarts on a concurrent rename; once more is enough.
        Err(rustix::io::Errno::AGAIN) => open(),
        other => other,
    }
}

/// Without openat2: one component at a time, following no symlink.
fn walk(dir: &OwnedFd, rel: &Path, flags: OFlags, same_fs: bool) -> rustix::io::Result<OwnedFd> {
    let dev = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|st| st.st_dev);
    let start = dev(dir)?;
    let mut cur = rustix::io::dup(dir)?;
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(rustix::io::Errno::XDEV);
        };
        let f = if i + 1 == comps.len() {
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        cur = rustix::fs::openat(&cur, *name, f, Mode::empty()).map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => rustix::io::Errno::XDEV,
            e => e,
        })?;
        if same_fs && dev(&cur)? != start {
            return Err(rustix::io::Errno::XDEV);
        }
    }
    Ok(cur)
}

/// `rel` without a leading `/` (an absolute path means "from the root").
fn relative(rel: &Path) -> PathBuf {
    rel.strip_prefix("/").unwrap_or(rel).to_path_buf()
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symlink",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Tree) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/real"), "inside").unwrap();
        std::fs::write(t.path().join("secret"), "host").unwrap();
        let tree = Tree::open(&root).unwrap();
        (t, tree)
    }

    #[test]
    fn absolute_and_climbing_symlinks_are_refused() {
        let (t, tree) = tree();
        let root = tree.root().to_path_buf();
        symlink(t.path().join("secret"), root.join("boot/abs")).unwrap();
        symlink("../../secret", root.join("boot/up")).unwrap();
        symlink("/etc/real", root.join("boot/abs-inside")).unwrap();
        for name in ["boot/abs", "boot/up", "boot/abs-inside"] {
            let e = tree.open_file(Path::new(name)).unwrap_err();
            assert!(matches!(e, InRootError::Escapes { .. }), "{name}: {e}");
            assert!(e.to_string().contains("leads outside"), "{e}");
        }
        // Through a directory symlink, too.
        symlink(t.path(), root.join("hostdir")).unwrap();
        assert!(matches!(
            tree.open_file(Path::new("hostdir/secret")).unwrap_err(),
            InRootError::Escapes { .. }
        ));
        assert!(matches!(
            tree.open_file(Path::new("../secret")).unwrap_err(),
            InRootError::Escapes { .. }
        ));
    }

    #[test]
    fn relative_symlinks_inside_are_followed() {
        let (_t, tree) = tree();
        symlink("../etc/real", tree.root().join("boot/rel")).unwrap();
        let mut s = String::new();
        tree.open_file(Path::new("boot/rel"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "inside");
        assert_eq!(tree.kind(Path::new("boot/rel")), Some(Kind::Symlink));
        assert_eq!(
            tree.link_target(Path::new("boot/rel")),
            Some(PathBuf::from("../etc/real"))
        );
    }

    #[test]
    fn fifos_and_directories_are_not_files() {
        let (_t, tree) = tree();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tree.root().join("boot/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // A FIFO would block a plain open forever.
        let e = tree.open_file(Path::new("boot/fifo")).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = tree.open_file(Path::new("etc")).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }

    #[test]
    fn small_reads_are_bounded_and_dirs_listed() {
        let (_t, tree) = tree();
        assert_eq!(
            tree.read_small(Path::new("etc/real"), 64).unwrap(),
            b"inside"
        );
        assert!(matches!(
            tree.read_small(Path::new("etc/real"), 3).unwrap_err(),
            InRootError::TooLarge { .. }
        ));
        assert!(
            tree.read_small(Path::new("etc/none"), 3)
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(tree.read_dir(Path::new("etc")).unwrap(), ["real"]);
        assert_eq!(tree.kind(Path::new("")), Some(Kind::Dir));
        assert_eq!(tree.kind(Path::new("etc/real")), Some(Kind::File));
        assert_eq!(tree.kind(Path::new("nope/real")), None);
        assert!(tree.read_dir(Path::new("nope")).unwrap().is_empty());
    }

    #[test]
    fn the_walk_without_openat2_follows_no_symlink() {
        let (_t, tree) = tree();
        symlink("../etc/real", tree.root().join("boot/rel")).unwrap();
        let e = walk(&tree.dir, Path::new("boot/rel"), OFlags::RDONLY, false).unwrap_err();
        assert_eq!(e, rustix::io::Errno::XDEV);
        assert!(walk(&tree.dir, Path::new("etc/real"), OFlags::RDONLY, true).is_ok());
    }
}
