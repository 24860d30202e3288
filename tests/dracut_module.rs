//! Tier 1: the dracut module's layer choice (`dracut/90imgbase/imgbase-lib.sh`)
//! run by dash, as dracut runs it, with lvm, udevadm and dracut's own
//! functions stubbed. The real thing boots in the boot tier.

use std::path::Path;
use std::process::Command;

const LIB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dracut/90imgbase/imgbase-lib.sh"
);

/// What `lvm lvs --noheadings --separator '|' -o lv_name,lv_tags HostVG` prints
/// on a node: two bases, layers (one failed, one unfinished), a temporary LV.
const LVS: &str = "  pool|imgbased:pool
  Node-1.0-0|imgbased:base
  Node-1.0-0+1|imgbased:layer
  Node-1.0-0+2|imgbased:layer
  Node-1.0-0+10|imgbased:layer,imgbase:pinned
  Node-2.0-0|imgbased:base
  Node-2.0-0+1|imgbased:layer
  Node-3.0-0+1|imgbased:layer,imgbase:failed
  Node-3.0-0+2|imgbased:layer,imgbase:incomplete
  imgbase-tmp-Node-4.0-0+1|imgbased:layer
";

struct Boot {
    /// `/run/imgbase/layer` as the module wrote it ("" when not resolved).
    layer: String,
    /// warn lines, lvm and udevadm calls, in order.
    log: String,
    /// The udev rule that makes root='s path the chosen layer's, if any.
    rule: Option<String>,
}

/// Run `imgbase_resolve` once. `active`: LVs already active (their
/// /dev/HostVG/NAME exists); `broken`: LVs that fail to activate;
/// `extra`: more shell run before (to stub something else).
fn resolve(cmdline: &str, active: &[&str], broken: &[&str], extra: &str) -> Boot {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("dev/HostVG")).unwrap();
    std::fs::create_dir_all(d.join("rules")).unwrap();
    std::fs::create_dir_all(d.join("hooks/initqueue/settled")).unwrap();
    for a in active {
        std::fs::write(d.join("dev/HostVG").join(a), "").unwrap();
    }
    std::fs::write(d.join("lvs"), LVS).unwrap();
    std::fs::write(d.join("cmdline"), cmdline).unwrap();
    let script = format!(
        r#"
set -u
T={t}
export IMGBASE_RUN=$T/run IMGBASE_DEV=$T/dev IMGBASE_RULES=$T/rules
hookdir=$T/hooks
BROKEN=" {broken} "
getarg() {{
    for a in $(cat $T/cmdline); do
        case "$a" in "$1"*) echo "${{a#"$1"}}"; return 0 ;; esac
    done
    return 1
}}
warn() {{ echo "warn: $*" >> $T/log; }}
vinfo() {{ cat > /dev/null; }}
lvm() {{
    echo "lvm $*" >> $T/log
    case "$1" in
        lvs) [ -e $T/no-vg ] && return 5; cat $T/lvs ;;
        lvchange)
            eval "_lv=\${{$#}}"; _lv=${{_lv#HostVG/}}
            case " $* " in
                *" -an "*) rm -f "$T/dev/HostVG/$_lv" ;;
                *" -ay "*) case "$BROKEN" in *" $_lv "*) return 5 ;; esac
                           : > "$T/dev/HostVG/$_lv" ;;
            esac ;;
    esac
}}
# udev applying the module's rule: root='s path appears for the chosen LV.
udevadm() {{
    echo "udevadm $*" >> $T/log
    if [ "$1" = trigger ] && [ -e $T/rules/99-imgbase-root.rules ]; then
        _link=$(sed 's/.*SYMLINK+="\([^"]*\)".*/\1/' $T/rules/99-imgbase-root.rules)
        : > "$T/dev/$_link"
    fi
}}
. {lib}
{extra}
imgbase_resolve
"#,
        t = d.display(),
        broken = broken.join(" "),
        lib = LIB,
    );
    let out = Command::new("dash")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("dash");
    assert!(
        out.status.success(),
        "dash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &Path| std::fs::read_to_string(d.join(p)).ok();
    Boot {
        layer: read(Path::new("run/layer")).unwrap_or_default(),
        log: read(Path::new("log")).unwrap_or_default(),
        rule: read(Path::new("rules/99-imgbase-root.rules")),
    }
}

const ROOT_21: &str = "root=/dev/HostVG/Node-2.0-0+1 rd.lvm.lv=HostVG/Node-2.0-0+1";

#[test]
fn the_entrys_own_layer_when_it_is_up_costs_no_lvm_call() {
    let b = resolve(
        &format!("{ROOT_21} imgbase.layer=Node-2.0-0+1"),
        &["Node-2.0-0+1"],
        &[],
        "",
    );
    assert_eq!(
        b.layer,
        "booted=Node-2.0-0+1\nwanted=Node-2.0-0+1\nreason=\n"
    );
    assert_eq!(b.log, "", "no lvm, no udevadm, no message");
    assert_eq!(b.rule, None);
}

#[test]
fn the_entrys_own_layer_is_activated_despite_the_skip_flag() {
    let b = resolve(&format!("{ROOT_21} imgbase.layer=default"), &[], &[], "");
    assert_eq!(b.layer, "booted=Node-2.0-0+1\nwanted=default\nreason=\n");
    assert!(
        b.log
            .contains("lvm lvchange --yes -ay -K HostVG/Node-2.0-0+1"),
        "{}",
        b.log
    );
    assert!(!b.log.contains("warn"), "{}", b.log);
}

#[test]
fn a_missing_layer_falls_back_to_the_newest_complete_one_with_one_message() {
    let b = resolve(
        "root=/dev/HostVG/Node-9.0-0+1 rd.lvm.lv=HostVG/Node-9.0-0+1 imgbase.layer=Node-9.0-0+1",
        &[],
        &[],
        "",
    );
    // Not the failed 3.0-0+1, not the unfinished 3.0-0+2, not the temporary LV.
    assert!(b.layer.starts_with("booted=Node-2.0-0+1\n"), "{}", b.layer);
    let warns: Vec<_> = b.log.lines().filter(|l| l.starts_with("warn")).collect();
    assert_eq!(
        warns,
        [
            "warn: imgbase: layer Node-9.0-0+1 (imgbase.layer=Node-9.0-0+1) does not exist: \
          falling back to Node-2.0-0+1, the newest complete layer"
        ]
    );
    assert_eq!(
        b.rule.as_deref(),
        Some(
            "ENV{DM_VG_NAME}==\"HostVG\", ENV{DM_LV_NAME}==\"Node-2.0-0+1\", \
             SYMLINK+=\"HostVG/Node-9.0-0+1\"\n"
        )
    );
}

#[test]
fn previous_is_the_bootable_layer_before_the_entrys_in_version_order() {
    let b = resolve(
        &format!("{ROOT_21} imgbase.layer=previous"),
        &["Node-2.0-0+1"],
        &[],
        "",
    );
    // +10 sorts after +2 (version order), and 2.0-0+1 is released first.
    assert!(b.layer.starts_with("booted=Node-1.0-0+10\n"), "{}", b.layer);
    let deactivate = b
        .log
        .find("lvchange --yes -an HostVG/Node-2.0-0+1")
        .unwrap();
    let activate = b
        .log
        .find("lvchange --yes -ay -K HostVG/Node-1.0-0+10")
        .unwrap();
    assert!(deactivate < activate, "{}", b.log);
    assert!(
        b.log
            .contains("warn: imgbase: booting layer Node-1.0-0+10 (imgbase.layer=previous)")
    );
}

#[test]
fn latest_skips_failed_and_unfinished_layers() {
    let b = resolve(
        "root=/dev/HostVG/Node-1.0-0+1 imgbase.layer=latest",
        &["Node-1.0-0+1"],
        &[],
        "",
    );
    assert!(b.layer.starts_with("booted=Node-2.0-0+1\n"), "{}", b.layer);
}

#[test]
fn a_layer_that_will_not_activate_falls_back_to_the_next() {
    let b = resolve(
        &format!("{ROOT_21} imgbase.layer=Node-2.0-0+1"),
        &[],
        &["Node-2.0-0+1"],
        "",
    );
    assert!(b.layer.starts_with("booted=Node-1.0-0+10\n"), "{}", b.layer);
    assert!(
        b.log.contains(
            "warn: imgbase: layer Node-2.0-0+1 (imgbase.layer=Node-2.0-0+1) cannot be activated: \
             falling back to Node-1.0-0+10"
        ),
        "{}",
        b.log
    );
}

#[test]
fn nothing_is_decided_before_the_lvm_scan_or_while_the_vg_is_unseen() {
    let pending = resolve(
        &format!("{ROOT_21} imgbase.layer=previous"),
        &[],
        &[],
        ": > $hookdir/initqueue/settled/lvm_scan.sh",
    );
    assert_eq!((pending.layer.as_str(), pending.log.as_str()), ("", ""));
    let unseen = resolve(
        &format!("{ROOT_21} imgbase.layer=previous"),
        &[],
        &[],
        ": > $T/no-vg",
    );
    assert_eq!(unseen.layer, "");
    assert!(!unseen.log.contains("lvchange"), "{}", unseen.log);
}

#[test]
fn a_name_that_is_not_a_layer_name_is_ignored_not_used() {
    let b = resolve(
        &format!("{ROOT_21} imgbase.layer=x\";RUN+=\"/bin/sh"),
        &["Node-2.0-0+1"],
        &[],
        "",
    );
    assert!(b.layer.starts_with("booted=\n"), "{}", b.layer);
    assert!(
        b.log.contains("is not a valid layer name: ignored"),
        "{}",
        b.log
    );
    assert!(!b.log.contains("lvm"), "{}", b.log);
    assert_eq!(b.rule, None);
}

/// The cmdline hook holds the initqueue only for another layer than the
/// entry's own: the everyday boot waits for nothing more than root=.
#[test]
fn only_another_layer_than_the_entrys_holds_the_initqueue() {
    let holds = |wanted: &str, root: &str| {
        let script = format!(". {LIB}; imgbase_must_hold '{wanted}' '{root}'");
        Command::new("dash")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap()
            .success()
    };
    let root = "/dev/HostVG/Node-2.0-0+1";
    assert!(!holds("Node-2.0-0+1", root));
    assert!(!holds("default", root));
    assert!(!holds("", root));
    assert!(holds("previous", root));
    assert!(holds("latest", root));
    assert!(holds("Node-1.0-0+2", root));
}
