//! The OAuth `state` parameter, stateless and cluster-safe: everything the callback needs
//! (realm, nonce, PKCE verifier, redirect URL, expiry, browser binding) is sealed with ChaCha20-Poly1305 (ring) under a
//! key file replicated to all nodes, so the callback may land on any node. Single use is enforced
//! per node by the consumed-state store (one empty file per used state, see [`consume`]);
//! issuing a state writes nothing.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use serde_json::{json, Value};

use crate::error::{Code, Error, Result};
pub use crate::jwt::random_bytes;
use crate::jwt::{b64url, b64url_decode_canonical, sha256};

pub const STATE_LIFETIME_SECS: u64 = 600;
/// Consumed states are filed by expiry minute: `<cache_dir>/consumed/<exp / 60>/<fingerprint>`.
const CONSUMED_DIR: &str = "consumed";
const BUCKET_SECS: u64 = 60;
/// A bucket is removed only this long after its last state expired, so a login that checked the
/// expiry just before cannot be creating its file there any more.
const SWEEP_MARGIN_SECS: u64 = 60;
/// At most this many expired files are removed per login: bounded work, and still faster than
/// logins can add them.
const SWEEP_BATCH: usize = 32;
/// A state key shorter than 32 bytes is being written by another process or node (create, then
/// write): readers wait this long for it before giving up.
const KEY_WAIT: Duration = Duration::from_millis(500);
const KEY_POLL: Duration = Duration::from_millis(20);
const KEY_LEN: usize = 32;
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

fn key_error(msg: String) -> Error {
    Error::new(Code::StateKey, msg)
}

/// Reads the state key, creating it (0600, exclusive create so no node ever replaces another's
/// key) when missing.
pub fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    match read_key(path) {
        Ok(key) => return Ok(key),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(key_read_error(path, e)),
    }
    let mut key = [0u8; KEY_LEN];
    random_bytes(&mut key)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| key_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    // One write of 32 bytes with O_EXCL: pmxcfs has no hard links, so no link-into-place trick;
    // readers that see the file before the write wait for it (see `read_key`).
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(&key).and_then(|_| f.sync_all()).map_err(|e| key_error(format!("cannot write state key {}: {e}", path.display())))?;
            Ok(key)
        }
        // Another process or node won the race: use its key.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_key(path).map_err(|e| key_read_error(path, e)),
        Err(e) => Err(key_error(format!("cannot create state key {}: {e}", path.display()))),
    }
}

/// The key file's 32 bytes. A shorter file is still being written (create, then write): wait
/// briefly for the rest. `InvalidData` when it stays short or is longer.
fn read_key(path: &Path) -> std::io::Result<[u8; KEY_LEN]> {
    let deadline = std::time::Instant::now() + KEY_WAIT;
    loop {
        let bytes = std::fs::read(path)?;
        if let Ok(key) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
        if bytes.len() > KEY_LEN || std::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(ErrorKind::InvalidData, format!("it holds {} bytes, not {KEY_LEN}", bytes.len())));
        }
        std::thread::sleep(KEY_POLL);
    }
}

/// The message names the file and what is wrong with it; what to do about it is for the
/// administrator's tools (`pve-entraid check`), never advice to an anonymous caller.
fn key_read_error(path: &Path, e: std::io::Error) -> Error {
    key_error(format!("cannot use state key {}: {e}", path.display()))
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
    Ok(b64url(&out))
}

/// Opens and checks a state: authentic, for `realm`, not expired. Does not consume it.
pub fn open(key: &[u8; KEY_LEN], state: &str, realm: &str, now: u64) -> Result<LoginState> {
    let invalid = || Error::new(Code::StateInvalid, "the login state is not valid (tampered, truncated or from another cluster); start the login again");
    if state.len() > 4096 {
        return Err(invalid());
    }
    // Canonical base64url only: one state has one text form, so single use cannot be dodged by
    // re-encoding it (a trailing `=`, other trailing bits).
    let mut raw = b64url_decode_canonical(state).ok_or_else(invalid)?;
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

/// Fingerprint of a state for the consumed store: of its decoded bytes (not of its text), 128
/// bits of SHA-256, in hex. The state itself is not stored.
fn fingerprint(state: &str) -> String {
    let raw = b64url_decode_canonical(state);
    let digest = sha256(raw.as_deref().unwrap_or(state.as_bytes()));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn replayed() -> Error {
    Error::new(Code::StateReplayed, "this login response was already used; start the login again")
}

/// Memory-only consumed set, for callers without a cache directory.
static CONSUMED_IN_MEMORY: Mutex<Option<MemoryStore>> = Mutex::new(None);

#[derive(Default)]
struct MemoryStore {
    set: HashMap<String, u64>,
    /// Expired entries are dropped when the set has doubled since the last purge (amortised O(1)).
    purge_at: usize,
}

/// Marks `state` used; `state.replayed` when it was used before on this node.
///
/// On disk each used state is one empty file `consumed/<expiry minute>/<fingerprint>` created
/// with O_EXCL: the kernel makes the create atomic across all processes of the node, the work is
/// the same with 0 or 100,000 stored states, and no lock is held. Files of minutes that ended
/// (plus a margin) are removed a bounded batch per login; an unexpired entry is never removed.
/// Nothing is fsynced: after a crash, a state could at most be replayed within its 10 minutes,
/// and its authorization code is single use at Entra anyway.
pub fn consume(cache_dir: Option<&Path>, state: &str, expires_at: u64, now: u64) -> Result<()> {
    let id = fingerprint(state);
    let Some(dir) = cache_dir else {
        let mut guard = CONSUMED_IN_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
        let store = guard.get_or_insert_with(MemoryStore::default);
        if store.set.len() >= store.purge_at {
            store.set.retain(|_, exp| *exp > now);
            store.purge_at = (store.set.len() * 2).max(1024);
        }
        if store.set.get(&id).is_some_and(|exp| *exp > now) {
            return Err(replayed());
        }
        store.set.insert(id, expires_at);
        return Ok(());
    };
    let io = |what: &str, e: std::io::Error| Error::new(Code::CacheIo, format!("consumed-state store: cannot {what} in {}: {e}", dir.display()));
    let root = dir.join(CONSUMED_DIR);
    let bucket = root.join((expires_at / BUCKET_SECS).to_string());
    let path = bucket.join(&id);
    let create = || std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
    let created = match create() {
        // First use of this minute (or a sweeper just removed it): make the bucket, try again.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(&bucket).map_err(|e| io("create a directory", e))?;
            create()
        }
        other => other,
    };
    match created {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(replayed()),
        Err(e) => return Err(io("record a used state", e)),
    }
    sweep(&root, now, SWEEP_BATCH);
    Ok(())
}

/// Removes up to `budget` files of buckets whose every state expired more than a margin ago, and
/// the emptied buckets. Failures are ignored (another process may be sweeping the same bucket).
fn sweep(root: &Path, now: u64, mut budget: usize) {
    let Ok(buckets) = std::fs::read_dir(root) else { return };
    let expired: Vec<PathBuf> = buckets
        .flatten()
        .filter(|b| {
            let minute = b.file_name().to_str().and_then(|n| n.parse::<u64>().ok());
            minute.is_some_and(|m| (m + 1) * BUCKET_SECS + SWEEP_MARGIN_SECS <= now)
        })
        .map(|b| b.path())
        .collect();
    for bucket in expired {
        let Ok(files) = std::fs::read_dir(&bucket) else { continue };
        for f in files.flatten() {
            if budget == 0 {
                return;
            }
            let _ = std::fs::remove_file(f.path());
            budget -= 1;
        }
        // Fails while files remain (or a late login added one): the next sweep tries again.
        let _ = std::fs::remove_dir(&bucket);
    }
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
        let mut bytes = b64url_decode_canonical(&s).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(open(&key, &b64url(&bytes), "entra", 999).unwrap_err().code, Code::StateInvalid);
        for bad in ["", "abc", "!!!", &s[..s.len() - 4]] {
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
    fn key_file_is_created_once_with_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmpdir("key");
        let path = dir.join("priv/state.key");
        let k1 = load_or_create_key(&path).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap(), k1);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        let e = load_or_create_key(&path).unwrap_err();
        assert_eq!(e.code, Code::StateKey);
        assert!(!e.message.contains("remove") && !e.message.contains("delete"), "no advice to delete the key: {e}");
    }

    #[test]
    fn a_key_being_written_is_waited_for() {
        // Another node created the file (O_EXCL) and has not written the 32 bytes yet.
        let dir = tmpdir("key-race");
        let path = dir.join("state.key");
        std::fs::write(&path, b"").unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(60));
                std::fs::write(&path, [9u8; 32]).unwrap();
            })
        };
        assert_eq!(load_or_create_key(&path).unwrap(), [9u8; 32]);
        writer.join().unwrap();
    }

    #[test]
    fn a_state_has_one_text_form() {
        let key = [7u8; 32];
        let s = seal(&key, &sample(1000)).unwrap();
        assert!(open(&key, &s, "entra", 999).is_ok());
        for variant in [format!("{s}="), format!("{s}=="), format!("{s}%3D")] {
            assert_eq!(open(&key, &variant, "entra", 999).unwrap_err().code, Code::StateInvalid, "{variant}");
        }
        assert_eq!(fingerprint(&s), fingerprint(&b64url(&b64url_decode_canonical(&s).unwrap())));
    }

    #[test]
    fn replay_is_refused_on_disk_and_in_memory() {
        let dir = tmpdir("consume");
        consume(Some(&dir), "s1", 2000, 1000).unwrap();
        assert_eq!(consume(Some(&dir), "s1", 2000, 1001).unwrap_err().code, Code::StateReplayed);
        consume(Some(&dir), "s2", 2000, 1001).unwrap();
        let bucket = dir.join(CONSUMED_DIR).join((2000 / BUCKET_SECS).to_string());
        let names: Vec<String> = std::fs::read_dir(&bucket).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|n| n.len() == 32 && !n.contains("s1")), "only fingerprints are stored: {names:?}");
        consume(None, "m-unique-state", 2000, 1000).unwrap();
        assert_eq!(consume(None, "m-unique-state", 2000, 1000).unwrap_err().code, Code::StateReplayed);
    }

    #[test]
    fn expired_buckets_are_swept_in_batches_and_live_ones_kept() {
        let dir = tmpdir("sweep");
        let root = dir.join(CONSUMED_DIR);
        for i in 0..(SWEEP_BATCH * 2 + 5) {
            consume(Some(&dir), &format!("old{i}"), 1000, 500).unwrap();
        }
        consume(Some(&dir), "live", 5000, 500).unwrap();
        let old = root.join((1000 / BUCKET_SECS).to_string());
        let count = |p: &Path| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        assert_eq!(count(&old), SWEEP_BATCH * 2 + 5);
        // Within the margin after expiry nothing is removed.
        consume(Some(&dir), "a", 5000, 1000 + BUCKET_SECS).unwrap();
        assert_eq!(count(&old), SWEEP_BATCH * 2 + 5);
        let later = 1020 + BUCKET_SECS + SWEEP_MARGIN_SECS;
        consume(Some(&dir), "b", 5000, later).unwrap();
        assert_eq!(count(&old), SWEEP_BATCH + 5, "one batch per login");
        consume(Some(&dir), "c", 5000, later).unwrap();
        consume(Some(&dir), "d", 5000, later).unwrap();
        assert!(!old.exists(), "emptied bucket removed");
        // Unexpired entries stay and still refuse a replay.
        assert_eq!(consume(Some(&dir), "live", 5000, later).unwrap_err().code, Code::StateReplayed);
        assert_eq!(count(&root.join((5000 / BUCKET_SECS).to_string())), 5);
    }

    #[test]
    fn an_unwritable_store_is_cache_io() {
        let dir = tmpdir("unwritable");
        std::fs::write(dir.join(CONSUMED_DIR), b"not a directory").unwrap();
        assert_eq!(consume(Some(&dir), "s", 2000, 1000).unwrap_err().code, Code::CacheIo);
    }
}
