//! `check`: a step-by-step diagnosis of a realm for the administrator (discovery, JWKS,
//! credentials, redirect URL), and the rule that names its users. Failing steps are reported,
//! not returned as errors.

use serde_json::{json, Value};

use crate::error::{Code, Error};
use crate::graph;
use crate::request::{check_redirect_url, CheckMembers, Env, Request};

fn step(name: &str, outcome: std::result::Result<String, Error>, default_fix: &str) -> Value {
    match outcome {
        Ok(detail) => json!({"step": name, "ok": true, "detail": detail}),
        Err(e) => {
            // A transport failure says nothing about the step's own setting (e.g. the secret).
            let transport = matches!(e.code, Code::IdpUnreachable | Code::IdpTimeout | Code::IdpTls);
            let fix = e.hint.unwrap_or_else(|| {
                if transport { "this node could not talk to the authority: check its network, DNS, proxy and trust store".to_string() } else { default_fix.to_string() }
            });
            json!({"step": name, "ok": false, "code": e.code.as_str(), "detail": e.message, "fix": fix})
        }
    }
}

pub fn check(req: &Request<CheckMembers>, env: &Env) -> Value {
    let disc = crate::flow::discovery(req, env);
    let mut steps = Vec::new();
    let provider = disc.provider();
    let provider_ok = provider.is_ok();
    steps.push(step(
        "discovery",
        provider.map(|p| format!("issuer {}", p.issuer)),
        "check the tenant (GUID or verified domain), the cloud, the proxy and that this node reaches the authority over https",
    ));
    if provider_ok {
        steps.push(step(
            "jwks",
            disc.keys().map(|k| format!("{} signing keys", k.len())),
            "the tenant's signing keys could not be loaded; check connectivity to the authority",
        ));
    }
    // A client_credentials grant proves client id and credential without a user.
    let tid = match &req.cfg.tenant {
        crate::config::Tenant::Single(t) => Some(t.clone()),
        crate::config::Tenant::Multi { allowed, .. } => allowed.first().cloned(),
    };
    if let Some(tid) = tid {
        steps.push(step(
            "credentials",
            graph::app_token(&req.cfg, env, &tid).map(|_| "client id and credential accepted".to_string()),
            "check the client id and the client secret value or certificate of the app registration",
        ));
    }
    let redirect = req.body.redirect_url.as_deref().unwrap_or("");
    steps.push(match check_redirect_url(redirect, req.cfg.allow_loopback_redirect) {
        Ok(()) => json!({"step": "redirect_url", "ok": true,
                         "detail": format!("register {redirect} as a Web redirect URI of the app registration")}),
        Err((_, msg)) => json!({"step": "redirect_url", "ok": false, "detail": msg,
                           "fix": "use the https URL users open PVE at, e.g. https://pve.example.com:8006"}),
    });
    // What Entra must issue for the realm's user names (the token's optional claims are not
    // readable with the realm's permissions: said, not checked).
    steps.push(json!({"step": "username", "ok": true, "detail": req.cfg.username_claim.describe()}));
    json!({"steps": steps})
}
