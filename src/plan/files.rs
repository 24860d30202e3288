//! The files domain: what a step does to filesystems and mounts rather
//! than to LVs: a fresh filesystem UUID for a new snapshot, and (for
//! recovery) a mount a killed run left behind.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Sys, Undo};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum FilesStep {
    /// Replay the journal and give the filesystem a fresh UUID.
    RenewFsUuid { lv: String },
    /// Unmount a temporary mount a killed run left, and remove its
    /// (empty) mount point.
    Unmount { path: PathBuf },
}

impl FilesStep {
    pub(super) fn undo(&self) -> Undo {
        match self {
            // Only ever on a snapshot the same plan made.
            FilesStep::RenewFsUuid { .. } => Undo::Never,
            // A stale mount is not put back.
            FilesStep::Unmount { .. } => Undo::Keep,
        }
    }

    pub(super) fn lv(&self) -> Option<&str> {
        match self {
            FilesStep::RenewFsUuid { lv } => Some(lv),
            FilesStep::Unmount { .. } => None,
        }
    }

    pub(super) fn apply(&self, sys: &Sys) -> Result<()> {
        match self {
            FilesStep::RenewFsUuid { lv } => {
                sys.fs.renew_uuid(&sys.dev(lv))?;
            }
            FilesStep::Unmount { path } => sys.fs.unmount_stale(path)?,
        }
        Ok(())
    }
}

impl fmt::Display for FilesStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilesStep::RenewFsUuid { lv } => write!(f, "give the filesystem on {lv} a new UUID"),
            FilesStep::Unmount { path } => {
                write!(f, "unmount {}, left by an interrupted run", path.display())
            }
        }
    }
}
