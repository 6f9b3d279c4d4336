//! The names and helpers of faas's local wire protocols: the child-process protocol (the local
//! backend's pool ↔ a function process, see [`crate::local_child`]), the `FAAS_DESCRIBE` mode, and
//! what the HTTP front of `faas dev` shares with them (the portable error on HTTP, the trace
//! header), which a child speaks as the front's client for `cx.invoke` and `cx.emit`. The front's
//! own headers (invoke mode, log tail, activation id) live in `faas-front`.
//!
//! ```
//! use faas_api::{Error, ErrorKind};
//! use faas_host::wire;
//! // A host answers with an error…
//! let (status, headers, body) = wire::error_parts(&Error::timeout("ran past 3s"));
//! assert_eq!(status.as_u16(), 504);
//! // …and the caller reads the same error back.
//! let back = wire::error_from_response(status, &headers, &body);
//! assert_eq!(back.kind(), ErrorKind::Timeout);
//! assert_eq!(back.message(), "ran past 3s");
//! ```

use faas_api::{Error, ErrorKind, Payload};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Invocation id, set on every request to a child.
///
/// ```
/// use faas_host::wire;
/// let mut h = http::HeaderMap::new();
/// h.insert(wire::INVOCATION_ID, http::HeaderValue::from_static("0f3c2a"));
/// assert_eq!(wire::header(&h, "faas-invocation-id"), Some("0f3c2a"));
/// ```
pub const INVOCATION_ID: &str = "faas-invocation-id";
/// Absolute deadline, Unix epoch milliseconds.
///
/// ```
/// use faas_api::Context;
/// use faas_host::wire;
/// let mut h = http::HeaderMap::new();
/// h.insert(wire::DEADLINE_MS, http::HeaderValue::from_static("1700000000000"));
/// let ms: u64 = wire::header(&h, "faas-deadline-ms").unwrap().parse().unwrap();
/// assert_eq!(Context::builder("f").deadline_ms(ms).build().deadline_ms(), 1_700_000_000_000);
/// ```
pub const DEADLINE_MS: &str = "faas-deadline-ms";
/// The error kind of an error response (`function`, `timeout`, ...).
///
/// ```
/// use faas_api::Error;
/// use faas_host::wire;
/// let (_, headers, _) = wire::error_parts(&Error::not_found("no such function"));
/// assert_eq!(wire::header(&headers, wire::ERROR_KIND), Some("not_found"));
/// assert_eq!(wire::ERROR_KIND, "faas-error");
/// ```
pub const ERROR_KIND: &str = "faas-error";
/// W3C trace context.
///
/// ```
/// use faas_api::Context;
/// use faas_host::wire;
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let mut h = http::HeaderMap::new();
/// h.insert(wire::TRACEPARENT, http::HeaderValue::from_static(tp));
/// let cx = Context::builder("f").traceparent(wire::header(&h, wire::TRACEPARENT)).build();
/// assert_eq!(cx.trace().traceparent(), tp);
/// ```
pub const TRACEPARENT: &str = "traceparent";
/// What caused an invocation (the caller's activation id, or `runs/<id>`): sent to the local
/// front with `cx.invoke`, recorded as the callee's activation `cause`.
///
/// ```
/// assert_eq!(faas_host::wire::CAUSE, "faas-cause");
/// ```
pub const CAUSE: &str = "faas-cause";
/// Env var holding the Unix socket path a child process serves the child protocol on.
///
/// ```
/// use std::ffi::OsStr;
/// let mut child = std::process::Command::new("./app");
/// child.env(faas_host::wire::ENV_SOCKET, "/tmp/faas/hello-1.sock");
/// let set: Vec<_> = child.get_envs().collect();
/// assert_eq!(set, [(OsStr::new("FAAS_LOCAL_SOCKET"), Some(OsStr::new("/tmp/faas/hello-1.sock")))]);
/// ```
pub const ENV_SOCKET: &str = "FAAS_LOCAL_SOCKET";
/// Env var naming the function a child process serves.
///
/// ```
/// use std::ffi::OsStr;
/// let mut child = std::process::Command::new("./app");
/// child.env(faas_host::wire::ENV_FUNCTION, "hello");
/// let set: Vec<_> = child.get_envs().collect();
/// assert_eq!(set, [(OsStr::new("FAAS_FUNCTION"), Some(OsStr::new("hello")))]);
/// ```
pub const ENV_FUNCTION: &str = "FAAS_FUNCTION";
/// Env var holding the base URL of the front, for `Context::invoke` / `Context::emit` in children.
///
/// ```
/// assert_eq!(faas_host::wire::ENV_SERVICES, "FAAS_LOCAL_SERVICES");
/// ```
pub const ENV_SERVICES: &str = "FAAS_LOCAL_SERVICES";
/// Env var holding the URL `Context::emit` posts events to (a CloudEvents gateway's ingress) instead of
/// the local front's `/events`.
///
/// ```
/// assert_eq!(faas_host::wire::ENV_EVENTS, "FAAS_EVENTS_URL");
/// ```
pub const ENV_EVENTS: &str = "FAAS_EVENTS_URL";
/// Env var that makes `faas::serve` print the app manifest as JSON and exit.
///
/// ```
/// // What `FAAS_DESCRIBE=1 ./app` prints: the app's manifest.
/// use faas_api::{App, Error, Payload};
/// let app = App::new().raw("echo", |_cx, p: Payload| async move { Ok::<_, Error>(p) });
/// let printed = serde_json::to_string(&app.manifest()).unwrap();
/// assert!(printed.contains(r#""name":"echo""#));
/// assert_eq!(faas_host::wire::ENV_DESCRIBE, "FAAS_DESCRIBE");
/// ```
pub const ENV_DESCRIBE: &str = "FAAS_DESCRIBE";

/// The line a child writes to stdout and stderr after each invocation, followed by the
/// invocation id, so the pool can attribute the lines before it to that invocation (the same
/// idea as OpenWhisk's activation sentinel,
/// https://github.com/apache/openwhisk/blob/master/docs/actions-actionloop.md).
///
/// ```
/// use faas_host::wire::SENTINEL;
/// // The function printed "last words" without a newline; the child then wrote the sentinel.
/// let line = format!("last words{SENTINEL} inv-42");
/// let at = line.find(SENTINEL).unwrap();
/// assert_eq!(&line[..at], "last words");
/// assert_eq!(line[at + SENTINEL.len()..].trim(), "inv-42");
/// ```
pub const SENTINEL: &str = "__FAAS_END_OF_INVOCATION__";

/// The `Content-Type` header, if present and valid text.
///
/// ```
/// use faas_host::wire;
/// let mut h = http::HeaderMap::new();
/// assert_eq!(wire::content_type(&h), None);
/// h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
/// assert_eq!(wire::content_type(&h).as_deref(), Some("application/json"));
/// ```
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// A header as a string, if present and valid text (names are case-insensitive).
///
/// ```
/// use faas_host::wire;
/// let mut h = http::HeaderMap::new();
/// h.insert("faas-start", http::HeaderValue::from_static("warm"));
/// h.insert("x-binary", http::HeaderValue::from_bytes(&[0xff]).unwrap());
/// assert_eq!(wire::header(&h, "Faas-Start"), Some("warm"));
/// assert_eq!(wire::header(&h, "x-binary"), None);
/// assert_eq!(wire::header(&h, "missing"), None);
/// ```
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The HTTP response parts of an error: status, headers (`content-type`, [`ERROR_KIND`]) and
/// the JSON wire body.
///
/// ```
/// use faas_api::Error;
/// use faas_host::wire;
/// let (status, headers, body) = wire::error_parts(&Error::function("ProbeError", "boom"));
/// assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR);
/// assert_eq!(wire::content_type(&headers).as_deref(), Some("application/json"));
/// assert_eq!(wire::header(&headers, wire::ERROR_KIND), Some("function"));
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json, serde_json::json!({"kind": "function", "errorType": "ProbeError", "errorMessage": "boom"}));
/// ```
pub fn error_parts(err: &Error) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(ERROR_KIND, HeaderValue::from_static(err.kind().as_str()));
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, h, err.to_json())
}

/// Reads an error back from a response: our wire form when present, else the kind named by the
/// [`ERROR_KIND`] header, else the status's kind; the body becomes the message.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_host::wire;
/// use http::{HeaderMap, HeaderValue, StatusCode};
/// // Our JSON wire form wins.
/// let body = br#"{"kind":"function","errorType":"ProbeError","errorMessage":"boom"}"#;
/// let e = wire::error_from_response(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), body);
/// assert_eq!((e.kind(), e.error_type(), e.message()), (ErrorKind::Function, "ProbeError", "boom"));
/// // A plain body with the kind header.
/// let mut h = HeaderMap::new();
/// h.insert(wire::ERROR_KIND, HeaderValue::from_static("throttled"));
/// let e = wire::error_from_response(StatusCode::INTERNAL_SERVER_ERROR, &h, b"slow down");
/// assert_eq!((e.kind(), e.message()), (ErrorKind::Throttled, "slow down"));
/// // Neither: the status decides.
/// let e = wire::error_from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), b"");
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// ```
pub fn error_from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    if let Some(e) = Error::from_json(body) {
        return e;
    }
    match header(headers, ERROR_KIND).and_then(ErrorKind::parse) {
        Some(kind) => Error::new(kind, String::from_utf8_lossy(body).to_string()),
        None => Error::from_http(status.as_u16(), body),
    }
}

/// A payload from a body and its headers (the content type is taken from `Content-Type`).
///
/// ```
/// use faas_host::wire;
/// let mut h = http::HeaderMap::new();
/// h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
/// let p = wire::payload(&h, bytes::Bytes::from_static(b"hi"));
/// assert_eq!(p.content_type(), Some("text/plain"));
/// assert_eq!(p.body().as_ref(), b"hi");
/// assert_eq!(wire::payload(&http::HeaderMap::new(), bytes::Bytes::new()).content_type(), None);
/// ```
pub fn payload(headers: &HeaderMap, body: bytes::Bytes) -> Payload {
    Payload::new(body, content_type(headers))
}
