//! The library over real TLS: an emulator with a throw-away CA that the library trusts through
//! the system trust path (SSL_CERT_FILE, read by rustls-native-certs like /etc/ssl/certs), a
//! second one whose CA it does not trust, one connection pool per process that survives calls
//! and is not shared with a forked child, and a trust store reloaded when it changes.
//! One test function: the environment variable is process-wide.

mod abi_harness;
use abi_harness::*;
use serde_json::Value;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);

fn stat(realm: &Realm, what: &str) -> u64 {
    realm.emu.stats()[what].as_u64().unwrap()
}

#[test]
fn tls_trust_pool_fork_and_errors() {
    let trusted = Realm::new_tls("tls-trusted");
    let untrusted = Realm::new_tls("tls-untrusted");
    // The trust store the library reads: only the first emulator's CA. Set before any request.
    let bundle = trusted.scratch.0.join("bundle.pem");
    std::fs::copy(trusted.ca_file(), &bundle).unwrap();
    std::env::set_var("SSL_CERT_FILE", &bundle);
    assert!(trusted.emu.url().starts_with("https://127.0.0.1:"));

    // A login over TLS, then a warm one: the token request reuses the pooled connection, so the
    // login costs exactly one round trip to the IdP.
    assert_eq!(bounded(BOUND, || trusted.full_login()), "ok");
    let req = trusted.login_request();
    trusted.emu.reset_stats();
    assert_eq!(code_of(&trusted.login(&req).1), "ok");
    let s = trusted.emu.stats();
    assert_eq!((s["connections"].as_u64(), s["tls_handshakes"].as_u64(), s["requests"].as_u64()), (Some(0), Some(0), Some(1)), "{s}");
    assert_eq!(s["round_trips"], 1, "{s}");

    // A forked child (a pvedaemon worker) must not use the parent's connections: it opens its own
    // and logs in; the parent's pooled connection still works afterwards.
    let child_req = trusted.login_request();
    trusted.emu.reset_stats();
    // SAFETY: the child only runs the library call and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| code_of(&trusted.login(&child_req).1) == "ok")).unwrap_or(false);
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child's login failed");
    assert_eq!((stat(&trusted, "connections"), stat(&trusted, "tls_handshakes")), (1, 1), "the child made its own connection");
    let req = trusted.login_request();
    trusted.emu.reset_stats();
    assert_eq!(code_of(&trusted.login(&req).1), "ok");
    assert_eq!(stat(&trusted, "round_trips"), 1, "the parent's pool is intact");

    // An IdP whose CA is not trusted: idp.tls, with the hint about the trust store, in the
    // answer and in `check`, which must not blame the client secret.
    let (_, answer) = bounded(BOUND, || untrusted.auth_url());
    assert_eq!(code_of(&answer), "idp.tls", "{answer}");
    let err = &answer["error"];
    assert!(err["message"].as_str().unwrap().contains("UnknownIssuer"), "{answer}");
    assert!(err["hint"].as_str().unwrap_or("").contains("/etc/ssl/certs"), "{answer}");
    let (_, check) = call(pve_entraid_check, &untrusted.check_request());
    let steps = check["result"]["steps"].as_array().unwrap_or_else(|| panic!("{check}"));
    for step in steps.iter().filter(|s| s["ok"] == Value::Bool(false)) {
        let fix = step["fix"].as_str().unwrap_or("");
        assert!(!fix.contains("secret"), "check blames the secret for a TLS failure: {step}");
    }
    assert_eq!(steps[0]["code"], "idp.tls", "{check}");

    // A CA added to the trust store (as update-ca-certificates does) is picked up on the next
    // call, without a restart. (A new emulator: the failed one's discovery is negatively cached.)
    let later2 = Realm::new_tls("tls-later2");
    let mut pem = std::fs::read(&bundle).unwrap();
    pem.extend(std::fs::read(later2.ca_file()).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let (_, answer) = later2.auth_url();
    assert_eq!(code_of(&answer), "ok", "{answer}");
}
