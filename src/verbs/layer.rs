//! `imgbase layer`: add a writable layer (a thin snapshot) on a base or a
//! layer, remove one, and answer where it is. Which layer is newest or
//! booted is answered by `Layout` (`find_latest_layer`, `find_booted_layer`).

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::model::names::{LayerName, next_layer_index};
use crate::model::tags;
use crate::plan::{LvmStep, Plan};

use super::boot::BootView;
use super::{check_name_free, check_pool_room, remove_lv};

/// A new layer on `target` (a base or a layer). Without a target, on the
/// newest base: a snapshot of its newest layer, or of the base itself if
/// it has none yet.
pub fn plan_add(layout: &Layout, boot: Option<&BootView>, target: Option<&str>) -> Result<Plan> {
    let (base, origin) = match target {
        Some(name) => {
            if let Some(b) = layout.base(name) {
                (b, name.to_string())
            } else if let Some((b, l)) = layout.layer(name) {
                (b, l.volume.lv.clone())
            } else {
                return Err(Error::UnknownImage {
                    name: name.into(),
                    vg: layout.vg.clone(),
                });
            }
        }
        None => {
            let b = layout.find_latest_base()?;
            let origin = b
                .layers
                .last()
                .map(|l| l.volume.lv.clone())
                .unwrap_or_else(|| b.volume.lv.clone());
            (b, origin)
        }
    };
    let index = next_layer_index(
        &base.nvr,
        layout.all_names.iter().map(String::as_str),
        base.last_layer,
    );
    let name = LayerName {
        base: base.nvr.clone(),
        index,
    }
    .to_string();
    check_name_free(&layout.all_names, &layout.vg, &name)?;
    check_pool_room(layout)?;
    if let Some(view) = boot {
        super::boot::check_boot_room(view, &name)?;
    }

    let temp = tags::temp_name(&name);
    let mut plan = Plan::new(&layout.vg, format!("add layer {name} on {origin}"));
    plan.new_snapshot(&origin, &temp);
    plan.commit_lv(&temp, &name, tags::LAYER);
    if let Some(view) = boot {
        // The entry comes after the LV is in place: an entry never names
        // an LV that does not exist. Arguments follow the origin layer's,
        // else the booted layer's.
        let from_layer = layout.layer(&origin).map(|_| origin.as_str());
        let booted = layout.booted_layer().map(|(_, l)| l.volume.lv.as_str());
        super::boot::add_entry(&mut plan, view, &name, from_layer.or(booted));
        super::boot::mark_boot(&mut plan, &layout.pool, view);
    }
    plan.created.push(name);
    Ok(plan)
}

pub fn plan_remove(layout: &Layout, boot: Option<&BootView>, name: &str) -> Result<Plan> {
    let (base, layer) = layout.find_layer(name)?;
    if layer.booted {
        return Err(Error::Refused(format!(
            "refusing to remove layer {name}: the running system is booted from it; boot \
             another layer first"
        )));
    }
    if layer.pinned {
        return Err(Error::Refused(format!(
            "refusing to remove layer {name}: it is pinned; unpin it first \
             (`imgbase layer --unpin {name}`)"
        )));
    }
    let newest = layout.latest_base().map(|b| &b.nvr) == Some(&base.nvr);
    if newest && base.layers.len() == 1 {
        return Err(Error::Refused(format!(
            "refusing to remove layer {name}: it is the only layer of the newest base {}; \
             add another layer first (`imgbase layer --add {}`)",
            base.volume.lv, base.volume.lv
        )));
    }
    let mut plan = Plan::new(&layout.vg, format!("remove layer {name}"));
    let gone = [name.to_string()];
    if let Some(view) = boot {
        super::boot::before_removing(&mut plan, view, &gone);
    }
    // The base remembers the highest index handed out, so the name of a
    // removed layer is never given to another (`layer --add` takes the
    // next index from this tag and the layers that exist).
    if layer.name.index > base.last_layer {
        plan.push(LvmStep::ChangeTags {
            lv: base.volume.lv.clone(),
            add: vec![tags::last_layer(layer.name.index)],
            del: (base.last_layer > 0)
                .then(|| tags::last_layer(base.last_layer))
                .into_iter()
                .collect(),
        });
    }
    remove_lv(&mut plan, name);
    if let Some(view) = boot {
        super::boot::after_removing(&mut plan, view, &gone);
    }
    Ok(plan)
}

/// `layer --pin LAYER` (`pin`) or `layer --unpin LAYER`: tag the layer
/// `imgbase:pinned`, or take the tag off. `imgbase gc` keeps a pinned
/// layer and its base. Asking for what already holds is a plan without
/// steps that says so.
pub fn plan_pin(layout: &Layout, name: &str, pin: bool) -> Result<Plan> {
    let (_, layer) = layout.find_layer(name)?;
    let (verb, state) = if pin {
        ("pin", "pinned")
    } else {
        ("unpin", "not pinned")
    };
    if layer.pinned == pin {
        return Ok(Plan::new(
            &layout.vg,
            format!("layer {name} is already {state}; nothing to do"),
        ));
    }
    let mut plan = Plan::new(&layout.vg, format!("{verb} layer {name}"));
    let tag = vec![tags::PINNED.to_string()];
    let (add, del) = if pin { (tag, vec![]) } else { (vec![], tag) };
    plan.push(LvmStep::ChangeTags {
        lv: name.into(),
        add,
        del,
    });
    Ok(plan)
}

pub fn volume_path(layout: &Layout, name: &str) -> Result<String> {
    Ok(layout.find_layer(name)?.1.volume.path.clone())
}
