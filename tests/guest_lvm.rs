//! Guest tier: every verb on a real LVM thin pool (loop devices in the
//! QEMU guest), happy paths and refusals, comparing the whole `lvs`
//! report before and after each refused command.
//! Run by `tests/run` (tests/vm/run-guest-tests.sh); ignored by plain
//! `cargo test`, and failing loudly if forced to run outside the guest.

mod common;

use common::*;

#[test]
#[ignore = "guest tier: run by tests/run"]
fn init_adopts_an_ext4_root() {
    let vg = TestVg::new("gInit", 512, 256);
    vg.thin_with_fs("root", 64, "ext4");
    let out = vg.ok(&[
        "layout",
        "--init",
        "--from",
        "gInit/root",
        "--nvr",
        "Node-1.0-0",
    ]);
    assert_eq!(out, "Created Node-1.0-0\nCreated Node-1.0-0+1\n");

    // Tagged exactly as imgbased tags a node.
    assert!(lvm(&["vgs", "--noheadings", "-o", "vg_tags", "gInit"]).contains("imgbased:vg"));
    assert!(vg.tags("pool").contains(&"imgbased:pool".to_string()));
    assert!(vg.tags("root").contains(&"imgbased:init".to_string()));
    assert!(vg.tags("Node-1.0-0").contains(&"imgbased:base".to_string()));
    assert!(
        vg.tags("Node-1.0-0+1")
            .contains(&"imgbased:layer".to_string())
    );
    assert_eq!(vg.names(), ["Node-1.0-0", "Node-1.0-0+1", "pool", "root"]);

    // Base: read-only, activation skip, inactive. Layer: writable, active, no skip.
    let base = vg.attr("Node-1.0-0");
    assert_eq!(&base[1..2], "r", "{base}");
    assert_eq!(&base[9..10], "k", "{base}");
    let layer = vg.attr("Node-1.0-0+1");
    assert_eq!(&layer[1..2], "w", "{layer}");
    assert_eq!(&layer[4..5], "a", "{layer}");
    assert_eq!(&layer[9..10], "-", "{layer}");
    // The installed root, as imgbased leaves it: read-only, activation skip.
    let root = vg.attr("root");
    assert_eq!(&root[1..2], "r", "{root}");
    assert_eq!(&root[9..10], "k", "{root}");

    // The layer holds the root's files, under a filesystem UUID of its own.
    let m = Mount::new(&vg.dev("Node-1.0-0+1"), "rw");
    assert_eq!(
        std::fs::read_to_string(m.path().join("marker")).unwrap(),
        "root"
    );
    std::fs::write(m.path().join("written"), "yes").unwrap();
    drop(m);
    assert_ne!(fs_uuid(&vg.dev("root")), fs_uuid(&vg.dev("Node-1.0-0+1")));

    assert_eq!(vg.ok(&["layout"]), "Node-1.0-0\n +- Node-1.0-0+1\n");
    // Without --vg the tagged VG is found by itself.
    let out = vg.imgbase_raw(&["layout", "--bases"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Node-1.0-0\n");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn init_adopts_an_xfs_root_from_its_mount_point_and_reads_the_nvr() {
    let vg = TestVg::new("gXfs", 768, 512);
    vg.thin_with_fs("root", 320, "xfs");
    // The root is mounted (as a running system's is) and records its NVR.
    let m = Mount::new(&vg.dev("root"), "rw");
    let meta = m.path().join("usr/share/imgbase/build/meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("nvr"), "Appliance-4.5.0-0.20220307.0\n").unwrap();
    let from = m.path().to_str().unwrap().to_string();
    vg.ok(&["layout", "--init", "--from", &from]);
    assert_eq!(
        vg.ok(&["layout"]),
        "Appliance-4.5.0-0.20220307.0\n +- Appliance-4.5.0-0.20220307.0+1\n"
    );
    // A mounted root keeps its write permission; it only skips activation.
    let root = vg.attr("root");
    assert_eq!(&root[1..2], "w", "{root}");
    assert_eq!(&root[9..10], "k", "{root}");
    // The new layer mounts beside its still-mounted origin: new UUID, clean log.
    let layer = vg.dev("Appliance-4.5.0-0.20220307.0+1");
    assert_ne!(fs_uuid(&layer), fs_uuid(&vg.dev("root")));
    let l = Mount::new(&layer, "rw");
    assert!(l.path().join("marker").exists());
    drop(l);
    drop(m);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn init_from_a_device_path_and_its_refusals() {
    let vg = TestVg::new("gInitBad", 512, 256);
    lvm(&["lvcreate", "-qq", "-L", "16M", "-n", "linear", "gInitBad"]);
    vg.thin_with_fs("root", 64, "ext4");
    vg.refused(
        &[
            "layout",
            "--init",
            "--from",
            "gInitBad/linear",
            "--nvr",
            "N-1-0",
        ],
        "not a thin LV",
    );
    vg.refused(
        &[
            "layout",
            "--init",
            "--from",
            "gInitBad/nope",
            "--nvr",
            "N-1-0",
        ],
        "not a logical volume",
    );
    vg.refused(
        &[
            "layout",
            "--init",
            "--from",
            "gInitBad/root",
            "--nvr",
            "N-1",
        ],
        "Name-Version-Release",
    );
    vg.refused(
        &["layout", "--init", "--from", "gInitBad/root"],
        "pass it with --nvr",
    );
    vg.refused(
        &[
            "layout",
            "--init",
            "--from",
            "gInitBad/root",
            "--nvr",
            "root-1-0+1",
        ],
        "layer",
    );
    let dev = vg.dev("root");
    vg.ok(&["layout", "--init-nvr", "Node-1-0", "--from", &dev]);
    vg.refused(
        &["layout", "--init", "--from", &dev, "--nvr", "Node-2-0"],
        "already exists",
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn reads_a_node_tagged_by_hand_as_imgbased_does() {
    let vg = TestVg::new("gCompat", 512, 256);
    let v = "gCompat";
    // What imgbased's init and update leave: tags, read-only bases with
    // activation skip, the init base also tagged as a layer.
    lvm(&["vgchange", "--addtag", "imgbased:vg", v]);
    lvm(&[
        "lvchange",
        "--addtag",
        "imgbased:pool",
        &format!("{v}/pool"),
    ]);
    vg.thin_with_fs("root", 32, "ext4");
    lvm(&[
        "lvchange",
        "--addtag",
        "imgbased:init",
        &format!("{v}/root"),
    ]);
    let base = |name: &str, origin: Option<&str>, tags: &[&str]| {
        match origin {
            Some(o) => lvm(&["lvcreate", "-qq", "-s", "-n", name, &format!("{v}/{o}")]),
            None => lvm(&[
                "lvcreate",
                "-qq",
                "--thin",
                "-V",
                "32M",
                "-n",
                name,
                &format!("{v}/pool"),
            ]),
        };
        for t in tags {
            lvm(&["lvchange", "--addtag", t, &format!("{v}/{name}")]);
        }
        lvm(&["lvchange", "--permission", "r", &format!("{v}/{name}")]);
        lvm(&[
            "lvchange",
            "--setactivationskip",
            "y",
            &format!("{v}/{name}"),
        ]);
    };
    let layer = |name: &str, origin: &str| {
        lvm(&[
            "lvcreate",
            "-qq",
            "-s",
            "-n",
            name,
            &format!("{v}/{origin}"),
        ]);
        lvm(&[
            "lvchange",
            "--addtag",
            "imgbased:layer",
            &format!("{v}/{name}"),
        ]);
        lvm(&["lvchange", "-ay", "-K", &format!("{v}/{name}")]);
        lvm(&[
            "lvchange",
            "--setactivationskip",
            "n",
            &format!("{v}/{name}"),
        ]);
    };
    base(
        "rhvh-4.4.10-0.20220303.0",
        Some("root"),
        &["imgbased:base", "imgbased:layer"],
    );
    layer("rhvh-4.4.10-0.20220303.0+1", "rhvh-4.4.10-0.20220303.0");
    base("rhvh-4.5.0-0.20220307.0", None, &["imgbased:base"]);
    layer("rhvh-4.5.0-0.20220307.0+1", "rhvh-4.5.0-0.20220307.0");
    lvm(&[
        "lvcreate",
        "-qq",
        "--thin",
        "-V",
        "16M",
        "-n",
        "var",
        &format!("{v}/pool"),
    ]);
    lvm(&[
        "lvchange",
        "--addtag",
        "imgbased:volume",
        &format!("{v}/var"),
    ]);

    assert_eq!(
        vg.imgbase_raw(&["layout"]).stdout,
        b"rhvh-4.4.10-0.20220303.0\n +- rhvh-4.4.10-0.20220303.0+1\n\
          rhvh-4.5.0-0.20220307.0\n +- rhvh-4.5.0-0.20220307.0+1\n"
    );
    let json: serde_json::Value = serde_json::from_str(&vg.ok(&["--json", "layout"])).unwrap();
    assert_eq!(json["pool"]["name"], "pool");
    assert_eq!(json["init_lv"], "root");
    assert_eq!(json["bases"][0]["read_only"], true);
    assert_eq!(json["bases"][0]["activation_skip"], true);
    assert_eq!(
        json["bases"][1]["layers"][0]["name"],
        "rhvh-4.5.0-0.20220307.0+1"
    );
    assert_eq!(vg.ok(&["base", "--latest"]), "rhvh-4.5.0-0.20220307.0\n");
    assert_eq!(vg.ok(&["layer", "--latest"]), "rhvh-4.5.0-0.20220307.0+1\n");
    // And imgbase manages it: a new layer on the newest base.
    vg.ok(&["layer", "--add"]);
    assert!(
        vg.names()
            .contains(&"rhvh-4.5.0-0.20220307.0+2".to_string())
    );
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn bases_and_layers_come_and_go() {
    let vg = TestVg::new("gVerbs", 512, 256);
    vg.init("Node-1.0-0");
    assert_eq!(
        vg.ok(&["base", "--add", "Node-13-0", "--size", "128M"]),
        "Created Node-13-0\n"
    );
    vg.ok(&["base", "--add", "Node-2-0", "--size", "64M"]);
    let a = vg.attr("Node-13-0");
    assert!(a.starts_with("Vri") && a.ends_with('k'), "{a}");
    assert_eq!(
        vg.ok(&["base", "--latest"]),
        "Node-13-0\n",
        "rpm order, not string order"
    );

    assert_eq!(
        vg.ok(&["layer", "--add", "Node-13-0"]),
        "Created Node-13-0+1\n"
    );
    let a = vg.attr("Node-13-0+1");
    assert!(a.starts_with("Vwi-a") && !a.ends_with('k'), "{a}");
    vg.ok(&["layer", "--add", "Node-13-0+1"]);
    vg.ok(&["layer", "--add"]);
    assert_eq!(
        vg.ok(&["layout", "--layers"]),
        "Node-1.0-0+1\nNode-13-0+1\nNode-13-0+2\nNode-13-0+3\n"
    );
    assert_eq!(vg.ok(&["layer", "--latest"]), "Node-13-0+3\n");
    assert_eq!(vg.ok(&["base", "--of-layer", "Node-13-0+2"]), "Node-13-0\n");
    assert_eq!(
        vg.ok(&["layer", "--volume-path", "Node-13-0+2"]),
        "/dev/gVerbs/Node-13-0+2\n"
    );

    // A removed layer's number is never handed out again.
    assert_eq!(
        vg.ok(&["layer", "--remove", "Node-13-0+3"]),
        "Removed Node-13-0+3\n"
    );
    assert_eq!(
        vg.ok(&["layer", "--add", "Node-13-0"]),
        "Created Node-13-0+4\n"
    );

    assert_eq!(
        vg.ok(&["base", "--remove", "Node-2-0"]),
        "Removed Node-2-0\n"
    );
    vg.ok(&["base", "--remove", "Node-13-0"]);
    assert_eq!(vg.names(), ["Node-1.0-0", "Node-1.0-0+1", "pool", "root"]);
    let free: f64 = vg.ok(&["layout", "--free-space"]).trim().parse().unwrap();
    assert!(free > 0.0 && free <= 256.0, "{free}");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn the_booted_layer_is_known_and_protected() {
    let vg = TestVg::new("gBoot", 512, 256);
    vg.init("Node-1.0-0");
    vg.ok(&["base", "--add", "Node-2.0-0", "--size", "64M"]);
    vg.ok(&["layer", "--add", "Node-2.0-0"]);
    vg.ok(&["layer", "--add", "Node-1.0-0"]);
    // Pretend the system runs from Node-1.0-0+1: its root is mounted there.
    let m = Mount::new(&vg.dev("Node-1.0-0+1"), "ro");
    let root = m.path().to_str().unwrap().to_string();
    let out = vg.ok(&["--root", &root, "w"]);
    assert_eq!(out, "You are on Node-1.0-0+1\n");
    assert_eq!(
        vg.ok(&["--root", &root, "layer", "--current"]),
        "Node-1.0-0+1\n"
    );
    vg.refused(
        &["--root", &root, "layer", "--remove", "Node-1.0-0+1"],
        "booted from it",
    );
    vg.refused(
        &["--root", &root, "base", "--remove", "Node-1.0-0"],
        "booted from its layer",
    );
    vg.refused(
        &["--root", &root, "layer", "--remove", "Node-2.0-0+1"],
        "only layer of the newest base",
    );
    // Not booted from a layer: `w` says so and fails.
    let out = vg.imgbase(&["w"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not booted from a layer"));
    drop(m);
    vg.ok(&["layer", "--remove", "Node-1.0-0+2"]);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn bad_input_changes_nothing() {
    let vg = TestVg::new("gBad", 512, 256);
    vg.init("Node-1.0-0");
    vg.refused(
        &["base", "--add", "Node 2-0-0", "--size", "8M"],
        "not allowed",
    );
    vg.refused(
        &["base", "--add", "Node-1.0-0", "--size", "8M"],
        "already exists",
    );
    vg.refused(&["base", "--add", "root-1-0+1", "--size", "8M"], "layer");
    vg.refused(
        &["base", "--add", "pool", "--size", "8M"],
        "Name-Version-Release",
    );
    vg.refused(
        &["base", "--add", "Node_tmeta-1-0", "--size", "8M"],
        "reserved",
    );
    vg.refused(
        &["base", "--add", "Node-2-0", "--size", "0"],
        "invalid size",
    );
    vg.refused(
        &["base", "--add", "Node-2-0", "--size", "10G"],
        "larger than the thin pool",
    );
    vg.refused(&["base", "--remove", "Nope-1-0"], "no base named");
    vg.refused(&["base", "--remove", "Node-1.0-0"], "only base");
    vg.refused(&["base", "--of-layer", "Nope-1-0+1"], "no layer named");
    vg.refused(&["layer", "--add", "Nope-1-0"], "no base or layer named");
    vg.refused(&["layer", "--remove", "Node-1.0-0+7"], "no layer named");
    vg.refused(
        &["layer", "--remove", "Node-1.0-0+1"],
        "only layer of the newest base",
    );
    vg.refused(&["layer", "--remove", "root"], "no layer named");
    // Missing VG, and a VG with no layout.
    let out = vg.imgbase_raw(&["--vg", "NoSuchVG", "layer", "--add"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("volume group NoSuchVG not found"));
    // Missing pool tag.
    let before = vg.state();
    lvm(&["lvchange", "--deltag", "imgbased:pool", "gBad/pool"]);
    let mid = vg.state();
    let out = vg.imgbase(&["layer", "--add"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no thin pool tagged imgbased:pool"));
    assert_eq!(vg.state(), mid);
    lvm(&["lvchange", "--addtag", "imgbased:pool", "gBad/pool"]);
    assert_eq!(vg.state(), before);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn a_second_concurrent_run_is_refused() {
    let vg = TestVg::new("gLock", 512, 256);
    vg.init("Node-1.0-0");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&vg.lock)
        .unwrap();
    file.lock().unwrap();
    std::fs::write(&vg.lock, "pid 1: imgbase layer --add\n").unwrap();
    vg.refused(
        &["layer", "--add"],
        "another imgbase operation is running (pid 1: imgbase layer --add)",
    );
    drop(file);
    vg.ok(&["layer", "--add"]);
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn a_full_pool_is_refused() {
    let vg = TestVg::new("gFull", 512, 64);
    vg.init("Node-1.0-0");
    // Error at once rather than queue writes when the pool runs out.
    lvm(&["lvchange", "--errorwhenfull", "y", "gFull/pool"]);
    // Fill the layer (and so the pool) past 95%, 2 MiB at a time.
    let m = Mount::new(&vg.dev("Node-1.0-0+1"), "rw");
    for i in 0.. {
        let pct: f64 = lvm(&["lvs", "--noheadings", "-o", "data_percent", "gFull/pool"])
            .trim()
            .parse()
            .unwrap();
        if pct >= 96.0 || i > 40 {
            break;
        }
        sh(
            "dd",
            &[
                "if=/dev/urandom",
                "bs=1M",
                "count=2",
                "conv=fsync",
                &format!("of={}/fill{i}", m.path().display()),
            ],
        );
    }
    drop(m);
    vg.refused(&["layer", "--add"], "full");
}

/// `lvm` wrapped so a test can count calls, or make the call whose
/// arguments contain `fail_on` fail.
fn lvm_wrapper(dir: &std::path::Path, fail_on: &str) -> std::path::PathBuf {
    let path = dir.join("lvm");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$*\" in *\"{fail}\"*) echo 'injected failure' >&2; exit 5;; esac\nexec lvm \"$@\"\n",
        log = dir.join("calls").display(),
        fail = if fail_on.is_empty() {
            "__never__"
        } else {
            fail_on
        },
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The lvm command lines one imgbase run spawns (it must succeed).
fn lvm_calls(
    dir: &std::path::Path,
    wrapper: &std::path::Path,
    vg: &TestVg,
    args: &[&str],
) -> String {
    let _ = std::fs::remove_file(dir.join("calls"));
    let out = std::process::Command::new(IMGBASE)
        .args(args)
        .env("IMGBASE_LVM", wrapper)
        .env("IMGBASE_LOCK_FILE", &vg.lock)
        .env("IMGBASE_STATE_DIR", vg.state_dir())
        .env("IMGBASE_LOADER", "none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("calls")).unwrap()
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn layout_spawns_one_lvm_process_and_layer_add_four() {
    let vg = TestVg::new("gCount", 512, 256);
    vg.init("Node-1.0-0");
    for i in 0..3 {
        vg.ok(&[
            "base",
            "--add",
            &format!("Node-{}-0", i + 2),
            "--size",
            "16M",
        ]);
    }
    let dir = tempfile::tempdir().unwrap();
    let wrapper = lvm_wrapper(dir.path(), "");
    for args in [
        &["layout"][..],
        &["--json", "layout"],
        &["layer", "--latest"],
        &["base", "--latest"],
    ] {
        let calls = lvm_calls(dir.path(), &wrapper, &vg, args);
        assert_eq!(
            calls.lines().count(),
            1,
            "{args:?} ran lvm more than once: {calls}"
        );
    }
    // A new layer: the report, the snapshot (tagged and active at birth),
    // the rename and the final tags; nothing more, whatever the VG holds
    // (imgbased spawns ~90 at 20 LVs). The pool's boot tag is not asked
    // for: no loader here.
    let calls = lvm_calls(
        dir.path(),
        &wrapper,
        &vg,
        &["--vg", "gCount", "layer", "--add"],
    );
    assert_eq!(calls.lines().count(), 4, "layer --add: {calls}");
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn a_failing_step_leaves_the_vg_as_it_was() {
    let vg = TestVg::new("gUndo", 512, 256);
    vg.init("Node-1.0-0");
    let dir = tempfile::tempdir().unwrap();
    // The first creation, the rename, and the very last step (the retag).
    for fail in ["lvcreate", "lvrename", "--deltag imgbase:incomplete"] {
        let wrapper = lvm_wrapper(dir.path(), fail);
        let before = vg.state();
        for args in [
            &["layer", "--add"][..],
            &["base", "--add", "Node-2-0", "--size", "16M"],
        ] {
            let out = std::process::Command::new(IMGBASE)
                .args(["--vg", "gUndo"])
                .args(args)
                .env("IMGBASE_LVM", &wrapper)
                .env("IMGBASE_LOCK_FILE", &vg.lock)
                .env("IMGBASE_STATE_DIR", vg.state_dir())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("undone"), "{err}");
            assert_eq!(vg.state(), before, "{args:?} failing at {fail}");
        }
    }
}

#[test]
#[ignore = "guest tier: run by tests/run"]
fn an_interrupted_run_is_cleared_by_the_next() {
    let vg = TestVg::new("gCrash", 512, 256);
    vg.init("Node-1.0-0");
    // A run that died after its snapshot, before the rename.
    lvm(&[
        "lvcreate",
        "-qq",
        "-s",
        "-kn",
        "-n",
        "imgbase-tmp-Node-1.0-0+2",
        "--addtag",
        "imgbase:incomplete",
        "gCrash/Node-1.0-0",
    ]);
    assert_eq!(
        vg.ok(&["layout"]),
        "Node-1.0-0\n +- Node-1.0-0+1\n",
        "leftovers are not shown as layers"
    );
    vg.ok(&["layer", "--add"]);
    assert_eq!(
        vg.names(),
        ["Node-1.0-0", "Node-1.0-0+1", "Node-1.0-0+2", "pool", "root"]
    );
    assert!(vg.names().iter().all(|n| !n.starts_with("imgbase-tmp-")));
}
