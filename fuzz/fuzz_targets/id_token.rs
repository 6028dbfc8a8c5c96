//! Fuzzes the ID-token parser and validator (`jwt::Jws::parse`, `claims::validate`).
//!
//! The first input byte picks the mode:
//! * even: the rest is a token string as it would come back from the token endpoint; almost
//!   every input stops at parsing or the signature, which is the point (no panic on garbage);
//! * odd: the rest is the payload JSON, which the harness signs with the key the validator
//!   trusts, so every claim rule after the signature is reached. Any token the validator
//!   accepts must then really satisfy the rules the harness checks again below.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pve_entraid::claims::{validate, Expected, CLOCK_SKEW_SECS};
use pve_entraid::config::Tenant;
use pve_entraid::discovery::{parse_jwks, Jwk};
use pve_entraid::error::{Code, Error, Result};
use pve_entraid::jwt::{b64url, public_key, rsa_key_from_pem, sign_rs256, Jws};
use ring::signature::RsaKeyPair;
use serde_json::{json, Value};
use std::sync::OnceLock;

const TID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const NONCE: &str = "bm9uY2U";
const NOW: u64 = 1_700_000_000;
const ISSUER_TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const KID: &str = "fuzz-key-1";

/// The emulator's first signing key: a real 2048-bit key, deterministic across runs.
fn signing_key() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| rsa_key_from_pem(include_str!("../../tests/emulator/keys/signing-1.key")).expect("PKCS#8 key"))
}

/// The same key as Entra publishes it, run through the crate's own JWKS parser.
fn trusted_key() -> &'static Jwk {
    static JWK: OnceLock<Jwk> = OnceLock::new();
    JWK.get_or_init(|| {
        let public = public_key(signing_key());
        let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": KID, "x5t": KID,
            "n": b64url(&public.n), "e": b64url(&public.e),
            "issuer": ISSUER_TEMPLATE}]});
        parse_jwks(&jwks).expect("JWKS").remove(0)
    })
}

fn key_for(kid: &str) -> Result<Jwk> {
    if kid == KID {
        Ok(trusted_key().clone())
    } else {
        Err(Error::new(Code::TokenUnknownKid, "unknown kid"))
    }
}

fn check(token: &str) {
    let tenant = Tenant::Multi { segment: "organizations".into(), allowed: vec![TID.into()] };
    let expected = Expected { client_id: CLIENT, nonce: NONCE, issuer: ISSUER_TEMPLATE, tenant: &tenant, now: NOW };
    let Ok(claims) = validate(token, &expected, &key_for) else { return };

    // Accepted: the rules must hold on what was signed.
    let jws = Jws::parse(token).expect("an accepted token parses");
    let p = jws.payload_json().expect("an accepted token has a JSON object payload");
    assert_eq!(p.get("nonce").and_then(Value::as_str), Some(NONCE), "accepted a token with another nonce");
    assert_eq!(claims.tid.to_ascii_lowercase(), TID, "accepted a token of a tenant not allowed");
    assert_eq!(claims.iss, ISSUER_TEMPLATE.replace("{tenantid}", &claims.tid), "accepted a foreign issuer");
    let exp = p.get("exp").and_then(Value::as_f64).expect("accepted a token without exp");
    // saturating as the library reads it: an `exp` past i64 (a far future) is not expired
    assert!((exp as i64).saturating_add(CLOCK_SKEW_SECS) >= NOW as i64, "accepted an expired token");
    assert!(!claims.oid.is_empty() || p.get("oid").is_some(), "accepted a token without oid");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            check(token);
        }
    } else if let Ok(payload @ Value::Object(_)) = serde_json::from_slice::<Value>(rest) {
        let token = sign_rs256(signing_key(), &json!({"typ": "JWT", "alg": "RS256", "kid": KID}), &payload);
        check(&token);
    }
});
