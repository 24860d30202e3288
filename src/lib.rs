//! imgbase: a host OS layering manager on LVM thin volumes.
//!
//! Dependencies point down only: `verbs` build plans from the `model`,
//! `plan` executes them through the `sys` traits; `app` ties one command
//! line (`cli`) to them, and the binary is a shim around `app::run`.

pub mod app;
pub mod boot;
pub mod carry;
pub mod cli;
pub mod config;
pub mod error;
pub mod image;
pub mod model;
pub mod plan;
pub mod sys;
pub mod verbs;
