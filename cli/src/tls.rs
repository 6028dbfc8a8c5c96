//! The TLS of the connection to the node: the system's trust store (as a browser), one CA file
//! (`--ca`, e.g. the cluster's /etc/pve/pve-root-ca.pem), or the pinned SHA-256 fingerprint of
//! the node's certificate (`--fingerprint`, as PVE shows it: PVE nodes have self-signed
//! certificates). ureq takes no certificate verifier of ours, so the TLS step is our connector
//! (ureq's rustls connector, with our rustls configuration).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as ring_provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector, Transport, TransportAdapter,
};
use ureq::Agent;

/// How the node's certificate is trusted.
pub enum Trust {
    System,
    CaFile(String),
    /// SHA-256 of the certificate (DER).
    Fingerprint([u8; 32]),
}

/// `AB:CD:...` (32 bytes, PVE's form) or the same hex without colons, any case.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub fn format_fingerprint(sha256: &[u8]) -> String {
    sha256.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The agent for the node: no redirects, answers of every status returned (PVE says why in the
/// body), a timeout for each call.
pub fn agent(trust: &Trust) -> Result<Agent, String> {
    let provider = Arc::new(ring_provider::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let tls = match trust {
        Trust::System => {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| format!("TLS trust store: {e}"))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("--ca {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("--ca {path}: {e}"))?;
                roots.add(cert).map_err(|e| format!("--ca {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("--ca {path}: no certificate in the file"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(sha256) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { sha256: *sha256, provider }))
            .with_no_client_auth(),
    };
    let config = Agent::config_builder()
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .user_agent(concat!("pve-entraid-login/", env!("CARGO_PKG_VERSION")))
        .build();
    // as ureq's default connector: an https_proxy of the environment is used
    let connector = ().chain(ConnectProxyConnector::default()).chain(TcpConnector::default()).chain(NodeTls(Arc::new(tls)));
    Ok(Agent::with_parts(config, connector, DefaultResolver::default()))
}

/// Trusts exactly the certificate with the pinned SHA-256 (as SSH trusts a host key): no CA,
/// no name check. The handshake signature is still verified, so the peer holds its key.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if seen.as_ref() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!("the node's certificate has the fingerprint {}, not the pinned one", format_fingerprint(seen.as_ref()))))
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// ureq's rustls step (tls/rustls.rs) with our configuration.
#[derive(Debug)]
struct NodeTls(Arc<ClientConfig>);

impl<In: Transport> Connector<In> for NodeTls {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|_| ureq::Error::Tls("invalid server name"))?;
        let mut conn = ClientConnection::new(self.0.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        use std::io::Write;
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        use std::io::Read;
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_as_pve_shows_them() {
        let pve = "3A:5B:00:FF:3A:5B:00:FF:3A:5B:00:FF:3A:5B:00:FF:3A:5B:00:FF:3A:5B:00:FF:3A:5B:00:FF:3A:5B:00:ff";
        let fp = parse_fingerprint(pve).unwrap();
        assert_eq!(fp[0], 0x3a);
        assert_eq!(fp[31], 0xff);
        assert_eq!(format_fingerprint(&fp), pve.to_ascii_uppercase());
        assert_eq!(parse_fingerprint(&pve.replace(':', "")), Some(fp));
        for bad in ["", "3A:5B", &pve[3..], &format!("{pve}:00"), &pve.replace("FF", "GG")] {
            assert_eq!(parse_fingerprint(bad), None, "{bad}");
        }
    }
}
