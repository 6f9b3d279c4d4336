//! `POST /events`: CloudEvents 1.0 ingress in binary, structured and batch mode. Each event goes
//! to every deployed function whose event trigger matches it, as one asynchronous invocation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use faas_api::cloudevents::Event;
use faas_api::{Error, FunctionSpec, InvokeMode, InvokeRequest};
use faas_host::wire;
use http::StatusCode;
use serde::Serialize;

use crate::body::read_limited;
use crate::server::{Shared, error_response, error_response_with_status};

/// One accepted delivery.
#[derive(Debug, Serialize)]
struct Delivery {
    function: String,
    #[serde(rename = "activationId")]
    activation_id: String,
}

/// Accepts the request's events; 202 with one delivery per (event, matching function).
pub(crate) async fn ingest(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match read_limited(&parts.headers, body, shared.max_body).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let events = match faas_api::event::event_from_http(&parts.headers, &body) {
        Ok(events) => events,
        Err(e) if e.error_type() == "UnsupportedMediaType" => {
            return error_response_with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e);
        }
        Err(e) => return error_response(&e),
    };
    let traceparent = wire::header(&parts.headers, wire::TRACEPARENT).map(str::to_string);
    match deliver(&shared, &events, traceparent).await {
        Ok(deliveries) => (StatusCode::ACCEPTED, Json(serde_json::json!({ "deliveries": deliveries }))).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn deliver(shared: &Shared, events: &[Event], traceparent: Option<String>) -> Result<Vec<Delivery>, Error> {
    let specs: Vec<FunctionSpec> = shared.runner.list().await?.into_iter().map(|f| f.spec).collect();
    let mut deliveries = vec![];
    for event in events {
        let targets = faas_api::app::functions_matching(&specs, event);
        if targets.is_empty() {
            tracing::debug!(id = event_id(event), "no function subscribes to this event");
            continue;
        }
        let payload = faas_api::event::encode_structured(event)?;
        // The request's trace context wins; else the event's distributed-tracing extension.
        let trace = traceparent.clone().or_else(|| event.extension("traceparent").map(|v| v.to_string()));
        for function in targets {
            let request = InvokeRequest {
                function: function.clone(),
                payload: payload.clone(),
                mode: InvokeMode::Async,
                traceparent: trace.clone(),
                with_logs: false,
                cause: None,
            };
            let invoked = shared.runner.invoke(request).await.map_err(|e| {
                tracing::warn!(%function, "event delivery refused: {e}");
                e
            })?;
            deliveries.push(Delivery { function, activation_id: invoked.activation_id });
        }
    }
    Ok(deliveries)
}

fn event_id(event: &Event) -> &str {
    use faas_api::cloudevents::AttributesReader as _;
    event.id()
}
