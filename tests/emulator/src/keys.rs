//! Key material: the ID-token signing keys (with rotation) and the client certificate credential.
//! All of it is checked in under keys/ and compiled in, so the binary runs from any directory.

use crate::jwt::RsaPublicKey;
use crate::util::{b64_decode, b64url, rng, sha1, sha256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256};

const SIGNING_PEMS: [&str; 3] = [
    include_str!("../keys/signing-1.key"),
    include_str!("../keys/signing-2.key"),
    include_str!("../keys/signing-3.key"),
];
const CLIENT_KEY_PEM: &str = include_str!("../keys/client.key");
const CLIENT_CERT_PEM: &str = include_str!("../keys/client.crt");

pub struct SigningKey {
    pub kid: String,
    signer: RsaKeyPair,
    pub public: RsaPublicKey,
    /// SubjectPublicKeyInfo PEM: the bytes an "HS256 keyed with the public key" attack uses.
    pub public_pem: String,
}

impl SigningKey {
    /// The key of the emulated federated issuer (`/_gh`): the bundled client key, none of Entra's.
    pub fn federated() -> Self {
        SigningKey::load(CLIENT_KEY_PEM)
    }

    fn load(pem: &str) -> Self {
        let signer = key_pair(pem);
        let der = spki_der(&signer);
        // Entra's kid equals x5t, the base64url SHA-1 of the certificate; we have no certificate
        // for signing keys, so hash the SPKI instead: same length and alphabet.
        let kid = b64url(&sha1(&der));
        SigningKey {
            kid,
            public: public_key(&signer),
            public_pem: pem_encode("PUBLIC KEY", &der),
            signer,
        }
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 with ring (what Entra uses for ID tokens).
    pub fn sign_rs256(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.signer.public().modulus_len()];
        self.signer
            .sign(&RSA_PKCS1_SHA256, rng(), msg, &mut sig)
            .expect("RSA signing");
        sig
    }

    /// The key as Entra publishes it: no `alg`, no `x5c` (Entra sends x5c; clients must not need it).
    pub fn jwk(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(&self.public.n),
            "e": b64url(&self.public.e),
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
        let der =
            pem_body(CLIENT_CERT_PEM, "CERTIFICATE").expect("keys/client.crt is a PEM certificate");
        ClientCredential {
            public: public_key(&key_pair(CLIENT_KEY_PEM)),
            x5t: b64url(&sha1(&der)),
            x5t_s256: b64url(&sha256(&der)),
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

fn key_pair(pem: &str) -> RsaKeyPair {
    let der = pem_body(pem, "PRIVATE KEY").expect("keys/*.key is a PKCS#8 PEM");
    RsaKeyPair::from_pkcs8(&der).expect("keys/*.key is PKCS#8 RSA")
}

fn public_key(key: &RsaKeyPair) -> RsaPublicKey {
    RsaPublicKeyComponents::from(key.public())
}

/// DER tag-length-value.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// SubjectPublicKeyInfo of an RSA key: rsaEncryption with NULL parameters, then the PKCS#1
/// RSAPublicKey (which ring gives as DER) in a BIT STRING.
pub fn spki_der(key: &RsaKeyPair) -> Vec<u8> {
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(key.public().as_ref());
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// PEM with 64-character lines and LF endings.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
