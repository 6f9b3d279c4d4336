//! The management REST API: functions and subscriptions (CloudEvents Subscriptions API shapes and routes).
//!
//! | route                          | does                                                            |
//! |--------------------------------|-----------------------------------------------------------------|
//! | `GET /subscriptions`           | list (`?source=S` and `?type=T` narrow the list)                |
//! | `POST /subscriptions`          | create: 201 + `Location: /subscriptions/{id}`                   |
//! | `GET /subscriptions/{id}`      | retrieve                                                        |
//! | `PUT /subscriptions/{id}`      | replace (API-created subscriptions only)                        |
//! | `DELETE /subscriptions/{id}`   | delete: 204 (API-created subscriptions only)                    |
//! | `GET /functions`               | list function routes                                            |
//! | `POST /functions`              | create `{"name", "backend", "target"?}`: 201 + `Location`       |
//! | `GET/PUT/DELETE /functions/{name}` | retrieve / replace / delete                                 |
//! | `GET /openapi.json`            | the OpenAPI 3.1 document of these routes and of ingress (public)|
//!
//! The document states every rule the server enforces on a request body (required fields, types, lengths,
//! patterns, ranges; `null` is accepted wherever a field is optional and means "absent") except those that
//! depend on the registry's state, which it states in words: a `function:NAME` sink names a registered
//! function, an update's `id`/`name` equals the path, a name is not taken (409). Its `servers` entry is the
//! address the gateway is bound to and its backend names are this gateway's profiles ([`openapi_document`]).
//!
//! Every route but `/openapi.json` needs `Authorization: Bearer <token>`: 401 (with
//! `WWW-Authenticate: Bearer`) without it, 403 with a wrong one (compared in constant time). With no token
//! configured the API is disabled (403 saying how to set one). The token is never logged.
//!
//! Request bodies are JSON (`Content-Type: application/json`, else 415), at most [`MAX_BODY`] bytes
//! (413, refused before reading further). Errors are `{"error": "<message>", "field": "<json path>"}` with
//! 400 (invalid), 404 (unknown id), 409 (declared in `faas.toml`, name taken, function in use) or 503 (the
//! store failed; nothing changed). Entries carry `"origin": "api"` or `"config"`.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::registry::{FunctionRequest, Origin, RegistryHandle};
use crate::subscription::{ApiError, SubscriptionRequest};

/// Largest request body accepted (64 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The OpenAPI 3.1 document served at `GET /openapi.json`, before [`openapi_document`] fills in the
/// gateway's address and backend profiles.
pub const OPENAPI: &str = include_str!("openapi.json");

static TEMPLATE: LazyLock<Value> = LazyLock::new(|| serde_json::from_str(OPENAPI).expect("openapi.json parses"));

/// The OpenAPI document of a gateway listening on `addr` whose function routes may name the backend
/// profiles `backends`: [`OPENAPI`] with `servers` set to `http://{addr}` and the backend name schema
/// listing `backends` (a schema nothing satisfies when there are none).
///
/// ```
/// let backends = ["dev".to_string()].into_iter().collect();
/// let doc = faas_gateway::management::openapi_document("127.0.0.1:4100".parse().unwrap(), &backends);
/// assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:4100");
/// assert_eq!(doc["components"]["schemas"]["BackendName"]["enum"], serde_json::json!(["dev"]));
/// ```
pub fn openapi_document(addr: SocketAddr, backends: &BTreeSet<String>) -> Value {
    let mut doc = TEMPLATE.clone();
    doc["servers"] = serde_json::json!([{"url": format!("http://{addr}"), "description": "this gateway"}]);
    let backend = &mut doc["components"]["schemas"]["BackendName"];
    if backends.is_empty() {
        backend["not"] = serde_json::json!({});
        backend["description"] = Value::String(
            "A backend profile name: none is configured ([backends] in faas.toml), so every value is refused".into(),
        );
    } else {
        backend["enum"] = backends.iter().cloned().map(Value::String).collect();
    }
    doc
}

/// Route paths, as the router declares them.
pub mod paths {
    /// Subscriptions collection.
    pub const SUBSCRIPTIONS: &str = "/subscriptions";
    /// One subscription.
    pub const SUBSCRIPTION: &str = "/subscriptions/{id}";
    /// Functions collection.
    pub const FUNCTIONS: &str = "/functions";
    /// One function.
    pub const FUNCTION: &str = "/functions/{name}";
    /// The OpenAPI document.
    pub const OPENAPI: &str = "/openapi.json";
}

/// What the management handlers share.
#[derive(Clone)]
pub struct ManagementState {
    /// The registry the API changes.
    pub registry: RegistryHandle,
    /// The bearer token; `None` disables the API.
    pub token: Option<String>,
    /// The address the gateway's listener is bound to: the `servers` entry of the OpenAPI document.
    pub addr: SocketAddr,
}

impl std::fmt::Debug for ManagementState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementState")
            .field("registry", &self.registry)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("addr", &self.addr)
            .finish()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), Value::String(self.message));
        if let Some(field) = self.field {
            body.insert("field".into(), Value::String(field));
        }
        (self.status, Json(Value::Object(body))).into_response()
    }
}

/// The management API router. Merge it into the gateway's router (it sets no fallback).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use faas_gateway::management::{router, ManagementState};
/// use faas_gateway::registry::{Declared, RegistryHandle};
/// use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
/// let registry = RegistryHandle::open(store, Declared::default()).await.unwrap();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let app: axum::Router = router(ManagementState { registry, token: Some("t0ken".into()), addr });
/// # drop((app, listener));
/// # });
/// ```
pub fn router(state: ManagementState) -> Router {
    let document = bytes::Bytes::from(
        serde_json::to_vec(&openapi_document(state.addr, state.registry.backends())).expect("a JSON value encodes"),
    );
    let openapi = get(move || {
        let document = document.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], document).into_response() }
    });
    let protected = Router::new()
        .route(paths::SUBSCRIPTIONS, get(list_subscriptions).post(create_subscription))
        .route(paths::SUBSCRIPTION, get(get_subscription).put(update_subscription).delete(delete_subscription))
        .route(paths::FUNCTIONS, get(list_functions).post(create_function))
        .route(paths::FUNCTION, get(get_function).put(update_function).delete(delete_function))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    Router::new().route(paths::OPENAPI, openapi).merge(protected)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Checks the bearer token in constant time: 401 + `WWW-Authenticate: Bearer` without one, 403 when wrong.
pub(crate) async fn authorize(State(state): State<ManagementState>, request: Request, next: Next) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            message: "the management API is disabled: no token is configured (set `token` in [gateway] of \
                      faas.toml, or FAAS_GATEWAY_TOKEN)"
                .into(),
            field: None,
        }
        .into_response();
    };
    match bearer(request.headers()) {
        None => {
            let mut response = ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "missing `Authorization: Bearer <token>` header".into(),
                field: None,
            }
            .into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => next.run(request).await,
        Some(_) => ApiError { status: StatusCode::FORBIDDEN, message: "wrong management token".into(), field: None }
            .into_response(),
    }
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes into `T`, naming the offending field on error.
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body, what: &str) -> Result<T, ApiError> {
    json_body_limited(headers, body, what, MAX_BODY).await
}

/// [`json_body`] with another size limit.
pub(crate) async fn json_body_limited<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    what: &str,
    limit: usize,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!("content type `{ct}` is not supported; send application/json"),
                field: None,
            });
        }
    }
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("request body is larger than the limit of {limit} bytes"),
        field: None,
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n: usize| n > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!("request body is empty; expected a JSON {what}")));
    }
    let json: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    if !json.is_object() {
        return Err(ApiError::bad_request(format!(
            "expected a JSON {what} object, got {}",
            faas_api::json_kind(&json)
        )));
    }
    let value: T = serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: e.into_inner().to_string(),
            field: (path != ".").then_some(path),
        }
    })?;
    Ok(value)
}

fn with_origin<T: Serialize>(item: &T, origin: Origin) -> Value {
    let mut value = serde_json::to_value(item).unwrap_or(Value::Null);
    if let Value::Object(obj) = &mut value {
        obj.insert("origin".into(), Value::String(origin.as_str().into()));
    }
    value
}

fn created(location: String, body: Value) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

async fn list_subscriptions(
    State(state): State<ManagementState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Value>>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| *k != "source" && *k != "type") {
        return Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown query parameter `{unknown}`; use `source` or `type`"),
        ));
    }
    let source = query.get("source");
    let ty = query.get("type");
    let list = state
        .registry
        .subscription_entries()
        .into_iter()
        .filter(|(s, _)| source.is_none_or(|want| s.source.as_ref() == Some(want)))
        .filter(|(s, _)| ty.is_none_or(|want| s.types.contains(want)))
        .map(|(s, origin)| with_origin(&s, origin))
        .collect();
    Ok(Json(list))
}

async fn create_subscription(
    State(state): State<ManagementState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: SubscriptionRequest = json_body(&headers, body, "subscription").await?;
    let sub = state.registry.create_subscription(request).await?;
    tracing::info!(id = %sub.id, sink = %sub.sink, "subscription created");
    Ok(created(format!("/subscriptions/{}", sub.id), with_origin(&sub, Origin::Api)))
}

async fn get_subscription(
    State(state): State<ManagementState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (sub, origin) =
        state.registry.subscription_entry(&id).ok_or_else(|| ApiError::not_found(format!("no subscription `{id}`")))?;
    Ok(Json(with_origin(&sub, origin)))
}

async fn update_subscription(
    State(state): State<ManagementState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if state.registry.subscription_entry(&id).is_none() {
        return Err(ApiError::not_found(format!("no subscription `{id}`")));
    }
    let request: SubscriptionRequest = json_body(&headers, body, "subscription").await?;
    let sub = state.registry.update_subscription(&id, request).await?;
    tracing::info!(id = %sub.id, sink = %sub.sink, "subscription updated");
    Ok(Json(with_origin(&sub, Origin::Api)))
}

async fn delete_subscription(
    State(state): State<ManagementState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_subscription(&id).await?;
    tracing::info!(id = %id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_functions(State(state): State<ManagementState>) -> Json<Vec<Value>> {
    Json(state.registry.function_entries().into_iter().map(|(f, origin)| with_origin(&f, origin)).collect())
}

async fn create_function(
    State(state): State<ManagementState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: FunctionRequest = json_body(&headers, body, "function").await?;
    let route = state.registry.create_function(request).await?;
    tracing::info!(name = %route.name, backend = %route.backend, "function route created");
    Ok(created(format!("/functions/{}", route.name), with_origin(&route, Origin::Api)))
}

async fn get_function(State(state): State<ManagementState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let (route, origin) =
        state.registry.function_entry(&name).ok_or_else(|| ApiError::not_found(format!("no function `{name}`")))?;
    Ok(Json(with_origin(&route, origin)))
}

async fn update_function(
    State(state): State<ManagementState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if state.registry.function_entry(&name).is_none() {
        return Err(ApiError::not_found(format!("no function `{name}`")));
    }
    let request: FunctionRequest = json_body(&headers, body, "function").await?;
    let route = state.registry.update_function(&name, request).await?;
    tracing::info!(name = %route.name, backend = %route.backend, "function route updated");
    Ok(Json(with_origin(&route, Origin::Api)))
}

async fn delete_function(
    State(state): State<ManagementState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_function(&name).await?;
    tracing::info!(name = %name, "function route deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Declared;
    use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};

    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

    #[test]
    fn the_openapi_document_parses_and_is_3_1() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(doc["paths"]["/"]["post"].is_object(), "ingress is documented");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }

    /// Every route of the management and runs routers (every method they answer) is in the document,
    /// and the document lists no route they do not answer.
    #[tokio::test]
    async fn every_route_is_documented_and_every_documented_route_exists() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let documented = doc["paths"].as_object().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        let registry = RegistryHandle::open(store.clone(), Declared::default()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ManagementState { registry: registry.clone(), token: Some("t".into()), addr };
        // The runs API shares the listener, the token and the document.
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let conductor = std::sync::Arc::new(crate::conductor::Conductor::new(
            store.clone(),
            registry.clone(),
            std::time::Duration::from_secs(1),
            metrics,
        ));
        let compositions = crate::compositions::Compositions::new(store, registry);
        let sinks = std::sync::Arc::new(crate::sink::SinkClient::new(crate::sink::FunctionRunners::new(
            faas_api::Registry::new(),
            Default::default(),
        )));
        let app = router(state.clone()).merge(crate::runs::router(conductor, compositions, sinks, state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::new();

        let router_paths = [
            paths::SUBSCRIPTIONS,
            paths::SUBSCRIPTION,
            paths::FUNCTIONS,
            paths::FUNCTION,
            paths::OPENAPI,
            "/runs",
            "/runs/{id}",
            "/compositions",
            "/compositions/{name}",
        ];
        for path in router_paths {
            let item = documented.get(path).unwrap_or_else(|| panic!("{path} is not in openapi.json"));
            let concrete = path.replace("{id}", "some-id").replace("{name}", "some-name");
            for method in METHODS {
                let url = format!("http://{addr}{concrete}");
                let anonymous = client.request(method.parse().unwrap(), &url).send().await.unwrap().status();
                let response = client.request(method.parse().unwrap(), &url).bearer_auth("t").send().await.unwrap();
                let status = response.status();
                let body = response.bytes().await.unwrap();
                // Unrouted: 405 (method) or 404 with an empty body (path); a handler's 404 has a JSON body.
                let routed = status != reqwest::StatusCode::METHOD_NOT_ALLOWED
                    && !(status == reqwest::StatusCode::NOT_FOUND && body.is_empty());
                let in_doc = item.get(method.to_ascii_lowercase()).is_some();
                assert_eq!(routed, in_doc, "{method} {path}: answered {status}, documented: {in_doc}");
                if routed && path != paths::OPENAPI {
                    assert_eq!(anonymous, reqwest::StatusCode::UNAUTHORIZED, "{method} {path} needs the token");
                }
                if path == paths::OPENAPI && routed {
                    assert_eq!(anonymous, reqwest::StatusCode::OK, "{path} is public");
                }
            }
        }
        for path in documented.keys() {
            assert!(path == "/" || router_paths.contains(&path.as_str()), "{path} is documented but not routed");
        }
        let served: Value =
            client.get(format!("http://{addr}/openapi.json")).send().await.unwrap().json().await.unwrap();
        assert_eq!(served, openapi_document(addr, &BTreeSet::new()));
        assert_eq!(
            served["servers"],
            serde_json::json!([{"url": format!("http://{addr}"), "description": "this gateway"}])
        );
    }

    /// The patterns the server checks with are the ones the document states.
    #[test]
    fn the_documented_patterns_are_the_servers() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Sink"]["pattern"], crate::subscription::SINK_PATTERN);
        assert_eq!(schemas["Duration"]["pattern"], crate::subscription::DURATION_PATTERN);
        regex::Regex::new(crate::subscription::SINK_PATTERN).unwrap();
        regex::Regex::new(crate::subscription::DURATION_PATTERN).unwrap();
    }
}
