//! Atomic file writes: a crash or a full disk never leaves a half-written file under the
//! final name. Data goes to a temp file in the same directory (so the rename cannot cross
//! filesystems), is fsynced, then renamed over the target; the directory is fsynced so the
//! rename itself survives a power cut.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Result, TrainError};

/// Writes `path` atomically with whatever `fill` writes. On any error the temp file is
/// removed and an existing `path` is left untouched.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Outputs may name a folder that does not exist yet (`--out runs/x/tokenizer.json`).
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, "create", e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kiln-tmp-");
    // tempfile creates 0600 files; these are ordinary outputs, so create them as
    // `File::create` would (0666 less the umask).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(dir, "create a temp file in", e))?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    fill(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| TrainError::io(path, "write", e))?;
    drop(w);
    tmp.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(path, "fsync", e))?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, "rename into place", e.error))?;
    sync_dir(dir)
}

/// Writes a byte string atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainError::io(dir, "fsync directory", e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    // Directories cannot be opened for fsync on Windows; the rename is already durable
    // enough there (MoveFileEx with write-through is what std uses).
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_the_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_bytes_atomic(&p, b"old").unwrap();
        let e = write_atomic(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }

    #[test]
    fn replaces_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_bytes_atomic(&p, b"old").unwrap();
        write_bytes_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }
}
