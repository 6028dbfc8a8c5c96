//! HTTP requests this node makes to the IdP per login (the browser's own authorize request is
//! not the node's and is not counted).
//!
//! Reference figure, PVE's built-in `openid` realm: 6 per login. Read from upstream:
//! pve-access-control src/PVE/API2/OpenId.pm builds a new `PVE::RS::OpenId->discover(...)` in
//! both API calls (`$lookup_openid_auth`, nothing is cached between requests), and
//! proxmox-rs proxmox-openid/src/lib.rs `OpenIdAuthenticator::discover` calls openidconnect's
//! `CoreProviderMetadata::discover`, which GETs the discovery document and then the JWKS.
//! So `auth-url` costs 2 (discovery, JWKS) and `login` 4 (discovery, JWKS again, the token
//! endpoint in `verify_authorization_code`, then the userinfo endpoint it always calls).

use crate::child;
use crate::realm::Realm;
use crate::stats::row;

pub fn run() {
    let realm = Realm::new("requests");

    let measure = |label: &str, target: &str, fresh_process: bool| {
        realm.emu.reset_stats();
        let auth = if fresh_process { child::call("auth_url", &realm.request()) } else { realm.auth_url() };
        let (auth_n, auth_detail) = realm.node_requests();
        let login = realm.login_request(&auth);
        realm.emu.reset_stats();
        if fresh_process {
            child::call("login", &login);
        } else {
            crate::abi::ok(crate::abi::Call::Login, &login);
        }
        let (login_n, login_detail) = realm.node_requests();
        row(
            &format!("IdP requests per login, {label}"),
            &format!("auth-url {auth_n} ({auth_detail}); login {login_n} ({login_detail})"),
            target,
        );
    };
    measure("cold (first login, empty caches)", "-", false);
    measure("warm (memory cache)", "auth-url 0, login 1", false);
    measure("new process, disk cache warm", "auth-url 0, login 1", true);
    row("IdP requests per login, PVE built-in openid realm", "6 (auth-url 2, login 4; read from upstream)", "reference");
}
