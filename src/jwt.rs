//! JWS compact serialisation: split and decode a token, verify its RS256 signature, and sign our
//! own client assertions (RS256 or PS256). All RSA, SHA-256 and randomness go through ring, the
//! crypto library rustls already links. Claim rules live in `claims.rs`.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};

/// An RSA public key as published in a JWKS: big-endian modulus and exponent, parsed once when
/// the JWKS is read and handed to ring as they are.
pub type RsaPublicKey = RsaPublicKeyComponents<Vec<u8>>;

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Lenient for JOSE parts (a stray `=` pad is tolerated, as other JOSE libraries do).
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Only the canonical form: no padding, no non-zero trailing bits, so one byte string has
/// exactly one text form (what single-use checks need).
pub fn b64url_decode_canonical(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// SHA-256 (ring).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The operating system's random source (ring's, opened once per process).
fn rng() -> &'static SystemRandom {
    static RNG: OnceLock<SystemRandom> = OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    rng().fill(buf).map_err(|_| Error::new(Code::InternalError, "no randomness from the operating system"))
}

/// A token split into its parts; nothing in it is trusted until `verify_rs256` succeeded.
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn malformed(why: &str) -> Error {
    Error::new(Code::TokenMalformed, format!("ID token is malformed: {why}"))
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>> {
    let bytes = b64url_decode(part).ok_or_else(|| malformed(&format!("{what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(malformed(&format!("{what} is not a JSON object"))),
    }
}

impl<'a> Jws<'a> {
    pub fn parse(token: &'a str) -> Result<Jws<'a>> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected three dot-separated parts"));
        };
        let header = decode_object(h, "header")?;
        let payload = decode_object(p, "payload")?;
        let signature = b64url_decode(s).ok_or_else(|| malformed("signature is not base64url"))?;
        Ok(Jws { header, payload, signing_input: &token[..h.len() + 1 + p.len()], signature })
    }

    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `header.payload`, keys of 2048 to 8192 bits, straight
    /// from the key's components (no conversion per call).
    pub fn verify_rs256(&self, key: &RsaPublicKey) -> Result<()> {
        self.verify(key, &ring::signature::RSA_PKCS1_2048_8192_SHA256)
    }

    /// RSASSA-PSS with SHA-256 (PS256), as Entra accepts for client assertions.
    pub fn verify_ps256(&self, key: &RsaPublicKey) -> Result<()> {
        self.verify(key, &ring::signature::RSA_PSS_2048_8192_SHA256)
    }

    fn verify(&self, key: &RsaPublicKey, alg: &ring::signature::RsaParameters) -> Result<()> {
        key.verify(alg, self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Error::new(Code::TokenBadSignature, "ID token signature does not verify"))
    }
}

/// The RSA signature algorithms we sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlg {
    Rs256,
    Ps256,
}

impl SigningAlg {
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Ps256 => "PS256",
        }
    }
}

/// An RSA private key from PEM: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`), unencrypted.
pub fn rsa_key_from_pem(pem: &str) -> Option<RsaKeyPair> {
    if let Some(der) = pem_block(pem, "PRIVATE KEY") {
        return RsaKeyPair::from_pkcs8(&der).ok();
    }
    RsaKeyPair::from_der(&pem_block(pem, "RSA PRIVATE KEY")?).ok()
}

/// DER of the first PEM block with this label; `None` if absent or not base64.
pub fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let end = pem[start..].find(&format!("-----END {label}-----"))?;
    let b64: String = pem[start..start + end].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok()
}

/// The public half of a key pair, in the form a JWKS publishes.
pub fn public_key(key: &RsaKeyPair) -> RsaPublicKey {
    RsaPublicKeyComponents::from(key.public())
}

/// Builds a JWS from a header (whose `alg` must match) and claims: client assertions, and
/// tokens in tests.
pub fn sign(key: &RsaKeyPair, alg: SigningAlg, header: &Value, claims: &Value) -> Result<String> {
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let padding: &dyn ring::signature::RsaEncoding = match alg {
        SigningAlg::Rs256 => &ring::signature::RSA_PKCS1_SHA256,
        SigningAlg::Ps256 => &ring::signature::RSA_PSS_SHA256,
    };
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(padding, rng(), input.as_bytes(), &mut sig)
        .map_err(|_| Error::new(Code::InternalError, "RSA signing failed"))?;
    Ok(format!("{input}.{}", b64url(&sig)))
}

/// RS256 signing for tests, fuzzing and the bench (panics on a key ring refuses).
pub fn sign_rs256(key: &RsaKeyPair, header: &Value, claims: &Value) -> String {
    sign(key, SigningAlg::Rs256, header, claims).expect("RS256 signing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_base64url_has_one_form() {
        assert_eq!(b64url_decode_canonical("AQI").unwrap(), vec![1, 2]);
        assert!(b64url_decode_canonical("AQI=").is_none(), "padding is not canonical");
        assert!(b64url_decode_canonical("AQJ").is_none(), "non-zero trailing bits are not canonical");
        assert_eq!(b64url_decode("AQI=").unwrap(), vec![1, 2]);
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
