//! A mount that must be unmounted explicitly, so unmount errors are seen;
//! dropping it (on an error path) detaches lazily as a last resort.

use std::path::{Path, PathBuf};

use super::cmd::{Cmd, CmdError, Runner};

/// A fresh, empty directory to mount on, removed when dropped (after the
/// mount on it is gone: drop the `Mounted` first).
pub fn temp_mount_point(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir()
}

pub struct Mounted<'r> {
    runner: &'r dyn Runner,
    target: PathBuf,
    mounted: bool,
}

impl<'r> Mounted<'r> {
    pub fn new(
        runner: &'r dyn Runner,
        source: &str,
        target: &Path,
        options: &str,
    ) -> Result<Self, CmdError> {
        runner.run(&Cmd::new("mount").args([
            "-o",
            options,
            source,
            &target.display().to_string(),
        ]))?;
        Ok(Mounted {
            runner,
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.target
    }

    pub fn unmount(mut self) -> Result<(), CmdError> {
        self.mounted = false;
        self.runner
            .run(&Cmd::new("umount").arg(self.target.display().to_string()))
            .map(|_| ())
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.mounted {
            let _ = self
                .runner
                .output(&Cmd::new("umount").args(["-l", &self.target.display().to_string()]));
        }
    }
}
