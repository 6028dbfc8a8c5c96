//! The state key: 32 random bytes in a file replicated to all nodes, created once by whichever
//! process needs it first.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use crate::error::{Code, Error, Result};
use crate::jwt::random_bytes;
use crate::store::{FileCache, SETTLE_SECS};

/// A state key shorter than 32 bytes is being written by another process or node (create, then
/// write): readers wait this long for it before giving up.
const KEY_WAIT: Duration = Duration::from_millis(500);
const KEY_POLL: Duration = Duration::from_millis(20);
pub const KEY_LEN: usize = 32;

fn key_error(msg: String) -> Error {
    Error::new(Code::StateKey, msg)
}

/// The keys this process read, per path (one `stat` per call while the file is unchanged).
static KEYS: FileCache<[u8; KEY_LEN]> = FileCache::new(SETTLE_SECS);

/// Reads the state key, creating it (0600, exclusive create so no node ever replaces another's
/// key) when missing.
pub fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    KEYS.get(path, read_or_create_key)
}

fn read_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::tmpdir;

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
    fn a_changed_or_removed_key_file_is_read_again() {
        let dir = tmpdir("key-change");
        let path = dir.join("state.key");
        std::fs::write(&path, [1u8; 32]).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap(), [1u8; 32]);
        assert_eq!(load_or_create_key(&path).unwrap(), [1u8; 32]);
        // rewritten in place, same size (past the file-time tick)
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, [2u8; 32]).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap(), [2u8; 32]);
        // removed: a new key, never the one this process read before
        std::fs::remove_file(&path).unwrap();
        let created = load_or_create_key(&path).unwrap();
        assert_ne!(created, [2u8; 32]);
        assert_eq!(std::fs::read(&path).unwrap(), created);
        // broken: the error, not the key it had
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, [3u8; 33]).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap_err().code, Code::StateKey);
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
}
