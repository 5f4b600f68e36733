//! Where requests go: the endpoint URL built from the user's base URL, and the loopback
//! check that keeps a load generator from hammering someone else's server by accident.

use std::net::IpAddr;

use serde::Serialize;
use url::Url;

use super::LoadgenError;

/// Which OpenAI route to drive; they differ in the prompt field and the streamed text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Completions,
    Chat,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Completions => "completions",
            Endpoint::Chat => "chat",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "completions",
            Endpoint::Chat => "chat/completions",
        }
    }
}

/// The full route URL for a base like `http://127.0.0.1:8080` or `http://host/v1`
/// (both spellings are common in OpenAI client configs).
pub fn endpoint_url(base: &str, endpoint: Endpoint) -> Result<Url, LoadgenError> {
    let invalid = |reason: String| LoadgenError::InvalidUrl {
        url: base.to_string(),
        reason,
    };
    let url = Url::parse(base).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("scheme {:?} is not http(s)", url.scheme())));
    }
    if url.host().is_none() {
        return Err(invalid("no host".to_string()));
    }
    let trimmed = url.path().trim_end_matches('/');
    let path = if trimmed.ends_with("/v1") {
        format!("{trimmed}/{}", endpoint.path())
    } else {
        format!("{trimmed}/v1/{}", endpoint.path())
    };
    let mut out = url.clone();
    out.set_path(&path);
    Ok(out)
}

/// True for 127.0.0.0/8, ::1 (and its IPv4-mapped form) and the name `localhost`. Other
/// names are not resolved: a name that points at loopback today may not tomorrow.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            IpAddr::V6(ip).is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// The endpoint URL, refused unless it is loopback or `allow_remote` is set.
pub fn checked_url(
    base: &str,
    endpoint: Endpoint,
    allow_remote: bool,
) -> Result<Url, LoadgenError> {
    let url = endpoint_url(base, endpoint)?;
    if !allow_remote && !is_loopback(&url) {
        return Err(LoadgenError::RemoteRefused {
            host: url.host_str().unwrap_or_default().to_string(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn loopback_addresses() {
        for s in [
            "http://127.0.0.1:8080",
            "http://127.9.8.7/",
            "http://[::1]:8000",
            "http://[::ffff:127.0.0.1]:80",
            "http://localhost:1234",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(is_loopback(&url(s)), "{s}");
        }
        for s in [
            "http://128.0.0.1/",
            "http://10.0.0.1/",
            "http://0.0.0.0/",
            "http://[::2]/",
            "https://api.openai.com/v1",
            "http://localhost.example.com/",
        ] {
            assert!(!is_loopback(&url(s)), "{s}");
        }
    }

    #[test]
    fn remote_refused_unless_allowed() {
        let e = checked_url("https://api.openai.com", Endpoint::Chat, false).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(checked_url("https://api.openai.com", Endpoint::Chat, true).is_ok());
        assert!(checked_url("http://127.0.0.1:8080", Endpoint::Chat, false).is_ok());
    }

    #[test]
    fn endpoint_paths() {
        let u = |b, e| endpoint_url(b, e).unwrap().to_string();
        assert_eq!(
            u("http://127.0.0.1:8080", Endpoint::Completions),
            "http://127.0.0.1:8080/v1/completions"
        );
        assert_eq!(
            u("http://127.0.0.1:8080/v1/", Endpoint::Chat),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            u("http://h/proxy", Endpoint::Chat),
            "http://h/proxy/v1/chat/completions"
        );
        assert!(endpoint_url("ftp://h/", Endpoint::Chat).is_err());
        assert!(endpoint_url("not a url", Endpoint::Chat).is_err());
    }
}
