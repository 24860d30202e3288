//! The thin layer between imgbase and the system: external tools, LVM,
//! filesystems, mounts and the operation lock. Everything above it is
//! testable without root.

pub mod cmd;
pub mod fs;
pub mod lock;
pub mod lvm;
pub mod mount;
