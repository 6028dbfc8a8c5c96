//! Parsing of every captured Entra document in tests/fixtures/entra (see SOURCES.txt there).

use std::path::{Path, PathBuf};

use pve_entraid::discovery::{parse_jwks, parse_provider};
use pve_entraid::error::{from_token_error, pve_entraid_result};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    // Overridable for packaging builds that ship the fixtures elsewhere.
    std::env::var_os("PVE_ENTRAID_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/entra"))
}

fn load(name: &str) -> Value {
    let p = fixtures_dir().join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn every_json_fixture_is_understood() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("discovery-") {
            let p = parse_provider(&load(&name), false).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(p.issuer.starts_with("https://login.microsoftonline.com/") && p.issuer.ends_with("/v2.0"), "{name}");
            seen += 1;
        } else if name.starts_with("jwks-") && name.ends_with(".json") {
            let doc = load(&name);
            let keys = parse_jwks(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(keys.len(), doc["keys"].as_array().unwrap().len(), "{name}: every Entra key is usable");
            seen += 1;
        }
    }
    assert_eq!(seen, 6, "three discovery documents and three JWKS");
}

#[test]
fn multi_tenant_discovery_uses_the_tenantid_template() {
    for name in ["discovery-common-v2.json", "discovery-organizations-v2.json"] {
        assert_eq!(parse_provider(&load(name), false).unwrap().issuer, "https://login.microsoftonline.com/{tenantid}/v2.0");
    }
}

#[test]
fn captured_token_errors_give_code_hint_and_ids() {
    let cases = load("token-error-responses.json");
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let status = case["http_status"].as_u64().unwrap() as u16;
        let body = &case["body"];
        let e = from_token_error(status, body.to_string().as_bytes());
        assert_eq!(e.code, pve_entraid_result::IdpError);
        assert_eq!(e.aadsts, body["error_codes"][0].as_u64(), "{}", case["case"]);
        assert_eq!(e.trace_id.as_deref(), body["trace_id"].as_str());
        assert_eq!(e.correlation_id.as_deref(), body["correlation_id"].as_str());
        assert_eq!(e.http_status, Some(status));
        assert!(e.hint.is_some(), "{}: a hint for a setup error", case["case"]);
        assert!(!e.message.contains("Trace ID"), "first line only: {}", e.message);
    }
    let secret = from_token_error(401, cases[0]["body"].to_string().as_bytes());
    assert_eq!(secret.aadsts, Some(7000215));
    assert!(secret.hint.unwrap().contains("Value"));
}
