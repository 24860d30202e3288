//! imgbase: a host OS layering manager on LVM thin volumes.
//!
//! Dependencies point down only: `verbs` build plans from the `model`,
//! `plan` executes them through the `sys` traits; nothing here knows the CLI.

pub mod boot;
pub mod error;
pub mod image;
pub mod model;
pub mod plan;
pub mod sys;
pub mod verbs;
