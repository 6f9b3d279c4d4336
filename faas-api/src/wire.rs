//! Header names and helpers shared by the local wire protocols: the child-process protocol (pool
//! ↔ function process) and the HTTP front of `faas dev` (callers ↔ local backend).

use crate::{Error, ErrorKind, Payload};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Invocation id, set on requests to children and on every front response.
pub const INVOCATION_ID: &str = "faas-invocation-id";
/// Activation id returned by the front (same value as the invocation id).
pub const ACTIVATION_ID: &str = "faas-activation-id";
/// Absolute deadline, Unix epoch milliseconds.
pub const DEADLINE_MS: &str = "faas-deadline-ms";
/// The error kind of an error response (`function`, `timeout`, ...).
pub const ERROR_KIND: &str = "faas-error";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Request header: `async` to invoke asynchronously, `dry-run` to only validate.
pub const INVOKE_MODE: &str = "faas-invoke-mode";
/// Request header: `tail` to get the invocation's log lines back in [`LOG_RESULT`].
pub const LOG_TYPE: &str = "faas-log-type";
/// Response header: base64 of the invocation's log lines joined by `\n`.
pub const LOG_RESULT: &str = "faas-log-result";
/// Response header: `cold` or `warm`.
pub const START: &str = "faas-start";

/// Env var holding the Unix socket path a child process serves the child protocol on.
pub const ENV_SOCKET: &str = "FAAS_LOCAL_SOCKET";
/// Env var naming the function a child process serves.
pub const ENV_FUNCTION: &str = "FAAS_FUNCTION";
/// Env var holding the base URL of the front, for `Context::invoke` / `Context::emit` in children.
pub const ENV_SERVICES: &str = "FAAS_LOCAL_SERVICES";
/// Env var holding the URL `Context::emit` posts events to (a CloudEvents gateway's ingress) instead of
/// the local front's `/events`.
pub const ENV_EVENTS: &str = "FAAS_EVENTS_URL";
/// Env var that makes `faas::serve` print the app manifest as JSON and exit.
pub const ENV_DESCRIBE: &str = "FAAS_DESCRIBE";

/// The line a child writes to stdout and stderr after each invocation, followed by the
/// invocation id, so the pool can attribute the lines before it to that invocation (the same
/// idea as OpenWhisk's activation sentinel, PROTOCOLS.md §4.1).
pub const SENTINEL: &str = "__FAAS_END_OF_INVOCATION__";

/// The content type of a payload as an optional header value.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// A header as a string, if present and valid.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The HTTP response parts of an error: status, headers (`content-type`, [`ERROR_KIND`]) and
/// the JSON wire body.
pub fn error_parts(err: &Error) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(ERROR_KIND, HeaderValue::from_static(err.kind().as_str()));
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, h, err.to_json())
}

/// Reads an error back from a response: our wire form when present, else the status's kind.
pub fn error_from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    if let Some(e) = Error::from_json(body) {
        return e;
    }
    match header(headers, ERROR_KIND).and_then(ErrorKind::parse) {
        Some(kind) => Error::new(kind, String::from_utf8_lossy(body).to_string()),
        None => Error::from_http(status.as_u16(), body),
    }
}

/// A payload from a body and its headers.
pub fn payload(headers: &HeaderMap, body: bytes::Bytes) -> Payload {
    Payload::new(body, content_type(headers))
}
