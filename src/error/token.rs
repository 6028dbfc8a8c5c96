//! Reading the error answers of Entra's token endpoint: AADSTS code, hint, trace and correlation id.

use serde_json::{Map, Value};

use super::{aadsts, sanitize, Code, Error};

/// Turns an error answer of Entra's token endpoint into an `idp.error` with the AADSTS code,
/// its hint and the trace/correlation ids Microsoft support asks for.
/// The body shape is Entra's: `{"error", "error_description", "error_codes": [n], "trace_id", "correlation_id"}`.
pub fn from_token_error(http_status: u16, body: &[u8]) -> Error {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().cloned());
    let Some(obj) = parsed else {
        let code = if http_status >= 500 { Code::IdpError } else { Code::IdpBadResponse };
        return Error::new(code, format!("token endpoint answered HTTP {http_status} without a JSON error body"))
            .with_status(http_status);
    };
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let error = text("error").unwrap_or_else(|| "unknown_error".into());
    let description = text("error_description").unwrap_or_default();
    let aadsts = obj
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_u64)
        .or_else(|| aadsts_from_description(&description));
    // Entra's description repeats trace id, correlation id and timestamp on extra lines: keep the first line.
    let first_line = description.lines().next().unwrap_or("").trim();
    let message = if first_line.is_empty() {
        format!("token endpoint refused the request: {error}")
    } else {
        format!("token endpoint refused the request: {error}: {first_line}")
    };
    let mut e = Error::new(Code::IdpError, sanitize(&message)).with_status(http_status);
    e.aadsts = aadsts;
    e.hint = aadsts.and_then(aadsts::hint).map(str::to_owned);
    e.trace_id = text("trace_id").filter(|t| is_id_like(t));
    e.correlation_id = text("correlation_id").filter(|t| is_id_like(t));
    e
}

/// "AADSTS7000215: Invalid client secret ..." → 7000215.
fn aadsts_from_description(description: &str) -> Option<u64> {
    let rest = &description[description.find("AADSTS")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn is_id_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_from_description_when_codes_missing() {
        let body = br#"{"error":"invalid_grant","error_description":"AADSTS54005: OAuth2 Authorization code was already redeemed."}"#;
        let e = from_token_error(400, body);
        assert_eq!(e.code, Code::IdpError);
        assert_eq!(e.aadsts, Some(54005));
        assert!(e.hint.unwrap().contains("retry"));
        assert_eq!(e.trace_id, None);
    }

    #[test]
    fn non_json_error_bodies() {
        assert_eq!(from_token_error(502, b"<html>bad gateway</html>").code, Code::IdpError);
        assert_eq!(from_token_error(400, b"{\"trunc").code, Code::IdpBadResponse);
        assert_eq!(from_token_error(400, b"{\"trunc").http_status, Some(400));
    }
}
