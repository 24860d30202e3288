//! Tier 1: the JSON other tools read (`imgbase layout --json`, `imgbase
//! check --json`) against checked-in fixtures, one per type and schema
//! version. A failure here means the JSON changed shape: if that is
//! deliberate, keep old fields when you can, bump the type's
//! SCHEMA_VERSION if a field was removed, renamed or changed meaning, and
//! regenerate the fixture with `IMGBASE_UPDATE_FIXTURES=1 cargo test
//! --test json_schema` (see `imgbase::model::schema`).

use std::fs;
use std::path::Path;

use imgbase::boot::kernels::initrd_name;
use imgbase::boot::loader::{Boot, Loader};
use imgbase::model::layout::Layout;
use imgbase::sys::fakes::FakeLvm;
use imgbase::sys::lvm::{Lvm, Scope};
use imgbase::verbs::boot::{self, BootView, CheckReport};

const GIB: u64 = 1 << 30;

/// The JSON exactly as `print_json` in main prints it.
fn printed<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

/// Compare with `tests/fixtures/NAME`, or rewrite it when asked to.
fn assert_fixture(name: &str, json: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if std::env::var_os("IMGBASE_UPDATE_FIXTURES").is_some() {
        fs::write(&path, json).unwrap();
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        want == json,
        "the JSON of {name} changed shape (see the header of tests/json_schema.rs):\n\
         --- fixture\n{want}--- now\n{json}"
    );
}

/// A node with every part a layout shows: a protected base made from an
/// image, two layers (one booted), a layer whose base is gone, a
/// leftover of an interrupted run, an untagged LV and a boot loader tag.
fn node() -> FakeLvm {
    let f = FakeLvm::with_pool("HostVG", "pool", 20 * GIB);
    f.change_tags("HostVG", "pool", &["imgbase:boot=grub".into()], &[])
        .unwrap();
    f.add_thin("root", 4 * GIB, &["imgbased:init"]);
    let base = "Node-1.0-0";
    f.snapshot(
        "HostVG",
        "root",
        base,
        &[
            "imgbased:base".into(),
            "imgbase:last-layer=2".into(),
            format!("imgbase:sha256={}", "ab".repeat(32)),
            "imgbase:fs=ext4".into(),
        ],
    )
    .unwrap();
    f.set_read_only("HostVG", base, true).unwrap();
    f.set_activation_skip("HostVG", base, true).unwrap();
    f.set_active("HostVG", base, false).unwrap();
    for layer in ["Node-1.0-0+1", "Node-1.0-0+2"] {
        f.snapshot("HostVG", base, layer, &["imgbased:layer".into()])
            .unwrap();
    }
    f.change_tags("HostVG", "Node-1.0-0+1", &["imgbase:pinned".into()], &[])
        .unwrap();
    f.add_thin("Gone-0.9-0+1", 4 * GIB, &["imgbased:layer"]);
    f.add_thin("imgbase-tmp-Node-2.0-0", 4 * GIB, &["imgbase:incomplete"]);
    f.add_thin("swap", GIB, &[]);
    f
}

fn booted_on(f: &FakeLvm, lv: &str) -> Layout {
    let root = Some(f.dev(lv));
    Layout::from_report(&f.report(&Scope::TaggedVgs).unwrap(), None, root).unwrap()
}

#[test]
fn layout_json_matches_its_fixture() {
    let layout = booted_on(&node(), "Node-1.0-0+1");
    assert_eq!(Layout::SCHEMA_VERSION, 1);
    assert_fixture("layout-v1.json", &printed(&layout));
}

#[test]
fn check_json_matches_its_fixture() {
    let f = node();
    // Entries for +1 and +2 of which only +1 has an LV left, kernels of a
    // layer that is gone, a stray file, and a default naming no entry.
    f.remove("HostVG", "Node-1.0-0+2").unwrap();
    let t = tempfile::tempdir().unwrap();
    let boot_dir = t.path().join("boot");
    fs::create_dir_all(boot_dir.join("grub")).unwrap();
    let b = Boot::new(&boot_dir, Loader::Grub);
    let store = b.store();
    let mut installed = Vec::new();
    for layer in ["Node-1.0-0+1", "Node-1.0-0+2"] {
        let dir = store.layer_dir(layer);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vmlinuz-6.1.0"), "k").unwrap();
        fs::write(dir.join(initrd_name("6.1.0")), "i").unwrap();
        installed.push(store.installed(layer).unwrap().unwrap());
    }
    b.write_entries(&installed).unwrap();
    b.set_default(Some("Node-1.0-0+9")).unwrap();
    fs::write(store.dir.join(".partial"), "").unwrap();
    // +3 has no entry.
    f.snapshot(
        "HostVG",
        "Node-1.0-0",
        "Node-1.0-0+3",
        &["imgbased:layer".into()],
    )
    .unwrap();

    // The pool's data above the threshold, and an update conflict in /etc.
    f.lvs.borrow_mut()[0].data_percent = Some(85.0);
    let root = t.path().join("root");
    fs::create_dir_all(root.join("etc/ssh")).unwrap();
    fs::write(root.join("etc/ssh/sshd_config.imgnew"), "").unwrap();

    let view = BootView::read(b).unwrap();
    let opts = boot::CheckOptions {
        pool_threshold: boot::DEFAULT_POOL_THRESHOLD,
        root: Some(&root),
    };
    let report = boot::check_with(&booted_on(&f, "Node-1.0-0+1"), Some(&view), &opts).unwrap();
    assert_eq!(CheckReport::SCHEMA_VERSION, 1);
    // Paths as they would be on a node, not under this test's tempdir.
    let json = printed(&report).replace(boot_dir.to_str().unwrap(), "/boot");
    assert_fixture("check-v1.json", &json);
}
