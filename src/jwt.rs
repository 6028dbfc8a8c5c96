//! JWS compact serialisation: split and decode a token, verify its RS256 signature, and sign our
//! own client assertions (RS256 or PS256). All RSA, SHA-256 and randomness go through ring, the
//! crypto library rustls already links. Claim rules live in `claims.rs`.

use std::borrow::Cow;
use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
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
    b64url_decode_canonical(s.trim_end_matches('='))
}

/// Only the canonical form: no padding, no non-zero trailing bits, so one byte string has
/// exactly one text form (what single-use checks need).
pub fn b64url_decode_canonical(s: &str) -> Option<Vec<u8>> {
    let mut out = vec![0u8; decoded_len(s.len())?];
    b64url_decode_into(s.as_bytes(), &mut out)?;
    Some(out)
}

/// Bytes that `len` characters of unpadded base64url decode to; `None` for a length no
/// encoding has (4n + 1).
fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        r => Some(len / 4 * 3 + r.saturating_sub(1)),
    }
}

/// The value of each base64url character, 0xFF for any other byte.
const B64URL_VALUES: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Canonical unpadded base64url into `out`, which is exactly [`decoded_len`] long: the same
/// rules as the base64 crate's `URL_SAFE_NO_PAD` decoder (no padding, non-zero trailing bits
/// refused), without its general engine, on the path every ID token takes (three parts).
fn b64url_decode_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    let value = |c: u8| -> Option<u32> {
        let v = B64URL_VALUES[c as usize];
        (v != 0xFF).then_some(v as u32)
    };
    let (quads, rest) = text.split_at(text.len() / 4 * 4);
    let (whole, tail) = out.split_at_mut(quads.len() / 4 * 3);
    // Branch-free inside: a character outside the alphabet sets the high bit of `bad`.
    let mut bad = 0u32;
    for (q, o) in quads.chunks_exact(4).zip(whole.chunks_exact_mut(3)) {
        let v = q.iter().map(|c| B64URL_VALUES[*c as usize] as u32);
        let n = v.fold(0, |n, v| {
            bad |= v;
            n << 6 | v
        });
        o.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    if bad & 0x80 != 0 {
        return None;
    }
    match *rest {
        [] => {}
        [a, b] => {
            let n = value(a)? << 6 | value(b)?;
            // 12 bits for 1 byte: the low 4 must be zero
            if n & 0xF != 0 {
                return None;
            }
            tail[0] = (n >> 4) as u8;
        }
        [a, b, c] => {
            let n = value(a)? << 12 | value(b)? << 6 | value(c)?;
            // 18 bits for 2 bytes: the low 2 must be zero
            if n & 0x3 != 0 {
                return None;
            }
            tail.copy_from_slice(&((n >> 2) as u16).to_be_bytes());
        }
        _ => return None,
    }
    Some(())
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

/// A token split into its parts; nothing in it is trusted until `verify_rs256` succeeded. The
/// payload stays decoded JSON text until then: the caller reads it with [`Jws::payload`] into a
/// typed, borrowing struct (no `serde_json::Value` tree on the validation path).
pub struct Jws<'a> {
    alg: Option<String>,
    kid: Option<String>,
    header: Vec<u8>,
    payload: Vec<u8>,
    signing_input: &'a str,
    signature: [u8; MAX_SIGNATURE_LEN],
    signature_len: usize,
}

/// The longest RSA signature ring verifies (8192-bit keys).
const MAX_SIGNATURE_LEN: usize = 1024;

fn malformed(why: &str) -> Error {
    Error::new(Code::TokenMalformed, format!("ID token is malformed: {why}"))
}

/// A JSON member read leniently: a string, a number, a list of strings, an object (of which only
/// its member names matter to us) or anything else. A member of an unexpected type is not a parse
/// error; the rule that reads it decides (as `Value::as_str` and friends did). A member that is
/// not there is `Absent` (`#[serde(default)]`); `null` is `Other`, i.e. present.
#[derive(Debug, Default)]
pub enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    /// An integer, or a float truncated (numbers beyond i64 saturate).
    Int(i64),
    /// An array: its string elements, and how many elements it had in all.
    List(Vec<Cow<'a, str>>, usize),
    /// An object: whether it has a member named `groups` (`_claim_names`).
    Object { has_groups: bool },
    Other,
}

impl<'a> Member<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Member::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(MemberVisitor(std::marker::PhantomData))
    }
}

/// A string element of a list; other element types are counted but not kept.
struct ListItem<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for ListItem<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(ListItem(match Member::deserialize(d)? {
            Member::Str(s) => Some(s),
            _ => None,
        }))
    }
}

struct MemberVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MemberVisitor<'a> {
    type Value = Member<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Int(v as i64))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Member<'a>, E> {
        Ok(Member::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Member<'a>, A::Error> {
        let (mut strings, mut len) = (Vec::new(), 0);
        while let Some(ListItem(item)) = seq.next_element()? {
            len += 1;
            strings.extend(item);
        }
        Ok(Member::List(strings, len))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Member<'a>, A::Error> {
        let mut has_groups = false;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            has_groups |= name == "groups";
            map.next_value::<IgnoredAny>()?;
        }
        Ok(Member::Object { has_groups })
    }
}

/// The header members we read.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(default, borrow)]
    alg: Member<'a>,
    #[serde(default, borrow)]
    kid: Member<'a>,
}

/// Parses `json` as a JSON object into `T` (a struct of optional members): a struct would also
/// accept a JSON array of its fields, which no JOSE part is.
pub fn from_object<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Option<T> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    // JSON text is UTF-8: checked once here, so the parser need not check each string again.
    serde_json::from_str(std::str::from_utf8(json).ok()?).ok()
}

impl<'a> Jws<'a> {
    pub fn parse(token: &'a str) -> Result<Jws<'a>> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected three dot-separated parts"));
        };
        let header = b64url_decode(h).ok_or_else(|| malformed("header is not base64url"))?;
        let fields: Header = from_object(&header).ok_or_else(|| malformed("header is not a JSON object"))?;
        let owned = |m: Member| m.as_str().map(str::to_string);
        let (alg, kid) = (owned(fields.alg), owned(fields.kid));
        let payload = b64url_decode(p).ok_or_else(|| malformed("payload is not base64url"))?;
        // Decoded in place: an RSA signature is as long as the key's modulus, at most 8192 bits.
        let mut signature = [0u8; MAX_SIGNATURE_LEN];
        let s = s.trim_end_matches('=');
        let signature_len = decoded_len(s.len())
            .filter(|n| *n <= MAX_SIGNATURE_LEN)
            .and_then(|n| b64url_decode_into(s.as_bytes(), &mut signature[..n]).map(|_| n))
            .ok_or_else(|| malformed("signature is not base64url of at most 8192 bits"))?;
        Ok(Jws { alg, kid, header, payload, signing_input: &token[..h.len() + 1 + p.len()], signature, signature_len })
    }

    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// `header.payload` as the token carries them: what the signature covers.
    pub fn signing_input(&self) -> &str {
        self.signing_input
    }

    /// The payload read into `T` (borrowing from the token's decoded bytes); `token.malformed`
    /// if it is not a JSON object of that shape. Unverified until `verify_*` succeeded.
    pub fn payload<'p, T: Deserialize<'p>>(&'p self) -> Result<T> {
        from_object(&self.payload).ok_or_else(|| malformed("payload is not a JSON object of claims"))
    }

    /// Header and payload as JSON trees, for tests and fuzzing (not the validation path).
    pub fn header_json(&self) -> Option<Map<String, Value>> {
        from_object(&self.header)
    }

    pub fn payload_json(&self) -> Option<Map<String, Value>> {
        from_object(&self.payload)
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
        key.verify(alg, self.signing_input.as_bytes(), &self.signature[..self.signature_len])
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
    fn base64url_decoding_agrees_with_the_base64_crate() {
        // Every length up to 3 quads, every character at each of the last positions (the ones
        // with trailing bits), and text that is not base64url at all.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            }).collect();
            let text = b64url(&bytes);
            assert_eq!(b64url_decode_canonical(&text).as_deref(), Some(bytes.as_slice()));
            for pos in text.len().saturating_sub(2)..text.len() {
                for c in (0u8..=127).map(char::from) {
                    let mut t: Vec<char> = text.chars().collect();
                    t[pos] = c;
                    let t: String = t.into_iter().collect();
                    assert_eq!(b64url_decode_canonical(&t), URL_SAFE_NO_PAD.decode(&t).ok(), "{t:?}");
                }
            }
        }
        for t in ["A", "AAAAA", "A=", "AA==", "AB", "ABC", "AB=C", "ÄAAA", "AA AA", "+/+/", "-_-_"] {
            assert_eq!(b64url_decode_canonical(t), URL_SAFE_NO_PAD.decode(t).ok(), "{t:?}");
        }
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
