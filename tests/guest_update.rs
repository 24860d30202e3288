//! Guest tier: `imgbase update` on real LVM with real images: the admin's
//! `/etc` carried over path by path (a three-way merge against the old
//! base), accounts merged by name, `--dry-run` saying exactly what the
//! run then does, `diff`, and every refusal up front with nothing changed.
//! Run by `tests/run` (tests/vm/run-guest-tests.sh); ignored by plain
//! `cargo test`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::images::*;
use common::*;

const V1: &str = "Node-1.0-0";
const V2: &str = "Node-2.0-0";
const SELINUX: &str = "security.selinux";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The vendor's 1.0 tree: accounts, and one file per merge case.
fn vendor_v1(work: &Work) -> PathBuf {
    let t = sample_tree(work, "v1", Some(V1));
    let etc = t.join("etc");
    write(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n\
         olddaemon:x:990:990::/:/sbin/nologin\n",
    );
    write(
        &etc.join("group"),
        "root:x:0:\nbin:x:1:\nolddaemon:x:990:\n",
    );
    write(
        &etc.join("shadow"),
        "root:!locked::0:99999:7:::\nbin:*:19000::::::\nolddaemon:*:19000::::::\n",
    );
    for f in [
        "changed-by-admin.conf",
        "changed-by-vendor.conf",
        "changed-by-both.conf",
        "deleted-by-admin.conf",
        "deleted-by-vendor.conf",
        "becomes-dir",
        "labelled.conf",
    ] {
        write(&etc.join(f), "v1\n");
    }
    set_xattr(
        &etc.join("labelled.conf"),
        SELINUX,
        b"system_u:object_r:etc_t:s0\0",
    );
    write(&etc.join("fstab"), "# vendor 1\n");
    write(&etc.join("evil/conf"), "v1\n");
    t
}

/// Where a hostile 2.0 image's link points: nothing may land there.
const OUTSIDE: &str = "/tmp/imgbase-update-outside";

/// 2.0: the vendor's changes on top of 1.0.
fn vendor_v2(work: &Work, v1: &Path) -> PathBuf {
    let t = work.trees().join("v2");
    copy_tree(v1, &t);
    set_nvr(&t, V2);
    let etc = t.join("etc");
    write(&etc.join("changed-by-vendor.conf"), "v2\n");
    write(&etc.join("changed-by-both.conf"), "v2\n");
    write(&etc.join("becomes-dir"), "v2\n");
    write(&etc.join("vendor-new.conf"), "new in v2\n");
    fs::remove_file(etc.join("deleted-by-vendor.conf")).unwrap();
    // A directory the admin changed something in becomes a link out of
    // the layer: writing the admin's file through it would land outside.
    fs::remove_dir_all(etc.join("evil")).unwrap();
    std::os::unix::fs::symlink(OUTSIDE, etc.join("evil")).unwrap();
    write(&etc.join("hostname"), "vendor-default\n");
    write(&etc.join("fstab"), "# vendor 2\n");
    // A new system account; olddaemon is gone from the image.
    write(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n\
         chrony:x:995:995::/var/lib/chrony:/sbin/nologin\n",
    );
    write(&etc.join("group"), "root:x:0:\nbin:x:1:\nchrony:x:995:\n");
    write(
        &etc.join("shadow"),
        "root:!locked::0:99999:7:::\nbin:*:19000::::::\nchrony:!*:19500::::::\n",
    );
    fs::set_permissions(etc.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    t
}

/// What the admin does on the running layer.
fn admin_changes(root: &Path, vg: &str, layer: &str) {
    let etc = root.join("etc");
    write(&etc.join("changed-by-admin.conf"), "admin\n");
    write(&etc.join("changed-by-both.conf"), "admin\n");
    write(&etc.join("added-by-admin.conf"), "mine\n");
    write(&etc.join("evil/conf"), "admin\n");
    fs::remove_file(etc.join("deleted-by-admin.conf")).unwrap();
    // A file the admin replaced by a directory (the vendor changes the file).
    fs::remove_file(etc.join("becomes-dir")).unwrap();
    write(&etc.join("becomes-dir/inside.conf"), "admin's dir\n");
    write(&etc.join("hostname"), "node-17\n");
    write(
        &etc.join("fstab"),
        &format!("/dev/{vg}/{layer} / ext4 defaults 1 1\n"),
    );
    set_xattr(
        &etc.join("labelled.conf"),
        SELINUX,
        b"system_u:object_r:admin_home_t:s0\0",
    );
    // A local user, with a password and a file it owns.
    let mut passwd = read(&etc.join("passwd"));
    passwd.push_str("alice:x:1000:1000:Alice:/home/alice:/bin/bash\n");
    write(&etc.join("passwd"), &passwd);
    let mut group = read(&etc.join("group"));
    group.push_str("alice:x:1000:\n");
    write(&etc.join("group"), &group);
    let mut shadow = read(&etc.join("shadow"));
    shadow.push_str("alice:$6$salt$hashofalice:19600:0:99999:7:::\n");
    write(&etc.join("shadow"), &shadow);
    // olddaemon still owns a file: the account must survive the update.
    write(&root.join("var/lib/olddaemon/state"), "x\n");
    std::os::unix::fs::lchown(root.join("var/lib/olddaemon/state"), Some(990), Some(990)).unwrap();
    write(&root.join("var/log/admin.log"), "admin's log\n");
}

struct Setup {
    vg: TestVg,
    work: Work,
    v2: PathBuf,
}

/// A node on 1.0 (`+1`) whose /etc the admin changed, and the 2.0 image.
fn setup(name: &str) -> Setup {
    let vg = TestVg::new(name, 1024, 700);
    let work = Work::new();
    let t1 = vendor_v1(&work);
    let t2 = vendor_v2(&work, &t1);
    let i1 = ext4_image(&t1, &work.file("v1.ext4"), 64);
    let v2 = ext4_image(&t2, &work.file("v2.ext4"), 64);
    vg.init("Node-0.9-0");
    vg.ok(&["base", "--add", "--from", s(&i1)]);
    vg.ok(&["layer", "--add", V1]);
    let layer = format!("{V1}+1");
    {
        let m = Mount::new(&vg.dev(&layer), "rw");
        admin_changes(m.path(), &vg.name, &layer);
    }
    Setup { vg, work, v2 }
}

fn outcome(decisions: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = decisions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_string(),
                d["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn an_update_carries_the_admins_configuration_path_by_path() {
    let Setup { vg, work, v2 } = setup("ibupd1");
    let new = format!("{V2}+1");
    let _ = fs::remove_dir_all(OUTSIDE);
    fs::create_dir(OUTSIDE).unwrap();

    // The preview names every decision, and changes nothing.
    let before = vg.state();
    let dry = json(&vg.ok(&["--dry-run", "--json", "update", s(&v2)]));
    assert_eq!(vg.state(), before, "--dry-run changed the VG");
    let planned = outcome(&dry["etc"]["decisions"]);
    assert!(!planned.is_empty(), "no decisions in {dry}");

    let done = json(&vg.ok(&["--json", "update", s(&v2)]));
    assert_eq!(done["created"], serde_json::json!([V2, new]), "{done}");
    // The run did exactly what the preview said.
    assert_eq!(outcome(&done["report"]["decisions"]), planned);
    let saved = vg.state_dir().join(format!("updates/{new}.json"));
    let saved = json(&read(&saved));
    assert_eq!(saved["decisions"], done["report"]["decisions"]);

    let want = |path: &str, outcome: &str| {
        assert!(
            planned.contains(&(format!("etc/{path}"), outcome.to_string())),
            "etc/{path} is not {outcome}: {planned:?}"
        );
    };
    want("changed-by-admin.conf", "kept");
    want("changed-by-vendor.conf", "taken");
    want("changed-by-both.conf", "conflict");
    want("deleted-by-admin.conf", "removed-by-admin");
    want("deleted-by-vendor.conf", "deleted");
    want("added-by-admin.conf", "kept");
    want("becomes-dir", "type-conflict");
    want("hostname", "pinned");
    want("labelled.conf", "kept");
    want("passwd", "merged");
    want("evil", "type-conflict");

    let m = Mount::new(&vg.dev(&new), "ro");
    let etc = m.path().join("etc");
    let text = |f: &str| read(&etc.join(f));
    assert_eq!(text("changed-by-admin.conf"), "admin\n");
    assert_eq!(text("changed-by-vendor.conf"), "v2\n");
    assert_eq!(text("changed-by-both.conf"), "admin\n");
    assert_eq!(text("changed-by-both.conf.imgnew"), "v2\n");
    assert!(!etc.join("deleted-by-admin.conf").exists());
    assert!(!etc.join("deleted-by-vendor.conf").exists());
    assert_eq!(text("added-by-admin.conf"), "mine\n");
    assert_eq!(text("vendor-new.conf"), "new in v2\n");
    assert_eq!(text("becomes-dir/inside.conf"), "admin's dir\n");
    assert_eq!(text("becomes-dir.imgnew"), "v2\n");
    assert_eq!(text("hostname"), "node-17\n");
    // The image's link went aside; nothing was written through it.
    assert_eq!(text("evil/conf"), "admin\n");
    assert_eq!(
        fs::read_link(etc.join("evil.imgnew")).unwrap(),
        Path::new(OUTSIDE)
    );
    assert_eq!(
        fs::read_dir(OUTSIDE).unwrap().count(),
        0,
        "written outside the layer"
    );
    assert!(
        !etc.join("hostname.imgnew").exists(),
        "a kept path got an .imgnew"
    );
    assert_eq!(
        xattrs_of(&etc.join("labelled.conf"))[SELINUX],
        b"system_u:object_r:admin_home_t:s0\0"
    );
    // Accounts: the local user with its password, the new system account,
    // the removed one that still owns a file.
    let passwd = text("passwd");
    for user in ["root:", "alice:x:1000", "chrony:x:995", "olddaemon:x:990"] {
        assert!(passwd.contains(user), "{user} missing from {passwd}");
    }
    let shadow = text("shadow");
    assert!(shadow.contains("alice:$6$salt$hashofalice"), "{shadow}");
    assert!(shadow.contains("chrony:"), "{shadow}");
    assert_eq!(
        fs::metadata(etc.join("shadow")).unwrap().mode() & 0o777,
        0o600
    );
    // The root entry follows the layer; /var came along.
    assert_eq!(
        text("fstab"),
        format!("/dev/{}/{new} / ext4 defaults 1 1\n", vg.name)
    );
    assert_eq!(read(&m.path().join("var/log/admin.log")), "admin's log\n");
    drop(m);

    // diff: the admin's changes on the old layer, and `check` lists the
    // new layer's unresolved conflicts only when booted (not here).
    let diff = json(&vg.ok(&["--json", "diff", &format!("{V1}+1")]));
    let changed: Vec<&str> = diff["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(changed.contains(&"etc/changed-by-admin.conf"), "{diff}");
    assert!(
        diff["deleted"].to_string().contains("deleted-by-admin"),
        "{diff}"
    );
    assert!(
        diff["added"].to_string().contains("added-by-admin"),
        "{diff}"
    );
    drop(work);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn refusals_come_up_front_and_change_nothing() {
    let Setup { vg, work, v2 } = setup("ibupd2");
    // An older image, and one of another product.
    let t = work.trees().join("v2");
    set_nvr(&t, "Node-0.9-0");
    let older = ext4_image(&t, &work.file("older.ext4"), 64);
    vg.refused(&["update", s(&older)], "not newer");
    set_nvr(&t, "Other-2.0-0");
    let other = ext4_image(&t, &work.file("other.ext4"), 64);
    vg.refused(&["update", s(&other)], "another product");
    // A pool that would pass the configured threshold.
    let conf = work.file("imgbase.conf");
    fs::write(&conf, "[update]\npool_threshold = 2\n").unwrap();
    vg.refused(&["--config", s(&conf), "update", s(&v2)], "limit");
    // A bad config file is one line naming it.
    fs::write(&conf, "[update]\npool_treshold = 2\n").unwrap();
    vg.refused(
        &["--config", s(&conf), "update", s(&v2)],
        "imgbase.conf is not valid",
    );
    // Another operation holds the lock.
    let mut holder = std::process::Command::new("flock")
        // -o: the lock stays with flock itself, not with sleep, so killing
        // flock releases it.
        .args(["-o", s(&vg.lock), "sleep", "20"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    vg.refused(&["update", s(&v2)], "imgbase");
    holder.kill().unwrap();
    holder.wait().unwrap();
    // And the update then works.
    vg.ok(&["update", s(&v2)]);
    assert!(vg.names().contains(&format!("{V2}+1")));
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn a_shared_var_volume_gets_the_images_new_files_and_keeps_its_own() {
    let Setup { vg, work, v2 } = setup("ibupd3");
    // /var on a volume of its own, as imgbased lays nodes out.
    vg.thin("var", 64, &["imgbased:volume"]);
    sh("mkfs.ext4", &["-q", "-F", &vg.dev("var")]);
    {
        let m = Mount::new(&vg.dev("var"), "rw");
        write(&m.path().join("log/admin.log"), "the node's own log\n");
        write(&m.path().join("lib/olddaemon/state"), "kept\n");
    }
    let layer = format!("{V1}+1");
    {
        let m = Mount::new(&vg.dev(&layer), "rw");
        write(
            &m.path().join("etc/fstab"),
            &format!(
                "/dev/{0}/{layer} / ext4 defaults 1 1\n/dev/{0}/var /var ext4 defaults 1 2\n",
                vg.name
            ),
        );
    }
    // The image brings a file the volume lacks, and one it has.
    let t = work.trees().join("v2");
    write(&t.join("var/lib/newpkg/data"), "from 2.0\n");
    write(&t.join("var/log/admin.log"), "the image's\n");
    let v2b = ext4_image(&t, &work.file("v2b.ext4"), 64);
    let _ = v2;
    let done = json(&vg.ok(&["--json", "update", s(&v2b)]));
    let added = done["report"]["var_added"].to_string();
    assert!(added.contains("var/lib/newpkg/data"), "{done}");
    assert!(!added.contains("admin.log"), "{done}");
    let m = Mount::new(&vg.dev("var"), "ro");
    assert_eq!(read(&m.path().join("lib/newpkg/data")), "from 2.0\n");
    assert_eq!(
        read(&m.path().join("log/admin.log")),
        "the node's own log\n"
    );
    assert_eq!(read(&m.path().join("lib/olddaemon/state")), "kept\n");
    drop(m);
    // The volume is never collected.
    vg.ok(&["gc", "--keep", "1"]);
    assert!(vg.names().contains(&"var".to_string()));
}
