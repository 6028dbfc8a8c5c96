//! private_key_jwt: the certificate credential in keys/client.{crt,key} is accepted, anything
//! else about the assertion is rejected with Entra's codes.

mod common;
use common::*;
use entra_emulator::*;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn redeem_with_assertion(emu: &Emulator, assertion: &str) -> Http {
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(&auth_url(emu, TENANT, &challenge, &[]), None).unwrap();
    post_form(
        &token_url(emu, TENANT),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "x5t#S256": cert_x5t_s256()})
}

#[test]
fn rs256_with_x5t_s256_is_accepted() {
    let emu = start(EmulatorConfig::default());
    let a = sign_assertion(
        &client_key(),
        &header("RS256"),
        &assertion_claims(&token_url(&emu, TENANT)),
    );
    let r = redeem_with_assertion(&emu, &a);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["id_token"].is_string());
}

#[test]
fn ps256_with_sha1_x5t_is_accepted() {
    let emu = start(EmulatorConfig::default());
    let h = json!({"alg": "PS256", "typ": "JWT", "x5t": cert_x5t_sha1()});
    let a = sign_assertion(
        &client_key(),
        &h,
        &assertion_claims(&token_url(&emu, TENANT)),
    );
    assert_eq!(redeem_with_assertion(&emu, &a).status, 200);
}

#[test]
fn assertion_for_domain_path_accepts_either_endpoint_form() {
    let emu = start(EmulatorConfig::default());
    // aud names the GUID endpoint while the request goes to the domain path.
    let a = sign_assertion(
        &client_key(),
        &header("RS256"),
        &assertion_claims(&token_url(&emu, TENANT)),
    );
    let r = post_form(
        &token_url(&emu, "contoso.example"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn bad_assertions_are_rejected() {
    let emu = start(EmulatorConfig::default());
    let aud = token_url(&emu, TENANT);
    let key = client_key();
    let mut other_rng = rsa::rand_core::OsRng;
    let other_key = RsaPrivateKey::new(&mut other_rng, 2048).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = assertion_claims(&aud);
        f(&mut c);
        c
    };
    let cases: Vec<(&str, String, u64)> = vec![
        (
            "signed by another key",
            sign_assertion(&other_key, &header("RS256"), &assertion_claims(&aud)),
            700027,
        ),
        (
            "unknown thumbprint",
            sign_assertion(
                &key,
                &json!({"alg": "RS256", "x5t#S256": "AAAA"}),
                &assertion_claims(&aud),
            ),
            700027,
        ),
        (
            "no thumbprint",
            sign_assertion(&key, &json!({"alg": "RS256"}), &assertion_claims(&aud)),
            700027,
        ),
        (
            "HS256",
            sign_assertion(
                &key,
                &json!({"alg": "HS256", "x5t#S256": cert_x5t_s256()}),
                &assertion_claims(&aud),
            ),
            700027,
        ),
        (
            "wrong aud",
            sign_assertion(
                &key,
                &header("RS256"),
                &with(&|c| c["aud"] = json!("https://elsewhere/token")),
            ),
            700027,
        ),
        (
            "iss not client",
            sign_assertion(
                &key,
                &header("RS256"),
                &with(&|c| c["iss"] = json!("someone")),
            ),
            700027,
        ),
        (
            "sub not client",
            sign_assertion(
                &key,
                &header("RS256"),
                &with(&|c| c["sub"] = json!("someone")),
            ),
            700027,
        ),
        (
            "no jti",
            sign_assertion(
                &key,
                &header("RS256"),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            700027,
        ),
        (
            "expired",
            sign_assertion(
                &key,
                &header("RS256"),
                &with(&|c| c["exp"] = json!(now() - 60)),
            ),
            700024,
        ),
        ("not a JWT", "abc.def".to_string(), 700027),
    ];
    for (what, assertion, code) in cases {
        let r = redeem_with_assertion(&emu, &assertion);
        assert_eq!(r.status, 401, "{what}");
        assert_aadsts(&r, 401, "invalid_client", code);
    }
    // A tampered payload under a valid signature.
    let good = sign_assertion(&key, &header("RS256"), &assertion_claims(&aud));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(
            with(&|c| c["exp"] = json!(now() + 99999))
                .to_string()
                .as_bytes()
        ),
        parts[2]
    );
    assert_aadsts(
        &redeem_with_assertion(&emu, &forged),
        401,
        "invalid_client",
        700027,
    );
}

#[test]
fn app_without_certificate_rejects_assertions() {
    let cfg: EmulatorConfig = serde_json::from_value(
        json!({"apps": [{"client_id": CLIENT_ID, "secret": CLIENT_SECRET, "certificate": false}]}),
    )
    .unwrap();
    let emu = start(cfg);
    let a = sign_assertion(
        &client_key(),
        &header("RS256"),
        &assertion_claims(&token_url(&emu, TENANT)),
    );
    assert_aadsts(
        &redeem_with_assertion(&emu, &a),
        401,
        "invalid_client",
        700027,
    );
}

#[test]
fn client_cert_and_key_belong_together() {
    use rsa::traits::PublicKeyParts;
    let der = {
        let pem = std::fs::read_to_string(client_cert_path()).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()
    };
    let n = client_key().n().to_bytes_be();
    assert!(
        der.windows(n.len()).any(|w| w == n.as_slice()),
        "client.crt does not carry client.key's modulus"
    );
}
