//! The library's typed error: every refusal names what to do instead.

use crate::model::layout::LayoutError;
use crate::model::names::NameError;
use crate::model::size::SizeError;
use crate::sys::fs::FsError;
use crate::sys::lock::LockError;
use crate::sys::lvm::LvmError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Size(#[from] SizeError),
    #[error(transparent)]
    Lvm(#[from] LvmError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Images(#[from] crate::sys::images::ImagesError),
    #[error(transparent)]
    Fetch(#[from] crate::sys::fetch::FetchError),
    #[error(transparent)]
    Boot(#[from] crate::boot::BootError),
    #[error(transparent)]
    Journal(#[from] crate::plan::journal::JournalError),
    #[error(transparent)]
    Tree(#[from] crate::sys::tree::TreeError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("no base or layer named {name} in {vg} (see `imgbase layout`)")]
    UnknownImage { name: String, vg: String },
    #[error("an LV named {name} already exists in {vg}: choose another name")]
    NameTaken { name: String, vg: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Admission(String),
    #[error(
        "{failed}{}",
        if undo_failures.is_empty() {
            "; everything this run changed was undone".to_string()
        } else {
            format!(
                "; undoing also failed: {} (fix that, then run `imgbase recover`)",
                undo_failures.join("; ")
            )
        }
    )]
    Step {
        failed: String,
        undo_failures: Vec<String>,
    },
    /// A step failed after the plan's point of no return: what came before
    /// cannot be taken back, so the rest is done later.
    #[error(
        "{failed}; the operation is past its point of no return and stays in the journal: fix \
         the cause, then `imgbase recover` finishes it"
    )]
    Unfinished { failed: String },
    #[error(
        "an interrupted operation ({summary}) could not be recovered: {failed}; fix the cause, \
         then run `imgbase recover`"
    )]
    Recovery { summary: String, failed: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
