//! ID-token validations per second on one core: the crate's validation path
//! (`claims::validate` with the key looked up through `discovery::Discovery`, whose JWKS is
//! warm in memory) on one pre-signed token, in a tight single-threaded loop, per second of CPU
//! time of the measuring thread.

use crate::realm::Realm;
use crate::stats::{percentile, row, thread_cpu};
use pve_entraid::claims::{validate, Expected};
use pve_entraid::config::RealmConfig;
use pve_entraid::discovery::Discovery;
use pve_entraid::http::UreqTransport;
use pve_entraid::jwt::{b64url_decode, public_key, rsa_key_from_pem, sign_rs256, Jws};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The emulator's first signing key, which signs until keys are rotated.
const SIGNING_KEY: &str = include_str!("../../../tests/emulator/keys/signing-1.key");
const RUN_FOR: Duration = Duration::from_secs(2);

pub fn run() {
    let realm = Realm::new("validation");
    let req = realm.request();
    let cfg = RealmConfig::from_json(&req["config"]).expect("realm config");
    let http = UreqTransport::new(&cfg).expect("transport");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let discovery = Discovery { cfg: &cfg, realm: "entra", cache_dir: None, http: &http, now };
    let provider = discovery.provider().expect("discovery");

    // Sign as the emulator would, with the published key the emulator signs with.
    let private = rsa_key_from_pem(SIGNING_KEY).expect("emulator signing key");
    let public = public_key(&private);
    let kid = discovery.keys().expect("JWKS").iter().find(|k| k.key.n == public.n).expect("key published").kid.clone();
    let tid = entra_emulator::TENANT;
    let claims = json!({
        "aud": entra_emulator::CLIENT_ID, "iss": provider.issuer.replace("{tenantid}", tid),
        "iat": now, "nbf": now, "exp": now + 3600, "nonce": "bench-nonce", "ver": "2.0", "tid": tid,
        "oid": entra_emulator::ALICE_OID, "sub": "bench-sub", "preferred_username": "alice@contoso.example",
        "groups": [entra_emulator::ADMINS_GROUP], "roles": ["PVE.Admin"],
    });
    let token = sign_rs256(&private, &json!({"typ": "JWT", "alg": "RS256", "kid": kid}), &claims);
    let expected = Expected { client_id: entra_emulator::CLIENT_ID, nonce: "bench-nonce", issuer: &provider.issuer, tenant: &cfg.tenant, now };
    let key_for = |kid: &str| discovery.key(kid);
    validate(&token, &expected, &key_for).expect("the bench token validates");

    realm.emu.reset_stats();
    let (n, e) = (public.n.clone(), public.e.clone());
    let ring_key = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let signature = b64url_decode(signature).expect("base64url signature");
    // The floor: ring's raw RS256 check on the same key and token (nothing parsed, nothing
    // looked up), measured interleaved with the full validation so machine load hits both alike.
    let (validations, raw) = interleaved(
        || validate(&token, &expected, &key_for).is_ok(),
        || ring_key.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature).is_ok(),
    );
    let (fetches, _) = realm.node_requests();

    // Where the time goes: the same validation with the key in hand (no cache lookup), and the
    // RS256 signature check alone.
    let jwk = discovery.key(&kid).expect("key");
    let in_hand = |_: &str| Ok(jwk.clone());
    let in_hand_rate = rate(|| validate(&token, &expected, &in_hand).is_ok());
    let parse_verify = rate(|| Jws::parse(&token).and_then(|jws| jws.verify_rs256(&public)).is_ok());
    let parse_only = rate(|| Jws::parse(&token).is_ok());
    let b64_only = rate(|| token.split('.').all(|p| b64url_decode(p).is_some()));

    row(
        "ID-token validations per second, one core (full validation, key from the JWKS cache)",
        &format!("{validations:.0} /s ({:.1} µs each) = {:.0}% of raw ring; {fetches} IdP requests during the run", 1e6 / validations, 100.0 * validations / raw),
        ">= 90% of raw ring",
    );
    row("  raw ring RS256 verify, same key and token", &format!("{raw:.0} /s ({:.1} µs each)", 1e6 / raw), "reference");
    row("  validation with the key in hand", &format!("{in_hand_rate:.0} /s ({:.1} µs each)", 1e6 / in_hand_rate), "-");
    row("  parse + RS256 check only", &format!("{parse_verify:.0} /s ({:.1} µs each)", 1e6 / parse_verify), "-");
    row("  parse only (base64url + header JSON, no signature check)", &format!("{:.2} µs each", 1e6 / parse_only), "-");
    row("  base64url decode of the three parts only", &format!("{:.2} µs each", 1e6 / b64_only), "-");
}

/// Calls of `f` per second of this thread's CPU time over RUN_FOR (CPU time, not wall time:
/// on a shared machine the scheduler's preemptions are not charged to the code measured).
fn rate(mut f: impl FnMut() -> bool) -> f64 {
    let start = Instant::now();
    let cpu = thread_cpu();
    let mut n: u64 = 0;
    while start.elapsed() < RUN_FOR {
        for _ in 0..50 {
            assert!(std::hint::black_box(f()), "the measured call must succeed");
        }
        n += 50;
    }
    n as f64 / (thread_cpu() - cpu).as_secs_f64()
}

/// Rates of `a` and `b` (calls per second of thread CPU time), measured in alternating slices of
/// SLICE calls over 2 x RUN_FOR; the median slice of each, so machine load hits both alike.
fn interleaved(mut a: impl FnMut() -> bool, mut b: impl FnMut() -> bool) -> (f64, f64) {
    const SLICE: u32 = 200;
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < RUN_FOR * 2 {
        for (f, times) in [(&mut a as &mut dyn FnMut() -> bool, &mut times_a), (&mut b, &mut times_b)] {
            let cpu = thread_cpu();
            for _ in 0..SLICE {
                assert!(std::hint::black_box(f()), "the measured call must succeed");
            }
            times.push(thread_cpu() - cpu);
        }
    }
    let per_second = |times: &[Duration]| SLICE as f64 / percentile(times, 50.0).as_secs_f64();
    (per_second(&times_a), per_second(&times_b))
}
