//! A test realm on a fresh emulator serving TLS, with its own cache directory and state key.
//! Each emulator makes a throw-away CA; the bench appends it to the trust bundle the library
//! reads through the system path (SSL_CERT_FILE, set in `main` before any call), so the library
//! verifies the emulator exactly as it verifies Entra on a node.

use crate::abi::{self, Call};
use entra_emulator::{Emulator, EmulatorConfig, CLIENT_ID, CLIENT_SECRET, TENANT};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// The trust bundle (SSL_CERT_FILE) of this bench run.
pub fn trust_bundle() -> PathBuf {
    std::env::temp_dir().join(format!("pve-entraid-bench-{}-trust.pem", std::process::id()))
}

pub const USER: &str = "alice@contoso.example";

pub struct Realm {
    pub emu: Emulator,
    pub dir: PathBuf,
}

impl Realm {
    /// A fresh emulator means a fresh discovery URL, so the library's process-wide memory
    /// cache starts cold for this realm.
    pub fn new(name: &str) -> Realm {
        let dir = std::env::temp_dir().join(format!("pve-entraid-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache")).expect("create bench scratch directory");
        // As on a node: the app's secret in a file the library reads (PVE never sends it inline).
        std::fs::write(dir.join("entra.secret"), CLIENT_SECRET).expect("write the client secret file");
        // the optional claim `upn` the realm's default username-claim needs
        let emu = entra_emulator::start_tls(EmulatorConfig::default().with_id_token_claims(&["upn"]), &dir.join("tls"));
        let ca = std::fs::read(dir.join("tls").join(entra_emulator::CA_FILE)).expect("emulator CA");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trust_bundle())
            .and_then(|mut f| f.write_all(&ca))
            .expect("append to the trust bundle");
        Realm { emu, dir }
    }

    pub fn request(&self) -> Value {
        json!({
            "realm": "entra",
            "config": {"tenant-id": TENANT, "client-id": CLIENT_ID, "client_secret_file": self.dir.join("entra.secret"),
                       "authority": self.emu.url(), "graph_url": self.emu.url()},
            "cache_dir": self.dir.join("cache"),
            "redirect_url": "https://pve1.example:8006",
            "state_key_file": self.dir.join("state.key"),
            // browser binding: SHA-256 of the key (for login, below), 32 bytes 0x42
            "binding_hash": "Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw",
        })
    }

    pub fn auth_url(&self) -> Value {
        abi::ok(Call::AuthUrl, &self.request())
    }

    /// The browser's part: follow the authorize URL, returning the login request for its answer.
    pub fn login_request(&self, auth: &Value) -> Value {
        let url = auth["url"].as_str().expect("auth_url answer has a url");
        let (code, state) = entra_emulator::authorize(url, Some(USER)).expect("emulator authorizes");
        // login's own members (docs/DESIGN.md "Call contexts"): the rest of auth_url's are refused
        let mut req = self.request();
        let members = req.as_object_mut().expect("request object");
        members.remove("redirect_url");
        members.remove("binding_hash");
        req["binding_key"] = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI".into();
        req["code"] = code.into();
        req["state"] = state.into();
        req
    }

    /// IdP requests the node made since the last reset (the browser's authorize excluded).
    pub fn node_requests(&self) -> (u64, String) {
        let stats = self.emu.stats();
        let mut total = 0;
        let mut parts = Vec::new();
        for endpoint in ["discovery", "jwks", "token", "graph"] {
            let n = stats[endpoint].as_u64().unwrap_or(0);
            if n > 0 {
                parts.push(format!("{endpoint} {n}"));
            }
            total += n;
        }
        (total, if parts.is_empty() { "none".into() } else { parts.join(", ") })
    }
}

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
