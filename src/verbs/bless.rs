//! `imgbase bless`, run at every boot by imgbase-bless.service (after
//! boot-complete.target): the end of a trial. A layer on trial that is
//! booted and reached boot-complete.target becomes the default; one that
//! did not, or that the loader found out of tries in an earlier boot, is
//! recorded as failed (LV tag `imgbase:failed` and
//! /boot/imgbase/failed/LAYER) and never booted again by itself: the
//! default stays the previous good layer. Nothing to do is no output.
//! Idempotent: a second run finds nothing left to do.

use serde::Serialize;

use crate::boot::loader::Loader;
use crate::error::Result;
use crate::model::layout::Layout;
use crate::model::tags;
use crate::plan::{BootStep, LvmStep, Plan};
use crate::sys::cmd::{Cmd, Runner};

use super::boot::{self, BootView};

/// The unit whose being active means the node is up (systemd's boot
/// assessment: every unit `boot-complete.target` requires succeeded).
pub const BOOT_COMPLETE: &str = "boot-complete.target";

/// What `bless` decided, besides its plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Blessing {
    /// The layer made the default.
    pub blessed: Option<String>,
    /// Layers recorded as failed, with why.
    pub failed: Vec<Failed>,
    /// The booted trial failed: the node should reboot into the default.
    pub reboot: bool,
    /// One line each, for the operator (and the journal).
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failed {
    pub layer: String,
    pub reason: String,
}

/// Whether systemd says `boot-complete.target` is active.
fn boot_complete(runner: &dyn Runner) -> bool {
    runner
        .output(&Cmd::new("systemctl").args(["is-active", BOOT_COMPLETE]))
        .is_ok_and(|o| o.code == 0 && o.stdout.trim() == "active")
}

/// The units systemd lists as failed, by name.
fn failed_units(runner: &dyn Runner) -> Vec<String> {
    runner
        .output(&Cmd::new("systemctl").args(["--failed", "--plain", "--no-legend"]))
        .map(|o| {
            o.stdout
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Steps that record `layer`'s failed trial: its LV tag and the reason
/// file (`now reason`). A layer already recorded keeps its first reason.
fn record_failure(plan: &mut Plan, layout: &Layout, view: &BootView, layer: &str, line: &str) {
    if layout.layer(layer).is_some_and(|(_, l)| !l.failed) {
        plan.push(LvmStep::ChangeTags {
            lv: layer.into(),
            add: vec![tags::FAILED.into()],
            del: vec![],
        });
    }
    if view.failure(layer).is_none() {
        plan.push(BootStep::SetFailure {
            layer: layer.into(),
            line: Some(line.into()),
            previous: None,
        });
    }
}

/// The default once `failed` may not be it: the booted layer if it is a
/// good one, else the newest layer with entries whose trial did not fail.
fn good_default(layout: &Layout, view: &BootView, failed: &[String]) -> Option<String> {
    let ok =
        |l: &str| !failed.iter().any(|f| f == l) && layout.layer(l).is_some_and(|(_, x)| !x.failed);
    if let Some((_, b)) = layout.booted_layer()
        && ok(&b.volume.lv)
        && view.installed.contains(&b.volume.lv)
    {
        return Some(b.volume.lv.clone());
    }
    boot::sorted(view.installed.clone())
        .into_iter()
        .rev()
        .find(|l| ok(l))
}

/// `imgbase bless`. `now` is when, as the reason file says it; `tries` is
/// how many a trial gets (for the reason of one the loader found spent).
pub fn plan_bless(
    layout: &Layout,
    view: &BootView,
    runner: &dyn Runner,
    now: &str,
    tries: u8,
) -> Result<(Plan, Blessing)> {
    let mut plan = Plan::new(&layout.vg, "bless the layer on trial");
    let mut b = Blessing::default();
    let booted = layout.booted_layer().map(|(_, l)| l.volume.lv.clone());

    // Trials the loader found spent in an earlier boot (grub's
    // imgbase_failed, a BLS entry at +0); on BLS also a trial the loader
    // booted (systemd-boot counted it, or grub-bls took its one-shot
    // entry) that is not running now.
    let mut spent = view.trials.failed.clone();
    if let Some(t) = &view.trials.pending
        && view.boot.loader != Loader::Grub
        && booted.as_deref() != Some(t.layer.as_str())
        && (view.trials.done > 0 || (view.boot.loader == Loader::GrubBls && view.next.is_none()))
    {
        spent.push(t.layer.clone());
    }
    for layer in &spent {
        let reason = format!(
            "its trial boot did not reach {BOOT_COMPLETE} ({tries} {})",
            if tries == 1 { "try" } else { "tries" }
        );
        record_failure(&mut plan, layout, view, layer, &format!("{now} {reason}"));
        if view.trials.failed.contains(layer) {
            plan.push(BootStep::ClearLoaderFailure {
                layer: layer.clone(),
            });
        }
        b.messages.push(format!(
            "layer {layer} failed its trial boot ({reason}); it is not booted again by itself"
        ));
        b.failed.push(Failed {
            layer: layer.clone(),
            reason,
        });
    }
    if let Some(t) = &view.trials.pending
        && spent.contains(&t.layer)
    {
        boot::end_trial(&mut plan, view);
    }

    if let Some(t) = &view.trials.pending
        && !spent.contains(&t.layer)
        && booted.as_deref() == Some(t.layer.as_str())
    {
        let layer = &t.layer;
        if boot_complete(runner) {
            // The trial ends first: on BLS that names its entries plainly
            // again, which the default then names.
            boot::end_trial(&mut plan, view);
            if view.default.as_deref() != Some(layer) {
                plan.push(BootStep::SetDefault {
                    layer: Some(layer.clone()),
                    previous: view.default.clone(),
                });
            }
            b.messages
                .push(format!("blessed {layer}: it is the default now"));
            b.blessed = Some(layer.clone());
        } else {
            let units = failed_units(runner);
            let reason = format!(
                "{BOOT_COMPLETE} was not reached (failed units: {})",
                if units.is_empty() {
                    "none".to_string()
                } else {
                    units.join(", ")
                }
            );
            record_failure(&mut plan, layout, view, layer, &format!("{now} {reason}"));
            boot::end_trial(&mut plan, view);
            spent.push(layer.clone());
            b.messages.push(format!(
                "the trial of {layer} failed: {reason}; rebooting into {}",
                view.default.as_deref().unwrap_or("the default entry")
            ));
            b.failed.push(Failed {
                layer: layer.clone(),
                reason,
            });
            b.reboot = true;
        }
    }

    // A failed layer is never the default (on BLS, where imgbase picks
    // the default, or left over from before).
    if let Some(d) = &view.default
        && spent.contains(d)
    {
        let to = good_default(layout, view, &spent);
        if to.as_deref() != Some(d) {
            plan.push(BootStep::SetDefault {
                layer: to,
                previous: Some(d.clone()),
            });
        }
    }
    if let Some(l) = &b.blessed {
        plan.summary = format!("bless {l}: boot it by default");
    } else if !b.failed.is_empty() {
        let names: Vec<&str> = b.failed.iter().map(|f| f.layer.as_str()).collect();
        plan.summary = format!("record the failed trial of {}", names.join(", "));
    }
    Ok((plan, b))
}

/// A time as the reason file says it: `2026-01-31T12:00:00Z` (UTC).
pub fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        let at = |s| utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
