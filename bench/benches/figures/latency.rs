//! auth-url and login latency through the C ABI against the emulator, with 0 ms and 50 ms of
//! latency injected into every IdP answer. Cold: the first login of a new realm (empty
//! caches); warm: the following ones.

use crate::abi::{self, Call};
use crate::realm::Realm;
use crate::stats::{median_p99, ms, row};
use serde_json::json;
use std::time::{Duration, Instant};

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let v = f();
    (v, start.elapsed())
}

pub fn run() {
    for (latency_ms, logins) in [(0u64, 200usize), (50, 40)] {
        let realm = Realm::new(&format!("latency-{latency_ms}"));
        realm.emu.control(json!({"latency_ms": latency_ms}));

        let (auth, cold_auth) = timed(|| realm.auth_url());
        let login = realm.login_request(&auth);
        let (_, cold_login) = timed(|| abi::ok(Call::Login, &login));
        row(
            &format!("cold auth-url / login, IdP latency {latency_ms} ms"),
            &format!("{} / {}", ms(cold_auth), ms(cold_login)),
            "-",
        );

        let (mut auth_times, mut login_times) = (Vec::new(), Vec::new());
        for _ in 0..logins {
            let (auth, t) = timed(|| realm.auth_url());
            auth_times.push(t);
            let login = realm.login_request(&auth);
            let (_, t) = timed(|| abi::ok(Call::Login, &login));
            login_times.push(t);
        }
        row(&format!("warm auth-url latency, IdP latency {latency_ms} ms"), &median_p99(&auth_times), "no IdP round trip");
        row(
            &format!("warm login latency, IdP latency {latency_ms} ms"),
            &median_p99(&login_times),
            &format!("one IdP round trip (~{latency_ms} ms + work)"),
        );
        if latency_ms == 0 {
            // The same without cache_dir: single use is then recorded in memory only, which
            // shows what the durable (fsync'd) consumed-state file costs per login.
            let mut memory_only = Vec::new();
            for _ in 0..logins {
                let mut auth_req = realm.request();
                auth_req["cache_dir"] = serde_json::Value::Null;
                let auth = abi::ok(Call::AuthUrl, &auth_req);
                let mut login = realm.login_request(&auth);
                login["cache_dir"] = serde_json::Value::Null;
                let (_, t) = timed(|| abi::ok(Call::Login, &login));
                memory_only.push(t);
            }
            row("  same, without cache_dir (no fsync of the consumed-state file)", &median_p99(&memory_only), "-");
        }
    }
}
