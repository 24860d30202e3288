//! Tier 1: trial boots against the in-memory LVM and a temporary /boot:
//! `update` ends with a trial, the operator's choices end one, `gc` keeps
//! the layer on trial, `update` refuses an image that failed, and `bless`
//! blesses or records a failure (systemd answered by a fake runner).

use std::fs;
use std::path::{Path, PathBuf};

use imgbase::boot::grubenv::GrubEnv;
use imgbase::boot::loader::{Boot, Loader, TrialState};
use imgbase::error::Error;
use imgbase::image::detect::Format;
use imgbase::model::layout::Layout;
use imgbase::plan::{BootStep, Executor, LvmStep, Plan, Step};
use imgbase::sys::boot::BootExec;
use imgbase::sys::fakes::{DirTrees, FakeFilesystems, FakeImages, FakeLvm, FakeRunner};
use imgbase::sys::images::ImageInfo;
use imgbase::sys::lvm::{Lvm, Scope};
use imgbase::sys::progress::Progress;
use imgbase::verbs::base::FromImage;
use imgbase::verbs::bless::plan_bless;
use imgbase::verbs::boot::{self, BootView};
use imgbase::verbs::update::{Update, plan_update};
use imgbase::verbs::{gc, rollback};

const GIB: u64 = 1 << 30;
const IS_ACTIVE: &str = "systemctl is-active boot-complete.target";
const FAILED_UNITS: &str = "systemctl --failed --plain --no-legend";

/// Two bases with a layer each, kernels for both in a /boot whose loader
/// reads imgbase's entries; Node-1.0-0+1 the default.
struct Node {
    f: FakeLvm,
    t: tempfile::TempDir,
    trees: DirTrees,
    loader: Loader,
}

impl Node {
    fn new(loader: Loader) -> Node {
        let f = FakeLvm::with_pool("HostVG", "pool", 20 * GIB);
        f.add_thin(
            "Node-1.0-0",
            2 * GIB,
            &["imgbased:base", "imgbase:sha256=aa"],
        );
        f.add_thin("Node-1.0-0+1", 3 * GIB, &["imgbased:layer"]);
        f.add_thin(
            "Node-2.0-0",
            2 * GIB,
            &["imgbased:base", "imgbase:sha256=bb"],
        );
        f.add_thin("Node-2.0-0+1", 3 * GIB, &["imgbased:layer"]);
        let t = tempfile::tempdir().unwrap();
        match loader {
            Loader::Grub => {
                fs::create_dir_all(t.path().join("boot/grub")).unwrap();
                fs::write(
                    t.path().join("boot/grub/grub.cfg"),
                    "### imgbase ###\nsource /grub/imgbase.cfg\n",
                )
                .unwrap();
            }
            _ => {
                fs::create_dir_all(t.path().join("boot/loader/entries")).unwrap();
                fs::write(t.path().join("boot/loader/loader.conf"), "timeout 3\n").unwrap();
            }
        }
        let trees = DirTrees::new(t.path().join("trees"));
        let n = Node {
            f,
            t,
            trees,
            loader,
        };
        for l in ["Node-1.0-0+1", "Node-2.0-0+1"] {
            let k = n.t.path().join("trees").join(l).join("boot");
            fs::create_dir_all(&k).unwrap();
            fs::write(k.join("vmlinuz-6.1"), "k").unwrap();
            fs::write(k.join("initrd.img-6.1"), "i").unwrap();
        }
        let plan = boot::plan_setup(&n.layout(), &n.view(), None, n.t.path().join("root")).unwrap();
        n.run(&plan).unwrap();
        n.run(&boot::plan_set_default(&n.layout(), &n.view(), "Node-1.0-0+1").unwrap())
            .unwrap();
        n
    }

    fn layout(&self) -> Layout {
        Layout::from_report(&self.f.report(&Scope::TaggedVgs).unwrap(), None, None).unwrap()
    }

    /// The layout as seen running from `lv`.
    fn booted_on(&self, lv: &str) -> Layout {
        Layout::from_report(
            &self.f.report(&Scope::TaggedVgs).unwrap(),
            None,
            Some(self.f.dev(lv)),
        )
        .unwrap()
    }

    fn boot_dir(&self) -> PathBuf {
        self.t.path().join("boot")
    }

    fn exec(&self) -> BootExec<'_> {
        BootExec {
            boot: Boot::new(&self.boot_dir(), self.loader),
            trees: &self.trees,
            running: None,
        }
    }

    fn view(&self) -> BootView {
        BootView::read(self.exec().boot).unwrap()
    }

    fn run(&self, plan: &Plan) -> Result<(), Error> {
        let exec = self.exec();
        Executor {
            lvm: &self.f,
            fs: &FakeFilesystems::default(),
            images: &FakeImages::default(),
            progress: &Progress::silent(),
            boot: Some(&exec),
            trees: None,
            journal: None,
        }
        .execute("test", plan)
    }

    fn env(&self) -> GrubEnv {
        GrubEnv::load(&self.boot_dir().join("grub/grubenv")).unwrap()
    }

    fn put_on_trial(&self, layer: &str) {
        let plan = boot::plan_trial(&self.layout(), &self.view(), layer, 2).unwrap();
        self.run(&plan).unwrap();
    }
}

fn image(nvr: &str, sha256: &str) -> ImageInfo {
    ImageInfo {
        path: PathBuf::from("/images/node.img"),
        format: Format::Filesystem { fs: "ext4".into() },
        sha256: sha256.into(),
        size: 2 * GIB,
        data_bytes: GIB / 4,
        fs_type: Some("ext4".into()),
        nvr: Some(nvr.into()),
    }
}

fn update(n: &Node, info: &ImageInfo, force: bool, trial: Option<u8>) -> Result<Plan, String> {
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
        keep: vec![],
        pool_threshold: 80.0,
        bases_to_keep: 2,
        state_dir: Path::new("/var/lib/imgbase"),
        trial,
    };
    plan_update(&n.layout(), Some(&n.view()), &req).map_err(|e| e.to_string())
}

fn boot_steps(plan: &Plan) -> Vec<&BootStep> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::Boot(b) => Some(b),
            _ => None,
        })
        .collect()
}

fn has_set_default(plan: &Plan) -> bool {
    boot_steps(plan)
        .iter()
        .any(|s| matches!(s, BootStep::SetDefault { .. }))
}

#[test]
fn an_update_boots_the_new_layer_as_a_trial_and_keeps_the_default() {
    let n = Node::new(Loader::Grub);
    let p = update(&n, &image("Node-3.0-0", &"cc".repeat(32)), false, Some(2)).unwrap();
    assert!(!has_set_default(&p), "{p}");
    let trials: Vec<_> = boot_steps(&p)
        .into_iter()
        .filter(|s| matches!(s, BootStep::SetTrial { .. }))
        .collect();
    assert_eq!(
        trials,
        [&BootStep::SetTrial {
            trial: Some(TrialState {
                layer: "Node-3.0-0+1".into(),
                tries: 2
            }),
            previous: None,
            default: Some("Node-1.0-0+1".into()),
        }],
        "{p}"
    );
    let text = p.to_string();
    assert!(
        text.contains("boot Node-3.0-0+1 as a trial (2 tries), the default stays Node-1.0-0+1"),
        "{text}"
    );
    // The oldest base goes (keep 2 with the new one), the default's with
    // it never: Node-1.0-0 is the default's base and stays.
    assert!(!p.removed.contains(&"Node-1.0-0+1".to_string()), "{p}");

    // --no-trial: the default moves at once, no trial.
    let p = update(&n, &image("Node-3.0-0", &"cc".repeat(32)), false, None).unwrap();
    assert!(has_set_default(&p), "{p}");
    assert!(
        !boot_steps(&p)
            .iter()
            .any(|s| matches!(s, BootStep::SetTrial { .. })),
        "{p}"
    );
}

#[test]
fn a_trial_on_grub_that_does_not_read_the_menu_is_refused() {
    let n = Node::new(Loader::Grub);
    fs::write(n.boot_dir().join("grub/grub.cfg"), "menuentry x {}\n").unwrap();
    let e = update(&n, &image("Node-3.0-0", &"cc".repeat(32)), false, Some(1)).unwrap_err();
    assert!(
        e.contains("--no-trial") && e.contains("boot --setup"),
        "{e}"
    );
    assert!(!e.contains('\n'));
    assert!(update(&n, &image("Node-3.0-0", &"cc".repeat(32)), false, None).is_ok());
}

#[test]
fn a_trial_runs_into_grubenv_and_the_operators_choice_ends_it() {
    let n = Node::new(Loader::Grub);
    n.put_on_trial("Node-2.0-0+1");
    let env = n.env();
    assert_eq!(env.get("imgbase_trial"), Some("Node-2.0-0+1"));
    assert_eq!(env.get("imgbase_tries"), Some("2"));
    assert_eq!(env.get("saved_entry"), Some("Node-1.0-0+1"));
    assert_eq!(n.view().trial(), Some("Node-2.0-0+1"));

    // boot --set-default (without --trial) ends it.
    let p = boot::plan_set_default(&n.layout(), &n.view(), "Node-2.0-0+1").unwrap();
    assert!(
        p.steps.iter().any(|s| matches!(
            s,
            Step::Boot(BootStep::SetTrial { trial: None, previous: Some(t), .. }) if t.layer == "Node-2.0-0+1"
        )),
        "{p}"
    );
    n.run(&p).unwrap();
    assert_eq!(n.env().get("imgbase_trial"), None);
    assert_eq!(n.env().get("saved_entry"), Some("Node-2.0-0+1"));

    // rollback ends one too, even to the current default.
    n.put_on_trial("Node-1.0-0+1");
    let p = rollback::plan_rollback(&n.layout(), &n.view(), Some("Node-2.0-0+1")).unwrap();
    assert!(!p.steps.is_empty(), "{p}");
    n.run(&p).unwrap();
    assert_eq!(n.env().get("imgbase_trial"), None);
    assert_eq!(n.env().get("imgbase_tries"), None);
}

#[test]
fn a_failed_trial_step_undoes_back_to_the_previous_trial() {
    let n = Node::new(Loader::Grub);
    n.put_on_trial("Node-2.0-0+1");
    let mut p = Plan::new("HostVG", "test");
    p.push(BootStep::SetTrial {
        trial: None,
        previous: n.view().trials.pending.clone(),
        default: None,
    });
    // A step that fails: the layer has no kernels.
    p.push(BootStep::SetDefault {
        layer: Some("Node-9.0-0+1".into()),
        previous: None,
    });
    assert!(n.run(&p).is_err());
    assert_eq!(n.env().get("imgbase_trial"), Some("Node-2.0-0+1"));
    assert_eq!(n.env().get("imgbase_tries"), Some("2"));
}

#[test]
fn gc_never_removes_the_layer_on_trial() {
    let n = Node::new(Loader::Grub);
    n.run(&boot::plan_set_default(&n.layout(), &n.view(), "Node-2.0-0+1").unwrap())
        .unwrap();
    n.put_on_trial("Node-1.0-0+1");
    let p = gc::plan_gc(&n.layout(), Some(&n.view()), 1).unwrap();
    assert!(p.removed.is_empty(), "{p}");
    assert!(
        p.summary.contains("Node-1.0-0+1 is on trial"),
        "{}",
        p.summary
    );
    // Without the trial it would go.
    n.run(&boot::plan_set_default(&n.layout(), &n.view(), "Node-2.0-0+1").unwrap())
        .unwrap();
    let p = gc::plan_gc(&n.layout(), Some(&n.view()), 1).unwrap();
    assert_eq!(p.removed, ["Node-1.0-0+1", "Node-1.0-0"]);
}

#[test]
fn bless_makes_a_booted_trial_that_came_up_the_default_once() {
    let n = Node::new(Loader::Grub);
    n.put_on_trial("Node-2.0-0+1");
    let systemd = FakeRunner::default();
    systemd.answer(IS_ACTIVE, 0, "active\n");
    let layout = n.booted_on("Node-2.0-0+1");
    let (p, b) = plan_bless(&layout, &n.view(), &systemd, "T", 2).unwrap();
    assert_eq!(b.blessed.as_deref(), Some("Node-2.0-0+1"));
    assert_eq!(b.messages, ["blessed Node-2.0-0+1: it is the default now"]);
    assert!(!b.reboot);
    n.run(&p).unwrap();
    let env = n.env();
    assert_eq!(env.get("saved_entry"), Some("Node-2.0-0+1"));
    assert_eq!(env.get("imgbase_trial"), None);
    assert_eq!(env.get("imgbase_tries"), None);
    // Again: nothing to do, nothing said, systemd not asked.
    let systemd = FakeRunner::default();
    let (p, b) = plan_bless(&layout, &n.view(), &systemd, "T", 2).unwrap();
    assert!(p.steps.is_empty(), "{p}");
    assert!(b.messages.is_empty() && b.failed.is_empty() && !b.reboot);
    assert!(systemd.calls.borrow().is_empty());
}

#[test]
fn bless_records_a_trial_that_did_not_come_up_and_asks_for_a_reboot() {
    let n = Node::new(Loader::Grub);
    n.put_on_trial("Node-2.0-0+1");
    let systemd = FakeRunner::default();
    systemd.answer(IS_ACTIVE, 3, "inactive\n");
    systemd.answer(
        FAILED_UNITS,
        0,
        "app.service loaded failed failed My app\ndb.mount loaded failed failed DB\n",
    );
    let (p, b) = plan_bless(&n.booted_on("Node-2.0-0+1"), &n.view(), &systemd, "T0", 2).unwrap();
    let reason = "boot-complete.target was not reached (failed units: app.service, db.mount)";
    assert_eq!(b.failed.len(), 1);
    assert_eq!(b.failed[0].reason, reason);
    assert!(b.reboot);
    assert_eq!(b.blessed, None);
    assert!(!has_set_default(&p), "{p}");
    n.run(&p).unwrap();
    assert!(
        n.f.get("Node-2.0-0+1")
            .unwrap()
            .tags
            .contains(&"imgbase:failed".to_string())
    );
    assert_eq!(
        fs::read_to_string(n.boot_dir().join("imgbase/failed/Node-2.0-0+1")).unwrap(),
        format!("T0 {reason}\n")
    );
    let v = n.view();
    assert_eq!(v.default.as_deref(), Some("Node-1.0-0+1"));
    assert_eq!(v.trial(), None);
    // The reason file is neither a layer's kernels nor a stray.
    assert!(v.strays.is_empty(), "{:?}", v.strays);
    assert!(!v.installed.contains(&"failed".to_string()));
    // check says so, and what to do.
    let r = boot::check(&n.layout(), Some(&v)).unwrap();
    assert_eq!(r.failed_trials.len(), 1);
    let said = r.failed_trials[0].describe();
    assert!(
        said.contains(&format!("T0 {reason}"))
            && said.contains("imgbase layer --remove Node-2.0-0+1")
            && said.contains("imgbase boot --set-default Node-2.0-0+1 --trial"),
        "{said}"
    );
    assert!(
        r.motd_line()
            .contains("layer Node-2.0-0+1 failed its trial boot")
    );
    // The failed layer is not what rollback or update pick by themselves.
    assert_eq!(
        rollback::previous_layer(&n.layout(), "Node-2.0-0+1"),
        Some("Node-1.0-0+1")
    );
    // Blessing again changes nothing.
    let (p, _) = plan_bless(&n.layout(), &n.view(), &FakeRunner::default(), "T1", 2).unwrap();
    assert!(p.steps.is_empty(), "{p}");
}

#[test]
fn bless_records_what_grub_found_out_of_tries() {
    let n = Node::new(Loader::Grub);
    n.put_on_trial("Node-2.0-0+1");
    // What 09_imgbase leaves after the last try was spent.
    let mut env = n.env();
    env.unset("imgbase_trial");
    env.unset("imgbase_tries");
    env.set("imgbase_failed", "Node-2.0-0+1").unwrap();
    env.save(&n.boot_dir().join("grub/grubenv")).unwrap();
    let systemd = FakeRunner::default();
    let (p, b) = plan_bless(&n.booted_on("Node-1.0-0+1"), &n.view(), &systemd, "T", 2).unwrap();
    assert_eq!(
        b.messages,
        [
            "layer Node-2.0-0+1 failed its trial boot (its trial boot did not reach \
          boot-complete.target (2 tries)); it is not booted again by itself"
        ]
    );
    assert!(!b.reboot);
    assert!(systemd.calls.borrow().is_empty());
    n.run(&p).unwrap();
    assert_eq!(n.env().get("imgbase_failed"), None);
    assert_eq!(n.env().get("saved_entry"), Some("Node-1.0-0+1"));
    assert!(n.layout().layer("Node-2.0-0+1").unwrap().1.failed);

    // update refuses that image again (same NVR, or same bytes), unless forced.
    fs::write(
        n.boot_dir().join("imgbase/failed/Node-2.0-0+1"),
        "T it broke\n",
    )
    .unwrap();
    for info in [image("Node-2.0-0", "dd"), image("Node-2.1-0", "bb")] {
        let e = update(&n, &info, false, Some(1)).unwrap_err();
        assert!(
            e.contains("failed its trial boot on Node-2.0-0+1 (T it broke)")
                && e.contains("--force"),
            "{e}"
        );
    }
    let e = update(&n, &image("Node-2.0-0", "dd"), true, Some(1)).unwrap_err();
    assert!(!e.contains("failed its trial boot"), "{e}");
    // Trying it again by hand drops the failure records.
    let p = boot::plan_trial(&n.layout(), &n.view(), "Node-2.0-0+1", 1).unwrap();
    assert!(
        p.steps.iter().any(|s| matches!(s, Step::Lvm(LvmStep::ChangeTags { del, .. }) if del == &["imgbase:failed"])),
        "{p}"
    );
    n.run(&p).unwrap();
    assert!(!n.layout().layer("Node-2.0-0+1").unwrap().1.failed);
    assert!(!n.boot_dir().join("imgbase/failed/Node-2.0-0+1").exists());
}

#[test]
fn bless_on_systemd_boot_renames_the_entries() {
    let n = Node::new(Loader::SystemdBoot);
    n.put_on_trial("Node-2.0-0+1");
    let entries = n.boot_dir().join("loader/entries");
    assert!(entries.join("imgbase-Node-2.0-0+1-6.1+2.conf").exists());
    assert!(!entries.join("imgbase-Node-2.0-0+1-6.1.conf").exists());
    let systemd = FakeRunner::default();
    systemd.answer(IS_ACTIVE, 0, "active\n");
    let (p, b) = plan_bless(&n.booted_on("Node-2.0-0+1"), &n.view(), &systemd, "T", 2).unwrap();
    assert_eq!(b.blessed.as_deref(), Some("Node-2.0-0+1"));
    n.run(&p).unwrap();
    assert!(entries.join("imgbase-Node-2.0-0+1-6.1.conf").exists());
    assert!(!entries.join("imgbase-Node-2.0-0+1-6.1+2.conf").exists());
    assert_eq!(
        fs::read_to_string(n.boot_dir().join("loader/loader.conf")).unwrap(),
        "timeout 3\ndefault imgbase-Node-2.0-0+1-6.1.conf\n"
    );

    // A trial systemd-boot counted down to nothing: failed, named plainly
    // again, and the default stays.
    n.put_on_trial("Node-1.0-0+1");
    fs::rename(
        entries.join("imgbase-Node-1.0-0+1-6.1+2.conf"),
        entries.join("imgbase-Node-1.0-0+1-6.1+0-2.conf"),
    )
    .unwrap();
    let (p, b) = plan_bless(
        &n.booted_on("Node-2.0-0+1"),
        &n.view(),
        &FakeRunner::default(),
        "T",
        2,
    )
    .unwrap();
    assert_eq!(b.failed.len(), 1, "{p}");
    n.run(&p).unwrap();
    assert!(entries.join("imgbase-Node-1.0-0+1-6.1.conf").exists());
    assert_eq!(n.view().default.as_deref(), Some("Node-2.0-0+1"));
    assert!(n.layout().layer("Node-1.0-0+1").unwrap().1.failed);
}
