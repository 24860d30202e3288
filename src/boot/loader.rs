//! The boot loader of a node: which one, where its files are, and how
//! imgbase's entries, the default layer and the one-shot layer are written
//! for it.
//!
//! Entries are derived from the kernel store ([`super::kernels`]): every
//! layer with a directory there gets an entry per kernel (BLS) or one menu
//! entry for its newest kernel (grub without blscfg). Rewriting them all is
//! cheap and makes the entries always agree with the store.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use super::bls::{self, Entry};
use super::grubenv::GrubEnv;
use super::grubmenu::{self, MenuEntry};
use super::kernels::{Installed, Store, initrd_name, linux_name};
use super::{BootError, io_at, refuse_control, write_atomic};
use crate::model::names::LayerName;

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

    fn grub_dir(&self) -> PathBuf {
        let g2 = self.dir.join("grub2");
        if g2.is_dir() {
            g2
        } else {
            self.dir.join("grub")
        }
    }

    pub fn grubenv_path(&self) -> PathBuf {
        self.grub_dir().join("grubenv")
    }

    pub fn menu_path(&self) -> PathBuf {
        self.grub_dir().join("imgbase.cfg")
    }

    fn entries_dir(&self) -> PathBuf {
        self.dir.join("loader/entries")
    }

    fn loader_conf(&self) -> PathBuf {
        self.dir.join("loader/loader.conf")
    }

    /// A store file's path as the loader sees it.
    fn loader_path(&self, layer: &str, file: &str) -> String {
        format!("{}/{}/{layer}/{file}", self.prefix, super::kernels::STORE)
    }

    /// The id the loader knows a layer's default entry by: the layer name
    /// in the grub menu, the entry file's id for BLS (newest kernel).
    pub fn id_of(&self, inst: &Installed) -> Option<String> {
        match self.loader {
            Loader::Grub => Some(inst.layer.clone()),
            Loader::GrubBls | Loader::SystemdBoot => {
                inst.kernels.first().map(|k| bls::entry_id(&inst.layer, k))
            }
        }
    }

    /// The layer an id names, among the installed layers.
    pub fn layer_of_id<'a>(&self, id: &str, layers: &'a [Installed]) -> Option<&'a Installed> {
        layers.iter().find(|l| match self.loader {
            Loader::Grub => l.layer == id,
            Loader::GrubBls | Loader::SystemdBoot => l.kernels.iter().any(|k| {
                bls::entry_id(&l.layer, k) == id || bls::entry_file_name(&l.layer, k) == id
            }),
        })
    }

    /// Write the entries of exactly these layers (newest first in the
    /// menu), removing imgbase's entries of any other layer.
    pub fn write_entries(&self, layers: &[Installed]) -> Result<(), BootError> {
        match self.loader {
            Loader::Grub => {
                let entries: Vec<MenuEntry> = layers
                    .iter()
                    .rev()
                    .filter_map(|l| {
                        let k = l.kernels.first()?;
                        Some(MenuEntry {
                            id: l.layer.clone(),
                            title: title(&l.layer),
                            linux: self.loader_path(&l.layer, &linux_name(k)),
                            initrds: vec![self.loader_path(&l.layer, &initrd_name(k))],
                            options: l.options.clone(),
                        })
                    })
                    .collect();
                // Rendered (and so checked) before anything is made.
                let menu = grubmenu::render(&entries, "")?;
                let path = self.menu_path();
                fs::create_dir_all(self.grub_dir()).map_err(io_at(&self.grub_dir()))?;
                write_atomic(&path, menu.as_bytes()).map_err(io_at(&path))
            }
            Loader::GrubBls | Loader::SystemdBoot => {
                // Every entry is made (and so checked) before any is
                // written: a bad value in one layer leaves /boot as it was.
                let mut entries = Vec::new();
                for l in layers {
                    for (i, k) in l.kernels.iter().enumerate() {
                        let mut t = title(&l.layer);
                        if i > 0 {
                            t.push_str(&format!(", kernel {k}"));
                        }
                        let entry = Entry::new(
                            &t,
                            k,
                            &self.loader_path(&l.layer, &linux_name(k)),
                            &[self.loader_path(&l.layer, &initrd_name(k))],
                            &l.options,
                        )?;
                        // Named after the check: the name holds the version.
                        entries.push((bls::entry_file_name(&l.layer, k), entry.to_string()));
                    }
                }
                let dir = self.entries_dir();
                fs::create_dir_all(&dir).map_err(io_at(&dir))?;
                let mut wanted = Vec::new();
                for (name, text) in entries {
                    let path = dir.join(&name);
                    // An unchanged file is not rewritten.
                    if fs::read_to_string(&path).ok().as_deref() != Some(&text) {
                        write_atomic(&path, text.as_bytes()).map_err(io_at(&path))?;
                    }
                    wanted.push(name);
                }
                for name in self.our_entry_files()? {
                    if !wanted.contains(&name) {
                        let path = dir.join(&name);
                        fs::remove_file(&path).map_err(io_at(&path))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// imgbase's BLS entry files (by name), sorted.
    fn our_entry_files(&self) -> Result<Vec<String>, BootError> {
        let dir = self.entries_dir();
        let mut out = Vec::new();
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if let Ok(n) = e.file_name().into_string()
                        && bls::is_ours(&n)
                    {
                        out.push(n);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&dir)(e)),
        }
        out.sort();
        Ok(out)
    }

    /// The layers the written entries name (read from the menu file or
    /// the BLS files, not derived), for `check`.
    pub fn written_layers(&self) -> Result<Vec<String>, BootError> {
        let mut out = Vec::new();
        match self.loader {
            Loader::Grub => {
                let path = self.menu_path();
                let text = match fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(io_at(&path)(e)),
                };
                for line in text.lines() {
                    if line.starts_with("menuentry ")
                        && let Some(rest) = line.split(" --id '").nth(1)
                        && let Some(id) = rest.split('\'').next()
                    {
                        out.push(id.to_string());
                    }
                }
            }
            Loader::GrubBls | Loader::SystemdBoot => {
                for name in self.our_entry_files()? {
                    let path = self.entries_dir().join(&name);
                    let text = fs::read_to_string(&path).map_err(io_at(&path))?;
                    if let Some(l) = Entry::parse(&text).options().get("imgbase.layer") {
                        out.push(l.to_string());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn grubenv(&self) -> Result<GrubEnv, BootError> {
        let path = self.grubenv_path();
        if path.exists() {
            GrubEnv::load(&path)
        } else {
            Ok(GrubEnv::new())
        }
    }

    /// The ids of the default and of the one-shot entry, as stored.
    pub fn default_and_next(&self) -> Result<(Option<String>, Option<String>), BootError> {
        match self.loader {
            Loader::Grub | Loader::GrubBls => {
                let env = self.grubenv()?;
                let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(String::from);
                Ok((get("saved_entry"), get("next_entry")))
            }
            Loader::SystemdBoot => {
                let conf = fs::read_to_string(self.loader_conf()).unwrap_or_default();
                let default = conf.lines().find_map(|l| {
                    let (k, v) = l.trim().split_once(char::is_whitespace)?;
                    (k == "default").then(|| v.trim().trim_end_matches(".conf").to_string())
                });
                Ok((default, None))
            }
        }
    }

    /// Make `id` the default entry (None: no default of imgbase's).
    pub fn set_default(&self, id: Option<&str>) -> Result<(), BootError> {
        match self.loader {
            Loader::Grub | Loader::GrubBls => self.set_env("saved_entry", id),
            Loader::SystemdBoot => {
                let path = self.loader_conf();
                let conf = fs::read_to_string(&path).unwrap_or_default();
                let mut lines: Vec<String> = conf
                    .lines()
                    .filter(|l| l.split_whitespace().next() != Some("default"))
                    .map(String::from)
                    .collect();
                if let Some(id) = id {
                    refuse_control("default entry id", id)?;
                    lines.push(format!("default {id}.conf"));
                }
                let text = lines.join("\n") + "\n";
                write_atomic(&path, text.as_bytes()).map_err(io_at(&path))
            }
        }
    }

    /// Boot `id` once at the next boot (grub's `next_entry`). systemd-boot
    /// keeps this in an EFI variable: see the sys layer.
    pub fn set_next(&self, id: Option<&str>) -> Result<(), BootError> {
        self.set_env("next_entry", id)
    }

    fn set_env(&self, name: &str, value: Option<&str>) -> Result<(), BootError> {
        let path = self.grubenv_path();
        let mut env = self.grubenv()?;
        match value {
            Some(v) => env.set(name, v)?,
            None => {
                if env.unset(name).is_none() && path.exists() {
                    return Ok(());
                }
            }
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        env.save(&path)
    }

    /// Install the /etc/grub.d script under `root` (grub only). Returns
    /// whether grub.cfg already reads imgbase's menu.
    pub fn install_grub_script(&self, root: &Path) -> Result<bool, BootError> {
        let dir = root.join("etc/grub.d");
        let path = dir.join(grubmenu::GRUB_D_SCRIPT);
        let menu_on_boot = format!(
            "{}/{}/imgbase.cfg",
            self.prefix,
            self.grub_dir()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("grub")
        );
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        write_atomic(&path, grubmenu::grub_d_script(&menu_on_boot).as_bytes())
            .map_err(io_at(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_at(&path))?;
        Ok(self.grub_reads_menu())
    }

    /// Whether grub.cfg reads imgbase's menu file (grub only): if not,
    /// the entries are written but grub does not show them.
    pub fn grub_reads_menu(&self) -> bool {
        let cfg = self.grub_dir().join("grub.cfg");
        fs::read_to_string(cfg).is_ok_and(|s| s.contains("imgbase.cfg"))
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
            let ids: Vec<(String, &String)> = match self.loader {
                Loader::Grub => l
                    .kernels
                    .first()
                    .map(|k| (l.layer.clone(), k))
                    .into_iter()
                    .collect(),
                _ => l
                    .kernels
                    .iter()
                    .map(|k| (bls::entry_id(&l.layer, k), k))
                    .collect(),
            };
            for (id, k) in ids {
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
    use super::*;
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
