//! The consumed-state store: single use of a state per node.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Code, Error, Result};
use crate::jwt::sha256;

/// Consumed states are filed by expiry minute: `<cache_dir>/consumed/<exp / 60>/<fingerprint>`.
const CONSUMED_DIR: &str = "consumed";
const BUCKET_SECS: u64 = 60;
/// A bucket is removed only this long after its last state expired, so a login that checked the
/// expiry just before cannot be creating its file there any more.
const SWEEP_MARGIN_SECS: u64 = 60;
/// At most this many expired files are removed per login: bounded work, and still faster than
/// logins can add them.
const SWEEP_BATCH: usize = 32;

/// Fingerprint of a state for the consumed store: of its decoded bytes (not of its text), 128
/// bits of SHA-256, in hex. The state itself is not stored.
pub(super) fn fingerprint(state: &str) -> String {
    let raw = super::sealed_bytes(state);
    fingerprint_of(raw.as_deref().unwrap_or(state.as_bytes()))
}

fn replayed() -> Error {
    Error::new(Code::StateReplayed, "this login response was already used; start the login again")
}

/// Memory-only sets (consumed states, refused tokens), for callers without a cache directory.
static CONSUMED_IN_MEMORY: Mutex<Option<MemoryStore>> = Mutex::new(None);

#[derive(Default)]
struct MemoryStore {
    set: HashMap<String, u64>,
    /// Expired entries are dropped when the set has doubled since the last purge (amortised O(1)).
    purge_at: usize,
}

/// Workload access tokens refused after their signature verified, filed like consumed states
/// (`<cache_dir>/refused/<exp / 60>/<fingerprint>`) until they expire.
const REFUSED_DIR: &str = "refused";

/// Marks `state` used; `state.replayed` when it was used before on this node.
///
/// On disk each used state is one empty file `consumed/<expiry minute>/<fingerprint>` created
/// with O_EXCL: the kernel makes the create atomic across all processes of the node, the work is
/// the same with 0 or 100,000 stored states, and no lock is held. Files of minutes that ended
/// (plus a margin) are removed a bounded batch per login; an unexpired entry is never removed.
/// Nothing is fsynced: after a crash, a state could at most be replayed within its 10 minutes,
/// and its authorization code is single use at Entra anyway.
pub fn consume(cache_dir: Option<&Path>, state: &str, expires_at: u64, now: u64) -> Result<()> {
    if !record(cache_dir, CONSUMED_DIR, &fingerprint(state), expires_at, now)? {
        return Err(replayed());
    }
    Ok(())
}

/// Records a workload token (by its fingerprint, `token_fingerprint`) as refused until
/// `expires_at`; the same store as the consumed states, in its own directory.
pub fn refuse_token(cache_dir: Option<&Path>, id: &str, expires_at: u64, now: u64) -> Result<()> {
    record(cache_dir, REFUSED_DIR, id, expires_at, now).map(|_| ())
}

/// Whether a workload token (fingerprint `id`, expiring at `expires_at`) was refused before.
pub fn token_was_refused(cache_dir: Option<&Path>, id: &str, expires_at: u64, now: u64) -> Result<bool> {
    let Some(dir) = cache_dir else {
        let guard = CONSUMED_IN_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
        return Ok(guard.as_ref().is_some_and(|s| s.set.get(&format!("{REFUSED_DIR}/{id}")).is_some_and(|exp| *exp > now)));
    };
    let path = dir.join(REFUSED_DIR).join((expires_at / BUCKET_SECS).to_string()).join(id);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::new(Code::CacheIo, format!("refused-token store: cannot read {}: {e}", dir.display()))),
    }
}

/// The fingerprint of a token in `realm` by what its signature covers (`header.payload`): one per
/// token and realm, whatever form its signature part takes. Per realm: a refusal is the verdict of
/// a realm's map and pins, and a token sent to the wrong realm first must not be refused by the
/// realm that maps its role.
pub fn token_fingerprint(realm: &str, signing_input: &str) -> String {
    fingerprint_of(format!("{realm}\n{signing_input}").as_bytes())
}

fn fingerprint_of(bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    digest[..16].iter().flat_map(|b| [HEX[(b >> 4) as usize] as char, HEX[(b & 15) as usize] as char]).collect()
}

/// Adds `id` to the store `kind` until `expires_at`: true when it is new, false when it was
/// there already (see `consume` for the layout and its guarantees).
fn record(cache_dir: Option<&Path>, kind: &str, id: &str, expires_at: u64, now: u64) -> Result<bool> {
    let Some(dir) = cache_dir else {
        let mut guard = CONSUMED_IN_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
        let store = guard.get_or_insert_with(MemoryStore::default);
        if store.set.len() >= store.purge_at {
            store.set.retain(|_, exp| *exp > now);
            store.purge_at = (store.set.len() * 2).max(1024);
        }
        let key = format!("{kind}/{id}");
        if store.set.get(&key).is_some_and(|exp| *exp > now) {
            return Ok(false);
        }
        store.set.insert(key, expires_at);
        return Ok(true);
    };
    let io = |what: &str, e: std::io::Error| Error::new(Code::CacheIo, format!("{kind} store: cannot {what} in {}: {e}", dir.display()));
    let root = dir.join(kind);
    let bucket = root.join((expires_at / BUCKET_SECS).to_string());
    let path = bucket.join(id);
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
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io("record an entry", e)),
    }
    if !swept(&root, now) {
        sweep(&root, now, SWEEP_BATCH);
    }
    Ok(true)
}

/// The store and the minute (`now / BUCKET_SECS`) in which this process last found nothing more
/// to sweep there. A bucket becomes sweepable only when a minute begins (its states expired a
/// margin before), and buckets made meanwhile hold unexpired states: until the next minute, a
/// sweep would find nothing, so it is skipped (no directory read per login). Per process: a
/// forked worker inherits a value that is still true.
/// (One store per node; a map only so that stores never share an entry.)
static SWEPT: Mutex<Option<HashMap<PathBuf, u64>>> = Mutex::new(None);

fn swept(root: &Path, now: u64) -> bool {
    let guard = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().and_then(|m| m.get(root)).is_some_and(|minute| *minute == now / BUCKET_SECS)
}

fn set_swept(root: &Path, minute: Option<u64>) {
    let mut guard = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    match minute {
        Some(m) => map.insert(root.to_path_buf(), m),
        None => map.remove(root),
    };
}

/// Removes up to `budget` files of buckets whose every state expired more than a margin ago, and
/// the emptied buckets. Failures are ignored (another process may be sweeping the same bucket).
fn sweep(root: &Path, now: u64, mut budget: usize) {
    let Ok(buckets) = std::fs::read_dir(root) else { return };
    // All done unless the budget runs out below (then the next login goes on).
    set_swept(root, Some(now / BUCKET_SECS));
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
                set_swept(root, None);
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
    use crate::state::tests::tmpdir;

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
    fn a_store_swept_clean_is_not_read_again_within_the_minute() {
        let dir = tmpdir("swept");
        let now = 600_000; // the start of a minute
        consume(Some(&dir), "first", now + 600, now).unwrap();
        // An expired bucket appearing later in the minute (none can: see SWEPT) stays until the
        // next minute begins: no directory read per login meanwhile.
        let old = dir.join(CONSUMED_DIR).join("10");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("0123"), b"").unwrap();
        consume(Some(&dir), "second", now + 600, now + 59).unwrap();
        assert!(old.exists());
        consume(Some(&dir), "third", now + 600, now + 60).unwrap();
        assert!(!old.exists(), "swept in the next minute");
    }

    #[test]
    fn refused_tokens_are_remembered_until_they_expire() {
        let dir = tmpdir("refused");
        let id = token_fingerprint("entra", "h.p");
        assert_ne!(id, token_fingerprint("other", "h.p"), "one per realm");
        assert!(!token_was_refused(Some(&dir), &id, 2000, 1000).unwrap());
        refuse_token(Some(&dir), &id, 2000, 1000).unwrap();
        refuse_token(Some(&dir), &id, 2000, 1001).unwrap();
        assert!(token_was_refused(Some(&dir), &id, 2000, 1001).unwrap());
        assert!(!token_was_refused(Some(&dir), &token_fingerprint("entra", "h.q"), 2000, 1001).unwrap());
        // a state of the same fingerprint is another store's
        consume(Some(&dir), "h.p", 2000, 1000).unwrap();
        refuse_token(None, &id, 2000, 1000).unwrap();
        assert!(token_was_refused(None, &id, 2000, 1000).unwrap());
        assert!(!token_was_refused(None, &id, 2000, 2001).unwrap(), "expired");
    }

    #[test]
    fn an_unwritable_store_is_cache_io() {
        let dir = tmpdir("unwritable");
        std::fs::write(dir.join(CONSUMED_DIR), b"not a directory").unwrap();
        assert_eq!(consume(Some(&dir), "s", 2000, 1000).unwrap_err().code, Code::CacheIo);
    }
}
