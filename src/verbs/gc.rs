//! `imgbase gc`: remove old bases with their layers, keeping the newest
//! few. A base is kept whole, however old, while one of its layers is
//! booted, is (or becomes) the default boot entry, boots next, is on
//! trial, or is pinned (`imgbase layer --pin`). LVs tagged `imgbased:init` or
//! `imgbased:volume` are never removed.
//!
//! [`add_gc`] appends the same steps to another verb's plan (an update
//! that adds a base collects old ones in the same journaled operation).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::layout::{Base, Layout};
use crate::plan::{BootStep, Plan, Step};

use super::boot::{self, BootView};
use super::remove_lv;

pub use crate::config::DEFAULT_KEEP_BASES;

/// What a collection removes and what it keeps beyond the newest N.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Collected {
    /// Bases removed with their layers, oldest first.
    pub bases: Vec<String>,
    /// Their layers, in the same order.
    pub layers: Vec<String>,
    /// Older bases kept anyway, each with why.
    pub spared: Vec<Spared>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spared {
    pub base: String,
    pub reason: String,
}

impl Collected {
    /// One line for a plan's summary.
    pub fn describe(&self, keep: usize) -> String {
        let spared = self
            .spared
            .iter()
            .map(|s| format!("; {} kept: {}", s.base, s.reason))
            .collect::<String>();
        if self.bases.is_empty() {
            return format!(
                "no old base to remove (keeping the newest {keep}{spared}); nothing to do"
            );
        }
        format!(
            "remove old base{} {} and {} layer{} (keeping the newest {keep}{spared})",
            plural(self.bases.len()),
            self.bases.join(", "),
            self.layers.len(),
            plural(self.layers.len()),
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The boot state once the steps already in `plan` have run: a verb that
/// adds a layer (and its entry) or moves the default before collecting
/// must not see its own changes undone by the removals' entry rewrite.
fn view_after(view: &BootView, plan: &Plan) -> BootView {
    let mut v = view.clone();
    for step in &plan.steps {
        match step {
            Step::Boot(BootStep::InstallKernels { layer, .. }) if !v.installed.contains(layer) => {
                v.installed.push(layer.clone());
            }
            Step::Boot(BootStep::RemoveKernels { layer }) => v.installed.retain(|l| l != layer),
            Step::Boot(BootStep::WriteEntries { layers, .. }) => v.installed = layers.clone(),
            Step::Boot(BootStep::SetDefault { layer, .. }) => v.default = layer.clone(),
            Step::Boot(BootStep::SetNext { layer, .. }) => v.next = layer.clone(),
            Step::Boot(BootStep::SetTrial { trial, .. }) => v.trials.pending = trial.clone(),
            _ => {}
        }
    }
    v.installed = boot::sorted(v.installed);
    v
}

/// Why `base` must stay, if it must.
fn keeps(layout: &Layout, base: &Base, protected: &[(&str, &str)]) -> Option<String> {
    if layout.never_removed.contains(&base.volume.lv) {
        return Some("it is tagged imgbased:init or imgbased:volume".into());
    }
    for l in &base.layers {
        let lv = l.volume.lv.as_str();
        if layout.never_removed.iter().any(|n| n == lv) {
            return Some(format!(
                "its layer {lv} is tagged imgbased:init or imgbased:volume"
            ));
        }
        if l.booted {
            return Some(format!("its layer {lv} is booted"));
        }
        if let Some((_, why)) = protected.iter().find(|(p, _)| *p == lv) {
            return Some(format!("its layer {lv} {why}"));
        }
        if l.pinned {
            return Some(format!("its layer {lv} is pinned"));
        }
    }
    None
}

/// Append to `plan` the steps that remove old bases with their layers:
/// all but the newest `keep` bases, where `newest_extra` (a base the same
/// plan creates, not in `layout` yet) counts as the newest, and
/// `default_after` (the layer the plan makes the default, if it does) is
/// kept like the default. Boot entries move off the removed layers first
/// (once for all of them, so the point of no return comes after), the
/// LVs go newest first, then their kernels. Returns what it removes.
pub fn add_gc(
    plan: &mut Plan,
    layout: &Layout,
    boot: Option<&BootView>,
    keep: usize,
    newest_extra: Option<&str>,
    default_after: Option<&str>,
) -> Result<Collected> {
    if keep == 0 {
        return Err(Error::Refused(
            "gc must keep at least one base: pass --keep 1 or more".into(),
        ));
    }
    let view = boot.map(|v| view_after(v, plan));
    let mut protected: Vec<(&str, &str)> = Vec::new();
    if let Some(l) = default_after {
        protected.push((l, "becomes the default boot entry"));
    }
    for v in boot.into_iter().chain(view.as_ref()) {
        if let Some(l) = &v.default {
            protected.push((l, "is the default boot entry"));
        }
        if let Some(l) = &v.next {
            protected.push((l, "boots next"));
        }
        if let Some(l) = v.trial() {
            protected.push((l, "is on trial"));
        }
    }

    let extra = newest_extra.filter(|n| layout.base(n).is_none());
    let keep_existing = keep - usize::from(extra.is_some());
    let old = layout.bases.len().saturating_sub(keep_existing);
    let mut c = Collected::default();
    let mut gone: Vec<&Base> = Vec::new();
    for base in &layout.bases[..old] {
        match keeps(layout, base, &protected) {
            Some(reason) => c.spared.push(Spared {
                base: base.volume.lv.clone(),
                reason,
            }),
            None => gone.push(base),
        }
    }
    if gone.is_empty() {
        return Ok(c);
    }
    c.bases = gone.iter().map(|b| b.volume.lv.clone()).collect();
    c.layers = gone
        .iter()
        .flat_map(|b| b.layers.iter().map(|l| l.volume.lv.clone()))
        .collect();
    if let Some(v) = &view {
        boot::before_removing(plan, v, &c.layers);
    }
    for base in gone.iter().rev() {
        for layer in base.layers.iter().rev() {
            remove_lv(plan, &layer.volume.lv);
        }
        remove_lv(plan, &base.volume.lv);
    }
    if let Some(v) = &view {
        boot::after_removing(plan, v, &c.layers);
    }
    Ok(c)
}

/// `imgbase gc [--keep N]`.
pub fn plan_gc(layout: &Layout, boot: Option<&BootView>, keep: usize) -> Result<Plan> {
    let mut plan = Plan::new(&layout.vg, String::new());
    let c = add_gc(&mut plan, layout, boot, keep, None, None)?;
    plan.summary = c.describe(keep);
    Ok(plan)
}
