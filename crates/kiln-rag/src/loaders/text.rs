//! Plain files: the whole file is one document whose id is its path.

use std::path::Path;

use crate::document::Document;
use crate::error::{io_err, RagError, Result};

/// The file as UTF-8 (a binary or mis-encoded file is an error naming the byte offset).
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    String::from_utf8(bytes).map_err(|e| RagError::Parse {
        path: path.to_path_buf(),
        line: 0,
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// A whole-file document: id = the path as given, title = `title` or the file stem.
pub fn file_document(path: &Path, title: Option<String>, text: String) -> Document {
    let stem = path
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    Document {
        id: path.to_string_lossy().into_owned(),
        title: title.filter(|t| !t.is_empty()).unwrap_or(stem),
        source: path.to_path_buf(),
        offset: 0,
        text,
        meta: Default::default(),
    }
}
