//! Full flows through the C ABI against the in-process Entra emulator (tests/emulator), on the
//! shared harness of tests/abi_harness (which also checks every answer's invariants).

mod abi_harness;

use abi_harness::{call, call_raw, code_of, BINDING_HASH, BINDING_KEY, pve_entraid_auth_url, pve_entraid_check, pve_entraid_login, pve_entraid_map, pve_entraid_refuse_realm, Entry, Realm};
use entra_emulator::{ALICE_OID, BOB_OID, CLIENT_ID, CLIENT_SECRET, TENANT};
use serde_json::{json, Value};

/// The result of a call that must succeed.
fn ok(entry: Entry, req: &Value) -> Value {
    let (rc, v) = call(entry, req);
    assert_eq!(rc, 0, "{v}");
    v["result"].clone()
}

/// The code string and the error object of a call that must fail.
fn err_code(entry: Entry, req: &Value) -> (String, Value) {
    let (rc, v) = call(entry, req);
    assert_ne!(rc, 0, "{v}");
    (code_of(&v), v["error"].clone())
}

#[test]
fn alice_logs_in_and_is_mapped() {
    let s = Realm::new("flow-alice");
    let auth = ok(pve_entraid_auth_url, &s.request());
    let url = auth["url"].as_str().unwrap();
    for p in ["response_type=code", "code_challenge_method=S256", "nonce=", "state=", &format!("client_id={CLIENT_ID}")] {
        assert!(url.contains(p), "{url} lacks {p}");
    }
    assert!(!url.contains(CLIENT_SECRET));
    let login = s.login_request();
    let res = ok(pve_entraid_login, &login);
    assert_eq!(res["claims"]["oid"], ALICE_OID);
    assert_eq!(res["claims"]["tid"], TENANT);
    assert_eq!(res["username"], "alice@contoso.example");
    assert_eq!(res["claims"]["groups_overage"], false);
    // one call per login: the mapping comes with it (here without a groups_map)
    assert_eq!(res["userid"], "alice@contoso.example@entra");
    assert_eq!(res["identity"], json!({"tid": TENANT, "oid": ALICE_OID}));
    assert_eq!(res["pve_groups"], json!([]));
    assert_eq!(res["email"], "alice@contoso.example");

    let mut map = s.common();
    map["config"]["groups-map"] = json!("6f7e8d9c-1111-4111-8111-000000000001=admins");
    map["claims"] = res["claims"].clone();
    map["groups"] = res["groups"].clone();
    map["username"] = res["username"].clone();
    let mapped = ok(pve_entraid_map, &map);
    assert_eq!(mapped["userid"], "alice@contoso.example@entra");
    assert_eq!(mapped["pve_groups"], json!(["admins"]));
    assert_eq!(mapped["identity"], json!({"tid": TENANT, "oid": ALICE_OID}));
    // the pin is compared in one place, the Perl side: `map` takes none
    map["pin"] = json!({"tid": TENANT, "oid": ALICE_OID});
    assert_eq!(err_code(pve_entraid_map, &map), ("request.invalid".into(), json!({"code": "request.invalid",
        "message": "`pin` is not a known member", "api_status": 400})));
}

#[test]
fn warm_login_makes_exactly_one_idp_request_and_auth_url_none() {
    let s = Realm::new("flow-warm");
    ok(pve_entraid_login, &s.login_request());
    s.emu.reset_stats();
    ok(pve_entraid_auth_url, &s.request());
    let st = s.emu.stats();
    assert_eq!(st["discovery"].as_u64().unwrap_or(0) + st["jwks"].as_u64().unwrap_or(0) + st["token"].as_u64().unwrap_or(0), 0, "{st}");
    let login = s.login_request();
    s.emu.reset_stats();
    ok(pve_entraid_login, &login);
    let st = s.emu.stats();
    assert_eq!(s.count("token"), 1, "{st}");
    assert_eq!(s.count("discovery") + s.count("jwks") + s.count("graph") + s.count("authorize"), 0, "{st}");
}

#[test]
fn state_replay_and_other_realm_are_refused() {
    let s = Realm::new("flow-replay");
    let login = s.login_request();
    ok(pve_entraid_login, &login);
    assert_eq!(err_code(pve_entraid_login, &login).0, "state.replayed");

    let mut other = s.login_request();
    other["realm"] = json!("other");
    assert_eq!(err_code(pve_entraid_login, &other).0, "state.realm_mismatch");

    let mut forged = s.login_request();
    forged["state"] = json!("AAAA".repeat(40));
    assert_eq!(err_code(pve_entraid_login, &forged).0, "state.invalid");
}

#[test]
fn multi_tenant_realm_checks_the_allow_list() {
    let mut s = Realm::new("flow-multi");
    s.config["tenant-id"] = json!("organizations");
    s.config["allowed-tenants"] = json!(TENANT);
    let res = ok(pve_entraid_login, &s.login_request());
    assert_eq!(res["claims"]["tid"], TENANT);
    s.config["allowed-tenants"] = json!("99999999-9999-4999-8999-999999999999");
    assert_eq!(err_code(pve_entraid_login, &s.login_request()).0, "token.tenant_not_allowed");
}

#[test]
fn aadsts_errors_carry_code_hint_and_ids_but_no_secret() {
    let mut s = Realm::new("flow-aadsts");
    let login = s.login_request();
    s.emu.control(json!({"fail_next": {"endpoint": "token", "mode": "aadsts:7000222"}}));
    let (code, e) = err_code(pve_entraid_login, &login);
    assert_eq!(code, "idp.error");
    assert_eq!(e["aadsts"], 7000222);
    assert!(e["hint"].as_str().unwrap().contains("expired"));
    assert!(e["trace_id"].is_string() && e["correlation_id"].is_string(), "{e}");

    s.config["client_secret"] = json!("wrong~secret");
    let login = s.login_request();
    let (code, e) = err_code(pve_entraid_login, &login);
    assert_eq!(code, "idp.error");
    assert_eq!(e["aadsts"], 7000215, "{e}");
    assert!(!e.to_string().contains("wrong~secret"));
}

#[test]
fn transport_faults_map_to_their_codes() {
    let mut s = Realm::new("flow-faults");
    s.emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "garbage"}}));
    assert_eq!(err_code(pve_entraid_auth_url, &s.request()).0, "idp.bad_response");
    s.emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "status500"}}));
    assert_eq!(err_code(pve_entraid_auth_url, &s.request()).0, "idp.error");
    let login = s.login_request();
    s.emu.control(json!({"fail_next": {"endpoint": "token", "mode": "truncated"}}));
    assert_eq!(err_code(pve_entraid_login, &login).0, "idp.bad_response");
    s.config["timeout_ms"] = json!(800);
    let login = s.login_request();
    s.emu.control(json!({"fail_next": {"endpoint": "token", "mode": "hang"}}));
    assert_eq!(err_code(pve_entraid_login, &login).0, "idp.timeout");
    s.config["authority"] = json!("http://127.0.0.1:9");
    s.config["tenant-id"] = json!("contoso.example");
    assert_eq!(err_code(pve_entraid_auth_url, &s.request()).0, "idp.unreachable");
}

#[test]
fn key_rotation_is_picked_up_once() {
    let s = Realm::new("flow-rotate");
    ok(pve_entraid_login, &s.login_request());
    s.emu.control(json!({"rotate_keys": true}));
    let login = s.login_request();
    s.emu.reset_stats();
    ok(pve_entraid_login, &login);
    assert_eq!(s.count("jwks"), 1, "one refetch for the new kid");
    // A second rotation within 5 minutes is not refetched: rate limit.
    s.emu.control(json!({"rotate_keys": true}));
    let login = s.login_request();
    assert_eq!(err_code(pve_entraid_login, &login).0, "token.unknown_kid");
}

#[test]
fn group_overage_is_resolved_through_graph() {
    let s = Realm::new("flow-overage");
    let login = s.login_request_for("bob@contoso.example");
    s.emu.reset_stats();
    let res = ok(pve_entraid_login, &login);
    assert_eq!(res["claims"]["oid"], BOB_OID);
    assert_eq!(res["claims"]["groups_overage"], true);
    assert!(res["groups"].as_array().unwrap().len() >= 200, "{}", res["groups"]);
    assert_eq!(s.count("graph"), 1);
}

#[test]
fn certificate_credential_logs_in() {
    let mut s = Realm::new("flow-cert");
    s.config.as_object_mut().unwrap().remove("client_secret");
    s.config["client_cert_file"] = json!(entra_emulator::client_cert_path());
    s.config["client_key_file"] = json!(entra_emulator::client_key_path());
    let res = ok(pve_entraid_login, &s.login_request());
    assert_eq!(res["claims"]["oid"], ALICE_OID);
}

#[test]
fn guests_are_refused_by_login() {
    let mut s = Realm::new("flow-guest");
    // login maps the identity itself (one call per login): the guest is refused there
    assert_eq!(err_code(pve_entraid_login, &s.login_request_for("guest@fabrikam.example")).0, "access.guest");
    s.config["allow-guests"] = json!(1);
    let res = ok(pve_entraid_login, &s.login_request_for("guest@fabrikam.example"));
    // its `upn` (include_externally_authenticated_upn) is its UPN in this directory, as realm sync reads it
    assert_eq!(res["username"], "guest_fabrikam.example#ext#@contoso.example");
    // and `map` agrees when the realm does not allow guests
    s.config["allow-guests"] = json!(0);
    let mut map = s.common();
    map["claims"] = res["claims"].clone();
    map["groups"] = res["groups"].clone();
    map["username"] = res["username"].clone();
    assert_eq!(err_code(pve_entraid_map, &map).0, "access.guest");
}

/// Entra's v2.0 ID token has no `upn` unless the app registration adds the optional claim: the
/// default username-claim `upn` then refuses the login naming the fix, in a single- and a
/// multi-tenant realm, and never falls back to `preferred_username` (which the multi-tenant
/// realm refuses outright).
#[test]
fn upn_without_the_optional_claim_is_refused_naming_the_fix() {
    let mut s = Realm::new("flow-no-upn");
    s.emu.control(json!({"optional_claims": {"idToken": []}}));
    for (tenant, allowed) in [(json!(TENANT), Value::Null), (json!("organizations"), json!(TENANT))] {
        s.config["tenant-id"] = tenant;
        s.config["allowed-tenants"] = allowed;
        let (code, e) = err_code(pve_entraid_login, &s.login_request());
        assert_eq!(code, "token.missing_claim", "{e}");
        assert!(e["message"].as_str().unwrap().contains("no `upn` claim"), "{e}");
        assert!(e["hint"].as_str().unwrap().contains("optional claim `upn`"), "{e}");
    }
    // the same token names the user when the realm asks for what it carries
    s.config["tenant-id"] = json!(TENANT);
    s.config["allowed-tenants"] = Value::Null;
    s.config["username-claim"] = json!("preferred_username");
    assert_eq!(ok(pve_entraid_login, &s.login_request())["username"], "alice@contoso.example");
}

#[test]
fn the_state_is_bound_to_the_browser_that_started_the_login() {
    let s = Realm::new("flow-binding");
    // The attacker signs in with his own account and plants his code and state in the victim's
    // tab: the victim's browser holds another binding key (here: 32 bytes 0..31).
    let planted = s.login_request();
    let mut victim = planted.clone();
    victim["binding_key"] = json!("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    s.emu.reset_stats();
    assert_eq!(err_code(pve_entraid_login, &victim).0, "state.binding_mismatch");
    assert_eq!(s.count("token"), 0, "refused before the code is redeemed");
    // Compared before the state is consumed: the state is not burnt by the mismatch.
    ok(pve_entraid_login, &planted);

    // The hash itself (what auth_url got) is not the key.
    let mut hash_only = s.login_request();
    hash_only["binding_key"] = json!(BINDING_HASH);
    assert_eq!(err_code(pve_entraid_login, &hash_only).0, "state.binding_mismatch");

    // Both ends are required, 43 canonical base64url characters.
    for bad in [Value::Null, json!(format!("{BINDING_KEY}=")), json!("short")] {
        let mut req = s.login_request();
        req["binding_key"] = bad.clone();
        assert_eq!(err_code(pve_entraid_login, &req).0, "request.invalid", "{bad}");
    }
    for bad in [Value::Null, json!(""), json!(&BINDING_HASH[..42]), json!(BINDING_HASH.replace('Q', "+"))] {
        let mut req = s.request();
        req["binding_hash"] = bad.clone();
        assert_eq!(err_code(pve_entraid_auth_url, &req).0, "request.invalid", "{bad}");
    }
}

#[test]
fn check_reports_each_step() {
    let mut s = Realm::new("flow-check");
    let res = ok(pve_entraid_check, &s.check_request());
    let steps = res["steps"].as_array().unwrap();
    assert!(steps.iter().all(|st| st["ok"] == true), "{res}");
    // the rule that names the users, and what Entra must issue for it
    let rule = steps.iter().find(|st| st["step"] == "username").expect("a username step")["detail"].as_str().unwrap().to_string();
    assert!(rule.contains("`upn` claim") && rule.contains("optional claim") && rule.contains("userPrincipalName"), "{rule}");
    s.config["client_secret"] = json!("wrong~secret");
    let res = ok(pve_entraid_check, &s.check_request());
    let cred = res["steps"].as_array().unwrap().iter().find(|st| st["step"] == "credentials").unwrap().clone();
    assert_eq!(cred["ok"], false);
    assert!(cred["fix"].as_str().unwrap().contains("Value"), "{cred}");
    assert!(!res.to_string().contains("wrong~secret"));
}

#[test]
fn bad_requests() {
    let big = vec![b' '; 256 * 1024 + 1];
    assert_eq!(code_of(&call_raw(pve_entraid_auth_url, &big).1), "request.too_large");
    assert_eq!(code_of(&call_raw(pve_entraid_auth_url, b"{not json").1), "request.invalid");
    assert_eq!(code_of(&call_raw(pve_entraid_login, b"[]").1), "request.invalid");
    // call() also checks that the answer does not carry the secret.
    let (rc, _) = call(pve_entraid_auth_url, &json!({"realm": "entra", "config": {"tenant-id": 5, "client_secret": CLIENT_SECRET}}));
    assert_eq!(rc, 3, "config.invalid");
    // SAFETY: the version is a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(abi_harness::pve_entraid_version()) }.to_str().unwrap();
    assert!(v.starts_with("pve-entraid/"));
}

#[test]
fn login_hint_is_passed_and_bounded() {
    let s = Realm::new("flow-hint");
    let mut req = s.request();
    req["login_hint"] = json!("bob@contoso.example");
    let url = ok(pve_entraid_auth_url, &req)["url"].as_str().unwrap().to_string();
    assert!(url.contains("login_hint=bob%40contoso.example"), "{url}");
    req["login_hint"] = json!("x".repeat(300));
    assert_eq!(err_code(pve_entraid_auth_url, &req).0, "request.invalid");
}

#[test]
fn another_home_tenant_signs_in_only_when_allowed() {
    use entra_emulator::{CAROL_OID, FABRIKAM_TENANT};
    let mut s = Realm::new("flow-carol");
    s.config["tenant-id"] = json!("organizations");
    s.config["allowed-tenants"] = json!(format!("{TENANT},{FABRIKAM_TENANT}"));
    let res = ok(pve_entraid_login, &s.login_request_for("carol@fabrikam.example"));
    assert_eq!(res["claims"]["tid"], FABRIKAM_TENANT);
    assert_eq!(res["claims"]["oid"], CAROL_OID);
    s.config["allowed-tenants"] = json!(TENANT);
    let login = s.login_request_for("carol@fabrikam.example");
    assert_eq!(err_code(pve_entraid_login, &login).0, "token.tenant_not_allowed");
}

/// `req` charged to `address` on a budget table of its own in `s`'s scratch directory: an address
/// gets 20 calls, the realm 50 token requests, each refilled by one a minute.
fn charged(s: &Realm, mut req: Value, address: &str) -> Value {
    req["run_dir"] = json!(s.scratch.0.join("run"));
    req["client_address"] = json!(address);
    req["rate_limits"] = json!({"address": {"burst": 20, "per_minute": 1}, "realm": {"burst": 50, "per_minute": 1}});
    req
}

fn count_codes(codes: impl Iterator<Item = String>) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for c in codes {
        *counts.entry(c).or_insert(0) += 1;
    }
    counts
}

/// Calls that can never reach the token endpoint (a forged state, a replayed one, another
/// browser's binding key) pay their address's budget only: 400 of them from 5 addresses leave the
/// realm's budget whole, and a real login still succeeds.
#[test]
fn calls_that_cannot_reach_the_token_endpoint_do_not_spend_the_realm_budget() {
    let s = Realm::new("flow-forged");
    let used = charged(&s, s.login_request(), "192.0.2.1");
    ok(pve_entraid_login, &used);
    let planted = s.login_request();
    s.emu.reset_stats();
    let codes = count_codes((0..400).map(|n| {
        let mut req = match n % 3 {
            // a state of the attacker's own making, with any 43-character binding key
            0 => {
                let mut r = used.clone();
                r["state"] = json!(format!("{n:0>160}"));
                r["binding_key"] = json!(format!("{n:0>42}A"));
                r
            }
            1 => used.clone(),
            // a real state, with another browser's key
            _ => {
                let mut r = planted.clone();
                r["binding_key"] = json!("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
                r
            }
        };
        req = charged(&s, req, &format!("198.51.100.{}", n % 5));
        code_of(&call(pve_entraid_login, &req).1)
    }));
    assert_eq!(codes["request.rate_limited"], 300, "{codes:?}");
    assert_eq!(codes.values().sum::<usize>() - 300, 100, "each address's 20 calls: {codes:?}");
    assert!(["state.invalid", "state.replayed", "state.binding_mismatch"].iter().all(|c| codes.contains_key(*c)), "{codes:?}");
    assert_eq!(s.count("token"), 0);
    // 100 of them were admitted, more than the realm's 50: none was charged to it
    let real = charged(&s, s.login_request(), "192.0.2.7");
    assert_eq!(ok(pve_entraid_login, &real)["claims"]["oid"], ALICE_OID);
    // and the planted state, with its own browser's key, still logs in
    ok(pve_entraid_login, &charged(&s, planted, "192.0.2.8"));
}

/// A login that gets as far as the token request pays the realm's budget right before it: junk
/// codes with states of their own from many addresses make at most the realm's budget of token
/// requests with the app's credential.
#[test]
fn logins_reaching_the_token_endpoint_pay_the_realm_budget() {
    let s = Realm::new("flow-realm-budget");
    let junk = |n: usize| {
        let mut req = charged(&s, s.login_request(), &format!("203.0.113.{n}"));
        req["code"] = json!("junk-code");
        err_code(pve_entraid_login, &req)
    };
    let codes = count_codes((0..60).map(|n| junk(n).0));
    assert_eq!(codes["request.rate_limited"], 10, "{codes:?}");
    assert_eq!(codes.values().sum::<usize>(), 60);
    assert_eq!(s.count("token"), 50, "the realm's budget of token requests");
    let (code, e) = junk(60);
    assert_eq!(code, "request.rate_limited");
    assert_eq!(e["message"], "too many token requests of realm entra from all clients (this one: 203.0.113.60): budget 50 calls, refilled 1 a minute");
}

/// A name that is not an entraid realm is refused after its call was charged to the address, on
/// one budget of the address for all such names: 1,000 made-up names from one address get its 20
/// calls and then 429, and leave the address's budget in the entraid realm alone.
#[test]
fn names_of_no_entraid_realm_are_charged_to_the_address_and_refused() {
    let s = Realm::new("flow-refuse");
    let refuse = |realm: &str, realm_type: Option<&str>, address: &str| {
        err_code(pve_entraid_refuse_realm, &charged(&s, json!({"realm": realm, "realm_type": realm_type}), address))
    };
    let attacker = "198.51.100.1";
    let (code, e) = refuse("pam", Some("pam"), attacker);
    assert_eq!((code.as_str(), e["message"].as_str().unwrap()), ("request.invalid", "realm 'pam' is of type 'pam', not 'entraid'"));
    let (code, e) = refuse("nosuch", None, attacker);
    assert_eq!((code.as_str(), e["message"].as_str().unwrap()), ("request.invalid", "realm 'nosuch' does not exist"));
    let codes = count_codes((0..1000).map(|n| refuse(&format!("x{n}"), None, attacker).0));
    assert_eq!(codes.get("request.invalid"), Some(&18), "{codes:?}");
    assert_eq!(codes.get("request.rate_limited"), Some(&982), "{codes:?}");
    let (_, e) = refuse("pam", Some("pam"), attacker);
    assert_eq!(e["message"], "too many anonymous calls naming no entraid realm from client 198.51.100.1: budget 20 calls, refilled 1 a minute");
    // another address, and the same address in the entraid realm, have budgets of their own
    assert_eq!(refuse("pam", Some("pam"), "198.51.100.2").0, "request.invalid");
    ok(pve_entraid_auth_url, &charged(&s, s.request(), attacker));
    // it never answers ok, with or without a budget table
    assert_eq!(err_code(pve_entraid_refuse_realm, &json!({"realm": "pam"})).0, "request.invalid");
    assert_eq!(err_code(pve_entraid_refuse_realm, &json!({"realm": "pam", "run_dir": "relative"})).0, "request.invalid");
    assert_eq!(s.count("discovery") + s.count("token"), 1, "only the auth_url above fetched anything");
}
