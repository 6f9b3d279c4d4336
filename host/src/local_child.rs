//! The function side of the local backend's process mode: what `faas::serve` runs inside a child
//! process started by the pool of `faas-runner-local` (its `pool` module describes the protocol).
//! Also the [`Services`] a child uses to reach other functions and emit events through the HTTP
//! front.
//!
//! The child protocol is an instance of the shared [HTTP loop](crate::http) over a Unix socket:
//! `POST /invoke[/{name}]` with `faas-invocation-id`, `faas-deadline-ms`, `traceparent` and
//! `content-type`; the reply is `200` with the result, or the portable error
//! ([`wire::error_parts`]). A handler still running at `faas-deadline-ms` is aborted by the shared
//! [`Invoker`] and answered with a timeout error, and the process serves the next call. After
//! each invocation the child writes [`SENTINEL`] and the invocation id to stdout and stderr, so
//! the pool can attribute the lines before it.
//!
//! What `faas::serve` does in a child process (it serves until the pool closes the child's
//! stdin, then exits the process, so this is not run here):
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), faas_api::Error> {
//! use faas_api::{App, Context, Error};
//! use faas_host::wire;
//!
//! async fn hello(_cx: Context, name: String) -> Result<String, Error> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! let socket = std::env::var(wire::ENV_SOCKET).expect("started by the pool");
//! let function = std::env::var(wire::ENV_FUNCTION).ok();
//! let app = App::new().function("hello", hello);
//! faas_host::local_child::serve(app, std::path::Path::new(&socket), function).await
//! # }
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use faas_api::cloudevents::Event;
use faas_api::{App, Context, Error, Payload, Services};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::Full;

use crate::client::{HttpClient, SendError};
use crate::http::{Bind, Decoded, HttpOptions, HttpProtocol, Input, Listener};
use crate::wire::{self, SENTINEL};
use crate::{Env, Facts, Invoker, Limits};

/// Largest request body a child accepts (the pool enforces the configured limit first).
const MAX_CHILD_BODY: usize = 64 * 1024 * 1024;

/// Where the child's function names come from, for the function-choice errors.
const NAMED_BY: &str = "the request path (/invoke/NAME) or FAAS_FUNCTION";

/// Serves `app` on the Unix socket `socket` until stdin closes (the pool went away), then exits
/// the process. `function` is the function this process is for (`FAAS_FUNCTION`); requests to
/// `/invoke/{name}` may name another. `faas::serve` calls it when `FAAS_LOCAL_SOCKET` is set.
/// `cx.invoke` and `cx.emit` reach the front and gateway named by `FAAS_LOCAL_SERVICES` and
/// `FAAS_EVENTS_URL` in the process environment.
///
/// A socket that cannot be bound is an error, returned before anything is served:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::path::Path;
/// let socket = Path::new("/nonexistent-dir/hello.sock");
/// let err = faas_host::local_child::serve(faas_api::App::new(), socket, None).await.unwrap_err();
/// assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
/// assert!(err.message().starts_with("cannot listen on /nonexistent-dir/hello.sock"), "{}", err.message());
/// # }
/// ```
pub async fn serve(app: App, socket: &Path, function: Option<String>) -> Result<(), Error> {
    serve_with(app, socket, function, &Env::from_process()).await
}

/// [`serve`] with the services named by `env` instead of the process environment.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let env = faas_host::Env::from_pairs([("FAAS_LOCAL_SERVICES", "http://127.0.0.1:1")]);
/// let socket = std::path::Path::new("/nonexistent-dir/hello.sock");
/// let err = faas_host::local_child::serve_with(faas_api::App::new(), socket, None, &env).await.unwrap_err();
/// assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
/// # }
/// ```
pub async fn serve_with(app: App, socket: &Path, function: Option<String>, env: &Env) -> Result<(), Error> {
    let listener = Listener::bind(&Bind::Unix(socket.to_path_buf())).await?;
    crate::logging::install(crate::logging::LogStyle::Plain, env.get("RUST_LOG"));
    // Exit when the pool closes our stdin: children never outlive the process that started them.
    tokio::spawn(async {
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
    crate::http::serve(listener, invoker(app, function, env), ChildProtocol, HttpOptions { max_body: MAX_CHILD_BODY })
        .await
}

/// The invoker of a child: backend `local`, handlers aborted at the deadline the pool sends
/// (`faas-deadline-ms`) with a timeout error, so the process stays warm for the next call. The
/// pool kills the process only when no answer comes shortly after the deadline (a handler stuck
/// in blocking code, which the invoker cannot stop).
fn invoker(app: App, function: Option<String>, env: &Env) -> Invoker {
    let services: Arc<dyn Services> = match (env.get(wire::ENV_SERVICES), env.get(wire::ENV_EVENTS)) {
        (None, None) => Arc::new(faas_api::context::NoServices),
        (base, events) => {
            Arc::new(HttpServices { events: events.map(str::to_string), ..HttpServices::new(base.unwrap_or_default()) })
        }
    };
    Invoker::new(app, "local").function(function, NAMED_BY).services(services).limits(Limits::new("the local pool"))
}

/// The child protocol on the shared HTTP loop.
struct ChildProtocol;

impl HttpProtocol for ChildProtocol {
    /// The invocation id, for the end-of-invocation marker.
    type Pending = String;

    fn decode(&self, head: &Parts, body: Bytes) -> Result<Decoded<String>, Error> {
        let id = wire::header(&head.headers, wire::INVOCATION_ID).unwrap_or_default().to_string();
        let function = head.uri.path().strip_prefix("/invoke/").filter(|n| !n.is_empty()).map(str::to_string);
        let facts = Facts {
            function,
            invocation_id: (!id.is_empty()).then(|| id.clone()),
            deadline: wire::header(&head.headers, wire::DEADLINE_MS)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
            trace: crate::trace::from_headers(&head.headers),
            extensions: http::Extensions::new(),
        };
        Ok(Decoded::Invoke { facts, input: Input::Payload(wire::payload(&head.headers, body)), pending: id })
    }

    fn encode(&self, id: String, result: Result<Payload, Error>) -> Response<Full<Bytes>> {
        end_of_invocation(&id);
        match result {
            Ok(p) => {
                let mut r = Response::new(Full::new(p.body().clone()));
                if let Some(ct) = p.content_type().and_then(|c| http::HeaderValue::from_str(c).ok()) {
                    r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
                }
                r
            }
            Err(e) => error_response(&e),
        }
    }

    fn refuse(&self, head: Option<&Parts>, error: &Error) -> Response<Full<Bytes>> {
        let id = head.and_then(|h| wire::header(&h.headers, wire::INVOCATION_ID)).unwrap_or_default();
        end_of_invocation(id);
        error_response(error)
    }
}

fn error_response(e: &Error) -> Response<Full<Bytes>> {
    let (status, headers, body) = wire::error_parts(e);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// Marks the end of invocation `id`'s output before answering, so the pool can attribute lines.
fn end_of_invocation(id: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{SENTINEL} {id}");
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{SENTINEL} {id}");
    let _ = err.flush();
}

/// [`Services`] over the HTTP front: `POST {base}/functions/{name}` and `POST {base}/events` (or, when
/// an events URL is set, `POST` to that gateway ingress).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use faas_api::{Context, Payload};
/// use faas_host::local_child::HttpServices;
/// # use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
/// # // A stand-in for the front: answers one request with "hi" and reports its request line.
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let front_url = format!("http://{}", listener.local_addr().unwrap());
/// # let request_line = tokio::spawn(async move {
/// #     let (mut conn, _) = listener.accept().await.unwrap();
/// #     let mut seen = Vec::new();
/// #     while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
/// #         let mut buf = [0u8; 1024];
/// #         let n = conn.read(&mut buf).await.unwrap();
/// #         seen.extend_from_slice(&buf[..n]);
/// #     }
/// #     conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi").await.unwrap();
/// #     String::from_utf8_lossy(&seen).lines().next().unwrap().to_string()
/// # });
/// let services = Arc::new(HttpServices::new(front_url));
/// let cx = Context::builder("caller").services(services).build();
/// let reply = cx.invoke("hello", Payload::bytes("Ada")).await.unwrap();
/// assert_eq!(reply.body().as_ref(), b"hi");
/// assert_eq!(reply.content_type(), Some("text/plain"));
/// assert_eq!(request_line.await.unwrap(), "POST /functions/hello HTTP/1.1");
/// # }
/// ```
pub struct HttpServices {
    base: String,
    events: Option<String>,
    client: HttpClient,
}

impl HttpServices {
    /// Services reaching the front at `base` (`http://127.0.0.1:PORT`; a trailing `/` is ignored).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use faas_host::local_child::HttpServices;
    /// let services = Arc::new(HttpServices::new("http://127.0.0.1:1/")); // nothing listens on port 1
    /// let cx = faas_api::Context::builder("caller").services(services).build();
    /// let err = cx.invoke("hello", faas_api::Payload::empty()).await.unwrap_err();
    /// assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
    /// assert!(err.message().starts_with("cannot reach http://127.0.0.1:1/functions/hello"), "{}", err.message());
    /// # }
    /// ```
    pub fn new(base: impl Into<String>) -> HttpServices {
        HttpServices { base: base.into().trim_end_matches('/').to_string(), events: None, client: HttpClient::new() }
    }

    /// Services that only emit: events are posted (structured mode) to the gateway ingress `url`;
    /// invoking another function is refused.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use faas_host::local_child::HttpServices;
    /// let services = Arc::new(HttpServices::events_only("http://127.0.0.1:7000/events"));
    /// let cx = faas_api::Context::builder("caller").services(services).build();
    /// let err = cx.invoke("hello", faas_api::Payload::empty()).await.unwrap_err();
    /// assert!(err.message().contains("without the local front's URL"), "{}", err.message());
    /// # }
    /// ```
    pub fn events_only(url: impl Into<String>) -> HttpServices {
        HttpServices { events: Some(url.into()), ..HttpServices::new("") }
    }

    async fn post(
        &self,
        path: &str,
        traceparent: String,
        cause: Option<&str>,
        payload: Payload,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), Error> {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        if self.base.is_empty() && !path.starts_with("http") {
            return Err(Error::unavailable("this host was started without the local front's URL"));
        }
        let mut req = Request::post(&url).header(wire::TRACEPARENT, traceparent);
        if let Some(cause) = cause.and_then(|c| http::HeaderValue::from_str(c).ok()) {
            req = req.header(wire::CAUSE, cause);
        }
        if let Some(ct) = payload.content_type() {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(payload.into_body())).map_err(|e| Error::bad_input(e.to_string()))?;
        let (parts, body) = self.client.send(req, usize::MAX).await.map_err(|e| match e {
            SendError::Request(e) => Error::unavailable(format!("cannot reach {url}: {e}")),
            SendError::Body(e) => Error::unavailable(e.to_string()),
        })?;
        Ok((parts.status, parts.headers, body))
    }
}

#[async_trait]
impl Services for HttpServices {
    async fn invoke(&self, caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error> {
        faas_api::validate_function_name(name)?;
        let cause = Some(caller.invocation_id());
        let (status, headers, body) =
            self.post(&format!("/functions/{name}"), caller.trace().child().traceparent(), cause, payload).await?;
        if status == http::StatusCode::OK {
            Ok(Payload::new(body, wire::content_type(&headers)))
        } else {
            Err(wire::error_from_response(status, &headers, &body))
        }
    }

    async fn emit(&self, caller: &Context, event: Event) -> Result<(), Error> {
        let payload = faas_api::event::encode_structured(&event)?;
        let target = self.events.clone().unwrap_or_else(|| "/events".to_string());
        let (status, headers, body) = self.post(&target, caller.trace().child().traceparent(), None, payload).await?;
        if status.is_success() { Ok(()) } else { Err(wire::error_from_response(status, &headers, &body)) }
    }
}
