//! A command is a plan: an ordered list of steps computed from the layout
//! and the arguments before anything is touched. `--dry-run` prints it;
//! the executor runs it and, when a step fails, undoes what came before.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::detect::Format;
use crate::model::size::human;
use crate::model::tags;
use crate::sys::boot::BootExec;
use crate::sys::fs::Filesystems;
use crate::sys::images::{FillMode, Images, describe};
use crate::sys::lvm::Lvm;
use crate::sys::progress::Progress;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    CreateThin {
        lv: String,
        pool: String,
        size: u64,
        tags: Vec<String>,
    },
    Snapshot {
        origin: String,
        lv: String,
        tags: Vec<String>,
    },
    SetActive {
        lv: String,
        active: bool,
    },
    SetReadOnly {
        lv: String,
        read_only: bool,
    },
    SetActivationSkip {
        lv: String,
        skip: bool,
    },
    /// Replay the journal and give the filesystem a fresh UUID.
    RenewFsUuid {
        lv: String,
    },
    ChangeTags {
        lv: String,
        add: Vec<String>,
        del: Vec<String>,
    },
    ChangeVgTags {
        add: Vec<String>,
        del: Vec<String>,
    },
    Rename {
        from: String,
        to: String,
    },
    Remove {
        lv: String,
    },
    /// Grow a (thin) LV to `size` bytes.
    Extend {
        lv: String,
        size: u64,
    },
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
    GrowFs {
        lv: String,
        fs: String,
    },
    /// Copy a layer's kernels to /boot/imgbase/<layer>/.
    InstallKernels {
        layer: String,
        args_from: Option<String>,
    },
    /// Remove /boot/imgbase/<layer>/ (shared files stay linked elsewhere).
    RemoveKernels {
        layer: String,
    },
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
    InstallGrubScript {
        root: PathBuf,
    },
}

impl Step {
    /// The step that takes this one back, if there is one.
    fn inverse(&self) -> Option<Step> {
        use Step::*;
        Some(match self.clone() {
            CreateThin { lv, .. } | Snapshot { lv, .. } => Remove { lv },
            SetActive { lv, active } => SetActive {
                lv,
                active: !active,
            },
            SetReadOnly { lv, read_only } => SetReadOnly {
                lv,
                read_only: !read_only,
            },
            SetActivationSkip { lv, skip } => SetActivationSkip { lv, skip: !skip },
            ChangeTags { lv, add, del } => ChangeTags {
                lv,
                add: del,
                del: add,
            },
            ChangeVgTags { add, del } => ChangeVgTags { add: del, del: add },
            Rename { from, to } => Rename { from: to, to: from },
            // A layer installed anew goes again; one whose directory was
            // rewritten (its arguments taken from itself, see
            // `verbs::boot::plan_setup`) keeps the new copy: it holds the
            // same LV's kernels, and the entries put back use it.
            InstallKernels { layer, args_from } if args_from.as_deref() == Some(&layer) => {
                return None;
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
            RenewFsUuid { .. }
            | RemoveKernels { .. }
            | InstallGrubScript { .. }
            | Remove { .. }
            | Extend { .. }
            | FillImage { .. }
            | GrowFs { .. } => return None,
        })
    }

    /// The LV a step acts on (after it, for renames).
    fn lv(&self) -> Option<&str> {
        use Step::*;
        match self {
            CreateThin { lv, .. }
            | Snapshot { lv, .. }
            | SetActive { lv, .. }
            | SetReadOnly { lv, .. }
            | SetActivationSkip { lv, .. }
            | RenewFsUuid { lv }
            | ChangeTags { lv, .. }
            | Remove { lv }
            | Extend { lv, .. }
            | FillImage { lv, .. }
            | GrowFs { lv, .. } => Some(lv),
            Rename { to, .. } => Some(to),
            ChangeVgTags { .. }
            | InstallKernels { .. }
            | RemoveKernels { .. }
            | WriteEntries { .. }
            | SetDefault { .. }
            | SetNext { .. }
            | InstallGrubScript { .. } => None,
        }
    }
}

fn tag_list(add: &[String], del: &[String]) -> String {
    add.iter()
        .map(|t| format!("+{t}"))
        .chain(del.iter().map(|t| format!("-{t}")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Step::*;
        match self {
            CreateThin {
                lv,
                pool,
                size,
                tags,
            } => {
                write!(f, "create thin LV {lv} of {} in pool {pool}", human(*size))?;
                if !tags.is_empty() {
                    write!(f, " tagged {}", tags.join(","))?;
                }
                Ok(())
            }
            Snapshot { origin, lv, tags } => {
                write!(f, "snapshot {origin} as {lv}")?;
                if !tags.is_empty() {
                    write!(f, " tagged {}", tags.join(","))?;
                }
                Ok(())
            }
            SetActive { lv, active: true } => write!(f, "activate {lv}"),
            SetActive { lv, active: false } => write!(f, "deactivate {lv}"),
            SetReadOnly {
                lv,
                read_only: true,
            } => write!(f, "make {lv} read-only"),
            SetReadOnly { lv, .. } => write!(f, "make {lv} writable"),
            SetActivationSkip { lv, skip: true } => write!(f, "set activation skip on {lv}"),
            SetActivationSkip { lv, .. } => write!(f, "clear activation skip on {lv}"),
            RenewFsUuid { lv } => write!(f, "give the filesystem on {lv} a new UUID"),
            ChangeTags { lv, add, del } => write!(f, "tag {lv} {}", tag_list(add, del)),
            ChangeVgTags { add, del } => write!(f, "tag the volume group {}", tag_list(add, del)),
            Rename { from, to } => write!(f, "rename {from} to {to}"),
            Remove { lv } => write!(f, "remove {lv}"),
            Extend { lv, size } => write!(f, "grow {lv} to {}", human(*size)),
            FillImage {
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
            GrowFs { lv, fs } if fs == crate::sys::images::PROBE_FS => {
                write!(
                    f,
                    "grow the filesystem on {lv} to fill it, if the disk is one"
                )
            }
            GrowFs { lv, fs } => write!(f, "grow the {fs} filesystem on {lv} to fill it"),
            InstallKernels { layer, .. } => {
                write!(f, "copy the kernels of {layer} to /boot/imgbase/{layer}/")
            }
            RemoveKernels { layer } => write!(f, "remove /boot/imgbase/{layer}/"),
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
            InstallGrubScript { root } => write!(
                f,
                "install {}/etc/grub.d/09_imgbase so grub reads imgbase's entries",
                root.display().to_string().trim_end_matches('/')
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// One line saying what the plan achieves.
    pub summary: String,
    pub vg: String,
    pub steps: Vec<Step>,
    /// LVs that exist once the plan has run, and those that are gone.
    pub created: Vec<String>,
    pub removed: Vec<String>,
}

impl Plan {
    pub fn new(vg: &str, summary: impl Into<String>) -> Self {
        Plan {
            summary: summary.into(),
            vg: vg.to_string(),
            steps: Vec::new(),
            created: Vec::new(),
            removed: Vec::new(),
        }
    }

    pub fn push(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self
    }

    /// A writable thin snapshot of `origin` under the temporary name `temp`,
    /// active, with a filesystem of its own (journal replayed, new UUID).
    pub fn new_snapshot(&mut self, origin: &str, temp: &str) -> &mut Self {
        self.push(Step::Snapshot {
            origin: origin.into(),
            lv: temp.into(),
            tags: vec![tags::INCOMPLETE.into()],
        });
        self.push(Step::SetActive {
            lv: temp.into(),
            active: true,
        });
        self.push(Step::RenewFsUuid { lv: temp.into() })
    }

    /// Build a new LV under a temporary name tagged incomplete, then (by
    /// [`Plan::commit_lv`]) rename it into place: a crash at any point
    /// leaves either nothing visible or the finished LV.
    pub fn commit_lv(&mut self, temp: &str, name: &str, role_tag: &str) -> &mut Self {
        self.push(Step::Rename {
            from: temp.into(),
            to: name.into(),
        });
        self.push(Step::ChangeTags {
            lv: name.into(),
            add: vec![role_tag.into()],
            del: vec![tags::INCOMPLETE.into()],
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Plan: {} (volume group {})", self.summary, self.vg)?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>2}. {s}", i + 1)?;
        }
        Ok(())
    }
}

/// Runs plans against the system traits.
pub struct Executor<'a> {
    pub lvm: &'a dyn Lvm,
    pub fs: &'a dyn Filesystems,
    pub images: &'a dyn Images,
    pub progress: &'a Progress,
    /// None when boot entries are not managed (`--loader none`, or no
    /// loader found); plans then hold no boot steps.
    pub boot: Option<&'a BootExec<'a>>,
}

impl Executor<'_> {
    pub fn execute(&self, plan: &Plan) -> Result<()> {
        let mut done: Vec<&Step> = Vec::new();
        for step in &plan.steps {
            tracing::info!("{step}");
            if let Err(e) = self.run(&plan.vg, step) {
                let failed = format!("{step}: {e}");
                // The caller reports the error; this only marks the log.
                tracing::info!("{failed}; undoing");
                let undo_failures = self.undo(&plan.vg, &done);
                return Err(Error::Step {
                    failed,
                    undo_failures,
                });
            }
            done.push(step);
        }
        Ok(())
    }

    /// Take back completed steps, newest first. LVs this run created are
    /// simply removed, so changes to them need no undoing of their own.
    fn undo(&self, vg: &str, done: &[&Step]) -> Vec<String> {
        let created: Vec<&str> = done
            .iter()
            .filter_map(|s| match s {
                Step::CreateThin { lv, .. } | Step::Snapshot { lv, .. } => Some(lv.as_str()),
                _ => None,
            })
            .collect();
        let mut failures = Vec::new();
        for step in done.iter().rev() {
            let is_create = matches!(step, Step::CreateThin { .. } | Step::Snapshot { .. });
            let on_created = !is_create
                && !matches!(step, Step::Rename { .. })
                && step.lv().is_some_and(|lv| created.contains(&lv));
            if on_created {
                continue;
            }
            if let Some(inv) = step.inverse() {
                tracing::info!("undo: {inv}");
                if let Err(e) = self.run(vg, &inv) {
                    failures.push(format!("{inv}: {e}"));
                }
            }
        }
        failures
    }

    fn boot(&self) -> Result<&BootExec<'_>> {
        self.boot.ok_or_else(|| {
            Error::Refused("internal: a boot step in a plan without a boot loader".into())
        })
    }

    /// The loader's id of a layer's entry.
    fn id_of(&self, layer: Option<&str>) -> Result<Option<String>> {
        let Some(layer) = layer else { return Ok(None) };
        let b = &self.boot()?.boot;
        let inst = b.store().installed(layer)?.ok_or_else(|| {
            Error::Refused(format!("layer {layer} has no kernels under /boot/imgbase"))
        })?;
        Ok(b.id_of(&inst))
    }

    fn run(&self, vg: &str, step: &Step) -> Result<()> {
        use Step::*;
        let lvm = self.lvm;
        match step {
            CreateThin {
                lv,
                pool,
                size,
                tags,
            } => lvm.create_thin(vg, pool, lv, *size, tags)?,
            Snapshot { origin, lv, tags } => lvm.snapshot(vg, origin, lv, tags)?,
            SetActive { lv, active } => lvm.set_active(vg, lv, *active)?,
            SetReadOnly { lv, read_only } => lvm.set_read_only(vg, lv, *read_only)?,
            SetActivationSkip { lv, skip } => lvm.set_activation_skip(vg, lv, *skip)?,
            RenewFsUuid { lv } => {
                self.fs.renew_uuid(&format!("/dev/{vg}/{lv}"))?;
            }
            ChangeTags { lv, add, del } => lvm.change_tags(vg, lv, add, del)?,
            ChangeVgTags { add, del } => lvm.change_vg_tags(vg, add, del)?,
            Rename { from, to } => lvm.rename(vg, from, to)?,
            Remove { lv } => lvm.remove(vg, lv)?,
            Extend { lv, size } => lvm.extend(vg, lv, *size)?,
            FillImage {
                lv,
                image,
                format,
                size,
                fill,
            } => {
                let stats = self.images.fill(
                    &format!("/dev/{vg}/{lv}"),
                    image,
                    format,
                    *size,
                    *fill,
                    self.progress,
                )?;
                tracing::info!(?stats, "image written");
            }
            GrowFs { lv, fs } => self.images.grow(&format!("/dev/{vg}/{lv}"), fs)?,
            InstallKernels { layer, args_from } => {
                self.boot()?.install(vg, layer, args_from.as_deref())?
            }
            RemoveKernels { layer } => self.boot()?.boot.store().remove(layer)?,
            WriteEntries { layers, .. } => {
                let b = &self.boot()?.boot;
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
            SetDefault { layer, .. } => {
                let b = &self.boot()?.boot;
                b.set_default(self.id_of(layer.as_deref())?.as_deref())?
            }
            SetNext { layer, .. } => {
                let id = self.id_of(layer.as_deref())?;
                self.boot()?.set_next(id.as_deref())?
            }
            InstallGrubScript { root } => {
                self.boot()?.boot.install_grub_script(root)?;
            }
        }
        Ok(())
    }
}
