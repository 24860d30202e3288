//! `imgbase`: parse the command line, run one verb, print its result as
//! text or JSON. Logs go to stderr; results to stdout.

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use serde::Serialize;

use cli::{BaseArgs, BootArgs, Cli, Command, LayerArgs, LayoutArgs};
use imgbase::boot::loader::{self, Boot, Loader};
use imgbase::image::digest::{digest_from_sums, parse_sha256};
use imgbase::model::layout::Layout;
use imgbase::model::size::parse_size;
use imgbase::plan::{Executor, Plan};
use imgbase::sys::boot::{BootExec, RealTrees, running_cmdline};
use imgbase::sys::cmd::SystemRunner;
use imgbase::sys::fetch::{Fetcher, is_url};
use imgbase::sys::fs::{DevNum, RealFilesystems, mount_point_of};
use imgbase::sys::images::{Images, RealImages};
use imgbase::sys::lock::OpLock;
use imgbase::sys::lvm::LvmCli;
use imgbase::sys::progress::Progress;
use imgbase::verbs::boot::BootView;
use imgbase::verbs::{Ctx, base, boot, layer, layout};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the cause chain joined, as operators read it.
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("imgbase: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let level = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMGBASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // Elapsed time only when debugging: it is what one looks for then.
    if debug {
        fmt.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        fmt.without_time().init();
    }
}

/// Everything one invocation needs from the system.
struct App<'a> {
    cli: &'a Cli,
    runner: &'a SystemRunner,
    lvm: LvmCli<'a>,
    fs: RealFilesystems<'a>,
    images: RealImages<'a>,
    progress: Progress,
}

fn run(cli: &Cli) -> Result<()> {
    static RUNNER: SystemRunner = SystemRunner;
    let app = App {
        cli,
        runner: &RUNNER,
        lvm: LvmCli::new(&RUNNER, cli.lvm.clone()),
        fs: RealFilesystems { runner: &RUNNER },
        images: RealImages::new(&RUNNER, cli.cache_dir.join("work")),
        progress: Progress::new(cli.progress),
    };
    match &cli.command {
        Command::Layout(args) => app.layout(args),
        Command::Base(args) => app.base(args),
        Command::Layer(args) => app.layer(args),
        Command::Boot(args) => app.boot(args),
        Command::Check => app.check(),
        Command::W => app.w(),
        Command::Docs { out } => write_docs(out),
    }
}

impl App<'_> {
    fn ctx(&self) -> Result<Ctx<'_>> {
        // The root may not be on an LV at all (a live system, a test);
        // then no layer is booted.
        let root = DevNum::of_mount(&self.cli.root)
            .with_context(|| format!("reading the device of {}", self.cli.root.display()))?;
        Ok(Ctx {
            lvm: &self.lvm,
            vg: self.cli.vg.clone(),
            root: Some(root),
            boot: None,
            boot_missing: None,
        })
    }

    /// The node's /boot and loader, or None when boot entries are not
    /// managed (`--loader none`, or `auto` finding no loader).
    fn boot_view(&self) -> Result<Option<BootView>> {
        let dir = &self.cli.boot_dir;
        let loader = match self.cli.loader.as_str() {
            "none" => return Ok(None),
            "auto" => match loader::detect(dir) {
                Some(l) => l,
                None => {
                    tracing::info!(
                        "no boot loader found under {}: boot entries are not written \
                         (pass --loader and --boot-dir to choose one)",
                        dir.display()
                    );
                    return Ok(None);
                }
            },
            name => name.parse::<Loader>().map_err(anyhow::Error::msg)?,
        };
        anyhow::ensure!(
            dir.is_dir(),
            "no boot directory {}: mount /boot or pass --boot-dir DIR",
            dir.display()
        );
        Ok(Some(BootView::read(Boot::new(dir, loader)).with_context(
            || format!("cannot read the boot entries in {}", dir.display()),
        )?))
    }

    fn need_boot_view(&self) -> Result<BootView> {
        self.boot_view()?
            .ok_or_else(|| anyhow::anyhow!(no_loader(&self.cli.boot_dir)))
    }

    /// A changing verb that reads the layout only.
    fn change(
        &self,
        what: &str,
        plan: impl FnOnce(&Ctx) -> imgbase::error::Result<Plan>,
    ) -> Result<()> {
        self.change_with(what, false, plan)
    }

    /// Lock (unless only printing), read the layout (and with `boot`, the
    /// boot entries), plan, then run or print.
    fn change_with(
        &self,
        what: &str,
        boot: bool,
        plan: impl FnOnce(&Ctx) -> imgbase::error::Result<Plan>,
    ) -> Result<()> {
        let _lock = if self.cli.dry_run {
            None
        } else {
            Some(OpLock::acquire(
                &self.cli.lock_file,
                Duration::from_secs(self.cli.lock_wait),
                &format!("imgbase {what}"),
            )?)
        };
        let mut ctx = self.ctx()?;
        if boot {
            ctx.boot = self.boot_view()?;
            if ctx.boot.is_none() && self.cli.loader == "auto" {
                ctx.boot_missing = Some(self.cli.boot_dir.clone());
            }
        }
        let plan = plan(&ctx)?;
        if self.cli.dry_run {
            return if self.cli.json {
                print_json(&plan)
            } else {
                print!("{plan}");
                Ok(())
            };
        }
        if plan.steps.is_empty() {
            // Nothing to change (e.g. the image is already a base).
            return if self.cli.json {
                print_json(&plan)
            } else {
                println!("{}", plan.summary);
                Ok(())
            };
        }
        let trees = RealTrees {
            runner: self.runner,
            lvm: &self.lvm,
        };
        let boot_exec = ctx.boot.as_ref().map(|v| BootExec {
            boot: v.boot.clone(),
            trees: &trees,
            running: running_cmdline(&plan.vg, &self.cli.root),
        });
        Executor {
            lvm: &self.lvm,
            fs: &self.fs,
            images: &self.images,
            progress: &self.progress,
            boot: boot_exec.as_ref(),
        }
        .execute(&plan)
        .with_context(|| format!("could not {}", plan.summary))?;
        if self.cli.json {
            #[derive(Serialize)]
            struct Done<'p> {
                summary: &'p str,
                vg: &'p str,
                created: &'p [String],
                removed: &'p [String],
            }
            print_json(&Done {
                summary: &plan.summary,
                vg: &plan.vg,
                created: &plan.created,
                removed: &plan.removed,
            })
        } else {
            for lv in &plan.created {
                println!("Created {lv}");
            }
            for lv in &plan.removed {
                println!("Removed {lv}");
            }
            Ok(())
        }
    }

    fn read(&self) -> Result<Layout> {
        Ok(self.ctx()?.layout()?)
    }

    fn layout(&self, a: &LayoutArgs) -> Result<()> {
        if a.init || a.init_nvr.is_some() {
            let nvr = a.nvr.as_deref().or(a.init_nvr.as_deref());
            let source = layout::Source::parse(&a.from)?;
            return self.change_with("layout --init", true, |ctx| {
                let records = ctx.report(true)?;
                let mut plan = layout::plan_init(&records, &source, nvr, read_nvr)?;
                if let (Some(view), Some(layer)) = (&ctx.boot, plan.created.get(1).cloned()) {
                    boot::add_entry(&mut plan, view, &layer, None);
                    boot::mark_boot_at_init(&mut plan, view);
                }
                Ok(plan)
            });
        }
        let l = self.read()?;
        for lv in &l.incomplete {
            tracing::warn!(
                "{lv} was left unfinished by an interrupted run; the next change clears it"
            );
        }
        let names = |v: Vec<&str>| -> Result<()> {
            if self.cli.json {
                print_json(&v)
            } else {
                v.iter().for_each(|n| println!("{n}"));
                Ok(())
            }
        };
        if a.bases {
            names(l.bases.iter().map(|b| b.volume.lv.as_str()).collect())
        } else if a.layers {
            names(l.layers().map(|x| x.volume.lv.as_str()).collect())
        } else if a.free_space {
            let f = layout::free_space(&l);
            if self.cli.json {
                print_json(&f)
            } else {
                let shift = match a.units.as_str() {
                    "b" => 0,
                    "k" => 10,
                    "m" => 20,
                    "g" => 30,
                    _ => 40,
                };
                println!("{:.2}", f.data_free as f64 / (1u64 << shift) as f64);
                Ok(())
            }
        } else if self.cli.json {
            print_json(&l)
        } else {
            print!("{}", layout::Tree(&l));
            Ok(())
        }
    }

    fn base(&self, a: &BaseArgs) -> Result<()> {
        if let Some(nvr) = &a.add {
            let nvr = Some(nvr.as_str()).filter(|n| !n.is_empty());
            let size = a.size.as_deref().map(parse_size).transpose()?;
            if let Some(from) = &a.from {
                return self.add_from_image(from, nvr, size, a);
            }
            let (Some(nvr), Some(size)) = (nvr, size) else {
                // A usage error like clap's own: exit 2.
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        "an empty base needs a name and a size (`base --add NVR --size SIZE`); \
                         to fill one from an image use --from IMAGE",
                    )
                    .exit();
            };
            return self.change("base --add", |ctx| {
                base::plan_add(&ctx.layout()?, nvr, size)
            });
        }
        if let (Some(name), Some(out)) = (&a.export, &a.output) {
            return self.export(name, out);
        }
        if let Some(name) = &a.remove {
            return self.change_with("base --remove", true, |ctx| {
                base::plan_remove(&ctx.layout()?, ctx.boot.as_ref(), name)
            });
        }
        let l = self.read()?;
        let b = if let Some(layer) = &a.of_layer {
            l.find_base_of_layer(layer)?
        } else {
            l.find_latest_base()?
        };
        self.print_name("base", &b.volume.lv)
    }

    /// Fetch and inspect (no lock needed: nothing changes yet), then plan
    /// and run under the lock.
    fn add_from_image(
        &self,
        from: &str,
        nvr: Option<&str>,
        size: Option<u64>,
        a: &BaseArgs,
    ) -> Result<()> {
        let given = a.sha256.as_deref().map(parse_sha256).transpose()?;
        let (path, expected) = if is_url(from) {
            let fetcher = Fetcher {
                runner: self.runner,
                cache: self.cli.cache_dir.clone(),
            };
            let expected = match given {
                Some(d) => Some(d),
                None if a.no_verify => None,
                None => Some(fetcher.sums_for(from)?),
            };
            (fetcher.fetch(from, expected.as_deref())?, expected)
        } else {
            let path = PathBuf::from(from);
            anyhow::ensure!(
                path.is_file(),
                "no image file {from}: give the path of an image file or an http(s) URL"
            );
            let expected = match given {
                Some(d) => Some(d),
                None if a.no_verify => None,
                None => digest_from_sums(&path)?,
            };
            (path, expected)
        };
        let info = self
            .images
            .inspect(&path, nvr.is_none(), &self.progress)
            .with_context(|| format!("cannot import {from}"))?;
        self.change("base --add --from", |ctx| {
            base::plan_add_image(
                &ctx.layout()?,
                &base::FromImage {
                    info: &info,
                    nvr,
                    size,
                    expected_sha256: expected.as_deref(),
                    allow_delta: !a.no_delta,
                    force: a.force,
                },
            )
        })
    }

    fn export(&self, name: &str, out: &Path) -> Result<()> {
        if self.cli.dry_run {
            // Checks the base exists; writes nothing.
            let l = self.read()?;
            let b = l.find_base(name)?;
            let what = format!(
                "export base {name} ({} bytes) to {}",
                b.volume.size,
                out.display()
            );
            return if self.cli.json {
                print_json(&serde_json::json!({ "summary": what, "steps": [] }))
            } else {
                println!("would {what}");
                Ok(())
            };
        }
        let _lock = OpLock::acquire(
            &self.cli.lock_file,
            Duration::from_secs(self.cli.lock_wait),
            "imgbase base --export",
        )?;
        let l = self.read()?;
        let manifest = base::export(&self.lvm, &l, name, out, &self.progress)
            .with_context(|| format!("cannot export {name} to {}", out.display()))?;
        if self.cli.json {
            print_json(&manifest)
        } else {
            println!("Exported {name} to {}", out.display());
            Ok(())
        }
    }

    fn layer(&self, a: &LayerArgs) -> Result<()> {
        if let Some(target) = &a.add {
            let target = Some(target.as_str()).filter(|t| !t.is_empty());
            return self.change_with("layer --add", true, |ctx| {
                layer::plan_add(&ctx.layout()?, ctx.boot.as_ref(), target)
            });
        }
        if let Some(name) = &a.remove {
            return self.change_with("layer --remove", true, |ctx| {
                layer::plan_remove(&ctx.layout()?, ctx.boot.as_ref(), name)
            });
        }
        let l = self.read()?;
        if let Some(name) = &a.volume_path {
            return self.print_name("path", &layer::volume_path(&l, name)?);
        }
        let x = if a.current {
            l.find_booted_layer()?
        } else {
            l.find_latest_layer()?
        };
        self.print_name("layer", &x.volume.lv)
    }

    fn boot(&self, a: &BootArgs) -> Result<()> {
        let changing =
            |what: &str, f: &dyn Fn(&Layout, &BootView) -> imgbase::error::Result<Plan>| {
                self.change_with(what, true, |ctx| {
                    let view = ctx.boot.as_ref().ok_or_else(|| {
                        imgbase::error::Error::Refused(no_loader(&self.cli.boot_dir))
                    })?;
                    f(&ctx.layout()?, view)
                })
            };
        if let Some(layer) = &a.set_default {
            return changing("boot --set-default", &|l, v| {
                boot::plan_set_default(l, v, layer)
            });
        }
        if let Some(layer) = &a.next {
            return changing("boot --next", &|l, v| boot::plan_next(l, v, layer));
        }
        if let Some(layer) = &a.setup {
            let layer = Some(layer.as_str()).filter(|l| !l.is_empty());
            let root = self.cli.root.clone();
            return changing("boot --setup", &|l, v| {
                boot::plan_setup(l, v, layer, root.clone())
            });
        }
        let view = self.need_boot_view()?;
        if a.get_default {
            let layer = view.default.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "no layer is the default boot entry (set one with `imgbase boot --set-default LAYER`)"
                )
            })?;
            return self.print_name("layer", layer);
        }
        let entries = boot::list(&view);
        if self.cli.json {
            return print_json(&entries);
        }
        for e in &entries {
            let mark = match (e.default, e.next) {
                (_, true) => ">",
                (true, _) => "*",
                _ => " ",
            };
            println!("{mark} {:<40} {}  [{}]", e.id, e.title, e.kernel);
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let l = self.read()?;
        let view = self.boot_view()?;
        if view.is_none() && self.cli.loader == "auto" {
            boot::boot_missing(&l, &self.cli.boot_dir)?;
        }
        let r = boot::check(&l, view.as_ref())?;
        if self.cli.json {
            print_json(&r)?;
        } else {
            match &r.loader {
                Some(name) => println!("boot loader: {name} ({})", self.cli.boot_dir.display()),
                None => println!(
                    "boot loader: none found under {}",
                    self.cli.boot_dir.display()
                ),
            }
            let show = |what: &str, items: Vec<String>| {
                for i in items {
                    println!("problem: {what}: {i}");
                }
            };
            show("boot entry without an LV", r.entries_without_lv.clone());
            show("layer without a boot entry", r.layers_without_entry.clone());
            show(
                "orphan file",
                r.orphan_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            );
            show(
                "default entry names no entry",
                r.default_missing.iter().cloned().collect(),
            );
            show("unfinished LV", r.incomplete_lvs.clone());
        }
        let n = r.problems();
        anyhow::ensure!(
            n == 0,
            "{n} problem(s) found: `imgbase boot --setup` rewrites entries and removes orphan files"
        );
        if !self.cli.json {
            println!("no problems found");
        }
        Ok(())
    }

    fn w(&self) -> Result<()> {
        let l = self.read()?;
        let x = l.find_booted_layer()?;
        if self.cli.json {
            return print_json(&serde_json::json!({ "layer": x.volume.lv }));
        }
        println!("You are on {}", x.volume.lv);
        Ok(())
    }

    fn print_name(&self, key: &str, value: &str) -> Result<()> {
        if self.cli.json {
            print_json(&serde_json::json!({ key: value }))
        } else {
            println!("{value}");
            Ok(())
        }
    }
}

fn no_loader(boot_dir: &Path) -> String {
    format!(
        "no boot loader found under {}: pass --loader grub|grub-bls|systemd-boot \
         (and --boot-dir DIR if /boot is elsewhere)",
        boot_dir.display()
    )
}

/// The NVR an imgbased-built image records inside its root.
fn read_nvr(root: &imgbase::sys::lvm::LvRecord) -> imgbase::error::Result<String> {
    let refuse = |why: String| {
        imgbase::error::Error::Refused(format!(
            "cannot read the NVR of {}/{}: {why}; pass it with --nvr NVR",
            root.vg, root.name
        ))
    };
    let dev = root
        .kernel_major
        .zip(root.kernel_minor)
        .map(|(major, minor)| DevNum { major, minor })
        .ok_or_else(|| refuse("it is not active".into()))?;
    let dir = mount_point_of(dev).ok_or_else(|| refuse("it is not mounted".into()))?;
    let file = dir.join(layout::NVR_FILE);
    std::fs::read_to_string(&file)
        .map(|s| s.trim().to_string())
        .map_err(|e| refuse(format!("{}: {e}", file.display())))
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn write_docs(out: &Path) -> Result<()> {
    use clap_complete::Shell;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut page)?;
    std::fs::write(out.join("imgbase.8"), page)?;
    for sh in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(sh, &mut cmd, "imgbase", out)?;
    }
    println!("wrote the man page and completions to {}", out.display());
    Ok(())
}
