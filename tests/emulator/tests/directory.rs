//! Graph directory reads of realm sync: transitiveMembers with $select, $top and nextLink
//! paging, the app token required, and the throttling fault.

mod common;
use common::*;
use entra_emulator::*;
use serde_json::{json, Value};
use std::time::Duration;

fn app_token(emu: &Emulator) -> String {
    let t = post_form(
        &token_url(emu, TENANT),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", &format!("{}/.default", emu.url())),
        ],
    );
    t.json()["access_token"].as_str().unwrap().to_string()
}

/// (status, Retry-After, body)
fn get_bearer(url: &str, token: &str) -> (u16, Option<String>, Value) {
    let mut r = agent_with_timeout(Duration::from_secs(10))
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let status = r.status().as_u16();
    let body = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap_or(Value::Null);
    (status, retry, body)
}

#[test]
fn members_are_paged_with_next_links_and_selected_fields() {
    let emu = start(EmulatorConfig::default());
    let token = app_token(&emu);
    let first = format!(
        "{}/v1.0/groups/{ADMINS_GROUP}/transitiveMembers/microsoft.graph.user?$select=id,userPrincipalName,accountEnabled&$top=1",
        emu.url()
    );
    let (status, _, page) = get_bearer(&first, &token);
    assert_eq!(status, 200);
    assert_eq!(page["value"], json!([{"@odata.type": "#microsoft.graph.user", "id": ALICE_OID,
        "userPrincipalName": "alice@contoso.example", "accountEnabled": true}]));
    let next = page["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(next.starts_with(&emu.url()));
    let (_, _, page) = get_bearer(&next, &token);
    assert_eq!(page["value"][0]["id"], BOB_OID);
    assert!(page.get("@odata.nextLink").is_none(), "two members, two pages");
    assert_eq!(emu.stats()["graph"], 2);

    let (status, _, e) = get_bearer(&first, "not-a-token");
    assert_eq!(status, 401);
    assert_eq!(e["error"]["code"], "InvalidAuthenticationToken");
    let (status, _, _) = get_bearer(&first.replace("$top=1", "$top=1000"), &token);
    assert_eq!(status, 400, "Graph's largest page is 999");
    let unknown = format!("{}/v1.0/groups/6f7e8d9c-1111-4111-8111-00000000dead/transitiveMembers", emu.url());
    assert_eq!(get_bearer(&unknown, &token).0, 404);
}

#[test]
fn throttling_fault_answers_429_with_retry_after() {
    let emu = start(EmulatorConfig::default());
    let token = app_token(&emu);
    emu.control(json!({"fail_next": {"endpoint": "graph", "mode": "throttle:7"}}));
    let url = format!("{}/v1.0/groups/{ADMINS_GROUP}/transitiveMembers", emu.url());
    let (status, retry, body) = get_bearer(&url, &token);
    assert_eq!((status, retry.as_deref()), (429, Some("7")));
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(get_bearer(&url, &token).0, 200, "one fault, then served");
}

#[test]
fn app_role_holders_are_listed_through_the_service_principal() {
    let mut cfg = EmulatorConfig::default();
    cfg.apps[0].group_roles.insert("PVE.Auditor".into(), vec![OPERATORS_GROUP.into()]);
    let emu = start(cfg);
    let token = app_token(&emu);
    let (status, _, sp) = get_bearer(
        &format!("{}/v1.0/servicePrincipals(appId='{CLIENT_ID}')?$select=id,appRoles", emu.url()),
        &token,
    );
    assert_eq!(status, 200);
    assert_eq!(sp.as_object().unwrap().len(), 2, "only the selected members: {sp}");
    let role_id = |value: &str| {
        sp["appRoles"].as_array().unwrap().iter().find(|r| r["value"] == value).unwrap()["id"].as_str().unwrap().to_string()
    };
    let (admin, auditor) = (role_id("PVE.Admin"), role_id("PVE.Auditor"));

    let mut url = format!("{}/v1.0/servicePrincipals/{}/appRoleAssignedTo?$top=1", emu.url(), sp["id"].as_str().unwrap());
    let mut seen = vec![];
    loop {
        let (status, _, page) = get_bearer(&url, &token);
        assert_eq!(status, 200);
        for a in page["value"].as_array().unwrap() {
            seen.push((a["appRoleId"].as_str().unwrap().to_string(), a["principalId"].as_str().unwrap().to_string(),
                a["principalType"].as_str().unwrap().to_string()));
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert!(seen.contains(&(admin, ALICE_OID.into(), "User".into())), "{seen:?}");
    assert!(seen.contains(&(auditor, OPERATORS_GROUP.into(), "Group".into())), "{seen:?}");

    let (status, _, alice) = get_bearer(&format!("{}/v1.0/users/{ALICE_OID}?$select=id,accountEnabled", emu.url()), &token);
    assert_eq!((status, alice["accountEnabled"].clone()), (200, json!(true)));
    let unknown = "6f7e8d9c-1111-4111-8111-00000000dead";
    assert_eq!(get_bearer(&format!("{}/v1.0/users/{unknown}", emu.url()), &token).0, 404);
    assert_eq!(get_bearer(&format!("{}/v1.0/servicePrincipals(appId='{unknown}')", emu.url()), &token).0, 404);
    assert_eq!(get_bearer(&format!("{}/v1.0/servicePrincipals/{unknown}/appRoleAssignedTo", emu.url()), &token).0, 404);
}

/// A group nested in another: its users are transitive members of the outer group (in Graph's
/// `transitiveMembers` and the token's `groups`), not direct ones (`members`), and do not get
/// the app roles assigned to the outer group, as in Entra.
#[test]
fn nested_groups_count_for_transitive_membership_only() {
    const NESTED: &str = "6f7e8d9c-1111-4111-8111-0000000000e5";
    let mut cfg = EmulatorConfig::default();
    cfg.subgroups.insert(OPERATORS_GROUP.into(), vec![NESTED.into()]);
    cfg.users[0].groups = vec![NESTED.into()]; // alice
    cfg.apps[0].group_roles.insert("PVE.Auditor".into(), vec![OPERATORS_GROUP.into()]);
    let alice = cfg.users[0].clone();
    assert_eq!(cfg.groups_of(&alice), [NESTED, OPERATORS_GROUP]);
    assert_eq!(cfg.roles_of(&alice, &cfg.apps[0]), ["PVE.Admin"], "no role through the nested group");
    let emu = start(cfg);
    let token = app_token(&emu);
    let users = |listing: &str, group: &str| {
        let url = format!("{}/v1.0/groups/{group}/{listing}/microsoft.graph.user?$select=id", emu.url());
        let (status, _, page) = get_bearer(&url, &token);
        assert_eq!(status, 200, "{url}");
        page["value"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(users("transitiveMembers", OPERATORS_GROUP), [ALICE_OID, BOB_OID]);
    assert_eq!(users("members", OPERATORS_GROUP), [BOB_OID]);
    assert_eq!(users("members", NESTED), [ALICE_OID]);
}

/// Principals assigned the app without a role are listed with the all-zero role id, and the
/// service principal says whether assignment is required.
#[test]
fn default_access_assignments_are_listed() {
    let mut cfg = EmulatorConfig::default();
    cfg.apps[0].assigned = vec![BOB_OID.into(), OPERATORS_GROUP.into()];
    cfg.apps[0].assignment_required = true;
    let emu = start(cfg);
    let token = app_token(&emu);
    let (_, _, sp) = get_bearer(
        &format!("{}/v1.0/servicePrincipals(appId='{CLIENT_ID}')?$select=id,appRoleAssignmentRequired", emu.url()),
        &token,
    );
    assert_eq!(sp["appRoleAssignmentRequired"], true);
    let url = format!("{}/v1.0/servicePrincipals/{}/appRoleAssignedTo", emu.url(), sp["id"].as_str().unwrap());
    let (status, _, page) = get_bearer(&url, &token);
    assert_eq!(status, 200);
    let default_access: Vec<(&str, &str)> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["appRoleId"] == "00000000-0000-0000-0000-000000000000")
        .map(|a| (a["principalId"].as_str().unwrap(), a["principalType"].as_str().unwrap()))
        .collect();
    assert_eq!(default_access, [(BOB_OID, "User"), (OPERATORS_GROUP, "Group")]);
}

/// Users by id, as realm sync reads the users with assignments of their own: at most 15 ids per
/// filter (Graph's limit), unknown ids left out.
#[test]
fn users_are_listed_by_id_filter() {
    let emu = start(EmulatorConfig::default());
    let token = app_token(&emu);
    let filter = |ids: &[&str]| {
        let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        format!("{}/v1.0/users?$filter=id%20in%20({})&$select=id,accountEnabled", emu.url(), list.join(","))
    };
    let unknown = "6f7e8d9c-1111-4111-8111-00000000dead";
    let (status, _, page) = get_bearer(&filter(&[BOB_OID, unknown, ALICE_OID]), &token);
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["value"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [BOB_OID, ALICE_OID]);
    assert_eq!(get_bearer(&filter(&[unknown; 15]), &token).0, 200);
    let (status, _, body) = get_bearer(&filter(&[unknown; 16]), &token);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("Request_UnsupportedQuery")));
    assert_eq!(get_bearer(&format!("{}/v1.0/users", emu.url()), &token).0, 400, "no listing of the whole directory");
}
