//! Key material: the ID-token signing keys (with rotation) and the client certificate credential.
//! All of it is checked in under keys/ and compiled in, so the binary runs from any directory.

use crate::util::{b64_decode, b64url};
use rsa::pkcs1v15;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const SIGNING_PEMS: [&str; 3] = [
    include_str!("../keys/signing-1.key"),
    include_str!("../keys/signing-2.key"),
    include_str!("../keys/signing-3.key"),
];
const CLIENT_KEY_PEM: &str = include_str!("../keys/client.key");
const CLIENT_CERT_PEM: &str = include_str!("../keys/client.crt");

pub struct SigningKey {
    pub kid: String,
    signer: pkcs1v15::SigningKey<Sha256>,
    pub public: RsaPublicKey,
    /// SubjectPublicKeyInfo PEM: the bytes an "HS256 keyed with the public key" attack uses.
    pub public_pem: String,
}

impl SigningKey {
    fn load(pem: &str) -> Self {
        let private = RsaPrivateKey::from_pkcs8_pem(pem).expect("keys/signing-*.key is PKCS#8 RSA");
        let public = private.to_public_key();
        let der = public.to_public_key_der().expect("encode SPKI");
        // Entra's kid equals x5t, the base64url SHA-1 of the certificate; we have no certificate
        // for signing keys, so hash the SPKI instead: same length and alphabet.
        let kid = b64url(&Sha1::digest(der.as_bytes()));
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("encode SPKI PEM");
        SigningKey {
            kid,
            signer: pkcs1v15::SigningKey::new(private),
            public,
            public_pem,
        }
    }

    pub fn sign_rs256(&self, msg: &[u8]) -> Vec<u8> {
        self.signer.sign(msg).to_vec()
    }

    /// The key as Entra publishes it: no `alg`, no `x5c` (Entra sends x5c; clients must not need it).
    pub fn jwk(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(&self.public.n().to_bytes_be()),
            "e": b64url(&self.public.e().to_bytes_be()),
            "cloud_instance_name": "microsoftonline.com",
            "issuer": issuer,
        })
    }
}

/// The three signing keys; which are published and which signs depends on the rotation count.
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    pub fn load() -> Self {
        KeySet {
            keys: SIGNING_PEMS.iter().map(|p| SigningKey::load(p)).collect(),
        }
    }

    /// Published keys after `rotations` rotations: a window of two that moves by one each time.
    pub fn published(&self, rotations: usize) -> [&SigningKey; 2] {
        let n = self.keys.len();
        [&self.keys[rotations % n], &self.keys[(rotations + 1) % n]]
    }

    /// The oldest published key signs at start; after a rotation the newly published one does.
    pub fn signing(&self, rotations: usize) -> &SigningKey {
        let [oldest, newest] = self.published(rotations);
        if rotations == 0 {
            oldest
        } else {
            newest
        }
    }

    /// The key not published after `rotations` rotations (tokens signed with it carry an unknown kid).
    pub fn held_back(&self, rotations: usize) -> &SigningKey {
        &self.keys[(rotations + 2) % self.keys.len()]
    }
}

/// The registered certificate credential of an app (`keys/client.crt`).
pub struct ClientCredential {
    pub public: RsaPublicKey,
    /// base64url SHA-1 of the certificate DER (`x5t`).
    pub x5t: String,
    /// base64url SHA-256 of the certificate DER (`x5t#S256`).
    pub x5t_s256: String,
}

impl ClientCredential {
    pub fn load() -> Self {
        let private =
            RsaPrivateKey::from_pkcs8_pem(CLIENT_KEY_PEM).expect("keys/client.key is PKCS#8 RSA");
        let der =
            pem_body(CLIENT_CERT_PEM, "CERTIFICATE").expect("keys/client.crt is a PEM certificate");
        ClientCredential {
            public: private.to_public_key(),
            x5t: b64url(&Sha1::digest(&der)),
            x5t_s256: b64url(&Sha256::digest(&der)),
        }
    }
}

/// DER bytes of the first PEM block with this label.
pub fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    b64_decode(&b64)
}
