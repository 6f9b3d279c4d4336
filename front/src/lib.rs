//! # faas-front
//!
//! The HTTP front of faas: serves any [`faas_api::Runner`] over HTTP on 127.0.0.1. It is what
//! `faas dev` and an app binary started with `cargo run` serve, and the base of the platform
//! emulators' fronts. [`client::FrontClient`] talks to it and is itself a [`faas_api::Runner`],
//! so the CLI and the conformance suite drive a running `faas dev` through the same SPI.
//!
//! ## HTTP surface
//!
//! Invocation (no token, like a local Lambda or `func start`):
//!
//! | request | answer |
//! |---|---|
//! | `POST /functions/{name}` | the reply (200), or the portable error (status by kind, JSON body, `faas-error` header) |
//! | header `faas-invoke-mode: async` | 202 `{"activationId": ".."}` |
//! | header `faas-invoke-mode: dry-run` | 204 |
//! | header `faas-log-type: tail` | header `faas-log-result`: base64 of the last 4 KiB of the log lines |
//! | any other path | the functions' declared HTTP routes (`Trigger::Http`), else 404 listing them |
//! | `POST /events` | CloudEvents 1.0 (binary, structured, batch) → every matching function, asynchronously; 202 |
//! | `GET /`, `GET /_faas/health` | an index of the server; a health check |
//! | `GET /_faas/capabilities` | the runner's kind and [`faas_api::Capabilities`] (read-only, not secret) |
//!
//! Management (header `Authorization: Bearer <token>`):
//! `GET /_faas/functions`, `DELETE /_faas/functions/{name}`, `GET /_faas/activations?function=&limit=`,
//! `GET /_faas/activations/{id}`, `POST /_faas/deploy` (a [`faas_api::Package`] as JSON).
//!
//! Every response carries `faas-activation-id` when an invocation happened. Request bodies are
//! limited to [`FrontOptions::max_body`]: a `Content-Length` over the limit is answered with 413
//! before the body is read.
//!
//! ```
//! use faas_api::{App, Context, Error};
//! use faas_front::{bind, client::FrontClient, FrontOptions};
//! use faas_runner_local::{LocalOptions, LocalRunner};
//!
//! async fn hello(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> {
//!     Ok(serde_json::json!({ "message": format!("Hello, {}!", v["name"].as_str().unwrap_or("?")) }))
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let runner = LocalRunner::in_process(App::new().function("hello", hello), LocalOptions::default()).unwrap();
//! let options = FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), ..FrontOptions::default() };
//! let front = bind(runner, options).await.unwrap();
//!
//! // Any HTTP client works; FrontClient speaks the runner SPI over it.
//! let client = FrontClient::connect(&front.url(), Some(front.token().to_string())).await.unwrap();
//! use faas_api::{InvokeRequest, Payload, Runner};
//! let input = Payload::json(&serde_json::json!({"name": "Ada"})).unwrap();
//! let reply = client.invoke(InvokeRequest::new("hello", input)).await.unwrap();
//! assert_eq!(reply.payload.body().as_ref(), br#"{"message":"Hello, Ada!"}"#);
//! front.shutdown().await;
//! # });
//! ```
#![warn(missing_docs)]

mod auth;
pub mod backend;
mod body;
pub mod client;
pub mod dev_record;
mod events;
mod routes;
mod server;
pub mod target;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use faas_api::{Error, Runner};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use server::{FrontService, router, service};

/// The default address: loopback only, port 8080.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The default request body limit: 6 MiB, as Lambda's synchronous limit.
pub const DEFAULT_MAX_BODY: usize = 6 * 1024 * 1024;

/// How the front listens and what it accepts.
///
/// ```
/// let o = faas_front::FrontOptions::default();
/// assert_eq!(o.addr.to_string(), "127.0.0.1:8080");
/// assert_eq!(o.max_body, 6 * 1024 * 1024);
/// assert!(o.token.is_none());
/// ```
#[derive(Clone)]
pub struct FrontOptions {
    /// Where to listen (default `127.0.0.1:8080`; use port 0 for any free port).
    pub addr: SocketAddr,
    /// The management token; `None` generates a random 32-hex-digit token.
    pub token: Option<String>,
    /// Largest request body in bytes (default 6 MiB).
    pub max_body: usize,
}

impl Default for FrontOptions {
    fn default() -> Self {
        FrontOptions { addr: DEFAULT_ADDR, token: None, max_body: DEFAULT_MAX_BODY }
    }
}

impl std::fmt::Debug for FrontOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontOptions")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// A running front: the server task and what callers need to reach it.
///
/// Dropping it stops the server (gracefully, in the background); [`Front::wait`] keeps it running
/// until the process ends.
pub struct Front {
    addr: SocketAddr,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Front {
    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The management token (give it to clients; never log it).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops accepting connections, lets in-flight requests finish, then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the server stops (it only stops on an accept-loop failure, so in practice
    /// until the process ends).
    pub async fn wait(mut self) {
        let _keep_running = self.stop.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("addr", &self.addr).field("token", &"<redacted>").finish()
    }
}

/// Binds `options.addr`, spawns the server task and returns at once.
///
/// A port already in use is a [`faas_api::ErrorKind::BackendUnavailable`] error naming the
/// address and suggesting `--port`; a bad token or a zero body limit is bad input.
///
/// The front does not know which runner it serves: a local backend whose function processes
/// call `Context::invoke`/`Context::emit` must be told [`Front::url`] by the caller
/// (`LocalRunner::set_services_url`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use faas_front::{bind, FrontOptions};
/// let runner = faas_runner_local::LocalRunner::in_process(faas_api::App::new(), Default::default()).unwrap();
/// let first = bind(runner.clone(), FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() }).await.unwrap();
/// let taken = FrontOptions { addr: first.local_addr(), ..Default::default() };
/// let err = bind(runner, taken).await.unwrap_err();
/// assert!(err.message().contains("--port"), "{}", err.message());
/// # });
/// ```
pub async fn bind(runner: Arc<dyn Runner>, options: FrontOptions) -> Result<Front, Error> {
    if options.max_body == 0 {
        return Err(Error::bad_input("the front's body limit (max_body) must be at least 1 byte"));
    }
    let token = match &options.token {
        Some(t) => {
            auth::validate_token(t)?;
            t.clone()
        }
        None => auth::random_token(),
    };
    let listener = tokio::net::TcpListener::bind(options.addr).await.map_err(|e| bind_error(options.addr, &e))?;
    let addr = listener.local_addr().map_err(|e| bind_error(options.addr, &e))?;
    let app =
        axum::ServiceExt::<axum::extract::Request>::into_make_service(server::service(runner, &options, token.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!("cannot set TCP_NODELAY: {e}");
        }
    });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::error!("the faas front on {addr} stopped: {e}");
        }
        tracing::debug!("the faas front on {addr} has stopped");
    });
    tracing::info!("faas front listening on http://{addr}");
    Ok(Front { addr, token, stop: Some(stop), task: Some(task) })
}

fn bind_error(addr: SocketAddr, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        Error::unavailable(format!(
            "cannot listen on {addr}: the address is already in use (is another `faas dev` running?); \
             choose another port with `--port`"
        ))
    } else {
        Error::unavailable(format!("cannot listen on {addr}: {e}; choose another address or port with `--port`"))
    }
}
