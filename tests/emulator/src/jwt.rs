//! Compact JWS: building ID tokens (and their tampered variants) and checking client assertions.

use crate::util::{b64url, b64url_decode};
use rsa::signature::Verifier;
use rsa::{pkcs1v15, pss, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn encode_part(v: &Value) -> String {
    b64url(v.to_string().as_bytes())
}

/// `header.payload` ready to sign.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", encode_part(header), encode_part(claims))
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .to_vec()
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
    let msg = parsed.signing_input.as_bytes();
    match parsed.header["alg"].as_str() {
        Some("RS256") => {
            let sig = pkcs1v15::Signature::try_from(parsed.signature.as_slice())
                .map_err(|_| "malformed signature")?;
            pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                .verify(msg, &sig)
                .map_err(|_| "signature does not verify".into())
        }
        Some("PS256") => {
            let sig = pss::Signature::try_from(parsed.signature.as_slice())
                .map_err(|_| "malformed signature")?;
            pss::VerifyingKey::<Sha256>::new(key.clone())
                .verify(msg, &sig)
                .map_err(|_| "signature does not verify".into())
        }
        Some(other) => Err(format!("unsupported alg '{other}'")),
        None => Err("header has no alg".into()),
    }
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
