//! Login latency and cost over TLS through the C ABI, against the emulator with 0 ms and 50 ms
//! of round-trip time injected into every IdP connection, TLS handshake and request. Cold: the
//! first login of a new realm (empty caches, new connection); warm: the following ones.
//!
//! Side by side, the request pattern of PVE's built-in openid realm on the same emulator (read
//! from upstream: pve-access-control OpenId.pm runs `PVE::RS::OpenId->discover` in both API
//! calls, nothing cached; proxmox-openid's `discover` GETs discovery and JWKS; login adds the
//! token request and the userinfo request, each through a new HTTP client, i.e. a new TCP and
//! TLS connection). The emulator has no userinfo endpoint, so a discovery GET stands in for it:
//! the same round trips.

use crate::abi::{self, Call};
use crate::floor::Floor;
use crate::realm::Realm;
use crate::stats::{median_p99, ms, percentile, process_cpu, row, thread_cpu};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let v = f();
    (v, start.elapsed())
}

pub fn run() {
    for (rtt_ms, logins) in [(0u64, 200usize), (50, 20)] {
        let realm = Realm::new(&format!("latency-{rtt_ms}"));
        realm.emu.control(json!({"latency_ms": rtt_ms}));

        realm.emu.reset_stats();
        let (auth, cold_auth) = timed(|| realm.auth_url());
        let cold_auth_rt = realm.emu.stats()["round_trips"].clone();
        let login = realm.login_request(&auth);
        realm.emu.reset_stats();
        let (_, cold_login) = timed(|| abi::ok(Call::Login, &login));
        let cold_login_rt = realm.emu.stats()["round_trips"].clone();
        row(
            &format!("cold auth-url / login over TLS, RTT {rtt_ms} ms"),
            &format!("{} ({cold_auth_rt} round trips) / {} ({cold_login_rt} round trips)", ms(cold_auth), ms(cold_login)),
            "-",
        );

        let (mut auth_times, mut login_times, mut round_trips) = (Vec::new(), Vec::new(), Vec::new());
        let (mut thread, mut process) = (Duration::ZERO, Duration::ZERO);
        let mut floor = (rtt_ms == 0).then(|| Floor::new(&realm));
        for _ in 0..logins {
            let (auth, t) = timed(|| realm.auth_url());
            auth_times.push(t);
            let login = realm.login_request(&auth);
            realm.emu.reset_stats();
            let (c0, p0) = (thread_cpu(), process_cpu());
            let (_, t) = timed(|| abi::ok(Call::Login, &login));
            thread += thread_cpu() - c0;
            process += process_cpu() - p0;
            login_times.push(t);
            round_trips.push(realm.emu.stats()["round_trips"].as_u64().unwrap_or(0));
            if let Some(f) = floor.as_mut() {
                f.round();
            }
        }
        round_trips.sort();
        row(&format!("warm auth-url latency, RTT {rtt_ms} ms"), &median_p99(&auth_times), "no IdP round trip");
        row(
            &format!("warm login over TLS, RTT {rtt_ms} ms: round trips / latency"),
            &format!("{} round trip(s) (max {}); {}", round_trips[round_trips.len() / 2], round_trips[round_trips.len() - 1], median_p99(&login_times)),
            if rtt_ms == 50 { "1 round trip, p50 <= 60 ms" } else { "-" },
        );
        if let Some(floor) = floor {
            let n = logins as u32;
            let per_login = thread / n;
            row("  floor of a warm login's CPU (the same work no login can skip, interleaved)", &floor.describe(), "reference");
            row(
                "CPU per warm login (library thread / whole process incl. emulator)",
                &format!(
                    "{} / {} (emulator's share {:.0}%) = {:.1}x the floor",
                    ms(per_login),
                    ms(process / n),
                    100.0 * (1.0 - thread.as_secs_f64() / process.as_secs_f64()),
                    per_login.as_secs_f64() / floor.per_round().as_secs_f64()
                ),
                "<= 2x the floor",
            );
            // The same without cache_dir: single use is then recorded in memory only, which
            // shows what the on-disk consumed-state store costs per login.
            let mut memory_only = Vec::new();
            for _ in 0..logins {
                let mut auth_req = realm.request();
                auth_req["cache_dir"] = Value::Null;
                let auth = abi::ok(Call::AuthUrl, &auth_req);
                let mut login = realm.login_request(&auth);
                login["cache_dir"] = Value::Null;
                let (_, t) = timed(|| abi::ok(Call::Login, &login));
                memory_only.push(t);
            }
            row("  same, without cache_dir (replay store in memory)", &median_p99(&memory_only), "-");
        } else {
            openid_pattern(&realm, logins, percentile(&login_times, 50.0));
        }
    }
}

/// PVE's openid realm's requests per login (see the module comment), one new client each.
fn openid_pattern(realm: &Realm, logins: usize, ours: Duration) {
    let tenant = entra_emulator::TENANT;
    let base = realm.emu.url();
    let discovery = format!("{base}/{tenant}/v2.0/.well-known/openid-configuration");
    let jwks = format!("{base}/{tenant}/discovery/v2.0/keys");
    let token = format!("{base}/{tenant}/oauth2/v2.0/token");
    let fresh = || {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .tls_config(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build())
                .http_status_as_error(false)
                .build(),
        )
    };
    let get = |url: &str| {
        fresh().get(url).call().expect("GET").body_mut().read_to_vec().expect("body");
    };
    let (mut auth_times, mut login_times, mut auth_rt, mut login_rt) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..logins {
        realm.emu.reset_stats();
        let (_, t) = timed(|| {
            get(&discovery);
            get(&jwks);
        });
        auth_times.push(t);
        auth_rt = realm.emu.stats()["round_trips"].as_u64().unwrap_or(0);
        // A real code for the token request, from our own auth-url (the browser's part).
        let login = realm.login_request(&realm.auth_url());
        realm.emu.reset_stats();
        let (_, t) = timed(|| {
            get(&discovery);
            get(&jwks);
            let form = [
                ("grant_type", "authorization_code"),
                ("code", login["code"].as_str().unwrap_or("")),
                ("redirect_uri", "https://pve1.example:8006"),
                ("client_id", entra_emulator::CLIENT_ID),
                ("client_secret", entra_emulator::CLIENT_SECRET),
            ];
            fresh().post(&token).send_form(form).expect("token POST").body_mut().read_to_vec().expect("body");
            get(&discovery); // stands in for userinfo
        });
        login_times.push(t);
        login_rt = realm.emu.stats()["round_trips"].as_u64().unwrap_or(0);
    }
    row(
        "  PVE openid request pattern, RTT 50 ms: auth-url / login",
        &format!("{auth_rt} / {login_rt} round trips; auth-url {}; login {}", median_p99(&auth_times), median_p99(&login_times)),
        "reference",
    );
    row(
        "  warm login speed-up over the openid pattern (p50)",
        &format!("{:.1}x", percentile(&login_times, 50.0).as_secs_f64() / ours.as_secs_f64()),
        "-",
    );
}
