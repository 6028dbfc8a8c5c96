//! The client credential sent to the token endpoint: a secret (client_secret_post, since Entra
//! secrets contain `~` and other characters that Basic auth handling breaks) or a certificate
//! (private_key_jwt: a PS256 client assertion with `x5t#S256`, aud = token endpoint, 5 minutes).

use std::path::Path;
use std::sync::Arc;

use ring::signature::RsaKeyPair;
use serde_json::json;

use crate::config::{Credential, RealmConfig};
use crate::error::{Code, Error, Result};
use crate::jwt::{b64url, pem_block, rsa_key_from_pem, sha256, sign, SigningAlg};
use crate::state::random_token;
use crate::store::{FileCache, SETTLE_SECS};

pub const ASSERTION_LIFETIME_SECS: u64 = 300;
/// PS256, the algorithm Microsoft recommends for client assertions (RS256 is also accepted).
pub const ASSERTION_ALG: SigningAlg = SigningAlg::Ps256;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn secret_error(msg: String) -> Error {
    Error::new(Code::ConfigSecret, msg)
}

fn read_file(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| secret_error(format!("cannot read the {what} file {}: {}", path.display(), e.kind())))
}

/// The app's stored credential as this process last read it, per file, while the file is
/// unchanged (docs/DESIGN.md "Credential files"): a changed file is read on the next call, a
/// removed one fails it. Only the library's own files are kept this way; a secret a request
/// carries (`client_secret`) is not.
static SECRETS: FileCache<Arc<SecretText>> = FileCache::new(SETTLE_SECS);
/// `x5t#S256` of the certificate file's first certificate.
static THUMBPRINTS: FileCache<Arc<str>> = FileCache::new(SETTLE_SECS);
/// The certificate's private key, parsed (and checked by ring) once.
static KEY_PAIRS: FileCache<Arc<RsaKeyPair>> = FileCache::new(SETTLE_SECS);

/// A client secret read from its file: overwritten when the last holder drops it, and never
/// printed by `Debug`.
pub struct SecretText(String);

impl Drop for SecretText {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8; the volatile writes are not optimised away.
        for b in unsafe { self.0.as_bytes_mut() } {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

fn secret_from_file(path: &Path) -> Result<Arc<SecretText>> {
    // Files written by editors or `echo` end with a newline that is not part of the secret.
    let mut s = read_file(path, "client secret")?;
    s.truncate(s.trim_end_matches(['\n', '\r']).len());
    if s.is_empty() {
        return Err(secret_error(format!("the client secret file {} is empty", path.display())));
    }
    Ok(Arc::new(SecretText(s)))
}

/// Form parameters that authenticate the client at `token_endpoint`.
pub fn form_params(cfg: &RealmConfig, token_endpoint: &str, now: u64) -> Result<Vec<(&'static str, String)>> {
    match &cfg.credential {
        Credential::Secret(s) => secret_param(s.clone()),
        Credential::SecretFile(path) => secret_param(SECRETS.get(Path::new(path), secret_from_file)?.0.clone()),
        Credential::Certificate { cert_file, key_file } => {
            let assertion = client_assertion(cfg, cert_file, key_file, token_endpoint, now)?;
            Ok(vec![("client_assertion_type", ASSERTION_TYPE.to_string()), ("client_assertion", assertion)])
        }
    }
}

fn secret_param(s: String) -> Result<Vec<(&'static str, String)>> {
    if s.is_empty() {
        return Err(secret_error("the client secret is empty".into()));
    }
    Ok(vec![("client_secret", s)])
}

/// DER of the first certificate in a PEM file.
fn first_certificate_der(pem: &str, path: &str) -> Result<Vec<u8>> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(secret_error(format!("{path} holds no PEM certificate")));
    }
    pem_block(pem, "CERTIFICATE").ok_or_else(|| secret_error(format!("{path}: the PEM certificate is unterminated or not valid base64")))
}

fn private_key(pem: &str, path: &str) -> Result<RsaKeyPair> {
    rsa_key_from_pem(pem).ok_or_else(|| secret_error(format!("{path} holds no unencrypted RSA private key (PKCS#8 or PKCS#1 PEM)")))
}

/// The signed JWT Entra accepts instead of a secret.
pub fn client_assertion(cfg: &RealmConfig, cert_file: &str, key_file: &str, audience: &str, now: u64) -> Result<String> {
    let thumbprint = THUMBPRINTS.get(Path::new(cert_file), |p| {
        let der = first_certificate_der(&read_file(p, "client certificate")?, cert_file)?;
        Ok(Arc::from(b64url(&sha256(&der))))
    })?;
    let key = KEY_PAIRS.get(Path::new(key_file), |p| Ok(Arc::new(private_key(&read_file(p, "client key")?, key_file)?)))?;
    let header = json!({"alg": ASSERTION_ALG.name(), "typ": "JWT", "x5t#S256": &*thumbprint});
    let claims = json!({
        "aud": audience, "iss": cfg.client_id, "sub": cfg.client_id,
        "jti": random_token(16)?, "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME_SECS,
    });
    sign(&key, ASSERTION_ALG, &header, &claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Jws;

    fn cfg(extra: serde_json::Value) -> RealmConfig {
        let mut v = json!({"tenant-id": "11111111-2222-3333-4444-555555555555", "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        RealmConfig::from_json(&v).unwrap()
    }

    #[test]
    fn secret_file_loses_its_newline_and_errors_name_no_secret() {
        let dir = std::env::temp_dir().join(format!("pve-entraid-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.secret");
        std::fs::write(&f, "s3cr~et.Value_with~tilde\n").unwrap();
        let c = cfg(json!({"client_secret_file": f.to_str().unwrap()}));
        assert_eq!(form_params(&c, "https://t", 0).unwrap(), vec![("client_secret", "s3cr~et.Value_with~tilde".to_string())]);
        std::fs::write(&f, "\n").unwrap();
        assert_eq!(form_params(&c, "https://t", 0).unwrap_err().code, Code::ConfigSecret);
        let missing = cfg(json!({"client_secret_file": "/nonexistent/x.secret"}));
        let e = form_params(&missing, "https://t", 0).unwrap_err();
        assert_eq!(e.code, Code::ConfigSecret);
        assert!(e.message.contains("/nonexistent/x.secret"));
    }

    #[test]
    fn a_changed_or_removed_credential_file_takes_effect_on_the_next_call() {
        let dir = std::env::temp_dir().join(format!("pve-entraid-cred-change-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.secret");
        std::fs::write(&f, "first-secret\n").unwrap();
        let c = cfg(json!({"client_secret_file": f.to_str().unwrap()}));
        let secret = |c: &RealmConfig| form_params(c, "https://t", 0).map(|p| p[0].1.clone());
        assert_eq!(secret(&c).unwrap(), "first-secret");
        assert_eq!(secret(&c).unwrap(), "first-secret");
        // a new secret of the same length, written in place (past the file-time tick)
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, "other-secret\n").unwrap();
        assert_eq!(secret(&c).unwrap(), "other-secret");
        // removed (the realm's credential deleted): an error, never the secret it had
        std::fs::remove_file(&f).unwrap();
        let e = secret(&c).unwrap_err();
        assert_eq!(e.code, Code::ConfigSecret);
        assert!(!e.message.contains("other-secret") && !format!("{e:?}").contains("other-secret"));
        assert_eq!(format!("{:?}", secret_from_file(&dir.join("none")).err().map(|e| e.code)), "Some(ConfigSecret)");
        std::fs::write(&f, "third-secret").unwrap();
        assert_eq!(secret(&c).unwrap(), "third-secret");
        assert!(!format!("{:?}", SECRETS.get(&f, secret_from_file).unwrap()).contains("third"), "Debug shows no secret");

        // a new certificate key: the next assertion is signed with it
        let (crt, key) = (dir.join("c.crt"), dir.join("c.key"));
        std::fs::write(&crt, "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n").unwrap();
        std::fs::write(&key, crate::claims::tests::TEST_KEY_PEM).unwrap();
        let c = cfg(json!({"client_cert_file": crt, "client_key_file": key}));
        let assertion = |c: &RealmConfig| Jws::parse(&form_params(c, "https://t", 0).unwrap()[1].1).unwrap().header_json().unwrap()["x5t#S256"].clone();
        assert_eq!(assertion(&c), json!(b64url(&sha256(&[0u8, 1, 2, 3]))));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&crt, "-----BEGIN CERTIFICATE-----\nBAUGBw==\n-----END CERTIFICATE-----\n").unwrap();
        assert_eq!(assertion(&c), json!(b64url(&sha256(&[4u8, 5, 6, 7]))), "new certificate, new thumbprint");
        std::fs::write(&key, "not a key").unwrap();
        assert_eq!(form_params(&c, "https://t", 0).unwrap_err().code, Code::ConfigSecret, "a broken key is not replaced by the old one");
        std::fs::remove_file(&key).unwrap();
        assert_eq!(form_params(&c, "https://t", 0).unwrap_err().code, Code::ConfigSecret);
    }

    #[test]
    fn assertion_has_the_claims_entra_checks() {
        let dir = std::env::temp_dir().join(format!("pve-entraid-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.key"), crate::claims::tests::TEST_KEY_PEM).unwrap();
        // Any DER works for the thumbprint; a real certificate is used by the emulator tests.
        std::fs::write(dir.join("c.crt"), "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n").unwrap();
        let c = cfg(json!({"client_cert_file": dir.join("c.crt"), "client_key_file": dir.join("c.key")}));
        let params = form_params(&c, "https://login/t/oauth2/v2.0/token", 1000).unwrap();
        assert_eq!(params[0].1, ASSERTION_TYPE);
        let jws = Jws::parse(&params[1].1).unwrap();
        let public = crate::jwt::public_key(crate::claims::tests::test_key());
        assert_eq!(jws.alg(), Some("PS256"));
        jws.verify_ps256(&public).unwrap();
        assert!(jws.verify_rs256(&public).is_err(), "PSS, not PKCS#1 v1.5");
        let (header, payload) = (jws.header_json().unwrap(), jws.payload_json().unwrap());
        assert_eq!(header["x5t#S256"], json!(b64url(&sha256(&[0u8, 1, 2, 3]))));
        assert_eq!(payload["aud"], "https://login/t/oauth2/v2.0/token");
        assert_eq!(payload["iss"], "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
        assert_eq!(payload["sub"], payload["iss"]);
        assert_eq!(payload["exp"], 1300);
        assert!(payload["jti"].as_str().unwrap().len() >= 20);
        std::fs::write(dir.join("c.key"), "not a key").unwrap();
        assert_eq!(form_params(&c, "https://t", 0).unwrap_err().code, Code::ConfigSecret);
    }
}
