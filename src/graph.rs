//! Group overage: when a user is in more groups than fit into the token, Entra leaves them out
//! and sets `_claim_names.groups`. We then ask Microsoft Graph with an app token
//! (client_credentials) — never the URL in `_claim_sources`, which the token names and which
//! points at the retired Azure AD Graph.

use openidconnect::{OAuth2TokenResponse, Scope};
use serde_json::{json, Value};

use crate::config::{is_guid, RealmConfig};
use crate::error::{sanitize, Code, Error, Result};
use crate::oidc;
use crate::http::MAX_BODY;
use crate::request::Env;

fn graph_error(msg: String) -> Error {
    Error::new(Code::GraphError, msg)
}

/// An app-only access token for `{graph}/.default`, from the user's own tenant
/// (client_credentials through openidconnect).
pub fn app_token(cfg: &RealmConfig, env: &Env, tid: &str) -> Result<String> {
    let endpoint = format!("{}/{tid}/oauth2/v2.0/token", cfg.authority);
    let issuer = format!("{}/{tid}/v2.0", cfg.authority);
    let (client, extra) = oidc::token_client(cfg, &issuer, &endpoint, env.now)?;
    let answer = oidc::token_request(env.http, "access_token", |http| {
        let mut request = client.exchange_client_credentials().add_scope(Scope::new(format!("{}/.default", cfg.graph_url)));
        for (k, v) in &extra {
            request = request.add_extra_param(*k, v.clone());
        }
        request.request(&http)
    })?;
    let token = answer.access_token().secret();
    if token.is_empty() {
        return Err(Error::new(Code::IdpBadResponse, "token endpoint answer has no access_token"));
    }
    Ok(token.clone())
}

/// All group and role ids the user is a (transitive) member of.
pub fn member_objects(cfg: &RealmConfig, env: &Env, tid: &str, oid: &str) -> Result<Vec<String>> {
    if !is_guid(oid) || !is_guid(tid) {
        return Err(graph_error("the user's oid/tid are not GUIDs; cannot ask Graph for groups".into()));
    }
    let token = app_token(cfg, env, tid)?;
    let url = format!("{}/v1.0/users/{oid}/getMemberObjects", cfg.graph_url);
    let body = json!({"securityEnabledOnly": false}).to_string();
    let resp = env.http.post_json(&url, &token, &body, MAX_BODY)?;
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if resp.status != 200 {
        let code = v.as_ref().and_then(|v| v.pointer("/error/code")).and_then(Value::as_str).unwrap_or("unknown");
        let mut e = graph_error(format!("Graph getMemberObjects answered HTTP {}: {}", resp.status, sanitize(code))).with_status(resp.status);
        if resp.status == 403 || code == "Authorization_RequestDenied" {
            e = e.with_hint("grant the app registration the Microsoft Graph application permission GroupMember.Read.All (admin consent)");
        }
        return Err(e);
    }
    let ids = v
        .as_ref()
        .and_then(|v| v.get("value"))
        .and_then(Value::as_array)
        .ok_or_else(|| graph_error("Graph getMemberObjects answer has no `value` list".into()))?;
    Ok(ids.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
}
