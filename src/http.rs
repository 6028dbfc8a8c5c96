//! Outgoing HTTP through one ureq agent per process: the system trust store (/etc/ssl/certs, so
//! CAs added with update-ca-certificates work) is loaded once and again only when it changes,
//! and connections to the authority and Graph are kept alive for the next call. The agent is
//! made lazily and dropped after a `fork` (pid check), starts no thread (names are resolved in
//! the calling thread and remembered for a minute), and every request carries the realm's proxy
//! and timeouts, no redirects and a body cap. Transport failures map to `idp.unreachable` /
//! `idp.timeout` / `idp.tls` / `idp.bad_response`; HTTP error statuses are returned to the
//! caller, which knows how to read that endpoint's error body.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, TcpConnector,
    Transport as UreqTransportLayer,
};
use ureq::Agent;

use crate::config::RealmConfig;
use crate::error::{Code, Error, Result};

/// Cap for token and Graph answers.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Cap for discovery and JWKS documents.
pub const MAX_METADATA_BODY: u64 = 256 * 1024;
/// Discovery and JWKS requests give up sooner than token requests: an unreachable Entra must not
/// hold a worker for the realm's whole timeout on each anonymous call (see discovery.rs).
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled connections idle longer than this are closed: below the idle timeouts of Microsoft's
/// front ends (about a minute and more), so we never send on a connection they are closing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// How long a resolved address is reused (the pool makes lookups rare anyway).
const DNS_TTL: Duration = Duration::from_secs(60);
/// Where rustls-native-certs (through rustls-platform-verifier) reads the trust store on Debian.
const TRUST_PATHS: [&str; 2] = ["/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt"];

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
/// `Sync`: realm sync reads Graph from a few threads at once through one transport.
pub trait Transport: Sync {
    fn get(&self, url: &str, cap: u64) -> Result<HttpResponse>;
    fn post_form(&self, url: &str, form: &[(&str, &str)], cap: u64) -> Result<HttpResponse>;
    /// POST of a body already `application/x-www-form-urlencoded` (as openidconnect builds
    /// token requests), sent as it is. By default decoded for `post_form`.
    fn post_form_encoded(&self, url: &str, body: &[u8], cap: u64) -> Result<HttpResponse> {
        let pairs: Vec<(String, String)> = openidconnect::url::form_urlencoded::parse(body).into_owned().collect();
        let form: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post_form(url, &form, cap)
    }
    fn post_json(&self, url: &str, bearer: &str, body: &str, cap: u64) -> Result<HttpResponse>;
    /// GET with a bearer token (Graph directory reads of realm sync).
    fn get_bearer(&self, url: &str, _bearer: &str, _cap: u64) -> Result<GraphResponse> {
        Err(Error::new(Code::InternalError, format!("this transport cannot GET {}", display_url(url))))
    }
}

/// What the loaded trust store was read from: the TLS configuration is rebuilt when it changes.
/// Also the environment variables rustls-native-certs honours instead of the system paths.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TrustStamp(Vec<(String, Option<SystemTime>)>);

impl TrustStamp {
    fn now() -> TrustStamp {
        let mut paths: Vec<String> = TRUST_PATHS.iter().map(|p| p.to_string()).collect();
        for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            if let Some(v) = std::env::var_os(var) {
                paths.extend(v.to_string_lossy().split(':').filter(|p| !p.is_empty()).map(|p| format!("{var}={p}")));
            }
        }
        TrustStamp(
            paths
                .into_iter()
                .map(|p| {
                    let file = p.split_once('=').map_or(p.as_str(), |(_, f)| f);
                    let mtime = std::fs::metadata(file).and_then(|m| m.modified()).ok();
                    (p, mtime)
                })
                .collect(),
        )
    }
}

struct ProcessAgent {
    pid: u32,
    trust: TrustStamp,
    agent: Agent,
}

static AGENT: Mutex<Option<ProcessAgent>> = Mutex::new(None);

/// The process's agent (sharing its connection pool), made on first use, after a fork, or when
/// the trust store changed.
fn process_agent() -> Agent {
    let pid = std::process::id();
    let trust = TrustStamp::now();
    let mut guard = AGENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(a) = guard.as_ref().filter(|a| a.pid == pid && a.trust == trust) {
        return a.agent.clone();
    }
    if let Some(old) = guard.take() {
        if old.pid != pid {
            // Inherited from the parent: its sockets and TLS sessions are the parent's. Never
            // use them, and do not even close them politely (a TLS close_notify from here would
            // end the parent's session): forget them.
            std::mem::forget(old);
        }
    }
    let agent = new_agent();
    *guard = Some(ProcessAgent { pid, trust, agent: agent.clone() });
    agent
}

fn new_agent() -> Agent {
    agent_over(TcpConnector::default())
}

/// The agent with `tcp` as its TCP step (tests count the writes that reach it).
fn agent_over<T>(tcp: T) -> Agent
where
    T: Connector<<ConnectProxyConnector as Connector>::Out>,
{
    let tls = TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build();
    let config = Agent::config_builder()
        .tls_config(tls)
        // A redirect from the token endpoint would carry the code (and secret) elsewhere.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .max_idle_age(IDLE_TIMEOUT)
        .user_agent(concat!("pve-entraid/", env!("CARGO_PKG_VERSION")))
        .build();
    // ureq's DefaultConnector minus its warnings for features we do not build (SOCKS, native-tls;
    // `http_proxy` is http:// only, see config.rs), with the TLS step made agent-level.
    let connector = ()
        .chain(ConnectProxyConnector::default())
        .chain(tcp)
        .chain(AgentLevelTls(RustlsConnector::default()))
        .chain(OneWritePerRequest);
    Agent::with_parts(config, connector, CachingResolver::default())
}

/// ureq hands a request's head and its body to the connection in two writes: over TLS two
/// records and two system calls (on a node, two TCP segments to Entra). This outermost layer
/// keeps what is written until the connection waits for the answer (or a buffer's worth has
/// gathered), then passes it on in one write: one record, one `send` per request.
#[derive(Debug)]
struct OneWritePerRequest;

impl<In: UreqTransportLayer> Connector<In> for OneWritePerRequest {
    type Out = Coalescing<In>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let size = details.config.output_buffer_size();
        Ok(chained.map(|inner| Coalescing {
            inner,
            // What ureq reads is copied here (the answer's few KB): `Buffers::input` takes
            // `&self`, which cannot reach the inner layer's buffers. Its output side is unused.
            input: LazyBuffers::new(details.config.input_buffer_size(), 1),
            output: Vec::new(),
            size,
            pending: 0,
        }))
    }
}

/// See [`OneWritePerRequest`]. `output[..pending]` is written and not yet passed on; ureq
/// writes at `output[pending..]`, which always has room for a whole head (`size`).
#[derive(Debug)]
struct Coalescing<T> {
    inner: T,
    input: LazyBuffers,
    output: Vec<u8>,
    size: usize,
    pending: usize,
}

impl<T: UreqTransportLayer> Coalescing<T> {
    /// Passes the pending output on, in pieces of the inner layer's buffer.
    fn flush(&mut self, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        let mut sent = 0;
        while sent < self.pending {
            let out = self.inner.buffers().output();
            let n = out.len().min(self.pending - sent);
            out[..n].copy_from_slice(&self.output[sent..sent + n]);
            self.inner.transmit_output(n, timeout)?;
            sent += n;
        }
        self.pending = 0;
        Ok(())
    }
}

impl<T: UreqTransportLayer> Buffers for Coalescing<T> {
    fn output(&mut self) -> &mut [u8] {
        if self.output.is_empty() {
            self.output = vec![0; 2 * self.size];
        }
        &mut self.output[self.pending..]
    }

    fn input(&self) -> &[u8] {
        self.input.input()
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.input.input_append_buf()
    }

    fn input_appended(&mut self, amount: usize) {
        self.input.input_appended(amount)
    }

    fn input_consume(&mut self, amount: usize) {
        self.input.input_consume(amount)
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        if self.output.is_empty() {
            self.output = vec![0; 2 * self.size];
        }
        (self.input.tmp_and_output().0, &mut self.output[self.pending..])
    }

    fn can_use_input(&self) -> bool {
        self.input.can_use_input()
    }
}

impl<T: UreqTransportLayer> UreqTransportLayer for Coalescing<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
        self.pending += amount;
        if self.pending >= self.size {
            self.flush(timeout)?;
        }
        Ok(())
    }

    /// Whatever waits for the answer sends the request first.
    fn maybe_await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.flush(timeout)?;
        if self.input.can_use_input() {
            return Ok(true);
        }
        self.await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.flush(timeout)?;
        if self.inner.buffers().input().is_empty() && !self.inner.await_input(timeout)? {
            return Ok(false);
        }
        let from = self.inner.buffers().input();
        let to = self.input.input_append_buf();
        let n = from.len().min(to.len());
        to[..n].copy_from_slice(&from[..n]);
        self.inner.buffers().input_consume(n);
        self.input.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.pending == 0 && self.inner.buffers().input().is_empty() && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// ureq's rustls connector, told that every request uses the agent's TLS settings (ours do: a
/// request only sets proxy and timeouts). Without this, a request with its own settings makes
/// ureq build a new rustls configuration, re-reading and parsing the whole trust store, for
/// every new connection, and the agent's cached one is never made.
#[derive(Debug)]
struct AgentLevelTls(RustlsConnector);

impl<In: UreqTransportLayer> Connector<In> for AgentLevelTls {
    type Out = <RustlsConnector as Connector<In>>::Out;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let agent_level = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: false,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        self.0.connect(&agent_level, chained)
    }
}

/// Name resolution in the calling thread (ureq's default resolver starts a thread per request
/// when a timeout is set), remembered for [`DNS_TTL`] so that a request on a pooled connection
/// costs no lookup. Bounded by the resolver's own timeouts (/etc/resolv.conf).
#[derive(Debug, Default)]
struct CachingResolver {
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(&self, uri: &Uri, _config: &Config, _timeout: NextTimeout) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ureq::Error::HostNotFound);
        };
        let host_port = DefaultResolver::host_and_port(scheme, authority).ok_or(ureq::Error::HostNotFound)?;
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.retain(|_, (at, _)| now.duration_since(*at) < DNS_TTL);
            if let Some((_, addrs)) = cache.get(&host_port) {
                return Ok(addrs.clone());
            }
        }
        let mut addrs = self.empty();
        for a in host_port.to_socket_addrs().map_err(|_| ureq::Error::HostNotFound)?.take(16) {
            addrs.push(a);
        }
        if addrs.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(host_port, (now, addrs.clone()));
        Ok(addrs)
    }
}

/// The process agent with one realm's proxy and timeouts.
pub struct UreqTransport {
    agent: Agent,
    proxy: Option<ureq::Proxy>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl UreqTransport {
    pub fn new(cfg: &RealmConfig) -> Result<UreqTransport> {
        let proxy = match &cfg.http_proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|_| {
                Error::new(Code::ConfigInvalid, "realm config: `http_proxy` is not a usable proxy URL")
            })?),
            // Only the proxy PVE configured (datacenter.cfg): ignore the daemon's environment.
            None => None,
        };
        Ok(UreqTransport { agent: process_agent(), proxy, connect_timeout: cfg.connect_timeout, timeout: cfg.timeout })
    }

    /// Per-request settings; they do not split the connection pool (proxies key it anyway).
    fn request<B>(&self, req: ureq::RequestBuilder<B>, timeout: Duration) -> ureq::RequestBuilder<B> {
        req.config()
            .proxy(self.proxy.clone())
            .timeout_connect(Some(self.connect_timeout.min(timeout)))
            .timeout_global(Some(timeout))
            .build()
            .header("Accept", "application/json")
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
    /// GET is only used for discovery and JWKS: the shorter metadata timeout applies.
    fn get(&self, url: &str, cap: u64) -> Result<HttpResponse> {
        let req = self.request(self.agent.get(url), self.timeout.min(METADATA_TIMEOUT));
        Self::finish(url, req.call(), cap)
    }

    fn post_form(&self, url: &str, form: &[(&str, &str)], cap: u64) -> Result<HttpResponse> {
        let res = self.request(self.agent.post(url), self.timeout).send_form(form.iter().copied());
        Self::finish(url, res, cap)
    }

    fn post_form_encoded(&self, url: &str, body: &[u8], cap: u64) -> Result<HttpResponse> {
        let res = self.request(self.agent.post(url), self.timeout).header("Content-Type", "application/x-www-form-urlencoded").send(body);
        Self::finish(url, res, cap)
    }

    fn post_json(&self, url: &str, bearer: &str, body: &str, cap: u64) -> Result<HttpResponse> {
        let res = self
            .request(self.agent.post(url), self.timeout)
            .header("Content-Type", "application/json")
            .header("Authorization", &format!("Bearer {bearer}"))
            .send(body);
        Self::finish(url, res, cap)
    }

    fn get_bearer(&self, url: &str, bearer: &str, cap: u64) -> Result<GraphResponse> {
        // the realm's proxy and timeouts, as every other call
        let res = self.request(self.agent.get(url), self.timeout).header("Authorization", &format!("Bearer {bearer}")).call();
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

/// ureq 3 reports a failed handshake as `Error::Io` wrapping the rustls error.
fn tls_error(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Tls(m) => Some(m.to_string()),
        ureq::Error::Rustls(r) => Some(r.to_string()),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).map(|r| r.to_string()),
        _ => None,
    }
}

fn map_error(url: &str, e: ureq::Error) -> Error {
    let at = display_url(url);
    if let Some(why) = tls_error(&e) {
        let hint = if why.contains("certificate") {
            "the server's certificate is not trusted: is its CA in /etc/ssl/certs (update-ca-certificates), or does a TLS-inspecting proxy need its CA there?"
        } else {
            "the TLS handshake failed: check the realm's authority and any proxy between this node and it"
        };
        return Error::new(Code::IdpTls, format!("TLS with {at} failed: {why}")).with_hint(hint);
    }
    match e {
        ureq::Error::Timeout(_) => Error::new(Code::IdpTimeout, format!("timed out talking to {at}")),
        ureq::Error::BodyExceedsLimit(n) => {
            Error::new(Code::IdpBadResponse, format!("answer from {at} is larger than {n} bytes"))
        }
        ureq::Error::HostNotFound => Error::new(Code::IdpUnreachable, format!("cannot resolve the host of {at}"))
            .with_hint("check the node's DNS (/etc/resolv.conf) and the realm's authority; with a proxy, check the proxy setting"),
        ureq::Error::ConnectionFailed => Error::new(Code::IdpUnreachable, format!("cannot connect to {at}"))
            .with_hint("check the node's outbound network, firewall and proxy setting"),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            Error::new(Code::IdpTimeout, format!("timed out talking to {at}"))
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::new(Code::IdpBadResponse, format!("truncated answer from {at}"))
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Error::new(Code::IdpUnreachable, format!("cannot connect to {at}: connection refused"))
                .with_hint("check the node's outbound network, firewall and proxy setting")
        }
        ureq::Error::Protocol(p) => {
            Error::new(Code::IdpBadResponse, format!("invalid HTTP answer from {at}: {p}"))
        }
        other => Error::new(Code::IdpUnreachable, format!("request to {at} failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn cfg(timeout_ms: u64) -> RealmConfig {
        RealmConfig::from_json(&serde_json::json!({
            "tenant-id": "11111111-2222-3333-4444-555555555555", "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
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
        assert_eq!(e.code, Code::IdpUnreachable, "{e}");
    }

    #[test]
    fn oversized_body_is_bad_response() {
        let body = vec![b'a'; 2048];
        let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        reply.extend(body);
        let t = UreqTransport::new(&cfg(2000)).unwrap();
        let e = t.get(&serve_once(reply), 1024).unwrap_err();
        assert_eq!(e.code, Code::IdpBadResponse, "{e}");
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
        assert_eq!(e.code, Code::IdpTimeout, "{e}");
        drop(l);
    }

    /// The TCP step, counting the writes that reach it.
    #[derive(Debug)]
    struct CountWrites(TcpConnector, Arc<AtomicUsize>);

    #[derive(Debug)]
    struct Counted<T>(T, Arc<AtomicUsize>);

    impl<In: UreqTransportLayer> Connector<In> for CountWrites {
        type Out = Counted<<TcpConnector as Connector<In>>::Out>;
        fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> std::result::Result<Option<Self::Out>, ureq::Error> {
            Ok(self.0.connect(details, chained)?.map(|t| Counted(t, self.1.clone())))
        }
    }

    impl<T: UreqTransportLayer> UreqTransportLayer for Counted<T> {
        fn buffers(&mut self) -> &mut dyn Buffers {
            self.0.buffers()
        }
        fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> std::result::Result<(), ureq::Error> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.transmit_output(amount, timeout)
        }
        fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
            self.0.await_input(timeout)
        }
        fn is_open(&mut self) -> bool {
            self.0.is_open()
        }
    }

    #[test]
    fn a_request_goes_out_in_one_write() {
        let writes = Arc::new(AtomicUsize::new(0));
        let c = cfg(2000);
        let t = UreqTransport { agent: agent_over(CountWrites(TcpConnector::default(), writes.clone())), proxy: None, connect_timeout: c.connect_timeout, timeout: c.timeout };
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec();
        let resp = t.post_form_encoded(&serve_once(reply.clone()), b"grant_type=authorization_code&code=c", MAX_BODY).unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"{}"[..]));
        assert_eq!(writes.load(Ordering::SeqCst), 1, "head and body in one write");
        // a body larger than a buffer still arrives whole, in pieces
        let big = vec![b'a'; 300 * 1024];
        let (url, got) = serve_once_reading(reply);
        assert_eq!(t.post_form_encoded(&url, &big, MAX_BODY).unwrap().status, 200);
        let got = got.join().unwrap();
        assert!(got.ends_with(&big), "the whole body arrives ({} bytes read)", got.len());
    }

    /// Like `serve_once`, reading the whole request (head and Content-Length body) first.
    fn serve_once_reading(reply: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text.split("content-length: ").nth(1).and_then(|v| v.split("\r\n").next()).and_then(|v| v.parse().ok()).unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(&reply).unwrap();
            got
        });
        (format!("http://{addr}/x"), server)
    }

    #[test]
    fn urls_in_messages_lose_their_query() {
        assert_eq!(display_url("https://h/p?code=secret"), "https://h/p");
    }
}
