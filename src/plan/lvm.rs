//! The LVM domain: steps that create, change and remove LVs, each with
//! its inverse and a way to tell from a report whether it already holds.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Sys, Undo};
use crate::error::Result;
use crate::model::size::human;
use crate::sys::lvm::LvRecord;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum LvmStep {
    /// A new thin LV, tagged (and active) at birth.
    CreateThin {
        lv: String,
        pool: String,
        size: u64,
        tags: Vec<String>,
    },
    /// A writable thin snapshot, tagged and active at birth.
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
}

impl LvmStep {
    pub(super) fn undo(&self) -> Undo {
        use LvmStep::*;
        Undo::By(
            match self.clone() {
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
                Remove { .. } | Extend { .. } => return Undo::Never,
            }
            .into(),
        )
    }

    /// The LV the step acts on (after it, for renames).
    pub(super) fn lv(&self) -> Option<&str> {
        use LvmStep::*;
        match self {
            CreateThin { lv, .. }
            | Snapshot { lv, .. }
            | SetActive { lv, .. }
            | SetReadOnly { lv, .. }
            | SetActivationSkip { lv, .. }
            | ChangeTags { lv, .. }
            | Remove { lv }
            | Extend { lv, .. } => Some(lv),
            Rename { to, .. } => Some(to),
            ChangeVgTags { .. } => None,
        }
    }

    pub(super) fn creates(&self) -> Option<&str> {
        match self {
            LvmStep::CreateThin { lv, .. } | LvmStep::Snapshot { lv, .. } => Some(lv),
            _ => None,
        }
    }

    pub(super) fn apply(&self, sys: &Sys, vg: &str) -> Result<()> {
        use LvmStep::*;
        let lvm = sys.lvm;
        match self {
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
            ChangeTags { lv, add, del } => lvm.change_tags(vg, lv, add, del)?,
            ChangeVgTags { add, del } => lvm.change_vg_tags(vg, add, del)?,
            Rename { from, to } => lvm.rename(vg, from, to)?,
            Remove { lv } => lvm.remove(vg, lv)?,
            Extend { lv, size } => lvm.extend(vg, lv, *size)?,
        }
        Ok(())
    }

    /// Whether the report shows the step's effect already: recovery
    /// re-runs a step a crash interrupted, and LVM refuses to do twice
    /// what it did once (create, rename, remove).
    pub(super) fn holds(&self, vg: &str, records: &[LvRecord]) -> bool {
        use LvmStep::*;
        let find = |lv: &str| records.iter().find(|r| r.vg == vg && r.name == lv);
        let tagged = |r: &LvRecord, add: &[String], del: &[String]| {
            add.iter().all(|t| r.has_tag(t)) && !del.iter().any(|t| r.has_tag(t))
        };
        match self {
            CreateThin { lv, .. } | Snapshot { lv, .. } => find(lv).is_some(),
            Remove { lv } => find(lv).is_none(),
            Rename { from, to } => find(from).is_none() && find(to).is_some(),
            SetActive { lv, active } => find(lv).is_some_and(|r| r.is_active() == *active),
            SetReadOnly { lv, read_only } => {
                find(lv).is_some_and(|r| r.is_read_only() == *read_only)
            }
            SetActivationSkip { lv, skip } => {
                find(lv).is_some_and(|r| r.skips_activation() == *skip)
            }
            ChangeTags { lv, add, del } => find(lv).is_some_and(|r| tagged(r, add, del)),
            ChangeVgTags { add, del } => records.iter().any(|r| {
                r.vg == vg
                    && add.iter().all(|t| r.vg_tags.contains(t))
                    && !del.iter().any(|t| r.vg_tags.contains(t))
            }),
            Extend { lv, size } => find(lv).is_some_and(|r| r.size >= *size),
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

impl fmt::Display for LvmStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LvmStep::*;
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
            ChangeTags { lv, add, del } => write!(f, "tag {lv} {}", tag_list(add, del)),
            ChangeVgTags { add, del } => write!(f, "tag the volume group {}", tag_list(add, del)),
            Rename { from, to } => write!(f, "rename {from} to {to}"),
            Remove { lv } => write!(f, "remove {lv}"),
            Extend { lv, size } => write!(f, "grow {lv} to {}", human(*size)),
        }
    }
}
