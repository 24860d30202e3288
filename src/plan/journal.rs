//! The journal: a plan written to disk (fsynced) before its first step,
//! and each step marked done before the next runs, so a run killed at any
//! point can be finished or undone by the next one (`imgbase recover`).
//!
//! One file per operation, `<dir>/<id>.json`, JSON lines: a header with
//! the whole plan, then one `{"done":N}` or `{"undone":N}` per step. Only
//! appends, so a crash can at worst tear the last line, which is ignored.
//! The file is removed when the operation has finished or been undone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Plan;

/// Version of the file format (`schema_version`, as `crate::model::schema`
/// describes); bumped on any change a reader must know.
pub const SCHEMA: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "journal {0} is unreadable ({1}): check the node with `imgbase check`, then move the \
         file away"
    )]
    Corrupt(PathBuf, String),
    #[error(
        "journal {path} was written by a newer imgbase (schema {schema}, this one reads {SCHEMA}): \
         finish it with that version"
    )]
    Newer { path: PathBuf, schema: u32 },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub schema_version: u32,
    pub id: String,
    /// The command line's verb, e.g. "layer --add".
    pub command: String,
    pub pid: u32,
    /// Seconds since the epoch.
    pub started: u64,
    pub plan: Plan,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mark {
    Done(usize),
    Undone(usize),
}

/// The journal directory (`/var/lib/imgbase/journal`).
#[derive(Debug, Clone)]
pub struct Journal {
    pub dir: PathBuf,
}

/// An operation as its journal file records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub path: PathBuf,
    pub header: Header,
    /// Steps marked done, all before the first not done.
    pub done: usize,
    /// Steps marked undone by an interrupted rollback.
    pub undone: Vec<usize>,
}

/// An open journal file that marks are appended to.
pub struct Entry {
    path: PathBuf,
    file: File,
}

impl Journal {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Journal { dir: dir.into() }
    }

    /// Write the plan (fsynced, file and directory) before anything runs.
    pub fn begin(&self, command: &str, plan: &Plan) -> Result<Entry, JournalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_at(&self.dir))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let pid = std::process::id();
        let id = format!("{}-{pid}", now.as_nanos());
        let header = Header {
            schema_version: SCHEMA,
            id: id.clone(),
            command: command.into(),
            pid,
            started: now.as_secs(),
            plan: plan.clone(),
        };
        let path = self.dir.join(format!("{id}.json"));
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let mut line = serde_json::to_vec(&header).expect("a plan always serializes");
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        f.write_all(&line).map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(&self.dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        Ok(Entry { path, file })
    }

    /// Operations not finished, oldest first; with `vg`, only that VG's.
    pub fn unfinished(&self, vg: Option<&str>) -> Result<Vec<Record>, JournalError> {
        let names = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&self.dir)(e)),
        };
        let mut paths: Vec<PathBuf> = names
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for p in paths {
            let r = Record::read(&p)?;
            if vg.is_none_or(|vg| r.header.plan.vg == vg) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

impl Record {
    pub fn read(path: &Path) -> Result<Record, JournalError> {
        let text = fs::read_to_string(path).map_err(io_at(path))?;
        let mut lines = text.split_inclusive('\n');
        let corrupt = |why: String| JournalError::Corrupt(path.to_path_buf(), why);
        let first = lines.next().ok_or_else(|| corrupt("empty".into()))?;
        // Read the version alone first: a newer header may not parse.
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let v: Version = serde_json::from_str(first).map_err(|e| corrupt(e.to_string()))?;
        if v.schema_version > SCHEMA {
            return Err(JournalError::Newer {
                path: path.to_path_buf(),
                schema: v.schema_version,
            });
        }
        let header: Header = serde_json::from_str(first).map_err(|e| corrupt(e.to_string()))?;
        let mut done = 0;
        let mut undone = Vec::new();
        for line in lines {
            // A line without its newline was torn by a crash: never acted on.
            if !line.ends_with('\n') {
                break;
            }
            match serde_json::from_str::<Mark>(line) {
                Ok(Mark::Done(i)) => done = done.max(i + 1),
                Ok(Mark::Undone(i)) => undone.push(i),
                Err(e) => return Err(corrupt(e.to_string())),
            }
        }
        Ok(Record {
            path: path.to_path_buf(),
            header,
            done,
            undone,
        })
    }

    /// Whether the imgbase that wrote it still runs (then it is in
    /// progress, not interrupted). A pid reused by another program after
    /// a reboot is not taken for it.
    pub fn is_running(&self) -> bool {
        self.header.pid != std::process::id()
            && fs::read_to_string(format!("/proc/{}/comm", self.header.pid))
                .is_ok_and(|c| c.trim() == "imgbase")
    }

    /// Go on appending marks to this operation's file.
    pub fn reopen(&self) -> Result<Entry, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_at(&self.path))?;
        Ok(Entry {
            path: self.path.clone(),
            file,
        })
    }
}

impl Entry {
    fn mark(&mut self, m: Mark) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(&m).expect("a mark always serializes");
        line.push(b'\n');
        self.file.write_all(&line).map_err(io_at(&self.path))?;
        self.file.sync_data().map_err(io_at(&self.path))
    }

    pub fn done(&mut self, step: usize) -> Result<(), JournalError> {
        self.mark(Mark::Done(step))
    }

    pub fn undone(&mut self, step: usize) -> Result<(), JournalError> {
        self.mark(Mark::Undone(step))
    }

    /// The operation finished or was undone: nothing left to recover.
    pub fn close(self) -> Result<(), JournalError> {
        fs::remove_file(&self.path).map_err(io_at(&self.path))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

#[cfg(test)]
mod tests {
    use super::super::{LvmStep, Step};
    use super::*;

    fn plan() -> Plan {
        let mut p = Plan::new("vg", "add layer N-1-0+2 on N-1-0");
        p.push(Step::Lvm(LvmStep::Snapshot {
            origin: "N-1-0".into(),
            lv: "imgbase-tmp-N-1-0+2".into(),
            tags: vec!["imgbase:incomplete".into()],
        }));
        p.push(Step::Lvm(LvmStep::Rename {
            from: "imgbase-tmp-N-1-0+2".into(),
            to: "N-1-0+2".into(),
        }));
        p.created.push("N-1-0+2".into());
        p
    }

    #[test]
    fn a_plan_round_trips_with_its_marks() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::new(t.path().join("journal"));
        let mut e = j.begin("layer --add", &plan()).unwrap();
        e.done(0).unwrap();
        let all = j.unfinished(None).unwrap();
        assert_eq!(all.len(), 1);
        let r = &all[0];
        assert_eq!(r.header.plan, plan());
        assert_eq!((r.done, r.header.command.as_str()), (1, "layer --add"));
        assert_eq!(r.header.schema_version, SCHEMA);
        e.undone(0).unwrap();
        assert_eq!(j.unfinished(Some("vg")).unwrap()[0].undone, [0]);
        assert!(j.unfinished(Some("other")).unwrap().is_empty());
        e.close().unwrap();
        assert!(j.unfinished(None).unwrap().is_empty());
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_garbage_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::new(t.path());
        let e = j.begin("layer --add", &plan()).unwrap();
        let path = e.path().to_path_buf();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"done\":0}\n{\"do").unwrap();
        assert_eq!(Record::read(&path).unwrap().done, 1);
        f.write_all(b"ne\":1}\nnonsense\n").unwrap();
        let err = Record::read(&path).unwrap_err().to_string();
        assert!(err.contains("unreadable"), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("1-1.json");
        fs::write(&p, "{\"schema_version\":99,\"future\":true}\n").unwrap();
        let err = Record::read(&p).unwrap_err().to_string();
        assert!(err.contains("newer imgbase (schema 99"), "{err}");
    }

    /// The file format is a contract with older and newer versions: this
    /// fixture must keep parsing.
    #[test]
    fn the_v1_fixture_parses() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("1-1.json");
        fs::write(&p, include_str!("../../tests/fixtures/journal-v1.json")).unwrap();
        let r = Record::read(&p).unwrap();
        assert_eq!(r.header.plan.steps.len(), 4);
        assert_eq!((r.done, r.undone.as_slice()), (2, &[1usize][..]));
        assert_eq!(
            r.header.plan.steps[3].to_string(),
            "write the boot entries of N-1-0+1"
        );
    }
}
