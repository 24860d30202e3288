//! Tier 1: `base --add --from IMAGE` plans from an inspected image, against
//! the in-memory LVM: fresh and delta writes, sizes, checksums, no-ops,
//! admission, and undo when writing fails.

use std::path::PathBuf;

use imgbase::image::detect::{Compression, Format};
use imgbase::model::layout::Layout;
use imgbase::plan::{Executor, ImageStep, LvmStep, Plan, Step};
use imgbase::sys::fakes::{FakeFilesystems, FakeImages, FakeLvm};
use imgbase::sys::images::{FillMode, ImageInfo};
use imgbase::sys::lvm::{Lvm, Scope};
use imgbase::sys::progress::Progress;
use imgbase::verbs::base::{FromImage, plan_add_image};

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
    f
}

fn layout_of(f: &FakeLvm) -> Layout {
    Layout::from_report(&f.report(&Scope::TaggedVgs).unwrap(), None, None).unwrap()
}

fn ext4_image(nvr: Option<&str>) -> ImageInfo {
    ImageInfo {
        path: PathBuf::from("/images/node-2.0.img"),
        format: Format::Filesystem { fs: "ext4".into() },
        sha256: "bb".repeat(32),
        size: GIB,
        data_bytes: 300 * MIB,
        fs_type: Some("ext4".into()),
        nvr: nvr.map(str::to_string),
    }
}

fn req(info: &ImageInfo) -> FromImage<'_> {
    FromImage {
        info,
        nvr: None,
        size: None,
        expected_sha256: None,
        allow_delta: true,
        force: false,
    }
}

fn plan(f: &FakeLvm, r: &FromImage) -> Result<Plan, String> {
    plan_add_image(&layout_of(f), r).map_err(|e| e.to_string())
}

fn fill_of(p: &Plan) -> FillMode {
    p.steps
        .iter()
        .find_map(|s| match s {
            Step::Image(ImageStep::FillImage { fill, .. }) => Some(*fill),
            _ => None,
        })
        .expect("a fill step")
}

#[test]
fn same_filesystem_makes_a_delta_over_the_newest_base() {
    let f = node();
    let info = ext4_image(Some("Node-2.0-0"));
    let p = plan(&f, &req(&info)).unwrap();
    assert_eq!(p.created, ["Node-2.0-0"]);
    assert!(
        matches!(&p.steps[0], Step::Lvm(LvmStep::Snapshot { origin, lv, tags })
        if origin == "Node-1.0-0" && lv == "imgbase-tmp-Node-2.0-0"
        && tags.contains(&"imgbase:incomplete".to_string())
        && tags.contains(&format!("imgbase:sha256={}", "bb".repeat(32))))
    );
    // Default size: the running (here newest) layer's 3 GiB beats the image's 1 GiB.
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::Lvm(LvmStep::Extend { size, .. }) if *size == 3 * GIB))
    );
    assert_eq!(fill_of(&p), FillMode::Delta { old_len: 2 * GIB });
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, Step::Image(ImageStep::GrowFs { fs, .. }) if fs == "ext4"))
    );
    let n = p.steps.len();
    assert!(matches!(&p.steps[n - 2], Step::Lvm(LvmStep::Rename { to, .. }) if to == "Node-2.0-0"));
}

#[test]
fn no_delta_or_another_filesystem_writes_a_fresh_lv() {
    let f = node();
    let info = ext4_image(Some("Node-2.0-0"));
    let p = plan(
        &f,
        &FromImage {
            allow_delta: false,
            ..req(&info)
        },
    )
    .unwrap();
    assert!(matches!(&p.steps[0], Step::Lvm(LvmStep::CreateThin { size, .. }) if *size == 3 * GIB));
    assert_eq!(fill_of(&p), FillMode::Fresh);
    let mut xfs = ext4_image(Some("Node-2.0-0"));
    xfs.format = Format::Filesystem { fs: "xfs".into() };
    xfs.fs_type = Some("xfs".into());
    assert_eq!(fill_of(&plan(&f, &req(&xfs)).unwrap()), FillMode::Fresh);
    // A tar tree gets a new filesystem, made at the LV's size: no grow.
    let mut tar = ext4_image(Some("Node-2.0-0"));
    tar.format = Format::Tar {
        compression: Compression::Zstd,
    };
    let p = plan(&f, &req(&tar)).unwrap();
    assert_eq!(fill_of(&p), FillMode::Fresh);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::Image(ImageStep::GrowFs { .. })))
    );
}

#[test]
fn the_nvr_comes_from_the_command_line_first_then_the_image() {
    let f = node();
    let info = ext4_image(Some("Node-2.0-0"));
    let p = plan(
        &f,
        &FromImage {
            nvr: Some("Custom-9-1"),
            ..req(&info)
        },
    )
    .unwrap();
    assert_eq!(p.created, ["Custom-9-1"]);
    let err = plan(&f, &req(&ext4_image(None))).unwrap_err();
    assert!(err.contains("does not record its NVR"), "{err}");
    let err = plan(
        &f,
        &FromImage {
            nvr: Some("bad name"),
            ..req(&info)
        },
    )
    .unwrap_err();
    assert!(err.contains("not allowed"), "{err}");
}

#[test]
fn checksums_sizes_and_space_are_checked_first() {
    let f = node();
    let info = ext4_image(Some("Node-2.0-0"));
    let wrong = "cc".repeat(32);
    let err = plan(
        &f,
        &FromImage {
            expected_sha256: Some(&wrong),
            ..req(&info)
        },
    )
    .unwrap_err();
    assert!(err.contains("checksum mismatch"), "{err}");
    let right = "bb".repeat(32);
    assert!(
        plan(
            &f,
            &FromImage {
                expected_sha256: Some(&right),
                ..req(&info)
            }
        )
        .is_ok()
    );
    let err = plan(
        &f,
        &FromImage {
            size: Some(512 * MIB),
            ..req(&info)
        },
    )
    .unwrap_err();
    assert!(err.contains("smaller than the image"), "{err}");
    let err = plan(
        &f,
        &FromImage {
            size: Some(40 * GIB),
            ..req(&info)
        },
    )
    .unwrap_err();
    assert!(err.contains("larger than the thin pool"), "{err}");
    let mut huge = ext4_image(Some("Node-2.0-0"));
    huge.data_bytes = 30 * GIB;
    huge.size = 19 * GIB;
    let err = plan(
        &f,
        &FromImage {
            allow_delta: false,
            ..req(&huge)
        },
    )
    .unwrap_err();
    assert!(err.contains("missing"), "{err}");
    assert!(f.calls.borrow().iter().all(|c| c.starts_with("lvs")));
}

#[test]
fn an_image_already_imported_is_a_no_op_under_its_own_name_only() {
    let f = node();
    let mut info = ext4_image(Some("Node-1.0-0"));
    info.sha256 = "aa".into();
    let p = plan(&f, &req(&info)).unwrap();
    assert!(p.steps.is_empty());
    assert!(
        p.summary.contains("already imported as base Node-1.0-0"),
        "{}",
        p.summary
    );

    // Another name for the same bytes: refused naming the base, unless
    // --force imports it again.
    info.nvr = Some("Node-2.0-0".into());
    let err = plan(&f, &req(&info)).unwrap_err();
    assert!(
        err.contains("already imported as base Node-1.0-0") && err.contains("--force"),
        "{err}"
    );
    let p = plan(
        &f,
        &FromImage {
            force: true,
            ..req(&info)
        },
    )
    .unwrap();
    assert_eq!(p.created, ["Node-2.0-0"]);

    // Arguments are checked before "nothing to do": a too-small --size.
    info.nvr = Some("Node-1.0-0".into());
    let err = plan(
        &f,
        &FromImage {
            size: Some(1 << 20),
            ..req(&info)
        },
    )
    .unwrap_err();
    assert!(err.contains("smaller than the image"), "{err}");
}

#[test]
fn a_failed_write_removes_the_new_lv() {
    let f = node();
    let before = f.names();
    let info = ext4_image(Some("Node-2.0-0"));
    let p = plan(&f, &req(&info)).unwrap();
    *f.fail_on.borrow_mut() = Some("lvchange -p".into());
    let fs = FakeFilesystems::default();
    let images = FakeImages::default();
    let err = Executor {
        lvm: &f,
        fs: &fs,
        images: &images,
        progress: &Progress::silent(),
        boot: None,
        trees: None,
        journal: None,
    }
    .execute("test", &p)
    .unwrap_err();
    assert!(err.to_string().contains("undone"), "{err}");
    assert_eq!(f.names(), before);
    assert!(images.calls.borrow()[0].starts_with("fill /dev/HostVG/imgbase-tmp-Node-2.0-0"));
}
