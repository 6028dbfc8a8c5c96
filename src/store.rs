//! Small file helpers shared by the caches: atomic replace, and files read once per process
//! while they do not change.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;

/// Writes `data` to a temporary file next to `path`, syncs it and renames it over `path`, so
/// readers see the old or the new content, never a part.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file as `stat` describes it: any write, replacement (rename), chmod or removal changes it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp { dev: m.dev(), ino: m.ino(), size: m.size(), mtime: (m.mtime(), m.mtime_nsec()), ctime: (m.ctime(), m.ctime_nsec()) })
    }

    /// Last changed at least `settle_secs` ago. File times tick coarsely (the kernel's clock tick;
    /// whole seconds on pmxcfs), so a second write in the same tick, of the same size, in place,
    /// keeps the stamp: a file changed that recently is read again on every call (as git treats
    /// "racily clean" files).
    fn settled(&self, settle_secs: i64) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        now - self.mtime.0.max(self.ctime.0) >= settle_secs
    }
}

/// How long after its last change a file is read again on every call (see [`Stamp::settled`]).
/// Unit tests use the caches on files they have just written, so there it is 0.
pub const SETTLE_SECS: i64 = if cfg!(test) { 0 } else { 2 };

/// Per-process values read from files (keys, credentials), each reused while its file keeps its
/// [`Stamp`]: one `stat` per call instead of open, read and parse. A changed file is read on the
/// next call; a removed or unreadable one is an error as before, never the value it had. Plain
/// process memory, nothing else: a forked worker inherits a cache that is still true (the files
/// are the parent's too) and holds no descriptor of the parent's.
pub struct FileCache<T> {
    entries: Mutex<Option<HashMap<PathBuf, (Stamp, T)>>>,
    settle_secs: i64,
}

impl<T: Clone> FileCache<T> {
    pub const fn new(settle_secs: i64) -> FileCache<T> {
        FileCache { entries: Mutex::new(None), settle_secs }
    }

    /// The value `read` makes of `path`, from memory while the file is unchanged. `read` does all
    /// the reading and parsing (and names its own errors); a failed read forgets the old value.
    pub fn get(&self, path: &Path, read: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        // Before the read: a change during it makes the next call's stamp differ.
        let stamp = Stamp::of(path);
        let with = |f: &mut dyn FnMut(&mut HashMap<PathBuf, (Stamp, T)>)| {
            let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            f(guard.get_or_insert_with(HashMap::new));
        };
        if let Some(stamp) = stamp {
            let mut hit = None;
            with(&mut |m| hit = m.get(path).filter(|(s, _)| *s == stamp).map(|(_, v)| v.clone()));
            if let Some(v) = hit {
                return Ok(v);
            }
        }
        let value = read(path);
        with(&mut |m| match (&value, stamp) {
            (Ok(v), Some(stamp)) if stamp.settled(self.settle_secs) => {
                m.insert(path.to_path_buf(), (stamp, v.clone()));
            }
            _ => {
                m.remove(path);
            }
        });
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Code, Error};
    use std::cell::Cell;
    use std::time::Duration;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pve-entraid-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Reads the file as text, counting the reads.
    fn reader(reads: &Cell<u32>) -> impl Fn(&Path) -> Result<String> + '_ {
        move |p: &Path| {
            reads.set(reads.get() + 1);
            std::fs::read_to_string(p).map_err(|e| Error::new(Code::ConfigSecret, format!("cannot read: {}", e.kind())))
        }
    }

    /// Past the kernel's file-time tick, so that the next write gets new times.
    fn next_tick() {
        std::thread::sleep(Duration::from_millis(20));
    }

    #[test]
    fn a_file_is_read_once_until_it_changes() {
        let (dir, reads, cache) = (tmpdir("once"), Cell::new(0), FileCache::<String>::new(0));
        let f = dir.join("value");
        std::fs::write(&f, "one").unwrap();
        for _ in 0..3 {
            assert_eq!(cache.get(&f, reader(&reads)).unwrap(), "one");
        }
        assert_eq!(reads.get(), 1, "read once, then from memory");
        // rewritten in place with the same size: new times
        next_tick();
        std::fs::write(&f, "two").unwrap();
        assert_eq!(cache.get(&f, reader(&reads)).unwrap(), "two");
        // replaced by rename (as PVE's file_set_contents writes)
        next_tick();
        std::fs::write(dir.join("new"), "three").unwrap();
        std::fs::rename(dir.join("new"), &f).unwrap();
        assert_eq!(cache.get(&f, reader(&reads)).unwrap(), "three");
        assert_eq!(reads.get(), 3);
        // removed: the read's own error, never the old value; then back
        std::fs::remove_file(&f).unwrap();
        assert_eq!(cache.get(&f, reader(&reads)).unwrap_err().code, Code::ConfigSecret);
        std::fs::write(&f, "four").unwrap();
        assert_eq!(cache.get(&f, reader(&reads)).unwrap(), "four");
    }

    #[test]
    fn a_failed_read_forgets_the_value() {
        let (dir, reads, cache) = (tmpdir("fail"), Cell::new(0), FileCache::<String>::new(0));
        let f = dir.join("value");
        std::fs::write(&f, "good").unwrap();
        assert_eq!(cache.get(&f, reader(&reads)).unwrap(), "good");
        next_tick();
        std::fs::write(&f, "bad!").unwrap();
        let refuse = |_: &Path| Err(Error::new(Code::ConfigSecret, "unusable"));
        assert!(cache.get(&f, refuse).is_err());
        assert_eq!(cache.get(&f, reader(&reads)).unwrap(), "bad!");
    }

    #[test]
    fn a_file_changed_just_now_is_read_on_every_call() {
        let (dir, reads, cache) = (tmpdir("settle"), Cell::new(0), FileCache::<String>::new(2));
        let f = dir.join("value");
        std::fs::write(&f, "one").unwrap();
        cache.get(&f, reader(&reads)).unwrap();
        cache.get(&f, reader(&reads)).unwrap();
        assert_eq!(reads.get(), 2, "not trusted within the settle time");
        // an old file is cached
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
        assert!(!Stamp::of(&f).unwrap().settled(2), "ctime is still now");
    }
}
