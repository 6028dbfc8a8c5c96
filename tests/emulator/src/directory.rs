//! Microsoft Graph directory reads of realm sync, with `$select`, and for listings `$top`
//! (default 100, at most 999, as Graph) and `@odata.nextLink` paging by `$skiptoken`:
//! - `GET /v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user]`: the users in the group,
//!   directly or through `subgroups`;
//! - `GET /v1.0/groups/{id}/members[/microsoft.graph.user]`: its direct users only;
//! - `GET /v1.0/servicePrincipals(appId='{client id}')`: the app's enterprise application with
//!   its `appRoles` (every role a user or group of the configuration holds) and
//!   `appRoleAssignmentRequired`;
//! - `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo`: users' own `roles` (principalType
//!   User), the app's `group_roles` (principalType Group) and its `assigned` principals (the
//!   all-zero "Default Access" role id);
//! - `GET /v1.0/users/{id}`, and `GET /v1.0/users?$filter=id in ('{id}',...)` (at most 15 ids,
//!   as Graph without advanced queries; unknown ids are not listed).
//!
//! Service principal and role ids are derived from the client id and role value (stable).
//! Throttling comes from the `throttle:<seconds>` fault (429 with `Retry-After`).

use crate::config::{App, User};
use crate::graph::graph_error;
use crate::http::{Request, Response};
use crate::state::Shared;
use crate::util::{form_decode, guid_from, now};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};

const DEFAULT_TOP: usize = 100;
/// Values Graph takes in one `in (...)` of a `$filter` (without advanced queries).
const MAX_IN_VALUES: usize = 15;
const MAX_TOP: usize = 999;

enum Read<'a> {
    Members { group: &'a str, transitive: bool },
    ServicePrincipal(&'a str),
    RoleAssignments(&'a str),
    User(&'a str),
    Users,
}

fn read_of(path: &str) -> Option<Read<'_>> {
    let rest = path.strip_prefix("/v1.0/")?;
    if let Some(app) = rest.strip_prefix("servicePrincipals(appId=") {
        let app = app.strip_suffix(')')?;
        let app = app.strip_prefix('\'').and_then(|a| a.strip_suffix('\''))
            .or_else(|| app.strip_prefix("%27").and_then(|a| a.strip_suffix("%27")))?;
        return Some(Read::ServicePrincipal(app));
    }
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["groups", group, listing] | ["groups", group, listing, "microsoft.graph.user"]
            if *listing == "transitiveMembers" || *listing == "members" =>
        {
            Some(Read::Members { group, transitive: *listing == "transitiveMembers" })
        }
        ["servicePrincipals", sp, "appRoleAssignedTo"] => Some(Read::RoleAssignments(sp)),
        ["users", oid] => Some(Read::User(oid)),
        ["users"] => Some(Read::Users),
        _ => None,
    }
}

/// Whether the path is one of the directory reads served here.
pub fn is_directory_path(path: &str) -> bool {
    read_of(path).is_some()
}

fn user_object(u: &User, tid: &str) -> Value {
    let guest = u.acct == 1;
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": u.oid,
        "userPrincipalName": u.upn,
        "mail": u.email,
        "givenName": (!u.given_name.is_empty()).then_some(&u.given_name),
        "surname": (!u.family_name.is_empty()).then_some(&u.family_name),
        "displayName": u.name,
        "accountEnabled": u.account_enabled,
        "userType": if guest { "Guest" } else { "Member" },
        "tenant": tid,
    })
}

fn service_principal_id(app: &App) -> String {
    guid_from(&format!("servicePrincipal:{}", app.client_id.to_ascii_lowercase()))
}

/// The role id of an assignment without a role (Entra's "Default Access").
const DEFAULT_ACCESS: &str = "00000000-0000-0000-0000-000000000000";

fn role_id(value: &str) -> String {
    guid_from(&format!("appRole:{value}"))
}

/// `$select`: the listed members (and `@odata.type`) only.
fn selected(full: Value, select: Option<&str>) -> Value {
    let Some(fields) = select else { return full };
    let mut o = Map::new();
    if let Some(t) = full.get("@odata.type") {
        o.insert("@odata.type".into(), t.clone());
    }
    for f in fields.split(',') {
        if let Some(v) = full.get(f) {
            o.insert(f.to_string(), v.clone());
        }
    }
    Value::Object(o)
}

pub fn serve(shared: &Shared, req: &Request) -> Response {
    let token = req
        .header("Authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let valid = token.is_some_and(|t| {
        shared.rt().app_tokens.get(&t).is_some_and(|t| t.expires_at > now() && !t.client_id.is_empty())
    });
    if !valid {
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.");
    }
    let Some(read) = read_of(&req.path) else {
        return graph_error(400, "BadRequest", "Unsupported directory request.");
    };
    let query = form_decode(&req.query);
    let get = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let select = get("$select");
    let not_found = |id: &str| {
        graph_error(404, "Request_ResourceNotFound", &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ))
    };
    let cfg = &shared.cfg;
    let items: Vec<Value> = match read {
        Read::User(oid) => {
            return match cfg.user_by_oid(oid) {
                Some(u) => Response::json(200, &selected(user_object(u, cfg.user_tid(u)), select)),
                None => not_found(oid),
            }
        }
        Read::ServicePrincipal(client_id) => {
            let Some(app) = cfg.app(client_id) else { return not_found(client_id) };
            let values: BTreeSet<&String> =
                cfg.users.iter().flat_map(|u| &u.roles).chain(app.group_roles.keys()).collect();
            let roles: Vec<Value> = values
                .iter()
                .map(|v| json!({"id": role_id(v), "value": v, "displayName": v, "isEnabled": true,
                    "allowedMemberTypes": ["User"], "origin": "Application"}))
                .collect();
            let sp = json!({"id": service_principal_id(app), "appId": app.client_id,
                "displayName": "Proxmox VE", "appRoles": roles, "appRoleAssignmentRequired": app.assignment_required});
            return Response::json(200, &selected(sp, select));
        }
        Read::RoleAssignments(sp) => {
            let Some(app) = cfg.apps.iter().find(|a| service_principal_id(a).eq_ignore_ascii_case(sp)) else {
                return not_found(sp);
            };
            let spid = service_principal_id(app);
            let assignment = |role_id: String, id: &str, kind: &str| {
                json!({"id": guid_from(&format!("{role_id}/{id}")), "appRoleId": role_id, "principalId": id,
                    "principalType": kind, "resourceId": spid})
            };
            let users = cfg.users.iter().flat_map(|u| u.roles.iter().map(|r| assignment(role_id(r), &u.oid, "User")));
            let groups = app.group_roles.iter().flat_map(|(r, gs)| gs.iter().map(|g| assignment(role_id(r), g, "Group")));
            let user_ids: HashSet<String> = cfg.users.iter().map(|u| u.oid.to_ascii_lowercase()).collect();
            let default_access = app.assigned.iter().map(|id| {
                let kind = if user_ids.contains(&id.to_ascii_lowercase()) { "User" } else { "Group" };
                assignment(DEFAULT_ACCESS.to_string(), id, kind)
            });
            users.chain(groups).chain(default_access).collect()
        }
        Read::Users => {
            // the one filter realm sync uses: id in ('<id>', ...)
            let ids: Option<Vec<&str>> = get("$filter")
                .and_then(|f| f.strip_prefix("id in (")?.strip_suffix(')'))
                .map(|list| list.split(',').map(|id| id.trim().trim_matches('\'')).collect());
            let Some(ids) = ids else {
                return graph_error(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.");
            };
            if ids.len() > MAX_IN_VALUES {
                return graph_error(400, "Request_UnsupportedQuery", &format!(
                    "Too many child clauses specified in search filter expression containing 'OR' operators: {}. Max allowed: {MAX_IN_VALUES}.",
                    ids.len()
                ));
            }
            ids.iter().filter_map(|id| cfg.user_by_oid(id)).map(|u| user_object(u, cfg.user_tid(u))).collect()
        }
        Read::Members { group, transitive } => {
            if !cfg.group_exists(group) {
                return not_found(group);
            }
            let groups_of = |u| if transitive { cfg.groups_of(u) } else { u.all_groups() };
            cfg.users
                .iter()
                .filter(|u| groups_of(u).iter().any(|g| g.eq_ignore_ascii_case(group)))
                .map(|u| user_object(u, cfg.user_tid(u)))
                .collect()
        }
    };
    let top = match get("$top").map(str::parse::<usize>) {
        None => DEFAULT_TOP,
        Some(Ok(n)) if (1..=MAX_TOP).contains(&n) => n,
        Some(_) => return graph_error(400, "Request_BadRequest", "Invalid page size specified: '$top'."),
    };
    let skip = get("$skiptoken").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(skip).take(top).map(|v| selected(v.clone(), select)).collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#directoryObjects", shared.base_url),
        "value": page,
    });
    if skip + top < items.len() {
        let mut next: Vec<(String, String)> = query.into_iter().filter(|(k, _)| k != "$skiptoken").collect();
        next.push(("$skiptoken".into(), (skip + top).to_string()));
        let qs: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(next).finish();
        body["@odata.nextLink"] = json!(format!("{}{}?{qs}", shared.base_url, req.path));
    }
    Response::json(200, &body)
}
