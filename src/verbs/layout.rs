//! `imgbase layout`: show the tree of bases and layers, the free space of
//! the pool, and adopt an installed thin-LV root as the first base.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::model::names::{LayerName, Nvr, validate_lv_name};
use crate::model::tags;
use crate::plan::{LvmStep, Plan};
use crate::sys::fs::DevNum;
use crate::sys::lvm::LvRecord;

use super::{check_name_free, protect};

/// imgbased's tree: each base, then its layers indented under it.
pub struct Tree<'l>(pub &'l Layout);

impl fmt::Display for Tree<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for base in &self.0.bases {
            writeln!(f, "{}", base.volume.lv)?;
            for layer in &base.layers {
                let pinned = if layer.pinned { " (pinned)" } else { "" };
                writeln!(f, " +- {}{pinned}", layer.volume.lv)?;
            }
        }
        for layer in &self.0.orphan_layers {
            writeln!(f, "(base missing) +- {}", layer.volume.lv)?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct FreeSpace {
    pub pool: String,
    pub size: u64,
    pub data_free: u64,
    pub data_percent: f64,
    pub metadata_free: u64,
    pub metadata_percent: f64,
}

pub fn free_space(layout: &Layout) -> FreeSpace {
    let p = &layout.pool;
    FreeSpace {
        pool: format!("{}/{}", layout.vg, p.name),
        size: p.size,
        data_free: p.data_free(),
        data_percent: p.data_percent,
        metadata_free: p.metadata_free(),
        metadata_percent: p.metadata_percent,
    }
}

/// Where `layout --init` takes the installed root from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `VG/LV`
    Lv { vg: String, lv: String },
    /// A block device (`/dev/…`) or the device a mount point is on.
    Dev(DevNum),
}

impl Source {
    /// `VG/LV`, `/dev/…`, or a mount point (imgbased's spellings).
    pub fn parse(spec: &str) -> Result<Source> {
        let bad = |why: &str| {
            Error::Refused(format!(
                "cannot use --from {spec}: {why} (give VG/LV, a /dev path or a mount point)"
            ))
        };
        if !spec.starts_with('/') {
            let (vg, lv) = spec.split_once('/').ok_or_else(|| bad("not VG/LV"))?;
            if vg.is_empty() || lv.is_empty() || lv.contains('/') {
                return Err(bad("not VG/LV"));
            }
            return Ok(Source::Lv {
                vg: vg.into(),
                lv: lv.into(),
            });
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(bad("no such file or directory"));
        }
        if path.is_dir() {
            return Ok(Source::Dev(DevNum::of_mount(path)?));
        }
        DevNum::of_node(path)?
            .map(Source::Dev)
            .ok_or_else(|| bad("not a block device"))
    }

    fn find<'r>(&self, records: &'r [LvRecord]) -> Option<&'r LvRecord> {
        records.iter().find(|r| match self {
            Source::Lv { vg, lv } => r.vg == *vg && r.name == *lv,
            Source::Dev(d) => r.kernel_major == Some(d.major) && r.kernel_minor == Some(d.minor),
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Lv { vg, lv } => write!(f, "{vg}/{lv}"),
            Source::Dev(d) => write!(f, "device {}:{}", d.major, d.minor),
        }
    }
}

/// Where imgbased's images record their own NVR.
pub const NVR_FILE: &str = "usr/share/imgbase/build/meta/nvr";

/// Adopt an installed root on a thin LV: its snapshot becomes the first
/// base (read-only, activation skip) with one layer on top, the root is
/// protected as imgbased leaves it (read-only, activation skip; see
/// [`protect_root`]), and the VG, pool and root are tagged as imgbased tags
/// them. `read_nvr` reads the NVR from the root when none is given.
pub fn plan_init(
    records: &[LvRecord],
    source: &Source,
    nvr: Option<&str>,
    read_nvr: impl FnOnce(&LvRecord) -> Result<String>,
) -> Result<Plan> {
    let root = source.find(records).ok_or_else(|| {
        Error::Refused(format!(
            "{source} is not a logical volume (see `lvs`); give the installed root with --from"
        ))
    })?;
    let vg = root.vg.clone();
    if let Some(tagged) = records
        .iter()
        .find(|r| r.vg_tags.iter().any(|t| t == tags::VG))
    {
        return Err(Error::Refused(format!(
            "a layout already exists in volume group {} (see `imgbase layout`); \
             nothing to initialise",
            tagged.vg
        )));
    }
    let in_vg: Vec<&LvRecord> = records.iter().filter(|r| r.vg == vg).collect();
    if let Some(ours) = in_vg
        .iter()
        .find(|r| r.has_tag(tags::BASE) || r.has_tag(tags::LAYER))
    {
        return Err(Error::Refused(format!(
            "{vg}/{} is already tagged as a base or layer but the VG is not tagged {}: \
             a layout was half set up; add the tag with `vgchange --addtag {} {vg}` \
             or remove the stale LVs",
            ours.name,
            tags::VG,
            tags::VG
        )));
    }
    let pool = match (&root.pool, root.is_thin()) {
        (Some(pool), true) => pool.clone(),
        _ => {
            return Err(Error::Refused(format!(
                "{vg}/{} is not a thin LV (segment type {}): imgbase needs the root on an \
                 LVM thin pool",
                root.name, root.segtype
            )));
        }
    };
    let nvr_text = match nvr {
        Some(n) => n.trim().to_string(),
        None => read_nvr(root)?,
    };
    let base: Nvr = crate::model::names::parse_new_base_name(&nvr_text)?;
    validate_lv_name(&base.to_string())?;
    let layer = LayerName {
        base: base.clone(),
        index: 1,
    }
    .to_string();
    let base = base.to_string();
    let names: Vec<String> = in_vg.iter().map(|r| r.name.clone()).collect();
    check_name_free(&names, &vg, &base)?;
    check_name_free(&names, &vg, &layer)?;

    let mut plan = Plan::new(
        &vg,
        format!(
            "initialise a layout from {vg}/{}: base {base}, layer {layer}",
            root.name
        ),
    );
    let temp_base = tags::temp_name(&base);
    plan.new_snapshot(&root.name, &temp_base);
    protect(&mut plan, &temp_base);
    plan.commit_lv(&temp_base, &base, tags::BASE);

    let temp_layer = tags::temp_name(&layer);
    plan.push(LvmStep::ChangeTags {
        lv: base.clone(),
        add: vec![tags::last_layer(1)],
        del: vec![],
    });
    plan.new_snapshot(&base, &temp_layer);
    plan.commit_lv(&temp_layer, &layer, tags::LAYER);
    // Once the layout exists (its base and layer are in place), and
    // before the VG tag that makes it visible.
    protect_root(&mut plan, root);

    // Tag the VG last: until then no command sees a layout at all.
    plan.push(LvmStep::ChangeTags {
        lv: pool,
        add: vec![tags::POOL.into()],
        del: vec![],
    });
    plan.push(LvmStep::ChangeTags {
        lv: root.name.clone(),
        add: vec![tags::INIT.into()],
        del: vec![],
    });
    plan.push(LvmStep::ChangeVgTags {
        add: vec![tags::VG.into()],
        del: vec![],
    });
    plan.created.push(base);
    plan.created.push(layer);
    Ok(plan)
}

/// The installed root after `layout --init`, as imgbased leaves it: the
/// node boots from the layer now, and the root is kept only as the origin
/// of the first base, so it is made read-only and skipped at activation.
/// It is not deactivated. Flags it already has are left alone, so undoing
/// the plan never clears a flag the root had before.
fn protect_root(plan: &mut Plan, root: &LvRecord) {
    // An open root is (normally) the running system's, mounted read-write:
    // making the LV read-only under it would fail every write of the
    // running system. It keeps its write permission; activation skip
    // changes nothing until the LV is next activated.
    if !root.is_open() && !root.is_read_only() {
        plan.push(LvmStep::SetReadOnly {
            lv: root.name.clone(),
            read_only: true,
        });
    }
    if !root.skips_activation() {
        plan.push(LvmStep::SetActivationSkip {
            lv: root.name.clone(),
            skip: true,
        });
    }
}
