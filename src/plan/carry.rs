//! The carry domain: the admin's configuration taken over to a new layer
//! (the `/etc` merge, accounts, `/var`, the fstab root entry), in one step
//! that mounts the three trees once. It only ever writes to a layer the
//! same plan created, so undoing it is removing that layer.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Sys, Undo};
use crate::carry::accounts::{self, Texts};
use crate::carry::rules::Rules;
use crate::carry::{Decision, Manifest, Merge, Op, merge};
use crate::error::{Error, Result};
use crate::sys::inroot::Tree;
use crate::sys::tree;

/// Where files owned by a removed system account would be: such an
/// account is kept.
const OWNED_UNDER: [&str; 4] = ["etc", "var", "home", "srv"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum CarryStep {
    /// Merge `/etc` of `admin` (against its base `ancestor`) into the new
    /// `layer`, carry `/var`, point the fstab root entry at the layer's
    /// final name, and save the report.
    CarryConfig {
        layer: String,
        final_name: String,
        admin: String,
        ancestor: String,
        keep: Vec<String>,
        report: PathBuf,
    },
}

impl CarryStep {
    pub(super) fn undo(&self) -> Undo {
        // Only on a layer this plan made: removing it takes this back.
        Undo::Never
    }

    pub(super) fn lv(&self) -> Option<&str> {
        match self {
            CarryStep::CarryConfig { layer, .. } => Some(layer),
        }
    }

    pub(super) fn apply(&self, sys: &Sys) -> Result<()> {
        let CarryStep::CarryConfig {
            layer,
            final_name,
            admin,
            ancestor,
            keep,
            report,
        } = self;
        let trees = sys.trees.ok_or_else(|| {
            Error::Refused("carrying configuration needs the layers' trees".into())
        })?;
        let rules = Rules::new(keep.clone());
        let mut out: Option<Result<Report>> = None;
        let vg = sys.vg.as_str();
        trees.with_tree(vg, ancestor, &mut |o| {
            trees.with_tree(vg, admin, &mut |a| {
                trees.with_writable_tree(vg, layer, &mut |n| {
                    out = Some(carry(o, a, n, &rules, vg, admin, final_name));
                    Ok(())
                })
            })
        })?;
        let mut r = out.unwrap_or_else(|| Err(Error::Refused("no trees were mounted".into())))?;
        r.layer = final_name.clone();
        r.from = admin.clone();
        r.ancestor = ancestor.clone();
        save(report, &r)
    }
}

impl fmt::Display for CarryStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarryStep::CarryConfig {
                layer,
                admin,
                ancestor,
                ..
            } => write!(
                f,
                "carry the configuration of {admin} over to {layer} (/etc merged against \
                 {ancestor}, accounts by name, /var)"
            ),
        }
    }
}

/// What an update carried over, saved as JSON per update and printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// The new layer, the layer carried from, and that layer's base.
    pub layer: String,
    pub from: String,
    pub ancestor: String,
    pub decisions: Vec<Decision>,
    pub accounts: Vec<crate::carry::AccountsReport>,
    /// `/var`: files of the new image added where the node had none.
    pub var_added: Vec<PathBuf>,
    /// `/var` in the layer itself: files of the admin's taken over.
    pub var_carried: usize,
    /// The fstab root entry, when it was pointed at the new layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstab_root: Option<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub const SCHEMA_VERSION: u32 = 1;

    pub fn conflicts(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| {
            matches!(
                d.outcome,
                crate::carry::Outcome::Conflict | crate::carry::Outcome::TypeConflict
            )
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::carry::Outcome::*;
        writeln!(
            f,
            "Configuration of {} carried over to {} (/etc against {}):",
            self.from, self.layer, self.ancestor
        )?;
        for d in &self.decisions {
            let what = match d.outcome {
                Taken => "taken (vendor's)",
                Deleted => "deleted (vendor removed it)",
                Kept => "kept (admin's)",
                RemovedByAdmin => "removed (as the admin did)",
                Conflict => "CONFLICT",
                TypeConflict => "TYPE CONFLICT",
                Pinned => "kept (keep-list)",
                Merged => "merged by entry",
            };
            write!(f, "  {what:<28} /{}", d.path.display())?;
            if matches!(d.outcome, Conflict | TypeConflict) {
                write!(
                    f,
                    " (the vendor's is /{})",
                    crate::carry::imgnew(&d.path).display()
                )?;
            }
            if !d.note.is_empty() {
                write!(f, ": {}", d.note)?;
            }
            writeln!(f)?;
        }
        for a in &self.accounts {
            let list = |what: &str, v: &[String]| {
                (!v.is_empty()).then(|| format!("{what} {}", v.join(", ")))
            };
            let parts: Vec<String> = [
                list("added", &a.added),
                list("kept", &a.kept),
                list(
                    "kept (removed by the vendor, still owning files)",
                    &a.kept_removed,
                ),
                list("dropped", &a.dropped),
                list("ID CLASH", &a.clashes),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !parts.is_empty() {
                writeln!(f, "  accounts /{}: {}", a.path.display(), parts.join("; "))?;
            }
        }
        if !self.var_added.is_empty() {
            writeln!(
                f,
                "  /var (shared): {} new path(s) of the image added, nothing overwritten",
                self.var_added.len()
            )?;
        }
        if self.var_carried > 0 {
            writeln!(
                f,
                "  /var: {} path(s) of the admin's carried over",
                self.var_carried
            )?;
        }
        if let Some(l) = &self.fstab_root {
            writeln!(f, "  /etc/fstab root entry: {l}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        let c = self.conflicts().count();
        if c > 0 {
            writeln!(
                f,
                "{c} conflict(s): compare each file with its .imgnew, merge what you need, \
                 then remove the .imgnew (`imgbase check` lists those left)"
            )?;
        }
        Ok(())
    }
}

/// The `/etc` merge of three mounted trees: ancestor `o`, admin `a`,
/// vendor `n` (a mounted image for a preview, or the new layer).
pub fn merge_trees(o: &Path, a: &Path, n: &Path, rules: &Rules) -> Result<Merge> {
    let etc = Path::new("etc");
    // (An `.imgnew` the admin left is carried over, unless this merge sets
    // the same path aside again: see `merge`.)
    // Three independent walks (each stats, reads and hashes every file):
    // run side by side.
    let (mo, ma, mn) = std::thread::scope(|s| {
        let (to, ta) = (
            s.spawn(|| tree::manifest(o, etc)),
            s.spawn(|| tree::manifest(a, etc)),
        );
        let mn = tree::manifest(n, etc);
        let join = |t: std::thread::ScopedJoinHandle<'_, _>| {
            t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        (join(to), join(ta), mn)
    });
    let (mo, ma, mn) = (mo?, ma?, mn?);
    let mut texts = BTreeMap::new();
    for f in accounts::FILES {
        let read = |root: &Path| read_text(root, Path::new(f));
        texts.insert(
            PathBuf::from(f),
            Texts {
                ancestor: read(o),
                admin: read(a),
                vendor: read(n),
            },
        );
    }
    let subs: Vec<&Path> = OWNED_UNDER.iter().map(Path::new).collect();
    let (uids, gids) = tree::owners(a, &subs)?;
    let merged = accounts::merge_all(&texts, &uids, &gids);
    Ok(merge::merge(&mo, &ma, &mn, rules, merged))
}

fn read_text(root: &Path, rel: &Path) -> Option<String> {
    let t = Tree::open(root).ok()?;
    let b = t.read_small(rel, 16 << 20).ok()?;
    Some(String::from_utf8_lossy(&b).into_owned())
}

/// The whole carry-over into the mounted new layer `n`.
fn carry(
    o: &Path,
    a: &Path,
    n: &Path,
    rules: &Rules,
    vg: &str,
    admin: &str,
    final_name: &str,
) -> Result<Report> {
    let t0 = std::time::Instant::now();
    let merge = merge_trees(o, a, n, rules)?;
    let merged = t0.elapsed();
    let mut notes = tree::apply(a, n, &merge.ops)?;
    // For benchmarks (`IMGBASE_LOG=info`): the merge itself, apart from
    // the mounts and /var around it.
    tracing::info!(
        "/etc merged in {} ms ({} decisions, {} operations applied in {} ms)",
        merged.as_millis(),
        merge.decisions.len(),
        merge.ops.len(),
        (t0.elapsed() - merged).as_millis()
    );
    let mut report = Report {
        schema_version: Report::SCHEMA_VERSION,
        decisions: merge.decisions,
        accounts: merge.accounts,
        ..Report::default()
    };
    let fstab = read_text(n, Path::new("etc/fstab")).unwrap_or_default();
    match var_source(&fstab) {
        Some(source) => {
            // /var is a volume of its own, shared by all layers: the new
            // image's files there are added where missing, never over
            // anything the node has.
            report.var_added = add_to_shared_var(n, &source)?;
        }
        None => {
            // /var is part of the layer: the admin's (logs, databases,
            // state) is taken over, the image's new files stay.
            let (carried, more) = carry_layer_var(a, n)?;
            report.var_carried = carried;
            notes.extend(more);
        }
    }
    if let Some((text, line)) = fix_fstab_root(&fstab, vg, admin, final_name, &same_device) {
        let meta = tree::manifest(n, Path::new("etc"))?
            .remove(Path::new("etc/fstab"))
            .ok_or_else(|| Error::Refused("etc/fstab vanished from the new layer".into()))?;
        notes.extend(tree::apply(
            a,
            n,
            &[Op::Write {
                path: "etc/fstab".into(),
                content: text,
                meta,
            }],
        )?);
        report.fstab_root = Some(line);
    }
    report.notes = notes;
    Ok(report)
}

/// The source of the `/var` entry of an fstab, if /var is mounted apart.
pub fn var_source(fstab: &str) -> Option<String> {
    fstab_entries(fstab)
        .find(|f| f[1] == "/var")
        .map(|f| f[0].to_string())
}

fn fstab_entries(fstab: &str) -> impl Iterator<Item = Vec<&str>> {
    fstab
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 2 && !f[0].starts_with('#'))
}

/// The shared /var volume, found by its fstab source, mounted where it
/// is (the running system's /var) or for the time of the copy.
fn add_to_shared_var(n: &Path, source: &str) -> Result<Vec<PathBuf>> {
    let dev = resolve_source(source).ok_or_else(|| {
        Error::Refused(format!(
            "the node's fstab mounts /var from {source}, which is not there: attach that \
             volume, or remove the entry, before updating"
        ))
    })?;
    if let Some(dir) =
        crate::sys::fs::DevNum::of_node(&dev)?.and_then(crate::sys::fs::mount_point_of)
    {
        return add_image_var(n, &dir);
    }
    let runner = crate::sys::cmd::SystemRunner;
    let dir = crate::sys::mount::temp_mount_point("imgbase-var-")
        .map_err(|e| Error::Refused(format!("a mount point for /var: {e}")))?;
    let m = crate::sys::mount::Mounted::new(
        &runner,
        &dev.display().to_string(),
        dir.path(),
        "nodev,nosuid",
    )
    .map_err(crate::sys::fs::FsError::from)?;
    let added = add_image_var(n, m.path());
    m.unmount().map_err(crate::sys::fs::FsError::from)?;
    added
}

/// What the new layer `n` holds under `var/` that the volume mounted at
/// `volume` lacks, added there (never over anything); paths as `var/…`.
fn add_image_var(n: &Path, volume: &Path) -> Result<Vec<PathBuf>> {
    // The layer is untrusted: its var must be a directory, not a link
    // that would make the walk start elsewhere.
    let var = n.join("var");
    match std::fs::symlink_metadata(&var) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(Vec::new()),
    }
    let mut added = Vec::new();
    let mut top: Vec<_> = std::fs::read_dir(&var)
        .map_err(|e| Error::Refused(format!("reading {}: {e}", var.display())))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    top.sort();
    for name in top {
        for p in tree::add_missing(&var, volume, Path::new(&name))? {
            added.push(Path::new("var").join(p));
        }
    }
    Ok(added)
}

/// `/dev/…`, `UUID=…`, `LABEL=…` to a device node.
fn resolve_source(source: &str) -> Option<PathBuf> {
    let p = if let Some(u) = source.strip_prefix("UUID=") {
        PathBuf::from(format!("/dev/disk/by-uuid/{u}"))
    } else if let Some(l) = source.strip_prefix("LABEL=") {
        PathBuf::from(format!("/dev/disk/by-label/{l}"))
    } else {
        PathBuf::from(source)
    };
    std::fs::canonicalize(p).ok()
}

fn same_device(source: &str, dev: &str) -> bool {
    match (resolve_source(source), std::fs::canonicalize(dev)) {
        (Some(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `/var` inside the layer: every path of the admin's that the new layer
/// lacks or has otherwise is taken from the admin; the image's own new
/// files stay.
fn carry_layer_var(a: &Path, n: &Path) -> Result<(usize, Vec<String>)> {
    let var = Path::new("var");
    let (ma, mn) = (tree::manifest(a, var)?, tree::manifest(n, var)?);
    let ops = var_ops(&ma, &mn);
    let carried = ops
        .iter()
        .filter(|o| matches!(o, Op::CopyFromAdmin { .. }))
        .count();
    Ok((carried, tree::apply(a, n, &ops)?))
}

/// The admin's `/var` over the vendor's: a path of another kind where one
/// side is a directory is set aside first (as the `/etc` merge does).
pub fn var_ops(admin: &Manifest, vendor: &Manifest) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut aside: Vec<&Path> = Vec::new();
    for (path, meta) in admin {
        if vendor.get(path) == Some(meta) {
            continue;
        }
        let under_aside = aside.iter().any(|p| path.starts_with(p) && path != p);
        if let Some(v) = vendor.get(path)
            && !under_aside
            && v.kind != meta.kind
            && (v.kind == crate::carry::Kind::Dir || meta.kind == crate::carry::Kind::Dir)
        {
            ops.push(Op::SetAside { path: path.clone() });
            aside.push(path);
        }
        ops.push(Op::CopyFromAdmin { path: path.clone() });
    }
    ops
}

/// The fstab with its `/` entry pointed at the new layer, when the entry
/// names the layer carried from (by path or by the device its UUID or
/// label resolves to); with the new entry line.
pub fn fix_fstab_root(
    fstab: &str,
    vg: &str,
    admin: &str,
    new: &str,
    same_device: &dyn Fn(&str, &str) -> bool,
) -> Option<(String, String)> {
    let dm = |s: &str| s.replace('-', "--");
    let old_paths = [
        format!("/dev/{vg}/{admin}"),
        format!("/dev/mapper/{}-{}", dm(vg), dm(admin)),
    ];
    let new_source = format!("/dev/{vg}/{new}");
    let mut changed = None;
    let mut out = String::new();
    for line in fstab.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let names_admin = f.len() >= 2
            && f[1] == "/"
            && !f[0].starts_with('#')
            && (old_paths.iter().any(|p| p == f[0]) || same_device(f[0], &old_paths[0]));
        if names_admin {
            let rest: Vec<&str> = f[1..].to_vec();
            let new_line = format!("{new_source} {}", rest.join(" "));
            out.push_str(&new_line);
            changed = Some(new_line);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    changed.map(|l| (out, l))
}

fn save(path: &Path, report: &Report) -> Result<()> {
    let io = |e: std::io::Error| Error::Refused(format!("cannot save {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_vec_pretty(report).expect("a report serializes");
    crate::boot::write_atomic(path, &text).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fstab_root_entry_follows_the_layer_by_path_or_device() {
        let never = |_: &str, _: &str| false;
        let fstab = "# comment\n/dev/HostVG/N-1.0-0+1 / ext4 defaults,discard 1 1\n\
                     UUID=abc /boot ext4 defaults 1 2\n";
        let (text, line) =
            fix_fstab_root(fstab, "HostVG", "N-1.0-0+1", "N-2.0-0+1", &never).expect("changed");
        assert_eq!(line, "/dev/HostVG/N-2.0-0+1 / ext4 defaults,discard 1 1");
        assert!(text.contains("UUID=abc /boot"));
        assert!(text.starts_with("# comment\n"));

        let mapper = "/dev/mapper/Host--VG-N--1.0--0+1 / xfs defaults 0 0\n";
        assert!(fix_fstab_root(mapper, "Host-VG", "N-1.0-0+1", "N-2.0-0+1", &never).is_some());

        let by_uuid = "UUID=1234 / ext4 defaults 1 1\n";
        assert!(fix_fstab_root(by_uuid, "HostVG", "N-1.0-0+1", "N-2.0-0+1", &never).is_none());
        let same = |s: &str, _: &str| s == "UUID=1234";
        assert!(fix_fstab_root(by_uuid, "HostVG", "N-1.0-0+1", "N-2.0-0+1", &same).is_some());

        // Another LV, or another mount point: left alone.
        let other = "/dev/HostVG/other / ext4 defaults 1 1\n/dev/HostVG/N-1.0-0+1 /x ext4 d 0 0\n";
        assert!(fix_fstab_root(other, "HostVG", "N-1.0-0+1", "N-2.0-0+1", &never).is_none());
    }

    #[test]
    fn var_is_shared_only_when_fstab_mounts_it() {
        assert_eq!(
            var_source("/dev/HostVG/var /var ext4 defaults 1 2\n").as_deref(),
            Some("/dev/HostVG/var")
        );
        assert_eq!(var_source("#/dev/HostVG/var /var ext4 d 1 2\n"), None);
        assert_eq!(var_source("/dev/HostVG/x /var/log ext4 d 1 2\n"), None);
    }

    #[test]
    fn the_admins_var_wins_and_kinds_that_clash_with_a_directory_are_set_aside() {
        use crate::carry::{Kind, Meta};
        let m = |kind: Kind, content: &str| Meta {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
            content: content.into(),
        };
        let admin: Manifest = [
            ("var/log", m(Kind::Dir, "")),
            ("var/log/messages", m(Kind::File, "a")),
            ("var/same", m(Kind::File, "s")),
            ("var/run", m(Kind::Dir, "")),
        ]
        .into_iter()
        .map(|(p, x)| (PathBuf::from(p), x))
        .collect();
        let vendor: Manifest = [
            ("var/log", m(Kind::Dir, "")),
            ("var/log/messages", m(Kind::File, "v")),
            ("var/same", m(Kind::File, "s")),
            ("var/run", m(Kind::Symlink, "../run")),
            ("var/new", m(Kind::File, "n")),
        ]
        .into_iter()
        .map(|(p, x)| (PathBuf::from(p), x))
        .collect();
        let ops = var_ops(&admin, &vendor);
        assert_eq!(
            ops,
            vec![
                Op::CopyFromAdmin {
                    path: "var/log/messages".into()
                },
                Op::SetAside {
                    path: "var/run".into()
                },
                Op::CopyFromAdmin {
                    path: "var/run".into()
                },
            ]
        );
    }
}
