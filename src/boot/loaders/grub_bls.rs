//! grub with blscfg (Fedora, RHEL): it reads the same BLS files as
//! systemd-boot and keeps its default and one-shot entry in grubenv as
//! grub without blscfg does, so each half is theirs.

use super::{BootDir, BootLoader, Grub, SystemdBoot};
use crate::boot::BootError;
use crate::boot::kernels::Installed;
use crate::boot::loader::{TrialState, Trials};

pub struct GrubBls;

impl BootLoader for GrubBls {
    fn id_of(&self, inst: &Installed) -> Option<String> {
        SystemdBoot.id_of(inst)
    }

    fn is_entry_of(&self, id: &str, inst: &Installed) -> bool {
        SystemdBoot.is_entry_of(id, inst)
    }

    fn entries_of<'a>(&self, inst: &'a Installed) -> Vec<(String, &'a String)> {
        SystemdBoot.entries_of(inst)
    }

    fn write_entries(&self, at: BootDir, layers: &[Installed]) -> Result<(), BootError> {
        SystemdBoot.write_entries(at, layers)
    }

    fn written_layers(&self, at: BootDir) -> Result<Vec<String>, BootError> {
        SystemdBoot.written_layers(at)
    }

    fn default_and_next(&self, at: BootDir) -> Result<(Option<String>, Option<String>), BootError> {
        Grub.default_and_next(at)
    }

    fn set_default(&self, at: BootDir, id: Option<&str>) -> Result<(), BootError> {
        Grub.set_default(at, id)
    }

    /// The entry files' counters, as systemd-boot's. grub with blscfg
    /// does not count: the trial is its one-shot boot (`next_entry`).
    fn trials(&self, at: BootDir) -> Result<Trials, BootError> {
        SystemdBoot.trials(at)
    }

    fn set_trial(&self, at: BootDir, trial: Option<&TrialState>) -> Result<(), BootError> {
        SystemdBoot.set_trial(at, trial)
    }

    fn clear_failed(&self, at: BootDir, layer: &str) -> Result<(), BootError> {
        SystemdBoot.clear_failed(at, layer)
    }

    fn trial_next_id(&self, inst: &Installed, tries: u8) -> Option<String> {
        SystemdBoot.trial_next_id(inst, tries)
    }
}
