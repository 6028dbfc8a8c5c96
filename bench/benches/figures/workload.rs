//! Workload token exchange beside login, through the C ABI over TLS against the emulator: the
//! access token comes from the emulator's client credentials grant (the workload's part, not
//! measured); the exchange itself needs no IdP round trip once the realm's keys are cached, so
//! its latency is its CPU. Interleaved with warm logins of the same realm for the comparison.

use crate::abi::{self, Call};
use crate::realm::Realm;
use crate::stats::{median_p99, ms, row, thread_cpu};
use serde_json::Value;
use std::time::{Duration, Instant};

const WORKLOAD_CLIENT_ID: &str = entra_emulator::WORKLOAD_CLIENT_ID;

fn access_token(realm: &Realm) -> String {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build())
            .build(),
    );
    let url = format!("{}/{}/oauth2/v2.0/token", realm.emu.url(), entra_emulator::TENANT);
    let scope = format!("api://{}/.default", entra_emulator::CLIENT_ID);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", WORKLOAD_CLIENT_ID),
        ("client_secret", entra_emulator::WORKLOAD_SECRET),
        ("scope", scope.as_str()),
    ];
    let body = agent.post(&url).send_form(form).expect("token POST").body_mut().read_to_vec().expect("token body");
    let body: Value = serde_json::from_slice(&body).expect("token JSON");
    body["access_token"].as_str().expect("an access token").to_string()
}

pub fn run() {
    let realm = Realm::new("workload");
    let mut req = realm.request();
    let members = req.as_object_mut().expect("request object");
    for m in ["redirect_url", "state_key_file", "binding_hash"] {
        members.remove(m);
    }
    req["config"]["workload-map"] = "Deploy.Pve=ci-deploy:ci".into();
    req["access_token"] = access_token(&realm).into();
    let (_, cold) = {
        let start = Instant::now();
        (abi::ok(Call::WorkloadToken, &req), start.elapsed())
    };
    let n = 200u32;
    let (mut exchange, mut login) = (Vec::new(), Vec::new());
    let (mut exchange_cpu, mut login_cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let c0 = thread_cpu();
        let start = Instant::now();
        abi::ok(Call::WorkloadToken, &req);
        exchange.push(start.elapsed());
        exchange_cpu += thread_cpu() - c0;
        let login_req = realm.login_request(&realm.auth_url());
        let c0 = thread_cpu();
        let start = Instant::now();
        abi::ok(Call::Login, &login_req);
        login.push(start.elapsed());
        login_cpu += thread_cpu() - c0;
    }
    row("cold workload token exchange over TLS (discovery and JWKS fetched)", &ms(cold), "-");
    row("warm workload token exchange / warm login, RTT 0 ms", &format!("{} / {}", median_p99(&exchange), median_p99(&login)), "no IdP round trip for the exchange");
    row(
        "CPU per warm workload token exchange / per warm login (library thread)",
        &format!("{} / {} ({:.2}x)", ms(exchange_cpu / n), ms(login_cpu / n), exchange_cpu.as_secs_f64() / login_cpu.as_secs_f64()),
        "<= login's",
    );
}
