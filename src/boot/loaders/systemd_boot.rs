//! systemd-boot: the entries are Boot Loader Specification files under
//! loader/entries ([`crate::boot::bls`]), one a layer and kernel, which
//! grub with blscfg reads too ([`super::GrubBls`] writes them here); the
//! default is loader.conf's `default`, the one-shot entry an EFI variable.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::{BootDir, BootLoader, title};
use crate::boot::bls::{self, Entry};
use crate::boot::kernels::{Installed, initrd_name, linux_name};
use crate::boot::loader::{TrialState, Trials};
use crate::boot::{BootError, io_at, refuse_control, write_atomic};

pub struct SystemdBoot;

impl BootLoader for SystemdBoot {
    /// The entry file's id of the newest kernel.
    fn id_of(&self, inst: &Installed) -> Option<String> {
        inst.kernels.first().map(|k| bls::entry_id(&inst.layer, k))
    }

    /// An entry's id or its file name, with or without a boot counter.
    fn is_entry_of(&self, id: &str, inst: &Installed) -> bool {
        let stem = id.strip_suffix(bls::FILE_SUFFIX).unwrap_or(id);
        let (plain, _) = bls::split_counter(&format!("{stem}{}", bls::FILE_SUFFIX));
        inst.kernels
            .iter()
            .any(|k| bls::entry_file_name(&inst.layer, k) == plain)
    }

    /// One entry a kernel.
    fn entries_of<'a>(&self, inst: &'a Installed) -> Vec<(String, &'a String)> {
        inst.kernels
            .iter()
            .map(|k| (bls::entry_id(&inst.layer, k), k))
            .collect()
    }

    fn write_entries(&self, at: BootDir, layers: &[Installed]) -> Result<(), BootError> {
        // Every entry is made (and so checked) before any is written: a
        // bad value in one layer leaves /boot as it was.
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
                    &at.store_path(&l.layer, &linux_name(k)),
                    &[at.store_path(&l.layer, &initrd_name(k))],
                    &l.options,
                )?;
                // Named after the check: the name holds the version.
                entries.push((bls::entry_file_name(&l.layer, k), entry.to_string()));
            }
        }
        let dir = entries_dir(at);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        // An entry on trial keeps its counted name (systemd-boot counts
        // on it), and its plain twin goes: with both, the trial would
        // never be blessed nor found failed.
        let existing = our_entry_files(at)?;
        let mut wanted = Vec::new();
        for (plain, text) in entries {
            let name = existing
                .iter()
                .find(|n| **n != plain && bls::split_counter(n).0 == plain)
                .cloned()
                .unwrap_or(plain);
            let path = dir.join(&name);
            // An unchanged file is not rewritten.
            if fs::read_to_string(&path).ok().as_deref() != Some(&text) {
                write_atomic(&path, text.as_bytes()).map_err(io_at(&path))?;
            }
            wanted.push(name);
        }
        for name in our_entry_files(at)? {
            if !wanted.contains(&name) {
                let path = dir.join(&name);
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(())
    }

    /// The `imgbase.layer=` option of each of imgbase's entry files.
    fn written_layers(&self, at: BootDir) -> Result<Vec<String>, BootError> {
        let mut out = Vec::new();
        for name in our_entry_files(at)? {
            let path = entries_dir(at).join(&name);
            let text = fs::read_to_string(&path).map_err(io_at(&path))?;
            if let Some(l) = Entry::parse(&text).options().get("imgbase.layer") {
                out.push(l.to_string());
            }
        }
        Ok(out)
    }

    /// The one-shot entry is not read (it is an EFI variable): None.
    fn default_and_next(&self, at: BootDir) -> Result<(Option<String>, Option<String>), BootError> {
        let conf = fs::read_to_string(loader_conf(at)).unwrap_or_default();
        let default = conf.lines().find_map(|l| {
            let (k, v) = l.trim().split_once(char::is_whitespace)?;
            (k == "default").then(|| v.trim().trim_end_matches(".conf").to_string())
        });
        Ok((default, None))
    }

    /// Rewrites loader.conf's `default` line, keeping the others.
    fn set_default(&self, at: BootDir, id: Option<&str>) -> Result<(), BootError> {
        let path = loader_conf(at);
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

    /// A trial is the layer's entry files named with a counter
    /// (`+LEFT[-DONE]`); one at `+0` is out of tries.
    fn trials(&self, at: BootDir) -> Result<Trials, BootError> {
        let mut t = Trials::default();
        for (name, layer) in files_by_layer(at)? {
            let Some((left, done)) = bls::split_counter(&name).1 else {
                continue;
            };
            if left == 0 {
                if !t.failed.contains(&layer) {
                    t.failed.push(layer);
                }
            } else if t.pending.is_none() {
                t.pending = Some(TrialState { layer, tries: left });
                t.done = done;
            }
        }
        // A layer with one kernel out of tries failed, whatever its others say.
        if t.pending
            .as_ref()
            .is_some_and(|p| t.failed.contains(&p.layer))
        {
            t.pending = None;
            t.done = 0;
        }
        Ok(t)
    }

    /// Rename the trial's entry files to `+TRIES`, every other counted
    /// file back to its plain name (a failed one too: that is
    /// [`BootLoader::clear_failed`]'s, but a new trial supersedes it).
    fn set_trial(&self, at: BootDir, trial: Option<&TrialState>) -> Result<(), BootError> {
        for (name, layer) in files_by_layer(at)? {
            let target = match trial {
                Some(t) if t.layer == layer => bls::with_counter(&name, t.tries),
                _ => bls::split_counter(&name).0,
            };
            rename_entry(at, &name, &target)?;
        }
        Ok(())
    }

    fn clear_failed(&self, at: BootDir, layer: &str) -> Result<(), BootError> {
        for (name, l) in files_by_layer(at)? {
            if l == layer {
                rename_entry(at, &name, &bls::split_counter(&name).0)?;
            }
        }
        Ok(())
    }

    /// The newest kernel's counted name, as the one-shot entry.
    fn trial_next_id(&self, inst: &Installed, tries: u8) -> Option<String> {
        inst.kernels
            .first()
            .map(|k| format!("{}+{tries}", bls::entry_id(&inst.layer, k)))
    }

    /// `LoaderEntryOneShot`, which `bootctl set-oneshot` sets.
    fn next_in_efi_var(&self) -> bool {
        true
    }
}

fn entries_dir(at: BootDir) -> PathBuf {
    at.dir.join("loader/entries")
}

fn loader_conf(at: BootDir) -> PathBuf {
    at.dir.join("loader/loader.conf")
}

/// imgbase's entry files with the layer each names (`imgbase.layer=`).
fn files_by_layer(at: BootDir) -> Result<Vec<(String, String)>, BootError> {
    let mut out = Vec::new();
    for name in our_entry_files(at)? {
        let path = entries_dir(at).join(&name);
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        if let Some(l) = Entry::parse(&text).options().get("imgbase.layer") {
            out.push((name, l.to_string()));
        }
    }
    Ok(out)
}

/// Rename an entry file (what systemd-bless-boot does), unless it has
/// that name already. A plain twin in the way is replaced: there is
/// never both.
fn rename_entry(at: BootDir, from: &str, to: &str) -> Result<(), BootError> {
    if from == to {
        return Ok(());
    }
    let dir = entries_dir(at);
    let path = dir.join(from);
    fs::rename(&path, dir.join(to)).map_err(io_at(&path))?;
    crate::boot::sync_dir(&dir).map_err(io_at(&dir))
}

/// imgbase's BLS entry files (by name), sorted.
fn our_entry_files(at: BootDir) -> Result<Vec<String>, BootError> {
    let dir = entries_dir(at);
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
