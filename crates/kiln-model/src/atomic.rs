//! Atomic file writes, the one way every kiln crate writes a file that a crash, a kill or a
//! full disk must not leave half-written: the data goes to a temp file in the same directory
//! (so the rename cannot cross filesystems), is fsynced, then renamed over the target, and
//! the directory is fsynced so the rename itself survives a power cut. On any error the temp
//! file is removed and an existing target is left untouched.
//!
//! It sits in the bottom crate because every crate above writes such files (adapters,
//! checkpoints, results, indexes); it knows nothing of models.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A failed atomic write: the file, what was being done, and the I/O error. The message is
/// one line, `PATH: cannot OP: ERROR`, so a CLI can print it as is.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot {op}: {err}", .path.display())]
pub struct AtomicWriteError {
    pub path: PathBuf,
    pub op: &'static str,
    pub err: std::io::Error,
}

impl AtomicWriteError {
    pub fn new(path: &Path, op: &'static str, err: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            op,
            err,
        }
    }
}

pub type Result<T> = std::result::Result<T, AtomicWriteError>;

/// The directory `path` lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A temp file beside `path`, created as `File::create` would (0666 less the umask, where
/// tempfile's default is 0600), in a directory made if missing (`--out runs/x/file.json`).
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| AtomicWriteError::new(dir, "create", e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kiln-tmp-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder
        .tempfile_in(dir)
        .map_err(|e| AtomicWriteError::new(dir, "create a temp file in", e))
}

/// fsyncs the temp file, renames it to `path` and fsyncs the directory.
fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| AtomicWriteError::new(path, "fsync", e))?;
    tmp.persist(path)
        .map_err(|e| AtomicWriteError::new(path, "rename into place", e.error))?;
    sync_dir(parent_dir(path))
}

/// Writes `path` atomically with whatever `fill` writes (buffered).
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let tmp = temp_beside(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    fill(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| AtomicWriteError::new(path, "write", e))?;
    drop(w);
    persist(tmp, path)
}

/// Writes a byte string atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically through a writer that wants a file name of its own (candle's
/// safetensors `save`): `fill` writes the temp path it is given.
pub fn write_atomic_via<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&Path) -> std::io::Result<()>,
{
    let tmp = temp_beside(path)?;
    fill(tmp.path()).map_err(|e| AtomicWriteError::new(path, "write", e))?;
    persist(tmp, path)
}

/// fsyncs a file written in place (the files of a directory that is then renamed into place
/// as a whole, such as a checkpoint).
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| AtomicWriteError::new(path, "fsync", e))
}

/// fsyncs a directory, so renames in it survive a power cut.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AtomicWriteError::new(dir, "fsync directory", e))
}

/// Directories cannot be opened for fsync on Windows; the rename is durable enough there
/// (std's MoveFileEx uses write-through).
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

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
        assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(dir.path()), 1, "temp file left behind");
    }

    #[test]
    fn replaces_existing_file_and_makes_missing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/x.bin");
        write_bytes_atomic(&p, b"old").unwrap();
        write_bytes_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn a_path_writer_writes_through_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        write_atomic_via(&p, |tmp| {
            assert_ne!(tmp, p.as_path());
            std::fs::write(tmp, b"weights")
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"weights");
        let e = write_atomic_via(&p, |_| Err(std::io::Error::other("no space"))).unwrap_err();
        assert!(e.to_string().contains("no space"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"weights");
        assert_eq!(entries(dir.path()), 1, "temp file left behind");
    }
}
