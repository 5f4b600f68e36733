//! `--model NAME=PATH` (or a plain `PATH`, named by its file stem).

use std::path::{Path, PathBuf};

use crate::error::ServeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
}

impl ModelSpec {
    pub fn parse(spec: &str) -> Result<Self, ServeError> {
        let bad = |reason: &str| ServeError::ModelSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        // NAME=PATH when the part before '=' is a plain name (a path may contain '=').
        if let Some((name, path)) = spec.split_once('=') {
            if !name.is_empty() && !name.contains('/') && !Path::new(spec).exists() {
                if path.is_empty() {
                    return Err(bad("the path after NAME= is empty"));
                }
                return Ok(Self {
                    name: name.to_string(),
                    path: PathBuf::from(path),
                });
            }
        }
        let path = PathBuf::from(spec);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("cannot name the model after this path; use NAME=PATH"))?;
        Ok(Self {
            name: stem.to_string(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let s = ModelSpec::parse("small=/models/a.gguf").unwrap();
        assert_eq!(
            (s.name.as_str(), s.path.as_path()),
            ("small", Path::new("/models/a.gguf"))
        );
        let s = ModelSpec::parse("/models/SmolLM2.Q4_1.gguf").unwrap();
        assert_eq!(s.name, "SmolLM2.Q4_1");
        let s = ModelSpec::parse("/models/run-dir/").unwrap();
        assert_eq!(s.name, "run-dir");
        assert!(ModelSpec::parse("x=").is_err());
        assert!(ModelSpec::parse("").is_err());
    }
}
