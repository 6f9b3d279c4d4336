//! The Functions Framework's HTTP contract as a [`HttpProtocol`] of the kit's serve loop.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use faas_api::event::{self, Mode};
use faas_api::{Error, ErrorKind, Payload, TraceContext};
use faas_host::http::{Decoded, HttpProtocol, Input};
use faas_host::Facts;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::logs::CloudLoggingSink;
use super::{Settings, Signature};

/// The header Cloud Run gives each request of a function, its execution id.
const EXECUTION_ID: &str = "function-execution-id";
/// Google's own trace header, `TRACE_ID/SPAN_ID;o=1` (SPAN_ID decimal).
const CLOUD_TRACE: &str = "x-cloud-trace-context";
/// The header that says how a handler failed (functions-framework-go `funcframework.go`).
const GOOGLE_STATUS: &str = "x-google-status";

/// What decoding keeps for the answer.
pub struct Pending {
    execution_id: String,
    _permit: OwnedSemaphorePermit,
}

/// The Functions Framework contract of one function (see the [module docs](super)).
pub struct FrameworkProtocol {
    function: String,
    signature: Signature,
    timeout: Duration,
    concurrency: usize,
    permits: Arc<Semaphore>,
    sink: Arc<CloudLoggingSink>,
}

impl FrameworkProtocol {
    /// The protocol for `settings`, whose invocations log through `sink`.
    pub fn new(settings: &Settings, sink: Arc<CloudLoggingSink>) -> FrameworkProtocol {
        FrameworkProtocol {
            function: settings.function.clone(),
            signature: settings.signature,
            timeout: settings.timeout,
            concurrency: settings.concurrency,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            sink,
        }
    }

    /// The request's CloudEvent as the structured-mode payload a CloudEvent function takes.
    fn cloudevent(&self, head: &Parts, body: &[u8]) -> Result<Payload, Error> {
        let headers = &head.headers;
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if headers.contains_key("ce-specversion") {
            return event::encode_structured(&event::event_from_binary(headers, body)?);
        }
        match event::detect_mode(content_type)? {
            Mode::Structured => event::encode_structured(&event::decode_structured(body)?),
            Mode::Batch => Err(Error::bad_input("a CloudEvent function takes one event; this is a batch")),
            Mode::Binary => {
                // Neither binary nor structured: a legacy background event, or a raw Pub/Sub push,
                // which must be JSON (the reference reads it with Flask's `get_json`: 415 for any
                // other content type).
                let json = content_type
                    .map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
                    .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
                if !json {
                    return Err(Error::bad_input(format!(
                        "the request is no CloudEvent (no ce-specversion header) and, with content type {}, \
                         no legacy event either: those are application/json",
                        content_type.unwrap_or("none")
                    ))
                    .with_type("UnsupportedMediaType"));
                }
                let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                    Error::bad_input(format!(
                        "the request is no CloudEvent (no ce-specversion header, content type {}) and its body \
                         is not the JSON of a legacy event: {e}",
                        content_type.unwrap_or("none")
                    ))
                })?;
                let converted = crate::legacy::to_cloudevent(&value, head.uri.path())?;
                event::encode_structured(&event::event_from_json(converted)?)
            }
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The request's trace: `traceparent`, else Google's `X-Cloud-Trace-Context`.
fn trace_of(headers: &HeaderMap) -> Option<TraceContext> {
    if let Some(t) = header(headers, "traceparent").and_then(TraceContext::parse) {
        return Some(t);
    }
    let cloud = header(headers, CLOUD_TRACE)?;
    let (trace, rest) = cloud.split_once('/').unwrap_or((cloud, ""));
    let span: u64 = rest.split(';').next().and_then(|s| s.parse().ok()).filter(|s| *s != 0).unwrap_or(1);
    let sampled = if rest.contains("o=0") { "00" } else { "01" };
    TraceContext::parse(&format!("00-{}-{span:016x}-{sampled}", trace.to_ascii_lowercase()))
}

fn new_execution_id() -> String {
    let t = TraceContext::random();
    t.trace_id()[..12].to_string()
}

fn respond(status: StatusCode, content_type: Option<&str>, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    r
}

/// The answer for an error: its status (504 for a timeout; 500 and `X-Google-Status` for a
/// handler that failed) and the portable error body.
fn error_response(e: &Error) -> Response<Full<Bytes>> {
    let (status, google) = match e.kind() {
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, None),
        ErrorKind::Crash => (StatusCode::INTERNAL_SERVER_ERROR, Some("crash")),
        ErrorKind::Function => (StatusCode::INTERNAL_SERVER_ERROR, Some("error")),
        _ if e.error_type() == "UnsupportedMediaType" => (StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        _ => (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), None),
    };
    let mut r = respond(status, Some(faas_api::payload::JSON), Bytes::from(e.to_json()));
    if let Some(g) = google {
        r.headers_mut().insert(GOOGLE_STATUS, HeaderValue::from_static(g));
    }
    r
}

impl HttpProtocol for FrameworkProtocol {
    type Pending = Pending;

    fn decode(&self, head: &Parts, body: Bytes) -> Result<Decoded<Pending>, Error> {
        // The contract: these two are never the function's.
        if matches!(head.uri.path(), "/robots.txt" | "/favicon.ico") {
            return Ok(Decoded::Answer(respond(
                StatusCode::NOT_FOUND,
                Some("text/plain"),
                Bytes::from_static(b"Not Found"),
            )));
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let e = Error::throttled(format!(
                "this instance is serving its limit of {} request(s) at once; retry later",
                self.concurrency
            ));
            return Ok(Decoded::Answer(error_response(&e)));
        };
        let payload = match self.signature {
            Signature::Http => {
                let ct = header(&head.headers, "content-type").map(str::to_string);
                Payload::new(body, ct)
            }
            Signature::CloudEvent => self.cloudevent(head, &body)?,
        };
        let execution_id = header(&head.headers, EXECUTION_ID).map(str::to_string).unwrap_or_else(new_execution_id);
        let trace = trace_of(&head.headers);
        self.sink.begin(&execution_id, trace.as_ref().map(|t| t.trace_id()));
        let facts = Facts {
            function: Some(self.function.clone()),
            invocation_id: Some(execution_id.clone()),
            deadline: Some(SystemTime::now() + self.timeout),
            trace,
            extensions: Default::default(),
        };
        Ok(Decoded::Invoke {
            facts,
            input: Input::Payload(payload),
            pending: Pending { execution_id, _permit: permit },
        })
    }

    fn encode(&self, pending: Pending, result: Result<Payload, Error>) -> Response<Full<Bytes>> {
        self.sink.end(&pending.execution_id);
        let mut response = match result {
            Ok(reply) => {
                let ct = reply.content_type().map(str::to_string);
                match self.signature {
                    // No reply event: the Functions Framework's plain 200.
                    Signature::CloudEvent if reply.is_empty() => respond(StatusCode::OK, None, Bytes::new()),
                    _ => respond(StatusCode::OK, ct.as_deref(), reply.into_body()),
                }
            }
            Err(e) => error_response(&e),
        };
        if let Ok(v) = HeaderValue::from_str(&pending.execution_id) {
            response.headers_mut().insert(EXECUTION_ID, v);
        }
        response
    }

    fn refuse(&self, _head: Option<&Parts>, error: &Error) -> Response<Full<Bytes>> {
        error_response(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_trace_header_becomes_a_trace_context() {
        let mut h = HeaderMap::new();
        h.insert(CLOUD_TRACE, "105445AA7843BC8BF206B12000100000/1;o=1".parse().unwrap());
        let t = trace_of(&h).unwrap();
        assert_eq!(t.trace_id(), "105445aa7843bc8bf206b12000100000");
        h.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        assert_eq!(trace_of(&h).unwrap().trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn errors_have_the_framework_statuses() {
        let status = |e: Error| {
            let r = error_response(&e);
            (r.status().as_u16(), r.headers().get(GOOGLE_STATUS).map(|v| v.to_str().unwrap().to_string()))
        };
        assert_eq!(status(Error::timeout("late")), (504, None));
        assert_eq!(status(Error::crash("panic")), (500, Some("crash".into())));
        assert_eq!(status(Error::function("E", "m")), (500, Some("error".into())));
        assert_eq!(status(Error::bad_input("bad")), (400, None));
        assert_eq!(status(Error::throttled("busy")), (429, None));
    }
}
