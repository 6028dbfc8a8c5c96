//! Non-interactive authorize endpoint: validates the request as Entra would, "signs in" the
//! login_hint user (default alice) and redirects back with a code.

use crate::aadsts::AadError;
use crate::discovery::TenantPath;
use crate::http::{Request, Response};
use crate::state::{CodeGrant, Shared};
use crate::util::{form_decode, form_encode, now, random_guid, random_token};

pub const DEFAULT_USER: &str = "alice@contoso.example";

pub fn authorize(shared: &Shared, tenant: &TenantPath, req: &Request) -> Response {
    let params = form_decode(&req.query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let base = &shared.base_url;

    // Until the redirect URI is validated, errors are shown on Entra's page, never redirected.
    let Some(client_id) = get("client_id") else {
        return AadError::missing_param("client_id").page();
    };
    let Some(app) = shared.cfg.app(client_id) else {
        return AadError::new(
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                tenant.segment()
            ),
        )
        .page();
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return AadError::missing_param("redirect_uri").page();
    };
    if !app.redirect_uris.is_empty() && !app.redirect_uris.iter().any(|r| redirect_uri_matches(r, redirect_uri)) {
        return AadError::new(400, "invalid_request", 50011, format!(
            "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
        ))
        .page();
    }
    let state = get("state");
    let fail = |e: AadError| e.redirect(base, redirect_uri, state);

    match get("response_type") {
        None => return fail(AadError::missing_param("response_type")),
        Some("code") => {}
        Some(other) => {
            return fail(AadError::new(
                400,
                "unsupported_response_type",
                70005,
                format!("response_type '{other}' is not enabled for the application."),
            ))
        }
    }
    let Some(scope) = get("scope") else {
        return fail(AadError::missing_param("scope"));
    };
    if !scope.split(' ').any(|s| s == "openid") {
        return fail(AadError::new(400, "invalid_scope", 70011, format!(
            "The provided value for the input parameter 'scope' isn't valid. The scope '{scope}' does not include 'openid'."
        )));
    }
    let Some(code_challenge) = get("code_challenge") else {
        return fail(AadError::new(400, "invalid_request", 501481,
            "The Code_Challenge is missing: this app requires PKCE (code_challenge with code_challenge_method S256)."));
    };
    if get("code_challenge_method") != Some("S256") {
        return fail(AadError::new(
            400,
            "invalid_request",
            50149,
            "Invalid Code_Challenge_method parameter: only S256 is accepted.",
        ));
    }
    if code_challenge.len() != 43 {
        return fail(AadError::new(
            400,
            "invalid_request",
            501491,
            "Invalid size of Code_Challenge parameter.",
        ));
    }
    let Some(nonce) = get("nonce") else {
        return fail(AadError::missing_param("nonce"));
    };
    if state.is_none() {
        return fail(AadError::missing_param("state"));
    }

    let hint = get("login_hint").unwrap_or(DEFAULT_USER);
    let Some(user) = shared.cfg.user_by_hint(hint) else {
        return AadError::new(400, "invalid_request", 50034, format!(
            "The user account {hint} does not exist in the '{}' directory. To sign into this application, the account must be added to the directory.",
            tenant.segment()
        ))
        .page();
    };
    let user_tid = shared.cfg.user_tid(user).to_string();
    if let TenantPath::Tenant(tid) = tenant {
        if !tid.eq_ignore_ascii_case(&user_tid) {
            return AadError::new(400, "invalid_request", 50020, format!(
                "User account '{hint}' from identity provider 'https://sts.windows.net/{user_tid}/' does not exist in tenant '{tid}' and cannot access the application '{client_id}' in that tenant."
            ))
            .page();
        }
    }

    // the enterprise application's "Assignment required?": others are refused after sign-in
    if app.assignment_required && !shared.cfg.is_assigned(user, app) {
        return fail(AadError::known(50105));
    }

    let code = format!("1.A{}", random_token(96));
    let mut rt = shared.rt();
    rt.prune_expired(now());
    rt.codes.insert(
        code.clone(),
        CodeGrant {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            code_challenge: code_challenge.to_string(),
            nonce: nonce.to_string(),
            scope: scope.to_string(),
            user_oid: user.oid.clone(),
            tid: user_tid,
            issued_at: now(),
            redeemed: false,
        },
    );
    drop(rt);
    let session_state = random_guid();
    let query = form_encode(&[
        ("code", &code),
        ("state", state.unwrap_or_default()),
        ("session_state", &session_state),
    ]);
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    Response::new(302, "text/html; charset=utf-8", "")
        .with_header("Location", &format!("{redirect_uri}{sep}{query}"))
}

/// Whether a requested redirect URI matches a registered one: exactly, or, as Entra matches
/// `http://localhost` and `http://127.0.0.1` registrations, whatever the requested port (a path
/// of `/` is the empty path).
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    fn loopback(uri: &str) -> Option<(&str, &str)> {
        let rest = uri.strip_prefix("http://")?;
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
        let host = authority.split_once(':').map_or(authority, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { "" });
        let path = if path == "/" { "" } else { path };
        matches!(host, "localhost" | "127.0.0.1").then_some((host, path))
    }
    registered == requested || loopback(registered).is_some_and(|r| loopback(requested) == Some(r))
}
