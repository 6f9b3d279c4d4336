//! Sending one event to one sink: an HTTP endpoint (CloudEvents binary mode) or a function reached
//! through the runner SPI (structured mode payload, synchronous invoke).
//!
//! Every send returns an [`Attempt`]: the status the sink answered (an HTTP status, or for a function
//! the HTTP status of the portable error kind, see [`faas_api::ErrorKind::status`]), its `Retry-After`,
//! the first KiB of the error body, and a human-readable detail. What to do next is decided by
//! [`crate::delivery`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use faas_api::{BackendProfile, Error, InvokeRequest, Payload, Runner};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How much of a failed sink's response body is kept (and put into `knativeerrordata`).
pub const ERROR_BODY_LIMIT: usize = 1024;

/// The outcome of one attempt to hand an event to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The status the sink answered; `None` when there was no answer (timeout, connection refused).
    pub status: Option<u16>,
    /// The sink's `Retry-After`, already converted to a wait from now.
    pub retry_after: Option<Duration>,
    /// The first [`ERROR_BODY_LIMIT`] bytes of the response body (kept for failures only).
    pub body: Bytes,
    /// What happened, for logs and dead-letter context.
    pub detail: String,
    /// The attempt ran past its timeout.
    pub timed_out: bool,
}

impl Attempt {
    fn no_answer(detail: String, timed_out: bool) -> Attempt {
        Attempt { status: None, retry_after: None, body: Bytes::new(), detail, timed_out }
    }

    fn from_error(err: &Error) -> Attempt {
        let mut body = err.to_json();
        body.truncate(ERROR_BODY_LIMIT);
        Attempt {
            status: Some(err.status()),
            retry_after: None,
            body: Bytes::from(body),
            detail: format!("{}: {}", err.kind().as_str(), err.message()),
            timed_out: false,
        }
    }
}

/// Runners for function sinks, created lazily from the backend profiles (one per profile) and cached.
pub struct FunctionRunners {
    registry: faas_api::Registry,
    backends: BTreeMap<String, BackendProfile>,
    cache: tokio::sync::Mutex<HashMap<String, Arc<dyn Runner>>>,
}

impl std::fmt::Debug for FunctionRunners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionRunners").field("backends", &self.backends.keys().collect::<Vec<_>>()).finish()
    }
}

impl FunctionRunners {
    /// Runners made by `registry` from the profiles in `backends` (the `[backends.*]` of faas.toml). As in
    /// faas.toml, `local` always exists: without a profile of that name it is the local backend's defaults.
    pub fn new(registry: faas_api::Registry, mut backends: BTreeMap<String, BackendProfile>) -> FunctionRunners {
        backends.entry("local".into()).or_insert_with(|| BackendProfile::new("local", "local"));
        FunctionRunners { registry, backends, cache: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// The runner of backend profile `backend`, created on first use. A profile that does not exist is a
    /// [`faas_api::ErrorKind::BadInput`] error (not retried); a runner that cannot be created now (server
    /// down) is returned as is and not cached, so a later attempt tries again.
    pub async fn runner(&self, backend: &str) -> Result<Arc<dyn Runner>, Error> {
        let mut cache = self.cache.lock().await;
        if let Some(r) = cache.get(backend) {
            return Ok(r.clone());
        }
        let profile = self.backends.get(backend).cloned().ok_or_else(|| {
            Error::bad_input(format!(
                "function sink names backend profile `{backend}`, which is not in faas.toml [backends]; known: {}",
                self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let runner = self.registry.create(profile).await?;
        cache.insert(backend.to_string(), runner.clone());
        Ok(runner)
    }
}

type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Sends events to HTTP sinks (pooled connections, HTTP and HTTPS) and to functions.
pub struct SinkClient {
    http: Client<HttpsConnector, Full<Bytes>>,
    functions: FunctionRunners,
}

impl std::fmt::Debug for SinkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkClient").field("functions", &self.functions).finish_non_exhaustive()
    }
}

fn https_connector() -> HttpsConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = match rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()
    {
        Ok(builder) => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no CA certificates found on this system: https sinks will fail certificate checks");
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Err(e) => {
            tracing::warn!(error = %e, "TLS setup failed: https sinks will fail");
            rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3 is supported by the ring provider")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http)
}

impl SinkClient {
    /// A client whose function sinks use `functions`.
    pub fn new(functions: FunctionRunners) -> SinkClient {
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(https_connector());
        SinkClient { http, functions }
    }

    /// POSTs (or sends with `method`) the event (`event`: its structured JSON) to `url` in CloudEvents binary
    /// mode with the extra `headers`, waiting at most `timeout` for the answer.
    pub async fn send_http(
        &self,
        url: &str,
        method: &str,
        headers: &BTreeMap<String, String>,
        event: &serde_json::Value,
        timeout: Duration,
    ) -> Attempt {
        let request = match binary_request(url, method, headers, event) {
            Ok(r) => r,
            Err(detail) => {
                // Our own encoding failed: the sink or the event cannot be sent at all; not retryable.
                return Attempt { status: Some(400), retry_after: None, body: Bytes::new(), detail, timed_out: false };
            }
        };
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| format!("sending to {url} failed: {e}"))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::delivery::parse_retry_after(v, SystemTime::now()));
            let body = if (200..300).contains(&status) {
                // Drain so the connection goes back to the pool.
                let _ = response.into_body().collect().await;
                Bytes::new()
            } else {
                read_prefix(response.into_body(), ERROR_BODY_LIMIT).await
            };
            Ok::<_, String>((status, retry_after, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Attempt::no_answer(format!("no answer from {url} within {timeout:?}"), true),
            Ok(Err(detail)) => Attempt::no_answer(detail, false),
            Ok(Ok((status, retry_after, body))) => Attempt {
                status: Some(status),
                retry_after,
                detail: format!("{url} answered {status}"),
                body,
                timed_out: false,
            },
        }
    }

    /// Invokes `function` on backend profile `backend` synchronously with the structured event `body` as
    /// payload (`application/cloudevents+json`), waiting at most `timeout`.
    pub async fn send_function(
        &self,
        backend: &str,
        function: &str,
        body: Bytes,
        traceparent: Option<String>,
        timeout: Duration,
    ) -> Attempt {
        let payload = Payload::new(body.to_vec(), Some(faas_api::payload::CLOUDEVENTS_JSON.to_string()));
        let context = Caused { traceparent, cause: None };
        match self.invoke_function(backend, function, payload, context, timeout).await {
            Ok(_) => Attempt {
                status: Some(200),
                retry_after: None,
                body: Bytes::new(),
                detail: format!("function `{function}` on `{backend}` succeeded"),
                timed_out: false,
            },
            Err(e) if e.kind() == faas_api::ErrorKind::Timeout && e.message().starts_with(TIMED_OUT) => {
                Attempt::no_answer(e.message().to_string(), true)
            }
            Err(e) => Attempt::from_error(&e),
        }
    }

    /// Invokes `function` on backend profile `backend` synchronously with `payload` (and the
    /// `traceparent` and `cause` of `context`), waiting at most `timeout` (then a `timeout`
    /// error); returns its answer.
    pub async fn invoke_function(
        &self,
        backend: &str,
        function: &str,
        payload: Payload,
        context: Caused,
        timeout: Duration,
    ) -> Result<Payload, Error> {
        let runner = self.functions.runner(backend).await?;
        let mut request = InvokeRequest::new(function, payload);
        request.traceparent = context.traceparent;
        request.cause = context.cause;
        match tokio::time::timeout(timeout, runner.invoke(request)).await {
            Err(_) => Err(Error::new(
                faas_api::ErrorKind::Timeout,
                format!("{TIMED_OUT} `{function}` on `{backend}` ran past {timeout:?}"),
            )),
            Ok(Ok(response)) => Ok(response.payload),
            Ok(Err(e)) => Err(e),
        }
    }
}

/// Where a function call the gateway makes comes from: the trace it belongs to and its cause
/// (the callee's activation `cause`, where its backend records one).
#[derive(Debug, Clone, Default)]
pub struct Caused {
    /// W3C `traceparent` of the call.
    pub traceparent: Option<String>,
    /// What caused it (`runs/<id>` for a step of a conducted run).
    pub cause: Option<String>,
}

/// How the gateway's own timeout of a function call starts its message.
const TIMED_OUT: &str = "the gateway's call of function";

async fn read_prefix(mut body: hyper::body::Incoming, limit: usize) -> Bytes {
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data[..data.len().min(limit - out.len())]);
                }
            }
            _ => break,
        }
    }
    Bytes::from(out)
}

fn is_json_type(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => faas_api::payload::is_json_media_type(ct),
    }
}

/// The canonical string form of a JSON-format attribute value (strings as they are, booleans and integers
/// as JSON text).
fn canonical(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Builds the CloudEvents binary-mode HTTP request for an event given in the JSON format: every attribute
/// and extension as a percent-encoded `ce-` header, `datacontenttype` as `Content-Type`, the data as the
/// body (`data_base64` decoded to bytes), plus `traceparent` as its own header when the event carries one.
///
/// ```
/// let event = serde_json::json!({
///     "specversion": "1.0", "id": "1", "source": "/s", "type": "t", "subject": "a b",
///     "datacontenttype": "text/plain", "data": "hi", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
/// });
/// let request = faas_gateway::sink::binary_request("http://127.0.0.1:1/x", "POST", &Default::default(), &event).unwrap();
/// assert_eq!(request.headers()["ce-subject"], "a%20b");
/// assert_eq!(request.headers()["content-type"], "text/plain");
/// assert_eq!(request.headers()["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// ```
pub fn binary_request(
    url: &str,
    method: &str,
    headers: &BTreeMap<String, String>,
    event: &serde_json::Value,
) -> Result<Request<Full<Bytes>>, String> {
    let obj = event.as_object().ok_or("the stored event is not a JSON object")?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("invalid HTTP method `{method}`"))?;
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))?;
        builder = builder.header(name, value);
    }
    let content_type = obj.get("datacontenttype").and_then(|v| v.as_str());
    let mut body = Bytes::new();
    for (name, value) in obj {
        match name.as_str() {
            "datacontenttype" => {}
            "data" => {
                body = match value {
                    serde_json::Value::String(s) if !is_json_type(content_type) => Bytes::from(s.clone().into_bytes()),
                    other => Bytes::from(serde_json::to_vec(other).map_err(|e| e.to_string())?),
                }
            }
            "data_base64" => {
                let text = value.as_str().ok_or("`data_base64` is not a string")?;
                body = Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| format!("`data_base64` is not valid base64: {e}"))?,
                );
            }
            _ => {
                let Some(text) = canonical(value) else { continue };
                let encoded = faas_api::event::encode_header_value(&text);
                let header =
                    HeaderValue::from_str(&encoded).map_err(|_| format!("cannot encode attribute `{name}`"))?;
                builder = builder.header(format!("ce-{name}"), header.clone());
                if name == "traceparent" {
                    builder = builder.header("traceparent", header);
                }
            }
        }
    }
    match content_type {
        Some(ct) => builder = builder.header(http::header::CONTENT_TYPE, ct),
        None if obj.contains_key("data") => builder = builder.header(http::header::CONTENT_TYPE, "application/json"),
        None => {}
    }
    builder.body(Full::new(body)).map_err(|e| format!("cannot build the request to {url}: {e}"))
}
