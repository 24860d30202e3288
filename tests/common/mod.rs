//! Shared by the guest-tier tests: real volume groups on loop devices,
//! the imgbase binary, and the full `lvs` report to compare states.
//! These run only inside the QEMU guest (tests/vm), where the kernel has
//! device-mapper; anywhere else they fail loudly instead of skipping.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod images;

pub const IMGBASE: &str = env!("CARGO_BIN_EXE_imgbase");

/// Run a tool; panic with its stderr if it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn lvm(args: &[&str]) -> String {
    sh("lvm", args)
}

/// Fail loudly when run outside the guest tier.
pub fn require_guest() {
    assert!(
        std::env::var_os("IMGBASE_GUEST").is_some(),
        "this is a guest-tier test: it needs real device-mapper and runs in QEMU via `tests/run`"
    );
    assert!(
        Path::new("/dev/mapper/control").exists(),
        "no device-mapper in this guest"
    );
}

/// A volume group on a sparse loop file with a thin pool, tagged nothing;
/// removed with everything in it when dropped.
pub struct TestVg {
    pub name: String,
    file: PathBuf,
    loopdev: String,
    pub lock: PathBuf,
}

impl TestVg {
    /// `pool_mib` of thin pool in a VG of `disk_mib`.
    pub fn new(name: &str, disk_mib: u64, pool_mib: u64) -> TestVg {
        require_guest();
        let dir = std::env::var("IMGBASE_TEST_DIR").unwrap_or_else(|_| "/tmp".into());
        let file = PathBuf::from(dir).join(format!("{name}.img"));
        let _ = std::fs::remove_file(&file);
        sh(
            "truncate",
            &["-s", &format!("{disk_mib}M"), file.to_str().unwrap()],
        );
        let loopdev = sh("losetup", &["-f", "--show", file.to_str().unwrap()])
            .trim()
            .to_string();
        lvm(&["pvcreate", "-qq", &loopdev]);
        lvm(&["vgcreate", "-qq", name, &loopdev]);
        lvm(&[
            "lvcreate",
            "-qq",
            "--type",
            "thin-pool",
            "-L",
            &format!("{pool_mib}M"),
            "--poolmetadatasize",
            "8M",
            "-n",
            "pool",
            name,
        ]);
        TestVg {
            name: name.into(),
            file,
            loopdev,
            lock: PathBuf::from(format!("/run/imgbase-test-{name}.lock")),
        }
    }

    /// A thin LV of `mib` MiB in the pool, with these tags.
    pub fn thin(&self, lv: &str, mib: u64, tags: &[&str]) {
        let size = format!("{mib}M");
        let pool = format!("{}/pool", self.name);
        let mut args = vec!["lvcreate", "-qq", "--type", "thin", "-V", &size, "-n", lv];
        for t in tags {
            args.extend(["--addtag", t]);
        }
        args.push(&pool);
        lvm(&args);
    }

    /// A thin LV with a filesystem holding a marker file.
    pub fn thin_with_fs(&self, lv: &str, mib: u64, fs: &str) {
        self.thin(lv, mib, &[]);
        let dev = self.dev(lv);
        match fs {
            "xfs" => sh("mkfs.xfs", &["-q", &dev]),
            _ => sh("mkfs.ext4", &["-q", "-F", &dev]),
        };
        let mnt = tempfile::tempdir().unwrap();
        sh("mount", &[&dev, mnt.path().to_str().unwrap()]);
        std::fs::write(mnt.path().join("marker"), lv).unwrap();
        sh("umount", &[mnt.path().to_str().unwrap()]);
    }

    /// The journal of this VG's operations lives under here.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/imgbase-test-{}-state", self.name))
    }

    pub fn dev(&self, lv: &str) -> String {
        format!("/dev/{}/{lv}", self.name)
    }

    /// imgbase, with this VG's lock file, and `--vg` given.
    pub fn imgbase(&self, args: &[&str]) -> Output {
        let mut full = vec!["--vg", &self.name];
        full.extend_from_slice(args);
        self.imgbase_raw(&full)
    }

    /// imgbase exactly as given (no `--vg`).
    pub fn imgbase_raw(&self, args: &[&str]) -> Output {
        Command::new(IMGBASE)
            .args(args)
            .env("IMGBASE_LOCK_FILE", &self.lock)
            .env("IMGBASE_LOCK_WAIT", "1")
            .env("IMGBASE_STATE_DIR", self.state_dir())
            // No boot entries unless a test asks (--loader): the guest's /boot is the host's.
            .env("IMGBASE_LOADER", "none")
            .output()
            .unwrap()
    }

    /// imgbase that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.imgbase(args);
        assert!(
            out.status.success(),
            "imgbase {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// imgbase that must fail with one line naming `want`, changing nothing.
    pub fn refused(&self, args: &[&str], want: &str) {
        let before = self.state();
        let out = self.imgbase(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "imgbase {args:?}: {err}");
        assert!(
            err.contains(want),
            "imgbase {args:?}: {err:?} lacks {want:?}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert_eq!(self.state(), before, "imgbase {args:?} changed the VG");
    }

    /// Everything LVM knows of the VG that imgbase could change.
    pub fn state(&self) -> String {
        self.report("lv_name,lv_attr,lv_size,origin,lv_tags,vg_tags,segtype,lv_uuid")
    }

    /// `lvs -a` of the VG as JSON, with these fields, sizes in bytes.
    pub fn report(&self, fields: &str) -> String {
        lvm(&[
            "lvs",
            "-a",
            "--reportformat",
            "json",
            "--units",
            "b",
            "-o",
            fields,
            &self.name,
        ])
    }

    pub fn attr(&self, lv: &str) -> String {
        lvm(&[
            "lvs",
            "--noheadings",
            "-o",
            "lv_attr",
            &format!("{}/{lv}", self.name),
        ])
        .trim()
        .to_string()
    }

    pub fn tags(&self, lv: &str) -> Vec<String> {
        lvm(&[
            "lvs",
            "--noheadings",
            "-o",
            "lv_tags",
            &format!("{}/{lv}", self.name),
        ])
        .trim()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = lvm(&["lvs", "--noheadings", "-o", "lv_name", &self.name])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    /// Adopt a fresh ext4 root as imgbase users do.
    pub fn init(&self, nvr: &str) {
        self.thin_with_fs("root", 64, "ext4");
        let from = format!("{}/root", self.name);
        self.ok(&["layout", "--init", "--from", &from, "--nvr", nvr]);
    }
}

impl Drop for TestVg {
    fn drop(&mut self) {
        // Every step runs even when one fails: a failed test must not leave
        // its VG to the next one. What failed then fails the test.
        let mut c = Cleanup::new(format!("test VG {}", self.name));
        // Mounts a test left under /tmp (tempdirs) first, lazily: they may
        // hold the VG's LVs open.
        c.run(
            "sh",
            &[
                "-c",
                "grep \" /tmp/.tmp\" /proc/mounts | cut -d' ' -f2 | xargs -r umount -l",
            ],
        );
        c.run("lvm", &["vgremove", "-qq", "-ff", &self.name]);
        c.run("lvm", &["pvremove", "-qq", &self.loopdev]);
        c.run("losetup", &["-d", &self.loopdev]);
        c.check(
            &format!("remove {}", self.file.display()),
            std::fs::remove_file(&self.file),
        );
        // The journal dir exists only if a command changed something.
        let _ = std::fs::remove_dir_all(self.state_dir());
        c.finish();
    }
}

/// The cleanup of a guard's `drop`: steps are recorded as they fail, and
/// [`Cleanup::finish`] fails the test with all of them. If the thread is
/// already panicking (the test itself failed), they are only printed to
/// stderr: a panic during that unwinding would abort the test binary and
/// hide the first failure.
pub struct Cleanup {
    what: String,
    failures: Vec<String>,
}

impl Cleanup {
    pub fn new(what: String) -> Cleanup {
        Cleanup {
            what,
            failures: Vec::new(),
        }
    }

    /// Run a tool; failing to start it or a non-zero exit is a failure.
    pub fn run(&mut self, program: &str, args: &[&str]) {
        let cmd = format!("{program} {}", args.join(" "));
        match Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => self.failures.push(format!(
                "`{cmd}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim_end()
            )),
            Err(e) => self.failures.push(format!("cannot run `{cmd}`: {e}")),
        }
    }

    pub fn check<E: std::fmt::Display>(&mut self, step: &str, result: Result<(), E>) {
        if let Err(e) = result {
            self.failures.push(format!("{step}: {e}"));
        }
    }

    pub fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        let msg = format!(
            "cleanup of {} failed:\n  {}",
            self.what,
            self.failures.join("\n  ")
        );
        if std::thread::panicking() {
            eprintln!("{msg}\n(not panicking again: the test has already failed)");
        } else {
            panic!("{msg}");
        }
    }
}

/// Every file under `dir` with its bytes (to compare before/after).
pub fn files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                out.insert(p, b"<dir>".to_vec());
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Filesystem UUID of a device.
pub fn fs_uuid(dev: &str) -> String {
    sh("blkid", &["-p", "-o", "value", "-s", "UUID", dev])
        .trim()
        .to_string()
}

/// A mount on a fresh temporary directory, unmounted when dropped (a
/// failed unmount fails the test, see [`Cleanup`]).
pub struct Mount {
    pub dir: tempfile::TempDir,
}

impl Mount {
    pub fn new(dev: &str, opts: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        sh("mount", &["-o", opts, dev, dir.path().to_str().unwrap()]);
        Mount { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let dir = self.dir.path().to_str().unwrap();
        let mut c = Cleanup::new(format!("mount on {dir}"));
        c.run("umount", &[dir]);
        c.finish();
    }
}
