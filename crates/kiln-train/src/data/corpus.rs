//! Reading a text corpus: UTF-8 files, each kept whole with its path so that errors and the
//! shard manifest can name it.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// One input file's text.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

/// Reads one UTF-8 file, naming the file and the byte offset of the first invalid byte.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, "read", e))?;
    String::from_utf8(bytes).map_err(|e| TrainError::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Reads every file in order. Fails when there are no files or when all of them are empty
/// (or only whitespace), naming them: training a tokenizer or writing shards from nothing is
/// always a mistake (often a wrong glob).
pub fn read_corpus(paths: &[PathBuf]) -> Result<Vec<SourceText>> {
    let sources = paths
        .iter()
        .map(|p| {
            Ok(SourceText {
                path: p.clone(),
                text: read_text(p)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if sources.iter().all(|s| s.text.trim().is_empty()) {
        return Err(TrainError::EmptyCorpus {
            files: paths.to_vec(),
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn non_utf8_names_path_and_offset() {
        let f = file(b"abc\xffdef");
        let e = read_corpus(&[f.path().into()]).unwrap_err();
        assert!(matches!(e, TrainError::NotUtf8 { offset: 3, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&f.path().display().to_string()) && msg.contains("offset 3"));
    }

    #[test]
    fn missing_file_is_named() {
        let p = PathBuf::from("/nonexistent/kiln/corpus.txt");
        let e = read_corpus(std::slice::from_ref(&p)).unwrap_err();
        assert!(matches!(e, TrainError::MissingFile { .. }), "{e}");
        assert_eq!(e.to_string(), "/nonexistent/kiln/corpus.txt: no such file");
    }

    #[test]
    fn empty_corpus_names_every_file() {
        let (a, b) = (file(b""), file(b" \n\t\r\n"));
        let e = read_corpus(&[a.path().into(), b.path().into()]).unwrap_err();
        assert!(matches!(e, TrainError::EmptyCorpus { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&a.path().display().to_string()));
        assert!(msg.contains(&b.path().display().to_string()));
        assert!(matches!(
            read_corpus(&[]).unwrap_err(),
            TrainError::EmptyCorpus { .. }
        ));
    }

    #[test]
    fn one_empty_file_among_others_is_fine() {
        let (a, b) = (file(b""), file("héllo".as_bytes()));
        let s = read_corpus(&[a.path().into(), b.path().into()]).unwrap();
        assert_eq!(s[1].text, "héllo");
    }
}
