//! Authorization code flow with PKCE and client_secret_post / Basic, its claims and its errors.

mod common;
use common::*;
use entra_emulator::*;
use serde_json::json;

#[test]
fn full_flow_issues_a_verifiable_v2_id_token() {
    let emu = start(EmulatorConfig::default());
    let r = login_as(&emu, TENANT, None);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile email");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().len() > 40);
    let jwt = body["id_token"].as_str().unwrap();
    verify_with_jwks(&emu, TENANT, jwt).unwrap();
    let (header, c) = decode(jwt);
    assert_eq!(
        keys_of(&header),
        ["alg", "kid", "typ"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(header["typ"], "JWT");
    assert_eq!(c["aud"], CLIENT_ID);
    assert_eq!(c["iss"], format!("{}/{TENANT}/v2.0", emu.url()));
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["nonce"], "nonce-456");
    assert_eq!(c["oid"], ALICE_OID);
    assert_eq!(c["preferred_username"], "alice@contoso.example");
    assert_eq!(c["email"], "alice@contoso.example", "the email scope");
    assert_eq!(c["name"], "Alice Example");
    assert_eq!(c["groups"], json!([ADMINS_GROUP]));
    assert_eq!(c["roles"], json!(["PVE.Admin"]));
    // v2.0 without optional claims (claim_sets.rs has them all)
    for absent in ["upn", "given_name", "family_name", "acct", "idp", "unique_name"] {
        assert!(c.get(absent).is_none(), "{absent}: {c}");
    }
    assert_eq!(c["sub"], pairwise_sub(CLIENT_ID, ALICE_OID));
    assert_eq!(c["sub"].as_str().unwrap().len(), 43);
    let (iat, nbf, exp) = (
        c["iat"].as_u64().unwrap(),
        c["nbf"].as_u64().unwrap(),
        c["exp"].as_u64().unwrap(),
    );
    assert!(iat.abs_diff(now()) < 30 && nbf == iat && exp == iat + 3600);
    for claim in ["aio", "rh", "uti"] {
        assert!(c[claim].as_str().is_some_and(|s| !s.is_empty()), "{claim}");
    }
}

#[test]
fn pairwise_sub_is_stable_per_app_and_differs_across_apps() {
    assert_eq!(
        pairwise_sub(CLIENT_ID, ALICE_OID),
        pairwise_sub(CLIENT_ID, ALICE_OID)
    );
    assert_ne!(
        pairwise_sub(CLIENT_ID, ALICE_OID),
        pairwise_sub("bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee", ALICE_OID)
    );
    assert_ne!(
        pairwise_sub(CLIENT_ID, ALICE_OID),
        pairwise_sub(CLIENT_ID, BOB_OID)
    );
}

#[test]
fn more_groups_than_the_limit_become_an_overage_indicator() {
    let emu = start(EmulatorConfig::default());
    let (_, c) = decode(&id_token(&emu, Some("bob@contoso.example")));
    assert!(c.get("groups").is_none(), "{c}");
    assert_eq!(c["_claim_names"], json!({"groups": "src1"}));
    assert_eq!(
        c["_claim_sources"],
        json!({"src1": {
            "endpoint": format!("https://graph.windows.net/{TENANT}/users/{BOB_OID}/getMemberObjects")
        }})
    );
}

#[test]
fn overage_limit_is_configurable() {
    let cfg: EmulatorConfig = serde_json::from_value(json!({"groups_overage_limit": 0})).unwrap();
    let emu = start(cfg);
    let (_, c) = decode(&id_token(&emu, None));
    assert!(c.get("groups").is_none());
    assert!(c.get("_claim_names").is_some());
}

#[test]
fn guest_has_home_idp_and_upn_only_when_externally_authenticated() {
    let emu = start(EmulatorConfig::default().with_id_token_claims(&["acct", "upn"]));
    let (_, c) = decode(&id_token(&emu, Some("guest@fabrikam.example")));
    assert_eq!(c["acct"], 1);
    assert_eq!(
        c["idp"],
        format!("https://sts.windows.net/{FABRIKAM_TENANT}/")
    );
    assert_eq!(c["tid"], TENANT);
    assert!(c.get("upn").is_none(), "upn without include_externally_authenticated_upn: {c}");
    assert_eq!(c["preferred_username"], "guest@fabrikam.example");
    assert_eq!(c["email"], "guest@fabrikam.example");
    assert_eq!(c["oid"], GUEST_OID);
    emu.control(json!({"optional_claims": {"idToken": [
        {"name": "upn", "essential": false, "additionalProperties": ["include_externally_authenticated_upn"]}
    ]}}));
    let (_, c) = decode(&id_token(&emu, Some("guest@fabrikam.example")));
    assert_eq!(c["upn"], "guest_fabrikam.example#EXT#@contoso.example");
    assert!(c.get("acct").is_none(), "the control's claims replace the configured ones: {c}");
}

#[test]
fn foreign_tenant_user_signs_in_through_organizations_only() {
    let emu = start(EmulatorConfig::default());
    let err = authorize_error(&emu, &[], Some("carol@fabrikam.example"));
    assert!(err.contains("AADSTS50020"), "{err}");
    let r = login_as(&emu, "organizations", Some("carol@fabrikam.example"));
    let (_, c) = decode(r.json()["id_token"].as_str().unwrap());
    assert_eq!(c["tid"], FABRIKAM_TENANT);
    assert_eq!(c["iss"], format!("{}/{FABRIKAM_TENANT}/v2.0", emu.url()));
    verify_with_jwks(
        &emu,
        "organizations",
        r.json()["id_token"].as_str().unwrap(),
    )
    .unwrap();
}

#[test]
fn basic_client_authentication_is_accepted() {
    let emu = start(EmulatorConfig::default());
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&auth_url(&emu, TENANT, &challenge, &[]), None).unwrap();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{CLIENT_ID}:{CLIENT_SECRET}"),
    );
    let mut r = ureq::post(&token_url(&emu, TENANT))
        .header("Authorization", &format!("Basic {basic}"))
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(body["id_token"].is_string(), "{body}");
}

/// Runs authorize, then redeems with `form` (defaults filled in; "" removes a field).
fn redeem(emu: &Emulator, overrides: &[(&str, &str)]) -> (Http, String, String) {
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&auth_url(emu, TENANT, &challenge, &[]), None).unwrap();
    let mut form = code_redemption(&code, &verifier);
    for (k, v) in overrides {
        form.retain(|(fk, _)| fk != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    let r = post_form(&token_url(emu, TENANT), &form);
    (r, code.clone(), verifier.clone())
}

#[test]
fn code_is_single_use() {
    let emu = start(EmulatorConfig::default());
    let (r, code, verifier) = redeem(&emu, &[]);
    assert_eq!(r.status, 200);
    let again = post_form(
        &token_url(&emu, TENANT),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    );
    assert_aadsts(&again, 400, "invalid_grant", 54005);
}

type TokenErrorCase = (
    &'static [(&'static str, &'static str)],
    u16,
    &'static str,
    u64,
);

#[test]
fn token_errors_have_entra_codes_and_shape() {
    let emu = start(EmulatorConfig::default());
    // (form overrides, HTTP status, OAuth error, AADSTS code)
    let cases: &[TokenErrorCase] = &[
        (
            &[("client_secret", "wrong")],
            401,
            "invalid_client",
            7000215,
        ),
        (&[("client_secret", "")], 401, "invalid_client", 7000218),
        (
            &[("client_id", "99999999-bbbb-cccc-dddd-eeeeeeeeeeee")],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            &[("redirect_uri", "https://evil.example")],
            400,
            "invalid_grant",
            50011,
        ),
        (
            &[(
                "code_verifier",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )],
            400,
            "invalid_grant",
            501481,
        ),
        (&[("code_verifier", "")], 400, "invalid_grant", 501481),
        (&[("code", "not-a-code")], 400, "invalid_grant", 9002313),
        (&[("code", "")], 400, "invalid_request", 900144),
        (
            &[("grant_type", "password")],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (&[("grant_type", "")], 400, "invalid_request", 900144),
    ];
    for (overrides, status, error, code) in cases {
        let (r, _, _) = redeem(&emu, overrides);
        assert_aadsts(&r, *status, error, *code);
    }
    // The wrong-secret text names the app, as Entra's does.
    let (r, _, _) = redeem(&emu, &[("client_secret", "wrong")]);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains(CLIENT_ID));
}

#[test]
fn unknown_tenant_at_token_endpoint_is_aadsts90002() {
    let emu = start(EmulatorConfig::default());
    let r = post_form(
        &token_url(&emu, "nowhere.example"),
        &[("grant_type", "client_credentials")],
    );
    assert_aadsts(&r, 400, "invalid_tenant", 90002);
}

/// The error of an authorize request that must fail (`extra` as for `auth_url`).
fn authorize_error(emu: &Emulator, extra: &[(&str, &str)], hint: Option<&str>) -> String {
    let (_, challenge) = pkce();
    authorize(&auth_url(emu, TENANT, &challenge, extra), hint).unwrap_err()
}

#[test]
fn authorize_rejects_bad_requests_with_redirected_errors() {
    let emu = start(EmulatorConfig::default());
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("code_challenge", "")], "invalid_request: AADSTS501481:"),
        (
            &[("code_challenge_method", "plain")],
            "invalid_request: AADSTS50149:",
        ),
        (
            &[("code_challenge_method", "")],
            "invalid_request: AADSTS50149:",
        ),
        (&[("scope", "profile email")], "invalid_scope: AADSTS70011:"),
        (
            &[("response_type", "token")],
            "unsupported_response_type: AADSTS70005:",
        ),
        (&[("nonce", "")], "invalid_request: AADSTS900144:"),
        (&[("state", "")], "invalid_request: AADSTS900144:"),
    ];
    for (extra, prefix) in cases {
        let err = authorize_error(&emu, extra, None);
        assert!(err.starts_with(prefix), "{extra:?}: {err}");
        assert!(err.contains("\r\nTrace ID: "), "{err:?}");
    }
}

#[test]
fn error_redirect_keeps_state_and_target() {
    let emu = start(EmulatorConfig::default());
    let url = auth_url(&emu, TENANT, "x", &[("code_challenge", "")]);
    let r = get(&url);
    assert_eq!(r.status, 302);
    let loc = r.location.unwrap();
    assert!(
        loc.starts_with(&format!(
            "{REDIRECT}?error=invalid_request&error_description=AADSTS501481"
        )),
        "{loc}"
    );
    assert!(loc.ends_with("&state=state-123"), "{loc}");
}

#[test]
fn untrusted_redirect_is_never_followed() {
    let emu = start(EmulatorConfig::default());
    for (extra, code) in [
        (
            vec![("client_id", "99999999-bbbb-cccc-dddd-eeeeeeeeeeee")],
            "AADSTS700016",
        ),
        (vec![("redirect_uri", "")], "AADSTS900144"),
    ] {
        let (_, challenge) = pkce();
        let r = get(&auth_url(&emu, TENANT, &challenge, &extra));
        assert_eq!(r.status, 400);
        assert!(r.location.is_none());
        assert!(String::from_utf8_lossy(&r.body).contains(code));
    }
}

#[test]
fn unknown_user_gets_an_error_page() {
    let emu = start(EmulatorConfig::default());
    let err = authorize_error(&emu, &[], Some("nobody@contoso.example"));
    assert!(err.contains("AADSTS50034"), "{err}");
}

/// "Assignment required?": a user assigned neither itself nor through a group it is a direct
/// member of is refused after sign-in (AADSTS50105); the assigned ones sign in.
#[test]
fn assignment_required_refuses_unassigned_users() {
    const NESTED: &str = "6f7e8d9c-1111-4111-8111-0000000000e5";
    let mut cfg = EmulatorConfig::default();
    cfg.apps[0].assignment_required = true;
    cfg.apps[0].assigned = vec![OPERATORS_GROUP.into()];
    cfg.subgroups.insert(OPERATORS_GROUP.into(), vec![NESTED.into()]);
    cfg.users[2].groups = vec![NESTED.into()]; // the guest, in a group nested in an assigned one
    let guest = cfg.users[2].upn.clone();
    let emu = start(cfg);
    assert_eq!(login_as(&emu, TENANT, Some("alice@contoso.example")).status, 200, "alice: a role of her own");
    assert_eq!(login_as(&emu, TENANT, Some("bob@contoso.example")).status, 200, "bob: direct member of the assigned group");
    let err = authorize_error(&emu, &[], Some(&guest));
    assert!(err.starts_with("invalid_grant: AADSTS50105:"), "{err}");
}

#[test]
fn registered_redirect_uris_are_enforced() {
    let cfg: EmulatorConfig = serde_json::from_value(json!({"apps": [{
        "client_id": CLIENT_ID, "secret": CLIENT_SECRET, "redirect_uris": [REDIRECT]
    }]}))
    .unwrap();
    let emu = start(cfg);
    let (_, challenge) = pkce();
    authorize(&auth_url(&emu, TENANT, &challenge, &[]), None).unwrap();
    let err = authorize_error(&emu, &[("redirect_uri", "https://other:8006")], None);
    assert!(err.contains("AADSTS50011"), "{err}");
}

/// A registered `http://localhost` matches any port of localhost (Entra ignores the port of
/// localhost redirect URIs), nothing else.
#[test]
fn registered_localhost_matches_any_port() {
    let cfg: EmulatorConfig = serde_json::from_value(json!({"apps": [{
        "client_id": CLIENT_ID, "secret": CLIENT_SECRET, "redirect_uris": ["http://localhost"]
    }]}))
    .unwrap();
    let emu = start(cfg);
    let (_, challenge) = pkce();
    for uri in ["http://localhost", "http://localhost/", "http://localhost:49152", "http://localhost:8/"] {
        authorize(&auth_url(&emu, TENANT, &challenge, &[("redirect_uri", uri)]), None).unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
    for uri in ["http://localhost:49152/cb", "http://127.0.0.1:49152", "https://localhost:49152", "http://localhost.evil.example:80"] {
        let err = authorize_error(&emu, &[("redirect_uri", uri)], None);
        assert!(err.contains("AADSTS50011"), "{uri}: {err}");
    }
}

#[test]
fn config_file_adds_users_and_keeps_defaults() {
    let cfg: EmulatorConfig = serde_json::from_value(json!({"users": [{
        "upn": "dave@contoso.example", "oid": "0e0e0e0e-0000-4000-8000-000000000e0e", "name": "Dave D",
        "groups": ["6f7e8d9c-1111-4111-8111-000000000003"], "roles": ["PVE.Auditor"]
    }], "latency_ms": 0}))
    .unwrap();
    assert!(
        cfg.users.iter().any(|u| u.oid == ALICE_OID),
        "defaults kept"
    );
    let emu = start(cfg);
    let (_, c) = decode(&id_token(&emu, Some("dave@contoso.example")));
    assert_eq!(c["oid"], "0e0e0e0e-0000-4000-8000-000000000e0e");
    assert_eq!(c["roles"], json!(["PVE.Auditor"]));
    assert_eq!(c["tid"], TENANT);
    assert!(
        serde_json::from_value::<EmulatorConfig>(json!({"userz": []})).is_err(),
        "unknown fields are rejected"
    );
}
