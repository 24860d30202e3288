//! One way to run an external tool: an argument vector (never a shell), a
//! fixed C locale, stdin closed, and the tool's stderr carried in the error.

use std::ffi::OsString;
use std::process::{Command, Stdio};

/// A command line to run; built by the callers, run by a [`Runner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command as a user could paste it (for logs and errors only).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot run {program}: {source} (is it installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed (exit {code}): {stderr}")]
    Failed {
        cmd: String,
        code: i32,
        stderr: String,
    },
}

/// Runs commands; the real one spawns processes, tests substitute their own.
pub trait Runner {
    /// Run to completion and return the output whatever the exit code.
    fn output(&self, cmd: &Cmd) -> Result<Output, CmdError>;

    /// Run and fail, with the tool's stderr, on a non-zero exit.
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        let out = self.output(cmd)?;
        if out.code != 0 {
            return Err(CmdError::Failed {
                cmd: cmd.display(),
                code: out.code,
                stderr: tail(&out.stderr),
            });
        }
        Ok(out)
    }
}

/// Keep errors one readable line: the last non-empty lines of stderr.
pub fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    let joined = lines[start..].join("; ");
    if joined.is_empty() {
        "(no error output)".into()
    } else {
        joined
    }
}

/// Spawns real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn output(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        tracing::debug!(cmd = %cmd.display(), "running");
        let mut command = Command::new(&cmd.program);
        // A tool dies with imgbase: one killed mid-step must not go on
        // writing (a tar into a mount recovery is about to take away).
        // SAFETY: prctl is async-signal-safe, and nothing else runs
        // between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let out = command
            .args(cmd.args.iter().map(OsString::from))
            // Tools must print numbers with '.' decimals and untranslated
            // messages; lvm warns about inherited fds unless told not to.
            .env("LC_ALL", "C")
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| CmdError::Spawn {
                program: cmd.program.clone(),
                source,
            })?;
        let result = Output {
            // A signal-killed tool has no code; report it as failed.
            code: out.status.code().unwrap_or(128),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        tracing::debug!(code = result.code, stderr = %result.stderr.trim(), "finished");
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let c = Cmd::new("lvs").args(["-S", "lv_tags=a || lv_tags=b", ""]);
        assert_eq!(c.display(), "lvs -S 'lv_tags=a || lv_tags=b' ''");
    }

    #[test]
    fn failure_carries_stderr_tail() {
        let err = SystemRunner
            .run(&Cmd::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit 3"), "{msg}");
        assert!(msg.contains("one; two"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = SystemRunner
            .output(&Cmd::new("/nonexistent/tool"))
            .unwrap_err();
        assert!(matches!(err, CmdError::Spawn { .. }));
    }
}
