//! Runs a code item's tested program in the sandbox: Python through the interpreter, Rust
//! compiled as a test binary and run (compile and run share the sandbox and its timeout).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::scoring::sandbox::{Outcome, Sandbox, SandboxLimits};
use crate::tasks::code_item::{CodeItem, Language};

pub struct CodeExecutor {
    pub python: String,
    pub rustc: String,
    python_box: Sandbox,
    rust_box: Sandbox,
}

impl CodeExecutor {
    /// `limits` holds for Python programs; Rust gets at least 30 s and 4 GiB of address
    /// space, since compiling is part of its run.
    pub fn new(limits: SandboxLimits, python: &str, rustc: &str) -> Self {
        let rust_limits = SandboxLimits {
            timeout: limits.timeout.max(Duration::from_secs(30)),
            memory_bytes: limits.memory_bytes.max(4 << 30),
            disk_bytes: limits.disk_bytes.max(256 << 20),
            ..limits
        };
        // The toolchain is bound into the sandbox whole: rustup's proxy and toolchains
        // often live in a home the sandbox's user cannot enter.
        let sysroot = Command::new(rustc)
            .args(["--print", "sysroot"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let rust_box = match &sysroot {
            Some(root) => Sandbox::new(rust_limits).with_bind(root.clone(), "toolchain"),
            None => Sandbox::new(rust_limits),
        };
        Self {
            python: python.into(),
            rustc: match sysroot {
                Some(_) => "{dir}/toolchain/bin/rustc".into(),
                None => rustc.into(),
            },
            python_box: Sandbox::new(limits),
            rust_box,
        }
    }

    /// Whether `completion` passes the item's tests.
    pub fn check(&self, item: &CodeItem, completion: &str) -> Result<Outcome> {
        let program = item.program(completion);
        match item.language {
            Language::Python => self.python_box.run(
                &[("main.py", program.as_bytes())],
                &self.python,
                &["{dir}/main.py"],
            ),
            Language::Rust => {
                let script = format!(
                    "{} --edition 2021 --test -C debuginfo=0 -o main {{dir}}/main.rs && \
                     RUST_TEST_THREADS=1 ./main -q",
                    self.rustc
                );
                self.rust_box
                    .run(&[("main.rs", program.as_bytes())], "sh", &["-c", &script])
            }
        }
    }
}
