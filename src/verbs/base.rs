//! `imgbase base`: add an (empty) base, remove one with its layers, and
//! answer which base is newest or holds a given layer.

use crate::error::{Error, Result};
use crate::model::layout::{Base, Layout};
use crate::model::names::parse_new_base_name;
use crate::model::size::human;
use crate::model::tags;
use crate::plan::{Plan, Step};

use super::{check_name_free, check_pool_room, finish_leftovers};

/// A new, empty, protected base (read-only, skipped at activation).
pub fn plan_add(layout: &Layout, name: &str, size: u64) -> Result<Plan> {
    let nvr = parse_new_base_name(name)?;
    let name = nvr.to_string();
    check_name_free(&layout.all_names, &layout.vg, &name)?;
    if size > layout.pool.size {
        return Err(Error::Admission(format!(
            "base size {} is larger than the thin pool {}/{} ({}): pass a smaller --size \
             or grow the pool with `lvextend`",
            human(size),
            layout.vg,
            layout.pool.name,
            human(layout.pool.size)
        )));
    }
    check_pool_room(layout)?;

    let temp = tags::temp_name(&name);
    let mut plan = Plan::new(&layout.vg, format!("add base {name} of {}", human(size)));
    finish_leftovers(&mut plan, &layout.incomplete);
    plan.push(Step::CreateThin {
        lv: temp.clone(),
        pool: layout.pool.name.clone(),
        size,
        tags: vec![tags::INCOMPLETE.into()],
    });
    protect(&mut plan, &temp);
    plan.commit_lv(&temp, &name, tags::BASE);
    plan.created.push(name);
    Ok(plan)
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

/// Remove a base and all its layers, newest layer first.
pub fn plan_remove(layout: &Layout, name: &str) -> Result<Plan> {
    let base = find(layout, name)?;
    if let Some((b, l)) = layout.booted_layer()
        && b.nvr == base.nvr
    {
        return Err(Error::Refused(format!(
            "refusing to remove base {name}: the running system is booted from its layer {}; \
             boot another layer first",
            l.volume.lv
        )));
    }
    if layout.bases.len() == 1 {
        return Err(Error::Refused(format!(
            "refusing to remove base {name}: it is the only base, and the node could not boot \
             without it; add a newer base first"
        )));
    }
    let mut plan = Plan::new(&layout.vg, format!("remove base {name} and its layers"));
    for layer in base.layers.iter().rev() {
        remove_lv(&mut plan, &layer.volume.lv);
    }
    remove_lv(&mut plan, name);
    Ok(plan)
}

pub(crate) fn remove_lv(plan: &mut Plan, lv: &str) {
    plan.push(Step::SetActive {
        lv: lv.into(),
        active: false,
    });
    plan.push(Step::Remove { lv: lv.into() });
    plan.removed.push(lv.into());
}

pub fn find<'l>(layout: &'l Layout, name: &str) -> Result<&'l Base> {
    layout.base(name).ok_or_else(|| Error::UnknownBase {
        name: name.into(),
        vg: layout.vg.clone(),
    })
}

pub fn latest(layout: &Layout) -> Result<&Base> {
    layout
        .latest_base()
        .ok_or_else(|| Error::Refused(format!("no bases in {} yet", layout.vg)))
}

pub fn of_layer<'l>(layout: &'l Layout, layer: &str) -> Result<&'l Base> {
    layout
        .layer(layer)
        .map(|(b, _)| b)
        .ok_or_else(|| Error::UnknownLayer {
            name: layer.into(),
            vg: layout.vg.clone(),
        })
}
