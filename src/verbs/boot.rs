//! `imgbase boot` and the boot steps of the other verbs: each layer's
//! kernels under /boot/imgbase/<layer>/, its entry, the default and the
//! one-shot layer; and `imgbase check`, which compares them with the LVs.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::boot::kernels::Installed;
use crate::boot::loader::{Boot, Listed, Loader, TrialState, Trials};
use crate::error::{Error, Result};
use crate::model::layout::{Layout, Pool};
use crate::model::names::LayerName;
use crate::model::schema::SchemaVersion;
use crate::model::size::human;
use crate::model::tags;
use crate::plan::{BootStep, LvmStep, Plan, Step};

/// What the verbs know of /boot when they plan: read once, like the layout.
#[derive(Debug, Clone)]
pub struct BootView {
    pub boot: Boot,
    /// Layers with a kernel directory (so with entries), sorted by name.
    pub installed: Vec<String>,
    /// What those directories hold, in boot-menu order.
    pub entries: Vec<Installed>,
    /// The loader's default and one-shot ids, as it records them.
    pub default_id: Option<String>,
    pub next_id: Option<String>,
    /// The layers those ids name, if they name one of `entries`.
    pub default: Option<String>,
    pub next: Option<String>,
    /// Free space on /boot, and what each layer's kernels take there.
    pub free: Option<u64>,
    pub bytes: Vec<(String, u64)>,
    /// Layers the loader's entries name now (whatever /boot/imgbase holds).
    pub written: Vec<String>,
    /// Files and folders under /boot/imgbase that are no layer's (`.tmp-*`).
    pub strays: Vec<PathBuf>,
    /// The trial the loader holds, and the trials it found out of tries.
    pub trials: Trials,
    /// Failed trials imgbase recorded (/boot/imgbase/failed/): (layer, line).
    pub failures: Vec<(String, String)>,
}

impl BootView {
    /// Read the store and the loader's default; a corrupt grubenv is an
    /// error here, before anything changes.
    pub fn read(boot: Boot) -> Result<BootView> {
        let store = boot.store();
        let names = store.layers()?;
        let mut entries = Vec::new();
        for n in sorted(names.clone()) {
            entries.extend(store.installed(&n)?);
        }
        let (default_id, next_id) = boot.default_and_next()?;
        let layer_of = |id: &Option<String>| {
            id.as_ref()
                .and_then(|id| boot.layer_of_id(id, &entries).map(|l| l.layer.clone()))
        };
        Ok(BootView {
            trials: boot.trials()?,
            failures: store.failures(),
            written: boot.written_layers()?,
            strays: store.strays()?,
            free: store.free_bytes(),
            bytes: names.iter().map(|n| (n.clone(), store.bytes(n))).collect(),
            installed: names,
            default: layer_of(&default_id),
            next: layer_of(&next_id),
            default_id,
            next_id,
            entries,
            boot,
        })
    }

    fn has(&self, layer: &str) -> bool {
        self.installed.iter().any(|l| l == layer)
    }

    /// The layer on trial, if one is.
    pub fn trial(&self) -> Option<&str> {
        self.trials.pending.as_ref().map(|t| t.layer.as_str())
    }

    /// The recorded line of a layer's failed trial.
    pub fn failure(&self, layer: &str) -> Option<&str> {
        self.failures
            .iter()
            .find(|(l, _)| l == layer)
            .map(|(_, line)| line.as_str())
    }
}

/// Layer names in boot-menu order: oldest first by NVR and index.
pub(crate) fn sorted(mut layers: Vec<String>) -> Vec<String> {
    layers.sort_by(
        |a, b| match (a.parse::<LayerName>(), b.parse::<LayerName>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
    );
    layers.dedup();
    layers
}

/// Room below which /boot is not filled: grubenv and loader files must
/// still be writable afterwards.
pub const BOOT_RESERVE: u64 = 1 << 20;

/// Admission for a new layer's kernels, before any change. What they will
/// take is not known until the layer exists, so it is estimated: nothing
/// when a layer of the same base already has kernels (identical files are
/// linked), else as much as the largest layer's kernels take now.
pub fn check_boot_room(view: &BootView, layer: &str) -> Result<()> {
    let base = |l: &str| l.rsplit_once('+').map(|(b, _)| b.to_string());
    let shared = view.installed.iter().any(|l| base(l) == base(layer));
    let need = if shared {
        0
    } else {
        view.bytes.iter().map(|(_, b)| *b).max().unwrap_or(0)
    };
    match view.free {
        Some(free) if need > 0 && free < need + BOOT_RESERVE => Err(Error::Admission(format!(
            "{} has {} free, and the kernels of layer {layer} need about {}: remove old \
             layers (`imgbase layer --remove`) or make room in /boot",
            view.boot.dir.display(),
            human(free),
            human(need + BOOT_RESERVE)
        ))),
        _ => Ok(()),
    }
}

/// Steps that give a new (or existing) layer its kernels and entry. Its
/// kernel arguments come from the layer's /etc/kernel/cmdline, else from
/// `args_from`'s entry, else from the running system's.
pub fn add_entry(plan: &mut Plan, view: &BootView, layer: &str, args_from: Option<&str>) {
    plan.push(BootStep::InstallKernels {
        layer: layer.into(),
        args_from: args_from.filter(|l| view.has(l)).map(String::from),
    });
    let mut after = view.installed.clone();
    after.push(layer.into());
    plan.push(BootStep::WriteEntries {
        layers: sorted(after),
        before: view.installed.clone(),
    });
}

/// Record on the pool that this VG's layers have boot entries (for which
/// loader), so a later command that cannot find /boot refuses instead of
/// leaving entries behind.
pub fn mark_boot(plan: &mut Plan, pool: &Pool, view: &BootView) {
    let want = view.boot.loader.to_string();
    if pool.boot.as_deref() == Some(want.as_str()) {
        return;
    }
    plan.push(LvmStep::ChangeTags {
        lv: pool.name.clone(),
        add: vec![format!("{}{want}", tags::BOOT)],
        del: pool
            .boot
            .iter()
            .map(|b| format!("{}{b}", tags::BOOT))
            .collect(),
    });
}

/// [`mark_boot`] for `layout --init`, whose pool is tagged by the plan.
pub fn mark_boot_at_init(plan: &mut Plan, view: &BootView) {
    let tag = format!("{}{}", tags::BOOT, view.boot.loader);
    for s in plan.steps.iter_mut() {
        if let Step::Lvm(LvmStep::ChangeTags { add, .. }) = s
            && add.iter().any(|t| t == tags::POOL)
        {
            add.push(tag);
            return;
        }
    }
}

/// Why a command that keeps boot entries refuses to run without /boot.
pub fn boot_missing(layout: &Layout, boot_dir: &std::path::Path) -> Result<()> {
    match &layout.pool.boot {
        Some(loader) => Err(Error::Refused(format!(
            "the layers of {} have {loader} boot entries, but no boot loader was found under \
             {}: mount /boot (or pass --boot-dir DIR); --loader none changes LVs without \
             touching their entries",
            layout.vg,
            boot_dir.display()
        ))),
        None => Ok(()),
    }
}

/// With `--loader auto` and no loader found: refuse when the node's
/// fstab mounts a filesystem on the boot directory that is not mounted
/// now. Going on would change layers and leave their entries (and the
/// default) behind on the unmounted /boot.
pub fn check_boot_mounted(root: &std::path::Path, boot_dir: &std::path::Path) -> Result<()> {
    let Ok(fstab) = std::fs::read_to_string(root.join("etc/fstab")) else {
        return Ok(());
    };
    let wanted = boot_dir.to_str().unwrap_or_default().trim_end_matches('/');
    if !fstab_mounts(&fstab, wanted) || is_mount_point(boot_dir) {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "/etc/fstab mounts {wanted}, but nothing is mounted there: mount it (`mount {wanted}`) \
         so boot entries stay right, or pass --loader none to change LVs without them"
    )))
}

fn fstab_mounts(fstab: &str, dir: &str) -> bool {
    fstab
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|m| m.trim_end_matches('/') == dir)
}

fn is_mount_point(dir: &std::path::Path) -> bool {
    use crate::sys::fs::DevNum;
    match (DevNum::of_mount(dir), dir.parent().map(DevNum::of_mount)) {
        (Ok(d), Some(Ok(p))) => d != p,
        // No directory at all, or the root: nothing to compare with.
        _ => false,
    }
}

/// Steps before LVs are removed: no default, one-shot or entry may name
/// them once they are gone. The default moves to the newest layer left.
pub fn before_removing(plan: &mut Plan, view: &BootView, layers: &[String]) {
    let gone = |l: &String| layers.contains(l);
    let left: Vec<String> = sorted(
        view.installed
            .iter()
            .filter(|l| !gone(l))
            .cloned()
            .collect(),
    );
    if view.trials.pending.as_ref().is_some_and(|t| gone(&t.layer)) {
        end_trial(plan, view);
    }
    if view.next.as_ref().is_some_and(gone) {
        plan.push(BootStep::SetNext {
            layer: None,
            previous: view.next.clone(),
        });
    }
    if view.default.as_ref().is_some_and(gone) {
        plan.push(BootStep::SetDefault {
            layer: left.last().cloned(),
            previous: view.default.clone(),
        });
    }
    if view.installed.iter().any(gone) {
        plan.push(BootStep::WriteEntries {
            layers: left,
            before: view.installed.clone(),
        });
    }
}

/// Steps after LVs are removed: their kernel files go (files other
/// layers share stay, by their links).
pub fn after_removing(plan: &mut Plan, view: &BootView, layers: &[String]) {
    for l in layers.iter().filter(|l| view.has(l)) {
        plan.push(BootStep::RemoveKernels { layer: l.clone() });
    }
}

fn entry_of<'v>(layout: &Layout, view: &'v BootView, layer: &str) -> Result<&'v str> {
    layout.find_layer(layer)?;
    view.installed
        .iter()
        .find(|l| *l == layer)
        .map(String::as_str)
        .ok_or_else(|| {
            Error::Refused(format!(
                "layer {layer} has no boot entry; write it with `imgbase boot --setup {layer}`"
            ))
        })
}

/// `boot --set-default LAYER`: the operator's choice, so a pending trial
/// ends (else it would still boot, and be blessed over the choice).
pub fn plan_set_default(layout: &Layout, view: &BootView, layer: &str) -> Result<Plan> {
    let layer = entry_of(layout, view, layer)?;
    let mut plan = Plan::new(&layout.vg, format!("boot {layer} by default"));
    if view.default.as_deref() != Some(layer) {
        plan.push(BootStep::SetDefault {
            layer: Some(layer.into()),
            previous: view.default.clone(),
        });
    }
    end_trial(&mut plan, view);
    Ok(plan)
}

/// A step that ends the pending trial, if there is one.
pub fn end_trial(plan: &mut Plan, view: &BootView) {
    if let Some(t) = &view.trials.pending {
        plan.push(BootStep::SetTrial {
            trial: None,
            previous: Some(t.clone()),
            default: view.default.clone(),
        });
    }
}

/// Why this node's loader cannot boot a trial, if it cannot. (Whether
/// grub can write grubenv where it is, is the caller's to ask: see
/// `sys::fs::grubenv_unwritable_by_grub`.)
pub fn trial_unsupported(view: &BootView) -> Option<String> {
    (view.boot.loader == Loader::Grub && !view.boot.grub_reads_menu()).then(|| {
        format!(
            "grub.cfg does not read imgbase's entries ({}), so grub cannot count a trial's \
             tries: run `imgbase boot --setup` and `update-grub` once, or pass --no-trial",
            view.boot.menu_path().display()
        )
    })
}

/// Steps that put `layer` on trial with `tries` tries; a failed layer
/// tried again loses its failure records.
pub fn push_trial(
    plan: &mut Plan,
    layout: &Layout,
    view: &BootView,
    layer: &str,
    tries: u8,
) -> Result<()> {
    if !(1..=crate::boot::grubmenu::MAX_TRIES).contains(&tries) {
        return Err(Error::Refused(format!(
            "a trial gets 1 to {} tries, not {tries}",
            crate::boot::grubmenu::MAX_TRIES
        )));
    }
    if let Some(why) = trial_unsupported(view) {
        return Err(Error::Refused(why));
    }
    if layout.layer(layer).is_some_and(|(_, l)| l.failed) {
        plan.push(LvmStep::ChangeTags {
            lv: layer.into(),
            add: vec![],
            del: vec![tags::FAILED.into()],
        });
    }
    if let Some(line) = view.failure(layer) {
        plan.push(BootStep::SetFailure {
            layer: layer.into(),
            line: None,
            previous: Some(line.to_string()),
        });
    }
    plan.push(BootStep::SetTrial {
        trial: Some(TrialState {
            layer: layer.into(),
            tries,
        }),
        previous: view.trials.pending.clone(),
        default: view.default.clone(),
    });
    Ok(())
}

/// `boot --set-default LAYER --trial`: boot LAYER as a trial; `imgbase
/// bless` makes it the default once the node is up.
pub fn plan_trial(layout: &Layout, view: &BootView, layer: &str, tries: u8) -> Result<Plan> {
    let layer = entry_of(layout, view, layer)?;
    if view.default.as_deref() == Some(layer) {
        let mut plan = Plan::new(
            &layout.vg,
            format!("layer {layer} is the default already: there is nothing to try"),
        );
        end_trial(&mut plan, view);
        return Ok(plan);
    }
    let mut plan = Plan::new(
        &layout.vg,
        format!(
            "boot {layer} as a trial; `imgbase bless` makes it the default once the node is up"
        ),
    );
    push_trial(&mut plan, layout, view, layer, tries)?;
    Ok(plan)
}

/// `boot --next LAYER`: one boot only, then the default again.
pub fn plan_next(layout: &Layout, view: &BootView, layer: &str) -> Result<Plan> {
    let layer = entry_of(layout, view, layer)?;
    let mut plan = Plan::new(&layout.vg, format!("boot {layer} once, at the next boot"));
    plan.push(BootStep::SetNext {
        layer: Some(layer.into()),
        previous: view.next.clone(),
    });
    Ok(plan)
}

/// `boot --setup [LAYER]`: (re)write the kernels and entries of one layer
/// or of all, drop kernel directories of layers that no longer exist, and
/// for grub install the /etc/grub.d script.
pub fn plan_setup(
    layout: &Layout,
    view: &BootView,
    layer: Option<&str>,
    root: PathBuf,
) -> Result<Plan> {
    let targets: Vec<String> = match layer {
        Some(l) => {
            layout.find_layer(l)?;
            vec![l.to_string()]
        }
        None => layout.layers().map(|l| l.volume.lv.clone()).collect(),
    };
    let what = layer.map_or("every layer".to_string(), |l| format!("layer {l}"));
    let mut plan = Plan::new(
        &layout.vg,
        format!(
            "write the boot entries of {what} ({} loader)",
            view.boot.loader
        ),
    );
    if view.boot.needs_grub_script() {
        plan.push(BootStep::InstallGrubScript { root });
    }
    mark_boot(&mut plan, &layout.pool, view);
    let orphans: Vec<String> = view
        .installed
        .iter()
        .filter(|l| layout.layer(l).is_none())
        .cloned()
        .collect();
    for l in &targets {
        // A layer with kernels keeps its own arguments; undoing this step
        // then keeps its (rewritten) directory too.
        plan.push(BootStep::InstallKernels {
            layer: l.clone(),
            args_from: view.has(l).then(|| l.clone()),
        });
    }
    let mut after: Vec<String> = view
        .installed
        .iter()
        .filter(|l| !orphans.contains(l))
        .cloned()
        .collect();
    after.extend(targets);
    plan.push(BootStep::WriteEntries {
        layers: sorted(after),
        before: view.installed.clone(),
    });
    for l in orphans {
        plan.push(BootStep::RemoveKernels { layer: l });
    }
    Ok(plan)
}

/// `boot --list`.
pub fn list(view: &BootView) -> Vec<Listed> {
    view.boot.list(
        &view.entries,
        view.default_id.as_deref(),
        view.next_id.as_deref(),
    )
}

/// What `imgbase check` finds wrong between LVs, entries and files.
/// Printed by `imgbase check --json`: a versioned document (see
/// [`crate::model::schema`]); its fields are what scripts read, keep them.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// `"schema_version": 1` ([`CheckReport::SCHEMA_VERSION`]), first in the JSON.
    pub schema_version: SchemaVersion<{ CheckReport::SCHEMA_VERSION }>,
    pub loader: Option<String>,
    pub entries_without_lv: Vec<String>,
    pub layers_without_entry: Vec<String>,
    pub orphan_files: Vec<PathBuf>,
    pub default_missing: Option<String>,
    pub incomplete_lvs: Vec<String>,
    /// Journaled operations a crash or a failure left unfinished.
    pub unfinished_operations: Vec<String>,
    /// The layer the running system is booted from (not a problem).
    pub booted: Option<String>,
    /// The layer the default boot entry names (not a problem).
    pub default: Option<String>,
    /// Usage of the thin pool, percent, and the threshold above which
    /// either is a problem.
    pub pool_data_percent: f64,
    pub pool_metadata_percent: f64,
    pub pool_threshold: f64,
    /// `"data"`, `"metadata"`: what is used above the threshold.
    pub pool_over_threshold: Vec<String>,
    /// Layer LVs whose base LV is gone.
    pub layers_without_base: Vec<String>,
    /// `*.imgnew` files under the running root's /etc: the new version of
    /// a file an update could not merge, waiting for the operator.
    pub update_conflicts: Vec<PathBuf>,
    /// Layers whose trial boot failed (tagged `imgbase:failed`, or found
    /// out of tries by the loader and not recorded yet).
    pub failed_trials: Vec<FailedTrial>,
    /// The layer on trial, with its tries left (not a problem).
    pub trial: Option<TrialState>,
}

/// A layer whose trial boot failed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedTrial {
    pub layer: String,
    pub reason: String,
}

impl FailedTrial {
    /// What `imgbase check` says of it.
    pub fn describe(&self) -> String {
        let l = &self.layer;
        format!(
            "layer {l} failed its trial boot ({}) and is not the default: remove it with \
             `imgbase layer --remove {l}` or retry with `imgbase boot --set-default {l} --trial`",
            self.reason
        )
    }
}

impl CheckReport {
    /// The version of the JSON this type prints as.
    pub const SCHEMA_VERSION: u32 = 1;

    pub fn problems(&self) -> usize {
        self.entries_without_lv.len()
            + self.layers_without_entry.len()
            + self.orphan_files.len()
            + usize::from(self.default_missing.is_some())
            + self.incomplete_lvs.len()
            + self.unfinished_operations.len()
            + self.pool_over_threshold.len()
            + self.layers_without_base.len()
            + self.update_conflicts.len()
            + self.failed_trials.len()
    }

    /// One line for a login banner (`imgbase motd`).
    pub fn motd_line(&self) -> String {
        let n = self.problems();
        if n > 0 {
            let s = if n == 1 { "" } else { "s" };
            let failed = match self.failed_trials.as_slice() {
                [] => String::new(),
                [f] => format!("layer {} failed its trial boot; ", f.layer),
                many => format!("{} layers failed their trial boot; ", many.len()),
            };
            return format!("imgbase: DEGRADED: {failed}{n} problem{s} (run imgbase check)");
        }
        let running = match (&self.booted, &self.default) {
            (Some(b), Some(d)) if b == d => format!("running {b} (default)"),
            (Some(b), Some(d)) => format!("running {b} (default: {d})"),
            (Some(b), None) => format!("running {b}"),
            (None, Some(d)) => format!("not running from a layer (default: {d})"),
            (None, None) => "not running from a layer".to_string(),
        };
        let trial = match &self.trial {
            Some(t) => format!(", {} on trial", t.layer),
            None => String::new(),
        };
        format!(
            "imgbase: OK: {running}{trial}, pool {:.0}% data, {:.0}% metadata",
            self.pool_data_percent, self.pool_metadata_percent
        )
    }
}

pub use crate::config::DEFAULT_POOL_THRESHOLD;

/// What `imgbase check` is asked beyond the layout and /boot.
#[derive(Debug, Clone)]
pub struct CheckOptions<'a> {
    /// Percent of pool data or metadata above which it is a problem.
    pub pool_threshold: f64,
    /// The running root, whose /etc is searched for unresolved update
    /// conflicts (`*.imgnew`); None searches nothing.
    pub root: Option<&'a Path>,
}

impl Default for CheckOptions<'_> {
    fn default() -> Self {
        CheckOptions {
            pool_threshold: DEFAULT_POOL_THRESHOLD,
            root: None,
        }
    }
}

/// How `imgbase check` names one of [`update_conflicts`].
pub fn describe_conflict(imgnew: &Path) -> String {
    let text = imgnew.display().to_string();
    let orig = text.strip_suffix(crate::carry::IMGNEW).unwrap_or(&text);
    format!("unresolved update conflict: {text} (compare with {orig}, then remove it)")
}

/// Every `*.imgnew` under `root`/etc, as the running system names it
/// (`/etc/…`), sorted. Symbolic links are not followed and other
/// filesystems mounted below /etc are not entered; an `.imgnew`
/// directory counts once. Unreadable directories are skipped.
pub fn update_conflicts(root: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, dev: u64, out: &mut Vec<PathBuf>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", dir.display());
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(crate::carry::IMGNEW) && n != crate::carry::IMGNEW)
            {
                out.push(path);
            } else if meta.is_dir() && meta.dev() == dev {
                walk(&path, dev, out);
            }
        }
    }
    let etc = root.join("etc");
    let Ok(meta) = std::fs::symlink_metadata(&etc) else {
        return vec![];
    };
    if !meta.is_dir() {
        return vec![];
    }
    let mut out = Vec::new();
    walk(&etc, meta.dev(), &mut out);
    let mut seen: Vec<PathBuf> = out
        .into_iter()
        .map(|p| Path::new("/").join(p.strip_prefix(root).expect("found under root")))
        .collect();
    seen.sort();
    seen
}

pub fn check(layout: &Layout, view: Option<&BootView>) -> Result<CheckReport> {
    check_with(layout, view, &CheckOptions::default())
}

/// [`check`] with a pool threshold and the running root's /etc searched.
pub fn check_with(
    layout: &Layout,
    view: Option<&BootView>,
    opts: &CheckOptions,
) -> Result<CheckReport> {
    let pool = &layout.pool;
    let mut r = CheckReport {
        incomplete_lvs: layout.incomplete.clone(),
        booted: layout.booted_layer().map(|(_, l)| l.volume.lv.clone()),
        default: view.and_then(|v| v.default.clone()),
        pool_data_percent: pool.data_percent,
        pool_metadata_percent: pool.metadata_percent,
        pool_threshold: opts.pool_threshold,
        pool_over_threshold: [
            ("data", pool.data_percent),
            ("metadata", pool.metadata_percent),
        ]
        .into_iter()
        .filter(|(_, pct)| *pct > opts.pool_threshold)
        .map(|(what, _)| what.to_string())
        .collect(),
        layers_without_base: layout
            .orphan_layers
            .iter()
            .map(|l| l.volume.lv.clone())
            .collect(),
        update_conflicts: opts.root.map(update_conflicts).unwrap_or_default(),
        ..Default::default()
    };
    for l in layout.layers().filter(|l| l.failed) {
        let lv = &l.volume.lv;
        r.failed_trials.push(FailedTrial {
            layer: lv.clone(),
            reason: view
                .and_then(|v| v.failure(lv))
                .unwrap_or("no reason recorded under /boot/imgbase/failed")
                .to_string(),
        });
    }
    let Some(view) = view else {
        return Ok(r);
    };
    for l in &view.trials.failed {
        if !r.failed_trials.iter().any(|f| f.layer == *l) {
            r.failed_trials.push(FailedTrial {
                layer: l.clone(),
                reason: "the boot loader found it out of tries; `imgbase bless` records it".into(),
            });
        }
    }
    r.trial = view.trials.pending.clone();
    r.loader = Some(view.boot.loader.to_string());
    let written = view.boot.written_layers()?;
    let layers: Vec<String> = layout.layers().map(|l| l.volume.lv.clone()).collect();
    r.entries_without_lv = written
        .iter()
        .filter(|l| !layers.contains(l))
        .cloned()
        .collect();
    r.layers_without_entry = layers
        .iter()
        .filter(|l| !written.contains(l))
        .cloned()
        .collect();
    let store = view.boot.store();
    r.orphan_files = view
        .installed
        .iter()
        .filter(|l| !layers.contains(l))
        .map(|l| store.layer_dir(l))
        .chain(store.strays()?)
        .collect();
    // A default that names one of imgbase's entries (a layer name, or a
    // BLS id of ours) which no longer exists; other loaders' ids are not
    // ours to judge.
    if let Some(id) = view.default_id.clone()
        && view.default.is_none()
        && (id.parse::<LayerName>().is_ok() || id.starts_with(crate::boot::bls::FILE_PREFIX))
    {
        r.default_missing = Some(id);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::loader::Loader;

    fn view(installed: &[(&str, u64)], free: u64) -> BootView {
        BootView {
            boot: Boot::new(std::path::Path::new("/nonexistent"), Loader::Grub),
            installed: installed.iter().map(|(l, _)| l.to_string()).collect(),
            entries: vec![],
            default_id: None,
            next_id: None,
            default: None,
            next: None,
            free: Some(free),
            bytes: installed.iter().map(|(l, b)| (l.to_string(), *b)).collect(),
            written: vec![],
            strays: vec![],
            trials: Default::default(),
            failures: vec![],
        }
    }

    #[test]
    fn an_fstab_entry_for_boot_is_found() {
        let fstab = "# /boot was on /dev/vda1\nUUID=1 / ext4 defaults 0 1\nUUID=2 /boot/ ext4 defaults 0 2\n";
        assert!(fstab_mounts(fstab, "/boot"));
        assert!(!fstab_mounts(fstab, "/boot/efi"));
        assert!(!fstab_mounts("# UUID=2 /boot ext4\n", "/boot"));
    }

    #[test]
    fn an_unmounted_boot_that_fstab_wants_is_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::create_dir(t.path().join("boot")).unwrap();
        let boot = t.path().join("boot");
        check_boot_mounted(t.path(), &boot).unwrap();
        std::fs::write(
            t.path().join("etc/fstab"),
            format!("UUID=2 {} ext4 defaults 0 2\n", boot.display()),
        )
        .unwrap();
        let err = check_boot_mounted(t.path(), &boot).unwrap_err().to_string();
        assert!(err.contains("nothing is mounted there"), "{err}");
    }

    #[test]
    fn boot_room_is_estimated_from_the_largest_layer() {
        let mib = 1 << 20;
        let v = view(&[("N-1-0+1", 60 * mib)], 40 * mib);
        let err = check_boot_room(&v, "N-2-0+1").unwrap_err().to_string();
        assert!(
            err.contains("40.00 MiB free") && err.contains("layer N-2-0+1"),
            "{err}"
        );
        // A layer of a base that already has kernels links them.
        check_boot_room(&v, "N-1-0+2").unwrap();
        check_boot_room(&view(&[("N-1-0+1", 60 * mib)], 100 * mib), "N-2-0+1").unwrap();
        // Nothing installed yet: nothing to estimate from.
        check_boot_room(&view(&[], 0), "N-2-0+1").unwrap();
    }
}
