//! The anonymous endpoints' budget (issue 10.6): what taking one call from the shared table costs
//! each auth-url/login, in the table alone (one keyed hash, one CAS) and as an entry point pays
//! it (`ratelimit::admit`: the request's budget members, one `stat` of the table file, the
//! process's mapping); and the same while one address floods and is refused.

use crate::stats::{percentile, row};
use pve_entraid::ratelimit::{admit, clock_ms, Bucket, Client, Table, DEFAULT_LIMITS, TABLE_FILE, TABLE_LEN};
use pve_entraid::request::{LoginMembers, Request};
use serde_json::json;
use std::time::{Duration, Instant};

const SAMPLES: usize = 20_000;

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn measure(mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed());
    }
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

pub fn run() {
    let dir = std::env::temp_dir().join(format!("pve-entraid-bench-{}-ratelimit", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let table = Table::open_or_create(&dir.join(TABLE_FILE)).expect("rate-limit table");
    let now = clock_ms();
    // every call from another address: each finds a bucket with tokens
    let (p50, p99) = measure(|i| {
        let c = Client::V4((i as u32).to_be_bytes());
        let _ = std::hint::black_box(table.admit(Bucket::Address { realm: "entra" }, &c, &DEFAULT_LIMITS, now));
    });
    row("rate limit: one call, table only (1 HMAC + 1 CAS)", &format!("median {} / p99 {}", us(p50), us(p99)), "-");
    let flooder = Client::V4([198, 51, 100, 66]);
    let (p50, p99) = measure(|_| {
        let _ = std::hint::black_box(table.admit(Bucket::Address { realm: "entra" }, &flooder, &DEFAULT_LIMITS, now));
    });
    row("rate limit: one refused call of a flooding address", &format!("median {} / p99 {}", us(p50), us(p99)), "-");
    let reqs: Vec<Request<LoginMembers>> = (0..256u32)
        .map(|i| {
            Request::parse(json!({
                "realm": "entra",
                "config": {"tenant-id": "11111111-2222-3333-4444-555555555555", "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x"},
                "code": "c", "state": "s", "binding_key": "k", "state_key_file": "/nonexistent",
                "run_dir": dir.to_str().expect("utf-8 path"),
                "client_address": format!("2001:db8:{i:x}::1"),
            }))
            .expect("request")
        })
        .collect();
    let (p50, p99) = measure(|i| {
        let req = &reqs[i % reqs.len()];
        let _ = std::hint::black_box(admit(&req.body.caller(), Bucket::Address { realm: &req.realm }));
    });
    row("rate limit: as auth-url/login pay it (members, stat, mapping, table)", &format!("median {} / p99 {}", us(p50), us(p99)), "-");
    row("rate limit: table size (fixed, tmpfs)", &format!("{} KiB", TABLE_LEN / 1024), "fixed");
    let _ = std::fs::remove_dir_all(&dir);
}
