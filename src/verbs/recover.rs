//! `imgbase recover`, second half: what no journal claims. Once every
//! journaled operation is finished or undone, anything still half made
//! is a stray (from a run killed before journals existed, a journal
//! removed by hand, or another tool): temporary LVs, `imgbase:incomplete`
//! tags, `.tmp-*` and orphan kernel folders under /boot/imgbase, entries
//! and a default naming layers that are gone, and mounts a killed run
//! left. This builds the plan that clears them.

use std::path::PathBuf;

use crate::model::names::LayerName;
use crate::model::tags;
use crate::plan::{BootStep, FilesStep, LvmStep, Plan};
use crate::sys::lvm::LvRecord;

use super::boot::{BootView, sorted};

/// What recovery looks at, read before planning.
pub struct Strays<'a> {
    pub vg: &'a str,
    /// The VG's LVs (one report).
    pub records: &'a [LvRecord],
    /// /boot, when entries are managed.
    pub boot: Option<&'a BootView>,
    /// Temporary mounts of runs that are gone (`sys::mount::stale_mounts`).
    pub stale_mounts: Vec<PathBuf>,
}

pub fn plan_strays(s: &Strays) -> Plan {
    let mut plan = Plan::new(
        s.vg,
        format!("clear what interrupted runs left in {}", s.vg),
    );
    // Mounts first: they keep the LVs below busy.
    for path in &s.stale_mounts {
        plan.push(FilesStep::Unmount { path: path.clone() });
    }
    let in_vg = || s.records.iter().filter(|r| r.vg == s.vg);
    for r in in_vg() {
        if r.name.starts_with(tags::TMP_PREFIX) {
            plan.push(LvmStep::Remove { lv: r.name.clone() });
        } else if r.has_tag(tags::INCOMPLETE) {
            // Renamed into place only once it was complete: it lacks
            // only its role.
            let role = if r.name.parse::<LayerName>().is_ok() {
                tags::LAYER
            } else {
                tags::BASE
            };
            plan.push(LvmStep::ChangeTags {
                lv: r.name.clone(),
                add: vec![role.into()],
                del: vec![tags::INCOMPLETE.into()],
            });
        }
    }
    if let Some(view) = s.boot {
        let layers: Vec<String> = in_vg()
            .filter(|r| {
                r.name.parse::<LayerName>().is_ok() && !r.name.starts_with(tags::TMP_PREFIX)
            })
            .map(|r| r.name.clone())
            .collect();
        boot_strays(&mut plan, view, &layers);
    }
    plan
}

/// Kernel folders of layers that are gone (and `.tmp-*` ones) go; before
/// that, no entry, default or one-shot may name them.
fn boot_strays(plan: &mut Plan, view: &BootView, layers: &[String]) {
    let gone: Vec<String> = view
        .installed
        .iter()
        .filter(|l| !layers.contains(l))
        .cloned()
        .collect();
    let left: Vec<String> = sorted(
        view.installed
            .iter()
            .filter(|l| !gone.contains(l))
            .cloned()
            .collect(),
    );
    // A default that names no entry of ours (its layer's folder is gone,
    // or never was) is as bad as one naming a removed layer.
    let default_lost = view.default.is_none()
        && view.default_id.as_deref().is_some_and(|id| {
            id.parse::<LayerName>().is_ok() || id.starts_with(crate::boot::bls::FILE_PREFIX)
        });
    if view.next.as_ref().is_some_and(|l| gone.contains(l)) {
        plan.push(BootStep::SetNext {
            layer: None,
            previous: view.next.clone(),
        });
    }
    if (view.default.as_ref().is_some_and(|l| gone.contains(l)) || default_lost)
        && let Some(newest) = left.last()
    {
        plan.push(BootStep::SetDefault {
            layer: Some(newest.clone()),
            previous: view.default.clone(),
        });
    }
    if !gone.is_empty() || view.written.iter().any(|l| !left.contains(l)) {
        plan.push(BootStep::WriteEntries {
            layers: left,
            before: view.installed.clone(),
        });
    }
    for l in gone {
        plan.push(BootStep::RemoveKernels { layer: l });
    }
    for path in &view.strays {
        plan.push(BootStep::RemoveStray { path: path.clone() });
    }
}
