//! (stub until merged)
pub const DEFAULT_KEEP: &[&str] = &["etc/fstab"];
pub struct Rules(Vec<String>);
impl Rules {
    pub fn new(p: Vec<String>) -> Rules {
        Rules(p)
    }
}
