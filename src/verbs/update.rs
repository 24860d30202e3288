//! `imgbase update IMAGE`: a new base from the image, a first layer on it
//! carrying the admin's configuration over, its boot entry as the new
//! default, and old bases collected. One plan, journaled: a failure or a
//! crash before the default moves leaves the node as it was.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::layout::{Base, Layer, Layout};
use crate::model::names::{LayerName, Nvr, parse_new_base_name};
use crate::model::size::human;
use crate::model::tags;
use crate::plan::{BootStep, CarryStep, Plan};

use super::base::{self, FromImage};
use super::boot::BootView;

/// What `update` was asked for, with the settings that shape it.
pub struct Update<'a> {
    pub image: FromImage<'a>,
    /// Take an image of another product, or not newer, all the same.
    pub force: bool,
    /// Paths that always keep the admin's copy (`imgbase.conf`).
    pub keep: Vec<String>,
    /// Refuse when the pool would be fuller than this (percent).
    pub pool_threshold: f64,
    /// Bases `gc` keeps, last.
    pub bases_to_keep: usize,
    /// Where the merge report is saved (`STATE/updates/<layer>.json`).
    pub state_dir: &'a Path,
    /// Boot the new layer as a trial with this many tries (`imgbase bless`
    /// makes it the default once the node is up); None makes it the
    /// default at once (`--no-trial`, `[boot] trial = false`).
    pub trial: Option<u8>,
}

/// The layer whose configuration is carried over: the booted one, else
/// the default boot entry's, else the newest whose trial did not fail.
pub fn carried_from<'l>(
    layout: &'l Layout,
    boot: Option<&BootView>,
) -> Result<(&'l Base, &'l Layer)> {
    if let Some(found) = layout.booted_layer() {
        return Ok(found);
    }
    if let Some(d) = boot.and_then(|v| v.default.as_deref())
        && let Some(found) = layout.layer(d)
    {
        return Ok(found);
    }
    let newest = layout.find_latest_layer()?;
    let newest = layout
        .layers()
        .filter(|l| !l.failed)
        .last()
        .unwrap_or(newest);
    Ok(layout
        .layer(&newest.volume.lv)
        .expect("the newest layer is in the layout"))
}

pub fn report_path(state_dir: &Path, layer: &str) -> PathBuf {
    state_dir.join("updates").join(format!("{layer}.json"))
}

pub fn plan_update(layout: &Layout, boot: Option<&BootView>, req: &Update) -> Result<Plan> {
    let (from_base, from) = carried_from(layout, boot)?;
    let info = req.image.info;
    let name_text = req
        .image
        .nvr
        .map(str::to_string)
        .or_else(|| info.nvr.clone())
        .ok_or_else(|| {
            Error::Refused(format!(
                "{} does not record its NVR: give it with `imgbase update --nvr NVR IMAGE`",
                info.path.display()
            ))
        })?;
    let nvr = parse_new_base_name(&name_text)?;
    if !req.force {
        check_not_failed(layout, boot, &nvr, &info.sha256)?;
    }
    check_newer(layout, &nvr, req.force)?;

    let mut base_plan = base::plan_add_image(layout, &req.image)?;
    if base_plan.steps.is_empty() {
        return Err(Error::Refused(format!(
            "{}; to boot it, add a layer on it with `imgbase layer --add {nvr}`",
            base_plan.summary
        )));
    }
    let layer = LayerName {
        base: nvr.clone(),
        index: 1,
    }
    .to_string();
    super::check_name_free(&layout.all_names, &layout.vg, &layer)?;
    check_pool_after(layout, info.data_bytes, req)?;
    if let Some(view) = boot {
        super::boot::check_boot_room(view, &layer)?;
    }

    let new_base = nvr.to_string();
    let temp = tags::temp_name(&layer);
    let mut plan = Plan::new(
        &layout.vg,
        format!(
            "update to {new_base} from {}: layer {layer} with the configuration of {}",
            info.path.display(),
            from.volume.lv
        ),
    );
    plan.steps.append(&mut base_plan.steps);
    plan.new_snapshot(&new_base, &temp);
    plan.push(CarryStep::CarryConfig {
        layer: temp.clone(),
        final_name: layer.clone(),
        admin: from.volume.lv.clone(),
        ancestor: from_base.volume.lv.clone(),
        keep: req.keep.clone(),
        report: report_path(req.state_dir, &layer),
    });
    plan.commit_lv(&temp, &layer, tags::LAYER);
    if let Some(view) = boot {
        super::boot::add_entry(&mut plan, view, &layer, Some(&from.volume.lv));
        super::boot::mark_boot(&mut plan, &layout.pool, view);
        match req.trial {
            // The default stays the layer that works until the new one
            // has booted all the way (`imgbase bless`).
            Some(tries) => super::boot::push_trial(&mut plan, layout, view, &layer, tries)?,
            None if view.default.as_deref() != Some(layer.as_str()) => {
                plan.push(BootStep::SetDefault {
                    layer: Some(layer.clone()),
                    previous: view.default.clone(),
                });
            }
            None => {}
        }
    }
    // Old bases go last, once the new layer is in place and the default
    // (or on trial): the first removal is the plan's point of no return.
    super::gc::add_gc(
        &mut plan,
        layout,
        boot,
        req.bases_to_keep,
        Some(&new_base),
        Some(&layer),
    )?;
    plan.created.push(new_base);
    plan.created.push(layer);
    Ok(plan)
}

/// Not an image whose layer failed its trial boot here (same NVR or same
/// bytes): the node would boot it, fail and come back at every update.
fn check_not_failed(
    layout: &Layout,
    boot: Option<&BootView>,
    nvr: &Nvr,
    sha256: &str,
) -> Result<()> {
    for b in &layout.bases {
        let same = b.nvr == *nvr || b.sha256.as_deref().is_some_and(|s| s == sha256);
        if let Some(l) = b.layers.iter().find(|l| l.failed).filter(|_| same) {
            let lv = &l.volume.lv;
            let why = boot
                .and_then(|v| v.failure(lv))
                .unwrap_or("no reason recorded");
            return Err(Error::Refused(format!(
                "{nvr} failed its trial boot on {lv} ({why}): fix the image, or pass --force \
                 to try it again"
            )));
        }
    }
    Ok(())
}

/// Only a newer version of the same product, unless forced.
fn check_newer(layout: &Layout, nvr: &Nvr, force: bool) -> Result<()> {
    let Some(newest) = layout.latest_base() else {
        return Ok(());
    };
    if force {
        return Ok(());
    }
    if newest.nvr.name != nvr.name {
        return Err(Error::Refused(format!(
            "the image is {nvr}, another product than this node's {}: pass --force to \
             install it all the same",
            newest.nvr
        )));
    }
    if *nvr <= newest.nvr {
        return Err(Error::Refused(format!(
            "the image is {nvr}, not newer than this node's newest base {}: pass --force \
             to install it all the same, or `imgbase rollback` to go back to an older layer",
            newest.nvr
        )));
    }
    Ok(())
}

/// The pool after the new base and layer must stay under the threshold,
/// data and metadata (metadata grows with the data mapped).
fn check_pool_after(layout: &Layout, image_bytes: u64, req: &Update) -> Result<()> {
    let p = &layout.pool;
    let used = p.size.saturating_sub(p.data_free());
    // A delta base maps only what changed: at worst the whole image.
    let need = image_bytes;
    let data = (used + need) as f64 * 100.0 / p.size.max(1) as f64;
    let meta = if used == 0 {
        p.metadata_percent
    } else {
        p.metadata_percent * (used + need) as f64 / used as f64
    };
    for (what, pct) in [("data", data), ("metadata", meta)] {
        if pct > req.pool_threshold {
            return Err(Error::Admission(format!(
                "the update would fill thin pool {}/{} to about {pct:.0}% ({what}; {} free, \
                 the image needs up to {}), over the {:.0}% limit: remove old bases with \
                 `imgbase gc`, grow the pool with `lvextend`, or raise update.pool_threshold \
                 in imgbase.conf",
                layout.vg,
                p.name,
                human(p.data_free()),
                human(need),
                req.pool_threshold
            )));
        }
    }
    Ok(())
}

/// The admin's changes to `/etc` of a layer against its base.
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct Changes {
    pub added: Vec<PathBuf>,
    pub changed: Vec<PathBuf>,
    pub deleted: Vec<PathBuf>,
}

pub fn changes(base: &crate::carry::Manifest, layer: &crate::carry::Manifest) -> Changes {
    let mut c = Changes::default();
    for (p, m) in layer {
        match base.get(p) {
            None => c.added.push(p.clone()),
            Some(b) if b != m => c.changed.push(p.clone()),
            Some(_) => {}
        }
    }
    c.deleted = base
        .keys()
        .filter(|p| !layer.contains_key(*p))
        .cloned()
        .collect();
    c
}
