//! The Lambda Runtime API of one execution environment, as the AWS Lambda custom runtime
//! documentation specifies it: `GET /2018-06-01/runtime/invocation/next` hands out the next
//! invocation, `POST .../invocation/{id}/response` and `.../error` answer it, and
//! `POST .../init/error` reports a failed initialisation. Served on 127.0.0.1:0 per environment
//! (optionally under a path prefix, as `cargo lambda watch` serves it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::environment::InvocationData;

/// Largest response/error body a runtime may post: 6 MiB + 100 bytes (RIE `MaxPayloadSize`).
pub(crate) const MAX_RUNTIME_PAYLOAD: usize = 6 * 1024 * 1024 + 100;

/// Checks a Runtime API base path: `/` followed by path characters, no query or fragment. Returns it
/// without a trailing `/`, or `None` for `/` alone (the same as no base).
pub(crate) fn check_runtime_api_base(base: &str) -> Result<Option<String>, faas_api::Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "/-._~".contains(c);
    if !base.starts_with('/') || base.len() > 256 || !base.chars().all(ok_char) {
        return Err(faas_api::Error::bad_input(format!(
            "runtime_api_base must be a path such as `/.rt` (letters, digits, `/-._~`, at most 256 bytes), got `{base}`"
        )));
    }
    let trimmed = base.trim_end_matches('/');
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// How the runtime answered the current invocation.
pub(crate) enum Reply {
    Response { body: Bytes, content_type: String },
    Error { body: Bytes, content_type: String, error_type: String },
    TooLarge,
}

/// Why an environment cannot go on.
#[derive(Debug, Clone)]
pub(crate) enum Fatal {
    InitError { body: Bytes, error_type: String },
    Exited(String),
}

/// An invocation waiting for `/next`: the runtime signals `picked` when it takes it and answers on `reply`.
pub(crate) struct Queued {
    pub data: InvocationData,
    pub picked: oneshot::Sender<()>,
    pub reply: oneshot::Sender<Reply>,
}

struct Current {
    request_id: String,
    reply: Option<oneshot::Sender<Reply>>,
}

/// What the Runtime API handlers share with the environment.
pub(crate) struct RuntimeState {
    queue: tokio::sync::Mutex<mpsc::Receiver<Queued>>,
    current: Mutex<Option<Current>>,
    /// The first fatal state (init error, process exit).
    pub fatal: watch::Sender<Option<Fatal>>,
    invoked_any: AtomicBool,
    /// When the runtime first called `/next` (the end of its init phase).
    pub first_next: Mutex<Option<Instant>>,
}

/// A running Runtime API server and the channel that feeds it invocations.
pub(crate) struct RuntimeApi {
    /// Invocations for the runtime's next `/next`.
    pub queue: mpsc::Sender<Queued>,
    pub state: Arc<RuntimeState>,
    /// What `AWS_LAMBDA_RUNTIME_API` is set to: `127.0.0.1:<port>`, or a URL with the base path.
    pub address: String,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Binds 127.0.0.1:0 and serves the Runtime API there (under `base` when given).
    pub async fn start(base: Option<&str>) -> std::io::Result<RuntimeApi> {
        let (queue, queue_rx) = mpsc::channel(1);
        let (fatal, _) = watch::channel(None);
        let state = Arc::new(RuntimeState {
            queue: tokio::sync::Mutex::new(queue_rx),
            current: Mutex::new(None),
            fatal,
            invoked_any: AtomicBool::new(false),
            first_next: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (app, address) = match base {
            Some(base) => (Router::new().nest(base, runtime_router(state.clone())), format!("http://{addr}{base}")),
            None => (runtime_router(state.clone()), addr.to_string()),
        };
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "runtime API server stopped");
            }
        });
        Ok(RuntimeApi { queue, state, address, server })
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.server.abort();
    }

    /// Records that the runtime's process ended (unless a fatal state was recorded before).
    pub fn record_exit(state: &RuntimeState, description: String) {
        state.set_fatal(Fatal::Exited(description));
    }
}

impl RuntimeState {
    /// Records the first fatal state; later ones are ignored.
    fn set_fatal(&self, fatal: Fatal) {
        self.fatal.send_if_modified(|f| {
            if f.is_none() {
                *f = Some(fatal);
                true
            } else {
                false
            }
        });
    }
}

/// `{"errorType","errorMessage"}` as bytes.
pub(crate) fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({ "errorType": error_type, "errorMessage": message })).unwrap_or_default())
}

/// The `errorType` member of a JSON error body.
pub(crate) fn body_error_type(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("errorType")?.as_str().map(str::to_string)
}

/// RIE's `GetValidRuntimeOrFunctionErrorType`: keep a type matching `(Runtime|Function)\.[A-Z][a-zA-Z]+`
/// (unanchored), else `Function.Unknown` for a `Function.` prefix, else `Runtime.Unknown`.
pub(crate) fn normalise_error_type(raw: &str) -> String {
    for prefix in ["Runtime.", "Function."] {
        let mut rest = raw;
        while let Some(pos) = rest.find(prefix) {
            let after = &rest[pos + prefix.len()..];
            let mut chars = after.chars();
            let first_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
            let next_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
            if first_upper && next_alpha {
                return raw.to_string();
            }
            rest = &rest[pos + prefix.len()..];
        }
    }
    if raw.starts_with("Function.") {
        "Function.Unknown".into()
    } else {
        "Runtime.Unknown".into()
    }
}

fn runtime_router(state: Arc<RuntimeState>) -> Router {
    Router::new()
        .route("/2018-06-01/ping", get(|| async { "pong" }))
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(|| async { runtime_error(StatusCode::NOT_FOUND, "NotFound", "No such Runtime API route") })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&json!({ "errorMessage": message, "errorType": error_type })).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [("content-type", "application/json")], r#"{"status":"OK"}"#).into_response()
}

fn invalid_state(from: &str, to: &str) -> Response {
    runtime_error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        &format!("State transition from {from} to {to} failed for runtime. Error: State transition is not allowed"),
    )
}

async fn next(State(state): State<Arc<RuntimeState>>) -> Response {
    {
        let current = state.current.lock().unwrap();
        if current.as_ref().is_some_and(|c| c.reply.is_some()) {
            return invalid_state("InvocationNext", "InvocationNext");
        }
    }
    state.first_next.lock().unwrap().get_or_insert_with(Instant::now);
    let mut queue = state.queue.lock().await;
    let Some(queued) = queue.recv().await else {
        return runtime_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "Internal Server Error");
    };
    drop(queue);
    let data = queued.data;
    let deadline_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + data.timeout;
    state.invoked_any.store(true, Ordering::SeqCst);
    *state.current.lock().unwrap() = Some(Current { request_id: data.request_id.clone(), reply: Some(queued.reply) });
    let _ = queued.picked.send(());
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            if !value.is_empty() {
                headers.insert(name, v);
            }
        }
    };
    set("content-type", "application/json");
    set("Lambda-Runtime-Aws-Request-Id", &data.request_id);
    set("Lambda-Runtime-Deadline-Ms", &deadline_ms.as_millis().to_string());
    set("Lambda-Runtime-Invoked-Function-Arn", &data.invoked_arn);
    set("Lambda-Runtime-Trace-Id", &data.trace_id);
    if let Some(cc) = &data.client_context {
        set("Lambda-Runtime-Client-Context", cc);
    }
    if let Some(ci) = &data.cognito_identity {
        set("Lambda-Runtime-Cognito-Identity", ci);
    }
    if let Some(t) = &data.tenant_id {
        set("Lambda-Runtime-Aws-Tenant-Id", t);
    }
    (StatusCode::OK, headers, data.payload).into_response()
}

/// Why a reply slot could not be claimed.
enum ClaimError {
    /// Not the current invocation's id → 400 InvalidRequestID.
    UnknownId,
    /// The current invocation was already answered → 403 InvalidStateTransition.
    Answered(&'static str),
}

impl ClaimError {
    fn into_response(self) -> Response {
        match self {
            ClaimError::UnknownId => runtime_error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID"),
            ClaimError::Answered(to) => invalid_state(&format!("Invocation{to}"), &format!("Invocation{to}")),
        }
    }
}

/// Claims the reply slot of the current invocation `id`.
/// The `{id}` of a path; one that does not decode to UTF-8 is empty, which matches no request and
/// is answered as any unknown request id is (not with axum's plain-text 400).
fn request_id(id: Result<AxPath<String>, axum::extract::rejection::PathRejection>) -> String {
    id.map(|AxPath(id)| id).unwrap_or_default()
}

fn claim(state: &RuntimeState, id: &str, to: &'static str) -> Result<oneshot::Sender<Reply>, ClaimError> {
    let mut current = state.current.lock().unwrap();
    match current.as_mut() {
        Some(c) if c.request_id == id => c.reply.take().ok_or(ClaimError::Answered(to)),
        _ => Err(ClaimError::UnknownId),
    }
}

enum BodyRead {
    Ok(Bytes),
    TooLarge,
    Truncated,
}

async fn read_limited(body: Body, limit: usize) -> BodyRead {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => BodyRead::Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => BodyRead::TooLarge,
        Err(_) => BodyRead::Truncated,
    }
}

fn too_large_response() -> Response {
    runtime_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_RUNTIME_PAYLOAD} bytes)."),
    )
}

fn truncated_response() -> Response {
    runtime_error(StatusCode::BAD_REQUEST, "TruncatedHTTPRequest", "HTTP request detected as truncated")
}

fn content_type(headers: &HeaderMap, default: &str) -> String {
    headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or(default).to_string()
}

async fn response(
    State(state): State<Arc<RuntimeState>>,
    id: Result<AxPath<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = request_id(id);
    if let Some(mode) = headers.get("lambda-runtime-function-response-mode") {
        if mode.as_bytes() != b"streaming" {
            if let Ok(reply) = claim(&state, &id, "Response") {
                let body = error_body("Runtime.InvalidResponseModeHeader", "Invalid response mode header");
                let _ = reply.send(Reply::Error {
                    body,
                    content_type: "application/json".into(),
                    error_type: "Runtime.InvalidResponseModeHeader".into(),
                });
            }
            return runtime_error(
                StatusCode::BAD_REQUEST,
                "InvalidFunctionResponseMode",
                "Lambda-Runtime-Function-Response-Mode must be 'streaming'",
            );
        }
    }
    let reply = match claim(&state, &id, "Response") {
        Ok(reply) => reply,
        Err(e) => return e.into_response(),
    };
    let too_big_declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_RUNTIME_PAYLOAD);
    if too_big_declared {
        let _ = reply.send(Reply::TooLarge);
        return too_large_response();
    }
    match read_limited(body, MAX_RUNTIME_PAYLOAD).await {
        BodyRead::Ok(bytes) => {
            let _ =
                reply.send(Reply::Response { body: bytes, content_type: content_type(&headers, "application/json") });
            accepted()
        }
        BodyRead::TooLarge => {
            let _ = reply.send(Reply::TooLarge);
            too_large_response()
        }
        BodyRead::Truncated => {
            let body = error_body("Runtime.TruncatedResponse", "The runtime's response was truncated");
            let _ = reply.send(Reply::Error {
                body,
                content_type: "application/json".into(),
                error_type: "Runtime.TruncatedResponse".into(),
            });
            truncated_response()
        }
    }
}

/// Strips `errorCause` from an `application/vnd.aws.lambda.error.cause+json` body (it goes to X-Ray, not the caller).
fn strip_error_cause(headers: &HeaderMap, body: Bytes) -> Bytes {
    let is_cause = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/vnd.aws.lambda.error.cause+json"));
    if !is_cause {
        return body;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut value) => {
            if let Some(obj) = value.as_object_mut() {
                obj.remove("errorCause");
            }
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
        }
        Err(_) => body,
    }
}

fn header_error_type(headers: &HeaderMap) -> String {
    let raw = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    normalise_error_type(raw)
}

async fn invocation_error(
    State(state): State<Arc<RuntimeState>>,
    id: Result<AxPath<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = request_id(id);
    let reply = match claim(&state, &id, "Error") {
        Ok(reply) => reply,
        Err(e) => return e.into_response(),
    };
    let error_type = header_error_type(&headers);
    match read_limited(body, MAX_RUNTIME_PAYLOAD).await {
        BodyRead::Ok(bytes) => {
            let bytes = strip_error_cause(&headers, bytes);
            let bytes = if bytes.is_empty() { error_body(&error_type, "") } else { bytes };
            let ct = if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
                "application/json".to_string()
            } else {
                "application/octet-stream".to_string()
            };
            let _ = reply.send(Reply::Error { body: bytes, content_type: ct, error_type });
            accepted()
        }
        BodyRead::TooLarge => {
            let _ = reply.send(Reply::TooLarge);
            too_large_response()
        }
        BodyRead::Truncated => {
            let _ = reply.send(Reply::Error {
                body: error_body(&error_type, ""),
                content_type: "application/json".into(),
                error_type,
            });
            truncated_response()
        }
    }
}

async fn init_error(State(state): State<Arc<RuntimeState>>, headers: HeaderMap, body: Body) -> Response {
    if state.invoked_any.load(Ordering::SeqCst) {
        return invalid_state("Ready", "InitError");
    }
    let error_type = header_error_type(&headers);
    let bytes = match read_limited(body, MAX_RUNTIME_PAYLOAD).await {
        BodyRead::Ok(bytes) => strip_error_cause(&headers, bytes),
        BodyRead::TooLarge => return too_large_response(),
        BodyRead::Truncated => return truncated_response(),
    };
    state.set_fatal(Fatal::InitError { body: bytes, error_type });
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_normalisation_follows_rie() {
        assert_eq!(normalise_error_type("Runtime.ExitError"), "Runtime.ExitError");
        assert_eq!(normalise_error_type("Function.MyError"), "Function.MyError");
        assert_eq!(normalise_error_type("xRuntime.Custom"), "xRuntime.Custom");
        assert_eq!(normalise_error_type("Function.x"), "Function.Unknown");
        assert_eq!(normalise_error_type("unhandled"), "Runtime.Unknown");
        assert_eq!(normalise_error_type(""), "Runtime.Unknown");
    }
}
