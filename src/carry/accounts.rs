//! (stub until merged)
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
pub struct Texts {
    pub ancestor: Option<String>,
    pub admin: Option<String>,
    pub vendor: Option<String>,
}
pub fn merge_all(
    _f: &BTreeMap<PathBuf, Texts>,
    _u: &BTreeSet<u32>,
    _g: &BTreeSet<u32>,
) -> Vec<(PathBuf, String, super::AccountsReport)> {
    vec![]
}
