//! The image domain: writing a verified image into a new LV and growing
//! its filesystem. Both act only on LVs the same plan created, so undoing
//! them is removing the LV.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Sys, Undo};
use crate::error::Result;
use crate::image::detect::Format;
use crate::sys::images::{FillMode, PROBE_FS, describe};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum ImageStep {
    /// Write an image into the LV (verified and inspected beforehand).
    FillImage {
        lv: String,
        image: PathBuf,
        #[serde(flatten)]
        format: Format,
        size: u64,
        fill: FillMode,
    },
    /// Grow the filesystem in the LV to the LV's size.
    GrowFs { lv: String, fs: String },
}

impl ImageStep {
    pub(super) fn undo(&self) -> Undo {
        Undo::Never
    }

    pub(super) fn lv(&self) -> Option<&str> {
        match self {
            ImageStep::FillImage { lv, .. } | ImageStep::GrowFs { lv, .. } => Some(lv),
        }
    }

    pub(super) fn apply(&self, sys: &Sys) -> Result<()> {
        match self {
            ImageStep::FillImage {
                lv,
                image,
                format,
                size,
                fill,
            } => {
                let stats =
                    sys.images
                        .fill(&sys.dev(lv), image, format, *size, *fill, sys.progress)?;
                tracing::info!(?stats, "image written");
            }
            ImageStep::GrowFs { lv, fs } => sys.images.grow(&sys.dev(lv), fs)?,
        }
        Ok(())
    }
}

impl fmt::Display for ImageStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageStep::FillImage {
                lv,
                image,
                format,
                fill,
                ..
            } => {
                write!(
                    f,
                    "write {} ({}) into {lv}",
                    image.display(),
                    describe(format)
                )?;
                if let FillMode::Delta { .. } = fill {
                    write!(f, ", only the blocks that differ")?;
                }
                Ok(())
            }
            ImageStep::GrowFs { lv, fs } if fs == PROBE_FS => write!(
                f,
                "grow the filesystem on {lv} to fill it, if the disk is one"
            ),
            ImageStep::GrowFs { lv, fs } => {
                write!(f, "grow the {fs} filesystem on {lv} to fill it")
            }
        }
    }
}
