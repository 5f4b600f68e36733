//! Errors of TOML config files in the words of the file: `line N, key `k` in [table]: what
//! is wrong`, with a user's vocabulary (a number, a whole number) rather than Rust's type
//! names, and old key names answered with their new ones.

use serde::de::DeserializeOwned;

use super::settings::{StageDefaults, TrainSection, TrainSettings, RENAMED_KEYS};

/// Reads the config file at `path` with `parse`; an error names the file.
pub fn read_config<T>(
    path: &std::path::Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> crate::error::Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|e| crate::error::TrainError::io(path, "read", e))?;
    parse(&text).map_err(|msg| crate::error::TrainError::Config {
        path: path.into(),
        msg,
    })
}

/// A config file's text as `R`, and its `[train]` section (found by `train`) with `stage`'s
/// defaults; every error in the words of the file.
pub fn parse_config<R: DeserializeOwned>(
    text: &str,
    stage: &StageDefaults,
    train: impl FnOnce(&R) -> &TrainSection,
) -> Result<(R, TrainSettings), String> {
    let raw: R = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let settings = train(&raw)
        .resolve(stage)
        .map_err(|m| at_section(text, "train", m))?;
    Ok((raw, settings))
}

/// `line N, key `k` in [table]: what is wrong`, in words a user of the config knows (a number,
/// a whole number) rather than Rust's type names.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().trim_end().replace('\n', "; ");
    for (rust, words) in [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected usize", "expected a whole number >= 0"),
    ] {
        if msg.ends_with(rust) {
            msg = format!("{}{words}", &msg[..msg.len() - rust.len()]);
        }
    }
    for (old, new) in RENAMED_KEYS {
        if msg.starts_with(&format!("unknown field `{old}`")) {
            msg = format!(
                "`{old}` is now `{new}` (kiln train and kiln finetune share the [train] keys)"
            );
        }
    }
    let Some(span) = e.span() else {
        return msg;
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count();
    let table = text.lines().take(line + 1).filter_map(table_header).last();
    let here = text.lines().nth(line).unwrap_or("");
    let at = match (table_header(here), key_of(here), table) {
        (Some(t), _, _) => format!("line {}, in [{t}]", line + 1),
        (None, Some(k), Some(t)) => format!("line {}, key `{k}` in [{t}]", line + 1),
        (None, Some(k), None) => format!("line {}, key `{k}`", line + 1),
        (None, None, _) => format!("line {}", line + 1),
    };
    format!("{at}: {msg}")
}

/// `name` for a `[name]` or `[[name]]` line.
fn table_header(line: &str) -> Option<&str> {
    let l = line.trim();
    let (inner, _) = l.strip_prefix('[')?.split_once(']')?;
    Some(inner.trim_start_matches('[').trim()).filter(|n| !n.is_empty())
}

/// `key` for a `key = value` line (bare or dotted keys).
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

/// `msg` about `[section]` as a whole, located at its header line (`line N, in [train]:`).
/// Messages that already name their key as `[section] key` are left as they are.
pub fn at_section(text: &str, section: &str, msg: String) -> String {
    if msg.starts_with('[') {
        return msg;
    }
    match text.lines().position(|l| table_header(l) == Some(section)) {
        Some(i) => format!("line {}, in [{section}]: {msg}", i + 1),
        None => format!("[{section}]: {msg}"),
    }
}
