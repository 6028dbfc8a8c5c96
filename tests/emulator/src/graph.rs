//! Microsoft Graph `POST /v1.0/users/{oid}/getMemberObjects`, the call that resolves group overage.

use crate::http::{Request, Response};
use crate::state::Shared;
use crate::util::{now, random_guid};
use serde_json::json;

pub fn graph_error(status: u16, code: &str, message: &str) -> Response {
    let date = crate::util::entra_timestamp(now())
        .replace(' ', "T")
        .replace('Z', "");
    Response::json(
        status,
        &json!({"error": {
            "code": code,
            "message": message,
            "innerError": {"date": date, "request-id": random_guid(), "client-request-id": random_guid()},
        }}),
    )
}

pub fn get_member_objects(shared: &Shared, oid: &str, req: &Request) -> Response {
    let token = req
        .header("Authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token else {
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.");
    };
    let valid = shared
        .rt()
        .app_tokens
        .get(token)
        .is_some_and(|t| t.expires_at > now() && !t.client_id.is_empty());
    if !valid {
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        );
    }
    // The body is {"securityEnabledOnly": bool}; every emulated group is a security group.
    if !req.body.is_empty() && serde_json::from_slice::<serde_json::Value>(&req.body).is_err() {
        return graph_error(400, "BadRequest", "Unable to read JSON request payload.");
    }
    let Some(user) = shared.cfg.user_by_oid(oid) else {
        return graph_error(404, "Request_ResourceNotFound", &format!(
            "Resource '{oid}' does not exist or one of its queried reference-property objects are not present."
        ));
    };
    Response::json(
        200,
        &json!({
            "@odata.context": format!("{}/v1.0/$metadata#Collection(Edm.String)", shared.base_url),
            "value": shared.cfg.groups_of(user),
        }),
    )
}
