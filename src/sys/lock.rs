//! One imgbase operation at a time: an exclusive flock on a lock file that
//! also names its holder, so a second run can say who it waited for.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::OFlags;
use rustix::io::Errno;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another imgbase operation is running ({holder}); wait for it to finish and try again \
         (lock: {path})"
    )]
    Busy { holder: String, path: PathBuf },
    /// Something other than imgbase could have put, or could swap, the
    /// file at the lock path: writing through it as root would clobber
    /// whatever it points at.
    #[error("refusing the lock file {path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    #[error("cannot open the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the life of a changing command; released when dropped (and by
/// the kernel if the process dies, so a crash never leaves it stuck).
#[derive(Debug)]
pub struct OpLock {
    _file: File,
}

impl OpLock {
    /// Wait up to `wait` for the lock, then fail naming the holder.
    ///
    /// The lock file is written as root, so it must be one that only we
    /// could have made: not a symlink (which would redirect the write),
    /// a regular file of our own, in a directory nobody else can write.
    pub fn acquire(path: &Path, wait: Duration, what: &str) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let refuse = |reason: String| LockError::Unsafe {
            path: path.to_path_buf(),
            reason,
        };
        let euid = rustix::process::geteuid().as_raw();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io)?;
        let meta = std::fs::metadata(dir).map_err(io)?;
        if meta.uid() != euid {
            return Err(refuse(format!(
                "its directory {} is owned by uid {}, not {euid}; use a directory of your own, \
                 such as the default /run/imgbase",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "its directory {} is writable by group or others (mode {:o}); use a directory \
                 only its owner can write, such as the default /run/imgbase",
                dir.display(),
                meta.mode() & 0o7777
            )));
        }
        let remove = "remove it and try again (imgbase creates the file itself)";
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            // Never follow a symlink at the lock path; opening a fifo or
            // device found there must not block either.
            .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
                    refuse(format!("it is a symlink; {remove}"))
                } else {
                    io(e)
                }
            })?;
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(refuse(format!("it is not a regular file; {remove}")));
        }
        if meta.uid() != euid {
            return Err(refuse(format!(
                "it is owned by uid {}, not {euid}; {remove}",
                meta.uid()
            )));
        }
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(LockError::Busy {
                        holder: if holder.is_empty() {
                            "holder unknown".into()
                        } else {
                            holder.to_string()
                        },
                        path: path.to_path_buf(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // Best effort: the holder note is for humans, the flock is the lock.
        let note = format!("pid {}: {what}\n", std::process::id());
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()));
        Ok(OpLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgbase.lock");
        let first = OpLock::acquire(&path, Duration::ZERO, "imgbase layer --add").unwrap();
        let err = OpLock::acquire(&path, Duration::from_millis(200), "imgbase w").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("imgbase layer --add"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        OpLock::acquire(&path, Duration::ZERO, "again").unwrap();
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"do not clobber\n").unwrap();
        let path = dir.path().join("imgbase.lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = OpLock::acquire(&path, Duration::ZERO, "imgbase w").unwrap_err();
        assert!(matches!(err, LockError::Unsafe { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("symlink"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(std::fs::read(&target).unwrap(), b"do not clobber\n");
    }

    #[test]
    fn a_lock_in_a_world_writable_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = open.join("imgbase.lock");
        let err = OpLock::acquire(&path, Duration::ZERO, "imgbase w").unwrap_err();
        assert!(matches!(err, LockError::Unsafe { .. }), "{err:?}");
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        assert!(!path.exists(), "nothing created there");
    }

    #[test]
    fn a_missing_lock_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/imgbase/imgbase.lock");
        let _lock = OpLock::acquire(&path, Duration::ZERO, "imgbase w").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()) & 0o022, 0);
        assert_eq!(mode(&path) & 0o022, 0);
    }
}
