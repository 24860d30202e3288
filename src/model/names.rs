//! Image names: `Name-Version-Release` bases, `N-V-R+K` layers, rpm version
//! ordering, and the LVM rules every logical-volume name must follow.
//!
//! Everything here is pure string handling so that it can be tested without
//! LVM and reused by every verb.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Longest LV name we accept. LVM itself allows more, but device-mapper
/// names are built as "VG-LV" with every '-' doubled, and imgbased kept LV
/// names to 55 characters so that those stay within the kernel's limit.
pub const MAX_LV_NAME_LEN: usize = 55;

/// Longest VG name LVM accepts (NAME_LEN less the terminating NUL).
pub const MAX_VG_NAME_LEN: usize = 127;

/// Characters LVM accepts in an LV or VG name, as shown in error messages.
const ALLOWED_CHARS: &str = "a-z A-Z 0-9 + _ . -";

/// Whole names LVM reserves for itself.
const RESERVED_NAMES: [&str; 4] = [".", "..", "snapshot", "pvmove"];

/// Prefixes LVM reserves (it creates such volumes internally).
const RESERVED_PREFIXES: [&str; 2] = ["pvmove", "snapshot"];

/// Substrings LVM reserves for its hidden sub-volumes (thin pool data,
/// mirror images, cache parts, ...).
const RESERVED_SUBSTRINGS: [&str; 14] = [
    "_cdata", "_cmeta", "_corig", "_iorig", "_mimage", "_mlog", "_pmspare", "_rimage", "_rmeta",
    "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
];

/// Why a name was rejected. Every message is one line and quotes the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid name {0:?}: a name must not be empty")]
    Empty(String),
    #[error("invalid name {name:?}: it is {len} characters long, the limit is {limit} characters")]
    TooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("invalid name {name:?}: character {ch:?} is not allowed (use {ALLOWED_CHARS})")]
    BadChar { name: String, ch: char },
    #[error("invalid name {0:?}: a name must not start with '-'")]
    LeadingHyphen(String),
    #[error("invalid name {0:?}: this name is reserved by LVM")]
    Reserved(String),
    #[error("invalid name {name:?}: names starting with {prefix:?} are reserved by LVM")]
    ReservedPrefix { name: String, prefix: &'static str },
    #[error("invalid name {name:?}: names containing {substring:?} are reserved by LVM")]
    ReservedSubstring {
        name: String,
        substring: &'static str,
    },
    #[error(
        "{0:?} is not Name-Version-Release: it needs two '-' separated parts after the name, e.g. Node-1.0-0"
    )]
    NotNvr(String),
    #[error(
        "{0:?} is not a layer name: it needs Name-Version-Release followed by +N (N >= 1, no leading zeros), e.g. Node-1.0-0+1"
    )]
    NotLayer(String),
    #[error("{0:?} is a layer name; a base name has no +N suffix")]
    LayerName(String),
}

// ---------------------------------------------------------------------------
// rpmvercmp
// ---------------------------------------------------------------------------

/// One piece of a version string as rpm sees it. Separators (anything that
/// is not an ASCII letter, digit, `~` or `^`) only split segments and are
/// otherwise ignored.
#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    /// `~`: a pre-release marker; sorts before everything, even the end.
    Tilde,
    /// `^`: a post-release marker; sorts after the end of the string but
    /// before any other segment.
    Caret,
    /// A run of ASCII letters, compared bytewise.
    Alpha(&'a [u8]),
    /// A run of ASCII digits with leading zeros removed, compared as a number
    /// of any size (longer is larger, then bytewise).
    Num(&'a [u8]),
}

/// Rank of a segment kind (None = the string has ended). Two segments of
/// different rank compare by rank alone; this table is the whole of rpm's
/// special-casing: `~` < end < `^` < letters < digits.
fn segment_rank(seg: Option<Segment<'_>>) -> u8 {
    match seg {
        Some(Segment::Tilde) => 0,
        None => 1,
        Some(Segment::Caret) => 2,
        Some(Segment::Alpha(_)) => 3,
        Some(Segment::Num(_)) => 4,
    }
}

/// Splits a version string into rpm segments.
struct Segments<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let is_separator = |b: &u8| !b.is_ascii_alphanumeric() && *b != b'~' && *b != b'^';
        let skip = self.rest.iter().take_while(|b| is_separator(b)).count();
        self.rest = &self.rest[skip..];
        let first = *self.rest.first()?;
        let run_len = |pred: fn(&u8) -> bool| self.rest.iter().take_while(|b| pred(b)).count();
        let (segment, len) = match first {
            b'~' => (Segment::Tilde, 1),
            b'^' => (Segment::Caret, 1),
            b if b.is_ascii_digit() => {
                let len = run_len(u8::is_ascii_digit);
                let digits = &self.rest[..len];
                let zeros = digits.iter().take_while(|b| **b == b'0').count();
                (Segment::Num(&digits[zeros..]), len)
            }
            _ => {
                let len = run_len(u8::is_ascii_alphabetic);
                (Segment::Alpha(&self.rest[..len]), len)
            }
        };
        self.rest = &self.rest[len..];
        Some(segment)
    }
}

/// Compares two version (or release) strings the way rpm does.
///
/// Both strings are cut into segments (digit runs, letter runs, `~`, `^`);
/// segments are compared pairwise: numbers numerically, letters bytewise,
/// a number beats letters, `~` loses to everything (even the end of the
/// other string) and `^` beats only the end of the other string. When one
/// string runs out of segments, the other one wins unless its next segment
/// is `~`. Separators never matter, so "2.0" == "2_0" and "1.0" == "1.00".
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let mut left = Segments { rest: a.as_bytes() };
    let mut right = Segments { rest: b.as_bytes() };
    loop {
        let (x, y) = (left.next(), right.next());
        if x.is_none() && y.is_none() {
            return Ordering::Equal;
        }
        let order = segment_rank(x)
            .cmp(&segment_rank(y))
            .then_with(|| match (x, y) {
                (Some(Segment::Alpha(p)), Some(Segment::Alpha(q))) => p.cmp(q),
                (Some(Segment::Num(p)), Some(Segment::Num(q))) => {
                    p.len().cmp(&q.len()).then_with(|| p.cmp(q))
                }
                _ => Ordering::Equal,
            });
        if order != Ordering::Equal {
            return order;
        }
    }
}

// ---------------------------------------------------------------------------
// Nvr
// ---------------------------------------------------------------------------

/// A base image name: `Name-Version-Release`, e.g. `ovirt-node-ng-4.5.0-0.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Nvr {
    pub name: String,
    pub version: String,
    pub release: String,
}

impl FromStr for Nvr {
    type Err = NameError;

    /// Splits on the last two '-', because package names often contain '-'
    /// while versions and releases never do.
    fn from_str(s: &str) -> Result<Self, NameError> {
        let not_nvr = || NameError::NotNvr(s.to_owned());
        let (rest, release) = s.rsplit_once('-').ok_or_else(not_nvr)?;
        let (name, version) = rest.rsplit_once('-').ok_or_else(not_nvr)?;
        if name.is_empty() || version.is_empty() || release.is_empty() {
            return Err(not_nvr());
        }
        Ok(Nvr {
            name: name.to_owned(),
            version: version.to_owned(),
            release: release.to_owned(),
        })
    }
}

impl fmt::Display for Nvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.name, self.version, self.release)
    }
}

impl Ord for Nvr {
    /// Newest-last order: version and release by rpm rules, then plain
    /// tie-breaks so that names rpm considers equal ("1.0" vs "1.00") still
    /// get a fixed order and `Ord` agrees with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        rpmvercmp(&self.version, &other.version)
            .then_with(|| rpmvercmp(&self.release, &other.release))
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.joined_bytes().cmp(other.joined_bytes()))
            // Only reachable for hand-built values whose fields contain '-'.
            .then_with(|| (&self.version, &self.release).cmp(&(&other.version, &other.release)))
    }
}

impl PartialOrd for Nvr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Nvr {
    /// The bytes of the Display form, without allocating.
    fn joined_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.name
            .bytes()
            .chain(*b"-")
            .chain(self.version.bytes())
            .chain(*b"-")
            .chain(self.release.bytes())
    }
}

// ---------------------------------------------------------------------------
// LayerName
// ---------------------------------------------------------------------------

/// A writable layer on top of a base: `N-V-R+K`, K >= 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct LayerName {
    pub base: Nvr,
    pub index: u32,
}

/// Splits `<base>+<index>` if the suffix is a canonical layer index:
/// ASCII digits, no sign, no leading zero, fits u32, >= 1. Leading zeros are
/// refused so that parsing and Display always give back the same LV name.
fn split_layer_suffix(s: &str) -> Option<(&str, u32)> {
    let (base, digits) = s.rsplit_once('+')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = digits.parse::<u32>().ok()?;
    Some((base, index))
}

impl FromStr for LayerName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let not_layer = || NameError::NotLayer(s.to_owned());
        let (base, index) = split_layer_suffix(s).ok_or_else(not_layer)?;
        let base = base.parse::<Nvr>().map_err(|_| not_layer())?;
        Ok(LayerName { base, index })
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.base, self.index)
    }
}

impl Ord for LayerName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.base
            .cmp(&other.base)
            .then_with(|| self.index.cmp(&other.index))
    }
}

impl PartialOrd for LayerName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------
// ImageName
// ---------------------------------------------------------------------------

/// Any image LV name: a base or one of its layers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageName {
    Base(Nvr),
    Layer(LayerName),
}

impl ImageName {
    /// The base this image is (or belongs to).
    pub fn base(&self) -> &Nvr {
        match self {
            ImageName::Base(nvr) => nvr,
            ImageName::Layer(layer) => &layer.base,
        }
    }

    pub fn as_layer(&self) -> Option<&LayerName> {
        match self {
            ImageName::Base(_) => None,
            ImageName::Layer(layer) => Some(layer),
        }
    }

    /// Sort key: a base counts as index 0 so it sorts right before its layers.
    fn sort_key(&self) -> (&Nvr, u32, bool) {
        match self {
            ImageName::Base(nvr) => (nvr, 0, false),
            ImageName::Layer(layer) => (&layer.base, layer.index, true),
        }
    }
}

impl FromStr for ImageName {
    type Err = NameError;

    /// A name is a layer iff it ends in a canonical `+K` and the rest is an
    /// NVR; anything else must be a base, so "Node-1.0+git-0" is a base with
    /// version "1.0+git".
    fn from_str(s: &str) -> Result<Self, NameError> {
        if let Ok(layer) = s.parse::<LayerName>() {
            return Ok(ImageName::Layer(layer));
        }
        s.parse::<Nvr>().map(ImageName::Base)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageName::Base(nvr) => nvr.fmt(f),
            ImageName::Layer(layer) => layer.fmt(f),
        }
    }
}

impl Ord for ImageName {
    /// `b < b+1 < b+2 < next base`. The trailing variant flag only matters
    /// for a hand-built layer with index 0, keeping `Ord` consistent with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for ImageName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Nvr> for ImageName {
    fn from(nvr: Nvr) -> Self {
        ImageName::Base(nvr)
    }
}

impl From<LayerName> for ImageName {
    fn from(layer: LayerName) -> Self {
        ImageName::Layer(layer)
    }
}

// ---------------------------------------------------------------------------
// Validation and helpers
// ---------------------------------------------------------------------------

/// Checks LVM's logical-volume name rules plus imgbased's length limit, so a
/// bad name is refused before anything is created.
pub fn validate_lv_name(name: &str) -> Result<(), NameError> {
    validate_lvm_name(name, MAX_LV_NAME_LEN)?;
    if RESERVED_NAMES.contains(&name) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Err(NameError::ReservedPrefix {
            name: name.to_owned(),
            prefix,
        });
    }
    if let Some(substring) = RESERVED_SUBSTRINGS.iter().find(|s| name.contains(**s)) {
        return Err(NameError::ReservedSubstring {
            name: name.to_owned(),
            substring,
        });
    }
    Ok(())
}

/// Checks LVM's volume-group name rules. VG names reach lvm's command
/// line, so one starting with '-' would be read as an option.
pub fn validate_vg_name(name: &str) -> Result<(), NameError> {
    validate_lvm_name(name, MAX_VG_NAME_LEN)?;
    if name == "." || name == ".." {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// The rules LV and VG names share: not empty, at most `limit`
/// characters, only ALLOWED_CHARS, no leading '-'.
fn validate_lvm_name(name: &str, limit: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty(name.to_owned()));
    }
    let len = name.chars().count();
    if len > limit {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len,
            limit,
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-');
    if let Some(ch) = name.chars().find(|c| !allowed(*c)) {
        return Err(NameError::BadChar {
            name: name.to_owned(),
            ch,
        });
    }
    if name.starts_with('-') {
        return Err(NameError::LeadingHyphen(name.to_owned()));
    }
    Ok(())
}

/// Parses a user-supplied name for a new base: it must be a valid LV name and
/// an NVR, and must not end in `+<digits>`, which is reserved for layers
/// (this also refuses look-alikes such as "+0" or "+01" that are not layers).
pub fn parse_new_base_name(s: &str) -> Result<Nvr, NameError> {
    validate_lv_name(s)?;
    if let Some((_, digits)) = s.rsplit_once('+')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(NameError::LayerName(s.to_owned()));
    }
    s.parse()
}

/// The next free layer index for `base`: one more than the highest index in
/// use by an existing layer of exactly this base or ever handed out
/// (`high_water`), so a removed layer's index is never reused.
///
/// `existing` should be every LV name in the VG; names that are not layers of
/// `base` (other bases, foreign volumes, a base that merely shares a string
/// prefix) are ignored. At `u32::MAX` the result saturates, so creating it
/// would fail on the existing volume rather than silently reuse it.
pub fn next_layer_index<'a>(
    base: &Nvr,
    existing: impl IntoIterator<Item = &'a str>,
    high_water: u32,
) -> u32 {
    existing
        .into_iter()
        .filter_map(|name| name.parse::<LayerName>().ok())
        .filter(|layer| layer.base == *base)
        .map(|layer| layer.index)
        .fold(high_water, u32::max)
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nvr(s: &str) -> Nvr {
        s.parse().unwrap()
    }

    fn image(s: &str) -> ImageName {
        s.parse().unwrap()
    }

    /// rpm's tests/rpmvercmp.at (the active cases), as (a, b, rpmvercmp(a, b)).
    const RPM_CASES: &[(&str, &str, i32)] = &[
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0", "1.0", 1),
        ("2.0.1", "2.0.1", 0),
        ("2.0", "2.0.1", -1),
        ("2.0.1", "2.0", 1),
        ("2.0.1a", "2.0.1a", 0),
        ("2.0.1a", "2.0.1", 1),
        ("2.0.1", "2.0.1a", -1),
        ("5.5p1", "5.5p1", 0),
        ("5.5p1", "5.5p2", -1),
        ("5.5p2", "5.5p1", 1),
        ("5.5p10", "5.5p10", 0),
        ("5.5p1", "5.5p10", -1),
        ("5.5p10", "5.5p1", 1),
        ("10xyz", "10.1xyz", -1),
        ("10.1xyz", "10xyz", 1),
        ("xyz10", "xyz10", 0),
        ("xyz10", "xyz10.1", -1),
        ("xyz10.1", "xyz10", 1),
        ("xyz.4", "xyz.4", 0),
        ("xyz.4", "8", -1),
        ("8", "xyz.4", 1),
        ("xyz.4", "2", -1),
        ("2", "xyz.4", 1),
        ("5.5p2", "5.6p1", -1),
        ("5.6p1", "5.5p2", 1),
        ("5.6p1", "6.5p1", -1),
        ("6.5p1", "5.6p1", 1),
        ("6.0.rc1", "6.0", 1),
        ("6.0", "6.0.rc1", -1),
        ("10b2", "10a1", 1),
        ("10a2", "10b2", -1),
        ("1.0aa", "1.0aa", 0),
        ("1.0a", "1.0aa", -1),
        ("1.0aa", "1.0a", 1),
        ("10.0001", "10.0001", 0),
        ("10.0001", "10.1", 0),
        ("10.1", "10.0001", 0),
        ("10.0001", "10.0039", -1),
        ("10.0039", "10.0001", 1),
        ("4.999.9", "5.0", -1),
        ("5.0", "4.999.9", 1),
        ("20101121", "20101121", 0),
        ("20101121", "20101122", -1),
        ("20101122", "20101121", 1),
        ("2_0", "2_0", 0),
        ("2.0", "2_0", 0),
        ("2_0", "2.0", 0),
        // RhBug:178798
        ("a", "a", 0),
        ("a+", "a+", 0),
        ("a+", "a_", 0),
        ("a_", "a+", 0),
        ("+a", "+a", 0),
        ("+a", "_a", 0),
        ("_a", "+a", 0),
        ("+_", "+_", 0),
        ("_+", "+_", 0),
        ("_+", "_+", 0),
        ("+", "_", 0),
        ("_", "+", 0),
        // tilde
        ("1.0~rc1", "1.0~rc1", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0~rc1", 1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~rc2", "1.0~rc1", 1),
        ("1.0~rc1~git123", "1.0~rc1~git123", 0),
        ("1.0~rc1~git123", "1.0~rc1", -1),
        ("1.0~rc1", "1.0~rc1~git123", 1),
        // caret
        ("1.0^", "1.0^", 0),
        ("1.0^", "1.0", 1),
        ("1.0", "1.0^", -1),
        ("1.0^git1", "1.0^git1", 0),
        ("1.0^git1", "1.0", 1),
        ("1.0", "1.0^git1", -1),
        ("1.0^git1", "1.0^git2", -1),
        ("1.0^git2", "1.0^git1", 1),
        ("1.0^git1", "1.01", -1),
        ("1.01", "1.0^git1", 1),
        ("1.0^20160101", "1.0^20160101", 0),
        ("1.0^20160101", "1.0.1", -1),
        ("1.0.1", "1.0^20160101", 1),
        ("1.0^20160101^git1", "1.0^20160101^git1", 0),
        ("1.0^20160102", "1.0^20160101^git1", 1),
        ("1.0^20160101^git1", "1.0^20160102", -1),
        // tilde and caret
        ("1.0~rc1^git1", "1.0~rc1^git1", 0),
        ("1.0~rc1^git1", "1.0~rc1", 1),
        ("1.0~rc1", "1.0~rc1^git1", -1),
        ("1.0^git1~pre", "1.0^git1~pre", 0),
        ("1.0^git1", "1.0^git1~pre", 1),
        ("1.0^git1~pre", "1.0^git1", -1),
        // a few of our own edge cases
        ("", "", 0),
        ("", "0", -1),
        ("", "~", 1),
        ("", "^", -1),
        ("1.", "1", 0),
        ("1.~", "1", -1),
        ("1.0", "1.00", 0),
        ("99999999999999999999", "100000000000000000000", -1),
    ];

    #[test]
    fn rpmvercmp_published_cases() {
        for &(a, b, expected) in RPM_CASES {
            let expected = expected.cmp(&0);
            assert_eq!(rpmvercmp(a, b), expected, "rpmvercmp({a:?}, {b:?})");
            assert_eq!(
                rpmvercmp(b, a),
                expected.reverse(),
                "rpmvercmp({b:?}, {a:?})"
            );
        }
    }

    #[test]
    fn nvr_parse_and_display() {
        let n = nvr("ovirt-node-ng-4.5.0-0.20220307.0");
        assert_eq!(n.name, "ovirt-node-ng");
        assert_eq!(n.version, "4.5.0");
        assert_eq!(n.release, "0.20220307.0");
        assert_eq!(n.to_string(), "ovirt-node-ng-4.5.0-0.20220307.0");
    }

    #[test]
    fn nvr_parse_errors() {
        for bad in ["", "Node", "Node-1", "-1.0-0", "Node--0", "Node-1.0-", "--"] {
            let err = bad.parse::<Nvr>().unwrap_err();
            assert_eq!(err, NameError::NotNvr(bad.to_owned()), "{bad:?}");
        }
        assert_eq!(
            "Node-1".parse::<Nvr>().unwrap_err().to_string(),
            "\"Node-1\" is not Name-Version-Release: it needs two '-' separated parts after the name, e.g. Node-1.0-0"
        );
    }

    #[test]
    fn nvr_ordering() {
        assert!(nvr("Node-13-0") > nvr("Node-2-0"));
        assert!(nvr("Node-1.0-10") > nvr("Node-1.0-9"));
        assert!(nvr("Node-1.0~rc1-0") < nvr("Node-1.0-0"));
        // Version beats name.
        assert!(nvr("Zeta-1.0-0") < nvr("Alpha-2.0-0"));
        // Equal under rpm, still distinct and deterministically ordered.
        let (a, b) = (nvr("Node-1.0-0"), nvr("Node-1.00-0"));
        assert_ne!(a.cmp(&b), Ordering::Equal);
        assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        assert_eq!(a.cmp(&a.clone()), Ordering::Equal);
    }

    #[test]
    fn layer_parse_and_order() {
        let l: LayerName = "ovirt-node-ng-4.5.0-0.20220307.0+1".parse().unwrap();
        assert_eq!(l.base, nvr("ovirt-node-ng-4.5.0-0.20220307.0"));
        assert_eq!(l.index, 1);
        assert_eq!(l.to_string(), "ovirt-node-ng-4.5.0-0.20220307.0+1");

        let nine: LayerName = "Node-1.0-0+9".parse().unwrap();
        let ten: LayerName = "Node-1.0-0+10".parse().unwrap();
        assert!(ten > nine);
        assert!(image("Node-1.0-0+10") > image("Node-1.0-0+9"));

        for bad in [
            "Node-1.0-0",
            "Node-1.0-0+",
            "Node-1.0-0+0",
            "Node-1.0-0+01",
            "Node-1.0-0+-1",
            "Node-1.0-0+4294967296",
            "Node-1+1",
        ] {
            assert_eq!(
                bad.parse::<LayerName>().unwrap_err(),
                NameError::NotLayer(bad.to_owned()),
                "{bad:?}"
            );
        }
        let max: LayerName = "Node-1.0-0+4294967295".parse().unwrap();
        assert_eq!(max.index, u32::MAX);
    }

    #[test]
    fn image_name_classification() {
        let layer = image("ovirt-node-ng-4.5.0-0.20220307.0+1");
        assert_eq!(layer.as_layer().map(|l| l.index), Some(1));
        assert_eq!(layer.base(), &nvr("ovirt-node-ng-4.5.0-0.20220307.0"));

        let base = image("Node-1.0+git-0");
        assert!(base.as_layer().is_none());
        assert_eq!(base.base().version, "1.0+git");

        // Not canonical layer suffixes: these are bases with a '+' in the release.
        for s in ["Node-1.0-0+0", "Node-1.0-0+01"] {
            let img = image(s);
            assert!(img.as_layer().is_none(), "{s:?}");
            assert_eq!(img.to_string(), s);
        }
        assert!("Node-1".parse::<ImageName>().is_err());
        assert!("Node-1+1".parse::<ImageName>().is_err());
    }

    #[test]
    fn image_name_ordering() {
        let mut names: Vec<ImageName> = [
            "Node-2.0-0",
            "Node-1.0-0+10",
            "Node-1.0-0",
            "Node-1.0-0+2",
            "Node-2.0-0+1",
            "Node-1.0-0+9",
            "Node-1.0-0+1",
        ]
        .iter()
        .map(|s| image(s))
        .collect();
        names.sort();
        let sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            sorted,
            [
                "Node-1.0-0",
                "Node-1.0-0+1",
                "Node-1.0-0+2",
                "Node-1.0-0+9",
                "Node-1.0-0+10",
                "Node-2.0-0",
                "Node-2.0-0+1",
            ]
        );
        // A hand-built layer with index 0 is still distinct from its base.
        let b = nvr("Node-1.0-0");
        let zero = ImageName::Layer(LayerName {
            base: b.clone(),
            index: 0,
        });
        assert_eq!(ImageName::Base(b).cmp(&zero), Ordering::Less);
    }

    #[test]
    fn validate_accepts_good_names() {
        for ok in [
            "Node-1.0-0",
            "ovirt-node-ng-4.5.0-0.20220307.0+1",
            "a",
            "A_b.c+d-e",
            "...",
            "mysnapshot",
            "x_tdat",
            &"a".repeat(MAX_LV_NAME_LEN),
        ] {
            assert_eq!(validate_lv_name(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn validate_rules_and_messages() {
        let msg = |s: &str| validate_lv_name(s).unwrap_err().to_string();

        assert_eq!(validate_lv_name(""), Err(NameError::Empty(String::new())));
        assert!(msg("").contains("must not be empty"));

        let long = "a".repeat(MAX_LV_NAME_LEN + 1);
        assert!(matches!(
            validate_lv_name(&long),
            Err(NameError::TooLong { len: 56, .. })
        ));
        assert!(msg(&long).contains("56 characters long, the limit is 55"));
        // Length is checked before characters.
        assert!(matches!(
            validate_lv_name(&" ".repeat(60)),
            Err(NameError::TooLong { .. })
        ));

        assert_eq!(
            msg("a b"),
            r#"invalid name "a b": character ' ' is not allowed (use a-z A-Z 0-9 + _ . -)"#
        );
        assert!(matches!(
            validate_lv_name("ok/é"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            validate_lv_name("é"),
            Err(NameError::BadChar { ch: 'é', .. })
        ));
        // Messages stay on one line even for hostile names.
        assert!(!msg("a\nb").contains('\n'));

        assert_eq!(
            validate_lv_name("-x"),
            Err(NameError::LeadingHyphen("-x".into()))
        );
        assert!(msg("-").contains("must not start with '-'"));

        for reserved in [".", "..", "snapshot", "pvmove"] {
            assert_eq!(
                validate_lv_name(reserved),
                Err(NameError::Reserved(reserved.into()))
            );
            assert!(msg(reserved).contains("reserved by LVM"));
        }

        assert_eq!(
            validate_lv_name("pvmove0"),
            Err(NameError::ReservedPrefix {
                name: "pvmove0".into(),
                prefix: "pvmove"
            })
        );
        assert!(msg("snapshot-1.0-0").contains(r#"names starting with "snapshot" are reserved"#));

        for sub in RESERVED_SUBSTRINGS {
            let name = format!("Node{sub}-1.0-0");
            assert_eq!(
                validate_lv_name(&name),
                Err(NameError::ReservedSubstring {
                    name: name.clone(),
                    substring: sub
                })
            );
            assert!(msg(&name).contains(&format!("names containing {sub:?} are reserved")));
        }
    }

    #[test]
    fn vg_names() {
        for ok in ["HostVG", "onn", "vg_0.a+b-c", "snapshot", "a_tdata", "..."] {
            assert_eq!(validate_vg_name(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(validate_vg_name(&"v".repeat(MAX_VG_NAME_LEN)), Ok(()));
        let long = "v".repeat(MAX_VG_NAME_LEN + 1);
        assert!(
            validate_vg_name(&long)
                .unwrap_err()
                .to_string()
                .contains("the limit is 127")
        );
        assert_eq!(
            validate_vg_name("-a"),
            Err(NameError::LeadingHyphen("-a".into()))
        );
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(validate_vg_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_base_names() {
        assert_eq!(
            parse_new_base_name("ovirt-node-ng-4.5.0-0.20220307.0"),
            Ok(nvr("ovirt-node-ng-4.5.0-0.20220307.0"))
        );
        assert_eq!(
            parse_new_base_name("Node-1.0+git-0"),
            Ok(nvr("Node-1.0+git-0"))
        );
        assert_eq!(
            parse_new_base_name("Node-1.0-0+1").unwrap_err().to_string(),
            r#""Node-1.0-0+1" is a layer name; a base name has no +N suffix"#
        );
        for lookalike in ["Node-1.0-0+0", "Node-1.0-0+01", "Node-1.0-0+99999999999"] {
            assert_eq!(
                parse_new_base_name(lookalike),
                Err(NameError::LayerName(lookalike.into()))
            );
        }
        assert_eq!(
            parse_new_base_name("Node-1"),
            Err(NameError::NotNvr("Node-1".into()))
        );
        assert!(matches!(
            parse_new_base_name("Node 1.0-0"),
            Err(NameError::BadChar { .. })
        ));
        assert!(matches!(
            parse_new_base_name("Node_tmeta-1.0-0"),
            Err(NameError::ReservedSubstring { .. })
        ));
    }

    #[test]
    fn next_layer_index_cases() {
        let base = nvr("Node-1.0-0");
        // No layers yet.
        assert_eq!(next_layer_index(&base, [], 0), 1);
        assert_eq!(next_layer_index(&base, ["Node-1.0-0"], 0), 1);
        // Gaps are not refilled.
        assert_eq!(
            next_layer_index(&base, ["Node-1.0-0", "Node-1.0-0+1", "Node-1.0-0+5"], 0),
            6
        );
        // Numeric, not string, maximum.
        assert_eq!(
            next_layer_index(&base, ["Node-1.0-0+9", "Node-1.0-0+10"], 0),
            11
        );
        // Foreign names and other bases (including a common string prefix).
        let existing = [
            "root",
            "swap",
            "pool00",
            "Node-1.0-0.1+3",
            "Node-1.0-00+7",
            "Node-1.0-0+01",
            "Other-1.0-0+8",
            "xNode-1.0-0+4",
            "Node-1.0-0+2",
        ];
        assert_eq!(next_layer_index(&base, existing, 0), 3);
        // The high-water mark wins when layers were removed.
        assert_eq!(next_layer_index(&base, ["Node-1.0-0+2"], 7), 8);
        assert_eq!(next_layer_index(&base, ["Node-1.0-0+9"], 7), 10);
        // Works with owned strings too.
        let owned = ["Node-1.0-0+3".to_string()];
        assert_eq!(
            next_layer_index(&base, owned.iter().map(String::as_str), 0),
            4
        );
        // Saturates instead of wrapping around to reuse index 0/1.
        assert_eq!(next_layer_index(&base, [], u32::MAX), u32::MAX);
    }

    fn arb_nvr() -> impl Strategy<Value = Nvr> {
        (
            "[A-Za-z][A-Za-z0-9_.+-]{0,15}",
            "[0-9a-z._+~^]{1,8}",
            "[0-9a-z._+~^]{1,8}",
        )
            .prop_map(|(name, version, release)| Nvr {
                name,
                version,
                release,
            })
    }

    fn arb_layer() -> impl Strategy<Value = LayerName> {
        (arb_nvr(), 1..=u32::MAX).prop_map(|(base, index)| LayerName { base, index })
    }

    proptest! {
        #[test]
        fn nvr_round_trips(n in arb_nvr()) {
            prop_assert_eq!(n.to_string().parse::<Nvr>(), Ok(n));
        }

        #[test]
        fn layer_round_trips(l in arb_layer()) {
            let s = l.to_string();
            prop_assert_eq!(s.parse::<LayerName>(), Ok(l.clone()));
            prop_assert_eq!(s.parse::<ImageName>(), Ok(ImageName::Layer(l)));
        }

        #[test]
        fn image_name_display_round_trips(s in "[A-Za-z0-9_.+-]{0,24}") {
            if let Ok(img) = s.parse::<ImageName>() {
                prop_assert_eq!(img.to_string(), s);
            }
        }

        #[test]
        fn rpmvercmp_reflexive_and_antisymmetric(
            a in "[0-9a-z.~^_+]{0,12}",
            b in "[0-9a-z.~^_+]{0,12}",
        ) {
            prop_assert_eq!(rpmvercmp(&a, &a), Ordering::Equal);
            prop_assert_eq!(rpmvercmp(&a, &b), rpmvercmp(&b, &a).reverse());
        }

        #[test]
        fn rpmvercmp_transitive(
            a in "[0-9a.~^_]{0,6}",
            b in "[0-9a.~^_]{0,6}",
            c in "[0-9a.~^_]{0,6}",
        ) {
            let le = |x: &str, y: &str| rpmvercmp(x, y) != Ordering::Greater;
            if le(&a, &b) && le(&b, &c) {
                prop_assert!(le(&a, &c));
            }
            if rpmvercmp(&a, &b) == Ordering::Equal && rpmvercmp(&b, &c) == Ordering::Equal {
                prop_assert_eq!(rpmvercmp(&a, &c), Ordering::Equal);
            }
        }

        #[test]
        fn image_ord_agrees_with_eq(a in arb_layer(), b in arb_layer(), base in any::<bool>()) {
            let a = if base { ImageName::Base(a.base) } else { ImageName::Layer(a) };
            let b = ImageName::Layer(b);
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        }
    }
}
