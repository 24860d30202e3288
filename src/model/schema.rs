//! Versions of the JSON documents other tools read.
//!
//! The convention, one for every such document: its first field is
//! `"schema_version": N`, an integer, with N a const of the type
//! (`Layout::SCHEMA_VERSION`, `CheckReport::SCHEMA_VERSION`). Adding a
//! field keeps N; removing or renaming a field, or changing what one means
//! or its type, bumps N. A fixture per type and version under
//! `tests/fixtures/` (`layout-v1.json`, …) pins the exact shape, so a
//! change to it fails a test until the fixture is updated deliberately.
//! (bootc's `spec.rs` versions its host state the same way, as a string.)

use serde::{Serialize, Serializer};

/// A field that always serializes as the number `N`: the type's schema
/// version, carried in the value so every way of printing it includes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaVersion<const N: u32>;

impl<const N: u32> Serialize for SchemaVersion<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(N)
    }
}
