//! Entra's error bodies, in the shape captured in fixtures/entra/token-error-responses.json:
//! error, error_description ("AADSTSn: text\r\nTrace ID: ..\r\nCorrelation ID: ..\r\nTimestamp: .."),
//! error_codes, timestamp, trace_id, correlation_id, error_uri.

use crate::http::Response;
use crate::util::{entra_timestamp, form_encode, now, random_guid};
use serde_json::{json, Value};

/// An AADSTS error: HTTP status, OAuth `error` and the human text after "AADSTSn: ".
#[derive(Clone, Debug)]
pub struct AadError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

impl AadError {
    pub fn new(status: u16, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        AadError {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    /// The error Entra returns for `code`, with its usual wording (used by `aadsts:<code>` faults).
    pub fn known(code: u32) -> Self {
        let (status, error, message) = match code {
            7000215 => (401, "invalid_client", "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."),
            7000222 => (401, "invalid_client", "The provided client secret keys are expired. Visit the Azure Portal to create new keys for your app, or consider using certificate credentials for added security."),
            7000218 => (401, "invalid_client", "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
            700027 => (401, "invalid_client", "Client assertion failed signature validation."),
            700024 => (401, "invalid_client", "Client assertion is not within its valid time range."),
            700016 => (400, "unauthorized_client", "Application was not found in the directory. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
            54005 => (400, "invalid_grant", "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."),
            70008 => (400, "invalid_grant", "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."),
            9002313 => (400, "invalid_grant", "Invalid request. Request is malformed or invalid."),
            501481 => (400, "invalid_grant", "The Code_Verifier does not match the code_challenge supplied in the authorization request."),
            50011 => (400, "invalid_grant", "The redirect URI specified in the request does not match the redirect URIs configured for the application."),
            50076 => (400, "invalid_grant", "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource."),
            65001 => (400, "invalid_grant", "The user or administrator has not consented to use the application."),
            70011 => (400, "invalid_scope", "The provided value for the input parameter 'scope' isn't valid."),
            900144 => (400, "invalid_request", "The request body must contain the following parameter."),
            90002 => (400, "invalid_tenant", "Tenant not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            50020 => (400, "invalid_request", "User account from identity provider does not exist in tenant and cannot access the application in that tenant."),
            50034 => (400, "invalid_request", "The user account does not exist in the directory."),
            50105 => (400, "invalid_grant", "The signed in user is not assigned to a role for the application."),
            _ => (400, "invalid_request", "Emulated Entra error."),
        };
        AadError::new(status, error, code, message)
    }

    pub fn missing_param(name: &str) -> Self {
        AadError::new(
            400,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub fn tenant_not_found(tenant: &str) -> Self {
        AadError::new(400, "invalid_tenant", 90002, format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. \
             Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ))
    }

    /// The token-endpoint body (and the body of discovery errors, which Entra shapes alike).
    pub fn body(&self, base_url: &str) -> Value {
        let trace_id = random_guid();
        let correlation_id = random_guid();
        let timestamp = entra_timestamp(now());
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        })
    }

    pub fn response(&self, base_url: &str) -> Response {
        Response::json(self.status, &self.body(base_url))
            .with_header("Cache-Control", "no-store, no-cache")
    }

    /// The sign-in page Entra shows when it cannot trust the redirect URI (no redirect happens).
    pub fn page(&self) -> Response {
        let text = format!("AADSTS{}: {}", self.code, self.message);
        let html = format!("<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body><p id=\"error\">{}</p></body></html>", html_escape(&text));
        Response::new(self.status, "text/html; charset=utf-8", html)
    }

    /// Error redirect from the authorize endpoint: `redirect_uri?error=..&error_description=..`.
    pub fn redirect(&self, base_url: &str, redirect_uri: &str, state: Option<&str>) -> Response {
        let body = self.body(base_url);
        let mut pairs = vec![
            ("error", self.error),
            (
                "error_description",
                body["error_description"].as_str().unwrap_or_default(),
            ),
            ("error_uri", body["error_uri"].as_str().unwrap_or_default()),
        ];
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        let location = format!("{redirect_uri}{sep}{}", form_encode(&pairs));
        Response::new(302, "text/html; charset=utf-8", "").with_header("Location", &location)
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
