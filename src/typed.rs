//! Reading a JSON value into a typed struct, with an error that names the refused member by its
//! path (`config.allow-guests`) and never quotes its value: it could be a secret. Below every
//! module that reads members (config, request), so they need not import each other.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Code, Error, Result};

/// `v` as a `T`, or `code` with a message that names the failing member as `prefix` + its path.
/// Serde's own messages are not passed on: they quote the offending value.
pub fn typed<T: DeserializeOwned>(v: Value, code: Code, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // `name` in backticks as serde puts it; only our own member names reach this.
        let member = |lead: &str| inner.strip_prefix(lead).and_then(|r| r.split_once('`')).map(|(n, _)| crate::error::sanitize(n));
        let at = |name: &str| match path.as_str() {
            "." => format!("{prefix}{name}"),
            p => format!("{prefix}{p}.{name}"),
        };
        // A path holds member names only (an unknown one included), yet it may be the caller's.
        let here = crate::error::sanitize(&if path == "." { prefix.trim_end_matches('.').to_string() } else { format!("{prefix}{path}") });
        let message = if let Some(name) = member("missing field `") {
            format!("`{}` is required", at(&name))
        } else if inner.starts_with("unknown field `") {
            // the path ends with the unknown member
            format!("`{here}` is not a known member")
        } else if let Some(name) = member("duplicate field `") {
            format!("`{}` is given twice", at(&name))
        } else if let Some((_, expected)) = inner.rsplit_once(", expected ") {
            // "invalid type: string \"<value>\", expected a boolean": the value is dropped.
            format!("`{here}` must be {}", expected.split(" at line ").next().unwrap_or(expected))
        } else {
            format!("`{here}` is invalid")
        };
        Error::new(code, message)
    })
}
