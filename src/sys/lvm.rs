//! Everything imgbase asks of LVM, behind one trait: the `lvm` command-line
//! tools (the only maintained interface to LVM metadata) in production, an
//! in-memory volume group in tests (`super::fakes::FakeLvm`).

use serde::{Deserialize, Deserializer, Serialize};

use super::cmd::{Cmd, CmdError, Runner};

/// The `lvs` fields imgbase reads; named fields only (`*_all` can emit
/// invalid JSON), always the same set so one call answers every question.
pub const REPORT_FIELDS: &str = "lv_name,vg_name,vg_tags,vg_free,lv_attr,lv_size,segtype,\
pool_lv,origin,lv_tags,data_percent,metadata_percent,lv_metadata_size,\
lv_kernel_major,lv_kernel_minor,lv_path";

/// Which logical volumes one report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every LV of the VGs tagged `imgbased:vg`.
    TaggedVgs,
    /// Every LV of one named VG.
    Vg(String),
    /// Every LV on the host (used to find a root before any tag exists).
    All,
}

/// One row of the `lvs` report, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LvRecord {
    #[serde(rename = "lv_name")]
    pub name: String,
    #[serde(rename = "vg_name")]
    pub vg: String,
    #[serde(deserialize_with = "de_list")]
    pub vg_tags: Vec<String>,
    #[serde(deserialize_with = "de_u64_or_zero")]
    pub vg_free: u64,
    #[serde(rename = "lv_attr")]
    pub attr: String,
    #[serde(rename = "lv_size", deserialize_with = "de_u64_or_zero")]
    pub size: u64,
    pub segtype: String,
    #[serde(rename = "pool_lv", deserialize_with = "de_opt_string")]
    pub pool: Option<String>,
    #[serde(deserialize_with = "de_opt_string")]
    pub origin: Option<String>,
    #[serde(rename = "lv_tags", deserialize_with = "de_list")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "de_opt_f64")]
    pub data_percent: Option<f64>,
    #[serde(deserialize_with = "de_opt_f64")]
    pub metadata_percent: Option<f64>,
    #[serde(rename = "lv_metadata_size", deserialize_with = "de_opt_u64")]
    pub metadata_size: Option<u64>,
    #[serde(rename = "lv_kernel_major", deserialize_with = "de_opt_u32")]
    pub kernel_major: Option<u32>,
    #[serde(rename = "lv_kernel_minor", deserialize_with = "de_opt_u32")]
    pub kernel_minor: Option<u32>,
    #[serde(rename = "lv_path")]
    pub path: String,
}

impl LvRecord {
    fn attr_char(&self, i: usize) -> char {
        self.attr.chars().nth(i).unwrap_or('-')
    }
    pub fn is_thin_pool(&self) -> bool {
        self.segtype == "thin-pool"
    }
    pub fn is_thin(&self) -> bool {
        self.segtype == "thin"
    }
    pub fn is_read_only(&self) -> bool {
        self.attr_char(1) == 'r'
    }
    pub fn is_active(&self) -> bool {
        self.attr_char(4) == 'a'
    }
    pub fn skips_activation(&self) -> bool {
        self.attr_char(9) == 'k'
    }
    /// Held open (mounted, or in use by a process) when the report ran.
    pub fn is_open(&self) -> bool {
        self.attr_char(5) == 'o'
    }
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
    /// The value of the first `prefix<value>` tag, e.g. `imgbase:last-layer=`.
    pub fn tag_value(&self, prefix: &str) -> Option<&str> {
        self.tags.iter().find_map(|t| t.strip_prefix(prefix))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LvmError {
    #[error("volume group {0} not found (list them with `vgs`)")]
    VgNotFound(String),
    #[error("{0}")]
    Command(#[from] CmdError),
    #[error("unreadable `lvs` report: {0}")]
    Report(String),
    #[error("{cmd} failed: {message}")]
    Failed { cmd: String, message: String },
}

/// What imgbase needs from LVM. Every call is one `lvm` process.
pub trait Lvm {
    /// The one discovery query of a command.
    fn report(&self, scope: &Scope) -> Result<Vec<LvRecord>, LvmError>;
    /// A new thin LV of `size` bytes in `vg/pool`, tagged at birth.
    fn create_thin(
        &self,
        vg: &str,
        pool: &str,
        lv: &str,
        size: u64,
        tags: &[String],
    ) -> Result<(), LvmError>;
    /// A writable thin snapshot of `vg/origin`, without activation skip,
    /// active.
    fn snapshot(&self, vg: &str, origin: &str, lv: &str, tags: &[String]) -> Result<(), LvmError>;
    fn rename(&self, vg: &str, from: &str, to: &str) -> Result<(), LvmError>;
    /// Add and remove LV tags in one metadata commit.
    fn change_tags(
        &self,
        vg: &str,
        lv: &str,
        add: &[String],
        del: &[String],
    ) -> Result<(), LvmError>;
    fn change_vg_tags(&self, vg: &str, add: &[String], del: &[String]) -> Result<(), LvmError>;
    fn set_read_only(&self, vg: &str, lv: &str, read_only: bool) -> Result<(), LvmError>;
    fn set_activation_skip(&self, vg: &str, lv: &str, skip: bool) -> Result<(), LvmError>;
    /// Activation ignores the skip flag: imgbase means it when it asks.
    fn set_active(&self, vg: &str, lv: &str, active: bool) -> Result<(), LvmError>;
    fn remove(&self, vg: &str, lv: &str) -> Result<(), LvmError>;
    /// Grow an LV to `size` bytes.
    fn extend(&self, vg: &str, lv: &str, size: u64) -> Result<(), LvmError>;
}

/// The real LVM: `lvm <subcommand> …` with argument vectors.
pub struct LvmCli<'r> {
    runner: &'r dyn Runner,
    /// The `lvm` binary; tests point this at a counting wrapper.
    program: String,
}

impl<'r> LvmCli<'r> {
    pub fn new(runner: &'r dyn Runner, program: impl Into<String>) -> Self {
        LvmCli {
            runner,
            program: program.into(),
        }
    }

    fn lvm(&self, sub: &str) -> Cmd {
        Cmd::new(&self.program).arg(sub)
    }

    fn exec(&self, cmd: Cmd) -> Result<(), LvmError> {
        self.runner.run(&cmd)?;
        Ok(())
    }
}

fn full(vg: &str, lv: &str) -> String {
    format!("{vg}/{lv}")
}

fn tag_args(add: &[String], del: &[String]) -> Vec<String> {
    let mut args = Vec::new();
    for t in add {
        args.push("--addtag".into());
        args.push(t.clone());
    }
    for t in del {
        args.push("--deltag".into());
        args.push(t.clone());
    }
    args
}

impl Lvm for LvmCli<'_> {
    fn report(&self, scope: &Scope) -> Result<Vec<LvRecord>, LvmError> {
        let mut cmd = self.lvm("lvs").args([
            "--reportformat",
            "json",
            // Messages go into the JSON "log" array instead of polluting stdout.
            "--config",
            "log/report_command_log=1",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            REPORT_FIELDS,
        ]);
        cmd = match scope {
            Scope::TaggedVgs => cmd.args(["-S", "vg_tags=imgbased:vg"]),
            Scope::Vg(vg) => cmd.arg(vg.as_str()),
            Scope::All => cmd,
        };
        let out = self.runner.output(&cmd)?;
        let parsed = parse_report(&out.stdout);
        if out.code != 0 {
            let message = parsed
                .as_ref()
                .ok()
                .and_then(|r| r.errors.first().cloned())
                .unwrap_or_else(|| super::cmd::tail(&out.stderr));
            if let Scope::Vg(vg) = scope
                && message.contains("not found")
            {
                return Err(LvmError::VgNotFound(vg.clone()));
            }
            return Err(LvmError::Failed {
                cmd: cmd.display(),
                message,
            });
        }
        Ok(parsed?.lvs)
    }

    fn create_thin(
        &self,
        vg: &str,
        pool: &str,
        lv: &str,
        size: u64,
        tags: &[String],
    ) -> Result<(), LvmError> {
        self.exec(
            self.lvm("lvcreate")
                .args(["-y", "--type", "thin", "-V", &format!("{size}b"), "-n", lv])
                .args(tag_args(tags, &[]))
                .arg(full(vg, pool)),
        )
    }

    fn snapshot(&self, vg: &str, origin: &str, lv: &str, tags: &[String]) -> Result<(), LvmError> {
        // -kn: a thin snapshot would otherwise inherit activation skip;
        // -ay then activates it in the same process.
        self.exec(
            self.lvm("lvcreate")
                .args(["-y", "-s", "-kn", "-ay", "-n", lv])
                .args(tag_args(tags, &[]))
                .arg(full(vg, origin)),
        )
    }

    fn rename(&self, vg: &str, from: &str, to: &str) -> Result<(), LvmError> {
        self.exec(self.lvm("lvrename").args([vg, from, to]))
    }

    fn change_tags(
        &self,
        vg: &str,
        lv: &str,
        add: &[String],
        del: &[String],
    ) -> Result<(), LvmError> {
        self.exec(
            self.lvm("lvchange")
                .args(tag_args(add, del))
                .arg(full(vg, lv)),
        )
    }

    fn change_vg_tags(&self, vg: &str, add: &[String], del: &[String]) -> Result<(), LvmError> {
        self.exec(self.lvm("vgchange").args(tag_args(add, del)).arg(vg))
    }

    fn set_read_only(&self, vg: &str, lv: &str, read_only: bool) -> Result<(), LvmError> {
        let p = if read_only { "r" } else { "rw" };
        self.exec(self.lvm("lvchange").args(["-p", p, &full(vg, lv)]))
    }

    fn set_activation_skip(&self, vg: &str, lv: &str, skip: bool) -> Result<(), LvmError> {
        let k = if skip { "y" } else { "n" };
        self.exec(self.lvm("lvchange").args(["-k", k, &full(vg, lv)]))
    }

    fn set_active(&self, vg: &str, lv: &str, active: bool) -> Result<(), LvmError> {
        let cmd = if active {
            self.lvm("lvchange").args(["-ay", "-K", &full(vg, lv)])
        } else {
            self.lvm("lvchange").args(["-an", &full(vg, lv)])
        };
        self.exec(cmd)
    }

    fn remove(&self, vg: &str, lv: &str) -> Result<(), LvmError> {
        self.exec(self.lvm("lvremove").args(["-y", &full(vg, lv)]))
    }

    fn extend(&self, vg: &str, lv: &str, size: u64) -> Result<(), LvmError> {
        self.exec(
            self.lvm("lvextend")
                .args(["-L", &format!("{size}b"), &full(vg, lv)]),
        )
    }
}

/// A parsed `lvs --reportformat json` document.
#[derive(Debug, Default)]
pub struct Report {
    pub lvs: Vec<LvRecord>,
    /// Error messages lvm put into the "log" array.
    pub errors: Vec<String>,
}

pub fn parse_report(json: &str) -> Result<Report, LvmError> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        report: Vec<Section>,
        #[serde(default)]
        log: Vec<LogEntry>,
    }
    #[derive(Deserialize)]
    struct Section {
        #[serde(default)]
        lv: Vec<LvRecord>,
    }
    #[derive(Deserialize)]
    struct LogEntry {
        #[serde(default)]
        log_type: String,
        #[serde(default)]
        log_message: String,
    }
    if json.trim().is_empty() {
        return Ok(Report::default());
    }
    let doc: Doc = serde_json::from_str(json).map_err(|e| LvmError::Report(e.to_string()))?;
    Ok(Report {
        lvs: doc.report.into_iter().flat_map(|s| s.lv).collect(),
        errors: doc
            .log
            .into_iter()
            .filter(|l| l.log_type == "error")
            .map(|l| l.log_message)
            .collect(),
    })
}

// lvm's JSON gives every value as a string, "" meaning "not applicable".

fn de_str<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d)
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = de_str(d)?;
    Ok((!s.is_empty()).then_some(s))
}

fn de_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    // Tags cannot contain commas, so splitting is exact.
    Ok(de_str(d)?
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect())
}

fn parse_opt<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<Option<T>, D::Error> {
    let s = de_str(d)?;
    if s.is_empty() || s == "-1" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("not a number: {s:?}")))
}

fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    parse_opt(d)
}

fn de_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    parse_opt(d)
}

fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    parse_opt(d)
}

fn de_u64_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(parse_opt(d)?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fakes::FakeLvm;

    /// A report as lvm 2.03 prints it, with the command log enabled.
    const SAMPLE: &str = r#"{
      "report": [ { "lv": [
        {"lv_name":"Node-1.0-0", "vg_name":"HostVG", "vg_tags":"imgbased:vg", "vg_free":"4194304",
         "lv_attr":"Vri---tz-k", "lv_size":"2147483648", "segtype":"thin", "pool_lv":"pool",
         "origin":"", "lv_tags":"imgbased:base,imgbase:last-layer=2", "data_percent":"3.20",
         "metadata_percent":"", "lv_metadata_size":"", "lv_kernel_major":"-1",
         "lv_kernel_minor":"-1", "lv_path":"/dev/HostVG/Node-1.0-0"},
        {"lv_name":"pool", "vg_name":"HostVG", "vg_tags":"imgbased:vg", "vg_free":"4194304",
         "lv_attr":"twi-aotz--", "lv_size":"1073741824", "segtype":"thin-pool", "pool_lv":"",
         "origin":"", "lv_tags":"imgbased:pool", "data_percent":"6.41",
         "metadata_percent":"11.62", "lv_metadata_size":"4194304", "lv_kernel_major":"253",
         "lv_kernel_minor":"2", "lv_path":""}
      ] } ],
      "log": [ {"log_seq_num":"1", "log_type":"status", "log_context":"shell",
                "log_object_type":"cmd", "log_object_name":"", "log_message":"success",
                "log_errno":"0", "log_ret_code":"1"} ]
    }"#;

    #[test]
    fn parses_lvm_json_strings_into_types() {
        let r = parse_report(SAMPLE).unwrap();
        assert!(r.errors.is_empty());
        let base = &r.lvs[0];
        assert_eq!(base.size, 2 << 30);
        assert_eq!(base.tags, ["imgbased:base", "imgbase:last-layer=2"]);
        assert_eq!(base.tag_value("imgbase:last-layer="), Some("2"));
        assert!(base.is_read_only() && base.skips_activation() && !base.is_active());
        assert_eq!(base.kernel_major, None);
        assert_eq!(base.origin, None);
        let pool = &r.lvs[1];
        assert!(pool.is_thin_pool() && pool.is_active());
        assert_eq!(pool.data_percent, Some(6.41));
        assert_eq!(pool.kernel_minor, Some(2));
    }

    #[test]
    fn error_log_entries_are_collected() {
        let json = r#"{"report":[{"lv":[]}],"log":[{"log_type":"error",
            "log_message":"Volume group \"nope\" not found"}]}"#;
        let r = parse_report(json).unwrap();
        assert_eq!(r.errors, ["Volume group \"nope\" not found"]);
    }

    #[test]
    fn garbage_is_a_report_error() {
        assert!(matches!(
            parse_report("{\"report\": 11,"),
            Err(LvmError::Report(_))
        ));
    }

    #[test]
    fn fake_keeps_flags_and_tags() {
        let f = FakeLvm::with_pool("vg", "pool", 1 << 30);
        f.create_thin("vg", "pool", "b", 1 << 20, &["x".into()])
            .unwrap();
        f.set_read_only("vg", "b", true).unwrap();
        f.set_activation_skip("vg", "b", true).unwrap();
        f.snapshot("vg", "b", "l", &[]).unwrap();
        f.change_tags("vg", "b", &["y".into()], &["x".into()])
            .unwrap();
        let b = f.get("b").unwrap();
        assert!(b.is_read_only() && b.skips_activation());
        assert_eq!(b.tags, ["y"]);
        assert_eq!(f.get("l").unwrap().origin.as_deref(), Some("b"));
        assert!(f.snapshot("vg", "b", "l", &[]).is_err(), "duplicate name");
    }
}
