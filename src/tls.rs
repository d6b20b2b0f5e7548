//! TLS (rustls) for the SMTP client, the SMTP server and pop3d.
//!
//! * Client, opportunistic (`smtp_tls = may`, the default towards MX
//!   hosts): encrypt when offered, without verifying the certificate — the
//!   same as Postfix's `may` level; a failed handshake falls back to plain.
//! * Client, verified (`encrypt`/`verify`, and smarthosts by default): the
//!   system's CA certificates (`/etc/ssl/certs`) and the host name.
//! * Server: the certificate chain and key in PEM files,
//!   `/etc/mail/tls/mail.crt` and `/etc/mail/tls/mail.key` by default
//!   ([`ServerCert`]: one pair for pop3d's STLS and port 995 and the SMTP
//!   server's STARTTLS and port 465).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use crate::config::Config;

/// Keys read here, with defaults, for `mailroom check` and
/// `etc/mailroom.conf`.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "tls_cert",
        "/etc/mail/tls/mail.crt",
        "certificate chain (PEM) for STLS and port 995, shared with the SMTP server",
    ),
    (
        "tls_key",
        "/etc/mail/tls/mail.key",
        "its private key (PEM, root-only)",
    ),
];

/// The servers' certificate and key files (`tls_cert`, `tls_key`).
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerCert {
    pub fn from_config(cfg: &Config) -> ServerCert {
        let path = |key: &str, default: &str| cfg.paths.resolve(cfg.get(key).unwrap_or(default));
        ServerCert {
            cert: path("tls_cert", "/etc/mail/tls/mail.crt"),
            key: path("tls_key", "/etc/mail/tls/mail.key"),
        }
    }

    /// The server configuration, when both files exist: without them TLS
    /// is simply not offered; files that exist but cannot be used are
    /// logged (`TLS is off: ...`) and TLS is not offered either.
    pub fn load(&self) -> Option<Arc<ServerConfig>> {
        if !(self.cert.exists() && self.key.exists()) {
            return None;
        }
        match server_config(&self.cert, &self.key) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::log::err(None, &format!("TLS is off: {e}"));
                None
            }
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate: encryption without authentication.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Client configuration that encrypts without verifying.
pub fn client_opportunistic() -> Arc<ClientConfig> {
    static CFG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let p = provider();
        let cfg = ClientConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(p)))
            .with_no_client_auth();
        Arc::new(cfg)
    })
    .clone()
}

/// Client configuration that verifies against the system's CAs, plus the
/// PEM file `extra_ca` when given (a private smarthost's CA).
pub fn client_verified(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(path) = extra_ca {
        for c in
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?
        {
            let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The certificates of a PEM file, the server's own first.
pub fn load_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    Ok(certs)
}

/// Would a client that checks certificates (the system's CAs, as
/// [`client_verified`]) accept `chain` for `name` at `now`?  For `mailroom
/// check --dns`.
pub fn verify_chain(
    chain: &[CertificateDer<'static>],
    name: &str,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
    let name = ServerName::try_from(name.to_string())
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(rustls::Error::NoCertificatesPresented)?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], now)
        .map(|_| ())
}

/// Server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = load_chain(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(Arc::new(cfg))
}
