//! client_credentials for Graph, and getMemberObjects resolving group overage.

mod common;
use common::*;
use entra_emulator::*;
use serde_json::json;

fn app_token(emu: &Emulator, scope: &str) -> Http {
    post_form(
        &token_url(emu, TENANT),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", scope),
        ],
    )
}

fn member_objects(emu: &Emulator, oid: &str, bearer: Option<&str>) -> Http {
    post_json(
        &format!("{}/v1.0/users/{oid}/getMemberObjects", emu.url()),
        &json!({"securityEnabledOnly": true}),
        bearer,
    )
}

#[test]
fn app_token_resolves_all_groups_of_an_overage_user() {
    let emu = start(EmulatorConfig::default());
    let t = app_token(&emu, &format!("{}/.default", emu.url()));
    assert_eq!(t.status, 200);
    let body = t.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body.get("id_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let r = member_objects(&emu, BOB_OID, Some(token));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(v["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/v1.0/$metadata#Collection(Edm.String)"));
    let groups = v["value"].as_array().unwrap();
    assert_eq!(groups.len(), 250);
    assert!(groups.contains(&json!(ADMINS_GROUP)) && groups.contains(&json!(OPERATORS_GROUP)));
    let unique: std::collections::HashSet<_> = groups.iter().collect();
    assert_eq!(unique.len(), 250);
    assert_eq!(emu.stats()["graph"], 1);
}

#[test]
fn graph_scope_must_be_dot_default() {
    let emu = start(EmulatorConfig::default());
    assert_eq!(
        app_token(&emu, "https://graph.microsoft.com/.default").status,
        200
    );
    assert_aadsts(
        &app_token(&emu, "https://graph.microsoft.com/User.Read"),
        400,
        "invalid_scope",
        70011,
    );
}

#[test]
fn graph_needs_a_valid_app_token() {
    let emu = start(EmulatorConfig::default());
    for bearer in [None, Some("made-up")] {
        let r = member_objects(&emu, ALICE_OID, bearer);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], "InvalidAuthenticationToken");
        assert!(r.json()["error"]["message"].is_string());
    }
    // A user's access token from the code flow is not an app token.
    let user_at = login_as(&emu, TENANT, None).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(member_objects(&emu, ALICE_OID, Some(&user_at)).status, 401);
}

#[test]
fn unknown_user_is_404() {
    let emu = start(EmulatorConfig::default());
    let token = app_token(&emu, "https://graph.microsoft.com/.default").json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = member_objects(&emu, "00000000-0000-0000-0000-000000000000", Some(&token));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "Request_ResourceNotFound");
}
