//! The requests of the entry points, typed: the members every request shares (`realm`,
//! `config`, `cache_dir`) and, per entry point, a `deny_unknown_fields` struct of the others.
//! An error names the member's path (`config.allow-guests`), never its value: it could be a secret.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::config::RealmConfig;
use crate::error::{Code, Error, Result};
use crate::http::Transport;
use crate::typed::typed;

/// A request of one entry point: the shared members and that entry point's `body`.
pub struct Request<B = NoMembers> {
    pub realm: String,
    pub cfg: RealmConfig,
    pub cache_dir: Option<PathBuf>,
    pub body: B,
}

/// check_config: no members of its own.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoMembers {}

/// sync_directory: the realm's identity pins (user name without realm → the Entra identity it
/// is bound to), as the Perl side keeps them; they name the guests (see `sync`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncMembers {
    #[serde(default)]
    pub pins: std::collections::BTreeMap<String, Pin>,
}

/// One identity pin (the pins file may say more; only these count, and a pin without them
/// names nobody).
#[derive(Deserialize)]
pub struct Pin {
    #[serde(default)]
    pub tid: String,
    #[serde(default)]
    pub oid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthUrlMembers {
    pub redirect_url: String,
    pub state_key_file: String,
    pub binding_hash: String,
    pub login_hint: Option<String>,
    // the anonymous budget (see `Caller`)
    run_dir: Option<String>,
    #[serde(default)]
    client_address: String,
    rate_limits: Option<RateLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginMembers {
    pub code: String,
    pub state: String,
    pub binding_key: String,
    pub state_key_file: String,
    // the anonymous budget (see `Caller`)
    run_dir: Option<String>,
    #[serde(default)]
    client_address: String,
    rate_limits: Option<RateLimits>,
}

/// workload_token: a workload's Entra access token for this realm's app, to be exchanged for a
/// PVE ticket.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadTokenMembers {
    pub access_token: String,
    // the anonymous budget (see `Caller`)
    run_dir: Option<String>,
    #[serde(default)]
    client_address: String,
    rate_limits: Option<RateLimits>,
}

/// refuse_token: a workload token the library accepted and PVE's side refused (pin, user).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefuseTokenMembers {
    /// `token_id` of the workload_token answer.
    pub token_id: String,
    /// `refused_until` of the workload_token answer.
    pub refused_until: u64,
}

/// refuse_realm: an anonymous call naming a realm that is not an entraid realm. Not a
/// [`Request`]: there is no realm config to send, and the call is only charged and refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefuseRealmMembers {
    /// The name the caller sent (only for the message).
    pub realm: String,
    /// The realm's type when it exists (`pam`, `openid`, ...), else absent or null.
    pub realm_type: Option<String>,
    // the anonymous budget (see `Caller`)
    run_dir: Option<String>,
    #[serde(default)]
    client_address: String,
    rate_limits: Option<RateLimits>,
}

/// What the anonymous entry points (auth_url, login, refuse_realm) are charged to (`ratelimit::admit`):
/// `run_dir` holds the budget table (the Perl side always sends it; without it nothing is
/// limited), `client_address` is the address PVE's API server saw (`""`: unknown), and
/// `rate_limits` replaces the default budgets (tests).
pub struct Caller<'a> {
    pub run_dir: Option<&'a str>,
    pub client_address: &'a str,
    pub rate_limits: Option<&'a RateLimits>,
}

/// `{"address": {"burst", "per_minute"}, "ipv6_56": {...}, "ipv6_48": {...}, "realm": {...}}`,
/// each member optional (`ratelimit::Limits`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub address: Option<BudgetMembers>,
    pub ipv6_56: Option<BudgetMembers>,
    pub ipv6_48: Option<BudgetMembers>,
    pub realm: Option<BudgetMembers>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct BudgetMembers {
    pub burst: Option<u32>,
    pub per_minute: Option<u32>,
}

macro_rules! caller_of {
    ($($members:ty),*) => {$(
        impl $members {
            pub fn caller(&self) -> Caller<'_> {
                Caller { run_dir: self.run_dir.as_deref(), client_address: &self.client_address, rate_limits: self.rate_limits.as_ref() }
            }
        }
    )*};
}
caller_of!(AuthUrlMembers, LoginMembers, RefuseRealmMembers, WorkloadTokenMembers);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapMembers {
    /// The `claims` object of a login answer.
    pub claims: crate::claims::Claims,
    #[serde(default)]
    pub groups: Vec<String>,
    pub username: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckMembers {
    /// Optional: a missing one is reported as a failed step.
    pub redirect_url: Option<String>,
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

impl<B: DeserializeOwned> Request<B> {
    pub fn parse(v: Value) -> Result<Request<B>> {
        let Value::Object(mut body) = v else {
            return Err(invalid("request must be a JSON object"));
        };
        let realm = match body.remove("realm") {
            Some(Value::String(r)) if is_realm_name(&r) => r,
            Some(_) => return Err(invalid("`realm` must be a PVE realm name")),
            None => return Err(invalid("`realm` is required")),
        };
        let cfg = RealmConfig::from_value(body.remove("config").unwrap_or(Value::Null))?;
        let cache_dir = match body.remove("cache_dir") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) if d.starts_with('/') => Some(PathBuf::from(d)),
            Some(_) => return Err(invalid("`cache_dir` must be an absolute path")),
        };
        let body = typed(Value::Object(body), Code::RequestInvalid, "")?;
        Ok(Request { realm, cfg, cache_dir, body })
    }
}

/// A required text member: present and not empty.
pub fn required<'a>(value: &'a str, name: &str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(invalid(format!("`{name}` is required")));
    }
    Ok(value)
}

/// The URL Entra redirects the browser back to: the one PVE is reached at, or, when the realm
/// allows it, the loopback listener of a command-line client (`pve-entraid-login`).
pub fn redirect_url(url: &str, cfg: &RealmConfig) -> Result<String> {
    check_redirect_url(url, cfg.allow_loopback_redirect).map_err(|(code, msg)| Error::new(code, msg))?;
    Ok(url.to_string())
}

/// `https://host[:port][/path]` without query, fragment or credentials; or, only with
/// `allow_loopback` (the realm's `allow-loopback-redirect`), a loopback redirect
/// ([`is_loopback_redirect`]). Any other `http://` URL is refused, a loopback one with
/// `request.redirect_not_allowed` (the code a client can explain).
pub fn check_redirect_url(url: &str, allow_loopback: bool) -> std::result::Result<(), (Code, String)> {
    if is_loopback_redirect(url) {
        if !allow_loopback {
            return Err((Code::RequestRedirectNotAllowed, "`redirect_url` is a loopback URL, which this realm does not accept (allow-loopback-redirect)".into()));
        }
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err((Code::RequestInvalid, "`redirect_url` must be an https URL (Entra requires https except for localhost)".into()));
    };
    if url.len() > 2048 || rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@']) || !url.chars().all(|c| c.is_ascii_graphic()) {
        return Err((Code::RequestInvalid, "`redirect_url` must be like https://host:8006 (no query, fragment or user info)".into()));
    }
    Ok(())
}

/// The redirect URL of a command-line client's loopback listener: exactly `http://localhost`
/// or `http://127.0.0.1`, any port, path `/` or none; no user info, query or fragment. (Entra
/// matches a registered `http://localhost` whatever the port; RFC 8252 7.3.)
pub fn is_loopback_redirect(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    matches!(host, "localhost" | "127.0.0.1") && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: &[&str] = &[
        "http://localhost",
        "http://localhost/",
        "http://localhost:1",
        "http://localhost:49152",
        "http://localhost:65535/",
        "http://127.0.0.1",
        "http://127.0.0.1/",
        "http://127.0.0.1:8400",
    ];

    const REFUSED: &[&str] = &[
        "http://localhost:0",
        "http://localhost:65536",
        "http://localhost:123456",
        "http://localhost:",
        "http://localhost:+80",
        "http://localhost:80x",
        "http://localhost/cb",
        "http://localhost//",
        "http://localhost:8080/callback",
        "http://localhost?x=1",
        "http://localhost/?code=1",
        "http://localhost#f",
        "http://localhost:8080/#",
        "http://user@localhost:8080",
        "http://localhost@evil.example",
        "http://localhost.evil.example",
        "http://localhost:8080.evil.example",
        "http://evil.example/localhost",
        "http://LOCALHOST:8080",
        "http://127.0.0.2:8080",
        "http://127.1:8080",
        "http://0.0.0.0:8080",
        "http://[::1]:8080",
        "http://127.0.0.1.nip.io",
        "http://localhost\\@evil.example",
        "http://localhost:8080 ",
        "http:/localhost",
        "http//localhost",
        "https://localhost:8080",
        "ftp://localhost",
        "localhost:8080",
        "",
    ];

    #[test]
    fn loopback_redirects_accepted_and_refused() {
        for url in ACCEPTED {
            assert!(is_loopback_redirect(url), "{url} must be a loopback redirect");
            assert_eq!(check_redirect_url(url, true), Ok(()), "{url}");
            let (code, msg) = check_redirect_url(url, false).unwrap_err();
            assert_eq!(code, Code::RequestRedirectNotAllowed, "{url}: {msg}");
        }
        for url in REFUSED {
            assert!(!is_loopback_redirect(url), "{url} must not be a loopback redirect");
            if !url.starts_with("https://") {
                for allow in [true, false] {
                    let (code, msg) = check_redirect_url(url, allow).unwrap_err();
                    assert_eq!(code, Code::RequestInvalid, "{url} (allow {allow}): {msg}");
                }
            }
        }
    }

    #[test]
    fn https_redirects_do_not_depend_on_the_option() {
        for allow in [true, false] {
            assert_eq!(check_redirect_url("https://pve1.example.com:8006", allow), Ok(()));
            assert_eq!(check_redirect_url("https://localhost:8006", allow), Ok(()));
            assert_eq!(check_redirect_url("https://pve1:8006?x", allow).unwrap_err().0, Code::RequestInvalid);
            // plain http to a host that is not loopback, or a loopback form not allowed above
            assert_eq!(check_redirect_url("http://pve1.example.com:8006", allow).unwrap_err().0, Code::RequestInvalid);
            assert_eq!(check_redirect_url("http://[::1]:8006", allow).unwrap_err().0, Code::RequestInvalid);
        }
    }
}
