//! Tier 1: every verb's plan, built from a layout and run against the
//! in-memory LVM, including refusals and the undo of a failed step.

use std::fs;
use std::path::{Path, PathBuf};

use imgbase::boot::loader::{Boot, Loader};
use imgbase::error::Error;
use imgbase::model::layout::Layout;
use imgbase::plan::journal::Journal;
use imgbase::plan::{BootStep, Executor, FilesStep, LvmStep, Plan, Step};
use imgbase::sys::boot::BootExec;
use imgbase::sys::fakes::{DirTrees, FakeFilesystems, FakeImages, FakeLvm};
use imgbase::sys::lvm::{LvRecord, Lvm, Scope};
use imgbase::sys::progress::Progress;
use imgbase::verbs::boot::BootView;
use imgbase::verbs::{base, boot, gc, layer, layout, recover, rollback};

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
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::new(dir.path());
    let r = Executor {
        lvm: f,
        fs: &fs,
        images: &images,
        progress: &Progress::silent(),
        boot,
        trees: None,
        journal: Some(&journal),
    }
    .execute("test", plan);
    // A run that ended, well or undone, leaves nothing to recover.
    if !matches!(r, Err(Error::Unfinished { .. })) {
        assert!(journal.unfinished(None).unwrap().is_empty(), "{r:?}");
    }
    r
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
    let read_only = at(&Step::Lvm(LvmStep::SetReadOnly {
        lv: "root".into(),
        read_only: true,
    }));
    let skip = at(&Step::Lvm(LvmStep::SetActivationSkip {
        lv: "root".into(),
        skip: true,
    }));
    let layer = at(&Step::Lvm(LvmStep::Rename {
        from: "imgbase-tmp-Node-1.0-0+1".into(),
        to: "Node-1.0-0+1".into(),
    }));
    let vg_tag = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::Lvm(LvmStep::ChangeVgTags { .. })))
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
    let read_only = Step::Lvm(LvmStep::SetReadOnly {
        lv: "root".into(),
        read_only: true,
    });
    assert!(!plan.steps.contains(&read_only), "{plan}");
    run(&f, &plan).unwrap();
    let root = f.get("root").unwrap();
    assert!(root.is_open() && !root.is_read_only() && root.skips_activation());
    // Flags the root already has are not set again (undo would clear them).
    let f = installed();
    f.set_activation_skip("HostVG", "root", true).unwrap();
    let plan = init_plan(&f);
    let skip = Step::Lvm(LvmStep::SetActivationSkip {
        lv: "root".into(),
        skip: true,
    });
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
    assert!(plan.steps.iter().any(
        |s| matches!(s, Step::Lvm(LvmStep::Snapshot { origin, .. }) if origin == "Node-13-0")
    ));
    run(&f, &plan).unwrap();
    // With a layer on it, the next one carries that layer's changes.
    let plan = layer::plan_add(&layout_of(&f), None, None).unwrap();
    assert!(plan.steps.iter().any(
        |s| matches!(s, Step::Lvm(LvmStep::Snapshot { origin, .. }) if origin == "Node-13-0+1")
    ));
}

#[test]
fn new_lvs_are_built_under_a_temporary_name_and_renamed_last() {
    let f = node();
    let plan = layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap();
    let n = plan.steps.len();
    assert!(
        matches!(&plan.steps[n - 2], Step::Lvm(LvmStep::Rename { from, to })
        if from == "imgbase-tmp-Node-1.0-0+2" && to == "Node-1.0-0+2")
    );
    assert!(
        matches!(&plan.steps[n - 1], Step::Lvm(LvmStep::ChangeTags { add, del, .. })
        if add == &["imgbased:layer"] && del == &["imgbase:incomplete"])
    );
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::Lvm(LvmStep::Snapshot { tags, .. })
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
fn strays_no_journal_claims_are_cleared_before_planning() {
    let f = node();
    // Killed before the rename: only the temporary LV exists.
    f.add_thin("imgbase-tmp-Node-1.0-0+2", GIB, &["imgbase:incomplete"]);
    // Killed after the rename, before the role tag.
    f.add_thin("Node-2.0-0", GIB, &["imgbase:incomplete"]);
    let l = layout_of(&f);
    assert_eq!(l.incomplete.len(), 2);
    assert!(
        l.base("Node-2.0-0").is_none(),
        "unfinished LVs are not bases"
    );
    let records = f.report(&Scope::TaggedVgs).unwrap();
    let plan = recover::plan_strays(&recover::Strays {
        vg: "HostVG",
        records: &records,
        boot: None,
        stale_mounts: vec!["/tmp/imgbase-xfs-1-x".into()],
    });
    assert!(
        matches!(&plan.steps[0], Step::Files(FilesStep::Unmount { path })
        if path == Path::new("/tmp/imgbase-xfs-1-x"))
    );
    run(&f, &plan).unwrap();
    let l = layout_of(&f);
    assert!(l.incomplete.is_empty());
    assert!(l.base("Node-2.0-0").is_some());
    assert!(f.get("imgbase-tmp-Node-1.0-0+2").is_none());
    // Nothing left: recovery plans nothing the second time.
    let records = f.report(&Scope::TaggedVgs).unwrap();
    let again = recover::plan_strays(&recover::Strays {
        vg: "HostVG",
        records: &records,
        boot: None,
        stale_mounts: vec![],
    });
    assert!(again.steps.is_empty(), "{again}");
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
        text.contains(
            " 1. snapshot Node-1.0-0+1 as imgbase-tmp-Node-1.0-0+2 tagged imgbase:incomplete"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["steps"][0]["step"], "snapshot");
    // What the journal holds reads back as the same plan.
    let back: Plan = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, plan);
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
    let trees = DirTrees::new(t.path().join("trees"));
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

/// A node with boot entries in a temporary /boot (grub): every layer LV
/// has a tree with a kernel under `trees/<layer>/boot`.
struct BootNode {
    f: FakeLvm,
    t: tempfile::TempDir,
    trees: DirTrees,
    journal: Journal,
}

impl BootNode {
    fn new() -> BootNode {
        let f = node();
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("boot/grub")).unwrap();
        let trees = DirTrees::new(t.path().join("trees"));
        let journal = Journal::new(t.path().join("journal"));
        let n = BootNode {
            f,
            t,
            trees,
            journal,
        };
        // The adopted root's layer gets a kernel and the first entry.
        n.kernel_tree("Node-1.0-0+1");
        let plan = boot::plan_setup(
            &layout_of(&n.f),
            &n.view(),
            Some("Node-1.0-0+1"),
            n.t.path().join("root"),
        )
        .unwrap();
        n.run(&plan).unwrap();
        n.set_default("Node-1.0-0+1");
        n
    }

    fn kernel_tree(&self, layer: &str) {
        let k = self.t.path().join("trees").join(layer).join("boot");
        fs::create_dir_all(&k).unwrap();
        fs::write(k.join("vmlinuz-6.1"), "k").unwrap();
        fs::write(k.join("initrd.img-6.1"), "i").unwrap();
    }

    fn boot_dir(&self) -> PathBuf {
        self.t.path().join("boot")
    }

    fn exec(&self) -> BootExec<'_> {
        BootExec {
            boot: Boot::new(&self.boot_dir(), Loader::Grub),
            trees: &self.trees,
            running: None,
        }
    }

    fn view(&self) -> BootView {
        BootView::read(self.exec().boot).unwrap()
    }

    /// Run through the journal; returns what the executor said.
    fn run(&self, plan: &Plan) -> Result<(), Error> {
        let exec = self.exec();
        self.executor(&exec, |x| x.execute("test", plan))
    }

    fn executor<T>(&self, exec: &BootExec, f: impl FnOnce(&Executor) -> T) -> T {
        let fs = FakeFilesystems::default();
        let images = FakeImages::default();
        f(&Executor {
            lvm: &self.f,
            fs: &fs,
            images: &images,
            progress: &Progress::silent(),
            boot: Some(exec),
            trees: None,
            journal: Some(&self.journal),
        })
    }

    fn recover(&self) -> Vec<imgbase::plan::Recovered> {
        let exec = self.exec();
        self.journal
            .unfinished(None)
            .unwrap()
            .iter()
            .map(|r| self.executor(&exec, |x| x.recover(r)).unwrap())
            .collect()
    }

    /// Give the next layer of `on` a kernel tree, then add it.
    fn add_layer(&self, on: &str) -> String {
        let plan = layer::plan_add(&layout_of(&self.f), Some(&self.view()), Some(on)).unwrap();
        let name = plan.created[0].clone();
        self.kernel_tree(&name);
        self.run(&plan).unwrap();
        name
    }

    fn set_default(&self, layer: &str) {
        let plan = boot::plan_set_default(&layout_of(&self.f), &self.view(), layer).unwrap();
        self.run(&plan).unwrap();
    }

    /// The LVs, the files under /boot and the default: what "absent" and
    /// "complete" are judged on.
    fn seen(&self) -> (Vec<LvRecord>, Vec<String>, Vec<PathBuf>, Option<String>) {
        let (lvs, vg) = snapshot(&self.f);
        let mut files: Vec<PathBuf> = walk(&self.boot_dir());
        files.sort();
        (lvs, vg, files, self.view().default)
    }

    /// The default names a layer LV with kernels, and every entry one.
    fn assert_sound(&self, what: &str) {
        let l = layout_of(&self.f);
        let v = self.view();
        let default = v
            .default
            .clone()
            .unwrap_or_else(|| panic!("{what}: no default"));
        assert!(
            l.layer(&default).is_some(),
            "{what}: default {default} has no LV"
        );
        for w in &v.written {
            assert!(l.layer(w).is_some(), "{what}: entry {w} has no LV");
        }
        assert!(l.incomplete.is_empty(), "{what}: {:?}", l.incomplete);
        assert!(self.journal.unfinished(None).unwrap().is_empty(), "{what}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_removal_failing_past_its_point_of_no_return_is_finished_never_undone() {
    let n = BootNode::new();
    let l2 = n.add_layer("Node-1.0-0");
    n.set_default(&l2);
    let plan = layer::plan_remove(&layout_of(&n.f), Some(&n.view()), &l2).unwrap();
    // Entries and the default move off the layer before anything goes.
    let ponr = plan.point_of_no_return().unwrap();
    assert!(matches!(&plan.steps[ponr], Step::Lvm(LvmStep::Remove { lv }) if *lv == l2));
    assert!(
        plan.steps[..ponr]
            .iter()
            .any(|s| matches!(s, Step::Boot(BootStep::SetDefault { .. })))
    );

    // Its kernels cannot be removed: their folder became a file.
    let store = n.boot_dir().join("imgbase");
    fs::remove_dir_all(store.join(&l2)).unwrap();
    fs::write(store.join(&l2), "in the way").unwrap();
    let err = n.run(&plan).unwrap_err();
    assert!(matches!(err, Error::Unfinished { .. }), "{err}");
    assert!(err.to_string().contains("imgbase recover"), "{err}");
    // Not undone: no entry and no default names the removed LV.
    assert!(n.f.get(&l2).is_none());
    let v = n.view();
    assert_eq!(v.default.as_deref(), Some("Node-1.0-0+1"));
    assert!(!v.written.contains(&l2), "{:?}", v.written);
    assert_eq!(n.journal.unfinished(None).unwrap().len(), 1);

    // Recovery cannot finish it either, until the cause is gone.
    let exec = n.exec();
    let record = &n.journal.unfinished(None).unwrap()[0];
    let err = n.executor(&exec, |x| x.recover(record)).unwrap_err();
    assert!(err.to_string().contains("could not be recovered"), "{err}");
    fs::remove_file(store.join(&l2)).unwrap();
    fs::create_dir(store.join(&l2)).unwrap();
    let done = n.recover();
    assert_eq!(done[0].outcome, "finished");
    assert!(!store.join(&l2).exists());
    n.assert_sound("after recover");
}

#[test]
fn a_base_removal_whose_second_lvremove_fails_is_finished_by_recover() {
    let n = BootNode::new();
    let f = &n.f;
    f.add_thin("Node-2.0-0", 4 * GIB, &["imgbased:base"]);
    let l = n.add_layer("Node-2.0-0");
    n.set_default(&l);
    // Newest layer first: the second lvremove fails.
    let l2 = n.add_layer("Node-1.0-0");
    *f.fail_on.borrow_mut() = Some("lvremove HostVG/Node-1.0-0+1".into());
    let plan = base::plan_remove(&layout_of(f), Some(&n.view()), "Node-1.0-0").unwrap();
    let err = n.run(&plan).unwrap_err();
    assert!(matches!(err, Error::Unfinished { .. }), "{err}");
    assert!(f.get(&l2).is_none() && f.get("Node-1.0-0+1").is_some());
    n.recover();
    assert!(f.get("Node-1.0-0").is_none());
    n.assert_sound("after recover");
}

/// Kill `plan` before step `k`: the first k steps ran and were journaled,
/// then nothing (the process died).
fn crash(n: &BootNode, plan: &Plan, k: usize) {
    let mut head = plan.clone();
    head.steps.truncate(k);
    let exec = n.exec();
    n.executor(&exec, |x| {
        Executor {
            trees: None,
            journal: None,
            ..*x
        }
        .execute("test", &head)
    })
    .unwrap();
    let mut e = n.journal.begin("test", plan).unwrap();
    for i in 0..k {
        e.done(i).unwrap();
    }
}

#[test]
fn a_crash_at_any_step_is_recovered_to_complete_or_absent() {
    type Op = fn(&BootNode) -> Plan;
    let ops: [(&str, Op); 3] = [
        ("layer --add", |n| {
            let plan = layer::plan_add(&layout_of(&n.f), Some(&n.view()), None).unwrap();
            n.kernel_tree(&plan.created[0]);
            plan
        }),
        ("layer --remove", |n| {
            let newest = layout_of(&n.f).latest_layer().unwrap().volume.lv.clone();
            layer::plan_remove(&layout_of(&n.f), Some(&n.view()), &newest).unwrap()
        }),
        ("boot --set-default", |n| {
            boot::plan_set_default(&layout_of(&n.f), &n.view(), "Node-1.0-0+1").unwrap()
        }),
    ];
    for (what, op) in ops {
        let (mut absent, mut complete) = (0, 0);
        for k in 0.. {
            let n = BootNode::new();
            let l2 = n.add_layer("Node-1.0-0");
            n.set_default(&l2);
            let before = n.seen();
            let plan = op(&n);
            if k > plan.steps.len() {
                break;
            }
            // The same plan run to its end, on a twin node.
            let twin = BootNode::new();
            let l2 = twin.add_layer("Node-1.0-0");
            twin.set_default(&l2);
            let tplan = op(&twin);
            twin.run(&tplan).unwrap();
            let (tl, tv, _, td) = twin.seen();

            crash(&n, &plan, k);
            n.recover();
            let label = format!("{what} crashed before step {k}");
            n.assert_sound(&label);
            let now = n.seen();
            if now == before {
                absent += 1;
            } else {
                assert_eq!((&now.0, &now.1, &now.3), (&tl, &tv, &td), "{label}");
                complete += 1;
            }
        }
        assert!(
            absent >= 1 && complete >= 1,
            "{what}: {absent} absent, {complete} complete"
        );
    }
}

#[test]
fn boot_strays_are_cleared_and_no_entry_is_written_for_them() {
    let n = BootNode::new();
    let l2 = n.add_layer("Node-1.0-0");
    n.set_default(&l2);
    // A crash after lvremove, before the kernels went, and no journal
    // (an older imgbase, or it was removed): the folder stays, an entry
    // names a gone LV.
    let plan = layer::plan_remove(&layout_of(&n.f), Some(&n.view()), &l2).unwrap();
    crash(&n, &plan, plan.steps.len() - 1);
    for r in n.journal.unfinished(None).unwrap() {
        fs::remove_file(&r.path).unwrap();
    }
    assert!(n.f.get(&l2).is_none());
    fs::create_dir_all(n.boot_dir().join("imgbase/.tmp-Node-1.0-0+9")).unwrap();
    let v = n.view();
    assert!(v.installed.contains(&l2));
    // And a default naming it (as an older removal could leave it).
    n.exec().boot.set_default(Some(&l2)).unwrap();
    let v = n.view();
    let records = n.f.report(&Scope::TaggedVgs).unwrap();
    let plan = recover::plan_strays(&recover::Strays {
        vg: "HostVG",
        records: &records,
        boot: Some(&v),
        stale_mounts: vec![],
    });
    n.run(&plan).unwrap();
    n.assert_sound("after the strays plan");
    let v = n.view();
    assert!(v.strays.is_empty() && !v.installed.contains(&l2));
    // The next layer gets an entry; the gone one does not come back.
    let l3 = n.add_layer("Node-1.0-0");
    assert!(!n.view().written.contains(&l2));
    assert!(n.view().written.contains(&l3));
}

// ---- pins, rollback, gc, check and motd -------------------------------

/// A BootNode with bases Node-1.0-0, Node-2.0-0, Node-9.0-0 and
/// Node-10.0-0 (version order, not string order), one layer each, every
/// layer with an entry, the newest the default; a `var` volume LV beside.
fn four_bases() -> BootNode {
    let n = BootNode::new();
    for b in ["Node-2.0-0", "Node-9.0-0", "Node-10.0-0"] {
        n.f.add_thin(b, 4 * GIB, &["imgbased:base"]);
        n.add_layer(b);
    }
    n.f.add_thin("var", GIB, &["imgbased:volume"]);
    n.set_default("Node-10.0-0+1");
    n
}

fn lvs_of(plan: &Plan) -> Vec<&str> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Lvm(LvmStep::Remove { lv }) => Some(lv.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn pin_and_unpin_tag_the_layer_and_say_when_nothing_changes() {
    let f = node();
    let plan = layer::plan_pin(&layout_of(&f), "Node-1.0-0+1", true).unwrap();
    assert_eq!(
        plan.steps,
        [Step::Lvm(LvmStep::ChangeTags {
            lv: "Node-1.0-0+1".into(),
            add: vec!["imgbase:pinned".into()],
            del: vec![],
        })]
    );
    run(&f, &plan).unwrap();
    let l = layout_of(&f);
    assert!(l.layer("Node-1.0-0+1").unwrap().1.pinned);
    assert!(
        layout::Tree(&l)
            .to_string()
            .contains(" +- Node-1.0-0+1 (pinned)\n")
    );
    let json = serde_json::to_value(&l).unwrap();
    assert_eq!(json["bases"][0]["layers"][0]["pinned"], true);

    let again = layer::plan_pin(&l, "Node-1.0-0+1", true).unwrap();
    assert!(again.steps.is_empty(), "{again}");
    assert!(
        again.summary.contains("already pinned"),
        "{}",
        again.summary
    );

    let plan = layer::plan_pin(&l, "Node-1.0-0+1", false).unwrap();
    assert_eq!(
        plan.steps,
        [Step::Lvm(LvmStep::ChangeTags {
            lv: "Node-1.0-0+1".into(),
            add: vec![],
            del: vec!["imgbase:pinned".into()],
        })]
    );
    run(&f, &plan).unwrap();
    let l = layout_of(&f);
    assert!(!l.layer("Node-1.0-0+1").unwrap().1.pinned);
    assert!(!layout::Tree(&l).to_string().contains("pinned"));
    let again = layer::plan_pin(&l, "Node-1.0-0+1", false).unwrap();
    assert!(again.steps.is_empty() && again.summary.contains("already not pinned"));

    let err = layer::plan_pin(&l, "Node-1.0-0+7", true).unwrap_err();
    assert!(err.to_string().contains("no layer named"), "{err}");
}

#[test]
fn a_pinned_layer_and_its_base_are_not_removed_until_unpinned() {
    let f = node();
    f.add_thin("Node-2.0-0", GIB, &["imgbased:base"]);
    run(
        &f,
        &layer::plan_add(&layout_of(&f), None, Some("Node-1.0-0")).unwrap(),
    )
    .unwrap();
    run(
        &f,
        &layer::plan_pin(&layout_of(&f), "Node-1.0-0+2", true).unwrap(),
    )
    .unwrap();
    let l = layout_of(&f);
    for err in [
        layer::plan_remove(&l, None, "Node-1.0-0+2").unwrap_err(),
        base::plan_remove(&l, None, "Node-1.0-0").unwrap_err(),
    ] {
        let err = err.to_string();
        assert!(
            err.contains("pinned") && err.contains("imgbase layer --unpin Node-1.0-0+2"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}

#[test]
fn rollback_boots_the_previous_layer_in_version_order() {
    let n = four_bases();
    let f = &n.f;
    // A second layer on Node-9.0-0: layers of one base are in index order.
    let l = n.add_layer("Node-9.0-0");
    assert_eq!(l, "Node-9.0-0+2");
    n.set_default("Node-10.0-0+1");
    let steps = [
        "Node-9.0-0+2",
        "Node-9.0-0+1",
        "Node-2.0-0+1",
        "Node-1.0-0+1",
    ];
    let mut from = "Node-10.0-0+1".to_string();
    for want in steps {
        let plan = rollback::plan_rollback(&layout_of(f), &n.view(), None).unwrap();
        assert_eq!(
            plan.steps,
            [Step::Boot(BootStep::SetDefault {
                layer: Some(want.into()),
                previous: Some(from.clone()),
            })],
            "rolling back from {from}"
        );
        assert!(plan.summary.contains(want), "{}", plan.summary);
        n.run(&plan).unwrap();
        assert_eq!(n.view().default.as_deref(), Some(want));
        from = want.into();
    }
    // The oldest layer has none before it: no wrap-around to the newest.
    let err = rollback::plan_rollback(&layout_of(f), &n.view(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Node-1.0-0+1 is the oldest layer") && err.contains("--to"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    assert_eq!(n.view().default.as_deref(), Some("Node-1.0-0+1"));
}

#[test]
fn rollback_to_a_named_layer_or_the_current_default() {
    let n = four_bases();
    let l = layout_of(&n.f);
    let plan = rollback::plan_rollback(&l, &n.view(), Some("Node-2.0-0+1")).unwrap();
    assert_eq!(
        plan.steps,
        [Step::Boot(BootStep::SetDefault {
            layer: Some("Node-2.0-0+1".into()),
            previous: Some("Node-10.0-0+1".into()),
        })]
    );
    // --to a newer layer is allowed too (forward again).
    n.run(&plan).unwrap();
    let plan = rollback::plan_rollback(&layout_of(&n.f), &n.view(), Some("Node-10.0-0+1")).unwrap();
    assert_eq!(plan.steps.len(), 1);
    n.run(&plan).unwrap();

    let noop = rollback::plan_rollback(&l, &n.view(), Some("Node-10.0-0+1")).unwrap();
    assert!(noop.steps.is_empty(), "{noop}");
    assert!(
        noop.summary.contains("already the default"),
        "{}",
        noop.summary
    );
    let err = rollback::plan_rollback(&l, &n.view(), Some("Nope-1-0+1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no layer named Nope-1-0+1"), "{err}");
}

#[test]
fn rollback_without_a_default_starts_from_the_booted_layer() {
    let n = four_bases();
    n.exec().boot.set_default(None).unwrap();
    assert_eq!(n.view().default, None);
    let l = booted_on(&n.f, "Node-9.0-0+1");
    let plan = rollback::plan_rollback(&l, &n.view(), None).unwrap();
    assert_eq!(
        plan.steps,
        [Step::Boot(BootStep::SetDefault {
            layer: Some("Node-2.0-0+1".into()),
            previous: None,
        })]
    );
    // Neither a default nor a booted layer: nothing to start from.
    let err = rollback::plan_rollback(&layout_of(&n.f), &n.view(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rollback --to LAYER"), "{err}");
}

#[test]
fn gc_keeps_the_newest_bases_and_removes_the_rest_newest_first() {
    let n = four_bases();
    let l = booted_on(&n.f, "Node-10.0-0+1");
    let plan = gc::plan_gc(&l, Some(&n.view()), 2).unwrap();
    assert_eq!(
        plan.removed,
        ["Node-2.0-0+1", "Node-2.0-0", "Node-1.0-0+1", "Node-1.0-0"]
    );
    assert_eq!(lvs_of(&plan), plan.removed);
    assert!(
        plan.summary.contains("Node-1.0-0, Node-2.0-0") && plan.summary.contains("newest 2"),
        "{}",
        plan.summary
    );
    // Entries move off the removed layers before the first lvremove;
    // their kernels go after the last.
    let ponr = plan.point_of_no_return().unwrap();
    assert!(matches!(&plan.steps[ponr], Step::Lvm(LvmStep::Remove { lv }) if lv == "Node-2.0-0+1"));
    for (i, s) in plan.steps.iter().enumerate() {
        match s {
            Step::Boot(BootStep::WriteEntries { .. } | BootStep::SetDefault { .. }) => {
                assert!(i < ponr, "{plan}")
            }
            Step::Boot(BootStep::RemoveKernels { .. }) => assert!(i > ponr, "{plan}"),
            _ => {}
        }
    }
    n.run(&plan).unwrap();
    let after = layout_of(&n.f);
    let names: Vec<_> = after.bases.iter().map(|b| b.volume.lv.as_str()).collect();
    assert_eq!(names, ["Node-9.0-0", "Node-10.0-0"]);
    assert!(n.f.get("root").is_some() && n.f.get("var").is_some());
    n.assert_sound("after gc");
    let v = n.view();
    let mut installed = v.installed.clone();
    installed.sort();
    assert_eq!(installed, ["Node-10.0-0+1", "Node-9.0-0+1"]);

    // Nothing older than the newest 2 left: nothing to do.
    let again = gc::plan_gc(&after, Some(&v), 2).unwrap();
    assert!(again.steps.is_empty(), "{again}");
    assert!(again.summary.contains("nothing to do"), "{}", again.summary);
    // --keep 1 takes one more.
    let one = gc::plan_gc(&booted_on(&n.f, "Node-10.0-0+1"), Some(&v), 1).unwrap();
    assert_eq!(one.removed, ["Node-9.0-0+1", "Node-9.0-0"]);
    let err = gc::plan_gc(&after, Some(&v), 0).unwrap_err().to_string();
    assert!(err.contains("--keep 1"), "{err}");
}

#[test]
fn gc_keeps_a_base_whose_layer_is_booted_default_or_pinned() {
    // Booted from the oldest base: it stays whole, the next goes.
    let n = four_bases();
    let plan = gc::plan_gc(&booted_on(&n.f, "Node-1.0-0+1"), Some(&n.view()), 2).unwrap();
    assert_eq!(plan.removed, ["Node-2.0-0+1", "Node-2.0-0"]);
    assert!(
        plan.summary
            .contains("Node-1.0-0 kept: its layer Node-1.0-0+1 is booted"),
        "{}",
        plan.summary
    );

    // The default on an old base.
    let n = four_bases();
    n.set_default("Node-2.0-0+1");
    let plan = gc::plan_gc(&layout_of(&n.f), Some(&n.view()), 2).unwrap();
    assert_eq!(plan.removed, ["Node-1.0-0+1", "Node-1.0-0"]);
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Boot(BootStep::SetDefault { .. }))),
        "the default does not move: {plan}"
    );
    n.run(&plan).unwrap();
    assert_eq!(n.view().default.as_deref(), Some("Node-2.0-0+1"));

    // A pinned layer, even one added after the base's first.
    let n = four_bases();
    let l2 = n.add_layer("Node-2.0-0");
    n.run(&layer::plan_pin(&layout_of(&n.f), &l2, true).unwrap())
        .unwrap();
    let plan = gc::plan_gc(&layout_of(&n.f), Some(&n.view()), 2).unwrap();
    assert_eq!(plan.removed, ["Node-1.0-0+1", "Node-1.0-0"]);
    assert!(plan.summary.contains("is pinned"), "{}", plan.summary);
    assert!(!lvs_of(&plan).contains(&l2.as_str()));
}

#[test]
fn gc_never_touches_init_or_volume_lvs() {
    let n = four_bases();
    // A base that also carries imgbased:volume (as no tool should tag
    // one, but gc must not take it if one did), and the init root.
    n.f.change_tags("HostVG", "Node-2.0-0", &["imgbased:volume".into()], &[])
        .unwrap();
    let plan = gc::plan_gc(&layout_of(&n.f), Some(&n.view()), 1).unwrap();
    for lv in ["root", "var", "Node-2.0-0", "Node-2.0-0+1"] {
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| s.to_string().contains(&format!(" {lv}")) && matches!(s, Step::Lvm(_))),
            "{lv}: {plan}"
        );
    }
    assert_eq!(
        plan.removed,
        ["Node-9.0-0+1", "Node-9.0-0", "Node-1.0-0+1", "Node-1.0-0"]
    );
    assert!(plan.summary.contains("Node-2.0-0 kept"), "{}", plan.summary);
    n.run(&plan).unwrap();
    assert!(n.f.get("root").is_some() && n.f.get("var").is_some());
}

#[test]
fn gc_in_a_plan_that_adds_a_base_and_moves_the_default() {
    // What an update does: a new base and layer with its entry, the new
    // default, then old bases collected in the same plan.
    let n = four_bases();
    let l = layout_of(&n.f);
    let view = n.view();
    let mut plan = base::plan_add(&l, "Node-11.0-0", GIB).unwrap();
    let temp = "imgbase-tmp-Node-11.0-0+1";
    plan.new_snapshot("Node-11.0-0", temp);
    plan.commit_lv(temp, "Node-11.0-0+1", "imgbased:layer");
    boot::add_entry(&mut plan, &view, "Node-11.0-0+1", None);
    plan.push(BootStep::SetDefault {
        layer: Some("Node-11.0-0+1".into()),
        previous: view.default.clone(),
    });
    n.kernel_tree("Node-11.0-0+1");
    let set_default = plan.steps.len() - 1;
    let c = gc::add_gc(
        &mut plan,
        &l,
        Some(&view),
        2,
        Some("Node-11.0-0"),
        Some("Node-11.0-0+1"),
    )
    .unwrap();
    // The new base counts as the newest: with it, Node-10.0-0 (the old
    // default) is kept, the three older go.
    assert_eq!(c.bases, ["Node-1.0-0", "Node-2.0-0", "Node-9.0-0"]);
    let ponr = plan.point_of_no_return().unwrap();
    assert!(ponr > set_default, "{plan}");
    let defaults: Vec<usize> = (0..plan.steps.len())
        .filter(|&i| matches!(plan.steps[i], Step::Boot(BootStep::SetDefault { .. })))
        .collect();
    assert_eq!(
        defaults,
        [set_default],
        "gc never moves the default: {plan}"
    );
    // The entries gc writes keep the new layer's.
    for s in &plan.steps[set_default..] {
        if let Step::Boot(BootStep::WriteEntries { layers, .. }) = s {
            assert!(layers.contains(&"Node-11.0-0+1".to_string()), "{plan}");
        }
    }
    n.run(&plan).unwrap();
    let v = n.view();
    assert_eq!(v.default.as_deref(), Some("Node-11.0-0+1"));
    assert_eq!(v.written, ["Node-10.0-0+1", "Node-11.0-0+1"]);
    n.assert_sound("after update + gc");
}

#[test]
fn check_reports_pool_usage_orphan_layers_and_update_conflicts() {
    let n = BootNode::new();
    let f = &n.f;
    f.lvs.borrow_mut()[0].data_percent = Some(42.0);
    f.lvs.borrow_mut()[0].metadata_percent = Some(7.0);
    let view = n.view();
    let opts = boot::CheckOptions::default();
    assert_eq!(opts.pool_threshold, boot::DEFAULT_POOL_THRESHOLD);
    let r = boot::check_with(&booted_on(f, "Node-1.0-0+1"), Some(&view), &opts).unwrap();
    assert_eq!(r.problems(), 0, "{r:?}");
    assert_eq!(
        r.motd_line(),
        "imgbase: OK: running Node-1.0-0+1 (default), pool 42% data, 7% metadata"
    );

    // Above (not at) the threshold is a problem, data and metadata apart.
    f.lvs.borrow_mut()[0].data_percent = Some(80.0);
    f.lvs.borrow_mut()[0].metadata_percent = Some(80.6);
    let r = boot::check_with(&layout_of(f), Some(&view), &opts).unwrap();
    assert_eq!(r.pool_over_threshold, ["metadata"]);
    assert_eq!(r.problems(), 1);
    assert_eq!(
        r.motd_line(),
        "imgbase: DEGRADED: 1 problem (run imgbase check)"
    );
    let lenient = boot::CheckOptions {
        pool_threshold: 90.0,
        root: None,
    };
    let r = boot::check_with(&layout_of(f), Some(&view), &lenient).unwrap();
    assert!(r.pool_over_threshold.is_empty());
    assert_eq!(r.pool_threshold, 90.0);
    assert_eq!(
        r.motd_line(),
        "imgbase: OK: not running from a layer (default: Node-1.0-0+1), pool 80% data, 81% metadata"
    );

    // A layer whose base LV is gone is reported, not fatal.
    f.add_thin("Gone-0.9-0+1", GIB, &["imgbased:layer"]);
    let r = boot::check_with(&layout_of(f), Some(&view), &lenient).unwrap();
    assert_eq!(r.layers_without_base, ["Gone-0.9-0+1"]);

    // Conflicts under the running root's /etc: symlinks not followed, an
    // .imgnew directory counted once.
    let root = n.t.path().join("root");
    let etc = root.join("etc");
    fs::create_dir_all(etc.join("ssh")).unwrap();
    fs::create_dir_all(etc.join("sudoers.d.imgnew/x")).unwrap();
    fs::write(etc.join("sudoers.d.imgnew/x/y.imgnew"), "").unwrap();
    fs::write(etc.join("ssh/sshd_config.imgnew"), "").unwrap();
    fs::write(etc.join("ssh/sshd_config"), "").unwrap();
    fs::write(etc.join("fstab.imgnew.bak"), "").unwrap();
    let outside = n.t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("hosts.imgnew"), "").unwrap();
    std::os::unix::fs::symlink(&outside, etc.join("link")).unwrap();
    let opts = boot::CheckOptions {
        pool_threshold: 90.0,
        root: Some(&root),
    };
    let r = boot::check_with(&layout_of(f), Some(&view), &opts).unwrap();
    assert_eq!(
        r.update_conflicts,
        [
            PathBuf::from("/etc/ssh/sshd_config.imgnew"),
            PathBuf::from("/etc/sudoers.d.imgnew"),
        ]
    );
    assert_eq!(
        boot::describe_conflict(&r.update_conflicts[0]),
        "unresolved update conflict: /etc/ssh/sshd_config.imgnew (compare with \
         /etc/ssh/sshd_config, then remove it)"
    );
    assert_eq!(r.problems(), 3);
    assert_eq!(
        r.motd_line(),
        "imgbase: DEGRADED: 3 problems (run imgbase check)"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["pool_threshold"], 90.0);
    assert_eq!(json["layers_without_base"][0], "Gone-0.9-0+1");
}
