//! What runs in a child process of the bench: one ABI call with a fresh memory cache, or one
//! library load. The parent passes the work in environment variables and reads stdout.

use crate::abi::{self, Call};
use std::process::Command;

const CALL_ENV: &str = "PVE_ENTRAID_BENCH_CALL";
const REQUEST_ENV: &str = "PVE_ENTRAID_BENCH_REQUEST";
pub const LIBLOAD_ENV: &str = "PVE_ENTRAID_BENCH_LIBLOAD";

/// Runs the child's job if this process is a child; returns whether it was.
pub fn run() -> bool {
    if let Some(path) = std::env::var_os(LIBLOAD_ENV) {
        crate::libload::child(std::path::Path::new(&path));
        return true;
    }
    let Ok(which) = std::env::var(CALL_ENV) else { return false };
    let req = serde_json::from_str(&std::env::var(REQUEST_ENV).expect("request")).expect("request JSON");
    let which = if which == "login" { Call::Login } else { Call::AuthUrl };
    println!("{}", abi::ok(which, &req));
    true
}

/// One call in a new process; its result.
pub fn call(which: &str, req: &serde_json::Value) -> serde_json::Value {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(CALL_ENV, which)
        .env(REQUEST_ENV, req.to_string())
        .output()
        .expect("spawn bench child");
    assert!(out.status.success(), "bench child failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("child prints JSON")
}
