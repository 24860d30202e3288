//! The pure data model: names, sizes, tags and the layout read from one
//! `lvs` report. No I/O here.

pub mod layout;
pub mod names;
pub mod schema;
pub mod size;
pub mod tags;
