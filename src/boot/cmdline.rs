//! Kernel command lines: parse the node's arguments and build a layer's.
//!
//! Arguments are kept exactly as written (quotes included) so an argument
//! imgbase does not touch is written back unchanged. Splitting follows the
//! kernel: whitespace separates arguments except inside double quotes, so
//! `a="b c"` and `"a=b c"` are each one argument whose key is `a`.
//!
//! Lookup is by key (the part before the first `=`); a bare flag such as
//! `quiet` is a key without a value. Keys are compared exactly: the kernel
//! also treats `-` and `_` alike in its own parameter names, dracut and
//! systemd do not, and imgbase only ever looks up dracut/systemd names.

use std::fmt;
use std::str::FromStr;

/// The kernel's idea of whitespace on its command line.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// A kernel command line as a list of arguments in their written form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline(Vec<String>);

/// Key and value of one argument with the kernel's quote handling: a quote
/// opening the whole argument, and quotes around the value, are not part of
/// either. The value is `None` for a bare flag.
pub(super) fn split_arg(arg: &str) -> (&str, Option<&str>) {
    let (body, whole_quoted) = match arg.strip_prefix('"') {
        Some(rest) => (rest, true),
        None => (arg, false),
    };
    match body.split_once('=') {
        None => {
            let key = if whole_quoted {
                body.strip_suffix('"').unwrap_or(body)
            } else {
                body
            };
            (key, None)
        }
        Some((key, value)) => {
            // As the kernel: a value opening with a quote loses it, and its
            // closing quote if there is one.
            let value = match value.strip_prefix('"') {
                Some(v) if !whole_quoted => v.strip_suffix('"').unwrap_or(v),
                _ if whole_quoted => value.strip_suffix('"').unwrap_or(value),
                _ => value,
            };
            (key, Some(value))
        }
    }
}

/// The key of one argument (see [`split_arg`]).
fn key_of(arg: &str) -> &str {
    split_arg(arg).0
}

/// `key=value`, quoting the value when it holds whitespace (the only way the
/// kernel keeps it one argument). The kernel cannot escape a `"` inside a
/// value; callers never pass one (LV names, paths, ids).
fn format_arg(key: &str, value: &str) -> String {
    if value.chars().any(is_space) {
        format!("{key}=\"{value}\"")
    } else {
        format!("{key}={value}")
    }
}

impl Cmdline {
    /// Split a command line the way the kernel does. Never fails: an
    /// unbalanced quote runs to the end, as in the kernel.
    pub fn parse(text: &str) -> Cmdline {
        let mut args = Vec::new();
        let mut cur = String::new();
        let mut in_quote = false;
        for c in text.chars() {
            if is_space(c) && !in_quote {
                if !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                }
                continue;
            }
            if c == '"' {
                in_quote = !in_quote;
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            args.push(cur);
        }
        Cmdline(args)
    }

    /// The arguments as written.
    pub fn args(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether any argument has this key, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|a| key_of(a) == key)
    }

    /// The value of `key=value`, without its quotes. When the key repeats,
    /// the last one: that is the one the kernel, dracut and systemd use.
    /// A bare flag `key` has no value (see [`Cmdline::has`]).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .map(|a| split_arg(a))
            .find(|(k, v)| *k == key && v.is_some())
            .and_then(|(_, v)| v)
    }

    /// Every value of `key` in order (for repeatable arguments such as
    /// `console=` or `rd.lvm.lv=`).
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .map(|a| split_arg(a))
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, v)| v)
            .collect()
    }

    /// Make `key=value` the only argument with this key: it takes the place
    /// of the first one (bare or not), the others go; appended if none.
    /// A value with whitespace is quoted; a `"` in it cannot be written so
    /// the kernel reads it back (the kernel has no escapes).
    pub fn set(&mut self, key: &str, value: &str) {
        self.put(key, format_arg(key, value));
    }

    /// Like [`Cmdline::set`] for a bare flag such as `quiet`.
    pub fn set_flag(&mut self, key: &str) {
        self.put(key, key.to_string());
    }

    fn put(&mut self, key: &str, arg: String) {
        match self.0.iter().position(|a| key_of(a) == key) {
            Some(first) => {
                self.0[first] = arg;
                let mut i = 0;
                self.0.retain(|a| {
                    let keep = i <= first || key_of(a) != key;
                    i += 1;
                    keep
                });
            }
            None => self.0.push(arg),
        }
    }

    /// Append one argument as written (it may repeat a key).
    pub fn push(&mut self, arg: &str) {
        self.0.extend(Cmdline::parse(arg).0);
    }

    /// Remove every argument with this key; whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|a| key_of(a) != key);
        self.0.len() != before
    }

    /// Append the arguments of `other` whose key this line does not have.
    /// Keys `other` repeats (`console=tty0 console=ttyS0`) are all appended,
    /// in order: it is this line's keys that decide, not earlier additions.
    pub fn add_missing(&mut self, other: &Cmdline) {
        let additions: Vec<String> = other
            .0
            .iter()
            .filter(|a| !self.has(key_of(a)))
            .cloned()
            .collect();
        self.0.extend(additions);
    }

    /// The arguments that boot a layer: `root=/dev/VG/LV rd.lvm.lv=VG/LV
    /// imgbase.layer=LV`. dracut activates only the LVs named by
    /// `rd.lvm.lv`; `imgbase.layer` tells the running system (and the
    /// dracut module) which layer it is, whatever `root=` looks like.
    pub fn root_args(vg: &str, lv: &str) -> Cmdline {
        Cmdline(vec![
            format_arg("root", &format!("/dev/{vg}/{lv}")),
            format_arg("rd.lvm.lv", &format!("{vg}/{lv}")),
            format_arg("imgbase.layer", lv),
        ])
    }

    /// A layer's command line from the node's own arguments: the root
    /// arguments of `vg/lv` first, then the node's arguments in their order
    /// without those that name a root or an entry (`root=`, `imgbase.layer=`,
    /// `BOOT_IMAGE=`, `img.bootid=`), without exact repeats.
    ///
    /// Of the node's `rd.lvm.lv=VG/X` naming this VG, only those naming an
    /// OS volume go: X is `lv`, the LV the node's `root=` or `imgbase.layer=`
    /// names, or a layer name (`NVR+K`). Others, such as `rd.lvm.lv=VG/swap`,
    /// stay: dropping them would stop dracut from activating swap, and so
    /// resume from hibernation. `rd.lvm.lv=` of other VGs stay too.
    pub fn for_layer(node_args: &Cmdline, vg: &str, lv: &str) -> Cmdline {
        let mut os_lvs: Vec<String> = vec![lv.to_string()];
        if let Some((v, l)) = node_args.get("root").and_then(lv_of_device)
            && v == vg
        {
            os_lvs.push(l);
        }
        os_lvs.extend(
            node_args
                .get_all("imgbase.layer")
                .into_iter()
                .map(String::from),
        );

        let dropped = |arg: &str| {
            let (key, value) = split_arg(arg);
            match key {
                "root" | "imgbase.layer" | "BOOT_IMAGE" | "img.bootid" => true,
                "rd.lvm.lv" => match value.and_then(|v| v.split_once('/')) {
                    Some((v, l)) if v == vg => os_lvs.iter().any(|o| o == l) || is_layer_name(l),
                    _ => false,
                },
                _ => false,
            }
        };

        let mut out = Cmdline::root_args(vg, lv);
        for arg in &node_args.0 {
            if !dropped(arg) && !out.0.contains(arg) {
                out.0.push(arg.clone());
            }
        }
        out
    }
}

/// `NVR+K`: what imgbase names a layer (a '+' then digits at the end).
fn is_layer_name(lv: &str) -> bool {
    matches!(lv.rsplit_once('+'), Some((nvr, k))
        if !nvr.is_empty() && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// VG and LV of a root device written as `/dev/VG/LV` or
/// `/dev/mapper/VG-LV` (where device-mapper doubles a '-' inside a name).
/// `UUID=`, `LABEL=` and the like name no LV.
fn lv_of_device(dev: &str) -> Option<(String, String)> {
    if let Some(name) = dev.strip_prefix("/dev/mapper/") {
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'-' {
                if bytes.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let (vg, lv) = (&name[..i], &name[i + 1..]);
                if vg.is_empty() || lv.is_empty() {
                    return None;
                }
                return Some((vg.replace("--", "-"), lv.replace("--", "-")));
            }
            i += 1;
        }
        return None;
    }
    let rest = dev.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    (!vg.is_empty() && !lv.is_empty() && !lv.contains('/'))
        .then(|| (vg.to_string(), lv.to_string()))
}

impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl FromStr for Cmdline {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Cmdline::parse(s))
    }
}

impl From<&str> for Cmdline {
    fn from(s: &str) -> Self {
        Cmdline::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(c: &Cmdline) -> Vec<&str> {
        c.args().iter().map(String::as_str).collect()
    }

    #[test]
    fn parse_splits_on_whitespace_outside_quotes() {
        let c = Cmdline::parse("  ro\tquiet  a=\"b c\" \"d=e f\" x=\"\"\n");
        assert_eq!(
            args(&c),
            ["ro", "quiet", "a=\"b c\"", "\"d=e f\"", "x=\"\""]
        );
        assert_eq!(c.to_string(), "ro quiet a=\"b c\" \"d=e f\" x=\"\"");
        assert!(Cmdline::parse("").is_empty());
        assert!(Cmdline::parse(" \t\n").is_empty());
    }

    #[test]
    fn unbalanced_quote_runs_to_the_end() {
        let c = Cmdline::parse("a=\"b c d");
        assert_eq!(args(&c), ["a=\"b c d"]);
        assert_eq!(c.get("a"), Some("b c d"));
    }

    #[test]
    fn get_strips_quotes_and_takes_the_last() {
        let c = Cmdline::parse(
            "root=UUID=1234 a=\"b c\" \"d=e f\" quiet console=tty0 console=ttyS0,115200 e=",
        );
        assert_eq!(c.get("root"), Some("UUID=1234"));
        assert_eq!(c.get("a"), Some("b c"));
        assert_eq!(c.get("d"), Some("e f"));
        assert_eq!(c.get("quiet"), None);
        assert!(c.has("quiet"));
        assert!(!c.has("quie"));
        assert_eq!(c.get("console"), Some("ttyS0,115200"));
        assert_eq!(c.get_all("console"), ["tty0", "ttyS0,115200"]);
        assert_eq!(c.get("e"), Some(""));
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn quoted_flag_has_its_key() {
        let c = Cmdline::parse("\"quiet\"");
        assert!(c.has("quiet"));
    }

    #[test]
    fn set_replaces_every_occurrence_at_the_first_position() {
        let mut c = Cmdline::parse("a root=/dev/x b root c root=\"y z\" d");
        c.set("root", "/dev/HostVG/root");
        assert_eq!(c.to_string(), "a root=/dev/HostVG/root b c d");
        c.set("new", "v w");
        assert_eq!(c.to_string(), "a root=/dev/HostVG/root b c d new=\"v w\"");
        c.set_flag("b");
        assert_eq!(c.to_string(), "a root=/dev/HostVG/root b c d new=\"v w\"");
        c.set("a", "1");
        assert_eq!(c.to_string(), "a=1 root=/dev/HostVG/root b c d new=\"v w\"");
        c.set_flag("new");
        assert_eq!(c.to_string(), "a=1 root=/dev/HostVG/root b c d new");
    }

    #[test]
    fn remove_takes_bare_and_valued() {
        let mut c = Cmdline::parse("a=1 b a c \"a=x y\"");
        assert!(c.remove("a"));
        assert_eq!(c.to_string(), "b c");
        assert!(!c.remove("a"));
    }

    #[test]
    fn push_appends_as_written() {
        let mut c = Cmdline::parse("a");
        c.push("console=tty0 x=\"1 2\"");
        assert_eq!(args(&c), ["a", "console=tty0", "x=\"1 2\""]);
    }

    #[test]
    fn add_missing_goes_by_key_and_keeps_repeats() {
        let mut c = Cmdline::parse("ro quiet console=tty0");
        c.add_missing(&Cmdline::parse(
            "quiet=1 console=ttyS0 crashkernel=auto rd.lvm.lv=a/b rd.lvm.lv=a/c ro",
        ));
        assert_eq!(
            c.to_string(),
            "ro quiet console=tty0 crashkernel=auto rd.lvm.lv=a/b rd.lvm.lv=a/c"
        );
    }

    #[test]
    fn root_args_name_the_layer() {
        assert_eq!(
            Cmdline::root_args("HostVG", "Node-2.0-0+1").to_string(),
            "root=/dev/HostVG/Node-2.0-0+1 rd.lvm.lv=HostVG/Node-2.0-0+1 \
             imgbase.layer=Node-2.0-0+1"
        );
    }

    #[test]
    fn for_layer_from_an_installed_node() {
        let node = Cmdline::parse(
            "BOOT_IMAGE=(hd0,msdos1)/vmlinuz-6.1.0-18-amd64 root=/dev/mapper/Host--VG-root ro \
             rd.lvm.lv=Host-VG/root rd.lvm.lv=Host-VG/swap rd.lvm.lv=Data/var quiet \
             console=tty0 console=ttyS0,115200",
        );
        let c = Cmdline::for_layer(&node, "Host-VG", "Node-2.0-0+1");
        assert_eq!(
            c.to_string(),
            "root=/dev/Host-VG/Node-2.0-0+1 rd.lvm.lv=Host-VG/Node-2.0-0+1 \
             imgbase.layer=Node-2.0-0+1 ro rd.lvm.lv=Host-VG/swap rd.lvm.lv=Data/var quiet \
             console=tty0 console=ttyS0,115200"
        );
    }

    #[test]
    fn for_layer_from_another_layer_drops_its_names() {
        let node = Cmdline::parse(
            "root=/dev/HostVG/Node-1.0-0+1 rd.lvm.lv=HostVG/Node-1.0-0+1 \
             imgbase.layer=Node-1.0-0+1 img.bootid=Node-1.0-0+1 rd.lvm.lv=HostVG/Node-0.9-0+3 \
             rd.lvm.lv=HostVG/swap ro quiet ro a=\"b c\" a=\"b c\" quiet",
        );
        let c = Cmdline::for_layer(&node, "HostVG", "Node-2.0-0+1");
        assert_eq!(
            c.to_string(),
            "root=/dev/HostVG/Node-2.0-0+1 rd.lvm.lv=HostVG/Node-2.0-0+1 \
             imgbase.layer=Node-2.0-0+1 rd.lvm.lv=HostVG/swap ro quiet a=\"b c\""
        );
        // Idempotent: building again from the result changes nothing.
        assert_eq!(Cmdline::for_layer(&c, "HostVG", "Node-2.0-0+1"), c);
    }

    #[test]
    fn for_layer_drops_the_old_root_lv_even_if_not_a_layer() {
        let node =
            Cmdline::parse("root=/dev/HostVG/root rd.lvm.lv=HostVG/root rd.lvm.lv=Other/root");
        let c = Cmdline::for_layer(&node, "HostVG", "Node-1.0-0+1");
        assert_eq!(
            c.to_string(),
            "root=/dev/HostVG/Node-1.0-0+1 rd.lvm.lv=HostVG/Node-1.0-0+1 \
             imgbase.layer=Node-1.0-0+1 rd.lvm.lv=Other/root"
        );
    }

    #[test]
    fn device_names() {
        let s = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(lv_of_device("/dev/HostVG/root"), s("HostVG", "root"));
        assert_eq!(lv_of_device("/dev/mapper/HostVG-root"), s("HostVG", "root"));
        assert_eq!(
            lv_of_device("/dev/mapper/Host--VG-Node--2.0--0+1"),
            s("Host-VG", "Node-2.0-0+1")
        );
        assert_eq!(lv_of_device("/dev/sda1"), None);
        assert_eq!(lv_of_device("/dev/mapper/luks--root"), None);
        assert_eq!(lv_of_device("UUID=1234"), None);
        assert_eq!(lv_of_device("/dev/disk/by-id/x"), None);
    }

    #[test]
    fn layer_names() {
        assert!(is_layer_name("Node-2.0-0+1"));
        assert!(is_layer_name("a+12"));
        assert!(!is_layer_name("Node-2.0-0"));
        assert!(!is_layer_name("swap"));
        assert!(!is_layer_name("+1"));
        assert!(!is_layer_name("a+"));
        assert!(!is_layer_name("a+1b"));
    }

    fn arb_arg() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z._]{1,6}",
            "[a-z._]{1,6}=[a-zA-Z0-9/,:=+-]{0,8}",
            "[a-z._]{1,6}=\"[a-z =]{0,8}\"",
            "\"[a-z._]{1,6}=[a-z =]{0,8}\"",
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(args in proptest::collection::vec(arb_arg(), 0..8)) {
            let c = Cmdline::parse(&args.join(" "));
            prop_assert_eq!(c.args(), &args[..]);
            prop_assert_eq!(Cmdline::parse(&c.to_string()), c);
        }

        #[test]
        fn parse_display_parse_is_stable(text in "[ a-z=\"\t]{0,30}") {
            let c = Cmdline::parse(&text);
            prop_assert_eq!(Cmdline::parse(&c.to_string()), c.clone());
            for a in c.args() {
                prop_assert!(!a.is_empty());
            }
        }

        #[test]
        fn set_leaves_exactly_one(args in proptest::collection::vec(arb_arg(), 0..8),
                                  key in "[a-z._]{1,3}", value in "[a-z ]{0,5}") {
            let mut c = Cmdline::parse(&args.join(" "));
            let others: Vec<String> =
                c.args().iter().filter(|a| key_of(a) != key).cloned().collect();
            c.set(&key, &value);
            prop_assert_eq!(c.args().iter().filter(|a| key_of(a) == key).count(), 1);
            prop_assert_eq!(c.get(&key), Some(value.as_str()));
            let rest: Vec<String> =
                c.args().iter().filter(|a| key_of(a) != key).cloned().collect();
            prop_assert_eq!(rest, others);
            prop_assert_eq!(Cmdline::parse(&c.to_string()), c);
        }

        #[test]
        fn for_layer_has_root_args_first_and_no_repeats(
            args in proptest::collection::vec(arb_arg(), 0..10),
        ) {
            let node = Cmdline::parse(&args.join(" "));
            let c = Cmdline::for_layer(&node, "vg", "L+1");
            let root = Cmdline::root_args("vg", "L+1");
            prop_assert_eq!(&c.args()[..3], root.args());
            for key in ["root", "imgbase.layer", "BOOT_IMAGE", "img.bootid"] {
                prop_assert!(c.args()[3..].iter().all(|a| key_of(a) != key));
            }
            let mut seen = std::collections::HashSet::new();
            prop_assert!(c.args().iter().all(|a| seen.insert(a.clone())));
            prop_assert_eq!(Cmdline::for_layer(&c, "vg", "L+1"), c);
        }
    }
}
