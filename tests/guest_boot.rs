//! Guest tier: boot entries on real LVM. Layers are made from a real
//! ext4 image holding kernel and initramfs files (random bytes: nothing
//! boots here, the boot tier does that); /boot is a directory or a small
//! loop-mounted ext4 filesystem of the test's own (`--boot-dir`).
//! Run by `tests/run` (tests/vm/run-guest-tests.sh); ignored by plain
//! `cargo test`, and failing loudly if forced to run outside the guest.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::images::*;
use common::*;

const OLD: &str = "Node-0.9-0";
const BASE: &str = "Node-1.0-0";
const KVER: &str = "6.1.0-9-amd64";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A node: an adopted root (`Node-0.9-0`, no kernel) and a base
/// `Node-1.0-0` imported from an image that has a kernel, an initramfs of
/// `kernel_kib` KiB each and the node's own /etc/kernel/cmdline.
struct Node {
    vg: TestVg,
    _work: Work,
    boot: PathBuf,
    loader: &'static str,
}

fn node(name: &str, loader: &'static str, kernel_kib: usize) -> Node {
    let vg = TestVg::new(name, 1024, 800);
    vg.init(OLD);
    let work = Work::new();
    let tree = work.trees().join("root");
    for d in ["boot", "etc/kernel", "usr/lib/modules/6.1.0-9-amd64"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    fs::write(
        tree.join(format!("boot/vmlinuz-{KVER}")),
        pseudo_random(kernel_kib * 1024, 1),
    )
    .unwrap();
    fs::write(
        tree.join(format!("boot/initrd.img-{KVER}")),
        pseudo_random(kernel_kib * 1024, 2),
    )
    .unwrap();
    fs::write(tree.join("etc/kernel/cmdline"), "console=ttyS0 quiet\n").unwrap();
    let img = ext4_image(&tree, &work.file("root.ext4"), 64);
    vg.ok(&["base", "--add", BASE, "--from", s(&img)]);
    let boot = work.path().join("boot");
    fs::create_dir_all(boot.join("grub")).unwrap();
    Node {
        vg,
        _work: work,
        boot,
        loader,
    }
}

impl Node {
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--loader", self.loader, "--boot-dir", s(&self.boot)];
        v.extend_from_slice(args);
        v
    }
    fn ok(&self, args: &[&str]) -> String {
        self.vg.ok(&self.args(args))
    }
    /// Refused with one line naming `want`, the VG and /boot unchanged.
    fn refused(&self, args: &[&str], want: &str) {
        let before = files(&self.boot);
        self.vg.refused(&self.args(args), want);
        assert_eq!(files(&self.boot), before, "imgbase {args:?} changed /boot");
    }
    fn layer_dir(&self, layer: &str) -> PathBuf {
        self.boot.join("imgbase").join(layer)
    }
    fn env(&self) -> String {
        sh(
            "grub-editenv",
            &[s(&self.boot.join("grub/grubenv")), "list"],
        )
    }
    fn menu(&self) -> String {
        fs::read_to_string(self.boot.join("grub/imgbase.cfg")).unwrap_or_default()
    }
}

/// Every kernel and initramfs a menu entry names exists under /boot
/// (the test's /boot is a directory of /, so paths start with /boot).
fn assert_entries_resolve(node: &Node) {
    for line in node.menu().lines() {
        let l = line.trim_start();
        if let Some(rest) = l.strip_prefix("linux ").or(l.strip_prefix("initrd ")) {
            let path = rest.split(' ').next().unwrap();
            let rel = path
                .strip_prefix("/boot/")
                .unwrap_or_else(|| panic!("{path}"));
            assert!(node.boot.join(rel).is_file(), "entry names missing {path}");
        }
    }
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn layers_get_boot_entries_that_follow_them() {
    let n = node("ibboot1", "grub", 512);
    let l1 = format!("{BASE}+1");
    let l2 = format!("{BASE}+2");
    n.ok(&["layer", "--add", BASE]);
    n.ok(&["layer", "--add", BASE]);

    // Kernels copied once: the second layer links the first one's files.
    let k1 = n.layer_dir(&l1).join(format!("vmlinuz-{KVER}"));
    let k2 = n.layer_dir(&l2).join(format!("vmlinuz-{KVER}"));
    assert_eq!(fs::read(&k1).unwrap(), pseudo_random(512 * 1024, 1));
    assert_eq!(
        fs::metadata(&k1).unwrap().ino(),
        fs::metadata(&k2).unwrap().ino()
    );
    assert_eq!(fs::metadata(&k1).unwrap().nlink(), 2);

    // One menu entry per layer, newest first, with the node's arguments once.
    let menu = n.menu();
    let (p2, p1) = (
        menu.find(&format!("--id '{l2}'")).expect(&menu),
        menu.find(&format!("--id '{l1}'")).expect(&menu),
    );
    assert!(p2 < p1, "{menu}");
    assert!(menu.contains("'Node 1.0-0 (layer 2)'"), "{menu}");
    let vg = &n.vg.name;
    let want = format!(
        "root=/dev/{vg}/{l1} rd.lvm.lv={vg}/{l1} imgbase.layer={l1} console=ttyS0 quiet $imgbase_trial_args\n"
    );
    assert!(menu.contains(&want), "{menu}\nlacks {want}");
    assert_entries_resolve(&n);
    sh("grub-script-check", &[s(&n.boot.join("grub/imgbase.cfg"))]);

    let list: serde_json::Value =
        serde_json::from_str(&n.ok(&["--json", "boot", "--list"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["layer"], l2.as_str());

    // Default and one-shot, in grubenv (created: there was none).
    let plan = n.ok(&["--dry-run", "boot", "--set-default", &l2]);
    assert!(plan.contains(&format!("boot {l2} by default")), "{plan}");
    assert!(
        !n.boot.join("grub/grubenv").exists(),
        "--dry-run wrote grubenv"
    );
    n.ok(&["boot", "--set-default", &l2]);
    assert!(
        n.env().contains(&format!("saved_entry={l2}")),
        "{}",
        n.env()
    );
    assert_eq!(
        fs::metadata(n.boot.join("grub/grubenv")).unwrap().len(),
        1024
    );
    assert_eq!(n.ok(&["boot", "--get-default"]).trim(), l2);
    n.ok(&["boot", "--next", &l1]);
    assert!(n.env().contains(&format!("next_entry={l1}")), "{}", n.env());
    let text = n.ok(&["boot", "--list"]);
    assert!(
        text.contains(&format!("> {l1}")) && text.contains(&format!("* {l2}")),
        "{text}"
    );

    // The old base's layer has no kernel, hence no entry: check says so.
    let out = n.vg.imgbase(&n.args(&["check"]));
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("layer without a boot entry: {OLD}+1")),
        "{report}"
    );
    assert_eq!(report.matches("problem:").count(), 1, "{report}");

    // Removing the default layer moves the default; the shared kernel
    // stays for the layer that still uses it.
    n.ok(&["layer", "--remove", &l2]);
    assert!(!n.layer_dir(&l2).exists());
    assert_eq!(fs::metadata(&k1).unwrap().nlink(), 1);
    assert!(
        n.env().contains(&format!("saved_entry={l1}")),
        "{}",
        n.env()
    );
    // The one-shot entry names l1, which stays.
    assert!(n.env().contains(&format!("next_entry={l1}")), "{}", n.env());
    assert!(!n.menu().contains(&l2));
    assert_entries_resolve(&n);

    // An orphan directory (a layer removed by hand) is reported, then
    // cleared by boot --setup, which also rewrites the entries.
    fs::create_dir_all(n.layer_dir("Gone-1-0+1")).unwrap();
    let out = n.vg.imgbase(&n.args(&["check"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("orphan file"));
    fs::remove_file(n.boot.join("grub/imgbase.cfg")).unwrap();
    n.ok(&["boot", "--setup", &l1]);
    assert!(!n.layer_dir("Gone-1-0+1").exists());
    assert!(n.menu().contains(&format!("--id '{l1}'")));

    // A default naming a layer that is gone is reported too.
    let env = n.boot.join("grub/grubenv");
    sh("grub-editenv", &[s(&env), "set", "saved_entry=Gone-1-0+1"]);
    let out = n.vg.imgbase(&n.args(&["check"]));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("default entry names no entry: Gone-1-0+1"),
        "{report}"
    );
    n.ok(&["boot", "--set-default", &l1]);

    // Removing the base removes its entries and files, and the default.
    n.ok(&["base", "--remove", BASE]);
    assert!(!n.layer_dir(&l1).exists());
    assert!(!n.menu().contains("menuentry"), "{}", n.menu());
    assert!(!n.env().contains("saved_entry="), "{}", n.env());
    assert!(!n.env().contains("next_entry="), "{}", n.env());
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn boot_bad_inputs_change_nothing() {
    let n = node("ibboot2", "grub", 512);
    let l1 = format!("{BASE}+1");
    n.ok(&["layer", "--add", BASE]);
    n.ok(&["boot", "--set-default", &l1]);

    n.refused(
        &["boot", "--set-default", "Nope-1-0+1"],
        "no layer named Nope-1-0+1",
    );
    n.refused(
        &["boot", "--next", "Nope-1-0+1"],
        "no layer named Nope-1-0+1",
    );
    n.refused(
        &["boot", "--set-default", &format!("{OLD}+1")],
        "has no boot entry",
    );
    // A layer whose tree has no kernel cannot get an entry: no layer.
    n.refused(&["layer", "--add", OLD], "has no kernel");

    // A corrupt grubenv is refused before any change, and kept as it is.
    let env = n.boot.join("grub/grubenv");
    let good = fs::read(&env).unwrap();
    fs::write(&env, b"this is not a grub environment block").unwrap();
    n.refused(&["layer", "--add", BASE], "GRUB environment block");
    n.refused(&["boot", "--set-default", &l1], "GRUB environment block");
    fs::write(&env, good).unwrap();

    // A /boot too small for the kernel: the copy fails, nothing is left
    // half-written, the new layer is undone.
    let small = n._work.file("small-boot.ext4");
    sh("truncate", &["-s", "1M", s(&small)]);
    sh("mkfs.ext4", &["-q", "-F", "-N", "64", s(&small)]);
    let mnt = n._work.path().join("small-boot");
    fs::create_dir_all(&mnt).unwrap();
    sh("mount", &["-o", "loop", s(&small), s(&mnt)]);
    fs::create_dir_all(mnt.join("grub")).unwrap();
    let before = files(&mnt);
    let state = n.vg.state();
    let out = n.vg.imgbase(&[
        "--loader",
        "grub",
        "--boot-dir",
        s(&mnt),
        "layer",
        "--add",
        BASE,
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let after = files(&mnt);
    sh("umount", &[s(&mnt)]);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert!(err.contains("was undone"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(
        n.vg.state(),
        state,
        "the failed layer --add left LVs behind"
    );
    // Only the (empty) store directory may have been made.
    let extra: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        extra.iter().all(|p| p.ends_with("imgbase")),
        "left behind: {extra:?}"
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn bls_entries_leave_foreign_ones_alone() {
    let n = node("ibboot3", "grub-bls", 64);
    let entries = n.boot.join("loader/entries");
    fs::create_dir_all(&entries).unwrap();
    let foreign = entries.join("fedora-6.0.conf");
    let text = "title Fedora (6.0)\nversion 6.0\nlinux /vmlinuz-6.0\noptions root=UUID=1 ro\n";
    fs::write(&foreign, text).unwrap();
    fs::write(n.boot.join("grub/grub.cfg"), "insmod blscfg\nblscfg\n").unwrap();

    let l1 = format!("{BASE}+1");
    // The loader is detected (grub.cfg reads BLS entries).
    n.vg.ok(&[
        "--boot-dir",
        s(&n.boot),
        "--loader",
        "auto",
        "layer",
        "--add",
        BASE,
    ]);
    let ours = entries.join(format!("imgbase-{l1}-{KVER}.conf"));
    let entry = fs::read_to_string(&ours).unwrap();
    assert!(
        entry.contains(&format!("linux /boot/imgbase/{l1}/vmlinuz-{KVER}")),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("imgbase.layer={l1} console=ttyS0 quiet")),
        "{entry}"
    );
    n.ok(&["boot", "--set-default", &l1]);
    assert!(
        n.env()
            .contains(&format!("saved_entry=imgbase-{l1}-{KVER}")),
        "{}",
        n.env()
    );

    n.ok(&["layer", "--add", BASE]);
    n.ok(&["layer", "--remove", &l1]);
    assert!(!ours.exists());
    assert_eq!(fs::read_to_string(&foreign).unwrap(), text);
    let out = n.vg.imgbase(&n.args(&["check"]));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!report.contains("fedora"), "{report}");
}

/// A base `nvr` imported from a tree that `build` fills (after making
/// boot/ and etc/kernel/); no boot handling is involved in the import.
fn evil_base(n: &Node, nvr: &str, build: impl FnOnce(&Path)) {
    let tree = n._work.trees().join(nvr);
    for d in ["boot", "etc/kernel"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    build(&tree);
    let img = ext4_image(&tree, &n._work.file(&format!("{nvr}.ext4")), 32);
    n.vg.ok(&["base", "--add", nvr, "--from", s(&img)]);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn hostile_layers_put_nothing_of_the_host_into_boot() {
    use std::os::unix::fs::symlink;
    let n = node("ibboot5", "grub", 64);
    let l1 = format!("{BASE}+1");
    n.ok(&["layer", "--add", BASE]);
    n.ok(&["boot", "--set-default", &l1]);
    let shadow = fs::read("/etc/shadow").unwrap();

    // Kernel and initramfs linking to the host's /etc/shadow.
    evil_base(&n, "Evil-1.0-0", |t| {
        symlink("/etc/shadow", t.join(format!("boot/vmlinuz-{KVER}"))).unwrap();
        symlink("/etc/shadow", t.join(format!("boot/initrd.img-{KVER}"))).unwrap();
        fs::write(t.join("etc/shadow"), "root:layer-own").unwrap();
    });
    n.refused(&["layer", "--add", "Evil-1.0-0"], "leads outside");
    // Only the initramfs links out, by a climbing relative link.
    evil_base(&n, "Evil-2.0-0", |t| {
        fs::write(t.join(format!("boot/vmlinuz-{KVER}")), "kernel").unwrap();
        symlink(
            "../../../../../../../etc/shadow",
            t.join(format!("boot/initrd.img-{KVER}")),
        )
        .unwrap();
    });
    n.refused(&["layer", "--add", "Evil-2.0-0"], "leads outside");
    // The layer's kernel arguments linking to the host's /etc/shadow.
    evil_base(&n, "Evil-3.0-0", |t| {
        fs::write(t.join(format!("boot/vmlinuz-{KVER}")), "kernel").unwrap();
        fs::write(t.join(format!("boot/initrd.img-{KVER}")), "initrd").unwrap();
        symlink("/etc/shadow", t.join("etc/kernel/cmdline")).unwrap();
    });
    n.refused(&["layer", "--add", "Evil-3.0-0"], "leads outside");
    // Nothing of the host's shadow landed anywhere under /boot.
    assert!(!shadow.is_empty());
    for (p, bytes) in files(&n.boot) {
        assert!(
            !bytes.windows(shadow.len()).any(|w| w == shadow.as_slice()),
            "{} holds the host's /etc/shadow",
            p.display()
        );
    }

    // A kernel version with a newline, under grub-bls: refused, no entry.
    evil_base(&n, "Evil-4.0-0", |t| {
        fs::write(t.join("boot/vmlinuz-1\ninitrd x"), "kernel").unwrap();
        fs::write(t.join("boot/initrd.img-1\ninitrd x"), "initrd").unwrap();
    });
    let bls = n._work.path().join("bls-boot");
    fs::create_dir_all(bls.join("loader/entries")).unwrap();
    fs::create_dir_all(bls.join("grub2")).unwrap();
    fs::write(bls.join("grub2/grub.cfg"), "insmod blscfg\nblscfg\n").unwrap();
    let before = files(&bls);
    n.vg.refused(
        &[
            "--loader",
            "grub-bls",
            "--boot-dir",
            s(&bls),
            "layer",
            "--add",
            "Evil-4.0-0",
        ],
        "control characters",
    );
    assert_eq!(files(&bls), before, "a refused layer changed the BLS /boot");

    // A grubenv that is a symlink (EL UEFI layouts): its target is
    // updated, the link stays.
    let efi = n.boot.join("efi");
    fs::create_dir_all(&efi).unwrap();
    let env = n.boot.join("grub/grubenv");
    fs::rename(&env, efi.join("grubenv")).unwrap();
    symlink("../efi/grubenv", &env).unwrap();
    n.ok(&["layer", "--add", BASE]);
    let l2 = format!("{BASE}+2");
    n.ok(&["boot", "--set-default", &l2]);
    assert!(fs::symlink_metadata(&env).unwrap().file_type().is_symlink());
    assert!(
        n.env().contains(&format!("saved_entry={l2}")),
        "{}",
        n.env()
    );

    // The VG's layers have entries: without /boot (no loader found) a
    // command that would change them is refused, nothing changed.
    let empty = n._work.path().join("no-boot");
    fs::create_dir_all(&empty).unwrap();
    n.vg.refused(
        &[
            "--loader",
            "auto",
            "--boot-dir",
            s(&empty),
            "layer",
            "--remove",
            &l1,
        ],
        "boot entries",
    );
    n.vg.refused(
        &[
            "--loader",
            "auto",
            "--boot-dir",
            s(&empty),
            "layer",
            "--add",
            BASE,
        ],
        "mount /boot",
    );

    // A lock file planted as a symlink by another user: refused, its
    // target untouched; a lock in a directory others can write: refused.
    let dir = PathBuf::from("/run/imgbase-test-evil");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let victim = n._work.file("victim");
    fs::write(&victim, "precious").unwrap();
    let lock = dir.join("imgbase.lock");
    symlink(&victim, &lock).unwrap();
    sh("chown", &["-h", "65534:65534", s(&lock)]);
    n.vg.refused(
        &["--lock-file", s(&lock), "layer", "--add", BASE],
        "symlink",
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    let open = n._work.path().join("open-dir");
    fs::create_dir_all(&open).unwrap();
    sh("chmod", &["1777", s(&open)]);
    n.vg.refused(
        &[
            "--lock-file",
            s(&open.join("imgbase.lock")),
            "layer",
            "--add",
            BASE,
        ],
        "writable by group or others",
    );
    let _ = fs::remove_dir_all(&dir);
}
