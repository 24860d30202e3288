//! `imgbase base`: add an (empty) base or one from an image, remove one
//! with its layers, and export one. Which base is newest or holds a given
//! layer is answered by [`Layout`] (`find_latest_base`, `find_base_of_layer`).

use crate::error::{Error, Result};
use crate::model::layout::Layout;
use crate::model::names::parse_new_base_name;
use crate::model::size::human;
use crate::model::tags;
use std::path::Path;

use crate::image::bundle::{self, Manifest};
use crate::image::detect::Format;
use crate::plan::{ImageStep, LvmStep, Plan};
use crate::sys::images::{FillMode, ImageInfo};
use crate::sys::lvm::Lvm;
use crate::sys::progress::Progress;

use super::boot::BootView;
use super::{check_name_free, check_pool_room, protect, remove_lv};

/// A new, empty, protected base (read-only, skipped at activation).
pub fn plan_add(layout: &Layout, name: &str, size: u64) -> Result<Plan> {
    let nvr = parse_new_base_name(name)?;
    let name = nvr.to_string();
    check_name_free(&layout.all_names, &layout.vg, &name)?;
    check_fits_pool(layout, size)?;
    check_pool_room(layout)?;

    let temp = tags::temp_name(&name);
    let mut plan = Plan::new(&layout.vg, format!("add base {name} of {}", human(size)));
    plan.push(LvmStep::CreateThin {
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

/// What `base --add --from IMAGE` was asked for.
pub struct FromImage<'a> {
    pub info: &'a ImageInfo,
    /// NVR given on the command line (wins over the image's own).
    pub nvr: Option<&'a str>,
    pub size: Option<u64>,
    /// The digest the image must have (`--sha256` or SHA256SUMS).
    pub expected_sha256: Option<&'a str>,
    pub allow_delta: bool,
    /// Import an image another base already holds, under the new name.
    pub force: bool,
}

/// A base filled from an image: verified, admitted, written (as a delta
/// over the previous base when both hold the same filesystem), grown,
/// protected, and renamed into place. A plan without steps means the
/// image is already a base.
pub fn plan_add_image(layout: &Layout, req: &FromImage) -> Result<Plan> {
    let info = req.info;
    if let Some(want) = req.expected_sha256
        && want != info.sha256
    {
        return Err(Error::Refused(format!(
            "checksum mismatch for {}: expected sha256 {want}, the file has {}; \
             download it again or check the checksum you were given",
            info.path.display(),
            info.sha256
        )));
    }
    // Every argument is checked before "nothing to do" can be answered.
    let name_text = req
        .nvr
        .map(str::to_string)
        .or_else(|| info.nvr.clone())
        .ok_or_else(|| {
            Error::Refused(format!(
                "{} does not record its NVR ({}): give it as `imgbase base --add NVR --from …`",
                info.path.display(),
                crate::sys::images::NVR_FILE
            ))
        })?;
    let nvr = parse_new_base_name(&name_text)?;
    let name = nvr.to_string();
    // A base is never smaller than its image, nor than the running layer.
    let size = match req.size {
        Some(s) if s < info.size => {
            return Err(Error::Admission(format!(
                "--size {} is smaller than the image ({}): pass at least --size {}b",
                human(s),
                human(info.size),
                info.size
            )));
        }
        Some(s) => s,
        None => info
            .size
            .max(layout.current_layer().map_or(0, |l| l.volume.size)),
    };
    check_fits_pool(layout, size)?;
    if let Some(b) = layout
        .bases
        .iter()
        .find(|b| b.sha256.as_deref() == Some(info.sha256.as_str()))
    {
        if b.volume.lv == name {
            return Ok(Plan::new(
                &layout.vg,
                format!(
                    "image {} is already imported as base {}; nothing to do",
                    info.path.display(),
                    b.volume.lv
                ),
            ));
        }
        if !req.force {
            return Err(Error::Refused(format!(
                "image {} is already imported as base {}: use that base, or pass --force \
                 to import it again as {name}",
                info.path.display(),
                b.volume.lv
            )));
        }
    }
    check_name_free(&layout.all_names, &layout.vg, &name)?;
    check_pool_room(layout)?;

    // Delta: only for filesystem images over a base of the same filesystem.
    let delta_from = layout.latest_base().filter(|prev| {
        req.allow_delta
            && matches!(
                info.format,
                Format::Filesystem { .. } | Format::Squashfs | Format::Bundle
            )
            && info.fs_type.is_some()
            && prev.fs == info.fs_type
    });
    let need = if delta_from.is_some() {
        // Unknown until written; at worst what changed, at most the image.
        info.data_bytes / 4
    } else {
        info.data_bytes
    };
    let free = layout.pool.data_free();
    if need > free {
        return Err(Error::Admission(format!(
            "thin pool {}/{} has {} free but the image needs about {}: {} missing; grow the \
             pool with `lvextend` or remove old bases with `imgbase base --remove`",
            layout.vg,
            layout.pool.name,
            human(free),
            human(need),
            human(need - free)
        )));
    }

    let temp = tags::temp_name(&name);
    let mut birth_tags = vec![
        tags::INCOMPLETE.to_string(),
        format!("{}{}", tags::SHA256, info.sha256),
        format!("{}{}", tags::IMAGE_SIZE, info.size),
    ];
    if let Some(fs) = &info.fs_type {
        birth_tags.push(format!("{}{fs}", tags::FS));
    }
    let mut plan = Plan::new(
        &layout.vg,
        format!(
            "add base {name} of {} from {}{}",
            human(size),
            info.path.display(),
            delta_from
                .map(|p| format!(" as a delta over {}", p.volume.lv))
                .unwrap_or_default()
        ),
    );
    let fill = match delta_from {
        Some(prev) => {
            plan.push(LvmStep::Snapshot {
                origin: prev.volume.lv.clone(),
                lv: temp.clone(),
                tags: birth_tags,
            });
            if size > prev.volume.size {
                plan.push(LvmStep::Extend {
                    lv: temp.clone(),
                    size,
                });
            }
            FillMode::Delta {
                old_len: prev.volume.size,
            }
        }
        None => {
            plan.push(LvmStep::CreateThin {
                lv: temp.clone(),
                pool: layout.pool.name.clone(),
                size,
                tags: birth_tags,
            });
            FillMode::Fresh
        }
    };
    plan.push(ImageStep::FillImage {
        lv: temp.clone(),
        image: info.path.clone(),
        format: info.format.clone(),
        size,
        fill,
    });
    // A disk image's filesystem is known only once written (unless it
    // was converted to read its NVR): "auto" probes it then.
    let grow = match (&info.format, &info.fs_type) {
        (Format::Tar { .. }, _) => None,
        (_, Some(fs)) => Some(fs.clone()),
        (Format::Disk { .. }, None) => Some(crate::sys::images::PROBE_FS.to_string()),
        _ => None,
    };
    if let Some(fs) = grow {
        plan.push(ImageStep::GrowFs {
            lv: temp.clone(),
            fs,
        });
    }
    protect(&mut plan, &temp);
    plan.commit_lv(&temp, &name, tags::BASE);
    plan.created.push(name);
    Ok(plan)
}

/// A base can never be larger than the pool that holds it.
fn check_fits_pool(layout: &Layout, size: u64) -> Result<()> {
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
    Ok(())
}

/// Remove a base and all its layers, newest layer first.
pub fn plan_remove(layout: &Layout, boot: Option<&BootView>, name: &str) -> Result<Plan> {
    let base = layout.find_base(name)?;
    if let Some((b, l)) = layout.booted_layer()
        && b.nvr == base.nvr
    {
        return Err(Error::Refused(format!(
            "refusing to remove base {name}: the running system is booted from its layer {}; \
             boot another layer first",
            l.volume.lv
        )));
    }
    if let Some(l) = base.layers.iter().find(|l| l.pinned) {
        return Err(Error::Refused(format!(
            "refusing to remove base {name}: its layer {lv} is pinned; unpin it first \
             (`imgbase layer --unpin {lv}`)",
            lv = l.volume.lv
        )));
    }
    if layout.bases.len() == 1 {
        return Err(Error::Refused(format!(
            "refusing to remove base {name}: it is the only base, and the node could not boot \
             without it; add a newer base first"
        )));
    }
    let mut plan = Plan::new(&layout.vg, format!("remove base {name} and its layers"));
    let gone: Vec<String> = base.layers.iter().map(|l| l.volume.lv.clone()).collect();
    if let Some(view) = boot {
        super::boot::before_removing(&mut plan, view, &gone);
    }
    for layer in gone.iter().rev() {
        remove_lv(&mut plan, layer);
    }
    remove_lv(&mut plan, name);
    if let Some(view) = boot {
        super::boot::after_removing(&mut plan, view, &gone);
    }
    Ok(plan)
}

/// Write a base as an imgbase bundle (manifest + raw image, zstd), so a
/// base built on one node can be imported on another. The base is
/// activated for reading and put back as it was.
pub fn export(
    lvm: &dyn Lvm,
    layout: &Layout,
    name: &str,
    out: &Path,
    progress: &Progress,
) -> Result<Manifest> {
    let base = layout.find_base(name)?;
    let was_active = base.volume.active;
    if !was_active {
        lvm.set_active(&layout.vg, name, true)?;
    }
    let manifest = Manifest {
        format: 1,
        name: base.nvr.name.clone(),
        version: base.nvr.version.clone(),
        release: base.nvr.release.clone(),
        sha256: String::new(),
        size: base.volume.size,
        fs_type: base.fs.clone(),
    };
    progress.start("export", base.volume.size);
    let result = bundle::write_bundle(
        out,
        manifest,
        Path::new(&base.volume.path),
        base.volume.size,
        &mut |n| progress.update(n),
    );
    progress.finish();
    if !was_active {
        lvm.set_active(&layout.vg, name, false)?;
    }
    Ok(result.map_err(crate::sys::images::ImagesError::from)?)
}
