//! [`FrontClient`]: a [`Runner`] that drives a running front (`faas dev`) over HTTP, so the CLI
//! and the conformance suite use one SPI whether the backend is in this process or behind a
//! port.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use faas_api::{App, Context, Error, InvokeRequest, Payload, Runner};
//! use faas_front::{bind, client::FrontClient, FrontOptions};
//! use faas_runner_local::{LocalOptions, LocalRunner};
//!
//! async fn hello(_cx: Context, name: String) -> Result<String, Error> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! // A `faas dev`-like server on a free port.
//! let runner = LocalRunner::in_process(App::new().function("hello", hello), LocalOptions::default()).unwrap();
//! let front = bind(runner, FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() }).await.unwrap();
//!
//! let client = FrontClient::connect(&front.url(), Some(front.token().to_string())).await.unwrap();
//! assert_eq!(client.kind(), "local");
//! let names: Vec<String> = client.list().await.unwrap().into_iter().map(|f| f.spec.name).collect();
//! assert_eq!(names, ["hello"]);
//! let reply = client.invoke(InvokeRequest::new("hello", Payload::json("Ada").unwrap())).await.unwrap();
//! assert_eq!(reply.payload.body().as_ref(), br#""Hello, Ada!""#);
//! front.shutdown().await;
//! # }
//! ```

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use faas_api::{
    Activation, ActivationQuery, AppSpec, Capabilities, DeployReport, Error, FunctionInfo, InvokeMode, InvokeRequest,
    Invoked, Package, Payload, Progress, Runner,
};
use faas_host::wire;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Largest response accepted from management calls.
const MAX_MANAGEMENT_RESPONSE: usize = 16 * 1024 * 1024;
/// Allowance on top of the server's payload limit for response headers and error bodies.
const RESPONSE_SLACK: usize = 1024 * 1024;

/// A client of the faas HTTP front, usable as a [`Runner`].
///
/// `kind()` is the served backend's kind, `capabilities()` its capabilities (read once, at
/// connect). Invocation needs no token; management calls (list, remove, activations, deploy)
/// send the token as `Authorization: Bearer`, and so does connecting, though the faas front does
/// not check it there.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use faas_front::client::FrontClient;
/// let err = FrontClient::connect("http://127.0.0.1:9", None).await.unwrap_err();
/// assert!(err.message().contains("start one with `faas dev`"), "{}", err.message());
/// # });
/// ```
pub struct FrontClient {
    base: String,
    authorization: Option<HeaderValue>,
    kind: String,
    capabilities: Capabilities,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for FrontClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontClient")
            .field("base", &self.base)
            .field("kind", &self.kind)
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Deserialize)]
struct CapabilitiesReply {
    kind: String,
    capabilities: Capabilities,
}

#[derive(Deserialize)]
struct AcceptedReply {
    #[serde(rename = "activationId")]
    activation_id: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn error(&self) -> Error {
        wire::error_from_response(self.status, &self.headers, &self.body)
    }

    fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::unavailable(format!("the faas dev server sent an unreadable {what}: {e}")))
    }
}

impl FrontClient {
    /// Connects to the front at `base_url` (e.g. `http://127.0.0.1:8080`) and reads its kind and
    /// capabilities (`GET /_faas/capabilities`). The faas front answers that without a token, so
    /// `token` (needed for management calls only) is checked by the first management call: a
    /// missing or wrong one is then [`faas_api::ErrorKind::Unauthorized`].
    ///
    /// Nothing listening there is a [`faas_api::ErrorKind::BackendUnavailable`] error saying
    /// to start one with `faas dev`; a URL that is not `http://host[:port][/path]` is bad input.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_api::{ErrorKind, Runner};
    /// use faas_front::{bind, client::FrontClient, FrontOptions};
    /// let runner = faas_runner_local::LocalRunner::in_process(faas_api::App::new(), Default::default()).unwrap();
    /// let options = FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), token: Some("s3cret".into()), ..Default::default() };
    /// let front = bind(runner, options).await.unwrap();
    ///
    /// let admin = FrontClient::connect(&front.url(), Some("s3cret".into())).await.unwrap();
    /// assert!(admin.list().await.unwrap().is_empty());
    /// let guest = FrontClient::connect(&front.url(), Some("guess".into())).await.unwrap(); // may invoke
    /// assert_eq!(guest.list().await.unwrap_err().kind(), ErrorKind::Unauthorized);
    /// let bad_url = FrontClient::connect("https://example.com", None).await.unwrap_err();
    /// assert_eq!(bad_url.kind(), ErrorKind::BadInput);
    /// # }
    /// ```
    pub async fn connect(base_url: &str, token: Option<String>) -> Result<FrontClient, Error> {
        let base = normalise_base(base_url)?;
        let authorization = match token {
            None => None,
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    Error::bad_input("the management token must be visible ASCII characters without spaces")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        let placeholder = Capabilities {
            claims: Default::default(),
            max_sync_payload: 0,
            max_async_payload: 0,
            max_timeout: Duration::ZERO,
        };
        let mut client = FrontClient { base, authorization, kind: String::new(), capabilities: placeholder, http };
        let reply = client.send(Method::GET, "/_faas/capabilities", HeaderMap::new(), Bytes::new(), true).await?;
        if reply.status != StatusCode::OK {
            let err = reply.error();
            return Err(match err.kind() {
                faas_api::ErrorKind::Unauthorized => Error::unauthorized(format!(
                    "the faas dev server at {} refused the management token: {}",
                    client.base,
                    err.message()
                )),
                _ => err,
            });
        }
        let caps: CapabilitiesReply = reply.json("capabilities reply")?;
        client.kind = caps.kind;
        client.capabilities = caps.capabilities;
        Ok(client)
    }

    /// The base URL this client talks to, without a trailing `/`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use faas_front::{bind, client::FrontClient, FrontOptions};
    /// # let runner = faas_runner_local::LocalRunner::in_process(faas_api::App::new(), Default::default()).unwrap();
    /// # let front = bind(runner, FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() }).await.unwrap();
    /// let client = FrontClient::connect(&format!("{}/", front.url()), Some(front.token().into())).await.unwrap();
    /// assert_eq!(client.base_url(), front.url());
    /// # }
    /// ```
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn response_limit(&self) -> usize {
        self.capabilities.max_sync_payload.max(MAX_MANAGEMENT_RESPONSE) + RESPONSE_SLACK
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        body: Bytes,
        management: bool,
    ) -> Result<Reply, Error> {
        let uri = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method.clone()).uri(&uri);
        if management && let Some(auth) = &self.authorization {
            headers.insert(http::header::AUTHORIZATION, auth.clone());
        }
        if let Some(h) = builder.headers_mut() {
            h.extend(headers);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| Error::bad_input(format!("cannot build a request to {uri}: {e}")))?;
        let response = self.http.request(request).await.map_err(|e| {
            Error::unavailable(format!(
                "no faas dev server at {}: {}; start one with `faas dev`",
                self.base,
                error_chain(&e)
            ))
        })?;
        let (parts, body) = response.into_parts();
        let limit = self.response_limit();
        let body = match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return Err(Error::payload_too_large(format!(
                    "the response to `{method} {path}` is over {limit} bytes"
                )));
            }
            Err(e) => {
                return Err(Error::unavailable(format!(
                    "the faas dev server at {} broke off the response to `{method} {path}`: {e}",
                    self.base
                )));
            }
        };
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }
}

/// `http://host:port/` → `http://host:port`; anything but an absolute `http://` URL is refused.
fn normalise_base(url: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::bad_input(format!("`{url}` is not a usable faas dev URL: {why}"));
    let uri: http::Uri = url.trim().parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(bad(&format!("scheme `{other}` is not supported; use http://"))),
        None => return Err(bad("it needs a scheme and a host, e.g. http://127.0.0.1:8080")),
    }
    let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
    if uri.query().is_some() {
        return Err(bad("it must not have a query string"));
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("http://{authority}{path}"))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| Error::bad_input(format!("`{name}` is not a valid header value")))
}

fn absolute(path: &Path) -> Result<std::path::PathBuf, Error> {
    std::fs::canonicalize(path)
        .map_err(|e| Error::bad_input(format!("the app binary {} cannot be used: {e}", path.display())))
}

#[async_trait]
impl Runner for FrontClient {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    /// The server packages on deploy; here the binary is only located and measured.
    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        progress.step("locating the app binary");
        let artifact = absolute(&app.binary)?;
        let size = std::fs::metadata(&artifact)
            .map_err(|e| Error::bad_input(format!("the app binary {} cannot be used: {e}", artifact.display())))?
            .len();
        Ok(Package { app: app.app.clone(), artifact, size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        progress.step(&format!("deploying to {}", self.base));
        let mut package = package.clone();
        if package.artifact.is_relative() && package.artifact.exists() {
            package.artifact = absolute(&package.artifact)?;
        }
        let body =
            serde_json::to_vec(&package).map_err(|e| Error::bad_input(format!("cannot encode the package: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let reply = self.send(Method::POST, "/_faas/deploy", headers, Bytes::from(body), true).await?;
        match reply.status {
            StatusCode::OK => reply.json("deploy report"),
            _ => Err(reply.error()),
        }
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        faas_api::validate_function_name(&request.function)?;
        let mut headers = HeaderMap::new();
        if let Some(ct) = request.payload.content_type() {
            headers.insert(http::header::CONTENT_TYPE, header_value("content-type", ct)?);
        }
        if let Some(tp) = &request.traceparent {
            headers.insert(wire::TRACEPARENT, header_value(wire::TRACEPARENT, tp)?);
        }
        if let Some(cause) = &request.cause {
            headers.insert(wire::CAUSE, header_value(wire::CAUSE, cause)?);
        }
        match request.mode {
            InvokeMode::Sync => {}
            InvokeMode::Async => {
                headers.insert(crate::wire::INVOKE_MODE, HeaderValue::from_static("async"));
            }
            InvokeMode::DryRun => {
                headers.insert(crate::wire::INVOKE_MODE, HeaderValue::from_static("dry-run"));
            }
        }
        if request.with_logs {
            headers.insert(crate::wire::LOG_TYPE, HeaderValue::from_static("tail"));
        }
        let path = format!("/functions/{}", request.function);
        let reply = self.send(Method::POST, &path, headers, request.payload.into_body(), false).await?;
        let activation_id = wire::header(&reply.headers, crate::wire::ACTIVATION_ID).unwrap_or_default().to_string();
        match reply.status {
            StatusCode::OK => {
                let logs = match wire::header(&reply.headers, crate::wire::LOG_RESULT) {
                    Some(encoded) if request.with_logs => {
                        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| {
                            Error::unavailable(format!("the faas dev server sent an unreadable log result: {e}"))
                        })?;
                        let text = String::from_utf8_lossy(&bytes);
                        Some(if text.is_empty() { vec![] } else { text.split('\n').map(str::to_string).collect() })
                    }
                    _ => None,
                };
                let payload = Payload::new(reply.body, wire::content_type(&reply.headers));
                Ok(Invoked { activation_id, payload, logs })
            }
            StatusCode::ACCEPTED => {
                let accepted: AcceptedReply = reply.json("async invocation reply")?;
                Ok(Invoked { activation_id: accepted.activation_id, payload: Payload::empty(), logs: None })
            }
            StatusCode::NO_CONTENT => Ok(Invoked { activation_id, payload: Payload::empty(), logs: None }),
            _ => Err(reply.error()),
        }
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let reply = self.send(Method::GET, "/_faas/functions", HeaderMap::new(), Bytes::new(), true).await?;
        match reply.status {
            StatusCode::OK => reply.json("function list"),
            _ => Err(reply.error()),
        }
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        faas_api::validate_function_name(function)?;
        let path = format!("/_faas/functions/{function}");
        let reply = self.send(Method::DELETE, &path, HeaderMap::new(), Bytes::new(), true).await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(reply.error()),
        }
    }

    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        if let Some(id) = &query.id {
            let path = format!("/_faas/activations/{}", encode_component(id));
            let reply = self.send(Method::GET, &path, HeaderMap::new(), Bytes::new(), true).await?;
            return match reply.status {
                StatusCode::OK => {
                    let activation: Activation = reply.json("activation")?;
                    let wanted = query.function.as_deref().is_none_or(|f| f == activation.function);
                    Ok(if wanted { vec![activation] } else { vec![] })
                }
                StatusCode::NOT_FOUND if reply.error().kind() == faas_api::ErrorKind::NotFound => Ok(vec![]),
                _ => Err(reply.error()),
            };
        }
        let mut params = vec![];
        if let Some(f) = &query.function {
            params.push(format!("function={}", encode_component(f)));
        }
        if let Some(limit) = query.limit {
            params.push(format!("limit={limit}"));
        }
        let path = if params.is_empty() {
            "/_faas/activations".to_string()
        } else {
            format!("/_faas/activations?{}", params.join("&"))
        };
        let reply = self.send(Method::GET, &path, HeaderMap::new(), Bytes::new(), true).await?;
        match reply.status {
            StatusCode::OK => reply.json("activation list"),
            _ => Err(reply.error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_or_refused() {
        assert_eq!(normalise_base("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(normalise_base("http://localhost:1/prefix/").unwrap(), "http://localhost:1/prefix");
        assert!(normalise_base("https://x").unwrap_err().message().contains("`https`"));
        assert!(normalise_base("127.0.0.1:8080").is_err());
        assert!(normalise_base("http://h/?a=1").unwrap_err().message().contains("query"));
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(encode_component("abc-1_2.3~"), "abc-1_2.3~");
    }

    #[tokio::test]
    async fn nothing_listening_is_unavailable_with_a_hint() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = FrontClient::connect(&format!("http://127.0.0.1:{port}"), None).await.unwrap_err();
        assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
        assert!(err.message().contains(&format!("no faas dev server at http://127.0.0.1:{port}")), "{}", err.message());
        assert!(err.message().contains("start one with `faas dev`"), "{}", err.message());
    }
}
