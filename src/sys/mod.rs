//! The thin layer between imgbase and the system: external tools, LVM,
//! filesystems, mounts and the operation lock. Everything above it is
//! testable without root.

pub mod boot;
pub mod cmd;
#[cfg(any(test, feature = "test-fakes"))]
pub mod fakes;
pub mod fault;
pub mod fetch;
pub mod fs;
pub mod images;
pub mod inroot;
pub mod lock;
pub mod loopdev;
pub mod lvm;
pub mod mount;
pub mod progress;
pub mod tree;
