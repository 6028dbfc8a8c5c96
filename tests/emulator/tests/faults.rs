//! Fault injection through the control endpoint, latency, stats.

mod common;
use common::*;
use entra_emulator::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn discovery_url(emu: &Emulator) -> String {
    format!(
        "{}/{TENANT}/v2.0/.well-known/openid-configuration",
        emu.url()
    )
}

fn jwks_url(emu: &Emulator) -> String {
    format!("{}/{TENANT}/discovery/v2.0/keys", emu.url())
}

#[test]
fn status500_fails_the_next_n_requests_only() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "status500", "count": 2}}));
    assert_eq!(
        get(&jwks_url(&emu)).status,
        200,
        "other endpoints unaffected"
    );
    assert_eq!(get(&discovery_url(&emu)).status, 500);
    assert_eq!(get(&discovery_url(&emu)).status, 500);
    assert_eq!(get(&discovery_url(&emu)).status, 200);
}

#[test]
fn garbage_is_a_200_that_is_not_json() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"fail_next": {"endpoint": "jwks", "mode": "garbage"}}));
    let r = get(&jwks_url(&emu));
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("application/json"));
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    assert!(get(&jwks_url(&emu)).json()["keys"].is_array());
}

#[test]
fn truncated_body_is_a_read_error() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "truncated"}}));
    assert!(try_get(&discovery_url(&emu), Duration::from_secs(10)).is_err());
    assert_eq!(get(&discovery_url(&emu)).status, 200);
}

#[test]
fn hang_answers_nothing_while_others_are_served() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"fail_next": {"endpoint": "token", "mode": "hang"}}));
    let started = Instant::now();
    let r = try_post_form(
        &token_url(&emu, TENANT),
        &[("grant_type", "client_credentials")],
        Duration::from_millis(800),
    );
    assert!(
        r.is_err(),
        "a hanging token endpoint must time the client out"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(get(&discovery_url(&emu)).status, 200);
}

#[test]
fn aadsts_mode_returns_that_error_from_each_endpoint() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"fail_next": {"endpoint": "token", "mode": "aadsts:7000222"}}));
    let r = login_as(&emu, TENANT, None);
    assert_aadsts(&r, 401, "invalid_client", 7000222);

    emu.control(json!({"fail_next": {"endpoint": "token", "mode": "aadsts:50076"}}));
    assert_aadsts(&login_as(&emu, TENANT, None), 400, "invalid_grant", 50076);

    emu.control(json!({"fail_next": {"endpoint": "discovery", "mode": "aadsts:90002"}}));
    assert_aadsts(&get(&discovery_url(&emu)), 400, "invalid_tenant", 90002);

    emu.control(json!({"fail_next": {"endpoint": "authorize", "mode": "aadsts:65001"}}));
    let (_, challenge) = pkce();
    let err = authorize(&auth_url(&emu, TENANT, &challenge, &[]), None).unwrap_err();
    assert!(err.starts_with("invalid_grant: AADSTS65001:"), "{err}");

    emu.control(json!({"fail_next": {"endpoint": "graph", "mode": "aadsts:50076"}}));
    let r = post_json(
        &format!("{}/v1.0/users/{ALICE_OID}/getMemberObjects", emu.url()),
        &json!({}),
        Some("x"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "InvalidAuthenticationToken");
}

#[test]
fn latency_delays_every_idp_request() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"latency_ms": 300}));
    let t = Instant::now();
    get(&discovery_url(&emu));
    assert!(t.elapsed() >= Duration::from_millis(300));
    emu.control(json!({"latency_ms": 0}));
}

#[test]
fn stats_count_requests_per_endpoint_and_reset() {
    let emu = start(EmulatorConfig::default());
    get(&discovery_url(&emu));
    get(&discovery_url(&emu));
    get(&jwks_url(&emu));
    login_as(&emu, TENANT, None);
    let endpoints = |v: Value| {
        json!({"discovery": v["discovery"], "jwks": v["jwks"], "authorize": v["authorize"],
               "token": v["token"], "graph": v["graph"], "requests": v["requests"]})
    };
    assert_eq!(
        endpoints(emu.stats()),
        json!({"discovery": 2, "jwks": 1, "authorize": 1, "token": 1, "graph": 0, "requests": 5})
    );
    let s = emu.stats();
    let (conns, requests) = (s["connections"].as_u64().unwrap(), 5);
    assert!(conns >= 1, "connections are counted: {s}");
    assert_eq!(s["tls_handshakes"], 0, "plain HTTP");
    assert_eq!(s["round_trips"].as_u64().unwrap(), conns + requests);
    let over_http = get(&format!("{}/_emu/stats", emu.url())).json();
    assert_eq!(endpoints(over_http), endpoints(emu.stats()));
    assert_eq!(
        post_json(&format!("{}/_emu/stats/reset", emu.url()), &json!({}), None).status,
        200
    );
    assert_eq!(
        emu.stats(),
        json!({"discovery": 0, "jwks": 0, "authorize": 0, "token": 0, "graph": 0,
               "requests": 0, "connections": 0, "tls_handshakes": 0, "round_trips": 0})
    );
    get(&jwks_url(&emu));
    emu.reset_stats();
    assert_eq!(emu.stats()["jwks"], 0);
}

#[test]
fn control_over_http_validates_and_applies_atomically() {
    let emu = start(EmulatorConfig::default());
    let control = format!("{}/_emu/control", emu.url());
    for bad in [
        json!({"fail_next": {"endpoint": "nowhere", "mode": "status500"}}),
        json!({"fail_next": {"endpoint": "jwks", "mode": "explode"}}),
        json!({"fail_next": {"endpoint": "jwks", "mode": "status500", "count": 0}}),
        json!({"tamper_next_id_token": "nonsense"}),
        json!({"latency_ms": -1}),
        json!({"fail_next": {"endpoint": "jwks", "mode": "status500"}, "bogus": 1}),
        json!([1, 2]),
    ] {
        let r = post_json(&control, &bad, None);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["ok"], false);
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(
        get(&jwks_url(&emu)).status,
        200,
        "rejected documents changed nothing"
    );
    let r = post_json(
        &control,
        &json!({"fail_next": {"endpoint": "jwks", "mode": "status500"}}),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(&jwks_url(&emu)).status, 500);
}

#[test]
fn reset_clears_faults_latency_and_stats() {
    let emu = start(EmulatorConfig::default());
    emu.control(json!({"fail_next": {"endpoint": "jwks", "mode": "status500", "count": 5}, "latency_ms": 5000}));
    emu.control(json!({"reset": true}));
    let t = Instant::now();
    assert_eq!(get(&jwks_url(&emu)).status, 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(emu.stats()["jwks"], 1);
}

#[test]
#[should_panic(expected = "control rejected")]
fn in_process_control_panics_on_a_bad_document() {
    start(EmulatorConfig::default())
        .control(json!({"fail_next": {"endpoint": "x", "mode": "hang"}}));
}

#[test]
fn dropped_emulator_stops_listening() {
    let emu = start(EmulatorConfig::default());
    let url = discovery_url(&emu);
    drop(emu);
    assert!(try_get(&url, Duration::from_secs(2)).is_err());
}
