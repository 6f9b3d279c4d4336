//! The one HTTP serve loop of push-style hosts: platforms that send each invocation to the
//! function as an HTTP request (the local backend's process pool over a Unix socket; OpenWhisk's
//! `/run`, the Functions Framework on Cloud Run and Azure custom handlers over TCP).
//!
//! The loop accepts connections on a [`Listener`] (a Unix socket, or TCP on loopback or on every
//! interface), reads each request body whatever its framing (`Content-Length` or chunked) up to
//! [`HttpOptions::max_body`], and hands it to the platform's [`HttpProtocol`], which decodes it
//! into [`Facts`] and a payload (or answers by itself, e.g. a readiness probe). The
//! [`Invoker`] runs the invocation and the protocol encodes the result in the platform's format.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! use faas_api::{App, Context, Error, Payload};
//! use faas_host::http::{self, Bind, Decoded, HttpOptions, HttpProtocol, Input, Listener};
//! use faas_host::{Facts, Invoker};
//! use http_body_util::Full;
//!
//! /// `POST /{function}` with the payload as the body; errors as `500` with the message.
//! struct PathProtocol;
//! impl HttpProtocol for PathProtocol {
//!     type Pending = ();
//!     fn decode(&self, head: &::http::request::Parts, body: Bytes) -> Result<Decoded<()>, Error> {
//!         let function = head.uri.path().trim_start_matches('/').to_string();
//!         let facts = Facts { function: Some(function), ..Facts::default() };
//!         Ok(Decoded::Invoke { facts, input: Input::Payload(Payload::new(body, None)), pending: () })
//!     }
//!     fn encode(&self, _: (), result: Result<Payload, Error>) -> ::http::Response<Full<Bytes>> {
//!         match result {
//!             Ok(reply) => ::http::Response::new(Full::new(reply.into_body())),
//!             Err(e) => self.refuse(None, &e),
//!         }
//!     }
//!     fn refuse(&self, _: Option<&::http::request::Parts>, e: &Error) -> ::http::Response<Full<Bytes>> {
//!         let mut r = ::http::Response::new(Full::new(Bytes::from(e.message().to_string())));
//!         *r.status_mut() = ::http::StatusCode::INTERNAL_SERVER_ERROR;
//!         r
//!     }
//! }
//!
//! async fn shout(_cx: Context, p: Payload) -> Result<Payload, Error> {
//!     Ok(Payload::bytes(String::from_utf8_lossy(p.body()).to_uppercase()))
//! }
//! let listener = Listener::bind(&Bind::loopback(0)).await.unwrap();
//! let addr = listener.local_addr();
//! let invoker = Invoker::new(App::new().raw("shout", shout), "example");
//! tokio::spawn(http::serve(listener, invoker, PathProtocol, HttpOptions::default()));
//! # use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//! let mut conn = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
//! conn.write_all(b"POST /shout HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi").await.unwrap();
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await.unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("HI"), "{answer}");
//! # }
//! ```

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use faas_api::{Error, Payload};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

pub use crate::invoke::Input;
use crate::{Facts, Invoker};

/// Where a push-style host listens.
///
/// ```
/// use faas_host::http::Bind;
/// assert_eq!(Bind::loopback(8080).to_string(), "127.0.0.1:8080");
/// assert_eq!(Bind::all_interfaces(8080).to_string(), "0.0.0.0:8080");
/// assert_eq!(Bind::Unix("/tmp/f.sock".into()).to_string(), "/tmp/f.sock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A Unix socket at this path (a stale socket file there is replaced).
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Bind {
    /// TCP on `127.0.0.1:port` (hosts the platform reaches from the same machine: Azure's custom
    /// handler port). Port 0 picks a free one.
    ///
    /// ```
    /// assert!(matches!(faas_host::http::Bind::loopback(0), faas_host::http::Bind::Tcp(a) if a.ip().is_loopback()));
    /// ```
    pub fn loopback(port: u16) -> Bind {
        Bind::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    /// TCP on `0.0.0.0:port` (hosts reached from outside their container: Cloud Run's `$PORT`,
    /// OpenWhisk's action proxy on 8080).
    ///
    /// ```
    /// assert!(matches!(faas_host::http::Bind::all_interfaces(8080), faas_host::http::Bind::Tcp(a) if a.ip().is_unspecified()));
    /// ```
    pub fn all_interfaces(port: u16) -> Bind {
        Bind::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
    }
}

impl std::fmt::Display for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bind::Unix(path) => write!(f, "{}", path.display()),
            Bind::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// A bound listener, ready for [`serve`].
#[derive(Debug)]
pub enum Listener {
    /// On a Unix socket.
    Unix(tokio::net::UnixListener, PathBuf),
    /// On TCP.
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// Binds `bind`. A failure names the address; it is `BackendUnavailable`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_host::http::{Bind, Listener};
    /// let err = Listener::bind(&Bind::Unix("/nonexistent-dir/f.sock".into())).await.unwrap_err();
    /// assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
    /// assert!(err.message().starts_with("cannot listen on /nonexistent-dir/f.sock"), "{}", err.message());
    /// # }
    /// ```
    pub async fn bind(bind: &Bind) -> Result<Listener, Error> {
        let refuse = |e: std::io::Error| Error::unavailable(format!("cannot listen on {bind}: {e}"));
        match bind {
            Bind::Unix(path) => {
                let _ = std::fs::remove_file(path);
                Ok(Listener::Unix(tokio::net::UnixListener::bind(path).map_err(refuse)?, path.clone()))
            }
            Bind::Tcp(addr) => Ok(Listener::Tcp(tokio::net::TcpListener::bind(addr).await.map_err(refuse)?)),
        }
    }

    /// Where it listens: `http://ip:port` for TCP, the socket path for Unix.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_host::http::{Bind, Listener};
    /// let l = Listener::bind(&Bind::loopback(0)).await.unwrap();
    /// assert!(l.local_addr().starts_with("http://127.0.0.1:"));
    /// # }
    /// ```
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Unix(_, path) => path.display().to_string(),
            Listener::Tcp(l) => l.local_addr().map(|a| format!("http://{a}")).unwrap_or_default(),
        }
    }
}

/// A decoded request.
#[derive(Debug)]
pub enum Decoded<P> {
    /// Run an invocation, then [`HttpProtocol::encode`] its result with `pending`.
    Invoke {
        /// What the platform says about the invocation.
        facts: Facts,
        /// The input.
        input: Input,
        /// Whatever the protocol needs to encode the reply (ids, output binding names, ...).
        pending: P,
    },
    /// Answer at once, invoking nothing (readiness probes, `/init`, unknown paths).
    Answer(Response<Full<Bytes>>),
}

/// A platform's HTTP format: how its requests become invocations and results become answers.
/// See the [module docs](self) for an example.
pub trait HttpProtocol: Send + Sync + 'static {
    /// What [`HttpProtocol::decode`] keeps for [`HttpProtocol::encode`].
    type Pending: Send + 'static;
    /// Reads one request (its body already read in full). An error is answered by
    /// [`HttpProtocol::refuse`].
    fn decode(&self, head: &Parts, body: Bytes) -> Result<Decoded<Self::Pending>, Error>;
    /// The answer for an invocation's result.
    fn encode(&self, pending: Self::Pending, result: Result<Payload, Error>) -> Response<Full<Bytes>>;
    /// The answer for a request that could not be decoded (`head` is `None` when there is no
    /// request to speak of) or whose body was unreadable or too large.
    fn refuse(&self, head: Option<&Parts>, error: &Error) -> Response<Full<Bytes>>;
}

/// Settings of the loop.
///
/// ```
/// assert_eq!(faas_host::http::HttpOptions::default().max_body, 64 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Largest request body read, in bytes; a larger one is refused with `PayloadTooLarge`.
    pub max_body: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { max_body: 64 * 1024 * 1024 }
    }
}

struct Shared<P> {
    invoker: Invoker,
    protocol: P,
    options: HttpOptions,
}

/// Serves `protocol` on `listener` until accepting fails (the error is returned). Each
/// connection is served in its own task, HTTP/1.1 with keep-alive; requests on different
/// connections run concurrently.
pub async fn serve<P: HttpProtocol>(
    listener: Listener,
    invoker: Invoker,
    protocol: P,
    options: HttpOptions,
) -> Result<(), Error> {
    let shared = Arc::new(Shared { invoker, protocol, options });
    let accept_failed = |e: std::io::Error| Error::unavailable(format!("accept failed: {e}"));
    tracing::debug!(at = %listener.local_addr(), "serving HTTP");
    match listener {
        Listener::Unix(l, _) => loop {
            let (stream, _) = l.accept().await.map_err(accept_failed)?;
            tokio::spawn(connection(shared.clone(), stream));
        },
        Listener::Tcp(l) => loop {
            let (stream, _) = l.accept().await.map_err(accept_failed)?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(shared.clone(), stream));
        },
    }
}

async fn connection<P: HttpProtocol, S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared<P>>,
    stream: S,
) {
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handle<P: HttpProtocol>(shared: &Shared<P>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (head, body) = req.into_parts();
    let max = shared.options.max_body;
    let body = match Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let error = if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                Error::payload_too_large(format!("the request body is over the limit of {max} bytes"))
            } else {
                Error::bad_input(format!("cannot read the request body: {e}"))
            };
            return shared.protocol.refuse(Some(&head), &error);
        }
    };
    match shared.protocol.decode(&head, body) {
        Err(e) => shared.protocol.refuse(Some(&head), &e),
        Ok(Decoded::Answer(response)) => response,
        Ok(Decoded::Invoke { facts, input, pending }) => {
            let result = shared.invoker.invoke_input(facts, input).await;
            shared.protocol.encode(pending, result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::{App, Context};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// `POST /{function}`; the reply body is the result, errors are `500` + the error's JSON.
    struct Echo;
    impl HttpProtocol for Echo {
        type Pending = ();
        fn decode(&self, head: &Parts, body: Bytes) -> Result<Decoded<()>, Error> {
            if head.method == http::Method::GET {
                return Ok(Decoded::Answer(Response::new(Full::new(Bytes::from_static(b"ready")))));
            }
            let name = head.uri.path().trim_start_matches('/');
            let facts = Facts { function: (!name.is_empty()).then(|| name.to_string()), ..Facts::default() };
            Ok(Decoded::Invoke { facts, input: Input::Payload(Payload::new(body, None)), pending: () })
        }
        fn encode(&self, _: (), result: Result<Payload, Error>) -> Response<Full<Bytes>> {
            match result {
                Ok(p) => Response::new(Full::new(p.into_body())),
                Err(e) => self.refuse(None, &e),
            }
        }
        fn refuse(&self, _: Option<&Parts>, e: &Error) -> Response<Full<Bytes>> {
            let mut r = Response::new(Full::new(Bytes::from(e.to_json())));
            *r.status_mut() = http::StatusCode::from_u16(e.status()).unwrap();
            r
        }
    }

    async fn length(_cx: Context, p: Payload) -> Result<Payload, Error> {
        Ok(Payload::bytes(format!("{} bytes: {}", p.len(), String::from_utf8_lossy(p.body()))))
    }

    async fn start(bind: Bind, max_body: usize) -> String {
        let listener = Listener::bind(&bind).await.unwrap();
        let addr = listener.local_addr();
        let invoker = Invoker::new(App::new().raw("length", length), "test");
        tokio::spawn(serve(listener, invoker, Echo, HttpOptions { max_body }));
        addr
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, request: &[u8]) -> String {
        conn.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).to_string()
    }

    const CHUNKED: &[u8] =
        b"POST /length HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
        5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";

    #[tokio::test]
    async fn chunked_bodies_are_read_in_full_over_tcp() {
        let addr = start(Bind::loopback(0), 1024).await;
        let conn = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
        let answer = exchange(conn, CHUNKED).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("12 bytes: hello, world"), "{answer}");
    }

    #[tokio::test]
    async fn chunked_bodies_are_read_in_full_over_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sock");
        std::fs::write(&path, b"stale").unwrap();
        let addr = start(Bind::Unix(path.clone()), 1024).await;
        assert_eq!(addr, path.display().to_string());
        let answer = exchange(tokio::net::UnixStream::connect(&path).await.unwrap(), CHUNKED).await;
        assert!(answer.ends_with("12 bytes: hello, world"), "{answer}");
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_refused_as_too_large() {
        let addr = start(Bind::loopback(0), 8).await;
        let conn = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
        let answer = exchange(conn, CHUNKED).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("over the limit of 8 bytes"), "{answer}");
    }

    #[tokio::test]
    async fn keep_alive_requests_and_direct_answers_share_a_connection() {
        let addr = start(Bind::loopback(0), 1024).await;
        let conn = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
        let two = b"GET / HTTP/1.1\r\nhost: x\r\n\r\nPOST /length HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\nab";
        let answer = exchange(conn, two).await;
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
        assert!(answer.contains("ready") && answer.ends_with("2 bytes: ab"), "{answer}");
    }

    #[tokio::test]
    async fn an_unknown_function_is_encoded_by_the_protocol() {
        let addr = start(Bind::loopback(0), 1024).await;
        let conn = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
        let answer =
            exchange(conn, b"POST /nope HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(answer.contains("no function named `nope`"), "{answer}");
    }

    #[tokio::test]
    async fn every_interface_can_be_bound() {
        let addr = start(Bind::all_interfaces(0), 1024).await;
        let port = addr.rsplit(':').next().unwrap();
        let conn = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
        let answer =
            exchange(conn, b"POST /length HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\nz")
                .await;
        assert!(answer.ends_with("1 bytes: z"), "{answer}");
    }
}
