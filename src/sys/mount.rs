//! A mount that must be unmounted explicitly, so unmount errors are seen;
//! dropping it (on an error path) detaches lazily as a last resort.

use std::path::{Path, PathBuf};

use super::cmd::{Cmd, CmdError, Runner};

/// A fresh, empty directory to mount on, removed when dropped (after the
/// mount on it is gone: drop the `Mounted` first). Its name carries our
/// pid (`imgbase-xfs-1234-XXXXXX`), so a later run can tell a mount that a
/// killed run left from one a live run is using.
pub fn temp_mount_point(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir()
}

/// The pid a mount point made by [`temp_mount_point`] names, if it is one.
fn owner_pid(dir: &Path) -> Option<u32> {
    if dir.parent()? != std::env::temp_dir() {
        return None;
    }
    let name = dir.file_name()?.to_str()?;
    let rest = name.strip_prefix("imgbase-")?;
    // imgbase-<what>-<pid>-<random>
    let mut parts = rest.rsplitn(3, '-');
    let _random = parts.next()?;
    parts.next()?.parse().ok()
}

/// Mounts on imgbase's temporary mount points whose process is gone:
/// a killed run left them, and they keep its LV busy.
pub fn stale_mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    stale_in(&info, |pid| Path::new(&format!("/proc/{pid}")).exists())
}

fn stale_in(mountinfo: &str, alive: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| owner_pid(p).is_some_and(|pid| pid != std::process::id() && !alive(pid)))
        .collect();
    // Innermost first, so nested mounts come off in order.
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Mounted<'r> {
    runner: &'r dyn Runner,
    target: PathBuf,
    mounted: bool,
}

impl<'r> Mounted<'r> {
    pub fn new(
        runner: &'r dyn Runner,
        source: &str,
        target: &Path,
        options: &str,
    ) -> Result<Self, CmdError> {
        runner.run(&Cmd::new("mount").args([
            "-o",
            options,
            source,
            &target.display().to_string(),
        ]))?;
        Ok(Mounted {
            runner,
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.target
    }

    pub fn unmount(mut self) -> Result<(), CmdError> {
        self.mounted = false;
        self.runner
            .run(&Cmd::new("umount").arg(self.target.display().to_string()))
            .map(|_| ())
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.mounted {
            let _ = self
                .runner
                .output(&Cmd::new("umount").args(["-l", &self.target.display().to_string()]));
        }
    }
}

/// Unmount a mount a killed run left (lazily if it is busy) and remove its
/// empty mount point.
pub fn unmount_stale(runner: &dyn Runner, path: &Path) -> Result<(), CmdError> {
    let shown = path.display().to_string();
    if runner.run(&Cmd::new("umount").arg(&shown)).is_err() {
        runner.run(&Cmd::new("umount").args(["-l", &shown]))?;
    }
    // Only an empty directory goes; anything else is not ours to delete.
    let _ = std::fs::remove_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mounts_of_dead_imgbase_runs_are_stale() {
        let tmp = std::env::temp_dir();
        let t = tmp.display();
        let info = format!(
            "36 25 0:32 / / rw - ext4 /dev/vda rw\n\
             40 36 253:3 / {t}/imgbase-xfs-4242-abc123 rw - xfs /dev/mapper/vg-x rw\n\
             41 36 253:4 / {t}/imgbase-layer-77-Zz9 rw - ext4 /dev/mapper/vg-y rw\n\
             42 36 253:5 / {t}/imgbase-layer-4242-q\\040r rw - ext4 /dev/mapper/vg-z rw\n\
             43 36 253:6 / /mnt/imgbase-xfs-4242-abc rw - ext4 /dev/mapper/vg-w rw\n\
             44 36 253:7 / {t}/other-4242-abc rw - ext4 /dev/mapper/vg-v rw\n"
        );
        let stale = stale_in(&info, |pid| pid == 77);
        assert_eq!(
            stale,
            [
                tmp.join("imgbase-xfs-4242-abc123"),
                tmp.join("imgbase-layer-4242-q r"),
            ]
        );
    }

    #[test]
    fn temp_mount_points_name_their_process() {
        let d = temp_mount_point("imgbase-test-").unwrap();
        assert_eq!(owner_pid(d.path()), Some(std::process::id()));
    }
}
