//! Outgoing HTTP: one ureq agent per request with the realm's proxy and timeouts, TLS through
//! rustls checked against the system trust store (/etc/ssl/certs, so CAs added with
//! update-ca-certificates work), no redirects, capped bodies. Transport failures map to
//! `idp.unreachable` / `idp.timeout` / `idp.bad_response`; HTTP error statuses are returned
//! to the caller, which knows how to read that endpoint's error body.

use ureq::tls::{RootCerts, TlsConfig};
use ureq::Agent;

use crate::config::RealmConfig;
use crate::error::{Code, Error, Result};

/// Cap for token and Graph answers.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Cap for discovery and JWKS documents.
pub const MAX_METADATA_BODY: u64 = 256 * 1024;

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A Microsoft Graph answer with the headers a paging client needs.
#[derive(Debug)]
pub struct GraphResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` of a 429/503, as sent.
    pub retry_after: Option<String>,
    /// Graph's `request-id`, for support cases.
    pub request_id: Option<String>,
}

/// The HTTP calls the protocol needs. A trait so that unit tests can count and fail requests.
pub trait Transport {
    fn get(&self, url: &str, cap: u64) -> Result<HttpResponse>;
    fn post_form(&self, url: &str, form: &[(&str, &str)], cap: u64) -> Result<HttpResponse>;
    fn post_json(&self, url: &str, bearer: &str, body: &str, cap: u64) -> Result<HttpResponse>;
    /// GET with a bearer token (Graph directory reads of realm sync).
    fn get_bearer(&self, url: &str, _bearer: &str, _cap: u64) -> Result<GraphResponse> {
        Err(Error::new(Code::PVE_ENTRAID_INTERNAL_ERROR, format!("this transport cannot GET {}", display_url(url))))
    }
}

pub struct UreqTransport {
    agent: Agent,
}

impl UreqTransport {
    pub fn new(cfg: &RealmConfig) -> Result<UreqTransport> {
        let proxy = match &cfg.http_proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|_| {
                Error::new(Code::PVE_ENTRAID_CONFIG_INVALID, "realm config: `http_proxy` is not a usable proxy URL")
            })?),
            // Only the proxy PVE configured (datacenter.cfg): ignore the daemon's environment.
            None => None,
        };
        let tls = TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build();
        let config = Agent::config_builder()
            .tls_config(tls)
            .proxy(proxy)
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_global(Some(cfg.timeout))
            // A redirect from the token endpoint would carry the code (and secret) elsewhere.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .user_agent(concat!("pve-entraid/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(UreqTransport { agent: Agent::new_with_config(config) })
    }

    fn finish(url: &str, res: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>, cap: u64) -> Result<HttpResponse> {
        let mut resp = res.map_err(|e| map_error(url, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(cap)
            .read_to_vec()
            .map_err(|e| map_error(url, e))?;
        Ok(HttpResponse { status, body })
    }
}

impl Transport for UreqTransport {
    fn get(&self, url: &str, cap: u64) -> Result<HttpResponse> {
        Self::finish(url, self.agent.get(url).header("Accept", "application/json").call(), cap)
    }

    fn post_form(&self, url: &str, form: &[(&str, &str)], cap: u64) -> Result<HttpResponse> {
        let res = self.agent.post(url).header("Accept", "application/json").send_form(form.iter().copied());
        Self::finish(url, res, cap)
    }

    fn post_json(&self, url: &str, bearer: &str, body: &str, cap: u64) -> Result<HttpResponse> {
        let res = self
            .agent
            .post(url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .header("Authorization", &format!("Bearer {bearer}"))
            .send(body);
        Self::finish(url, res, cap)
    }

    fn get_bearer(&self, url: &str, bearer: &str, cap: u64) -> Result<GraphResponse> {
        let res = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .header("Authorization", &format!("Bearer {bearer}"))
            .call();
        let mut resp = res.map_err(|e| map_error(url, e))?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (retry_after, request_id) = (header("retry-after"), header("request-id"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(cap).read_to_vec().map_err(|e| map_error(url, e))?;
        Ok(GraphResponse { status, body, retry_after, request_id })
    }
}

/// Only scheme, host and path of a URL go into messages (never a query string).
pub fn display_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn map_error(url: &str, e: ureq::Error) -> Error {
    let at = display_url(url);
    match e {
        ureq::Error::Timeout(_) => Error::new(Code::PVE_ENTRAID_IDP_TIMEOUT, format!("timed out talking to {at}")),
        ureq::Error::BodyExceedsLimit(n) => {
            Error::new(Code::PVE_ENTRAID_IDP_BAD_RESPONSE, format!("answer from {at} is larger than {n} bytes"))
        }
        ureq::Error::HostNotFound => Error::new(Code::PVE_ENTRAID_IDP_UNREACHABLE, format!("cannot resolve the host of {at}")),
        ureq::Error::ConnectionFailed => Error::new(Code::PVE_ENTRAID_IDP_UNREACHABLE, format!("cannot connect to {at}")),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            Error::new(Code::PVE_ENTRAID_IDP_TIMEOUT, format!("timed out talking to {at}"))
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::new(Code::PVE_ENTRAID_IDP_BAD_RESPONSE, format!("truncated answer from {at}"))
        }
        ureq::Error::Protocol(p) => {
            Error::new(Code::PVE_ENTRAID_IDP_BAD_RESPONSE, format!("invalid HTTP answer from {at}: {p}"))
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => Error::new(
            Code::PVE_ENTRAID_IDP_UNREACHABLE,
            format!("TLS with {at} failed: {e} (is its CA in /etc/ssl/certs?)"),
        ),
        other => Error::new(Code::PVE_ENTRAID_IDP_UNREACHABLE, format!("request to {at} failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn cfg(timeout_ms: u64) -> RealmConfig {
        RealmConfig::from_json(&serde_json::json!({
            "tenant": "11111111-2222-3333-4444-555555555555", "client_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "client_secret": "x", "timeout_ms": timeout_ms, "connect_timeout_ms": 500}))
        .unwrap()
    }

    /// A one-shot server answering `reply` to the first connection.
    fn serve_once(reply: Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&reply);
            }
        });
        format!("http://{addr}/x")
    }

    #[test]
    fn refused_connection_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t = UreqTransport::new(&cfg(2000)).unwrap();
        let e = t.get(&format!("http://127.0.0.1:{port}/"), MAX_BODY).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_IDP_UNREACHABLE, "{e}");
    }

    #[test]
    fn oversized_body_is_bad_response() {
        let body = vec![b'a'; 2048];
        let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        reply.extend(body);
        let t = UreqTransport::new(&cfg(2000)).unwrap();
        let e = t.get(&serve_once(reply), 1024).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_IDP_BAD_RESPONSE, "{e}");
    }

    #[test]
    fn redirects_are_not_followed() {
        let reply = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/steal\r\nContent-Length: 0\r\n\r\n".to_vec();
        let t = UreqTransport::new(&cfg(2000)).unwrap();
        assert_eq!(t.post_form(&serve_once(reply), &[("a", "b")], MAX_BODY).unwrap().status, 302);
    }

    #[test]
    fn silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let t = UreqTransport::new(&cfg(300)).unwrap();
        let e = t.get(&url, MAX_BODY).unwrap_err();
        assert_eq!(e.code, Code::PVE_ENTRAID_IDP_TIMEOUT, "{e}");
        drop(l);
    }

    #[test]
    fn urls_in_messages_lose_their_query() {
        assert_eq!(display_url("https://h/p?code=secret"), "https://h/p");
    }
}
