//! The one HTTP/1.1 client of the function side: what a host uses to talk to its platform (the
//! Lambda Runtime API) and what [`Services`](faas_api::Services) use to reach other functions and
//! event gateways. One non-generic type, so a binary carries one copy of the client code however
//! many hosts it is built with.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use faas_host::client::{HttpClient, SendError};
//! let client = HttpClient::new();
//! let req = http::Request::get("http://127.0.0.1:1/").body(Default::default()).unwrap();
//! let err = client.send(req, 1024).await.unwrap_err(); // nothing listens on port 1
//! assert!(matches!(err, SendError::Request(_)));
//! # }
//! ```

use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderValue, Request, response::Parts};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Why [`HttpClient::send`] failed. Displays as the underlying error, so callers can say what
/// they were doing in their own words.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer: the URL was not `http://host:port/...`, the connection failed, or it broke
    /// before a response head arrived.
    #[error("{0}")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The response body could not be read, or was over the limit.
    #[error("{0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A plain-HTTP/1.1 client that keeps connections alive and reuses them: each request takes an
/// idle connection to its host or opens one (`TCP_NODELAY`), and gives it back once the answer
/// is read in full. Built on hyper's connection API directly: no pool timers, no resolver
/// service, no proxy support, which a function talking to its platform and to its own services
/// does not need.
#[derive(Debug, Default)]
pub struct HttpClient {
    idle: Mutex<Vec<(String, SendRequest<Full<Bytes>>)>>,
}

impl HttpClient {
    /// A client with no connection yet.
    ///
    /// ```
    /// let client = faas_host::client::HttpClient::new();
    /// # let _ = client;
    /// ```
    pub fn new() -> HttpClient {
        HttpClient::default()
    }

    /// Sends `req` (whose URI is absolute: `http://host:port/path`) and reads the whole response
    /// body, at most `limit` bytes.
    ///
    /// `https://` URLs need the `tls` feature (rustls, with the system's root certificates, or
    /// those of `SSL_CERT_FILE`/`SSL_CERT_DIR` when set); without it they fail saying so.
    pub async fn send(&self, req: Request<Full<Bytes>>, limit: usize) -> Result<(Parts, Bytes), SendError> {
        let (mut head, body) = req.into_parts();
        let (tls, default_port) = match head.uri.scheme_str() {
            Some("http") => (false, 80),
            Some("https") => (true, 443),
            _ => return Err(SendError::Request(format!("`{}` is not an http:// or https:// URL", head.uri).into())),
        };
        let Some(authority) = head.uri.authority().map(|a| a.to_string()) else {
            return Err(SendError::Request(format!("`{}` names no host", head.uri).into()));
        };
        let host = head.uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = head.uri.port_u16().unwrap_or(default_port);
        // Idle connections are kept per scheme, host and port.
        let key = format!("{}://{host}:{port}", if tls { "https" } else { "http" });
        let path = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        head.uri = path.parse().map_err(|e: http::uri::InvalidUri| SendError::Request(e.into()))?;
        if !head.headers.contains_key(http::header::HOST) {
            let host = HeaderValue::from_str(&authority).map_err(|e| SendError::Request(e.into()))?;
            head.headers.insert(http::header::HOST, host);
        }
        let req = Request::from_parts(head, body);
        let mut sender = loop {
            match self.take_idle(&key) {
                Some(mut sender) => {
                    if sender.ready().await.is_ok() {
                        break sender;
                    }
                }
                None => {
                    let mut sender = connect(&host, port, tls).await?;
                    sender.ready().await.map_err(|e| SendError::Request(e.into()))?;
                    break sender;
                }
            }
        };
        let resp = sender.send_request(req).await.map_err(|e| SendError::Request(e.into()))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, limit).collect().await.map_err(SendError::Body)?.to_bytes();
        if !sender.is_closed() {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push((key, sender));
        }
        Ok((parts, body))
    }

    /// An idle connection to `authority` that is still open.
    fn take_idle(&self, authority: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(_, s)| !s.is_closed());
        let at = idle.iter().position(|(a, _)| a == authority)?;
        Some(idle.swap_remove(at).1)
    }
}

/// Opens a connection to `host:port` (over TLS when `tls`) and drives it in its own task.
async fn connect(host: &str, port: u16, tls: bool) -> Result<SendRequest<Full<Bytes>>, SendError> {
    let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| SendError::Request(e.into()))?;
    let _ = stream.set_nodelay(true);
    if tls {
        #[cfg(feature = "tls")]
        return handshake(crate::tls::connect(host, stream).await.map_err(SendError::Request)?).await;
        #[cfg(not(feature = "tls"))]
        return Err(SendError::Request(
            format!(
                "https://{host}:{port} needs TLS, which this binary was built without (the `tls` feature of faas, \
                 on by default)"
            )
            .into(),
        ));
    }
    handshake(stream).await
}

/// An HTTP/1.1 client connection over `io`, driven in its own task.
async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, SendError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| SendError::Request(e.into()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "a client connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Answers every request on the first connection only with `body`.
    async fn server(body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                conn.write_all(head.as_bytes()).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit_over_one_connection() {
        let base = server("twelve bytes").await;
        let client = HttpClient::new();
        // The server answers on its first connection only: a second one would hang.
        let client = &client;
        let within = |f| tokio::time::timeout(std::time::Duration::from_secs(10), f);
        for _ in 0..2 {
            let req = Request::get(format!("{base}/")).body(Full::default()).unwrap();
            let (parts, body) = within(client.send(req, 12)).await.expect("reused the connection").unwrap();
            assert_eq!(parts.status, 200);
            assert_eq!(body.as_ref(), b"twelve bytes");
        }
        let req = Request::get(format!("{base}/")).body(Full::default()).unwrap();
        let err = within(client.send(req, 11)).await.expect("reused the connection").unwrap_err();
        assert!(matches!(err, SendError::Body(_)), "{err:?}");
        assert!(err.to_string().contains("length limit exceeded"), "{err}");
    }
}
