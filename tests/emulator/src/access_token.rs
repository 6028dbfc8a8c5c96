//! Access tokens Entra issues for an app's own API (resource = an app registration of the
//! directory): app-only ones of the client credentials grant (a workload's service principal,
//! with the app roles assigned to it) and delegated ones of a user sign-in. The version is the
//! resource app's `requestedAccessTokenVersion` (null: v1.0). Which claims a token carries is
//! [`CLAIMS`], like the ID token's table; the federated "GitHub Actions" issuer is [`federated`].

use crate::config::{App, OptionalClaims, User};
use crate::idtoken::{pairwise_sub, Version};
use crate::jwt::signing_input;
use crate::state::Shared;
use crate::util::{b64url, now, random_token};
use serde_json::{json, Map, Value};

/// Entra's access tokens live 60 to 90 minutes; the emulator's an hour.
pub const LIFETIME: u64 = 3599;

/// When Entra puts a claim into an access token for an app's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    Never,
    Always,
    /// App-only tokens (client credentials) only.
    App,
    /// Delegated tokens (a user signed in) only.
    User,
    /// Only as an access token optional claim of the resource app (e.g. `idtyp`).
    Optional,
    /// When the principal holds some (app roles assigned to the SP or the user).
    Held,
}

/// `(claim, v1.0, v2.0)`: Entra's access token claim sets. Source: Microsoft's "Access token
/// claims reference" (v1.0: `appid`/`appidacr`, `idp` of app-only tokens, `unique_name`/`upn`;
/// v2.0: `azp`/`azpacr`, `preferred_username`; `idtyp` only as an optional claim; an app-only
/// token's `sub` and `oid` are both its service principal's object id; `scp` only in delegated ones).
pub const CLAIMS: &[(&str, Issued, Issued)] = {
    use Issued::*;
    &[
        ("aud", Always, Always),
        ("iss", Always, Always),
        ("iat", Always, Always),
        ("nbf", Always, Always),
        ("exp", Always, Always),
        ("aio", Always, Always),
        ("appid", Always, Never),
        ("appidacr", Always, Never),
        ("azp", Never, Always),
        ("azpacr", Never, Always),
        ("idp", App, Never),
        ("idtyp", Optional, Optional),
        ("name", User, User),
        ("oid", Always, Always),
        ("preferred_username", Never, User),
        ("rh", Always, Always),
        ("roles", Held, Held),
        ("scp", User, User),
        ("sub", Always, Always),
        ("tid", Always, Always),
        ("unique_name", User, Never),
        ("upn", User, Never),
        ("uti", Always, Always),
        ("ver", Always, Always),
    ]
};

/// Who the token is for: a workload's service principal, or a user through a client app.
pub enum Principal<'a> {
    App { sp_oid: String },
    User { user: &'a User, scope: &'a str },
}

/// The version of access tokens for `resource` (`requestedAccessTokenVersion`; a control
/// override first).
pub fn version_of(shared: &Shared, resource: &App) -> Version {
    let configured = shared.rt().access_token_version.unwrap_or(resource.requested_access_token_version);
    if configured == Some(2) { Version::V2 } else { Version::V1 }
}

/// Signs an access token for `resource` (named in the request as `requested`, its client id or
/// an Application ID URI) to `client` (the app that asked) in tenant `tid`.
pub fn issue(shared: &Shared, resource: &App, requested: &str, client: &App, tid: &str, who: Principal) -> String {
    let version = version_of(shared, resource);
    let optional: OptionalClaims = shared.optional_claims(&resource.client_id);
    let t = now().saturating_add_signed(shared.rt().access_token_time_offset);
    let app_only = matches!(who, Principal::App { .. });
    let mut c = Map::new();
    for (name, v1, v2) in CLAIMS {
        let rule = if version == Version::V1 { *v1 } else { *v2 };
        let applies = match rule {
            Issued::Never => false,
            Issued::Always | Issued::Held => true,
            Issued::App => app_only,
            Issued::User => !app_only,
            Issued::Optional => optional.access_token.iter().any(|o| o.name == *name),
        };
        if !applies {
            continue;
        }
        let value: Option<Value> = match (*name, &who) {
            // v2.0: always the client id; v1.0: the resource as the request named it
            ("aud", _) => Some(if version == Version::V2 { resource.client_id.clone() } else { requested.to_string() }.into()),
            ("iss", _) | ("idp", _) => Some(match version {
                Version::V1 => format!("https://sts.windows.net/{tid}/").into(),
                Version::V2 => format!("{}/{tid}/v2.0", shared.base_url).into(),
            }),
            ("iat" | "nbf", _) => Some(t.into()),
            ("exp", _) => Some((t + LIFETIME).into()),
            ("aio", _) => Some(random_token(48).into()),
            ("rh", _) => Some(format!("1.A{}", random_token(48)).into()),
            ("uti", _) => Some(random_token(16).into()),
            ("ver", _) => Some(if version == Version::V1 { "1.0" } else { "2.0" }.into()),
            ("tid", _) => Some(tid.into()),
            ("appid" | "azp", _) => Some(client.client_id.clone().into()),
            // 1: a client secret, 2: a certificate or federated assertion (as Entra)
            ("appidacr" | "azpacr", _) => Some("1".into()),
            ("idtyp", _) => Some(if app_only { "app" } else { "user" }.into()),
            ("oid" | "sub", Principal::App { sp_oid }) => Some(sp_oid.clone().into()),
            ("oid", Principal::User { user, .. }) => Some(user.oid.clone().into()),
            ("sub", Principal::User { user, .. }) => Some(pairwise_sub(&client.client_id, &user.oid).into()),
            ("roles", Principal::App { sp_oid }) => Some(resource.roles_of_sp(sp_oid)).filter(|r| !r.is_empty()).map(Value::from),
            ("roles", Principal::User { user, .. }) => Some(shared.cfg.roles_of(user, resource)).filter(|r| !r.is_empty()).map(Value::from),
            ("scp", Principal::User { scope, .. }) => Some(scope.to_string().into()),
            ("name", Principal::User { user, .. }) => Some(user.name.clone().into()),
            ("preferred_username" | "unique_name" | "upn", Principal::User { user, .. }) => Some(user.upn.clone().into()),
            (other, _) => unreachable!("claim {other} of CLAIMS has no value here"),
        };
        if let Some(v) = value {
            c.insert(name.to_string(), v);
        }
    }
    let key = shared.keys.signing(shared.rt().rotations);
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
    let input = signing_input(&header, &Value::Object(c));
    format!("{input}.{}", b64url(&key.sign_rs256(input.as_bytes())))
}

/// The resource app and the name the request used for it, from a scope
/// `<client id or Application ID URI>/.default` (or, delegated, `<...>/<scope name>`).
pub fn resource_of<'a>(shared: &'a Shared, scope: &'a str) -> Option<(&'a App, &'a str)> {
    let (resource, _) = scope.rsplit_once('/')?;
    shared.cfg.resource_app(resource).map(|app| (app, resource))
}

/// The emulated "GitHub Actions" OIDC issuer `{emulator}/_gh`: its discovery document, its JWKS,
/// and `/_gh/token?audience=&sub=` handing out an ID token as a job's ACTIONS_ID_TOKEN_REQUEST_URL
/// does (signed with the bundled client key, which is none of Entra's).
pub mod federated {
    use super::*;
    use crate::http::{Reply, Request, Response};
    use crate::util::form_decode;

    pub const PATH: &str = "/_gh";

    pub fn issuer(shared: &Shared) -> String {
        format!("{}{PATH}", shared.base_url)
    }

    pub fn handle(shared: &Shared, req: &Request) -> Option<Reply> {
        let rest = req.path.strip_prefix(PATH)?;
        let iss = issuer(shared);
        let key = &shared.federated_key;
        let resp = match (req.method.as_str(), rest) {
            ("GET", "/.well-known/openid-configuration") => Response::json(200, &json!({
                "issuer": iss, "jwks_uri": format!("{iss}/.well-known/jwks"),
                "subject_types_supported": ["public"], "response_types_supported": ["id_token"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })),
            ("GET", "/.well-known/jwks") => Response::json(200, &json!({"keys": [key.jwk(&iss)]})),
            ("GET", "/token") => {
                let q = form_decode(&req.query);
                let get = |n: &str| q.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                let t = now();
                let claims = json!({
                    "iss": iss, "aud": get("audience").unwrap_or_else(|| crate::config::TOKEN_EXCHANGE_AUDIENCE.into()),
                    "sub": get("sub").unwrap_or_else(|| crate::config::GH_SUBJECT.into()),
                    "repository": "contoso/infra", "ref": "refs/heads/main", "jti": random_token(16),
                    "iat": t, "nbf": t, "exp": t + 300,
                });
                let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
                let input = signing_input(&header, &claims);
                let value = format!("{input}.{}", b64url(&key.sign_rs256(input.as_bytes())));
                Response::json(200, &json!({"value": value}))
            }
            _ => Response::new(404, "text/plain; charset=utf-8", "not found\n"),
        };
        Some(Reply::Full(resp))
    }
}
