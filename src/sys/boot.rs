//! What the boot steps need from the system: a layer's tree to read its
//! kernels from (a read-only mount), and systemd-boot's one-shot EFI
//! variable (through `bootctl`). The files under /boot are plain file
//! operations in [`crate::boot`].

use std::path::Path;

use crate::boot::cmdline::Cmdline;
use crate::boot::kernels;
use crate::boot::loader::Boot;
use crate::boot::{BootError, io_at};
use crate::sys::cmd::{Cmd, Runner};
use crate::sys::fs::{DevNum, mount_point_of};
use crate::sys::inroot::Tree;
use crate::sys::lvm::Lvm;
use crate::sys::mount::{Mounted, temp_mount_point};

pub trait LayerTrees {
    /// Run `f` on the tree of `vg/lv`, mounted read-only (or where it is
    /// mounted already, e.g. the running root).
    fn with_tree(
        &self,
        vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError>;
    /// Run `f` on the tree of `vg/lv` mounted read-write (a new layer the
    /// running plan made).
    fn with_writable_tree(
        &self,
        vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError>;
    /// Set (or clear) systemd-boot's one-shot entry.
    fn set_oneshot(&self, boot_dir: &Path, id: Option<&str>) -> Result<(), BootError>;
}

/// Trees of real LVs, mounted with `mount -o ro`.
pub struct RealTrees<'a> {
    pub runner: &'a dyn Runner,
    pub lvm: &'a dyn Lvm,
}

fn tool(e: impl std::fmt::Display) -> BootError {
    BootError::Tool(e.to_string())
}

impl RealTrees<'_> {
    /// Where `vg/lv` is mounted already (the running root), else mounted
    /// with `options` for the time of `f`.
    fn mounted(
        &self,
        vg: &str,
        lv: &str,
        options: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        let dev = format!("/dev/{vg}/{lv}");
        // An LV activated only to be read (a base) is put back inactive:
        // looking must leave the node as it was.
        let activated = !Path::new(&dev).exists();
        if activated {
            self.lvm.set_active(vg, lv, true).map_err(tool)?;
        }
        let result = self.on_device(&dev, options, f);
        if activated {
            self.lvm.set_active(vg, lv, false).map_err(tool)?;
        }
        result
    }

    fn on_device(
        &self,
        dev: &str,
        options: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        if let Some(dir) = DevNum::of_node(Path::new(dev))
            .map_err(tool)?
            .and_then(mount_point_of)
        {
            return f(&dir);
        }
        let dir = temp_mount_point("imgbase-layer-").map_err(io_at(&std::env::temp_dir()))?;
        let m = Mounted::new(self.runner, dev, dir.path(), options).map_err(tool)?;
        let result = f(m.path());
        m.unmount().map_err(tool)?;
        result
    }
}

impl LayerTrees for RealTrees<'_> {
    fn with_tree(
        &self,
        vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        // A layer is untrusted: nothing on it runs or acts as a device.
        self.mounted(vg, lv, "ro,nodev,nosuid,noexec", f)
    }

    fn with_writable_tree(
        &self,
        vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        self.mounted(vg, lv, "rw,nodev,nosuid,noexec", f)
    }

    fn set_oneshot(&self, boot_dir: &Path, id: Option<&str>) -> Result<(), BootError> {
        let id = id.map(|i| format!("{i}.conf")).unwrap_or_default();
        self.runner
            .run(
                &Cmd::new("bootctl")
                    .arg(format!("--boot-path={}", boot_dir.display()))
                    .args(["set-oneshot", &id]),
            )
            .map(|_| ())
            .map_err(tool)
    }
}

/// Everything the executor needs for boot steps.
pub struct BootExec<'a> {
    pub boot: Boot,
    pub trees: &'a dyn LayerTrees,
    /// The running system's kernel arguments, when it was booted from
    /// this VG: the last source of a new layer's node arguments.
    pub running: Option<Cmdline>,
}

impl BootExec<'_> {
    /// Copy the kernels of `layer` into the store with its arguments:
    /// the layer's own /etc/kernel/cmdline, else `args_from`'s, else the
    /// running system's.
    pub fn install(&self, vg: &str, layer: &str, args_from: Option<&str>) -> Result<(), BootError> {
        let store = self.boot.store();
        let inherited = match args_from {
            Some(l) => store.installed(l)?.map(|i| i.options),
            None => None,
        };
        self.trees.with_tree(vg, layer, &mut |root| {
            let tree = Tree::open(root).map_err(io_at(root))?;
            let (found, skipped) = kernels::find(&tree)?;
            if found.is_empty() {
                return Err(BootError::NoKernel {
                    layer: layer.into(),
                    skipped: skipped.clone(),
                });
            }
            // The layer's own arguments, read inside it only.
            let own = match tree.read_small(Path::new("etc/kernel/cmdline"), 64 << 10) {
                Ok(b) => Some(Cmdline::parse(String::from_utf8_lossy(&b).trim())),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            let node = own
                .or_else(|| inherited.clone())
                .or_else(|| self.running.clone())
                .unwrap_or_default();
            store.install(layer, &tree, &found, &Cmdline::for_layer(&node, vg, layer))
        })
    }

    pub fn set_next(&self, id: Option<&str>) -> Result<(), BootError> {
        if self.boot.next_in_efi_var() {
            self.trees.set_oneshot(&self.boot.dir, id)
        } else {
            self.boot.set_next(id)
        }
    }
}

/// The running kernel's arguments if they boot from `vg`: they name it
/// (`root=`, `rd.lvm.lv=`, `imgbase.layer=`), or the running root (`root`,
/// e.g. `/`) is an LV of it whatever `root=` says (`UUID=…`).
pub fn running_cmdline(vg: &str, root: &Path) -> Option<Cmdline> {
    let c = Cmdline::parse(std::fs::read_to_string("/proc/cmdline").ok()?.trim());
    let dm_name = DevNum::of_mount(root).ok().and_then(|d| {
        std::fs::read_to_string(format!("/sys/dev/block/{}:{}/dm/name", d.major, d.minor)).ok()
    });
    boots_from(&c, vg, dm_name.as_deref().map(str::trim)).then_some(c)
}

/// Whether a command line (and the device-mapper name of the root) boot
/// from `vg`.
pub fn boots_from(c: &Cmdline, vg: &str, root_dm_name: Option<&str>) -> bool {
    // device-mapper names double the '-' of VG and LV names.
    let dm_prefix = format!("{}-", vg.replace('-', "--"));
    c.has("imgbase.layer")
        || c.get("root").is_some_and(|r| {
            r.starts_with(&format!("/dev/{vg}/"))
                || r.starts_with(&format!("/dev/mapper/{dm_prefix}"))
        })
        || c.get_all("rd.lvm.lv")
            .iter()
            .any(|v| v.starts_with(&format!("{vg}/")))
        || root_dm_name.is_some_and(|n| {
            n.strip_prefix(&dm_prefix)
                .is_some_and(|lv| !lv.starts_with('-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_a_command_line_that_boots_from_the_vg() {
        let c = |s: &str| Cmdline::parse(s);
        assert!(boots_from(&c("root=/dev/HostVG/root ro"), "HostVG", None));
        assert!(boots_from(
            &c("root=/dev/mapper/Host--VG-root"),
            "Host-VG",
            None
        ));
        assert!(boots_from(
            &c("rd.lvm.lv=HostVG/N-1-0+1 quiet"),
            "HostVG",
            None
        ));
        assert!(boots_from(&c("imgbase.layer=N-1-0+1"), "HostVG", None));
        assert!(boots_from(
            &c("root=UUID=1234 quiet"),
            "HostVG",
            Some("HostVG-root")
        ));
        assert!(!boots_from(&c("root=UUID=1234 quiet"), "HostVG", None));
        assert!(!boots_from(
            &c("root=/dev/sda1"),
            "HostVG",
            Some("other-root")
        ));
        // "Host-VG-root" is VG "Host" LV "VG-root" in device-mapper's spelling.
        assert!(!boots_from(
            &c("root=UUID=1"),
            "Host",
            Some("Host--VG-root")
        ));
    }
}
