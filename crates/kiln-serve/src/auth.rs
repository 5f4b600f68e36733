//! Bearer-key authentication for the `/v1` routes. With no keys configured every client
//! is let in (as one client, for rate limiting).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ServeError;
use crate::openai::error::ApiError;
use crate::state::AppState;

/// Who a request is, for rate limits: its API key, or `anonymous` without keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);

#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<String>,
}

impl ApiKeys {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
        keys.sort();
        keys.dedup();
        Self { keys }
    }

    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The client a request's `Authorization: Bearer KEY` (or `x-api-key`) names.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<ClientId, ApiError> {
        if !self.is_enabled() {
            return Ok(ClientId("anonymous".into()));
        }
        let given = bearer(headers).ok_or_else(|| {
            ApiError::unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
            )
        })?;
        // Compare against every key in constant time, so timing does not leak prefixes.
        let found = self.keys.iter().fold(false, |hit, k| {
            hit | constant_time_eq(k.as_bytes(), given.as_bytes())
        });
        if found {
            Ok(ClientId(given.to_string()))
        } else {
            Err(ApiError::unauthorized("Incorrect API key provided."))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, key) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim())
            .filter(|k| !k.is_empty());
    }
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Keys from a file, one per line; blank lines and `#` comments are skipped.
pub fn read_key_file(path: &Path) -> Result<Vec<String>, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServeError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        return Err(ServeError::EmptyKeyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// Middleware: 401 unless the request carries a configured key; the [`ClientId`] goes into
/// the request's extensions.
pub async fn require_key(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = state.keys.authorize(req.headers())?;
    req.extensions_mut().insert(client);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn keys_are_checked() {
        let keys = ApiKeys::new(["k1".to_string(), "k2".to_string()]);
        let ok = keys.authorize(&headers(&[("authorization", "Bearer k2")]));
        assert_eq!(ok.unwrap(), ClientId("k2".into()));
        assert!(keys.authorize(&headers(&[("x-api-key", "k1")])).is_ok());
        assert!(keys
            .authorize(&headers(&[("authorization", "Bearer k3")]))
            .is_err());
        assert!(keys
            .authorize(&headers(&[("authorization", "k1")]))
            .is_err());
        assert!(keys.authorize(&HeaderMap::new()).is_err());
        let open = ApiKeys::new([]);
        assert_eq!(open.authorize(&HeaderMap::new()).unwrap().0, "anonymous");
    }
}
