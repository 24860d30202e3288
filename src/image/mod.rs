//! OS images as input for a new base: what kind of file an image is, its
//! digest, the safety of a tar root tree, imgbase's own bundle format, and
//! writing a stream into a thin LV so the pool allocates only real data.
//!
//! Everything here works on plain files and streams and needs no root: a
//! regular file stands in for the block device in tests. Mounting, LVM and
//! extraction are the callers' business.

pub mod bundle;
pub mod detect;
pub mod digest;
pub mod sparse;
pub mod tarball;

use std::io;
use std::path::PathBuf;

use crate::model::size::human;

/// Why an image cannot be used; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "unknown image format of {path}{}: expected a squashfs liveimg, an ext4/xfs image, \
         a qemu-img disk image (qcow2, vmdk, ...), a tar/tar.gz/tar.zst root tree or an \
         imgbase bundle",
        if detail.is_empty() { String::new() } else { format!(" ({detail})") }
    )]
    UnknownFormat { path: PathBuf, detail: String },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "bad sha256 digest {0:?}: expected 64 hex digits, optionally prefixed with \"sha256:\""
    )]
    BadDigest(String),
    #[error("{sums} does not list {name}: add its sha256 there, or give the digest explicitly")]
    NotInSums { sums: PathBuf, name: String },
    #[error("{sums}: {reason}")]
    BadSums { sums: PathBuf, reason: String },
    #[error(
        "{what} has sha256 {actual}, expected {expected}: it is corrupt or not the image meant; \
         fetch it again"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error(
        "the image is larger than its target: it holds {}{} ({size} bytes), the target only {} \
         ({limit} bytes); give the new base more space",
        if *exact { "" } else { "more than " },
        human(*size),
        human(*limit)
    )]
    TooLarge { size: u64, limit: u64, exact: bool },
    #[error("reading the image at byte {offset}: {source}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("writing the target at byte {offset}: {source}")]
    Write {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("refusing tar entry {entry:?}: {reason}; rebuild the tarball from inside the root")]
    UnsafeTarEntry { entry: String, reason: String },
    #[error("cannot read the tar stream after {entries} entries: {source}; is the file complete?")]
    Tar {
        entries: u64,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid imgbase bundle: {reason}")]
    BadBundle { path: PathBuf, reason: String },
    #[error(
        "{path} is an imgbase bundle of format {format}, but this imgbase reads only format \
         {supported}: use a newer imgbase"
    )]
    BundleFormat {
        path: PathBuf,
        format: u32,
        supported: u32,
    },
}

impl ImageError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { what, path, source }
    }
}
