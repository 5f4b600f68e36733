//! Files to documents, by extension: `.txt` (and anything unrecognised that is UTF-8 text),
//! `.md`/`.markdown`, `.html`/`.htm` (text extraction), `.jsonl` (`{"id","title","text"}`
//! a line), and dictd dictionaries (`NAME.index` beside `NAME.dict` or `NAME.dict.dz`, one
//! document per entry). Directories are walked in sorted order. A file that cannot be read
//! is listed in `skipped` with its reason and the rest go on; an empty document is skipped
//! the same way.

mod dictd;
mod html;
mod jsonl;
mod text;

use std::path::{Path, PathBuf};

pub use dictd::read_dictd;
pub use html::html_to_text;
pub use jsonl::read_jsonl;

use crate::document::Document;
use crate::error::{io_err, RagError, Result};

/// What loading gave: the documents, and what was left out and why.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Vec<Document>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Loads every file under `paths` (files or directories).
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded> {
    let mut files = vec![];
    for p in paths {
        if !p.exists() {
            return Err(RagError::Io {
                path: p.clone(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
        walk(p, &mut files)?;
    }
    let mut out = Loaded::default();
    for f in files {
        match load_file(&f) {
            Ok(docs) => {
                for d in docs {
                    if d.text.trim().is_empty() {
                        out.skipped
                            .push((f.clone(), format!("document '{}' is empty", d.id)));
                    } else {
                        out.documents.push(d);
                    }
                }
            }
            Err(e) => out.skipped.push((f.clone(), e.to_string())),
        }
    }
    Ok(out)
}

fn walk(p: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if p.is_file() {
        files.push(p.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(io_err(p))?
        .flatten()
        .map(|e| e.path())
        .filter(|e| {
            !e.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for e in entries {
        walk(&e, files)?;
    }
    Ok(())
}

fn extension(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// One file's documents. A dictd `.dict`/`.dict.dz` is read through its `.index`; the
/// `.index` file itself yields nothing.
pub fn load_file(path: &Path) -> Result<Vec<Document>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".dict.dz") || name.ends_with(".dict") {
        return read_dictd(path);
    }
    match extension(path).as_str() {
        "index"
            if path.with_extension("dict").exists() || path.with_extension("dict.dz").exists() =>
        {
            Ok(vec![])
        }
        "jsonl" => read_jsonl(path),
        "html" | "htm" => {
            let raw = text::read_utf8(path)?;
            let (title, body) = html_to_text(&raw);
            Ok(vec![text::file_document(path, title, body)])
        }
        "md" | "markdown" => {
            let raw = text::read_utf8(path)?;
            let title = raw
                .lines()
                .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_string()));
            Ok(vec![text::file_document(path, title, raw)])
        }
        _ => {
            let raw = text::read_utf8(path)?;
            Ok(vec![text::file_document(path, None, raw)])
        }
    }
}
