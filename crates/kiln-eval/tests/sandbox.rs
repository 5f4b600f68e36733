//! The code sandbox against hostile programs: each is stopped or contained, scored as a
//! failure, and leaves nothing running behind it.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kiln_eval::scoring::sandbox::{Sandbox, SandboxLimits, Verdict};

fn python() -> Option<&'static str> {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("python3");
    }
    assert!(
        std::env::var("KILN_REQUIRE_ASSETS").as_deref() != Ok("1"),
        "python3 is required (KILN_REQUIRE_ASSETS=1)"
    );
    eprintln!("SKIPPED: no python3 on PATH");
    None
}

fn sandbox(timeout_s: u64) -> Sandbox {
    Sandbox::new(SandboxLimits {
        timeout: Duration::from_secs(timeout_s),
        ..SandboxLimits::default()
    })
}

/// Runs a Python program in the sandbox with a marker in its command line, so that
/// surviving processes can be found afterwards.
fn run_py(
    sb: &Sandbox,
    py: &str,
    code: &str,
    marker: &str,
) -> kiln_eval::scoring::sandbox::Outcome {
    sb.run(
        &[("main.py", code.as_bytes())],
        py,
        &["{dir}/main.py", marker],
    )
    .expect("the sandbox starts")
}

/// Processes whose command line holds `marker` (after a moment for the kernel to reap).
fn survivors(marker: &str) -> usize {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

fn marker(name: &str) -> String {
    format!("kiln-sandbox-test-{name}-{}", std::process::id())
}

#[test]
fn a_correct_program_passes_and_a_failing_assertion_fails() {
    let Some(py) = python() else { return };
    let sb = sandbox(10);
    let ok = run_py(&sb, py, "assert sum(range(10)) == 45\n", "ok");
    assert_eq!(ok.verdict, Verdict::Passed, "{}", ok.stderr_tail);
    let bad = run_py(&sb, py, "assert sum(range(10)) == 46\n", "bad");
    assert_eq!(bad.verdict, Verdict::Failed { exit_code: 1 });
    assert!(
        bad.stderr_tail.contains("AssertionError"),
        "{}",
        bad.stderr_tail
    );
}

#[test]
fn an_endless_loop_is_killed_at_the_timeout() {
    let Some(py) = python() else { return };
    let m = marker("loop");
    let out = run_py(&sandbox(2), py, "while True:\n    pass\n", &m);
    assert_eq!(out.verdict, Verdict::TimedOut);
    assert!(out.seconds < 4.0, "took {} s", out.seconds);
    assert_eq!(survivors(&m), 0);
}

#[test]
fn allocating_ten_gigabytes_fails() {
    let Some(py) = python() else { return };
    let out = run_py(
        &sandbox(20),
        py,
        "x = bytearray(10 * 1024**3)\nx[-1] = 1\n",
        "alloc",
    );
    assert!(!out.verdict.passed());
    assert!(out.stderr_tail.contains("MemoryError"), "{:?}", out);
}

#[test]
fn a_fork_bomb_is_contained_and_leaves_no_process() {
    let Some(py) = python() else { return };
    let m = marker("forkbomb");
    let code =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let out = run_py(&sandbox(3), py, code, &m);
    assert!(!out.verdict.passed(), "{out:?}");
    assert_eq!(survivors(&m), 0);
}

#[test]
fn a_detached_child_dies_with_the_program() {
    let Some(py) = python() else { return };
    let m = marker("daemon");
    let code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n";
    let out = run_py(&sandbox(10), py, code, &m);
    assert_eq!(out.verdict, Verdict::Passed, "{}", out.stderr_tail);
    assert_eq!(survivors(&m), 0);
}

#[test]
fn writes_land_only_in_the_private_working_directory() {
    let Some(py) = python() else { return };
    let outside = tempfile::tempdir().unwrap();
    // World-writable, so that only the sandbox (not file permissions) can stop the write.
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = outside.path().join("escaped.txt");
    let sb = sandbox(10);
    let local = run_py(
        &sb,
        py,
        "open('scratch.txt', 'w').write('x')\nassert open('scratch.txt').read() == 'x'\n",
        "local",
    );
    assert_eq!(local.verdict, Verdict::Passed, "{}", local.stderr_tail);
    for path in [target.as_path(), Path::new("/tmp/kiln-sandbox-escape.txt")] {
        let code = format!(
            "open({:?}, 'w').write('escaped')\n",
            path.display().to_string()
        );
        let out = run_py(&sb, py, &code, "escape");
        assert!(!out.verdict.passed(), "{out:?}");
        assert!(
            out.stderr_tail.contains("Read-only file system"),
            "{}",
            out.stderr_tail
        );
        assert!(!path.exists(), "{} was written", path.display());
    }
}

#[test]
fn the_network_is_unreachable() {
    let Some(py) = python() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n"
    );
    let out = run_py(&sandbox(10), py, &code, "net");
    assert!(!out.verdict.passed(), "{out:?}");
    assert!(
        listener.accept().is_err(),
        "the sandbox reached the host's listener"
    );
}
