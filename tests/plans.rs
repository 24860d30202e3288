//! Tier 1: every verb's plan, built from a layout and run against the
//! in-memory LVM, including refusals and the undo of a failed step.

use std::fs;
use std::path::{Path, PathBuf};

use imgbase::boot::BootError;
use imgbase::boot::loader::{Boot, Loader};
use imgbase::error::Error;
use imgbase::model::layout::Layout;
use imgbase::plan::{Executor, Plan, Step};
use imgbase::sys::boot::{BootExec, LayerTrees};
use imgbase::sys::fakes::{FakeFilesystems, FakeImages, FakeLvm};
use imgbase::sys::lvm::{LvRecord, Lvm, Scope};
use imgbase::sys::progress::Progress;
use imgbase::verbs::boot::BootView;
use imgbase::verbs::{base, boot, layer, layout};

const GIB: u64 = 1 << 30;

fn layout_of(f: &FakeLvm) -> Layout {
    Layout::from_report(&f.report(&Scope::TaggedVgs).unwrap(), None, None).unwrap()
}

fn booted_on(f: &FakeLvm, lv: &str) -> Layout {
    let root = Some(f.dev(lv));
    Layout::from_report(&f.report(&Scope::TaggedVgs).unwrap(), None, root).unwrap()
}

fn run(f: &FakeLvm, plan: &Plan) -> Result<(), Error> {
    run_with_boot(f, plan, None)
}

fn run_with_boot(f: &FakeLvm, plan: &Plan, boot: Option<&BootExec>) -> Result<(), Error> {
    let fs = FakeFilesystems::default();
    let images = FakeImages::default();
    Executor {
        lvm: f,
        fs: &fs,
        images: &images,
        progress: &Progress::silent(),
        boot,
    }
    .execute(plan)
}

/// Layer trees as plain directories, `DIR/<lv>`.
struct DirTrees(PathBuf);

impl LayerTrees for DirTrees {
    fn with_tree(
        &self,
        _vg: &str,
        lv: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        f(&self.0.join(lv))
    }

    fn set_oneshot(&self, _boot_dir: &Path, _id: Option<&str>) -> Result<(), BootError> {
        Ok(())
    }
}

fn snapshot(f: &FakeLvm) -> (Vec<LvRecord>, Vec<String>) {
    let mut lvs = f.lvs.borrow().clone();
    lvs.sort_by(|a, b| a.name.cmp(&b.name));
    (lvs, f.vg_tags.borrow().clone())
}

/// A node before `layout --init`: an installed root on a thin LV.
fn installed() -> FakeLvm {
    let f = FakeLvm::with_pool("HostVG", "pool", 20 * GIB);
    f.vg_tags.borrow_mut().clear();
    f.change_tags("HostVG", "pool", &[], &["imgbased:pool".into()])
        .unwrap();
    f.add_thin("root", 4 * GIB, &[]);
    f
}

/// `layout --init --from HostVG/root --nvr Node-1.0-0`.
fn init_plan(f: &FakeLvm) -> Plan {
    let records = f.report(&Scope::All).unwrap();
    let src = layout::Source::Lv {
        vg: "HostVG".into(),
        lv: "root".into(),
    };
    layout::plan_init(&records, &src, Some("Node-1.0-0"), |_| unreachable!()).unwrap()
}

/// A node as `layout --init` leaves it: base Node-1.0-0 with layer +1.
fn node() -> FakeLvm {
    let f = installed();
    run(&f, &init_plan(&f)).unwrap();
    f.calls.borrow_mut().clear();
    f
}

#[test]
fn init_adopts_the_root_as_imgbased_would_tag_it() {
    let f = node();
    let l = layout_of(&f);
    assert_eq!(l.init_lv.as_deref(), Some("root"));
    assert_eq!(l.pool.name, "pool");
    let b = l.base("Node-1.0-0").unwrap();
    assert!(b.volume.read_only && b.volume.activation_skip && !b.volume.active);
    assert_eq!(b.volume.origin.as_deref(), Some("root"));
    let (_, layer) = l.layer("Node-1.0-0+1").unwrap();
    assert!(!layer.volume.read_only && !layer.volume.activation_skip && layer.volume.active);
    assert_eq!(layer.volume.origin.as_deref(), Some("Node-1.0-0"));
    assert!(f.get("root").unwrap().has_tag("imgbased:init"));
    assert!(f.get("Node-1.0-0").unwrap().has_tag("imgbased:base"));
    assert!(f.get("Node-1.0-0+1").unwrap().has_tag("imgbased:layer"));
    assert!(
        f.lvs
            .borrow()
            .iter()
            .all(|l| !l.has_tag("imgbase:incomplete"))
    );
    assert!(l.incomplete.is_empty());
}

#[test]
fn init_leaves_the_root_read_only_and_skipped_at_activation() {
    let f = node();
    let root = f.get("root").unwrap();
    assert!(
        root.is_read_only() && root.skips_activation(),
        "{}",
        root.attr
    );
    assert!(root.is_active(), "the root is not deactivated");

    // Protected once the layer is in place, before the VG tag.
    let plan = init_plan(&installed());
    let at = |want: &Step| plan.steps.iter().position(|s| s == want).unwrap();
    let read_only = at(&Step::SetReadOnly {
        lv: "root".into(),
        read_only: true,
    });
    let skip = at(&Step::SetActivationSkip {
        lv: "root".into(),
        skip: true,
    });
    let layer = at(&Step::Rename {
        from: "imgbase-tmp-Node-1.0-0+1".into(),
        to: "Node-1.0-0+1".into(),
    });
    let vg_tag = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::ChangeVgTags { .. }))
        .unwrap();
    assert!(layer < read_only && read_only < skip && skip < vg_tag);

    // A failure after them undoes them.
    let f = installed();
    let before = snapshot(&f);
    *f.fail_on.borrow_mut() = Some("vgchange".into());
    run(&f, &init_plan(&f)).unwrap_err();
    assert_eq!(snapshot(&f), before);
}

#[test]
fn init_keeps_an_open_root_writable() {
    // The running system's root is open (mounted read-write): making its
    // LV read-only would break the running system; it only gets the skip.
    let f = installed();
    f.set_open("root", true);
    let plan = init_plan(&f);
    let read_only = Step::SetReadOnly {
        lv: "root".into(),
        read_only: true,
    };
    assert!(!plan.steps.contains(&read_only), "{plan}");
    run(&f, &plan).unwrap();
    let root = f.get("root").unwrap();
    assert!(root.is_open() && !root.is_read_only() && root.skips_activation());
    // Flags the root already has are not set again (undo would clear them).
    let f = installed();
    f.set_activation_skip("HostVG", "root", true).unwrap();
    let plan = init_plan(&f);
    let skip = Step::SetActivationSkip {
        lv: "root".into(),
        skip: true,
    };
    assert!(!plan.steps.contains(&skip), "{plan}");
    assert!(plan.steps.contains(&read_only), "{plan}");
}

/// `layout --init` from `vg/lv` of the fake, which must be refused.
fn init_error(f: &FakeLvm, vg: &str, lv: &str) -> String {
    let src = layout::Source::Lv {
        vg: vg.into(),
        lv: lv.into(),
    };
    layout::plan_init(
        &f.report(&Scope::All).unwrap(),
        &src,
        Some("X-1-0"),
        |_| unreachable!(),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn init_refuses_an_existing_layout_and_non_thin_roots() {
    let err = init_error(&node(), "HostVG", "root");
    assert!(err.contains("already exists"), "{err}");

    let f = FakeLvm::with_pool("vg", "pool", GIB);
    f.vg_tags.borrow_mut().clear();
    f.add_thin("lin", GIB, &[]);
    f.lvs.borrow_mut().last_mut().unwrap().segtype = "linear".into();
    let err = init_error(&f, "vg", "lin");
    assert!(err.contains("not a thin LV"), "{err}");
}

#[test]
fn new_layers_are_numbered_past_every_name_ever_used() {
    let f = node();
    for _ in 0..2 {
        run(
            &f,
            &layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap(),
        )
        .unwrap();
    }
    run(
        &f,
        &layer::plan_remove(&layout_of(&f), None, "Node-1.0-0+3").unwrap(),
    )
    .unwrap();
    let plan = layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap();
    assert_eq!(
        plan.created,
        ["Node-1.0-0+4"],
        "+3 is never handed out again"
    );
    run(&f, &plan).unwrap();
    // An untagged LV that happens to carry the next name is skipped too.
    f.add_thin("Node-1.0-0+5", GIB, &[]);
    let plan = layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap();
    assert_eq!(plan.created, ["Node-1.0-0+6"]);
}

#[test]
fn layer_add_without_target_uses_the_newest_base() {
    let f = node();
    run(
        &f,
        &base::plan_add(&layout_of(&f), "Node-13-0", GIB).unwrap(),
    )
    .unwrap();
    run(
        &f,
        &base::plan_add(&layout_of(&f), "Node-2-0", GIB).unwrap(),
    )
    .unwrap();
    let plan = layer::plan_add(&layout_of(&f), None, None).unwrap();
    assert_eq!(plan.created, ["Node-13-0+1"]);
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::Snapshot { origin, .. } if origin == "Node-13-0"))
    );
    run(&f, &plan).unwrap();
    // With a layer on it, the next one carries that layer's changes.
    let plan = layer::plan_add(&layout_of(&f), None, None).unwrap();
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::Snapshot { origin, .. } if origin == "Node-13-0+1"))
    );
}

#[test]
fn new_lvs_are_built_under_a_temporary_name_and_renamed_last() {
    let f = node();
    let plan = layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap();
    let n = plan.steps.len();
    assert!(matches!(&plan.steps[n - 2], Step::Rename { from, to }
        if from == "imgbase-tmp-Node-1.0-0+2" && to == "Node-1.0-0+2"));
    assert!(
        matches!(&plan.steps[n - 1], Step::ChangeTags { add, del, .. }
        if add == &["imgbased:layer"] && del == &["imgbase:incomplete"])
    );
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::Snapshot { tags, .. }
        if tags == &["imgbase:incomplete"]))
    );
}

#[test]
fn a_failed_step_undoes_everything_before_it() {
    for fail in [
        "lvrename",
        "lvchange tags HostVG/Node-1.0-0+2",
        "lvcreate -s",
    ] {
        let f = node();
        let before = snapshot(&f);
        let plan = layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap();
        *f.fail_on.borrow_mut() = Some(fail.into());
        let err = run(&f, &plan).unwrap_err();
        assert!(err.to_string().contains("undone"), "{fail}: {err}");
        assert_eq!(snapshot(&f), before, "failing at {fail} changed the VG");
    }
    for fail in ["lvcreate --thin", "lvchange -k", "lvrename"] {
        let f = node();
        let before = snapshot(&f);
        let plan = base::plan_add(&layout_of(&f), "Node-2.0-0", GIB).unwrap();
        *f.fail_on.borrow_mut() = Some(fail.into());
        run(&f, &plan).unwrap_err();
        assert_eq!(snapshot(&f), before, "failing at {fail} changed the VG");
    }
}

#[test]
fn an_interrupted_run_is_finished_or_cleared_by_the_next() {
    let f = node();
    // Crashed before the rename: only the temporary LV exists.
    f.add_thin("imgbase-tmp-Node-1.0-0+2", GIB, &["imgbase:incomplete"]);
    // Crashed after the rename, before the role tag.
    f.add_thin("Node-2.0-0", GIB, &["imgbase:incomplete"]);
    let l = layout_of(&f);
    assert_eq!(l.incomplete.len(), 2);
    assert!(
        l.base("Node-2.0-0").is_none(),
        "unfinished LVs are not bases"
    );
    let plan = layer::plan_add(&l, None, Some("Node-1.0-0")).unwrap();
    run(&f, &plan).unwrap();
    let l = layout_of(&f);
    assert!(l.incomplete.is_empty());
    assert!(l.base("Node-2.0-0").is_some());
    assert!(f.get("imgbase-tmp-Node-1.0-0+2").is_none());
    assert!(l.layer("Node-1.0-0+2").is_some());
}

#[test]
fn bad_input_is_refused_before_any_change() {
    let f = node();
    let l = layout_of(&f);
    let cases: Vec<(Result<Plan, Error>, &str)> = vec![
        (base::plan_add(&l, "Node-1.0-0", GIB), "already exists"),
        (
            base::plan_add(&l, "root-1-0", 100 * GIB),
            "larger than the thin pool",
        ),
        (base::plan_add(&l, "Node 2-1-0", GIB), "not allowed"),
        (base::plan_add(&l, "Node-2", GIB), "Name-Version-Release"),
        (base::plan_add(&l, "Node-2-0+1", GIB), "layer"),
        (
            base::plan_remove(&l, None, "Nope-1-0"),
            "no base named Nope-1-0",
        ),
        (
            layer::plan_add(&l, None, Some("Nope-1-0")),
            "no base or layer named",
        ),
        (
            layer::plan_remove(&l, None, "Node-1.0-0+9"),
            "no layer named",
        ),
        (
            layer::plan_remove(&l, None, "Node-1.0-0+1"),
            "only layer of the newest base",
        ),
        (base::plan_remove(&l, None, "Node-1.0-0"), "only base"),
    ];
    for (result, want) in cases {
        let err = result.unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should mention {want:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
    assert!(f.calls.borrow().iter().all(|c| c.starts_with("lvs")));
}

#[test]
fn removal_spares_the_booted_layer_and_its_base() {
    let f = node();
    run(
        &f,
        &base::plan_add(&layout_of(&f), "Node-2.0-0", GIB).unwrap(),
    )
    .unwrap();
    run(
        &f,
        &layer::plan_add(&layout_of(&f), None, Some("Node-2.0-0")).unwrap(),
    )
    .unwrap();
    run(
        &f,
        &layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap(),
    )
    .unwrap();
    let l = booted_on(&f, "Node-1.0-0+1");
    let err = layer::plan_remove(&l, None, "Node-1.0-0+1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("booted from it"), "{err}");
    let err = base::plan_remove(&l, None, "Node-1.0-0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("booted from its layer Node-1.0-0+1"), "{err}");
    // Booted elsewhere, the old base goes with all its layers.
    let l = booted_on(&f, "Node-2.0-0+1");
    let plan = base::plan_remove(&l, None, "Node-1.0-0").unwrap();
    assert_eq!(plan.removed, ["Node-1.0-0+2", "Node-1.0-0+1", "Node-1.0-0"]);
    run(&f, &plan).unwrap();
    assert!(f.get("root").is_some(), "the init LV is never removed");
    assert_eq!(layout_of(&f).bases.len(), 1);
}

#[test]
fn a_full_pool_admits_nothing() {
    let f = node();
    f.lvs.borrow_mut()[0].data_percent = Some(97.5);
    let err = layer::plan_add(&layout_of(&f), None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("97.5% full"), "{err}");
    let err = base::plan_add(&layout_of(&f), "Node-2-0", GIB)
        .unwrap_err()
        .to_string();
    assert!(err.contains("grow the pool"), "{err}");
}

#[test]
fn plans_print_as_numbered_steps_and_json() {
    let f = node();
    let plan = layer::plan_add(&layout_of(&f), None, None).unwrap();
    let text = plan.to_string();
    assert!(
        text.starts_with("Plan: add layer Node-1.0-0+2 on Node-1.0-0+1"),
        "{text}"
    );
    assert!(
        text.contains(" 1. tag Node-1.0-0 +imgbase:last-layer=2 -imgbase:last-layer=1"),
        "{text}"
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["steps"][1]["step"], "snapshot");
    assert_eq!(json["created"][0], "Node-1.0-0+2");
}

#[test]
fn a_failed_boot_setup_keeps_the_kernels_it_rewrote() {
    let f = node();
    let t = tempfile::tempdir().unwrap();
    let layer = "Node-1.0-0+1";
    let kernel_dir = t.path().join("trees").join(layer).join("boot");
    fs::create_dir_all(&kernel_dir).unwrap();
    fs::write(kernel_dir.join("vmlinuz-6.1"), "k").unwrap();
    fs::write(kernel_dir.join("initrd.img-6.1"), "i").unwrap();
    let boot_dir = t.path().join("boot");
    fs::create_dir_all(boot_dir.join("grub")).unwrap();
    let trees = DirTrees(t.path().join("trees"));
    let exec = BootExec {
        boot: Boot::new(&boot_dir, Loader::Grub),
        trees: &trees,
        running: None,
    };
    let setup = || {
        let view = BootView::read(exec.boot.clone()).unwrap();
        boot::plan_setup(&layout_of(&f), &view, Some(layer), t.path().join("root")).unwrap()
    };
    run_with_boot(&f, &setup(), Some(&exec)).unwrap();
    let store = exec.boot.store();
    let before = store.installed(layer).unwrap();
    assert!(before.is_some());

    // The menu cannot be written: the rewrite is undone, and the layer
    // keeps kernels its entry can use.
    let plan = setup();
    fs::remove_dir_all(boot_dir.join("grub")).unwrap();
    fs::write(boot_dir.join("grub"), "not a directory").unwrap();
    run_with_boot(&f, &plan, Some(&exec)).unwrap_err();
    assert_eq!(store.installed(layer).unwrap(), before);
}
