//! Ctrl-C for training commands: the first press sets a flag the trainer checks after every
//! step (it then checkpoints and returns); a second press exits at once, for when the user
//! does not want to wait for the step to finish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};

/// The process's stop flag, with the Ctrl-C handler installed on first use (the `ctrlc`
/// crate allows one handler per process, so every caller shares this flag).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without a checkpoint");
            // 130 = 128 + SIGINT, what a shell reports for a process ended by Ctrl-C.
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: finishing this step, then writing a checkpoint (Ctrl-C again to quit now)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| flag).clone())
}
