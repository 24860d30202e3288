//! Filesystems inside logical volumes: what a new snapshot needs before it
//! can be mounted beside its origin, and finding the device behind a path.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::cmd::{Cmd, CmdError, Runner};
use super::mount::{Mounted, temp_mount_point};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0}")]
    Command(#[from] CmdError),
    #[error("the filesystem on {0} still has its origin's UUID after renewing it")]
    UuidUnchanged(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Filesystem work on block devices; a fake records calls in unit tests.
pub trait Filesystems {
    /// Make a fresh thin snapshot's filesystem independent of its origin:
    /// replay the journal (the origin may have been mounted) and give it a
    /// new UUID, so both can be mounted and told apart. Returns the
    /// filesystem type, or None when the device holds no filesystem.
    fn renew_uuid(&self, device: &str) -> Result<Option<String>, FsError>;
    /// Take off a mount a killed run left (see `mount::stale_mounts`).
    fn unmount_stale(&self, path: &Path) -> Result<(), FsError>;
}

pub struct RealFilesystems<'r> {
    pub runner: &'r dyn Runner,
}

/// `e2fsck -f -y`, which tune2fs and resize2fs insist on first. It exits 1
/// when it fixed something (a replayed journal): fine.
pub fn fsck_ext(runner: &dyn Runner, device: &str) -> Result<(), CmdError> {
    let out = runner.output(&Cmd::new("e2fsck").args(["-f", "-y", device]))?;
    if out.code > 1 {
        return Err(CmdError::Failed {
            cmd: format!("e2fsck -f -y {device}"),
            code: out.code,
            stderr: super::cmd::tail(&format!("{}\n{}", out.stdout, out.stderr)),
        });
    }
    Ok(())
}

impl RealFilesystems<'_> {
    fn renew_ext(&self, device: &str) -> Result<(), FsError> {
        fsck_ext(self.runner, device)?;
        self.runner
            .run(&Cmd::new("tune2fs").args(["-U", "random", device]))?;
        Ok(())
    }

    fn renew_xfs(&self, device: &str) -> Result<(), FsError> {
        // xfs_admin refuses to touch a dirty log yet exits 0, so always
        // replay it first by mounting once (nouuid: the origin, with the
        // same UUID, may be mounted right now).
        let dir = temp_mount_point("imgbase-xfs-").map_err(|source| FsError::Io {
            path: "temporary mount point".into(),
            source,
        })?;
        Mounted::new(self.runner, device, dir.path(), "nouuid")?.unmount()?;
        self.runner
            .run(&Cmd::new("xfs_admin").args(["-U", "generate", device]))?;
        Ok(())
    }

    /// (TYPE, UUID) of what is on a device, in one probe.
    fn probe(&self, device: &str) -> Result<(Option<String>, Option<String>), FsError> {
        // -p probes the device itself, not the (possibly stale) cache.
        let out = self
            .runner
            .output(&Cmd::new("blkid").args(["-p", "-o", "export", device]))?;
        match out.code {
            0 => {
                let field = |key: &str| {
                    out.stdout
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .map(str::to_string)
                };
                Ok((field("TYPE="), field("UUID=")))
            }
            2 => Ok((None, None)), // nothing recognised on the device
            code => Err(CmdError::Failed {
                cmd: format!("blkid -p {device}"),
                code,
                stderr: super::cmd::tail(&out.stderr),
            }
            .into()),
        }
    }
}

impl Filesystems for RealFilesystems<'_> {
    fn unmount_stale(&self, path: &Path) -> Result<(), FsError> {
        Ok(super::mount::unmount_stale(self.runner, path)?)
    }

    fn renew_uuid(&self, device: &str) -> Result<Option<String>, FsError> {
        let (fs, before) = self.probe(device)?;
        match fs.as_deref() {
            Some("ext2" | "ext3" | "ext4") => self.renew_ext(device)?,
            Some("xfs") => self.renew_xfs(device)?,
            // Anything else is left as it is; it cannot be mounted twice
            // safely, but it is not ours to rewrite.
            Some(other) => {
                tracing::warn!(device, fs = other, "unknown filesystem, UUID kept");
                return Ok(fs);
            }
            None => return Ok(None),
        }
        // Tools have been seen to refuse and still exit 0: check.
        let (_, after) = self.probe(device)?;
        if after == before {
            return Err(FsError::UuidUnchanged(device.to_string()));
        }
        Ok(fs)
    }
}

/// A block device number, as the kernel reports it in `lvs` (kernel
/// major/minor) and in `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    fn from_raw(dev: u64) -> Self {
        DevNum {
            major: rustix::fs::major(dev),
            minor: rustix::fs::minor(dev),
        }
    }

    /// The device holding the filesystem that `path` is on.
    pub fn of_mount(path: &Path) -> Result<Self, FsError> {
        let meta = std::fs::metadata(path).map_err(|source| FsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::from_raw(meta.dev()))
    }

    /// The device a block special file (e.g. /dev/VG/LV) stands for.
    pub fn of_node(path: &Path) -> Result<Option<Self>, FsError> {
        let meta = std::fs::metadata(path).map_err(|source| FsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        use std::os::unix::fs::FileTypeExt;
        Ok(meta
            .file_type()
            .is_block_device()
            .then(|| Self::from_raw(meta.rdev())))
    }
}

/// Where a device is mounted, from /proc/self/mountinfo (first match).
pub fn mount_point_of(dev: DevNum) -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = format!("{}:{}", dev.major, dev.minor);
    info.lines().find_map(|l| {
        let mut f = l.split(' ');
        let (_, _, devno, _, target) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        (devno == want).then(|| std::path::PathBuf::from(unescape_mountinfo(target)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why grub's `save_env` cannot write a grubenv in `dir` at boot, if it
/// cannot: grub writes only a plain file's blocks on a plain disk, so not
/// on btrfs, nor on device-mapper (LVM) or md (RAID). A trial counts its
/// tries with `save_env`: there it would never run out.
pub fn grub_cannot_save_env(dir: &Path) -> Option<String> {
    const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
    if rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as u64 == BTRFS_SUPER_MAGIC) {
        return Some(format!("{} is on btrfs", dir.display()));
    }
    let dev = DevNum::of_mount(dir).ok()?;
    let sys = format!("/sys/dev/block/{}:{}", dev.major, dev.minor);
    for (sub, what) in [("dm", "LVM (device-mapper)"), ("md", "RAID (md)")] {
        if Path::new(&sys).join(sub).is_dir() {
            return Some(format!("{} is on {what}", dir.display()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn root_has_a_device_number() {
        let d = DevNum::of_mount(Path::new("/")).unwrap();
        assert!(d.major > 0 || d.minor > 0);
    }
}
