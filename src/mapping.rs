//! From validated claims to a PVE user id, its groups and the identity to pin (part of every
//! login answer; also the pure `map` entry point). No I/O; PVE's Perl side compares the pin and
//! applies the answer under its own user-config lock.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::claims::{AppClaims, Claims};

use crate::config::{is_guid, normalize_group_key, RealmConfig, Tenant, WorkloadTarget};
use crate::error::{Code, Error, Result};
use crate::request::{invalid, MapMembers, Request};
use crate::username::{self, Account};

/// Characters a user name from Entra may not carry into PVE, beyond whitespace, control and
/// non-ASCII characters: `:` separates user.cfg fields and ticket parts, `,` the members of a
/// group or ACL line, `/` API paths, `%` PVE's text encoding, `;`/`=` property strings, and `!`
/// API token ids (`user@realm!token`).
const UNSAFE_IN_USER_NAME: &[char] = &[':', ',', '/', '%', ';', '=', '!'];

/// The PVE user id `<name>@<realm>`; `access.denied` naming the rule when the name is unsafe.
pub(crate) fn check_user_name(name: &str, realm: &str) -> Result<String> {
    let denied = |why: &str| Error::new(Code::AccessDenied, format!("the user name from Entra {why}; choose another username-claim or rename the account"));
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
/// `groups` are the groups Graph resolved (group overage).
pub fn map_identity(cfg: &RealmConfig, realm: &str, claims: &Claims, groups: Vec<String>, username: &str) -> Result<Value> {
    let (tid, oid) = (claims.tid.to_ascii_lowercase(), claims.oid.to_ascii_lowercase());
    // Entra object and tenant ids are GUIDs; anything else did not come from a validated token.
    if !is_guid(&tid) || !is_guid(&oid) {
        return Err(invalid("`claims.tid` and `claims.oid` must be GUIDs"));
    }

    // the rule realm sync applies too (username::is_guest)
    let is_guest = username::is_guest(Account::Token { acct: claims.acct, idp: claims.idp.as_deref(), iss: &claims.iss });
    if is_guest && !cfg.allow_guests {
        return Err(Error::new(Code::AccessGuest, "guest accounts are not allowed in this realm (allow-guests)"));
    }

    let userid = check_user_name(username, realm)?;

    // Memberships: resolved groups (covers overage), groups in the token, and app roles.
    let memberships = groups.into_iter().chain(claims.groups.iter().cloned()).chain(claims.roles.iter().cloned());
    let member_of = member_keys(cfg, &tid, memberships);
    if !cfg.required_groups.is_empty() && !cfg.required_groups.iter().any(|g| member_of.contains(g)) {
        return Err(Error::new(Code::AccessDenied, "the user is in none of the realm's required-groups"));
    }
    let pve_groups: BTreeSet<&String> = cfg.groups_map.iter().filter(|(k, _)| member_of.contains(*k)).map(|(_, v)| v).collect();
    let managed_groups: BTreeSet<&String> = cfg.groups_map.values().collect();

    Ok(json!({
        "userid": userid,
        "pve_groups": pve_groups,
        "managed_groups": managed_groups,
        "identity": {"tid": tid, "oid": oid},
        "firstname": claims.given_name,
        "lastname": claims.family_name,
        "email": claims.email,
    }))
}

/// From a validated workload access token to the PVE user its app roles map to
/// (`workload-map`), that user's groups and the service principal to pin:
/// `{userid, username, pve_groups, identity: {tid, oid}, roles}`. The roles count as group-map
/// keys do (`member_keys`: in a multi-tenant realm an unscoped role only from the home tenant).
pub fn map_workload(cfg: &RealmConfig, realm: &str, claims: &AppClaims) -> Result<Value> {
    let (tid, oid) = (claims.tid.to_ascii_lowercase(), claims.oid.to_ascii_lowercase());
    if !is_guid(&tid) || !is_guid(&oid) {
        return Err(Error::new(Code::TokenMissingClaim, "access token `tid` and `oid` must be GUIDs"));
    }
    let held = member_keys(cfg, &tid, claims.roles.iter().cloned());
    let matched: Vec<(&String, &WorkloadTarget)> = cfg.workload_map.iter().filter(|(k, _)| held.contains(*k)).collect();
    let Some((_, target)) = matched.first() else {
        return Err(Error::new(Code::AccessDenied, "the token holds none of the app roles of the realm's workload-map"));
    };
    if matched.iter().any(|(_, t)| t.user != target.user) {
        return Err(Error::new(Code::AccessDenied, "the token's app roles map to more than one PVE user in workload-map"));
    }
    let userid = check_user_name(&target.user, realm)?;
    let groups: BTreeSet<&String> = matched.iter().flat_map(|(_, t)| &t.groups).collect();
    // as logins' managed_groups: the groups the map gives this user for any role, which the
    // user leaves when its token's roles no longer give them
    let managed: BTreeSet<&String> = cfg.workload_map.values().filter(|t| t.user == target.user).flat_map(|t| &t.groups).collect();
    let roles: Vec<&String> = matched.iter().map(|(k, _)| *k).collect();
    Ok(json!({
        "userid": userid,
        "username": target.user,
        "pve_groups": groups,
        "managed_groups": managed,
        "identity": {"tid": tid, "oid": oid},
        "roles": roles,
    }))
}

/// The `map` entry point: `map_identity` on a login answer's `claims`, `groups` and `username`.
/// The identity pin is compared by the Perl side alone, under PVE's user-config lock.
pub fn map(req: &Request<MapMembers>) -> Result<Value> {
    let m = &req.body;
    map_identity(&req.cfg, &req.realm, &m.claims, m.groups.clone(), &m.username)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "11111111-2222-3333-4444-555555555555";
    const OID: &str = "0a1b2c3d-0000-4000-8000-00000000a11c";

    fn req(cfg_extra: Value, extra: Value) -> Request<MapMembers> {
        let mut cfg = json!({"tenant-id": TID, "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x",
            "groups-map": "6F7E8D9C-1111-4111-8111-000000000001=admins;PVE.Admin=ops;other=auditors"});
        for (k, v) in cfg_extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let mut r = json!({"realm": "entra", "config": cfg, "username": "alice@contoso.example",
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
    fn workload_roles_map_to_one_user() {
        const SP: &str = "5e5e5e5e-0000-4000-8000-000000000001";
        let cfg = |m: &str| Request::<MapMembers>::parse(json!({"realm": "entra", "username": "x", "claims": {},
            "config": {"tenant-id": TID, "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x", "workload-map": m}})).unwrap().cfg;
        let token = |roles: &[&str]| AppClaims { tid: TID.into(), oid: SP.to_uppercase(), azp: "c".into(), roles: roles.iter().map(|r| r.to_string()).collect(), exp: 0 };
        let c = cfg("Deploy.Pve=ci-deploy:ci;Deploy.Read=ci-deploy:audit;Backup=backup");
        let out = map_workload(&c, "entra", &token(&["Deploy.Pve", "Deploy.Read", "Other"])).unwrap();
        assert_eq!(out["userid"], "ci-deploy@entra");
        assert_eq!(out["pve_groups"], json!(["audit", "ci"]));
        let c2 = cfg("Deploy.Pve=ci-deploy:ci;Admin.Pve=ci-deploy:ops;Backup=backup:bk");
        let narrow = map_workload(&c2, "entra", &token(&["Deploy.Pve"])).unwrap();
        assert_eq!((&narrow["pve_groups"], &narrow["managed_groups"]), (&json!(["ci"]), &json!(["ci", "ops"])), "another user's groups are not its");
        assert_eq!(out["identity"], json!({"tid": TID, "oid": SP}));
        assert_eq!(map_workload(&c, "entra", &token(&["Other"])).unwrap_err().code, Code::AccessDenied);
        assert_eq!(map_workload(&c, "entra", &token(&[])).unwrap_err().code, Code::AccessDenied);
        assert_eq!(map_workload(&c, "entra", &token(&["Deploy.Pve", "Backup"])).unwrap_err().code, Code::AccessDenied, "two users");
        assert_eq!(map_workload(&cfg("R=a:b"), "entra", &token(&["r"])).unwrap_err().code, Code::AccessDenied, "role values are case-sensitive");
    }

    #[test]
    fn maps_user_groups_and_the_identity() {
        let out = map(&req(json!({}), json!({}))).unwrap();
        assert_eq!(out["userid"], "alice@contoso.example@entra");
        assert_eq!(out["pve_groups"], json!(["admins", "ops"]));
        assert_eq!(out["managed_groups"], json!(["admins", "auditors", "ops"]));
        assert_eq!(out["identity"], json!({"tid": TID, "oid": OID}));
        assert_eq!(out.get("new_pin"), None, "the pin is compared by the Perl side only");
        assert_eq!(out["firstname"], "Alice");
    }

    #[test]
    fn overage_groups_come_from_the_resolved_list() {
        let out = map(&req(json!({}), json!({"groups": ["other"], "claims": {"groups": [], "roles": []}}))).unwrap();
        assert_eq!(out["pve_groups"], json!(["auditors"]));
    }

    #[test]
    fn a_pin_member_is_refused_as_unknown() {
        let r = json!({"realm": "entra", "config": {"tenant-id": TID, "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x"},
                       "username": "a", "claims": {}, "pin": {"tid": TID, "oid": OID}});
        let e = Request::<MapMembers>::parse(r).err().unwrap();
        assert_eq!((e.code, e.message.as_str()), (Code::RequestInvalid, "`pin` is not a known member"));
    }

    #[test]
    fn required_groups_gate() {
        let e = map(&req(json!({"required-groups": "nope"}), json!({}))).unwrap_err();
        assert_eq!(e.code, Code::AccessDenied);
        map(&req(json!({"required-groups": "6F7E8D9C-1111-4111-8111-000000000001"}), json!({}))).unwrap();
        map(&req(json!({"required-groups": "PVE.Admin"}), json!({}))).unwrap();
    }

    #[test]
    fn guests_are_refused_unless_allowed() {
        let e = map(&req(json!({}), json!({"claims": {"acct": 1}}))).unwrap_err();
        assert_eq!(e.code, Code::AccessGuest);
        let e = map(&req(json!({}), json!({"claims": {"idp": "https://sts.windows.net/99999999-2222-3333-4444-555555555555/"}}))).unwrap_err();
        assert_eq!(e.code, Code::AccessGuest);
        map(&req(json!({"allow-guests": 1}), json!({"claims": {"acct": 1, "idp": "live.com"}}))).unwrap();
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
        let multi = json!({"tenant-id": "organizations", "allowed-tenants": format!("{TID},{OTHER}"),
            "groups-map": format!("PVE.Admin=admins;{OTHER}:PVE.Admin=other-admins;{}:PVE.Auditor=other-auditors", OTHER.to_uppercase())});
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
        gated["required-groups"] = json!("PVE.Admin");
        assert_eq!(map(&req(gated.clone(), from_other.clone())).unwrap_err().code, Code::AccessDenied);
        gated["required-groups"] = json!(format!("{OTHER}:PVE.Admin"));
        map(&req(gated, from_other)).unwrap();
        // Single tenant: unscoped keys apply, keys scoped to another tenant do not.
        let single = json!({"groups-map": format!("PVE.Admin=admins;{OTHER}:PVE.Admin=x;{TID}:PVE.Admin=y")});
        assert_eq!(map(&req(single, json!({"claims": {"groups": []}}))).unwrap()["pve_groups"], json!(["admins", "y"]));
    }
}
