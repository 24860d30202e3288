//! Boot entries for layers: the pure formats imgbase reads and writes.
//!
//! Every layer gets a boot entry whose kernel arguments name its LV
//! ([`cmdline`]). Loaders that read the Boot Loader Specification (grub
//! with blscfg, systemd-boot) get one file per layer ([`bls`]); Debian's
//! grub, which has no blscfg, gets one generated menu file owned by imgbase
//! ([`grubmenu`]). The default and one-shot layer live in grub's
//! environment block ([`grubenv`]).
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
         not start with '#' and hold no '=' or newline)"
    )]
    BadEnvName { name: String },
    #[error(
        "the value of the GRUB environment variable {name} holds a newline, which imgbase refuses"
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
/// The new file keeps the mode of the file it replaces, or gets 0644 (boot
/// loader files are world-readable by convention; bootctl lists them
/// unprivileged). The temporary name starts with `.imgbase-` and ends with
/// `.tmp`, so a loader scanning for `*.conf` never sees a half-written one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = match std::fs::metadata(path) {
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
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
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

    #[test]
    fn write_atomic_into_missing_dir_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope/a.conf");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }
}
