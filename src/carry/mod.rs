//! Carrying the admin's configuration over to a new layer: a three-way
//! merge per path of `/etc` (ancestor = the booted layer's base, admin =
//! the booted layer, vendor = the new base), accounts files merged by
//! entry name, and new `/var` files added where missing.
//!
//! Everything here is pure: a tree is described by a [`Manifest`] (read by
//! `sys::tree`), the merge returns [`Decision`]s and the [`Op`]s that carry
//! them out on the new layer (applied by `sys::tree::apply`). The new
//! layer starts as a snapshot of the new base, so the vendor's side is
//! already in place: only the admin's changes become operations.

pub mod accounts;
pub mod merge;
pub mod rules;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a path is, never following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// Everything the merge compares about one path: never its mtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits including set-id and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Extended attributes (SELinux label, ACLs, capabilities), by name;
    /// values hex-encoded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// sha256 of a file's bytes, a symlink's target, or a device's
    /// `major:minor`; empty for directories, FIFOs and sockets.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
}

/// A tree under one directory (`etc`), by path relative to the tree root
/// of the layer (`etc/ssh/sshd_config`), parents before children.
pub type Manifest = BTreeMap<PathBuf, Meta>;

/// What happened to one path, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The vendor changed or added it and the admin had not touched it:
    /// the vendor's version is in the new layer.
    Taken,
    /// The vendor removed it and the admin had not touched it: gone.
    Deleted,
    /// Only the admin changed or added it: the admin's version.
    Kept,
    /// The admin removed it and the vendor had not changed it: removed.
    RemovedByAdmin,
    /// Both changed it (differently): the admin's version is kept, the
    /// vendor's saved beside it as `<path>.imgnew`.
    Conflict,
    /// Both changed it and one made it another kind (file, directory,
    /// symlink): the admin's is kept, the vendor's set aside as
    /// `<path>.imgnew` (a directory with all it holds).
    TypeConflict,
    /// On the keep-list (`imgbase.conf` `[update] keep`): the admin's
    /// version whatever the vendor did.
    Pinned,
    /// An accounts file, merged by entry name (see [`accounts`]).
    Merged,
}

/// One path's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Relative to the layer's root: `etc/hosts`.
    pub path: PathBuf,
    pub outcome: Outcome,
    /// Why, in a few words, when the outcome alone does not say it
    /// (e.g. "the vendor removed it; the admin's copy kept").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One change to the new layer. Paths are relative to the layer root;
/// `sys::tree::apply` runs creations in path order (parents first), then
/// removals in reverse order (children first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Rename the vendor's object at `path` to `<path>.imgnew` (replacing
    /// an older `.imgnew`).
    SetAside { path: PathBuf },
    /// Put the admin's object at `path` (a file's bytes, a link's target,
    /// a special file; a directory is created, or its metadata applied if
    /// one is there) with the admin's metadata, replacing a non-directory.
    CopyFromAdmin { path: PathBuf },
    /// Write `content` at `path` with `meta` (a merged accounts file).
    Write {
        path: PathBuf,
        content: String,
        meta: Meta,
    },
    /// Remove `path` (a directory only if empty: one the vendor added
    /// files to stays, and `apply` says so).
    Remove { path: PathBuf },
}

/// The merge of one accounts file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsReport {
    /// `etc/passwd`.
    pub path: PathBuf,
    /// Entries new in the vendor's file, added.
    pub added: Vec<String>,
    /// Entries the admin added or changed, kept.
    pub kept: Vec<String>,
    /// Entries the vendor removed but files still belong to: kept.
    pub kept_removed: Vec<String>,
    /// Entries the vendor removed that nothing owns, or that the admin
    /// removed: gone.
    pub dropped: Vec<String>,
    /// Two names with one id (a local account and a new system account):
    /// listed, never renumbered. ("uid 995: alice (local), chrony (vendor)").
    pub clashes: Vec<String>,
}

/// The result of the whole `/etc` merge: what is decided, and how to do it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    pub decisions: Vec<Decision>,
    pub accounts: Vec<AccountsReport>,
    pub ops: Vec<Op>,
}

impl Merge {
    pub fn conflicts(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Conflict | Outcome::TypeConflict))
            .count()
    }
}

/// The suffix a vendor's version gets beside the admin's.
pub const IMGNEW: &str = ".imgnew";

pub fn imgnew(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(IMGNEW);
    PathBuf::from(s)
}
