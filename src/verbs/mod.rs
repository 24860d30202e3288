//! One module per verb family. Each reads the layout once, checks its
//! arguments against it, and returns either a report or a [`Plan`];
//! nothing here touches the system except through the traits in `sys`.

pub mod base;
pub mod bless;
pub mod boot;
pub mod gc;
pub mod layer;
pub mod layout;
pub mod recover;
pub mod rollback;
pub mod update;

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::model::size::human;
use crate::model::tags;
use crate::plan::{LvmStep, Plan};
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
    /// The report, once read: recovery and planning share it.
    pub cached: std::cell::RefCell<Option<(Scope, Vec<LvRecord>)>>,
}

impl Ctx<'_> {
    /// The command's one `lvs` call (read again only after a change, see
    /// [`Ctx::forget`]).
    pub fn report(&self, all: bool) -> Result<Vec<LvRecord>> {
        let scope = match (&self.vg, all) {
            (Some(vg), _) => Scope::Vg(vg.clone()),
            (None, true) => Scope::All,
            (None, false) => Scope::TaggedVgs,
        };
        if let Some((s, records)) = self.cached.borrow().as_ref()
            && (*s == scope || *s == Scope::All)
        {
            return Ok(records
                .iter()
                .filter(|r| scope != Scope::TaggedVgs || r.vg_tags.iter().any(|t| t == tags::VG))
                .cloned()
                .collect());
        }
        let records = self.lvm.report(&scope)?;
        *self.cached.borrow_mut() = Some((scope, records.clone()));
        Ok(records)
    }

    /// The LVs changed (recovery ran): the next question reads them again.
    pub fn forget(&self) {
        self.cached.borrow_mut().take();
    }

    pub fn layout(&self) -> Result<Layout> {
        let records = self.report(false)?;
        let layout = Layout::from_report(&records, self.vg.as_deref(), self.root)?;
        if let Some(dir) = &self.boot_missing {
            boot::boot_missing(&layout, dir)?;
            tracing::warn!(
                "no boot loader found under {}: boot entries are not written (pass --loader \
                 and --boot-dir to choose one, or --loader none)",
                dir.display()
            );
        }
        Ok(layout)
    }
}

/// Bases never change: read-only, and not activated with the VG.
pub(crate) fn protect(plan: &mut Plan, lv: &str) {
    plan.push(LvmStep::SetReadOnly {
        lv: lv.into(),
        read_only: true,
    });
    plan.push(LvmStep::SetActivationSkip {
        lv: lv.into(),
        skip: true,
    });
    plan.push(LvmStep::SetActive {
        lv: lv.into(),
        active: false,
    });
}

/// Steps that remove one LV (deactivated first) and record it as removed.
pub(crate) fn remove_lv(plan: &mut Plan, lv: &str) {
    plan.push(LvmStep::SetActive {
        lv: lv.into(),
        active: false,
    });
    plan.push(LvmStep::Remove { lv: lv.into() });
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
