//! One imgbase operation at a time: an exclusive flock on a lock file that
//! also names its holder, so a second run can say who it waited for.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another imgbase operation is running ({holder}); wait for it to finish and try again \
         (lock: {path})"
    )]
    Busy { holder: String, path: PathBuf },
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
    pub fn acquire(path: &Path, wait: Duration, what: &str) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
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
}
