//! The layout of a node, built from one `lvs` report: the VG and pool
//! imgbase manages, its bases with their layers, and the booted layer.
//! Every decision a command makes is made on this value.

use serde::Serialize;

use super::names::{ImageName, LayerName, Nvr};
use super::schema::SchemaVersion;
use super::tags;
use crate::sys::fs::DevNum;
use crate::sys::lvm::LvRecord;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "no volume group is tagged {tag}: initialise a layout with `imgbase layout --init`, \
         or name the VG with --vg",
        tag = tags::VG
    )]
    NoLayout,
    #[error("volume group {0} holds no imgbase layout (no {tag} tag): run `imgbase layout --init` first", tag = tags::VG)]
    NotALayout(String),
    #[error("several volume groups are tagged {tag} ({}): choose one with --vg", .0.join(", "), tag = tags::VG)]
    SeveralLayouts(Vec<String>),
    #[error("volume group {0} has no thin pool tagged {tag}: tag it with `lvchange --addtag {tag} {0}/POOL`", tag = tags::POOL)]
    NoPool(String),
    #[error("volume group {vg} has several pools tagged {tag} ({}): remove the tag from all but one", .pools.join(", "), tag = tags::POOL)]
    SeveralPools { vg: String, pools: Vec<String> },
    #[error("no base named {name} in {vg} (see `imgbase layout --bases`)")]
    UnknownBase { name: String, vg: String },
    #[error("no layer named {name} in {vg} (see `imgbase layout --layers`)")]
    UnknownLayer { name: String, vg: String },
    #[error("no bases in {0} yet")]
    NoBases(String),
    #[error("no layers in {0} yet")]
    NoLayers(String),
    #[error(
        "the running system is not booted from a layer of {vg}{}",
        root.as_deref().map(|lv| format!(" (its root is on {lv})")).unwrap_or_default()
    )]
    NotBootedFromLayer { vg: String, root: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool {
    pub name: String,
    pub size: u64,
    pub data_percent: f64,
    pub metadata_percent: f64,
    pub metadata_size: u64,
    /// The loader imgbase writes this VG's boot entries for (tag
    /// `imgbase:boot=`), once it has written one.
    pub boot: Option<String>,
}

impl Pool {
    pub fn data_free(&self) -> u64 {
        (self.size as f64 * (1.0 - self.data_percent / 100.0)).max(0.0) as u64
    }
    pub fn metadata_free(&self) -> u64 {
        (self.metadata_size as f64 * (1.0 - self.metadata_percent / 100.0)).max(0.0) as u64
    }
}

/// State common to bases and layers, read from the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    pub lv: String,
    pub size: u64,
    pub origin: Option<String>,
    pub read_only: bool,
    pub active: bool,
    pub activation_skip: bool,
    pub path: String,
    #[serde(skip)]
    pub dev: Option<DevNum>,
}

impl Volume {
    fn from_record(r: &LvRecord) -> Self {
        Volume {
            lv: r.name.clone(),
            size: r.size,
            origin: r.origin.clone(),
            read_only: r.is_read_only(),
            active: r.is_active(),
            activation_skip: r.skips_activation(),
            path: if r.path.is_empty() {
                format!("/dev/{}/{}", r.vg, r.name)
            } else {
                r.path.clone()
            },
            dev: r
                .kernel_major
                .zip(r.kernel_minor)
                .map(|(major, minor)| DevNum { major, minor }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    #[serde(rename = "name", serialize_with = "ser_display")]
    pub name: LayerName,
    #[serde(flatten)]
    pub volume: Volume,
    pub booted: bool,
    /// Tagged `imgbase:pinned`: `imgbase gc` keeps it and its base.
    pub pinned: bool,
    /// Tagged `imgbase:failed`: its trial boot failed; nothing picks it
    /// by itself.
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Base {
    #[serde(rename = "name", serialize_with = "ser_display")]
    pub nvr: Nvr,
    #[serde(flatten)]
    pub volume: Volume,
    /// Highest layer index ever handed out (from the base's tag).
    pub last_layer: u32,
    /// sha256 of the image it was made from, if imgbase made it from one.
    pub sha256: Option<String>,
    /// The filesystem it holds, when imgbase recorded it.
    pub fs: Option<String>,
    /// Oldest first.
    pub layers: Vec<Layer>,
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Printed by `imgbase layout --json`: a versioned document (see
/// [`super::schema`]); its fields are what scripts read, keep them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// `"schema_version": 1` ([`Layout::SCHEMA_VERSION`]), first in the JSON.
    pub schema_version: SchemaVersion<{ Layout::SCHEMA_VERSION }>,
    pub vg: String,
    pub vg_free: u64,
    pub pool: Pool,
    /// Oldest first, by rpm version order.
    pub bases: Vec<Base>,
    /// Layers whose base LV is gone (shown, never fatal).
    pub orphan_layers: Vec<Layer>,
    /// The LV the root filesystem is on, if it is in this VG.
    pub booted: Option<String>,
    pub init_lv: Option<String>,
    /// LVs a run did not finish (`imgbase:incomplete`).
    pub incomplete: Vec<String>,
    /// Every LV name in the VG, tagged or not (names must not collide).
    #[serde(skip)]
    pub all_names: Vec<String>,
    /// LVs tagged `imgbased:init` or `imgbased:volume`: never removed,
    /// whatever other tags they carry.
    #[serde(skip)]
    pub never_removed: Vec<String>,
}

impl Layout {
    /// The version of the JSON this type prints as.
    pub const SCHEMA_VERSION: u32 = 1;

    /// Build the layout of one VG from a report. `vg` is the user's
    /// `--vg`; without it the one VG tagged `imgbased:vg` is used.
    pub fn from_report(
        records: &[LvRecord],
        vg: Option<&str>,
        root: Option<DevNum>,
    ) -> Result<Layout, LayoutError> {
        let vg = match vg {
            Some(vg) => {
                let tagged = records
                    .iter()
                    .any(|r| r.vg == vg && r.vg_tags.iter().any(|t| t == tags::VG));
                if !tagged {
                    return Err(LayoutError::NotALayout(vg.to_string()));
                }
                vg.to_string()
            }
            None => {
                let mut vgs: Vec<String> = records
                    .iter()
                    .filter(|r| r.vg_tags.iter().any(|t| t == tags::VG))
                    .map(|r| r.vg.clone())
                    .collect();
                vgs.sort();
                vgs.dedup();
                match vgs.len() {
                    0 => return Err(LayoutError::NoLayout),
                    1 => vgs.remove(0),
                    _ => return Err(LayoutError::SeveralLayouts(vgs)),
                }
            }
        };
        let lvs: Vec<&LvRecord> = records.iter().filter(|r| r.vg == vg).collect();

        let pools: Vec<&&LvRecord> = lvs
            .iter()
            .filter(|r| r.is_thin_pool() && r.has_tag(tags::POOL))
            .collect();
        let pool = match pools.as_slice() {
            [] => return Err(LayoutError::NoPool(vg)),
            [p] => Pool {
                name: p.name.clone(),
                size: p.size,
                data_percent: p.data_percent.unwrap_or(0.0),
                metadata_percent: p.metadata_percent.unwrap_or(0.0),
                metadata_size: p.metadata_size.unwrap_or(0),
                boot: p
                    .tags
                    .iter()
                    .find_map(|t| t.strip_prefix(tags::BOOT))
                    .map(String::from),
            },
            many => {
                return Err(LayoutError::SeveralPools {
                    vg,
                    pools: many.iter().map(|p| p.name.clone()).collect(),
                });
            }
        };

        let booted = root.and_then(|dev| {
            lvs.iter()
                .find(|r| r.kernel_major == Some(dev.major) && r.kernel_minor == Some(dev.minor))
                .map(|r| r.name.clone())
        });

        let mut bases: Vec<Base> = Vec::new();
        let mut layers: Vec<Layer> = Vec::new();
        let mut incomplete = Vec::new();
        let mut init_lv = None;
        for r in &lvs {
            if r.has_tag(tags::INCOMPLETE) {
                incomplete.push(r.name.clone());
                continue;
            }
            if r.has_tag(tags::INIT) {
                init_lv = Some(r.name.clone());
            }
            if !(r.has_tag(tags::BASE) || r.has_tag(tags::LAYER)) {
                continue;
            }
            // As in imgbased, the role comes from the name: the LV made
            // from the installed root carries both tags.
            match r.name.parse::<ImageName>() {
                Ok(ImageName::Base(nvr)) => bases.push(Base {
                    nvr,
                    volume: Volume::from_record(r),
                    last_layer: r
                        .tag_value(tags::LAST_LAYER)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    sha256: r.tag_value(tags::SHA256).map(str::to_string),
                    fs: r.tag_value(tags::FS).map(str::to_string),
                    layers: Vec::new(),
                }),
                Ok(ImageName::Layer(name)) => layers.push(Layer {
                    booted: booted.as_deref() == Some(r.name.as_str()),
                    pinned: r.has_tag(tags::PINNED),
                    failed: r.has_tag(tags::FAILED),
                    name,
                    volume: Volume::from_record(r),
                }),
                Err(e) => tracing::warn!(lv = %r.name, "tagged LV with an unusable name: {e}"),
            }
        }
        bases.sort_by(|a, b| a.nvr.cmp(&b.nvr));
        layers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut orphan_layers = Vec::new();
        for layer in layers {
            match bases.iter_mut().find(|b| b.nvr == layer.name.base) {
                Some(base) => base.layers.push(layer),
                None => orphan_layers.push(layer),
            }
        }

        Ok(Layout {
            schema_version: SchemaVersion,
            vg_free: lvs.first().map(|r| r.vg_free).unwrap_or(0),
            vg,
            pool,
            bases,
            orphan_layers,
            booted,
            init_lv,
            incomplete,
            all_names: lvs.iter().map(|r| r.name.clone()).collect(),
            never_removed: lvs
                .iter()
                .filter(|r| r.has_tag(tags::INIT) || r.has_tag(tags::VOLUME))
                .map(|r| r.name.clone())
                .collect(),
        })
    }

    // Lookups come in pairs: `base`, `layer`, `latest_*` and `booted_layer`
    // answer with an Option; the `find_*` methods answer the same
    // question with the error a command shows when there is no answer.

    pub fn find_base(&self, name: &str) -> Result<&Base, LayoutError> {
        self.base(name).ok_or_else(|| LayoutError::UnknownBase {
            name: name.into(),
            vg: self.vg.clone(),
        })
    }

    pub fn find_layer(&self, name: &str) -> Result<(&Base, &Layer), LayoutError> {
        self.layer(name).ok_or_else(|| LayoutError::UnknownLayer {
            name: name.into(),
            vg: self.vg.clone(),
        })
    }

    /// The base a layer is on.
    pub fn find_base_of_layer(&self, layer: &str) -> Result<&Base, LayoutError> {
        self.find_layer(layer).map(|(b, _)| b)
    }

    pub fn find_latest_base(&self) -> Result<&Base, LayoutError> {
        self.latest_base()
            .ok_or_else(|| LayoutError::NoBases(self.vg.clone()))
    }

    pub fn find_latest_layer(&self) -> Result<&Layer, LayoutError> {
        self.latest_layer()
            .ok_or_else(|| LayoutError::NoLayers(self.vg.clone()))
    }

    /// The layer the running system is booted from.
    pub fn find_booted_layer(&self) -> Result<&Layer, LayoutError> {
        self.booted_layer()
            .map(|(_, l)| l)
            .ok_or_else(|| LayoutError::NotBootedFromLayer {
                vg: self.vg.clone(),
                root: self.booted.clone(),
            })
    }

    pub fn base(&self, name: &str) -> Option<&Base> {
        self.bases.iter().find(|b| b.volume.lv == name)
    }

    pub fn layer(&self, name: &str) -> Option<(&Base, &Layer)> {
        self.bases.iter().find_map(|b| {
            b.layers
                .iter()
                .find(|l| l.volume.lv == name)
                .map(|l| (b, l))
        })
    }

    pub fn latest_base(&self) -> Option<&Base> {
        self.bases.last()
    }

    /// The newest layer over all bases (rpm order), as imgbased defines it.
    pub fn latest_layer(&self) -> Option<&Layer> {
        self.layers().max_by(|a, b| a.name.cmp(&b.name))
    }

    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.bases.iter().flat_map(|b| b.layers.iter())
    }

    pub fn booted_layer(&self) -> Option<(&Base, &Layer)> {
        self.booted.as_deref().and_then(|n| self.layer(n))
    }

    /// The layer whose size a new base should match: the booted one, else
    /// the newest.
    pub fn current_layer(&self) -> Option<&Layer> {
        self.booted_layer()
            .map(|(_, l)| l)
            .or_else(|| self.latest_layer())
    }

    pub fn name_taken(&self, name: &str) -> bool {
        self.all_names.iter().any(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fakes::FakeLvm;
    use crate::sys::lvm::{Lvm, Scope};

    fn layout_of(f: &FakeLvm, root: Option<DevNum>) -> Result<Layout, LayoutError> {
        Layout::from_report(&f.report(&Scope::TaggedVgs).unwrap(), None, root)
    }

    /// Tags exactly as the Python imgbased sets them: the base made from
    /// the installed root carries imgbased:layer too (it is made by the
    /// same snapshot helper), bases are read-only and skip activation.
    fn imgbased_node() -> FakeLvm {
        let f = FakeLvm::with_pool("onn", "pool00", 20 << 30);
        f.add_thin("root", 8 << 30, &["imgbased:init"]);
        f.add_thin(
            "ovirt-node-ng-4.4.10-0.20220303.0",
            8 << 30,
            &["imgbased:base", "imgbased:layer"],
        );
        f.add_thin(
            "ovirt-node-ng-4.4.10-0.20220303.0+1",
            8 << 30,
            &["imgbased:layer"],
        );
        f.add_thin(
            "ovirt-node-ng-4.5.0-0.20220307.0",
            8 << 30,
            &["imgbased:base"],
        );
        f.add_thin(
            "ovirt-node-ng-4.5.0-0.20220307.0+1",
            8 << 30,
            &["imgbased:layer"],
        );
        f.add_thin("var", 5 << 30, &["imgbased:volume"]);
        f.add_thin("swap", 1 << 30, &[]);
        f
    }

    #[test]
    fn reads_an_imgbased_node() {
        let f = imgbased_node();
        let l = layout_of(&f, Some(f.dev("ovirt-node-ng-4.5.0-0.20220307.0+1"))).unwrap();
        assert_eq!(l.vg, "onn");
        assert_eq!(l.pool.name, "pool00");
        assert_eq!(l.init_lv.as_deref(), Some("root"));
        let names: Vec<_> = l.bases.iter().map(|b| b.volume.lv.as_str()).collect();
        assert_eq!(
            names,
            [
                "ovirt-node-ng-4.4.10-0.20220303.0",
                "ovirt-node-ng-4.5.0-0.20220307.0"
            ]
        );
        assert_eq!(l.bases[0].layers.len(), 1);
        assert_eq!(
            l.booted.as_deref(),
            Some("ovirt-node-ng-4.5.0-0.20220307.0+1")
        );
        assert!(l.booted_layer().unwrap().1.booted);
        assert_eq!(
            l.latest_layer().unwrap().volume.lv,
            "ovirt-node-ng-4.5.0-0.20220307.0+1"
        );
        assert!(l.name_taken("swap"));
    }

    #[test]
    fn version_order_not_string_order() {
        let f = FakeLvm::with_pool("vg", "pool", 1 << 30);
        for n in ["Node-2-0", "Node-13-0", "Node-9-0"] {
            f.add_thin(n, 1 << 20, &["imgbased:base"]);
        }
        let l = layout_of(&f, None).unwrap();
        assert_eq!(l.latest_base().unwrap().volume.lv, "Node-13-0");
    }

    #[test]
    fn layers_without_base_and_incomplete_lvs_are_kept_apart() {
        let f = FakeLvm::with_pool("vg", "pool", 1 << 30);
        f.add_thin("Gone-1-0+1", 1 << 20, &["imgbased:layer"]);
        f.add_thin("imgbase-tmp-New-1-0", 1 << 20, &["imgbase:incomplete"]);
        let l = layout_of(&f, None).unwrap();
        assert!(l.bases.is_empty());
        assert_eq!(l.orphan_layers.len(), 1);
        assert_eq!(l.incomplete, ["imgbase-tmp-New-1-0"]);
    }

    #[test]
    fn find_answers_with_the_error_a_command_shows() {
        let f = imgbased_node();
        let l = layout_of(&f, None).unwrap();
        let err = |e: LayoutError| e.to_string();
        assert_eq!(
            l.find_base("ovirt-node-ng-4.5.0-0.20220307.0")
                .unwrap()
                .volume
                .lv,
            "ovirt-node-ng-4.5.0-0.20220307.0"
        );
        assert_eq!(
            err(l.find_base("Nope-1-0").unwrap_err()),
            "no base named Nope-1-0 in onn (see `imgbase layout --bases`)"
        );
        assert_eq!(
            err(l.find_layer("Nope-1-0+1").unwrap_err()),
            "no layer named Nope-1-0+1 in onn (see `imgbase layout --layers`)"
        );
        assert_eq!(
            l.find_base_of_layer("ovirt-node-ng-4.4.10-0.20220303.0+1")
                .unwrap()
                .volume
                .lv,
            "ovirt-node-ng-4.4.10-0.20220303.0"
        );
        assert_eq!(
            l.find_latest_layer().unwrap().volume.lv,
            "ovirt-node-ng-4.5.0-0.20220307.0+1"
        );
        // Booted from the installed root, not from a layer.
        let booted_root = layout_of(&f, Some(f.dev("root"))).unwrap();
        assert_eq!(
            err(booted_root.find_booted_layer().unwrap_err()),
            "the running system is not booted from a layer of onn (its root is on root)"
        );
        assert_eq!(
            err(l.find_booted_layer().unwrap_err()),
            "the running system is not booted from a layer of onn"
        );

        let empty = layout_of(&FakeLvm::with_pool("vg", "pool", 1 << 30), None).unwrap();
        assert_eq!(
            err(empty.find_latest_base().unwrap_err()),
            "no bases in vg yet"
        );
        assert_eq!(
            err(empty.find_latest_layer().unwrap_err()),
            "no layers in vg yet"
        );
    }

    #[test]
    fn vg_and_pool_problems_are_named() {
        let f = FakeLvm::with_pool("vg", "pool", 1 << 30);
        f.vg_tags.borrow_mut().clear();
        assert_eq!(layout_of(&f, None), Err(LayoutError::NoLayout));
        let recs = f.report(&Scope::All).unwrap();
        assert_eq!(
            Layout::from_report(&recs, Some("vg"), None),
            Err(LayoutError::NotALayout("vg".into()))
        );
        let f = FakeLvm::with_pool("vg", "pool", 1 << 30);
        f.change_tags("vg", "pool", &[], &["imgbased:pool".into()])
            .unwrap();
        assert_eq!(layout_of(&f, None), Err(LayoutError::NoPool("vg".into())));
    }
}
