//! The authorization code flow: the authorization URL (PKCE S256, nonce, sealed state) and the
//! login (state check, code exchange at the token endpoint, ID-token validation, group overage).

use serde_json::{json, Value};
use openidconnect::core::CoreResponseType;
use openidconnect::{
    AuthUrl, AuthenticationFlow, AuthorizationCode, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};

use crate::claims::{self, Expected};
use crate::discovery::Discovery;
use crate::error::{Code, Error, Result};
use crate::graph;
use crate::mapping;
use crate::oidc;
use crate::ratelimit::{self, Bucket};
use crate::request::{invalid, redirect_url, required, AuthUrlMembers, Env, LoginMembers, RefuseRealmMembers, Request};
use crate::state::{self, LoginState, STATE_LIFETIME_SECS};
use crate::username;

/// The realm's cached metadata for one call (also check and sync read it through this).
pub(crate) fn discovery<'a, B>(req: &'a Request<B>, env: &'a Env) -> Discovery<'a> {
    Discovery { cfg: &req.cfg, realm: &req.realm, cache_dir: req.cache_dir.as_deref(), http: env.http, now: env.now }
}

/// The request's binding value `name` (see `state::parse_binding`).
fn binding(value: &str, name: &str) -> Result<[u8; state::BINDING_LEN]> {
    state::parse_binding(value)
        .ok_or_else(|| invalid(format!("`{name}` must be 32 bytes as base64url without padding (43 characters)")))
}

fn state_key(path: &str) -> Result<[u8; 32]> {
    if !path.starts_with('/') {
        return Err(invalid("`state_key_file` must be an absolute path"));
    }
    state::load_or_create_key(std::path::Path::new(path))
}

/// `{"url", "state"}`. No network I/O when discovery is cached, and nothing written but that cache.
pub fn auth_url(req: &Request<AuthUrlMembers>, env: &Env) -> Result<Value> {
    // anonymous: the client's budget first, before any other work (see ratelimit)
    ratelimit::admit(&req.body.caller(), Bucket::Address { realm: &req.realm })?;
    let redirect_url = redirect_url(&req.body.redirect_url, &req.cfg)?;
    let login_hint = req.body.login_hint.as_deref();
    // A sign-in name (UPN or e-mail): short and printable, it goes into the URL.
    if login_hint.is_some_and(|h| h.len() > 256 || !h.chars().all(|c| c.is_ascii_graphic())) {
        return Err(invalid("`login_hint` must be a sign-in name of at most 256 printable characters"));
    }
    let binding_hash = binding(&req.body.binding_hash, "binding_hash")?;
    let key = state_key(&req.body.state_key_file)?;
    let provider = discovery(req, env).provider()?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let login = LoginState {
        realm: req.realm.clone(),
        nonce: Nonce::new_random_len(24).secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        redirect_url: redirect_url.clone(),
        expires_at: env.now + STATE_LIFETIME_SECS,
        binding_hash,
    };
    // The `state` is not a bare random CSRF token but the sealed login state (stateless callback).
    let sealed = state::seal(&key, &login)?;
    let auth_url = AuthUrl::new(provider.authorization_endpoint.clone())
        .map_err(|_| Error::new(Code::DiscoveryInvalid, "discovery document: `authorization_endpoint` is not a usable URL"))?;
    let redirect = RedirectUrl::new(redirect_url).map_err(|_| invalid("`redirect_url` is not a URL"))?;
    let client = oidc::client(&req.cfg, &provider.issuer)?.set_auth_uri(auth_url).set_redirect_uri(redirect);
    let (state_for_url, nonce) = (sealed.clone(), login.nonce.clone());
    let mut request = client
        .authorize_url(AuthenticationFlow::<CoreResponseType>::AuthorizationCode, move || CsrfToken::new(state_for_url), move || Nonce::new(nonce))
        .add_scopes(req.cfg.scopes.split_whitespace().map(|s| Scope::new(s.to_string())))
        .set_pkce_challenge(challenge)
        .add_extra_param("response_mode", "query");
    if let Some(p) = &req.cfg.prompt {
        request = request.add_extra_param("prompt", p.clone());
    }
    if let Some(a) = &req.cfg.acr_values {
        request = request.add_extra_param("acr_values", a.clone());
    }
    if let Some(h) = login_hint.filter(|h| !h.is_empty()) {
        request = request.add_extra_param("login_hint", h.to_string());
    }
    let (url, _, _) = request.url();
    Ok(json!({"url": url.as_str(), "state": sealed}))
}

/// Refuses an anonymous call naming a realm that is not an entraid realm (PVE's side knows which
/// are), after charging it to its client's budget for such names: a flood of them is answered
/// `request.rate_limited` like any other, and made-up names gain nothing. Never succeeds.
pub fn refuse_realm(req: &RefuseRealmMembers) -> Result<Value> {
    ratelimit::admit(&req.caller(), Bucket::AddressWithoutRealm)?;
    let realm = crate::error::sanitize(&req.realm);
    Err(invalid(match &req.realm_type {
        None => format!("realm '{realm}' does not exist"),
        Some(t) => format!("realm '{realm}' is of type '{}', not 'entraid'", crate::error::sanitize(t)),
    }))
}

/// Exchanges the code and returns `{"claims", "groups", "username"}` and the mapping
/// (`mapping::map_identity`): `userid`, `pve_groups`, `managed_groups`, `identity`, names, email.
pub fn login(req: &Request<LoginMembers>, env: &Env) -> Result<Value> {
    // anonymous: the client's budget first, before the state is read or consumed
    let caller = req.body.caller();
    ratelimit::admit(&caller, Bucket::Address { realm: &req.realm })?;
    let code = required(&req.body.code, "code")?;
    if code.len() > 8192 || !code.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid("`code` is not an authorization code"));
    }
    let state_text = required(&req.body.state, "state")?;
    let binding_key = binding(&req.body.binding_key, "binding_key")?;
    let key = state_key(&req.body.state_key_file)?;
    let login = state::open(&key, state_text, &req.realm, env.now)?;
    // A loopback login started before the realm stopped allowing them ends here.
    redirect_url(&login.redirect_url, &req.cfg)?;
    // Before consuming and before any request to Entra: an attacker's code and state planted in
    // a victim's browser (login CSRF) fail here at no cost.
    state::verify_binding(&login, &binding_key)?;
    // While the realm's budget is spent the login is refused before its state is used up, so
    // its user can retry with it: an attacker spending the budget cannot also burn other users'
    // states. Only looked at here; it is taken right before the token request below.
    ratelimit::peek(&caller, Bucket::Realm(&req.realm))?;
    // Consumed before the exchange, so two racing callbacks cannot both use it.
    state::consume(req.cache_dir.as_deref(), state_text, login.expires_at, env.now)?;

    let disc = discovery(req, env);
    let provider = disc.provider()?;
    // The redirect_uri must be the one sent to /authorize, which the sealed state remembers.
    let redirect = RedirectUrl::new(login.redirect_url.clone()).map_err(|_| Error::new(Code::StateInvalid, "state holds no usable redirect URL"))?;
    let (client, extra) = oidc::token_client(&req.cfg, &provider.issuer, &provider.token_endpoint, env.now)?;
    let client = client.set_redirect_uri(redirect);
    // The realm's budget right before the one request with the app's credential: only a call
    // with a state of its own, bound to its browser and now used up, pays it, so calls that can
    // never get here (forged states, wrong binding keys, replays) cannot lock the realm out.
    // When other logins took its last call since the peek above, this one is refused all the
    // same (its state is then used up: the rare price of not locking the budget).
    ratelimit::admit(&caller, Bucket::Realm(&req.realm))?;
    let answer = oidc::token_request(env.http, "id_token", |http| {
        let mut exchange = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
            .add_extra_param("scope", req.cfg.scopes.clone());
        for (k, v) in &extra {
            exchange = exchange.add_extra_param(*k, v.clone());
        }
        exchange.request(&http)
    })?;
    let id_token = answer
        .raw_id_token()
        .map(str::to_string)
        .ok_or_else(|| Error::new(Code::IdpBadResponse, "token endpoint answer has no id_token"))?;

    let expected = Expected { client_id: &req.cfg.client_id, nonce: &login.nonce, issuer: &provider.issuer, tenant: &req.cfg.tenant, now: env.now };
    let claims = claims::validate(&id_token, &expected, &|kid| disc.key(kid))?;
    let groups = if claims.groups_overage {
        graph::member_objects(&req.cfg, env, &claims.tid, &claims.oid)?
    } else {
        claims.groups.clone()
    };
    let username = username::from_token(&claims, req.cfg.username_claim)?;
    // One call per login: the mapping travels with the claims, and Perl only compares the pin
    // and updates user.cfg under PVE's lock.
    let mut mapped = mapping::map_identity(&req.cfg, &req.realm, &claims, groups.clone(), &username)?;
    mapped["claims"] = json!(claims);
    mapped["groups"] = json!(groups);
    mapped["username"] = json!(username);
    Ok(mapped)
}
