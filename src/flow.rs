//! The authorization code flow: the authorization URL (PKCE S256, nonce, sealed state) and the
//! login (state check, code exchange at the token endpoint, ID-token validation, group overage).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::claims::{self, Claims, Expected};
use crate::config::UsernameClaim;
use crate::credential;
use crate::discovery::Discovery;
use crate::error::{from_token_error, Code, Error, Result};
use crate::graph;
use crate::http::MAX_BODY;
use crate::jwt::b64url;
use crate::request::{invalid, Env, Request};
use crate::state::{self, random_token, LoginState, STATE_LIFETIME_SECS};

/// Percent-encodes for a query component (RFC 3986 unreserved characters stay).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn discovery<'a>(req: &'a Request, env: &'a Env) -> Discovery<'a> {
    Discovery { cfg: &req.cfg, realm: &req.realm, cache_dir: req.cache_dir.as_deref(), http: env.http, now: env.now }
}

fn state_key(req: &Request) -> Result<[u8; 32]> {
    let path = req.str("state_key_file")?;
    if !path.starts_with('/') {
        return Err(invalid("`state_key_file` must be an absolute path"));
    }
    state::load_or_create_key(std::path::Path::new(path))
}

/// `{"url", "state"}`. No network I/O when discovery is cached, and nothing written but that cache.
pub fn auth_url(req: &Request, env: &Env) -> Result<Value> {
    let redirect_url = req.redirect_url()?;
    let login_hint = req.opt_str("login_hint")?;
    // A sign-in name (UPN or e-mail): short and printable, it goes into the URL.
    if login_hint.is_some_and(|h| h.len() > 256 || !h.chars().all(|c| c.is_ascii_graphic())) {
        return Err(invalid("`login_hint` must be a sign-in name of at most 256 printable characters"));
    }
    let key = state_key(req)?;
    let provider = discovery(req, env).provider()?;
    let verifier = random_token(32)?;
    let login = LoginState {
        realm: req.realm.clone(),
        nonce: random_token(24)?,
        pkce_verifier: verifier.clone(),
        redirect_url: redirect_url.clone(),
        expires_at: env.now + STATE_LIFETIME_SECS,
    };
    let sealed = state::seal(&key, &login)?;
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", &req.cfg.client_id),
        ("response_type", "code"),
        ("redirect_uri", &redirect_url),
        ("response_mode", "query"),
        ("scope", &req.cfg.scopes),
        ("state", &sealed),
        ("nonce", &login.nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    if let Some(p) = &req.cfg.prompt {
        params.push(("prompt", p));
    }
    if let Some(a) = &req.cfg.acr_values {
        params.push(("acr_values", a));
    }
    if let Some(h) = login_hint.filter(|h| !h.is_empty()) {
        params.push(("login_hint", h));
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
    let sep = if provider.authorization_endpoint.contains('?') { '&' } else { '?' };
    Ok(json!({"url": format!("{}{sep}{}", provider.authorization_endpoint, query.join("&")), "state": sealed}))
}

/// Exchanges the code and returns `{"claims", "groups", "username"}`.
pub fn login(req: &Request, env: &Env) -> Result<Value> {
    let code = req.str("code")?;
    if code.len() > 8192 || !code.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid("`code` is not an authorization code"));
    }
    let state_text = req.str("state")?;
    let key = state_key(req)?;
    let login = state::open(&key, state_text, &req.realm, env.now)?;
    // Consumed before the exchange, so two racing callbacks cannot both use it.
    state::consume(req.cache_dir.as_deref(), state_text, login.expires_at, env.now)?;

    let disc = discovery(req, env);
    let provider = disc.provider()?;
    // The redirect_uri must be the one sent to /authorize, which the sealed state remembers.
    let mut form: Vec<(&str, String)> = vec![
        ("client_id", req.cfg.client_id.clone()),
        ("grant_type", "authorization_code".into()),
        ("code", code.to_string()),
        ("redirect_uri", login.redirect_url.clone()),
        ("code_verifier", login.pkce_verifier.clone()),
        ("scope", req.cfg.scopes.clone()),
    ];
    form.extend(credential::form_params(&req.cfg, &provider.token_endpoint, env.now)?);
    let id_token = token_request(env, &provider.token_endpoint, &form, "id_token")?;

    let expected = Expected { client_id: &req.cfg.client_id, nonce: &login.nonce, issuer: &provider.issuer, tenant: &req.cfg.tenant, now: env.now };
    let claims = claims::validate(&id_token, &expected, &|kid| disc.key(kid))?;
    let groups = if claims.groups_overage {
        graph::member_objects(&req.cfg, env, &claims.tid, &claims.oid)?
    } else {
        claims.groups.clone()
    };
    let username = username(&claims, req.cfg.username_claim)?;
    Ok(json!({"claims": claims, "groups": groups, "username": username}))
}

/// POSTs a token request and returns the named token from the answer.
pub fn token_request(env: &Env, endpoint: &str, form: &[(&str, String)], want: &str) -> Result<String> {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = env.http.post_form(endpoint, &pairs, MAX_BODY)?;
    if resp.status != 200 {
        return Err(from_token_error(resp.status, &resp.body));
    }
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| Error::new(Code::PVE_ENTRAID_IDP_BAD_RESPONSE, "token endpoint answer is not JSON"))?;
    v.get(want)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::new(Code::PVE_ENTRAID_IDP_BAD_RESPONSE, format!("token endpoint answer has no {want}")))
}

/// The PVE user name per `username_claim`; names (not oid) are lower-cased because Entra treats
/// them case-insensitively while PVE user ids are case-sensitive.
pub fn username(c: &Claims, which: UsernameClaim) -> Result<String> {
    let value = match which {
        UsernameClaim::Upn => c.upn.clone().or_else(|| c.preferred_username.clone()),
        UsernameClaim::PreferredUsername => c.preferred_username.clone(),
        UsernameClaim::Email => c.email.clone(),
        UsernameClaim::Oid => Some(c.oid.clone()),
    };
    let name = match which {
        UsernameClaim::Upn => "upn/preferred_username",
        UsernameClaim::PreferredUsername => "preferred_username",
        UsernameClaim::Email => "email",
        UsernameClaim::Oid => "oid",
    };
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.to_lowercase())
        .ok_or_else(|| Error::new(Code::PVE_ENTRAID_TOKEN_MISSING_CLAIM, format!("ID token has no `{name}` claim for the user name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved() {
        assert_eq!(url_encode("a b~c/d?e=f&g+"), "a%20b~c%2Fd%3Fe%3Df%26g%2B");
    }

    #[test]
    fn username_claim_choice_and_fallback() {
        let mut c = Claims { oid: "OID".into(), preferred_username: Some("Alice@Contoso.example".into()), ..Default::default() };
        assert_eq!(username(&c, UsernameClaim::Upn).unwrap(), "alice@contoso.example");
        assert_eq!(username(&c, UsernameClaim::Oid).unwrap(), "oid");
        assert_eq!(username(&c, UsernameClaim::Email).unwrap_err().code, Code::PVE_ENTRAID_TOKEN_MISSING_CLAIM);
        c.upn = Some("a@b.c".into());
        assert_eq!(username(&c, UsernameClaim::Upn).unwrap(), "a@b.c");
    }
}
