//! Tier 1: the `imgbase` binary end to end against a scripted `lvm`
//! stand-in that serves a fixture report and logs every invocation.
//! (Real LVM is exercised by the guest tier, tests/guest_*.rs.)

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

struct FakeNode {
    dir: tempfile::TempDir,
}

impl FakeNode {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lvs-node.json");
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\nif [ \"$1\" = lvs ]; then cat '{report}'; fi\n",
            log = dir.path().join("calls").display(),
            report = report.display()
        );
        let lvm = dir.path().join("lvm");
        std::fs::write(&lvm, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&lvm, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeNode { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("imgbase").unwrap();
        c.env("IMGBASE_LVM", self.dir.path().join("lvm"))
            .env("IMGBASE_LOCK_FILE", self.lock())
            .env("IMGBASE_LOCK_WAIT", "1")
            .env("IMGBASE_LOADER", "none")
            // Journals go to the test's dir, never the machine's.
            .env("IMGBASE_STATE_DIR", self.dir.path().join("state"));
        c
    }

    fn lock(&self) -> PathBuf {
        self.dir.path().join("imgbase.lock")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn layout_is_one_lvs_call_and_a_version_ordered_tree() {
    let node = FakeNode::new();
    node.cmd()
        .arg("layout")
        .assert()
        .success()
        .stdout("Node-1.0-0\n +- Node-1.0-0+1\nNode-2-0\n +- Node-2-0+1\nNode-13-0\n");
    let calls = node.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("lvs --reportformat json"), "{calls:?}");
}

#[test]
fn every_query_is_one_lvs_call() {
    let node = FakeNode::new();
    let queries: &[&[&str]] = &[
        &["layout", "--bases"],
        &["layout", "--layers"],
        &["layout", "--free-space"],
        &["base", "--latest"],
        &["base", "--of-layer", "Node-2-0+1"],
        &["layer", "--latest"],
        &["layer", "--volume-path", "Node-2-0+1"],
        &["--json", "layout"],
    ];
    for q in queries {
        node.cmd().args(*q).assert().success();
    }
    assert_eq!(node.calls().len(), queries.len());
}

#[test]
fn queries_answer_as_imgbased_does() {
    let node = FakeNode::new();
    node.cmd()
        .args(["base", "--latest"])
        .assert()
        .stdout("Node-13-0\n");
    node.cmd()
        .args(["layer", "--latest"])
        .assert()
        .stdout("Node-2-0+1\n");
    node.cmd()
        .args(["base", "--of-layer", "Node-1.0-0+1"])
        .assert()
        .stdout("Node-1.0-0\n");
    node.cmd()
        .args(["layer", "--volume-path", "Node-1.0-0+1"])
        .assert()
        .stdout("/dev/HostVG/Node-1.0-0+1\n");
    node.cmd()
        .args(["layout", "--layers"])
        .assert()
        .stdout("Node-1.0-0+1\nNode-2-0+1\n");
    // 10 GiB pool, 25% used: 7680 MiB free.
    node.cmd()
        .args(["layout", "--free-space"])
        .assert()
        .stdout("7680.00\n");
    node.cmd()
        .args(["layout", "--free-space", "--units", "g"])
        .assert()
        .stdout("7.50\n");
}

#[test]
fn json_reports_parse() {
    let node = FakeNode::new();
    let out = node.cmd().args(["--json", "layout"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["vg"], "HostVG");
    assert_eq!(v["bases"][2]["name"], "Node-13-0");
    assert_eq!(v["bases"][0]["layers"][0]["name"], "Node-1.0-0+1");
    assert_eq!(v["bases"][0]["read_only"], true);
    assert_eq!(v["init_lv"], "root");
    let out = node
        .cmd()
        .args(["--json", "layout", "--free-space"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data_free"], 7680u64 << 20);
}

#[test]
fn dry_run_prints_the_plan_and_runs_only_the_report() {
    let node = FakeNode::new();
    node.cmd()
        .args(["--dry-run", "layer", "--add", "Node-2-0"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Plan: add layer Node-2-0+2 on Node-2-0",
        ))
        .stdout(predicate::str::contains(
            "rename imgbase-tmp-Node-2-0+2 to Node-2-0+2",
        ));
    let out = node
        .cmd()
        .args([
            "--dry-run",
            "--json",
            "base",
            "--add",
            "Node-3-0",
            "--size",
            "1G",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["step"], "create-thin");
    assert_eq!(v["steps"][0]["size"], 1u64 << 30);
    assert!(
        node.calls().iter().all(|c| c.starts_with("lvs ")),
        "{:?}",
        node.calls()
    );
}

#[test]
fn changes_run_their_plan_through_lvm() {
    let node = FakeNode::new();
    node.cmd()
        .args(["base", "--add", "Node-3-0", "--size", "1G"])
        .assert()
        .success()
        .stdout("Created Node-3-0\n");
    let calls = node.calls();
    assert!(calls[0].starts_with("lvs "));
    assert_eq!(
        &calls[1..],
        [
            "lvcreate -y --type thin -V 1073741824b -n imgbase-tmp-Node-3-0 --addtag imgbase:incomplete HostVG/pool",
            "lvchange -p r HostVG/imgbase-tmp-Node-3-0",
            "lvchange -k y HostVG/imgbase-tmp-Node-3-0",
            "lvchange -an HostVG/imgbase-tmp-Node-3-0",
            "lvrename HostVG imgbase-tmp-Node-3-0 Node-3-0",
            "lvchange --addtag imgbased:base --deltag imgbase:incomplete HostVG/Node-3-0",
        ]
    );
}

#[test]
fn bad_input_is_one_line_nonzero_and_touches_nothing() {
    let node = FakeNode::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["base", "--add", "Node 1-0-0", "--size", "1G"],
            "not allowed",
        ),
        (
            &["base", "--add", "Node-1.0-0", "--size", "1G"],
            "already exists",
        ),
        (
            &["base", "--add", "Node-9-0", "--size", "1X"],
            "invalid size",
        ),
        (
            &["base", "--add", "Node-9-0", "--size", "1T"],
            "larger than the thin pool",
        ),
        (&["base", "--remove", "Nope-1-0"], "no base named"),
        (&["layer", "--add", "Nope-1-0"], "no base or layer named"),
        (&["layer", "--remove", "Node-13-0+1"], "no layer named"),
        (&["layer", "--volume-path", "x"], "no layer named"),
        (&["--vg", "Other", "layout"], ""),
    ];
    for (args, want) in cases {
        let out = node.cmd().args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("imgbase: error: "), "{err}");
    }
    assert!(
        node.calls().iter().all(|c| c.starts_with("lvs ")),
        "{:?}",
        node.calls()
    );
}

#[test]
fn a_second_run_waits_then_names_the_holder() {
    let node = FakeNode::new();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(node.lock())
        .unwrap();
    lock.lock().unwrap();
    std::fs::write(node.lock(), "pid 4242: imgbase update\n").unwrap();
    node.cmd()
        .args(["layer", "--add"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "another imgbase operation is running (pid 4242: imgbase update)",
        ));
    assert!(
        node.calls().is_empty(),
        "nothing read or changed while locked"
    );
    // Reports need no lock.
    node.cmd().arg("layout").assert().success();
}

#[test]
fn usage_errors_exit_2() {
    let node = FakeNode::new();
    node.cmd().args(["base"]).assert().code(2);
    node.cmd().args(["base", "--add", "X-1-0"]).assert().code(2);
    node.cmd()
        .args(["layer", "--add", "--remove", "x"])
        .assert()
        .code(2);
}

#[test]
fn a_vg_that_is_no_lvm_name_is_a_usage_error_and_runs_no_lvm() {
    let node = FakeNode::new();
    for (vg, rule) in [
        ("-a", "must not start with '-'"),
        ("..", "reserved by LVM"),
        ("a/b", "is not allowed"),
        ("", "must not be empty"),
    ] {
        let out = node
            .cmd()
            .arg(format!("--vg={vg}"))
            .arg("layout")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vg:?}: {err}");
        assert!(err.contains("--vg"), "{vg:?}: {err}");
        assert!(err.contains("volume group name"), "{vg:?}: {err}");
        assert!(err.contains(rule), "{vg:?}: {err}");
    }
    assert!(node.calls().is_empty(), "{:?}", node.calls());
    let long = "v".repeat(128);
    node.cmd()
        .arg(format!("--vg={long}"))
        .arg("layout")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the limit is 127"));
}

#[test]
fn docs_generate_a_man_page_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("imgbase")
        .unwrap()
        .args(["docs", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let man = std::fs::read_to_string(dir.path().join("imgbase.8")).unwrap();
    assert!(man.contains("imgbase"));
    assert!(dir.path().join("imgbase.bash").exists());
    assert!(dir.path().join("_imgbase").exists());
}

/// A /boot with grub and the kernels of Node-2-0+1 already in the store.
fn boot_dir() -> tempfile::TempDir {
    let b = tempfile::tempdir().unwrap();
    let l = b.path().join("imgbase/Node-2-0+1");
    std::fs::create_dir_all(&l).unwrap();
    std::fs::create_dir_all(b.path().join("grub")).unwrap();
    std::fs::write(l.join("vmlinuz-6.1"), "k").unwrap();
    std::fs::write(l.join("initrd.img-6.1"), "i").unwrap();
    std::fs::write(l.join("cmdline"), "root=/dev/HostVG/Node-2-0+1 quiet\n").unwrap();
    b
}

#[test]
fn boot_verbs_use_the_boot_dir() {
    let node = FakeNode::new();
    let b = boot_dir();
    let boot = |args: &[&str]| {
        let mut c = node.cmd();
        c.args(["--loader", "auto", "--boot-dir", b.path().to_str().unwrap()])
            .args(args);
        c
    };
    boot(&["boot", "--list"]).assert().success().stdout(
        predicate::str::is_match(r"^  Node-2-0\+1 +Node 2-0 \(layer 1\)  \[6.1\]\n$").unwrap(),
    );
    boot(&["boot", "--set-default", "Node-2-0+1"])
        .assert()
        .success();
    let env = std::fs::read_to_string(b.path().join("grub/grubenv")).unwrap();
    assert_eq!(env.len(), 1024);
    assert!(env.contains("saved_entry=Node-2-0+1\n"), "{env}");
    boot(&["boot", "--get-default"])
        .assert()
        .success()
        .stdout("Node-2-0+1\n");
    for (args, want) in [
        (
            ["boot", "--set-default", "Node-1.0-0+1"],
            "has no boot entry",
        ),
        (
            ["boot", "--next", "Nope-1-0+1"],
            "no layer named Nope-1-0+1",
        ),
    ] {
        boot(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(want));
    }
    node.cmd()
        .args(["boot", "--list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no boot loader found"));

    // A new layer's plan copies its kernels and rewrites the entries last.
    let plan = boot(&["--dry-run", "layer", "--add", "Node-2-0"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout);
    let copy = plan.find("copy the kernels of Node-2-0+2").expect(&plan);
    let rename = plan.find("rename imgbase-tmp-Node-2-0+2").expect(&plan);
    assert!(rename < copy, "{plan}");
    assert!(
        plan.contains("write the boot entries of Node-2-0+1, Node-2-0+2"),
        "{plan}"
    );

    // check: the menu was never written, and two layers have no entry.
    let out = boot(&["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("layer without a boot entry: Node-1.0-0+1"),
        "{report}"
    );
}

#[test]
fn dry_run_export_writes_nothing() {
    let node = FakeNode::new();
    let out = node.dir.path().join("node.tar.zst");
    node.cmd()
        .args(["--dry-run", "base", "--export", "Node-2-0", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("would export base Node-2-0"));
    assert!(!out.exists(), "--dry-run wrote {}", out.display());
    // Only the report was read: no activation, no lock taken.
    let calls = node.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(!node.lock().exists());
    node.cmd()
        .args(["--dry-run", "base", "--export", "Nope-1-0", "-o"])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("Nope-1-0"));
}

#[test]
fn new_verbs_reject_bad_arguments_with_usage_errors() {
    let node = FakeNode::new();
    let cases: &[&[&str]] = &[
        &["gc", "--keep", "0"],
        &["gc", "--keep", "two"],
        &["check", "--pool-threshold", "101"],
        &["motd", "--pool-threshold", "-1"],
        &["layer", "--pin"],
        &["layer", "--pin", "Node-2-0+1", "--unpin", "Node-2-0+1"],
        &["layer", "--pin", "Node-2-0+1", "--remove", "Node-2-0+1"],
        &["rollback", "--to"],
        &["rollback", "Node-2-0+1"],
        &["boot", "--trial"],
        &["bless", "Node-2-0+1"],
    ];
    for args in cases {
        let out = node.cmd().args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    }
    assert!(node.calls().is_empty(), "{:?}", node.calls());
    // Each new verb documents an example.
    node.cmd()
        .args(["bless", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("imgbase-bless.service"))
        .stdout(predicate::str::contains("--no-reboot"));
    node.cmd()
        .args(["update", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--no-trial"));
    for verb in ["rollback", "gc", "motd", "check", "layer", "bless"] {
        node.cmd()
            .args([verb, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:\n  imgbase"));
    }
}

#[test]
fn pin_and_gc_dry_runs_print_their_plans() {
    let node = FakeNode::new();
    node.cmd()
        .args(["--dry-run", "layer", "--pin", "Node-2-0+1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Plan: pin layer Node-2-0+1"))
        .stdout(predicate::str::contains(
            "1. tag Node-2-0+1 +imgbase:pinned",
        ));
    // Three bases, keep 2: the oldest goes with its layer; the init LV
    // never.
    let out = node.cmd().args(["--dry-run", "gc"]).output().unwrap();
    assert!(out.status.success());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("remove Node-1.0-0+1\n") && plan.contains("remove Node-1.0-0\n"),
        "{plan}"
    );
    assert!(
        !plan.contains("root") && !plan.contains("Node-2-0"),
        "{plan}"
    );
    let out = node
        .cmd()
        .args(["--dry-run", "--json", "gc", "--keep", "3"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 0);
    assert!(
        v["summary"].as_str().unwrap().contains("nothing to do"),
        "{v}"
    );
    assert!(node.calls().iter().all(|c| c.starts_with("lvs ")));
}

#[test]
fn rollback_needs_the_boot_entries() {
    let node = FakeNode::new();
    node.cmd()
        .args(["rollback"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no boot loader found"));
    // With the entries: Node-2-0+1 has one; Node-1.0-0+1 (before it) not.
    let b = boot_dir();
    let boot = |args: &[&str]| {
        let mut c = node.cmd();
        c.args(["--loader", "grub", "--boot-dir", b.path().to_str().unwrap()])
            .args(args);
        c
    };
    boot(&["boot", "--set-default", "Node-2-0+1"])
        .assert()
        .success();
    boot(&["rollback", "--to", "Node-2-0+1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("already the default"));
    boot(&["rollback"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "layer Node-1.0-0+1 has no boot entry",
        ));
}

#[test]
fn motd_is_one_line_and_never_fails() {
    let node = FakeNode::new();
    let root = tempfile::tempdir().unwrap();
    // The fixture's pool: 25% data, 4% metadata; not booted from a layer.
    node.cmd()
        .args(["--root", root.path().to_str().unwrap(), "motd"])
        .assert()
        .success()
        .stdout("imgbase: OK: not running from a layer, pool 25% data, 4% metadata\n");
    node.cmd()
        .args([
            "--root",
            root.path().to_str().unwrap(),
            "motd",
            "--pool-threshold",
            "20",
        ])
        .assert()
        .success()
        .stdout("imgbase: DEGRADED: 1 problem (run imgbase check)\n");
    // The same check exits 1 and names the problem.
    node.cmd()
        .args([
            "--root",
            root.path().to_str().unwrap(),
            "check",
            "--pool-threshold",
            "20",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "problem: thin pool above the threshold: data 25.0% used (threshold 20%)",
        ));
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/hosts.imgnew"), "").unwrap();
    node.cmd()
        .args(["--root", root.path().to_str().unwrap(), "check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "problem: unresolved update conflict: /etc/hosts.imgnew (compare with /etc/hosts, \
             then remove it)",
        ));
    let out = node
        .cmd()
        .args(["--root", root.path().to_str().unwrap(), "--json", "motd"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["problems"], 1);
    // No LVM to ask (as for a user without rights): still exit 0.
    node.cmd()
        .env("IMGBASE_LVM", "/bin/false")
        .args(["--root", root.path().to_str().unwrap(), "motd"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("imgbase: UNKNOWN: "));
}
