//! Test-only fault injection: the guest tier kills a command at a named
//! point to prove that recovery leaves nothing half done. Only in debug
//! builds (the test tiers); a release build ignores the variable.
//!
//! `IMGBASE_FAULT` is one of
//! - `kill-before:N`: SIGKILL before step N of a plan runs (0-based; N equal
//!   to the number of steps kills after the last one, before the journal is
//!   closed);
//! - `pause-before:N`: print `imgbase: paused before step N` on stderr and
//!   wait to be killed;
//! - `kill-during:PHASE`: SIGKILL a moment (`IMGBASE_FAULT_DELAY_MS`,
//!   default 300) after a progress phase (`write`, `extract`, …) starts, in
//!   the middle of writing an image, whatever tool is writing it.

const VAR: &str = "IMGBASE_FAULT";

/// Read once: progress reports ask on every block written.
fn wanted() -> Option<&'static (String, String)> {
    static WANTED: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
    WANTED
        .get_or_init(|| {
            if !cfg!(debug_assertions) {
                return None;
            }
            let v = std::env::var(VAR).ok()?;
            let (what, at) = v.split_once(':')?;
            Some((what.to_string(), at.to_string()))
        })
        .as_ref()
}

fn die() -> ! {
    // SIGKILL, as a power cut or the OOM killer would: no destructor, no
    // unwinding, no cleanup of any kind.
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    unreachable!("SIGKILL returned")
}

/// Called by the executor before each step (and once after the last).
pub fn before_step(index: usize) {
    let Some((what, at)) = wanted() else { return };
    if at.parse() != Ok(index) {
        return;
    }
    match what.as_str() {
        "kill-before" => die(),
        "pause-before" => {
            eprintln!("imgbase: paused before step {index}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        _ => {}
    }
}

/// Called when a progress phase starts.
pub fn during(phase: &str) {
    if let Some((what, at)) = wanted()
        && what == "kill-during"
        && at == phase
    {
        let ms = std::env::var("IMGBASE_FAULT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            die()
        });
    }
}
