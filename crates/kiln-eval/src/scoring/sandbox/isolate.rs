//! The Linux confinement applied in the child between fork and exec. Everything here runs
//! in a forked copy of a multi-threaded process, so it only makes system calls: every
//! string and number it needs is prepared before the fork.
//!
//! Steps: a new session; new mount, network, IPC and PID namespaces (inside a new user
//! namespace when not root); the whole file system remounted read-only and a size-limited
//! tmpfs on the working directory; rlimits; as root, a throwaway uid of its own (so the
//! process limit counts only this run); then a fork, so that the program is PID 1 of its
//! namespace (when it exits, or its parent is killed at the timeout, the kernel kills every
//! process it started) while the parent waits and passes its exit status on.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::SandboxLimits;
use crate::error::{EvalError, Result};

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 1;

/// Throwaway uids for root's sandboxes start here (far above any real account).
const SANDBOX_UID_BASE: u32 = 1_500_000_000;
static NEXT_UID: AtomicU32 = AtomicU32::new(0);

fn cstring(s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| EvalError::Sandbox("a path holds a NUL byte".into()))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes `data` to the file at `path` (a NUL-terminated literal or prepared string).
fn write_file(path: &[u8], data: &[u8]) -> io::Result<()> {
    // SAFETY: path is NUL-terminated; the fd is closed on every path out.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: a plain system call on a stack value.
    check(unsafe { libc::setrlimit(resource, &lim) })
}

/// Whether the child `pid` has ended, leaving it to be reaped (waitid with WNOWAIT).
pub fn exited(pid: u32) -> bool {
    let id: libc::id_t = pid;
    // SAFETY: waitid fills the zeroed siginfo; WNOWAIT leaves the child waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r != 0 || info.si_pid() != 0
    }
}

/// SIGKILLs the sandbox's process group (led by its outer process, `pid`).
pub fn kill_group(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: a plain system call; ESRCH (nothing left) is the usual answer.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

pub fn confine(
    cmd: &mut Command,
    work: &Path,
    binds: &[(PathBuf, PathBuf)],
    limits: &SandboxLimits,
) -> Result<()> {
    // SAFETY: geteuid/getuid/getgid cannot fail.
    let (euid, uid, gid) = unsafe { (libc::geteuid(), libc::getuid(), libc::getgid()) };
    let as_root = euid == 0;
    let sandbox_uid = SANDBOX_UID_BASE
        + (std::process::id() % 1000) * 100_000
        + NEXT_UID.fetch_add(1, Ordering::Relaxed) % 100_000;
    if as_root {
        std::os::unix::fs::chown(work, Some(sandbox_uid), Some(sandbox_uid))
            .map_err(|e| EvalError::Sandbox(format!("{}: cannot chown: {e}", work.display())))?;
    }
    let work_c = cstring(work.as_os_str().as_bytes())?;
    let binds_c = binds
        .iter()
        .map(|(host, at)| {
            Ok((
                cstring(host.as_os_str().as_bytes())?,
                cstring(at.as_os_str().as_bytes())?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let uid_map = format!("{uid} {uid} 1").into_bytes();
    let gid_map = format!("{gid} {gid} 1").into_bytes();
    let tmpfs_opts = cstring(format!("size={},mode=0777", limits.disk_bytes).as_bytes())?;
    let limits = *limits;
    let cpu_seconds = limits.timeout.as_secs() + 1;

    let isolate = move || -> io::Result<()> {
        // SAFETY: system calls only, on data prepared before the fork.
        unsafe {
            check(libc::setsid())?;
            let mut flags =
                libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWPID;
            if !as_root {
                flags |= libc::CLONE_NEWUSER;
            }
            check(libc::unshare(flags))?;
            if !as_root {
                write_file(b"/proc/self/setgroups\0", b"deny")?;
                write_file(b"/proc/self/uid_map\0", &uid_map)?;
                write_file(b"/proc/self/gid_map\0", &gid_map)?;
            }
            let root = c"/".as_ptr();
            check(libc::mount(
                std::ptr::null(),
                root,
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            let ro = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            check(libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                root,
                libc::AT_RECURSIVE as libc::c_uint,
                &ro as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ) as libc::c_int)?;
            for (host, at) in &binds_c {
                // A bind of a read-only tree stays read-only.
                check(libc::mount(
                    host.as_ptr(),
                    at.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
            }
            check(libc::mount(
                c"tmpfs".as_ptr(),
                work_c.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                tmpfs_opts.as_ptr().cast(),
            ))?;
            check(libc::chdir(work_c.as_ptr()))?;
            set_limit(libc::RLIMIT_AS, limits.memory_bytes)?;
            set_limit(libc::RLIMIT_NPROC, limits.max_processes)?;
            set_limit(libc::RLIMIT_FSIZE, limits.disk_bytes)?;
            set_limit(libc::RLIMIT_CORE, 0)?;
            set_limit(libc::RLIMIT_CPU, cpu_seconds)?;
            if as_root {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(sandbox_uid))?;
                check(libc::setuid(sandbox_uid))?;
            }
            match libc::fork() {
                -1 => Err(io::Error::last_os_error()),
                0 => {
                    // PID 1 of the new namespace: dies (taking the namespace) with its parent.
                    check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
                    Ok(())
                }
                pid => {
                    // The waiting parent holds no descriptor but stdio (Command's exec-status
                    // pipe must close when the program execs, not when it ends).
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    let mut status = 0;
                    while libc::waitpid(pid, &mut status, 0) < 0 {
                        if *libc::__errno_location() != libc::EINTR {
                            libc::_exit(125);
                        }
                    }
                    if libc::WIFEXITED(status) {
                        libc::_exit(libc::WEXITSTATUS(status));
                    }
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
            }
        }
    };
    // SAFETY: the closure only makes system calls (see the module comment).
    unsafe {
        cmd.pre_exec(isolate);
    }
    Ok(())
}
