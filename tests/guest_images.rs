//! Guest tier: filling bases from OS images (`imgbase base --add [NVR]
//! --from IMAGE`) and exporting them (`base --export`), on real LVM thin
//! pools with real images built by tests/common/images.rs: ext4 and xfs
//! filesystem images, oVirt Node liveimgs, qcow2/vmdk, root-tree tarballs,
//! bundles, http:// URLs; and every bad input, which must leave no LV, no
//! tag and no file behind.
//! Run by `tests/run` (tests/vm/run-guest-tests.sh); ignored by plain
//! `cargo test`, and failing loudly if forced to run outside the guest.
//!
//! The first two tests check the builders and the HTTP server alone (no
//! imgbase), so they pass before the import code exists.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::images::*;
use common::*;

const FIRST: &str = "Node-1.0-0";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

const MIB: u64 = 1 << 20;

/// `base --add [NVR] --from IMAGE [extra…]`, which must succeed; stdout.
fn add(vg: &TestVg, nvr: Option<&str>, from: &str, extra: &[&str]) -> String {
    let t0 = Instant::now();
    let out = vg.ok(&add_args(nvr, from, extra));
    eprintln!(
        "[{:6.1}s] base --add {nvr:?} --from {from} {extra:?}",
        t0.elapsed().as_secs_f64()
    );
    out
}

fn add_args<'a>(nvr: Option<&'a str>, from: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["base", "--add"];
    a.extend(nvr);
    a.extend(["--from", from]);
    a.extend_from_slice(extra);
    a
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

// ---------------------------------------------------------------------------
// The builders themselves (no imgbase)
// ---------------------------------------------------------------------------

#[test]
#[ignore = "guest tier: run by tests/run"]
fn builders_make_real_images() {
    let w = Work::new();
    let tree = sample_tree(&w, "t", Some("Node-2.0-0"));
    assert_eq!(
        fs::read_to_string(tree.join("usr/share/imgbase/build/meta/nvr")).unwrap(),
        "Node-2.0-0\n"
    );
    assert_eq!(
        xattrs_of(&tree.join("etc/hostname"))["user.test"],
        b"imgbase test xattr"
    );
    assert!(xattrs_of(&tree.join("etc/acl-file")).contains_key("system.posix_acl_access"));
    assert_eq!(
        xattrs_of(&tree.join("etc/shadow"))[SELINUX],
        b"system_u:object_r:shadow_t:s0\0"
    );
    let md = fs::symlink_metadata(tree.join("etc/owned-by-1234")).unwrap();
    assert_eq!((md.uid(), md.gid()), (OWNED_UID, OWNED_GID));
    assert_eq!(
        fs::symlink_metadata(tree.join("usr/bin/helper"))
            .unwrap()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_same_tree(&tree, &tree);

    // The comparison sees each kind of difference.
    let copy = w.trees().join("copy");
    copy_tree(&tree, &copy);
    assert_same_tree(&tree, &copy);
    fs::write(copy.join("etc/hostname"), "nodf\n").unwrap();
    set_xattr(&copy.join("etc/acl-file"), "user.test", b"new");
    set_xattr(
        &copy.join("usr/bin"),
        SELINUX,
        b"system_u:object_r:etc_t:s0\0",
    );
    sh("chmod", &["0644", s(&copy.join("etc/shadow"))]);
    sh("chown", &["-h", "1:1", s(&copy.join("etc/owned-by-1234"))]);
    fs::remove_file(copy.join("etc/mtab")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", copy.join("etc/mtab")).unwrap();
    fs::remove_file(copy.join("dev/null")).unwrap();
    sh(
        "mknod",
        &["-m", "0666", s(&copy.join("dev/null")), "c", "1", "5"],
    );
    fs::remove_file(copy.join("usr/lib/libdemo.so.1.hardlink")).unwrap();
    fs::copy(
        copy.join("usr/lib/libdemo.so.1"),
        copy.join("usr/lib/libdemo.so.1.hardlink"),
    )
    .unwrap();
    fs::remove_file(copy.join("run/initctl")).unwrap();
    fs::write(copy.join("extra"), "x").unwrap();
    let diffs = tree_differences(&tree, &copy).join("\n");
    for want in [
        "~ etc/hostname  content differs from byte 3",
        "~ etc/acl-file  xattrs",
        "~ usr/bin  xattrs",
        "~ etc/shadow  perm 0600 != 0644",
        "~ etc/owned-by-1234  uid 1234 != 1; gid 5678 != 1",
        "~ etc/mtab  target",
        "~ dev/null  rdev Some((1, 3)) != Some((1, 5))",
        "are not one inode",
        "- run/initctl  (fifo) missing",
        "+ extra  (file) unexpected",
    ] {
        assert!(diffs.contains(want), "{want:?} not in:\n{diffs}");
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| assert_same_tree(&tree, &copy));
    std::panic::set_hook(hook);
    assert!(caught.is_err(), "assert_same_tree passed different trees");

    // ext4 by mkfs.ext4 -d: sparse, and a loop mount holds the tree.
    let ext4 = ext4_image(&tree, &w.file("root.ext4"), 32);
    assert_eq!(fs_type(s(&ext4)), "ext4");
    assert_eq!(fs::metadata(&ext4).unwrap().len(), 32 * MIB);
    assert!(
        allocated(&ext4) < 16 * MIB,
        "not sparse: {}",
        allocated(&ext4)
    );
    with_image_mounted(&ext4, |m| assert_same_tree(&tree, m));

    // xfs by mkfs.xfs + cp -a.
    let xfs = xfs_image(&tree, &w.file("root.xfs"), 300);
    assert_eq!(fs_type(s(&xfs)), "xfs");
    assert!(
        allocated(&xfs) < 64 * MIB,
        "not sparse: {}",
        allocated(&xfs)
    );
    with_image_mounted(&xfs, |m| assert_same_tree(&tree, m));

    // liveimg: squashfs with LiveOS/rootfs.img, byte for byte the ext4.
    let live = liveimg(&ext4, &w.file("node.squashfs"));
    assert_eq!(fs_type(s(&live)), "squashfs");
    let m = tempfile::tempdir().unwrap();
    sh("mount", &["-o", "loop,ro", s(&live), s(m.path())]);
    let same = fs::read(m.path().join("LiveOS/rootfs.img")).unwrap() == fs::read(&ext4).unwrap();
    sh("umount", &[s(m.path())]);
    assert!(same, "LiveOS/rootfs.img differs from the ext4 image");

    // Disk images: the whole disk is the filesystem.
    for fmt in ["qcow2", "vmdk"] {
        let img = disk_image(&ext4, &w.file(&format!("root.{fmt}")), fmt);
        let info = json(&sh("qemu-img", &["info", "--output=json", s(&img)]));
        assert_eq!(info["format"], fmt);
        assert_eq!(info["virtual-size"], 32 * MIB);
        assert!(info.get("backing-filename").is_none(), "{info}");
        sh(
            "qemu-img",
            &["compare", "-q", "-f", "raw", "-F", fmt, s(&ext4), s(&img)],
        );
    }
    let back = qcow2_with_backing(&ext4, &w.file("overlay.qcow2"));
    let info = json(&sh("qemu-img", &["info", "--output=json", s(&back)]));
    assert!(
        info["backing-filename"]
            .as_str()
            .unwrap()
            .ends_with("root.ext4"),
        "{info}"
    );
    let ext = qcow2_with_data_file(&ext4, &w.file("external.qcow2"));
    let info = json(&sh("qemu-img", &["info", "--output=json", s(&ext)]));
    assert!(
        info["format-specific"]["data"]["data-file"]
            .as_str()
            .unwrap()
            .ends_with("external.qcow2.data"),
        "{info}"
    );
    sh(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            "raw",
            "-F",
            "qcow2",
            s(&ext4),
            s(&ext),
        ],
    );

    // Tarballs: GNU tar extracts them back to the same tree.
    for (c, ext, magic) in [
        (Compression::None, "tar", "POSIX tar archive"),
        (Compression::Gzip, "tar.gz", "gzip compressed data"),
        (Compression::Zstd, "tar.zst", "Zstandard compressed data"),
    ] {
        let t = tar_image(&tree, &w.file(&format!("root.{ext}")), c);
        let f = sh("file", &["-b", s(&t)]);
        assert!(f.contains(magic), "{ext}: {f}");
        let listing = sh("tar", &["-tvf", s(&t)]);
        assert!(
            listing.contains("./usr/share/imgbase/build/meta/nvr"),
            "{listing}"
        );
        let x = w.trees().join(format!("x-{ext}"));
        fs::create_dir(&x).unwrap();
        sh(
            "tar",
            &[
                "-x",
                "-p",
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "--numeric-owner",
                "-f",
                s(&t),
                "-C",
                s(&x),
            ],
        );
        assert_same_tree(&tree, &x);
    }

    // Unsafe tarballs hold what they claim.
    for k in Evil::ALL {
        let t = evil_tar(&w.file(&format!("evil-{k:?}.tar")), k, "Node-6.0-0");
        let names = sh(
            "python3",
            &[
                "-c",
                "import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name, m.linkname)",
                s(&t),
            ],
        );
        let want = match k {
            Evil::DotDot => "../escaped ",
            Evil::InnerDotDot => "usr/../../escaped ",
            Evil::Absolute => "/etc/escaped ",
            Evil::SymlinkEscape => "etc/escape ../../outside",
            Evil::HardlinkEscape => "etc/hard-escape ../outside",
        };
        assert!(
            names.lines().any(|l| l.starts_with(want)),
            "{k:?}: {want:?} not in {names}"
        );
        assert!(
            names.contains("usr/share/imgbase/build/meta/nvr"),
            "{names}"
        );
    }

    // SHA256SUMS as sha256sum writes it.
    let sums = write_sha256sums(&ext4, None);
    let out = Command::new("sha256sum")
        .args(["-c", "--ignore-missing", "SHA256SUMS"])
        .current_dir(sums.parent().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "root.ext4: OK\n");
    write_sha256sums(&ext4, Some(&"ab".repeat(32)));
    let out = Command::new("sha256sum")
        .args(["-c", "--ignore-missing", "SHA256SUMS"])
        .current_dir(sums.parent().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn http_server_knobs_work() {
    let w = Work::new();
    let dir = w.file("srv");
    fs::create_dir(&dir).unwrap();
    let body = pseudo_random(2 * MIB as usize, 3);
    fs::write(dir.join("f.bin"), &body).unwrap();
    fs::write(dir.join("g.bin"), &body).unwrap();
    let srv = HttpServer::start(
        &dir,
        &ServeOpts {
            fail_first: vec![("/f.bin".into(), 2)],
            cut_once: vec!["/f.bin".into()],
            ..Default::default()
        },
    );
    let part = w.file("part");
    let code = |args: &[&str]| {
        let out = curl(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let url = srv.url("f.bin");
    let o = s(&part);
    assert_eq!(code(&["-o", o, "-w", "%{http_code}", &url]).1, "503");
    assert_eq!(code(&["-o", o, "-w", "%{http_code}", &url]).1, "503");
    // Cut mid-body: curl reports a partial transfer (18), half the file.
    let (rc, _) = code(&["-o", o, &url]);
    assert_eq!(rc, Some(18));
    assert_eq!(fs::metadata(&part).unwrap().len(), MIB);
    // Resume with Range.
    let (rc, c) = code(&["-C", "-", "-o", o, "-w", "%{http_code}", &url]);
    assert_eq!((rc, c.as_str()), (Some(0), "206"));
    assert!(fs::read(&part).unwrap() == body, "resumed file differs");
    assert_eq!(
        code(&["-o", "/dev/null", "-w", "%{http_code}", &srv.url("nope")]).1,
        "404"
    );
    let reqs = srv.requests_for("/f.bin");
    let st: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(st, [503, 503, 200, 206], "{reqs:?}");
    assert_eq!(reqs[2].bytes, MIB);
    assert_eq!((reqs[3].start, reqs[3].bytes), (MIB, MIB));
    assert_eq!(srv.bytes_sent("/f.bin"), 2 * MIB);
    assert_eq!(srv.counts()["/nope"], 1);
    drop(srv);

    // Throttled, and without ranges.
    let srv = HttpServer::start(
        &dir,
        &ServeOpts {
            rate: 2 * MIB,
            no_ranges: true,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    let (rc, c) = code(&[
        "-o",
        o,
        "-r",
        "100-",
        "-w",
        "%{http_code}",
        &srv.url("g.bin"),
    ]);
    assert_eq!((rc, c.as_str()), (Some(0), "200"));
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(fs::metadata(&part).unwrap().len(), 2 * MIB);
    drop(srv);

    let (rc, _) = code(&["-o", o, &format!("http://127.0.0.1:{}/x", free_port())]);
    assert_eq!(rc, Some(7), "connection refused");
}

// ---------------------------------------------------------------------------
// One source kind at a time
// ---------------------------------------------------------------------------

#[test]
#[ignore = "guest tier: run by tests/run"]
fn imports_raw_ext4_images_once_each() {
    let w = Work::new();
    let vg = TestVg::new("gImgExt4", 1024, 512);
    vg.init(FIRST);

    // Sparse image, NVR from its own metadata, default size.
    let tree = sample_tree(&w, "a", Some("Node-2.0-0"));
    let img = ext4_image(&tree, &w.file("a.ext4"), 32);
    assert!(allocated(&img) < 32 * MIB);
    assert_eq!(add(&vg, None, s(&img), &[]), "Created Node-2.0-0\n");
    let fs = check_base(&vg, "Node-2.0-0", &tree, Some(&sha256_hex(&img)));
    assert_eq!(fs, "ext4");
    assert!(lv_size(&vg, "Node-2.0-0") >= 32 * MIB);

    // Importing it again, or the same bytes under another name (with its
    // sum given), is a no-op that names the base.
    let before = vg.state();
    let again = add(&vg, None, s(&img), &[]);
    assert!(again.contains("Node-2.0-0"), "{again:?}");
    assert!(!again.contains("Created"), "{again:?}");
    assert_eq!(vg.state(), before);
    let copy = w.file("renamed.img");
    copy_sparse(&img, &copy);
    let again = add(&vg, None, s(&copy), &["--sha256", &sha256_hex(&img)]);
    assert!(again.contains("Node-2.0-0"), "{again:?}");
    assert_eq!(vg.state(), before);

    // Not sparse; an explicit NVR wins over the image's; grown to --size;
    // progress as JSON lines on stderr.
    let tree = sample_tree(&w, "b", Some("Other-9.9-9"));
    add_payload(&tree, 8, 5);
    let sparse = ext4_image(&tree, &w.file("b.sparse"), 32);
    let img = w.file("b.ext4");
    sh("cp", &["--sparse=never", s(&sparse), s(&img)]);
    assert_eq!(allocated(&img), 32 * MIB);
    let out = vg.imgbase(&add_args(
        Some("Node-3.0-0"),
        s(&img),
        &["--size", "80M", "--progress=json"],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Created Node-3.0-0\n");
    assert!(!err.trim().is_empty(), "no progress on stderr");
    for l in err.lines() {
        let v: serde_json::Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l:?}\n{err}"));
        assert!(v.is_object(), "not an object: {l}");
    }
    assert_eq!(lv_size(&vg, "Node-3.0-0"), 80 * MIB);
    check_base(&vg, "Node-3.0-0", &tree, Some(&sha256_hex(&img)));
    assert!(!vg.names().iter().any(|n| n.starts_with("Other")));
    assert_eq!(
        vg.ok(&["layout", "--bases"]),
        "Node-1.0-0\nNode-2.0-0\nNode-3.0-0\n"
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn imports_a_raw_xfs_image() {
    let w = Work::new();
    let vg = TestVg::new("gImgXfs", 1536, 1024);
    vg.init(FIRST);
    let tree = sample_tree(&w, "x", Some("Node-2.0-0"));
    let img = xfs_image(&tree, &w.file("x.xfs"), 300);
    assert_eq!(
        add(&vg, None, s(&img), &["--size", "320M"]),
        "Created Node-2.0-0\n"
    );
    assert_eq!(lv_size(&vg, "Node-2.0-0"), 320 * MIB);
    let fs = check_base(&vg, "Node-2.0-0", &tree, Some(&sha256_hex(&img)));
    assert_eq!(fs, "xfs");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn imports_a_liveimg_and_disk_images() {
    let w = Work::new();
    let vg = TestVg::new("gImgLive", 1024, 512);
    vg.init(FIRST);

    // oVirt Node's liveimg: squashfs holding LiveOS/rootfs.img (ext4).
    let nvr = "ovirt-node-ng-4.5.5-0.20240101.0";
    let tree = sample_tree(&w, "l", Some(nvr));
    let rootfs = ext4_image(&tree, &w.file("rootfs.img"), 48);
    let live = liveimg(&rootfs, &w.file("ovirt-node-ng-image.squashfs.img"));
    assert_eq!(add(&vg, None, s(&live), &[]), format!("Created {nvr}\n"));
    let fs = check_base(&vg, nvr, &tree, Some(&sha256_hex(&live)));
    assert_eq!(fs, "ext4");
    assert!(lv_size(&vg, nvr) >= 48 * MIB);

    // Disk images whose whole disk is the filesystem: vmdk with an explicit
    // NVR, qcow2 with the one its root tree records.
    for (nvr, fmt, given) in [("Node-5.0-0", "vmdk", true), ("Node-6.0-0", "qcow2", false)] {
        let tree = sample_tree(&w, fmt, Some(nvr));
        let raw = ext4_image(&tree, &w.file(&format!("{fmt}.raw")), 32);
        let img = disk_image(&raw, &w.file(&format!("disk.{fmt}")), fmt);
        fs::remove_file(&raw).unwrap();
        assert_eq!(
            add(&vg, given.then_some(nvr), s(&img), &[]),
            format!("Created {nvr}\n")
        );
        check_base(&vg, nvr, &tree, Some(&sha256_hex(&img)));
        assert!(lv_size(&vg, nvr) >= 32 * MIB);
    }
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn imports_root_trees_from_tarballs() {
    let w = Work::new();
    let vg = TestVg::new("gImgTar", 1024, 512);
    vg.init(FIRST);
    let tree = sample_tree(&w, "t", Some("Node-5.0-0"));
    let zst = tar_image(&tree, &w.file("root.tar.zst"), Compression::Zstd);
    let gz = tar_image(&tree, &w.file("root.tar.gz"), Compression::Gzip);
    let plain = tar_image(&tree, &w.file("root.tar"), Compression::None);

    // Owners, modes, hardlinks, devices, fifos, xattrs, ACLs: all kept
    // (check_base compares them all).
    assert_eq!(add(&vg, None, s(&zst), &[]), "Created Node-5.0-0\n");
    let fs = check_base(&vg, "Node-5.0-0", &tree, Some(&sha256_hex(&zst)));
    assert_eq!(fs, "ext4", "a root tree is unpacked into a new ext4");

    assert_eq!(
        add(&vg, Some("Node-5.1-0"), s(&gz), &[]),
        "Created Node-5.1-0\n"
    );
    check_base(&vg, "Node-5.1-0", &tree, Some(&sha256_hex(&gz)));

    assert_eq!(
        add(&vg, Some("Node-5.2-0"), s(&plain), &["--size", "32M"]),
        "Created Node-5.2-0\n"
    );
    assert_eq!(lv_size(&vg, "Node-5.2-0"), 32 * MIB);
    check_base(&vg, "Node-5.2-0", &tree, Some(&sha256_hex(&plain)));
}

// ---------------------------------------------------------------------------
// Checksums, re-imports, deltas, bundles, progress
// ---------------------------------------------------------------------------

#[test]
#[ignore = "guest tier: run by tests/run"]
fn checksums_are_verified_before_anything_is_created() {
    let w = Work::new();
    let vg = TestVg::new("gImgSum", 1024, 512);
    vg.init(FIRST);
    let image = |name: &str, nvr: &str| {
        let tree = sample_tree(&w, name, Some(nvr));
        let dir = w.file(name);
        fs::create_dir(&dir).unwrap();
        (
            ext4_image(&tree, &dir.join(format!("{name}.ext4")), 16),
            tree,
        )
    };

    let (a, ta) = image("a", "Node-2.0-0");
    let ha = sha256_hex(&a);
    assert_eq!(
        add(&vg, None, s(&a), &["--sha256", &ha]),
        "Created Node-2.0-0\n"
    );
    check_base(&vg, "Node-2.0-0", &ta, Some(&ha));

    let (b, tb) = image("b", "Node-3.0-0");
    write_sha256sums(&b, None);
    assert_eq!(add(&vg, None, s(&b), &[]), "Created Node-3.0-0\n");
    check_base(&vg, "Node-3.0-0", &tb, Some(&sha256_hex(&b)));

    let digest_words = ["sha256", "checksum", "digest"];
    let (c, _) = image("c", "Node-4.0-0");
    let wrong = "0123456789abcdef".repeat(4);
    refused_clean(
        &vg,
        &add_args(None, s(&c), &["--sha256", &wrong]),
        &digest_words,
    );
    write_sha256sums(&c, Some(&wrong));
    refused_clean(&vg, &add_args(None, s(&c), &[]), &digest_words);
    refused_clean(
        &vg,
        &add_args(Some("Node-4.0-0"), s(&c), &["--size", "64M"]),
        &digest_words,
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn a_delta_import_writes_only_the_changed_blocks() {
    let w = Work::new();
    let vg = TestVg::new("gImgDelta", 1024, 512);
    vg.init(FIRST);

    // A: 16 MiB of incompressible payload in a 64 MiB ext4.
    let ta = sample_tree(&w, "a", Some("Node-2.0-0"));
    add_payload(&ta, 16, 1);
    let a = ext4_image(&ta, &w.file("a.ext4"), 64);
    assert_eq!(add(&vg, None, s(&a), &[]), "Created Node-2.0-0\n");

    // B: A updated in place (as a new build of the same image would be):
    // two small files changed, one 256 KiB file added.
    let edit = |root: &Path, nvr: &str, seed: u64| {
        set_nvr(root, nvr);
        fs::write(root.join("etc/hostname"), format!("{nvr}\n")).unwrap();
        fs::write(
            root.join(format!("usr/share/payload/new{seed}")),
            pseudo_random(256 << 10, seed),
        )
        .unwrap();
    };
    let change = |img: &Path, tree: &Path, nvr: &str, seed: u64| {
        with_image_mounted(img, |m| edit(m, nvr, seed));
        edit(tree, nvr, seed);
    };
    let b = w.file("b.ext4");
    copy_sparse(&a, &b);
    let tb = w.trees().join("b");
    copy_tree(&ta, &tb);
    change(&b, &tb, "Node-2.1-0", 2);

    let used0 = pool_used(&vg);
    assert_eq!(add(&vg, None, s(&b), &[]), "Created Node-2.1-0\n");
    let delta = pool_used(&vg) - used0;
    assert_eq!(
        lv_origin(&vg, "Node-2.1-0"),
        "Node-2.0-0",
        "not a snapshot of the previous base"
    );

    // C: one more change, imported in full.
    let c = w.file("c.ext4");
    copy_sparse(&b, &c);
    let tc = w.trees().join("c");
    copy_tree(&tb, &tc);
    change(&c, &tc, "Node-2.2-0", 3);
    let used1 = pool_used(&vg);
    assert_eq!(
        add(&vg, None, s(&c), &["--no-delta"]),
        "Created Node-2.2-0\n"
    );
    let full = pool_used(&vg) - used1;
    assert_eq!(lv_origin(&vg, "Node-2.2-0"), "");

    eprintln!("pool growth: delta {delta} bytes, full {full} bytes");
    assert!(
        full >= 15 * MIB,
        "a full import of 16+ MiB of data grew the pool by {full}"
    );
    assert!(
        delta * 4 < full && delta < 8 * MIB,
        "delta import grew the pool by {delta} bytes, a full one by {full}"
    );
    check_base(&vg, "Node-2.1-0", &tb, Some(&sha256_hex(&b)));
    check_base(&vg, "Node-2.2-0", &tc, Some(&sha256_hex(&c)));
    // The previous base is untouched by its delta child.
    check_base(&vg, "Node-2.0-0", &ta, Some(&sha256_hex(&a)));
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn an_exported_bundle_imports_on_a_fresh_vg() {
    let w = Work::new();
    let tree = sample_tree(&w, "a", Some("Node-2.0-0"));
    let img = ext4_image(&tree, &w.file("a.ext4"), 32);
    let bundle = w.file("Node-2.0-0.tar.zst");
    {
        let vg = TestVg::new("gImgExpA", 512, 256);
        vg.init(FIRST);
        add(&vg, None, s(&img), &[]);
        let before = vg.state();
        vg.ok(&["base", "--export", "Node-2.0-0", "-o", s(&bundle)]);
        assert_eq!(vg.state(), before, "export changed the VG");
    }
    let list = sh("tar", &["--zstd", "-tf", s(&bundle)]);
    let names: Vec<&str> = list.lines().map(|l| l.trim_start_matches("./")).collect();
    assert!(
        names.contains(&"manifest.json") && names.contains(&"image.raw"),
        "{list}"
    );
    let manifest = names
        .iter()
        .position(|n| *n == "manifest.json")
        .map(|i| list.lines().nth(i).unwrap())
        .unwrap();
    let m = json(&sh("tar", &["--zstd", "-xOf", s(&bundle), manifest]));
    assert!(m.is_object(), "{m}");

    let vg = TestVg::new("gImgExpB", 512, 256);
    vg.init(FIRST);
    assert_eq!(add(&vg, None, s(&bundle), &[]), "Created Node-2.0-0\n");
    check_base(&vg, "Node-2.0-0", &tree, None);
    // A bundle with a broken end is refused.
    let cut = w.file("cut.tar.zst");
    fs::copy(&bundle, &cut).unwrap();
    let len = fs::metadata(&cut).unwrap().len();
    sh("truncate", &["-s", &(len / 2).to_string(), s(&cut)]);
    refused_clean(&vg, &add_args(Some("Node-3.0-0"), s(&cut), &[]), &[]);
}

// ---------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------

#[test]
#[ignore = "guest tier: run by tests/run"]
fn url_imports_retry_resume_and_give_up() {
    let w = Work::new();
    let vg = TestVg::new("gImgUrl", 1024, 512);
    vg.init(FIRST);
    let srv_dir = w.file("srv");
    fs::create_dir(&srv_dir).unwrap();
    let ta = sample_tree(&w, "a", Some("Node-2.0-0"));
    add_payload(&ta, 4, 11);
    let a = ext4_image(&ta, &srv_dir.join("a.raw"), 24);
    let tb = sample_tree(&w, "b", Some("Node-3.0-0"));
    add_payload(&tb, 4, 12);
    let b = ext4_image(&tb, &srv_dir.join("b.raw"), 24);
    // An image from a URL is verified against the SHA256SUMS beside it.
    fs::write(
        srv_dir.join("SHA256SUMS"),
        format!("{}  a.raw\n{}  b.raw\n", sha256_hex(&a), sha256_hex(&b)),
    )
    .unwrap();
    let srv = HttpServer::start(
        &srv_dir,
        &ServeOpts {
            fail_first: vec![("/a.raw".into(), 2), ("/busy.raw".into(), 1000)],
            cut_once: vec!["/b.raw".into()],
            ..Default::default()
        },
    );

    // 503, 503, then the file.
    assert_eq!(
        add(&vg, None, &srv.url("a.raw"), &[]),
        "Created Node-2.0-0\n"
    );
    let reqs = srv.requests_for("/a.raw");
    assert_eq!(
        reqs.iter().filter(|r| r.status == 503).count(),
        2,
        "{reqs:?}"
    );
    assert!(
        reqs.iter().any(|r| r.status == 200 || r.status == 206),
        "{reqs:?}"
    );
    check_base(&vg, "Node-2.0-0", &ta, Some(&sha256_hex(&a)));

    // Cut after half the body: the retry resumes with a Range.
    let size = fs::metadata(&b).unwrap().len();
    assert_eq!(
        add(&vg, None, &srv.url("b.raw"), &["--sha256", &sha256_hex(&b)]),
        "Created Node-3.0-0\n"
    );
    let reqs = srv.requests_for("/b.raw");
    let gets: Vec<&Request> = reqs.iter().filter(|r| r.method == "GET").collect();
    assert!(
        gets.iter().any(|r| r.bytes > 0 && r.bytes < r.length),
        "no cut request: {gets:?}"
    );
    assert!(
        gets.iter().any(|r| r.status == 206 && r.start > 0),
        "no resumed (Range) request after the cut: {gets:?}"
    );
    let sent = srv.bytes_sent("/b.raw");
    assert!(
        sent < size + size / 4,
        "{sent} bytes sent for a {size}-byte file: restarted, not resumed"
    );
    check_base(&vg, "Node-3.0-0", &tb, Some(&sha256_hex(&b)));

    // Failures after the retries: refused, nothing left behind.
    fs::copy(&a, srv_dir.join("busy.raw")).unwrap();
    refused_clean(
        &vg,
        &add_args(
            Some("Node-9.0-0"),
            &srv.url("missing.raw"),
            &["--no-verify"],
        ),
        &["404", "not found"],
    );
    refused_clean(
        &vg,
        &add_args(Some("Node-9.0-0"), &srv.url("busy.raw"), &["--no-verify"]),
        &["503", "unavailable"],
    );
    let tries = srv
        .requests_for("/busy.raw")
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert!(tries >= 2, "a 503 was not retried ({tries} GET)");
    let dead = format!("http://127.0.0.1:{}/a.raw", free_port());
    refused_clean(
        &vg,
        &add_args(Some("Node-9.0-0"), &dead, &[]),
        &["refused", "connect"],
    );
    assert_eq!(
        vg.ok(&["layout", "--bases"]),
        "Node-1.0-0\nNode-2.0-0\nNode-3.0-0\n"
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn concurrent_imports_of_one_url_download_it_once() {
    let w = Work::new();
    let vg = TestVg::new("gImgUrl2", 1024, 512);
    vg.init(FIRST);
    let srv_dir = w.file("srv");
    fs::create_dir(&srv_dir).unwrap();
    let tree = sample_tree(&w, "c", Some("Node-2.0-0"));
    add_payload(&tree, 4, 21);
    let img = ext4_image(&tree, &srv_dir.join("c.raw"), 24);
    let size = fs::metadata(&img).unwrap().len();
    let hex = sha256_hex(&img);
    // ~3 s per download, so the two runs overlap.
    let srv = HttpServer::start(
        &srv_dir,
        &ServeOpts {
            rate: 8 * MIB,
            ..Default::default()
        },
    );
    let url = srv.url("c.raw");
    let args = add_args(None, &url, &["--sha256", &hex]);
    let one = spawn_imgbase(&vg, &args);
    std::thread::sleep(Duration::from_millis(300));
    let two = spawn_imgbase(&vg, &args);
    let one = one.wait_with_output().unwrap();
    let two = two.wait_with_output().unwrap();
    let outs: Vec<String> = [&one, &two]
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    assert_eq!(
        outs.iter().filter(|o| *o == "Created Node-2.0-0\n").count(),
        1,
        "{outs:?}"
    );
    assert!(outs.iter().all(|o| o.contains("Node-2.0-0")), "{outs:?}");
    let sent = srv.bytes_sent("/c.raw");
    assert!(
        sent >= size && sent < size + size / 4,
        "{sent} bytes served for a {size}-byte image: {:?}",
        srv.requests_for("/c.raw")
    );
    assert_eq!(vg.ok(&["layout", "--bases"]), "Node-1.0-0\nNode-2.0-0\n");
    check_base(&vg, "Node-2.0-0", &tree, Some(&hex));
}

// ---------------------------------------------------------------------------
// Bad inputs: exit 1, one line, nothing left behind
// ---------------------------------------------------------------------------

#[test]
#[ignore = "guest tier: run by tests/run"]
fn broken_and_unknown_images_are_refused() {
    let w = Work::new();
    let vg = TestVg::new("gImgBad", 1024, 512);
    vg.init(FIRST);
    let tree = sample_tree(&w, "t", Some("Node-2.0-0"));
    add_payload(&tree, 4, 31);
    let raw = ext4_image(&tree, &w.file("good.ext4"), 32);
    // With an NVR given, so that the refusal comes from reading the image,
    // not from looking for its NVR.
    let refuse = |img: &Path, words: &[&str]| {
        refused_clean(&vg, &add_args(Some("Node-9.0-0"), s(img), &[]), words);
    };

    // Truncated filesystem image, with and without an NVR given.
    let t = w.file("truncated.ext4");
    copy_sparse(&raw, &t);
    sh("truncate", &["-s", "16M", s(&t)]);
    refuse(&t, &[]);
    refused_clean(&vg, &add_args(None, s(&t), &[]), &[]);

    // Truncated tar.zst; tar.gz with garbage in the middle.
    let z = tar_image(&tree, &w.file("cut.tar.zst"), Compression::Zstd);
    let len = fs::metadata(&z).unwrap().len();
    sh("truncate", &["-s", &(len * 6 / 10).to_string(), s(&z)]);
    refuse(&z, &[]);
    let g = tar_image(&tree, &w.file("corrupt.tar.gz"), Compression::Gzip);
    let len = fs::metadata(&g).unwrap().len();
    overwrite_at(&g, len / 2, &[0xA5; 256]);
    refuse(&g, &[]);

    // A liveimg whose inode table is garbage.
    let live = liveimg(&raw, &w.file("corrupt.squashfs"));
    let sb = fs::read(&live).unwrap();
    let inode_table = u64::from_le_bytes(sb[64..72].try_into().unwrap());
    overwrite_at(&live, inode_table, &[0xFF; 256]);
    refuse(&live, &[]);

    // A qcow2 whose L1 table offset is invalid (qemu-img cannot open it).
    let q = qcow2(&raw, &w.file("corrupt.qcow2"));
    overwrite_at(&q, 40, &0x201u64.to_be_bytes());
    refuse(&q, &[]);

    // Not an image at all.
    let junk = w.file("mystery.img");
    fs::write(&junk, pseudo_random(4 * MIB as usize, 99)).unwrap();
    refuse(&junk, &[]);
    let empty = w.file("empty.img");
    fs::write(&empty, "").unwrap();
    refuse(&empty, &[]);

    // qcow2 that names other files.
    let back = qcow2_with_backing(&raw, &w.file("overlay.qcow2"));
    // The refusal names the other file or what it is.
    refuse(&back, &["backing", "good.ext4"]);
    let ext = qcow2_with_data_file(&raw, &w.file("external.qcow2"));
    refuse(
        &ext,
        &["data file", "data-file", "data_file", "external.qcow2.data"],
    );

    // Missing file.
    refuse(&w.file("no-such-image.raw"), &[]);

    assert_eq!(vg.ok(&["layout", "--bases"]), "Node-1.0-0\n");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn tarballs_escaping_the_root_are_refused() {
    let w = Work::new();
    let vg = TestVg::new("gImgEvil", 512, 256);
    vg.init(FIRST);
    for k in Evil::ALL {
        let t = evil_tar(&w.file(&format!("evil-{k:?}.tar")), k, "Node-6.0-0");
        refused_clean(&vg, &add_args(None, s(&t), &[]), k.culprit());
    }
    // Compressed, the same.
    let t = evil_tar(&w.file("evil.tar"), Evil::DotDot, "Node-6.0-0");
    let z = w.file("evil.tar.zst");
    sh("zstd", &["-q", "-f", s(&t), "-o", s(&z)]);
    refused_clean(&vg, &add_args(None, s(&z), &[]), Evil::DotDot.culprit());
    for p in [
        "/escaped",
        "/etc/escaped",
        "/outside",
        "/tmp/escaped",
        "/tmp/outside",
    ] {
        assert!(!Path::new(p).exists(), "{p} was written");
    }
    assert_eq!(vg.ok(&["layout", "--bases"]), "Node-1.0-0\n");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn images_that_do_not_fit_are_refused() {
    let w = Work::new();
    // 48 MiB of pool; the first base and layer take a few of them.
    let vg = TestVg::new("gImgSize", 256, 48);
    vg.init(FIRST);
    let tree = sample_tree(&w, "a", Some("Node-2.0-0"));
    let img = ext4_image(&tree, &w.file("a.ext4"), 32);
    refused_clean(&vg, &add_args(None, s(&img), &["--size", "16M"]), &["size"]);

    // 56 MiB of incompressible data cannot fit in what is left of 48 MiB.
    let big = sample_tree(&w, "big", Some("Node-3.0-0"));
    add_payload(&big, 56, 41);
    let img = ext4_image(&big, &w.file("big.ext4"), 96);
    let err = refused_clean(&vg, &add_args(None, s(&img), &[]), &["pool"]);
    assert!(
        err.chars().any(|c| c.is_ascii_digit()),
        "does not say how much is missing: {err}"
    );
    assert_eq!(vg.ok(&["layout", "--bases"]), "Node-1.0-0\n");
}

// ---------------------------------------------------------------------------
// Hostile images: nothing in them reaches outside them
// ---------------------------------------------------------------------------

/// A ustar header block (name, size field, type), checksummed.
fn tar_header(name: &str, size: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(512) * 512, 0);
}

/// A pax record block ("LEN key=value\n" with LEN counting itself).
fn pax(kind: u8, records: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = format!(" {k}={v}\n");
        let mut len = rest.len() + 1;
        while format!("{len}{rest}").len() != len {
            len += 1;
        }
        body.extend_from_slice(format!("{len}{rest}").as_bytes());
    }
    let mut out = tar_header("./PaxHeaders/x", body.len() as u64, kind).to_vec();
    out.extend_from_slice(&body);
    pad(&mut out);
    out
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn hostile_images_cannot_reach_outside_themselves() {
    let w = Work::new();
    let vg = TestVg::new("gImgEvil", 1024, 512);
    vg.init(FIRST);
    let secret = w.file("host-secret.img");
    let tree = sample_tree(&w, "s", Some("Secret-1.0-0"));
    ext4_image(&tree, &secret, 16);

    // A VMDK text descriptor whose extent is a host file (or device).
    for target in ["/etc/shadow", s(&secret), "/dev/vda"] {
        let vmdk = w.file("evil.vmdk");
        fs::write(
            &vmdk,
            format!(
                "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                 createType=\"monolithicFlat\"\n\nRW 32768 FLAT \"{target}\" 0\n\n\
                 ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"32\"\n\
                 ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n\
                 ddb.adapterType = \"ide\"\n"
            ),
        )
        .unwrap();
        refused_clean(
            &vg,
            &add_args(Some("Node-9.0-0"), s(&vmdk), &[]),
            &["descriptor"],
        );
    }

    // A liveimg whose LiveOS/rootfs.img is a symlink out of the squashfs.
    let src = w.file("sqsrc");
    fs::create_dir_all(src.join("LiveOS")).unwrap();
    std::os::unix::fs::symlink(&secret, src.join("LiveOS/rootfs.img")).unwrap();
    let sq = w.file("evil.squashfs");
    sh(
        "mksquashfs",
        &[s(&src), s(&sq), "-noappend", "-quiet", "-no-progress"],
    );
    refused_clean(&vg, &add_args(None, s(&sq), &[]), &["leads outside"]);
    // The same with a relative link climbing out.
    fs::remove_file(src.join("LiveOS/rootfs.img")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../../../etc/passwd",
        src.join("LiveOS/rootfs.img"),
    )
    .unwrap();
    sh(
        "mksquashfs",
        &[s(&src), s(&sq), "-noappend", "-quiet", "-no-progress"],
    );
    refused_clean(
        &vg,
        &add_args(Some("Node-9.0-0"), s(&sq), &[]),
        &["leads outside"],
    );

    // An ext4 image whose NVR file links to the host's NVR file: the NVR
    // is not taken from the host.
    let t2 = sample_tree(&w, "n", None);
    let nvr = t2.join("usr/share/imgbase/build/meta/nvr");
    fs::create_dir_all(nvr.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&nvr);
    let host_nvr = w.file("host-nvr");
    fs::write(&host_nvr, "Host-6.6-6\n").unwrap();
    std::os::unix::fs::symlink(&host_nvr, &nvr).unwrap();
    let img = ext4_image(&t2, &w.file("n.ext4"), 24);
    refused_clean(&vg, &add_args(None, s(&img), &[]), &["leads outside"]);

    // A tar whose pax size=0 hides a member from a validator that skips by
    // the header's size, but not from GNU tar.
    let mut hidden = tar_header("../escaped", 3, b'0').to_vec();
    hidden.extend_from_slice(b"bad");
    pad(&mut hidden);
    let mut t = pax(b'x', &[("size", "0")]);
    t.extend_from_slice(&tar_header("cover", hidden.len() as u64, b'0'));
    t.extend_from_slice(&hidden);
    t.extend_from_slice(&[0u8; 1024]);
    let tar = w.file("hidden.tar");
    fs::write(&tar, &t).unwrap();
    refused_clean(
        &vg,
        &add_args(Some("Node-9.0-0"), s(&tar), &[]),
        &["..", "refusing"],
    );

    // A tar whose global pax header renames what follows.
    let mut t = pax(b'g', &[("path", "../x")]);
    t.extend_from_slice(&tar_header("ok", 0, b'0'));
    t.extend_from_slice(&[0u8; 1024]);
    fs::write(&tar, &t).unwrap();
    refused_clean(
        &vg,
        &add_args(Some("Node-9.0-0"), s(&tar), &[]),
        &["global pax"],
    );

    // --vg that lvs would read as an option: a usage error, nothing run.
    let before = vg.state();
    let out = vg.imgbase_raw(&["--vg=-a", "base", "--add", "X-1-0", "--size", "8M"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(vg.state(), before);
    assert_eq!(vg.ok(&["layout", "--bases"]), "Node-1.0-0\n");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn url_images_must_be_verified_unless_told_not_to() {
    let w = Work::new();
    let vg = TestVg::new("gImgSums", 1024, 512);
    vg.init(FIRST);
    let srv_dir = w.file("srv");
    fs::create_dir(&srv_dir).unwrap();
    let ta = sample_tree(&w, "a", Some("Node-2.0-0"));
    let a = ext4_image(&ta, &srv_dir.join("a.raw"), 24);
    fs::write(
        srv_dir.join("SHA256SUMS"),
        format!("{}  a.raw\n", sha256_hex(&a)),
    )
    .unwrap();
    let srv = HttpServer::start(
        &srv_dir,
        &ServeOpts {
            fail_first: vec![("/SHA256SUMS".into(), 1000)],
            ..Default::default()
        },
    );
    // SHA256SUMS answers 503 (after retries): refused, not imported unchecked.
    refused_clean(
        &vg,
        &add_args(None, &srv.url("a.raw"), &[]),
        &["SHA256SUMS", "--no-verify"],
    );
    // With --no-verify it is imported.
    assert_eq!(
        add(&vg, None, &srv.url("a.raw"), &["--no-verify"]),
        "Created Node-2.0-0\n"
    );
    // A SHA256SUMS that does not list the image: refused too.
    let srv2_dir = w.file("srv2");
    fs::create_dir(&srv2_dir).unwrap();
    let tb = sample_tree(&w, "b", Some("Node-3.0-0"));
    ext4_image(&tb, &srv2_dir.join("b.raw"), 24);
    fs::write(
        srv2_dir.join("SHA256SUMS"),
        format!("{}  other.raw\n", "0".repeat(64)),
    )
    .unwrap();
    let srv2 = HttpServer::start(&srv2_dir, &ServeOpts::default());
    refused_clean(
        &vg,
        &add_args(None, &srv2.url("b.raw"), &[]),
        &["does not list b.raw"],
    );
}
