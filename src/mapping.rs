//! The pure `map` call: from validated claims to a PVE user id, its groups and the identity pin.
//! No I/O; PVE's Perl side applies the answer under its own user-config lock.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::config::{is_guid, normalize_group_key, RealmConfig, Tenant};
use crate::error::{Code, Error, Result};
use crate::request::{invalid, Request};

/// Characters a user name from Entra may not carry into PVE, beyond whitespace, control and
/// non-ASCII characters: `:` separates user.cfg fields and ticket parts, `,` the members of a
/// group or ACL line, `/` API paths, `%` PVE's text encoding, `;`/`=` property strings, and `!`
/// API token ids (`user@realm!token`).
const UNSAFE_IN_USER_NAME: &[char] = &[':', ',', '/', '%', ';', '=', '!'];

/// The PVE user id `<name>@<realm>`; `access.denied` naming the rule when the name is unsafe.
pub(crate) fn check_user_name(name: &str, realm: &str) -> Result<String> {
    let denied = |why: &str| Error::new(Code::AccessDenied, format!("the user name from Entra {why}; choose another username_claim or rename the account"));
    if name.is_empty() {
        return Err(denied("is empty"));
    }
    if !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(denied("contains whitespace, control or non-ASCII characters"));
    }
    if name.contains(UNSAFE_IN_USER_NAME) {
        return Err(denied("contains one of the characters : , / % ; = ! that PVE user names cannot carry"));
    }
    let userid = format!("{name}@{realm}");
    if userid.len() > 64 {
        return Err(denied("gives a user id longer than PVE's 64 characters"));
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

/// The group-map and required-groups keys a membership `m` of a user of tenant `tid` matches:
/// always the tenant-scoped `<tid>:<m>`; the unscoped `<m>` only when the tenant is trusted to
/// define it. In a single-tenant realm that is every token's tenant. In an `organizations`/
/// `common` realm it is the first of `allowed_tenants` (the home tenant that owns the app
/// registration): any other allowed tenant's admin can assign app roles of the app to their own
/// users, so their roles and groups count only through keys scoped to their tenant.
fn member_keys(cfg: &RealmConfig, tid: &str, memberships: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    let unscoped_trusted = match &cfg.tenant {
        Tenant::Single(_) => true,
        Tenant::Multi { allowed, .. } => allowed.first().is_some_and(|home| home == tid),
    };
    let mut keys = BTreeSet::new();
    for m in memberships {
        let m = normalize_group_key(&m);
        keys.insert(format!("{tid}:{m}"));
        if unscoped_trusted {
            keys.insert(m);
        }
    }
    keys
}

/// From a validated identity to the PVE user id, its groups and the identity to pin:
/// `{userid, pve_groups, managed_groups, identity: {tid, oid}, firstname, lastname, email}`.
/// `claims` is the `claims` object of a login answer; `groups` the groups Graph resolved.
pub fn map_identity(cfg: &RealmConfig, realm: &str, claims: &Map<String, Value>, groups: Vec<String>, username: &str) -> Result<Value> {
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
        return Err(Error::new(Code::AccessGuest, "guest accounts are not allowed in this realm (allow_guests)"));
    }

    let userid = check_user_name(username, realm)?;

    // Memberships: resolved groups (covers overage), groups in the token, and app roles.
    let memberships = groups.into_iter().chain(strings(claims.get("groups"), "claims.groups")?).chain(strings(claims.get("roles"), "claims.roles")?);
    let member_of = member_keys(cfg, &tid, memberships);
    if !cfg.required_groups.is_empty() && !cfg.required_groups.iter().any(|g| member_of.contains(g)) {
        return Err(Error::new(Code::AccessDenied, "the user is in none of the realm's required_groups"));
    }
    let pve_groups: BTreeSet<&String> = cfg.groups_map.iter().filter(|(k, _)| member_of.contains(*k)).map(|(_, v)| v).collect();
    let managed_groups: BTreeSet<&String> = cfg.groups_map.values().collect();

    Ok(json!({
        "userid": userid,
        "pve_groups": pve_groups,
        "managed_groups": managed_groups,
        "identity": {"tid": tid, "oid": oid},
        "firstname": text("given_name"),
        "lastname": text("family_name"),
        "email": text("email"),
    }))
}

/// The `map` entry point: `map_identity` plus the comparison with a stored pin
/// (`new_pin` is the identity when none was stored).
pub fn map(req: &Request) -> Result<Value> {
    let claims = req.body.get("claims").and_then(Value::as_object).ok_or_else(|| invalid("`claims` is required"))?;
    let mut mapped = map_identity(&req.cfg, &req.realm, claims, strings(req.body.get("groups"), "groups")?, req.str("username")?)?;
    let identity = mapped["identity"].clone();
    let (tid, oid) = (identity["tid"].as_str().unwrap_or_default(), identity["oid"].as_str().unwrap_or_default());
    let new_pin = match pin_of(req.body.get("pin").unwrap_or(&Value::Null), "pin")? {
        Some((ptid, poid)) if ptid != tid || poid != oid => {
            return Err(Error::new(
                Code::IdentityPinMismatch,
                format!("{} is bound to another Entra identity; an administrator must remove the old binding first", mapped["userid"].as_str().unwrap_or_default()),
            ))
        }
        Some(_) => Value::Null,
        None => identity,
    };
    mapped["new_pin"] = new_pin;
    Ok(mapped)
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
        assert_eq!(e.code, Code::IdentityPinMismatch);
        let e = map(&req(json!({}), json!({"pin": {"tid": "99999999-2222-3333-4444-555555555555", "oid": OID}}))).unwrap_err();
        assert_eq!(e.code, Code::IdentityPinMismatch);
    }

    #[test]
    fn required_groups_gate() {
        let e = map(&req(json!({"required_groups": ["nope"]}), json!({}))).unwrap_err();
        assert_eq!(e.code, Code::AccessDenied);
        map(&req(json!({"required_groups": ["6F7E8D9C-1111-4111-8111-000000000001"]}), json!({}))).unwrap();
        map(&req(json!({"required_groups": ["PVE.Admin"]}), json!({}))).unwrap();
    }

    #[test]
    fn guests_are_refused_unless_allowed() {
        let e = map(&req(json!({}), json!({"claims": {"acct": 1}}))).unwrap_err();
        assert_eq!(e.code, Code::AccessGuest);
        let e = map(&req(json!({}), json!({"claims": {"idp": "https://sts.windows.net/99999999-2222-3333-4444-555555555555/"}}))).unwrap_err();
        assert_eq!(e.code, Code::AccessGuest);
        map(&req(json!({"allow_guests": true}), json!({"claims": {"acct": 1, "idp": "live.com"}}))).unwrap();
        // acct 0 and no idp: a member.
        map(&req(json!({}), json!({"claims": {"acct": 0}}))).unwrap();
    }

    #[test]
    fn ids_must_be_guids() {
        for (k, v) in [("oid", "a".repeat(1000)), ("tid", "contoso".to_string())] {
            let e = map(&req(json!({}), json!({"claims": {k: v}}))).unwrap_err();
            assert_eq!(e.code, Code::RequestInvalid);
        }
    }

    #[test]
    fn bad_user_names() {
        for name in ["", "a b", "a:b", "a/b", &"x".repeat(60)] {
            let r = req(json!({}), json!({"username": name}));
            let e = map(&r).unwrap_err();
            assert!(matches!(e.code, Code::AccessDenied | Code::RequestInvalid), "{name}");
        }
    }

    #[test]
    fn user_names_outside_the_safe_set_are_denied_with_the_reason() {
        // `bob@pve,x` would become group member `bob@pve` in user.cfg's comma-separated lists.
        for name in ["bob@pve,x", "a;b", "a=b", "a%3ab", "alice!tok", "alice\n", "al\u{0}ice", "alice\tx", "jürgen@contoso.example", "a\u{2028}b"] {
            let e = map(&req(json!({}), json!({"username": name}))).unwrap_err();
            assert_eq!(e.code, Code::AccessDenied, "{name:?}");
            assert!(e.message.contains("user name from Entra"), "{}", e.message);
        }
        // Guest UPNs and apostrophes are fine.
        for name in ["alice_fabrikam.example#ext#@contoso.onmicrosoft.com", "o'brien@contoso.example", "a+b~c@x.y"] {
            map(&req(json!({}), json!({"username": name}))).unwrap();
        }
    }

    #[test]
    fn tenant_scoped_group_keys_in_multi_tenant_realms() {
        const OTHER: &str = "99999999-8888-7777-6666-555555555555";
        let multi = json!({"tenant": "organizations", "allowed_tenants": [TID, OTHER],
            "groups_map": {"PVE.Admin": "admins", format!("{OTHER}:PVE.Admin"): "other-admins",
                           format!("{}:PVE.Auditor", OTHER.to_uppercase()): "other-auditors"}});
        let from_other = json!({"claims": {"tid": OTHER, "iss": format!("https://login.microsoftonline.com/{OTHER}/v2.0"),
            "groups": [], "roles": ["PVE.Admin", "PVE.Auditor"]}});
        // Another allowed tenant's admin assigns the app role to his own user: only the keys
        // scoped to his tenant count, never the unscoped `PVE.Admin`.
        let out = map(&req(multi.clone(), from_other.clone())).unwrap();
        assert_eq!(out["pve_groups"], json!(["other-admins", "other-auditors"]));
        // The home tenant (first allowed) keeps the unscoped keys.
        let out = map(&req(multi.clone(), json!({"claims": {"groups": [], "roles": ["PVE.Admin"]}}))).unwrap();
        assert_eq!(out["pve_groups"], json!(["admins"]));
        // required_groups follows the same rule.
        let mut gated = multi.clone();
        gated["required_groups"] = json!(["PVE.Admin"]);
        assert_eq!(map(&req(gated.clone(), from_other.clone())).unwrap_err().code, Code::AccessDenied);
        gated["required_groups"] = json!([format!("{OTHER}:PVE.Admin")]);
        map(&req(gated, from_other)).unwrap();
        // Single tenant: unscoped keys apply, keys scoped to another tenant do not.
        let single = json!({"groups_map": {"PVE.Admin": "admins", format!("{OTHER}:PVE.Admin"): "x", format!("{TID}:PVE.Admin"): "y"}});
        assert_eq!(map(&req(single, json!({"claims": {"groups": []}}))).unwrap()["pve_groups"], json!(["admins", "y"]));
    }
}
