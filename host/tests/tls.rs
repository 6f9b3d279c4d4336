//! The client over TLS against a real rustls server on 127.0.0.1: a server whose certificate
//! chains to a root of `SSL_CERT_FILE` is reached by name; a self-signed one is refused.

use std::sync::Arc;

use bytes::Bytes;
use faas_host::client::{HttpClient, SendError};
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");

/// A TLS server answering every request with `hello over tls`; returns its port.
async fn server(name: &str) -> u16 {
    let certs = CertificateDer::pem_file_iter(format!("{DIR}/{name}.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(format!("{DIR}/{name}.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "hello over tls";
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.flush().await;
            });
        }
    });
    port
}

fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn https_is_verified_against_the_configured_roots() {
    // Before the client's first TLS use: its roots are read once per process.
    unsafe { std::env::set_var("SSL_CERT_FILE", format!("{DIR}/ca.pem")) };
    let client = HttpClient::new();

    let trusted = server("localhost").await;
    let (parts, body) = client.send(get(&format!("https://localhost:{trusted}/")), 1024).await.unwrap();
    assert_eq!(parts.status, 200);
    assert_eq!(body.as_ref(), b"hello over tls");
    // The connection is kept and reused for the next request to the same host.
    let (parts, _) = client.send(get(&format!("https://localhost:{trusted}/again")), 1024).await.unwrap();
    assert_eq!(parts.status, 200);

    let untrusted = server("untrusted").await;
    let err = client.send(get(&format!("https://localhost:{untrusted}/")), 1024).await.unwrap_err();
    assert!(matches!(err, SendError::Request(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // Plain HTTP to a TLS server is not mistaken for success, and an unknown scheme is refused.
    let err = client.send(get("ftp://localhost/"), 1024).await.unwrap_err();
    assert!(err.to_string().contains("not an http:// or https:// URL"), "{err}");
}
