//! Maps a request to its endpoint, counts it, applies injected latency and faults, dispatches.

use crate::aadsts::AadError;
use crate::discovery::{self, TenantPath};
use crate::http::{Reply, Request, Response};
use crate::state::{Endpoint, FaultMode, Shared};
use crate::util::form_decode;
use crate::{authorize, control, directory, graph, token};
use std::time::Duration;

/// "hang" faults keep the connection silent this long.
const HANG: Duration = Duration::from_secs(60);

pub fn route(shared: &Shared, req: &Request) -> Reply {
    if let Some(reply) = control::handle(shared, req) {
        return reply;
    }
    if let Some(reply) = crate::access_token::federated::handle(shared, req) {
        return reply;
    }
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let (endpoint, tenant_segment, oid) = match segments.as_slice() {
        ["v1.0", "users", oid, "getMemberObjects"] => (Endpoint::Graph, "", *oid),
        _ if directory::is_directory_path(&req.path) => (Endpoint::Graph, "", ""),
        [t, "v2.0", ".well-known", "openid-configuration"] => (Endpoint::Discovery, *t, ""),
        [t, "discovery", "v2.0", "keys"] => (Endpoint::Jwks, *t, ""),
        [t, "oauth2", "v2.0", "authorize"] => (Endpoint::Authorize, *t, ""),
        [t, "oauth2", "v2.0", "token"] => (Endpoint::Token, *t, ""),
        _ => {
            return Reply::Full(Response::new(
                404,
                "text/plain; charset=utf-8",
                "not found\n",
            ))
        }
    };
    let method = match endpoint {
        Endpoint::Graph if directory::is_directory_path(&req.path) => "GET",
        Endpoint::Token | Endpoint::Graph => "POST",
        _ => "GET",
    };
    if req.method != method {
        return Reply::Full(
            Response::new(405, "text/plain; charset=utf-8", "method not allowed\n")
                .with_header("Allow", method),
        );
    }
    shared.count(endpoint);
    let (latency, fault) = {
        let mut rt = shared.rt();
        (rt.latency_ms, rt.take_fault(endpoint))
    };
    if latency > 0 {
        std::thread::sleep(Duration::from_millis(latency));
    }
    let serve = || dispatch(shared, endpoint, tenant_segment, oid, req);
    match fault {
        None => Reply::Full(serve()),
        Some(FaultMode::Status500) => Reply::Full(Response::new(
            500,
            "text/html; charset=utf-8",
            "<!DOCTYPE html><html><body><h1>500 Internal Server Error</h1></body></html>",
        )),
        Some(FaultMode::Garbage) => {
            // A 200 that is not JSON, e.g. a captive portal page, with stray binary at the end.
            let mut body = b"<!DOCTYPE html><html><body>Please sign in to the network".to_vec();
            body.extend_from_slice(&[0x00, 0xff, 0xfe, b'{']);
            Reply::Full(Response::new(200, "application/json; charset=utf-8", body))
        }
        Some(FaultMode::Truncated) => Reply::Truncated(serve()),
        Some(FaultMode::Hang) => Reply::Hang(HANG),
        Some(FaultMode::Aadsts(code)) => Reply::Full(injected_error(shared, endpoint, code, req)),
        Some(FaultMode::Throttle(secs)) => Reply::Full(
            graph::graph_error(429, "TooManyRequests", "Too many requests.")
                .with_header("Retry-After", &secs.to_string()),
        ),
    }
}

fn dispatch(
    shared: &Shared,
    endpoint: Endpoint,
    tenant_segment: &str,
    oid: &str,
    req: &Request,
) -> Response {
    if endpoint == Endpoint::Graph && directory::is_directory_path(&req.path) {
        return directory::serve(shared, req);
    }
    if endpoint == Endpoint::Graph {
        return graph::get_member_objects(shared, oid, req);
    }
    let tenant = match TenantPath::resolve(shared, tenant_segment) {
        Ok(t) => t,
        Err(e) if endpoint == Endpoint::Authorize => return e.page(),
        Err(e) => return e.response(&shared.base_url),
    };
    match endpoint {
        Endpoint::Discovery => discovery::discovery(shared, &tenant),
        Endpoint::Jwks => discovery::jwks(shared, &tenant),
        Endpoint::Authorize => authorize::authorize(shared, &tenant, req),
        _ => token::token(shared, &tenant, tenant_segment, req),
    }
}

/// The `aadsts:<code>` fault as each endpoint would deliver it.
fn injected_error(shared: &Shared, endpoint: Endpoint, code: u32, req: &Request) -> Response {
    let err = AadError::known(code);
    match endpoint {
        Endpoint::Authorize => {
            let params = form_decode(&req.query);
            let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            match get("redirect_uri") {
                Some(uri) => err.redirect(&shared.base_url, &uri, get("state").as_deref()),
                None => err.page(),
            }
        }
        Endpoint::Graph => graph::graph_error(
            401,
            "InvalidAuthenticationToken",
            &format!("AADSTS{code}: {}", err.message),
        ),
        _ => err.response(&shared.base_url),
    }
}
