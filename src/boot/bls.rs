//! Boot Loader Specification entries (`/boot/loader/entries/*.conf`), read
//! by grub with blscfg (Fedora, RHEL) and by systemd-boot.
//!
//! Other tools write these files too (kernel-install, grubby, anaconda), and
//! imgbase edits some it did not write, so an [`Entry`] keeps every line as
//! it was: unknown keys, comments, blank lines, tabs, trailing whitespace,
//! repeated keys and a missing final newline all survive
//! `Entry::parse(text).to_string() == text`. Only the lines imgbase changes
//! change. (The crates that exist for BLS drop unknown keys or reorder.)
//!
//! Syntax, per the specification: one `key value` per line, key and value
//! separated by whitespace; a line whose first non-blank character is `#` is
//! a comment. A `#` later in a line is part of the value.

use std::fmt;

use super::cmdline::Cmdline;
use super::{BootError, refuse_control};

/// What ends a key and separates it from its value. `\r` counts so that a
/// file with CRLF line ends parses to the same keys and values.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// One line of an entry file, without its `\n`. Concatenating the parts
/// gives the line back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `indent key sep value trail`: `sep` is the whitespace between key
    /// and value as written, `trail` the whitespace after the value.
    Pair {
        indent: String,
        key: String,
        sep: String,
        value: String,
        trail: String,
    },
    /// The whole line, `#` and any leading whitespace included.
    Comment(String),
    /// An empty or all-whitespace line, as written.
    Blank(String),
}

impl Line {
    fn parse(raw: &str) -> Line {
        let body = raw.trim_start_matches(is_blank);
        if body.is_empty() {
            return Line::Blank(raw.to_string());
        }
        if body.starts_with('#') {
            return Line::Comment(raw.to_string());
        }
        let indent = &raw[..raw.len() - body.len()];
        let key_end = body.find(is_blank).unwrap_or(body.len());
        let (key, rest) = body.split_at(key_end);
        let value_start = rest.len() - rest.trim_start_matches(is_blank).len();
        let (sep, rest) = rest.split_at(value_start);
        let value = rest.trim_end_matches(is_blank);
        let trail = &rest[value.len()..];
        Line::Pair {
            indent: indent.to_string(),
            key: key.to_string(),
            sep: sep.to_string(),
            value: value.to_string(),
            trail: trail.to_string(),
        }
    }

    fn pair(key: &str, value: &str) -> Line {
        Line::Pair {
            indent: String::new(),
            key: key.to_string(),
            sep: if value.is_empty() { "" } else { " " }.to_string(),
            value: value.to_string(),
            trail: String::new(),
        }
    }

    /// The key, if this is a key/value line.
    pub fn key(&self) -> Option<&str> {
        match self {
            Line::Pair { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The value, if this is a key/value line, without surrounding blanks.
    pub fn value(&self) -> Option<&str> {
        match self {
            Line::Pair { value, .. } => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Pair {
                indent,
                key,
                sep,
                value,
                trail,
            } => write!(f, "{indent}{key}{sep}{value}{trail}"),
            Line::Comment(s) | Line::Blank(s) => f.write_str(s),
        }
    }
}

/// One entry file: its lines in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    lines: Vec<Line>,
    /// Whether the text ended with `\n` (kept so an untouched file is
    /// written back byte for byte).
    final_newline: bool,
}

/// Parse an entry file; never fails (see [`Entry::parse`]).
pub fn parse(text: &str) -> Entry {
    Entry::parse(text)
}

impl Entry {
    /// Parse any text. Lines that are not comments or blank are key/value
    /// pairs, a key alone included; nothing is refused, because a loader
    /// skips what it does not understand and so must we.
    pub fn parse(text: &str) -> Entry {
        let (body, final_newline) = match text.strip_suffix('\n') {
            Some(b) => (b, true),
            None => (text, false),
        };
        let lines = if body.is_empty() && !final_newline {
            Vec::new()
        } else {
            body.split('\n').map(Line::parse).collect()
        };
        Entry {
            lines,
            final_newline,
        }
    }

    /// A new entry with the keys in the conventional order: title, version,
    /// linux, each initrd, options. Paths are as the loader sees them,
    /// relative to the root of the filesystem holding the entries' /boot
    /// (`/vmlinuz-6.1.0`). A value holding a control character is refused
    /// ([`BootError::ControlChar`]).
    pub fn new(
        title: &str,
        version: &str,
        linux: &str,
        initrds: &[String],
        options: &Cmdline,
    ) -> Result<Entry, BootError> {
        let options = options.to_string();
        refuse_control("title", title)?;
        refuse_control("kernel version", version)?;
        refuse_control("kernel path", linux)?;
        for i in initrds {
            refuse_control("initrd path", i)?;
        }
        refuse_control("kernel arguments", &options)?;
        let mut lines = vec![
            Line::pair("title", title),
            Line::pair("version", version),
            Line::pair("linux", linux),
        ];
        lines.extend(initrds.iter().map(|i| Line::pair("initrd", i)));
        lines.push(Line::pair("options", &options));
        Ok(Entry {
            lines,
            final_newline: true,
        })
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The value of the first line with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.key() == Some(key))
            .and_then(Line::value)
    }

    /// The values of every line with this key, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.key() == Some(key))
            .filter_map(Line::value)
            .collect()
    }

    /// Give the first line with this key the value `value`, keeping its
    /// place and whitespace; append `key value` if there is none. Later
    /// lines with the same key stay (use [`Entry::set_all`] for one).
    /// A value holding a control character is refused, the entry unchanged.
    pub fn set(&mut self, key: &str, new: &str) -> Result<(), BootError> {
        refuse_control(&format!("{key} value"), new)?;
        match self.lines.iter_mut().find(|l| l.key() == Some(key)) {
            Some(Line::Pair { sep, value, .. }) => {
                // "key" alone, or a separator only a CR: loaders split
                // on space or tab, so give the new value one.
                if !new.is_empty() && !sep.contains([' ', '\t']) {
                    *sep = " ".to_string();
                }
                *value = new.to_string();
            }
            _ => self.append(Line::pair(key, new)),
        }
        Ok(())
    }

    /// Make `values` the lines with this key: they take the place of the
    /// first such line (or go at the end), every other such line goes.
    /// For repeated keys such as `initrd`. As [`Entry::set`], a control
    /// character in any value is refused before anything changes.
    pub fn set_all(&mut self, key: &str, values: &[String]) -> Result<(), BootError> {
        for v in values {
            refuse_control(&format!("{key} value"), v)?;
        }
        let new = values.iter().map(|v| Line::pair(key, v));
        match self.lines.iter().position(|l| l.key() == Some(key)) {
            Some(first) => {
                self.remove(key);
                self.lines.splice(first..first, new);
            }
            None => {
                for line in new {
                    self.append(line);
                }
            }
        }
        Ok(())
    }

    /// Remove every line with this key; how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.lines.len();
        self.lines.retain(|l| l.key() != Some(key));
        before - self.lines.len()
    }

    fn append(&mut self, line: Line) {
        self.lines.push(line);
        // An appended line is always terminated, whatever the file did.
        self.final_newline = true;
    }

    pub fn title(&self) -> Option<&str> {
        self.get("title")
    }

    pub fn version(&self) -> Option<&str> {
        self.get("version")
    }

    pub fn linux(&self) -> Option<&str> {
        self.get("linux")
    }

    pub fn initrds(&self) -> Vec<&str> {
        self.get_all("initrd")
    }

    /// The kernel command line: the specification lets `options` repeat
    /// and the loaders join the lines with spaces, so do we.
    pub fn options(&self) -> Cmdline {
        Cmdline::parse(&self.get_all("options").join(" "))
    }

    /// Write the command line into the first `options` line and drop any
    /// others (their arguments are expected in `options`, as read by
    /// [`Entry::options`]). Refused, the entry unchanged, if the line
    /// would hold a control character.
    pub fn set_options(&mut self, options: &Cmdline) -> Result<(), BootError> {
        let options = options.to_string();
        refuse_control("kernel arguments", &options)?;
        let first = self.lines.iter().position(|l| l.key() == Some("options"));
        let mut i = 0;
        self.lines.retain(|l| {
            let keep = Some(i) == first || l.key() != Some("options");
            i += 1;
            keep
        });
        self.set("options", &options)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            write!(f, "{line}")?;
            if i < last || self.final_newline {
                f.write_str("\n")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Entry {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Entry::parse(s))
    }
}

/// Files imgbase writes start with this, so it can tell them from the
/// distribution's (which it leaves alone).
pub const FILE_PREFIX: &str = "imgbase-";
pub const FILE_SUFFIX: &str = ".conf";

/// The entry file of one layer's kernel: `imgbase-<layer>-<kver>.conf`.
/// Layer and kernel version must not hold `/` (LV names and `uname -r`
/// never do). grub's blscfg uses the name without `.conf` as the entry id,
/// which is what `saved_entry`/`next_entry` must hold to pick it: see
/// [`entry_id`].
pub fn entry_file_name(layer: &str, kver: &str) -> String {
    format!("{}{FILE_SUFFIX}", entry_id(layer, kver))
}

/// The id grub's blscfg gives the entry of [`entry_file_name`]: the file
/// name without `.conf`.
pub fn entry_id(layer: &str, kver: &str) -> String {
    debug_assert!(!layer.contains('/') && !kver.contains('/'));
    format!("{FILE_PREFIX}{layer}-{kver}")
}

/// Whether imgbase wrote this entry file (by its name). The layer cannot be
/// read back from the name reliably (both halves may hold `-`): read the
/// entry's `imgbase.layer=` option instead.
pub fn is_ours(file_name: &str) -> bool {
    file_name.len() > FILE_PREFIX.len() + FILE_SUFFIX.len()
        && file_name.starts_with(FILE_PREFIX)
        && file_name.ends_with(FILE_SUFFIX)
}

/// systemd-boot's boot counter in an entry file name: `NAME+LEFT.conf`
/// (a trial with LEFT tries left) or `NAME+LEFT-DONE.conf` (DONE boots
/// counted). Returns the name without it (`NAME.conf`, what the entry is
/// known by when it is not on trial) and `(left, done)`. A name without
/// a counter comes back as it is. (A kernel version of digits only would
/// read as a counter; `uname -r` always holds a dot.)
pub fn split_counter(file_name: &str) -> (String, Option<(u8, u8)>) {
    let Some(stem) = file_name.strip_suffix(FILE_SUFFIX) else {
        return (file_name.to_string(), None);
    };
    let Some((name, counter)) = stem.rsplit_once('+') else {
        return (file_name.to_string(), None);
    };
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .map(|n| n.min(u8::MAX.into()) as u8)
    };
    let parsed = match counter.split_once('-') {
        Some((left, done)) => number(left).zip(number(done)),
        None => number(counter).map(|left| (left, 0)),
    };
    match parsed {
        Some(c) if !name.is_empty() => (format!("{name}{FILE_SUFFIX}"), Some(c)),
        _ => (file_name.to_string(), None),
    }
}

/// An entry file name (with or without a counter) with `left` tries left
/// and none counted: how a trial entry is named.
pub fn with_counter(file_name: &str, left: u8) -> String {
    let (plain, _) = split_counter(file_name);
    let stem = plain.strip_suffix(FILE_SUFFIX).unwrap_or(&plain);
    format!("{stem}+{left}{FILE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boot_counters_are_split_off_entry_names() {
        let plain = "imgbase-Node-2.0-0+1-6.1.0-18-amd64.conf";
        assert_eq!(split_counter(plain), (plain.to_string(), None));
        for (name, counter) in [
            ("imgbase-Node-2.0-0+1-6.1.0-18-amd64+3.conf", (3, 0)),
            ("imgbase-Node-2.0-0+1-6.1.0-18-amd64+2-1.conf", (2, 1)),
            ("imgbase-Node-2.0-0+1-6.1.0-18-amd64+0-3.conf", (0, 3)),
            ("imgbase-Node-2.0-0+1-6.1.0-18-amd64+0.conf", (0, 0)),
        ] {
            assert_eq!(
                split_counter(name),
                (plain.to_string(), Some(counter)),
                "{name}"
            );
            assert_eq!(with_counter(name, 1), with_counter(plain, 1));
            assert!(is_ours(name));
        }
        assert_eq!(
            with_counter(plain, 3),
            "imgbase-Node-2.0-0+1-6.1.0-18-amd64+3.conf"
        );
        // A layer's own `+N` is not a counter: a kernel version follows it.
        assert_eq!(split_counter("imgbase-N-1-0+1-6.1.conf").1, None);
        for odd in ["x+.conf", "x+a.conf", "x+1-.conf", "+1.conf", "x+1"] {
            assert_eq!(split_counter(odd), (odd.to_string(), None), "{odd}");
        }
    }

    /// A Fedora-style entry written by kernel-install, with the oddities
    /// imgbase must keep.
    const FEDORA: &str = "\
# written by kernel-install
title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Server Edition)
version 6.5.6-300.fc39.x86_64
linux /vmlinuz-6.5.6-300.fc39.x86_64
initrd /intel-ucode.img
initrd\t/initramfs-6.5.6-300.fc39.x86_64.img
options root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root   
grub_users $grub_users
grub_arg --unrestricted

grub_class  fedora
id fedora-20231010-6.5.6-300.fc39.x86_64";

    #[test]
    fn round_trips_a_foreign_entry() {
        let e = Entry::parse(FEDORA);
        assert_eq!(e.to_string(), FEDORA);
        assert_eq!(
            e.title(),
            Some("Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Server Edition)")
        );
        assert_eq!(e.version(), Some("6.5.6-300.fc39.x86_64"));
        assert_eq!(e.linux(), Some("/vmlinuz-6.5.6-300.fc39.x86_64"));
        assert_eq!(
            e.initrds(),
            ["/intel-ucode.img", "/initramfs-6.5.6-300.fc39.x86_64.img"]
        );
        assert_eq!(e.get("grub_arg"), Some("--unrestricted"));
        assert_eq!(e.get("grub_class"), Some("fedora"));
        assert_eq!(
            e.options().to_string(),
            "root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root"
        );
        assert_eq!(e.get("missing"), None);
    }

    #[test]
    fn editing_changes_only_the_edited_lines() {
        let mut e = Entry::parse(FEDORA);
        let mut opts = e.options();
        opts.set("root", "/dev/fedora/L+1");
        e.set_options(&opts).unwrap();
        e.set("title", "Layer L+1").unwrap();
        e.set("sort-key", "imgbase").unwrap();
        let want = FEDORA
            .replace(
                "options root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root   ",
                "options root=/dev/fedora/L+1 ro rd.lvm.lv=fedora/root   ",
            )
            .replace(
                "title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Server Edition)",
                "title Layer L+1",
            )
            + "\nsort-key imgbase\n";
        assert_eq!(e.to_string(), want);
    }

    #[test]
    fn separators_and_comments() {
        let text = "  title\t\t A # not a comment \r\n\t# a comment\n \t \nkey\nkey2   \n#\n";
        let e = Entry::parse(text);
        assert_eq!(e.to_string(), text);
        assert_eq!(e.title(), Some("A # not a comment"));
        assert_eq!(e.get("key"), Some(""));
        assert_eq!(e.get("key2"), Some(""));
        assert_eq!(e.lines().len(), 6);
        assert!(matches!(&e.lines()[1], Line::Comment(c) if c == "\t# a comment"));
        assert!(matches!(&e.lines()[2], Line::Blank(b) if b == " \t "));
        assert!(matches!(&e.lines()[5], Line::Comment(c) if c == "#"));
    }

    #[test]
    fn empty_and_newline_only() {
        assert_eq!(Entry::parse("").lines().len(), 0);
        assert_eq!(Entry::parse("").to_string(), "");
        assert_eq!(Entry::parse("\n").to_string(), "\n");
        assert_eq!(Entry::parse("\n\n").to_string(), "\n\n");
        let mut e = Entry::parse("");
        e.set("title", "x").unwrap();
        assert_eq!(e.to_string(), "title x\n");
    }

    #[test]
    fn set_keeps_whitespace_and_appends_after_unterminated_line() {
        let mut e = Entry::parse("title\t  old  \nlinux /v");
        e.set("title", "new").unwrap();
        e.set("options", "quiet").unwrap();
        assert_eq!(e.to_string(), "title\t  new  \nlinux /v\noptions quiet\n");
        let mut e = Entry::parse("options\n");
        e.set("options", "ro").unwrap();
        assert_eq!(e.to_string(), "options ro\n");
    }

    #[test]
    fn set_all_and_remove() {
        let mut e = Entry::parse("linux /v\ninitrd /a\noptions x\ninitrd /b\n");
        e.set_all("initrd", &["/c".into(), "/d".into()]).unwrap();
        assert_eq!(e.to_string(), "linux /v\ninitrd /c\ninitrd /d\noptions x\n");
        assert_eq!(e.remove("initrd"), 2);
        assert_eq!(e.remove("initrd"), 0);
        e.set_all("initrd", &["/e".into()]).unwrap();
        assert_eq!(e.to_string(), "linux /v\noptions x\ninitrd /e\n");
    }

    #[test]
    fn several_options_lines_are_joined_and_collapsed_on_set() {
        let mut e = Entry::parse("options a=1 b\ntitle t\noptions c\n");
        assert_eq!(e.options().to_string(), "a=1 b c");
        let mut o = e.options();
        o.remove("b");
        e.set_options(&o).unwrap();
        assert_eq!(e.to_string(), "options a=1 c\ntitle t\n");
    }

    #[test]
    fn new_writes_the_conventional_order() {
        let e = Entry::new(
            "Node 2.0 (Node-2.0-0+1)",
            "6.1.0-18-amd64",
            "/vmlinuz-6.1.0-18-amd64",
            &["/initrd.img-6.1.0-18-amd64".into(), "/extra.img".into()],
            &Cmdline::root_args("HostVG", "Node-2.0-0+1"),
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "title Node 2.0 (Node-2.0-0+1)\n\
             version 6.1.0-18-amd64\n\
             linux /vmlinuz-6.1.0-18-amd64\n\
             initrd /initrd.img-6.1.0-18-amd64\n\
             initrd /extra.img\n\
             options root=/dev/HostVG/Node-2.0-0+1 rd.lvm.lv=HostVG/Node-2.0-0+1 \
             imgbase.layer=Node-2.0-0+1\n"
        );
        assert_eq!(Entry::parse(&e.to_string()), e);
    }

    /// Values that could add lines to the file (or that loaders read as
    /// blanks or line ends).
    const BAD: [&str; 7] = ["a\nb", "a\rb", "a\tb", "a\x1bb", "a\x7fb", "a\0b", "\n"];

    #[test]
    fn control_characters_are_refused_and_change_nothing() {
        let opts = Cmdline::root_args("VG", "L+1");
        let e = Entry::new("t", "1\ninitrd /etc/shadow", "/v", &[], &opts).unwrap_err();
        assert!(
            matches!(&e, BootError::ControlChar { what, .. } if what == "kernel version"),
            "{e:?}"
        );
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        assert!(e.to_string().contains(r#""1\ninitrd /etc/shadow""#), "{e}");
        for bad in BAD {
            assert!(Entry::new(bad, "1", "/v", &[], &opts).is_err(), "{bad:?}");
            assert!(Entry::new("t", bad, "/v", &[], &opts).is_err(), "{bad:?}");
            assert!(Entry::new("t", "1", bad, &[], &opts).is_err(), "{bad:?}");
            assert!(Entry::new("t", "1", "/v", &["/i".into(), bad.into()], &opts).is_err());
            let mut o = opts.clone();
            o.set("x", bad);
            assert!(Entry::new("t", "1", "/v", &[], &o).is_err(), "{bad:?}");

            let mut e = Entry::parse("title t\ninitrd /i\n");
            assert!(e.set("title", bad).is_err(), "{bad:?}");
            assert!(e.set("new", bad).is_err(), "{bad:?}");
            assert!(e.set_all("initrd", &["/ok".into(), bad.into()]).is_err());
            assert!(e.set_options(&o).is_err(), "{bad:?}");
            assert_eq!(e.to_string(), "title t\ninitrd /i\n");
        }
    }

    #[test]
    fn printable_values_are_written_as_given() {
        let title = "Bob's \"node\" # ünïcode ✓ $x";
        let e = Entry::new(title, "6.1", "/v", &[], &Cmdline::parse("a=\"b c\"")).unwrap();
        assert_eq!(e.title(), Some(title));
        assert_eq!(
            e.to_string(),
            format!("title {title}\nversion 6.1\nlinux /v\noptions a=\"b c\"\n")
        );
        let mut e = Entry::parse("title t\n");
        e.set("title", "é \"q\"").unwrap();
        assert_eq!(e.to_string(), "title é \"q\"\n");
    }

    #[test]
    fn file_names() {
        assert_eq!(
            entry_file_name("Node-2.0-0+1", "6.1.0-18-amd64"),
            "imgbase-Node-2.0-0+1-6.1.0-18-amd64.conf"
        );
        assert_eq!(
            entry_id("Node-2.0-0+1", "6.1.0-18-amd64"),
            "imgbase-Node-2.0-0+1-6.1.0-18-amd64"
        );
        assert!(is_ours(&entry_file_name("Node-2.0-0+1", "6.1.0")));
        assert!(!is_ours("fedora-20231010-6.5.6.conf"));
        assert!(!is_ours("imgbase-x.conf.tmp"));
        assert!(!is_ours(".imgbase-abc.tmp"));
        assert!(!is_ours("imgbase-.conf"));
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in "(?s).{0,200}") {
            prop_assert_eq!(Entry::parse(&text).to_string(), text);
        }

        #[test]
        fn entry_like_text_round_trips(
            lines in proptest::collection::vec(
                "[ \t]{0,2}(#|[a-z_]{1,6})[ \t]{0,3}[a-z #=/\t]{0,10}[ \t\r]{0,2}", 0..10),
            final_nl: bool,
        ) {
            let mut text = lines.join("\n");
            if final_nl {
                text.push('\n');
            }
            let e = Entry::parse(&text);
            prop_assert_eq!(e.to_string(), text);
            for l in e.lines() {
                if let Some(v) = l.value() {
                    prop_assert_eq!(v.trim_matches(is_blank), v);
                }
                if let Some(k) = l.key() {
                    prop_assert!(!k.is_empty() && !k.contains(is_blank) && !k.starts_with('#'));
                }
            }
        }

        #[test]
        fn set_then_get(text in "(?s).{0,100}", key in "[a-z]{1,4}", value in "[a-z =]{0,8}") {
            let value = value.trim_matches(is_blank).to_string();
            let mut e = Entry::parse(&text);
            e.set(&key, &value).unwrap();
            prop_assert_eq!(e.get(&key), Some(value.as_str()));
            let reparsed = Entry::parse(&e.to_string());
            prop_assert_eq!(reparsed.get(&key), Some(value.as_str()));
        }
    }
}
