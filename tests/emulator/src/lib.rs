//! Microsoft Entra ID emulator for pve-entraid tests.
//!
//! Serves OIDC discovery, JWKS, a non-interactive authorize endpoint, the token endpoint and the
//! one Microsoft Graph call the realm needs, shaped like the captured Entra documents in
//! fixtures/entra/. Faults, key rotation and token tampering are driven through `/_emu/control`
//! (or [`Emulator::control`] in-process). Contract: docs/DESIGN.md, "Entra emulator".

mod aadsts;
mod access_token;
mod authorize;
mod client;
mod config;
mod control;
mod discovery;
mod graph;
mod directory;
mod http;
mod idtoken;
mod jwt;
mod keys;
mod router;
mod state;
mod tls;
mod token;
mod util;

pub use tls::CA_FILE;

pub use client::authorize;
pub use config::{
    App, EmulatorConfig, OptionalClaim, OptionalClaims, Tenant, User, ADMINS_GROUP, ALICE_OID, BOB_OID, CAROL_OID, CLIENT_ID,
    CLIENT_SECRET, FABRIKAM_TENANT, GUEST_OID, OPERATORS_GROUP, TENANT,
};
pub use access_token::{Issued as AccessIssued, CLAIMS as ACCESS_CLAIMS};
pub use config::{DEPLOY_ROLE, GH_SUBJECT, NOROLE_CLIENT_ID, TOKEN_EXCHANGE_AUDIENCE, WORKLOAD2_CLIENT_ID, WORKLOAD2_SP_OID, WORKLOAD_CLIENT_ID, WORKLOAD_SECRET, WORKLOAD_SP_OID};
pub use idtoken::{claim_names, pairwise_sub, Context as ClaimContext, Issued, Version, CLAIMS};

use state::Shared;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running emulator; stops serving when dropped.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// Starts an emulator on 127.0.0.1 with an OS-chosen port. Panics if it cannot bind (tests only).
pub fn start(cfg: EmulatorConfig) -> Emulator {
    start_on("127.0.0.1:0", cfg).expect("entra-emulator: bind 127.0.0.1:0")
}

/// Starts an emulator serving https on 127.0.0.1 with a new throw-away CA whose certificate is
/// written to `<tls_dir>/ca.pem` ([`CA_FILE`]). Panics if it cannot (tests only).
pub fn start_tls(cfg: EmulatorConfig, tls_dir: &Path) -> Emulator {
    start_with("127.0.0.1:0", cfg, Some(tls_dir)).expect("entra-emulator: TLS on 127.0.0.1:0")
}

/// Starts an emulator on `listen` ("127.0.0.1:0" picks a free port).
pub fn start_on(listen: &str, cfg: EmulatorConfig) -> std::io::Result<Emulator> {
    start_with(listen, cfg, None)
}

/// Starts an emulator on `listen`, over TLS when `tls_dir` is given (see [`start_tls`]).
pub fn start_with(listen: &str, cfg: EmulatorConfig, tls_dir: Option<&Path>) -> std::io::Result<Emulator> {
    start_named(listen, cfg, tls_dir, &[])
}

/// [`start_with`], its TLS certificate also for `names` and its URLs (issuer, endpoints) on the
/// first of them: the test node resolves Microsoft's host names to it (tests/node).
pub fn start_named(
    listen: &str,
    cfg: EmulatorConfig,
    tls_dir: Option<&Path>,
    names: &[String],
) -> std::io::Result<Emulator> {
    let tls = tls_dir.map(|dir| tls::server_config(dir, names)).transpose()?;
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = match names.first() {
        Some(name) if addr.port() == 443 => format!("{scheme}://{name}"),
        Some(name) => format!("{scheme}://{name}:{}", addr.port()),
        None => format!("{scheme}://{addr}"),
    };
    let shared = Arc::new(Shared::new(cfg, base_url));
    let shutdown = Arc::new(AtomicBool::new(false));
    let handler: Arc<http::Handler> = {
        let shared = shared.clone();
        Arc::new(move |req: &http::Request| router::route(&shared, req))
    };
    let net: Arc<http::NetHook> = {
        let shared = shared.clone();
        Arc::new(move |event| shared.net_event(event))
    };
    let acceptor = {
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name("emu-accept".into())
            .spawn(move || http::serve(listener, tls, handler, net, shutdown))?
    };
    Ok(Emulator {
        shared,
        addr,
        shutdown,
        acceptor: Some(acceptor),
    })
}

impl Emulator {
    /// Base URL, e.g. "http://127.0.0.1:40123" — the `authority` (and `graph_url`) of a test realm.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Applies a control document, as `POST /_emu/control` would. Panics on an invalid document:
    /// that is a bug in the calling test.
    pub fn control(&self, v: serde_json::Value) {
        if let Err(e) = control::apply(&self.shared, &v) {
            panic!("entra-emulator control rejected {v}: {e}");
        }
    }

    /// Request counts per endpoint ({"discovery","jwks","authorize","token","graph"}), their sum
    /// `requests`, accepted `connections`, `tls_handshakes`, and `round_trips` (the three summed:
    /// what a client pays in network latency).
    pub fn stats(&self) -> serde_json::Value {
        self.shared.stats()
    }

    pub fn reset_stats(&self) {
        self.shared.reset_stats()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the acceptor sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// The certificate credential of the default app (`tests/emulator/keys/client.crt`).
pub fn client_cert_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys/client.crt")
}

/// Its private key, PKCS#8 PEM (`tests/emulator/keys/client.key`).
pub fn client_key_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys/client.key")
}
