//! A command is a plan: an ordered list of steps computed from the layout
//! and the arguments before anything is touched. `--dry-run` prints it;
//! the executor journals it and runs it; a failure before the plan's point
//! of no return undoes what came before, one after it is finished later
//! (by `imgbase recover`, which every changing command runs first).
//!
//! Steps belong to a domain, each in its own module with its apply and
//! inverse: LVM (`lvm`), boot entries (`boot`), images (`image`) and
//! filesystems and mounts (`files`), configuration carried over to a new
//! layer (`carry`).

mod boot;
pub mod carry;
mod files;
mod image;
pub mod journal;
mod lvm;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use boot::BootStep;
pub use carry::CarryStep;
pub use files::FilesStep;
pub use image::ImageStep;
pub use lvm::LvmStep;

use crate::error::{Error, Result};
use crate::model::tags;
use crate::sys::boot::{BootExec, LayerTrees};
use crate::sys::fs::Filesystems;
use crate::sys::images::Images;
use crate::sys::lvm::{LvRecord, Lvm, Scope};
use crate::sys::progress::Progress;
use journal::{Journal, Record};

/// One step of a plan. Serialized flat (`{"step": "snapshot", …}`): the
/// step names are unique across domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    Lvm(LvmStep),
    Boot(BootStep),
    Image(ImageStep),
    Files(FilesStep),
    Carry(CarryStep),
}

/// How a step is taken back.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// By running this step.
    By(Box<Step>),
    /// Nothing to take back (or nothing worth it).
    Keep,
    /// It cannot be: once it has run, the plan goes forward only.
    Never,
}

impl From<LvmStep> for Box<Step> {
    fn from(s: LvmStep) -> Self {
        Box::new(Step::Lvm(s))
    }
}

impl From<BootStep> for Box<Step> {
    fn from(s: BootStep) -> Self {
        Box::new(Step::Boot(s))
    }
}

macro_rules! from_domain {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Step {
            fn from(s: $t) -> Self {
                Step::$v(s)
            }
        }
    )*};
}
from_domain!(LvmStep => Lvm, BootStep => Boot, ImageStep => Image, FilesStep => Files, CarryStep => Carry);

/// Calls the same method of whichever domain a step belongs to.
macro_rules! each {
    ($step:expr, $s:ident => $e:expr) => {
        match $step {
            Step::Lvm($s) => $e,
            Step::Boot($s) => $e,
            Step::Image($s) => $e,
            Step::Files($s) => $e,
            Step::Carry($s) => $e,
        }
    };
}

impl Step {
    pub fn undo(&self) -> Undo {
        each!(self, s => s.undo())
    }

    /// The LV the step acts on, if one.
    fn lv(&self) -> Option<&str> {
        match self {
            Step::Lvm(s) => s.lv(),
            Step::Image(s) => s.lv(),
            Step::Files(s) => s.lv(),
            Step::Carry(s) => s.lv(),
            Step::Boot(_) => None,
        }
    }

    fn creates(&self) -> Option<&str> {
        match self {
            Step::Lvm(s) => s.creates(),
            _ => None,
        }
    }

    fn apply(&self, sys: &Sys) -> Result<()> {
        match self {
            Step::Lvm(s) => s.apply(sys, &sys.vg),
            Step::Boot(s) => s.apply(sys),
            Step::Image(s) => s.apply(sys),
            Step::Files(s) => s.apply(sys),
            Step::Carry(s) => s.apply(sys),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        each!(self, s => s.fmt(f))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// One line saying what the plan achieves.
    pub summary: String,
    pub vg: String,
    pub steps: Vec<Step>,
    /// LVs that exist once the plan has run, and those that are gone.
    pub created: Vec<String>,
    pub removed: Vec<String>,
}

impl Plan {
    pub fn new(vg: &str, summary: impl Into<String>) -> Self {
        Plan {
            summary: summary.into(),
            vg: vg.to_string(),
            steps: Vec::new(),
            created: Vec::new(),
            removed: Vec::new(),
        }
    }

    pub fn push(&mut self, step: impl Into<Step>) -> &mut Self {
        self.steps.push(step.into());
        self
    }

    /// LVs the steps before `end` create.
    fn created_before(&self, end: usize) -> Vec<&str> {
        self.steps[..end].iter().filter_map(Step::creates).collect()
    }

    /// The index of the first step that cannot be undone (an `lvremove`,
    /// kernels deleted from /boot), not counting work on LVs the plan
    /// itself created (those are undone by removing them). Before it a
    /// failure rolls back; once it has run, the plan only goes forward.
    pub fn point_of_no_return(&self) -> Option<usize> {
        (0..self.steps.len()).find(|&i| {
            let s = &self.steps[i];
            s.undo() == Undo::Never
                && s.creates().is_none()
                && !s
                    .lv()
                    .is_some_and(|lv| self.created_before(i).contains(&lv))
        })
    }

    /// The steps that take back `steps[..end]`, newest first, with their
    /// indexes. Changes to LVs this plan created are skipped: removing
    /// the LV takes them back (a rename is kept: the LV must be found
    /// under its first name to be removed).
    fn undo_steps(&self, end: usize) -> Vec<(usize, Step)> {
        let created = self.created_before(end);
        (0..end)
            .rev()
            .filter_map(|i| {
                let s = &self.steps[i];
                let on_created = s.creates().is_none()
                    && !matches!(s, Step::Lvm(LvmStep::Rename { .. }))
                    && s.lv().is_some_and(|lv| created.contains(&lv));
                match s.undo() {
                    Undo::By(inv) if !on_created => Some((i, *inv)),
                    _ => None,
                }
            })
            .collect()
    }

    /// A writable thin snapshot of `origin` under the temporary name `temp`,
    /// active (as it is made), with a filesystem of its own (journal replayed, new UUID).
    pub fn new_snapshot(&mut self, origin: &str, temp: &str) -> &mut Self {
        self.push(LvmStep::Snapshot {
            origin: origin.into(),
            lv: temp.into(),
            tags: vec![tags::INCOMPLETE.into()],
        });
        self.push(FilesStep::RenewFsUuid { lv: temp.into() })
    }

    /// Build a new LV under a temporary name tagged incomplete, then (by
    /// [`Plan::commit_lv`]) rename it into place: a crash at any point
    /// leaves either nothing visible or the finished LV.
    pub fn commit_lv(&mut self, temp: &str, name: &str, role_tag: &str) -> &mut Self {
        self.push(LvmStep::Rename {
            from: temp.into(),
            to: name.into(),
        });
        self.push(LvmStep::ChangeTags {
            lv: name.into(),
            add: vec![role_tag.into()],
            del: vec![tags::INCOMPLETE.into()],
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Plan: {} (volume group {})", self.summary, self.vg)?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>2}. {s}", i + 1)?;
        }
        Ok(())
    }
}

/// What the steps of one plan act through: the executor's system, and
/// the plan's VG.
pub struct Sys<'a> {
    exec: &'a Executor<'a>,
    pub vg: String,
}

impl<'a> std::ops::Deref for Sys<'a> {
    type Target = Executor<'a>;
    fn deref(&self) -> &Executor<'a> {
        self.exec
    }
}

impl Sys<'_> {
    fn dev(&self, lv: &str) -> String {
        format!("/dev/{}/{lv}", self.vg)
    }
}

/// Runs plans against the system traits, journaled.
pub struct Executor<'a> {
    pub lvm: &'a dyn Lvm,
    pub fs: &'a dyn Filesystems,
    pub images: &'a dyn Images,
    pub progress: &'a Progress,
    /// None when boot entries are not managed (`--loader none`, or no
    /// loader found); plans then hold no boot steps.
    pub boot: Option<&'a BootExec<'a>>,
    /// Layers' trees, mounted for the steps that read or write inside a
    /// layer (carrying configuration over); None where no plan has such.
    pub trees: Option<&'a dyn LayerTrees>,
    /// Where plans are written before they run; None only in unit tests.
    pub journal: Option<&'a Journal>,
}

/// What recovery did with one journaled operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovered {
    pub command: String,
    pub summary: String,
    pub vg: String,
    /// "finished" (it was past its point of no return, or done) or
    /// "undone".
    pub outcome: &'static str,
    /// The steps recovery ran, as they read in a plan.
    pub steps: Vec<String>,
}

impl<'a> Executor<'a> {
    fn sys(&'a self, vg: &str) -> Sys<'a> {
        Sys {
            exec: self,
            vg: vg.to_string(),
        }
    }

    /// Run a plan, journaled as `command`. A step that fails before the
    /// point of no return undoes the steps before it; one that fails after
    /// leaves the journal for `imgbase recover` to finish.
    pub fn execute(&self, command: &str, plan: &Plan) -> Result<()> {
        let mut entry = match self.journal {
            Some(j) => Some(j.begin(command, plan)?),
            None => None,
        };
        let sys = self.sys(&plan.vg);
        let ponr = plan.point_of_no_return();
        for (i, step) in plan.steps.iter().enumerate() {
            crate::sys::fault::before_step(i);
            tracing::info!("{step}");
            if let Err(e) = step.apply(&sys) {
                let failed = format!("{step}: {e}");
                if ponr.is_some_and(|p| i > p) {
                    return Err(Error::Unfinished { failed });
                }
                // The caller reports the error; this only marks the log.
                tracing::info!("{failed}; undoing");
                let mut undo_failures = Vec::new();
                for (j, inv) in plan.undo_steps(i) {
                    tracing::info!("undo: {inv}");
                    match inv.apply(&sys) {
                        Ok(()) => {
                            if let Some(e) = entry.as_mut() {
                                e.undone(j)?;
                            }
                        }
                        Err(err) => undo_failures.push(format!("{inv}: {err}")),
                    }
                }
                // Only a complete undo closes the journal; otherwise
                // recovery takes it from where it is.
                if undo_failures.is_empty()
                    && let Some(e) = entry
                {
                    e.close()?;
                }
                return Err(Error::Step {
                    failed,
                    undo_failures,
                });
            }
            if let Some(e) = entry.as_mut() {
                e.done(i)?;
            }
        }
        crate::sys::fault::before_step(plan.steps.len());
        if let Some(e) = entry {
            e.close()?;
        }
        Ok(())
    }

    /// Finish or undo an operation a killed or failed run left: finish it
    /// when it was past its point of no return (or all done), else undo
    /// what it did, including the step it was in.
    pub fn recover(&self, record: &Record) -> Result<Recovered> {
        let plan = &record.header.plan;
        let n = plan.steps.len();
        let k = record.done.min(n);
        let forward = k == n || plan.point_of_no_return().is_some_and(|p| k >= p);
        let sys = self.sys(&plan.vg);
        let mut entry = record.reopen()?;
        let mut ran = Vec::new();
        if forward {
            for (i, step) in plan.steps.iter().enumerate().skip(k) {
                tracing::info!("recover: {step}");
                self.apply_again(&sys, step).map_err(|e| named(e, plan))?;
                entry.done(i)?;
                ran.push(step.to_string());
            }
        } else {
            for (i, inv) in plan.undo_steps((k + 1).min(n)) {
                if record.undone.contains(&i) {
                    continue;
                }
                tracing::info!("recover: {inv}");
                self.apply_again(&sys, &inv).map_err(|e| named(e, plan))?;
                entry.undone(i)?;
                ran.push(inv.to_string());
            }
        }
        entry.close()?;
        Ok(Recovered {
            command: record.header.command.clone(),
            summary: plan.summary.clone(),
            vg: plan.vg.clone(),
            outcome: if forward { "finished" } else { "undone" },
            steps: ran,
        })
    }

    /// Apply a step that may have run already (a crash came after it, or
    /// in the middle of it): an LVM step whose effect the report shows is
    /// done, whatever LVM says to a second try.
    fn apply_again(&self, sys: &Sys, step: &Step) -> Result<()> {
        let Err(e) = step.apply(sys) else {
            return Ok(());
        };
        if let Step::Lvm(s) = step {
            let records: Vec<LvRecord> = self.lvm.report(&Scope::Vg(sys.vg.clone()))?;
            if s.holds(&sys.vg, &records) {
                return Ok(());
            }
        }
        Err(Error::Recovery {
            summary: String::new(),
            failed: format!("{step}: {e}"),
        })
    }
}

/// A recovery error names the operation it was recovering.
fn named(e: Error, plan: &Plan) -> Error {
    match e {
        Error::Recovery { failed, .. } => Error::Recovery {
            summary: plan.summary.clone(),
            failed,
        },
        e => e,
    }
}
