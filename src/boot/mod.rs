//! Boot entries for layers: the pure formats imgbase reads and writes.
//!
//! Every layer gets a boot entry whose kernel arguments name its LV
//! ([`cmdline`]). Loaders that read the Boot Loader Specification (grub
//! with blscfg, systemd-boot) get one file per layer ([`bls`]); Debian's
//! grub, which has no blscfg, gets one generated menu file owned by imgbase
//! ([`grubmenu`]). The default and one-shot layer live in grub's
//! environment block ([`grubenv`]). [`loader`] names a node's loader;
//! [`loaders`] holds what each one does with these formats.
//!
//! Nothing here runs a tool or knows the layout: the boot verbs decide what
//! to write, these modules say how, and [`write_atomic`] puts it on disk so
//! a power cut leaves either the old file or the new one, never half.

pub mod bls;
pub mod cmdline;
pub mod grubenv;
pub mod grubmenu;
pub mod kernels;
pub mod loader;
pub mod loaders;

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Errors of the boot formats; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(
        "{path} is not a GRUB environment block ({reason}); recreate it with \
         `grub-editenv {path} create` (this forgets the saved default entry)"
    )]
    NotGrubEnv { path: String, reason: String },
    #[error(
        "the GRUB environment needs {need} bytes but the block holds {size}; \
         unset variables you do not need (see `grub-editenv FILE list`)"
    )]
    GrubEnvFull { need: usize, size: usize },
    #[error(
        "{name:?} cannot be a GRUB environment variable name (it must be non-empty, \
         not start with '#' and hold no '=' or control character)"
    )]
    BadEnvName { name: String },
    #[error(
        "the value of the GRUB environment variable {name} holds a control character \
         (a newline, tab, escape...), which imgbase refuses; use a value without one"
    )]
    BadEnvValue { name: String },
    #[error(
        "layer {layer} has no kernel with an initramfs (/boot/vmlinuz-* or \
         /usr/lib/modules/*/vmlinuz{}), so it cannot boot; install one in the layer, \
         or pass --loader none to manage layers without boot entries",
        if skipped.is_empty() { String::new() } else { format!("; without initramfs: {}", skipped.join(", ")) }
    )]
    NoKernel { layer: String, skipped: Vec<String> },
    /// Something in a layer that imgbase will not copy or write as it is.
    #[error("{0}")]
    Unsafe(String),
    #[error(
        "refusing to write a boot entry: the {what} {value:?} holds a control character; \
         boot loader files take printable text only, so remove it"
    )]
    ControlChar { what: String, value: String },
    #[error("{0}")]
    Tool(String),
    #[error(transparent)]
    InLayer(#[from] crate::sys::inroot::InRootError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Replace `path` with `contents` so that a crash leaves the old or the new
/// file, never a mix: write a temporary file in the same directory, fsync
/// it, rename it over `path`, fsync the directory (so the rename itself is
/// on disk before we report success).
///
/// A symlink at `path` stays: the file it finally names is replaced, in
/// that file's directory (EL on UEFI links /boot/grub2/grubenv to the ESP,
/// and grub reads the target; renaming over the link would leave grub the
/// old file). A dangling link gets its target created.
///
/// The new file keeps the mode of the file it replaces, or gets 0644 (boot
/// loader files are world-readable by convention; bootctl lists them
/// unprivileged). The temporary name starts with `.imgbase-` and ends with
/// `.tmp`, so a loader scanning for `*.conf` never sees a half-written one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let target = follow_links(path)?;
    let replace = || -> io::Result<()> {
        let dir = parent_dir(&target);
        let mode = match std::fs::metadata(&target) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0o644,
            Err(e) => return Err(e),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".imgbase-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        tmp.write_all(contents)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| e.error)?;
        sync_dir(dir)
    };
    replace().map_err(|e| {
        if target == path {
            e
        } else {
            // The caller names the link; say which file was being written.
            io::Error::new(
                e.kind(),
                format!("{e} (writing {}, which it links to)", target.display()),
            )
        }
    })
}

/// How many symlinks [`follow_links`] follows before calling it a loop:
/// the kernel's own limit (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// The path a chain of symlinks at `path` ends at (`path` itself if it is
/// not a link). The end need not exist. Relative targets are joined to
/// the directory of the link holding them, unnormalised, so `..` is
/// resolved by the kernel the way it resolves the link.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut cur = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&cur)?;
                cur = if to.is_absolute() {
                    to
                } else {
                    parent_dir(&cur).join(to)
                };
            }
            Ok(_) => return Ok(cur),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(cur),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links to follow, a loop; point the link at the real file"
    )))
}

/// The directory holding `path`, `.` for a bare name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Refuse a value bound for a loader file if it holds an ASCII control
/// character (below 0x20, or DEL). Loader files are line based: a newline
/// in a kernel version, title or argument would let it add lines (an
/// `initrd`, a `menuentry`) of its own; the other controls have no business
/// there and some parsers treat them as blanks or line ends.
pub(crate) fn refuse_control(what: &str, value: &str) -> Result<(), BootError> {
    if value.chars().any(is_control) {
        return Err(BootError::ControlChar {
            what: what.to_string(),
            value: value.to_string(),
        });
    }
    Ok(())
}

/// An ASCII control character: what [`refuse_control`] refuses.
pub(crate) fn is_control(c: char) -> bool {
    c < ' ' || c == '\x7f'
}

/// An I/O error at `path`, for `map_err`.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BootError + '_ {
    move |source| BootError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsync a directory, so renames in it are on disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        // Some filesystems (vfat on an ESP, 9p) cannot fsync a directory;
        // the rename is then as durable as they make it.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_and_replaces_keeping_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.conf");
        write_atomic(&p, b"one\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);

        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.conf")]);
    }

    /// The EL UEFI layout: /boot/grub2/grubenv -> ../efi/EFI/<distro>/grubenv.
    #[test]
    fn grubenv_saved_through_a_symlink_updates_the_target() {
        use std::os::unix::fs::symlink;
        let boot = tempfile::tempdir().unwrap();
        let efi = boot.path().join("efi/EFI/fedora");
        std::fs::create_dir_all(&efi).unwrap();
        std::fs::create_dir(boot.path().join("grub2")).unwrap();
        let target = efi.join("grubenv");
        let mut env = grubenv::GrubEnv::new();
        env.set("saved_entry", "old").unwrap();
        env.save(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = boot.path().join("grub2/grubenv");
        symlink("../efi/EFI/fedora/grubenv", &link).unwrap();

        env.set("saved_entry", "new").unwrap();
        env.save(&link).unwrap();

        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../efi/EFI/fedora/grubenv")
        );
        let saved = grubenv::GrubEnv::load(&target).unwrap();
        assert_eq!(saved.get("saved_entry"), Some("new"));
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // The temporary file went in the target's directory and is gone.
        for d in [efi.as_path(), &boot.path().join("grub2")] {
            for e in std::fs::read_dir(d).unwrap() {
                let n = e.unwrap().file_name();
                assert!(
                    !n.to_string_lossy().ends_with(".tmp"),
                    "{n:?} left in {d:?}"
                );
            }
        }
    }

    #[test]
    fn write_atomic_follows_a_relative_chain_of_links() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        for d in ["a", "b", "c/d"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        let target = t.path().join("c/d/file");
        std::fs::write(&target, "old").unwrap();
        // a/first -> ../b/second -> ../c/d/file: each relative to its own
        // directory, not to the first link's.
        symlink("../b/second", t.path().join("a/first")).unwrap();
        symlink("../c/d/file", t.path().join("b/second")).unwrap();

        write_atomic(&t.path().join("a/first"), b"new").unwrap();

        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        for l in ["a/first", "b/second"] {
            let m = t.path().join(l).symlink_metadata().unwrap();
            assert!(m.file_type().is_symlink(), "{l} is no longer a link");
        }
    }

    #[test]
    fn write_atomic_through_a_dangling_link_creates_its_target() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        symlink("real", t.path().join("link")).unwrap();
        write_atomic(&t.path().join("link"), b"x").unwrap();
        assert_eq!(std::fs::read(t.path().join("real")).unwrap(), b"x");
        assert!(
            t.path()
                .join("link")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Its directory missing: an error, nothing made.
        symlink("gone/real", t.path().join("link2")).unwrap();
        assert!(write_atomic(&t.path().join("link2"), b"x").is_err());
        assert!(!t.path().join("gone").exists());
    }

    #[test]
    fn write_atomic_refuses_a_link_loop_and_changes_nothing() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        let e = write_atomic(&t.path().join("a"), b"x").unwrap_err();
        assert!(e.to_string().contains("a loop; point the link"), "{e}");
        let mut names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            std::fs::read_link(t.path().join("a")).unwrap(),
            Path::new("b")
        );
        assert_eq!(
            std::fs::read_link(t.path().join("b")).unwrap(),
            Path::new("a")
        );
    }

    #[test]
    fn write_atomic_into_missing_dir_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope/a.conf");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }
}
