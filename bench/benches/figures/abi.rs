//! The library's JSON C ABI, declared as include/pve_entraid.h declares it, and called the way
//! PVE's XS glue calls it: bytes in, an owned JSON string out, released with pve_entraid_free.

use serde_json::Value;
use std::ffi::{c_char, CStr};

// Links the library crate so its `#[no_mangle]` entry points are there to resolve.
use pve_entraid as _;

extern "C" {
    fn pve_entraid_auth_url(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    fn pve_entraid_login(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    fn pve_entraid_workload_token(req: *const u8, req_len: usize, out: *mut *mut c_char) -> u32;
    fn pve_entraid_free(s: *mut c_char);
}

/// Which entry point to call.
#[derive(Clone, Copy)]
pub enum Call {
    AuthUrl,
    Login,
    WorkloadToken,
}

/// Calls an entry point; returns the result code and the parsed answer.
pub fn call(which: Call, req: &Value) -> (u32, Value) {
    let bytes = req.to_string().into_bytes();
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: `bytes` outlives the call, `out` is a valid place for the answer pointer, and the
    // answer is copied before it is released exactly once with pve_entraid_free.
    unsafe {
        let rc = match which {
            Call::AuthUrl => pve_entraid_auth_url(bytes.as_ptr(), bytes.len(), &mut out),
            Call::Login => pve_entraid_login(bytes.as_ptr(), bytes.len(), &mut out),
            Call::WorkloadToken => pve_entraid_workload_token(bytes.as_ptr(), bytes.len(), &mut out),
        };
        assert!(!out.is_null(), "the ABI promises an answer document");
        let answer = CStr::from_ptr(out).to_bytes().to_vec();
        pve_entraid_free(out);
        (rc, serde_json::from_slice(&answer).expect("the answer is JSON"))
    }
}

/// Calls and insists on success: the benchmarks measure working logins only.
pub fn ok(which: Call, req: &Value) -> Value {
    let (rc, answer) = call(which, req);
    assert_eq!(rc, 0, "benchmark call failed: {answer}");
    answer["result"].clone()
}
