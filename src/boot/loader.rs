//! The boot loader of a node: which one, where its files are, and how
//! imgbase's entries, the default layer and the one-shot layer are written
//! for it. [`Loader`] names it; what it does is its [`BootLoader`]
//! ([`super::loaders`]), which [`Boot`] hands every call to.
//!
//! Entries are derived from the kernel store ([`super::kernels`]): every
//! layer with a directory there gets an entry per kernel (BLS) or one menu
//! entry for its newest kernel (grub without blscfg). Rewriting them all is
//! cheap and makes the entries always agree with the store.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use super::BootError;
use super::kernels::{Installed, Store};
pub use super::loaders::title;
use super::loaders::{self, BootDir, BootLoader};

/// The loaders imgbase writes entries for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loader {
    /// grub without blscfg (Debian, Ubuntu): imgbase's own menu file.
    Grub,
    /// grub with blscfg (Fedora, RHEL): BLS files, default in grubenv.
    GrubBls,
    /// systemd-boot: BLS files, default in loader.conf.
    SystemdBoot,
}

impl Loader {
    /// What this loader does with entries, default and one-shot entry:
    /// the one place that tells the loaders apart.
    pub fn imp(self) -> &'static dyn BootLoader {
        match self {
            Loader::Grub => &loaders::Grub,
            Loader::GrubBls => &loaders::GrubBls,
            Loader::SystemdBoot => &loaders::SystemdBoot,
        }
    }
}

impl fmt::Display for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loader::Grub => "grub",
            Loader::GrubBls => "grub-bls",
            Loader::SystemdBoot => "systemd-boot",
        })
    }
}

impl FromStr for Loader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grub" => Ok(Loader::Grub),
            "grub-bls" => Ok(Loader::GrubBls),
            "systemd-boot" => Ok(Loader::SystemdBoot),
            _ => Err(format!(
                "unknown boot loader {s:?}: use grub, grub-bls, systemd-boot, none or auto"
            )),
        }
    }
}

/// The loader found under a /boot, if any: BLS entries next to a grub.cfg
/// that reads them (`blscfg`) mean grub-bls; a `loader/loader.conf` means
/// systemd-boot; a grub directory means grub.
pub fn detect(boot_dir: &Path) -> Option<Loader> {
    let grub_cfg = ["grub2/grub.cfg", "grub/grub.cfg"]
        .iter()
        .map(|p| boot_dir.join(p))
        .find(|p| p.is_file());
    if let Some(cfg) = &grub_cfg
        && fs::read_to_string(cfg).is_ok_and(|s| s.contains("blscfg"))
    {
        return Some(Loader::GrubBls);
    }
    if boot_dir.join("loader/loader.conf").is_file() {
        return Some(Loader::SystemdBoot);
    }
    if grub_cfg.is_some() || boot_dir.join("grub").is_dir() || boot_dir.join("grub2").is_dir() {
        return Some(Loader::Grub);
    }
    None
}

/// A layer on trial: booted (by grub's script, or as BLS's one-shot entry)
/// while it has tries left, made the default by `imgbase bless` only once
/// the node is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TrialState {
    pub layer: String,
    pub tries: u8,
}

/// What the loader records of trials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trials {
    /// The layer on trial, with the tries it has left.
    pub pending: Option<TrialState>,
    /// BLS: boots systemd-boot counted on the pending trial (`+LEFT-DONE`).
    pub done: u8,
    /// Layers the loader found out of tries: grub's `imgbase_failed`, a
    /// BLS entry at `+0`.
    pub failed: Vec<String>,
}

/// One entry as `boot --list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// What `--set-default`/`--next` and the loader call it.
    pub id: String,
    pub layer: String,
    pub title: String,
    pub kernel: String,
    pub options: String,
    pub default: bool,
    pub next: bool,
}

/// A node's /boot and its loader.
#[derive(Debug, Clone)]
pub struct Boot {
    pub dir: PathBuf,
    pub loader: Loader,
    /// Where /boot is as the loader sees its filesystem: "" when /boot is
    /// a filesystem of its own, "/boot" when it is a directory of /.
    pub prefix: String,
}

impl Boot {
    pub fn new(dir: &Path, loader: Loader) -> Boot {
        let own_fs = match (fs::metadata(dir), fs::metadata(dir.join(".."))) {
            (Ok(a), Ok(b)) => a.dev() != b.dev(),
            _ => false,
        };
        Boot {
            dir: dir.to_path_buf(),
            loader,
            prefix: if own_fs {
                String::new()
            } else {
                "/boot".into()
            },
        }
    }

    pub fn store(&self) -> Store {
        Store::new(&self.dir)
    }

    /// What the loader does; every loader-specific call goes through it.
    fn imp(&self) -> &'static dyn BootLoader {
        self.loader.imp()
    }

    fn at(&self) -> BootDir<'_> {
        BootDir {
            dir: &self.dir,
            prefix: &self.prefix,
        }
    }

    pub fn grubenv_path(&self) -> PathBuf {
        loaders::grubenv_path(self.at())
    }

    pub fn menu_path(&self) -> PathBuf {
        loaders::menu_path(self.at())
    }

    /// The id the loader knows a layer's default entry by: the layer name
    /// in the grub menu, the entry file's id for BLS (newest kernel).
    pub fn id_of(&self, inst: &Installed) -> Option<String> {
        self.imp().id_of(inst)
    }

    /// The layer an id names, among the installed layers.
    pub fn layer_of_id<'a>(&self, id: &str, layers: &'a [Installed]) -> Option<&'a Installed> {
        layers.iter().find(|l| self.imp().is_entry_of(id, l))
    }

    /// Write the entries of exactly these layers (newest first in the
    /// menu), removing imgbase's entries of any other layer.
    pub fn write_entries(&self, layers: &[Installed]) -> Result<(), BootError> {
        self.imp().write_entries(self.at(), layers)
    }

    /// The layers the written entries name (read from the menu file or
    /// the BLS files, not derived), for `check`.
    pub fn written_layers(&self) -> Result<Vec<String>, BootError> {
        let mut out = self.imp().written_layers(self.at())?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The ids of the default and of the one-shot entry, as stored.
    pub fn default_and_next(&self) -> Result<(Option<String>, Option<String>), BootError> {
        self.imp().default_and_next(self.at())
    }

    /// Make `id` the default entry (None: no default of imgbase's).
    pub fn set_default(&self, id: Option<&str>) -> Result<(), BootError> {
        self.imp().set_default(self.at(), id)
    }

    /// Boot `id` once at the next boot (grub's `next_entry`). systemd-boot
    /// keeps this in an EFI variable: see the sys layer and
    /// [`Boot::next_in_efi_var`].
    pub fn set_next(&self, id: Option<&str>) -> Result<(), BootError> {
        loaders::set_env(self.at(), "next_entry", id)
    }

    /// The trial the loader holds.
    pub fn trials(&self) -> Result<Trials, BootError> {
        self.imp().trials(self.at())
    }

    /// Put a layer on trial, or (None) none.
    pub fn set_trial(&self, trial: Option<&TrialState>) -> Result<(), BootError> {
        self.imp().set_trial(self.at(), trial)
    }

    /// Forget that the loader found `layer` out of tries.
    pub fn clear_failed(&self, layer: &str) -> Result<(), BootError> {
        self.imp().clear_failed(self.at(), layer)
    }

    /// The one-shot id that boots a layer on trial (BLS), if the loader
    /// boots trials that way.
    pub fn trial_next_id(&self, inst: &Installed, tries: u8) -> Option<String> {
        self.imp().trial_next_id(inst, tries)
    }

    /// Whether the one-shot entry is an EFI variable that a tool sets
    /// (systemd-boot), not one [`Boot::set_next`] writes.
    pub fn next_in_efi_var(&self) -> bool {
        self.imp().next_in_efi_var()
    }

    /// Whether grub reads the entries only through imgbase's /etc/grub.d
    /// script ([`Boot::install_grub_script`]): grub without blscfg.
    pub fn needs_grub_script(&self) -> bool {
        self.imp().needs_grub_script()
    }

    /// Install the /etc/grub.d script under `root` (grub only). Returns
    /// whether grub.cfg already reads imgbase's menu.
    pub fn install_grub_script(&self, root: &Path) -> Result<bool, BootError> {
        loaders::install_script(self.at(), root)
    }

    /// Whether grub.cfg reads imgbase's menu file (grub only): if not,
    /// the entries are written but grub does not show them.
    pub fn grub_reads_menu(&self) -> bool {
        loaders::reads_menu(self.at())
    }

    /// Every entry of the installed layers as `boot --list` shows it,
    /// marked by the loader's default and one-shot ids
    /// ([`Boot::default_and_next`]).
    pub fn list(
        &self,
        layers: &[Installed],
        default: Option<&str>,
        next: Option<&str>,
    ) -> Vec<Listed> {
        let mut out = Vec::new();
        for l in layers.iter().rev() {
            for (id, k) in self.imp().entries_of(l) {
                out.push(Listed {
                    default: default == Some(id.as_str()),
                    next: next == Some(id.as_str()),
                    title: title(&l.layer),
                    layer: l.layer.clone(),
                    kernel: k.clone(),
                    options: l.options.to_string(),
                    id,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::boot::bls::Entry;
    use crate::boot::cmdline::Cmdline;

    fn installed(layer: &str, kernels: &[&str]) -> Installed {
        Installed {
            layer: layer.into(),
            kernels: kernels.iter().map(|s| s.to_string()).collect(),
            options: Cmdline::for_layer(&Cmdline::parse("quiet"), "HostVG", layer),
        }
    }

    fn boot(loader: Loader) -> (tempfile::TempDir, Boot) {
        let t = tempfile::tempdir().unwrap();
        let b = Boot::new(t.path(), loader);
        (t, b)
    }

    #[test]
    fn detects_loaders() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(detect(t.path()), None);
        fs::create_dir_all(t.path().join("grub")).unwrap();
        assert_eq!(detect(t.path()), Some(Loader::Grub));
        fs::write(t.path().join("grub/grub.cfg"), "insmod blscfg\nblscfg\n").unwrap();
        assert_eq!(detect(t.path()), Some(Loader::GrubBls));
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("loader")).unwrap();
        fs::write(t.path().join("loader/loader.conf"), "timeout 3\n").unwrap();
        assert_eq!(detect(t.path()), Some(Loader::SystemdBoot));
    }

    #[test]
    fn titles_tell_layers_apart() {
        assert_eq!(title("Node-4.5-0.1+2"), "Node 4.5-0.1 (layer 2)");
        assert_eq!(title("odd"), "odd");
    }

    #[test]
    fn grub_menu_lists_layers_newest_first_and_drops_removed_ones() {
        let (_t, b) = boot(Loader::Grub);
        let layers = [
            installed("N-1-0+1", &["6.1"]),
            installed("N-2-0+1", &["6.2", "6.1"]),
        ];
        b.write_entries(&layers).unwrap();
        let menu = fs::read_to_string(b.menu_path()).unwrap();
        let first = menu.find("--id 'N-2-0+1'").unwrap();
        let second = menu.find("--id 'N-1-0+1'").unwrap();
        assert!(first < second, "{menu}");
        assert!(menu.contains("/boot/imgbase/N-2-0+1/vmlinuz-6.2"), "{menu}");
        assert!(menu.contains("imgbase.layer=N-2-0+1"), "{menu}");
        assert_eq!(b.written_layers().unwrap(), ["N-1-0+1", "N-2-0+1"]);
        b.write_entries(&layers[1..]).unwrap();
        assert_eq!(b.written_layers().unwrap(), ["N-2-0+1"]);
    }

    #[test]
    fn bls_files_per_kernel_and_foreign_entries_left_alone() {
        let (t, b) = boot(Loader::GrubBls);
        let dir = t.path().join("loader/entries");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("fedora-6.0.conf"),
            "title Fedora\nlinux /vmlinuz-6.0\n",
        )
        .unwrap();
        let layers = [
            installed("N-1-0+1", &["6.2", "6.1"]),
            installed("N-1-0+2", &["6.2"]),
        ];
        b.write_entries(&layers).unwrap();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "fedora-6.0.conf",
                "imgbase-N-1-0+1-6.1.conf",
                "imgbase-N-1-0+1-6.2.conf",
                "imgbase-N-1-0+2-6.2.conf"
            ]
        );
        let e = Entry::parse(&fs::read_to_string(dir.join("imgbase-N-1-0+2-6.2.conf")).unwrap());
        assert_eq!(e.linux(), Some("/boot/imgbase/N-1-0+2/vmlinuz-6.2"));
        assert_eq!(e.initrds(), ["/boot/imgbase/N-1-0+2/initrd.img-6.2"]);
        assert_eq!(e.options().get("root"), Some("/dev/HostVG/N-1-0+2"));

        b.write_entries(&layers[..1]).unwrap();
        assert!(dir.join("fedora-6.0.conf").exists());
        assert!(!dir.join("imgbase-N-1-0+2-6.2.conf").exists());
        assert_eq!(b.written_layers().unwrap(), ["N-1-0+1"]);
    }

    /// Every file under `dir` (none if it is missing).
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(files_under(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn a_kernel_version_with_a_newline_writes_no_entry() {
        for kver in ["1\ninitrd /etc/shadow", "6.1\ninitrd evil"] {
            let (t, b) = boot(Loader::GrubBls);
            // A good layer first: nothing is written for it either.
            let layers = [
                installed("N-1-0+1", &["6.1"]),
                installed("N-1-0+2", &[kver]),
            ];
            let e = b.write_entries(&layers).unwrap_err();
            assert!(
                matches!(&e, BootError::ControlChar { what, .. } if what == "kernel version"),
                "{e:?}"
            );
            assert_eq!(files_under(&t.path().join("loader")), Vec::<PathBuf>::new());
        }
    }

    #[test]
    fn a_layer_name_with_a_newline_writes_no_entry() {
        for loader in [Loader::Grub, Loader::GrubBls, Loader::SystemdBoot] {
            let (t, b) = boot(loader);
            let e = b
                .write_entries(&[installed("N-1-0+1\ntitle x", &["6.1"])])
                .unwrap_err();
            assert!(
                matches!(e, BootError::ControlChar { .. }),
                "{loader}: {e:?}"
            );
            assert_eq!(files_under(t.path()), Vec::<PathBuf>::new(), "{loader}");
        }
        let (t, b) = boot(Loader::SystemdBoot);
        fs::create_dir_all(t.path().join("loader")).unwrap();
        fs::write(t.path().join("loader/loader.conf"), "timeout 3\n").unwrap();
        let e = b.set_default(Some("imgbase-x\ntimeout 0")).unwrap_err();
        assert!(matches!(e, BootError::ControlChar { .. }), "{e:?}");
        assert_eq!(
            fs::read_to_string(t.path().join("loader/loader.conf")).unwrap(),
            "timeout 3\n"
        );
    }

    #[test]
    fn default_and_next_live_in_grubenv_which_is_created() {
        let (_t, b) = boot(Loader::Grub);
        assert_eq!(b.default_and_next().unwrap(), (None, None));
        b.set_default(Some("N-1-0+2")).unwrap();
        b.set_next(Some("N-1-0+1")).unwrap();
        assert_eq!(fs::metadata(b.grubenv_path()).unwrap().len(), 1024);
        assert_eq!(
            b.default_and_next().unwrap(),
            (Some("N-1-0+2".into()), Some("N-1-0+1".into()))
        );
        b.set_next(None).unwrap();
        assert_eq!(b.default_and_next().unwrap().1, None);
    }

    #[test]
    fn a_corrupt_grubenv_is_an_error_not_overwritten() {
        let (_t, b) = boot(Loader::Grub);
        fs::create_dir_all(b.grubenv_path().parent().unwrap()).unwrap();
        fs::write(b.grubenv_path(), "garbage").unwrap();
        assert!(b.set_default(Some("x")).is_err());
        assert_eq!(fs::read(b.grubenv_path()).unwrap(), b"garbage");
    }

    #[test]
    fn systemd_boot_default_in_loader_conf() {
        let (t, b) = boot(Loader::SystemdBoot);
        fs::create_dir_all(t.path().join("loader")).unwrap();
        fs::write(
            t.path().join("loader/loader.conf"),
            "timeout 3\ndefault old.conf\n",
        )
        .unwrap();
        b.set_default(Some("imgbase-N-1-0+1-6.1")).unwrap();
        let conf = fs::read_to_string(t.path().join("loader/loader.conf")).unwrap();
        assert_eq!(conf, "timeout 3\ndefault imgbase-N-1-0+1-6.1.conf\n");
        assert_eq!(
            b.default_and_next().unwrap().0.as_deref(),
            Some("imgbase-N-1-0+1-6.1")
        );
    }

    #[test]
    fn ids_map_back_to_layers() {
        let (_t, b) = boot(Loader::GrubBls);
        let layers = [installed("N-1-0+1", &["6.2", "6.1"])];
        assert_eq!(b.id_of(&layers[0]).as_deref(), Some("imgbase-N-1-0+1-6.2"));
        assert!(b.layer_of_id("imgbase-N-1-0+1-6.1", &layers).is_some());
        assert!(b.layer_of_id("N-1-0+1", &layers).is_none());
        let (default, next) = b.default_and_next().unwrap();
        let list = b.list(&layers, default.as_deref(), next.as_deref());
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn systemd_boot_reads_the_entries_grub_bls_writes() {
        let layers = [installed("N-1-0+1", &["6.2", "6.1"])];
        let written = |loader| {
            let (t, b) = boot(loader);
            b.write_entries(&layers).unwrap();
            let files: Vec<_> = files_under(t.path())
                .iter()
                .map(|p| {
                    (
                        p.strip_prefix(t.path()).unwrap().to_owned(),
                        fs::read(p).unwrap(),
                    )
                })
                .collect();
            (files, b.list(&layers, None, None))
        };
        assert_eq!(written(Loader::SystemdBoot), written(Loader::GrubBls));
    }

    #[test]
    fn only_grub_needs_the_script_and_only_systemd_boot_an_efi_variable() {
        for (loader, script, efi) in [
            (Loader::Grub, true, false),
            (Loader::GrubBls, false, false),
            (Loader::SystemdBoot, false, true),
        ] {
            let (_t, b) = boot(loader);
            assert_eq!(b.needs_grub_script(), script, "{loader}");
            assert_eq!(b.next_in_efi_var(), efi, "{loader}");
        }
    }

    #[test]
    fn a_grub_trial_lives_in_grubenv_and_ends_in_one_write() {
        let (_t, b) = boot(Loader::Grub);
        assert_eq!(b.trials().unwrap(), Trials::default());
        b.set_default(Some("N-1-0+1")).unwrap();
        let t = TrialState {
            layer: "N-2-0+1".into(),
            tries: 3,
        };
        b.set_trial(Some(&t)).unwrap();
        let env = crate::boot::grubenv::GrubEnv::load(&b.grubenv_path()).unwrap();
        assert_eq!(env.get("imgbase_trial"), Some("N-2-0+1"));
        assert_eq!(env.get("imgbase_tries"), Some("3"));
        assert_eq!(env.get("saved_entry"), Some("N-1-0+1"), "the default stays");
        assert_eq!(b.trials().unwrap().pending, Some(t));
        // What the script leaves after a boot that found no try left.
        let mut env = env;
        env.unset("imgbase_trial");
        env.unset("imgbase_tries");
        env.set("imgbase_failed", "N-2-0+1").unwrap();
        env.save(&b.grubenv_path()).unwrap();
        let got = b.trials().unwrap();
        assert_eq!(got.pending, None);
        assert_eq!(got.failed, ["N-2-0+1"]);
        b.clear_failed("other").unwrap();
        assert_eq!(b.trials().unwrap().failed, ["N-2-0+1"]);
        b.clear_failed("N-2-0+1").unwrap();
        assert_eq!(b.trials().unwrap(), Trials::default());
        // A count the script would not take is no try.
        b.set_trial(Some(&TrialState {
            layer: "L".into(),
            tries: 2,
        }))
        .unwrap();
        crate::boot::loaders::set_env(b.at(), "imgbase_tries", Some("x")).unwrap();
        assert_eq!(b.trials().unwrap().pending.unwrap().tries, 0);
        b.set_trial(None).unwrap();
        let env = crate::boot::grubenv::GrubEnv::load(&b.grubenv_path()).unwrap();
        assert_eq!(env.get("imgbase_trial"), None);
        assert_eq!(env.get("imgbase_tries"), None);
        assert_eq!(env.get("saved_entry"), Some("N-1-0+1"));
    }

    fn entry_names(t: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(t.path().join("loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_bls_trial_is_its_entry_files_counted_and_never_twinned() {
        for loader in [Loader::SystemdBoot, Loader::GrubBls] {
            let (t, b) = boot(loader);
            let layers = [
                installed("N-1-0+1", &["6.1"]),
                installed("N-2-0+1", &["6.2", "6.1"]),
            ];
            b.write_entries(&layers).unwrap();
            let trial = TrialState {
                layer: "N-2-0+1".into(),
                tries: 2,
            };
            b.set_trial(Some(&trial)).unwrap();
            assert_eq!(
                entry_names(&t),
                [
                    "imgbase-N-1-0+1-6.1.conf",
                    "imgbase-N-2-0+1-6.1+2.conf",
                    "imgbase-N-2-0+1-6.2+2.conf"
                ],
                "{loader}"
            );
            assert_eq!(b.trials().unwrap().pending, Some(trial.clone()));
            assert_eq!(
                b.trial_next_id(&layers[1], 2).as_deref(),
                Some("imgbase-N-2-0+1-6.2+2")
            );
            // Ids with a counter still name the layer.
            assert!(b.layer_of_id("imgbase-N-2-0+1-6.2+2", &layers).is_some());
            assert!(
                b.layer_of_id("imgbase-N-2-0+1-6.2+0-3.conf", &layers)
                    .is_some()
            );
            // Rewriting the entries keeps the counted names, and a plain
            // twin left by someone goes.
            let dir = t.path().join("loader/entries");
            fs::copy(
                dir.join("imgbase-N-2-0+1-6.2+2.conf"),
                dir.join("imgbase-N-2-0+1-6.2.conf"),
            )
            .unwrap();
            b.write_entries(&layers).unwrap();
            assert_eq!(
                entry_names(&t),
                [
                    "imgbase-N-1-0+1-6.1.conf",
                    "imgbase-N-2-0+1-6.1+2.conf",
                    "imgbase-N-2-0+1-6.2+2.conf"
                ],
                "{loader}"
            );
            assert_eq!(b.written_layers().unwrap(), ["N-1-0+1", "N-2-0+1"]);
            // systemd-boot counted it down to nothing: failed, not pending.
            fs::rename(
                dir.join("imgbase-N-2-0+1-6.2+2.conf"),
                dir.join("imgbase-N-2-0+1-6.2+0-2.conf"),
            )
            .unwrap();
            let got = b.trials().unwrap();
            assert_eq!((got.pending, got.failed), (None, vec!["N-2-0+1".into()]));
            b.clear_failed("N-2-0+1").unwrap();
            assert_eq!(
                entry_names(&t),
                [
                    "imgbase-N-1-0+1-6.1.conf",
                    "imgbase-N-2-0+1-6.1.conf",
                    "imgbase-N-2-0+1-6.2.conf"
                ],
                "{loader}"
            );
            assert_eq!(b.trials().unwrap(), Trials::default());
            // Blessing names them plainly too; the default names a plain id.
            b.set_trial(Some(&trial)).unwrap();
            b.set_trial(None).unwrap();
            assert_eq!(b.trials().unwrap(), Trials::default());
            assert!(!entry_names(&t).iter().any(|n| n.contains("+2")));
        }
    }

    #[test]
    fn grub_script_is_installed_executable() {
        let (t, b) = boot(Loader::Grub);
        let root = t.path().join("root");
        assert!(!b.install_grub_script(&root).unwrap());
        let p = root.join("etc/grub.d/09_imgbase");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(
            fs::read_to_string(&p)
                .unwrap()
                .contains("/boot/grub/imgbase.cfg")
        );
    }
}
