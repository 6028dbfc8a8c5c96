//! Microsoft Graph directory reads of realm sync:
//! `GET /v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user]` with `$select`, `$top`
//! (default 100, at most 999, as Graph) and `@odata.nextLink` paging by `$skiptoken`. The
//! emulated directory has no nested groups, so transitive members are the direct ones.
//! Throttling comes from the `throttle:<seconds>` fault (429 with `Retry-After`).

use crate::config::User;
use crate::graph::graph_error;
use crate::http::{Request, Response};
use crate::state::Shared;
use crate::util::{form_decode, now};
use serde_json::{json, Map, Value};

const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 999;

/// Whether the path is one of the directory reads served here.
pub fn is_directory_path(path: &str) -> bool {
    group_of(path).is_some()
}

fn group_of(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v1.0/groups/")?;
    let (group, tail) = rest.split_once('/')?;
    matches!(tail, "transitiveMembers" | "transitiveMembers/microsoft.graph.user").then_some((group, tail))
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

pub fn transitive_members(shared: &Shared, req: &Request) -> Response {
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
    let Some((group, _)) = group_of(&req.path) else {
        return graph_error(400, "BadRequest", "Unsupported directory request.");
    };
    let query = form_decode(&req.query);
    let get = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let top = match get("$top").map(str::parse::<usize>) {
        None => DEFAULT_TOP,
        Some(Ok(n)) if (1..=MAX_TOP).contains(&n) => n,
        Some(_) => return graph_error(400, "Request_BadRequest", "Invalid page size specified: '$top'."),
    };
    let skip = get("$skiptoken").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let members: Vec<&User> = shared
        .cfg
        .users
        .iter()
        .filter(|u| u.all_groups().iter().any(|g| g.eq_ignore_ascii_case(group)))
        .collect();
    if members.is_empty() {
        return graph_error(404, "Request_ResourceNotFound", &format!(
            "Resource '{group}' does not exist or one of its queried reference-property objects are not present."
        ));
    }
    let select: Option<Vec<&str>> = get("$select").map(|s| s.split(',').collect());
    let page: Vec<Value> = members
        .iter()
        .skip(skip)
        .take(top)
        .map(|u| {
            let full = user_object(u, shared.cfg.user_tid(u));
            match &select {
                None => full,
                Some(fields) => {
                    let mut o = Map::new();
                    o.insert("@odata.type".into(), full["@odata.type"].clone());
                    for f in fields {
                        if let Some(v) = full.get(*f) {
                            o.insert((*f).to_string(), v.clone());
                        }
                    }
                    Value::Object(o)
                }
            }
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users", shared.base_url),
        "value": page,
    });
    if skip + top < members.len() {
        let mut next: Vec<(String, String)> = query.into_iter().filter(|(k, _)| k != "$skiptoken").collect();
        next.push(("$skiptoken".into(), (skip + top).to_string()));
        let qs: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(next).finish();
        body["@odata.nextLink"] = json!(format!("{}{}?{qs}", shared.base_url, req.path));
    }
    Response::json(200, &body)
}
