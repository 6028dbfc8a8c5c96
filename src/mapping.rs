//! The pure `map` call: from validated claims to a PVE user id, its groups and the identity pin.
//! No I/O; PVE's Perl side applies the answer under its own user-config lock.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::config::{is_guid, normalize_group_key};
use crate::error::{Code, Error, Result};
use crate::request::{invalid, Request};

/// PVE user names may not contain whitespace, `:` or `/`, and a user id is at most 64 characters.
pub(crate) fn check_user_name(name: &str, realm: &str) -> Result<String> {
    let userid = format!("{name}@{realm}");
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/') {
        return Err(Error::new(Code::PVE_ENTRAID_ACCESS_DENIED, "the user name from Entra is not a valid PVE user name"));
    }
    if userid.chars().count() > 64 {
        return Err(Error::new(Code::PVE_ENTRAID_ACCESS_DENIED, "the user id would be longer than PVE's 64 characters; choose another username_claim"));
    }
    Ok(userid)
}

fn strings(v: Option<&Value>, name: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| invalid(format!("`{name}` must be a list of strings"))))
            .collect(),
        Some(_) => Err(invalid(format!("`{name}` must be a list of strings"))),
    }
}

/// The pin as `(tid, oid)`, lower-cased.
fn pin_of(v: &Value, name: &str) -> Result<Option<(String, String)>> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => {
            let f = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_ascii_lowercase);
            match (f("tid"), f("oid")) {
                (Some(t), Some(oid)) => Ok(Some((t, oid))),
                _ => Err(invalid(format!("`{name}` must have string members tid and oid"))),
            }
        }
        _ => Err(invalid(format!("`{name}` must be null or {{\"tid\", \"oid\"}}"))),
    }
}

pub fn map(req: &Request) -> Result<Value> {
    let cfg = &req.cfg;
    let claims = req.body.get("claims").and_then(Value::as_object).ok_or_else(|| invalid("`claims` is required"))?;
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let tid = text("tid").ok_or_else(|| invalid("`claims.tid` is required"))?.to_ascii_lowercase();
    let oid = text("oid").ok_or_else(|| invalid("`claims.oid` is required"))?.to_ascii_lowercase();
    // Entra object and tenant ids are GUIDs; anything else did not come from a validated token.
    if !is_guid(&tid) || !is_guid(&oid) {
        return Err(invalid("`claims.tid` and `claims.oid` must be GUIDs"));
    }

    // Guests: B2B accounts (acct 1) or users whose identity provider is not this issuer.
    let acct = claims.get("acct").and_then(Value::as_i64);
    let idp = text("idp");
    let iss = text("iss");
    let is_guest = acct == Some(1) || idp.as_deref().is_some_and(|i| Some(i) != iss.as_deref());
    if is_guest && !cfg.allow_guests {
        return Err(Error::new(Code::PVE_ENTRAID_ACCESS_GUEST, "guest accounts are not allowed in this realm (allow_guests)"));
    }

    let userid = check_user_name(req.str("username")?, &req.realm)?;

    // Memberships: resolved groups (covers overage), groups in the token, and app roles.
    let mut member_of: BTreeSet<String> = BTreeSet::new();
    for g in strings(req.body.get("groups"), "groups")?
        .into_iter()
        .chain(strings(claims.get("groups"), "claims.groups")?)
        .chain(strings(claims.get("roles"), "claims.roles")?)
    {
        member_of.insert(normalize_group_key(&g));
    }
    if !cfg.required_groups.is_empty() && !cfg.required_groups.iter().any(|g| member_of.contains(g)) {
        return Err(Error::new(Code::PVE_ENTRAID_ACCESS_DENIED, "the user is in none of the realm's required_groups"));
    }
    let pve_groups: BTreeSet<&String> = cfg.groups_map.iter().filter(|(k, _)| member_of.contains(*k)).map(|(_, v)| v).collect();
    let managed_groups: BTreeSet<&String> = cfg.groups_map.values().collect();

    let new_pin = match pin_of(req.body.get("pin").unwrap_or(&Value::Null), "pin")? {
        Some((ptid, poid)) if ptid != tid || poid != oid => {
            return Err(Error::new(
                Code::PVE_ENTRAID_IDENTITY_PIN_MISMATCH,
                format!("{userid} is bound to another Entra identity; an administrator must remove the old binding first"),
            ))
        }
        Some(_) => Value::Null,
        None => json!({"tid": tid, "oid": oid}),
    };

    Ok(json!({
        "userid": userid,
        "pve_groups": pve_groups,
        "managed_groups": managed_groups,
        "new_pin": new_pin,
        "firstname": text("given_name"),
        "lastname": text("family_name"),
        "email": text("email"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "11111111-2222-3333-4444-555555555555";
    const OID: &str = "0a1b2c3d-0000-4000-8000-00000000a11c";

    fn req(cfg_extra: Value, extra: Value) -> Request {
        let mut cfg = json!({"tenant": TID, "client_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x",
            "groups_map": {"6F7E8D9C-1111-4111-8111-000000000001": "admins", "PVE.Admin": "ops", "other": "auditors"}});
        for (k, v) in cfg_extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let mut r = json!({"realm": "entra", "config": cfg, "username": "alice@contoso.example", "pin": null,
            "groups": [],
            "claims": {"tid": TID, "oid": OID, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
                       "groups": ["6f7e8d9c-1111-4111-8111-000000000001"], "roles": ["PVE.Admin"],
                       "given_name": "Alice", "family_name": "A", "email": "alice@contoso.example"}});
        for (k, v) in extra.as_object().unwrap() {
            if k == "claims" {
                for (ck, cv) in v.as_object().unwrap() {
                    r["claims"][ck] = cv.clone();
                }
            } else {
                r[k] = v.clone();
            }
        }
        Request::parse(r).unwrap()
    }

    #[test]
    fn maps_user_groups_and_first_pin() {
        let out = map(&req(json!({}), json!({}))).unwrap();
        assert_eq!(out["userid"], "alice@contoso.example@entra");
        assert_eq!(out["pve_groups"], json!(["admins", "ops"]));
        assert_eq!(out["managed_groups"], json!(["admins", "auditors", "ops"]));
        assert_eq!(out["new_pin"], json!({"tid": TID, "oid": OID}));
        assert_eq!(out["firstname"], "Alice");
    }

    #[test]
    fn overage_groups_come_from_the_resolved_list() {
        let out = map(&req(json!({}), json!({"groups": ["other"], "claims": {"groups": [], "roles": []}}))).unwrap();
        assert_eq!(out["pve_groups"], json!(["auditors"]));
    }

    #[test]
    fn same_pin_gives_no_new_pin_other_pin_is_refused() {
        let out = map(&req(json!({}), json!({"pin": {"tid": TID, "oid": OID.to_uppercase()}}))).unwrap();
        assert_eq!(out["new_pin"], Value::Null);
        let e = map(&req(json!({}), json!({"pin": {"tid": TID, "oid": "99999999-0000-4000-8000-00000000a11c"}}))).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_IDENTITY_PIN_MISMATCH);
        let e = map(&req(json!({}), json!({"pin": {"tid": "99999999-2222-3333-4444-555555555555", "oid": OID}}))).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_IDENTITY_PIN_MISMATCH);
    }

    #[test]
    fn required_groups_gate() {
        let e = map(&req(json!({"required_groups": ["nope"]}), json!({}))).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_ACCESS_DENIED);
        map(&req(json!({"required_groups": ["6F7E8D9C-1111-4111-8111-000000000001"]}), json!({}))).unwrap();
        map(&req(json!({"required_groups": ["PVE.Admin"]}), json!({}))).unwrap();
    }

    #[test]
    fn guests_are_refused_unless_allowed() {
        let e = map(&req(json!({}), json!({"claims": {"acct": 1}}))).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_ACCESS_GUEST);
        let e = map(&req(json!({}), json!({"claims": {"idp": "https://sts.windows.net/99999999-2222-3333-4444-555555555555/"}}))).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_ACCESS_GUEST);
        map(&req(json!({"allow_guests": true}), json!({"claims": {"acct": 1, "idp": "live.com"}}))).unwrap();
        // acct 0 and no idp: a member.
        map(&req(json!({}), json!({"claims": {"acct": 0}}))).unwrap();
    }

    #[test]
    fn ids_must_be_guids() {
        for (k, v) in [("oid", "a".repeat(1000)), ("tid", "contoso".to_string())] {
            let e = map(&req(json!({}), json!({"claims": {k: v}}))).unwrap_err();
            assert_eq!(e.code, Code::PVE_ENTRAID_REQUEST_INVALID);
        }
    }

    #[test]
    fn bad_user_names() {
        for name in ["", "a b", "a:b", "a/b", &"x".repeat(60)] {
            let r = req(json!({}), json!({"username": name}));
            let e = map(&r).unwrap_err();
            assert!(matches!(e.code, Code::PVE_ENTRAID_ACCESS_DENIED | Code::PVE_ENTRAID_REQUEST_INVALID), "{name}");
        }
    }
}
