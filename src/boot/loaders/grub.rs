//! grub without blscfg (Debian, Ubuntu): the entries are one menu file of
//! imgbase's beside grub.cfg ([`crate::boot::grubmenu`]), which grub reads
//! through an /etc/grub.d script; the default and the one-shot entry are
//! grubenv's `saved_entry` and `next_entry`, named by layer.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{BootDir, BootLoader, title};
use crate::boot::grubenv::GrubEnv;
use crate::boot::grubmenu::{self, ENV_FAILED, ENV_TRIAL, ENV_TRIES, MAX_TRIES, MenuEntry};
use crate::boot::kernels::{Installed, initrd_name, linux_name};
use crate::boot::loader::{TrialState, Trials};
use crate::boot::{BootError, io_at, write_atomic};

pub struct Grub;

impl BootLoader for Grub {
    fn id_of(&self, inst: &Installed) -> Option<String> {
        Some(inst.layer.clone())
    }

    fn is_entry_of(&self, id: &str, inst: &Installed) -> bool {
        inst.layer == id
    }

    /// One entry a layer: its newest kernel.
    fn entries_of<'a>(&self, inst: &'a Installed) -> Vec<(String, &'a String)> {
        inst.kernels
            .first()
            .map(|k| (inst.layer.clone(), k))
            .into_iter()
            .collect()
    }

    fn write_entries(&self, at: BootDir, layers: &[Installed]) -> Result<(), BootError> {
        let entries: Vec<MenuEntry> = layers
            .iter()
            .rev()
            .filter_map(|l| {
                let k = l.kernels.first()?;
                Some(MenuEntry {
                    id: l.layer.clone(),
                    title: title(&l.layer),
                    linux: at.store_path(&l.layer, &linux_name(k)),
                    initrds: vec![at.store_path(&l.layer, &initrd_name(k))],
                    options: l.options.clone(),
                })
            })
            .collect();
        // Rendered (and so checked) before anything is made.
        let menu = grubmenu::render(&entries, "")?;
        let path = menu_path(at);
        let dir = grub_dir(at);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        write_atomic(&path, menu.as_bytes()).map_err(io_at(&path))
    }

    /// The `--id` of every `menuentry` line of the menu file.
    fn written_layers(&self, at: BootDir) -> Result<Vec<String>, BootError> {
        let path = menu_path(at);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_at(&path)(e)),
        };
        Ok(text
            .lines()
            .filter(|line| line.starts_with("menuentry "))
            .filter_map(|line| line.split(" --id '").nth(1)?.split('\'').next())
            .map(String::from)
            .collect())
    }

    fn default_and_next(&self, at: BootDir) -> Result<(Option<String>, Option<String>), BootError> {
        let env = load_env(at)?;
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(String::from);
        Ok((get("saved_entry"), get("next_entry")))
    }

    fn set_default(&self, at: BootDir, id: Option<&str>) -> Result<(), BootError> {
        set_env(at, "saved_entry", id)
    }

    /// `imgbase_trial`/`imgbase_tries`, and `imgbase_failed` that the
    /// 09_imgbase script sets when a boot finds no try left.
    fn trials(&self, at: BootDir) -> Result<Trials, BootError> {
        let env = load_env(at)?;
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
        Ok(Trials {
            pending: get(ENV_TRIAL).map(|layer| TrialState {
                layer: layer.to_string(),
                // Anything but a digit the script counts from is no try.
                tries: get(ENV_TRIES)
                    .and_then(|t| t.parse::<u8>().ok())
                    .filter(|t| *t <= MAX_TRIES)
                    .unwrap_or(0),
            }),
            done: 0,
            failed: get(ENV_FAILED).map(String::from).into_iter().collect(),
        })
    }

    /// Both variables in one write, so grub never sees half a trial.
    fn set_trial(&self, at: BootDir, trial: Option<&TrialState>) -> Result<(), BootError> {
        let path = grubenv_path(at);
        let mut env = load_env(at)?;
        match trial {
            Some(t) => {
                env.set(ENV_TRIAL, &t.layer)?;
                env.set(ENV_TRIES, &t.tries.to_string())?;
            }
            None => {
                let had = env.unset(ENV_TRIAL).is_some() | env.unset(ENV_TRIES).is_some();
                if !had {
                    return Ok(());
                }
            }
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        env.save(&path)
    }

    fn clear_failed(&self, at: BootDir, layer: &str) -> Result<(), BootError> {
        if load_env(at)?.get(ENV_FAILED) == Some(layer) {
            set_env(at, ENV_FAILED, None)?;
        }
        Ok(())
    }

    fn needs_grub_script(&self) -> bool {
        true
    }
}

/// grub's directory: grub2/ where there is one (EL), else grub/.
fn grub_dir(at: BootDir) -> PathBuf {
    let g2 = at.dir.join("grub2");
    if g2.is_dir() { g2 } else { at.dir.join("grub") }
}

pub fn grubenv_path(at: BootDir) -> PathBuf {
    grub_dir(at).join("grubenv")
}

pub fn menu_path(at: BootDir) -> PathBuf {
    grub_dir(at).join("imgbase.cfg")
}

/// grubenv, or an empty one where there is none yet.
fn load_env(at: BootDir) -> Result<GrubEnv, BootError> {
    let path = grubenv_path(at);
    if path.exists() {
        GrubEnv::load(&path)
    } else {
        Ok(GrubEnv::new())
    }
}

/// Set or unset one grubenv variable, creating grubenv if need be; an
/// unset of a variable that is not there writes nothing.
pub fn set_env(at: BootDir, name: &str, value: Option<&str>) -> Result<(), BootError> {
    let path = grubenv_path(at);
    let mut env = load_env(at)?;
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

/// Install the /etc/grub.d script under `root`. Returns whether grub.cfg
/// already reads imgbase's menu.
pub fn install_script(at: BootDir, root: &Path) -> Result<bool, BootError> {
    let dir = root.join("etc/grub.d");
    let path = dir.join(grubmenu::GRUB_D_SCRIPT);
    let menu_on_boot = format!(
        "{}/{}/imgbase.cfg",
        at.prefix,
        grub_dir(at)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("grub")
    );
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    write_atomic(&path, grubmenu::grub_d_script(&menu_on_boot).as_bytes()).map_err(io_at(&path))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_at(&path))?;
    Ok(reads_menu(at))
}

/// Whether grub.cfg reads imgbase's menu file: if not, the entries are
/// written but grub does not show them.
pub fn reads_menu(at: BootDir) -> bool {
    let cfg = grub_dir(at).join("grub.cfg");
    fs::read_to_string(cfg).is_ok_and(|s| s.contains("imgbase.cfg"))
}
