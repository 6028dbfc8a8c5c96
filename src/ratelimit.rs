//! The budget of anonymous work: every `auth_url`, `login` and `refuse_realm` call first takes
//! one token from the bucket of its client address (per realm; IPv6 by /64; one bucket of the
//! address for all names that are no entraid realm), and is refused with `request.rate_limited`
//! (HTTP 429) when it is empty, before it reads the state key, asks the IdP anything or consumes a
//! state. A `login` takes one token from its realm's bucket right before its token request, the
//! one request with the app's credential, which is what the realm budget bounds: only after its
//! state was opened, its browser binding verified and the state consumed, so calls that can never
//! reach the token endpoint (a forged state, a wrong binding key, a replay) cannot spend it.
//!
//! The buckets are shared by all processes of the node (the endpoints are `protected`, so the
//! library runs in pvedaemon's workers, as root): a fixed-size file `<run_dir>/ratelimit.v2` on tmpfs, made once (0600, a random hash
//! key in its header) and mapped by every process; a bucket is one `u64` (time of its last
//! update, tokens left) updated by compare-and-swap. Time is `CLOCK_BOOTTIME`, shared by all
//! processes and never stepped (a wall clock stepped back an hour by NTP would otherwise leave
//! empty buckets refused for that hour); a stored time later than now counts as now. A charge costs one keyed hash and one CAS on
//! the mapping plus one `stat` of the file, whatever the attacker sends: the table never grows.
//! Address buckets are chosen by an HMAC of (realm, address) under the file's key, so an attacker
//! cannot aim at someone else's bucket; two addresses that share a bucket only share its budget
//! (stricter, never looser). Realm buckets live in their own region, so an address never draws on
//! a realm's larger budget. No thread, no lock file.
//!
//! When the table cannot be used the call is refused (`cache.io`): a login path whose limit an
//! attacker can switch off by filling /run is what the limit exists to prevent; `root@pam` and
//! tickets already issued do not depend on it.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ring::hmac;

use crate::error::{Code, Error, Result};
use crate::jwt::random_bytes;
use crate::request::{invalid, BudgetMembers, Caller, RateLimits};

/// A token bucket: at most `burst` calls at once, refilled by `per_minute` calls a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub burst: u32,
    pub per_minute: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Per client address (IPv6: per /64) and realm.
    pub address: Budget,
    /// Per realm, all addresses together.
    pub realm: Budget,
}

/// A login is two calls (auth-url, login). An address: 30 logins at once, then one a second
/// (an office behind one NAT address signing in at 9:00 stays below it; a script hammering from
/// one address gets a call a second). A realm (paid by a login's token request only): 300 logins
/// at once, then 2.5 a second: each login that reaches the token endpoint with a junk code costs
/// one token request with the app's credential, so this bounds what an attacker with many
/// addresses makes the node send to Microsoft under the app's name.
pub const DEFAULT_LIMITS: Limits = Limits {
    address: Budget { burst: 60, per_minute: 60 },
    realm: Budget { burst: 300, per_minute: 150 },
};

/// The largest burst a bucket holds (24 bits of milli-tokens).
pub const MAX_BURST: u32 = 16_000;
/// The table file in `run_dir`; the version changes with the layout.
pub const TABLE_FILE: &str = "ratelimit.v2";
const MAGIC: &[u8; 8] = b"PVEERL02";
const HEADER_LEN: usize = 64;
const KEY_LEN: usize = 32;
const ADDRESS_SLOTS: usize = 1 << 16;
/// Realms share a slot only by chance of the keyed hash: for 10 realms about 1 % (birthday bound
/// 45 / 4096), and which ones changes with every table.
const REALM_SLOTS: usize = 4096;
/// 64 + 8 × 69,632 bytes = 544 KiB of tmpfs, whatever happens.
pub const TABLE_LEN: usize = HEADER_LEN + 8 * (ADDRESS_SLOTS + REALM_SLOTS);

/// A slot is `time << 24 | milli-tokens`: time in ms of `CLOCK_BOOTTIME` (40 bits: 34 years),
/// tokens in thousandths (24 bits). 0 is a bucket never used, i.e. full.
const TOKEN_BITS: u32 = 24;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;
const TIME_MASK: u64 = (1 << (64 - TOKEN_BITS)) - 1;
const MILLI: u64 = 1000;

/// A budget a call is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket<'a> {
    /// The client's in this entraid realm: every `auth_url` and `login` call pays it first.
    Address { realm: &'a str },
    /// The client's for a call naming a realm that is not an entraid realm (none, or one of
    /// another type; `refuse_realm`): one bucket per client for all such names, so that made-up
    /// names gain an attacker nothing.
    AddressWithoutRealm,
    /// The realm's, all clients together: paid by a `login` right before its token request (see
    /// the module's documentation). Charging `auth_url` to it too would only make a realm-wide
    /// lockout cheaper for an attacker.
    Realm(&'a str),
}

impl Bucket<'_> {
    fn budget(&self, limits: &Limits) -> Budget {
        match self {
            Bucket::Address { .. } | Bucket::AddressWithoutRealm => limits.address,
            Bucket::Realm(_) => limits.realm,
        }
    }
}

/// A client address as it is bucketed: IPv4 (also v4-mapped IPv6) whole, IPv6 by its /64, or
/// unknown (all unknown callers share one bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    V4([u8; 4]),
    V6Net([u8; 8]),
    Unknown,
}

impl Client {
    pub fn parse(text: &str) -> Option<Client> {
        if text.is_empty() {
            return Some(Client::Unknown);
        }
        Some(match text.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Client::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.octets()),
                None => Client::V6Net(a.octets()[..8].try_into().ok()?),
            },
        })
    }

    fn hash_input(&self) -> Vec<u8> {
        match self {
            Client::V4(a) => [&[4u8][..], a].concat(),
            Client::V6Net(n) => [&[6u8][..], n].concat(),
            Client::Unknown => vec![0],
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            Client::V6Net(n) => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(n);
                write!(f, "{}/64", std::net::Ipv6Addr::from(full))
            }
            Client::Unknown => write!(f, "unknown"),
        }
    }
}

/// The mapped table of one file.
pub struct Table {
    base: *mut u8,
    key: hmac::Key,
    dev: u64,
    ino: u64,
}

// SAFETY: the mapping is only accessed through atomics; the pointer stays valid until drop.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: `base` is the start of a TABLE_LEN mapping made in `map`, unmapped only here.
        unsafe { libc::munmap(self.base.cast(), TABLE_LEN) };
    }
}

fn io_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::CacheIo, format!("rate-limit table {}: {what}: {e}; anonymous logins are refused until it works", path.display()))
}

impl Table {
    /// Maps the table at `path`, creating it (and its directory, 0700) when missing.
    pub fn open_or_create(path: &Path) -> Result<Table> {
        match Table::open(path) {
            Ok(table) => table,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Table::create(path)?;
                Table::open(path).map_err(|e| io_error(path, "open", e))?
            }
            Err(e) => Err(io_error(path, "open", e)),
        }
    }

    fn open(path: &Path) -> std::io::Result<Result<Table>> {
        let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)?;
        let meta = file.metadata()?;
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if !meta.is_file() || meta.len() != TABLE_LEN as u64 || meta.uid() != euid || meta.mode() & 0o077 != 0 {
            return Ok(Err(io_error(path, "not a table of this version", format!(
                "size {}, owner {}, mode {:o} (expected {TABLE_LEN} bytes, owner {euid}, no group/other access); remove it",
                meta.len(), meta.uid(), meta.mode() & 0o7777))));
        }
        Ok(Table::map(&file, meta.dev(), meta.ino()).map_err(|e| io_error(path, "mmap", e)))
    }

    fn map(file: &File, dev: u64, ino: u64) -> std::io::Result<Table> {
        use std::os::fd::AsRawFd;
        // SAFETY: a shared read/write mapping of TABLE_LEN bytes of a file of exactly that size.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), TABLE_LEN, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        // SAFETY: the header is within the mapping and written completely before the file was published.
        let header = unsafe { std::slice::from_raw_parts(base, HEADER_LEN) };
        let key = hmac::Key::new(hmac::HMAC_SHA256, &header[16..16 + KEY_LEN]);
        let table = Table { base, key, dev, ino };
        if &header[..8] != MAGIC {
            return Err(std::io::Error::new(ErrorKind::InvalidData, "bad magic"));
        }
        Ok(table)
    }

    /// Writes a complete table under a temporary name and publishes it with `link`, which fails
    /// when another process was first: every process maps the same, fully initialised file.
    fn create(path: &Path) -> Result<()> {
        let dir = path.parent().ok_or_else(|| io_error(path, "no directory", "-"))?;
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(io_error(dir, "mkdir", e)),
            _ => {}
        }
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        // bytes 8..16 are reserved (zero)
        random_bytes(&mut header[16..16 + KEY_LEN])?;
        let mut suffix = [0u8; 8];
        random_bytes(&mut suffix)?;
        let tmp = dir.join(format!(".{TABLE_FILE}.{}", u64::from_le_bytes(suffix)));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&tmp)?;
            f.write_all(&header)?;
            // every page allocated now: a sparse file would raise SIGBUS in the worker writing
            // a slot on an untouched page once the tmpfs is full
            use std::os::fd::AsRawFd;
            // SAFETY: a valid, open file descriptor; plain integers.
            match unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, TABLE_LEN as libc::off_t) } {
                0 => {}
                e => return Err(std::io::Error::from_raw_os_error(e)),
            }
            match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        written.map_err(|e| io_error(path, "create", e))
    }

    fn slot(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < ADDRESS_SLOTS + REALM_SLOTS);
        // SAFETY: in bounds, 8-byte aligned (page-aligned base + 64 + 8 × index), and only ever
        // accessed atomically by every process mapping the file.
        unsafe { &*self.base.add(HEADER_LEN + 8 * index).cast::<AtomicU64>() }
    }

    fn keyed_index(&self, parts: &[&[u8]], slots: usize) -> usize {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(&(p.len() as u32).to_le_bytes());
            ctx.update(p);
        }
        let tag = ctx.sign();
        (u64::from_le_bytes(tag.as_ref()[..8].try_into().unwrap_or_default()) % slots as u64) as usize
    }

    /// The slot index of `bucket` (of `client`, for the address buckets).
    pub fn slot_of(&self, bucket: Bucket, client: &Client) -> usize {
        match bucket {
            Bucket::Address { realm } => self.keyed_index(&[b"address", realm.as_bytes(), &client.hash_input()], ADDRESS_SLOTS),
            Bucket::AddressWithoutRealm => self.keyed_index(&[b"address without realm", &client.hash_input()], ADDRESS_SLOTS),
            Bucket::Realm(realm) => ADDRESS_SLOTS + self.keyed_index(&[b"realm", realm.as_bytes()], REALM_SLOTS),
        }
    }

    /// Takes one call from `bucket` (`client`'s, for the address buckets), or says it is empty;
    /// `now_ms` is [`clock_ms`].
    pub fn admit(&self, bucket: Bucket, client: &Client, limits: &Limits, now_ms: u64) -> bool {
        // never 0 (a fresh slot)
        let now = now_ms.clamp(1, TIME_MASK);
        take(self.slot(self.slot_of(bucket, client)), bucket.budget(limits), now)
    }
}

/// One token-bucket step on a shared slot; lock-free, retried only when another process changed
/// the slot in between.
fn take(slot: &AtomicU64, budget: Budget, now: u64) -> bool {
    let capacity = u64::from(budget.burst.min(MAX_BURST)) * MILLI;
    let mut old = slot.load(Ordering::Acquire);
    loop {
        let (then, tokens) = if old == 0 { (now, capacity) } else { (old >> TOKEN_BITS, old & TOKEN_MASK) };
        // A time later than now (a table from before a reboot, when /run is not tmpfs) counts as
        // now: refused calls move it back to now, so refilling resumes from there.
        let elapsed = now.saturating_sub(then).min(u64::from(u32::MAX));
        let tokens = (tokens + elapsed * u64::from(budget.per_minute) * MILLI / 60_000).min(capacity);
        let new = if tokens >= MILLI {
            // never move a slot's time back: a process that read the clock a moment earlier
            // must not make the next caller's refill count twice
            now.max(then) << TOKEN_BITS | (tokens - MILLI)
        } else if then > now {
            now << TOKEN_BITS | tokens
        } else {
            return false;
        };
        match slot.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) if tokens >= MILLI => return true,
            Ok(_) => return false,
            Err(current) => old = current,
        }
    }
}

/// Milliseconds of `CLOCK_BOOTTIME`: the same in every process, never stepped, counting suspend.
pub fn clock_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_BOOTTIME exists on every supported kernel.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The table of this process, remapped when the file was replaced (checked by one `stat`).
static TABLE: Mutex<Option<(PathBuf, std::sync::Arc<Table>)>> = Mutex::new(None);

fn table(path: &Path) -> Result<std::sync::Arc<Table>> {
    let current = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let mut cached = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, t)) = cached.as_ref() {
        if p == path && current == Some((t.dev, t.ino)) {
            return Ok(t.clone());
        }
    }
    let t = std::sync::Arc::new(Table::open_or_create(path)?);
    *cached = Some((path.to_path_buf(), t.clone()));
    Ok(t)
}

fn budget_of(given: Option<BudgetMembers>, name: &str, default: Budget) -> Result<Budget> {
    let given = given.unwrap_or_default();
    let field = |f: &str, n: Option<u32>, d: u32| match n {
        None => Ok(d),
        Some(n) if (1..=MAX_BURST).contains(&n) => Ok(n),
        Some(_) => Err(invalid(format!("`rate_limits.{name}.{f}` must be a number from 1 to {MAX_BURST}"))),
    };
    Ok(Budget { burst: field("burst", given.burst, default.burst)?, per_minute: field("per_minute", given.per_minute, default.per_minute)? })
}

/// The limits of a request: `DEFAULT_LIMITS`, or those of its `rate_limits` member.
pub fn limits_of(given: Option<&RateLimits>) -> Result<Limits> {
    let Some(given) = given else { return Ok(DEFAULT_LIMITS) };
    Ok(Limits {
        address: budget_of(given.address, "address", DEFAULT_LIMITS.address)?,
        realm: budget_of(given.realm, "realm", DEFAULT_LIMITS.realm)?,
    })
}

/// The entry points' admission: with a `run_dir` (the Perl side always gives one), one call of
/// `bucket` (for the address buckets, that of `client_address`), else `request.rate_limited`.
/// Without `run_dir` (library tests, tools) nothing is limited.
pub fn admit(caller: &Caller, bucket: Bucket) -> Result<()> {
    let Some(dir) = caller.run_dir else { return Ok(()) };
    if !dir.starts_with('/') {
        return Err(invalid("`run_dir` must be an absolute path"));
    }
    let client = Client::parse(caller.client_address).ok_or_else(|| invalid("`client_address` must be an IP address"))?;
    let limits = limits_of(caller.rate_limits)?;
    let table = table(&Path::new(dir).join(TABLE_FILE))?;
    if table.admit(bucket, &client, &limits, clock_ms()) {
        return Ok(());
    }
    let b = bucket.budget(&limits);
    let whose = match bucket {
        Bucket::Address { .. } => format!("anonymous calls from client {client}"),
        Bucket::AddressWithoutRealm => format!("anonymous calls naming no entraid realm from client {client}"),
        Bucket::Realm(realm) => format!("token requests of realm {realm} from all clients (this one: {client})"),
    };
    Err(Error::new(Code::RequestRateLimited, format!("too many {whose}: budget {} calls, refilled {} a minute", b.burst, b.per_minute)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const T0: u64 = 1_000_000_000;

    fn limits(a: (u32, u32), r: (u32, u32)) -> Limits {
        Limits { address: Budget { burst: a.0, per_minute: a.1 }, realm: Budget { burst: r.0, per_minute: r.1 } }
    }

    fn fresh() -> (tempdir::Dir, Table) {
        let d = tempdir::Dir::new();
        let t = Table::open_or_create(&d.0.join("run").join(TABLE_FILE)).unwrap();
        (d, t)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let mut r = [0u8; 8];
                crate::jwt::random_bytes(&mut r).unwrap();
                let p = std::env::temp_dir().join(format!("pve-entraid-rl-{}", u64::from_le_bytes(r)));
                std::fs::create_dir(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// What a login that reaches its token request pays: its address's budget, then its realm's.
    fn login(t: &Table, realm: &str, c: &Client, l: &Limits, now: u64) -> std::result::Result<(), &'static str> {
        if !t.admit(Bucket::Address { realm }, c, l, now) {
            return Err("address");
        }
        if !t.admit(Bucket::Realm(realm), c, l, now) {
            return Err("realm");
        }
        Ok(())
    }

    fn count_admitted(t: &Table, realm: &str, c: &Client, l: &Limits, now: u64, n: usize) -> usize {
        (0..n).filter(|_| login(t, realm, c, l, now).is_ok()).count()
    }

    #[test]
    fn an_address_gets_its_burst_then_refills_at_its_rate() {
        let (_d, t) = fresh();
        let l = limits((10, 60), (1000, 1000));
        let a = Client::parse("192.0.2.1").unwrap();
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0, 50), 10);
        assert_eq!(login(&t, "entra", &a, &l, T0), Err("address"));
        // 60 a minute: one a second; half a second gives nothing, a second one call
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0 + 500, 5), 0);
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0 + 1000, 5), 1);
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0 + 4000, 5), 3);
        // never more than the burst, however long it waited
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0 + 60 * MIN, 50), 10);
        // another address and another realm have their own budgets
        assert_eq!(count_admitted(&t, "entra", &Client::parse("192.0.2.2").unwrap(), &l, T0, 50), 10);
        assert_eq!(count_admitted(&t, "other", &a, &l, T0, 50), 10);
    }

    #[test]
    fn a_realm_budget_holds_across_addresses_and_refused_addresses_do_not_spend_it() {
        let (_d, t) = fresh();
        let l = limits((5, 1), (20, 1));
        let one = Client::parse("198.51.100.7").unwrap();
        // one address flooding spends only its own budget
        assert_eq!(count_admitted(&t, "entra", &one, &l, T0, 1000), 5);
        let mut admitted = 5;
        let mut refused_by_realm = 0;
        for i in 0..100u8 {
            let c = Client::parse(&format!("203.0.113.{i}")).unwrap();
            for _ in 0..3 {
                match login(&t, "entra", &c, &l, T0) {
                    Ok(()) => admitted += 1,
                    Err("realm") => refused_by_realm += 1,
                    Err(_) => {}
                }
            }
        }
        assert_eq!(admitted, 20, "the realm's burst, from any number of addresses");
        assert!(refused_by_realm > 0);
        // another realm is not affected (unless both hash to one realm slot: see the next test)
        assert!(login(&t, "other", &one, &l, T0).is_ok());
        // a spent realm budget does not refuse what pays only its address (auth-url, and the
        // part of a login before its token request), and that spends none of it
        let fresh_client = Client::parse("192.0.2.200").unwrap();
        assert_eq!(login(&t, "entra", &fresh_client, &l, T0), Err("realm"));
        assert!(t.admit(Bucket::Address { realm: "entra" }, &fresh_client, &l, T0));
        let l2 = limits((1000, 1), (3, 1));
        let c = Client::parse("192.0.2.201").unwrap();
        assert_eq!((0..10).filter(|_| t.admit(Bucket::Address { realm: "third" }, &c, &l2, T0)).count(), 10);
        assert_eq!(count_admitted(&t, "third", &c, &l2, T0, 10), 3);
    }

    #[test]
    fn names_of_no_entraid_realm_share_one_budget_per_address() {
        let (_d, t) = fresh();
        let l = limits((5, 1), (1000, 1));
        let a = Client::parse("198.51.100.9").unwrap();
        // however many names are made up (`pam`, `nosuch`, `x1`, `x2`...), the address gets its burst once
        let bucket = Bucket::AddressWithoutRealm;
        assert_eq!((0..50).filter(|_| t.admit(bucket, &a, &l, T0)).count(), 5);
        assert!(!t.admit(bucket, &a, &l, T0 + 500));
        assert!(t.admit(bucket, &a, &l, T0 + MIN), "refilled at its rate");
        // its calls to an entraid realm, and other addresses, have budgets of their own
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0, 50), 5);
        assert_eq!((0..50).filter(|_| t.admit(bucket, &Client::parse("198.51.100.10").unwrap(), &l, T0)).count(), 5);
    }

    #[test]
    fn realms_practically_never_share_a_budget() {
        // the chance that two of 10 realms share a realm slot (birthday bound): below 2 %
        let realms = 10.0;
        let share = 1.0 - (0..10).map(|i| 1.0 - f64::from(i) / REALM_SLOTS as f64).product::<f64>();
        assert!(share < 0.02, "{share} for {realms} realms");
        // and 64 realm names land in (practically) 64 slots of one table
        let (_d, t) = fresh();
        let c = Client::V4([192, 0, 2, 1]);
        let mut slots: Vec<usize> = (0..64).map(|i| t.slot_of(Bucket::Realm(&format!("realm{i}")), &c)).collect();
        slots.sort_unstable();
        slots.dedup();
        assert!(slots.len() >= 60, "{} distinct slots", slots.len());
    }

    #[test]
    fn ipv6_is_bucketed_by_64_and_v4_mapped_as_v4() {
        let a = Client::parse("2001:db8:1:2:aaaa::1").unwrap();
        assert_eq!(a, Client::parse("2001:db8:1:2:ffff:ffff:ffff:ffff").unwrap());
        assert_ne!(a, Client::parse("2001:db8:1:3::1").unwrap());
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(Client::parse("::ffff:192.0.2.9"), Client::parse("192.0.2.9"));
        assert_eq!(Client::parse(""), Some(Client::Unknown));
        assert_eq!(Client::parse("not-an-ip"), None);
        assert_eq!(Client::parse("192.0.2.1:8006"), None);

        let (_d, t) = fresh();
        let l = limits((3, 1), (1000, 1));
        // a whole /64 (what one host can pick from) shares one budget
        let spent = (0..10).filter(|i| login(&t, "entra", &Client::parse(&format!("2001:db8:1:2::{i:x}")).unwrap(), &l, T0).is_ok()).count();
        assert_eq!(spent, 3);
        assert_eq!(count_admitted(&t, "entra", &Client::parse("2001:db8:1:3::1").unwrap(), &l, T0, 10), 3);
    }

    #[test]
    fn buckets_are_keyed_per_table() {
        let (_d1, t1) = fresh();
        let (_d2, t2) = fresh();
        let clients: Vec<Client> = (0..64u8).map(|i| Client::V4([10, 0, 0, i])).collect();
        let address = Bucket::Address { realm: "entra" };
        let b1: Vec<usize> = clients.iter().map(|c| t1.slot_of(address, c)).collect();
        let b2: Vec<usize> = clients.iter().map(|c| t2.slot_of(address, c)).collect();
        // another key, other buckets: nobody can compute which addresses share a victim's bucket
        assert_ne!(b1, b2);
        assert!(b1.iter().all(|&i| i < ADDRESS_SLOTS));
        let realm = t1.slot_of(Bucket::Realm("entra"), &clients[0]);
        assert!((ADDRESS_SLOTS..ADDRESS_SLOTS + REALM_SLOTS).contains(&realm), "realm buckets have their own region");
        assert_eq!(t1.slot_of(address, &clients[0]), t1.slot_of(address, &clients[0]));
        assert_ne!(t1.slot_of(address, &clients[0]), t1.slot_of(Bucket::Address { realm: "other" }, &clients[0]));
        assert!(t1.slot_of(Bucket::AddressWithoutRealm, &clients[0]) < ADDRESS_SLOTS);
    }

    #[test]
    fn the_file_is_fixed_size_private_and_reused() {
        let d = tempdir::Dir::new();
        let path = d.0.join("run").join(TABLE_FILE);
        let l = limits((4, 1), (100, 1));
        let c = Client::V4([192, 0, 2, 1]);
        let t = Table::open_or_create(&path).unwrap();
        assert_eq!(count_admitted(&t, "entra", &c, &l, T0, 3), 3);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), TABLE_LEN as u64);
        assert!(meta.blocks() * 512 >= TABLE_LEN as u64, "no holes: {} blocks", meta.blocks());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        // a second mapping (another process) sees the same buckets
        let again = Table::open_or_create(&path).unwrap();
        assert_eq!(count_admitted(&again, "entra", &c, &l, T0, 3), 1);
        // no temporary file is left
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // a file that is not ours (size, mode) is refused, not trusted or silently ignored
        drop((t, again));
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        assert_eq!(Table::open_or_create(&path).err().unwrap().code, Code::CacheIo);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(Table::open_or_create(&path).err().unwrap().code, Code::CacheIo);
    }

    #[test]
    fn a_table_owned_by_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to give the file away");
            return;
        }
        let d = tempdir::Dir::new();
        let path = d.0.join("run").join(TABLE_FILE);
        drop(Table::open_or_create(&path).unwrap());
        // nobody: whoever could write it could aim or switch off our budgets
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let e = Table::open_or_create(&path).err().unwrap();
        assert_eq!(e.code, Code::CacheIo);
        assert!(e.message.contains("owner 65534"), "{}", e.message);
    }

    #[test]
    fn a_full_tmpfs_refuses_the_table_instead_of_killing_the_process() {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to mount a tmpfs");
            return;
        }
        let d = tempdir::Dir::new();
        let small = d.0.join("small");
        std::fs::create_dir(&small).unwrap();
        // SAFETY: the child only unshares, mounts, maps, does atomics and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = std::panic::catch_unwind(|| {
                let c = |s: &[u8]| CString::new(s).unwrap();
                let (root, target, tmpfs, opts) = (c(b"/"), c(small.as_os_str().as_bytes()), c(b"tmpfs"), c(b"size=64k"));
                // SAFETY: a private mount namespace of this child only; valid C strings.
                unsafe {
                    if libc::unshare(libc::CLONE_NEWNS) != 0
                        || libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0
                        || libc::mount(tmpfs.as_ptr(), target.as_ptr(), tmpfs.as_ptr(), 0, opts.as_ptr().cast()) != 0
                    {
                        return 77;
                    }
                }
                // a tmpfs with 64 KiB left: the table cannot be allocated
                match Table::open_or_create(&small.join("run").join(TABLE_FILE)) {
                    Err(e) if e.code == Code::CacheIo => 0,
                    Err(_) => 2,
                    Ok(t) => {
                        // a sparse table: its slots' pages are allocated on first write, and
                        // one beyond the space left raises SIGBUS
                        let l = limits((5, 1), (5, 1));
                        for i in 0..4096u32 {
                            let _ = login(&t, "entra", &Client::V4(i.to_be_bytes()), &l, T0);
                        }
                        3
                    }
                }
            })
            .unwrap_or(1);
            // SAFETY: leaves the forked child without running the test harness's exit path.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(!libc::WIFSIGNALED(status), "the process was killed by signal {}", libc::WTERMSIG(status));
        match libc::WEXITSTATUS(status) {
            0 => {}
            77 => eprintln!("skipped: no mount namespace here"),
            c => panic!("child exit {c} (3: a table was made on a full tmpfs)"),
        }
    }

    #[test]
    fn processes_share_the_budget() {
        let d = tempdir::Dir::new();
        let path = d.0.join(TABLE_FILE);
        let l = limits((200, 1), (10_000, 1));
        let c = Client::V4([192, 0, 2, 77]);
        let counts = d.0.join("counts");
        std::fs::create_dir(&counts).unwrap();
        let mut children = Vec::new();
        for n in 0..4 {
            // SAFETY: the child only maps a file, does atomics, writes a file and _exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let code = std::panic::catch_unwind(|| {
                    let t = Table::open_or_create(&path).unwrap();
                    let got = count_admitted(&t, "entra", &c, &l, T0, 150);
                    std::fs::write(counts.join(n.to_string()), got.to_string()).unwrap();
                })
                .map_or(1, |_| 0);
                // SAFETY: leaves the forked child without running the test harness's exit path.
                unsafe { libc::_exit(code) };
            }
            children.push(pid);
        }
        for pid in children {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed");
        }
        let total: usize = (0..4).map(|n| std::fs::read_to_string(counts.join(n.to_string())).unwrap().parse::<usize>().unwrap()).sum();
        assert_eq!(total, 200, "4 processes × 150 calls share one burst of 200");
    }

    #[test]
    fn refilling_resumes_after_the_clock_went_back() {
        let (_d, t) = fresh();
        let l = limits((2, 60), (100, 60));
        let c = Client::V4([192, 0, 2, 1]);
        assert_eq!(count_admitted(&t, "entra", &c, &l, T0, 5), 2);
        // an hour back (a table kept across a reboot): the empty bucket refills from the new now,
        // not from when the clock catches up
        let back = T0 - 3600_000;
        assert_eq!(count_admitted(&t, "entra", &c, &l, back, 5), 0);
        assert_eq!(count_admitted(&t, "entra", &c, &l, back + 1000, 5), 1);
        assert_eq!(count_admitted(&t, "entra", &c, &l, back + 3000, 5), 2);
        // a bucket that still has tokens is spent at its stored time and refused at the earlier
        // one, then refills from there, never twice for the same interval
        let c2 = Client::V4([192, 0, 2, 2]);
        assert_eq!(count_admitted(&t, "entra", &c2, &l, T0, 1), 1);
        assert_eq!(count_admitted(&t, "entra", &c2, &l, back, 5), 1);
        assert_eq!(count_admitted(&t, "entra", &c2, &l, back + 1000, 5), 1);
    }

    #[test]
    fn the_clock_is_boot_time() {
        let a = clock_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = clock_ms();
        assert!(a > 0 && b >= a + 20 && b < a + 5000, "{a} {b}");
        // boot time, not Unix time (which is 1.7e12 ms and more)
        assert!(b < TIME_MASK);
    }
}
