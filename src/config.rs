//! `/etc/imgbase/imgbase.conf` (TOML). Every key is optional; a missing
//! file means the defaults. An unknown key is refused, so a typo does not
//! silently turn a setting off.
//!
//! ```toml
//! [update]
//! # Paths (relative to the layer root) that always keep the admin's copy.
//! # Replaces the default list; `keep_also` adds to it instead.
//! keep = ["etc/fstab", "etc/machine-id"]
//! keep_also = ["etc/myapp/license.key"]
//! # Refuse an update that would fill the thin pool past this (percent).
//! pool_threshold = 80
//! # `gc` (and `update`, last) keeps this many bases.
//! bases_to_keep = 2
//!
//! [boot]
//! # `update` boots the new layer as a trial: it becomes the default only
//! # once it has reached boot-complete.target (`imgbase bless`).
//! trial = true
//! # Boots a trial gets before the previous layer comes back (1 to 3).
//! tries = 1
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::carry::rules::{DEFAULT_KEEP, Rules};

pub const DEFAULT_PATH: &str = "/etc/imgbase/imgbase.conf";
/// Pool usage (percent, data or metadata) past which `update` refuses
/// and `check` reports a problem.
pub const DEFAULT_POOL_THRESHOLD: f64 = 80.0;
/// Bases `gc` (and `update`, last) keeps.
pub const DEFAULT_KEEP_BASES: usize = 2;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub update: Update,
    #[serde(default)]
    pub boot: BootConfig,
}

/// `[boot]`: trial boots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    #[serde(default = "yes")]
    pub trial: bool,
    #[serde(default = "one")]
    pub tries: u8,
}

fn yes() -> bool {
    true
}

fn one() -> u8 {
    1
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            trial: true,
            tries: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub keep: Option<Vec<String>>,
    #[serde(default)]
    pub keep_also: Vec<String>,
    #[serde(default = "pool_threshold")]
    pub pool_threshold: f64,
    #[serde(default = "bases_to_keep")]
    pub bases_to_keep: usize,
}

fn pool_threshold() -> f64 {
    DEFAULT_POOL_THRESHOLD
}

fn bases_to_keep() -> usize {
    DEFAULT_KEEP_BASES
}

impl Default for Update {
    fn default() -> Self {
        Update {
            keep: None,
            keep_also: Vec::new(),
            pool_threshold: DEFAULT_POOL_THRESHOLD,
            bases_to_keep: DEFAULT_KEEP_BASES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {why}; fix it or move it away to use the defaults")]
    Invalid { path: PathBuf, why: String },
}

impl Config {
    /// Read the file; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).map_err(|why| ConfigError::Invalid {
                path: path.into(),
                why,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.into(),
                source,
            }),
        }
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let u = &c.update;
        if !(1.0..=100.0).contains(&u.pool_threshold) {
            return Err(format!(
                "update.pool_threshold is {}, it must be a percentage from 1 to 100",
                u.pool_threshold
            ));
        }
        if !(1..=crate::boot::grubmenu::MAX_TRIES).contains(&c.boot.tries) {
            return Err(format!(
                "boot.tries is {}, it must be from 1 to {} (the boots a trial gets)",
                c.boot.tries,
                crate::boot::grubmenu::MAX_TRIES
            ));
        }
        if u.bases_to_keep < 1 {
            return Err("update.bases_to_keep must be at least 1".into());
        }
        for p in u.keep.iter().flatten().chain(&u.keep_also) {
            if p.starts_with('/') || p.split('/').any(|c| c == "..") {
                return Err(format!(
                    "keep pattern {p:?} must be relative to the layer root (like \"etc/fstab\")"
                ));
            }
        }
        Ok(c)
    }

    /// The paths that always keep the admin's copy.
    pub fn keep_patterns(&self) -> Vec<String> {
        let base: Vec<String> = match &self.update.keep {
            Some(k) => k.clone(),
            None => DEFAULT_KEEP.iter().map(|s| s.to_string()).collect(),
        };
        base.into_iter()
            .chain(self.update.keep_also.iter().cloned())
            .collect()
    }

    pub fn rules(&self) -> Rules {
        Rules::new(self.keep_patterns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.update.pool_threshold, 80.0);
        assert_eq!(c.update.bases_to_keep, 2);
        assert!(c.boot.trial);
        assert_eq!(c.boot.tries, 1);
        let c = Config::parse("[boot]\ntrial = false\ntries = 3\n").unwrap();
        assert!(!c.boot.trial);
        assert_eq!(c.boot.tries, 3);
        assert!(c.keep_patterns().contains(&"etc/fstab".to_string()));
    }

    #[test]
    fn keep_replaces_and_keep_also_adds() {
        let c = Config::parse("[update]\nkeep = [\"etc/a\"]\nkeep_also = [\"etc/b\"]\n").unwrap();
        assert_eq!(c.keep_patterns(), vec!["etc/a", "etc/b"]);
        let c = Config::parse("[update]\nkeep_also = [\"etc/b\"]\n").unwrap();
        assert!(c.keep_patterns().contains(&"etc/fstab".to_string()));
        assert!(c.keep_patterns().contains(&"etc/b".to_string()));
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(Config::parse("[update]\npool_treshold = 70\n").is_err());
        assert!(Config::parse("[update]\npool_threshold = 170\n").is_err());
        assert!(Config::parse("[update]\nbases_to_keep = 0\n").is_err());
        assert!(Config::parse("[update]\nkeep = [\"/etc/fstab\"]\n").is_err());
        assert!(Config::parse("[update]\nkeep = [\"etc/../../x\"]\n").is_err());
        for bad in ["0", "4", "300", "-1"] {
            let e = Config::parse(&format!("[boot]\ntries = {bad}\n")).unwrap_err();
            assert!(e.contains("tries") || e.contains("invalid"), "{bad}: {e}");
        }
        assert!(Config::parse("[boot]\ntrail = false\n").is_err());
    }

    #[test]
    fn a_missing_file_is_the_defaults_and_a_bad_one_names_itself() {
        let d = tempfile::tempdir().unwrap();
        assert!(Config::load(&d.path().join("none")).is_ok());
        let p = d.path().join("imgbase.conf");
        std::fs::write(&p, "[update\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("imgbase.conf is not valid"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
