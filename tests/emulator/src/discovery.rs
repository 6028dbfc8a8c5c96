//! OpenID discovery document and JWKS, in the member sets of the captured Entra documents
//! (fixtures/entra/discovery-*-v2*.json, jwks-common-v2-2025.json).

use crate::aadsts::AadError;
use crate::http::Response;
use crate::state::Shared;
use serde_json::{json, Value};

/// The `{tenant}` path segment, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantPath {
    /// A tenant GUID or one of its verified domains: the tenant GUID.
    Tenant(String),
    /// `organizations` or `common`: any work account, issuer is a `{tenantid}` template.
    Multi(&'static str),
}

impl TenantPath {
    pub fn resolve(shared: &Shared, segment: &str) -> Result<Self, AadError> {
        match segment.to_ascii_lowercase().as_str() {
            "organizations" => return Ok(TenantPath::Multi("organizations")),
            "common" => return Ok(TenantPath::Multi("common")),
            _ => {}
        }
        shared
            .cfg
            .resolve_tenant(segment)
            .map(|t| TenantPath::Tenant(t.id.clone()))
            .ok_or_else(|| AadError::tenant_not_found(segment))
    }

    /// What endpoint URLs carry: the GUID for a tenant, else the literal segment.
    pub fn segment(&self) -> &str {
        match self {
            TenantPath::Tenant(tid) => tid,
            TenantPath::Multi(name) => name,
        }
    }

    /// Issuer as published: concrete for a tenant, the `{tenantid}` template otherwise.
    pub fn issuer(&self, base_url: &str) -> String {
        match self {
            TenantPath::Tenant(tid) => format!("{base_url}/{tid}/v2.0"),
            TenantPath::Multi(_) => format!("{base_url}/{{tenantid}}/v2.0"),
        }
    }
}

pub fn discovery(shared: &Shared, tenant: &TenantPath) -> Response {
    let base = &shared.base_url;
    let seg = tenant.segment();
    let host = base.split("://").nth(1).unwrap_or(base);
    let doc = json!({
        "token_endpoint": format!("{base}/{seg}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{seg}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": tenant.issuer(base),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{seg}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{seg}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
            "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{seg}/kerberos"),
        // Entra sends null here for organizations/common (fixtures discovery-common-v2.json).
        "tenant_region_scope": match tenant { TenantPath::Tenant(_) => Value::from("WW"), TenantPath::Multi(_) => Value::Null },
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    });
    // Entra's caching headers (recorded in fixture 7's provenance).
    Response::json(200, &doc)
        .with_header("Cache-Control", "max-age=86400, private")
        .with_header("Access-Control-Allow-Origin", "*")
}

pub fn jwks(shared: &Shared, tenant: &TenantPath) -> Response {
    let issuer = tenant.issuer(&shared.base_url);
    let rotations = shared.rt().rotations;
    let keys: Vec<Value> = shared
        .keys
        .published(rotations)
        .iter()
        .map(|k| k.jwk(&issuer))
        .collect();
    Response::json(200, &json!({ "keys": keys }))
        .with_header("Cache-Control", "max-age=86400, private")
        .with_header("Access-Control-Allow-Origin", "*")
}
