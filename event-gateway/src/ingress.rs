//! CloudEvents ingress: `POST /` in binary, structured or batch mode.
//!
//! Order of checks, each answered with a JSON body `{"error": "<message>"}` that names the problem:
//! 1. ingress token, when configured (`Authorization: Bearer`): 401 without, 403 wrong;
//! 2. `Content-Length` over `max_event_bytes` → 413 before anything is read; an unsupported event format
//!    (`application/cloudevents+avro`, ...) → 415;
//! 3. the body is read up to `max_event_bytes` (a chunked body that goes over → 413, reading stops);
//! 4. every event is validated (missing or bad attribute → 400 naming it; a batch mixing spec versions → 400).
//!
//! A request (one event or one batch) is all or nothing: if any event is bad, nothing is stored. Valid events
//! are stored with one delivery per matching subscription, and only after the store's append returned does
//! the gateway answer `202 {"accepted": n, "duplicates": m}` (`duplicates`: events whose `source` + `id` were
//! already received within the de-duplication window; they are not delivered again).
//!
//! The request's W3C `traceparent` header becomes the event's `traceparent` extension (CloudEvents distributed
//! tracing) unless the event already has one, so every delivery carries it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use faas_gateway_store::{Appended, EventStore, NewEvent, StoreError};
use http_body_util::{BodyExt, Limited};

use crate::conductor::Conductor;
use crate::metrics::Metrics;
use crate::registry::RegistryHandle;

/// What the ingress handler needs.
pub struct Ingress {
    /// Where events are appended.
    pub store: Arc<dyn EventStore>,
    /// Subscriptions, to find each event's targets.
    pub registry: RegistryHandle,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Largest request body accepted (one event or one batch).
    pub max_event_bytes: usize,
    /// Bearer token required on `POST /`, if any.
    pub token: Option<String>,
    /// The conductor whose runs waiting for an event (`await_event`) ingress answers.
    pub conductor: Option<Arc<Conductor>>,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress")
            .field("max_event_bytes", &self.max_event_bytes)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A refused ingress request: status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong.
    pub message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Rejection {
        Rejection { status, message: message.into() }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.status, axum::Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `Authorization: Bearer <token>` against `expected`: 401 when missing, 403 when wrong.
pub(crate) fn check_bearer(headers: &HeaderMap, expected: &str) -> Result<(), Rejection> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(Rejection::new(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <token>` header"));
    };
    let given = value.as_bytes().strip_prefix(b"Bearer ").unwrap_or(b"");
    if constant_time_eq(given, expected.as_bytes()) {
        Ok(())
    } else {
        Err(Rejection::new(StatusCode::FORBIDDEN, "wrong ingress token"))
    }
}

fn bad_request(err: faas_api::Error) -> Rejection {
    Rejection::new(StatusCode::BAD_REQUEST, err.message())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Rejection> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes (max_event_bytes)"),
        )),
        Err(e) => Err(Rejection::new(StatusCode::BAD_REQUEST, format!("reading the request body failed: {e}"))),
    }
}

fn with_traceparent(event: Event, traceparent: Option<&str>) -> Event {
    match traceparent {
        Some(tp) if event.extension("traceparent").is_none() => {
            let mut event = event;
            event.set_extension("traceparent", tp.to_string());
            event
        }
        _ => event,
    }
}

impl Ingress {
    /// Handles one `POST /`.
    pub async fn handle(self: Arc<Self>, headers: HeaderMap, body: Body) -> Result<Response, Rejection> {
        if let Some(token) = &self.token {
            check_bearer(&headers, token)?;
        }
        let declared =
            headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared {
            if len > self.max_event_bytes as u64 {
                return Err(Rejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "request body of {len} bytes is larger than the limit of {} bytes (max_event_bytes)",
                        self.max_event_bytes
                    ),
                ));
            }
        }
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        // An unsupported format is refused before the body is read.
        faas_api::event::detect_mode(content_type)
            .map_err(|e| Rejection::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.message()))?;
        let body = read_body(body, self.max_event_bytes).await?;
        let events = faas_api::event::event_from_http(&headers, &body).map_err(bad_request)?;
        let traceparent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| faas_api::TraceContext::parse(v).is_some());
        let mut batch = Vec::with_capacity(events.len());
        let mut received = Vec::with_capacity(events.len());
        for event in events {
            let event = with_traceparent(event, traceparent);
            let targets = self.registry.matching(&event);
            let body = serde_json::to_vec(&event)
                .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, format!("cannot encode the event: {e}")))?;
            tracing::debug!(
                id = event.id(),
                source = %event.source(),
                r#type = event.ty(),
                subscriptions = targets.len(),
                "event received"
            );
            received.push(batch.len());
            batch.push(NewEvent {
                source: event.source().to_string(),
                id: event.id().to_string(),
                body: body.into(),
                targets,
            });
            // Runs waiting for this event: their wake-ups go into the same append.
            if let Some(conductor) = &self.conductor {
                batch.extend(conductor.answers(&event));
            }
        }
        let results = self.store.append(batch).await.map_err(|e| match e {
            StoreError::TooLarge { size, limit } => Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("event of {size} bytes (stored form) is larger than the limit of {limit} bytes"),
            ),
            other => {
                tracing::error!(error = %other, "storing events failed");
                Rejection::new(StatusCode::SERVICE_UNAVAILABLE, format!("the event store is unavailable: {other}"))
            }
        })?;
        let duplicates = received.iter().filter(|&&i| matches!(results.get(i), Some(Appended::Duplicate))).count();
        let accepted = received.len() - duplicates;
        self.metrics.received(accepted as u64);
        self.metrics.duplicates(duplicates as u64);
        Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "accepted": accepted, "duplicates": duplicates })))
            .into_response())
    }
}

/// The axum handler for `POST /`.
pub async fn post_event(State(ingress): State<Arc<Ingress>>, headers: HeaderMap, body: Body) -> Response {
    match ingress.handle(headers, body).await {
        Ok(r) => r,
        Err(rejection) => rejection.into_response(),
    }
}
