//! Realm sync (`pve_entraid_sync_directory`): the realm's users and mapped groups as Microsoft
//! Graph knows them, read with an app-only token and named exactly as at login. Only reads:
//! PVE's own sync code (`PVE::API2::Domains`) decides what changes in user.cfg.
//!
//! Which users: the transitive members of the `required_groups` (only they may log in), or,
//! without those, of the groups in `groups_map`. One paged `transitiveMembers` listing per group
//! (`$top=999`, `@odata.nextLink`), so a sync costs one request per 999 memberships plus one per
//! group. App roles are not read: a PVE group mapped from an app role is left as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{is_guid, Tenant, UsernameClaim};
use crate::error::{sanitize, Code, Error, Result};
use crate::graph::app_token;
use crate::http::{display_url, GraphResponse};
use crate::mapping::check_user_name;
use crate::request::{Env, Request};

/// Graph's largest page.
const PAGE_SIZE: u32 = 999;
/// A page of 999 users with the selected attributes is about half a megabyte.
const MAX_PAGE_BODY: u64 = 8 * 1024 * 1024;
/// Attributes read per user: identity, the names a `username_claim` can use, profile, state.
const SELECT: &str = "id,userPrincipalName,mail,givenName,surname,accountEnabled,userType";
/// A throttled request (429/503) is retried this often, waiting its `Retry-After` (default
/// below), at most `MAX_RETRY_WAIT` seconds each time: a sync may be slow, never endless.
const MAX_RETRIES: u32 = 5;
const DEFAULT_RETRY_WAIT: u64 = 5;
const MAX_RETRY_WAIT: u64 = 60;
/// No directory has this many pages in one group; a Graph (or proxy) that links in circles does.
const MAX_PAGES: usize = 100_000;

fn graph_error(msg: String) -> Error {
    Error::new(Code::GraphError, msg)
}

/// One user as Graph lists it.
struct Member {
    oid: String,
    upn: Option<String>,
    mail: Option<String>,
    given: Option<String>,
    surname: Option<String>,
    enabled: bool,
    guest: bool,
}

fn member_of(v: &Value) -> Option<Member> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let oid = text("id").filter(|id| is_guid(id))?.to_ascii_lowercase();
    Some(Member {
        oid,
        upn: text("userPrincipalName"),
        mail: text("mail"),
        given: text("givenName"),
        surname: text("surname"),
        // Graph leaves out what it does not know; only an explicit false disables
        enabled: v.get("accountEnabled").and_then(Value::as_bool) != Some(false),
        guest: text("userType").is_some_and(|t| t.eq_ignore_ascii_case("guest")),
    })
}

/// The user name per `username_claim`, as `flow::username` derives it from the ID token: the
/// token's `upn`/`preferred_username` of a member are its userPrincipalName, `email` its mail.
fn user_name(m: &Member, claim: UsernameClaim) -> Option<String> {
    let value = match claim {
        UsernameClaim::Upn | UsernameClaim::PreferredUsername => m.upn.clone(),
        UsernameClaim::Email => m.mail.clone(),
        UsernameClaim::Oid => Some(m.oid.clone()),
    };
    value.map(|v| v.to_lowercase())
}

struct Graph<'a> {
    env: &'a Env<'a>,
    token: String,
    origin: String,
    requests: u64,
}

impl Graph<'_> {
    /// One page, retrying throttled answers within the bounds above.
    fn page(&mut self, url: &str, what: &str) -> Result<Value> {
        let mut attempt = 0;
        loop {
            let r = self.env.http.get_bearer(url, &self.token, MAX_PAGE_BODY)?;
            self.requests += 1;
            if r.status == 200 {
                return serde_json::from_slice(&r.body)
                    .map_err(|_| graph_error(format!("Graph answer from {} is not JSON", display_url(url))));
            }
            if (r.status == 429 || r.status == 503) && attempt < MAX_RETRIES {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(retry_wait(r.retry_after.as_deref())));
                continue;
            }
            return Err(answer_error(&r, what));
        }
    }

    /// Every user among the transitive members of a group.
    fn members(&mut self, group: &str) -> Result<Vec<Member>> {
        let mut url = format!(
            "{}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$select={SELECT}&$top={PAGE_SIZE}",
            self.origin
        );
        let what = format!("group {group}");
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.page(&url, &what)?;
            let items = page
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| graph_error(format!("Graph answer for {what} has no `value` list")))?;
            out.extend(items.iter().filter_map(member_of));
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                // the token goes to Graph only, whatever a page links to
                Some(next) if next.starts_with(&format!("{}/", self.origin)) => url = next.to_string(),
                Some(_) => return Err(graph_error(format!("Graph answer for {what} links to a page on another host"))),
                None => return Ok(out),
            }
        }
        Err(graph_error(format!("Graph answer for {what} has more than {MAX_PAGES} pages")))
    }
}

/// Seconds to wait before retrying: `Retry-After` (seconds; an HTTP date counts as the
/// default), bounded.
fn retry_wait(header: Option<&str>) -> u64 {
    header.and_then(|h| h.trim().parse::<u64>().ok()).unwrap_or(DEFAULT_RETRY_WAIT).min(MAX_RETRY_WAIT)
}

fn answer_error(r: &GraphResponse, what: &str) -> Error {
    let v: Option<Value> = serde_json::from_slice(&r.body).ok();
    let code = v.as_ref().and_then(|v| v.pointer("/error/code")).and_then(Value::as_str).unwrap_or("unknown");
    let request_id = r
        .request_id
        .clone()
        .or_else(|| v.as_ref().and_then(|v| v.pointer("/error/innerError/request-id")).and_then(Value::as_str).map(str::to_string));
    let mut msg = format!("Graph answered HTTP {} for {what}: {}", r.status, sanitize(code));
    if let Some(id) = request_id {
        msg.push_str(&format!(" (request-id {})", sanitize(&id)));
    }
    let mut e = graph_error(msg).with_status(r.status);
    if r.status == 403 || code == "Authorization_RequestDenied" {
        e = e.with_hint("grant the app registration the Microsoft Graph application permissions User.Read.All and GroupMember.Read.All (admin consent)");
    } else if r.status == 404 {
        e = e.with_hint("a group GUID in groups-map or required-groups does not exist in the tenant");
    }
    e
}

pub fn sync_directory(req: &Request, env: &Env) -> Result<Value> {
    let cfg = &req.cfg;
    let config_invalid = |msg: String| Error::new(Code::ConfigInvalid, msg);
    // the identity pins record the tenant GUID; a domain or a multi-tenant realm has none to sync
    let tid = match &cfg.tenant {
        Tenant::Single(t) if is_guid(t) => t.to_ascii_lowercase(),
        _ => return Err(config_invalid("realm sync needs `tenant` to be the tenant GUID".into())),
    };
    if let Some(role) = cfg.required_groups.iter().find(|g| !is_guid(g)) {
        return Err(config_invalid(format!(
            "realm sync cannot tell who holds app role '{}' of `required_groups` (it reads group members only)",
            sanitize(role)
        )));
    }
    let mut warnings = Vec::new();
    // a PVE group that an app role maps to has members sync cannot see: leave it as it is
    let role_groups: BTreeSet<&String> = cfg.groups_map.iter().filter(|(k, _)| !is_guid(k)).map(|(_, v)| v).collect();
    for g in &role_groups {
        warnings.push(format!("PVE group '{g}' is mapped from an app role, which realm sync does not read: left as it is"));
    }
    let mapped: BTreeMap<&String, &String> =
        cfg.groups_map.iter().filter(|(k, v)| is_guid(k) && !role_groups.contains(v)).collect();
    let scope: BTreeSet<&String> =
        if cfg.required_groups.is_empty() { mapped.keys().copied().collect() } else { cfg.required_groups.iter().collect() };
    if scope.is_empty() {
        return Err(config_invalid(
            "realm sync needs Entra group GUIDs in `groups_map` or `required_groups`: it syncs their members".into(),
        ));
    }

    let mut graph = Graph { env, token: app_token(cfg, env, &tid)?, origin: cfg.graph_url.clone(), requests: 0 };
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut groups_of: BTreeMap<String, BTreeSet<&String>> = BTreeMap::new();
    let listed: BTreeSet<&String> = scope.iter().copied().chain(mapped.keys().copied()).collect();
    for group in listed {
        for m in graph.members(group)? {
            groups_of.entry(m.oid.clone()).or_default().insert(group);
            members.entry(m.oid.clone()).or_insert(m);
        }
    }

    let mut users: BTreeMap<String, Value> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    for (oid, m) in &members {
        let in_groups = &groups_of[oid];
        if !in_groups.iter().any(|g| scope.contains(g)) {
            continue;
        }
        if m.guest && !cfg.allow_guests {
            skipped.push(json!({"oid": oid, "reason": "guest account (allow_guests is off)"}));
            continue;
        }
        let userid = match user_name(m, cfg.username_claim).map(|n| check_user_name(&n, &req.realm)) {
            Some(Ok(u)) => u,
            Some(Err(e)) => {
                skipped.push(json!({"oid": oid, "reason": e.message}));
                continue;
            }
            None => {
                skipped.push(json!({"oid": oid, "reason": "no value for the realm's username_claim"}));
                continue;
            }
        };
        *taken.entry(userid.clone()).or_default() += 1;
        let pve_groups: BTreeSet<&String> = mapped.iter().filter(|(k, _)| in_groups.contains(*k)).map(|(_, v)| *v).collect();
        let mut user = json!({"userid": userid, "oid": oid, "enable": m.enabled, "groups": pve_groups});
        for (k, v) in [("firstname", &m.given), ("lastname", &m.surname), ("email", &m.mail)] {
            if let Some(v) = v {
                user[k] = json!(v);
            }
        }
        users.insert(format!("{userid}\n{oid}"), user);
    }
    // two identities under one name (e.g. the same mail): neither is synced, as neither could log in safely
    let users: Vec<Value> = users
        .into_values()
        .filter(|u| {
            let unique = taken[u["userid"].as_str().unwrap_or_default()] == 1;
            if !unique {
                skipped.push(json!({"oid": u["oid"], "reason": format!("another Entra user has the same user id {}", u["userid"].as_str().unwrap_or_default())}));
            }
            unique
        })
        .collect();
    let mut groups: BTreeMap<&String, Vec<&str>> = mapped.values().map(|g| (*g, Vec::new())).collect();
    for u in &users {
        for g in u["groups"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let Some((_, list)) = groups.iter_mut().find(|(k, _)| k.as_str() == g) {
                list.push(u["userid"].as_str().unwrap_or_default());
            }
        }
    }
    let groups = json!(groups);
    Ok(json!({"tid": tid, "users": users, "groups": groups, "skipped": skipped, "warnings": warnings, "requests": graph.requests}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpResponse, Transport};
    use std::cell::RefCell;

    const TID: &str = "11111111-2222-3333-4444-555555555555";
    const G1: &str = "6f7e8d9c-1111-4111-8111-000000000001";
    const G2: &str = "6f7e8d9c-1111-4111-8111-000000000002";

    /// Graph pages by URL; each URL's answers are used in turn (the last one repeats).
    struct FakeGraph {
        pages: RefCell<BTreeMap<String, Vec<(u16, Value)>>>,
        seen: RefCell<Vec<String>>,
    }

    impl Transport for FakeGraph {
        fn get(&self, _: &str, _: u64) -> Result<HttpResponse> {
            unreachable!()
        }
        fn post_form(&self, _: &str, _: &[(&str, &str)], _: u64) -> Result<HttpResponse> {
            Ok(HttpResponse { status: 200, body: br#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#.to_vec() })
        }
        fn post_json(&self, _: &str, _: &str, _: &str, _: u64) -> Result<HttpResponse> {
            unreachable!()
        }
        fn get_bearer(&self, url: &str, bearer: &str, _: u64) -> Result<GraphResponse> {
            assert_eq!(bearer, "tok");
            self.seen.borrow_mut().push(url.to_string());
            let mut pages = self.pages.borrow_mut();
            let list = pages.get_mut(url).unwrap_or_else(|| panic!("unexpected GET {url}"));
            let (status, body) = if list.len() > 1 { list.remove(0) } else { list[0].clone() };
            Ok(GraphResponse { status, body: body.to_string().into_bytes(), retry_after: Some("0".into()), request_id: Some("rid-1".into()) })
        }
    }

    fn url(g: &str) -> String {
        format!("https://graph.microsoft.com/v1.0/groups/{g}/transitiveMembers/microsoft.graph.user?$select={SELECT}&$top=999")
    }

    fn user(oid: &str, upn: &str, enabled: bool) -> Value {
        json!({"id": oid, "userPrincipalName": upn, "mail": upn, "givenName": "G", "surname": "S", "accountEnabled": enabled, "userType": "Member"})
    }

    fn run(cfg_extra: Value, pages: Vec<(String, Vec<(u16, Value)>)>) -> (Result<Value>, Vec<String>) {
        let mut cfg = json!({"tenant-id": TID, "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x",
            "groups-map": format!("{G1}=admins;{G2}=ops")});
        for (k, v) in cfg_extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let req = Request::parse(json!({"realm": "entra", "config": cfg})).unwrap();
        let fake = FakeGraph { pages: RefCell::new(pages.into_iter().collect()), seen: RefCell::new(vec![]) };
        let res = sync_directory(&req, &Env { now: 1_700_000_000, http: &fake });
        let seen = fake.seen.borrow().clone();
        (res, seen)
    }

    const A: &str = "0a1b2c3d-0000-4000-8000-00000000a11c";
    const B: &str = "0b0b0b0b-0000-4000-8000-000000000b0b";

    #[test]
    fn pages_are_followed_and_users_named_as_at_login() {
        let next = "https://graph.microsoft.com/v1.0/groups/x/transitiveMembers?$skiptoken=2";
        let (res, seen) = run(json!({}), vec![
            (url(G1), vec![(200, json!({"value": [user(A, "Alice@Contoso.example", true)], "@odata.nextLink": next}))]),
            (next.into(), vec![(200, json!({"value": [user(B, "bob@contoso.example", false)]}))]),
            (url(G2), vec![(200, json!({"value": [user(B, "bob@contoso.example", false)]}))]),
        ]);
        let v = res.unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(v["requests"], 3);
        assert_eq!(v["users"][0]["userid"], "alice@contoso.example@entra");
        assert_eq!(v["users"][0]["enable"], true);
        assert_eq!(v["users"][1]["enable"], false);
        assert_eq!(v["users"][1]["groups"], json!(["admins", "ops"]));
        assert_eq!(v["groups"], json!({"admins": ["alice@contoso.example@entra", "bob@contoso.example@entra"], "ops": ["bob@contoso.example@entra"]}));
    }

    #[test]
    fn required_groups_limit_the_users() {
        let (res, _) = run(json!({"required-groups": G2}), vec![
            (url(G1), vec![(200, json!({"value": [user(A, "alice@c.example", true), user(B, "bob@c.example", true)]}))]),
            (url(G2), vec![(200, json!({"value": [user(B, "bob@c.example", true)]}))]),
        ]);
        let v = res.unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 1);
        assert_eq!(v["groups"]["admins"], json!(["bob@c.example@entra"]));
    }

    #[test]
    fn throttling_is_retried_then_answered() {
        let (res, seen) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(
            url(G1),
            vec![(429, json!({"error": {"code": "TooManyRequests"}})), (200, json!({"value": [user(A, "a@c.example", true)]}))],
        )]);
        assert_eq!(res.unwrap()["users"].as_array().unwrap().len(), 1);
        assert_eq!(seen.len(), 2);
        let (res, seen) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(url(G1), vec![(503, json!({}))])]);
        let e = res.unwrap_err();
        assert_eq!(e.code, Code::GraphError);
        assert_eq!(seen.len(), 1 + MAX_RETRIES as usize, "bounded retries");
        assert!(e.message.contains("request-id rid-1"), "{}", e.message);
    }

    #[test]
    fn errors_name_the_permission_and_never_follow_foreign_links() {
        let (res, _) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(url(G1), vec![(403, json!({"error": {"code": "Authorization_RequestDenied"}}))])]);
        let e = res.unwrap_err();
        assert!(e.hint.unwrap().contains("GroupMember.Read.All"));
        let (res, seen) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(
            url(G1),
            vec![(200, json!({"value": [], "@odata.nextLink": "https://evil.example/v1.0/x"}))],
        )]);
        assert_eq!(res.unwrap_err().code, Code::GraphError);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn guests_duplicates_roles_and_configs_sync_cannot_serve() {
        let mut guest = user(B, "bob_x.example#EXT#@c.example", true);
        guest["userType"] = json!("Guest");
        let (res, _) = run(json!({"groups-map": format!("{G1}=admins;PVE.Admin=ops")}), vec![(url(G1), vec![(200, json!({"value": [user(A, "a@c.example", true), guest]}))])]);
        let v = res.unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 1);
        assert_eq!(v["skipped"][0]["oid"], B);
        assert_eq!(v["groups"], json!({"admins": ["a@c.example@entra"]}), "role-mapped group left out");
        assert_eq!(v["warnings"].as_array().unwrap().len(), 1);

        let (res, _) = run(json!({"groups-map": format!("{G1}=admins"), "username-claim": "email"}), vec![(
            url(G1),
            vec![(200, json!({"value": [user(A, "same@c.example", true), user(B, "SAME@c.example", true)]}))],
        )]);
        let v = res.unwrap();
        assert_eq!(v["users"], json!([]));
        assert_eq!(v["skipped"].as_array().unwrap().len(), 2);

        for (extra, what) in [
            (json!({"tenant-id": "contoso.example"}), "tenant GUID"),
            (json!({"required-groups": "PVE.Admin"}), "app role"),
            (json!({"groups-map": ""}), "group GUIDs"),
        ] {
            let (res, seen) = run(extra, vec![]);
            let e = res.unwrap_err();
            assert_eq!(e.code, Code::ConfigInvalid);
            assert!(e.message.contains(what), "{}", e.message);
            assert!(seen.is_empty());
        }
    }
}
