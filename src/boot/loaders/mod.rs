//! What each boot loader does with imgbase's entries: one [`BootLoader`]
//! a loader, so the rest of imgbase asks "the loader" and never which one.
//!
//! - [`Grub`]: grub without blscfg (Debian, Ubuntu): imgbase's own menu
//!   file, read through an /etc/grub.d script; default and one-shot entry
//!   in grubenv.
//! - [`SystemdBoot`]: one BLS file a layer and kernel; default in
//!   loader.conf, one-shot entry in an EFI variable.
//! - [`GrubBls`]: grub with blscfg (Fedora, RHEL): systemd-boot's BLS
//!   files, grub's default.
//!
//! [`Loader`](super::loader::Loader) names them and hands out theirs;
//! [`Boot`](super::loader::Boot) passes each call on.

mod grub;
mod grub_bls;
mod systemd_boot;

use std::path::Path;

pub use grub::Grub;
pub(super) use grub::{grubenv_path, install_script, menu_path, reads_menu, set_env};
pub use grub_bls::GrubBls;
pub use systemd_boot::SystemdBoot;

use super::BootError;
use super::kernels::{Installed, STORE};
use super::loader::{TrialState, Trials};
use crate::model::names::LayerName;

/// A node's /boot as the loaders write into it: a view of
/// [`Boot`](super::loader::Boot)'s fields, so this module needs nothing
/// of the one that uses it.
#[derive(Debug, Clone, Copy)]
pub struct BootDir<'a> {
    pub dir: &'a Path,
    /// Where /boot is as the loader sees its filesystem: "" or "/boot".
    pub prefix: &'a str,
}

impl BootDir<'_> {
    /// A store file's path as the loader sees it.
    fn store_path(&self, layer: &str, file: &str) -> String {
        format!("{}/{STORE}/{layer}/{file}", self.prefix)
    }
}

/// How one loader's entries, default and one-shot entry are written and
/// read. Entries are derived from the kernel store: every call gets the
/// layers as [`Installed`].
pub trait BootLoader {
    /// The id the loader knows a layer's default entry by.
    fn id_of(&self, inst: &Installed) -> Option<String>;

    /// Whether `id` names an entry of this layer.
    fn is_entry_of(&self, id: &str, inst: &Installed) -> bool;

    /// A layer's entries as `(id, kernel)`, in menu order.
    fn entries_of<'a>(&self, inst: &'a Installed) -> Vec<(String, &'a String)>;

    /// Write the entries of exactly these layers (newest first in the
    /// menu), removing imgbase's entries of any other layer. Nothing is
    /// written when a value of any layer is refused.
    fn write_entries(&self, at: BootDir, layers: &[Installed]) -> Result<(), BootError>;

    /// The layers the written entries name, read back from the files (in
    /// any order, possibly repeated).
    fn written_layers(&self, at: BootDir) -> Result<Vec<String>, BootError>;

    /// The ids of the default and of the one-shot entry, as stored.
    fn default_and_next(&self, at: BootDir) -> Result<(Option<String>, Option<String>), BootError>;

    /// Make `id` the default entry (None: no default of imgbase's).
    fn set_default(&self, at: BootDir, id: Option<&str>) -> Result<(), BootError>;

    /// The trial the loader holds: the layer on trial, its tries left,
    /// and the layers it found out of tries.
    fn trials(&self, at: BootDir) -> Result<Trials, BootError>;

    /// Put `trial` on trial (None: no layer on trial). A trial the loader
    /// found failed is left for [`BootLoader::clear_failed`].
    fn set_trial(&self, at: BootDir, trial: Option<&TrialState>) -> Result<(), BootError>;

    /// Forget that the loader found `layer` out of tries (once recorded).
    fn clear_failed(&self, at: BootDir, layer: &str) -> Result<(), BootError>;

    /// The id of a layer's entry while it is on trial with `tries` left,
    /// when the trial is booted as the one-shot entry (BLS: the file is
    /// renamed with its counter); None where the loader itself picks the
    /// trial (grub's script).
    fn trial_next_id(&self, _inst: &Installed, _tries: u8) -> Option<String> {
        None
    }

    /// Whether grub shows the entries only once imgbase's /etc/grub.d
    /// script is installed and grub.cfg regenerated.
    fn needs_grub_script(&self) -> bool {
        false
    }

    /// Whether the one-shot entry is an EFI variable, which only a tool
    /// can set (the sys layer does), rather than grubenv's `next_entry`.
    fn next_in_efi_var(&self) -> bool {
        false
    }
}

/// The menu title of a layer's entry: base name, version-release and the
/// layer number tell layers apart.
pub fn title(layer: &str) -> String {
    match layer.parse::<LayerName>() {
        Ok(l) => format!(
            "{} {}-{} (layer {})",
            l.base.name, l.base.version, l.base.release, l.index
        ),
        Err(_) => layer.to_string(),
    }
}
