//! Discovery and JWKS documents have Entra's member sets (compared with the captured fixtures).

mod common;
use common::*;
use entra_emulator::{start, EmulatorConfig, TENANT};
use serde_json::Value;

fn discovery(emu: &entra_emulator::Emulator, tenant: &str) -> Http {
    get(&format!(
        "{}/{tenant}/v2.0/.well-known/openid-configuration",
        emu.url()
    ))
}

#[test]
fn tenant_discovery_matches_captured_member_set() {
    let emu = start(EmulatorConfig::default());
    let doc = discovery(&emu, TENANT).json();
    assert_eq!(
        keys_of(&doc),
        keys_of(&fixture("discovery-tenant-v2-sanitized.json"))
    );
    let base = emu.url();
    assert_eq!(doc["issuer"], format!("{base}/{TENANT}/v2.0"));
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/{TENANT}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{base}/{TENANT}/discovery/v2.0/keys")
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
}

#[test]
fn verified_domain_resolves_to_tenant_guid() {
    let emu = start(EmulatorConfig::default());
    let doc = discovery(&emu, "contoso.example").json();
    assert_eq!(doc["issuer"], format!("{}/{TENANT}/v2.0", emu.url()));
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{TENANT}/oauth2/v2.0/token", emu.url())
    );
}

#[test]
fn multi_tenant_discovery_has_issuer_template() {
    let emu = start(EmulatorConfig::default());
    for tenant in ["organizations", "common"] {
        let doc = discovery(&emu, tenant).json();
        assert_eq!(
            keys_of(&doc),
            keys_of(&fixture("discovery-organizations-v2.json")),
            "{tenant}"
        );
        assert_eq!(doc["issuer"], format!("{}/{{tenantid}}/v2.0", emu.url()));
        assert_eq!(
            doc["token_endpoint"],
            format!("{}/{tenant}/oauth2/v2.0/token", emu.url())
        );
        assert_eq!(doc["tenant_region_scope"], Value::Null);
    }
}

#[test]
fn unknown_tenant_is_aadsts90002() {
    let emu = start(EmulatorConfig::default());
    let r = discovery(&emu, "no-such-tenant.example");
    assert_aadsts(&r, 400, "invalid_tenant", 90002);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("'no-such-tenant.example'"));
}

#[test]
fn jwks_keys_have_entra_shape_without_alg() {
    let emu = start(EmulatorConfig::default());
    let captured = fixture("jwks-common-v2-2025.json");
    let mut expected = keys_of(&captured["keys"][0]);
    expected.remove("x5c"); // optional; the emulator has no certificates for its signing keys
    for (tenant, issuer) in [
        (TENANT.to_string(), format!("{}/{TENANT}/v2.0", emu.url())),
        (
            "organizations".into(),
            format!("{}/{{tenantid}}/v2.0", emu.url()),
        ),
    ] {
        let jwks = get(&format!("{}/{tenant}/discovery/v2.0/keys", emu.url())).json();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "two keys published at start");
        for k in keys {
            assert_eq!(keys_of(k), expected, "{k}");
            assert!(k.get("alg").is_none());
            assert_eq!(k["kty"], "RSA");
            assert_eq!(k["use"], "sig");
            assert_eq!(k["kid"], k["x5t"]);
            assert_eq!(k["e"], "AQAB");
            assert_eq!(k["issuer"], issuer);
            assert_eq!(
                k["kid"].as_str().unwrap().len(),
                27,
                "SHA-1 thumbprint length like Entra's kids"
            );
            assert_eq!(k["n"].as_str().unwrap().len(), 342, "RSA-2048 modulus");
        }
    }
}

#[test]
fn discovery_has_entra_cache_headers() {
    let emu = start(EmulatorConfig::default());
    let r = ureq::get(&format!(
        "{}/{TENANT}/v2.0/.well-known/openid-configuration",
        emu.url()
    ))
    .call()
    .unwrap();
    assert_eq!(
        r.headers().get("cache-control").unwrap(),
        "max-age=86400, private"
    );
}
