//! Carrying any payload through platforms whose payloads must be JSON documents (Lambda's Invoke
//! API; OpenWhisk's `value`, for one).
//!
//! A faas runner for such a platform sends a payload as it is when it is a JSON document (the
//! common case, and what any other caller sends). Anything else (an empty body, bytes, text, malformed JSON
//! that the function should see and refuse itself) travels inside an envelope:
//!
//! ```json
//! {"faas:payload":{"contentType":"application/octet-stream","bodyBase64":"AAEC"}}
//! ```
//!
//! The faas host unwraps it, and wraps its reply the same way for a caller that sent one, so
//! content types and empty bodies survive the round trip. Plain callers never see an envelope.

use base64::Engine as _;
use faas_api::Payload;

/// The envelope's only key.
pub const KEY: &str = "faas:payload";
const PREFIX: &str = "{\"faas:payload\":";

#[derive(serde::Serialize, serde::Deserialize)]
struct Inner {
    #[serde(rename = "contentType", default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(rename = "bodyBase64")]
    body_base64: String,
    /// The caller's W3C `traceparent`, on platforms with no other place for it (OpenWhisk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "faas:payload")]
    payload: Inner,
}

/// Whether `payload` has to travel in an envelope: it is empty, has a non-JSON content type, or
/// is not a well-formed JSON document.
///
/// ```
/// use faas_api::Payload;
/// use faas_host::envelope::needs_envelope;
/// assert!(!needs_envelope(&Payload::json(&serde_json::json!({"name": "Ada"})).unwrap()));
/// assert!(needs_envelope(&Payload::empty()));
/// assert!(needs_envelope(&Payload::bytes(vec![0, 1, 2])));
/// assert!(needs_envelope(&Payload::new(&b"{oops"[..], None)));
/// ```
pub fn needs_envelope(payload: &Payload) -> bool {
    payload.is_empty()
        || !payload.is_json_or_untyped()
        || serde_json::from_slice::<serde::de::IgnoredAny>(payload.body()).is_err()
}

/// The envelope around `payload`.
///
/// ```
/// let wrapped = faas_host::envelope::wrap(&faas_api::Payload::bytes(vec![0u8, 1, 2]));
/// assert_eq!(wrapped, br#"{"faas:payload":{"contentType":"application/octet-stream","bodyBase64":"AAEC"}}"#);
/// ```
pub fn wrap(payload: &Payload) -> Vec<u8> {
    wrap_traced(payload, None)
}

/// The envelope around `payload`, carrying the caller's `traceparent` too: for platforms whose
/// invocations have no place for it but the payload (OpenWhisk's parameters).
///
/// ```
/// use faas_api::Payload;
/// use faas_host::envelope::{unwrap_traced, wrap_traced};
/// let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// let wrapped = wrap_traced(&Payload::bytes("hi"), Some(tp));
/// let (payload, trace) = unwrap_traced(&wrapped).unwrap();
/// assert_eq!((payload.body().as_ref(), trace.as_deref()), (&b"hi"[..], Some(tp)));
/// ```
pub fn wrap_traced(payload: &Payload, traceparent: Option<&str>) -> Vec<u8> {
    let env = Envelope {
        payload: Inner {
            content_type: payload.content_type().map(str::to_string),
            body_base64: base64::engine::general_purpose::STANDARD.encode(payload.body()),
            traceparent: traceparent.map(str::to_string),
        },
    };
    serde_json::to_vec(&env).expect("an envelope serialises")
}

/// The payload inside `body` when `body` is an envelope written by [`wrap`].
///
/// ```
/// use faas_api::Payload;
/// use faas_host::envelope::{unwrap, wrap};
/// let p = Payload::new(vec![0u8, 255], Some("application/octet-stream".into()));
/// assert_eq!(unwrap(&wrap(&p)), Some(p));
/// assert_eq!(unwrap(br#"{"name":"Ada"}"#), None);
/// ```
pub fn unwrap(body: &[u8]) -> Option<Payload> {
    unwrap_traced(body).map(|(payload, _)| payload)
}

/// The payload inside `body` and the `traceparent` it carries, when `body` is an envelope
/// written by [`wrap`] or [`wrap_traced`].
pub fn unwrap_traced(body: &[u8]) -> Option<(Payload, Option<String>)> {
    if !body.starts_with(PREFIX.as_bytes()) {
        return None;
    }
    let env: Envelope = serde_json::from_slice(body).ok()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(env.payload.body_base64).ok()?;
    Some((Payload::new(bytes, env.payload.content_type), env.payload.traceparent))
}
