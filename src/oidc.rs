//! The OAuth 2.0 / OpenID Connect plumbing through the `openidconnect` crate: the client type,
//! the token-response type, and the `SyncHttpClient` closure over our own transport.
//!
//! ID-token validation is deliberately NOT done by openidconnect but by [`crate::claims`]:
//! Entra's multi-tenant discovery documents (organizations/common) publish the template issuer
//! `https://login.microsoftonline.com/{tenantid}/v2.0`, which must be matched against the token's
//! `tid`; each JWKS key carries its own `issuer` that must agree with the token; v1 tokens
//! (`ver`) are refused; and a tenant allow-list applies. openidconnect's verifier checks the
//! token issuer for equality with the discovery issuer and knows none of these rules, and it
//! would reduce every hostile-token failure to one generic error instead of our stable codes.
//! Hence the token response keeps the `id_token` as a raw string.

use std::cell::RefCell;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AuthType, ClientId, ClientSecret, EmptyAdditionalClaims, EndpointNotSet, EndpointSet,
    ExtraTokenFields, HttpRequest, HttpResponse, IdToken, IssuerUrl, JsonWebKeySet, OAuth2TokenResponse,
    RefreshToken, RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::RealmConfig;
use crate::credential;
use crate::error::{from_token_error, Code, Error, Result};
use crate::http::{Transport, MAX_BODY};

/// The token endpoint's extra member we need: the ID token, unparsed (see the module comment).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RawIdToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for RawIdToken {}

/// A token response whose `id_token` stays raw text for [`crate::claims::validate`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(transparent)]
pub struct EntraTokenResponse(pub StandardTokenResponse<RawIdToken, CoreTokenType>);

impl EntraTokenResponse {
    /// The raw ID token, if the answer has a non-empty one.
    pub fn raw_id_token(&self) -> Option<&str> {
        self.0.extra_fields().id_token.as_deref().filter(|t| !t.is_empty())
    }
}

impl OAuth2TokenResponse for EntraTokenResponse {
    type TokenType = CoreTokenType;
    fn access_token(&self) -> &AccessToken {
        self.0.access_token()
    }
    fn token_type(&self) -> &CoreTokenType {
        self.0.token_type()
    }
    fn expires_in(&self) -> Option<std::time::Duration> {
        self.0.expires_in()
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.0.refresh_token()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.0.scopes()
    }
}

impl openidconnect::TokenResponse<EmptyAdditionalClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>
    for EntraTokenResponse
{
    /// Always `None`: the ID token is validated by our own rules from [`Self::raw_id_token`].
    fn id_token(
        &self,
    ) -> Option<&IdToken<EmptyAdditionalClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>> {
        None
    }
}

/// openidconnect's client with [`EntraTokenResponse`] instead of `CoreTokenResponse`.
pub type EntraClient<HasAuthUrl = EndpointNotSet, HasTokenUrl = EndpointNotSet> = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    EntraTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
    EndpointNotSet,
>;

/// A client with its token endpoint set.
pub type TokenClient = EntraClient<EndpointNotSet, EndpointSet>;

fn bad_config(what: &str) -> Error {
    Error::new(Code::DiscoveryInvalid, format!("discovery document: `{what}` is not a usable URL"))
}

/// A client for `issuer` (no JWKS: openidconnect never verifies tokens here).
pub fn client(cfg: &RealmConfig, issuer: &str) -> Result<EntraClient> {
    let issuer = IssuerUrl::new(issuer.to_string()).map_err(|_| bad_config("issuer"))?;
    // The scopes come from the realm config, which always includes `openid`.
    Ok(EntraClient::new(ClientId::new(cfg.client_id.clone()), issuer, JsonWebKeySet::default())
        .disable_openid_scope()
        .set_auth_type(AuthType::RequestBody))
}

/// A client ready for `token_endpoint`, authenticated as the realm config says: a secret as
/// `client_secret` in the body (client_secret_post), or a certificate as a client assertion
/// (private_key_jwt, no secret) whose parameters go in `extra`.
pub fn token_client(
    cfg: &RealmConfig,
    issuer: &str,
    token_endpoint: &str,
    now: u64,
) -> Result<(TokenClient, Vec<(&'static str, String)>)> {
    let url = TokenUrl::new(token_endpoint.to_string()).map_err(|_| bad_config("token_endpoint"))?;
    let mut c = client(cfg, issuer)?.set_token_uri(url);
    let mut extra = Vec::new();
    for (k, v) in credential::form_params(cfg, token_endpoint, now)? {
        if k == "client_secret" {
            c = c.set_client_secret(ClientSecret::new(v));
        } else {
            extra.push((k, v));
        }
    }
    Ok((c, extra))
}

/// Runs one token request through openidconnect with `transport` as its HTTP client, mapping
/// every failure as the library always has: transport errors as they are, HTTP error answers
/// through [`from_token_error`] from the raw body (AADSTS code, hint, trace and correlation id),
/// and unreadable success answers to `idp.bad_response`.
pub fn token_request<F>(transport: &dyn Transport, want: &str, send: F) -> Result<EntraTokenResponse>
where
    F: FnOnce(&dyn Fn(HttpRequest) -> std::result::Result<HttpResponse, Error>)
        -> std::result::Result<EntraTokenResponse, RequestTokenError<Error, StandardErrorResponse<CoreErrorResponseType>>>,
{
    let last: RefCell<Option<(u16, Vec<u8>)>> = RefCell::new(None);
    // openidconnect builds the form body; the existing transport (the realm's ureq agent: proxy,
    // timeouts, no redirects, body cap) sends it. The raw answer is kept for error reporting.
    let http_client = |req: HttpRequest| -> std::result::Result<HttpResponse, Error> {
        *last.borrow_mut() = None;
        let url = req.uri().to_string();
        let resp = transport.post_form_encoded(&url, req.body(), MAX_BODY)?;
        *last.borrow_mut() = Some((resp.status, resp.body.clone()));
        openidconnect::http::Response::builder()
            .status(resp.status)
            .body(resp.body)
            .map_err(|_| Error::new(Code::IdpBadResponse, "token endpoint answered an invalid HTTP status"))
    };
    match send(&http_client) {
        Ok(tr) => Ok(tr),
        Err(RequestTokenError::Request(e)) => Err(e),
        Err(_) => {
            let Some((status, body)) = last.take() else {
                return Err(Error::new(Code::InternalError, "token request could not be built"));
            };
            if status != 200 {
                return Err(from_token_error(status, &body));
            }
            if serde_json::from_slice::<Value>(&body).is_ok() {
                Err(Error::new(Code::IdpBadResponse, format!("token endpoint answer has no {want}")))
            } else {
                Err(Error::new(Code::IdpBadResponse, "token endpoint answer is not JSON"))
            }
        }
    }
}
