//! Runs untrusted generated code (a HumanEval completion and its tests) in a subprocess it
//! cannot escape from: a wall-clock timeout, an address-space limit, a process limit, no
//! network (an empty network namespace), a read-only view of the file system except a
//! private size-limited tmpfs as its working directory, and a PID namespace so that every
//! process it starts dies with it. A program that breaks a limit simply fails.
//!
//! Linux only: the isolation is namespaces (as root directly, otherwise inside a new user
//! namespace) plus rlimits. Where namespaces are unavailable the sandbox refuses to run
//! code rather than run it unconfined.

#[cfg(target_os = "linux")]
mod isolate;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, EvalError, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SandboxLimits {
    /// Wall-clock time before every process of the run is killed.
    pub timeout: Duration,
    /// Address-space limit of each process.
    pub memory_bytes: u64,
    /// Processes (and threads) the program may have at once.
    pub max_processes: u64,
    /// Size of the private working directory (a tmpfs), and of any one file written.
    pub disk_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_processes: 64,
            disk_bytes: 64 << 20,
        }
    }
}

/// How a sandboxed run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Verdict {
    /// Exit status 0.
    Passed,
    /// Any other exit status (a failed assertion, an exception, a compile error).
    Failed { exit_code: i32 },
    /// Killed by a signal it raised or a limit it hit (SIGKILL from the CPU limit, ...).
    Signaled { signal: i32 },
    /// Still running at the timeout: killed with all its processes.
    TimedOut,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Passed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The end of what the program wrote to stdout and stderr (why it failed).
    pub stderr_tail: String,
    pub seconds: f64,
}

/// Bytes of output kept in an outcome.
const STDERR_TAIL: u64 = 2000;

pub struct Sandbox {
    pub limits: SandboxLimits,
    /// Host directories the program may read (a toolchain outside its reach otherwise,
    /// e.g. under a 0700 home), bound read-only at `{dir}/NAME`.
    pub binds: Vec<(PathBuf, String)>,
}

impl Sandbox {
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            limits,
            binds: vec![],
        }
    }

    /// Makes `host` readable to the program at `{dir}/name`.
    pub fn with_bind(mut self, host: PathBuf, name: &str) -> Self {
        self.binds.push((host, name.to_string()));
        self
    }

    /// Writes `files` (name, content) into a fresh directory, then runs `program args...`
    /// with its working directory a private empty tmpfs; the files are readable (not
    /// writable) at the paths `args` receive through `{dir}`, which is replaced by the
    /// directory holding them.
    pub fn run(&self, files: &[(&str, &[u8])], program: &str, args: &[&str]) -> Result<Outcome> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-sandbox-")
            .tempdir()
            .map_err(|e| EvalError::Sandbox(format!("cannot create a temp dir: {e}")))?;
        let src = dir.path().join("src");
        let work = dir.path().join("work");
        for d in [&src, &work] {
            std::fs::create_dir(d).map_err(io_err(d))?;
        }
        let mut binds = vec![];
        for (host, name) in &self.binds {
            let at = src.join(name);
            std::fs::create_dir(&at).map_err(io_err(&at))?;
            binds.push((host.clone(), at));
        }
        for (name, content) in files {
            let p = src.join(name);
            std::fs::write(&p, content).map_err(io_err(&p))?;
        }
        open_up(dir.path())?;
        // stdout and stderr share one log (Rust's test harness reports failures on stdout).
        let stderr_path = dir.path().join("output");
        let stderr = std::fs::File::create(&stderr_path).map_err(io_err(&stderr_path))?;
        let stdout = stderr.try_clone().map_err(io_err(&stderr_path))?;
        let src_str = src.display().to_string();
        let mut cmd = Command::new(program);
        cmd.args(args.iter().map(|a| a.replace("{dir}", &src_str)))
            .current_dir(&work)
            .env_clear()
            .envs(passed_env())
            .env("HOME", &work)
            .env("TMPDIR", &work)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        self.confine(&mut cmd, &work, &binds)?;
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            EvalError::Sandbox(format!(
                "cannot start {program} in the sandbox: {e} (the sandbox needs Linux namespaces: \
                 root, or unprivileged user namespaces enabled)"
            ))
        })?;
        let deadline = start + self.limits.timeout;
        // The outer process is polled without being reaped, so that its process group id
        // cannot be reused before what the program left in the group is killed.
        let timed_out = loop {
            if exited(child.id()) {
                break false;
            }
            if Instant::now() >= deadline {
                break true;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Killing the process group ends whatever the program started (the PID namespace
        // also takes everything down once the program's first process is gone).
        kill_group(child.id());
        let status = child
            .wait()
            .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        let verdict = if timed_out {
            Verdict::TimedOut
        } else {
            verdict_of(status)
        };
        let seconds = start.elapsed().as_secs_f64();
        Ok(Outcome {
            verdict,
            stderr_tail: tail(&stderr_path, STDERR_TAIL),
            seconds,
        })
    }

    #[cfg(target_os = "linux")]
    fn confine(&self, cmd: &mut Command, work: &Path, binds: &[(PathBuf, PathBuf)]) -> Result<()> {
        isolate::confine(cmd, work, binds, &self.limits)
    }

    #[cfg(not(target_os = "linux"))]
    fn confine(&self, _: &mut Command, _: &Path, _: &[(PathBuf, PathBuf)]) -> Result<()> {
        Err(EvalError::Sandbox(
            "running generated code needs Linux (namespaces); this platform has no sandbox".into(),
        ))
    }
}

/// Whether the sandbox's outer process `pid` has ended (it stays unreaped).
fn exited(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    return isolate::exited(pid);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = pid;
        true
    };
}

/// SIGKILLs the process group the sandbox's session leader `pid` leads.
fn kill_group(pid: u32) {
    #[cfg(target_os = "linux")]
    isolate::kill_group(pid);
    #[cfg(not(target_os = "linux"))]
    let _ = pid;
}

/// The environment a program keeps: enough to find interpreters and toolchains.
fn passed_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        "PATH",
        "LANG",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "RUSTUP_TOOLCHAIN",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
    .collect();
    // rustup's proxies find their toolchains from HOME, which the sandbox replaces.
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        for (k, sub) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
            if !env.iter().any(|(e, _)| e == k) && home.join(sub).is_dir() {
                env.push((k.into(), home.join(sub).display().to_string()));
            }
        }
    }
    env
}

/// The sandbox's files must be readable by the unprivileged user it may run as.
fn open_up(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::iter::once(dir.to_path_buf()).chain(
        std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .map(|e| e.path()),
    ) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))
            .map_err(io_err(&entry))?;
        if entry.is_dir() && entry != dir {
            open_up(&entry)?;
        }
    }
    Ok(())
}

fn verdict_of(status: std::process::ExitStatus) -> Verdict {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Verdict::Passed,
        // The sandbox's outer process reports a signal that ended the program as 128+N.
        (Some(c), _) if c > 128 && c < 128 + 65 => Verdict::Signaled { signal: c - 128 },
        (Some(c), _) => Verdict::Failed { exit_code: c },
        (None, Some(s)) => Verdict::Signaled { signal: s },
        (None, None) => Verdict::Failed { exit_code: -1 },
    }
}

/// The last `n` bytes of a file, as text.
fn tail(path: &Path, n: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![];
    use std::io::Seek;
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(n)));
    let _ = f.take(n).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
