//! TLS for the function side's client (feature `tls`): rustls with the *ring* provider, HTTP/1.1
//! only, verifying servers against the system's root certificates (rustls-native-certs, which
//! reads `SSL_CERT_FILE` and `SSL_CERT_DIR` when they are set, as OpenSSL does).

use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one client configuration of the process, built on first use.
fn config() -> Result<Arc<rustls::ClientConfig>, BoxError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate the store cannot use is skipped, as browsers and OpenSSL do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!("no root certificate could be loaded to verify TLS servers{why}"));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(Into::into)
}

/// Runs the TLS handshake with `host` over `tcp`, verifying its certificate.
pub(crate) async fn connect(host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, BoxError> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(config()?).connect(name, tcp).await?;
    Ok(stream)
}
