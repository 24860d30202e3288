//! (stub until merged)
use super::*;
pub fn merge(
    _o: &Manifest,
    _a: &Manifest,
    _n: &Manifest,
    _r: &rules::Rules,
    _acc: Vec<(PathBuf, String, AccountsReport)>,
) -> Merge {
    Merge::default()
}
