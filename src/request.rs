//! The members every request shares (`realm`, `config`, `cache_dir`) and typed access to the
//! others. Errors name the member, never its value.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::config::{is_loopback_url, RealmConfig};
use crate::error::{Code, Error, Result};
use crate::http::Transport;

pub struct Request {
    pub realm: String,
    pub cfg: RealmConfig,
    pub cache_dir: Option<PathBuf>,
    pub body: Map<String, Value>,
}

/// The outside world of one call: the clock and the network (both replaced in tests).
pub struct Env<'a> {
    pub now: u64,
    pub http: &'a dyn Transport,
}

pub fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::RequestInvalid, msg)
}

/// PVE realm names: a letter, then letters, digits, `.`, `-`, `_` (also safe as a file name).
pub fn is_realm_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
}

impl Request {
    pub fn parse(v: Value) -> Result<Request> {
        let Value::Object(body) = v else {
            return Err(invalid("request must be a JSON object"));
        };
        let realm = match body.get("realm") {
            Some(Value::String(r)) if is_realm_name(r) => r.clone(),
            Some(_) => return Err(invalid("`realm` must be a PVE realm name")),
            None => return Err(invalid("`realm` is required")),
        };
        let cfg = RealmConfig::from_json(body.get("config").unwrap_or(&Value::Null))?;
        let cache_dir = match body.get("cache_dir") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) if d.starts_with('/') => Some(PathBuf::from(d)),
            Some(_) => return Err(invalid("`cache_dir` must be an absolute path")),
        };
        Ok(Request { realm, cfg, cache_dir, body })
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(format!("`{name}` must be a string"))),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(invalid(format!("`{name}` is required"))),
        }
    }

    /// The URL PVE is reached at, which Entra redirects the browser back to.
    pub fn redirect_url(&self) -> Result<String> {
        let url = self.str("redirect_url")?;
        check_redirect_url(url).map_err(invalid)?;
        Ok(url.to_string())
    }
}

/// `https://host[:port][/path]` without query, fragment or credentials (http only for loopback).
pub fn check_redirect_url(url: &str) -> std::result::Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if url.starts_with("http://") && is_loopback_url(url) {
        &url[7..]
    } else {
        return Err("`redirect_url` must be an https URL (Entra requires https except for localhost)".into());
    };
    if url.len() > 2048 || rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@']) || !url.chars().all(|c| c.is_ascii_graphic()) {
        return Err("`redirect_url` must be like https://host:8006 (no query, fragment or user info)".into());
    }
    Ok(())
}
