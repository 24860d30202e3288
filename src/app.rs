//! One invocation of imgbase: the system it runs against, the verb it
//! was asked for, recovery before any change, and what it prints. The
//! binary only parses the command line and reports errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::CommandFactory;
use serde::Serialize;

use crate::boot::loader::{self, Boot, Loader};
use crate::cli::{
    BaseArgs, BlessArgs, BootArgs, CheckArgs, Cli, Command, DiffArgs, GcArgs, LayerArgs,
    LayoutArgs, RollbackArgs, UpdateArgs,
};
use crate::config::Config;
use crate::image::digest::{digest_from_sums, parse_sha256};
use crate::model::layout::Layout;
use crate::model::size::parse_size;
use crate::plan::carry::{self as carry_step, Report};
use crate::plan::journal::Journal;
use crate::plan::{Executor, Plan, Recovered};
use crate::sys::boot::{BootExec, RealTrees, running_cmdline};
use crate::sys::cmd::SystemRunner;
use crate::sys::fetch::{Fetcher, is_url};
use crate::sys::fs::{DevNum, RealFilesystems, mount_point_of};
use crate::sys::images::ImageInfo;
use crate::sys::images::{Images, RealImages};
use crate::sys::lock::OpLock;
use crate::sys::lvm::LvmCli;
use crate::sys::progress::Progress;
use crate::verbs::boot::BootView;
use crate::verbs::{Ctx, base, bless, boot, gc, layer, layout, recover, rollback, update};

/// Everything one invocation needs from the system.
struct App<'a> {
    cli: &'a Cli,
    runner: &'a SystemRunner,
    lvm: LvmCli<'a>,
    fs: RealFilesystems<'a>,
    images: RealImages<'a>,
    progress: Progress,
}

pub fn run(cli: &Cli) -> Result<()> {
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
        Command::Check(args) => app.check(args),
        Command::Recover => app.recover_verb(),
        Command::Update(args) => app.update(args),
        Command::Diff(args) => app.diff(args),
        Command::W => app.w(),
        Command::Rollback(args) => app.rollback(args),
        Command::Gc(args) => app.gc(args),
        Command::Motd(args) => app.motd(args),
        Command::Bless(args) => app.bless(args),
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
            cached: Default::default(),
        })
    }

    fn journal(&self) -> Journal {
        Journal::new(self.cli.state_dir.join("journal"))
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
                    boot::check_boot_mounted(&self.cli.root, dir)?;
                    // Said (as a warning) once a changing command goes on
                    // without entries; see `Ctx::layout`.
                    tracing::debug!("no boot loader found under {}", dir.display());
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
        plan: impl FnOnce(&Ctx) -> crate::error::Result<Plan>,
    ) -> Result<()> {
        self.change_with(what, false, plan)
    }

    /// Run steps against this node: the executor over the real system.
    fn with_executor<T>(
        &self,
        ctx: &Ctx,
        vg: &str,
        f: impl FnOnce(&Executor) -> crate::error::Result<T>,
    ) -> crate::error::Result<T> {
        let trees = RealTrees {
            runner: self.runner,
            lvm: &self.lvm,
        };
        let boot_exec = ctx.boot.as_ref().map(|v| BootExec {
            boot: v.boot.clone(),
            trees: &trees,
            running: running_cmdline(vg, &self.cli.root),
        });
        let journal = self.journal();
        f(&Executor {
            lvm: &self.lvm,
            fs: &self.fs,
            images: &self.images,
            progress: &self.progress,
            boot: boot_exec.as_ref(),
            trees: Some(&trees),
            journal: Some(&journal),
        })
    }

    /// Read what recovery needs: the VG's LVs, /boot, stale mounts.
    fn load(&self, ctx: &mut Ctx, boot: bool, all: bool) -> Result<()> {
        ctx.forget();
        ctx.report(all)?;
        if boot {
            ctx.boot = self.boot_view()?;
            ctx.boot_missing = (ctx.boot.is_none() && self.cli.loader == "auto")
                .then(|| self.cli.boot_dir.clone());
        }
        Ok(())
    }

    /// Finish or undo what interrupted runs left, before anything else is
    /// read for planning: journaled operations first, then strays no
    /// journal claims. Under the lock (unless `dry_run`: then it only
    /// says what it would do).
    fn recover(&self, ctx: &mut Ctx, boot: bool, all: bool) -> Result<Recovery> {
        let mut done = Recovery::default();
        let journals: Vec<_> = self
            .journal()
            .unfinished(self.cli.vg.as_deref())?
            .into_iter()
            // Another imgbase (on another VG, under another lock) is
            // still running it: not ours to touch.
            .filter(|j| !j.is_running())
            .collect();
        // Boot steps of a journal need /boot even for a verb without any.
        let boot = boot || !journals.is_empty();
        self.load(ctx, boot, all)?;
        // Mounts a killed run left go first: they keep the LVs that the
        // journals below remove busy.
        let mounts = crate::sys::mount::stale_mounts();
        if !mounts.is_empty() {
            let mut unmount = Plan::new(
                self.cli.vg.as_deref().unwrap_or_default(),
                "unmount what killed runs left mounted",
            );
            for path in mounts {
                unmount.push(crate::plan::FilesStep::Unmount { path });
            }
            if !self.cli.dry_run {
                self.with_executor(ctx, &unmount.vg, |x| x.execute("recover", &unmount))?;
            }
            done.mounts = Some(unmount);
        }
        for r in &journals {
            if self.cli.dry_run {
                done.operations.push(Recovered {
                    command: r.header.command.clone(),
                    summary: r.header.plan.summary.clone(),
                    vg: r.header.plan.vg.clone(),
                    outcome: "would be recovered",
                    steps: vec![],
                });
                continue;
            }
            if r.header.pid != std::process::id() {
                tracing::warn!(
                    "recovering an interrupted `imgbase {}`: {}",
                    r.header.command,
                    r.header.plan.summary
                );
            }
            done.operations
                .push(self.with_executor(ctx, &r.header.plan.vg, |x| x.recover(r))?);
        }
        if !journals.is_empty() && !self.cli.dry_run {
            self.load(ctx, boot, all)?;
        }
        let records = ctx.report(all)?;
        let Some(vg) = self.cli.vg.clone().or_else(|| tagged_vg(&records)) else {
            return Ok(done);
        };
        let strays = recover::plan_strays(&recover::Strays {
            vg: &vg,
            records: &records,
            boot: ctx.boot.as_ref(),
            stale_mounts: vec![],
        });
        if strays.steps.is_empty() {
            return Ok(done);
        }
        if !self.cli.dry_run {
            tracing::warn!("{}", strays.summary);
            self.with_executor(ctx, &vg, |x| x.execute("recover", &strays))
                .with_context(|| format!("could not {}", strays.summary))?;
            self.load(ctx, boot, all)?;
        }
        done.strays = Some(strays);
        Ok(done)
    }

    /// Lock (unless only printing), recover, read the layout (and with
    /// `boot`, the boot entries), plan, then run or print.
    fn change_with(
        &self,
        what: &str,
        boot: bool,
        plan: impl FnOnce(&Ctx) -> crate::error::Result<Plan>,
    ) -> Result<()> {
        let _lock = self.lock(what)?;
        let mut ctx = self.ctx()?;
        let all = what == "layout --init";
        let recovered = self.recover(&mut ctx, boot, all)?;
        let plan = plan(&ctx)?;
        if self.cli.dry_run {
            if !recovered.is_empty() && !self.cli.json {
                print!("{recovered}");
            }
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
        self.with_executor(&ctx, &plan.vg, |x| x.execute(what, &plan))
            .with_context(|| format!("could not {}", plan.summary))?;
        if self.cli.json {
            print_json(&Done::of(&plan, None))
        } else {
            print_done(&plan);
            Ok(())
        }
    }

    fn lock(&self, what: &str) -> Result<Option<OpLock>> {
        if self.cli.dry_run {
            return Ok(None);
        }
        Ok(Some(OpLock::acquire(
            &self.cli.lock_file,
            Duration::from_secs(self.cli.lock_wait),
            &format!("imgbase {what}"),
        )?))
    }

    /// `imgbase recover`.
    fn recover_verb(&self) -> Result<()> {
        let _lock = self.lock("recover")?;
        let mut ctx = self.ctx()?;
        let r = self.recover(&mut ctx, true, false)?;
        if self.cli.json {
            return print_json(&r);
        }
        if r.is_empty() {
            println!("nothing to recover");
        } else {
            print!("{r}");
        }
        Ok(())
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
        let (info, expected) =
            self.open_image(from, a.sha256.as_deref(), a.no_verify, nvr.is_none())?;
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

    /// An image file or URL, fetched (a URL, into the cache), its digest
    /// to check, and what it is. Nothing changes on the node yet.
    fn open_image(
        &self,
        from: &str,
        sha256: Option<&str>,
        no_verify: bool,
        want_nvr: bool,
    ) -> Result<(ImageInfo, Option<String>)> {
        let given = sha256.map(parse_sha256).transpose()?;
        let (path, expected) = if is_url(from) {
            let fetcher = Fetcher {
                runner: self.runner,
                cache: self.cli.cache_dir.clone(),
            };
            let expected = match given {
                Some(d) => Some(d),
                None if no_verify => None,
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
                None if no_verify => None,
                None => digest_from_sums(&path)?,
            };
            (path, expected)
        };
        let info = self
            .images
            .inspect(&path, want_nvr, &self.progress)
            .with_context(|| format!("cannot read {from}"))?;
        Ok((info, expected))
    }

    /// `imgbase update IMAGE`.
    fn update(&self, a: &UpdateArgs) -> Result<()> {
        let config = Config::load(&self.cli.config)?;
        let (info, expected) =
            self.open_image(&a.image, a.sha256.as_deref(), a.no_verify, a.nvr.is_none())?;
        let _lock = self.lock("update")?;
        let mut ctx = self.ctx()?;
        let recovered = self.recover(&mut ctx, true, false)?;
        let layout = ctx.layout()?;
        // Where the loader cannot count a trial's tries, the update still
        // goes on, the old way: the new layer is the default at once.
        let mut trial = (!a.no_trial && config.boot.trial).then_some(config.boot.tries);
        let mut no_trial = None;
        if trial.is_some()
            && let Some(view) = &ctx.boot
        {
            no_trial = self
                .trial_refused(view)
                .err()
                .map(|e| e.to_string())
                .or_else(|| boot::trial_unsupported(view));
            if no_trial.is_some() {
                trial = None;
            }
        }
        let req = update::Update {
            image: base::FromImage {
                info: &info,
                nvr: a.nvr.as_deref(),
                size: None,
                expected_sha256: expected.as_deref(),
                allow_delta: !a.no_delta,
                force: a.force,
            },
            force: a.force,
            keep: config.keep_patterns(),
            pool_threshold: config.update.pool_threshold,
            bases_to_keep: config.update.bases_to_keep,
            state_dir: &self.cli.state_dir,
            trial,
        };
        let plan = update::plan_update(&layout, ctx.boot.as_ref(), &req)?;
        // Said once the update is sure to go ahead (a refusal stays one line).
        if let Some(why) = no_trial {
            tracing::warn!("no trial boot: {why}; the new layer becomes the default at once");
        }
        if self.cli.dry_run {
            let (_, from) = update::carried_from(&layout, ctx.boot.as_ref())?;
            let preview = self.preview(
                &ctx,
                &layout,
                &from.volume.lv,
                Vendor::Image(&info),
                &config,
            );
            return self.print_preview(&recovered, &plan, preview);
        }
        self.with_executor(&ctx, &plan.vg, |x| x.execute("update", &plan))
            .with_context(|| format!("could not {}", plan.summary))?;
        let layer = plan.created.last().cloned().unwrap_or_default();
        let path = update::report_path(&self.cli.state_dir, &layer);
        let report: Option<Report> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let on_trial = ctx.boot.is_some() && trial.is_some();
        if self.cli.json {
            let mut done = Done::of(&plan, report.as_ref());
            done.trial = on_trial.then(|| crate::boot::loader::TrialState {
                layer: layer.clone(),
                tries: trial.unwrap_or_default(),
            });
            return print_json(&done);
        }
        print_done(&plan);
        if let Some(r) = &report {
            print!("{r}");
            println!("Report saved to {}", path.display());
        }
        if on_trial {
            println!(
                "{layer} boots as a trial from the next boot; it becomes the default once the \
                 node reaches boot-complete.target (imgbase bless), else the current default \
                 comes back"
            );
        } else if ctx.boot.is_some() {
            println!("{layer} boots by default from the next boot");
        }
        Ok(())
    }

    /// The merge an update to `vendor` would make of `from`'s /etc,
    /// computed on read-only mounts; an error says why there is none.
    fn preview(
        &self,
        _ctx: &Ctx,
        layout: &Layout,
        from: &str,
        vendor: Vendor,
        config: &Config,
    ) -> std::result::Result<Report, String> {
        let (base, _) = layout.find_layer(from).map_err(|e| e.to_string())?;
        let ancestor = base.volume.lv.clone();
        let trees = RealTrees {
            runner: self.runner,
            lvm: &self.lvm,
        };
        let rules = config.rules();
        let vg = layout.vg.as_str();
        let mut out: Option<crate::error::Result<crate::carry::Merge>> = None;
        let mut with_vendor = |o: &Path, a: &Path| -> std::result::Result<(), String> {
            match vendor {
                Vendor::Image(info) => self
                    .images
                    .with_root(&info.path, &info.format, &mut |n| {
                        out = Some(carry_step::merge_trees(o, a, n, &rules));
                        Ok(())
                    })
                    .map_err(|e| e.to_string()),
                Vendor::Base(b) => trees
                    .with_tree(vg, b, &mut |n| {
                        out = Some(carry_step::merge_trees(o, a, n, &rules));
                        Ok(())
                    })
                    .map_err(|e| e.to_string()),
            }
        };
        let mut failed = None;
        use crate::sys::boot::LayerTrees;
        trees
            .with_tree(vg, &ancestor, &mut |o| {
                trees.with_tree(vg, from, &mut |a| {
                    if let Err(e) = with_vendor(o, a) {
                        failed = Some(e);
                    }
                    Ok(())
                })
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = failed {
            return Err(e);
        }
        let merge = out
            .ok_or_else(|| "nothing was read".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Report {
            schema_version: Report::SCHEMA_VERSION,
            layer: match vendor {
                Vendor::Image(i) => i.path.display().to_string(),
                Vendor::Base(b) => b.to_string(),
            },
            from: from.into(),
            ancestor,
            decisions: merge.decisions,
            accounts: merge.accounts,
            ..Report::default()
        })
    }

    fn print_preview(
        &self,
        recovered: &Recovery,
        plan: &Plan,
        preview: std::result::Result<Report, String>,
    ) -> Result<()> {
        if self.cli.json {
            let (etc, why) = match preview {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e)),
            };
            return print_json(&serde_json::json!({
                "plan": plan,
                "etc": etc,
                "etc_unknown": why,
            }));
        }
        if !recovered.is_empty() {
            print!("{recovered}");
        }
        print!("{plan}");
        match preview {
            Ok(r) => print!("{r}"),
            Err(e) => println!("The /etc decisions are made once the image is written: {e}"),
        }
        Ok(())
    }

    /// `imgbase diff [LAYER] [--against IMAGE|BASE]`.
    fn diff(&self, a: &DiffArgs) -> Result<()> {
        let ctx = self.ctx()?;
        let layout = ctx.layout()?;
        let view = self.boot_view().ok().flatten();
        let from = match &a.layer {
            Some(l) => layout.find_layer(l)?.1.volume.lv.clone(),
            None => update::carried_from(&layout, view.as_ref())?
                .1
                .volume
                .lv
                .clone(),
        };
        let config = Config::load(&self.cli.config)?;
        if let Some(against) = &a.against {
            let report = if layout.base(against).is_some() {
                self.preview(&ctx, &layout, &from, Vendor::Base(against), &config)
            } else {
                let (info, _) =
                    self.open_image(against, None, a.no_verify || !is_url(against), true)?;
                self.preview(&ctx, &layout, &from, Vendor::Image(&info), &config)
            }
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot preview an update of {from} to {against}"))?;
            return if self.cli.json {
                print_json(&report)
            } else {
                print!("{report}");
                Ok(())
            };
        }
        let (base, _) = layout.find_layer(&from)?;
        let changes = self.changes(&layout.vg, &base.volume.lv, &from)?;
        if self.cli.json {
            return print_json(&changes);
        }
        println!(
            "Changes to /etc of {from} against its base {}:",
            base.volume.lv
        );
        for (mark, list) in [
            ("+", &changes.added),
            ("~", &changes.changed),
            ("-", &changes.deleted),
        ] {
            for p in list {
                println!("{mark} /{}", p.display());
            }
        }
        if changes.added.is_empty() && changes.changed.is_empty() && changes.deleted.is_empty() {
            println!("(none)");
        }
        Ok(())
    }

    fn changes(&self, vg: &str, base: &str, layer: &str) -> Result<update::Changes> {
        use crate::sys::boot::LayerTrees;
        let trees = RealTrees {
            runner: self.runner,
            lvm: &self.lvm,
        };
        let etc = Path::new("etc");
        let mut out = None;
        trees.with_tree(vg, base, &mut |o| {
            trees.with_tree(vg, layer, &mut |a| {
                out = Some(
                    crate::sys::tree::manifest(o, etc)
                        .and_then(|mo| Ok((mo, crate::sys::tree::manifest(a, etc)?))),
                );
                Ok(())
            })
        })?;
        let (mo, ma) = out.context("nothing was read")??;
        Ok(update::changes(&mo, &ma))
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
        if let Some(name) = &a.pin {
            return self.change("layer --pin", |ctx| {
                layer::plan_pin(&ctx.layout()?, name, true)
            });
        }
        if let Some(name) = &a.unpin {
            return self.change("layer --unpin", |ctx| {
                layer::plan_pin(&ctx.layout()?, name, false)
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
            |what: &str, f: &dyn Fn(&Layout, &BootView) -> crate::error::Result<Plan>| {
                self.change_with(what, true, |ctx| {
                    let view = ctx.boot.as_ref().ok_or_else(|| {
                        crate::error::Error::Refused(no_loader(&self.cli.boot_dir))
                    })?;
                    f(&ctx.layout()?, view)
                })
            };
        if let (Some(layer), true) = (&a.set_default, a.trial) {
            let tries = Config::load(&self.cli.config)?.boot.tries;
            return changing("boot --set-default --trial", &|l, v| {
                self.trial_refused(v)?;
                boot::plan_trial(l, v, layer, tries)
            });
        }
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

    /// A trial on grub needs grub to write grubenv at boot (`save_env`),
    /// which it cannot on LVM, RAID or btrfs.
    fn trial_refused(&self, view: &BootView) -> crate::error::Result<()> {
        if view.boot.loader != Loader::Grub {
            return Ok(());
        }
        let env = view.boot.grubenv_path();
        let dir = env.parent().unwrap_or(&view.boot.dir);
        let dir = if dir.is_dir() { dir } else { &view.boot.dir };
        match crate::sys::fs::grub_cannot_save_env(dir) {
            Some(why) => Err(crate::error::Error::Refused(format!(
                "{why}, where grub cannot write grubenv to count a trial's tries: pass \
                 --no-trial (or set trial = false under [boot] in imgbase.conf)"
            ))),
            None => Ok(()),
        }
    }

    /// `imgbase bless`: end a trial (see [`bless`]). Exits 0 unless
    /// something could not be read or written.
    fn bless(&self, a: &BlessArgs) -> Result<()> {
        let tries = Config::load(&self.cli.config)?.boot.tries;
        let _lock = self.lock("bless")?;
        let mut ctx = self.ctx()?;
        let recovered = self.recover(&mut ctx, true, false)?;
        let Some(view) = ctx.boot.as_ref() else {
            // No loader, no trial: nothing to do at boot.
            return Ok(());
        };
        let layout = ctx.layout()?;
        let now = bless::utc(std::time::SystemTime::now());
        let (plan, outcome) = bless::plan_bless(&layout, view, self.runner, &now, tries)?;
        if self.cli.dry_run {
            if !recovered.is_empty() && !self.cli.json {
                print!("{recovered}");
            }
            return if self.cli.json {
                print_json(&serde_json::json!({ "plan": plan, "bless": outcome }))
            } else {
                print!("{plan}");
                Ok(())
            };
        }
        if !plan.steps.is_empty() {
            self.with_executor(&ctx, &plan.vg, |x| x.execute("bless", &plan))
                .with_context(|| format!("could not {}", plan.summary))?;
        }
        if self.cli.json {
            print_json(&outcome)?;
        } else {
            for m in &outcome.messages {
                println!("{m}");
            }
        }
        if outcome.reboot && !a.no_reboot {
            use crate::sys::cmd::Runner;
            self.runner
                .run(&crate::sys::cmd::Cmd::new("systemctl").arg("reboot"))
                .context("the trial failed, but `systemctl reboot` did not start a reboot")?;
        }
        Ok(())
    }

    /// What `check` and `motd` report: one check, two ways of saying it.
    fn check_report(&self, a: &CheckArgs) -> Result<boot::CheckReport> {
        let l = self.read()?;
        let view = self.boot_view()?;
        if view.is_none() && self.cli.loader == "auto" {
            boot::boot_missing(&l, &self.cli.boot_dir)?;
        }
        let pool_threshold = match a.pool_threshold {
            Some(p) => p,
            None => Config::load(&self.cli.config)?.update.pool_threshold,
        };
        let opts = boot::CheckOptions {
            pool_threshold,
            root: Some(&self.cli.root),
        };
        let mut r = boot::check_with(&l, view.as_ref(), &opts)?;
        r.unfinished_operations = self
            .journal()
            .unfinished(Some(&l.vg))?
            .iter()
            // One running now (under the lock) is in progress, not broken.
            .filter(|j| !j.is_running())
            .map(|j| {
                format!(
                    "`imgbase {}`: {} ({} of {} steps done)",
                    j.header.command,
                    j.header.plan.summary,
                    j.done,
                    j.header.plan.steps.len()
                )
            })
            .collect();
        Ok(r)
    }

    fn check(&self, a: &CheckArgs) -> Result<()> {
        let r = self.check_report(a)?;
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
            show("unfinished operation", r.unfinished_operations.clone());
            show(
                "thin pool above the threshold",
                r.pool_over_threshold
                    .iter()
                    .map(|what| {
                        let pct = if what == "data" {
                            r.pool_data_percent
                        } else {
                            r.pool_metadata_percent
                        };
                        format!(
                            "{what} {pct:.1}% used (threshold {}%): remove old bases with \
                             `imgbase gc` or grow the pool with `lvextend`",
                            r.pool_threshold
                        )
                    })
                    .collect(),
            );
            show("layer whose base LV is gone", r.layers_without_base.clone());
            for c in &r.update_conflicts {
                println!("problem: {}", boot::describe_conflict(c));
            }
            for f in &r.failed_trials {
                println!("problem: {}", f.describe());
            }
            if let Some(t) = &r.trial {
                println!(
                    "layer {} is on trial: {} {} left",
                    t.layer,
                    t.tries,
                    if t.tries == 1 { "try" } else { "tries" }
                );
            }
        }
        let n = r.problems();
        anyhow::ensure!(
            n == 0,
            "{n} problem(s) found: `imgbase recover` finishes interrupted operations and clears \
             leftovers; `imgbase boot --setup` rewrites entries"
        );
        if !self.cli.json {
            println!("no problems found");
        }
        Ok(())
    }

    /// `imgbase motd`: the check as one line; never fails a login script.
    fn motd(&self, a: &CheckArgs) -> Result<()> {
        let (line, report) = match self.check_report(a) {
            Ok(r) => (r.motd_line(), Some(r)),
            Err(e) => (format!("imgbase: UNKNOWN: {}", one_line(&e)), None),
        };
        if self.cli.json {
            #[derive(Serialize)]
            struct Motd<'a> {
                line: &'a str,
                status: &'static str,
                problems: Option<usize>,
            }
            let problems = report.as_ref().map(boot::CheckReport::problems);
            print_json(&Motd {
                line: &line,
                status: match problems {
                    None => "unknown",
                    Some(0) => "ok",
                    Some(_) => "degraded",
                },
                problems,
            })
        } else {
            println!("{line}");
            Ok(())
        }
    }

    fn rollback(&self, a: &RollbackArgs) -> Result<()> {
        self.change_with("rollback", true, |ctx| {
            let view = ctx
                .boot
                .as_ref()
                .ok_or_else(|| crate::error::Error::Refused(no_loader(&self.cli.boot_dir)))?;
            rollback::plan_rollback(&ctx.layout()?, view, a.to.as_deref())
        })
    }

    fn gc(&self, a: &GcArgs) -> Result<()> {
        let keep = match a.keep {
            Some(k) => k,
            None => Config::load(&self.cli.config)?.update.bases_to_keep,
        };
        self.change_with("gc", true, |ctx| {
            gc::plan_gc(&ctx.layout()?, ctx.boot.as_ref(), keep)
        })
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

/// The vendor's side of a merge preview.
#[derive(Clone, Copy)]
enum Vendor<'a> {
    Image(&'a ImageInfo),
    Base(&'a str),
}

/// What a finished change prints with `--json`.
#[derive(Serialize)]
struct Done<'p> {
    summary: &'p str,
    vg: &'p str,
    created: &'p [String],
    removed: &'p [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'p Report>,
    /// The new layer is on trial (update), with its tries.
    #[serde(skip_serializing_if = "Option::is_none")]
    trial: Option<crate::boot::loader::TrialState>,
}

impl<'p> Done<'p> {
    fn of(plan: &'p Plan, report: Option<&'p Report>) -> Self {
        Done {
            summary: &plan.summary,
            vg: &plan.vg,
            created: &plan.created,
            removed: &plan.removed,
            report,
            trial: None,
        }
    }
}

fn print_done(plan: &Plan) {
    for lv in &plan.created {
        println!("Created {lv}");
    }
    for lv in &plan.removed {
        println!("Removed {lv}");
    }
}

/// What recovery did (or, with --dry-run, would do).
#[derive(Debug, Default, Serialize)]
struct Recovery {
    /// Mounts of killed runs, taken off first.
    mounts: Option<Plan>,
    /// Journaled operations finished or undone.
    operations: Vec<Recovered>,
    /// Strays no journal claimed, cleared by this plan.
    strays: Option<Plan>,
}

impl Recovery {
    fn is_empty(&self) -> bool {
        self.operations.is_empty() && self.strays.is_none() && self.mounts.is_none()
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.mounts {
            write!(f, "{p}")?;
        }
        for op in &self.operations {
            writeln!(
                f,
                "Interrupted `imgbase {}`: {}: {}",
                op.command, op.summary, op.outcome
            )?;
            for s in &op.steps {
                writeln!(f, "  - {s}")?;
            }
        }
        if let Some(p) = &self.strays {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The one VG tagged as a layout in a report, if exactly one is.
fn tagged_vg(records: &[crate::sys::lvm::LvRecord]) -> Option<String> {
    let mut vgs: Vec<&str> = records
        .iter()
        .filter(|r| r.vg_tags.iter().any(|t| t == crate::model::tags::VG))
        .map(|r| r.vg.as_str())
        .collect();
    vgs.dedup();
    (vgs.len() == 1).then(|| vgs[0].to_string())
}

fn no_loader(boot_dir: &Path) -> String {
    format!(
        "no boot loader found under {}: pass --loader grub|grub-bls|systemd-boot \
         (and --boot-dir DIR if /boot is elsewhere)",
        boot_dir.display()
    )
}

/// The NVR an imgbased-built image records inside its root.
fn read_nvr(root: &crate::sys::lvm::LvRecord) -> crate::error::Result<String> {
    let refuse = |why: String| {
        crate::error::Error::Refused(format!(
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

/// An error as operators read it: the cause chain joined on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
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
