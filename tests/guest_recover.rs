//! Guest tier: proof by killing. Each changing command is SIGKILLed at
//! every step boundary (`IMGBASE_FAULT=kill-before:N`, a debug-build hook),
//! then `imgbase recover` runs, and the node must show the operation
//! either complete or absent, nothing left over (`lvs -a`, /boot,
//! grubenv, the journal), and a default entry naming an existing,
//! complete layer. One VG per command; all in the one guest.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::images::*;
use common::*;

const OLD: &str = "Node-0.9-0";
const BASE: &str = "Node-1.0-0";
const KVER: &str = "6.1.0-9-amd64";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An ext4 image of a root with a kernel and initramfs (`seed` makes
/// images of different content).
fn kernel_image(work: &Work, name: &str, seed: u64) -> PathBuf {
    let tree = work.trees().join(name);
    for d in ["boot", "etc/kernel"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    fs::write(
        tree.join(format!("boot/vmlinuz-{KVER}")),
        pseudo_random(64 << 10, seed),
    )
    .unwrap();
    fs::write(
        tree.join(format!("boot/initrd.img-{KVER}")),
        pseudo_random(64 << 10, seed + 100),
    )
    .unwrap();
    fs::write(tree.join("etc/kernel/cmdline"), "console=ttyS0\n").unwrap();
    ext4_image(&tree, &work.file(&format!("{name}.ext4")), 16)
}

/// A node with boot entries (grub, a /boot of its own): the adopted root
/// `Node-0.9-0` and a base `Node-1.0-0` with a kernel and one layer, which
/// is the default.
struct Node {
    vg: TestVg,
    work: Work,
    boot: PathBuf,
    image: PathBuf,
}

/// What the LVs look like apart from run-to-run noise (uuids, open
/// counts, usage).
#[derive(Debug, PartialEq)]
struct Seen {
    lvs: Vec<String>,
    /// Each visible LV's tags (from the same report).
    tags: BTreeMap<String, Vec<String>>,
    boot: BTreeMap<PathBuf, Vec<u8>>,
    env: String,
}

impl Seen {
    fn names(&self) -> Vec<String> {
        self.tags.keys().cloned().collect()
    }
}

/// What an operation changed in the VG's names.
#[derive(Debug, Default)]
struct Change {
    added: Vec<String>,
    removed: Vec<String>,
}

fn node(name: &str) -> Node {
    let vg = TestVg::new(name, 1024, 800);
    vg.init(OLD);
    let work = Work::new();
    let image = kernel_image(&work, "root", 1);
    let boot = work.path().join("boot");
    fs::create_dir_all(boot.join("grub")).unwrap();
    let n = Node {
        vg,
        work,
        boot,
        image,
    };
    n.ok(&["base", "--add", BASE, "--from", s(&n.image)]);
    n.ok(&["layer", "--add", BASE]);
    n.ok(&["boot", "--set-default", &format!("{BASE}+1")]);
    n
}

impl Node {
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--loader", "grub", "--boot-dir", s(&self.boot)];
        v.extend_from_slice(args);
        v
    }

    fn ok(&self, args: &[&str]) -> String {
        self.vg.ok(&self.args(args))
    }

    fn killed(&self, args: &[&str], fault: &str) -> Output {
        let mut full = vec!["--vg", &self.vg.name];
        full.extend(self.args(args));
        let out = std::process::Command::new(IMGBASE)
            .args(&full)
            .env("IMGBASE_LOCK_FILE", &self.vg.lock)
            .env("IMGBASE_STATE_DIR", self.vg.state_dir())
            .env("IMGBASE_FAULT", fault)
            .output()
            .unwrap();
        // The hook fired: a run that ended on its own proves nothing.
        assert_eq!(
            out.status.signal(),
            Some(9),
            "imgbase {args:?} with {fault} was not killed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The number of steps the command's plan has now.
    fn steps(&self, args: &[&str]) -> usize {
        let mut a = vec!["--dry-run", "--json"];
        a.extend_from_slice(args);
        let plan: serde_json::Value = serde_json::from_str(&self.ok(&a)).unwrap();
        // `update --dry-run --json` wraps its plan with the /etc preview.
        let plan = if plan["plan"].is_object() {
            &plan["plan"]
        } else {
            &plan
        };
        plan["steps"].as_array().unwrap().len()
    }

    fn seen(&self) -> Seen {
        let json = self
            .vg
            .report("lv_name,lv_attr,lv_size,origin,lv_tags,vg_tags");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let all = v["report"][0]["lv"].as_array().unwrap();
        let tags = all
            .iter()
            .map(|lv| lv["lv_name"].as_str().unwrap().to_string())
            .zip(all.iter().map(|lv| {
                let t = lv["lv_tags"].as_str().unwrap();
                t.split(',')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            }))
            .filter(|(name, _)| !name.starts_with('['))
            .collect();
        let mut lvs: Vec<String> = all
            .iter()
            .map(|lv| {
                // The open flag (attr 6) depends on who looks, not on imgbase.
                let mut attr: Vec<char> = lv["lv_attr"].as_str().unwrap().chars().collect();
                attr[5] = '-';
                format!(
                    "{} {} {} {} {} {}",
                    lv["lv_name"],
                    attr.into_iter().collect::<String>(),
                    lv["lv_size"],
                    lv["origin"],
                    lv["lv_tags"],
                    lv["vg_tags"]
                )
            })
            .collect();
        lvs.sort();
        Seen {
            lvs,
            tags,
            boot: files(&self.boot),
            env: self.env(),
        }
    }

    fn env(&self) -> String {
        sh(
            "grub-editenv",
            &[s(&self.boot.join("grub/grubenv")), "list"],
        )
    }

    fn default_layer(&self) -> Option<String> {
        self.env()
            .lines()
            .find_map(|l| l.strip_prefix("saved_entry="))
            .map(String::from)
    }

    /// Nothing half made anywhere, and the default boots a real layer.
    fn assert_clean(&self, what: &str, seen: &Seen) {
        for (lv, tags) in &seen.tags {
            assert!(!lv.starts_with("imgbase-tmp-"), "{what}: {lv} left");
            assert!(
                !tags.iter().any(|t| t == "imgbase:incomplete"),
                "{what}: {lv} left incomplete"
            );
        }
        let store = self.boot.join("imgbase");
        let layers: Vec<String> = seen
            .tags
            .iter()
            .filter(|(_, tags)| tags.iter().any(|t| t == "imgbased:layer"))
            .map(|(lv, _)| lv.clone())
            .collect();
        for e in fs::read_dir(&store).into_iter().flatten() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                layers.contains(&name),
                "{what}: /boot/imgbase/{name} is no layer's ({layers:?})"
            );
        }
        let journal = self.vg.state_dir().join("journal");
        let left: Vec<_> = fs::read_dir(&journal)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{what}: journal holds {left:?}");
        let default = self.default_layer();
        let default = default
            .as_deref()
            .unwrap_or_else(|| panic!("{what}: no default"));
        assert!(
            layers.iter().any(|l| l == default) && store.join(default).is_dir(),
            "{what}: the default {default} is not a complete layer with kernels"
        );
        let menu = fs::read_to_string(self.boot.join("grub/imgbase.cfg")).unwrap();
        assert!(
            menu.contains(&format!("--id '{default}'")),
            "{what}: the menu has no entry {default}"
        );
        // `check` finds nothing but the adopted root's layer, which has no
        // kernel and so no entry.
        let out = self.vg.imgbase(&self.args(&["--json", "check"]));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let without = format!("[\"{OLD}+1\"]");
        assert_eq!(
            r["layers_without_entry"].to_string(),
            without,
            "{what}: {r}"
        );
        for k in [
            "entries_without_lv",
            "orphan_files",
            "incomplete_lvs",
            "unfinished_operations",
        ] {
            assert_eq!(r[k].to_string(), "[]", "{what}: {k}: {r}");
        }
        assert!(r["default_missing"].is_null(), "{what}: {r}");
    }

    /// Kill `args` before each of its steps and after the last, recover,
    /// and hold the node to "complete or absent". `complete` says whether
    /// a changed node is the finished operation; `reset` brings the node
    /// back to a state the command applies to. Returns how many runs
    /// ended absent and how many complete.
    fn kill_at_every_step(
        &self,
        args: impl Fn(&Node) -> Vec<String>,
        complete: impl Fn(&Node, &Change) -> bool,
        reset: impl Fn(&Node, &Change),
    ) -> (usize, usize) {
        let (mut absent, mut done) = (0, 0);
        // The state and the plan's length stay as they were after a run
        // that was undone; they are read again only after a reset.
        let mut known: Option<(Seen, usize)> = None;
        let mut k = 0;
        loop {
            let owned = args(self);
            let a: Vec<&str> = owned.iter().map(String::as_str).collect();
            let (before, n) = match known.take() {
                Some(x) => x,
                None => (self.seen(), self.steps(&a)),
            };
            if k > n {
                break;
            }
            let what = format!("{a:?} killed before step {k} of {n}");
            let names = before.names();
            self.killed(&a, &format!("kill-before:{k}"));
            let said = self.ok(&["recover"]);
            assert_ne!(said.trim(), "nothing to recover", "{what}");
            assert_eq!(self.ok(&["recover"]).trim(), "nothing to recover", "{what}");
            let after = self.seen();
            self.assert_clean(&what, &after);
            if after == before {
                absent += 1;
                known = Some((after, n));
            } else {
                let now = after.names();
                let change = Change {
                    added: now.iter().filter(|x| !names.contains(x)).cloned().collect(),
                    removed: names.iter().filter(|x| !now.contains(x)).cloned().collect(),
                };
                assert!(
                    complete(self, &change),
                    "{what}: neither absent nor complete: {change:?}\nbefore {before:#?}\nafter {after:#?}"
                );
                done += 1;
                reset(self, &change);
            }
            k += 1;
        }
        (absent, done)
    }
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn has_entry(n: &Node, layer: &str) -> bool {
    n.boot.join("imgbase").join(layer).is_dir()
        && fs::read_to_string(n.boot.join("grub/imgbase.cfg"))
            .unwrap()
            .contains(&format!("--id '{layer}'"))
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn layer_add_and_set_default_killed_at_every_step() {
    let n = node("ibkill1");
    let (absent, done) = n.kill_at_every_step(
        |_| owned(&["layer", "--add", BASE]),
        |n, c| c.removed.is_empty() && c.added.len() == 1 && has_entry(n, &c.added[0]),
        |n, c| {
            n.ok(&["layer", "--remove", &c.added[0]]);
        },
    );
    // Rolled back before the end, finished only once every step ran.
    assert!(absent >= 4 && done == 1, "absent {absent}, done {done}");

    n.ok(&["layer", "--add", BASE]);
    let (absent, done) = n.kill_at_every_step(
        |n| {
            let other = if n.default_layer().as_deref() == Some(&format!("{BASE}+1")[..]) {
                n.vg.names()
                    .into_iter()
                    .rfind(|l| l.starts_with(&format!("{BASE}+")) && !l.ends_with("+1"))
                    .unwrap()
            } else {
                format!("{BASE}+1")
            };
            owned(&["boot", "--set-default", &other])
        },
        |_, c| c.added.is_empty() && c.removed.is_empty(),
        |_, _| {},
    );
    assert_eq!((absent, done), (1, 1));
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn layer_remove_of_the_default_killed_at_every_step() {
    let n = node("ibkill2");
    let newest = |n: &Node| {
        n.vg.names()
            .into_iter()
            .filter(|l| l.starts_with(&format!("{BASE}+")))
            .max_by_key(|l| l.rsplit('+').next().unwrap().parse::<u32>().unwrap())
            .unwrap()
    };
    let prepare = |n: &Node| {
        n.ok(&["layer", "--add", BASE]);
        n.ok(&["boot", "--set-default", &newest(n)]);
    };
    prepare(&n);
    let (absent, done) = n.kill_at_every_step(
        |n| owned(&["layer", "--remove", &newest(n)]),
        |n, c| {
            // Gone with its kernels; the default moved to a layer left.
            c.added.is_empty()
                && c.removed.len() == 1
                && !n.boot.join("imgbase").join(&c.removed[0]).exists()
                && n.default_layer() != Some(c.removed[0].clone())
        },
        |n, _| prepare(n),
    );
    // Undone before the lvremove; finished from it on.
    assert!(absent >= 2 && done >= 2, "absent {absent}, done {done}");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn base_remove_killed_at_every_step() {
    let n = node("ibkill3");
    let other = kernel_image(&n.work, "other", 7);
    n.ok(&["base", "--add", "Node-2.0-0", "--from", s(&other)]);
    n.ok(&["layer", "--add", "Node-2.0-0"]);
    let prepare = |n: &Node| {
        if !n.vg.names().iter().any(|l| l == BASE) {
            n.ok(&["base", "--add", BASE, "--from", s(&n.image)]);
        }
        n.ok(&["layer", "--add", BASE]);
        n.ok(&["layer", "--add", BASE]);
        let l =
            n.vg.names()
                .into_iter()
                .rfind(|l| l.starts_with(&format!("{BASE}+")))
                .unwrap();
        n.ok(&["boot", "--set-default", &l]);
    };
    prepare(&n);
    let (absent, done) = n.kill_at_every_step(
        |_| owned(&["base", "--remove", BASE]),
        |n, c| {
            c.added.is_empty()
                && c.removed.iter().any(|l| l == BASE)
                && c.removed
                    .iter()
                    .all(|l| !n.boot.join("imgbase").join(l).exists())
        },
        |n, _| prepare(n),
    );
    assert!(absent >= 2 && done >= 3, "absent {absent}, done {done}");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn base_add_from_raw_and_tar_killed_at_every_step() {
    let n = node("ibkill4");
    let raw = kernel_image(&n.work, "raw", 11);
    let tree = n.work.trees().join("raw");
    let tar = tar_image(&tree, &n.work.file("raw.tar"), Compression::None);
    for (name, image) in [("Node-3.0-0", &raw), ("Node-4.0-0", &tar)] {
        let (absent, done) = n.kill_at_every_step(
            |_| owned(&["base", "--add", name, "--from", s(image)]),
            |_, c| c.removed.is_empty() && c.added == [name.to_string()],
            |n, _| {
                n.ok(&["base", "--remove", name]);
            },
        );
        assert!(
            absent >= 4 && done == 1,
            "{name}: absent {absent}, done {done}"
        );
    }
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn update_killed_at_every_step() {
    let n = node("ibkill8");
    let image = kernel_image(&n.work, "v2", 21);
    // Keep every base: the loop resets by removing the new one.
    let conf = n.work.file("imgbase.conf");
    fs::write(&conf, "[update]\nbases_to_keep = 9\n").unwrap();
    let new = ["Node-2.0-0".to_string(), "Node-2.0-0+1".to_string()];
    let (absent, done) = n.kill_at_every_step(
        |_| {
            owned(&[
                "--config",
                s(&conf),
                "update",
                "--nvr",
                "Node-2.0-0",
                s(&image),
            ])
        },
        |n, c| {
            c.removed.is_empty()
                && c.added == new
                && n.default_layer().as_deref() == Some("Node-2.0-0+1")
                && has_entry(n, "Node-2.0-0+1")
        },
        |n, _| {
            n.ok(&["boot", "--set-default", &format!("{BASE}+1")]);
            n.ok(&["base", "--remove", "Node-2.0-0"]);
        },
    );
    // The base write alone is several steps; the run is done only once
    // the default moved (its last step).
    assert!(absent >= 8 && done >= 1, "absent {absent}, done {done}");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn an_update_killed_past_its_point_of_no_return_is_finished_by_recover() {
    let n = node("ibkill10");
    let image = kernel_image(&n.work, "v2", 23);
    // Three bases after the update: gc (keeping 2) removes the oldest.
    let a = ["update", "--nvr", "Node-2.0-0", s(&image)];
    let mut dry = vec!["--dry-run", "--json"];
    dry.extend(a);
    let plan: serde_json::Value = serde_json::from_str(&n.ok(&dry)).unwrap();
    let steps = plan["plan"]["steps"].as_array().unwrap();
    let first_removal = steps
        .iter()
        .position(|s| s["step"] == "remove")
        .expect("gc removes the oldest base");
    n.killed(&a, &format!("kill-before:{}", first_removal + 1));
    let said = n.ok(&["recover"]);
    assert!(said.contains("finished"), "{said}");
    assert_eq!(n.ok(&["recover"]).trim(), "nothing to recover");
    let names = n.vg.names();
    for lv in ["Node-2.0-0", "Node-2.0-0+1", BASE] {
        assert!(names.contains(&lv.to_string()), "{lv} missing: {names:?}");
    }
    for lv in [OLD.to_string(), format!("{OLD}+1")] {
        assert!(!names.contains(&lv), "{lv} not collected: {names:?}");
    }
    assert_eq!(n.default_layer().as_deref(), Some("Node-2.0-0+1"));
    assert!(has_entry(&n, "Node-2.0-0+1"));
    let out = n.vg.imgbase(&n.args(&["check"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn an_update_is_refused_up_front_when_boot_is_too_small() {
    let n = node("ibkill9");
    let image = kernel_image(&n.work, "v2", 22);
    // The node's /boot on a 4 MiB filesystem with less room left than the
    // new kernels and the reserve need.
    let small = n.work.path().join("smallboot");
    fs::create_dir(&small).unwrap();
    sh(
        "mount",
        &["-t", "tmpfs", "-o", "size=4M", "smallboot", s(&small)],
    );
    sh("cp", &["-a", &format!("{}/.", s(&n.boot)), s(&small)]);
    let filler = small.join("filler");
    sh("fallocate", &["-l", "2900K", s(&filler)]);
    let args = ["--loader", "grub", "--boot-dir", s(&small)];
    let before = (n.seen().lvs, files(&small));
    let mut a = args.to_vec();
    a.extend(["update", "--nvr", "Node-2.0-0", s(&image)]);
    let out = n.vg.imgbase(&a);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let after = (n.seen().lvs, files(&small));
    sh("umount", &[s(&small)]);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("need about"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(before == after, "a refused update changed the VG or /boot");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn layout_init_killed_at_every_step() {
    let vg = TestVg::new("ibkill5", 512, 300);
    vg.thin_with_fs("root", 64, "ext4");
    let from = format!("{}/root", vg.name);
    let args = ["layout", "--init", "--from", &from, "--nvr", BASE];
    let plan: serde_json::Value = serde_json::from_str(&vg.ok(&[
        "--dry-run",
        "--json",
        "layout",
        "--init",
        "--from",
        &from,
        "--nvr",
        BASE,
    ]))
    .unwrap();
    let n = plan["steps"].as_array().unwrap().len();
    let before = vg.state();
    let run = |fault: &str| {
        let mut full = vec!["--vg", vg.name.as_str()];
        full.extend_from_slice(&args);
        std::process::Command::new(IMGBASE)
            .args(&full)
            .env("IMGBASE_LOCK_FILE", &vg.lock)
            .env("IMGBASE_STATE_DIR", vg.state_dir())
            .env("IMGBASE_LOADER", "none")
            .env("IMGBASE_FAULT", fault)
            .output()
            .unwrap()
    };
    for k in 0..n {
        let out = run(&format!("kill-before:{k}"));
        assert_eq!(out.status.signal(), Some(9), "not killed before step {k}");
        vg.ok(&["recover"]);
        // Not past any point of no return: every kill is rolled back,
        // and the root is as it was.
        assert_eq!(vg.state(), before, "killed before step {k} of {n}");
    }
    // Killed after the last step: finished, and init is not re-run.
    let out = run(&format!("kill-before:{n}"));
    assert_eq!(out.status.signal(), Some(9));
    vg.ok(&["recover"]);
    let names = vg.names();
    assert!(names.contains(&BASE.to_string()) && names.contains(&format!("{BASE}+1")));
    assert!(vg.tags(BASE).contains(&"imgbased:base".to_string()));
    assert!(!vg.state().contains("imgbase:incomplete"));
    vg.ok(&["layer", "--add", BASE]);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn killed_in_a_tar_extraction_or_an_xfs_write_then_the_next_add_works() {
    let n = node("ibkill6");
    let tree = n.work.trees().join("big");
    fs::create_dir_all(tree.join("etc")).unwrap();
    add_payload(&tree, 48, 3);
    let tar = tar_image(&tree, &n.work.file("big.tar"), Compression::None);
    let xfs = xfs_image(&tree, &n.work.file("big.xfs"), 300);
    for (name, image, phase) in [
        ("Node-5.0-0", &tar, "extract"),
        ("Node-6.0-0", &xfs, "write"),
    ] {
        let before = n.seen();
        n.killed(
            &["base", "--add", name, "--from", s(image)],
            &format!("kill-during:{phase}"),
        );
        if phase == "extract" {
            // The kill came with the LV mounted for extraction.
            let mounts = fs::read_to_string("/proc/mounts").unwrap();
            assert!(
                mounts.contains("imgbase-tar-"),
                "no extraction mount: {mounts}"
            );
        }
        // The next command recovers first, then does its own work.
        n.ok(&["base", "--add", name, "--from", s(image)]);
        let mounts = fs::read_to_string("/proc/mounts").unwrap();
        assert!(!mounts.contains("imgbase-tar-"), "{name}: stale mount left");
        n.assert_clean(name, &n.seen());
        assert_ne!(n.seen(), before);
        assert!(n.vg.tags(name).contains(&"imgbased:base".to_string()));
    }
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn a_leftover_filling_the_pool_and_mounted_is_cleared_before_admission() {
    let vg = TestVg::new("ibkill7", 512, 128);
    vg.init(BASE);
    // What an older imgbase, killed mid-import, left: a temporary LV that
    // fills the pool past the admission limit and is still mounted, on a
    // mount point of a process that is gone, no journal claiming it.
    vg.thin("imgbase-tmp-Node-2.0-0", 200, &["imgbase:incomplete"]);
    let dev = vg.dev("imgbase-tmp-Node-2.0-0");
    sh("mkfs.ext4", &["-q", "-F", &dev]);
    let dead = std::env::temp_dir().join("imgbase-tar-999999-leftover");
    fs::create_dir_all(&dead).unwrap();
    sh("mount", &[&dev, s(&dead)]);
    sh(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}/fill", dead.display()),
            "bs=1M",
            "count=112",
            "conv=fsync",
            "status=none",
        ],
    );
    let full: f64 = lvm(&[
        "lvs",
        "--noheadings",
        "-o",
        "data_percent",
        &format!("{}/pool", vg.name),
    ])
    .trim()
    .parse()
    .unwrap();
    assert!(full >= 95.0, "the pool is only {full}% full");
    // The next add clears the leftover first, then is admitted.
    let out = vg.ok(&["layer", "--add", BASE]);
    assert!(out.contains(&format!("Created {BASE}+2")), "{out}");
    assert!(!vg.names().iter().any(|n| n.starts_with("imgbase-tmp-")));
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains("imgbase-tar-999999"), "{mounts}");
    assert!(!dead.exists(), "the stale mount point stays");
}
