//! Discovery document and JWKS of the tenant, cached in process memory and on disk per realm
//! (24 h). A JWKS is refetched on an unknown `kid` at most once per 5 minutes, and the last good
//! documents are kept when a fetch fails, so an Entra hiccup does not stop logins. A failed fetch
//! is remembered for a minute, in memory and beside the disk copy (so pvedaemon's pre-forked
//! workers all see it): meanwhile the stale copy is served (or the failure repeated at once), so
//! an unreachable Entra holds one worker for a timeout once a minute, not every worker on each
//! anonymous call.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::ops::Deref;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openidconnect::core::{CoreJwsSigningAlgorithm, CoreProviderMetadata};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::RealmConfig;
use crate::error::{Code, Error, Result};
use crate::http::{display_url, Transport, MAX_METADATA_BODY};
use crate::jwt::{b64url_decode, RsaPublicKey};
use crate::store;

pub const CACHE_TTL_SECS: u64 = 24 * 3600;
pub const UNKNOWN_KID_REFETCH_SECS: u64 = 300;
/// A failed discovery or JWKS fetch is not retried for this long (negative cache).
pub const FAILURE_RETRY_SECS: u64 = 60;
/// A shared failure record is a few dozen bytes; a larger file is no record.
const FAILURE_FILE_MAX: u64 = 1024;

/// The endpoints we use from the discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// Concrete issuer, or Entra's multi-tenant template containing `{tenantid}`.
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// One usable signing key, parsed once when its JWKS is read; cloning shares it.
#[derive(Clone, Debug)]
pub struct Jwk(Arc<JwkData>);

#[derive(Debug)]
pub struct JwkData {
    pub kid: String,
    /// Modulus and exponent as ring verifies with them.
    pub key: RsaPublicKey,
    /// Entra's per-key `issuer` member (may be the `{tenantid}` template).
    pub issuer: Option<String>,
}

impl Deref for Jwk {
    type Target = JwkData;
    fn deref(&self) -> &JwkData {
        &self.0
    }
}

/// A parsed key set, shared between the cache and its readers.
pub type KeySet = Arc<[Jwk]>;

#[derive(Clone)]
struct Cached<T> {
    value: T,
    fetched_at: u64,
}

/// One cached document: the last good copy, and the last failed fetch and when it happened.
struct Slot<T> {
    cached: Option<Cached<T>>,
    failure: Option<(u64, Error)>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { cached: None, failure: None }
    }
}

#[derive(Default)]
struct Entry {
    provider: Slot<Provider>,
    keys: Slot<KeySet>,
    /// When an unknown kid last made us refetch the JWKS (success or not).
    kid_refetch_at: Option<u64>,
}

/// The two documents a realm caches, read the same way (see [`Discovery::document`]).
struct Document<T> {
    /// Names the disk copy (`<realm>.<disk>.json`).
    disk: &'static str,
    /// Names the document in error messages.
    label: &'static str,
    slot: fn(&mut Entry) -> &mut Slot<T>,
}

const PROVIDER: Document<Provider> = Document { disk: "discovery", label: "discovery", slot: |e| &mut e.provider };
const KEYS: Document<KeySet> = Document { disk: "jwks", label: "JWKS", slot: |e| &mut e.keys };

/// Only failures that cost a timeout or cannot be fixed by retrying at once are remembered: an
/// unreachable, silent or untrusted IdP. A bad answer is cheap and is retried on the next call.
fn remembered(code: Code) -> bool {
    matches!(code, Code::IdpUnreachable | Code::IdpTimeout | Code::IdpTls)
}

/// The error of a fetch that failed less than [`FAILURE_RETRY_SECS`] ago.
fn recent_failure(failure: &Option<(u64, Error)>, now: u64) -> Option<Error> {
    failure.as_ref().filter(|(at, _)| *at <= now && now - at < FAILURE_RETRY_SECS).map(|(_, e)| e.clone())
}

/// Process-wide cache keyed by discovery URL. A plain Mutex: no threads are started, and the
/// lock is never held across network I/O.
static MEMORY: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);

fn with_entry<R>(key: &str, f: impl FnOnce(&mut Entry) -> R) -> R {
    let mut guard = MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    // One hash of the key when it is there (this runs on every validation); copied only the
    // first time.
    if let Some(entry) = map.get_mut(key) {
        return f(entry);
    }
    f(map.entry(key.to_string()).or_default())
}

/// Parses and checks a discovery document. `allow_http` only for loopback test authorities.
///
/// The document is read as openidconnect's provider metadata, but not through its `discover()`:
/// that insists on issuer == discovery URL, while Entra's organizations/common documents name
/// the template issuer `https://login.microsoftonline.com/{tenantid}/v2.0`, which
/// [`crate::claims`] resolves against the token's `tid`.
pub fn parse_provider(doc: &Value, allow_http: bool) -> Result<Provider> {
    let bad = |why: String| Error::new(Code::DiscoveryInvalid, format!("discovery document: {why}"));
    if !doc.is_object() {
        return Err(bad("not a JSON object".into()));
    }
    // Name the first required member that is absent (clearer than serde's message).
    for k in ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"] {
        if doc.get(k).and_then(Value::as_str).is_none() {
            return Err(bad(format!("`{k}` is missing")));
        }
    }
    // OpenID Discovery requires these three lists, which we have never needed (and the
    // library never required): an absent one is read as unstated, not as an error.
    let mut doc = doc.clone();
    for (k, default) in [
        ("response_types_supported", json!(["code"])),
        ("subject_types_supported", json!(["pairwise"])),
        ("id_token_signing_alg_values_supported", json!(["RS256"])),
    ] {
        if doc.get(k).is_none() {
            doc[k] = default;
        }
    }
    let meta = CoreProviderMetadata::deserialize(&doc).map_err(|e| bad(format!("not valid provider metadata: {e}")))?;
    let url = |k: &str, v: &str| -> Result<String> {
        if v.starts_with("https://") || (allow_http && v.starts_with("http://")) {
            Ok(v.to_string())
        } else {
            Err(bad(format!("`{k}` is not an https URL")))
        }
    };
    if !meta.id_token_signing_alg_values_supported().contains(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256) {
        return Err(bad("RS256 is not among id_token_signing_alg_values_supported".into()));
    }
    let token_endpoint = meta.token_endpoint().ok_or_else(|| bad("`token_endpoint` is missing".into()))?;
    Ok(Provider {
        issuer: url("issuer", meta.issuer().as_str())?,
        authorization_endpoint: url("authorization_endpoint", meta.authorization_endpoint().as_str())?,
        token_endpoint: url("token_endpoint", token_endpoint.as_str())?,
        jwks_uri: url("jwks_uri", meta.jwks_uri().as_str())?,
    })
}

/// Parses a JWKS, keeping the RSA signing keys. Entra's keys carry no `alg`; a key that names an
/// algorithm other than RS256, or is meant for encryption, is skipped.
pub fn parse_jwks(doc: &Value) -> Result<Vec<Jwk>> {
    // ring accepts 2048..8192-bit moduli; anything outside cannot verify, so it is not kept.
    let usable = |n: &[u8], e: &[u8]| (256..=1024).contains(&n.len()) && (1..=4).contains(&e.len());
    let strip = |mut v: Vec<u8>| {
        let zeros = v.iter().take_while(|b| **b == 0).count();
        v.drain(..zeros);
        v
    };
    let bad = |why: &str| Error::new(Code::JwksInvalid, format!("JWKS: {why}"));
    let keys = doc.get("keys").and_then(Value::as_array).ok_or_else(|| bad("`keys` is missing"))?;
    let mut out = Vec::new();
    for k in keys {
        let s = |name: &str| k.get(name).and_then(Value::as_str);
        if s("kty") != Some("RSA") || !matches!(s("use"), None | Some("sig")) || !matches!(s("alg"), None | Some("RS256")) {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (s("kid"), s("n").and_then(b64url_decode), s("e").and_then(b64url_decode)) else {
            continue;
        };
        let (n, e) = (strip(n), strip(e));
        if !usable(&n, &e) {
            continue;
        }
        let key = RsaPublicKey { n, e };
        out.push(Jwk(Arc::new(JwkData { kid: kid.to_string(), key, issuer: s("issuer").map(str::to_string) })));
    }
    if out.is_empty() {
        return Err(bad("no usable RSA signing key"));
    }
    Ok(out)
}

fn parse_key_set(doc: &Value) -> Result<KeySet> {
    parse_jwks(doc).map(KeySet::from)
}

/// Access to the cached metadata of one realm, at one instant.
pub struct Discovery<'a> {
    pub cfg: &'a RealmConfig,
    pub realm: &'a str,
    pub cache_dir: Option<&'a Path>,
    pub http: &'a dyn Transport,
    pub now: u64,
}

impl Discovery<'_> {
    fn memory_key(&self) -> String {
        self.cfg.discovery_url()
    }

    fn disk_path(&self, what: &str) -> Option<PathBuf> {
        self.cache_dir.map(|d| d.join(format!("{}.{what}.json", self.realm)))
    }

    fn fresh(&self, fetched_at: u64) -> bool {
        fetched_at <= self.now && self.now - fetched_at < CACHE_TTL_SECS
    }

    /// Reads `{"source", "fetched_at", "document"}` from disk; anything odd counts as absent.
    fn read_disk(&self, what: &str, source: &str) -> Option<(Value, u64)> {
        let bytes = std::fs::read(self.disk_path(what)?).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        if v.get("source")?.as_str()? != source {
            return None;
        }
        Some((v.get("document")?.clone(), v.get("fetched_at")?.as_u64()?))
    }

    fn write_disk(&self, what: &str, source: &str, doc: &Value) {
        if let Some(path) = self.disk_path(what) {
            let body = json!({"source": source, "fetched_at": self.now, "document": doc}).to_string();
            // The disk copy only saves a fetch; failing to write it must not fail a login.
            let _ = store::write_atomic(&path, body.as_bytes(), 0o644);
        }
    }

    /// The failed fetch of `source` that a process of the node recorded last, as (time, code):
    /// `<realm>.<what>.failed.json` = `{"source", "at", "code"}`. Read as at most
    /// [`FAILURE_FILE_MAX`] bytes of a regular file (no link, no FIFO); only a remembered code at
    /// a time not in the future counts. Anything else is no record: the fetch is tried, as
    /// without the file, so a hostile or broken file can at most cost that fetch.
    fn read_failure(&self, what: &str, source: &str) -> Option<(u64, Code)> {
        let path = self.disk_path(&format!("{what}.failed"))?;
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > FAILURE_FILE_MAX {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(FAILURE_FILE_MAX).read_to_end(&mut bytes).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        if v.get("source")?.as_str()? != source {
            return None;
        }
        let code = Code::from_str_code(v.get("code")?.as_str()?).filter(|c| remembered(*c))?;
        let at = v.get("at")?.as_u64().filter(|at| *at <= self.now)?;
        Some((at, code))
    }

    /// Records a failed fetch of `source` for the node's other processes (`None`: the last one
    /// did not fail, or failed in a way that is retried at once). Failing to write it costs only
    /// their own attempt.
    fn write_failure(&self, what: &str, source: &str, code: Option<Code>) {
        let Some(path) = self.disk_path(&format!("{what}.failed")) else { return };
        let _ = match code {
            Some(code) => store::write_atomic(&path, json!({"source": source, "at": self.now, "code": code.as_str()}).to_string().as_bytes(), 0o644),
            None => std::fs::remove_file(&path),
        };
    }

    /// A failure of `source` that another process recorded less than a minute ago, now also
    /// remembered here. An older one is claimed before this process retries: its time becomes
    /// now, so the others keep answering from it meanwhile instead of each waiting for the same
    /// hanging endpoint.
    fn shared_failure<T>(&self, doc: &Document<T>, source: &str) -> Option<Error> {
        let (at, code) = self.read_failure(doc.disk, source)?;
        if self.now - at >= FAILURE_RETRY_SECS {
            self.write_failure(doc.disk, source, Some(code));
            return None;
        }
        let err = Error::new(code, format!("{} request to {} failed {} s ago ({}); not retried before a minute has passed",
            doc.label, display_url(source), self.now - at, code.as_str()));
        with_entry(&self.memory_key(), |e| (doc.slot)(e).failure = Some((at, err.clone())));
        Some(err)
    }

    fn fetch(&self, url: &str, what: &str) -> Result<Value> {
        let resp = self.http.get(url, MAX_METADATA_BODY)?;
        if resp.status != 200 {
            return Err(Error::new(
                Code::IdpError,
                format!("{what} request to {} answered HTTP {}", display_url(url), resp.status),
            )
            .with_status(resp.status)
            .with_hint("check the tenant and the cloud of the realm"));
        }
        serde_json::from_slice(&resp.body).map_err(|_| {
            Error::new(Code::IdpBadResponse, format!("{what} from {} is not JSON", display_url(url)))
        })
    }

    /// A cached document from `source`: memory, then disk, then network; a stale copy if the
    /// network fails (or failed less than a minute ago, when the network is not tried again).
    fn document<T: Clone>(&self, doc: &Document<T>, source: &str, parse: impl Fn(&Value) -> Result<T>) -> Result<T> {
        let key = self.memory_key();
        let (cached, failure) = with_entry(&key, |e| {
            let slot = (doc.slot)(e);
            (slot.cached.clone(), recent_failure(&slot.failure, self.now))
        });
        if let Some(c) = &cached {
            if self.fresh(c.fetched_at) {
                return Ok(c.value.clone());
            }
        }
        let mut stale = cached.map(|c| c.value);
        if let Some((text, at)) = self.read_disk(doc.disk, source) {
            if let Ok(value) = parse(&text) {
                let newer = with_entry(&key, |e| {
                    let slot = &mut (doc.slot)(e).cached;
                    let newer = slot.as_ref().is_none_or(|c| at > c.fetched_at);
                    if newer {
                        *slot = Some(Cached { value: value.clone(), fetched_at: at });
                    }
                    newer
                });
                if self.fresh(at) {
                    return Ok(value);
                }
                if newer || stale.is_none() {
                    stale = Some(value);
                }
            }
        }
        if let Some(err) = failure.or_else(|| self.shared_failure(doc, source)) {
            return stale.ok_or(err);
        }
        self.refetch(doc, source, parse).or_else(|err| stale.ok_or(err))
    }

    /// Fetches a document from the network, then keeps it in memory and on disk; a failure that
    /// is worth not repeating is remembered, here and for the node's other processes.
    fn refetch<T: Clone>(&self, doc: &Document<T>, source: &str, parse: impl Fn(&Value) -> Result<T>) -> Result<T> {
        let fetched = self.fetch(source, doc.label).and_then(|text| Ok((parse(&text)?, text)));
        match fetched {
            Ok((value, text)) => {
                // the good copy first: no process finds neither it nor the failure
                self.write_disk(doc.disk, source, &text);
                self.write_failure(doc.disk, source, None);
                with_entry(&self.memory_key(), |e| {
                    *(doc.slot)(e) = Slot { cached: Some(Cached { value: value.clone(), fetched_at: self.now }), failure: None };
                });
                Ok(value)
            }
            Err(err) => {
                let code = Some(err.code).filter(|c| remembered(*c));
                // a claimed retry that failed otherwise is retried at once again, as before it
                self.write_failure(doc.disk, source, code);
                if code.is_some() {
                    with_entry(&self.memory_key(), |e| (doc.slot)(e).failure = Some((self.now, err.clone())));
                }
                Err(err)
            }
        }
    }

    /// The provider metadata (cached, or fetched; the last good copy when fetching fails).
    pub fn provider(&self) -> Result<Provider> {
        let allow_http = self.cfg.allows_http();
        self.document(&PROVIDER, &self.memory_key(), |doc| parse_provider(doc, allow_http))
    }

    /// The current key set (cached, or fetched; the last good set when fetching fails). Shared,
    /// not copied: the keys were parsed once when the JWKS was read.
    pub fn keys(&self) -> Result<KeySet> {
        // Fresh keys in memory need no provider metadata (the common case, per validation).
        let fresh = with_entry(&self.memory_key(), |e| {
            (KEYS.slot)(e).cached.as_ref().filter(|c| self.fresh(c.fetched_at)).map(|c| c.value.clone())
        });
        if let Some(keys) = fresh {
            return Ok(keys);
        }
        let provider = self.provider()?;
        self.document(&KEYS, &provider.jwks_uri, parse_key_set)
    }

    /// The key for `kid`. An unknown kid (Entra rotated its keys) triggers one synchronous
    /// refetch, rate-limited to once per 5 minutes so forged kids cannot make us hammer Entra.
    pub fn key(&self, kid: &str) -> Result<Jwk> {
        if let Some(k) = self.keys()?.iter().find(|k| k.kid == kid) {
            return Ok(k.clone());
        }
        let key = self.memory_key();
        let may_refetch = with_entry(&key, |e| {
            let allowed = e.kid_refetch_at.is_none_or(|last| self.now >= last + UNKNOWN_KID_REFETCH_SECS);
            if allowed {
                e.kid_refetch_at = Some(self.now);
            }
            allowed
        });
        let unknown = || {
            Error::new(Code::TokenUnknownKid, format!("ID token key id '{}' is not in the tenant's JWKS", crate::error::sanitize(kid)))
        };
        if !may_refetch {
            return Err(unknown());
        }
        let provider = self.provider()?;
        match self.refetch(&KEYS, &provider.jwks_uri, parse_key_set) {
            Ok(keys) => keys.iter().find(|k| k.kid == kid).cloned().ok_or_else(unknown),
            Err(_) => Err(unknown()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::HttpResponse;
    use std::sync::Mutex;
    use std::collections::VecDeque;

    /// The captured Entra documents (provenance in their SOURCES.txt).
    pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/entra");

    pub fn fixture(name: &str) -> Value {
        let path = format!("{FIXTURES}/{name}");
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
    }

    /// Serves canned answers by URL and counts requests; `fail` makes every request fail.
    #[derive(Default)]
    pub struct FakeIdp {
        pub docs: Mutex<HashMap<String, VecDeque<Value>>>,
        pub requests: Mutex<Vec<String>>,
        pub fail: Mutex<bool>,
    }

    impl FakeIdp {
        pub fn serve(&self, url: &str, doc: Value) {
            self.docs.lock().unwrap().entry(url.to_string()).or_default().push_back(doc);
        }
        pub fn count(&self) -> usize {
            self.requests.lock().unwrap().len()
        }
    }

    impl Transport for FakeIdp {
        fn get(&self, url: &str, _cap: u64) -> Result<HttpResponse> {
            self.requests.lock().unwrap().push(url.to_string());
            if *self.fail.lock().unwrap() {
                return Err(Error::new(Code::IdpUnreachable, "down"));
            }
            let mut docs = self.docs.lock().unwrap();
            let q = docs.get_mut(url).ok_or_else(|| Error::new(Code::IdpError, "404"))?;
            // The last document stays served; earlier ones are consumed in order.
            let doc = if q.len() > 1 { q.pop_front().unwrap() } else { q.front().unwrap().clone() };
            Ok(HttpResponse { status: 200, body: doc.to_string().into_bytes() })
        }
        fn post_form(&self, url: &str, _f: &[(&str, &str)], _c: u64) -> Result<HttpResponse> {
            self.requests.lock().unwrap().push(url.to_string());
            Err(Error::new(Code::IdpUnreachable, "not in this fake"))
        }
        fn post_json(&self, url: &str, _b: &str, _d: &str, _c: u64) -> Result<HttpResponse> {
            self.post_form(url, &[], 0)
        }
    }

    /// A config whose authority is unique to the test (the memory cache is process-wide).
    pub fn test_cfg(authority: &str) -> RealmConfig {
        RealmConfig::from_json(&json!({
            "tenant-id": "organizations", "allowed-tenants": "11111111-2222-3333-4444-555555555555",
            "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x", "authority": authority}))
        .unwrap()
    }

    /// Fixture discovery doc with the fake's jwks_uri.
    pub fn setup(idp: &FakeIdp, cfg: &RealmConfig, jwks: Value) -> String {
        let mut d = fixture("discovery-organizations-v2.json");
        let jwks_uri = format!("{}/organizations/discovery/v2.0/keys", cfg.authority);
        d["jwks_uri"] = json!(jwks_uri);
        idp.serve(&cfg.discovery_url(), d);
        idp.serve(&jwks_uri, jwks);
        jwks_uri
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pve-entraid-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn every_discovery_fixture_parses() {
        let p = parse_provider(&fixture("discovery-common-v2.json"), false).unwrap();
        assert_eq!(p.issuer, "https://login.microsoftonline.com/{tenantid}/v2.0");
        let p = parse_provider(&fixture("discovery-organizations-v2.json"), false).unwrap();
        assert!(p.token_endpoint.ends_with("/organizations/oauth2/v2.0/token"));
        let p = parse_provider(&fixture("discovery-tenant-v2-sanitized.json"), false).unwrap();
        assert_eq!(p.issuer, "https://login.microsoftonline.com/88888888-8888-8888-8888-888888888888/v2.0");
    }

    #[test]
    fn every_jwks_fixture_parses_without_alg() {
        let common = parse_jwks(&fixture("jwks-common-v2.json")).unwrap();
        assert_eq!(common.len(), 7);
        let msa = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
        assert_eq!(common.iter().filter(|k| k.issuer.as_deref() == Some(msa)).count(), 2);
        let orgs = parse_jwks(&fixture("jwks-organizations-v2.json")).unwrap();
        assert_eq!(orgs.len(), 6);
        assert!(orgs.iter().all(|k| k.issuer.as_deref() == Some("https://login.microsoftonline.com/{tenantid}/v2.0")));
        let y2025 = fixture("jwks-common-v2-2025.json");
        assert!(y2025["keys"].as_array().unwrap().iter().any(|k| k.get("cloud_instance_name").is_some()));
        assert_eq!(parse_jwks(&y2025).unwrap().len(), y2025["keys"].as_array().unwrap().len());
    }

    #[test]
    fn bad_documents_have_their_codes() {
        let mut d = fixture("discovery-organizations-v2.json");
        d.as_object_mut().unwrap().remove("token_endpoint");
        assert_eq!(parse_provider(&d, false).unwrap_err().code, Code::DiscoveryInvalid);
        let mut d = fixture("discovery-organizations-v2.json");
        d["jwks_uri"] = json!("http://login.microsoftonline.com/keys");
        assert_eq!(parse_provider(&d, false).unwrap_err().code, Code::DiscoveryInvalid);
        d["id_token_signing_alg_values_supported"] = json!(["HS256"]);
        assert_eq!(parse_provider(&d, true).unwrap_err().code, Code::DiscoveryInvalid);
        assert_eq!(parse_jwks(&json!({"keys": []})).unwrap_err().code, Code::JwksInvalid);
        let mut j = fixture("jwks-organizations-v2.json");
        for k in j["keys"].as_array_mut().unwrap() {
            k["alg"] = json!("RS512");
        }
        assert_eq!(parse_jwks(&j).unwrap_err().code, Code::JwksInvalid);
        assert_eq!(parse_jwks(&json!([1])).unwrap_err().code, Code::JwksInvalid);
    }

    #[test]
    fn memory_cache_then_ttl() {
        let cfg = test_cfg("http://127.0.0.1:1001");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        let d = |now| Discovery { cfg: &cfg, realm: "r", cache_dir: None, http: &idp, now };
        d(1000).keys().unwrap();
        assert_eq!(idp.count(), 2);
        d(2000).keys().unwrap();
        d(2000).provider().unwrap();
        assert_eq!(idp.count(), 2, "cached");
        d(1000 + CACHE_TTL_SECS).keys().unwrap();
        assert_eq!(idp.count(), 4, "expired after 24h");
    }

    #[test]
    fn disk_cache_is_shared_and_corrupt_files_are_refetched() {
        let dir = tmpdir("disk");
        let cfg = test_cfg("http://127.0.0.1:1002");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        let d = Discovery { cfg: &cfg, realm: "r", cache_dir: Some(&dir), http: &idp, now: 5000 };
        d.keys().unwrap();
        assert!(dir.join("r.discovery.json").exists() && dir.join("r.jwks.json").exists());
        // Another process: empty memory. Simulate by a fresh authority key pointing at the same files.
        with_entry(&cfg.discovery_url(), |e| *e = Entry::default());
        d.keys().unwrap();
        assert_eq!(idp.count(), 2, "served from disk");
        with_entry(&cfg.discovery_url(), |e| *e = Entry::default());
        std::fs::write(dir.join("r.jwks.json"), b"{not json").unwrap();
        d.keys().unwrap();
        assert_eq!(idp.count(), 3, "corrupt JWKS file refetched, not an error");
        let v: Value = serde_json::from_slice(&std::fs::read(dir.join("r.jwks.json")).unwrap()).unwrap();
        assert_eq!(v["fetched_at"], 5000);
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let cfg = test_cfg("http://127.0.0.1:1003");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        let d = |now| Discovery { cfg: &cfg, realm: "r", cache_dir: None, http: &idp, now };
        d(10_000).keys().unwrap();
        assert_eq!(idp.count(), 2);
        // The first unknown kid refetches once, then no refetch for 5 minutes.
        assert_eq!(d(10_010).key("forged").unwrap_err().code, Code::TokenUnknownKid);
        assert_eq!(idp.count(), 3);
        for t in 10_011..10_020 {
            assert_eq!(d(t).key("forged").unwrap_err().code, Code::TokenUnknownKid);
        }
        d(10_309).key("forged").unwrap_err();
        assert_eq!(idp.count(), 3);
        d(10_310).key("forged").unwrap_err();
        assert_eq!(idp.count(), 4);
    }

    #[test]
    fn rotated_key_is_found_by_refetch() {
        let cfg = test_cfg("http://127.0.0.1:1004");
        let idp = FakeIdp::default();
        let uri = setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        idp.serve(&uri, fixture("jwks-common-v2-2025.json"));
        let d = |now| Discovery { cfg: &cfg, realm: "r", cache_dir: None, http: &idp, now };
        d(20_000).keys().unwrap();
        let new_kid = fixture("jwks-common-v2-2025.json")["keys"][0]["kid"].as_str().unwrap().to_string();
        assert_eq!(d(20_400).key(&new_kid).unwrap().kid, new_kid);
    }

    #[test]
    fn last_good_set_is_kept_when_fetch_fails() {
        let cfg = test_cfg("http://127.0.0.1:1005");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        let d = |now| Discovery { cfg: &cfg, realm: "r", cache_dir: None, http: &idp, now };
        let kid = d(30_000).keys().unwrap()[0].kid.clone();
        *idp.fail.lock().unwrap() = true;
        let later = 30_000 + CACHE_TTL_SECS + 1;
        assert_eq!(d(later).key(&kid).unwrap().kid, kid, "stale but last good");
        assert!(idp.count() > 2, "a refetch was attempted");
        // Nothing cached at all and the IdP down: the transport error comes through.
        let cold = test_cfg("http://127.0.0.1:1006");
        let e = Discovery { cfg: &cold, realm: "r", cache_dir: None, http: &idp, now: 1 }.provider().unwrap_err();
        assert_eq!(e.code, Code::IdpUnreachable);
    }

    /// pvedaemon's workers are processes: a failure one of them met is not retried by the others
    /// either (each would hold a worker for the timeout of a hanging endpoint once a minute).
    #[test]
    fn a_failure_is_shared_by_the_processes_of_the_node() {
        let dir = tmpdir("shared-failure");
        let cfg = test_cfg("http://127.0.0.1:1009");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        *idp.fail.lock().unwrap() = true;
        let d = |now| Discovery { cfg: &cfg, realm: "r", cache_dir: Some(&dir), http: &idp, now };
        // another process: its memory knows nothing
        let other_process = || with_entry(&cfg.discovery_url(), |e| *e = Entry::default());
        let t0 = 70_000;
        assert_eq!(d(t0).provider().unwrap_err().code, Code::IdpUnreachable);
        assert_eq!(idp.count(), 1);
        other_process();
        let e = d(t0 + 10).provider().unwrap_err();
        assert_eq!((e.code, idp.count()), (Code::IdpUnreachable, 1), "not retried by another process: {}", e.message);
        assert!(e.message.contains("failed 10 s ago"), "{}", e.message);
        // a minute later one process retries; the others meanwhile answer from its claim
        other_process();
        assert_eq!(d(t0 + FAILURE_RETRY_SECS).provider().unwrap_err().code, Code::IdpUnreachable);
        assert_eq!(idp.count(), 2);
        other_process();
        assert_eq!(d(t0 + FAILURE_RETRY_SECS + 1).provider().unwrap_err().code, Code::IdpUnreachable);
        assert_eq!(idp.count(), 2, "one retry a minute for the node");
        // back: the retry a minute later succeeds and clears the record for everyone
        *idp.fail.lock().unwrap() = false;
        other_process();
        d(t0 + 2 * FAILURE_RETRY_SECS).keys().unwrap();
        assert_eq!(idp.count(), 4);
        assert!(!dir.join("r.discovery.failed.json").exists());
        // a failure that is retried at once (an HTTP error status) is not recorded
        let wrong = Discovery { cfg: &test_cfg("http://127.0.0.1:1010"), realm: "r", cache_dir: Some(&dir), http: &idp, now: t0 };
        assert_eq!(wrong.provider().unwrap_err().code, Code::IdpError);
        assert!(!dir.join("r.discovery.failed.json").exists());
    }

    /// The record is only believed when it is a small regular file naming this source, a
    /// remembered code and a time not in the future; anything else costs a fetch, never a hang
    /// or a failure of its own.
    #[test]
    fn a_hostile_failure_record_costs_at_most_a_fetch() {
        let dir = tmpdir("hostile-failure");
        let cfg = test_cfg("http://127.0.0.1:1011");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        let source = cfg.discovery_url();
        let record = dir.join("r.discovery.failed.json");
        let now = 90_000;
        let good = |at: u64, code: &str, source: &str| json!({"source": source, "at": at, "code": code}).to_string();
        let cases: Vec<(&str, Box<dyn Fn()>)> = vec![
            ("in the future", Box::new(|| std::fs::write(&record, good(now + 5, "idp.timeout", &source)).unwrap())),
            ("another source", Box::new(|| std::fs::write(&record, good(now, "idp.timeout", "http://elsewhere")).unwrap())),
            ("not a remembered code", Box::new(|| std::fs::write(&record, good(now, "state.invalid", &source)).unwrap())),
            ("no code", Box::new(|| std::fs::write(&record, good(now, "nosuch", &source)).unwrap())),
            ("not JSON", Box::new(|| std::fs::write(&record, b"{not json").unwrap())),
            ("too large", Box::new(|| {
                let mut big = good(now, "idp.timeout", &source);
                big.insert_str(1, &format!("\"pad\": \"{}\", ", "x".repeat(2000)));
                std::fs::write(&record, big).unwrap()
            })),
            ("a link to a record", Box::new(|| {
                let real = dir.join("elsewhere.json");
                std::fs::write(&real, good(now, "idp.timeout", &source)).unwrap();
                std::os::unix::fs::symlink(&real, &record).unwrap()
            })),
            ("a FIFO", Box::new(|| {
                let c = std::ffi::CString::new(record.to_str().unwrap()).unwrap();
                // SAFETY: a valid C string; plain mode bits.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            })),
        ];
        for (what, make) in cases {
            let _ = std::fs::remove_file(&record);
            make();
            with_entry(&source, |e| *e = Entry::default());
            let _ = std::fs::remove_file(dir.join("r.discovery.json"));
            let before = idp.count();
            let start = std::time::Instant::now();
            d_provider(&cfg, &dir, &idp, now).unwrap_or_else(|e| panic!("{what}: {}", e.message));
            assert_eq!(idp.count(), before + 1, "{what}: fetched");
            assert!(start.elapsed() < std::time::Duration::from_secs(2), "{what}: no hang");
        }
        // the one that counts, for comparison: no fetch (a good fetch removed the others)
        assert!(!record.exists());
        std::fs::write(&record, good(now, "idp.timeout", &source)).unwrap();
        with_entry(&source, |e| *e = Entry::default());
        let _ = std::fs::remove_file(dir.join("r.discovery.json"));
        let before = idp.count();
        assert_eq!(d_provider(&cfg, &dir, &idp, now + 1).unwrap_err().code, Code::IdpTimeout);
        assert_eq!(idp.count(), before);
    }

    fn d_provider(cfg: &RealmConfig, dir: &Path, idp: &FakeIdp, now: u64) -> Result<Provider> {
        Discovery { cfg, realm: "r", cache_dir: Some(dir), http: idp, now }.provider()
    }

    #[test]
    fn failed_fetches_are_not_retried_for_a_minute() {
        // Cold: the failure is answered from memory, without a request, until a minute passed.
        let cfg = test_cfg("http://127.0.0.1:1007");
        let idp = FakeIdp::default();
        setup(&idp, &cfg, fixture("jwks-organizations-v2.json"));
        *idp.fail.lock().unwrap() = true;
        let d = |now| Discovery { cfg: &cfg, realm: "r", cache_dir: None, http: &idp, now };
        assert_eq!(d(50_000).provider().unwrap_err().code, Code::IdpUnreachable);
        assert_eq!(idp.count(), 1);
        for t in [50_001, 50_030, 50_000 + FAILURE_RETRY_SECS - 1] {
            assert_eq!(d(t).provider().unwrap_err().code, Code::IdpUnreachable);
        }
        assert_eq!(idp.count(), 1, "negative cache");
        *idp.fail.lock().unwrap() = false;
        d(50_000 + FAILURE_RETRY_SECS).keys().unwrap();
        assert_eq!(idp.count(), 3, "retried after a minute, then the JWKS");
        // Warm but stale: the stale copy is served at once while the failure is remembered.
        *idp.fail.lock().unwrap() = true;
        let later = 50_100 + CACHE_TTL_SECS;
        let kid = d(later).keys().unwrap()[0].kid.clone();
        let after_first = idp.count();
        assert!(after_first > 3, "one refresh attempt");
        for t in later..later + 30 {
            assert_eq!(d(t).key(&kid).unwrap().kid, kid);
        }
        assert_eq!(idp.count(), after_first, "no new attempt within the minute");
    }
}
