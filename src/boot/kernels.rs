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

use std::os::unix::fs::PermissionsExt;

use super::cmdline::Cmdline;
use super::{BootError, io_at, sync_dir};
use crate::image::digest::sha256_file;
use crate::model::names::rpmvercmp;
use crate::sys::inroot::{Kind, Tree};

/// The store's directory under /boot.
pub const STORE: &str = "imgbase";
/// The layer's kernel arguments, inside its directory.
pub const CMDLINE_FILE: &str = "cmdline";
const TMP_PREFIX: &str = ".tmp-";
/// Under the store: one file a layer whose trial boot failed, holding when
/// and why (on /boot, which every layer shares; /var is each layer's own).
/// Never a layer's name: those hold a `+`.
pub const FAILED_DIR: &str = "failed";

/// A kernel found in a layer's tree: paths relative to the tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kver: String,
    pub linux: PathBuf,
    pub initrd: PathBuf,
}

/// Modes of the files written to /boot, whatever the umask: kernels are
/// readable by all (as distributions install them); an initramfs may hold
/// secrets (keys, crypttab) and is root's only.
const LINUX_MODE: u32 = 0o644;
const INITRD_MODE: u32 = 0o600;

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

/// The kernels of a layer's tree, newest first: `/boot/vmlinuz-KVER`
/// (Debian, older Fedora) and `/usr/lib/modules/KVER/vmlinuz` (Fedora's
/// kernel-install layout), each with its initramfs (`/boot/initrd.img-KVER`,
/// `/boot/initramfs-KVER.img` or `/usr/lib/modules/KVER/initramfs.img`).
/// A kernel without an initramfs cannot mount an LVM root and is skipped
/// (returned in the second list).
///
/// The tree is untrusted: everything is looked up inside it (see
/// [`Tree`]), a kernel or initramfs that is not a regular file inside the
/// tree is refused, and so is a kernel version that could not be written
/// into a boot entry as it is.
pub fn find(tree: &Tree) -> Result<(Vec<Found>, Vec<String>), BootError> {
    let mut kernels: Vec<(String, PathBuf)> = Vec::new();
    for name in tree.read_dir(Path::new("boot"))? {
        if let Some(kver) = name.strip_prefix("vmlinuz-") {
            let rel = Path::new("boot").join(&name);
            if is_kernel_file(tree, &rel)? {
                kernels.push((checked_kver(tree, kver)?, rel));
            }
        }
    }
    for kver in tree.read_dir(Path::new("usr/lib/modules"))? {
        let rel = Path::new("usr/lib/modules").join(&kver).join("vmlinuz");
        if !kernels.iter().any(|(k, _)| *k == kver) && is_kernel_file(tree, &rel)? {
            kernels.push((checked_kver(tree, &kver)?, rel));
        }
    }
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (kver, linux) in kernels {
        let candidates = [
            Path::new("boot").join(initrd_name(&kver)),
            Path::new("boot").join(format!("initramfs-{kver}.img")),
            Path::new("usr/lib/modules")
                .join(&kver)
                .join("initramfs.img"),
        ];
        let mut initrd = None;
        for c in candidates {
            if is_kernel_file(tree, &c)? {
                initrd = Some(c);
                break;
            }
        }
        match initrd {
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

/// Whether `rel` is there to be copied. Present but not a regular file
/// inside the tree (a link to the host's /etc/shadow, a FIFO, a
/// directory): refused, with what it is.
fn is_kernel_file(tree: &Tree, rel: &Path) -> Result<bool, BootError> {
    match tree.kind(rel) {
        None => Ok(false),
        Some(Kind::Dir) => Ok(false),
        Some(_) => {
            // Opening resolves links inside the tree and checks the type.
            tree.open_file(rel)
                .map_err(|e| match tree.link_target(rel) {
                    Some(t) => BootError::Unsafe(format!("{e} (it links to {})", t.display())),
                    None => BootError::Unsafe(e.to_string()),
                })?;
            Ok(true)
        }
    }
}

/// A kernel version as it will appear in file names and entries: no
/// whitespace or control characters (a newline would add lines to a BLS
/// entry), no '/'.
fn checked_kver(tree: &Tree, kver: &str) -> Result<String, BootError> {
    if kver.is_empty()
        || kver
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(BootError::Unsafe(format!(
            "the kernel version {kver:?} in {} holds whitespace or control characters, \
             which cannot go into a boot entry; rename the kernel in the layer",
            tree.root().display()
        )));
    }
    Ok(kver.to_string())
}

/// Names and paths in a directory of /boot, sorted; a missing directory
/// is empty.
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
        tree: &Tree,
        kernels: &[Found],
        options: &Cmdline,
    ) -> Result<(), BootError> {
        fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let tmp = self.dir.join(format!("{TMP_PREFIX}{layer}"));
        remove_dir_if_present(&tmp).map_err(io_at(&tmp))?;
        let result = self.fill(&tmp, tree, kernels, options);
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

    fn fill(
        &self,
        tmp: &Path,
        tree: &Tree,
        kernels: &[Found],
        options: &Cmdline,
    ) -> Result<(), BootError> {
        fs::create_dir(tmp).map_err(io_at(tmp))?;
        for k in kernels {
            for (src, name, mode) in [
                (&k.linux, linux_name(&k.kver), LINUX_MODE),
                (&k.initrd, initrd_name(&k.kver), INITRD_MODE),
            ] {
                let dest = tmp.join(&name);
                let mut file = tree.open_file(src)?;
                match self.shared_copy(&name, &mut file)? {
                    Some(same) => fs::hard_link(&same, &dest).map_err(io_at(&dest))?,
                    None => copy_synced(&mut file, &dest).map_err(io_at(&dest))?,
                }
                // Also mends a shared file stored with an older mode.
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                    .map_err(io_at(&dest))?;
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
    fn shared_copy(&self, name: &str, src: &mut fs::File) -> Result<Option<PathBuf>, BootError> {
        let len = src.metadata().map_err(io_at(&self.dir))?.len();
        let mut digest = None;
        for other in self.layers()? {
            let candidate = self.layer_dir(&other).join(name);
            match fs::metadata(&candidate) {
                Ok(m) if m.len() == len => {}
                _ => continue,
            }
            if digest.is_none() {
                digest = Some(sha256_reader(src).map_err(io_at(&candidate))?);
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
            .filter(|(n, p)| !n.starts_with('.') && n != FAILED_DIR && p.is_dir())
            .map(|(n, _)| n)
            .collect())
    }

    /// Leftovers of interrupted installs and anything not a directory.
    pub fn strays(&self) -> Result<Vec<PathBuf>, BootError> {
        Ok(read_dir_names(&self.dir)
            .map_err(io_at(&self.dir))?
            .into_iter()
            .filter(|(n, p)| n.starts_with('.') || (n != FAILED_DIR && !p.is_dir()))
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

    fn failure_path(&self, layer: &str) -> PathBuf {
        self.dir.join(FAILED_DIR).join(layer)
    }

    /// Record why `layer`'s trial boot failed (one line), or (None) forget it.
    pub fn set_failure(&self, layer: &str, line: Option<&str>) -> Result<(), BootError> {
        let path = self.failure_path(layer);
        match line {
            Some(l) => {
                super::refuse_control("failure reason", l)?;
                let dir = self.dir.join(FAILED_DIR);
                fs::create_dir_all(&dir).map_err(io_at(&dir))?;
                super::write_atomic(&path, format!("{l}\n").as_bytes()).map_err(io_at(&path))
            }
            None => fs::remove_file(&path)
                .or_else(ignore_missing)
                .map_err(io_at(&path)),
        }
    }

    /// Every recorded failure as (layer, line), sorted.
    pub fn failures(&self) -> Vec<(String, String)> {
        let dir = self.dir.join(FAILED_DIR);
        let mut out: Vec<(String, String)> = read_dir_names(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| !n.starts_with('.'))
            .filter_map(|(n, _)| self.failure(&n).map(|l| (n, l)))
            .collect();
        out.sort();
        out
    }

    /// The recorded line of a failed trial, if any.
    pub fn failure(&self, layer: &str) -> Option<String> {
        fs::read_to_string(self.failure_path(layer))
            .ok()
            .map(|s| s.trim().to_string())
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

/// Copy from the start of `src` into a new file, created private (its
/// mode is set after) and fsynced.
fn copy_synced(src: &mut fs::File, dest: &Path) -> io::Result<()> {
    use std::io::Seek;
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    src.rewind()?;
    io::copy(src, &mut out)?;
    out.sync_all()
}

/// sha256 of a whole open file, from its start.
fn sha256_reader(src: &mut fs::File) -> io::Result<String> {
    use std::io::Seek;
    src.rewind()?;
    let mut h = crate::image::digest::HashingReader::new(&mut *src);
    io::copy(&mut h, &mut io::sink())?;
    Ok(h.finish())
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

    fn open(t: &tempfile::TempDir) -> Tree {
        Tree::open(t.path()).unwrap()
    }

    /// Install what `find` sees in `t` as `layer`, without arguments.
    fn install_tree(store: &Store, layer: &str, t: &tempfile::TempDir) {
        let tree = open(t);
        store
            .install(layer, &tree, &find(&tree).unwrap().0, &Cmdline::default())
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
        let (found, skipped) = find(&open(&t)).unwrap();
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
        assert_eq!(find(&open(&t)).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn identical_kernels_are_shared_and_survive_removal() {
        let boot = tempfile::tempdir().unwrap();
        let store = Store::new(boot.path());
        let t = tree(&[
            ("boot/vmlinuz-1", "kernel"),
            ("boot/initrd.img-1", "initrd"),
        ]);
        let tree = open(&t);
        let (found, _) = find(&tree).unwrap();
        let args = Cmdline::parse("root=/dev/vg/a quiet");
        store.install("N-1-0+1", &tree, &found, &args).unwrap();
        store.install("N-1-0+2", &tree, &found, &args).unwrap();
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
            linux: "nope".into(),
            initrd: "nope2".into(),
        };
        let tree = Tree::open(boot.path()).unwrap();
        assert!(
            store
                .install("a", &tree, &[missing], &Cmdline::default())
                .is_err()
        );
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

    #[test]
    fn kernels_linking_out_of_the_layer_are_refused() {
        let host = tree(&[("etc/shadow", "root:secret")]);
        let secret = host.path().join("etc/shadow");
        for (linux, initrd) in [(true, false), (false, true)] {
            let t = tree(&[]);
            fs::create_dir_all(t.path().join("boot")).unwrap();
            fs::create_dir_all(t.path().join("etc")).unwrap();
            // The layer's own shadow: absolute links must not reach it either.
            fs::write(t.path().join("etc/shadow"), "layer").unwrap();
            let put = |name: &str, link: bool| {
                let p = t.path().join("boot").join(name);
                if link {
                    std::os::unix::fs::symlink(&secret, &p).unwrap();
                } else {
                    fs::write(&p, "bytes").unwrap();
                }
            };
            put("vmlinuz-1", linux);
            put("initrd.img-1", initrd);
            let e = find(&open(&t)).unwrap_err().to_string();
            assert!(e.contains("leads outside"), "{e}");
            assert!(e.contains(&secret.display().to_string()), "{e}");
        }
    }

    #[test]
    fn a_fifo_kernel_is_refused_not_read() {
        let t = tree(&[("boot/initrd.img-1", "i")]);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.path().join("boot/vmlinuz-1"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = find(&open(&t)).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
    }

    #[test]
    fn a_kernel_version_with_a_newline_is_refused() {
        let t = tree(&[
            ("boot/vmlinuz-1\ninitrd x", "k"),
            ("boot/initrd.img-1\ninitrd x", "i"),
        ]);
        let e = find(&open(&t)).unwrap_err().to_string();
        assert!(e.contains("control characters"), "{e}");
    }

    #[test]
    fn stored_kernels_get_fixed_modes_whatever_the_source() {
        let boot = tempfile::tempdir().unwrap();
        let store = Store::new(boot.path());
        let t = tree(&[("boot/vmlinuz-1", "k"), ("boot/initrd.img-1", "i")]);
        for f in ["boot/vmlinuz-1", "boot/initrd.img-1"] {
            fs::set_permissions(t.path().join(f), fs::Permissions::from_mode(0o777)).unwrap();
        }
        install_tree(&store, "a", &t);
        install_tree(&store, "b", &t);
        for layer in ["a", "b"] {
            let mode = |n: &str| {
                fs::metadata(store.layer_dir(layer).join(n))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777
            };
            assert_eq!(mode("vmlinuz-1"), 0o644);
            assert_eq!(mode("initrd.img-1"), 0o600);
        }
    }
}
