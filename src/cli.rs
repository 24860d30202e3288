//! The command line, spelled as imgbased spells it (`imgbase layout --init`,
//! `base --add`, `layer --add`, …) so scripts written for it keep working.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "imgbase",
    version,
    about = "Manage the host OS as LVM thin bases and bootable layers",
    long_about = "imgbase keeps each OS version as a read-only LVM thin volume (a base) and \
                  runs the node from writable thin snapshots of it (layers). It reads and \
                  writes the same LV tags as oVirt's imgbased.",
    after_help = "Examples:\n  imgbase layout\n  imgbase layout --init --from HostVG/root --nvr Node-1.0-0\n  \
                  imgbase base --add Node-2.0-0 --size 10G\n  imgbase layer --add Node-2.0-0\n  imgbase boot --set-default Node-2.0-0+1\n  \
                  imgbase --dry-run --json layer --remove Node-1.0-0+1\n  imgbase recover\n  imgbase w"
)]
pub struct Cli {
    /// Volume group to manage [default: the one tagged imgbased:vg]
    #[arg(long, global = true, value_name = "VG", value_parser = vg_name)]
    pub vg: Option<String>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Print the plan of a changing command and change nothing
    #[arg(long, global = true, visible_alias = "dry")]
    pub dry_run: bool,
    /// Log every step and external command to stderr
    #[arg(long, global = true)]
    pub debug: bool,
    /// Root of the running system, to find the booted layer
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Seconds to wait for another imgbase operation to finish
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 5,
        env = "IMGBASE_LOCK_WAIT"
    )]
    pub lock_wait: u64,
    /// Lock file that keeps operations one at a time
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "/run/imgbase/imgbase.lock",
        env = "IMGBASE_LOCK_FILE",
        hide = true
    )]
    pub lock_file: PathBuf,
    /// Progress of long writes on stderr: a bar on a terminal, or JSON lines
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: crate::sys::progress::ProgressMode,
    /// Where downloaded images are cached, by digest
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/cache/imgbase",
        env = "IMGBASE_CACHE_DIR",
        hide_short_help = true
    )]
    pub cache_dir: PathBuf,
    /// Where the journal of operations is kept (`DIR/journal/`)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/imgbase",
        env = "IMGBASE_STATE_DIR",
        hide_short_help = true
    )]
    pub state_dir: PathBuf,
    /// The /boot to write kernels and boot entries into
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/boot",
        env = "IMGBASE_BOOT_DIR"
    )]
    pub boot_dir: PathBuf,
    /// Boot loader to write entries for [default: detected under --boot-dir;
    /// none: manage no boot entries]
    #[arg(
        long,
        global = true,
        value_name = "LOADER",
        default_value = "auto",
        env = "IMGBASE_LOADER",
        value_parser = ["auto", "grub", "grub-bls", "systemd-boot", "none"]
    )]
    pub loader: String,
    /// imgbase's settings (TOML; a missing file means the defaults)
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = crate::config::DEFAULT_PATH,
        env = "IMGBASE_CONFIG",
        hide_short_help = true
    )]
    pub config: PathBuf,
    /// The lvm binary (tests point it at a wrapper)
    #[arg(
        long,
        global = true,
        default_value = "lvm",
        env = "IMGBASE_LVM",
        hide = true
    )]
    pub lvm: String,
    #[command(subcommand)]
    pub command: Command,
}

/// `--vg` reaches lvm's command line: refuse at parse time anything LVM
/// would not take as a VG name (e.g. `-a`, read as an option).
fn vg_name(s: &str) -> Result<String, String> {
    crate::model::names::validate_vg_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| format!("not a volume group name LVM accepts: {e}"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the bases and layers, or set up a layout on an installed root
    Layout(LayoutArgs),
    /// Add, remove and query bases (read-only OS images)
    Base(BaseArgs),
    /// Add, remove and query layers (writable snapshots of a base)
    Layer(LayerArgs),
    /// List, choose and (re)write the layers' boot entries
    Boot(BootArgs),
    /// Report boot entries without LVs, layers without entries, orphan
    /// files under /boot/imgbase, unfinished LVs and operations, a thin
    /// pool fuller than --pool-threshold, layers whose base is gone and
    /// unresolved update conflicts (/etc/*.imgnew) (exit 1 if any)
    #[command(
        after_help = "Examples:\n  imgbase check\n  imgbase --json check --pool-threshold 90"
    )]
    Check(CheckArgs),
    /// Finish or undo an operation a crash or a kill interrupted, and
    /// clear what no operation claims (temporary LVs, unfinished tags,
    /// leftover kernel folders, stale mounts). Every changing command does
    /// this first; run it alone to see what it does.
    Recover,
    /// Install a new OS version: a base from IMAGE, a first layer on it
    /// with the admin's configuration carried over (/etc merged three-way,
    /// accounts by name, /var), booted as a trial at the next boot and the
    /// default once it is up (`imgbase bless`)
    #[command(
        after_help = "Examples:\n  imgbase update --dry-run /srv/images/node-2.0-0.squashfs\n  \
                  imgbase update https://images.example.com/node-2.0-0.qcow2\n  \
                  imgbase update --format liveimg node-2.0-0.squashfs\n  \
                  imgbase --json update node-2.0-0.tar.zst"
    )]
    Update(UpdateArgs),
    /// Show the admin's changes to /etc of a layer (against its base), or
    /// with --against what an update to IMAGE or BASE would do with them
    #[command(
        after_help = "Examples:\n  imgbase diff\n  imgbase diff Node-1.0-0+1 --json\n  \
                  imgbase diff --against node-2.0-0.squashfs\n  imgbase diff --against Node-2.0-0"
    )]
    Diff(DiffArgs),
    /// Say which layer the running system is on
    W,
    /// Boot the previous layer (or --to LAYER) by default from now on
    #[command(
        after_help = "Examples:\n  imgbase rollback\n  imgbase --dry-run rollback --to Node-1.0-0+1"
    )]
    Rollback(RollbackArgs),
    /// Remove old bases and their layers, keeping the newest --keep bases
    /// and any base whose layer is booted, the default, next or pinned
    #[command(after_help = "Examples:\n  imgbase --dry-run gc\n  imgbase gc --keep 3")]
    Gc(GcArgs),
    /// End a trial boot; run at boot by imgbase-bless.service. A layer on
    /// trial that is booted and reached boot-complete.target becomes the
    /// default; one that did not (or that grub found out of tries) is
    /// recorded as failed, the default stays, and the node reboots into it.
    /// Exits 0 when there is nothing to do.
    #[command(after_help = "Examples:\n  imgbase bless\n  imgbase --dry-run bless --no-reboot")]
    Bless(BlessArgs),
    /// Print one status line for a login banner (always exits 0)
    #[command(after_help = "Examples:\n  imgbase motd\n  imgbase --json motd")]
    Motd(CheckArgs),
    /// Write the man page and shell completions (for packaging)
    #[command(hide = true)]
    Docs {
        /// Directory to write into
        #[arg(long, default_value = "target/docs")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").args(["init", "init_nvr", "bases", "layers", "free_space"])))]
pub struct LayoutArgs {
    /// Adopt the installed root (a thin LV) as the first base and layer
    #[arg(long)]
    pub init: bool,
    /// Same as --init --nvr NVR (imgbased's spelling)
    #[arg(long, value_name = "NVR")]
    pub init_nvr: Option<String>,
    /// With --init: the root to adopt: VG/LV, /dev/…, or a mount point
    #[arg(long, value_name = "SOURCE", default_value = "/")]
    pub from: String,
    /// With --init: Name-Version-Release of the first base [default: read
    /// from usr/share/imgbase/build/meta/nvr in the root]
    #[arg(long, value_name = "NVR", conflicts_with = "init_nvr")]
    pub nvr: Option<String>,
    /// List the bases, oldest first
    #[arg(long)]
    pub bases: bool,
    /// List the layers, oldest first
    #[arg(long)]
    pub layers: bool,
    /// Print the free data space of the thin pool
    #[arg(long)]
    pub free_space: bool,
    /// Unit for --free-space: b, k, m, g, t
    #[arg(long, default_value = "m", value_parser = ["b", "k", "m", "g", "t"])]
    pub units: String,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true)
    .args(["add", "remove", "latest", "of_layer", "export"])))]
pub struct BaseArgs {
    /// Add a base named NVR (Name-Version-Release): empty with --size, or
    /// filled from an image with --from (the NVR may then come from the image)
    #[arg(long, value_name = "NVR", num_args = 0..=1, default_missing_value = "")]
    pub add: Option<String>,
    /// With --add: the OS image: a liveimg squashfs, an ext4/xfs image, a
    /// qemu disk image (qcow2, vmdk, …), a tar[.gz|.zst] root tree, an
    /// imgbase bundle, or an http(s) URL of one
    #[arg(long, value_name = "IMAGE", requires = "add")]
    pub from: Option<String>,
    /// Size of the new base, lvm-style (10G, 512M; no unit means MiB)
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// With --from: the image's expected sha256 [default: from the
    /// SHA256SUMS beside the image; for a URL it must be there]
    #[arg(
        long,
        value_name = "HEX",
        requires = "from",
        conflicts_with = "no_verify"
    )]
    pub sha256: Option<String>,
    /// With --from: import without a checksum to compare against (an image
    /// from a URL is otherwise refused when its SHA256SUMS cannot be fetched)
    #[arg(long, requires = "from")]
    pub no_verify: bool,
    /// With --from: import an image that another base already holds, under
    /// the new name
    #[arg(long, requires = "from")]
    pub force: bool,
    /// With --from: write the whole image, not just its difference from the
    /// previous base
    #[arg(long, requires = "from")]
    pub no_delta: bool,
    /// Write a base as an imgbase bundle (.tar.zst) to --output
    #[arg(long, value_name = "BASE", requires = "output")]
    pub export: Option<String>,
    /// With --export: the bundle file to write
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Remove a base and all of its layers
    #[arg(long, value_name = "BASE")]
    pub remove: Option<String>,
    /// Print the newest base
    #[arg(long)]
    pub latest: bool,
    /// Print the base a layer belongs to
    #[arg(long, value_name = "LAYER")]
    pub of_layer: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true)
    .args(["add", "remove", "latest", "current", "volume_path", "pin", "unpin"])))]
#[command(after_help = "Examples:\n  imgbase layer --add\n  imgbase layer --pin Node-1.0-0+1")]
pub struct LayerArgs {
    /// Add a layer on BASE or LAYER [default: on the newest base]
    #[arg(long, value_name = "BASE|LAYER", num_args = 0..=1, default_missing_value = "")]
    pub add: Option<String>,
    /// Remove a layer
    #[arg(long, value_name = "LAYER")]
    pub remove: Option<String>,
    /// Print the newest layer
    #[arg(long)]
    pub latest: bool,
    /// Print the layer the running system is booted from
    #[arg(long)]
    pub current: bool,
    /// Print the device path of a layer
    #[arg(long, value_name = "LAYER")]
    pub volume_path: Option<String>,
    /// Pin a layer: `imgbase gc` keeps it and its base
    #[arg(long, value_name = "LAYER")]
    pub pin: Option<String>,
    /// Unpin a layer pinned with --pin
    #[arg(long, value_name = "LAYER")]
    pub unpin: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true)
    .args(["list", "get_default", "set_default", "next", "setup"])))]
pub struct BootArgs {
    /// List imgbase's boot entries (* default, > next boot only)
    #[arg(long)]
    pub list: bool,
    /// Print the layer booted by default
    #[arg(long)]
    pub get_default: bool,
    /// Boot LAYER by default from now on (ends any trial)
    #[arg(long, value_name = "LAYER")]
    pub set_default: Option<String>,
    /// With --set-default: boot LAYER as a trial ([boot] tries in
    /// imgbase.conf); `imgbase bless` makes it the default once the node
    /// has reached boot-complete.target
    #[arg(long, requires = "set_default")]
    pub trial: bool,
    /// Boot LAYER at the next boot only, then the default again
    #[arg(long, value_name = "LAYER")]
    pub next: Option<String>,
    /// Write (or rewrite) the kernels and entries of LAYER [default: of
    /// every layer], and install grub's /etc/grub.d script
    #[arg(long, value_name = "LAYER", num_args = 0..=1, default_missing_value = "")]
    pub setup: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The new OS image: every kind `base --add --from` takes (a liveimg
    /// squashfs, an ext4/xfs image, a qemu disk image, a tar root tree, an
    /// imgbase bundle), or an http(s) URL of one
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The image's kind; imgbased's `--format liveimg` is taken, and
    /// every kind is detected whatever is given
    #[arg(long, value_name = "FORMAT", default_value = "auto",
          value_parser = ["auto", "liveimg"])]
    pub format: String,
    /// Name-Version-Release of the new base [default: recorded in the image]
    #[arg(long, value_name = "NVR")]
    pub nvr: Option<String>,
    /// The image's expected sha256 [default: from the SHA256SUMS beside it]
    #[arg(long, value_name = "HEX", conflicts_with = "no_verify")]
    pub sha256: Option<String>,
    /// Install without a checksum to compare against
    #[arg(long)]
    pub no_verify: bool,
    /// Write the whole image, not just its difference from the newest base
    #[arg(long)]
    pub no_delta: bool,
    /// Install an image of another product, one not newer than the
    /// newest base, or one whose layer failed its trial boot here
    #[arg(long)]
    pub force: bool,
    /// Make the new layer the default at once, not after a trial boot
    /// (`imgbase bless`); [boot] trial = false in imgbase.conf does the same
    #[arg(long)]
    pub no_trial: bool,
}

#[derive(Debug, Args)]
pub struct BlessArgs {
    /// When the booted trial failed, do not reboot into the default layer
    #[arg(long)]
    pub no_reboot: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The layer [default: the booted one, else the default entry's, else
    /// the newest]
    #[arg(value_name = "LAYER")]
    pub layer: Option<String>,
    /// Preview an update: what the merge would do with the layer's /etc
    /// against this image (file or URL) or base
    #[arg(long, value_name = "IMAGE|BASE")]
    pub against: Option<String>,
    /// With --against IMAGE: compare without a checksum to verify
    #[arg(long, requires = "against")]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Thin pool data or metadata usage (percent) above which it is a
    /// problem [default: update.pool_threshold in imgbase.conf, else 80]
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    pub pool_threshold: Option<f64>,
}

fn percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s} is not a percentage from 0 to 100")),
    }
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The layer to boot by default [default: the one before the current
    /// default, oldest base first]
    #[arg(long, value_name = "LAYER")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How many of the newest bases to keep (at least 1) [default:
    /// update.bases_to_keep in imgbase.conf, else 2]
    #[arg(long, value_name = "N", value_parser = keep_count)]
    pub keep: Option<usize>,
}

fn keep_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s} is not a number of bases of at least 1")),
    }
}
