//! W3C trace context (<https://www.w3.org/TR/trace-context/>) as platforms deliver it: a
//! `traceparent` request header, or carried by the event itself (a CloudEvent's `traceparent`
//! attribute from the distributed-tracing extension, or the headers of an HTTP-shaped event).
//!
//! ```
//! use faas_host::trace;
//! let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
//! let event = format!(r#"{{"specversion":"1.0","id":"1","source":"/s","type":"t","traceparent":"{tp}"}}"#);
//! assert_eq!(trace::from_event(event.as_bytes()).unwrap().traceparent(), tp);
//! ```

use faas_api::TraceContext;

/// The trace of a `traceparent` header, when present and valid.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// assert!(faas_host::trace::from_headers(&headers).is_none());
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// headers.insert("traceparent", http::HeaderValue::from_static(tp));
/// assert_eq!(faas_host::trace::from_headers(&headers).unwrap().traceparent(), tp);
/// ```
pub fn from_headers(headers: &http::HeaderMap) -> Option<TraceContext> {
    headers.get(crate::wire::TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(TraceContext::parse)
}

/// A W3C `traceparent` carried by the event itself: a structured CloudEvent's `traceparent`
/// attribute, or a `traceparent` header of an HTTP-shaped event (a `headers` object, any case).
/// Bodies that are not JSON objects carry none.
///
/// ```
/// use faas_host::trace::from_event;
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let api_gateway = format!(r#"{{"headers":{{"TraceParent":"{tp}"}},"body":"hi"}}"#);
/// assert_eq!(from_event(api_gateway.as_bytes()).unwrap().traceparent(), tp);
/// assert!(from_event(b"[1,2]").is_none());
/// assert!(from_event(b"not json").is_none());
/// ```
pub fn from_event(body: &[u8]) -> Option<TraceContext> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(t) = v.get("traceparent").and_then(|t| t.as_str()).and_then(TraceContext::parse) {
        return Some(t);
    }
    let headers = v.get("headers")?.as_object()?;
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("traceparent"))
        .and_then(|(_, t)| t.as_str())
        .and_then(TraceContext::parse)
}
