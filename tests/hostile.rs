//! Hostile input through the public C ABI: every OpenID relying-party negative case the
//! emulator can forge (tamper_next_id_token), state misuse, oversized and malformed requests,
//! NULL pointers and non-UTF-8 bytes. Each must be refused with its specific stable code
//! (docs/DESIGN.md), and no answer may be `internal.panic` or carry the client secret
//! (`abi_harness::call_raw` checks both on every call).

mod abi_harness;

use abi_harness::*;
use entra_emulator::{ALICE_OID, CLIENT_ID, FABRIKAM_TENANT, TENANT};
use serde_json::{json, Value};
use std::ffi::{c_char, CStr};

/// Logs in once with the next ID token tampered; the code of the answer.
fn login_with_tampered_token(realm: &Realm, mode: &str) -> String {
    let req = realm.login_request();
    realm.emu.control(json!({"tamper_next_id_token": mode}));
    code_of(&realm.login(&req).1)
}

#[test]
fn every_forged_id_token_is_refused_with_its_code() {
    let realm = Realm::new("tamper");
    assert_eq!(realm.full_login(), "ok", "an untampered login must work first");
    let cases = [
        ("alg_none", "token.unsupported_alg"),
        ("hs256_pubkey", "token.unsupported_alg"), // HMAC keyed with the published RSA key
        ("bad_signature", "token.bad_signature"),
        ("no_kid", "token.malformed"), // two keys are published: which one is not guessed
        ("wrong_iss", "token.issuer_mismatch"),
        ("wrong_aud", "token.audience_mismatch"),
        ("extra_aud", "token.audience_mismatch"), // our client id plus an untrusted audience
        ("bad_azp", "token.azp_mismatch"),
        ("expired", "token.expired"),
        ("nbf_future", "token.not_yet_valid"),
        ("iat_future", "token.issued_in_future"),
        ("no_nonce", "token.nonce_missing"),
        ("wrong_nonce", "token.nonce_mismatch"),
        ("v1", "token.version"),
        // tid is not the tenant of the issuer the token names
        ("wrong_tid", "token.issuer_mismatch"),
    ];
    let mut wrong = Vec::new();
    for (mode, want) in cases {
        let got = login_with_tampered_token(&realm, mode);
        if got != want {
            wrong.push(format!("{mode}: got {got}, want {want}"));
        }
    }
    assert!(wrong.is_empty(), "forged tokens with the wrong outcome:\n{}", wrong.join("\n"));
    assert_eq!(realm.full_login(), "ok", "refusals must leave the realm working");
}

#[test]
fn a_token_signed_by_an_unpublished_key_is_refused() {
    let realm = Realm::new("unknown-kid");
    assert_eq!(login_with_tampered_token(&realm, "unknown_kid"), "token.unknown_kid");
}

#[test]
fn a_tenant_outside_allowed_tenants_is_refused() {
    let mut realm = Realm::new("tenant-allow");
    realm.config["tenant-id"] = "organizations".into();
    realm.config["allowed-tenants"] = json!(FABRIKAM_TENANT);
    // alice signs in to TENANT, which this multi-tenant realm does not allow
    assert_eq!(realm.full_login(), "token.tenant_not_allowed");
    realm.config["allowed-tenants"] = json!(format!("{FABRIKAM_TENANT},{TENANT}"));
    assert_eq!(realm.full_login(), "ok");
}

#[test]
fn a_state_is_used_once_and_only_by_its_realm() {
    let realm = Realm::new("state");
    let req = realm.login_request();
    assert_eq!(code_of(&realm.login(&req).1), "ok");
    assert_eq!(code_of(&realm.login(&req).1), "state.replayed");

    // Started for `entra`, finished as `other` (same cluster key): refused.
    let mut foreign = realm.login_request();
    foreign["realm"] = "other".into();
    assert_eq!(code_of(&realm.login(&foreign).1), "state.realm_mismatch");

    // One flipped character in the sealed state.
    let mut forged = realm.login_request();
    let state = forged["state"].as_str().unwrap().to_string();
    let flipped = if state.ends_with('A') { 'B' } else { 'A' };
    forged["state"] = format!("{}{flipped}", &state[..state.len() - 1]).into();
    assert_eq!(code_of(&realm.login(&forged).1), "state.invalid");

    // A state sealed under another cluster's key.
    let other = Realm::new("state-other");
    let mut elsewhere = other.login_request();
    elsewhere["state_key_file"] = realm.request()["state_key_file"].clone();
    elsewhere["config"] = realm.config.clone();
    assert_eq!(code_of(&realm.login(&elsewhere).1), "state.invalid");
}

/// A map request that succeeds, for the oversized-field variants below.
fn map_request() -> Value {
    json!({
        "realm": "entra",
        "config": {"tenant-id": TENANT, "client-id": CLIENT_ID, "client_secret": "unused",
                   "groups-map": "6f7e8d9c-1111-4111-8111-000000000001=admins"},
        "claims": {"oid": ALICE_OID, "tid": TENANT, "sub": "s", "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                   "upn": "alice@contoso.example", "preferred_username": "alice@contoso.example",
                   "groups": ["6f7e8d9c-1111-4111-8111-000000000001"], "roles": [], "groups_overage": false},
        "groups": ["6f7e8d9c-1111-4111-8111-000000000001"],
        "username": "alice@contoso.example",
    })
}

#[test]
fn the_map_request_used_below_is_accepted() {
    let (rc, answer) = call(pve_entraid_map, &map_request());
    assert_eq!(rc, 0, "{answer}");
    assert_eq!(answer["result"]["userid"], "alice@contoso.example@entra");
}

#[test]
fn requests_over_256_kib_are_refused_at_every_entry_point() {
    let realm = Realm::new("too-large");
    let mut big = realm.request();
    big["padding"] = "x".repeat(256 * 1024).into();
    for (name, entry) in ENTRIES {
        let (_, answer) = call(entry, &big);
        assert_eq!(code_of(&answer), "request.too_large", "{name}");
    }
    // Exactly at the limit is not "too large" (it fails later, for other reasons or none).
    let mut edge = map_request().to_string().into_bytes();
    let pad = 256 * 1024 - edge.len();
    edge.splice(1..1, vec![b' '; pad]);
    assert_eq!(edge.len(), 256 * 1024);
    let (rc, answer) = call_raw(pve_entraid_map, &edge);
    assert_eq!(rc, 0, "a request of exactly 256 KiB is accepted: {answer}");
    assert_eq!(code_of(&call_raw(pve_entraid_map, &[edge, b" ".to_vec()].concat()).1), "request.too_large");
    assert_eq!(realm.emu.stats()["discovery"], 0, "refused requests reach no IdP");
}

#[test]
fn oversized_fields_get_their_own_clear_code() {
    let realm = Realm::new("big-fields");
    let req = realm.login_request();

    let mut long_code = req.clone();
    long_code["code"] = "c".repeat(100_000).into();
    assert_eq!(code_of(&realm.login(&long_code).1), "request.invalid");

    let mut long_state = req.clone();
    long_state["state"] = "A".repeat(100_000).into();
    assert_eq!(code_of(&realm.login(&long_state).1), "state.invalid");

    let mut long_realm = realm.request();
    long_realm["realm"] = "r".repeat(100_000).into();
    assert_eq!(code_of(&call(pve_entraid_auth_url, &long_realm).1), "request.invalid");

    let mut long_redirect = realm.request();
    long_redirect["redirect_url"] = format!("https://{}", "h".repeat(100_000)).into();
    assert_eq!(code_of(&call(pve_entraid_auth_url, &long_redirect).1), "request.invalid");

    let mut long_hint = realm.request();
    long_hint["login_hint"] = "h".repeat(100_000).into();
    assert_eq!(code_of(&call(pve_entraid_auth_url, &long_hint).1), "request.invalid", "not copied into a URL");

    let mut long_tenant = realm.request();
    long_tenant["config"]["tenant-id"] = "t".repeat(100_000).into();
    assert_eq!(code_of(&call(pve_entraid_auth_url, &long_tenant).1), "config.invalid");

    // The username claim becomes the PVE user id, which PVE limits to 64 characters.
    let mut m = map_request();
    m["claims"]["upn"] = "a".repeat(100_000).into();
    m["username"] = m["claims"]["upn"].clone();
    let (_, answer) = call(pve_entraid_map, &m);
    assert_eq!(code_of(&answer), "access.denied", "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("64"), "names the limit: {answer}");

    // The real code and state still work after all that: refused requests consumed nothing.
    assert_eq!(code_of(&realm.login(&req).1), "ok");
}

/// Every entry point reads its request into a typed struct: a member it does not know, or a
/// member of the wrong type, is refused with the stable code of its part (`request.invalid`,
/// `config.invalid` inside `config`) and a message naming the member's path, never its value.
#[test]
fn typed_requests_name_the_member_and_never_its_value() {
    const SECRET: &str = "s3cr~et.Value_with~tilde";
    let realm = Realm::new("typed");
    let check = |entry: Entry, req: &Value, code: &str, message: &str| {
        let (_, answer) = call(entry, req);
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert_eq!(answer["error"]["message"], message, "{answer}");
        assert!(!answer.to_string().contains("s3cr"), "a value is echoed: {answer}");
    };
    let requests: [(&str, Entry, Value); 5] = [
        ("auth_url", pve_entraid_auth_url, realm.request()),
        ("login", pve_entraid_login, {
            let mut r = realm.common();
            r["state_key_file"] = json!(realm.state_key_file());
            r["binding_key"] = BINDING_KEY.into();
            r["code"] = "c".into();
            r["state"] = "s".into();
            r
        }),
        ("map", pve_entraid_map, map_request()),
        ("check", pve_entraid_check, realm.check_request()),
        ("check_config", pve_entraid_check_config, realm.common()),
    ];
    for (name, entry, req) in requests {
        let mut unknown = req.clone();
        unknown["passw0rd"] = SECRET.into();
        check(entry, &unknown, "request.invalid", "`passw0rd` is not a known member");
        let mut unknown = req.clone();
        unknown["config"]["client-key"] = SECRET.into();
        check(entry, &unknown, "config.invalid", "`config.client-key` is not a known member");
        let mut wrong = req.clone();
        wrong["config"]["allow-guests"] = SECRET.into();
        check(entry, &wrong, "config.invalid", "`config.allow-guests` must be a boolean (0 or 1)");
        let mut wrong = req.clone();
        wrong["config"]["cloud"] = SECRET.into();
        check(entry, &wrong, "config.invalid", "`config.cloud` must be one of `public`, `usgov`, `china`");
        let mut missing = req.clone();
        missing["config"].as_object_mut().unwrap().remove("client-id");
        check(entry, &missing, "config.invalid", "`config.client-id` is required");
        let member = match name {
            "map" => "username",
            "check" => "redirect_url",
            "check_config" => continue,
            _ => "state_key_file",
        };
        let mut wrong = req.clone();
        wrong[member] = json!([SECRET]);
        check(entry, &wrong, "request.invalid", &format!("`{member}` must be a string"));
    }
    let mut wrong = map_request();
    wrong["claims"]["acct"] = SECRET.into();
    check(pve_entraid_map, &wrong, "request.invalid", "`claims.acct` must be i64");
    assert_eq!(realm.emu.stats()["discovery"], 0, "refused requests reach no IdP");
}

#[test]
fn malformed_json_and_non_utf8_bytes_get_clear_codes() {
    let deep = [b'['; 10_000];
    let cases: &[(&[u8], &str)] = &[
        (b"", "request.invalid"),
        (b"{", "request.invalid"),
        (b"[]", "request.invalid"),
        (b"null", "request.invalid"),
        (b"\"entra\"", "request.invalid"),
        (b"{\"realm\": 1}", "request.invalid"),
        (b"{\"realm\": \"../../etc\", \"config\": {}}", "request.invalid"), // realm names become file names
        (b"\xff\xfe{\"realm\": \"entra\"}", "request.invalid"),
        (b"{\"realm\": \"ent\xc3\x28ra\"}", "request.invalid"), // invalid UTF-8 sequence
        (b"{\"realm\": \"entra\", \"config\": \"\xed\xa0\x80\"}", "request.invalid"), // UTF-16 surrogate
        (b"{\"realm\": \"entra\"}\0trailing", "request.invalid"),
        (&deep, "request.invalid"), // nesting deeper than the parser's limit
        // well-formed JSON, but the realm configuration is missing or not an object
        (b"{\"realm\": \"entra\"}", "config.invalid"),
        (b"{\"realm\": \"entra\", \"realm\": \"other\", \"config\": 5}", "config.invalid"),
    ];
    for (name, entry) in ENTRIES {
        for (input, want) in cases {
            let (_, answer) = call_raw(entry, input);
            assert_eq!(
                code_of(&answer),
                *want,
                "{name} on {:?}",
                String::from_utf8_lossy(&input[..input.len().min(40)])
            );
        }
    }
}

#[test]
fn null_pointers_never_crash() {
    for (name, entry) in ENTRIES.into_iter().chain([("refuse_realm", pve_entraid_refuse_realm as Entry)]) {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: NULL request pointers are part of the contract; `out` is valid.
        let rc = unsafe { entry(std::ptr::null(), 10, &mut out) };
        assert_eq!(rc, 1, "{name}: NULL request with a length is request.invalid");
        assert!(!out.is_null(), "{name}: an answer even for a NULL request");
        // SAFETY: `out` came from the library and is freed once.
        unsafe {
            assert!(CStr::from_ptr(out).to_str().unwrap().contains("request.invalid"));
            pve_entraid_free(out);
        }
        // SAFETY: NULL out is allowed: the library then writes nothing.
        assert_eq!(unsafe { entry(std::ptr::null(), 0, std::ptr::null_mut()) }, 1, "{name}");
        let req = b"{}";
        // SAFETY: as above.
        assert_eq!(unsafe { entry(req.as_ptr(), req.len(), std::ptr::null_mut()) }, 1, "{name}");
    }
    // SAFETY: freeing NULL is documented as fine.
    unsafe { pve_entraid_free(std::ptr::null_mut()) };
}

/// refuse_realm reads no realm request and exists to refuse: whatever it is sent, it never
/// answers ok.
#[test]
fn refuse_realm_never_answers_ok() {
    let inputs: [&[u8]; 9] = [
        b"", b"{", b"null", b"[]", b"{}", b"{\"realm\": 1}", b"\xff{}",
        b"{\"realm\": \"pam\", \"config\": {}}",
        b"{\"realm\": \"pam\", \"run_dir\": \"/nonexistent\", \"client_address\": \"not an address\"}",
    ];
    for input in inputs {
        let (rc, answer) = call_raw(pve_entraid_refuse_realm, input);
        assert_eq!(code_of(&answer), "request.invalid", "{}: {answer}", String::from_utf8_lossy(input));
        assert_eq!(rc, 1);
    }
    let (_, answer) = call(pve_entraid_refuse_realm, &json!({"realm": "x\u{7}y", "realm_type": "pa\nm"}));
    assert_eq!(answer["error"]["message"], "realm 'x y' is of type 'pa m', not 'entraid'", "control characters are not passed on");
}

#[test]
fn hostile_values_do_not_turn_into_wrong_grants() {
    // A guest is refused unless allowed, whatever else the claims say.
    let mut m = map_request();
    m["claims"]["acct"] = 1.into();
    m["claims"]["idp"] = "https://sts.windows.net/99999999-0000-0000-0000-000000000000/".into();
    assert_eq!(code_of(&call(pve_entraid_map, &m).1), "access.guest");
    // Required groups: without membership, no access.
    let mut m = map_request();
    m["config"]["required-groups"] = json!("6f7e8d9c-1111-4111-8111-00000000ffff");
    assert_eq!(code_of(&call(pve_entraid_map, &m).1), "access.denied");
}

/// xorshift64*: deterministic, so a failure reproduces with the printed iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 => input.truncate(at),
            3 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            _ => {
                let tokens: [&[u8]; 8] = [b"null", b"{}", b"[]", b"\"", b"1e999", b"-1", b"\\u0000", b"\xff"];
                let t = tokens[rng.below(tokens.len())];
                input.splice(at..at, t.iter().copied());
            }
        }
    }
}

/// libFuzzer-free stand-in for fuzz/ (fuzz/run.sh runs it when cargo-fuzz is unavailable):
/// a bounded number of mutated requests. `map` is pure and gets mutated valid requests; the
/// I/O entry points get mutations of a request that cannot reach the network or the disk
/// (no state key file, no cache dir, a closed loopback port), so they exercise parsing only.
#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x5eed_0fe1_7a1d);
    let map_seed = map_request().to_string().into_bytes();
    let io_seed = json!({"realm": "entra", "config": {"tenant-id": TENANT, "client-id": CLIENT_ID,
        "client_secret": "unused", "authority": "http://127.0.0.1:9", "timeout_ms": 200, "connect_timeout_ms": 100},
        "code": "c", "state": "AAAA", "redirect_url": "https://pve1:8006"})
    .to_string()
    .into_bytes();
    for i in 0..3000 {
        let (name, entry) = ENTRIES[i % ENTRIES.len()];
        let mut input = if name == "map" { map_seed.clone() } else { io_seed.clone() };
        mutate(&mut rng, &mut input);
        // A mutation must never point the I/O entry points at a file (they would create it).
        if name != "map" && (input.windows(5).any(|w| w == b"_file") || input.windows(9).any(|w| w == b"cache_dir")) {
            continue;
        }
        let (rc, _) = call_raw(entry, &input);
        assert!(rc != PANIC_CODE, "iteration {i} ({name})");
    }
}
