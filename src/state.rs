//! The OAuth `state` parameter, stateless and cluster-safe: everything the callback needs
//! (realm, nonce, PKCE verifier, redirect URL, expiry, browser binding) is sealed with XChaCha20-Poly1305 under a
//! key file replicated to all nodes, so the callback may land on any node. Single use is enforced
//! per node by a bounded cache of consumed states; issuing a state writes nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Code, Error, Result};
use crate::jwt::{b64url, b64url_decode};
use crate::store::{write_atomic, FileLock};

pub const STATE_LIFETIME_SECS: u64 = 600;
/// At most this many consumed states are remembered per node (oldest expiry evicted first).
pub const MAX_CONSUMED: usize = 10_000;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Binds the ciphertext to its purpose and format version (v2: with the browser binding).
const AAD: &[u8] = b"pve-entraid state v2";
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
    let bytes: [u8; BINDING_LEN] = b64url_decode(text)?.try_into().ok()?;
    // One spelling per value: the last character may carry unused bits that must be zero.
    (b64url(&bytes) == text).then_some(bytes)
}

/// The binding hash the state carries for a binding key.
pub fn binding_hash_of(key: &[u8; BINDING_LEN]) -> [u8; BINDING_LEN] {
    Sha256::digest(key).into()
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

fn key_error(msg: String) -> Error {
    Error::new(Code::StateKey, msg)
}

/// Reads the state key, creating it (0600, exclusive create so no node ever replaces another's
/// key) when missing.
pub fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    match std::fs::read(path) {
        Ok(bytes) => return key_from_bytes(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_error(format!("cannot read state key {}: {e}", path.display()))),
    }
    let mut key = [0u8; KEY_LEN];
    random_bytes(&mut key)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| key_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    // One write of 32 bytes with O_EXCL: pmxcfs has no hard links, so no link-into-place trick.
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(&key).and_then(|_| f.sync_all()).map_err(|e| key_error(format!("cannot write state key {}: {e}", path.display())))?;
            Ok(key)
        }
        // Another process or node won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(path).map_err(|e| key_error(format!("cannot read state key {}: {e}", path.display())))?;
            key_from_bytes(path, &bytes)
        }
        Err(e) => Err(key_error(format!("cannot create state key {}: {e}", path.display()))),
    }
}

fn key_from_bytes(path: &Path, bytes: &[u8]) -> Result<[u8; KEY_LEN]> {
    bytes.try_into().map_err(|_| {
        key_error(format!("state key {} must hold exactly {KEY_LEN} bytes (it has {}); remove it to create a new one", path.display(), bytes.len()))
    })
}

pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::new(Code::InternalError, format!("no randomness: {e}")))
}

/// Random URL-safe text of `n` random bytes.
pub fn random_token(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    random_bytes(&mut b)?;
    Ok(b64url(&b))
}

pub fn seal(key: &[u8; KEY_LEN], s: &LoginState) -> Result<String> {
    let plain = json!({"realm": s.realm, "nonce": s.nonce, "pkce": s.pkce_verifier,
                       "redirect_url": s.redirect_url, "exp": s.expires_at, "bind": b64url(&s.binding_hash)})
    .to_string();
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: AAD })
        .map_err(|_| Error::new(Code::InternalError, "sealing the state failed"))?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(b64url(&out))
}

/// Opens and checks a state: authentic, for `realm`, not expired. Does not consume it.
pub fn open(key: &[u8; KEY_LEN], state: &str, realm: &str, now: u64) -> Result<LoginState> {
    let invalid = || Error::new(Code::StateInvalid, "the login state is not valid (tampered, truncated or from another cluster); start the login again");
    if state.len() > 4096 {
        return Err(invalid());
    }
    let raw = b64url_decode(state).ok_or_else(invalid)?;
    if raw.len() <= NONCE_LEN {
        return Err(invalid());
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let plain = XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: AAD })
        .map_err(|_| invalid())?;
    let v: Value = serde_json::from_slice(&plain).map_err(|_| invalid())?;
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

/// Short fingerprint of a state for the consumed cache (the state itself is not stored).
fn fingerprint(state: &str) -> String {
    Sha256::digest(state.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Memory-only consumed set, for callers without a cache directory.
static CONSUMED_IN_MEMORY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Marks `state` used; `state.replayed` when it was used before on this node.
pub fn consume(cache_dir: Option<&Path>, state: &str, expires_at: u64, now: u64) -> Result<()> {
    let id = fingerprint(state);
    let Some(dir) = cache_dir else {
        let mut set = CONSUMED_IN_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
        return record(&mut set, id, expires_at, now);
    };
    let io = |what: &str, e: std::io::Error| Error::new(Code::CacheIo, format!("consumed-state cache: cannot {what} in {}: {e}", dir.display()));
    let _lock = FileLock::acquire(&dir.join("consumed-states.lock")).map_err(|e| io("lock", e))?;
    let path = dir.join("consumed-states.json");
    // A corrupt or missing file starts empty: states are also bound to their 10-minute expiry.
    let mut set: BTreeMap<String, u64> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    record(&mut set, id, expires_at, now)?;
    let body = serde_json::to_vec(&set).map_err(|_| Error::new(Code::InternalError, "serialising consumed states"))?;
    write_atomic(&path, &body, 0o600).map_err(|e| io("write", e))
}

fn record(set: &mut BTreeMap<String, u64>, id: String, expires_at: u64, now: u64) -> Result<()> {
    set.retain(|_, exp| *exp > now);
    if set.contains_key(&id) {
        return Err(Error::new(Code::StateReplayed, "this login response was already used; start the login again"));
    }
    while set.len() >= MAX_CONSUMED {
        let oldest = set.iter().min_by_key(|(_, exp)| **exp).map(|(k, _)| k.clone());
        match oldest {
            Some(k) => set.remove(&k),
            None => break,
        };
    }
    set.insert(id, expires_at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> std::path::PathBuf {
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
        let mut bytes = b64url_decode(&s).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(open(&key, &b64url(&bytes), "entra", 999).unwrap_err().code, Code::StateInvalid);
        for bad in ["", "abc", "!!!", &s[..s.len() - 4]] {
            assert_eq!(open(&key, bad, "entra", 999).unwrap_err().code, Code::StateInvalid);
        }
        assert_ne!(seal(&key, &sample(1000)).unwrap(), s, "random nonce per state");
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
    fn key_file_is_created_once_with_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmpdir("key");
        let path = dir.join("priv/state.key");
        let k1 = load_or_create_key(&path).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap(), k1);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        assert_eq!(load_or_create_key(&path).unwrap_err().code, Code::StateKey);
    }

    #[test]
    fn replay_is_refused_on_disk_and_in_memory() {
        let dir = tmpdir("consume");
        consume(Some(&dir), "s1", 2000, 1000).unwrap();
        assert_eq!(consume(Some(&dir), "s1", 2000, 1001).unwrap_err().code, Code::StateReplayed);
        consume(Some(&dir), "s2", 2000, 1001).unwrap();
        let text = std::fs::read_to_string(dir.join("consumed-states.json")).unwrap();
        assert!(!text.contains("s1"), "only fingerprints are stored");
        // Expired entries are dropped.
        consume(Some(&dir), "s3", 3000, 2500).unwrap();
        let set: BTreeMap<String, u64> = serde_json::from_str(&std::fs::read_to_string(dir.join("consumed-states.json")).unwrap()).unwrap();
        assert_eq!(set.len(), 1);
        // Corrupt file: starts over rather than failing logins.
        std::fs::write(dir.join("consumed-states.json"), b"garbage").unwrap();
        consume(Some(&dir), "s4", 3000, 2500).unwrap();
        consume(None, "m-unique-state", 2000, 1000).unwrap();
        assert_eq!(consume(None, "m-unique-state", 2000, 1000).unwrap_err().code, Code::StateReplayed);
    }

    #[test]
    fn the_consumed_set_is_bounded() {
        let mut set = BTreeMap::new();
        for i in 0..MAX_CONSUMED + 50 {
            record(&mut set, format!("id{i}"), 10_000 + i as u64, 1).unwrap();
        }
        assert_eq!(set.len(), MAX_CONSUMED);
        assert!(!set.contains_key("id0"), "soonest-expiring evicted first");
    }
}
