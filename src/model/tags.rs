//! LV and VG tags: imgbased's own (shared with the Python tool, so either
//! reads the other's nodes) and imgbase's extra facts in `imgbase:`.

pub const VG: &str = "imgbased:vg";
pub const POOL: &str = "imgbased:pool";
pub const BASE: &str = "imgbased:base";
pub const LAYER: &str = "imgbased:layer";
/// The root LV a layout was initialised from; never removed.
pub const INIT: &str = "imgbased:init";
pub const VOLUME: &str = "imgbased:volume";

/// On an LV this run (or a crashed one) is still building.
pub const INCOMPLETE: &str = "imgbase:incomplete";
/// On a base: the highest layer index ever handed out, so a removed
/// layer's name is never given to a different layer.
pub const LAST_LAYER: &str = "imgbase:last-layer=";

/// On a layer: kept by `imgbase gc` (and its base with it) until unpinned.
pub const PINNED: &str = "imgbase:pinned";
/// On a layer: its trial boot failed (`imgbase bless` found it), so it is
/// never booted again by itself; why is in /boot/imgbase/failed/LAYER.
pub const FAILED: &str = "imgbase:failed";

/// On a base made from an image: the image file's sha256.
pub const SHA256: &str = "imgbase:sha256=";
/// On a base: the filesystem it holds (to decide whether a delta works).
pub const FS: &str = "imgbase:fs=";
/// On a base: bytes of the image written into it.
pub const IMAGE_SIZE: &str = "imgbase:image-size=";

/// On the pool: imgbase keeps boot entries for the layers of this VG,
/// with this loader. Without /boot such a VG's layers are not changed.
pub const BOOT: &str = "imgbase:boot=";

/// New LVs are built under this prefix and renamed into place last.
pub const TMP_PREFIX: &str = "imgbase-tmp-";

pub fn last_layer(index: u32) -> String {
    format!("{LAST_LAYER}{index}")
}

pub fn temp_name(final_name: &str) -> String {
    format!("{TMP_PREFIX}{final_name}")
}
