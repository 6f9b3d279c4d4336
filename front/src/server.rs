//! The router and its handlers: invocation, declared routes, the index, and the management API.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use faas_api::{ActivationQuery, Error, InvokeMode, InvokeRequest, NoProgress, Package, Runner};
use faas_host::wire;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::FrontOptions;
use crate::body::read_limited;
use crate::routes::RouteTable;

/// The activation id header, parsed once (every reply carries it).
static ACTIVATION_ID: HeaderName = HeaderName::from_static(crate::wire::ACTIVATION_ID);
/// At most this many bytes of log lines go into `faas-log-result` (as Lambda's 4 KB tail).
const LOG_TAIL: usize = 4 * 1024;
/// The most activations one query may ask for.
const MAX_ACTIVATIONS: usize = 1000;
/// The longest activation id accepted in a path.
const MAX_ACTIVATION_ID: usize = 128;

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) runner: Arc<dyn Runner>,
    pub(crate) token: String,
    pub(crate) max_body: usize,
}

type AppState = State<Arc<Shared>>;

/// The front's router for `runner`, with `token` guarding the management routes. [`crate::bind`]
/// serves it; benches and tests can serve it themselves.
///
/// ```
/// use std::sync::Arc;
/// use faas_front::{router, FrontOptions};
/// let runner = faas_runner_local::LocalRunner::in_process(faas_api::App::new(), Default::default()).unwrap();
/// let app: axum::Router = router(runner, &FrontOptions::default(), "s3cret".to_string());
/// # let _ = app;
/// ```
pub fn router(runner: Arc<dyn Runner>, options: &FrontOptions, token: String) -> Router {
    routes(Arc::new(Shared { runner, token, max_body: options.max_body }))
}

fn routes(shared: Arc<Shared>) -> Router {
    let management = Router::new()
        .route("/_faas/functions", get(list_functions))
        .route("/_faas/functions/{name}", delete(remove_function))
        .route("/_faas/activations", get(list_activations))
        .route("/_faas/activations/{id}", get(get_activation))
        .route("/_faas/deploy", post(deploy))
        .route_layer(middleware::from_fn_with_state(shared.clone(), crate::auth::require_token));
    Router::new()
        .route("/", get(index))
        .route("/_faas/health", get(health))
        // Read-only and not secret: lets `faas invoke` connect without the management token.
        .route("/_faas/capabilities", get(capabilities))
        .route("/functions/{name}", post(invoke_function))
        .route("/events", post(crate::events::ingest))
        .merge(management)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(declared_route)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(shared)
}

/// The front as one service, what [`crate::bind`] serves: `POST /functions/{name}`, the request
/// every invocation makes, is answered directly; every other request goes through [`router`]. Both
/// give the same answers; the direct path only skips the router's per-request work (route lookup,
/// extractors, boxed layers), which is most of the front's own cost for a small function.
///
/// ```
/// use faas_front::{service, FrontOptions};
/// use tower::ServiceExt as _;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// async fn echo(_cx: faas_api::Context, p: faas_api::Payload) -> Result<faas_api::Payload, faas_api::Error> { Ok(p) }
/// let app = faas_api::App::new().raw("echo", echo);
/// let runner = faas_runner_local::LocalRunner::in_process(app, Default::default()).unwrap();
/// let front = service(runner, &FrontOptions::default(), "s3cret".to_string());
/// let request = http::Request::post("/functions/echo").body(axum::body::Body::from("hi")).unwrap();
/// let reply = front.oneshot(request).await.unwrap();
/// assert_eq!(reply.status(), 200);
/// assert!(reply.headers().contains_key("faas-activation-id"));
/// # }
/// ```
pub fn service(runner: Arc<dyn Runner>, options: &FrontOptions, token: String) -> FrontService {
    let shared = Arc::new(Shared { runner, token, max_body: options.max_body });
    FrontService { router: routes(shared.clone()), shared }
}

/// The service [`service`] returns.
#[derive(Clone)]
pub struct FrontService {
    shared: Arc<Shared>,
    router: Router,
}

impl tower::Service<Request> for FrontService {
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Some(name) = direct_invocation(&req) else {
            return Box::pin(self.router.call(req));
        };
        let shared = self.shared.clone();
        let (parts, body) = req.into_parts();
        Box::pin(async move {
            let call = std::panic::AssertUnwindSafe(invoke_with(&shared, name, parts.headers, body));
            Ok(futures::FutureExt::catch_unwind(call).await.unwrap_or_else(panic_response))
        })
    }
}

/// The function name of a `POST /functions/{name}` request the direct path can take: one plain
/// segment. Anything else (a percent-encoded name, more segments) goes through the router, which
/// answers it exactly as before.
fn direct_invocation(req: &Request) -> Option<String> {
    if req.method() != http::Method::POST {
        return None;
    }
    let name = req.uri().path().strip_prefix("/functions/")?;
    (!name.is_empty() && !name.contains(['/', '%'])).then(|| name.to_string())
}

/// The portable error as an HTTP response (status by kind, JSON body, `faas-error` header).
pub(crate) fn error_response(err: &Error) -> Response {
    let (status, headers, body) = wire::error_parts(err);
    (status, headers, body).into_response()
}

/// Like [`error_response`] with another status (405, 415), keeping the JSON body.
pub(crate) fn error_response_with_status(status: StatusCode, err: &Error) -> Response {
    let mut resp = error_response(err);
    *resp.status_mut() = status;
    resp
}

fn path_error(rejection: PathRejection) -> Error {
    Error::bad_input(format!("invalid path: {}", rejection.body_text()))
}

/// A panic anywhere in a handler (including the runner) answers 502 and the server keeps serving.
/// The answer to a request whose handler panicked: a crash error, logged; the server keeps serving.
/// (A layer without boxing: every request passes through it.)
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic_message(panic.as_ref());
    tracing::error!("a request handler panicked: {message}");
    error_response(&Error::crash(format!("the server panicked handling the request: {message}")))
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

fn invoke_mode(headers: &HeaderMap) -> Result<InvokeMode, Error> {
    let Some(value) = headers.get(crate::wire::INVOKE_MODE) else { return Ok(InvokeMode::Sync) };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("async") {
        Ok(InvokeMode::Async)
    } else if text.eq_ignore_ascii_case("dry-run") {
        Ok(InvokeMode::DryRun)
    } else if text.eq_ignore_ascii_case("sync") {
        Ok(InvokeMode::Sync)
    } else {
        Err(Error::bad_input(format!(
            "header `{}` has value `{}`; use `async`, `dry-run` or `sync` (or leave it out)",
            crate::wire::INVOKE_MODE,
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

fn with_logs(headers: &HeaderMap) -> Result<bool, Error> {
    let Some(value) = headers.get(crate::wire::LOG_TYPE) else { return Ok(false) };
    let text = value.to_str().unwrap_or("").trim();
    if text.eq_ignore_ascii_case("tail") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("none") {
        Ok(false)
    } else {
        Err(Error::bad_input(format!(
            "header `{}` has value `{}`; use `tail` or `none`",
            crate::wire::LOG_TYPE,
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

/// Base64 of the log lines joined by `\n`, keeping only the last [`LOG_TAIL`] bytes (cut at a
/// character boundary).
fn log_result(lines: &[String]) -> String {
    let joined = lines.join("\n");
    let mut start = joined.len().saturating_sub(LOG_TAIL);
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&joined.as_bytes()[start..])
}

fn set_header(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => tracing::warn!("cannot send header `{name}`: the value is not a valid header value"),
    }
}

/// Invokes `function` with the request's body and headers and renders the outcome: the shared
/// path of `POST /functions/{name}` and the declared routes.
async fn invoke_with(shared: &Shared, function: String, headers: HeaderMap, body: Body) -> Response {
    match invoke_inner(shared, function, headers, body).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

async fn invoke_inner(shared: &Shared, function: String, headers: HeaderMap, body: Body) -> Result<Response, Error> {
    faas_api::validate_function_name(&function)?;
    let mode = invoke_mode(&headers)?;
    let with_logs = with_logs(&headers)?;
    let body = read_limited(&headers, body, shared.max_body).await?;
    let request = InvokeRequest {
        function,
        payload: wire::payload(&headers, body),
        mode,
        traceparent: wire::header(&headers, wire::TRACEPARENT).map(str::to_string),
        with_logs,
        cause: wire::header(&headers, wire::CAUSE).map(str::to_string),
    };
    let invoked = shared.runner.invoke(request).await?;
    let mut resp = match mode {
        InvokeMode::Async => {
            (StatusCode::ACCEPTED, Json(serde_json::json!({ "activationId": invoked.activation_id }))).into_response()
        }
        InvokeMode::DryRun => StatusCode::NO_CONTENT.into_response(),
        InvokeMode::Sync => {
            let content_type = invoked.payload.content_type().map(str::to_string);
            let mut resp = Response::new(Body::from(invoked.payload.into_body()));
            if let Some(ct) = content_type {
                set_header(resp.headers_mut(), http::header::CONTENT_TYPE, &ct);
            }
            if let (true, Some(lines)) = (with_logs, &invoked.logs) {
                set_header(resp.headers_mut(), HeaderName::from_static(crate::wire::LOG_RESULT), &log_result(lines));
            }
            resp
        }
    };
    set_header(resp.headers_mut(), ACTIVATION_ID.clone(), &invoked.activation_id);
    Ok(resp)
}

async fn invoke_function(State(shared): AppState, name: Result<Path<String>, PathRejection>, req: Request) -> Response {
    let name = match name {
        Ok(Path(n)) => n,
        Err(r) => return error_response(&path_error(r)),
    };
    let (parts, body) = req.into_parts();
    invoke_with(&shared, name, parts.headers, body).await
}

/// Any request no fixed route takes: the declared HTTP routes, else 404 listing them.
async fn declared_route(State(shared): AppState, req: Request) -> Response {
    dispatch_declared(&shared, req, None).await
}

/// A fixed path with a method it does not serve: a declared route may still take it, else 405.
async fn method_not_allowed(State(shared): AppState, req: Request) -> Response {
    let allowed = allowed_methods(req.uri().path());
    dispatch_declared(&shared, req, Some(allowed)).await
}

/// The methods the fixed routes serve on `path`.
fn allowed_methods(path: &str) -> &'static str {
    if path == "/functions" || path.starts_with("/functions/") || path == "/events" || path == "/_faas/deploy" {
        "POST"
    } else if path.starts_with("/_faas/functions/") {
        "DELETE"
    } else {
        "GET"
    }
}

async fn dispatch_declared(shared: &Shared, req: Request, fixed: Option<&'static str>) -> Response {
    let functions = match shared.runner.list().await {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let table = RouteTable::from_functions(&functions);
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if let Some(route) = table.find(&method, &path) {
        let function = route.function.clone();
        tracing::debug!(%method, %path, %function, "declared route");
        let (parts, body) = req.into_parts();
        return invoke_with(shared, function, parts.headers, body).await;
    }
    if let Some(allowed) = fixed {
        let err = Error::bad_input(format!("method `{method}` is not allowed on `{path}`; use {allowed}"))
            .with_type("MethodNotAllowed");
        let mut resp = error_response_with_status(StatusCode::METHOD_NOT_ALLOWED, &err);
        resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allowed));
        return resp;
    }
    let routes = table.describe();
    let listed = if routes.is_empty() { "none".to_string() } else { routes.join(", ") };
    error_response(&Error::not_found(format!(
        "no function or route matches `{method} {path}`; declared routes: {listed}; \
         call any function with `POST /functions/{{name}}`"
    )))
}

async fn index(State(shared): AppState) -> Response {
    let functions = match shared.runner.list().await {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let routes = RouteTable::from_functions(&functions).describe();
    let names: Vec<&str> = functions.iter().map(|f| f.spec.name.as_str()).collect();
    Json(serde_json::json!({
        "backend": shared.runner.kind(),
        "functions": names,
        "endpoints": {
            "invoke": "POST /functions/{name}",
            "events": "POST /events",
            "health": "GET /_faas/health",
            "routes": routes,
            "management": [
                "GET /_faas/capabilities",
                "GET /_faas/functions",
                "DELETE /_faas/functions/{name}",
                "GET /_faas/activations?function=&limit=",
                "GET /_faas/activations/{id}",
                "POST /_faas/deploy",
            ],
            "managementAuth": "Authorization: Bearer <token>",
        },
    }))
    .into_response()
}

async fn health(State(shared): AppState) -> Response {
    Json(serde_json::json!({ "status": "ok", "backend": shared.runner.kind() })).into_response()
}

async fn capabilities(State(shared): AppState) -> Response {
    Json(serde_json::json!({ "kind": shared.runner.kind(), "capabilities": shared.runner.capabilities() }))
        .into_response()
}

async fn list_functions(State(shared): AppState) -> Response {
    match shared.runner.list().await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn remove_function(State(shared): AppState, name: Result<Path<String>, PathRejection>) -> Response {
    let result = async {
        let Path(name) = name.map_err(path_error)?;
        faas_api::validate_function_name(&name)?;
        shared.runner.remove(&name).await
    };
    match result.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationParams {
    function: Option<String>,
    limit: Option<usize>,
}

async fn list_activations(
    State(shared): AppState,
    params: Result<Query<ActivationParams>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(params) = params.map_err(|r| Error::bad_input(format!("invalid query string: {}", r.body_text())))?;
        let function = params.function.filter(|f| !f.is_empty());
        if let Some(f) = &function {
            faas_api::validate_function_name(f)?;
        }
        if let Some(limit) = params.limit
            && limit > MAX_ACTIVATIONS
        {
            return Err(Error::bad_input(format!("query parameter `limit` is {limit}; the most is {MAX_ACTIVATIONS}")));
        }
        shared.runner.activations(ActivationQuery { function, id: None, limit: params.limit }).await
    };
    match result.await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn get_activation(State(shared): AppState, id: Result<Path<String>, PathRejection>) -> Response {
    let result = async {
        let Path(id) = id.map_err(path_error)?;
        if id.is_empty() || id.len() > MAX_ACTIVATION_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::bad_input(format!(
                "activation id must be 1 to {MAX_ACTIVATION_ID} visible ASCII characters"
            )));
        }
        let found =
            shared.runner.activations(ActivationQuery { function: None, id: Some(id.clone()), limit: Some(1) }).await?;
        found.into_iter().find(|a| a.id == id).ok_or_else(|| Error::not_found(format!("no activation with id `{id}`")))
    };
    match result.await {
        Ok(activation) => Json(activation).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `POST /_faas/deploy`: the runner first packages the artifact on its side (for the local
/// backend: copies it into its state directory, so a rebuild cannot change a deployed
/// function), then deploys.
async fn deploy(State(shared): AppState, req: Request) -> Response {
    let result = async {
        let (parts, body) = req.into_parts();
        let body = read_limited(&parts.headers, body, shared.max_body).await?;
        let package: Package = serde_json::from_slice(&body)
            .map_err(|e| Error::bad_input(format!("the deploy request is not a valid package: {e}")))?;
        for f in &package.functions {
            faas_api::validate_function_name(&f.name)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = package.functions.iter().find(|f| !seen.insert(f.name.as_str())) {
            return Err(Error::bad_input(format!("the package lists function `{}` twice", dup.name)));
        }
        // The runner stages the artifact itself (the local runner copies it under its state dir).
        shared.runner.deploy(&package, &NoProgress).await
    };
    match result.await {
        Ok(report) => {
            tracing::info!(
                created = report.created.len(),
                updated = report.updated.len(),
                unchanged = report.unchanged.len(),
                "deployed"
            );
            Json(report).into_response()
        }
        Err(e) => error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_4_kib_on_a_char_boundary() {
        let lines = vec!["é".repeat(3000), "last line".to_string()];
        let decoded = base64::engine::general_purpose::STANDARD.decode(log_result(&lines)).unwrap();
        let text = String::from_utf8(decoded).expect("cut at a character boundary");
        assert!(text.len() <= LOG_TAIL);
        assert!(text.ends_with("\nlast line"));
        let short = base64::engine::general_purpose::STANDARD.decode(log_result(&["a".into(), "b".into()])).unwrap();
        assert_eq!(short, b"a\nb");
    }

    #[test]
    fn invoke_mode_header_values() {
        let mut h = HeaderMap::new();
        assert_eq!(invoke_mode(&h).unwrap(), InvokeMode::Sync);
        h.insert(crate::wire::INVOKE_MODE, "async".parse().unwrap());
        assert_eq!(invoke_mode(&h).unwrap(), InvokeMode::Async);
        h.insert(crate::wire::INVOKE_MODE, "Dry-Run".parse().unwrap());
        assert_eq!(invoke_mode(&h).unwrap(), InvokeMode::DryRun);
        h.insert(crate::wire::INVOKE_MODE, "later".parse().unwrap());
        let err = invoke_mode(&h).unwrap_err();
        assert!(err.message().contains("faas-invoke-mode") && err.message().contains("`later`"), "{}", err.message());
    }

    #[test]
    fn log_type_header_values() {
        let mut h = HeaderMap::new();
        assert!(!with_logs(&h).unwrap());
        h.insert(crate::wire::LOG_TYPE, "Tail".parse().unwrap());
        assert!(with_logs(&h).unwrap());
        h.insert(crate::wire::LOG_TYPE, "all".parse().unwrap());
        assert!(with_logs(&h).unwrap_err().message().contains("faas-log-type"));
    }

    #[test]
    fn allowed_methods_of_fixed_paths() {
        assert_eq!(allowed_methods("/functions/hello"), "POST");
        assert_eq!(allowed_methods("/_faas/functions/hello"), "DELETE");
        assert_eq!(allowed_methods("/_faas/functions"), "GET");
        assert_eq!(allowed_methods("/events"), "POST");
    }
}
