//! `/_emu/*`: fault injection, key rotation and request counters for tests.

use crate::config::OptionalClaims;
use crate::http::{Reply, Request, Response};
use crate::state::{Endpoint, Fault, FaultMode, Shared, Tamper};
use serde_json::{json, Value};

/// Applies a control document. Fields combine; `reset` is applied first.
pub fn apply(shared: &Shared, doc: &Value) -> Result<(), String> {
    let obj = doc
        .as_object()
        .ok_or("control document must be a JSON object")?;
    const KNOWN: [&str; 8] = [
        "access_token_time_offset",
        "access_token_version",
        "latency_ms",
        "optional_claims",
        "fail_next",
        "tamper_next_id_token",
        "rotate_keys",
        "reset",
    ];
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown control field '{unknown}'"));
    }
    // Validate everything before changing anything, so a bad document changes nothing.
    let latency = match obj.get("latency_ms") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("latency_ms must be a non-negative integer")?,
        ),
    };
    let fault = match obj.get("fail_next") {
        None => None,
        Some(f) => Some(parse_fault(f)?),
    };
    let tamper = match obj.get("tamper_next_id_token") {
        None => None,
        Some(t) => {
            let name = t.as_str().ok_or("tamper_next_id_token must be a string")?;
            Some(Tamper::parse(name).ok_or(format!("unknown tamper_next_id_token '{name}'"))?)
        }
    };
    let access_token_version = match obj.get("access_token_version") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_u64() {
            Some(n @ (1 | 2)) => Some(Some(n as u8)),
            _ => return Err("access_token_version must be 1, 2 or null (requestedAccessTokenVersion)".into()),
        },
    };
    let time_offset = match obj.get("access_token_time_offset") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or("access_token_time_offset must be an integer (seconds)")?),
    };
    let optional_claims = match obj.get("optional_claims") {
        None => None,
        Some(v) => Some(parse_optional_claims(shared, v)?),
    };
    let flag = |name: &str| -> Result<bool, String> {
        match obj.get(name) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or(format!("{name} must be true or false")),
        }
    };
    let (rotate, reset) = (flag("rotate_keys")?, flag("reset")?);

    if reset {
        shared.reset();
    }
    let mut rt = shared.rt();
    if let Some(ms) = latency {
        rt.latency_ms = ms;
    }
    if let Some(f) = fault {
        rt.faults.push(f);
    }
    if let Some(t) = tamper {
        rt.tamper = Some(t);
    }
    if rotate {
        rt.rotations += 1;
    }
    if let Some(o) = time_offset {
        rt.access_token_time_offset = o;
    }
    if let Some(v) = access_token_version {
        rt.access_token_version = Some(v);
    }
    if let Some((client_id, claims)) = optional_claims {
        rt.optional_claims.insert(client_id, claims);
    }
    Ok(())
}

/// `{"client_id": "<default: the first app>", "idToken": [...], ...}`: the app manifest's
/// `optionalClaims` for one app.
fn parse_optional_claims(shared: &Shared, v: &Value) -> Result<(String, OptionalClaims), String> {
    let mut doc = v.as_object().ok_or("optional_claims must be an object (an app manifest's optionalClaims)")?.clone();
    let client_id = match doc.remove("client_id") {
        None => shared.cfg.apps.first().map(|a| a.client_id.clone()).ok_or("the directory has no app")?,
        Some(Value::String(id)) if shared.cfg.app(&id).is_some() => id,
        Some(other) => return Err(format!("optional_claims.client_id {other} is not an app of the directory")),
    };
    let claims: OptionalClaims = serde_json::from_value(Value::Object(doc)).map_err(|e| format!("optional_claims: {e}"))?;
    Ok((client_id.to_ascii_lowercase(), claims))
}

fn parse_fault(f: &Value) -> Result<Fault, String> {
    let endpoint = f["endpoint"]
        .as_str()
        .ok_or("fail_next.endpoint is required")?;
    let endpoint = Endpoint::parse(endpoint).ok_or(format!(
        "fail_next.endpoint '{endpoint}' is not one of discovery, jwks, authorize, token, graph"
    ))?;
    let mode = f["mode"].as_str().ok_or("fail_next.mode is required")?;
    let mode = FaultMode::parse(mode).ok_or(format!(
        "fail_next.mode '{mode}' is not one of status500, garbage, truncated, hang, aadsts:<code>, throttle:<seconds>"
    ))?;
    let remaining = match f.get("count") {
        None => 1,
        Some(c) => c
            .as_u64()
            .filter(|n| (1..=u32::MAX as u64).contains(n))
            .ok_or("fail_next.count must be a positive integer")? as u32,
    };
    Ok(Fault {
        endpoint,
        mode,
        remaining,
    })
}

/// Routes `/_emu/...`; None when the path is not a control path.
pub fn handle(shared: &Shared, req: &Request) -> Option<Reply> {
    let resp = match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/_emu/control") => match serde_json::from_slice::<Value>(&req.body) {
            Err(e) => bad(&format!("control body is not JSON: {e}")),
            Ok(doc) => match apply(shared, &doc) {
                Ok(()) => Response::json(200, &json!({"ok": true})),
                Err(e) => bad(&e),
            },
        },
        ("GET", "/_emu/stats") => Response::json(200, &shared.stats()),
        ("POST", "/_emu/stats/reset") => {
            shared.reset_stats();
            Response::json(200, &json!({"ok": true}))
        }
        (_, p) if p.starts_with("/_emu/") => Response::json(
            404,
            &json!({"ok": false, "error": "no such control endpoint"}),
        ),
        _ => return None,
    };
    Some(Reply::Full(resp))
}

fn bad(msg: &str) -> Response {
    Response::json(400, &json!({"ok": false, "error": msg}))
}
