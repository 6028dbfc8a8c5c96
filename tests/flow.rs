//! Full flows through the C ABI against the in-process Entra emulator (tests/emulator).

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use entra_emulator::{EmulatorConfig, ALICE_OID, BOB_OID, CLIENT_ID, CLIENT_SECRET, TENANT};
use pve_entraid::error::pve_entraid_result;
use pve_entraid::ffi;
use serde_json::{json, Value};

/// A browser binding key (32 bytes 0x42, base64url) and its SHA-256.
const BINDING_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";
const BINDING_HASH: &str = "Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw";

type Entry = unsafe extern "C" fn(*const u8, usize, *mut *mut c_char) -> pve_entraid_result;

fn call(f: Entry, req: &[u8]) -> (pve_entraid_result, Value, String) {
    let mut out: *mut c_char = std::ptr::null_mut();
    let code = unsafe { f(req.as_ptr(), req.len(), &mut out) };
    assert!(!out.is_null(), "answer always allocated");
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_string();
    unsafe { ffi::pve_entraid_free(out) };
    let v: Value = serde_json::from_str(&text).unwrap();
    (code, v, text)
}

fn ok(f: Entry, req: &Value) -> Value {
    let (code, v, _) = call(f, req.to_string().as_bytes());
    assert_eq!(code, pve_entraid_result::PVE_ENTRAID_OK, "{v}");
    v["result"].clone()
}

fn err_code(f: Entry, req: &Value) -> (String, Value) {
    let (code, v, text) = call(f, req.to_string().as_bytes());
    assert_ne!(code, pve_entraid_result::PVE_ENTRAID_OK, "{v}");
    assert!(!text.contains(CLIENT_SECRET), "secret leaked: {text}");
    let s = v["error"]["code"].as_str().unwrap().to_string();
    assert_eq!(unsafe { CStr::from_ptr(ffi::pve_entraid_result_code(code as u32)) }.to_str().unwrap(), s);
    (s, v["error"].clone())
}

struct Setup {
    emu: entra_emulator::Emulator,
    dir: PathBuf,
    config: Value,
}

fn setup(name: &str) -> Setup {
    let emu = entra_emulator::start(EmulatorConfig::default());
    let dir = std::env::temp_dir().join(format!("pve-entraid-flow-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = json!({"tenant": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "authority": emu.url(), "graph_url": emu.url(), "timeout_ms": 3000, "connect_timeout_ms": 1000});
    Setup { emu, dir, config }
}

impl Setup {
    fn base(&self, realm: &str) -> Value {
        json!({"realm": realm, "config": self.config, "cache_dir": self.dir.join("cache"),
               "state_key_file": self.dir.join("priv/state.key"), "redirect_url": "https://pve.example:8006",
               "binding_hash": BINDING_HASH, "binding_key": BINDING_KEY})
    }

    /// auth_url + authorize: the login request, ready to send.
    fn start_login(&self, hint: Option<&str>) -> Value {
        let res = ok(ffi::pve_entraid_auth_url, &self.base("entra"));
        let (code, state) = entra_emulator::authorize(res["url"].as_str().unwrap(), hint).unwrap();
        assert_eq!(state, res["state"].as_str().unwrap());
        let mut req = self.base("entra");
        req["code"] = json!(code);
        req["state"] = json!(state);
        req
    }

    fn stat(&self, name: &str) -> u64 {
        self.emu.stats()[name].as_u64().unwrap_or(0)
    }
}

#[test]
fn alice_logs_in_and_is_mapped() {
    let s = setup("alice");
    let auth = ok(ffi::pve_entraid_auth_url, &s.base("entra"));
    let url = auth["url"].as_str().unwrap();
    for p in ["response_type=code", "code_challenge_method=S256", "nonce=", "state=", &format!("client_id={CLIENT_ID}")] {
        assert!(url.contains(p), "{url} lacks {p}");
    }
    assert!(!url.contains(CLIENT_SECRET));
    let login = s.start_login(None);
    let res = ok(ffi::pve_entraid_login, &login);
    assert_eq!(res["claims"]["oid"], ALICE_OID);
    assert_eq!(res["claims"]["tid"], TENANT);
    assert_eq!(res["username"], "alice@contoso.example");
    assert_eq!(res["claims"]["groups_overage"], false);
    // one call per login: the mapping comes with it (here without a groups_map)
    assert_eq!(res["userid"], "alice@contoso.example@entra");
    assert_eq!(res["identity"], json!({"tid": TENANT, "oid": ALICE_OID}));
    assert_eq!(res["pve_groups"], json!([]));
    assert_eq!(res["email"], "alice@contoso.example");

    let mut map = s.base("entra");
    map["config"]["groups_map"] = json!({"6f7e8d9c-1111-4111-8111-000000000001": "admins"});
    map["claims"] = res["claims"].clone();
    map["groups"] = res["groups"].clone();
    map["username"] = res["username"].clone();
    map["pin"] = Value::Null;
    let mapped = ok(ffi::pve_entraid_map, &map);
    assert_eq!(mapped["userid"], "alice@contoso.example@entra");
    assert_eq!(mapped["pve_groups"], json!(["admins"]));
    assert_eq!(mapped["new_pin"], json!({"tid": TENANT, "oid": ALICE_OID}));
}

#[test]
fn warm_login_makes_exactly_one_idp_request_and_auth_url_none() {
    let s = setup("warm");
    ok(ffi::pve_entraid_login, &s.start_login(None));
    s.emu.reset_stats();
    ok(ffi::pve_entraid_auth_url, &s.base("entra"));
    let st = s.emu.stats();
    assert_eq!(st["discovery"].as_u64().unwrap_or(0) + st["jwks"].as_u64().unwrap_or(0) + st["token"].as_u64().unwrap_or(0), 0, "{st}");
    let login = s.start_login(None);
    s.emu.reset_stats();
    ok(ffi::pve_entraid_login, &login);
    let st = s.emu.stats();
    assert_eq!(s.stat("token"), 1, "{st}");
    assert_eq!(s.stat("discovery") + s.stat("jwks") + s.stat("graph") + s.stat("authorize"), 0, "{st}");
}

#[test]
fn state_replay_and_other_realm_are_refused() {
    let s = setup("replay");
    let login = s.start_login(None);
    ok(ffi::pve_entraid_login, &login);
    assert_eq!(err_code(ffi::pve_entraid_login, &login).0, "state.replayed");

    let mut other = s.start_login(None);
    other["realm"] = json!("other");
    assert_eq!(err_code(ffi::pve_entraid_login, &other).0, "state.realm_mismatch");

    let mut forged = s.start_login(None);
    forged["state"] = json!("AAAA".repeat(40));
    assert_eq!(err_code(ffi::pve_entraid_login, &forged).0, "state.invalid");
}

#[test]
fn the_state_is_bound_to_the_browser_that_started_the_login() {
    let s = setup("binding");
    // The attacker signs in with his own account and plants his code and state in the victim's
    // tab: the victim's browser holds another binding key (here: 32 bytes 0..31).
    let planted = s.start_login(None);
    let mut victim = planted.clone();
    victim["binding_key"] = json!("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    s.emu.reset_stats();
    assert_eq!(err_code(ffi::pve_entraid_login, &victim).0, "state.binding_mismatch");
    assert_eq!(s.stat("token"), 0, "refused before the code is redeemed");
    // Compared before the state is consumed: the state is not burnt by the mismatch.
    ok(ffi::pve_entraid_login, &planted);

    // The hash itself (what auth_url got) is not the key.
    let mut hash_only = s.start_login(None);
    hash_only["binding_key"] = json!(BINDING_HASH);
    assert_eq!(err_code(ffi::pve_entraid_login, &hash_only).0, "state.binding_mismatch");

    // Both ends are required, 43 canonical base64url characters.
    for (field, bad) in [("binding_key", Value::Null), ("binding_key", json!(format!("{BINDING_KEY}="))), ("binding_key", json!("short"))] {
        let mut req = s.start_login(None);
        req[field] = bad;
        assert_eq!(err_code(ffi::pve_entraid_login, &req).0, "request.invalid", "{field}");
    }
    for bad in [Value::Null, json!(""), json!(&BINDING_HASH[..42]), json!(BINDING_HASH.replace('Q', "+"))] {
        let mut req = s.base("entra");
        req["binding_hash"] = bad.clone();
        assert_eq!(err_code(ffi::pve_entraid_auth_url, &req).0, "request.invalid", "{bad}");
    }
}

#[test]
fn multi_tenant_realm_checks_the_allow_list() {
    let mut s = setup("multi");
    s.config["tenant"] = json!("organizations");
    s.config["allowed_tenants"] = json!([TENANT]);
    let res = ok(ffi::pve_entraid_login, &s.start_login(None));
    assert_eq!(res["claims"]["tid"], TENANT);
    s.config["allowed_tenants"] = json!(["99999999-9999-4999-8999-999999999999"]);
    assert_eq!(err_code(ffi::pve_entraid_login, &s.start_login(None)).0, "token.tenant_not_allowed");
}

#[test]
fn aadsts_errors_carry_code_hint_and_ids_but_no_secret() {
    let mut s = setup("aadsts");
    let login = s.start_login(None);
    s.emu.control(json!({"fail_next": {"endpoint": "token", "mode": "aadsts:7000222"}}));
    let (code, e) = err_code(ffi::pve_entraid_login, &login);
    assert_eq!(code, "idp.error");
    assert_eq!(e["aadsts"], 7000222);
    assert!(e["hint"].as_str().unwrap().contains("expired"));
    assert!(e["trace_id"].is_string() && e["correlation_id"].is_string(), "{e}");

    s.config["client_secret"] = json!("wrong~secret");
    let login = s.start_login(None);
    let (code, e) = err_code(ffi::pve_entraid_login, &login);
    assert_eq!(code, "idp.error");
    assert_eq!(e["aadsts"], 7000215, "{e}");
    assert!(!e.to_string().contains("wrong~secret"));
}

#[test]
fn transport_faults_map_to_their_codes() {
    let mut s = setup("faults");
    s.emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "garbage"}}));
    assert_eq!(err_code(ffi::pve_entraid_auth_url, &s.base("entra")).0, "idp.bad_response");
    s.emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "status500"}}));
    assert_eq!(err_code(ffi::pve_entraid_auth_url, &s.base("entra")).0, "idp.error");
    let login = s.start_login(None);
    s.emu.control(json!({"fail_next": {"endpoint": "token", "mode": "truncated"}}));
    assert_eq!(err_code(ffi::pve_entraid_login, &login).0, "idp.bad_response");
    s.config["timeout_ms"] = json!(800);
    let login = s.start_login(None);
    s.emu.control(json!({"fail_next": {"endpoint": "token", "mode": "hang"}}));
    assert_eq!(err_code(ffi::pve_entraid_login, &login).0, "idp.timeout");
    s.config["authority"] = json!("http://127.0.0.1:9");
    s.config["tenant"] = json!("contoso.example");
    assert_eq!(err_code(ffi::pve_entraid_auth_url, &s.base("entra")).0, "idp.unreachable");
}

#[test]
fn key_rotation_is_picked_up_once() {
    let s = setup("rotate");
    ok(ffi::pve_entraid_login, &s.start_login(None));
    s.emu.control(json!({"rotate_keys": true}));
    let login = s.start_login(None);
    s.emu.reset_stats();
    ok(ffi::pve_entraid_login, &login);
    assert_eq!(s.stat("jwks"), 1, "one refetch for the new kid");
    // A second rotation within 5 minutes is not refetched: rate limit.
    s.emu.control(json!({"rotate_keys": true}));
    let login = s.start_login(None);
    assert_eq!(err_code(ffi::pve_entraid_login, &login).0, "token.unknown_kid");
}

#[test]
fn group_overage_is_resolved_through_graph() {
    let s = setup("overage");
    let login = s.start_login(Some("bob@contoso.example"));
    s.emu.reset_stats();
    let res = ok(ffi::pve_entraid_login, &login);
    assert_eq!(res["claims"]["oid"], BOB_OID);
    assert_eq!(res["claims"]["groups_overage"], true);
    assert!(res["groups"].as_array().unwrap().len() >= 200, "{}", res["groups"]);
    assert_eq!(s.stat("graph"), 1);
}

#[test]
fn certificate_credential_logs_in() {
    let mut s = setup("cert");
    s.config.as_object_mut().unwrap().remove("client_secret");
    s.config["client_cert_file"] = json!(entra_emulator::client_cert_path());
    s.config["client_key_file"] = json!(entra_emulator::client_key_path());
    let res = ok(ffi::pve_entraid_login, &s.start_login(None));
    assert_eq!(res["claims"]["oid"], ALICE_OID);
}

#[test]
fn guests_are_refused_by_login() {
    let mut s = setup("guest");
    // login maps the identity itself (one call per login): the guest is refused there
    assert_eq!(err_code(ffi::pve_entraid_login, &s.start_login(Some("guest@fabrikam.example"))).0, "access.guest");
    s.config["allow_guests"] = json!(true);
    let res = ok(ffi::pve_entraid_login, &s.start_login(Some("guest@fabrikam.example")));
    // and `map` agrees when the realm does not allow guests
    s.config["allow_guests"] = json!(false);
    let mut map = s.base("entra");
    map["claims"] = res["claims"].clone();
    map["groups"] = res["groups"].clone();
    map["username"] = res["username"].clone();
    assert_eq!(err_code(ffi::pve_entraid_map, &map).0, "access.guest");
}

#[test]
fn check_reports_each_step() {
    let mut s = setup("check");
    let res = ok(ffi::pve_entraid_check, &s.base("entra"));
    let steps = res["steps"].as_array().unwrap();
    assert!(steps.iter().all(|st| st["ok"] == true), "{res}");
    s.config["client_secret"] = json!("wrong~secret");
    let res = ok(ffi::pve_entraid_check, &s.base("entra"));
    let cred = res["steps"].as_array().unwrap().iter().find(|st| st["step"] == "credentials").unwrap().clone();
    assert_eq!(cred["ok"], false);
    assert!(cred["fix"].as_str().unwrap().contains("Value"), "{cred}");
    assert!(!res.to_string().contains("wrong~secret"));
}

#[test]
fn bad_requests() {
    let big = vec![b' '; 256 * 1024 + 1];
    assert_eq!(call(ffi::pve_entraid_auth_url, &big).1["error"]["code"], "request.too_large");
    assert_eq!(call(ffi::pve_entraid_auth_url, b"{not json").1["error"]["code"], "request.invalid");
    assert_eq!(call(ffi::pve_entraid_login, b"[]").1["error"]["code"], "request.invalid");
    let (c, _, text) = call(ffi::pve_entraid_auth_url, json!({"realm": "entra", "config": {"tenant": 5, "client_secret": CLIENT_SECRET}}).to_string().as_bytes());
    assert_eq!(c, pve_entraid_result::PVE_ENTRAID_CONFIG_INVALID);
    assert!(!text.contains(CLIENT_SECRET));
    let v = unsafe { CStr::from_ptr(ffi::pve_entraid_version()) }.to_str().unwrap();
    assert!(v.starts_with("pve-entraid/"));
}

#[test]
fn login_hint_is_passed_and_bounded() {
    let s = setup("hint");
    let mut req = s.base("entra");
    req["login_hint"] = json!("bob@contoso.example");
    let url = ok(ffi::pve_entraid_auth_url, &req)["url"].as_str().unwrap().to_string();
    assert!(url.contains("login_hint=bob%40contoso.example"), "{url}");
    req["login_hint"] = json!("x".repeat(300));
    assert_eq!(err_code(ffi::pve_entraid_auth_url, &req).0, "request.invalid");
}

#[test]
fn another_home_tenant_signs_in_only_when_allowed() {
    use entra_emulator::{CAROL_OID, FABRIKAM_TENANT};
    let mut s = setup("carol");
    s.config["tenant"] = json!("organizations");
    s.config["allowed_tenants"] = json!([TENANT, FABRIKAM_TENANT]);
    let res = ok(ffi::pve_entraid_login, &s.start_login(Some("carol@fabrikam.example")));
    assert_eq!(res["claims"]["tid"], FABRIKAM_TENANT);
    assert_eq!(res["claims"]["oid"], CAROL_OID);
    s.config["allowed_tenants"] = json!([TENANT]);
    let login = s.start_login(Some("carol@fabrikam.example"));
    assert_eq!(err_code(ffi::pve_entraid_login, &login).0, "token.tenant_not_allowed");
}
