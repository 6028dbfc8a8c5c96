//! tamper_next_id_token: each mode breaks exactly one property of the next ID token, once;
//! rotate_keys: the JWKS window moves and signing follows.

mod common;
use common::*;
use entra_emulator::*;
use serde_json::{json, Value};

fn tampered(emu: &Emulator, mode: &str) -> (String, Value, Value) {
    emu.control(json!({"tamper_next_id_token": mode}));
    let jwt = id_token(emu, None);
    let (h, c) = decode_any(&jwt);
    (jwt, h, c)
}

/// Like `decode`, but tolerates the empty signature of alg none.
fn decode_any(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let part = |s: &str| {
        serde_json::from_slice::<Value>(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).unwrap(),
        )
        .unwrap()
    };
    (part(parts[0]), part(parts[1]))
}

type ClaimCheck<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

#[test]
fn claim_tampers_stay_validly_signed_and_change_one_claim() {
    let emu = start(EmulatorConfig::default());
    let base = emu.url();
    let t = now();
    let cases: Vec<(&str, ClaimCheck)> = vec![
        (
            "wrong_iss",
            Box::new(|c: &Value| c["iss"] != format!("{base}/{TENANT}/v2.0") && c["tid"] == TENANT),
        ),
        (
            "wrong_aud",
            Box::new(|c: &Value| c["aud"].is_string() && c["aud"] != CLIENT_ID),
        ),
        (
            "extra_aud",
            Box::new(|c: &Value| {
                c["aud"]
                    .as_array()
                    .is_some_and(|a| a.len() == 2 && a[0] == CLIENT_ID)
            }),
        ),
        (
            "expired",
            Box::new(move |c: &Value| c["exp"].as_u64().unwrap() < t),
        ),
        (
            "nbf_future",
            Box::new(move |c: &Value| c["nbf"].as_u64().unwrap() > t + 600),
        ),
        (
            "iat_future",
            Box::new(move |c: &Value| c["iat"].as_u64().unwrap() > t + 600),
        ),
        ("no_nonce", Box::new(|c: &Value| c.get("nonce").is_none())),
        (
            "wrong_nonce",
            Box::new(|c: &Value| c["nonce"].is_string() && c["nonce"] != "nonce-456"),
        ),
        (
            "v1",
            Box::new(|c: &Value| {
                c["iss"] == format!("https://sts.windows.net/{TENANT}/") && c["ver"] == "1.0"
            }),
        ),
        (
            "wrong_tid",
            Box::new(|c: &Value| c["tid"] != TENANT && c["iss"] == format!("{base}/{TENANT}/v2.0")),
        ),
        (
            "bad_azp",
            Box::new(|c: &Value| {
                c["azp"].is_string() && c["azp"] != CLIENT_ID && c["aud"] == CLIENT_ID
            }),
        ),
    ];
    for (mode, check) in cases {
        let (jwt, _, c) = tampered(&emu, mode);
        assert!(check(&c), "{mode}: {c}");
        verify_with_jwks(&emu, TENANT, &jwt).unwrap_or_else(|e| panic!("{mode}: {e}"));
        // One-shot: the next token is clean again.
        let (_, clean) = decode(&id_token(&emu, None));
        assert_eq!(clean["nonce"], "nonce-456", "{mode}");
        assert_eq!(clean["aud"], CLIENT_ID, "{mode}");
        assert!(clean.get("azp").is_none(), "{mode}");
    }
}

#[test]
fn header_and_signature_tampers() {
    let emu = start(EmulatorConfig::default());

    let (jwt, h, _) = tampered(&emu, "alg_none");
    assert_eq!(h["alg"], "none");
    assert!(jwt.ends_with('.'));

    let (jwt, h, _) = tampered(&emu, "bad_signature");
    assert_eq!(h["alg"], "RS256");
    assert!(verify_with_jwks(&emu, TENANT, &jwt).is_err());

    let (_, h, _) = tampered(&emu, "no_kid");
    assert!(h.get("kid").is_none());
    assert_eq!(h["alg"], "RS256");

    let (jwt, h, _) = tampered(&emu, "unknown_kid");
    assert_eq!(
        verify_with_jwks(&emu, TENANT, &jwt).unwrap_err(),
        "kid not published"
    );
    assert!(h["kid"].is_string());
}

#[test]
fn hs256_pubkey_is_keyed_with_the_published_public_key_pem() {
    use rsa::pkcs8::EncodePublicKey;
    use rsa::BigUint;
    let emu = start(EmulatorConfig::default());
    let (jwt, h, _) = tampered(&emu, "hs256_pubkey");
    assert_eq!(h["alg"], "HS256");
    let jwks = get(&format!("{}/{TENANT}/discovery/v2.0/keys", emu.url())).json();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == h["kid"])
        .expect("kid of a published key");
    let int = |m: &str| {
        BigUint::from_bytes_be(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwk[m].as_str().unwrap(),
            )
            .unwrap(),
        )
    };
    let pem = rsa::RsaPublicKey::new(int("n"), int("e"))
        .unwrap()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    // HMAC-SHA256 by hand (RFC 2104), keyed with the PEM text a naive verifier would use.
    use sha2::{Digest, Sha256};
    let mut k = pem.as_bytes().to_vec();
    if k.len() > 64 {
        k = Sha256::digest(&k).to_vec();
    }
    k.resize(64, 0);
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(input.as_bytes())
        .finalize();
    let mac = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    assert_eq!(sig, b64url(&mac));
}

#[test]
fn rotation_publishes_the_held_back_key_and_signs_with_it() {
    let emu = start(EmulatorConfig::default());
    let jwks_url = format!("{}/{TENANT}/discovery/v2.0/keys", emu.url());
    let kids = |v: Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    let before = kids(get(&jwks_url).json());
    let (h0, _) = decode(&id_token(&emu, None));
    assert_eq!(
        h0["kid"], before[0],
        "the oldest published key signs at start"
    );

    emu.control(json!({"rotate_keys": true}));
    let after = kids(get(&jwks_url).json());
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], before[1], "oldest dropped");
    assert!(!before.contains(&after[1]), "held-back key published");
    let jwt = id_token(&emu, None);
    assert_eq!(decode(&jwt).0["kid"], after[1]);
    verify_with_jwks(&emu, TENANT, &jwt).unwrap();

    emu.control(json!({"rotate_keys": true}));
    let third = kids(get(&jwks_url).json());
    assert_eq!(
        third,
        vec![after[1].clone(), before[0].clone()],
        "the window keeps moving round the three keys"
    );
    let jwt = id_token(&emu, None);
    assert_eq!(decode(&jwt).0["kid"], third[1]);
    verify_with_jwks(&emu, TENANT, &jwt).unwrap();
}
