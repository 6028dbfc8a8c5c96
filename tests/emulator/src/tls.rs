//! TLS mode: a throw-away CA made at start (its certificate written to `<dir>/ca.pem` for the
//! client to trust through the system trust path, e.g. SSL_CERT_FILE) and a server certificate
//! for 127.0.0.1, localhost and the given host names (the test node's Microsoft names) signed by it.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The CAs made by this process, trusted by [`client_connection`] (the test "browser").
static CAS: Mutex<Vec<CertificateDer<'static>>> = Mutex::new(Vec::new());

/// A TLS client for `host` ("127.0.0.1:PORT") trusting only the CAs made in this process.
pub fn client_connection(host: &str) -> Result<ClientConnection, String> {
    let mut roots = RootCertStore::empty();
    for ca in CAS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        roots.add(ca.clone()).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h).to_string();
    let name = rustls::pki_types::ServerName::try_from(name).map_err(|e| e.to_string())?;
    ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())
}

/// The CA certificate file written into the TLS directory.
pub const CA_FILE: &str = "ca.pem";

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Makes a CA and a server certificate (also for `names`), writes `<dir>/ca.pem` (atomically),
/// returns the server configuration.
pub fn server_config(dir: &Path, names: &[String]) -> io::Result<Arc<ServerConfig>> {
    let ca_key = KeyPair::generate().map_err(other)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: two emulators' CAs must not be mistaken for each other.
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("entra-emulator throw-away test CA {}", crate::util::random_guid()),
    );
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(other)?;

    let key = KeyPair::generate().map_err(other)?;
    let mut leaf = CertificateParams::new(
        std::iter::once("localhost".to_string()).chain(names.iter().cloned()).collect::<Vec<_>>(),
    )
    .map_err(other)?;
    leaf.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name.push(DnType::CommonName, "entra-emulator");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(other)?;

    CAS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(CertificateDer::from(ca_cert.der().to_vec()));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{CA_FILE}.{}", std::process::id()));
    std::fs::write(&tmp, ca_cert.pem())?;
    std::fs::rename(&tmp, dir.join(CA_FILE))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(other)?;
    Ok(Arc::new(config))
}
