//! The one error type of the crate: a stable code (numeric for the C ABI, string for JSON),
//! a human message that never carries a secret, and what Entra told us when it refused.
//! The codes are in [`code`], the AADSTS catalogue in [`aadsts`], the reading of Entra's
//! token-endpoint errors in [`token`].

use serde_json::{json, Map, Value};

mod aadsts;
mod code;
mod token;

pub use aadsts::hint as aadsts_hint;
pub use code::{pve_entraid_result, Code};
pub use token::from_token_error;

/// An error answer. `message` is shown to administrators: it must never contain a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
    pub aadsts: Option<u64>,
    pub hint: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub http_status: Option<u16>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            aadsts: None,
            hint: None,
            trace_id: None,
            correlation_id: None,
            http_status: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Error {
        self.http_status = Some(status);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// The `error` object of an error answer; optional members only when known.
    pub fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("code".into(), json!(self.code.as_str()));
        e.insert("message".into(), json!(self.message));
        e.insert("api_status".into(), json!(self.code.api_status()));
        if let Some(n) = self.aadsts {
            e.insert("aadsts".into(), json!(n));
        }
        if let Some(h) = &self.hint {
            e.insert("hint".into(), json!(h));
        }
        if let Some(t) = &self.trace_id {
            e.insert("trace_id".into(), json!(t));
        }
        if let Some(c) = &self.correlation_id {
            e.insert("correlation_id".into(), json!(c));
        }
        if let Some(s) = self.http_status {
            e.insert("http_status".into(), json!(s));
        }
        Value::Object(e)
    }
}

impl std::error::Error for Error {}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// Keeps text from a remote party printable and short before it reaches logs and the UI.
pub fn sanitize(s: &str) -> String {
    let cleaned: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if cleaned.chars().count() > 400 {
        cleaned.chars().take(400).collect::<String>() + "..."
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_only_known_members() {
        let e = Error::new(Code::ConfigInvalid, "x");
        assert_eq!(e.to_json(), json!({"code": "config.invalid", "message": "x", "api_status": 500}));
    }

    #[test]
    fn sanitize_keeps_remote_text_printable_and_short() {
        assert_eq!(sanitize("a\nb\u{7}c"), "a b c");
        assert_eq!(sanitize(&"x".repeat(500)).chars().count(), 403);
    }
}
