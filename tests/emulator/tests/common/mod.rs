//! Helpers shared by the emulator's integration tests: an HTTP client that shows every status,
//! PKCE, a full login, JWT decoding and verification, client assertions.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use entra_emulator::{Emulator, CLIENT_ID, CLIENT_SECRET, TENANT};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use rsa::{pkcs1v15, pss, BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const REDIRECT: &str = "https://pve1.example:8006";

pub fn fixture(name: &str) -> Value {
    // The project's captured Entra documents (tests/fixtures/entra, provenance in SOURCES.txt).
    let path = format!("{}/../fixtures/entra/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

pub fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub struct Http {
    pub status: u16,
    pub body: Vec<u8>,
    pub location: Option<String>,
    pub content_type: String,
}

impl Http {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn agent_with_timeout(t: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(t))
        .build()
        .into()
}

fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(30))
}

fn collect(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Http, ureq::Error> {
    let mut r = r?;
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let location = header("location");
    let content_type = header("content-type").unwrap_or_default();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_vec()?;
    Ok(Http {
        status,
        body,
        location,
        content_type,
    })
}

pub fn try_get(url: &str, timeout: Duration) -> Result<Http, ureq::Error> {
    collect(agent_with_timeout(timeout).get(url).call())
}

pub fn get(url: &str) -> Http {
    collect(agent().get(url).call()).expect(url)
}

pub fn try_post_form(
    url: &str,
    form: &[(&str, &str)],
    timeout: Duration,
) -> Result<Http, ureq::Error> {
    collect(
        agent_with_timeout(timeout)
            .post(url)
            .send_form(form.iter().copied()),
    )
}

pub fn post_form(url: &str, form: &[(&str, &str)]) -> Http {
    try_post_form(url, form, Duration::from_secs(30)).expect(url)
}

pub fn post_json(url: &str, body: &Value, bearer: Option<&str>) -> Http {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    if let Some(t) = bearer {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    collect(req.send(body.to_string())).expect(url)
}

/// (verifier, S256 challenge)
pub fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).unwrap();
    let verifier = b64url(&b);
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The authorize URL pve-entraid would build; `extra` adds or overrides parameters
/// (an empty value removes one).
pub fn auth_url(emu: &Emulator, tenant: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("response_mode", "query"),
        ("scope", "openid profile email"),
        ("state", "state-123"),
        ("nonce", "nonce-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    format!(
        "{}/{tenant}/oauth2/v2.0/authorize?{}",
        emu.url(),
        query(&params)
    )
}

pub fn token_url(emu: &Emulator, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", emu.url())
}

/// A complete code flow with client_secret_post; returns the token endpoint's answer.
pub fn login_as(emu: &Emulator, tenant: &str, hint: Option<&str>) -> Http {
    let (verifier, challenge) = pkce();
    let (code, state) = entra_emulator::authorize(&auth_url(emu, tenant, &challenge, &[]), hint)
        .expect("authorize");
    assert_eq!(state, "state-123");
    post_form(&token_url(emu, tenant), &code_redemption(&code, &verifier))
}

/// The token request redeeming `code` with client_secret_post, as pve-entraid sends it.
pub fn code_redemption<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

/// A successful login's ID token.
pub fn id_token(emu: &Emulator, hint: Option<&str>) -> String {
    let r = login_as(emu, TENANT, hint);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id_token"].as_str().unwrap().to_string()
}

pub fn decode(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let part =
        |s: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (part(parts[0]), part(parts[1]))
}

/// Verifies an RS256 JWT against the emulator's published JWKS for `tenant`.
pub fn verify_with_jwks(emu: &Emulator, tenant: &str, jwt: &str) -> Result<(), String> {
    let (header, _) = decode(jwt);
    let jwks = get(&format!("{}/{tenant}/discovery/v2.0/keys", emu.url())).json();
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("kid not published")?;
    let int = |m: &str| {
        BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(jwk[m].as_str().unwrap()).unwrap())
    };
    let key = RsaPublicKey::new(int("n"), int("e")).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = pkcs1v15::Signature::try_from(
        URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|e| e.to_string())?
            .as_slice(),
    )
    .map_err(|e| e.to_string())?;
    pkcs1v15::VerifyingKey::<Sha256>::new(key)
        .verify(input.as_bytes(), &sig)
        .map_err(|e| e.to_string())
}

pub fn client_key() -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(
        &std::fs::read_to_string(entra_emulator::client_key_path()).unwrap(),
    )
    .unwrap()
}

fn cert_der() -> Vec<u8> {
    let pem = std::fs::read_to_string(entra_emulator::client_cert_path()).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

pub fn cert_x5t_s256() -> String {
    b64url(&Sha256::digest(cert_der()))
}

pub fn cert_x5t_sha1() -> String {
    b64url(&sha1::Sha1::digest(cert_der()))
}

/// Signs a client assertion. `alg` is RS256 or PS256.
pub fn sign_assertion(key: &RsaPrivateKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = match header["alg"].as_str() {
        Some("PS256") => pss::BlindedSigningKey::<Sha256>::new(key.clone())
            .sign_with_rng(&mut rsa::rand_core::OsRng, input.as_bytes())
            .to_vec(),
        _ => pkcs1v15::SigningKey::<Sha256>::new(key.clone())
            .sign(input.as_bytes())
            .to_vec(),
    };
    format!("{input}.{}", b64url(&sig))
}

pub fn assertion_claims(aud: &str) -> Value {
    let t = now();
    json!({"aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID, "jti": format!("jti-{t}-{}", rand_u32()), "nbf": t, "iat": t, "exp": t + 600})
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).unwrap();
    u32::from_le_bytes(b)
}

/// The members every AADSTS error body has (fixtures/token-error-responses.json).
pub fn assert_aadsts(r: &Http, status: u16, error: &str, code: u64) {
    let body = r.json();
    assert_eq!(r.status, status, "{body}");
    let captured = &fixture("token-error-responses.json")[0]["body"];
    assert_eq!(keys_of(&body), keys_of(captured), "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    let trace = body["trace_id"].as_str().unwrap();
    let corr = body["correlation_id"].as_str().unwrap();
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        desc.ends_with(&format!(
            "\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
        )),
        "{desc:?}"
    );
    assert_eq!(ts.len(), "2023-02-20 07:21:29Z".len());
    assert!(body["error_uri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/error?code={code}")));
}
