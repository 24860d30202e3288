//! The keep-list: paths whose admin's version always wins an update,
//! whatever the vendor did (host identity, storage and boot
//! configuration, imgbase's own settings).
//!
//! A pattern is a path relative to the layer root (`etc/ssh/ssh_host_*`;
//! a leading `/` is ignored), matched component by component: `*` matches
//! any run of characters within one component, `?` exactly one. A pattern
//! naming a directory also covers everything under it.

use std::path::{Component, Path};

/// What imgbase keeps of the admin's without being told.
pub const DEFAULT_KEEP: &[&str] = &[
    "etc/fstab",
    "etc/crypttab",
    "etc/machine-id",
    "etc/hostname",
    "etc/ssh/ssh_host_*",
    "etc/iscsi/initiatorname.iscsi",
    "etc/lvm/lvm.conf",
    "etc/lvm/devices/system.devices",
    "etc/imgbase/imgbase.conf",
    "etc/adjtime",
    "etc/localtime",
];

/// A keep-list, its patterns split into components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    patterns: Vec<Vec<String>>,
}

impl Rules {
    /// Exactly these patterns; an empty one (or `/`) matches nothing.
    pub fn new(patterns: Vec<String>) -> Rules {
        let patterns = patterns
            .iter()
            .map(|p| split_pattern(p))
            .filter(|p| !p.is_empty())
            .collect();
        Rules { patterns }
    }

    /// [`DEFAULT_KEEP`].
    pub fn defaults() -> Rules {
        Rules::new(DEFAULT_KEEP.iter().map(|p| p.to_string()).collect())
    }

    /// Whether `path` (relative to the layer root) is, or is under, a
    /// path some pattern names.
    pub fn is_kept(&self, path: &Path) -> bool {
        let names = path_names(path);
        self.patterns.iter().any(|pattern| {
            pattern.len() <= names.len() && pattern.iter().zip(&names).all(|(p, n)| glob(p, n))
        })
    }
}

/// `/etc//ssh/./x` → `["etc", "ssh", "x"]`: written by hand in a config
/// file, a pattern may carry a leading slash or doubled separators.
fn split_pattern(pattern: &str) -> Vec<String> {
    pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

/// The names along `path`, root and `.` left out.
fn path_names(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Whether one component `name` matches `pattern` (`*`, `?`). Linear
/// backtracking to the last `*`, so no input makes it slow.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in `name` its match ends so far.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&ch) = n.get(ni) {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == ch => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character, retry.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p.iter().skip(pi).all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(patterns: &[&str]) -> Rules {
        Rules::new(patterns.iter().map(|p| p.to_string()).collect())
    }

    fn kept(r: &Rules, path: &str) -> bool {
        r.is_kept(Path::new(path))
    }

    #[test]
    fn defaults_keep_host_identity_and_storage() {
        let r = Rules::defaults();
        for path in [
            "etc/fstab",
            "etc/crypttab",
            "etc/machine-id",
            "etc/hostname",
            "etc/ssh/ssh_host_rsa_key",
            "etc/ssh/ssh_host_ed25519_key.pub",
            "etc/iscsi/initiatorname.iscsi",
            "etc/lvm/lvm.conf",
            "etc/lvm/devices/system.devices",
            "etc/imgbase/imgbase.conf",
            "etc/adjtime",
            "etc/localtime",
        ] {
            assert!(kept(&r, path), "{path}");
        }
    }

    #[test]
    fn defaults_leave_the_rest_to_the_merge() {
        let r = Rules::defaults();
        for path in [
            "etc",
            "etc/ssh",
            "etc/ssh/sshd_config",
            "etc/fstab.d",
            "etc/lvm",
            "etc/lvm/devices",
            "etc/hosts",
            "etc/fstab-",
            "fstab",
            "var/etc/fstab",
        ] {
            assert!(!kept(&r, path), "{path}");
        }
    }

    #[test]
    fn star_stays_within_one_component() {
        let r = rules(&["etc/*.conf"]);
        assert!(kept(&r, "etc/a.conf"));
        assert!(kept(&r, "etc/.conf"));
        assert!(!kept(&r, "etc/a.confx"));
        // `*` does not cross a `/`, but a matched name covers its subtree.
        assert!(!kept(&r, "etc/x/a.txt"));
        assert!(kept(&r, "etc/d.conf/inner"));
    }

    #[test]
    fn question_mark_is_exactly_one_character() {
        let r = rules(&["etc/rc?.d"]);
        assert!(kept(&r, "etc/rc3.d"));
        assert!(!kept(&r, "etc/rc.d"));
        assert!(!kept(&r, "etc/rc33.d"));
    }

    #[test]
    fn a_directory_covers_everything_under_it() {
        let r = rules(&["etc/pki/tls"]);
        assert!(kept(&r, "etc/pki/tls"));
        assert!(kept(&r, "etc/pki/tls/private/key.pem"));
        assert!(!kept(&r, "etc/pki"));
        assert!(!kept(&r, "etc/pki/tls2"));
    }

    #[test]
    fn leading_slash_and_empty_patterns() {
        let r = rules(&["/etc//hosts", "", "/"]);
        assert!(kept(&r, "etc/hosts"));
        assert!(kept(&r, "/etc/hosts"));
        // An empty pattern would otherwise cover every path.
        assert!(!kept(&r, "etc/passwd"));
    }

    #[test]
    fn glob_cases() {
        for (p, n, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcb", false),
            ("*a*a", "aaa", true),
            ("a**b", "ab", true),
            ("?", "", false),
            ("", "", true),
            ("", "a", false),
            ("ü?", "üx", true),
        ] {
            assert_eq!(glob(p, n), want, "{p:?} ~ {n:?}");
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_a_naive_matcher(p in "[ab*?]{0,6}", n in "[ab]{0,6}") {
            prop_assert_eq!(glob(&p, &n), naive(p.as_bytes(), n.as_bytes()));
        }
    }

    /// The obvious exponential definition, to check [`glob`] against.
    fn naive(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, _) => n.is_empty(),
            (Some(b'*'), _) => naive(&p[1..], n) || (!n.is_empty() && naive(p, &n[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && naive(&p[1..], &n[1..]),
        }
    }
}
