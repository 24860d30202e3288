//! One module per verb family. Each reads the layout once, checks its
//! arguments against it, and returns either a report or a [`Plan`];
//! nothing here touches the system except through the traits in `sys`.

pub mod base;
pub mod boot;
pub mod layer;
pub mod layout;

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::model::size::human;
use crate::model::tags;
use crate::plan::{Plan, Step};
use crate::sys::fs::DevNum;
use crate::sys::lvm::{LvRecord, Lvm, Scope};

/// Refuse to add volumes to a pool fuller than this (percent), data or
/// metadata: a thin pool that runs out stops every writer in it.
pub const POOL_FULL_PERCENT: f64 = 95.0;

/// What every verb needs to read the node.
pub struct Ctx<'a> {
    pub lvm: &'a dyn Lvm,
    /// `--vg`; None means the VG tagged `imgbased:vg`.
    pub vg: Option<String>,
    /// Device of the running root filesystem, to find the booted layer.
    pub root: Option<DevNum>,
    /// /boot as read before planning; None when entries are not managed.
    pub boot: Option<boot::BootView>,
    /// Set when `--loader auto` found no loader in this directory: a VG
    /// whose layers have entries is then refused (see [`boot::boot_missing`]).
    pub boot_missing: Option<std::path::PathBuf>,
}

impl Ctx<'_> {
    /// The command's one `lvs` call.
    pub fn report(&self, all: bool) -> Result<Vec<LvRecord>> {
        let scope = match (&self.vg, all) {
            (Some(vg), _) => Scope::Vg(vg.clone()),
            (None, true) => Scope::All,
            (None, false) => Scope::TaggedVgs,
        };
        Ok(self.lvm.report(&scope)?)
    }

    pub fn layout(&self) -> Result<Layout> {
        let records = self.report(false)?;
        let layout = Layout::from_report(&records, self.vg.as_deref(), self.root)?;
        if let Some(dir) = &self.boot_missing {
            boot::boot_missing(&layout, dir)?;
        }
        Ok(layout)
    }
}

/// Steps that finish or clear what an interrupted run left: a temporary
/// LV is removed; an LV already renamed into place only lacks its role.
pub fn finish_leftovers(plan: &mut Plan, incomplete: &[String]) {
    for lv in incomplete {
        if lv.starts_with(tags::TMP_PREFIX) {
            plan.push(Step::Remove { lv: lv.clone() });
        } else {
            let role = if lv.parse::<crate::model::names::LayerName>().is_ok() {
                tags::LAYER
            } else {
                tags::BASE
            };
            plan.push(Step::ChangeTags {
                lv: lv.clone(),
                add: vec![role.into()],
                del: vec![tags::INCOMPLETE.into()],
            });
        }
    }
}

/// Bases never change: read-only, and not activated with the VG.
pub(crate) fn protect(plan: &mut Plan, lv: &str) {
    plan.push(Step::SetReadOnly {
        lv: lv.into(),
        read_only: true,
    });
    plan.push(Step::SetActivationSkip {
        lv: lv.into(),
        skip: true,
    });
    plan.push(Step::SetActive {
        lv: lv.into(),
        active: false,
    });
}

/// Steps that remove one LV (deactivated first) and record it as removed.
pub(crate) fn remove_lv(plan: &mut Plan, lv: &str) {
    plan.push(Step::SetActive {
        lv: lv.into(),
        active: false,
    });
    plan.push(Step::Remove { lv: lv.into() });
    plan.removed.push(lv.into());
}

/// Admission for any new LV: the pool must not be (nearly) full.
pub fn check_pool_room(layout: &Layout) -> Result<()> {
    let p = &layout.pool;
    for (what, pct) in [("data", p.data_percent), ("metadata", p.metadata_percent)] {
        if pct >= POOL_FULL_PERCENT {
            return Err(Error::Admission(format!(
                "thin pool {}/{} is {pct:.1}% full ({what}; {} data free): remove old bases \
                 with `imgbase base --remove` or grow the pool with `lvextend`",
                layout.vg,
                p.name,
                human(p.data_free()),
            )));
        }
    }
    Ok(())
}

/// A new name must not collide with any LV in the VG, tagged or not.
pub fn check_name_free(layout_names: &[String], vg: &str, name: &str) -> Result<()> {
    let temp = tags::temp_name(name);
    if layout_names.iter().any(|n| *n == name) {
        return Err(Error::NameTaken {
            name: name.into(),
            vg: vg.into(),
        });
    }
    crate::model::names::validate_lv_name(name)?;
    // The temporary name must be usable too (it is longer).
    if temp.len() > 127 {
        return Err(Error::Refused(format!("name {name} is too long")));
    }
    Ok(())
}
