//! Compiling a plugin under a time and memory budget. Cranelift cannot be
//! interrupted and a hostile module can make it run for minutes or use
//! gigabytes, so the compile runs in a child process (this executable, a
//! hidden subcommand) whose address space is capped and which is killed
//! when its time is up. The child writes the compiled artifact into a
//! directory only this user can write; the parent loads it from there.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "__compile-plugin";

/// Where the child is run from and what it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileBudget {
    /// This executable: it has the hidden subcommand.
    pub exe: PathBuf,
    pub time: Duration,
    /// The child's address space (`RLIMIT_AS`).
    pub memory_bytes: u64,
}

/// Why a compile in the child did not give a component.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("compiling took longer than {0:?}")]
    Time(Duration),
    #[error("compiling needed more than {0} bytes of memory")]
    Memory(u64),
    /// SIGKILL from outside: the budget never sends it (the time limit is
    /// enforced above), the kernel's out-of-memory killer does.
    #[error("the compiler process was killed (SIGKILL)")]
    Killed,
    #[error("{0}")]
    Failed(String),
}

/// Compiles `wasm` in a child process under `budget`, working in `dir`
/// (a directory only this user can write), and loads the result.
pub fn in_child(
    engine: &wasmtime::Engine,
    budget: &CompileBudget,
    engine_args: &[String],
    wasm: &[u8],
    dir: &Path,
) -> Result<Component, CompileError> {
    let failed = |e: anyhow::Error| CompileError::Failed(format!("{e:#}"));
    let input = tempfile::Builder::new()
        .suffix(".wasm")
        .tempfile_in(dir)
        .context("writing the plugin for the compiler process")
        .map_err(failed)?;
    std::fs::write(input.path(), wasm)
        .context("writing the plugin for the compiler process")
        .map_err(failed)?;
    let output = input.path().with_extension("cwasm");
    let log = input.path().with_extension("log");
    let _cleanup = Cleanup(vec![output.clone(), log.clone()]);
    let mut command = Command::new(&budget.exe);
    command
        .arg(SUBCOMMAND)
        .arg(input.path())
        .arg(&output)
        .args(engine_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&log)
                .context("creating the compiler's log")
                .map_err(failed)?,
        );
    limit_memory(&mut command, budget.memory_bytes);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting the compiler process {}", budget.exe.display()))
        .map_err(failed)?;
    let deadline = Instant::now() + budget.time;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CompileError::Time(budget.time));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(failed(e.into())),
        }
    };
    if sigkilled(&status) {
        return Err(CompileError::Killed);
    }
    if !status.success() {
        let said = std::fs::read(&log).unwrap_or_default();
        let said = String::from_utf8_lossy(&said[..said.len().min(4096)]).into_owned();
        // Under an address-space cap, running out shows as a failed
        // allocation (Rust aborts saying so) or, where not even that could
        // be allocated, as death by a signal (SIGSEGV, SIGABRT).
        let out_of_memory = said.contains("memory allocation of")
            || said.contains("out of memory")
            || said.contains("Cannot allocate memory")
            || killed_by_signal(&status);
        return Err(if out_of_memory {
            CompileError::Memory(budget.memory_bytes)
        } else {
            CompileError::Failed(said.trim().trim_start_matches("Error: ").to_owned())
        });
    }
    // SAFETY: written by the child, this executable, into `dir`, which only
    // this user can write; with the engine settings passed to it.
    unsafe { Component::deserialize_file(engine, &output) }
        .map_err(|e| failed(anyhow::anyhow!("{e:#}")))
}

/// The child's side: compiles `input` with the engine `config` and writes
/// the artifact to `output`.
pub fn run_child(config: &wasmtime::Config, input: &Path, output: &Path) -> anyhow::Result<()> {
    let engine = wasmtime::Engine::new(config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let wasm = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let artifact = engine
        .precompile_component(&wasm)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    std::fs::write(output, artifact).with_context(|| format!("writing {}", output.display()))
}

#[cfg(unix)]
fn killed_by_signal(status: &std::process::ExitStatus) -> bool {
    std::os::unix::process::ExitStatusExt::signal(status).is_some()
}

#[cfg(unix)]
fn sigkilled(status: &std::process::ExitStatus) -> bool {
    std::os::unix::process::ExitStatusExt::signal(status) == Some(9)
}

#[cfg(not(unix))]
fn sigkilled(_status: &std::process::ExitStatus) -> bool {
    false
}

#[cfg(not(unix))]
fn killed_by_signal(_status: &std::process::ExitStatus) -> bool {
    false
}

#[cfg(unix)]
fn limit_memory(command: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only `setrlimit`, which is
    // async-signal-safe, is called.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn limit_memory(_command: &mut Command, _bytes: u64) {}

/// Removes the child's files when the compile is done with them.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_compiler_killed_from_outside_is_not_called_over_budget() {
        // What the out-of-memory killer does to the child in a container
        // whose memory limit is below the compile's needs.
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("killed");
        std::fs::write(&exe, "#!/bin/sh\nkill -KILL $$\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let budget = CompileBudget {
            exe,
            time: Duration::from_secs(30),
            memory_bytes: 1 << 30,
        };
        let engine = wasmtime::Engine::default();
        let got = in_child(&engine, &budget, &[], b"\0asm", dir.path());
        assert!(matches!(got, Err(CompileError::Killed)), "{got:?}");
    }
}
