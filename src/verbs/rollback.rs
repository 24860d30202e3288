//! `imgbase rollback [--to LAYER]`: boot an older layer by default. The
//! steps are those of `boot --set-default` (which ends a pending trial);
//! this only decides which layer. Layers whose trial failed are skipped.
//!
//! "Previous" is the layer just before the current default (or, without a
//! default, before the booted layer) in the global order: bases oldest to
//! newest as [`Layout`] orders them, each base's layers by index. Unlike
//! imgbased, the oldest layer has no previous one (no wrap-around to the
//! newest).

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::plan::Plan;

use super::boot::{self, BootView};

/// The layer rolling back from: the default, else the booted layer.
fn current<'l>(layout: &'l Layout, view: &BootView) -> Result<&'l str> {
    if let Some(default) = &view.default {
        return layout
            .layer(default)
            .map(|(_, l)| l.volume.lv.as_str())
            .ok_or_else(|| {
                Error::Refused(format!(
                    "the default boot entry names layer {default}, which is not a layer of {}: \
                     name the layer to boot with `imgbase rollback --to LAYER`",
                    layout.vg
                ))
            });
    }
    layout
        .booted_layer()
        .map(|(_, l)| l.volume.lv.as_str())
        .ok_or_else(|| {
            Error::Refused(format!(
                "no layer of {} is the default boot entry or booted: name the layer to boot \
                 with `imgbase rollback --to LAYER`",
                layout.vg
            ))
        })
}

/// The layer just before `layer` in the global order whose trial boot did
/// not fail, if any.
pub fn previous_layer<'l>(layout: &'l Layout, layer: &str) -> Option<&'l str> {
    let order: Vec<(&str, bool)> = layout
        .layers()
        .map(|l| (l.volume.lv.as_str(), l.failed))
        .collect();
    let at = order.iter().position(|(l, _)| *l == layer)?;
    order[..at]
        .iter()
        .rev()
        .find(|(_, failed)| !failed)
        .map(|(l, _)| *l)
}

/// `imgbase rollback [--to LAYER]`: make `to` (or the previous layer) the
/// default boot entry. Naming the current default is a plan without steps.
pub fn plan_rollback(layout: &Layout, view: &BootView, to: Option<&str>) -> Result<Plan> {
    let target = match to {
        Some(t) => {
            layout.find_layer(t)?;
            t
        }
        None => {
            let from = current(layout, view)?;
            previous_layer(layout, from).ok_or_else(|| {
                Error::Refused(format!(
                    "layer {from} is the oldest layer: there is none before it to roll back to \
                     (name another with `imgbase rollback --to LAYER`)"
                ))
            })?
        }
    };
    if view.default.as_deref() == Some(target) {
        let mut plan = Plan::new(
            &layout.vg,
            format!("layer {target} is already the default boot entry; nothing to do"),
        );
        // Rolling back is the operator's word: a pending trial ends.
        if view.trials.pending.is_some() {
            plan.summary = format!("layer {target} stays the default boot entry");
            boot::end_trial(&mut plan, view);
        }
        return Ok(plan);
    }
    let mut plan = boot::plan_set_default(layout, view, target)?;
    plan.summary = match &view.default {
        Some(from) => format!("roll back from {from} to {target}: boot {target} by default"),
        None => format!("roll back to {target}: boot {target} by default"),
    };
    Ok(plan)
}
