//! The budget of anonymous work: every `auth_url`, `login` and `refuse_realm` call first takes
//! one token from the buckets of its client address (per realm; one set of buckets of the address
//! for all names that are no entraid realm): an IPv4 address has one, an IPv6 client one for each
//! of its /64, /56 and /48 (what one host, one customer and one site can pick addresses from), and
//! the call is refused with `request.rate_limited` (HTTP 429) when any is empty, before it reads
//! the state key, asks the IdP anything or consumes a state. A `login` takes one token from its
//! realm's bucket right before its token request, the one request with the app's credential, which
//! is what the realm budget bounds: only after its state was opened, its browser binding verified
//! and the state consumed, so calls that can never reach the token endpoint (a forged state, a
//! wrong binding key, a replay) cannot spend it. It looks at (without taking) the realm's bucket
//! before it consumes the state, so that while the realm's budget is spent a login is refused with
//! its state intact and its user can retry with it.
//!
//! The buckets are shared by all processes of the node (the endpoints are `protected`, so the
//! library runs in pvedaemon's workers, as root): a fixed-size file `<run_dir>/ratelimit.v3` on tmpfs, made once (0600, a random hash
//! key in its header) and mapped by every process; a bucket is one `u64` (time of its last
//! update, tokens left) updated by compare-and-swap. Time is `CLOCK_BOOTTIME`, shared by all
//! processes and never stepped (a wall clock stepped back an hour by NTP would otherwise leave
//! empty buckets refused for that hour); a stored time later than now counts as now. A charge
//! costs at most three keyed hashes and six atomic operations on the mapping plus one `stat` of
//! the file, whatever the attacker sends: the table never grows.
//! Address buckets are chosen by an HMAC of (realm, address range) under the file's key, so an
//! attacker cannot aim at someone else's bucket; two ranges that share a bucket only share its
//! budget (stricter, never looser). Each kind of bucket (address or /64, /56, /48, realm) lives
//! in its own region, so a bucket never draws on another kind's larger budget. No thread, no
//! lock file.
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
    /// Per client address (IPv4; IPv6: per /64) and realm.
    pub address: Budget,
    /// Per IPv6 /56 and realm, all its /64s together.
    pub ipv6_56: Budget,
    /// Per IPv6 /48 and realm, all its /56s together.
    pub ipv6_48: Budget,
    /// Per realm, all addresses together.
    pub realm: Budget,
}

impl Limits {
    /// The budget of `bucket` for `range` (one of [`Client::ranges`]; a realm's has one budget).
    pub fn budget(&self, bucket: Bucket, range: &Client) -> Budget {
        match (bucket, range) {
            (Bucket::Realm(_), _) => self.realm,
            (_, Client::V6Net { prefix: 56, .. }) => self.ipv6_56,
            (_, Client::V6Net { prefix: 48, .. }) => self.ipv6_48,
            _ => self.address,
        }
    }
}

/// A login is two calls (auth-url, login). An address: 30 logins at once, then one a second
/// (an office behind one NAT address signing in at 9:00 stays below it; a script hammering from
/// one address gets a call a second). An IPv6 client's /64 is such an address, but one customer
/// holds a /56 (256 /64s) or a /48 (65,536): its /56 gets twice an address's budget (60 logins at
/// once, then one a second) and its /48 four times (120 logins at once, then two a second),
/// enough for a whole site of admins signing in at once, and still less than a realm's budget in
/// burst and in refill, so that one customer's block, like one IPv4 address, cannot spend a realm's
/// budget however many /64s it uses. A realm (paid by a login's token request only): 300 logins
/// at once, then 2.5 a second: each login that reaches the token endpoint with a junk code costs
/// one token request with the app's credential, so this bounds what an attacker with many
/// addresses makes the node send to Microsoft under the app's name.
pub const DEFAULT_LIMITS: Limits = Limits {
    address: Budget { burst: 60, per_minute: 60 },
    ipv6_56: Budget { burst: 120, per_minute: 120 },
    ipv6_48: Budget { burst: 240, per_minute: 240 },
    realm: Budget { burst: 300, per_minute: 150 },
};

/// The largest burst a bucket holds (24 bits of milli-tokens).
pub const MAX_BURST: u32 = 16_000;
/// The table file in `run_dir`; the version changes with the layout.
pub const TABLE_FILE: &str = "ratelimit.v3";
const MAGIC: &[u8; 8] = b"PVEERL03";
const HEADER_LEN: usize = 64;
const KEY_LEN: usize = 32;
/// Regions of the table, one per kind of bucket (see [`Table::slot_of`]): IPv4 addresses and
/// IPv6 /64s share the largest; every IPv6 client has one /56 and one /48, so there are never
/// more of those in use than /64s.
const ADDRESS_SLOTS: usize = 1 << 16;
const IPV6_56_SLOTS: usize = 1 << 14;
const IPV6_48_SLOTS: usize = 1 << 14;
/// Realms share a slot only by chance of the keyed hash: for 10 realms about 1 % (birthday bound
/// 45 / 4096), and which ones changes with every table.
const REALM_SLOTS: usize = 4096;
const SLOTS: usize = ADDRESS_SLOTS + IPV6_56_SLOTS + IPV6_48_SLOTS + REALM_SLOTS;
/// 64 + 8 × 102,400 bytes = 800 KiB of tmpfs, whatever happens.
pub const TABLE_LEN: usize = HEADER_LEN + 8 * SLOTS;

/// A slot is `time << 24 | milli-tokens`: time in ms of `CLOCK_BOOTTIME` (40 bits: 34 years),
/// tokens in thousandths (24 bits). 0 is a bucket never used, i.e. full.
const TOKEN_BITS: u32 = 24;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;
const TIME_MASK: u64 = (1 << (64 - TOKEN_BITS)) - 1;
const MILLI: u64 = 1000;

/// A budget a call is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket<'a> {
    /// The client's in this entraid realm (one for each of its [`Client::ranges`]): every
    /// `auth_url` and `login` call pays it first.
    Address { realm: &'a str },
    /// The client's for a call naming a realm that is not an entraid realm (none, or one of
    /// another type; `refuse_realm`): one bucket per client range for all such names, so that
    /// made-up names gain an attacker nothing.
    AddressWithoutRealm,
    /// The realm's, all clients together: paid by a `login` right before its token request (see
    /// the module's documentation). Charging `auth_url` to it too would only make a realm-wide
    /// lockout cheaper for an attacker.
    Realm(&'a str),
}

/// A client address as it is bucketed: IPv4 (also v4-mapped IPv6) whole, IPv6 by a network (its
/// /64, and for [`Client::ranges`] the /56 and /48 around it), or unknown (all unknown callers
/// share one bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    V4([u8; 4]),
    /// The first 8 bytes of the network, those beyond `prefix` bits zero.
    V6Net { net: [u8; 8], prefix: u8 },
    Unknown,
}

/// The IPv6 networks around a client's /64 that its calls are charged to as well, narrowest first.
const IPV6_WIDER: [u8; 2] = [56, 48];

impl Client {
    pub fn parse(text: &str) -> Option<Client> {
        if text.is_empty() {
            return Some(Client::Unknown);
        }
        Some(match text.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Client::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.octets()),
                None => Client::V6Net { net: a.octets()[..8].try_into().ok()?, prefix: 64 },
            },
        })
    }

    /// The address ranges a call from this client is charged to, narrowest first: an IPv4
    /// address (or all unknown clients) alone; an IPv6 client's /64, /56 and /48.
    pub fn ranges(self) -> impl Iterator<Item = Client> {
        let wider: &'static [u8] = match self {
            Client::V6Net { prefix: 64, .. } => &IPV6_WIDER,
            _ => &[],
        };
        std::iter::once(self).chain(wider.iter().map(move |&p| self.within(p)))
    }

    /// The IPv6 network of `prefix` (48..=64) bits this client is in; itself when it is no IPv6 network.
    fn within(self, prefix: u8) -> Client {
        match self {
            Client::V6Net { net, .. } => {
                let mask = u64::MAX << (64 - u32::from(prefix.clamp(1, 64)));
                Client::V6Net { net: (u64::from_be_bytes(net) & mask).to_be_bytes(), prefix }
            }
            other => other,
        }
    }

    fn hash_input(&self) -> Vec<u8> {
        match self {
            Client::V4(a) => [&[4u8][..], a].concat(),
            Client::V6Net { net, prefix } => [&[6u8, *prefix][..], net].concat(),
            Client::Unknown => vec![0],
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            Client::V6Net { net, prefix } => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(net);
                write!(f, "{}/{prefix}", std::net::Ipv6Addr::from(full))
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
        debug_assert!(index < SLOTS);
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

    /// The slot index of `bucket` for the address range `range` (one of [`Client::ranges`];
    /// ignored for a realm's bucket), in the region of its kind.
    pub fn slot_of(&self, bucket: Bucket, range: &Client) -> usize {
        let (start, slots) = match (bucket, range) {
            (Bucket::Realm(_), _) => (ADDRESS_SLOTS + IPV6_56_SLOTS + IPV6_48_SLOTS, REALM_SLOTS),
            (_, Client::V6Net { prefix: 56, .. }) => (ADDRESS_SLOTS, IPV6_56_SLOTS),
            (_, Client::V6Net { prefix: 48, .. }) => (ADDRESS_SLOTS + IPV6_56_SLOTS, IPV6_48_SLOTS),
            _ => (0, ADDRESS_SLOTS),
        };
        start + match bucket {
            Bucket::Address { realm } => self.keyed_index(&[b"address", realm.as_bytes(), &range.hash_input()], slots),
            Bucket::AddressWithoutRealm => self.keyed_index(&[b"address without realm", &range.hash_input()], slots),
            Bucket::Realm(realm) => self.keyed_index(&[b"realm", realm.as_bytes()], slots),
        }
    }

    /// What a call of `bucket` from `client` pays, narrowest range first: (range, slot, budget)
    /// for each of the client's ranges, or the realm's one bucket.
    fn charges(&self, bucket: Bucket, client: &Client, limits: &Limits) -> [Option<(Client, &AtomicU64, Budget)>; 1 + IPV6_WIDER.len()] {
        let ranges = client.ranges().take(if matches!(bucket, Bucket::Realm(_)) { 1 } else { usize::MAX });
        let mut charges = [None; 1 + IPV6_WIDER.len()];
        for (charge, range) in charges.iter_mut().zip(ranges) {
            *charge = Some((range, self.slot(self.slot_of(bucket, &range)), limits.budget(bucket, &range)));
        }
        charges
    }

    /// Takes one call from `bucket` (for the address buckets, from each of `client`'s ranges),
    /// or names the range whose bucket is empty (`client` for a realm's) and takes nothing: a
    /// call refused by its /48 spends none of its /64's budget, one refused by its /64 none of
    /// the wider ones'. (When another process empties a bucket in between, the narrower ones
    /// have paid: stricter, never looser.) `now_ms` is [`clock_ms`].
    pub fn admit(&self, bucket: Bucket, client: &Client, limits: &Limits, now_ms: u64) -> std::result::Result<(), Client> {
        let now = slot_time(now_ms);
        let charges = self.charges(bucket, client, limits);
        for take in [false, true] {
            for (range, slot, budget) in charges.iter().flatten() {
                if !step(slot, *budget, now, take) {
                    return Err(*range);
                }
            }
        }
        Ok(())
    }

    /// Whether `bucket` holds a call now (for the address buckets, each of `client`'s ranges),
    /// without taking it: else the range whose bucket is empty, as [`Table::admit`] names it.
    pub fn peek(&self, bucket: Bucket, client: &Client, limits: &Limits, now_ms: u64) -> std::result::Result<(), Client> {
        let now = slot_time(now_ms);
        for (range, slot, budget) in self.charges(bucket, client, limits).iter().flatten() {
            if !step(slot, *budget, now, false) {
                return Err(*range);
            }
        }
        Ok(())
    }
}

/// A time as slots store it: never 0 (a fresh slot), at most 40 bits.
fn slot_time(now_ms: u64) -> u64 {
    now_ms.clamp(1, TIME_MASK)
}

/// One token-bucket step on a shared slot: whether it holds a call now, and with `take` takes
/// it. Lock-free, retried only when another process changed the slot in between.
fn step(slot: &AtomicU64, budget: Budget, now: u64, take: bool) -> bool {
    let capacity = u64::from(budget.burst.min(MAX_BURST)) * MILLI;
    let mut old = slot.load(Ordering::Acquire);
    loop {
        let (then, tokens) = if old == 0 { (now, capacity) } else { (old >> TOKEN_BITS, old & TOKEN_MASK) };
        // A time later than now (a table from before a reboot, when /run is not tmpfs) counts as
        // now: refused calls move it back to now, so refilling resumes from there.
        let elapsed = now.saturating_sub(then).min(u64::from(u32::MAX));
        let tokens = (tokens + elapsed * u64::from(budget.per_minute) * MILLI / 60_000).min(capacity);
        let holds = tokens >= MILLI;
        let new = if holds && take {
            // never move a slot's time back: a process that read the clock a moment earlier
            // must not make the next caller's refill count twice
            now.max(then) << TOKEN_BITS | (tokens - MILLI)
        } else if !holds && then > now {
            now << TOKEN_BITS | tokens
        } else {
            return holds;
        };
        match slot.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return holds,
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
        ipv6_56: budget_of(given.ipv6_56, "ipv6_56", DEFAULT_LIMITS.ipv6_56)?,
        ipv6_48: budget_of(given.ipv6_48, "ipv6_48", DEFAULT_LIMITS.ipv6_48)?,
        realm: budget_of(given.realm, "realm", DEFAULT_LIMITS.realm)?,
    })
}

/// The entry points' admission: with a `run_dir` (the Perl side always gives one), one call of
/// `bucket` (for the address buckets, from each range of `client_address`), else
/// `request.rate_limited`. Without `run_dir` (library tests, tools) nothing is limited.
pub fn admit(caller: &Caller, bucket: Bucket) -> Result<()> {
    ask(caller, bucket, Table::admit)
}

/// Like [`admit`], but takes nothing: whether `bucket` holds a call now.
pub fn peek(caller: &Caller, bucket: Bucket) -> Result<()> {
    ask(caller, bucket, Table::peek)
}

fn ask(caller: &Caller, bucket: Bucket, how: fn(&Table, Bucket, &Client, &Limits, u64) -> std::result::Result<(), Client>) -> Result<()> {
    let Some(dir) = caller.run_dir else { return Ok(()) };
    if !dir.starts_with('/') {
        return Err(invalid("`run_dir` must be an absolute path"));
    }
    let client = Client::parse(caller.client_address).ok_or_else(|| invalid("`client_address` must be an IP address"))?;
    let limits = limits_of(caller.rate_limits)?;
    let table = table(&Path::new(dir).join(TABLE_FILE))?;
    let Err(range) = how(&table, bucket, &client, &limits, clock_ms()) else { return Ok(()) };
    let b = limits.budget(bucket, &range);
    let from = if range == client { format!("client {client}") } else { format!("clients in {range} (this one: {client})") };
    let whose = match bucket {
        Bucket::Address { .. } => format!("anonymous calls from {from}"),
        Bucket::AddressWithoutRealm => format!("anonymous calls naming no entraid realm from {from}"),
        Bucket::Realm(realm) => format!("token requests of realm {realm} from all clients (this one: {client})"),
    };
    Err(Error::new(Code::RequestRateLimited, format!("too many {whose}: budget {} calls, refilled {} a minute", b.burst, b.per_minute)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const T0: u64 = 1_000_000_000;

    fn budget((burst, per_minute): (u32, u32)) -> Budget {
        Budget { burst, per_minute }
    }

    /// Budgets of an address and a realm; the wider IPv6 ranges do not get in the way.
    fn limits(a: (u32, u32), r: (u32, u32)) -> Limits {
        let wide = budget((MAX_BURST, MAX_BURST));
        Limits { address: budget(a), ipv6_56: wide, ipv6_48: wide, realm: budget(r) }
    }

    fn ip(text: &str) -> Client {
        Client::parse(text).unwrap()
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
        t.admit(Bucket::Address { realm }, c, l, now).map_err(|_| "address")?;
        t.admit(Bucket::Realm(realm), c, l, now).map_err(|_| "realm")
    }

    fn calls_admitted(t: &Table, bucket: Bucket, c: &Client, l: &Limits, now: u64, n: usize) -> usize {
        (0..n).filter(|_| t.admit(bucket, c, l, now).is_ok()).count()
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
        // (one whose address bucket no address above shares: with 101 of 65,536 taken, a
        // shared one is the rare, stricter case this test is not about)
        let taken: Vec<usize> = std::iter::once(one).chain((0..100u8).map(|i| Client::V4([203, 0, 113, i])))
            .map(|c| t.slot_of(Bucket::Address { realm: "entra" }, &c)).collect();
        let fresh_client = (0..=255u8).map(|i| Client::V4([192, 0, 2, i]))
            .find(|c| !taken.contains(&t.slot_of(Bucket::Address { realm: "entra" }, c))).unwrap();
        assert_eq!(login(&t, "entra", &fresh_client, &l, T0), Err("realm"));
        assert!(t.admit(Bucket::Address { realm: "entra" }, &fresh_client, &l, T0).is_ok());
        let l2 = limits((1000, 1), (3, 1));
        let c = Client::parse("192.0.2.201").unwrap();
        assert_eq!(calls_admitted(&t, Bucket::Address { realm: "third" }, &c, &l2, T0, 10), 10);
        assert_eq!(count_admitted(&t, "third", &c, &l2, T0, 10), 3);
    }

    #[test]
    fn names_of_no_entraid_realm_share_one_budget_per_address() {
        let (_d, t) = fresh();
        let l = limits((5, 1), (1000, 1));
        let a = Client::parse("198.51.100.9").unwrap();
        // however many names are made up (`pam`, `nosuch`, `x1`, `x2`...), the address gets its burst once
        let bucket = Bucket::AddressWithoutRealm;
        assert_eq!(calls_admitted(&t, bucket, &a, &l, T0, 50), 5);
        assert_eq!(t.admit(bucket, &a, &l, T0 + 500), Err(a));
        assert!(t.admit(bucket, &a, &l, T0 + MIN).is_ok(), "refilled at its rate");
        // its calls to an entraid realm, and other addresses, have budgets of their own
        assert_eq!(count_admitted(&t, "entra", &a, &l, T0, 50), 5);
        assert_eq!(calls_admitted(&t, bucket, &ip("198.51.100.10"), &l, T0, 50), 5);
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
    fn an_ipv6_client_is_charged_to_its_64_56_and_48() {
        let ranges: Vec<String> = ip("2001:db8:1:2ff:aaaa::1").ranges().map(|r| r.to_string()).collect();
        assert_eq!(ranges, ["2001:db8:1:2ff::/64", "2001:db8:1:200::/56", "2001:db8:1::/48"]);
        // IPv4 (also v4-mapped) and unknown clients are one range
        assert_eq!(ip("::ffff:192.0.2.9").ranges().collect::<Vec<_>>(), [Client::V4([192, 0, 2, 9])]);
        assert_eq!(ip("").ranges().collect::<Vec<_>>(), [Client::Unknown]);

        let (_d, t) = fresh();
        let l = Limits { address: budget((3, 1)), ipv6_56: budget((10, 1)), ipv6_48: budget((25, 1)), realm: budget((1000, 1)) };
        let address = Bucket::Address { realm: "entra" };
        // one customer's /56: 40 of its 256 /64s, each below its own budget, get the /56's 10
        let net56 = |n: u32, i: u32| -> usize { (0..40).map(|k| calls_admitted(&t, address, &ip(&format!("2001:db8:1:{:x}::{i:x}", n * 256 + k)), &l, T0, 5)).sum() };
        assert_eq!(net56(0, 1), 10);
        let refused = t.admit(address, &ip("2001:db8:1:7::1"), &l, T0);
        assert_eq!(refused.map_err(|r| r.to_string()), Err("2001:db8:1::/56".to_string()), "the refusal names the range");
        // its site's other /56s have their own, until the /48's 25 are spent
        assert_eq!(net56(1, 1), 10);
        assert_eq!(net56(2, 1), 5);
        assert_eq!(net56(3, 1), 0);
        assert_eq!(t.admit(address, &ip("2001:db8:1:3ff::1"), &l, T0).map_err(|r| r.to_string()), Err("2001:db8:1::/48".to_string()));
        // another /48, an IPv4 address and another realm are not affected
        assert_eq!(calls_admitted(&t, address, &ip("2001:db8:2::1"), &l, T0, 5), 3);
        assert_eq!(calls_admitted(&t, address, &ip("192.0.2.1"), &l, T0, 5), 3);
        assert_eq!(calls_admitted(&t, Bucket::Address { realm: "other" }, &ip("2001:db8:1:3ff::1"), &l, T0, 5), 3);
        // names of no entraid realm: the same ranges, a set of buckets of their own
        let without = Bucket::AddressWithoutRealm;
        let spent: usize = (0..40).map(|k| calls_admitted(&t, without, &ip(&format!("2001:db8:5:{k:x}::1")), &l, T0, 5)).sum();
        assert_eq!(spent, 10);
    }

    #[test]
    fn a_refused_call_spends_nothing() {
        let (_d, t) = fresh();
        // the /56 refills a call every 10 ms, a /64 one a minute
        let l = Limits { address: budget((3, 1)), ipv6_56: budget((5, 6000)), ipv6_48: budget((1000, 1)), realm: budget((1000, 1)) };
        let address = Bucket::Address { realm: "entra" };
        // a /64 flooding beyond its budget takes nothing more from its /56...
        assert_eq!(calls_admitted(&t, address, &ip("2001:db8:1:1::1"), &l, T0, 100), 3);
        assert_eq!(calls_admitted(&t, address, &ip("2001:db8:1:2::1"), &l, T0, 100), 2, "the /56's 5 less the first /64's 3");
        // ...and calls refused by the /56 take nothing from their /64: once the /56 refilled,
        // this /64 has its whole budget
        let other = ip("2001:db8:1:3::1");
        assert_eq!(calls_admitted(&t, address, &other, &l, T0, 100), 0);
        assert_eq!(calls_admitted(&t, address, &other, &l, T0 + 100, 100), 3);
        // a realm's peek takes nothing, and a spent one refuses the peek too
        let l = limits((1000, 1), (2, 1));
        let c = ip("192.0.2.1");
        assert!((0..10).all(|_| t.peek(Bucket::Realm("entra"), &c, &l, T0).is_ok()));
        assert_eq!(calls_admitted(&t, Bucket::Realm("entra"), &c, &l, T0, 10), 2);
        assert_eq!(t.peek(Bucket::Realm("entra"), &c, &l, T0), Err(c));
        assert!(t.peek(Bucket::Realm("entra"), &c, &l, T0 + MIN).is_ok(), "refilled");
        // likewise every range of an address
        let v6 = ip("2001:db8:9::1");
        let l = limits((2, 1), (1000, 1));
        assert!((0..10).all(|_| t.peek(address, &v6, &l, T0).is_ok()));
        assert_eq!(calls_admitted(&t, address, &v6, &l, T0, 10), 2);
        assert_eq!(t.peek(address, &v6, &l, T0), Err(v6));
    }

    /// The defaults: one IPv6 customer (however many of its /48's /64s it uses), like one IPv4
    /// address, cannot spend a realm's budget, at once or in the long run.
    #[test]
    fn one_ipv6_site_cannot_spend_a_realm_budget() {
        let d = DEFAULT_LIMITS;
        // in logins (two address calls, one realm call each)
        assert!(d.address.burst < d.ipv6_56.burst && d.ipv6_56.burst < d.ipv6_48.burst);
        assert!(d.ipv6_48.burst / 2 < d.realm.burst && d.ipv6_48.per_minute / 2 < d.realm.per_minute);
        let (_d, t) = fresh();
        let address = Bucket::Address { realm: "entra" };
        let (mut logins, mut refused_by_realm) = (0, 0);
        // 10 minutes, 20 logins a second, each from another /64 of one /48
        for second in 0..600u64 {
            for i in 0..20u64 {
                let c = ip(&format!("2001:db8:7:{:x}::1", (second * 20 + i) % 65536));
                let now = T0 + second * 1000;
                if t.admit(address, &c, &d, now).is_err() || t.admit(address, &c, &d, now).is_err() {
                    continue;
                }
                match t.admit(Bucket::Realm("entra"), &c, &d, now) {
                    Ok(()) => logins += 1,
                    Err(_) => refused_by_realm += 1,
                }
            }
        }
        assert_eq!(refused_by_realm, 0);
        // the /48's burst, then its refill (two logins a second); the realm keeps the rest
        assert!((1300..=1330).contains(&logins), "{logins} logins");
        assert!(t.peek(Bucket::Realm("entra"), &ip("192.0.2.1"), &d, T0 + 600_000).is_ok());
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
        // each kind of bucket has a region of its own: none draws on another kind's budget
        let v6: Vec<Client> = ip("2001:db8:1:2::1").ranges().collect();
        let regions: Vec<usize> = v6.iter().map(|r| t1.slot_of(address, r)).collect();
        assert!(regions[0] < ADDRESS_SLOTS, "a /64 is an address");
        assert!((ADDRESS_SLOTS..ADDRESS_SLOTS + IPV6_56_SLOTS).contains(&regions[1]), "/56");
        assert!((ADDRESS_SLOTS + IPV6_56_SLOTS..ADDRESS_SLOTS + IPV6_56_SLOTS + IPV6_48_SLOTS).contains(&regions[2]), "/48");
        let realm = t1.slot_of(Bucket::Realm("entra"), &clients[0]);
        assert!((SLOTS - REALM_SLOTS..SLOTS).contains(&realm), "realm buckets have their own region");
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
