//! Compact JWS: building ID tokens (and their tampered variants) and checking client assertions.

use crate::util::{b64url, b64url_decode};
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
use serde_json::Value;

/// An RSA public key: big-endian modulus and exponent.
pub type RsaPublicKey = RsaPublicKeyComponents<Vec<u8>>;

pub fn encode_part(v: &Value) -> String {
    b64url(v.to_string().as_bytes())
}

/// `header.payload` ready to sign.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", encode_part(header), encode_part(claims))
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, msg).as_ref().to_vec()
}

pub struct Parsed {
    pub header: Value,
    pub claims: Value,
    pub signing_input: String,
    pub signature: Vec<u8>,
}

pub fn parse(token: &str) -> Result<Parsed, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (expected three dot-separated parts)".into());
    };
    let json = |part: &str, what: &str| -> Result<Value, String> {
        let bytes = b64url_decode(part).ok_or(format!("{what} is not base64url"))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| format!("{what} is not JSON"))?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(format!("{what} is not a JSON object"))
        }
    };
    Ok(Parsed {
        header: json(h, "header")?,
        claims: json(p, "payload")?,
        signing_input: format!("{h}.{p}"),
        signature: b64url_decode(s).ok_or("signature is not base64url")?,
    })
}

/// Verifies an RS256 or PS256 signature (the algorithms Entra accepts for client assertions).
pub fn verify_rsa(parsed: &Parsed, key: &RsaPublicKey) -> Result<(), String> {
    let alg = match parsed.header["alg"].as_str() {
        Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => &RSA_PSS_2048_8192_SHA256,
        Some(other) => return Err(format!("unsupported alg '{other}'")),
        None => return Err("header has no alg".into()),
    };
    key.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature)
        .map_err(|_| "signature does not verify".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
