//! The three-way merge of `/etc`: ancestor O (the booted layer's base),
//! admin A (the booted layer), vendor N (the new base).
//!
//! Per path, by full [`Meta`] equality (absent equals absent):
//! - the admin did not touch it (A == O): the vendor's version, which the
//!   new layer (a snapshot of N) already has;
//! - only the admin changed it (N == O): the admin's version;
//! - both changed it alike: nothing to do; differently: the admin's is
//!   kept and the vendor's saved as `<path>.imgnew`, also when the kinds
//!   differ (a vendor's directory goes aside with all it holds);
//! - on the keep-list ([`Rules`]) or an accounts backup (`etc/passwd-`):
//!   the admin's, whatever the vendor did, and no `.imgnew`;
//! - accounts files: merged by entry name ([`super::accounts`]) and
//!   written whole.
//!
//! A directory is more than its metadata: the admin (or the vendor)
//! "touched" it when anything under it changed too. That decides what
//! happens when the other side removed the directory or made it another
//! kind, so that no operation ever lands under a path that, in the new
//! layer, is not a directory: the admin's changes inside keep the
//! directory, and the vendor's changes inside a directory the admin
//! removed are set aside with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::accounts;
use super::rules::Rules;
use super::{AccountsReport, Decision, Kind, Manifest, Merge, Meta, Op, Outcome, imgnew};

/// Merge `/etc`. `accounts` is what [`accounts::merge_all`] returned for
/// the same layers; the accounts files' metadata come from the manifests
/// (the vendor's, or the admin's where the vendor has none).
pub fn merge(
    ancestor: &Manifest,
    admin: &Manifest,
    vendor: &Manifest,
    rules: &Rules,
    accounts: Vec<(PathBuf, String, AccountsReport)>,
) -> Merge {
    let sides = Sides {
        o: ancestor,
        a: admin,
        n: vendor,
    };
    let paths: BTreeSet<&Path> = [ancestor, admin, vendor]
        .iter()
        .flat_map(|m| m.keys().map(PathBuf::as_path))
        .collect();
    let touched = Touched::new(&paths, &sides, rules);
    let mut walk = Walk::default();
    for path in paths {
        walk.visit(path, sides.at(path), policy(path, rules), &touched);
    }
    for (path, content, report) in accounts {
        let v = sides.at(&path);
        walk.write_accounts(path, content, report, v);
    }
    walk.finish()
}

/// The three manifests.
#[derive(Clone, Copy)]
struct Sides<'m> {
    o: &'m Manifest,
    a: &'m Manifest,
    n: &'m Manifest,
}

impl<'m> Sides<'m> {
    fn at(&self, path: &Path) -> Versions<'m> {
        Versions {
            o: self.o.get(path),
            a: self.a.get(path),
            n: self.n.get(path),
        }
    }
}

/// One path's three versions.
#[derive(Debug, Clone, Copy)]
struct Versions<'m> {
    o: Option<&'m Meta>,
    a: Option<&'m Meta>,
    n: Option<&'m Meta>,
}

/// How a path is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Merged by entry name elsewhere; left out here.
    Accounts,
    /// The admin's whatever the vendor did; the note says why when the
    /// outcome alone does not.
    Pinned(&'static str),
    ThreeWay,
}

fn policy(path: &Path, rules: &Rules) -> Policy {
    if accounts::is_accounts_file(path) {
        Policy::Accounts
    } else if accounts::is_backup(path) {
        Policy::Pinned("an accounts backup follows the admin's copy")
    } else if rules.is_kept(path) {
        Policy::Pinned("")
    } else {
        Policy::ThreeWay
    }
}

impl Versions<'_> {
    /// Whether the admin's version must end up at this path: changed
    /// from the ancestor, or (pinned) different from the vendor's.
    fn admin_claims(&self, policy: Policy) -> bool {
        match policy {
            Policy::Pinned(_) => self.a != self.n,
            Policy::Accounts | Policy::ThreeWay => self.a != self.o,
        }
    }

    /// Whether the vendor's change is something to preserve (a pinned
    /// path's never is).
    fn vendor_changed(&self, policy: Policy) -> bool {
        match policy {
            Policy::Pinned(_) => false,
            Policy::Accounts | Policy::ThreeWay => self.n != self.o,
        }
    }

    fn kinds(&self) -> (Option<Kind>, Option<Kind>) {
        (self.a.map(|m| m.kind), self.n.map(|m| m.kind))
    }
}

/// The paths each side touched: changed, or with a change under them.
struct Touched {
    admin: BTreeSet<PathBuf>,
    vendor: BTreeSet<PathBuf>,
}

impl Touched {
    fn new(paths: &BTreeSet<&Path>, sides: &Sides, rules: &Rules) -> Touched {
        let mut touched = Touched {
            admin: BTreeSet::new(),
            vendor: BTreeSet::new(),
        };
        for &path in paths {
            let (v, policy) = (sides.at(path), policy(path, rules));
            let up = || path.ancestors().map(Path::to_path_buf);
            if v.admin_claims(policy) {
                touched.admin.extend(up());
            }
            if v.vendor_changed(policy) {
                touched.vendor.extend(up());
            }
        }
        touched
    }
}

/// What to do at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The vendor's version is already in place.
    Nothing,
    Copy,
    Remove,
    /// The vendor's object goes to `.imgnew`, nothing replaces it.
    SetAside,
    /// The vendor's object goes to `.imgnew`, the admin's replaces it.
    SetAsideAndCopy,
}

/// One path's decision before it becomes a [`Decision`] and [`Op`]s.
#[derive(Debug, Clone, Copy)]
struct Resolution {
    outcome: Outcome,
    note: &'static str,
    action: Action,
}

fn resolution(outcome: Outcome, note: &'static str, action: Action) -> Option<Resolution> {
    Some(Resolution {
        outcome,
        note,
        action,
    })
}

const KEPT_VENDOR_REMOVED: &str = "the vendor removed it; the admin's copy kept";
const REMOVED_VENDOR_CHANGED: &str =
    "the admin removed it; the vendor's new version saved as .imgnew";
const REPLACED_DIR: &str = "the admin replaced a directory; the vendor's set aside as .imgnew";
const PINNED_DIR: &str = "the vendor's directory set aside as .imgnew: nothing else can replace it";
const BOTH_DIR_META: &str = "both changed the directory's metadata; the admin's kept";
const UNDER_ADMIN_DIR: &str = "inside the admin's directory that replaced the vendor's object";
const ACCOUNTS_MOVED: &str = "not written: its directory was set aside";
const ACCOUNTS_NO_META: &str = "not written: neither side has it as a file";

fn is_dir(kind: Option<Kind>) -> bool {
    kind == Some(Kind::Dir)
}

/// The admin's version whatever the vendor did.
fn pinned(v: Versions, note: &'static str) -> Option<Resolution> {
    if v.a == v.n {
        return None;
    }
    let (a, n) = v.kinds();
    match a {
        None => resolution(Outcome::Pinned, note, Action::Remove),
        // Only a rename gets a vendor's directory out of the way.
        Some(_) if is_dir(n) && !is_dir(a) => {
            resolution(Outcome::Pinned, PINNED_DIR, Action::SetAsideAndCopy)
        }
        Some(_) => resolution(Outcome::Pinned, note, Action::Copy),
    }
}

/// The three-way rules; `admin`/`vendor` say whether that side touched
/// the path or anything under it.
fn three_way(v: Versions, admin: bool, vendor: bool) -> Option<Resolution> {
    match v.kinds() {
        (Some(Kind::Dir), Some(Kind::Dir)) => dir_metadata(v),
        _ if !admin => vendors(v),
        _ if !vendor => admins(v),
        _ => both_changed(v),
    }
}

/// A directory on both sides: only its metadata is decided here, what
/// it holds is decided path by path.
fn dir_metadata(v: Versions) -> Option<Resolution> {
    if v.a == v.o {
        vendors(v)
    } else if v.n == v.o {
        resolution(Outcome::Kept, "", Action::Copy)
    } else if v.a == v.n {
        None
    } else {
        // A `.imgnew` of a directory would take all it holds along.
        resolution(Outcome::Kept, BOTH_DIR_META, Action::Copy)
    }
}

/// The admin left it alone: the vendor's, already in place.
fn vendors(v: Versions) -> Option<Resolution> {
    match v.n {
        _ if v.n == v.o => None,
        None => resolution(Outcome::Deleted, "", Action::Nothing),
        Some(_) => resolution(Outcome::Taken, "", Action::Nothing),
    }
}

/// Only the admin touched it: the admin's.
fn admins(v: Versions) -> Option<Resolution> {
    let (a, n) = v.kinds();
    match (v.a, v.n) {
        (None, None) => None,
        (None, Some(_)) => resolution(Outcome::RemovedByAdmin, "", Action::Remove),
        (Some(x), Some(y)) if x == y => None,
        _ if is_dir(n) && !is_dir(a) => {
            resolution(Outcome::Kept, REPLACED_DIR, Action::SetAsideAndCopy)
        }
        (Some(_), _) => resolution(Outcome::Kept, "", Action::Copy),
    }
}

/// Both touched it: the admin's wins, the vendor's goes aside.
fn both_changed(v: Versions) -> Option<Resolution> {
    match (v.a, v.n) {
        (None, None) => None,
        (None, Some(_)) => resolution(Outcome::Conflict, REMOVED_VENDOR_CHANGED, Action::SetAside),
        (Some(_), None) => resolution(Outcome::Kept, KEPT_VENDOR_REMOVED, Action::Copy),
        (Some(x), Some(y)) if x == y => None,
        (Some(x), Some(y)) if x.kind != y.kind => {
            resolution(Outcome::TypeConflict, "", Action::SetAsideAndCopy)
        }
        (Some(_), Some(_)) => resolution(Outcome::Conflict, "", Action::SetAsideAndCopy),
    }
}

/// What became of a subtree whose root was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subtree {
    /// The vendor's went to `.imgnew` with its root; nothing more to do.
    Moved,
    /// The admin's directory replaced the vendor's object: everything the
    /// admin has under it is copied (all of it is new to the vendor's).
    AdminCopy,
    /// The root itself and all under it: an older `.imgnew` the new one
    /// replaces, not to be copied over it.
    Superseded,
}

/// The walk over all paths in order (parents first).
#[derive(Default)]
struct Walk {
    decisions: Vec<Decision>,
    ops: Vec<Op>,
    accounts: Vec<AccountsReport>,
    /// Subtrees by root; [`Subtree::Moved`] and [`Subtree::AdminCopy`]
    /// hold for what is under the root, not the root.
    subtrees: BTreeMap<PathBuf, Subtree>,
}

impl Walk {
    /// The subtree `path` is in, the nearest root first.
    fn subtree(&self, path: &Path) -> Option<Subtree> {
        path.ancestors().find_map(|root| {
            let s = *self.subtrees.get(root)?;
            (root != path || s == Subtree::Superseded).then_some(s)
        })
    }

    fn visit(&mut self, path: &Path, v: Versions, policy: Policy, touched: &Touched) {
        let resolved = match self.subtree(path) {
            Some(Subtree::Moved | Subtree::Superseded) => None,
            Some(Subtree::AdminCopy) => match (policy, v.a) {
                (Policy::Accounts, _) | (_, None) => None,
                _ => resolution(Outcome::Kept, UNDER_ADMIN_DIR, Action::Copy),
            },
            None => match policy {
                Policy::Accounts => None,
                Policy::Pinned(note) => pinned(v, note),
                Policy::ThreeWay => three_way(
                    v,
                    touched.admin.contains(path),
                    touched.vendor.contains(path),
                ),
            },
        };
        if let Some(r) = resolved {
            self.apply(path, r, v);
        }
    }

    fn apply(&mut self, path: &Path, r: Resolution, v: Versions) {
        let p = || path.to_path_buf();
        match r.action {
            Action::Nothing => {}
            Action::Copy => self.ops.push(Op::CopyFromAdmin { path: p() }),
            Action::Remove => self.ops.push(Op::Remove { path: p() }),
            Action::SetAside => self.set_aside(path, Subtree::Moved),
            Action::SetAsideAndCopy => {
                let below = match v.a.map(|m| m.kind) {
                    Some(Kind::Dir) => Subtree::AdminCopy,
                    _ => Subtree::Moved,
                };
                self.set_aside(path, below);
                self.ops.push(Op::CopyFromAdmin { path: p() });
            }
        }
        self.decide(p(), r.outcome, r.note);
    }

    fn set_aside(&mut self, path: &Path, below: Subtree) {
        self.ops.push(Op::SetAside {
            path: path.to_path_buf(),
        });
        self.subtrees.insert(path.to_path_buf(), below);
        self.subtrees.insert(imgnew(path), Subtree::Superseded);
    }

    fn decide(&mut self, path: PathBuf, outcome: Outcome, note: &str) {
        self.decisions.push(Decision {
            path,
            outcome,
            note: note.to_string(),
        });
    }

    /// A merged accounts file, written with the vendor's metadata (the
    /// admin's where the vendor has no such file).
    fn write_accounts(
        &mut self,
        path: PathBuf,
        content: String,
        report: AccountsReport,
        v: Versions,
    ) {
        self.accounts.push(report);
        let meta = [v.n, v.a]
            .into_iter()
            .flatten()
            .find(|m| m.kind == Kind::File);
        let moved = matches!(
            self.subtree(&path),
            Some(Subtree::Moved | Subtree::Superseded)
        );
        let note = match meta {
            _ if moved => ACCOUNTS_MOVED,
            None => ACCOUNTS_NO_META,
            Some(meta) => {
                self.ops.push(Op::Write {
                    path: path.clone(),
                    content,
                    meta: meta.clone(),
                });
                ""
            }
        };
        self.decide(path, Outcome::Merged, note);
    }

    /// Decisions by path; creations and set-asides in path order (a
    /// set-aside before the copy that replaces it), then removals
    /// children first.
    fn finish(mut self) -> Merge {
        self.decisions.sort_by(|x, y| x.path.cmp(&y.path));
        let (mut removals, mut ops): (Vec<Op>, Vec<Op>) = self
            .ops
            .into_iter()
            .partition(|op| matches!(op, Op::Remove { .. }));
        ops.sort_by(|x, y| op_path(x).cmp(op_path(y)));
        removals.sort_by(|x, y| op_path(y).cmp(op_path(x)));
        ops.extend(removals);
        Merge {
            decisions: self.decisions,
            accounts: self.accounts,
            ops,
        }
    }
}

fn op_path(op: &Op) -> &Path {
    match op {
        Op::SetAside { path }
        | Op::CopyFromAdmin { path }
        | Op::Write { path, .. }
        | Op::Remove { path } => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(kind: Kind, mode: u32, content: &str) -> Meta {
        Meta {
            kind,
            mode,
            uid: 0,
            gid: 0,
            xattrs: BTreeMap::new(),
            content: content.to_string(),
        }
    }

    fn file(content: &str) -> Meta {
        meta(Kind::File, 0o644, content)
    }

    fn dir() -> Meta {
        meta(Kind::Dir, 0o755, "")
    }

    fn link(target: &str) -> Meta {
        meta(Kind::Symlink, 0o777, target)
    }

    fn with_mode(m: Meta, mode: u32) -> Meta {
        Meta { mode, ..m }
    }

    /// A tree under `etc` (which is always there, a directory).
    fn tree(entries: &[(&str, Meta)]) -> Manifest {
        let mut t: Manifest = entries
            .iter()
            .map(|(p, m)| (PathBuf::from(p), m.clone()))
            .collect();
        t.insert(PathBuf::from("etc"), dir());
        t
    }

    fn run(o: &Manifest, a: &Manifest, n: &Manifest) -> Merge {
        merge(o, a, n, &Rules::defaults(), Vec::new())
    }

    /// Decisions as `path outcome [note]`.
    fn decisions(m: &Merge) -> Vec<String> {
        m.decisions
            .iter()
            .map(|d| {
                let s = format!("{} {:?}", d.path.display(), d.outcome);
                match d.note.as_str() {
                    "" => s,
                    note => format!("{s} [{note}]"),
                }
            })
            .collect()
    }

    /// Operations as `verb path`.
    fn ops(m: &Merge) -> Vec<String> {
        m.ops
            .iter()
            .map(|op| {
                let verb = match op {
                    Op::SetAside { .. } => "aside",
                    Op::CopyFromAdmin { .. } => "copy",
                    Op::Write { .. } => "write",
                    Op::Remove { .. } => "remove",
                };
                format!("{verb} {}", op_path(op).display())
            })
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Runs the merge and checks its decisions and operations, and that
    /// the operations apply to the vendor's tree.
    fn check(o: &Manifest, a: &Manifest, n: &Manifest, want: &[&str], want_ops: &[&str]) -> Merge {
        let m = run(o, a, n);
        assert_eq!(decisions(&m), strings(want), "decisions");
        assert_eq!(ops(&m), strings(want_ops), "operations");
        if let Err(e) = apply(n, a, &m.ops) {
            panic!("operations do not apply: {e}");
        }
        m
    }

    #[test]
    fn untouched_paths_are_the_vendors() {
        let o = tree(&[
            ("etc/a", file("1")),
            ("etc/b", file("1")),
            ("etc/c", file("1")),
        ]);
        let n = tree(&[
            ("etc/a", file("2")),
            ("etc/c", file("1")),
            ("etc/d", file("1")),
        ]);
        check(
            &o,
            &o,
            &n,
            &["etc/a Taken", "etc/b Deleted", "etc/d Taken"],
            &[],
        );
    }

    #[test]
    fn nothing_to_say_where_all_agree() {
        let t = tree(&[("etc/a", file("1")), ("etc/d", dir())]);
        check(&t, &t, &t, &[], &[]);
    }

    #[test]
    fn what_only_the_admin_changed_is_the_admins() {
        let o = tree(&[("etc/a", file("1")), ("etc/b", file("1"))]);
        let a = tree(&[("etc/a", file("2")), ("etc/new", link("x"))]);
        check(
            &o,
            &a,
            &o,
            &["etc/a Kept", "etc/b RemovedByAdmin", "etc/new Kept"],
            &["copy etc/a", "copy etc/new", "remove etc/b"],
        );
    }

    #[test]
    fn the_same_change_on_both_sides_is_nothing_to_do() {
        let o = tree(&[("etc/a", file("1")), ("etc/b", file("1"))]);
        let both = tree(&[("etc/a", file("2")), ("etc/c", file("3"))]);
        check(&o, &both, &both, &[], &[]);
    }

    #[test]
    fn different_changes_conflict_and_the_vendors_goes_aside() {
        let o = tree(&[("etc/a", file("1"))]);
        let a = tree(&[("etc/a", file("2")), ("etc/new", file("a"))]);
        let n = tree(&[("etc/a", file("3")), ("etc/new", file("n"))]);
        let m = check(
            &o,
            &a,
            &n,
            &["etc/a Conflict", "etc/new Conflict"],
            &["aside etc/a", "copy etc/a", "aside etc/new", "copy etc/new"],
        );
        assert_eq!(m.conflicts(), 2);
    }

    #[test]
    fn a_mode_change_is_a_change() {
        let o = tree(&[("etc/a", file("1"))]);
        let a = tree(&[("etc/a", with_mode(file("1"), 0o600))]);
        let n = tree(&[("etc/a", file("2"))]);
        check(
            &o,
            &a,
            &n,
            &["etc/a Conflict"],
            &["aside etc/a", "copy etc/a"],
        );
    }

    #[test]
    fn a_file_the_vendor_removed_and_the_admin_changed_is_kept() {
        let o = tree(&[("etc/a", file("1"))]);
        let a = tree(&[("etc/a", file("2"))]);
        check(
            &o,
            &a,
            &tree(&[]),
            &["etc/a Kept [the vendor removed it; the admin's copy kept]"],
            &["copy etc/a"],
        );
    }

    #[test]
    fn a_file_the_admin_removed_and_the_vendor_changed_goes_aside() {
        let o = tree(&[("etc/a", file("1"))]);
        let n = tree(&[("etc/a", file("2"))]);
        check(
            &o,
            &tree(&[]),
            &n,
            &["etc/a Conflict [the admin removed it; the vendor's new version saved as .imgnew]"],
            &["aside etc/a"],
        );
    }

    #[test]
    fn a_file_against_a_vendors_directory_sets_the_directory_aside() {
        let o = tree(&[("etc/d", file("1"))]);
        let a = tree(&[("etc/d", file("2"))]);
        let n = tree(&[("etc/d", dir()), ("etc/d/x", file("1")), ("etc/d/y", dir())]);
        check(
            &o,
            &a,
            &n,
            &["etc/d TypeConflict"],
            &["aside etc/d", "copy etc/d"],
        );
    }

    #[test]
    fn an_admins_directory_against_a_vendors_file_brings_all_it_holds() {
        let o = tree(&[("etc/d", dir()), ("etc/d/x", file("1"))]);
        let a = tree(&[
            ("etc/d", dir()),
            ("etc/d/x", file("1")),
            ("etc/d/y", file("2")),
            ("etc/d/s", dir()),
            ("etc/d/s/z", file("3")),
        ]);
        let n = tree(&[("etc/d", link("elsewhere"))]);
        let under = "[inside the admin's directory that replaced the vendor's object]";
        check(
            &o,
            &a,
            &n,
            &[
                "etc/d TypeConflict",
                &format!("etc/d/s Kept {under}"),
                &format!("etc/d/s/z Kept {under}"),
                &format!("etc/d/x Kept {under}"),
                &format!("etc/d/y Kept {under}"),
            ],
            &[
                "aside etc/d",
                "copy etc/d",
                "copy etc/d/s",
                "copy etc/d/s/z",
                "copy etc/d/x",
                "copy etc/d/y",
            ],
        );
    }

    #[test]
    fn a_file_against_a_vendors_link_is_a_type_conflict() {
        let o = tree(&[("etc/l", link("a"))]);
        let a = tree(&[("etc/l", file("1"))]);
        let n = tree(&[("etc/l", link("b"))]);
        check(
            &o,
            &a,
            &n,
            &["etc/l TypeConflict"],
            &["aside etc/l", "copy etc/l"],
        );
    }

    #[test]
    fn directory_metadata_follows_the_same_rules() {
        let o = tree(&[("etc/d", dir()), ("etc/e", dir()), ("etc/f", dir())]);
        let a = tree(&[
            ("etc/d", with_mode(dir(), 0o700)),
            ("etc/e", dir()),
            ("etc/f", with_mode(dir(), 0o700)),
        ]);
        let n = tree(&[
            ("etc/d", dir()),
            ("etc/e", with_mode(dir(), 0o750)),
            ("etc/f", with_mode(dir(), 0o750)),
        ]);
        check(
            &o,
            &a,
            &n,
            &[
                "etc/d Kept",
                "etc/e Taken",
                "etc/f Kept [both changed the directory's metadata; the admin's kept]",
            ],
            &["copy etc/d", "copy etc/f"],
        );
    }

    #[test]
    fn a_directory_the_admin_removed_goes_children_first() {
        let o = tree(&[
            ("etc/d", dir()),
            ("etc/d/s", dir()),
            ("etc/d/s/x", file("1")),
            ("etc/d/y", file("1")),
            ("etc/z", file("1")),
        ]);
        let a = tree(&[("etc/z", file("1"))]);
        check(
            &o,
            &a,
            &o,
            &[
                "etc/d RemovedByAdmin",
                "etc/d/s RemovedByAdmin",
                "etc/d/s/x RemovedByAdmin",
                "etc/d/y RemovedByAdmin",
            ],
            &[
                "remove etc/d/y",
                "remove etc/d/s/x",
                "remove etc/d/s",
                "remove etc/d",
            ],
        );
    }

    #[test]
    fn a_directory_the_admin_removed_but_the_vendor_added_to_goes_aside() {
        let o = tree(&[("etc/d", dir()), ("etc/d/x", file("1"))]);
        let n = tree(&[
            ("etc/d", dir()),
            ("etc/d/x", file("1")),
            ("etc/d/new", file("1")),
        ]);
        check(
            &o,
            &tree(&[]),
            &n,
            &["etc/d Conflict [the admin removed it; the vendor's new version saved as .imgnew]"],
            &["aside etc/d"],
        );
    }

    #[test]
    fn a_directory_the_vendor_removed_stays_for_the_admins_changes_inside() {
        let o = tree(&[
            ("etc/d", dir()),
            ("etc/d/x", file("1")),
            ("etc/d/y", file("1")),
        ]);
        let a = tree(&[
            ("etc/d", dir()),
            ("etc/d/x", file("2")),
            ("etc/d/y", file("1")),
        ]);
        check(
            &o,
            &a,
            &tree(&[]),
            &[
                "etc/d Kept [the vendor removed it; the admin's copy kept]",
                "etc/d/x Kept [the vendor removed it; the admin's copy kept]",
                "etc/d/y Deleted",
            ],
            &["copy etc/d", "copy etc/d/x"],
        );
    }

    #[test]
    fn a_directory_the_vendor_made_a_file_but_the_admin_added_to_is_a_type_conflict() {
        let o = tree(&[("etc/d", dir())]);
        let a = tree(&[("etc/d", dir()), ("etc/d/mine", file("1"))]);
        let n = tree(&[("etc/d", file("1"))]);
        check(
            &o,
            &a,
            &n,
            &[
                "etc/d TypeConflict",
                "etc/d/mine Kept [inside the admin's directory that replaced the vendor's object]",
            ],
            &["aside etc/d", "copy etc/d", "copy etc/d/mine"],
        );
    }

    #[test]
    fn a_directory_the_vendor_made_a_file_is_the_vendors_if_the_admin_left_it() {
        let o = tree(&[("etc/d", dir()), ("etc/d/x", file("1"))]);
        let n = tree(&[("etc/d", file("1"))]);
        check(&o, &o, &n, &["etc/d Taken", "etc/d/x Deleted"], &[]);
    }

    #[test]
    fn a_directory_the_admin_made_a_file_sets_the_vendors_aside() {
        let o = tree(&[("etc/d", dir()), ("etc/d/x", file("1"))]);
        let a = tree(&[("etc/d", link("/elsewhere"))]);
        check(
            &o,
            &a,
            &o,
            &["etc/d Kept [the admin replaced a directory; the vendor's set aside as .imgnew]"],
            &["aside etc/d", "copy etc/d"],
        );
    }

    #[test]
    fn a_file_the_admin_made_a_directory_is_created() {
        let o = tree(&[("etc/d", file("1"))]);
        let a = tree(&[("etc/d", dir()), ("etc/d/x", file("1"))]);
        check(
            &o,
            &a,
            &o,
            &["etc/d Kept", "etc/d/x Kept"],
            &["copy etc/d", "copy etc/d/x"],
        );
    }

    #[test]
    fn pinned_paths_are_the_admins_without_imgnew() {
        let o = tree(&[
            ("etc/fstab", file("1")),
            ("etc/hostname", file("1")),
            ("etc/machine-id", file("1")),
            ("etc/adjtime", file("1")),
        ]);
        let a = tree(&[
            ("etc/fstab", file("2")),
            ("etc/hostname", file("1")),
            ("etc/adjtime", file("2")),
            ("etc/ssh", dir()),
            ("etc/ssh/ssh_host_rsa_key", file("k")),
        ]);
        let n = tree(&[
            ("etc/fstab", file("3")),
            ("etc/hostname", file("2")),
            ("etc/machine-id", file("2")),
            ("etc/adjtime", file("2")),
            ("etc/localtime", link("UTC")),
            ("etc/ssh", dir()),
        ]);
        check(
            &o,
            &a,
            &n,
            &[
                "etc/fstab Pinned",
                "etc/hostname Pinned",
                "etc/localtime Pinned",
                "etc/machine-id Pinned",
                "etc/ssh/ssh_host_rsa_key Pinned",
            ],
            &[
                "copy etc/fstab",
                "copy etc/hostname",
                "copy etc/ssh/ssh_host_rsa_key",
                "remove etc/machine-id",
                "remove etc/localtime",
            ],
        );
    }

    #[test]
    fn a_pinned_file_keeps_the_directory_the_vendor_removed() {
        let t = tree(&[("etc/ssh", dir()), ("etc/ssh/ssh_host_rsa_key", file("k"))]);
        check(
            &t,
            &t,
            &tree(&[]),
            &[
                "etc/ssh Kept [the vendor removed it; the admin's copy kept]",
                "etc/ssh/ssh_host_rsa_key Pinned",
            ],
            &["copy etc/ssh", "copy etc/ssh/ssh_host_rsa_key"],
        );
    }

    #[test]
    fn a_vendors_change_to_a_pinned_file_does_not_stop_a_removal() {
        let o = tree(&[("etc/ssh", dir()), ("etc/ssh/ssh_host_rsa_key", file("1"))]);
        let n = tree(&[("etc/ssh", dir()), ("etc/ssh/ssh_host_rsa_key", file("2"))]);
        check(
            &o,
            &tree(&[]),
            &n,
            &["etc/ssh RemovedByAdmin", "etc/ssh/ssh_host_rsa_key Pinned"],
            &["remove etc/ssh/ssh_host_rsa_key", "remove etc/ssh"],
        );
    }

    #[test]
    fn a_pinned_directory_covers_what_it_holds() {
        let rules = Rules::new(strings(&["etc/pki"]));
        let o = tree(&[("etc/pki", dir()), ("etc/pki/a", file("1"))]);
        let n = tree(&[
            ("etc/pki", dir()),
            ("etc/pki/a", file("2")),
            ("etc/pki/b", file("1")),
        ]);
        let m = merge(&o, &o, &n, &rules, Vec::new());
        assert_eq!(
            decisions(&m),
            strings(&["etc/pki/a Pinned", "etc/pki/b Pinned"])
        );
        assert_eq!(ops(&m), strings(&["copy etc/pki/a", "remove etc/pki/b"]));
    }

    #[test]
    fn a_pinned_file_against_a_vendors_directory_needs_the_rename() {
        let o = tree(&[("etc/localtime", link("UTC"))]);
        let n = tree(&[("etc/localtime", dir()), ("etc/localtime/x", file("1"))]);
        check(
            &o,
            &o,
            &n,
            &[&format!("etc/localtime Pinned [{PINNED_DIR}]")],
            &["aside etc/localtime", "copy etc/localtime"],
        );
    }

    #[test]
    fn accounts_backups_follow_the_admins_copy() {
        let o = tree(&[("etc/passwd-", file("1")), ("etc/shadow-", file("1"))]);
        let a = tree(&[("etc/passwd-", file("2")), ("etc/shadow-", file("1"))]);
        let n = tree(&[("etc/passwd-", file("3")), ("etc/shadow-", file("3"))]);
        let note = "[an accounts backup follows the admin's copy]";
        check(
            &o,
            &a,
            &n,
            &[
                &format!("etc/passwd- Pinned {note}"),
                &format!("etc/shadow- Pinned {note}"),
            ],
            &["copy etc/passwd-", "copy etc/shadow-"],
        );
    }

    #[test]
    fn accounts_files_are_written_merged_not_merged_as_paths() {
        let o = tree(&[("etc/passwd", file("1")), ("etc/group", file("1"))]);
        let a = tree(&[
            ("etc/passwd", with_mode(file("2"), 0o600)),
            ("etc/group", file("2")),
            ("etc/subuid", file("2")),
        ]);
        let n = tree(&[("etc/passwd", file("3")), ("etc/group", file("3"))]);
        let report = |p: &str| AccountsReport {
            path: PathBuf::from(p),
            ..AccountsReport::default()
        };
        let accounts = vec![
            (
                PathBuf::from("etc/passwd"),
                "merged\n".to_string(),
                report("etc/passwd"),
            ),
            (
                PathBuf::from("etc/subuid"),
                "sub\n".to_string(),
                report("etc/subuid"),
            ),
        ];
        let m = merge(&o, &a, &n, &Rules::defaults(), accounts);
        assert_eq!(
            decisions(&m),
            strings(&["etc/passwd Merged", "etc/subuid Merged"])
        );
        assert_eq!(m.accounts, vec![report("etc/passwd"), report("etc/subuid")]);
        let writes: Vec<(&Path, &str, &Meta)> = m
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Write {
                    path,
                    content,
                    meta,
                } => Some((path.as_path(), content.as_str(), meta)),
                _ => None,
            })
            .collect();
        // The vendor's metadata; the admin's where the vendor has none.
        assert_eq!(
            writes,
            vec![
                (Path::new("etc/passwd"), "merged\n", &file("3")),
                (Path::new("etc/subuid"), "sub\n", &file("2")),
            ]
        );
        assert_eq!(m.ops.len(), 2, "{:?}", ops(&m));
    }

    #[test]
    fn a_new_imgnew_replaces_the_admins_older_one() {
        let o = tree(&[("etc/a", file("1")), ("etc/b", file("1"))]);
        let a = tree(&[
            ("etc/a", file("2")),
            ("etc/a.imgnew", file("old")),
            ("etc/b", file("1")),
            ("etc/b.imgnew", file("old")),
        ]);
        let n = tree(&[("etc/a", file("3")), ("etc/b", file("3"))]);
        check(
            &o,
            &a,
            &n,
            &["etc/a Conflict", "etc/b Taken", "etc/b.imgnew Kept"],
            &["aside etc/a", "copy etc/a", "copy etc/b.imgnew"],
        );
    }

    #[test]
    fn operations_are_in_applying_order_and_decisions_by_path() {
        let o = tree(&[
            ("etc/a", dir()),
            ("etc/a/x", file("1")),
            ("etc/z", file("1")),
        ]);
        let a = tree(&[("etc/b", file("1")), ("etc/z", file("2"))]);
        let accounts = vec![(
            PathBuf::from("etc/group"),
            String::new(),
            AccountsReport::default(),
        )];
        let n = tree(&[
            ("etc/a", dir()),
            ("etc/a/x", file("1")),
            ("etc/group", file("g")),
            ("etc/z", file("1")),
        ]);
        let m = merge(&o, &a, &n, &Rules::defaults(), accounts);
        assert_eq!(
            ops(&m),
            strings(&[
                "copy etc/b",
                "write etc/group",
                "copy etc/z",
                "remove etc/a/x",
                "remove etc/a",
            ])
        );
        let paths: Vec<&Path> = m.decisions.iter().map(|d| d.path.as_path()).collect();
        assert!(paths.is_sorted(), "{paths:?}");
    }

    /// Runs `ops` on a copy of the vendor's tree as `sys::tree::apply`
    /// would, failing where it would fail.
    fn apply(vendor: &Manifest, admin: &Manifest, ops: &[Op]) -> Result<Manifest, String> {
        check_order(ops)?;
        let mut t = vendor.clone();
        for op in ops {
            match op {
                Op::SetAside { path } => set_aside(&mut t, path)?,
                Op::CopyFromAdmin { path } => {
                    let m = admin.get(path).ok_or(format!("admin has no {path:?}"))?;
                    put(&mut t, path, m)?;
                }
                Op::Write { path, meta, .. } => put(&mut t, path, meta)?,
                Op::Remove { path } => remove(&mut t, path)?,
            }
        }
        Ok(t)
    }

    /// Creations in path order, then removals children first.
    fn check_order(ops: &[Op]) -> Result<(), String> {
        let removal = |op: &Op| matches!(op, Op::Remove { .. });
        let split = ops.iter().position(removal).unwrap_or(ops.len());
        let (creations, removals) = ops.split_at(split);
        let ordered = removals.iter().all(removal)
            && creations.iter().map(op_path).is_sorted()
            && removals.iter().rev().map(op_path).is_sorted();
        ordered
            .then_some(())
            .ok_or(format!("out of order: {ops:?}"))
    }

    fn subtree(t: &Manifest, root: &Path) -> Vec<PathBuf> {
        t.keys().filter(|p| p.starts_with(root)).cloned().collect()
    }

    fn set_aside(t: &mut Manifest, path: &Path) -> Result<(), String> {
        if !t.contains_key(path) {
            return Err(format!("nothing to set aside at {path:?}"));
        }
        let aside = imgnew(path);
        for old in subtree(t, &aside) {
            t.remove(&old);
        }
        for p in subtree(t, path) {
            let rel = p.strip_prefix(path).map_err(|e| e.to_string())?;
            let m = t.remove(&p).ok_or("vanished")?;
            t.insert(aside.join(rel), m);
        }
        Ok(())
    }

    fn put(t: &mut Manifest, path: &Path, m: &Meta) -> Result<(), String> {
        let parent = path.parent().unwrap_or(Path::new(""));
        let parent_is_dir =
            parent.as_os_str().is_empty() || t.get(parent).is_some_and(|p| p.kind == Kind::Dir);
        if !parent_is_dir {
            return Err(format!("{path:?}: its parent is no directory"));
        }
        if t.get(path).is_some_and(|old| old.kind == Kind::Dir) && m.kind != Kind::Dir {
            return Err(format!("{path:?}: cannot replace a directory"));
        }
        t.insert(path.to_path_buf(), m.clone());
        Ok(())
    }

    fn remove(t: &mut Manifest, path: &Path) -> Result<(), String> {
        if !t.contains_key(path) {
            return Err(format!("nothing to remove at {path:?}"));
        }
        // A directory with something in it stays.
        if subtree(t, path).len() == 1 {
            t.remove(path);
        }
        Ok(())
    }

    /// The paths the property test draws from; `etc/k` (a directory or
    /// not) and `etc/a/y` (in one that is not) are pinned.
    const PATHS: &[&str] = &[
        "etc/a",
        "etc/a/x",
        "etc/a/x/z",
        "etc/a/y",
        "etc/b",
        "etc/b/w",
        "etc/c",
        "etc/k",
        "etc/k/f",
    ];

    /// Version `i` of a path: absent, files, directories, a link.
    fn version(i: usize) -> Option<Meta> {
        match i {
            1 => Some(file("1")),
            2 => Some(file("2")),
            3 => Some(with_mode(file("1"), 0o600)),
            4 => Some(dir()),
            5 => Some(with_mode(dir(), 0o700)),
            6 => Some(link("t")),
            _ => None,
        }
    }

    /// A consistent tree from one version index per path: whatever is
    /// not under a directory is dropped.
    fn build(choices: &[usize]) -> Manifest {
        let mut t = tree(&[]);
        for (path, &i) in PATHS.iter().zip(choices) {
            let path = Path::new(path);
            let parent_is_dir = path
                .parent()
                .and_then(|p| t.get(p))
                .is_some_and(|m| m.kind == Kind::Dir);
            if let (true, Some(m)) = (parent_is_dir, version(i)) {
                t.insert(path.to_path_buf(), m);
            }
        }
        t
    }

    /// O, then A and N each as O with some paths redrawn (so that
    /// untouched paths are common).
    fn arb_sides() -> impl Strategy<Value = (Manifest, Manifest, Manifest)> {
        let choices = || proptest::collection::vec(0..7usize, PATHS.len());
        let redraw = || proptest::collection::vec(proptest::bool::weighted(0.4), PATHS.len());
        (choices(), redraw(), choices(), redraw(), choices()).prop_map(|(o, am, ac, nm, nc)| {
            let side = |mask: &[bool], c: &[usize]| -> Vec<usize> {
                o.iter()
                    .zip(mask.iter().zip(c))
                    .map(|(&o, (&m, &c))| if m { c } else { o })
                    .collect()
            };
            (build(&o), build(&side(&am, &ac)), build(&side(&nm, &nc)))
        })
    }

    /// What the merge promises at `path` outside conflicts: the admin's
    /// version where the admin changed it (or it is pinned), else the
    /// vendor's, except that a directory the vendor removed stays, the
    /// admin's, while the admin changed something under it.
    fn promised<'m>(path: &Path, sides: Sides<'m>, rules: &Rules) -> Option<&'m Meta> {
        let v = sides.at(path);
        let claims = |q: &Path| sides.at(q).admin_claims(policy(q, rules));
        let changed_inside = || {
            let inside = |q: &&Path| *q != path && q.starts_with(path);
            PATHS.iter().map(Path::new).filter(inside).any(claims)
        };
        if rules.is_kept(path) || v.a != v.o || (v.n.is_none() && changed_inside()) {
            v.a
        } else {
            v.n
        }
    }

    /// Where `path` under `root` is once `root` is set aside.
    fn moved(root: &Path, path: &Path) -> PathBuf {
        imgnew(root).join(path.strip_prefix(root).unwrap_or(path))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The merge's promises, on the vendor's tree after its operations:
        /// outside conflicts, the promised version; at a conflict, the
        /// admin's, and the vendor's (with all it held) as `.imgnew`.
        #[test]
        fn applied_operations_keep_the_promises((o, a, n) in arb_sides()) {
            let rules = Rules::new(strings(&["etc/k", "etc/a/y"]));
            let sides = Sides { o: &o, a: &a, n: &n };
            let m = merge(&o, &a, &n, &rules, Vec::new());
            let result = apply(&n, &a, &m.ops).map_err(TestCaseError::fail)?;
            let conflicts: Vec<&Path> = m
                .decisions
                .iter()
                .filter(|d| matches!(d.outcome, Outcome::Conflict | Outcome::TypeConflict))
                .map(|d| d.path.as_path())
                .collect();
            let in_conflict = |p: &Path| conflicts.iter().any(|r| p.starts_with(r));
            for path in PATHS.iter().map(Path::new).filter(|p| !in_conflict(p)) {
                let want = promised(path, sides, &rules);
                prop_assert_eq!(result.get(path), want, "at {:?}: {:?}", path, m);
            }
            for &root in &conflicts {
                prop_assert_eq!(result.get(root), a.get(root), "at {:?}: {:?}", root, m);
                for p in subtree(&n, root) {
                    let aside = moved(root, &p);
                    prop_assert_eq!(result.get(&aside), n.get(&p), "at {:?}: {:?}", aside, m);
                }
            }
        }
    }
}
