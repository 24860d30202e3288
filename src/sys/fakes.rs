//! In-memory stand-ins for the `sys` traits, for plan tests: an LVM volume
//! group, filesystems and an image reader that record every call.
//!
//! Compiled for unit tests and with the `test-fakes` feature (which the
//! crate's own dev-dependency on itself turns on for integration tests);
//! never part of a release build.

use std::cell::RefCell;
use std::path::Path;

use super::fs::{DevNum, Filesystems, FsError};
use super::images::{FillMode, ImageInfo, Images, ImagesError};
use super::lvm::{LvRecord, Lvm, LvmError, Scope};
use super::progress::Progress;
use crate::image::detect::Format;
use crate::image::sparse::WriteStats;

/// An in-memory volume group for unit tests: it keeps LVs, tags and flags
/// like LVM does, logs every call, and can be told to fail a given call.
#[derive(Debug, Default)]
pub struct FakeLvm {
    pub lvs: RefCell<Vec<LvRecord>>,
    pub vg_tags: RefCell<Vec<String>>,
    pub calls: RefCell<Vec<String>>,
    /// Fail the first call whose log line starts with this.
    pub fail_on: RefCell<Option<String>>,
    next_minor: RefCell<u32>,
}

impl FakeLvm {
    /// A VG with a thin pool of `pool_size` bytes, tagged as imgbased does.
    pub fn with_pool(vg: &str, pool: &str, pool_size: u64) -> Self {
        let fake = FakeLvm::default();
        fake.vg_tags.borrow_mut().push("imgbased:vg".into());
        fake.lvs.borrow_mut().push(LvRecord {
            name: pool.into(),
            vg: vg.into(),
            vg_tags: vec![],
            vg_free: 1 << 30,
            attr: "twi-aotz--".into(),
            size: pool_size,
            segtype: "thin-pool".into(),
            pool: None,
            origin: None,
            tags: vec!["imgbased:pool".into()],
            data_percent: Some(1.0),
            metadata_percent: Some(1.0),
            metadata_size: Some(4 << 20),
            kernel_major: Some(253),
            kernel_minor: Some(0),
            path: String::new(),
        });
        fake
    }

    /// A thin LV that exists before the test (e.g. an installed root).
    pub fn add_thin(&self, name: &str, size: u64, tags: &[&str]) {
        let vg = self.vg_name();
        let pool = self.pool_name();
        self.lvs.borrow_mut().push(self.new_record(
            &vg,
            name,
            size,
            Some(pool),
            None,
            tags.iter().map(|t| t.to_string()).collect(),
        ));
    }

    pub fn vg_name(&self) -> String {
        self.lvs.borrow()[0].vg.clone()
    }

    fn pool_name(&self) -> String {
        self.lvs
            .borrow()
            .iter()
            .find(|l| l.is_thin_pool())
            .map(|l| l.name.clone())
            .unwrap_or_default()
    }

    fn new_record(
        &self,
        vg: &str,
        name: &str,
        size: u64,
        pool: Option<String>,
        origin: Option<String>,
        tags: Vec<String>,
    ) -> LvRecord {
        let mut minor = self.next_minor.borrow_mut();
        *minor += 1;
        LvRecord {
            name: name.into(),
            vg: vg.into(),
            vg_tags: vec![],
            vg_free: 0,
            attr: "Vwi-a-tz--".into(),
            size,
            segtype: "thin".into(),
            pool,
            origin,
            tags,
            data_percent: Some(0.0),
            metadata_percent: None,
            metadata_size: None,
            kernel_major: Some(253),
            kernel_minor: Some(*minor),
            path: format!("/dev/{vg}/{name}"),
        }
    }

    /// The device number of an LV, as the kernel would report it.
    pub fn dev(&self, lv: &str) -> DevNum {
        let r = self
            .get(lv)
            .unwrap_or_else(|| panic!("no LV {lv} in the fake"));
        DevNum {
            major: r.kernel_major.unwrap(),
            minor: r.kernel_minor.unwrap(),
        }
    }

    /// Mark an LV open (mounted) or closed, as `lv_attr` shows it.
    pub fn set_open(&self, lv: &str, open: bool) {
        self.with_lv(lv, |r| set_attr(r, 5, if open { 'o' } else { '-' }))
            .unwrap();
    }

    pub fn get(&self, lv: &str) -> Option<LvRecord> {
        self.lvs.borrow().iter().find(|l| l.name == lv).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.lvs.borrow().iter().map(|l| l.name.clone()).collect()
    }

    fn call(&self, line: String) -> Result<(), LvmError> {
        let fail = self
            .fail_on
            .borrow()
            .as_ref()
            .is_some_and(|f| line.starts_with(f.as_str()));
        self.calls.borrow_mut().push(line.clone());
        if fail {
            *self.fail_on.borrow_mut() = None;
            return Err(LvmError::Failed {
                cmd: line,
                message: "injected failure".into(),
            });
        }
        Ok(())
    }

    fn with_lv<T>(&self, lv: &str, f: impl FnOnce(&mut LvRecord) -> T) -> Result<T, LvmError> {
        let mut lvs = self.lvs.borrow_mut();
        let rec = lvs
            .iter_mut()
            .find(|l| l.name == lv)
            .ok_or_else(|| LvmError::Failed {
                cmd: format!("lv {lv}"),
                message: format!("Failed to find logical volume \"{lv}\""),
            })?;
        Ok(f(rec))
    }

    fn exists(&self, lv: &str) -> Result<(), LvmError> {
        if self.get(lv).is_some() {
            return Err(LvmError::Failed {
                cmd: format!("create {lv}"),
                message: format!("Logical Volume \"{lv}\" already exists in volume group"),
            });
        }
        Ok(())
    }
}

fn set_attr(rec: &mut LvRecord, i: usize, c: char) {
    let mut chars: Vec<char> = rec.attr.chars().collect();
    chars[i] = c;
    rec.attr = chars.into_iter().collect();
}

impl Lvm for FakeLvm {
    fn report(&self, scope: &Scope) -> Result<Vec<LvRecord>, LvmError> {
        self.call(format!("lvs {scope:?}"))?;
        let vg = self.vg_name();
        match scope {
            Scope::Vg(name) if *name != vg => return Err(LvmError::VgNotFound(name.clone())),
            Scope::TaggedVgs if !self.vg_tags.borrow().iter().any(|t| t == "imgbased:vg") => {
                return Ok(vec![]);
            }
            _ => {}
        }
        let tags = self.vg_tags.borrow().clone();
        Ok(self
            .lvs
            .borrow()
            .iter()
            .cloned()
            .map(|mut l| {
                l.vg_tags = tags.clone();
                l
            })
            .collect())
    }

    fn create_thin(
        &self,
        vg: &str,
        pool: &str,
        lv: &str,
        size: u64,
        tags: &[String],
    ) -> Result<(), LvmError> {
        self.call(format!("lvcreate --thin {vg}/{pool} {lv} {size}"))?;
        self.exists(lv)?;
        let rec = self.new_record(vg, lv, size, Some(pool.into()), None, tags.to_vec());
        self.lvs.borrow_mut().push(rec);
        Ok(())
    }

    fn snapshot(&self, vg: &str, origin: &str, lv: &str, tags: &[String]) -> Result<(), LvmError> {
        self.call(format!("lvcreate -s {vg}/{origin} {lv}"))?;
        self.exists(lv)?;
        let o = self.get(origin).ok_or_else(|| LvmError::Failed {
            cmd: "lvcreate -s".into(),
            message: format!("Failed to find logical volume \"{origin}\""),
        })?;
        let rec = self.new_record(vg, lv, o.size, o.pool, Some(origin.into()), tags.to_vec());
        self.lvs.borrow_mut().push(rec);
        Ok(())
    }

    fn rename(&self, vg: &str, from: &str, to: &str) -> Result<(), LvmError> {
        self.call(format!("lvrename {vg} {from} {to}"))?;
        self.exists(to)?;
        self.with_lv(from, |r| r.name = to.into())?;
        for l in self.lvs.borrow_mut().iter_mut() {
            if l.origin.as_deref() == Some(from) {
                l.origin = Some(to.into());
            }
        }
        Ok(())
    }

    fn change_tags(
        &self,
        vg: &str,
        lv: &str,
        add: &[String],
        del: &[String],
    ) -> Result<(), LvmError> {
        self.call(format!("lvchange tags {vg}/{lv} +{add:?} -{del:?}"))?;
        self.with_lv(lv, |r| {
            r.tags.retain(|t| !del.contains(t));
            for t in add {
                if !r.tags.contains(t) {
                    r.tags.push(t.clone());
                }
            }
        })
    }

    fn change_vg_tags(&self, vg: &str, add: &[String], del: &[String]) -> Result<(), LvmError> {
        self.call(format!("vgchange tags {vg} +{add:?} -{del:?}"))?;
        let mut tags = self.vg_tags.borrow_mut();
        tags.retain(|t| !del.contains(t));
        tags.extend(add.iter().cloned());
        Ok(())
    }

    fn set_read_only(&self, vg: &str, lv: &str, read_only: bool) -> Result<(), LvmError> {
        self.call(format!("lvchange -p {read_only} {vg}/{lv}"))?;
        self.with_lv(lv, |r| set_attr(r, 1, if read_only { 'r' } else { 'w' }))
    }

    fn set_activation_skip(&self, vg: &str, lv: &str, skip: bool) -> Result<(), LvmError> {
        self.call(format!("lvchange -k {skip} {vg}/{lv}"))?;
        self.with_lv(lv, |r| set_attr(r, 9, if skip { 'k' } else { '-' }))
    }

    fn set_active(&self, vg: &str, lv: &str, active: bool) -> Result<(), LvmError> {
        self.call(format!("lvchange -a {active} {vg}/{lv}"))?;
        self.with_lv(lv, |r| set_attr(r, 4, if active { 'a' } else { '-' }))
    }

    fn remove(&self, vg: &str, lv: &str) -> Result<(), LvmError> {
        self.call(format!("lvremove {vg}/{lv}"))?;
        self.with_lv(lv, |_| ())?;
        self.lvs.borrow_mut().retain(|l| l.name != lv);
        Ok(())
    }

    fn extend(&self, vg: &str, lv: &str, size: u64) -> Result<(), LvmError> {
        self.call(format!("lvextend {vg}/{lv} {size}"))?;
        self.with_lv(lv, |r| r.size = r.size.max(size))
    }
}

/// Records calls; reports ext4 for every device.
#[derive(Debug, Default)]
pub struct FakeFilesystems {
    pub calls: RefCell<Vec<String>>,
}

impl Filesystems for FakeFilesystems {
    fn renew_uuid(&self, device: &str) -> Result<Option<String>, FsError> {
        self.calls.borrow_mut().push(format!("renew {device}"));
        Ok(Some("ext4".into()))
    }
    fn unmount_stale(&self, path: &Path) -> Result<(), FsError> {
        self.calls
            .borrow_mut()
            .push(format!("unmount {}", path.display()));
        Ok(())
    }
}

/// Records calls and answers with a canned image, for plan tests.
#[derive(Debug, Default)]
pub struct FakeImages {
    pub info: Option<ImageInfo>,
    pub calls: RefCell<Vec<String>>,
}

impl Images for FakeImages {
    fn inspect(&self, path: &Path, _: bool, _: &Progress) -> Result<ImageInfo, ImagesError> {
        self.calls
            .borrow_mut()
            .push(format!("inspect {}", path.display()));
        self.info
            .clone()
            .ok_or_else(|| ImagesError::Invalid("no image".into()))
    }

    fn fill(
        &self,
        device: &str,
        image: &Path,
        _: &Format,
        size: u64,
        mode: FillMode,
        _: &Progress,
    ) -> Result<WriteStats, ImagesError> {
        self.calls.borrow_mut().push(format!(
            "fill {device} from {} ({size}, {mode:?})",
            image.display()
        ));
        Ok(WriteStats::default())
    }

    fn grow(&self, device: &str, fs: &str) -> Result<(), ImagesError> {
        self.calls
            .borrow_mut()
            .push(format!("grow {fs} on {device}"));
        Ok(())
    }
}

/// Layer trees as plain directories, `DIR/<lv>` (read-only or not alike),
/// for steps that work inside layers; one-shot boot ids are ignored.
pub struct DirTrees(pub std::path::PathBuf);

impl DirTrees {
    pub fn new(dir: std::path::PathBuf) -> Self {
        DirTrees(dir)
    }
}

impl super::boot::LayerTrees for DirTrees {
    fn with_tree(
        &self,
        _vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), crate::boot::BootError>,
    ) -> Result<(), crate::boot::BootError> {
        f(&self.0.join(lv))
    }

    fn with_writable_tree(
        &self,
        vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), crate::boot::BootError>,
    ) -> Result<(), crate::boot::BootError> {
        self.with_tree(vg, lv, f)
    }

    fn set_oneshot(&self, _: &Path, _: Option<&str>) -> Result<(), crate::boot::BootError> {
        Ok(())
    }
}

/// Answers commands from a table (by the command line as
/// [`Cmd::display`](super::cmd::Cmd::display) prints it) and records each
/// one; an unknown command exits 1 with nothing printed.
#[derive(Debug, Default)]
pub struct FakeRunner {
    pub answers: RefCell<Vec<(String, super::cmd::Output)>>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeRunner {
    /// Answer `line` with this exit code and stdout.
    pub fn answer(&self, line: &str, code: i32, stdout: &str) -> &Self {
        self.answers.borrow_mut().push((
            line.to_string(),
            super::cmd::Output {
                code,
                stdout: stdout.to_string(),
                stderr: String::new(),
            },
        ));
        self
    }
}

impl super::cmd::Runner for FakeRunner {
    fn output(&self, cmd: &super::cmd::Cmd) -> Result<super::cmd::Output, super::cmd::CmdError> {
        let line = cmd.display();
        self.calls.borrow_mut().push(line.clone());
        Ok(self
            .answers
            .borrow()
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, o)| o.clone())
            .unwrap_or(super::cmd::Output {
                code: 1,
                ..Default::default()
            }))
    }
}
