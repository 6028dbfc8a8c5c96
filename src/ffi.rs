//! The C ABI. JSON in, JSON out, in the style of rustls-ffi: every entry point runs behind the
//! one `panic_boundary!` (a panic becomes `PVE_ENTRAID_INTERNAL_PANIC` with an error document,
//! never an unwind into C), requests are capped at 256 KiB, and every answer is a NUL-terminated
//! string that the caller releases with `pve_entraid_free`.

use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::{pve_entraid_result, Code, Error, Result};
use crate::http::UreqTransport;
use crate::request::{Env, Request};
use crate::typed::typed;

/// Larger requests are refused with `request.too_large`.
pub const MAX_REQUEST: usize = 256 * 1024;

/// Runs `$body` (an expression of type `pve_entraid_result`) and turns a panic into
/// `PVE_ENTRAID_INTERNAL_PANIC`, writing an error document to `$out` if it is not NULL.
macro_rules! panic_boundary {
    ($out:expr, $body:expr) => {{
        let out: *mut *mut c_char = $out;
        match catch_unwind(AssertUnwindSafe(|| $body)) {
            Ok(code) => code,
            Err(_) => {
                let e = Error::new(Code::InternalPanic, "internal error in pve-entraid (a bug; please report it)");
                // SAFETY: `out` is the caller's out-pointer, checked for NULL in `write_out`.
                unsafe { write_out(out, &json!({"ok": false, "error": e.to_json()})) };
                Code::InternalPanic
            }
        }
    }};
}

/// Stores a newly allocated copy of `doc` in `*out` (nothing when `out` is NULL).
unsafe fn write_out(out: *mut *mut c_char, doc: &Value) {
    if out.is_null() {
        return;
    }
    // serde_json escapes U+0000, so the text never contains a NUL byte.
    let text = CString::new(doc.to_string()).unwrap_or_else(|_| CString::from(c"{\"ok\":false}"));
    // SAFETY: caller guarantees `out` points to writable storage for one pointer.
    unsafe { *out = text.into_raw() };
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Reads the request bytes as JSON.
unsafe fn read_json(req: *const u8, req_len: usize) -> Result<Value> {
    if req_len > MAX_REQUEST {
        return Err(Error::new(Code::RequestTooLarge, format!("request is larger than {MAX_REQUEST} bytes")));
    }
    if req.is_null() {
        return Err(Error::new(Code::RequestInvalid, "request is NULL"));
    }
    // SAFETY: the caller guarantees `req` points to `req_len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(req, req_len) };
    // serde_json's syntax errors give a position only, never the content.
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::new(Code::RequestInvalid, format!("request is not valid JSON: {e}")))?;
    #[cfg(test)]
    if v.get("__test_panic").is_some() {
        panic!("test hook: panic inside an entry point");
    }
    Ok(v)
}

/// Writes the answer of `result` to `out` and returns its code.
unsafe fn answer(out: *mut *mut c_char, result: Result<Value>) -> Code {
    let (code, doc) = match result {
        Ok(v) => (Code::Ok, json!({"ok": true, "result": v})),
        Err(e) => (e.code, json!({"ok": false, "error": e.to_json()})),
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { write_out(out, &doc) };
    code
}

/// The shared body of the JSON entry points of a realm.
unsafe fn run<B: DeserializeOwned>(req: *const u8, req_len: usize, out: *mut *mut c_char, handler: fn(&Request<B>, &Env) -> Result<Value>) -> Code {
    // SAFETY: forwarded caller guarantees.
    let result = unsafe { read_json(req, req_len) }.and_then(Request::parse).and_then(|r| {
        let http = UreqTransport::new(&r.cfg)?;
        handler(&r, &Env { now: now(), http: &http })
    });
    // SAFETY: forwarded caller guarantees.
    unsafe { answer(out, result) }
}

/// Library name and version, e.g. `"pve-entraid/0.1.0"`.
/// The string is static and NUL-terminated: never free it.
#[no_mangle]
pub extern "C" fn pve_entraid_version() -> *const c_char {
    concat!("pve-entraid/", env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Builds the Entra authorization URL and a sealed state.
///
/// Request: `{"realm", "config", "cache_dir"?, "redirect_url", "state_key_file", "binding_hash", "login_hint"?}`.
/// Result: `{"url", "state"}`. No network request when discovery is cached.
///
/// `req` points to `req_len` bytes of UTF-8 JSON (no NUL terminator needed); it is only read
/// during the call. On return `*out` holds a newly allocated NUL-terminated JSON answer
/// (`{"ok": true, "result": ...}` or `{"ok": false, "error": ...}`) that the caller must release
/// with `pve_entraid_free`, on success and on error alike. `*out` is untouched only when `out`
/// is NULL. Returns `PVE_ENTRAID_OK` or the error's code.
///
/// # Safety
/// `req` must be NULL or valid for reads of `req_len` bytes; `out` must be NULL or valid for
/// writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_auth_url(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, crate::flow::auth_url) })
}

/// Completes a login: checks the state (sealed, realm, expiry, browser binding, single use), exchanges the code,
/// validates the ID token and resolves group overage.
///
/// Request: `{"realm", "config", "cache_dir"?, "code", "state", "binding_key", "state_key_file"}`.
/// Result: `{"claims": {...}, "groups": [...], "username"}` and the mapping as `pve_entraid_map`
/// gives it, without the pin: `"userid", "pve_groups", "managed_groups", "identity", "firstname",
/// "lastname", "email"`.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_login(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, crate::flow::login) })
}

/// Refuses an anonymous auth-url or login call naming a realm that is not an entraid realm, after
/// taking one call from its client address's budget for such names (one for all names, so that
/// made-up names gain nothing): the answer is `request.rate_limited` when that is spent, else
/// `request.invalid`. Never `PVE_ENTRAID_OK`.
///
/// Request: `{"realm", "realm_type"?, "run_dir"?, "client_address"?, "rate_limits"?}` (the
/// realm's type when it exists; no `config`: there is none).
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_refuse_realm(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe {
        let result = read_json(req, req_len)
            .and_then(|v| typed(v, Code::RequestInvalid, ""))
            .and_then(|r| crate::flow::refuse_realm(&r));
        answer(out, result)
    })
}

/// Maps login claims to a PVE user id, groups and the identity to pin, as `pve_entraid_login`
/// does. Pure: no I/O. The pin itself is compared by the caller (PVE's Perl side, under its lock).
///
/// Request: `{"realm", "config", "claims", "groups"?, "username"}`.
/// Result: `{"userid", "pve_groups", "managed_groups", "identity", "firstname", "lastname", "email"}`.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_map(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, |r, _| crate::mapping::map(r)) })
}

/// Checks a realm config the way every other entry point reads it, without I/O (no file is read,
/// nothing is fetched): PVE's realm add/update hooks refuse with its `config.invalid` what a
/// login would refuse.
///
/// Request: `{"realm", "config"}`.
/// Result: `{}`.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_check_config(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, |_: &Request, _| Ok(json!({}))) })
}

/// Diagnoses a realm: discovery, JWKS, credentials, redirect URL.
///
/// Request: `{"realm", "config", "cache_dir"?, "redirect_url"}`.
/// Result: `{"steps": [{"step", "ok", "detail", "fix"?}]}`; `ok` even when steps fail.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_check(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, |r, env| Ok(crate::check::check(r, env))) })
}

/// Reads the realm's users and mapped groups from Microsoft Graph for PVE's realm sync, with an
/// app-only token (client credentials): the transitive members of the `required_groups` (or, without
/// those, of the groups in `groups_map`), named as at login.
///
/// Request: `{"realm", "config"}`.
/// Result: `{"tid", "users": [{"userid", "oid", "enable", "firstname"?, "lastname"?, "email"?,
/// "groups"}], "groups": {"<PVE group>": ["<userid>", ...]}, "skipped": [{"oid", "reason"}],
/// "warnings": [...], "requests"}`.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_sync_directory(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, crate::sync::sync_directory) })
}

/// Exchanges a workload's Entra access token (client credentials grant: managed identity,
/// service principal, federated credential) for the PVE user its app role maps to: the client's
/// budget first, then the token validated as strictly as an ID token (tenant's keys, issuer,
/// tenant, audience = the app's client id or Application ID URI, times, v2.0, app-only), a
/// token refused before refused again (`token.refused_before`), the role mapped by the realm's
/// `workload-map`, and the realm's budget last. The pin is compared by the caller.
///
/// Request: `{"realm", "config", "cache_dir"?, "access_token", "run_dir"?, "client_address"?, "rate_limits"?}`.
/// Result: `{"userid", "username", "pve_groups", "managed_groups", "identity": {"tid", "oid"}, "roles", "azp",
/// "token_id", "refused_until"}`.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_workload_token(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, crate::workload::workload_token) })
}

/// Records a workload token that `pve_entraid_workload_token` accepted and the caller refused
/// (identity pin, disabled user): it stays refused until it expires.
///
/// Request: `{"realm", "config", "cache_dir"?, "token_id", "refused_until"}` (both from the
/// workload_token answer).
/// Result: `{}`.
/// Memory and ownership as for `pve_entraid_auth_url`.
///
/// # Safety
/// As for `pve_entraid_auth_url`.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_refuse_token(req: *const u8, req_len: usize, out: *mut *mut c_char) -> pve_entraid_result {
    panic_boundary!(out, unsafe { run(req, req_len, out, crate::workload::refuse_token) })
}

/// Releases an answer returned through `out`. NULL is fine. Never pass anything else.
///
/// # Safety
/// `s` must be NULL or a pointer returned by this library that was not freed before.
#[no_mangle]
pub unsafe extern "C" fn pve_entraid_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `s` came from CString::into_raw in `write_out`.
        drop(unsafe { CString::from_raw(s) })
    }));
}

/// Stable string code of a result (`"ok"` for 0, `"token.expired"`, ...; `"unknown"` for a
/// number that is no code). Static and NUL-terminated: never free it.
/// Takes the raw number so that any value a C caller passes is safe.
#[no_mangle]
pub extern "C" fn pve_entraid_result_code(r: u32) -> *const c_char {
    Code::from_u32(r).map_or(c"unknown".as_ptr(), Code::as_c_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn call(f: unsafe extern "C" fn(*const u8, usize, *mut *mut c_char) -> Code, req: &[u8]) -> (Code, Value) {
        let mut out: *mut c_char = std::ptr::null_mut();
        let code = unsafe { f(req.as_ptr(), req.len(), &mut out) };
        assert!(!out.is_null());
        let v: Value = serde_json::from_str(unsafe { CStr::from_ptr(out) }.to_str().unwrap()).unwrap();
        unsafe { pve_entraid_free(out) };
        (code, v)
    }

    #[test]
    fn a_panic_becomes_an_error_answer() {
        let (code, v) = call(pve_entraid_map, br#"{"__test_panic": true}"#);
        assert_eq!(code, Code::InternalPanic);
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "internal.panic");
        // also in the entry point that reads no realm request
        let (code, _) = call(pve_entraid_refuse_realm, br#"{"__test_panic": true}"#);
        assert_eq!(code, Code::InternalPanic);
    }

    #[test]
    fn result_codes_match_the_error_table() {
        for &c in Code::ALL {
            let s = unsafe { CStr::from_ptr(pve_entraid_result_code(c as u32)) }.to_str().unwrap();
            assert_eq!(s, c.as_str());
        }
        assert_eq!(unsafe { CStr::from_ptr(pve_entraid_result_code(12345)) }.to_str().unwrap(), "unknown");
    }

    #[test]
    fn null_pointers_are_handled() {
        let code = unsafe { pve_entraid_map(std::ptr::null(), 0, std::ptr::null_mut()) };
        assert_eq!(code, Code::RequestInvalid);
        let mut out: *mut c_char = std::ptr::null_mut();
        assert_eq!(unsafe { pve_entraid_map(std::ptr::null(), 5, &mut out) }, Code::RequestInvalid);
        unsafe { pve_entraid_free(out) };
        unsafe { pve_entraid_free(std::ptr::null_mut()) };
    }
}
