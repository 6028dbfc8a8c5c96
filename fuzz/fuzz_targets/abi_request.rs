//! Fuzzes the JSON request handling of the C ABI.
//!
//! The first input byte picks the call, the rest is the request document:
//! * 0: `pve_entraid_map` through the real C ABI (pure, no I/O): whatever the bytes, the answer
//!   is one JSON document whose error code is the returned code, and never `internal.panic`;
//! * 1, 2, 3: the entry point's typed `Request::parse` and then auth_url, login or check, with a transport that
//!   refuses every connection, so garbage never reaches the network. Those calls may create
//!   the state key, cache and budget table files, so they run only when the request keeps
//!   those paths inside the scratch directory (the seeds do; mutations mostly do).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pve_entraid::error::{Code, Error, Result};
use pve_entraid::http::{HttpResponse, Transport};
use pve_entraid::request::{AuthUrlMembers, CheckMembers, Env, LoginMembers, Request};
use pve_entraid::{check, flow};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::ffi::{c_char, CStr};

/// Where fuzzed requests may create files (fuzz/gen-seeds.pl uses the same path).
const SCRATCH: &str = "/tmp/pve-entraid-fuzz/";

extern "C" {
    fn pve_entraid_map(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    fn pve_entraid_free(s: *mut c_char);
}

/// No network: every request fails as an unreachable IdP would.
struct Offline;

impl Transport for Offline {
    fn get(&self, _: &str, _: u64) -> Result<HttpResponse> {
        Err(Error::new(Code::IdpUnreachable, "offline"))
    }
    fn post_form(&self, _: &str, _: &[(&str, &str)], _: u64) -> Result<HttpResponse> {
        Err(Error::new(Code::IdpUnreachable, "offline"))
    }
    fn post_json(&self, _: &str, _: &str, _: &str, _: u64) -> Result<HttpResponse> {
        Err(Error::new(Code::IdpUnreachable, "offline"))
    }
}

fn through_abi(body: &[u8]) {
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: `body` is valid for its length during the call; the answer is read and then
    // released exactly once.
    let (rc, answer) = unsafe {
        let rc = pve_entraid_map(body.as_ptr(), body.len(), &mut out);
        assert!(!out.is_null(), "no answer document");
        let answer = CStr::from_ptr(out).to_bytes().to_vec();
        pve_entraid_free(out);
        (rc, answer)
    };
    let answer: Value = serde_json::from_slice(&answer).expect("answer is JSON");
    assert_ne!(rc, Code::InternalPanic as u32, "panic inside map: {answer}");
    let code = Code::from_u32(rc).expect("returned code is a known code");
    assert_eq!(answer["ok"], Value::Bool(rc == 0), "ok flag disagrees with code {rc}");
    if rc != 0 {
        assert_eq!(answer["error"]["code"], code.as_str(), "error code disagrees with returned code");
    }
}

fn inside(p: &str) -> bool {
    p.starts_with(SCRATCH) && !p.contains("..")
}

/// The request of one entry point, when its files (`files_inside` checks the entry point's
/// own: state key, budget table) stay inside the scratch directory.
fn confined<B: DeserializeOwned>(v: Value, files_inside: impl Fn(&B) -> bool) -> Option<Request<B>> {
    let req = Request::<B>::parse(v).ok()?;
    let cache_ok = req.cache_dir.as_ref().is_none_or(|d| d.to_str().is_some_and(inside));
    (cache_ok && files_inside(&req.body)).then_some(req)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    if selector % 4 == 0 {
        through_abi(body);
        return;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return };
    let env = Env { now: 1_700_000_000, http: &Offline };
    match selector % 4 {
        1 => {
            if let Some(req) = confined(v, |b: &AuthUrlMembers| inside(&b.state_key_file) && b.caller().run_dir.is_none_or(inside)) {
                drop(flow::auth_url(&req, &env));
            }
        }
        2 => {
            if let Some(req) = confined(v, |b: &LoginMembers| inside(&b.state_key_file) && b.caller().run_dir.is_none_or(inside)) {
                drop(flow::login(&req, &env));
            }
        }
        _ => {
            if let Some(req) = confined(v, |_: &CheckMembers| true) {
                drop(check::check(&req, &env));
            }
        }
    }
});
