//! The three-way merge of `/etc`, path by path: ancestor `o` (the base of
//! the layer carried from), admin `a` (that layer), vendor `n` (the new
//! base, of which the new layer is a snapshot). Only the admin's side
//! becomes operations: the vendor's is in the new layer already.
//!
//! The rules, for a path whose admin and vendor versions differ:
//! - the admin left it as the ancestor had it: the vendor's (taken or
//!   deleted);
//! - the vendor left it as the ancestor had it: the admin's (kept, or
//!   removed as the admin removed it);
//! - both changed it: the admin's, the vendor's set aside as
//!   `<path>.imgnew` (a conflict). A removal on one side keeps the other
//!   side's version where it stands (the admin's changed file stays; the
//!   vendor's new file lands as `.imgnew` beside the admin's removal);
//! - one side made it another kind (file, directory, link): the admin's
//!   kind wins at the path and the vendor's object, a whole directory
//!   with its content, is set aside as `<path>.imgnew` (a type conflict,
//!   never a refusal); two directories that differ only in owner, mode
//!   or xattrs take the admin's;
//! - a path on the keep-list takes the admin's whatever the vendor did,
//!   with no `.imgnew`;
//! - accounts files are merged by entry (see [`super::accounts`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::rules::Rules;
use super::{AccountsReport, Decision, Kind, Manifest, Merge, Meta, Op, Outcome};

/// The merge of three manifests and the accounts files already merged
/// (path, merged text, report), as `accounts::merge_all` returns them.
pub fn merge(
    o: &Manifest,
    a: &Manifest,
    n: &Manifest,
    rules: &Rules,
    accounts: Vec<(PathBuf, String, AccountsReport)>,
) -> Merge {
    let mut m = Walk::default();
    let merged: BTreeSet<&Path> = accounts.iter().map(|(p, _, _)| p.as_path()).collect();
    let paths: BTreeSet<&PathBuf> = o.keys().chain(a.keys()).chain(n.keys()).collect();
    for p in paths {
        if merged.contains(p.as_path()) {
            continue;
        }
        let (op, ap, np) = (o.get(p), a.get(p), n.get(p));
        // Under a vendor object set aside, only the admin's side is left.
        if m.under_aside(p) {
            if ap.is_some() {
                m.create(Op::CopyFromAdmin { path: p.clone() });
                m.decide(p, Outcome::Kept, "inside a type conflict: the admin's");
            }
            continue;
        }
        if ap == np {
            continue;
        }
        if rules.is_kept(p) {
            m.take_admin(p, ap, np);
            m.decide(p, Outcome::Pinned, "");
        } else if ap == op {
            let outcome = if np.is_some() {
                Outcome::Taken
            } else {
                Outcome::Deleted
            };
            m.decide(p, outcome, "");
        } else if np == op {
            let replaced = m.take_admin(p, ap, np);
            match (ap, replaced) {
                (None, _) => m.decide(p, Outcome::RemovedByAdmin, ""),
                (Some(_), true) => m.decide(
                    p,
                    Outcome::TypeConflict,
                    "the admin made it another kind; the vendor's (unchanged) set aside",
                ),
                (Some(_), false) => m.decide(p, Outcome::Kept, ""),
            }
        } else {
            m.both_changed(p, ap, np);
        }
    }
    for (path, content, report) in accounts {
        let meta = n.get(&path).or_else(|| a.get(&path)).cloned();
        let same_as_vendor = n
            .get(&path)
            .is_some_and(|v| v.content == hex(&Sha256::digest(content.as_bytes())));
        if let Some(meta) = meta
            && !same_as_vendor
        {
            m.decide(&path, Outcome::Merged, "");
            m.create(Op::Write {
                path: path.clone(),
                content,
                meta,
            });
        }
        m.merge.accounts.push(report);
    }
    m.finish()
}

#[derive(Default)]
struct Walk {
    merge: Merge,
    removals: Vec<Op>,
    /// Paths whose vendor object was set aside: its content went with it.
    aside: Vec<PathBuf>,
}

impl Walk {
    fn decide(&mut self, path: &Path, outcome: Outcome, note: &str) {
        self.merge.decisions.push(Decision {
            path: path.to_path_buf(),
            outcome,
            note: note.into(),
        });
    }

    fn create(&mut self, op: Op) {
        self.merge.ops.push(op);
    }

    fn set_aside(&mut self, path: &Path) {
        self.create(Op::SetAside {
            path: path.to_path_buf(),
        });
        self.aside.push(path.to_path_buf());
    }

    fn under_aside(&self, p: &Path) -> bool {
        self.aside.iter().any(|d| p != d && p.starts_with(d))
    }

    /// Make the path the admin's. Another kind at the path goes aside
    /// first (an object is never written over one of another kind).
    /// Returns whether something was set aside.
    fn take_admin(&mut self, p: &Path, ap: Option<&Meta>, np: Option<&Meta>) -> bool {
        let Some(admin) = ap else {
            self.removals.push(Op::Remove {
                path: p.to_path_buf(),
            });
            return false;
        };
        let other_kind = np.is_some_and(|v| v.kind != admin.kind);
        if other_kind {
            self.set_aside(p);
        }
        self.create(Op::CopyFromAdmin {
            path: p.to_path_buf(),
        });
        other_kind
    }

    fn both_changed(&mut self, p: &Path, ap: Option<&Meta>, np: Option<&Meta>) {
        match (ap, np) {
            (None, Some(_)) => {
                self.set_aside(p);
                self.decide(
                    p,
                    Outcome::Conflict,
                    "the admin removed it and the vendor changed it: removed, the vendor's \
                     version beside it",
                );
            }
            (Some(_), None) => {
                self.take_admin(p, ap, np);
                self.decide(
                    p,
                    Outcome::Kept,
                    "the vendor removed it; the admin's copy kept",
                );
            }
            (Some(a), Some(v)) if a.kind != v.kind => {
                self.take_admin(p, ap, np);
                self.decide(p, Outcome::TypeConflict, "");
            }
            (Some(a), Some(_)) if a.kind == Kind::Dir => {
                // A directory has no content to set aside: its owner, mode
                // and xattrs are the admin's; what it holds is merged path
                // by path.
                self.take_admin(p, ap, np);
                self.decide(
                    p,
                    Outcome::Kept,
                    "directory: the admin's owner, mode and xattrs",
                );
            }
            (Some(_), Some(_)) => {
                self.set_aside(p);
                self.create(Op::CopyFromAdmin {
                    path: p.to_path_buf(),
                });
                self.decide(p, Outcome::Conflict, "");
            }
            (None, None) => {}
        }
    }

    /// Creations in path order (parents first), then removals children
    /// first; decisions by path.
    fn finish(mut self) -> Merge {
        self.removals.reverse();
        self.merge.ops.append(&mut self.removals);
        self.merge.decisions.sort_by(|x, y| x.path.cmp(&y.path));
        self.merge
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: Kind, content: &str) -> Meta {
        Meta {
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
            content: content.into(),
        }
    }

    fn file(c: &str) -> Meta {
        meta(Kind::File, c)
    }

    fn dir() -> Meta {
        meta(Kind::Dir, "")
    }

    fn tree(entries: &[(&str, Meta)]) -> Manifest {
        let mut m: Manifest = entries
            .iter()
            .map(|(p, x)| (PathBuf::from(p), x.clone()))
            .collect();
        m.insert("etc".into(), dir());
        m
    }

    fn run(o: &[(&str, Meta)], a: &[(&str, Meta)], n: &[(&str, Meta)]) -> Merge {
        merge(
            &tree(o),
            &tree(a),
            &tree(n),
            &Rules::new(vec!["etc/hostname".into()]),
            vec![],
        )
    }

    fn outcome(m: &Merge, p: &str) -> Option<Outcome> {
        m.decisions
            .iter()
            .find(|d| d.path == Path::new(p))
            .map(|d| d.outcome)
    }

    fn copy(p: &str) -> Op {
        Op::CopyFromAdmin { path: p.into() }
    }

    fn aside(p: &str) -> Op {
        Op::SetAside { path: p.into() }
    }

    fn remove(p: &str) -> Op {
        Op::Remove { path: p.into() }
    }

    #[test]
    fn untouched_by_the_admin_is_the_vendors_with_its_deletions() {
        let o = [("etc/a", file("1")), ("etc/b", file("1"))];
        let n = [("etc/a", file("2")), ("etc/c", file("new"))];
        let m = run(&o, &o, &n);
        assert_eq!(outcome(&m, "etc/a"), Some(Outcome::Taken));
        assert_eq!(outcome(&m, "etc/b"), Some(Outcome::Deleted));
        assert_eq!(outcome(&m, "etc/c"), Some(Outcome::Taken));
        assert!(m.ops.is_empty(), "{:?}", m.ops);
    }

    #[test]
    fn changed_by_the_admin_only_is_the_admins_removals_included() {
        let o = [("etc/a", file("1")), ("etc/b", file("1"))];
        let a = [("etc/a", file("mine")), ("etc/new", file("mine"))];
        let m = run(&o, &a, &o);
        assert_eq!(outcome(&m, "etc/a"), Some(Outcome::Kept));
        assert_eq!(outcome(&m, "etc/new"), Some(Outcome::Kept));
        assert_eq!(outcome(&m, "etc/b"), Some(Outcome::RemovedByAdmin));
        assert_eq!(m.ops, [copy("etc/a"), copy("etc/new"), remove("etc/b")]);
    }

    #[test]
    fn changed_by_both_keeps_the_admins_and_sets_the_vendors_aside() {
        let o = [("etc/a", file("1")), ("etc/same", file("1"))];
        let a = [("etc/a", file("admin")), ("etc/same", file("x"))];
        let n = [("etc/a", file("vendor")), ("etc/same", file("x"))];
        let m = run(&o, &a, &n);
        assert_eq!(outcome(&m, "etc/a"), Some(Outcome::Conflict));
        // Both made the same change: nothing to decide.
        assert_eq!(outcome(&m, "etc/same"), None);
        assert_eq!(m.ops, [aside("etc/a"), copy("etc/a")]);
        assert_eq!(m.conflicts(), 1);
    }

    #[test]
    fn a_mode_or_label_change_is_a_change() {
        let mut labelled = file("1");
        labelled
            .xattrs
            .insert("security.selinux".into(), "61646d696e".into());
        let mut chmod = file("1");
        chmod.mode = 0o600;
        let o = [("etc/l", file("1")), ("etc/m", file("1"))];
        let a = [("etc/l", labelled), ("etc/m", chmod)];
        let m = run(&o, &a, &o);
        assert_eq!(outcome(&m, "etc/l"), Some(Outcome::Kept));
        assert_eq!(outcome(&m, "etc/m"), Some(Outcome::Kept));
    }

    #[test]
    fn removals_against_changes_keep_what_was_changed() {
        let o = [("etc/a", file("1")), ("etc/b", file("1"))];
        // The admin changed a, the vendor removed it; the admin removed b,
        // the vendor changed it.
        let a = [("etc/a", file("admin"))];
        let n = [("etc/b", file("vendor"))];
        let m = run(&o, &a, &n);
        assert_eq!(outcome(&m, "etc/a"), Some(Outcome::Kept));
        assert_eq!(outcome(&m, "etc/b"), Some(Outcome::Conflict));
        assert_eq!(m.ops, [copy("etc/a"), aside("etc/b")]);
    }

    #[test]
    fn a_type_conflict_sets_the_vendors_object_aside_with_its_content() {
        // The admin made a file a directory; the vendor changed the file.
        let o = [
            ("etc/x", file("1")),
            ("etc/d", dir()),
            ("etc/d/f", file("1")),
        ];
        let a = [
            ("etc/x", dir()),
            ("etc/x/inside", file("admin")),
            ("etc/d", file("admin")),
        ];
        let n = [
            ("etc/x", file("2")),
            ("etc/d", dir()),
            ("etc/d/f", file("2")),
            ("etc/d/g", file("new")),
        ];
        let m = run(&o, &a, &n);
        assert_eq!(outcome(&m, "etc/x"), Some(Outcome::TypeConflict));
        assert_eq!(outcome(&m, "etc/d"), Some(Outcome::TypeConflict));
        assert_eq!(
            m.ops,
            [
                aside("etc/d"),
                copy("etc/d"),
                aside("etc/x"),
                copy("etc/x"),
                copy("etc/x/inside"),
            ]
        );
        // Nothing is decided for what went aside with the vendor's directory.
        assert_eq!(outcome(&m, "etc/d/f"), None);
        assert_eq!(outcome(&m, "etc/d/g"), None);
    }

    #[test]
    fn the_admin_replacing_an_unchanged_directory_sets_it_aside_too() {
        let o = [("etc/d", dir()), ("etc/d/f", file("1"))];
        let a = [("etc/d", meta(Kind::Symlink, "/elsewhere"))];
        let m = run(&o, &a, &o);
        assert_eq!(outcome(&m, "etc/d"), Some(Outcome::TypeConflict));
        assert_eq!(m.ops, [aside("etc/d"), copy("etc/d")]);
    }

    #[test]
    fn a_removed_directory_goes_children_first() {
        let o = [("etc/d", dir()), ("etc/d/f", file("1")), ("etc/d/e", dir())];
        let m = run(&o, &[], &o);
        assert_eq!(
            m.ops,
            [remove("etc/d/f"), remove("etc/d/e"), remove("etc/d")]
        );
    }

    #[test]
    fn the_keep_list_takes_the_admins_without_an_imgnew() {
        let o = [("etc/hostname", file("node"))];
        let a = [("etc/hostname", file("node-17"))];
        let n = [("etc/hostname", file("vendor"))];
        let m = run(&o, &a, &n);
        assert_eq!(outcome(&m, "etc/hostname"), Some(Outcome::Pinned));
        assert_eq!(m.ops, [copy("etc/hostname")]);
        // Kept even where the admin never changed it.
        let m = run(&o, &o, &n);
        assert_eq!(outcome(&m, "etc/hostname"), Some(Outcome::Pinned));
        assert_eq!(m.ops, [copy("etc/hostname")]);
    }

    #[test]
    fn accounts_are_written_merged_unless_equal_to_the_vendors() {
        let vendor_text = "root:x:0:0::/root:/bin/sh\n";
        let sum = hex(&Sha256::digest(vendor_text.as_bytes()));
        let n = [("etc/passwd", file(&sum))];
        let acc = |text: &str| {
            vec![(
                PathBuf::from("etc/passwd"),
                text.to_string(),
                AccountsReport::default(),
            )]
        };
        let rules = Rules::new(vec![]);
        let m = merge(&tree(&n), &tree(&n), &tree(&n), &rules, acc(vendor_text));
        assert!(m.ops.is_empty() && m.decisions.is_empty());
        let mine = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        let a = [("etc/passwd", file("other"))];
        let m = merge(&tree(&n), &tree(&a), &tree(&n), &rules, acc(mine));
        assert_eq!(outcome(&m, "etc/passwd"), Some(Outcome::Merged));
        assert!(matches!(&m.ops[..], [Op::Write { content, .. }] if content == mine));
        assert_eq!(m.accounts.len(), 1);
    }
}
