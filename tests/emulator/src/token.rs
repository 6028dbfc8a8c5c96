//! Token endpoint: client authentication (secret or certificate), authorization_code with PKCE,
//! client_credentials for Graph. Errors are Entra's AADSTS bodies.

use crate::aadsts::AadError;
use crate::access_token;
use crate::config::{App, FederatedCredential};
use crate::discovery::TenantPath;
use crate::http::{Request, Response};
use crate::idtoken;
use crate::jwt;
use crate::state::{AppToken, Shared};
use crate::util::{b64_decode, b64url, form_decode, now, random_token};
use serde_json::json;

/// Authorization codes are good for 10 minutes, like Entra's.
const CODE_LIFETIME: u64 = 600;
const ACCESS_TOKEN_LIFETIME: u64 = 3599;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// `raw_tenant` is the path segment as sent (an assertion's aud may name it or the tenant GUID).
pub fn token(shared: &Shared, tenant: &TenantPath, raw_tenant: &str, req: &Request) -> Response {
    match handle(shared, tenant, raw_tenant, req) {
        Ok(body) => Response::json(200, &body).with_header("Cache-Control", "no-store, no-cache"),
        Err(e) => e.response(&shared.base_url),
    }
}

fn handle(
    shared: &Shared,
    tenant: &TenantPath,
    raw_tenant: &str,
    req: &Request,
) -> Result<serde_json::Value, AadError> {
    let form = Form(form_decode(&String::from_utf8_lossy(&req.body)));
    let basic = basic_credentials(req);
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| AadError::missing_param("grant_type"))?;
    if grant_type != "authorization_code" && grant_type != "client_credentials" {
        return Err(AadError::new(
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = form
        .get("client_id")
        .or(basic.as_ref().map(|(id, _)| id.as_str()))
        .ok_or_else(|| AadError::missing_param("client_id"))?;
    let app = shared.cfg.app(client_id).ok_or_else(|| {
        AadError::new(400, "unauthorized_client", 700016, format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            tenant.segment()
        ))
    })?;
    authenticate_client(
        shared,
        tenant,
        raw_tenant,
        app,
        &form,
        basic.as_ref().map(|(_, s)| s.as_str()),
    )?;
    match grant_type {
        "authorization_code" => redeem_code(shared, app, &form),
        _ => client_credentials(shared, tenant, app, &form),
    }
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 asks.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req.header("Authorization")?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(b64_decode(b64.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        form_decode(&format!("x={s}"))
            .pop()
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn authenticate_client(
    shared: &Shared,
    tenant: &TenantPath,
    raw_tenant: &str,
    app: &App,
    form: &Form,
    basic_secret: Option<&str>,
) -> Result<(), AadError> {
    if let Some(assertion) = form.get("client_assertion") {
        if let Some(cred) = federated_credential(shared, app, assertion) {
            return verify_federated(shared, cred, form.get("client_assertion_type"), assertion);
        }
        return verify_assertion(
            shared,
            tenant,
            raw_tenant,
            app,
            form.get("client_assertion_type"),
            assertion,
        );
    }
    let Some(secret) = form.get("client_secret").or(basic_secret) else {
        return Err(AadError::known(7000218));
    };
    if app.secret.as_deref() == Some(secret) {
        Ok(())
    } else {
        Err(AadError::new(401, "invalid_client", 7000215, format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
            app.client_id
        )))
    }
}

/// private_key_jwt as Entra checks it: RS256/PS256 signature by a registered certificate named
/// by x5t#S256 or x5t, iss = sub = client_id, aud = token endpoint, unexpired, with a jti.
fn verify_assertion(
    shared: &Shared,
    tenant: &TenantPath,
    raw_tenant: &str,
    app: &App,
    assertion_type: Option<&str>,
    assertion: &str,
) -> Result<(), AadError> {
    let reject = |why: String| {
        AadError::new(
            401,
            "invalid_client",
            700027,
            format!("Client assertion failed signature validation. [Reason - {why}]"),
        )
    };
    if assertion_type != Some(JWT_BEARER) {
        return Err(reject(format!(
            "client_assertion_type must be '{JWT_BEARER}'"
        )));
    }
    let parsed = jwt::parse(assertion).map_err(reject)?;
    let cred = &shared.client_cred;
    let thumbprint_ok = match (
        parsed.header["x5t#S256"].as_str(),
        parsed.header["x5t"].as_str(),
    ) {
        (Some(s256), _) => s256 == cred.x5t_s256,
        (None, Some(sha1)) => sha1 == cred.x5t,
        (None, None) => {
            return Err(reject(
                "the header names no certificate (x5t#S256 or x5t)".into(),
            ))
        }
    };
    if !app.certificate || !thumbprint_ok {
        return Err(reject(format!("The key was not found. The certificate used to sign the client assertion is not registered on application '{}'.", app.client_id)));
    }
    jwt::verify_rsa(&parsed, &cred.public).map_err(reject)?;
    let c = &parsed.claims;
    if c["iss"].as_str() != Some(app.client_id.as_str())
        || c["sub"].as_str() != Some(app.client_id.as_str())
    {
        return Err(reject("iss and sub must both be the client_id".into()));
    }
    let base = &shared.base_url;
    let accepted = [
        format!("{base}/{raw_tenant}/oauth2/v2.0/token"),
        format!("{base}/{}/oauth2/v2.0/token", tenant.segment()),
    ];
    let aud_ok = match &c["aud"] {
        serde_json::Value::String(a) => accepted.contains(a),
        serde_json::Value::Array(list) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| accepted.iter().any(|x| x == a))),
        _ => false,
    };
    if !aud_ok {
        return Err(reject(format!(
            "aud must be the token endpoint '{}'",
            accepted[0]
        )));
    }
    if c["jti"].as_str().is_none_or(str::is_empty) {
        return Err(reject("jti is missing".into()));
    }
    let t = now();
    let exp = c["exp"]
        .as_u64()
        .ok_or_else(|| reject("exp is missing".into()))?;
    let nbf = c["nbf"].as_u64().unwrap_or(0);
    if exp <= t || nbf > t + 300 {
        return Err(AadError::new(401, "invalid_client", 700024, format!(
            "Client assertion is not within its valid time range. Current time: {t}, assertion valid from {nbf}, expiry time of assertion {exp}."
        )));
    }
    Ok(())
}

/// The federated credential of `app` whose issuer the (not yet verified) assertion names.
fn federated_credential<'a>(shared: &Shared, app: &'a App, assertion: &str) -> Option<&'a FederatedCredential> {
    let iss = jwt::parse(assertion).ok()?.claims["iss"].as_str()?.to_string();
    app.federated_credentials.iter().find(|c| c.issuer.replace("{emulator}", &shared.base_url) == iss)
}

/// A federated credential's token as Entra checks it (workload identity federation): signed by
/// the issuer's key (its JWKS; here the emulated `/_gh` issuer's), `sub` = the credential's
/// subject, `aud` one of its audiences (`api://AzureADTokenExchange`), unexpired.
fn verify_federated(shared: &Shared, cred: &FederatedCredential, assertion_type: Option<&str>, assertion: &str) -> Result<(), AadError> {
    let reject = |code: u32, why: String| AadError::new(400, "invalid_client", code, why);
    if assertion_type != Some(JWT_BEARER) {
        return Err(reject(700027, format!("Client assertion failed signature validation. [Reason - client_assertion_type must be '{JWT_BEARER}']")));
    }
    let parsed = jwt::parse(assertion).map_err(|e| reject(700027, e))?;
    if parsed.header["kid"].as_str() != Some(shared.federated_key.kid.as_str()) {
        return Err(reject(700027, "Client assertion failed signature validation. [Reason - The key was not found.]".into()));
    }
    jwt::verify_rsa(&parsed, &shared.federated_key.public).map_err(|e| reject(700027, e))?;
    let c = &parsed.claims;
    let sub = c["sub"].as_str().unwrap_or_default();
    let aud_ok = match &c["aud"] {
        serde_json::Value::String(a) => cred.audiences.contains(a),
        serde_json::Value::Array(l) => l.iter().any(|a| a.as_str().is_some_and(|a| cred.audiences.iter().any(|x| x == a))),
        _ => false,
    };
    if sub != cred.subject || !aud_ok {
        return Err(reject(70021, format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
            c["iss"].as_str().unwrap_or_default(), c["aud"]
        )));
    }
    if c["exp"].as_u64().is_none_or(|exp| exp <= now()) {
        return Err(reject(700024, "Client assertion is not within its valid time range.".into()));
    }
    Ok(())
}

fn redeem_code(shared: &Shared, app: &App, form: &Form) -> Result<serde_json::Value, AadError> {
    let code = form
        .get("code")
        .ok_or_else(|| AadError::missing_param("code"))?;
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or_else(|| AadError::missing_param("redirect_uri"))?;
    let (grant, tamper, rotations) = {
        let mut rt = shared.rt();
        let Some(grant) = rt.codes.get_mut(code) else {
            return Err(AadError::known(9002313));
        };
        if grant.redeemed {
            return Err(AadError::known(54005));
        }
        if !grant.client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(AadError::new(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid: it was issued to another application."));
        }
        // Single use even when the redemption below fails, as with Entra.
        grant.redeemed = true;
        let grant = grant.clone();
        if now().saturating_sub(grant.issued_at) > CODE_LIFETIME {
            return Err(AadError::known(70008));
        }
        let tamper = rt.tamper.take();
        (grant, tamper, rt.rotations)
    };
    if redirect_uri != grant.redirect_uri {
        return Err(AadError::new(400, "invalid_grant", 50011, format!(
            "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
            grant.redirect_uri
        )));
    }
    let verifier = form.get("code_verifier").ok_or_else(|| AadError::new(400, "invalid_grant", 501481,
        "The Code_Verifier does not match the code_challenge supplied in the authorization request. (code_verifier is missing)"))?;
    if b64url(&crate::util::sha256(verifier.as_bytes())) != grant.code_challenge {
        return Err(AadError::known(501481));
    }
    let user = shared
        .cfg
        .user_by_oid(&grant.user_oid)
        .ok_or_else(|| AadError::known(50034))?;
    let id_token = idtoken::issue(shared, &grant, user, tamper, rotations);
    // a scope of an app of the directory (`api://<app>/<scope>`): a delegated token for its API
    let api_scope = grant.scope.split(' ').find_map(|s| access_token::resource_of(shared, s).map(|r| (r, s)));
    let access = match api_scope {
        Some(((resource, requested), s)) => {
            let scp = s.rsplit_once('/').map_or("", |(_, n)| n);
            access_token::issue(shared, resource, requested, app, &grant.tid, access_token::Principal::User { user, scope: scp })
        }
        None => random_token(64),
    };
    Ok(json!({
        "token_type": "Bearer",
        "scope": grant.scope,
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "ext_expires_in": ACCESS_TOKEN_LIFETIME,
        "access_token": access,
        "id_token": id_token,
    }))
}

fn client_credentials(
    shared: &Shared,
    tenant: &TenantPath,
    app: &App,
    form: &Form,
) -> Result<serde_json::Value, AadError> {
    let scope = form
        .get("scope")
        .ok_or_else(|| AadError::missing_param("scope"))?;
    if !scope.ends_with("/.default") || scope.contains(' ') {
        return Err(AadError::new(400, "invalid_scope", 70011, format!(
            "The provided value for the input parameter 'scope' isn't valid. The scope {scope} isn't valid: the client_credentials grant takes one scope ending in /.default."
        )));
    }
    // an app of the directory as the resource: a JWT for its API, with the roles of the
    // client's service principal (else: an opaque token for Graph, as before)
    if let Some((resource, requested)) = access_token::resource_of(shared, scope) {
        let TenantPath::Tenant(tid) = tenant else {
            return Err(AadError::new(400, "invalid_request", 700016, "The client credentials grant needs a tenant, not organizations or common."));
        };
        let principal = access_token::Principal::App { sp_oid: app.sp_oid() };
        let token = access_token::issue(shared, resource, requested, app, tid, principal);
        return Ok(json!({
            "token_type": "Bearer",
            "expires_in": access_token::LIFETIME,
            "ext_expires_in": access_token::LIFETIME,
            "access_token": token,
        }));
    }
    let access_token = random_token(64);
    let mut rt = shared.rt();
    rt.prune_expired(now());
    rt.app_tokens.insert(
        access_token.clone(),
        AppToken {
            client_id: app.client_id.clone(),
            expires_at: now() + ACCESS_TOKEN_LIFETIME,
        },
    );
    drop(rt);
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "ext_expires_in": ACCESS_TOKEN_LIFETIME,
        "access_token": access_token,
    }))
}
