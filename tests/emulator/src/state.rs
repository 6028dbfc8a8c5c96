//! Shared state of a running emulator: directory, keys, issued codes and tokens, and the
//! fault-injection settings changed through the control endpoint.

use crate::config::{EmulatorConfig, OptionalClaims};
use crate::keys::{ClientCredential, KeySet};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The IdP endpoints, as counted in stats and targeted by faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Discovery,
    Jwks,
    Authorize,
    Token,
    Graph,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Graph,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Discovery => "discovery",
            Endpoint::Jwks => "jwks",
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
            Endpoint::Graph => "graph",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    Status500,
    /// 200 with a body that is not JSON (an HTML page, as a captive proxy would send).
    Garbage,
    /// Content-Length larger than the body, connection closed early.
    Truncated,
    /// No answer for 60 s, then close.
    Hang,
    /// The endpoint's Entra error for this AADSTS code.
    Aadsts(u32),
    /// 429 Too Many Requests with `Retry-After` of this many seconds (Graph throttling).
    Throttle(u64),
}

impl FaultMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "status500" => FaultMode::Status500,
            "garbage" => FaultMode::Garbage,
            "truncated" => FaultMode::Truncated,
            "hang" => FaultMode::Hang,
            _ if s.starts_with("throttle:") => FaultMode::Throttle(s.strip_prefix("throttle:")?.parse().ok()?),
            _ => FaultMode::Aadsts(s.strip_prefix("aadsts:")?.parse().ok()?),
        })
    }
}

/// One-shot manipulations of the next ID token, each aimed at one validation rule of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    AlgNone,
    Hs256Pubkey,
    BadSignature,
    NoKid,
    WrongIss,
    WrongAud,
    ExtraAud,
    Expired,
    NbfFuture,
    IatFuture,
    NoNonce,
    WrongNonce,
    V1,
    WrongTid,
    BadAzp,
    /// Signed with the held-back key, whose kid is not (yet) published.
    UnknownKid,
}

impl Tamper {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "alg_none" => Tamper::AlgNone,
            "hs256_pubkey" => Tamper::Hs256Pubkey,
            "bad_signature" => Tamper::BadSignature,
            "no_kid" => Tamper::NoKid,
            "wrong_iss" => Tamper::WrongIss,
            "wrong_aud" => Tamper::WrongAud,
            "extra_aud" => Tamper::ExtraAud,
            "expired" => Tamper::Expired,
            "nbf_future" => Tamper::NbfFuture,
            "iat_future" => Tamper::IatFuture,
            "no_nonce" => Tamper::NoNonce,
            "wrong_nonce" => Tamper::WrongNonce,
            "v1" => Tamper::V1,
            "wrong_tid" => Tamper::WrongTid,
            "bad_azp" => Tamper::BadAzp,
            "unknown_kid" => Tamper::UnknownKid,
            _ => return None,
        })
    }
}

pub struct Fault {
    pub endpoint: Endpoint,
    pub mode: FaultMode,
    pub remaining: u32,
}

/// What an authorization code stands for.
#[derive(Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: String,
    pub scope: String,
    pub user_oid: String,
    /// The tenant of the resulting tokens (`tid`).
    pub tid: String,
    pub issued_at: u64,
    pub redeemed: bool,
}

/// An app-only access token from the client_credentials grant, good for Graph.
pub struct AppToken {
    pub client_id: String,
    pub expires_at: u64,
}

#[derive(Default)]
pub struct Runtime {
    pub latency_ms: u64,
    pub faults: Vec<Fault>,
    pub tamper: Option<Tamper>,
    pub rotations: usize,
    pub codes: HashMap<String, CodeGrant>,
    pub app_tokens: HashMap<String, AppToken>,
    /// Optional claims set through the control endpoint: lower-case client id → claims, in
    /// place of the app's configured ones.
    pub optional_claims: HashMap<String, OptionalClaims>,
    /// `requestedAccessTokenVersion` set through the control endpoint for every app, in place of
    /// the configured one (`Some(None)`: null, i.e. v1.0).
    pub access_token_version: Option<Option<u8>>,
    /// Seconds added to the `iat`, `nbf` and `exp` of every access token (negative: issued in
    /// the past, e.g. already expired).
    pub access_token_time_offset: i64,
}

/// Redeemed or expired codes are kept this long (to answer reuse with AADSTS54005), then dropped.
const CODE_MEMORY: u64 = 3600;

impl Runtime {
    /// Forgets codes and app tokens nobody can use any more, so long load runs stay bounded.
    pub fn prune_expired(&mut self, now: u64) {
        if self.codes.len() > 10_000 {
            self.codes
                .retain(|_, g| now.saturating_sub(g.issued_at) < CODE_MEMORY);
        }
        if self.app_tokens.len() > 10_000 {
            self.app_tokens.retain(|_, t| t.expires_at > now);
        }
    }

    /// Takes one pending fault for `endpoint`, if any.
    pub fn take_fault(&mut self, endpoint: Endpoint) -> Option<FaultMode> {
        let i = self.faults.iter().position(|f| f.endpoint == endpoint)?;
        let mode = self.faults[i].mode;
        self.faults[i].remaining -= 1;
        if self.faults[i].remaining == 0 {
            self.faults.remove(i);
        }
        Some(mode)
    }
}

pub struct Shared {
    pub cfg: EmulatorConfig,
    pub base_url: String,
    pub keys: KeySet,
    pub client_cred: ClientCredential,
    /// The signing key of the emulated federated ("GitHub Actions") issuer.
    pub federated_key: crate::keys::SigningKey,
    runtime: Mutex<Runtime>,
    stats: [AtomicU64; 5],
    connections: AtomicU64,
    tls_handshakes: AtomicU64,
}

impl Shared {
    pub fn new(cfg: EmulatorConfig, base_url: String) -> Self {
        let runtime = Runtime {
            latency_ms: cfg.latency_ms,
            ..Runtime::default()
        };
        Shared {
            cfg,
            base_url,
            keys: KeySet::load(),
            client_cred: ClientCredential::load(),
            federated_key: crate::keys::SigningKey::federated(),
            runtime: Mutex::new(runtime),
            stats: Default::default(),
            connections: AtomicU64::new(0),
            tls_handshakes: AtomicU64::new(0),
        }
    }

    /// The runtime state; a panic in another request thread must not wedge the emulator.
    pub fn rt(&self) -> MutexGuard<'_, Runtime> {
        self.runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn count(&self, endpoint: Endpoint) {
        self.stats[endpoint as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a connection or handshake; answers the injected round-trip latency to pay for it.
    pub fn net_event(&self, event: crate::http::NetEvent) -> std::time::Duration {
        match event {
            crate::http::NetEvent::Connection => &self.connections,
            crate::http::NetEvent::TlsHandshake => &self.tls_handshakes,
        }
        .fetch_add(1, Ordering::SeqCst);
        std::time::Duration::from_millis(self.rt().latency_ms)
    }

    pub fn stats(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        let mut requests = 0;
        for e in Endpoint::ALL {
            let n = self.stats[e as usize].load(Ordering::SeqCst);
            requests += n;
            map.insert(e.name().into(), n.into());
        }
        let connections = self.connections.load(Ordering::SeqCst);
        let tls_handshakes = self.tls_handshakes.load(Ordering::SeqCst);
        map.insert("requests".into(), requests.into());
        map.insert("connections".into(), connections.into());
        map.insert("tls_handshakes".into(), tls_handshakes.into());
        map.insert(
            "round_trips".into(),
            (requests + connections + tls_handshakes).into(),
        );
        map.into()
    }

    pub fn reset_stats(&self) {
        for s in self
            .stats
            .iter()
            .chain([&self.connections, &self.tls_handshakes])
        {
            s.store(0, Ordering::SeqCst);
        }
    }

    /// The app's optional claims now: set through the control endpoint, else configured.
    pub fn optional_claims(&self, client_id: &str) -> OptionalClaims {
        if let Some(c) = self.rt().optional_claims.get(&client_id.to_ascii_lowercase()) {
            return c.clone();
        }
        self.cfg.app(client_id).map(|a| a.optional_claims.clone()).unwrap_or_default()
    }

    /// Back to the state right after start (directory unchanged).
    pub fn reset(&self) {
        *self.rt() = Runtime {
            latency_ms: self.cfg.latency_ms,
            ..Runtime::default()
        };
        self.reset_stats();
    }
}
