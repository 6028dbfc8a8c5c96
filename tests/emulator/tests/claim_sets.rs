//! The claims of the emulator's ID tokens are Entra's: those of the table `CLAIMS` for every
//! token version, member and guest, scope and optional claim configuration; and the table's
//! sets are those of the captured real tokens (tests/fixtures/entra, SOURCES.txt #1, #2) and of
//! Microsoft's documentation.

mod common;
use common::*;
use entra_emulator::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const X_OID: &str = "0f0f0f0f-0000-4000-8000-000000000f0f";

/// A member like the captured tokens' user: names, no mailbox, no groups, no roles.
fn directory() -> EmulatorConfig {
    serde_json::from_value(json!({"users": [{
        "upn": "x@contoso.example", "oid": X_OID, "name": "X Example", "given_name": "X", "family_name": "Example"
    }]}))
    .unwrap()
}

/// Every optional claim the table knows, a guest's `upn` included.
fn all_optional() -> Value {
    json!({"idToken": [
        {"name": "upn", "additionalProperties": ["include_externally_authenticated_upn"]},
        {"name": "email"}, {"name": "given_name"}, {"name": "family_name"}, {"name": "acct"},
        {"name": "ipaddr"}, {"name": "preferred_username"}
    ]})
}

/// The claim names of an ID token for `hint` with these scopes (`v1`: the v1.0 token).
fn names(emu: &Emulator, hint: &str, scope: &str, v1: bool) -> BTreeSet<String> {
    if v1 {
        emu.control(json!({"tamper_next_id_token": "v1"}));
    }
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&auth_url(emu, TENANT, &challenge, &[("scope", scope)]), Some(hint)).expect("authorize");
    let r = post_form(&token_url(emu, TENANT), &code_redemption(&code, &verifier));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (_, c) = decode(r.json()["id_token"].as_str().unwrap());
    keys_of(&c)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The claim names of a real captured token.
fn captured(file: &str) -> BTreeSet<String> {
    let path = format!("{}/../fixtures/entra/{file}", env!("CARGO_MANIFEST_DIR"));
    let jwt = std::fs::read_to_string(&path).expect(&path);
    keys_of(&decode(jwt.trim()).1)
}

#[test]
fn tokens_carry_the_claims_of_the_table() {
    let emu = start(directory());
    let none = OptionalClaims::default();
    let all: OptionalClaims = serde_json::from_value(all_optional()).unwrap();
    let mut seen = 0;
    for (optional, doc) in [(&none, json!({"idToken": []})), (&all, all_optional())] {
        emu.control(json!({"optional_claims": doc}));
        for (version, v1) in [(Version::V2, false), (Version::V1, true)] {
            for scope in ["openid profile email", "openid"] {
                // alice: a member with a mailbox, a group and a role; the guest: no groups
                for (hint, guest, held) in [
                    ("alice@contoso.example", false, &["groups", "roles"][..]),
                    ("guest@fabrikam.example", true, &[][..]),
                    ("x@contoso.example", false, &[][..]),
                ] {
                    let ctx = ClaimContext { version, guest, scope, optional };
                    let mut expected: BTreeSet<String> = claim_names(&ctx)
                        .into_iter()
                        .filter(|n| !matches!(*n, "groups" | "roles" | "_claim_names" | "_claim_sources") || held.contains(n))
                        .map(str::to_string)
                        .collect();
                    if hint.starts_with('x') {
                        expected.remove("email"); // no mailbox
                    }
                    assert_eq!(names(&emu, hint, scope, v1), expected, "{hint} {version:?} scope '{scope}' optional {optional:?}");
                    seen += 1;
                }
            }
        }
    }
    assert_eq!(seen, 24);
}

#[test]
fn claim_names_are_those_of_the_captured_tokens() {
    // the emulator's tokens have what the real ones have, plus the nonce (the captured flows
    // sent none) and the opaque aio, rh, uti Entra has added since (its documented sample)
    let later = set(&["nonce", "aio", "rh", "uti"]);
    let emu = start(directory());
    let v2 = names(&emu, "x@contoso.example", "openid profile email", false);
    assert_eq!(v2, &captured("id-token-v2-2016.jwt") | &later);
    assert!(!v2.contains("upn"), "a v2.0 token has no upn without the optional claim");
    let v1 = names(&emu, "x@contoso.example", "openid", true);
    assert_eq!(v1, &captured("id-token-v1-2016.jwt") | &later);
    assert!(v1.contains("upn") && v1.contains("unique_name") && !v1.contains("preferred_username"));
}

#[test]
fn claim_names_are_the_documented_v2_sets() {
    // "ID token claims reference" and its sample v2.0 token; guests get `email` and `idp`
    let member = set(&["aud", "iss", "iat", "nbf", "exp", "aio", "name", "nonce", "oid", "preferred_username", "rh", "sub", "tid", "uti", "ver"]);
    let emu = start(directory());
    assert_eq!(names(&emu, "x@contoso.example", "openid profile email", false), member);
    assert_eq!(names(&emu, "guest@fabrikam.example", "openid profile email", false), &member | &set(&["email", "idp"]));
    // "Optional claims reference": upn, given_name, family_name are v2.0 optional claims
    emu.control(json!({"optional_claims": {"idToken": [{"name": "upn"}, {"name": "given_name"}, {"name": "family_name"}]}}));
    assert_eq!(names(&emu, "x@contoso.example", "openid profile email", false), &member | &set(&["upn", "given_name", "family_name"]));
    assert_eq!(names(&emu, "guest@fabrikam.example", "openid profile email", false), &member | &set(&["email", "idp", "given_name", "family_name"]), "a guest's upn needs the property");
    // without the scope profile: no names, no oid
    assert_eq!(names(&emu, "x@contoso.example", "openid", false), &(&member - &set(&["name", "oid", "preferred_username"])) | &set(&["upn", "given_name", "family_name"]));
}

#[test]
fn optional_claims_control_is_validated_and_reset() {
    let emu = start(directory());
    let bad = [
        json!({"optional_claims": []}),
        json!({"optional_claims": {"client_id": "00000000-0000-0000-0000-000000000000", "idToken": []}}),
        json!({"optional_claims": {"idToken": [{"nom": "upn"}]}}),
    ];
    for doc in bad {
        let r = post_json(&format!("{}/_emu/control", emu.url()), &doc, None);
        assert_eq!(r.status, 400, "{doc}");
    }
    emu.control(json!({"optional_claims": {"client_id": CLIENT_ID, "idToken": [{"name": "upn"}]}}));
    assert!(names(&emu, "x@contoso.example", "openid profile", false).contains("upn"));
    emu.control(json!({"reset": true}));
    assert!(!names(&emu, "x@contoso.example", "openid profile", false).contains("upn"), "back to the configured app");
}
