//! The controller's REST API under `/api/v1` (apache/openwhisk docs/rest_api.md,
//! core/controller/src/main/resources/apiv1swagger.json, core/controller/.../Actions.scala,
//! Activations.scala, Packages.scala, Triggers.scala, Rules.scala, Limits.scala).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::error::WhiskPath;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::activations::{Query as ActivationQuery, Record, Status};
use crate::entities::{self, Action, Exec, ExecRequest, Package, Rule, Trigger};
use crate::error::{self, ApiError};
use crate::invoker;
use crate::names::{check_name, Name};
use crate::Shared;

type ApiResult = Result<Response, ApiError>;
type Q = Query<HashMap<String, String>>;

/// Largest PUT body of an action: the 48 MB of code plus room for the rest of the document.
const PUT_ACTION_LIMIT: usize = entities::MAX_CODE + 4 * 1024 * 1024;
/// Largest invoke / fire payload (`whisk.activation.payload.max = 1 m`).
pub(crate) const MAX_PAYLOAD: usize = 1024 * 1024;
/// Largest body of the other PUTs.
const PUT_LIMIT: usize = 2 * 1024 * 1024;
/// List limits (`whisk.query-limit`).
const DEFAULT_LIST_LIMIT: usize = 30;
const MAX_LIST_LIMIT: usize = 200;

/// A new activation id: 32 hex characters, as `ActivationId` makes them.
pub(crate) fn activation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The router: the authenticated API, web actions, and OpenWhisk's 404 for the rest.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/v1/namespaces", get_only(list_namespaces))
        .route("/api/v1/namespaces/", get_only(list_namespaces))
        .route("/api/v1/namespaces/{ns}/actions", get_only(list_actions))
        .route("/api/v1/namespaces/{ns}/actions/", get_only(list_actions))
        .route("/api/v1/namespaces/{ns}/actions/{*name}", any(action_entity))
        .route("/api/v1/namespaces/{ns}/packages", get_only(list_packages))
        .route("/api/v1/namespaces/{ns}/packages/", get_only(list_packages))
        .route("/api/v1/namespaces/{ns}/packages/{name}", any(package_entity))
        .route("/api/v1/namespaces/{ns}/activations", get_only(list_activations))
        .route("/api/v1/namespaces/{ns}/activations/", get_only(list_activations))
        .route("/api/v1/namespaces/{ns}/activations/{id}", get_only(get_activation))
        .route("/api/v1/namespaces/{ns}/activations/{id}/{part}", get_only(get_activation_part))
        .route("/api/v1/namespaces/{ns}/triggers", get_only(list_triggers))
        .route("/api/v1/namespaces/{ns}/triggers/", get_only(list_triggers))
        .route("/api/v1/namespaces/{ns}/triggers/{name}", any(trigger_entity))
        .route("/api/v1/namespaces/{ns}/rules", get_only(list_rules))
        .route("/api/v1/namespaces/{ns}/rules/", get_only(list_rules))
        .route("/api/v1/namespaces/{ns}/rules/{name}", any(rule_entity))
        .route("/api/v1/namespaces/{ns}/limits", get_only(get_limits))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), authenticate));
    Router::new()
        .merge(api)
        .route("/api/v1/web/{*path}", any(crate::web::handle))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "The requested resource could not be found.") })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(shared)
}

/// A route that takes `GET` (and `HEAD`) only. Another method is Pekko's default rejection (405,
/// `Allow: GET`, "HTTP method not allowed, supported methods: GET") in the controller's JSON error
/// body, as `BasicHttpService.customRejectionHandler` wraps every rejection; axum's own 405 has an
/// empty body (found by fuzzing the Lambda emulator, which had the same gap).
fn get_only<H, T>(handler: H) -> axum::routing::MethodRouter<Arc<Shared>>
where
    H: axum::handler::Handler<T, Arc<Shared>>,
    T: 'static,
{
    get(handler).fallback(|| async {
        let mut answer =
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "HTTP method not allowed, supported methods: GET")
                .into_response();
        answer.headers_mut().insert(axum::http::header::ALLOW, HeaderValue::from_static("GET"));
        answer
    })
}

/// HTTP Basic auth with the one `uuid:key` (BasicAuthenticationDirective.scala).
async fn authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match check_auth(&shared, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::unauthorized(error::AUTH_MISSING));
    };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return Err(ApiError::unauthorized(error::AUTH_MISSING));
    };
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    if decoded.as_deref() == Some(shared.options.auth.as_str()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(error::AUTH_INVALID))
    }
}

/// The caller's namespace for a path's `{ns}` (`_` is the caller's); another one → 403.
fn namespace(shared: &Shared, ns: &str) -> Result<(), ApiError> {
    if ns == "_" || ns == shared.options.namespace {
        Ok(())
    } else {
        check_name(ns)?;
        Err(ApiError::forbidden())
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, axum::Json(value.clone())).into_response()
}

fn with_activation_id(mut response: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-openwhisk-activation-id", v);
    }
    response
}

/// Reads a body of at most `limit` bytes; beyond → 413 `Request larger than allowed`.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Err(ApiError::too_big("Request", n, limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_big("Request", limit + 1, limit))
        }
        Err(e) => Err(ApiError::bad_request(format!("Failed extracting request body: {e}"))),
    }
}

/// A JSON object body; an empty body is `{}`.
pub(crate) fn object_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::malformed(format!("expected a JSON object, got {}", faas_api::json_kind(&other)))),
        Err(e) => Err(ApiError::malformed(format!("the body is not valid JSON: {e}"))),
    }
}

fn bool_param(q: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") | Some("") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::malformed_query(name, format!("'{other}' is not a valid Boolean value"))),
    }
}

/// `limit` and `skip` of a list (RestAPIs.scala `stringToListLimit`, `stringToListSkip`).
fn paging(q: &HashMap<String, String>, collection: &str) -> Result<(usize, usize), ApiError> {
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::malformed_query(name, format!("The value '{v}' is not an integer for {collection}."))
            }),
        }
    };
    let limit = match int("limit")? {
        None => DEFAULT_LIST_LIMIT,
        Some(0) => MAX_LIST_LIMIT,
        Some(n) if n > 0 && n as usize <= MAX_LIST_LIMIT => n as usize,
        Some(n) => {
            return Err(ApiError::malformed_query(
                "limit",
                format!("The value '{n}' is not in the range of 0 to {MAX_LIST_LIMIT} for {collection}."),
            ))
        }
    };
    let skip = match int("skip")? {
        None => 0,
        Some(n) if n >= 0 => n as usize,
        Some(n) => {
            return Err(ApiError::malformed_query(
                "skip",
                format!("The value '{n}' is not greater than or equal to 0 for {collection}."),
            ))
        }
    };
    Ok((limit, skip))
}

async fn list_namespaces(State(shared): State<Arc<Shared>>) -> ApiResult {
    Ok(json_response(StatusCode::OK, &json!([shared.options.namespace])))
}

async fn get_limits(State(shared): State<Arc<Shared>>, WhiskPath(ns): WhiskPath<String>) -> ApiResult {
    namespace(&shared, &ns)?;
    let concurrent = shared.options.concurrent_limit;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "invocationsPerMinute": 120,
            "concurrentInvocations": concurrent,
            "firesPerMinute": 60,
            "minActionMemory": 128,
            "maxActionMemory": 512,
            "minActionLogs": 0,
            "maxActionLogs": 10,
            "minActionTimeout": 100,
            "maxActionTimeout": 300_000,
            "minActionConcurrency": 1,
            "maxActionConcurrency": 500,
            "maxParameterSize": "1 MB",
            "maxActionInstances": concurrent,
        }),
    ))
}

// ---- actions -------------------------------------------------------------------------------

async fn list_actions(State(shared): State<Arc<Shared>>, WhiskPath(ns): WhiskPath<String>, Query(q): Q) -> ApiResult {
    namespace(&shared, &ns)?;
    list_actions_in(&shared, None, &q)
}

fn list_actions_in(shared: &Shared, package: Option<&str>, q: &HashMap<String, String>) -> ApiResult {
    let (limit, skip) = paging(q, "actions")?;
    let ns = &shared.options.namespace;
    let entities = shared.entities.lock().unwrap();
    let mut actions: Vec<&Arc<Action>> =
        entities.actions.values().filter(|a| a.name.package.as_deref() == package).collect();
    // Newest first, as the store's views sort them.
    actions.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.name.cmp(&b.name)));
    let list: Vec<Value> = actions.into_iter().skip(skip).take(limit).map(|a| a.summary(ns)).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

async fn action_entity(
    State(shared): State<Arc<Shared>>,
    WhiskPath((ns, rest)): WhiskPath<(String, String)>,
    Query(q): Q,
    request: Request,
) -> ApiResult {
    namespace(&shared, &ns)?;
    let method = request.method().clone();
    let headers = request.headers().clone();
    if let Some(package) = rest.strip_suffix('/').filter(|p| !p.contains('/')) {
        check_name(package)?;
        if method == axum::http::Method::GET {
            if !shared.entities.lock().unwrap().packages.contains_key(package) {
                return Err(ApiError::not_found());
            }
            return list_actions_in(&shared, Some(package), &q);
        }
    }
    let name = Name::from_path(&rest)?;
    let body = request.into_body();
    match method.as_str() {
        "GET" => get_action(&shared, &name, &q),
        "PUT" => put_action(&shared, name, &q, &headers, body).await,
        "DELETE" => delete_action(&shared, &name),
        "POST" => invoke_action(&shared, name, &q, &headers, body).await,
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP method not allowed, supported methods: GET, PUT, POST, DELETE",
        )),
    }
}

fn get_action(shared: &Shared, name: &Name, q: &HashMap<String, String>) -> ApiResult {
    let with_code = bool_param(q, "code")?.unwrap_or(true);
    let action = shared.entities.lock().unwrap().actions.get(&name.key()).cloned().ok_or_else(ApiError::not_found)?;
    Ok(json_response(StatusCode::OK, &action.json(&shared.options.namespace, with_code)))
}

fn delete_action(shared: &Shared, name: &Name) -> ApiResult {
    let action = shared.entities.lock().unwrap().actions.remove(&name.key()).ok_or_else(ApiError::not_found)?;
    let body = action.json(&shared.options.namespace, false);
    retire(action);
    tracing::info!(action = %name.key(), "action deleted");
    Ok(json_response(StatusCode::OK, &body))
}

/// Stops an action's containers and removes its code once no activation uses it any more.
fn retire(action: Arc<Action>) {
    action.containers.close();
    if let Exec::Native { dir, .. } = &action.exec {
        let root = dir.parent().map(|p| p.to_path_buf());
        tokio::spawn(async move {
            while Arc::strong_count(&action) > 1 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if let Some(root) = root {
                let _ = tokio::fs::remove_dir_all(root).await;
            }
        });
    }
}

async fn put_action(
    shared: &Arc<Shared>,
    name: Name,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let overwrite = bool_param(q, "overwrite")?.unwrap_or(false);
    let bytes = read_body(headers, body, PUT_ACTION_LIMIT).await?;
    let doc = object_body(&bytes)?;
    let ns = shared.options.namespace.clone();
    let key = name.key();
    let existing = {
        let entities = shared.entities.lock().unwrap();
        if let Some(p) = &name.package {
            if !entities.packages.contains_key(p) {
                return Err(ApiError::not_found());
            }
        } else if entities.name_taken_elsewhere(&key, "actions") {
            return Err(ApiError::other_collection());
        }
        entities.actions.get(&key).cloned()
    };
    if existing.is_some() && !overwrite {
        return Err(ApiError::conflict());
    }
    let limits = match doc.get("limits") {
        Some(Value::Null) | None => existing.as_ref().map(|a| a.limits).unwrap_or_default(),
        Some(l) => existing.as_ref().map(|a| a.limits).unwrap_or_default().merge(l)?,
    };
    let parameters = match doc.get("parameters") {
        Some(Value::Null) | None => existing.as_ref().map(|a| a.parameters.clone()).unwrap_or_default(),
        Some(p) => entities::check_key_values(p, "parameters")?,
    };
    let mut annotations = match doc.get("annotations") {
        Some(Value::Null) | None => existing.as_ref().map(|a| a.annotations.clone()).unwrap_or_default(),
        Some(a) => entities::check_key_values(a, "annotations")?,
    };
    let publish = match doc.get("publish") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => existing.as_ref().is_some_and(|a| a.publish),
        Some(_) => return Err(ApiError::malformed("publish must be a boolean")),
    };
    let version = match doc.get("version") {
        Some(Value::String(v)) => v.clone(),
        None | Some(Value::Null) => {
            existing.as_ref().map(|a| entities::up_patch(&a.version)).unwrap_or_else(|| "0.0.1".into())
        }
        Some(_) => return Err(ApiError::malformed("version must be a string like 0.0.1")),
    };
    let exec = match doc.get("exec") {
        Some(Value::Null) | None => match &existing {
            Some(a) => a.exec.clone(),
            None => return Err(ApiError::malformed("exec undefined")),
        },
        Some(exec) => match entities::check_exec(exec, &ns, &name)? {
            ExecRequest::Sequence { components } => {
                let entities = shared.entities.lock().unwrap();
                if components.iter().any(|c| !entities.actions.contains_key(&c.key())) {
                    return Err(ApiError::bad_request("Sequence component does not exist."));
                }
                Exec::Sequence { components }
            }
            ExecRequest::Native { kind, image, main, protocol, code, zip } => {
                let root = shared.state_dir.join("actions").join(uuid::Uuid::new_v4().simple().to_string());
                let dir = root.join("code");
                let binary = zip.is_some();
                let code = Arc::new(code);
                let (code_for_task, dir_for_task) = (code.clone(), dir.clone());
                let max_unzipped = shared.options.max_unzipped;
                let prepared = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(dir_for_task.parent().unwrap_or(&dir_for_task))
                        .map_err(|e| ApiError::internal(format!("cannot create the code directory: {e}")))?;
                    entities::prepare_code(&code_for_task, zip.as_deref(), &dir_for_task, max_unzipped)
                })
                .await
                .map_err(|e| ApiError::internal(format!("unpacking failed: {e}")))?;
                if let Err(e) = prepared {
                    let _ = std::fs::remove_dir_all(&root);
                    return Err(e);
                }
                Exec::Native { kind, image, main, binary, code, protocol, dir }
            }
        },
    };
    annotations.retain(|kv| kv["key"] != "exec");
    annotations.push(json!({ "key": "exec", "value": exec.kind() }));
    let action = Arc::new(Action {
        name: name.clone(),
        version,
        publish,
        exec,
        parameters,
        annotations,
        limits,
        updated: entities::now_ms(),
        containers: entities::new_pool(shared.options.concurrent_limit, shared.options.idle_timeout),
    });
    let body = action.json(&ns, true);
    let replaced = {
        let mut entities = shared.entities.lock().unwrap();
        let now = entities.actions.get(&key).cloned();
        let same = match (&now, &existing) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            drop(entities);
            retire(action);
            return Err(ApiError::new(StatusCode::CONFLICT, "Concurrent modification to resource detected."));
        }
        entities.actions.insert(key.clone(), action.clone())
    };
    if let Some(old) = replaced {
        // A code change keeps the old code until its activations end; an update without
        // `exec` keeps the code directory, which the new action now uses.
        let shares_code =
            matches!((&old.exec, &action.exec), (Exec::Native { dir: a, .. }, Exec::Native { dir: b, .. }) if a == b);
        if shares_code {
            old.containers.close();
        } else {
            retire(old);
        }
    }
    tracing::info!(action = %key, "action saved");
    Ok(json_response(StatusCode::OK, &body))
}

/// The parameters of an invoke: the package's, under the action's, under the payload's
/// (WhiskActionMetaData.resolveActionAndMergeParameters); a payload may not override a
/// parameter annotated `final` (`Messages.parametersNotAllowed`).
pub(crate) fn invoke_params(shared: &Shared, action: &Action, payload: Map<String, Value>) -> Result<Value, ApiError> {
    let package_params = action
        .name
        .package
        .as_ref()
        .and_then(|p| shared.entities.lock().unwrap().packages.get(p).map(|p| entities::key_values(&p.parameters)))
        .unwrap_or_default();
    let own = action.parameter_object();
    let is_final = action.annotation("final").is_some_and(entities::truthy);
    if is_final && payload.keys().any(|k| own.contains_key(k) || package_params.contains_key(k)) {
        return Err(ApiError::bad_request(
            "Request defines parameters that are not allowed (e.g., reserved properties).",
        ));
    }
    let mut merged = package_params;
    merged.extend(own);
    merged.extend(payload);
    Ok(Value::Object(merged))
}

/// Counts an activation in flight for as long as it lives.
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    /// Takes a slot of the namespace's concurrent limit, or 429.
    pub fn enter(shared: &Arc<Shared>) -> Result<InFlight, ApiError> {
        let allowed = shared.options.concurrent_limit;
        let count = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if count > allowed {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::too_many_concurrent(count, allowed));
        }
        Ok(InFlight(shared.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts an activation in the background; the receiver gets its record when it ends.
pub(crate) fn start_activation(
    shared: &Arc<Shared>,
    action: Arc<Action>,
    params: Value,
    cause: Option<String>,
    slot: InFlight,
) -> (String, tokio::sync::oneshot::Receiver<Arc<Record>>) {
    let id = activation_id();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(invoker_task(shared.clone(), action, params, id.clone(), cause, slot, tx));
    shared.tasks.track(task);
    (id, rx)
}

async fn invoker_task(
    shared: Arc<Shared>,
    action: Arc<Action>,
    params: Value,
    id: String,
    cause: Option<String>,
    slot: InFlight,
    done: tokio::sync::oneshot::Sender<Arc<Record>>,
) {
    let record = invoker::activate(shared, action, params, id, cause).await;
    drop(slot);
    let _ = done.send(record);
}

async fn invoke_action(
    shared: &Arc<Shared>,
    name: Name,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let blocking = bool_param(q, "blocking")?.unwrap_or(false);
    let result_only = bool_param(q, "result")?.unwrap_or(false);
    let max = shared.options.max_blocking_wait;
    let wait = match q.get("timeout") {
        None => max,
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 && ms as u128 <= max.as_millis() => Duration::from_millis(ms),
            _ => {
                return Err(ApiError::malformed_query(
                    "timeout",
                    format!("Timeout must be number of milliseconds up to {}.", max.as_millis()),
                ))
            }
        },
    };
    let bytes = read_body(headers, body, MAX_PAYLOAD).await?;
    let payload = object_body(&bytes)?;
    let action = shared.entities.lock().unwrap().actions.get(&name.key()).cloned().ok_or_else(ApiError::not_found)?;
    let params = invoke_params(shared, &action, payload)?;
    let size = serde_json::to_vec(&params).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PAYLOAD {
        return Err(ApiError::too_big("Request", size, MAX_PAYLOAD));
    }
    let slot = InFlight::enter(shared)?;
    let (id, done) = start_activation(shared, action, params, None, slot);
    if !blocking {
        return Ok(with_activation_id(json_response(StatusCode::ACCEPTED, &json!({ "activationId": id })), &id));
    }
    match tokio::time::timeout(wait, done).await {
        Ok(Ok(record)) => Ok(blocking_answer(&record, result_only)),
        // Not done within the wait (or the emulator is shutting down): the activation goes on.
        _ => Ok(with_activation_id(json_response(StatusCode::ACCEPTED, &json!({ "activationId": id })), &id)),
    }
}

/// A finished blocking invoke's answer (Actions.scala `doInvoke`).
pub(crate) fn blocking_answer(record: &Record, result_only: bool) -> Response {
    let body = match &record.response.result {
        Some(array @ Value::Array(_)) => array.clone(),
        result if result_only => result.clone().unwrap_or_else(|| json!({})),
        _ => record.json(),
    };
    let status = match record.response.status {
        Status::Success => StatusCode::OK,
        Status::ApplicationError | Status::DeveloperError => StatusCode::BAD_GATEWAY,
        Status::WhiskError => StatusCode::INTERNAL_SERVER_ERROR,
    };
    with_activation_id(json_response(status, &body), &record.activation_id)
}

// ---- packages ------------------------------------------------------------------------------

async fn list_packages(State(shared): State<Arc<Shared>>, WhiskPath(ns): WhiskPath<String>, Query(q): Q) -> ApiResult {
    namespace(&shared, &ns)?;
    let (limit, skip) = paging(&q, "packages")?;
    let ns = &shared.options.namespace;
    let entities = shared.entities.lock().unwrap();
    let mut list: Vec<&Package> = entities.packages.values().collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.updated));
    let list: Vec<Value> = list.into_iter().skip(skip).take(limit).map(|p| p.summary(ns)).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

async fn package_entity(
    State(shared): State<Arc<Shared>>,
    WhiskPath((ns, name)): WhiskPath<(String, String)>,
    Query(q): Q,
    request: Request,
) -> ApiResult {
    namespace(&shared, &ns)?;
    check_name(&name)?;
    let ns = shared.options.namespace.clone();
    let method = request.method().clone();
    let headers = request.headers().clone();
    let package_json = |entities: &entities::Entities, p: &Package| {
        let actions: Vec<Value> = entities
            .actions
            .values()
            .filter(|a| a.name.package.as_deref() == Some(p.name.as_str()))
            .map(|a| json!({ "name": a.name.name, "version": a.version, "annotations": a.annotations }))
            .collect();
        p.json(&ns, actions)
    };
    match method.as_str() {
        "GET" => {
            let entities = shared.entities.lock().unwrap();
            let p = entities.packages.get(&name).ok_or_else(ApiError::not_found)?;
            Ok(json_response(StatusCode::OK, &package_json(&entities, p)))
        }
        "PUT" => {
            let overwrite = bool_param(&q, "overwrite")?.unwrap_or(false);
            let doc = object_body(&read_body(&headers, request.into_body(), PUT_LIMIT).await?)?;
            if doc.get("binding").is_some_and(|b| b.as_object().is_some_and(|o| !o.is_empty())) {
                return Err(ApiError::bad_request("package bindings are not supported by this emulator"));
            }
            let mut entities = shared.entities.lock().unwrap();
            if entities.name_taken_elsewhere(&name, "packages") {
                return Err(ApiError::other_collection());
            }
            let existing = entities.packages.get(&name).cloned();
            if existing.is_some() && !overwrite {
                return Err(ApiError::conflict());
            }
            let package = entities::Holder::put(&name, &doc, existing.as_ref())?;
            let body = package_json(&entities, &package);
            entities.packages.insert(name, package);
            Ok(json_response(StatusCode::OK, &body))
        }
        "DELETE" => {
            let force = bool_param(&q, "force")?.unwrap_or(false);
            let mut entities = shared.entities.lock().unwrap();
            let p = entities.packages.get(&name).cloned().ok_or_else(ApiError::not_found)?;
            let members: Vec<String> = entities
                .actions
                .values()
                .filter(|a| a.name.package.as_deref() == Some(name.as_str()))
                .map(|a| a.name.key())
                .collect();
            if !members.is_empty() && !force {
                let n = members.len();
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "Package not empty (contains {n} {}). Set force param or delete package contents.",
                        if n == 1 { "entity" } else { "entities" }
                    ),
                ));
            }
            let body = package_json(&entities, &p);
            let removed: Vec<Arc<Action>> = members.iter().filter_map(|k| entities.actions.remove(k)).collect();
            entities.packages.remove(&name);
            drop(entities);
            removed.into_iter().for_each(retire);
            Ok(json_response(StatusCode::OK, &body))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP method not allowed, supported methods: GET, PUT, DELETE",
        )),
    }
}

// ---- activations ---------------------------------------------------------------------------

async fn list_activations(
    State(shared): State<Arc<Shared>>,
    WhiskPath(ns): WhiskPath<String>,
    Query(q): Q,
) -> ApiResult {
    namespace(&shared, &ns)?;
    let (limit, skip) = paging(&q, "activations")?;
    let docs = bool_param(&q, "docs")?.unwrap_or(false);
    if bool_param(&q, "count")?.unwrap_or(false) {
        if docs {
            return Err(ApiError::bad_request("The parameter 'docs' is not permitted with 'count'."));
        }
        let all = shared.activations.lock().unwrap().list(&ActivationQuery { limit: usize::MAX, ..Default::default() });
        return Ok(json_response(StatusCode::OK, &json!({ "activations": all.len() })));
    }
    let epoch = |name: &str| -> Result<Option<i64>, ApiError> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::malformed_query(name, format!("Parameter is not a valid value for epoch seconds: {v}"))
            }),
        }
    };
    let name = match q.get("name") {
        None => None,
        Some(n) => {
            let valid = match n.split_once('/') {
                Some((p, a)) => check_name(p).is_ok() && check_name(a).is_ok(),
                None => check_name(n).is_ok(),
            };
            if !valid {
                return Err(ApiError::malformed_query(
                    "name",
                    format!("Parameter may be a 'simple' name or 'package-name/simple' name: {n}"),
                ));
            }
            Some(n.clone())
        }
    };
    let query = ActivationQuery { name, since: epoch("since")?, upto: epoch("upto")?, skip, limit };
    let list = shared.activations.lock().unwrap().list(&query);
    let body: Vec<Value> = list.iter().map(|r| if docs { r.json() } else { r.summary() }).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(body)))
}

fn find_activation(shared: &Shared, id: &str) -> Result<Arc<Record>, ApiError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request("The activation id is not valid."));
    }
    shared.activations.lock().unwrap().get(id).ok_or_else(ApiError::not_found)
}

async fn get_activation(
    State(shared): State<Arc<Shared>>,
    WhiskPath((ns, id)): WhiskPath<(String, String)>,
) -> ApiResult {
    namespace(&shared, &ns)?;
    let record = find_activation(&shared, &id)?;
    Ok(json_response(StatusCode::OK, &record.json()))
}

async fn get_activation_part(
    State(shared): State<Arc<Shared>>,
    WhiskPath((ns, id, part)): WhiskPath<(String, String, String)>,
) -> ApiResult {
    namespace(&shared, &ns)?;
    let record = find_activation(&shared, &id)?;
    match part.as_str() {
        "logs" => Ok(json_response(StatusCode::OK, &json!({ "logs": record.logs }))),
        "result" => Ok(json_response(StatusCode::OK, &record.response.json())),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "The requested resource could not be found.")),
    }
}

// ---- triggers and rules --------------------------------------------------------------------

async fn list_triggers(State(shared): State<Arc<Shared>>, WhiskPath(ns): WhiskPath<String>, Query(q): Q) -> ApiResult {
    namespace(&shared, &ns)?;
    let (limit, skip) = paging(&q, "triggers")?;
    let ns = &shared.options.namespace;
    let entities = shared.entities.lock().unwrap();
    let mut list: Vec<&Trigger> = entities.triggers.values().collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.updated));
    let list: Vec<Value> =
        list.into_iter().skip(skip).take(limit).map(|t| entities.trigger_json(t, ns, true)).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

async fn trigger_entity(
    State(shared): State<Arc<Shared>>,
    WhiskPath((ns, name)): WhiskPath<(String, String)>,
    Query(q): Q,
    request: Request,
) -> ApiResult {
    namespace(&shared, &ns)?;
    check_name(&name)?;
    let ns = shared.options.namespace.clone();
    let method = request.method().clone();
    let headers = request.headers().clone();
    match method.as_str() {
        "GET" => {
            let entities = shared.entities.lock().unwrap();
            let t = entities.triggers.get(&name).ok_or_else(ApiError::not_found)?;
            Ok(json_response(StatusCode::OK, &entities.trigger_json(t, &ns, false)))
        }
        "PUT" => {
            let overwrite = bool_param(&q, "overwrite")?.unwrap_or(false);
            let doc = object_body(&read_body(&headers, request.into_body(), PUT_LIMIT).await?)?;
            if doc
                .get("annotations")
                .is_some_and(|a| entities::annotation(a.as_array().map(Vec::as_slice).unwrap_or(&[]), "feed").is_some())
            {
                return Err(ApiError::bad_request("feeds are not supported by this emulator"));
            }
            let mut entities = shared.entities.lock().unwrap();
            if entities.name_taken_elsewhere(&name, "triggers") {
                return Err(ApiError::other_collection());
            }
            let existing = entities.triggers.get(&name).cloned();
            if existing.is_some() && !overwrite {
                return Err(ApiError::conflict());
            }
            let trigger = entities::Holder::put(&name, &doc, existing.as_ref())?;
            let body = entities.trigger_json(&trigger, &ns, false);
            entities.triggers.insert(name, trigger);
            Ok(json_response(StatusCode::OK, &body))
        }
        "DELETE" => {
            let mut entities = shared.entities.lock().unwrap();
            let t = entities.triggers.get(&name).cloned().ok_or_else(ApiError::not_found)?;
            let body = entities.trigger_json(&t, &ns, false);
            entities.triggers.remove(&name);
            Ok(json_response(StatusCode::OK, &body))
        }
        "POST" => {
            let bytes = read_body(&headers, request.into_body(), MAX_PAYLOAD).await?;
            let payload = object_body(&bytes)?;
            fire_trigger(&shared, &name, &headers, payload)
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP method not allowed, supported methods: GET, PUT, POST, DELETE",
        )),
    }
}

/// Fires a trigger (Triggers.scala `fire`): with active rules, a trigger activation whose logs
/// hold each rule's outcome, answered 202 at once; without, 204 and no record.
fn fire_trigger(shared: &Arc<Shared>, name: &str, headers: &HeaderMap, payload: Map<String, Value>) -> ApiResult {
    let ns = shared.options.namespace.clone();
    let (trigger, rules) = {
        let entities = shared.entities.lock().unwrap();
        let trigger = entities.triggers.get(name).cloned().ok_or_else(ApiError::not_found)?;
        let rules: Vec<(Rule, Option<Arc<Action>>)> = entities
            .rules
            .values()
            .filter(|r| r.trigger == name && r.active)
            .map(|r| (r.clone(), entities.actions.get(&r.action.key()).cloned()))
            .collect();
        (trigger, rules)
    };
    if rules.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let trigger_id = activation_id();
    let start = entities::now_ms();
    let header_map: Map<String, Value> =
        headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), json!(v)))).collect();
    // The rules' actions get the trigger's parameters under the headers and the payload.
    let mut args = entities::key_values(&trigger.parameters);
    args.insert("__ow_headers".into(), Value::Object(header_map));
    args.extend(payload.clone());
    let mut results = Vec::new();
    for (rule, action) in rules {
        let rule_path = format!("{ns}/{}", rule.name);
        let action_path = rule.action.path(&ns);
        let outcome = match action {
            None => json!({ "statusCode": 1, "success": false, "rule": rule_path, "action": action_path,
                            "error": error::RESOURCE_DOES_NOT_EXIST }),
            Some(action) => {
                let started = invoke_params(shared, &action, args.clone())
                    .and_then(|params| Ok((params, InFlight::enter(shared)?)));
                match started {
                    Ok((params, slot)) => {
                        // Triggers.scala posts each rule's action as an ordinary invoke: no cause.
                        let (id, _done) = start_activation(shared, action, params, None, slot);
                        json!({ "statusCode": 0, "success": true, "activationId": id, "rule": rule_path, "action": action_path })
                    }
                    Err(e) => {
                        json!({ "statusCode": 1, "success": false, "rule": rule_path, "action": action_path, "error": e.message })
                    }
                }
            }
        };
        results.push(outcome.to_string());
    }
    let record = Record {
        activation_id: trigger_id.clone(),
        namespace: ns.clone(),
        name: trigger.name.clone(),
        key: trigger.name.clone(),
        version: trigger.version.clone(),
        subject: ns,
        start,
        end: None,
        duration: None,
        cause: None,
        response: crate::activations::Response::success(Value::Object(payload), None),
        logs: results,
        annotations: Vec::new(),
    };
    shared.activations.lock().unwrap().insert(record);
    Ok(with_activation_id(json_response(StatusCode::ACCEPTED, &json!({ "activationId": trigger_id })), &trigger_id))
}

async fn list_rules(State(shared): State<Arc<Shared>>, WhiskPath(ns): WhiskPath<String>, Query(q): Q) -> ApiResult {
    namespace(&shared, &ns)?;
    let (limit, skip) = paging(&q, "rules")?;
    let ns = &shared.options.namespace;
    let entities = shared.entities.lock().unwrap();
    let mut list: Vec<&Rule> = entities.rules.values().collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.updated));
    let list: Vec<Value> = list.into_iter().skip(skip).take(limit).map(|r| r.json(ns)).collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

async fn rule_entity(
    State(shared): State<Arc<Shared>>,
    WhiskPath((ns, name)): WhiskPath<(String, String)>,
    Query(q): Q,
    request: Request,
) -> ApiResult {
    namespace(&shared, &ns)?;
    check_name(&name)?;
    let ns = shared.options.namespace.clone();
    let method = request.method().clone();
    let headers = request.headers().clone();
    match method.as_str() {
        "GET" => {
            let entities = shared.entities.lock().unwrap();
            let r = entities.rules.get(&name).ok_or_else(ApiError::not_found)?;
            Ok(json_response(StatusCode::OK, &r.json(&ns)))
        }
        "PUT" => {
            let overwrite = bool_param(&q, "overwrite")?.unwrap_or(false);
            let doc = object_body(&read_body(&headers, request.into_body(), PUT_LIMIT).await?)?;
            let mut entities = shared.entities.lock().unwrap();
            if entities.name_taken_elsewhere(&name, "rules") {
                return Err(ApiError::other_collection());
            }
            let existing = entities.rules.get(&name).cloned();
            if existing.is_some() && !overwrite {
                return Err(ApiError::conflict());
            }
            let reference = |key: &str| -> Result<Option<Name>, ApiError> {
                match doc.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Name::from_reference(s, &ns).map(Some),
                    Some(Value::Object(o)) => {
                        let n = o.get("name").and_then(Value::as_str).unwrap_or_default();
                        let path = o.get("path").and_then(Value::as_str).unwrap_or("_");
                        Name::from_reference(&format!("/{path}/{n}"), &ns).map(Some)
                    }
                    Some(_) => Err(ApiError::malformed(format!("{key} must be a fully qualified name"))),
                }
            };
            let trigger = reference("trigger")?
                .or_else(|| existing.as_ref().map(|r| Name { package: None, name: r.trigger.clone() }));
            let action = reference("action")?.or_else(|| existing.as_ref().map(|r| r.action.clone()));
            let (Some(trigger), Some(action)) = (trigger, action) else {
                return Err(ApiError::bad_request("rule requires a valid trigger and a valid action"));
            };
            if trigger.package.is_some() || !entities.triggers.contains_key(&trigger.name) {
                return Err(ApiError::bad_request(format!(
                    "The requested resource '{}' does not exist.",
                    trigger.path(&ns)
                )));
            }
            if !entities.actions.contains_key(&action.key()) {
                return Err(ApiError::bad_request(format!(
                    "The requested resource '{}' does not exist.",
                    action.path(&ns)
                )));
            }
            let active = match doc.get("status").and_then(Value::as_str) {
                Some("inactive") => false,
                Some("active") => true,
                _ => existing.as_ref().map(|r| r.active).unwrap_or(true),
            };
            let annotations = match doc.get("annotations") {
                None | Some(Value::Null) => existing.as_ref().map(|r| r.annotations.clone()).unwrap_or_default(),
                Some(v) => entities::check_key_values(v, "annotations")?,
            };
            let rule = Rule {
                name: name.clone(),
                version: existing.as_ref().map(|r| entities::up_patch(&r.version)).unwrap_or_else(|| "0.0.1".into()),
                publish: false,
                annotations,
                trigger: trigger.name,
                action,
                active,
                updated: entities::now_ms(),
            };
            let body = rule.json(&ns);
            entities.rules.insert(name, rule);
            Ok(json_response(StatusCode::OK, &body))
        }
        "POST" => {
            let doc = object_body(&read_body(&headers, request.into_body(), PUT_LIMIT).await?)?;
            let active = match doc.get("status").and_then(Value::as_str) {
                Some("active") => true,
                Some("inactive") => false,
                _ => return Err(ApiError::malformed("status must be \"active\" or \"inactive\"")),
            };
            let mut entities = shared.entities.lock().unwrap();
            let r = entities.rules.get_mut(&name).ok_or_else(ApiError::not_found)?;
            r.active = active;
            Ok(StatusCode::OK.into_response())
        }
        "DELETE" => {
            let mut entities = shared.entities.lock().unwrap();
            let r = entities.rules.remove(&name).ok_or_else(ApiError::not_found)?;
            Ok(json_response(StatusCode::OK, &r.json(&ns)))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP method not allowed, supported methods: GET, PUT, POST, DELETE",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_follows_the_controller() {
        let q = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()
        };
        assert_eq!(paging(&q(&[]), "actions").unwrap(), (30, 0));
        assert_eq!(paging(&q(&[("limit", "0"), ("skip", "2")]), "actions").unwrap(), (200, 2));
        let e = paging(&q(&[("limit", "201")]), "actions").unwrap_err();
        assert!(e.message.ends_with("The value '201' is not in the range of 0 to 200 for actions."), "{}", e.message);
        assert!(paging(&q(&[("skip", "-1")]), "actions").is_err());
        assert!(paging(&q(&[("limit", "x")]), "actions").is_err());
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(object_body(b"").unwrap().is_empty());
        assert!(object_body(b"[1]").unwrap_err().message.contains("an array"));
        assert!(object_body(b"{").unwrap_err().message.contains("not valid JSON"));
    }
}
