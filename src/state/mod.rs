//! The OAuth `state` parameter, stateless and cluster-safe: everything the callback needs
//! (realm, nonce, PKCE verifier, redirect URL, expiry, browser binding) is sealed with
//! ChaCha20-Poly1305 (ring) under a key file replicated to all nodes (`key`), so the callback may
//! land on any node. Single use is enforced per node by the consumed-state store (`replay`: one
//! empty file per used state, see [`consume`]); issuing a state writes nothing.

mod key;
mod replay;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use serde_json::{json, Value};

use crate::error::{Code, Error, Result};
pub use crate::jwt::random_bytes;
use crate::jwt::{b64url, b64url_decode_canonical, sha256};
pub use key::load_or_create_key;
use key::KEY_LEN;
pub use replay::{consume, refuse_token, token_fingerprint, token_was_refused};

pub const STATE_LIFETIME_SECS: u64 = 600;
/// The text every sealed state starts with, before the base64url of nonce ‖ ciphertext ‖ tag.
/// The web UI tells our callbacks from those of PVE's OpenID realms by it (theirs are JSON text,
/// `{"csrf_token":…,"realm":…}`), also in a tab that holds no binding for the state:
/// www/pve-entraid.js `statePrefix` is checked against it (`the_web_ui_knows_the_state_prefix`).
pub const STATE_PREFIX: &str = "entraid.";
/// Binds the ciphertext to its purpose and format version (v2: with the browser binding; v3: ring's
/// ChaCha20-Poly1305 with a 96-bit nonce instead of XChaCha20-Poly1305 with 192 bits). A state
/// sealed by an older version is refused as `state.invalid`: the user starts the login again.
const AAD: &[u8] = b"pve-entraid state v3";
/// The browser binding: a secret of this many random bytes stays in the browser that started the
/// login; only its SHA-256 travels (sealed) through Entra and back.
pub const BINDING_LEN: usize = 32;

/// What a state carries from auth_url to login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginState {
    pub realm: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_url: String,
    pub expires_at: u64,
    /// SHA-256 of the browser's binding key (RFC 9700 §4.7.1: the state is bound to the user agent).
    pub binding_hash: [u8; BINDING_LEN],
}

/// Reads a binding value: exactly 32 bytes as canonical base64url without padding (43 chars).
pub fn parse_binding(text: &str) -> Option<[u8; BINDING_LEN]> {
    if text.len() != 43 {
        return None;
    }
    let bytes: [u8; BINDING_LEN] = b64url_decode_canonical(text)?.try_into().ok()?;
    // One spelling per value: the last character may carry unused bits that must be zero.
    (b64url(&bytes) == text).then_some(bytes)
}

/// The binding hash the state carries for a binding key.
pub fn binding_hash_of(key: &[u8; BINDING_LEN]) -> [u8; BINDING_LEN] {
    sha256(key)
}

/// Checks the browser's binding key against the sealed hash, in constant time.
pub fn verify_binding(s: &LoginState, key: &[u8; BINDING_LEN]) -> Result<()> {
    let hash = binding_hash_of(key);
    let diff = hash.iter().zip(s.binding_hash.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if std::hint::black_box(diff) != 0 {
        return Err(Error::new(
            Code::StateBindingMismatch,
            "the login was not started in this browser (or its session storage was cleared); start the login again",
        ));
    }
    Ok(())
}

/// Random URL-safe text of `n` random bytes.
pub fn random_token(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    random_bytes(&mut b)?;
    Ok(b64url(&b))
}

/// The AEAD key. The nonce of every seal is 96 fresh random bits: a nonce repeats under one key
/// with probability about n²/2⁹⁷ after n seals, so even 2³² states (far more than a realm issues
/// while its key lives, each state lives 10 minutes) keep it below 2⁻³²; no counter needs to be
/// shared between processes and nodes.
fn aead_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    let key = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| Error::new(Code::InternalError, "the state key does not fit the AEAD"))?;
    Ok(LessSafeKey::new(key))
}

pub fn seal(key: &[u8; KEY_LEN], s: &LoginState) -> Result<String> {
    let plain = json!({"realm": s.realm, "nonce": s.nonce, "pkce": s.pkce_verifier,
                       "redirect_url": s.redirect_url, "exp": s.expires_at, "bind": b64url(&s.binding_hash)})
    .to_string();
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    // nonce ‖ ciphertext ‖ tag
    let mut out = nonce.to_vec();
    out.extend_from_slice(plain.as_bytes());
    let tag = aead_key(key)?
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut out[NONCE_LEN..])
        .map_err(|_| Error::new(Code::InternalError, "sealing the state failed"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(format!("{STATE_PREFIX}{}", b64url(&out)))
}

/// The sealed bytes of a state text: the prefix, then canonical base64url only, so that one state
/// has one text form and single use cannot be dodged by re-encoding it (a trailing `=`, other
/// trailing bits).
fn sealed_bytes(state: &str) -> Option<Vec<u8>> {
    b64url_decode_canonical(state.strip_prefix(STATE_PREFIX)?)
}

/// Opens and checks a state: authentic, for `realm`, not expired. Does not consume it.
pub fn open(key: &[u8; KEY_LEN], state: &str, realm: &str, now: u64) -> Result<LoginState> {
    let invalid = || Error::new(Code::StateInvalid, "the login state is not valid (tampered, truncated or from another cluster); start the login again");
    if state.len() > 4096 {
        return Err(invalid());
    }
    let mut raw = sealed_bytes(state).ok_or_else(invalid)?;
    if raw.len() <= NONCE_LEN {
        return Err(invalid());
    }
    let (nonce, sealed) = raw.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid())?;
    let plain = aead_key(key)?.open_in_place(nonce, Aad::from(AAD), sealed).map_err(|_| invalid())?;
    let v: Value = serde_json::from_slice(plain).map_err(|_| invalid())?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(invalid);
    let s = LoginState {
        realm: text("realm")?,
        nonce: text("nonce")?,
        pkce_verifier: text("pkce")?,
        redirect_url: text("redirect_url")?,
        expires_at: v.get("exp").and_then(Value::as_u64).ok_or_else(invalid)?,
        binding_hash: v.get("bind").and_then(Value::as_str).and_then(parse_binding).ok_or_else(invalid)?,
    };
    if s.realm != realm {
        return Err(Error::new(Code::StateRealmMismatch, "the login was started for another realm"));
    }
    if now >= s.expires_at {
        return Err(Error::new(Code::StateExpired, "the login took longer than 10 minutes; start it again"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test of the state modules.
    pub(super) fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pve-entraid-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample(exp: u64) -> LoginState {
        LoginState { realm: "entra".into(), nonce: "n".into(), pkce_verifier: "v".into(), redirect_url: "https://pve:8006".into(), expires_at: exp, binding_hash: binding_hash_of(&[5u8; 32]) }
    }

    #[test]
    fn seal_open_round_trip_and_checks() {
        let key = [7u8; 32];
        let s = seal(&key, &sample(1000)).unwrap();
        assert_eq!(open(&key, &s, "entra", 999).unwrap(), sample(1000));
        assert_eq!(open(&key, &s, "entra", 1000).unwrap_err().code, Code::StateExpired);
        assert_eq!(open(&key, &s, "other", 999).unwrap_err().code, Code::StateRealmMismatch);
        assert_eq!(open(&[8u8; 32], &s, "entra", 999).unwrap_err().code, Code::StateInvalid);
        let mut bytes = sealed_bytes(&s).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(open(&key, &format!("{STATE_PREFIX}{}", b64url(&bytes)), "entra", 999).unwrap_err().code, Code::StateInvalid);
        // without the prefix, with it twice, with another one
        let bare = &s[STATE_PREFIX.len()..];
        for bad in ["", "abc", "!!!", &s[..s.len() - 4], bare, &format!("{STATE_PREFIX}{s}"), &format!("{{\"realm\":\"entra\"}}.{bare}")] {
            assert_eq!(open(&key, bad, "entra", 999).unwrap_err().code, Code::StateInvalid);
        }
        assert_ne!(seal(&key, &sample(1000)).unwrap(), s, "random nonce per state");
    }

    #[test]
    fn a_state_sealed_before_the_ring_switch_is_refused_cleanly() {
        // sample(1000) under key [7; 32], sealed by 0.1 with XChaCha20-Poly1305 (24-byte nonce,
        // AAD "pve-entraid state v2"): states in flight across the upgrade start the login again.
        let old = "fENSkOqVO2RAsLzLJ-nWmPGUY3NB6AxiTdlg_dQYdipbkIUqfQovJ7bsy9scLQaCPK9siqJE0A8OjuobftbLrXcVCqWaAsqLKS09immqixZN9QrJiwAk-ONzFvI4zmcoyKg8LjUu0e5VOcTv7yhzbOHLYgQTu5s1T_1cmju-FqyldbpXEt7d5e5m_d3oNWwJ80PPF_tnfPhxpv_ahBVmTjoQF8qV9FFUaM7U52r2_o0I7Q";
        assert_eq!(open(&[7u8; 32], old, "entra", 999).unwrap_err().code, Code::StateInvalid);
    }

    #[test]
    fn binding_key_must_match_the_sealed_hash() {
        let key = [7u8; 32];
        let s = open(&key, &seal(&key, &sample(1000)).unwrap(), "entra", 999).unwrap();
        verify_binding(&s, &[5u8; 32]).unwrap();
        let mut other = [5u8; 32];
        other[31] ^= 1;
        assert_eq!(verify_binding(&s, &other).unwrap_err().code, Code::StateBindingMismatch);
        // The hash itself is no key: sending what auth_url got back does not pass.
        assert_eq!(verify_binding(&s, &binding_hash_of(&[5u8; 32])).unwrap_err().code, Code::StateBindingMismatch);
    }

    #[test]
    fn binding_values_are_canonical_base64url_of_32_bytes() {
        let text = b64url(&[0xffu8; 32]);
        assert_eq!(text.len(), 43);
        assert_eq!(parse_binding(&text), Some([0xffu8; 32]));
        // last character with non-zero unused bits, padding, wrong length, other alphabet
        let non_canonical = format!("{}_", &text[..42]);
        for bad in [non_canonical.as_str(), &format!("{text}="), &text[..42], "", &b64url(&[1u8; 31]), &b64url(&[1u8; 33]), &text.replace('_', "/")] {
            assert_eq!(parse_binding(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_state_has_one_text_form() {
        let key = [7u8; 32];
        let s = seal(&key, &sample(1000)).unwrap();
        assert!(open(&key, &s, "entra", 999).is_ok());
        for variant in [format!("{s}="), format!("{s}=="), format!("{s}%3D"), s.replacen(STATE_PREFIX, &STATE_PREFIX.to_uppercase(), 1)] {
            assert_ne!(variant, s);
            assert_eq!(open(&key, &variant, "entra", 999).unwrap_err().code, Code::StateInvalid, "{variant}");
        }
        assert_eq!(replay::fingerprint(&s), replay::fingerprint(&format!("{STATE_PREFIX}{}", b64url(&sealed_bytes(&s).unwrap()))));
    }

    /// Every state starts with the prefix, URL-safe as it is; the web UI holds the same text.
    #[test]
    fn the_web_ui_knows_the_state_prefix() {
        let s = seal(&[7u8; 32], &sample(1000)).unwrap();
        assert!(s.starts_with(STATE_PREFIX), "{s}");
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{s}");
        let ui = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/www/pve-entraid.js")).unwrap();
        let line = format!("    statePrefix: '{STATE_PREFIX}',\n");
        assert_eq!(ui.matches(&line).count(), 1, "www/pve-entraid.js must define {line:?} once");
    }

}
