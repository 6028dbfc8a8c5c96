//! The one error type of the crate: a stable code (numeric for the C ABI, string for JSON),
//! a human message that never carries a secret, and what Entra told us when it refused.

use serde_json::{json, Map, Value};

/// Result of every JSON entry point: `PVE_ENTRAID_OK` (0) or the numeric value of an error code.
/// The numbers and their string codes are part of the ABI (docs/DESIGN.md) and never change.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pve_entraid_result {
    PVE_ENTRAID_OK = 0,
    PVE_ENTRAID_REQUEST_INVALID = 1,
    PVE_ENTRAID_REQUEST_TOO_LARGE = 2,
    PVE_ENTRAID_CONFIG_INVALID = 3,
    PVE_ENTRAID_CONFIG_SECRET = 4,
    PVE_ENTRAID_STATE_INVALID = 10,
    PVE_ENTRAID_STATE_EXPIRED = 11,
    PVE_ENTRAID_STATE_REPLAYED = 12,
    PVE_ENTRAID_STATE_REALM_MISMATCH = 13,
    PVE_ENTRAID_STATE_KEY = 14,
    PVE_ENTRAID_IDP_UNREACHABLE = 20,
    PVE_ENTRAID_IDP_TIMEOUT = 21,
    PVE_ENTRAID_IDP_BAD_RESPONSE = 22,
    PVE_ENTRAID_IDP_ERROR = 23,
    PVE_ENTRAID_DISCOVERY_INVALID = 24,
    PVE_ENTRAID_JWKS_INVALID = 25,
    PVE_ENTRAID_IDP_TLS = 26,
    PVE_ENTRAID_TOKEN_MALFORMED = 30,
    PVE_ENTRAID_TOKEN_UNSUPPORTED_ALG = 31,
    PVE_ENTRAID_TOKEN_BAD_SIGNATURE = 32,
    PVE_ENTRAID_TOKEN_ISSUER_MISMATCH = 34,
    PVE_ENTRAID_TOKEN_AUDIENCE_MISMATCH = 35,
    PVE_ENTRAID_TOKEN_AZP_MISMATCH = 36,
    PVE_ENTRAID_TOKEN_EXPIRED = 37,
    PVE_ENTRAID_TOKEN_NOT_YET_VALID = 38,
    PVE_ENTRAID_TOKEN_ISSUED_IN_FUTURE = 39,
    PVE_ENTRAID_TOKEN_NONCE_MISSING = 40,
    PVE_ENTRAID_TOKEN_NONCE_MISMATCH = 41,
    PVE_ENTRAID_TOKEN_VERSION = 42,
    PVE_ENTRAID_TOKEN_TENANT_NOT_ALLOWED = 43,
    PVE_ENTRAID_TOKEN_MISSING_CLAIM = 44,
    PVE_ENTRAID_TOKEN_UNKNOWN_KID = 45,
    PVE_ENTRAID_ACCESS_DENIED = 50,
    PVE_ENTRAID_ACCESS_GUEST = 51,
    PVE_ENTRAID_IDENTITY_PIN_MISMATCH = 52,
    PVE_ENTRAID_GRAPH_ERROR = 60,
    PVE_ENTRAID_CACHE_IO = 70,
    PVE_ENTRAID_INTERNAL_PANIC = 90,
    PVE_ENTRAID_INTERNAL_ERROR = 91,
}

/// Shorter name used inside the crate.
pub use pve_entraid_result as Code;

/// Every code with its stable string form, in numeric order (one table, used both ways).
const CODES: &[(Code, &str)] = &[
    (Code::PVE_ENTRAID_OK, "ok"),
    (Code::PVE_ENTRAID_REQUEST_INVALID, "request.invalid"),
    (Code::PVE_ENTRAID_REQUEST_TOO_LARGE, "request.too_large"),
    (Code::PVE_ENTRAID_CONFIG_INVALID, "config.invalid"),
    (Code::PVE_ENTRAID_CONFIG_SECRET, "config.secret"),
    (Code::PVE_ENTRAID_STATE_INVALID, "state.invalid"),
    (Code::PVE_ENTRAID_STATE_EXPIRED, "state.expired"),
    (Code::PVE_ENTRAID_STATE_REPLAYED, "state.replayed"),
    (Code::PVE_ENTRAID_STATE_REALM_MISMATCH, "state.realm_mismatch"),
    (Code::PVE_ENTRAID_STATE_KEY, "state.key"),
    (Code::PVE_ENTRAID_IDP_UNREACHABLE, "idp.unreachable"),
    (Code::PVE_ENTRAID_IDP_TIMEOUT, "idp.timeout"),
    (Code::PVE_ENTRAID_IDP_BAD_RESPONSE, "idp.bad_response"),
    (Code::PVE_ENTRAID_IDP_ERROR, "idp.error"),
    (Code::PVE_ENTRAID_DISCOVERY_INVALID, "discovery.invalid"),
    (Code::PVE_ENTRAID_JWKS_INVALID, "jwks.invalid"),
    (Code::PVE_ENTRAID_IDP_TLS, "idp.tls"),
    (Code::PVE_ENTRAID_TOKEN_MALFORMED, "token.malformed"),
    (Code::PVE_ENTRAID_TOKEN_UNSUPPORTED_ALG, "token.unsupported_alg"),
    (Code::PVE_ENTRAID_TOKEN_BAD_SIGNATURE, "token.bad_signature"),
    (Code::PVE_ENTRAID_TOKEN_ISSUER_MISMATCH, "token.issuer_mismatch"),
    (Code::PVE_ENTRAID_TOKEN_AUDIENCE_MISMATCH, "token.audience_mismatch"),
    (Code::PVE_ENTRAID_TOKEN_AZP_MISMATCH, "token.azp_mismatch"),
    (Code::PVE_ENTRAID_TOKEN_EXPIRED, "token.expired"),
    (Code::PVE_ENTRAID_TOKEN_NOT_YET_VALID, "token.not_yet_valid"),
    (Code::PVE_ENTRAID_TOKEN_ISSUED_IN_FUTURE, "token.issued_in_future"),
    (Code::PVE_ENTRAID_TOKEN_NONCE_MISSING, "token.nonce_missing"),
    (Code::PVE_ENTRAID_TOKEN_NONCE_MISMATCH, "token.nonce_mismatch"),
    (Code::PVE_ENTRAID_TOKEN_VERSION, "token.version"),
    (Code::PVE_ENTRAID_TOKEN_TENANT_NOT_ALLOWED, "token.tenant_not_allowed"),
    (Code::PVE_ENTRAID_TOKEN_MISSING_CLAIM, "token.missing_claim"),
    (Code::PVE_ENTRAID_TOKEN_UNKNOWN_KID, "token.unknown_kid"),
    (Code::PVE_ENTRAID_ACCESS_DENIED, "access.denied"),
    (Code::PVE_ENTRAID_ACCESS_GUEST, "access.guest"),
    (Code::PVE_ENTRAID_IDENTITY_PIN_MISMATCH, "identity.pin_mismatch"),
    (Code::PVE_ENTRAID_GRAPH_ERROR, "graph.error"),
    (Code::PVE_ENTRAID_CACHE_IO, "cache.io"),
    (Code::PVE_ENTRAID_INTERNAL_PANIC, "internal.panic"),
    (Code::PVE_ENTRAID_INTERNAL_ERROR, "internal.error"),
];

impl Code {
    /// Stable string code, e.g. `"token.expired"`.
    pub fn as_str(self) -> &'static str {
        CODES.iter().find(|(c, _)| *c == self).map(|(_, s)| *s).unwrap_or("internal.error")
    }

    /// The code for a raw number coming from C; `None` for numbers that are no code.
    pub fn from_u32(n: u32) -> Option<Code> {
        CODES.iter().find(|(c, _)| *c as u32 == n).map(|(c, _)| *c)
    }

    /// The code for its string form (tests, tools).
    pub fn from_str_code(s: &str) -> Option<Code> {
        CODES.iter().find(|(_, name)| *name == s).map(|(c, _)| *c)
    }

    /// All codes, for exhaustive tests.
    pub fn all() -> impl Iterator<Item = Code> {
        CODES.iter().map(|(c, _)| *c)
    }
}

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

/// What to change in Entra (or in the realm) for the AADSTS codes administrators meet when
/// setting up a confidential client. Sources: Microsoft's AADSTS reference and field reports.
pub fn aadsts_hint(code: u64) -> Option<&'static str> {
    Some(match code {
        7000215 => "The client secret is wrong: enter the secret's Value (shown once when created under Certificates & secrets), not its Secret ID",
        7000222 => "The client secret has expired: create a new one under App registrations > Certificates & secrets and update the realm",
        700016 => "No application with this client ID in the tenant: check the Application (client) ID and the tenant of the realm",
        50011 => "The redirect URI is not registered: add the realm's redirect URL (exactly, including port) as a Web redirect URI of the app registration",
        501481 | 50148 => "PKCE code verifier did not match: the login must finish on the same realm configuration it started; retry the login",
        54005 => "The authorization code was already redeemed: retry the login",
        70008 => "The authorization code has expired or was revoked: retry the login",
        90002 => "Tenant not found: check the tenant ID or domain and the cloud (public, usgov, china) of the realm",
        700027 => "The client assertion is invalid: upload the realm's certificate (.crt) under Certificates & secrets and check its key",
        700024 => "The client assertion is outside its validity window: check the clock (NTP) of this node",
        7000218 => "The request needs a client credential: configure a client secret or certificate in the realm",
        50076 | 50079 => "Multi-factor authentication is required: complete MFA in the browser and retry",
        50105 => "The user is not assigned to the application: assign the user or a group under Enterprise applications > Users and groups, or disable 'Assignment required'",
        65001 => "Admin consent is missing: grant admin consent for the API permissions of the app registration",
        70011 => "The scope is invalid: check the realm's scopes (openid profile email)",
        50020 => "The user's account is not from an allowed tenant: add the tenant or invite the user as a guest",
        700054 => "response_type 'id_token' is not enabled: the realm uses the code flow, check the app's platform configuration is 'Web'",
        9002325 => "The app registration is configured as a single-page application: register the redirect URI under the 'Web' platform",
        _ => return None,
    })
}

/// Turns an error answer of Entra's token endpoint into an `idp.error` with the AADSTS code,
/// its hint and the trace/correlation ids Microsoft support asks for.
/// The body shape is Entra's: `{"error", "error_description", "error_codes": [n], "trace_id", "correlation_id"}`.
pub fn from_token_error(http_status: u16, body: &[u8]) -> Error {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().cloned());
    let Some(obj) = parsed else {
        let code = if http_status >= 500 { Code::PVE_ENTRAID_IDP_ERROR } else { Code::PVE_ENTRAID_IDP_BAD_RESPONSE };
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
    let mut e = Error::new(Code::PVE_ENTRAID_IDP_ERROR, sanitize(&message)).with_status(http_status);
    e.aadsts = aadsts;
    e.hint = aadsts.and_then(aadsts_hint).map(str::to_owned);
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
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::all() {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert_eq!(Code::from_u32(c as u32), Some(c));
            assert_eq!(Code::from_str_code(c.as_str()), Some(c));
        }
        assert_eq!(Code::from_u32(33), None);
        assert_eq!(Code::PVE_ENTRAID_INTERNAL_PANIC as u32, 90);
        assert_eq!(Code::PVE_ENTRAID_TOKEN_UNKNOWN_KID.as_str(), "token.unknown_kid");
    }

    #[test]
    fn aadsts_from_description_when_codes_missing() {
        let body = br#"{"error":"invalid_grant","error_description":"AADSTS54005: OAuth2 Authorization code was already redeemed."}"#;
        let e = from_token_error(400, body);
        assert_eq!(e.code, Code::PVE_ENTRAID_IDP_ERROR);
        assert_eq!(e.aadsts, Some(54005));
        assert!(e.hint.unwrap().contains("retry"));
        assert_eq!(e.trace_id, None);
    }

    #[test]
    fn non_json_error_bodies() {
        assert_eq!(from_token_error(502, b"<html>bad gateway</html>").code, Code::PVE_ENTRAID_IDP_ERROR);
        assert_eq!(from_token_error(400, b"{\"trunc").code, Code::PVE_ENTRAID_IDP_BAD_RESPONSE);
        assert_eq!(from_token_error(400, b"{\"trunc").http_status, Some(400));
    }

    #[test]
    fn hints_for_the_setup_errors() {
        for c in [7000215, 7000222, 700016, 50011, 501481, 50148, 54005, 70008, 90002] {
            assert!(aadsts_hint(c).is_some(), "{c}");
        }
        assert!(aadsts_hint(1).is_none());
    }

    #[test]
    fn error_json_has_only_known_members() {
        let e = Error::new(Code::PVE_ENTRAID_CONFIG_INVALID, "x");
        assert_eq!(e.to_json(), json!({"code": "config.invalid", "message": "x"}));
    }
}
