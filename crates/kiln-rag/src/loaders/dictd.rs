//! dictd dictionaries (FOLDOC, ...): `NAME.index` lists `headword \t offset \t length` with
//! offset and length in dictd's base64, pointing into the uncompressed `NAME.dict`
//! (`.dict.dz` is dictzip, which gzip reads). One document per entry; headwords that share
//! an entry (synonyms) give it once, under the first. The `00-database-*` entries are the
//! dictionary's own metadata and are left out.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::document::Document;
use crate::error::{io_err, RagError, Result};
use crate::loaders::text::read_utf8;

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_number(s: &str) -> Option<u64> {
    s.bytes().try_fold(0u64, |acc, c| {
        let d = B64.iter().position(|&b| b == c)? as u64;
        acc.checked_mul(64)?.checked_add(d)
    })
}

fn index_path(dict: &Path) -> PathBuf {
    let name = dict
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.trim_end_matches(".dz").trim_end_matches(".dict");
    dict.with_file_name(format!("{stem}.index"))
}

pub fn read_dictd(dict: &Path) -> Result<Vec<Document>> {
    let index = index_path(dict);
    let listing = read_utf8(&index)?;
    let file = std::fs::File::open(dict).map_err(io_err(dict))?;
    let mut body = vec![];
    if dict.extension().is_some_and(|e| e == "dz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut body)
            .map_err(io_err(dict))?;
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut body)
            .map_err(io_err(dict))?;
    }
    let mut docs = vec![];
    let mut by_offset: HashMap<u64, usize> = HashMap::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, line) in listing.lines().enumerate() {
        let err = |message: String| RagError::Parse {
            path: index.clone(),
            line: i + 1,
            message,
        };
        let mut cols = line.split('\t');
        let (Some(head), Some(off), Some(len)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(err("expected 'headword<TAB>offset<TAB>length'".into()));
        };
        if head.starts_with("00-database") || head.starts_with("00database") {
            continue;
        }
        let (Some(off), Some(len)) = (b64_number(off), b64_number(len)) else {
            return Err(err(format!(
                "offset '{off}' or length '{len}' is not dictd base64"
            )));
        };
        let end = off
            .checked_add(len)
            .filter(|&e| e <= body.len() as u64)
            .ok_or_else(|| {
                err(format!(
                    "entry [{off}, +{len}) runs past the dictionary's {} bytes",
                    body.len()
                ))
            })?;
        if by_offset.contains_key(&off) {
            continue;
        }
        let text = String::from_utf8_lossy(&body[off as usize..end as usize]).into_owned();
        // Two entries under one headword (rare) keep apart as "word", "word#2".
        let n = ids.entry(head.to_string()).or_insert(0);
        *n += 1;
        let id = if *n == 1 {
            head.to_string()
        } else {
            format!("{head}#{n}")
        };
        by_offset.insert(off, docs.len());
        docs.push(Document {
            id,
            title: head.to_string(),
            source: dict.to_path_buf(),
            offset: off,
            text,
            meta: Default::default(),
        });
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictd_base64_numbers() {
        assert_eq!(b64_number("A"), Some(0));
        assert_eq!(b64_number("K5"), Some(10 * 64 + 57));
        assert_eq!(
            b64_number("Gb9L"),
            Some(((6 * 64 + 27) * 64 + 61) * 64 + 11)
        );
        assert_eq!(b64_number("a-b"), None);
    }
}
