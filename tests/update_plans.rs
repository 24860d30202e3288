//! Tier 1: `imgbase update` plans against the in-memory LVM: the order of
//! the steps, where the configuration comes from, and every refusal up
//! front (older image, another product, a pool that would pass its
//! threshold).

use std::path::{Path, PathBuf};

use imgbase::image::detect::Format;
use imgbase::model::layout::Layout;
use imgbase::plan::{CarryStep, LvmStep, Plan, Step};
use imgbase::sys::fakes::FakeLvm;
use imgbase::sys::images::ImageInfo;
use imgbase::sys::lvm::{Lvm, Scope};
use imgbase::verbs::base::FromImage;
use imgbase::verbs::update::{Update, plan_update};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn node() -> FakeLvm {
    let f = FakeLvm::with_pool("HostVG", "pool", 20 * GIB);
    f.add_thin(
        "Node-1.0-0",
        2 * GIB,
        &["imgbased:base", "imgbase:fs=ext4", "imgbase:sha256=aa"],
    );
    f.add_thin("Node-1.0-0+1", 3 * GIB, &["imgbased:layer"]);
    f.add_thin("Node-1.0-0+2", 3 * GIB, &["imgbased:layer"]);
    f
}

fn layout_of(f: &FakeLvm) -> Layout {
    Layout::from_report(&f.report(&Scope::TaggedVgs).unwrap(), None, None).unwrap()
}

fn image(nvr: &str, data: u64) -> ImageInfo {
    ImageInfo {
        path: PathBuf::from("/images/node.img"),
        format: Format::Filesystem { fs: "ext4".into() },
        sha256: "bb".repeat(32),
        size: 2 * GIB,
        data_bytes: data,
        fs_type: Some("ext4".into()),
        nvr: Some(nvr.into()),
    }
}

fn update(f: &FakeLvm, info: &ImageInfo, force: bool, threshold: f64) -> Result<Plan, String> {
    let req = Update {
        image: FromImage {
            info,
            nvr: None,
            size: None,
            expected_sha256: None,
            allow_delta: true,
            force,
        },
        force,
        keep: vec!["etc/fstab".into()],
        pool_threshold: threshold,
        bases_to_keep: 2,
        state_dir: Path::new("/var/lib/imgbase"),
        trial: Some(1),
    };
    plan_update(&layout_of(f), None, &req).map_err(|e| e.to_string())
}

#[test]
fn an_update_is_a_base_then_a_layer_with_the_configuration_carried_over() {
    let f = node();
    let p = update(&f, &image("Node-2.0-0", 300 * MIB), false, 80.0).unwrap();
    assert_eq!(p.created, ["Node-2.0-0", "Node-2.0-0+1"]);
    let pos = |want: &dyn Fn(&Step) -> bool| p.steps.iter().position(want).unwrap();
    let base_named =
        pos(&|s| matches!(s, Step::Lvm(LvmStep::Rename { to, .. }) if to == "Node-2.0-0"));
    let layer_made = pos(&|s| {
        matches!(s, Step::Lvm(LvmStep::Snapshot { origin, lv, .. })
            if origin == "Node-2.0-0" && lv == "imgbase-tmp-Node-2.0-0+1")
    });
    let carried = pos(&|s| matches!(s, Step::Carry(_)));
    let layer_named =
        pos(&|s| matches!(s, Step::Lvm(LvmStep::Rename { to, .. }) if to == "Node-2.0-0+1"));
    assert!(base_named < layer_made && layer_made < carried && carried < layer_named);
    // Without a boot booted from the VG, the newest layer is the admin's.
    let Step::Carry(CarryStep::CarryConfig {
        admin,
        ancestor,
        layer,
        report,
        keep,
        ..
    }) = &p.steps[carried]
    else {
        unreachable!()
    };
    assert_eq!(admin, "Node-1.0-0+2");
    assert_eq!(ancestor, "Node-1.0-0");
    assert_eq!(layer, "imgbase-tmp-Node-2.0-0+1");
    assert_eq!(
        report,
        Path::new("/var/lib/imgbase/updates/Node-2.0-0+1.json")
    );
    assert_eq!(keep, &["etc/fstab"]);
    // Nothing before the end removes anything: a failure anywhere undoes.
    assert_eq!(p.point_of_no_return(), None);
}

#[test]
fn an_older_or_equal_image_or_another_product_is_refused_unless_forced() {
    let f = node();
    for nvr in ["Node-0.9-0", "Node-1.0-0", "Other-2.0-0"] {
        let e = update(&f, &image(nvr, 300 * MIB), false, 80.0).unwrap_err();
        assert!(e.contains("--force"), "{nvr}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = update(&f, &image("Node-0.9-0", 300 * MIB), false, 80.0).unwrap_err();
    assert!(e.contains("not newer"), "{e}");
    let e = update(&f, &image("Other-2.0-0", 300 * MIB), false, 80.0).unwrap_err();
    assert!(e.contains("another product"), "{e}");
    assert!(update(&f, &image("Node-0.9-0", 300 * MIB), true, 80.0).is_ok());
    assert!(update(&f, &image("Other-2.0-0", 300 * MIB), true, 80.0).is_ok());
}

#[test]
fn an_update_that_would_pass_the_pool_threshold_is_refused_up_front() {
    let f = node();
    // 17 GiB of a 20 GiB pool: 85% after the update.
    let big = image("Node-2.0-0", 17 * GIB);
    let e = update(&f, &big, false, 80.0).unwrap_err();
    assert!(e.contains("80% limit") && e.contains("imgbase gc"), "{e}");
    assert!(update(&f, &big, false, 90.0).is_ok());
}

#[test]
fn an_image_already_imported_is_refused_naming_the_layer_to_add() {
    let f = node();
    let mut info = image("Node-2.0-0", 300 * MIB);
    info.sha256 = "aa".into();
    // Same bytes as Node-1.0-0 but a newer name: already a base.
    let e = update(&f, &info, false, 80.0).unwrap_err();
    assert!(e.contains("already imported"), "{e}");
}

#[test]
fn an_update_collects_old_bases_last_past_the_default() {
    let f = node();
    f.add_thin(
        "Node-0.9-0",
        2 * GIB,
        &["imgbased:base", "imgbase:fs=ext4", "imgbase:sha256=99"],
    );
    f.add_thin("Node-0.9-0+1", 3 * GIB, &["imgbased:layer"]);
    let p = update(&f, &image("Node-2.0-0", 300 * MIB), false, 80.0).unwrap();
    assert_eq!(p.removed, ["Node-0.9-0+1", "Node-0.9-0"]);
    let ponr = p.point_of_no_return().expect("removals are final");
    let carried = p
        .steps
        .iter()
        .position(|s| matches!(s, Step::Carry(_)))
        .unwrap();
    let layer_named = p
        .steps
        .iter()
        .position(|s| matches!(s, Step::Lvm(LvmStep::Rename { to, .. }) if to == "Node-2.0-0+1"))
        .unwrap();
    assert!(carried < layer_named && layer_named < ponr, "{p}");
}

/// Trees of a node as directories: the old base, the admin's layer and
/// the new layer (a copy of the new base), each with an `etc/`.
fn trees(dir: &Path) {
    let put = |lv: &str, files: &[(&str, &str)]| {
        for (path, text) in files {
            let p = dir.join(lv).join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    };
    let base = [
        ("etc/admin.conf", "1\n"),
        ("etc/vendor.conf", "1\n"),
        ("etc/both.conf", "1\n"),
        ("etc/gone.conf", "1\n"),
        ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        (
            "etc/fstab",
            "/dev/HostVG/Node-1.0-0+2 / ext4 defaults 1 1\n",
        ),
        ("var/lib/state", "vendor\n"),
    ];
    put("Node-1.0-0", &base);
    put("Node-1.0-0+2", &base);
    put(
        "Node-1.0-0+2",
        &[
            ("etc/admin.conf", "admin\n"),
            ("etc/both.conf", "admin\n"),
            ("etc/mine.conf", "mine\n"),
            (
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
            ),
            ("var/lib/state", "admin's\n"),
        ],
    );
    std::fs::remove_file(dir.join("Node-1.0-0+2/etc/gone.conf")).unwrap();
    let new = "imgbase-tmp-Node-2.0-0+1";
    put(new, &base);
    put(
        new,
        &[
            ("etc/vendor.conf", "2\n"),
            ("etc/both.conf", "2\n"),
            (
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nchrony:x:995:995::/:/bin/false\n",
            ),
            ("var/lib/new", "from 2.0\n"),
        ],
    );
}

#[test]
fn the_carry_step_merges_the_admins_etc_into_the_new_layer_and_reports_it() {
    use imgbase::plan::Executor;
    use imgbase::sys::fakes::{DirTrees, FakeFilesystems, FakeImages};
    let t = tempfile::tempdir().unwrap();
    trees(t.path());
    let report = t.path().join("state/updates/Node-2.0-0+1.json");
    let mut plan = Plan::new("HostVG", "carry");
    plan.push(CarryStep::CarryConfig {
        layer: "imgbase-tmp-Node-2.0-0+1".into(),
        final_name: "Node-2.0-0+1".into(),
        admin: "Node-1.0-0+2".into(),
        ancestor: "Node-1.0-0".into(),
        keep: vec!["etc/fstab".into()],
        report: report.clone(),
    });
    let f = node();
    let trees = DirTrees::new(t.path().to_path_buf());
    Executor {
        lvm: &f,
        fs: &FakeFilesystems::default(),
        images: &FakeImages::default(),
        progress: &imgbase::sys::progress::Progress::silent(),
        boot: None,
        trees: Some(&trees),
        journal: None,
    }
    .execute("update", &plan)
    .unwrap();
    let new = t.path().join("imgbase-tmp-Node-2.0-0+1");
    let read = |p: &str| std::fs::read_to_string(new.join(p)).unwrap_or_default();
    assert_eq!(read("etc/admin.conf"), "admin\n");
    assert_eq!(read("etc/vendor.conf"), "2\n");
    assert_eq!(read("etc/both.conf"), "admin\n");
    assert_eq!(read("etc/both.conf.imgnew"), "2\n");
    assert_eq!(read("etc/mine.conf"), "mine\n");
    assert!(!new.join("etc/gone.conf").exists());
    let passwd = read("etc/passwd");
    assert!(
        passwd.contains("alice:") && passwd.contains("chrony:"),
        "{passwd}"
    );
    // The root entry names the new layer by its final name.
    assert_eq!(
        read("etc/fstab"),
        "/dev/HostVG/Node-2.0-0+1 / ext4 defaults 1 1\n"
    );
    // /var in the layer: the admin's state, and the image's new file.
    assert_eq!(read("var/lib/state"), "admin's\n");
    assert_eq!(read("var/lib/new"), "from 2.0\n");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(saved["layer"], "Node-2.0-0+1");
    assert_eq!(saved["from"], "Node-1.0-0+2");
    assert!(
        saved["decisions"].to_string().contains("etc/both.conf"),
        "{saved}"
    );
}
