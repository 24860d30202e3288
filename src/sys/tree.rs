//! (stub until merged)
use crate::carry::{Manifest, Op};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
#[derive(Debug, thiserror::Error)]
#[error("tree")]
pub struct TreeError;
pub fn manifest(_r: &Path, _s: &Path) -> Result<Manifest, TreeError> {
    Ok(Manifest::new())
}
pub fn owners(_r: &Path, _s: &[&Path]) -> Result<(BTreeSet<u32>, BTreeSet<u32>), TreeError> {
    Ok(Default::default())
}
pub fn apply(_a: &Path, _t: &Path, _o: &[Op]) -> Result<Vec<String>, TreeError> {
    Ok(vec![])
}
pub fn add_missing_into(_s: &Path, _sub: &Path, _d: &Path) -> Result<Vec<PathBuf>, TreeError> {
    Ok(vec![])
}
