//! The header names of the front's own HTTP surface (see the [crate docs](crate)): how a caller
//! asks for an asynchronous or dry-run invocation and for the log tail, and the activation id
//! the front answers with. [`client::FrontClient`](crate::client::FrontClient) and the server use
//! them; the portable error on HTTP and the trace header, which a function's child process speaks
//! too, are in [`faas_host::wire`].
//!
//! ```
//! use faas_front::wire;
//! assert_eq!(wire::INVOKE_MODE, "faas-invoke-mode");
//! assert_eq!(faas_host::wire::TRACEPARENT, "traceparent");
//! ```

/// Activation id returned by the front on every response of an invocation (the invocation's id).
///
/// ```
/// use faas_front::wire;
/// use faas_host::wire::header;
/// let mut h = http::HeaderMap::new();
/// h.insert(wire::ACTIVATION_ID, http::HeaderValue::from_static("0f3c2a"));
/// assert_eq!(header(&h, "faas-activation-id"), Some("0f3c2a"));
/// ```
pub const ACTIVATION_ID: &str = "faas-activation-id";
/// Request header: `async` to invoke asynchronously, `dry-run` to only validate.
///
/// ```
/// use faas_front::wire;
/// use faas_host::wire::header;
/// let mut h = http::HeaderMap::new();
/// h.insert(wire::INVOKE_MODE, http::HeaderValue::from_static("async"));
/// assert_eq!(header(&h, "faas-invoke-mode"), Some("async"));
/// ```
pub const INVOKE_MODE: &str = "faas-invoke-mode";
/// Request header: `tail` to get the invocation's log lines back in [`LOG_RESULT`].
///
/// ```
/// use faas_front::wire;
/// use faas_host::wire::header;
/// let mut h = http::HeaderMap::new();
/// h.insert(wire::LOG_TYPE, http::HeaderValue::from_static("tail"));
/// assert_eq!(header(&h, "faas-log-type"), Some("tail"));
/// ```
pub const LOG_TYPE: &str = "faas-log-type";
/// Response header: base64 of the invocation's log lines joined by `\n`.
///
/// ```
/// use base64::Engine as _;
/// use faas_front::wire;
/// use faas_host::wire::header;
/// let lines = "INFO one\nINFO two";
/// let mut h = http::HeaderMap::new();
/// let encoded = base64::engine::general_purpose::STANDARD.encode(lines);
/// h.insert(wire::LOG_RESULT, http::HeaderValue::from_str(&encoded).unwrap());
/// let raw = header(&h, "faas-log-result").unwrap();
/// let decoded = base64::engine::general_purpose::STANDARD.decode(raw).unwrap();
/// assert_eq!(String::from_utf8(decoded).unwrap().lines().collect::<Vec<_>>(), ["INFO one", "INFO two"]);
/// ```
pub const LOG_RESULT: &str = "faas-log-result";
