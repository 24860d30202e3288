//! The kernels of the layers, kept under `/boot/imgbase/<layer>/`.
//!
//! A layer's directory holds `vmlinuz-<kver>` and `initrd.img-<kver>` for
//! each kernel found in the layer, and `cmdline`, the kernel arguments its
//! entries use. Boot entries are derived from these directories, so the
//! directory of a layer is the single record of "this layer is bootable".
//!
//! Identical files are shared: a kernel that another layer already has
//! (same name, same bytes) is hard-linked, not copied, and the link count
//! is the reference count: removing one layer's directory never frees a
//! file another layer's entry still uses. A directory is built under a
//! temporary name (`.tmp-<layer>`), every file fsynced, then renamed into
//! place, so a crash or a full /boot leaves no half-written kernel.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cmdline::Cmdline;
use super::{BootError, io_at, sync_dir};
use crate::image::digest::sha256_file;
use crate::model::names::rpmvercmp;

/// The store's directory under /boot.
pub const STORE: &str = "imgbase";
/// The layer's kernel arguments, inside its directory.
pub const CMDLINE_FILE: &str = "cmdline";
const TMP_PREFIX: &str = ".tmp-";

/// A kernel found in a layer's tree: absolute paths in the mounted tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kver: String,
    pub linux: PathBuf,
    pub initrd: PathBuf,
}

/// What a layer's directory holds: its kernels, newest first, and its
/// kernel arguments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub layer: String,
    pub kernels: Vec<String>,
    #[serde(serialize_with = "as_string")]
    pub options: Cmdline,
}

fn as_string<S: serde::Serializer>(c: &Cmdline, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_string())
}

/// File names in a layer's directory (and so in the entries).
pub fn linux_name(kver: &str) -> String {
    format!("vmlinuz-{kver}")
}
pub fn initrd_name(kver: &str) -> String {
    format!("initrd.img-{kver}")
}

/// The kernels of the tree at `root`, newest first: `/boot/vmlinuz-KVER`
/// (Debian, older Fedora) and `/usr/lib/modules/KVER/vmlinuz` (Fedora's
/// kernel-install layout), each with its initramfs (`/boot/initrd.img-KVER`,
/// `/boot/initramfs-KVER.img` or `/usr/lib/modules/KVER/initramfs.img`).
/// A kernel without an initramfs cannot mount an LVM root and is skipped
/// (returned in the second list).
pub fn find(root: &Path) -> io::Result<(Vec<Found>, Vec<String>)> {
    let mut kernels: Vec<(String, PathBuf)> = Vec::new();
    for (name, path) in read_dir_names(&root.join("boot"))? {
        if let Some(kver) = name.strip_prefix("vmlinuz-")
            && path.is_file()
        {
            kernels.push((kver.to_string(), path));
        }
    }
    for (kver, dir) in read_dir_names(&root.join("usr/lib/modules"))? {
        let linux = dir.join("vmlinuz");
        if linux.is_file() && !kernels.iter().any(|(k, _)| *k == kver) {
            kernels.push((kver, linux));
        }
    }
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (kver, linux) in kernels {
        let candidates = [
            root.join("boot").join(initrd_name(&kver)),
            root.join("boot").join(format!("initramfs-{kver}.img")),
            root.join("usr/lib/modules")
                .join(&kver)
                .join("initramfs.img"),
        ];
        match candidates.into_iter().find(|p| p.is_file()) {
            Some(initrd) => found.push(Found {
                kver,
                linux,
                initrd,
            }),
            None => skipped.push(kver),
        }
    }
    found.sort_by(|a, b| rpmvercmp(&b.kver, &a.kver));
    Ok((found, skipped))
}

/// Names and paths in a directory, sorted; a missing directory is empty.
fn read_dir_names(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    match fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                let e = e?;
                if let Ok(name) = e.file_name().into_string() {
                    out.push((name, e.path()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

/// The store under one /boot.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn new(boot_dir: &Path) -> Store {
        Store {
            dir: boot_dir.join(STORE),
        }
    }

    pub fn layer_dir(&self, layer: &str) -> PathBuf {
        self.dir.join(layer)
    }

    /// Copy the kernels found in `root` into the layer's directory (made
    /// anew), with `options` as its kernel arguments. Nothing is left
    /// behind if it fails.
    pub fn install(
        &self,
        layer: &str,
        kernels: &[Found],
        options: &Cmdline,
    ) -> Result<(), BootError> {
        fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let tmp = self.dir.join(format!("{TMP_PREFIX}{layer}"));
        remove_dir_if_present(&tmp).map_err(io_at(&tmp))?;
        let result = self.fill(&tmp, kernels, options);
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
            return result;
        }
        let dest = self.layer_dir(layer);
        // A directory left by an earlier install is replaced whole.
        let old = self.dir.join(format!("{TMP_PREFIX}old-{layer}"));
        let had_old = dest.exists();
        if had_old {
            remove_dir_if_present(&old).map_err(io_at(&old))?;
            fs::rename(&dest, &old).map_err(io_at(&dest))?;
        }
        fs::rename(&tmp, &dest).map_err(io_at(&dest))?;
        sync_dir(&self.dir).map_err(io_at(&self.dir))?;
        if had_old {
            fs::remove_dir_all(&old).map_err(io_at(&old))?;
        }
        Ok(())
    }

    fn fill(&self, tmp: &Path, kernels: &[Found], options: &Cmdline) -> Result<(), BootError> {
        fs::create_dir(tmp).map_err(io_at(tmp))?;
        for k in kernels {
            for (src, name) in [
                (&k.linux, linux_name(&k.kver)),
                (&k.initrd, initrd_name(&k.kver)),
            ] {
                let dest = tmp.join(&name);
                match self.shared_copy(&name, src)? {
                    Some(same) => fs::hard_link(&same, &dest).map_err(io_at(&dest))?,
                    None => copy_synced(src, &dest).map_err(io_at(&dest))?,
                }
            }
        }
        let cmdline = tmp.join(CMDLINE_FILE);
        let mut f = fs::File::create(&cmdline).map_err(io_at(&cmdline))?;
        writeln!(f, "{options}")
            .and_then(|_| f.sync_all())
            .map_err(io_at(&cmdline))?;
        sync_dir(tmp).map_err(io_at(tmp))
    }

    /// A stored file with this name and these exact bytes, to link: another
    /// layer's, or this layer's own when its directory is rewritten.
    fn shared_copy(&self, name: &str, src: &Path) -> Result<Option<PathBuf>, BootError> {
        let len = fs::metadata(src).map_err(io_at(src))?.len();
        let mut digest = None;
        for other in self.layers()? {
            let candidate = self.layer_dir(&other).join(name);
            match fs::metadata(&candidate) {
                Ok(m) if m.len() == len => {}
                _ => continue,
            }
            if digest.is_none() {
                digest = Some(sha256_file(src, &mut |_| ()).map_err(io_at(src))?);
            }
            if sha256_file(&candidate, &mut |_| ()).ok() == digest {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// The layers that have a directory (temporary ones excluded), sorted.
    pub fn layers(&self) -> Result<Vec<String>, BootError> {
        Ok(read_dir_names(&self.dir)
            .map_err(io_at(&self.dir))?
            .into_iter()
            .filter(|(n, p)| !n.starts_with('.') && p.is_dir())
            .map(|(n, _)| n)
            .collect())
    }

    /// Leftovers of interrupted installs and anything not a directory.
    pub fn strays(&self) -> Result<Vec<PathBuf>, BootError> {
        Ok(read_dir_names(&self.dir)
            .map_err(io_at(&self.dir))?
            .into_iter()
            .filter(|(n, p)| n.starts_with('.') || !p.is_dir())
            .map(|(_, p)| p)
            .collect())
    }

    /// What a layer's directory holds, or None if it has none.
    pub fn installed(&self, layer: &str) -> Result<Option<Installed>, BootError> {
        let dir = self.layer_dir(layer);
        if !dir.is_dir() {
            return Ok(None);
        }
        let names = read_dir_names(&dir).map_err(io_at(&dir))?;
        let mut kernels: Vec<String> = names
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("vmlinuz-"))
            .filter(|k| names.iter().any(|(n, _)| *n == initrd_name(k)))
            .map(String::from)
            .collect();
        kernels.sort_by(|a, b| rpmvercmp(b, a));
        let cmdline = dir.join(CMDLINE_FILE);
        let options = match fs::read_to_string(&cmdline) {
            Ok(s) => Cmdline::parse(s.trim()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Cmdline::default(),
            Err(e) => return Err(io_at(&cmdline)(e)),
        };
        Ok(Some(Installed {
            layer: layer.to_string(),
            kernels,
            options,
        }))
    }

    /// Bytes of the files in a layer's directory (0 if it has none).
    pub fn bytes(&self, layer: &str) -> u64 {
        read_dir_names(&self.layer_dir(layer))
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Free bytes on the filesystem holding /boot.
    pub fn free_bytes(&self) -> Option<u64> {
        let parent = self.dir.parent()?;
        let st = rustix::fs::statvfs(parent).ok()?;
        Some(st.f_bavail * st.f_frsize)
    }

    /// Remove a layer's directory (its files stay where another layer
    /// links them). A missing directory is fine.
    pub fn remove(&self, layer: &str) -> Result<(), BootError> {
        let dir = self.layer_dir(layer);
        remove_dir_if_present(&dir).map_err(io_at(&dir))?;
        sync_dir(&self.dir)
            .or_else(ignore_missing)
            .map_err(io_at(&self.dir))
    }

    /// Remove a stray path (see [`Store::strays`]).
    pub fn remove_stray(&self, path: &Path) -> Result<(), BootError> {
        if path.is_dir() {
            remove_dir_if_present(path)
        } else {
            fs::remove_file(path).or_else(ignore_missing)
        }
        .map_err(io_at(path))
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn remove_dir_if_present(dir: &Path) -> io::Result<()> {
    fs::remove_dir_all(dir).or_else(ignore_missing)
}

fn copy_synced(src: &Path, dest: &Path) -> io::Result<()> {
    let mut out = fs::File::create(dest)?;
    io::copy(&mut fs::File::open(src)?, &mut out)?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, content) in files {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        t
    }

    /// Install what `find` sees in `t` as `layer`, without arguments.
    fn install_tree(store: &Store, layer: &str, t: &tempfile::TempDir) {
        store
            .install(layer, &find(t.path()).unwrap().0, &Cmdline::default())
            .unwrap();
    }

    #[test]
    fn finds_debian_and_fedora_kernels_newest_first() {
        let t = tree(&[
            ("boot/vmlinuz-6.1.0-9-amd64", "k9"),
            ("boot/initrd.img-6.1.0-9-amd64", "i9"),
            ("boot/vmlinuz-6.1.0-10-amd64", "k10"),
            ("boot/initrd.img-6.1.0-10-amd64", "i10"),
            ("usr/lib/modules/6.5.0-1.fc39.x86_64/vmlinuz", "kf"),
            ("boot/initramfs-6.5.0-1.fc39.x86_64.img", "if"),
            ("usr/lib/modules/5.0.0/vmlinuz", "k5"),
            ("usr/lib/modules/5.0.0/initramfs.img", "i5"),
            ("boot/vmlinuz-7.0-noinitrd", "k"),
        ]);
        let (found, skipped) = find(t.path()).unwrap();
        let kvers: Vec<_> = found.iter().map(|f| f.kver.as_str()).collect();
        assert_eq!(
            kvers,
            [
                "6.5.0-1.fc39.x86_64",
                "6.1.0-10-amd64",
                "6.1.0-9-amd64",
                "5.0.0"
            ]
        );
        assert_eq!(skipped, ["7.0-noinitrd"]);
        assert!(
            found[0]
                .initrd
                .ends_with("boot/initramfs-6.5.0-1.fc39.x86_64.img")
        );
        assert!(
            found[3]
                .initrd
                .ends_with("usr/lib/modules/5.0.0/initramfs.img")
        );
    }

    #[test]
    fn a_tree_without_kernels_has_none() {
        let t = tree(&[("etc/hostname", "x")]);
        assert_eq!(find(t.path()).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn identical_kernels_are_shared_and_survive_removal() {
        let boot = tempfile::tempdir().unwrap();
        let store = Store::new(boot.path());
        let t = tree(&[
            ("boot/vmlinuz-1", "kernel"),
            ("boot/initrd.img-1", "initrd"),
        ]);
        let (found, _) = find(t.path()).unwrap();
        let args = Cmdline::parse("root=/dev/vg/a quiet");
        store.install("N-1-0+1", &found, &args).unwrap();
        store.install("N-1-0+2", &found, &args).unwrap();
        let a = store.layer_dir("N-1-0+1").join("vmlinuz-1");
        let b = store.layer_dir("N-1-0+2").join("vmlinuz-1");
        assert_eq!(
            fs::metadata(&a).unwrap().ino(),
            fs::metadata(&b).unwrap().ino()
        );
        assert_eq!(fs::metadata(&a).unwrap().nlink(), 2);

        store.remove("N-1-0+1").unwrap();
        assert_eq!(fs::read_to_string(&b).unwrap(), "kernel");
        let got = store.installed("N-1-0+2").unwrap().unwrap();
        assert_eq!(got.kernels, ["1"]);
        assert_eq!(got.options, args);
        assert_eq!(store.layers().unwrap(), ["N-1-0+2"]);
        assert!(store.strays().unwrap().is_empty());
    }

    #[test]
    fn different_bytes_are_copied_not_linked() {
        let boot = tempfile::tempdir().unwrap();
        let store = Store::new(boot.path());
        let t1 = tree(&[("boot/vmlinuz-1", "kernel-a"), ("boot/initrd.img-1", "i")]);
        let t2 = tree(&[("boot/vmlinuz-1", "kernel-b"), ("boot/initrd.img-1", "i")]);
        install_tree(&store, "a", &t1);
        install_tree(&store, "b", &t2);
        let read = |l: &str| fs::read_to_string(store.layer_dir(l).join("vmlinuz-1")).unwrap();
        assert_eq!(
            (read("a"), read("b")),
            ("kernel-a".into(), "kernel-b".into())
        );
    }

    #[test]
    fn a_failed_install_leaves_nothing() {
        let boot = tempfile::tempdir().unwrap();
        let store = Store::new(boot.path());
        let missing = Found {
            kver: "1".into(),
            linux: boot.path().join("nope"),
            initrd: boot.path().join("nope2"),
        };
        assert!(store.install("a", &[missing], &Cmdline::default()).is_err());
        assert!(store.layers().unwrap().is_empty());
        assert!(store.strays().unwrap().is_empty());
    }

    #[test]
    fn reinstall_replaces_the_directory() {
        let boot = tempfile::tempdir().unwrap();
        let store = Store::new(boot.path());
        let t1 = tree(&[("boot/vmlinuz-1", "k1"), ("boot/initrd.img-1", "i1")]);
        let t2 = tree(&[("boot/vmlinuz-2", "k2"), ("boot/initrd.img-2", "i2")]);
        install_tree(&store, "a", &t1);
        install_tree(&store, "a", &t2);
        assert_eq!(store.installed("a").unwrap().unwrap().kernels, ["2"]);
        assert!(store.strays().unwrap().is_empty());
    }
}
