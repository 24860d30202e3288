//! Progress of long writes: a bar on stderr when it is a terminal, one
//! JSON object per line for tools (`--progress json`), or nothing.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else nothing
    Auto,
    Bar,
    Json,
    None,
}

/// Reports one phase at a time ("verify", "write", "download", …).
pub struct Progress {
    mode: ProgressMode,
    bar: Mutex<Option<indicatif::ProgressBar>>,
    last_json: Mutex<Option<Instant>>,
    /// The current phase's name and total bytes.
    phase: Mutex<(String, u64)>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::None,
            m => m,
        };
        Progress {
            mode,
            bar: Mutex::new(None),
            last_json: Mutex::new(None),
            phase: Mutex::new((String::new(), 0)),
        }
    }

    pub fn silent() -> Self {
        Self::new(ProgressMode::None)
    }

    /// Start a phase of `total` bytes (0 if unknown).
    pub fn start(&self, phase: &str, total: u64) {
        super::fault::during(phase);
        self.finish();
        match self.mode {
            ProgressMode::Bar => {
                let bar = if total > 0 {
                    indicatif::ProgressBar::new(total)
                } else {
                    indicatif::ProgressBar::new_spinner()
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_message(phase.to_string());
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                *self.bar.lock().unwrap() = Some(bar);
            }
            ProgressMode::Json => {}
            _ => {}
        }
        *self.phase.lock().unwrap() = (phase.to_string(), total);
        if self.mode == ProgressMode::Json {
            self.json(phase, 0, total, true);
        }
    }

    /// Bytes done so far in the current phase.
    pub fn update(&self, done: u64) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = self.bar.lock().unwrap().as_ref() {
                    bar.set_position(done);
                }
            }
            ProgressMode::Json => {
                let (phase, total) = self.phase.lock().unwrap().clone();
                self.json(&phase, done, total, false)
            }
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
        if self.mode == ProgressMode::Json {
            let (phase, total) = self.phase.lock().unwrap().clone();
            if !phase.is_empty() {
                println_json(&phase, total, total, true);
            }
            *self.phase.lock().unwrap() = (String::new(), 0);
        }
    }

    /// At most a few lines a second, but always the first and the last.
    fn json(&self, phase: &str, done: u64, total: u64, force: bool) {
        let mut last = self.last_json.lock().unwrap();
        let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(250));
        if force || due {
            *last = Some(Instant::now());
            println_json(phase, done, total, false);
        }
    }
}

fn println_json(phase: &str, done: u64, total: u64, finished: bool) {
    let line = serde_json::json!({
        "phase": phase, "bytes": done, "total": total, "done": finished,
    });
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
