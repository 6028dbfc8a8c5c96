//! Shared by tests/hostile.rs and tests/faults.rs: the C ABI declared as include/pve_entraid.h
//! declares it (so these tests hold the library to its C contract, not to Rust internals), and a
//! test realm on a fresh in-process emulator.
#![allow(dead_code)] // each test file uses its own part

use serde_json::{json, Value};
use std::ffi::{c_char, CStr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use entra_emulator::{Emulator, EmulatorConfig, CLIENT_ID, CLIENT_SECRET, TENANT};
// Links the library so its `#[no_mangle]` entry points resolve.
use pve_entraid as _;

pub type Entry = unsafe extern "C" fn(*const u8, usize, *mut *mut c_char) -> u32;

extern "C" {
    pub fn pve_entraid_version() -> *const c_char;
    pub fn pve_entraid_auth_url(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_login(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_map(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_check(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_sync_directory(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_check_config(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_refuse_realm(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    pub fn pve_entraid_free(s: *mut c_char);
    pub fn pve_entraid_result_code(r: u32) -> *const c_char;
}

pub const ENTRIES: [(&str, Entry); 5] = [
    ("auth_url", pve_entraid_auth_url),
    ("login", pve_entraid_login),
    ("map", pve_entraid_map),
    ("check", pve_entraid_check),
    ("check_config", pve_entraid_check_config),
];

pub const USER: &str = "alice@contoso.example";
/// A browser binding key (32 bytes 0x42, base64url) and its SHA-256, as the web UI sends them.
pub const BINDING_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";
pub const BINDING_HASH: &str = "Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw";
pub const PANIC_CODE: u32 = 90;

/// One call with raw request bytes. Checks what every answer must satisfy: it exists, it is
/// JSON, its `ok`/`error.code` agree with the returned code, it is no panic, and it does not
/// carry the client secret.
pub fn call_raw(entry: Entry, req: &[u8]) -> (u32, Value) {
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: `req` is valid for its length; the answer is copied, then freed exactly once.
    let (rc, text) = unsafe {
        let rc = entry(req.as_ptr(), req.len(), &mut out);
        assert!(!out.is_null(), "the ABI must always hand back an answer");
        let text = CStr::from_ptr(out).to_str().expect("answer is UTF-8").to_string();
        pve_entraid_free(out);
        (rc, text)
    };
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text}"));
    assert_ne!(rc, PANIC_CODE, "internal.panic: {text}");
    assert!(!text.contains(CLIENT_SECRET), "the client secret leaked into an answer: {text}");
    assert_eq!(answer["ok"], Value::Bool(rc == 0), "`ok` disagrees with result {rc}: {text}");
    if rc != 0 {
        let code = answer["error"]["code"].as_str().unwrap_or_else(|| panic!("error without code: {text}"));
        assert_eq!(code_number(code), Some(rc), "error.code {code} is not result {rc}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {text}");
    }
    (rc, answer)
}

pub fn call(entry: Entry, req: &Value) -> (u32, Value) {
    call_raw(entry, req.to_string().as_bytes())
}

/// The error code string of an answer ("ok" on success).
pub fn code_of(answer: &Value) -> String {
    if answer["ok"] == Value::Bool(true) {
        "ok".into()
    } else {
        answer["error"]["code"].as_str().unwrap_or("<none>").to_string()
    }
}

/// The contract: docs/DESIGN.md "Stable error codes", the number of each code string. Written out
/// here on purpose (not derived from the library) so that a changed code fails tests/codes.rs.
pub const CODE_TABLE: &[(&str, u32)] = &[
    ("ok", 0), ("request.invalid", 1), ("request.too_large", 2), ("config.invalid", 3),
    ("config.secret", 4), ("request.rate_limited", 5), ("request.redirect_not_allowed", 6), ("state.invalid", 10), ("state.expired", 11), ("state.replayed", 12),
    ("state.realm_mismatch", 13), ("state.key", 14), ("state.binding_mismatch", 15), ("idp.unreachable", 20),
    ("idp.timeout", 21), ("idp.bad_response", 22), ("idp.error", 23), ("discovery.invalid", 24),
    ("jwks.invalid", 25), ("idp.tls", 26), ("token.malformed", 30), ("token.unsupported_alg", 31),
    ("token.bad_signature", 32), ("token.issuer_mismatch", 34), ("token.audience_mismatch", 35),
    ("token.azp_mismatch", 36), ("token.expired", 37), ("token.not_yet_valid", 38), ("token.issued_in_future", 39),
    ("token.nonce_missing", 40), ("token.nonce_mismatch", 41), ("token.version", 42),
    ("token.tenant_not_allowed", 43), ("token.missing_claim", 44), ("token.unknown_kid", 45),
    ("token.not_app_only", 46), ("token.refused_before", 47),
    ("access.denied", 50), ("access.guest", 51), ("identity.pin_mismatch", 52), ("graph.error", 60),
    ("cache.io", 70), ("internal.panic", 90), ("internal.error", 91),
];

/// The number of a code string, per the contract table.
pub fn code_number(code: &str) -> Option<u32> {
    CODE_TABLE.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// Runs `f` and fails the test if it took longer than `limit`: a hang is a bug, not slowness.
pub fn bounded<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let v = f();
    let took = start.elapsed();
    assert!(took < limit, "took {took:?}, more than the bound of {limit:?}");
    v
}

/// The login request that follows the auth_url request `auth` (its realm, config, cache and
/// state key; [`BINDING_KEY`]), for the `code` and `state` Entra sent back.
pub fn login_request(auth: &Value, code: &str, state: &str) -> Value {
    let mut req = auth.clone();
    let members = req.as_object_mut().expect("a request object");
    members.remove("redirect_url");
    members.remove("binding_hash");
    members.remove("login_hint");
    req["binding_key"] = BINDING_KEY.into();
    req["code"] = code.into();
    req["state"] = state.into();
    req
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pve-entraid-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A realm named `entra` on its own emulator (a new port: the library's memory cache, keyed
/// by discovery URL, starts cold for it), with its own cache directory and state key.
pub struct Realm {
    pub emu: Emulator,
    pub scratch: Scratch,
    pub realm: String,
    pub config: Value,
}

impl Realm {
    pub fn new(name: &str) -> Realm {
        let emu = entra_emulator::start(Realm::directory());
        let config = Realm::config(&emu);
        let scratch = Scratch::new(name);
        std::fs::create_dir_all(scratch.0.join("cache")).expect("create cache dir");
        Realm { emu, scratch, realm: "entra".into(), config }
    }

    /// A realm on an emulator serving https with a new throw-away CA, written to
    /// `<scratch>/tls/ca.pem` (trusting it is the test's business: SSL_CERT_FILE).
    pub fn new_tls(name: &str) -> Realm {
        let scratch = Scratch::new(name);
        let emu = entra_emulator::start_tls(Realm::directory(), &scratch.0.join("tls"));
        let config = Realm::config(&emu);
        std::fs::create_dir_all(scratch.0.join("cache")).expect("create cache dir");
        Realm { emu, scratch, realm: "entra".into(), config }
    }

    /// The emulator's directory, its app with the optional claim `upn` that the realm's
    /// default `username-claim` needs, for guests too (README, app registration).
    pub fn directory() -> EmulatorConfig {
        let mut cfg = EmulatorConfig::default();
        cfg.apps[0].optional_claims = serde_json::from_value(json!({"idToken": [
            {"name": "upn", "additionalProperties": ["include_externally_authenticated_upn"]}
        ]}))
        .expect("optional claims");
        cfg
    }

    /// The realm's `config`: a domains.cfg section as PVE's Perl side passes it, plus the
    /// members only Perl knows (the credential, test overrides).
    pub fn config(emu: &Emulator) -> Value {
        json!({"type": "entraid", "tenant-id": TENANT, "client-id": CLIENT_ID, "client_secret": CLIENT_SECRET,
               "authority": emu.url(), "graph_url": emu.url(), "connect_timeout_ms": 1000, "timeout_ms": 2000})
    }

    pub fn ca_file(&self) -> PathBuf {
        self.scratch.0.join("tls").join(entra_emulator::CA_FILE)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.scratch.0.join("cache")
    }

    /// The members every request shares.
    pub fn common(&self) -> Value {
        json!({"realm": self.realm, "config": self.config, "cache_dir": self.cache_dir()})
    }

    pub fn state_key_file(&self) -> PathBuf {
        self.scratch.0.join("priv/state.key")
    }

    /// An auth_url request (with the browser binding's hash, [`BINDING_HASH`]).
    pub fn request(&self) -> Value {
        let mut req = self.common();
        req["redirect_url"] = "https://pve1.example:8006".into();
        req["state_key_file"] = json!(self.state_key_file());
        req["binding_hash"] = BINDING_HASH.into();
        req
    }

    /// A check request.
    pub fn check_request(&self) -> Value {
        let mut req = self.common();
        req["redirect_url"] = "https://pve1.example:8006".into();
        req
    }

    pub fn auth_url(&self) -> (u32, Value) {
        call(pve_entraid_auth_url, &self.request())
    }

    /// auth_url, then the browser's trip through the emulator's authorize endpoint as [`USER`]:
    /// the login request for the code and state it came back with.
    pub fn login_request(&self) -> Value {
        self.login_request_for(USER)
    }

    /// As [`Realm::login_request`], for another user of the emulator.
    pub fn login_request_for(&self, user: &str) -> Value {
        let (rc, auth) = self.auth_url();
        assert_eq!(rc, 0, "auth_url failed: {auth}");
        let url = auth["result"]["url"].as_str().expect("auth_url gives a url");
        let (code, state) = entra_emulator::authorize(url, Some(user)).expect("emulator authorizes");
        assert_eq!(state, auth["result"]["state"].as_str().unwrap(), "the emulator returns the state unchanged");
        login_request(&self.request(), &code, &state)
    }

    pub fn login(&self, req: &Value) -> (u32, Value) {
        call(pve_entraid_login, req)
    }

    /// A complete login; its answer's code string.
    pub fn full_login(&self) -> String {
        let req = self.login_request();
        code_of(&self.login(&req).1)
    }

    /// Requests per endpoint since the last reset.
    pub fn count(&self, endpoint: &str) -> u64 {
        self.emu.stats()[endpoint].as_u64().unwrap_or(0)
    }
}
