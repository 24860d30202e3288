//! Tier 1: the units in `systemd/` pass `systemd-analyze verify` (with the
//! binary's path pointed at one that exists here: the packages install it
//! at /usr/sbin/imgbase), and are ordered as the trial boot needs.

use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd");
const UNITS: [&str; 3] = [
    "imgbase-bless.service",
    "imgbase-check.service",
    "imgbase-check.timer",
];

fn unit(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

#[test]
fn units_verify_clean() {
    let t = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_imgbase");
    for u in UNITS {
        let text = unit(u).replace("/usr/sbin/imgbase", bin);
        std::fs::write(t.path().join(u), text).unwrap();
    }
    // man pages come with the packages, not with a build.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS.map(|u| format!("./{u}")))
        .current_dir(t.path())
        .output()
        .expect("systemd-analyze (package systemd) is needed by this test");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn bless_runs_after_boot_complete_without_requiring_it() {
    let b = unit("imgbase-bless.service");
    // After=, so it waits for the health checks; Wants= and not Requires=,
    // so it still runs (and fails the trial) when one of them failed.
    assert!(b.contains("\nAfter=boot-complete.target"), "{b}");
    assert!(b.contains("\nWants=boot-complete.target\n"), "{b}");
    assert!(!b.contains("Requires=boot-complete.target"), "{b}");
    assert!(b.contains("\nExecStart=/usr/sbin/imgbase bless\n"), "{b}");
    assert!(b.contains("\nWantedBy=multi-user.target\n"), "{b}");
    let t = unit("imgbase-check.timer");
    assert!(t.contains("\nWantedBy=timers.target\n"), "{t}");
}
