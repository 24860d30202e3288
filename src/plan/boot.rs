//! The boot domain: kernels under /boot/imgbase/<layer>/, the entries,
//! the default and the one-shot layer. Every step rewrites whole files
//! atomically, so re-running one a crash interrupted is always safe.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Sys, Undo};
use crate::boot::loader::{Loader, TrialState};
use crate::error::{Error, Result};
use crate::sys::boot::BootExec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum BootStep {
    /// Copy a layer's kernels to /boot/imgbase/<layer>/.
    InstallKernels {
        layer: String,
        args_from: Option<String>,
    },
    /// Remove /boot/imgbase/<layer>/ (shared files stay linked elsewhere).
    RemoveKernels { layer: String },
    /// Remove a file or folder under /boot/imgbase/ that is no layer's
    /// (a `.tmp-*` folder a crash left).
    RemoveStray { path: PathBuf },
    /// Rewrite imgbase's boot entries: exactly these layers get one.
    WriteEntries {
        layers: Vec<String>,
        before: Vec<String>,
    },
    SetDefault {
        layer: Option<String>,
        previous: Option<String>,
    },
    SetNext {
        layer: Option<String>,
        previous: Option<String>,
    },
    /// Install /etc/grub.d/09_imgbase under this root.
    InstallGrubScript { root: PathBuf },
    /// Put a layer on trial (None: none); `default` is the default entry's
    /// layer, which stays (for the plan's text only).
    SetTrial {
        trial: Option<TrialState>,
        previous: Option<TrialState>,
        default: Option<String>,
    },
    /// Record why a layer's trial boot failed in
    /// /boot/imgbase/failed/LAYER (None: forget it).
    SetFailure {
        layer: String,
        line: Option<String>,
        previous: Option<String>,
    },
    /// Forget the loader's own record that a layer ran out of tries
    /// (grub's `imgbase_failed`, a BLS `+0` counter), once imgbase has
    /// recorded the failure itself.
    ClearLoaderFailure { layer: String },
}

impl BootStep {
    pub(super) fn undo(&self) -> Undo {
        use BootStep::*;
        Undo::By(
            match self.clone() {
                // A layer's directory rewritten (its arguments taken from
                // itself, see `verbs::boot::plan_setup`) keeps the new copy:
                // it holds the same LV's kernels, and the entries put back
                // use it.
                InstallKernels { layer, args_from } if args_from.as_deref() == Some(&layer) => {
                    return Undo::Keep;
                }
                InstallKernels { layer, .. } => RemoveKernels { layer },
                WriteEntries { layers, before } => WriteEntries {
                    layers: before,
                    before: layers,
                },
                SetDefault { layer, previous } => SetDefault {
                    layer: previous,
                    previous: layer,
                },
                SetNext { layer, previous } => SetNext {
                    layer: previous,
                    previous: layer,
                },
                SetTrial {
                    trial,
                    previous,
                    default,
                } => SetTrial {
                    trial: previous,
                    previous: trial,
                    default,
                },
                SetFailure {
                    layer,
                    line,
                    previous,
                } => SetFailure {
                    layer,
                    line: previous,
                    previous: line,
                },
                // Harmless to keep: it only makes grub read our menu.
                InstallGrubScript { .. } => return Undo::Keep,
                // The LV tag and the file above hold the failure now.
                ClearLoaderFailure { .. } => return Undo::Keep,
                RemoveKernels { .. } | RemoveStray { .. } => return Undo::Never,
            }
            .into(),
        )
    }

    pub(super) fn apply(&self, sys: &Sys) -> Result<()> {
        use BootStep::*;
        let exec = sys.boot.ok_or_else(|| {
            Error::Refused("internal: a boot step in a plan without a boot loader".into())
        })?;
        let b = &exec.boot;
        match self {
            InstallKernels { layer, args_from } => {
                exec.install(&sys.vg, layer, args_from.as_deref())?
            }
            RemoveKernels { layer } => b.store().remove(layer)?,
            RemoveStray { path } => b.store().remove_stray(path)?,
            WriteEntries { layers, .. } => {
                let store = b.store();
                let mut installed = Vec::new();
                for l in layers {
                    installed.extend(store.installed(l)?);
                }
                b.write_entries(&installed)?;
                if b.needs_grub_script() && !b.grub_reads_menu() {
                    tracing::warn!(
                        "grub.cfg does not read imgbase's entries ({}): run `imgbase boot --setup`, \
                         then `update-grub`, once",
                        b.menu_path().display()
                    );
                }
            }
            SetDefault { layer, .. } => b.set_default(id_of(exec, layer.as_deref())?.as_deref())?,
            SetNext { layer, .. } => exec.set_next(id_of(exec, layer.as_deref())?.as_deref())?,
            InstallGrubScript { root } => {
                b.install_grub_script(root)?;
            }
            SetTrial { trial, .. } => {
                b.set_trial(trial.as_ref())?;
                // BLS loaders boot a trial as the one-shot entry.
                if b.loader != Loader::Grub {
                    let next = match trial {
                        Some(t) => {
                            let inst = b.store().installed(&t.layer)?.ok_or_else(|| {
                                Error::Refused(format!(
                                    "layer {} has no kernels under /boot/imgbase",
                                    t.layer
                                ))
                            })?;
                            b.trial_next_id(&inst, t.tries)
                        }
                        None => None,
                    };
                    exec.set_next(next.as_deref())?;
                }
            }
            SetFailure { layer, line, .. } => b.store().set_failure(layer, line.as_deref())?,
            ClearLoaderFailure { layer } => b.clear_failed(layer)?,
        }
        Ok(())
    }
}

/// The loader's id of a layer's entry.
fn id_of(exec: &BootExec, layer: Option<&str>) -> Result<Option<String>> {
    let Some(layer) = layer else { return Ok(None) };
    let b = &exec.boot;
    let inst = b.store().installed(layer)?.ok_or_else(|| {
        Error::Refused(format!("layer {layer} has no kernels under /boot/imgbase"))
    })?;
    Ok(b.id_of(&inst))
}

impl fmt::Display for BootStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BootStep::*;
        match self {
            InstallKernels { layer, .. } => {
                write!(f, "copy the kernels of {layer} to /boot/imgbase/{layer}/")
            }
            RemoveKernels { layer } => write!(f, "remove /boot/imgbase/{layer}/"),
            RemoveStray { path } => write!(f, "remove the leftover {}", path.display()),
            WriteEntries { layers, .. } if layers.is_empty() => {
                write!(f, "remove imgbase's boot entries")
            }
            WriteEntries { layers, .. } => {
                write!(f, "write the boot entries of {}", layers.join(", "))
            }
            SetDefault { layer: Some(l), .. } => write!(f, "boot {l} by default"),
            SetDefault { layer: None, .. } => write!(f, "clear the default boot entry"),
            SetNext { layer: Some(l), .. } => write!(f, "boot {l} once, at the next boot"),
            SetNext { layer: None, .. } => write!(f, "clear the one-shot boot entry"),
            SetTrial {
                trial: Some(t),
                default,
                ..
            } => write!(
                f,
                "boot {} as a trial ({} {}), the default stays {}",
                t.layer,
                t.tries,
                if t.tries == 1 { "try" } else { "tries" },
                default.as_deref().unwrap_or("unset")
            ),
            SetTrial {
                trial: None,
                previous: Some(p),
                ..
            } => write!(f, "end the trial of {}", p.layer),
            SetTrial { trial: None, .. } => write!(f, "end any trial"),
            SetFailure {
                layer,
                line: Some(l),
                ..
            } => write!(
                f,
                "record in /boot/imgbase/failed/{layer} that its trial failed: {l}"
            ),
            SetFailure { layer, .. } => write!(f, "remove /boot/imgbase/failed/{layer}"),
            ClearLoaderFailure { layer } => write!(
                f,
                "clear the boot loader's record that {layer} ran out of tries"
            ),
            InstallGrubScript { root } => write!(
                f,
                "install {}/etc/grub.d/09_imgbase so grub reads imgbase's entries",
                root.display().to_string().trim_end_matches('/')
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Step, Undo};

    #[test]
    fn trial_steps_round_trip_through_the_journal_and_undo_to_what_was() {
        let t = |layer: &str, tries| TrialState {
            layer: layer.into(),
            tries,
        };
        let set = BootStep::SetTrial {
            trial: Some(t("N-2-0+1", 3)),
            previous: Some(t("N-1-0+2", 1)),
            default: Some("N-1-0+1".into()),
        };
        let fail = BootStep::SetFailure {
            layer: "N-2-0+1".into(),
            line: Some("T why".into()),
            previous: None,
        };
        for s in [
            set.clone(),
            fail.clone(),
            BootStep::ClearLoaderFailure {
                layer: "N-2-0+1".into(),
            },
        ] {
            let json = serde_json::to_string(&Step::Boot(s.clone())).unwrap();
            let back: Step = serde_json::from_str(&json).unwrap();
            assert_eq!(back, Step::Boot(s), "{json}");
        }
        assert!(
            serde_json::to_string(&Step::Boot(set.clone()))
                .unwrap()
                .contains("\"step\":\"set-trial\"")
        );
        assert_eq!(
            set.undo(),
            Undo::By(Box::new(Step::Boot(BootStep::SetTrial {
                trial: Some(t("N-1-0+2", 1)),
                previous: Some(t("N-2-0+1", 3)),
                default: Some("N-1-0+1".into()),
            })))
        );
        assert_eq!(
            fail.undo(),
            Undo::By(Box::new(Step::Boot(BootStep::SetFailure {
                layer: "N-2-0+1".into(),
                line: None,
                previous: Some("T why".into()),
            })))
        );
        assert_eq!(
            set.to_string(),
            "boot N-2-0+1 as a trial (3 tries), the default stays N-1-0+1"
        );
    }
}
