//! Accounts files (`passwd`, `group`, their shadows, `subuid`, `subgid`)
//! merged by entry name rather than as whole files: both the admin (local
//! users, passwords) and the vendor (new system accounts for new
//! packages) add to them all the time, so a whole-file merge would
//! conflict on every update.
//!
//! Per name, with ancestor O, admin A and vendor N:
//! - in A and N: the admin's entry if the admin changed it, else the
//!   vendor's (so an admin's password hash is never lost);
//! - in N only: dropped if the admin deleted it (it is in O), else added
//!   (a new system account);
//! - in A only: a local account if not in O, kept; otherwise the vendor
//!   removed it, and it stays only while files still belong to its id
//!   (`passwd`, `group`) or while its `passwd`/`group` entry stays (the
//!   shadows, `subuid`, `subgid`).
//!
//! The result follows the vendor's order, then the admin's other entries
//! in the admin's order, then the admin's comments and other lines that
//! are no entries (NIS `+` lines, which must come last). Ids are never
//! renumbered: two names with one id are reported as a clash.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::AccountsReport;

/// The three versions of one accounts file; `None` where it is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    pub ancestor: Option<String>,
    pub admin: Option<String>,
    pub vendor: Option<String>,
}

/// The accounts files, relative to the layer root, merged by name.
pub const FILES: &[&str] = &[
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "etc/subuid",
    "etc/subgid",
];

/// Whether `path` is one of [`FILES`] (left out of the path merge).
pub fn is_accounts_file(path: &Path) -> bool {
    FILES.iter().any(|f| path == Path::new(f))
}

/// Whether `path` is the `-` backup of one of [`FILES`] (`etc/passwd-`),
/// which shadow-utils writes from the live file: it follows the admin's.
pub fn is_backup(path: &Path) -> bool {
    FILES
        .iter()
        .any(|f| path.as_os_str().to_str() == Some(&format!("{f}-")))
}

/// Which id the third field of a file's entries is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Uid,
    Gid,
}

/// How one accounts file is merged.
struct Spec {
    path: &'static str,
    /// `passwd` and `group` carry an id (the third field) that decides
    /// whether an entry the vendor removed is still owned.
    id: Option<Id>,
    /// The file whose decisions an entry the vendor removed follows.
    follows: Option<&'static str>,
}

/// Parents before the files that follow them.
const SPECS: &[Spec] = &[
    Spec {
        path: "etc/passwd",
        id: Some(Id::Uid),
        follows: None,
    },
    Spec {
        path: "etc/group",
        id: Some(Id::Gid),
        follows: None,
    },
    Spec {
        path: "etc/shadow",
        id: None,
        follows: Some("etc/passwd"),
    },
    Spec {
        path: "etc/gshadow",
        id: None,
        follows: Some("etc/group"),
    },
    Spec {
        path: "etc/subuid",
        id: None,
        follows: Some("etc/passwd"),
    },
    Spec {
        path: "etc/subgid",
        id: None,
        follows: Some("etc/group"),
    },
];

/// Merge every accounts file in `files` (keyed by the paths of
/// [`FILES`]; others are ignored). `owned_uids`/`owned_gids` are the ids
/// files in the new layer still belong to. Returns, per file to write,
/// its merged text and report. A file is left out when the admin has
/// none (nothing of the admin's to carry: the vendor's stays) or when
/// the merge gives back the vendor's text with nothing to report.
pub fn merge_all(
    files: &BTreeMap<PathBuf, Texts>,
    owned_uids: &BTreeSet<u32>,
    owned_gids: &BTreeSet<u32>,
) -> Vec<(PathBuf, String, AccountsReport)> {
    // Names each parent file kept, for the files that follow it.
    let mut kept_names: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for spec in SPECS {
        let Some(texts) = files.get(Path::new(spec.path)) else {
            continue;
        };
        let Some(admin) = texts.admin.as_deref() else {
            continue;
        };
        let sides = Sides {
            ancestor: Parsed::new(texts.ancestor.as_deref().unwrap_or(""), spec.id),
            admin: Parsed::new(admin, spec.id),
            vendor: Parsed::new(texts.vendor.as_deref().unwrap_or(""), spec.id),
        };
        let still_wanted = StillWanted {
            id: spec.id,
            owned: match spec.id {
                Some(Id::Gid) => owned_gids,
                _ => owned_uids,
            },
            // A parent not merged (absent) decides nothing: keep.
            parent: spec.follows.and_then(|p| kept_names.get(p)),
        };
        let merged = merge_file(spec, &sides, &still_wanted);
        let names = merged.entries().map(|e| e.name.to_string()).collect();
        kept_names.insert(spec.path, names);
        let text = merged.text();
        if text != texts.vendor.as_deref().unwrap_or("") || !is_quiet(&merged.report) {
            out.push((PathBuf::from(spec.path), text, merged.report));
        }
    }
    out
}

fn is_quiet(r: &AccountsReport) -> bool {
    r.added.is_empty()
        && r.kept.is_empty()
        && r.kept_removed.is_empty()
        && r.dropped.is_empty()
        && r.clashes.is_empty()
}

/// One side of a file: its entries by name (`subuid` may hold several
/// lines for one name: they go together), in order of first appearance,
/// and its lines that are no entries.
struct Parsed<'t> {
    order: Vec<Line<'t>>,
    entries: BTreeMap<&'t str, Vec<&'t str>>,
}

#[derive(Debug, Clone, Copy)]
enum Line<'t> {
    /// The first line of the entry of this name.
    Entry(&'t str),
    /// A comment, a blank line, a NIS `+`/`-` line, anything malformed.
    Other(&'t str),
}

impl<'t> Parsed<'t> {
    fn new(text: &'t str, id: Option<Id>) -> Parsed<'t> {
        let mut parsed = Parsed {
            order: Vec::new(),
            entries: BTreeMap::new(),
        };
        for line in text.lines() {
            match entry_name(line, id) {
                Some(name) => {
                    let lines = parsed.entries.entry(name).or_default();
                    if lines.is_empty() {
                        parsed.order.push(Line::Entry(name));
                    }
                    lines.push(line);
                }
                None => parsed.order.push(Line::Other(line)),
            }
        }
        parsed
    }

    fn get(&self, name: &str) -> Option<&[&'t str]> {
        self.entries.get(name).map(Vec::as_slice)
    }

    fn others(&self) -> impl Iterator<Item = &'t str> + '_ {
        self.order.iter().filter_map(|l| match l {
            Line::Other(s) => Some(*s),
            Line::Entry(_) => None,
        })
    }
}

/// The name of an entry line, or `None` for any other line. A name is
/// what precedes the first `:`; in `passwd` and `group` the third field
/// must be a number, so `ids` never misreads a line.
fn entry_name(line: &str, id: Option<Id>) -> Option<&str> {
    let (name, _) = line.split_once(':')?;
    let plain = !name.is_empty()
        && !name.starts_with(['#', '+', '-'])
        && !name.contains(char::is_whitespace);
    let id_ok = id.is_none() || line_id(line).is_some();
    (plain && id_ok).then_some(name)
}

/// The number in the third field of an entry line (uid, gid).
fn line_id(line: &str) -> Option<u32> {
    line.split(':').nth(2)?.parse().ok()
}

struct Sides<'t> {
    ancestor: Parsed<'t>,
    admin: Parsed<'t>,
    vendor: Parsed<'t>,
}

/// Whether an entry the vendor removed stays.
struct StillWanted<'a> {
    id: Option<Id>,
    owned: &'a BTreeSet<u32>,
    parent: Option<&'a BTreeSet<String>>,
}

impl StillWanted<'_> {
    fn keeps(&self, name: &str, lines: &[&str]) -> bool {
        match (self.id, self.parent) {
            (Some(_), _) => lines
                .iter()
                .filter_map(|l| line_id(l))
                .any(|id| self.owned.contains(&id)),
            (None, Some(parent)) => parent.contains(name),
            (None, None) => true,
        }
    }
}

/// Whose entry ends up in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Admin,
    Vendor,
}

/// What the report says about one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Nothing,
    Added,
    Kept,
    KeptRemoved,
    Dropped,
}

/// The decision for one name: whose entry, if any, and what to report.
fn decide(name: &str, sides: &Sides, still_wanted: &StillWanted) -> (Option<Side>, Said) {
    let o = sides.ancestor.get(name);
    let a = sides.admin.get(name);
    let n = sides.vendor.get(name);
    match (a, n) {
        (Some(a), Some(n)) if Some(a) != o => {
            let said = if a == n { Said::Nothing } else { Said::Kept };
            (Some(Side::Admin), said)
        }
        (Some(_), Some(_)) => (Some(Side::Vendor), Said::Nothing),
        // In O, gone from A: the admin deleted it.
        (None, Some(_)) if o.is_some() => (None, Said::Dropped),
        (None, Some(_)) => (Some(Side::Vendor), Said::Added),
        // In O, gone from N: the vendor removed it.
        (Some(a), None) if o.is_some() => match still_wanted.keeps(name, a) {
            true => (Some(Side::Admin), Said::KeptRemoved),
            false => (None, Said::Dropped),
        },
        (Some(_), None) => (Some(Side::Admin), Said::Kept),
        (None, None) => (None, Said::Nothing),
    }
}

/// One entry of the result.
struct Entry<'t> {
    name: &'t str,
    side: Side,
    lines: &'t [&'t str],
}

/// One item of the result: an entry, or a line that is none.
enum Out<'t> {
    Entry(Entry<'t>),
    Other(&'t str),
}

/// A merged file: the vendor's lines in place, the admin's own at the
/// end, and the report.
struct Merged<'t> {
    out: Vec<Out<'t>>,
    report: AccountsReport,
}

impl<'t> Merged<'t> {
    fn entries(&self) -> impl Iterator<Item = &Entry<'t>> {
        self.out.iter().filter_map(|o| match o {
            Out::Entry(e) => Some(e),
            Out::Other(_) => None,
        })
    }

    /// Every line ends with a newline, the last one included.
    fn text(&self) -> String {
        let mut text = String::new();
        for item in &self.out {
            let lines: &[&str] = match item {
                Out::Entry(e) => e.lines,
                Out::Other(other) => std::slice::from_ref(other),
            };
            for l in lines {
                text.push_str(l);
                text.push('\n');
            }
        }
        text
    }
}

fn merge_file<'t>(spec: &Spec, sides: &'t Sides<'t>, still_wanted: &StillWanted) -> Merged<'t> {
    let mut merged = Merged {
        out: Vec::new(),
        report: AccountsReport {
            path: PathBuf::from(spec.path),
            ..AccountsReport::default()
        },
    };
    // The vendor's order first, then the admin's entries the vendor lacks.
    let vendor_lines = sides.vendor.order.iter();
    let admin_only = sides.admin.order.iter().filter(|l| match l {
        Line::Entry(name) => sides.vendor.get(name).is_none(),
        Line::Other(_) => false,
    });
    for line in vendor_lines.chain(admin_only) {
        match *line {
            Line::Entry(name) => merged.add(name, sides, still_wanted),
            Line::Other(other) => merged.out.push(Out::Other(other)),
        }
    }
    for other in admin_own_others(sides) {
        merged.out.push(Out::Other(other));
    }
    if let Some(id) = spec.id {
        merged.report.clashes = clashes(merged.entries(), &sides.admin, id);
    }
    merged
}

impl<'t> Merged<'t> {
    fn add(&mut self, name: &'t str, sides: &'t Sides<'t>, still_wanted: &StillWanted) {
        let (side, said) = decide(name, sides, still_wanted);
        let report = &mut self.report;
        let bucket = match said {
            Said::Nothing => None,
            Said::Added => Some(&mut report.added),
            Said::Kept => Some(&mut report.kept),
            Said::KeptRemoved => Some(&mut report.kept_removed),
            Said::Dropped => Some(&mut report.dropped),
        };
        if let Some(bucket) = bucket {
            bucket.push(name.to_string());
        }
        let Some(side) = side else { return };
        let parsed = match side {
            Side::Admin => &sides.admin,
            Side::Vendor => &sides.vendor,
        };
        if let Some(lines) = parsed.get(name) {
            self.out.push(Out::Entry(Entry { name, side, lines }));
        }
    }
}

/// The lines that are no entries the admin added: those beyond what the
/// ancestor and the vendor have (counting repeats, so a blank line the
/// vendor also has is not added twice, and a comment the vendor removed
/// stays removed), in the admin's order.
fn admin_own_others<'t>(sides: &'t Sides<'t>) -> Vec<&'t str> {
    let count = |parsed: &Parsed<'t>| {
        let mut counts: BTreeMap<&'t str, usize> = BTreeMap::new();
        for other in parsed.others() {
            *counts.entry(other).or_default() += 1;
        }
        counts
    };
    let mut seen = count(&sides.vendor);
    for (other, n) in count(&sides.ancestor) {
        let c = seen.entry(other).or_default();
        *c = (*c).max(n);
    }
    sides
        .admin
        .others()
        .filter(|other| match seen.get_mut(other) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

/// Ids two or more names share in the result where the admin's file did
/// not already have them share it ("uid 995: alice (local), chrony
/// (vendor)"): the admin's names first.
fn clashes<'e, 't: 'e>(
    entries: impl Iterator<Item = &'e Entry<'t>>,
    admin: &Parsed,
    id: Id,
) -> Vec<String> {
    let mut by_id: BTreeMap<u32, Vec<(&str, Side)>> = BTreeMap::new();
    for entry in entries {
        for n in entry.lines.iter().filter_map(|l| line_id(l)) {
            let names = by_id.entry(n).or_default();
            if !names.iter().any(|(name, _)| *name == entry.name) {
                names.push((entry.name, entry.side));
            }
        }
    }
    let admin_has = |n: u32, name: &str| {
        admin
            .get(name)
            .is_some_and(|lines| lines.iter().any(|l| line_id(l) == Some(n)))
    };
    let label = match id {
        Id::Uid => "uid",
        Id::Gid => "gid",
    };
    by_id
        .into_iter()
        .filter(|(n, names)| names.len() > 1 && !names.iter().all(|(name, _)| admin_has(*n, name)))
        .map(|(n, mut names)| {
            names.sort_by_key(|(_, side)| *side != Side::Admin);
            let names: Vec<String> = names
                .iter()
                .map(|(name, side)| match side {
                    Side::Admin => format!("{name} (local)"),
                    Side::Vendor => format!("{name} (vendor)"),
                })
                .collect();
            format!("{label} {n}: {}", names.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(o: &str, a: &str, n: &str) -> Texts {
        Texts {
            ancestor: Some(o.to_string()),
            admin: Some(a.to_string()),
            vendor: Some(n.to_string()),
        }
    }

    fn files(list: &[(&str, Texts)]) -> BTreeMap<PathBuf, Texts> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), t.clone()))
            .collect()
    }

    fn ids(list: &[u32]) -> BTreeSet<u32> {
        list.iter().copied().collect()
    }

    /// Merge the files, owning `uids` and `gids`; by path.
    fn run(
        list: &[(&str, Texts)],
        uids: &[u32],
        gids: &[u32],
    ) -> BTreeMap<String, (String, AccountsReport)> {
        merge_all(&files(list), &ids(uids), &ids(gids))
            .into_iter()
            .map(|(p, text, r)| (p.display().to_string(), (text, r)))
            .collect()
    }

    /// Merge one file owning nothing.
    /// Merge one file owning nothing; a file left out is the vendor's.
    fn one(path: &str, o: &str, a: &str, n: &str) -> (String, AccountsReport) {
        let mut all = run(&[(path, texts(o, a, n))], &[], &[]);
        let vendors = || (n.to_string(), AccountsReport::default_for(path));
        all.remove(path).unwrap_or_else(vendors)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const ROOT: &str = "root:x:0:0:root:/root:/bin/bash\n";

    #[test]
    fn the_admins_change_wins_over_the_vendors() {
        let o = "root:!:19000::::::\n";
        let a = "root:$6$salt$hash:19500::::::\n";
        let n = "root:*:19800::::::\n";
        let (text, r) = one("etc/shadow", o, a, n);
        assert_eq!(text, a);
        assert_eq!(r.kept, names(&["root"]));
    }

    #[test]
    fn an_entry_the_admin_left_alone_is_the_vendors() {
        let o = "bin:x:1:1:bin:/bin:/sbin/nologin\n";
        let n = "bin:x:1:1:bin:/usr/bin:/usr/sbin/nologin\n";
        let (text, r) = one("etc/passwd", o, o, n);
        assert_eq!(text, n);
        assert_eq!(r, AccountsReport::default_for("etc/passwd"));
    }

    #[test]
    fn new_vendor_entries_are_added_in_the_vendors_order() {
        let n = "root:x:0:\nchrony:x:995:\nwheel:x:10:\n";
        let (text, r) = one(
            "etc/group",
            "root:x:0:\nwheel:x:10:\n",
            "root:x:0:\nwheel:x:10:\n",
            n,
        );
        assert_eq!(text, n);
        assert_eq!(r.added, names(&["chrony"]));
    }

    #[test]
    fn an_entry_the_admin_deleted_stays_deleted() {
        let o = "root:x:0:\ngames:x:20:\n";
        let (text, r) = one("etc/group", o, "root:x:0:\n", o);
        assert_eq!(text, "root:x:0:\n");
        assert_eq!(r.dropped, names(&["games"]));
    }

    #[test]
    fn an_entry_the_vendor_removed_stays_while_files_are_owned() {
        let o = format!("{ROOT}tss:x:59:59::/dev/null:/sbin/nologin\n");
        let list = [("etc/passwd", texts(&o, &o, ROOT))];
        let (text, r) = &run(&list, &[59], &[])["etc/passwd"];
        assert_eq!(text, &o);
        assert_eq!(r.kept_removed, names(&["tss"]));

        let (text, r) = &run(&list, &[58], &[59])["etc/passwd"];
        assert_eq!(text, ROOT);
        assert_eq!(r.dropped, names(&["tss"]));
    }

    #[test]
    fn a_group_the_vendor_removed_stays_while_its_gid_is_owned() {
        let o = "root:x:0:\ntss:x:59:\n";
        let list = [("etc/group", texts(o, o, "root:x:0:\n"))];
        assert_eq!(run(&list, &[], &[59])["etc/group"].0, o);
        assert_eq!(run(&list, &[59], &[])["etc/group"].0, "root:x:0:\n");
    }

    #[test]
    fn shadow_subuid_follow_passwd_gshadow_subgid_follow_group() {
        let o_pw = format!("{ROOT}tss:x:59:59::/:/sbin/nologin\nold:x:60:60::/:/sbin/nologin\n");
        let o_gr = "root:x:0:\ntss:x:59:\nold:x:60:\n";
        let o_sh = "root:h:1::::::\ntss:!!:1::::::\nold:!!:1::::::\n";
        let o_gs = "root:::\ntss:!::\nold:!::\n";
        let o_sub = "root:100000:65536\ntss:200000:65536\nold:300000:65536\n";
        let list = [
            ("etc/passwd", texts(&o_pw, &o_pw, ROOT)),
            ("etc/group", texts(o_gr, o_gr, "root:x:0:\n")),
            ("etc/shadow", texts(o_sh, o_sh, "root:h:1::::::\n")),
            ("etc/gshadow", texts(o_gs, o_gs, "root:::\n")),
            ("etc/subuid", texts(o_sub, o_sub, "root:100000:65536\n")),
            ("etc/subgid", texts(o_sub, o_sub, "root:100000:65536\n")),
        ];
        // tss still owns files, old does not: old goes from every file.
        let all = run(&list, &[59], &[59]);
        let kept = |path: &str| all[path].1.kept_removed.clone();
        let dropped = |path: &str| all[path].1.dropped.clone();
        for path in FILES {
            assert_eq!(kept(path), names(&["tss"]), "{path}");
            assert_eq!(dropped(path), names(&["old"]), "{path}");
        }
        assert_eq!(all["etc/shadow"].0, "root:h:1::::::\ntss:!!:1::::::\n");

        // The same shadow, but its passwd keeps nothing: neither does it.
        let all = run(&list, &[], &[59]);
        assert_eq!(all["etc/shadow"].1.dropped, names(&["tss", "old"]));
        assert_eq!(all["etc/subuid"].1.dropped, names(&["tss", "old"]));
        assert_eq!(all["etc/gshadow"].1.kept_removed, names(&["tss"]));
        assert_eq!(all["etc/subgid"].1.kept_removed, names(&["tss"]));
    }

    #[test]
    fn without_its_passwd_a_shadow_keeps_what_the_vendor_removed() {
        let o = "root:h:1::::::\ntss:!!:1::::::\n";
        let (text, r) = one("etc/shadow", o, o, "root:h:1::::::\n");
        assert_eq!(text, o);
        assert_eq!(r.kept_removed, names(&["tss"]));
    }

    #[test]
    fn local_accounts_follow_in_the_admins_order() {
        let a = format!(
            "zed:x:1001:1001::/home/zed:/bin/bash\n{ROOT}amy:x:1000:1000::/home/amy:/bin/bash\n"
        );
        let n = format!("{ROOT}chrony:x:995:995::/:/sbin/nologin\n");
        let (text, r) = one("etc/passwd", ROOT, &a, &n);
        assert_eq!(
            text,
            format!(
                "{n}zed:x:1001:1001::/home/zed:/bin/bash\namy:x:1000:1000::/home/amy:/bin/bash\n"
            )
        );
        assert_eq!(r.kept, names(&["zed", "amy"]));
        assert_eq!(r.added, names(&["chrony"]));
    }

    #[test]
    fn several_lines_of_one_name_go_together() {
        let o = "amy:100000:65536\n";
        let a = "amy:100000:65536\nbob:165536:65536\namy:300000:1000\n";
        let n = "root:500000:65536\namy:100000:65536\n";
        let (text, r) = one("etc/subuid", o, a, n);
        assert_eq!(
            text,
            "root:500000:65536\namy:100000:65536\namy:300000:1000\nbob:165536:65536\n"
        );
        assert_eq!(r.kept, names(&["amy", "bob"]));
        assert_eq!(r.added, names(&["root"]));
    }

    #[test]
    fn two_names_with_one_id_are_a_clash_never_renumbered() {
        let a = format!("{ROOT}alice:x:995:995::/home/alice:/bin/bash\n");
        let n = format!("{ROOT}chrony:x:995:992::/:/sbin/nologin\n");
        let (text, r) = one("etc/passwd", ROOT, &a, &n);
        assert_eq!(text, format!("{n}alice:x:995:995::/home/alice:/bin/bash\n"));
        assert_eq!(
            r.clashes,
            names(&["uid 995: alice (local), chrony (vendor)"])
        );

        let (_, r) = one("etc/group", "", "alice:x:992:\n", "chrony:x:992:\n");
        assert_eq!(
            r.clashes,
            names(&["gid 992: alice (local), chrony (vendor)"])
        );
    }

    #[test]
    fn ids_the_admin_already_shared_are_no_clash() {
        let a = format!("{ROOT}toor:x:0:0::/root:/bin/sh\n");
        let (_, r) = one("etc/passwd", ROOT, &a, ROOT);
        assert!(r.clashes.is_empty(), "{:?}", r.clashes);
    }

    #[test]
    fn the_admins_other_lines_come_last_once() {
        let o = "# vendor\nroot:x:0:\n";
        let a = "# vendor\nroot:x:0:\n# mine\n\n+@netgroup\nbroken line\n";
        let n = "# vendor\nroot:x:0:\nchrony:x:995:\n";
        let (text, _) = one("etc/group", o, a, n);
        assert_eq!(
            text,
            "# vendor\nroot:x:0:\nchrony:x:995:\n# mine\n\n+@netgroup\nbroken line\n"
        );
    }

    #[test]
    fn a_passwd_line_without_a_numeric_uid_is_no_entry() {
        let a = "root:x:0:0:root:/root:/bin/bash\n+::::::\nodd:x:\n";
        let (text, r) = one("etc/passwd", ROOT, a, ROOT);
        assert_eq!(text, a);
        assert!(r.kept.is_empty(), "{:?}", r.kept);
    }

    #[test]
    fn the_last_line_ends_with_a_newline() {
        let (text, _) = one("etc/group", "", "amy:x:1000:", "root:x:0:");
        assert_eq!(text, "root:x:0:\namy:x:1000:\n");
    }

    #[test]
    fn both_adding_one_name_keeps_the_admins() {
        let (text, r) = one("etc/group", "", "docker:x:1001:amy\n", "docker:x:990:\n");
        assert_eq!(text, "docker:x:1001:amy\n");
        assert_eq!(r.kept, names(&["docker"]));
    }

    #[test]
    fn files_with_nothing_to_do_are_left_out() {
        let same = texts(ROOT, ROOT, ROOT);
        let no_admin = Texts {
            admin: None,
            ..texts(ROOT, ROOT, "")
        };
        let unknown = texts("", "x:1:2\n", "");
        let all = run(
            &[
                ("etc/passwd", same),
                ("etc/group", no_admin),
                ("etc/hosts", unknown),
            ],
            &[],
            &[],
        );
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn a_vendor_text_with_something_to_report_is_not_left_out() {
        // The admin's copy still has a removed, unowned account: dropped,
        // which leaves exactly the vendor's file, but the report says so.
        let o = "root:x:0:\nold:x:60:\n";
        let all = run(&[("etc/group", texts(o, o, "root:x:0:\n"))], &[], &[]);
        assert_eq!(all["etc/group"].1.dropped, names(&["old"]));
    }

    #[test]
    fn a_missing_vendor_or_ancestor_file_is_empty() {
        let a = "amy:x:1000:\n";
        let t = Texts {
            ancestor: None,
            admin: Some(a.to_string()),
            vendor: None,
        };
        let all = run(&[("etc/group", t)], &[], &[]);
        assert_eq!(all["etc/group"].0, a);
        assert_eq!(all["etc/group"].1.kept, names(&["amy"]));
    }

    #[test]
    fn accounts_files_and_backups() {
        assert!(is_accounts_file(Path::new("etc/gshadow")));
        assert!(!is_accounts_file(Path::new("etc/passwd-")));
        assert!(!is_accounts_file(Path::new("etc/security/group")));
        assert!(is_backup(Path::new("etc/passwd-")));
        assert!(is_backup(Path::new("etc/subgid-")));
        assert!(!is_backup(Path::new("etc/passwd")));
        assert!(!is_backup(Path::new("etc/hosts-")));
    }

    impl AccountsReport {
        fn default_for(path: &str) -> AccountsReport {
            AccountsReport {
                path: PathBuf::from(path),
                ..AccountsReport::default()
            }
        }
    }

    /// Small group files: a few names, two versions of each entry, and
    /// the odd comment.
    fn arb_group() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            (0..4usize, 0..2u32)
                .prop_map(|(name, v)| format!("g{name}:x:{}:", 100 + name as u32 * 2 + v)),
            Just("# note".to_string()),
            Just(String::new()),
        ];
        proptest::collection::vec(line, 0..6).prop_map(|lines| {
            // One entry per name, as real files have.
            let mut seen = BTreeSet::new();
            let lines: Vec<String> = lines
                .into_iter()
                .filter(|l| !l.starts_with('g') || seen.insert(l.get(..2).map(str::to_string)))
                .collect();
            lines.iter().map(|l| format!("{l}\n")).collect()
        })
    }

    fn merged(o: &str, a: &str, n: &str) -> String {
        let list = [("etc/group", texts(o, a, n))];
        match run(&list, &[], &[]).remove("etc/group") {
            Some((text, _)) => text,
            None => n.to_string(),
        }
    }

    proptest! {
        /// An admin who changed nothing gets the vendor's file.
        #[test]
        fn untouched_gives_the_vendors(o in arb_group(), n in arb_group()) {
            prop_assert_eq!(merged(&o, &o, &n), n);
        }

        /// Every entry the admin changed or added is in the result as the
        /// admin wrote it, unless the vendor removed it (owning nothing).
        #[test]
        fn the_admins_entries_survive(o in arb_group(), a in arb_group(), n in arb_group()) {
            let result = merged(&o, &a, &n);
            let ancestor: BTreeSet<&str> = o.lines().collect();
            let name = |l: &str| l.split(':').next().unwrap_or_default().to_string();
            let removed = |l: &str| {
                let has = |t: &str| t.lines().any(|x| name(x) == name(l));
                has(&o) && !has(&n)
            };
            let admins = a.lines().filter(|l| !l.starts_with('#') && !ancestor.contains(l));
            for line in admins.filter(|l| !removed(l)) {
                prop_assert!(result.lines().any(|r| r == line), "{line} lost: {result}");
            }
        }

        /// Merging again onto the same vendor's file changes nothing.
        #[test]
        fn merging_is_idempotent(o in arb_group(), a in arb_group(), n in arb_group()) {
            let once = merged(&o, &a, &n);
            prop_assert_eq!(merged(&n, &once, &n), once);
        }
    }
}
