//! The Lambda control plane (the REST-JSON Lambda API, https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html): function CRUD and Invoke, on the emulator's port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{FromRequestParts, Path as AxPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::code;
use crate::exceptions::LambdaException;
use crate::functions::{self, Function, FunctionConfig, FunctionState};
use crate::invoke::{self, InvokeInput};
use crate::Shared;

/// CreateFunction / UpdateFunctionCode body limit (base64 of a 50 MB zip plus JSON), as Lambda states it.
const CODE_BODY_LIMIT: usize = 69_905_067;
/// Limit for the other JSON bodies.
const JSON_BODY_LIMIT: usize = 256 * 1024;
/// Synchronous invoke payload limit: 6 MB.
const SYNC_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// Asynchronous (`Event`) invoke payload limit: 1 MB.
const ASYNC_PAYLOAD_LIMIT: usize = 1024 * 1024;
/// `X-Amz-Client-Context` limit (base64 form).
const CLIENT_CONTEXT_LIMIT: usize = 3583;

type ApiResult = Result<Response, LambdaException>;

/// The `{name}` segment of a path (`/2015-03-31/functions/{name}/...`), percent-decoded. A segment
/// that does not decode to UTF-8 (`%FF`) is refused as Lambda refuses any name off its pattern, a
/// 400 `ValidationException` naming `functionName`, instead of axum's plain-text 400 that no AWS
/// SDK reads as a Lambda error (found by fuzz/lambda_control).
struct NameSegment(String);

impl<S: Send + Sync> FromRequestParts<S> for NameSegment {
    type Rejection = LambdaException;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match AxPath::<String>::from_request_parts(parts, state).await {
            Ok(AxPath(name)) => Ok(NameSegment(name)),
            Err(_) => {
                // "", the version (or `_emulator`), "functions", the name.
                let raw = parts.uri.path().split('/').nth(3).unwrap_or_default();
                let name = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
                Err(functions::validate_name(&name).err().unwrap_or_else(|| {
                    LambdaException::validation("1 validation error detected: Value at 'functionName' is not UTF-8")
                }))
            }
        }
    }
}

/// The control-plane router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2015-03-31/functions", post(create_function).get(list_functions))
        .route("/2015-03-31/functions/", post(create_function).get(list_functions))
        .route("/2015-03-31/functions/{name}", get(get_function).delete(delete_function))
        .route("/2015-03-31/functions/{name}/configuration", get(get_configuration).put(update_configuration))
        .route("/2015-03-31/functions/{name}/code", put(update_code))
        .route("/2015-03-31/functions/{name}/invocations", post(invoke_function))
        .route("/_emulator/functions/{name}/code.zip", get(download_code))
        .route("/", post(crate::logs::logs_api))
        .fallback(|| async { LambdaException::unknown_operation() })
        // A known path with a method it does not take is no operation either (axum would answer
        // an empty 405, which no AWS SDK reads as a Lambda error; found by fuzz/lambda_control).
        .method_not_allowed_fallback(|| async { LambdaException::unknown_operation() })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(add_request_id))
        .with_state(shared)
}

async fn add_request_id(mut response: Response) -> Response {
    if !response.headers().contains_key("x-amzn-requestid") {
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            response.headers_mut().insert("x-amzn-RequestId", id);
        }
    }
    response
}

/// Reads a body, checking `Content-Length` first and counting bytes while reading.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    operation: &str,
) -> Result<Bytes, LambdaException> {
    let too_large = || {
        LambdaException::too_large(format!("Request must be smaller than {limit} bytes for the {operation} operation"))
    };
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(LambdaException::invalid_content(format!("Could not read the request body: {e}"))),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, LambdaException> {
    serde_json::from_slice(bytes)
        .map_err(|e| LambdaException::invalid_content(format!("Could not parse request body into json: {e}")))
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

fn decode_zip(zip_file: Option<&str>, s3: bool, image: bool) -> Result<Vec<u8>, LambdaException> {
    if image {
        return Err(LambdaException::invalid_parameter(
            "Container images (ImageUri / PackageType Image) are not supported by this emulator; upload a ZipFile",
        ));
    }
    if s3 {
        return Err(LambdaException::invalid_parameter(
            "S3 code locations are not supported by this emulator; upload the package as ZipFile",
        ));
    }
    let Some(zip) = zip_file else {
        return Err(LambdaException::invalid_parameter("Code.ZipFile is required (base64 of a zip package)"));
    };
    base64::engine::general_purpose::STANDARD
        .decode(zip)
        .map_err(|e| LambdaException::invalid_content(format!("Could not decode ZipFile as base64: {e}")))
}

/// Unpacks on the blocking pool into a fresh directory under `<state>/functions/<name>/`.
async fn unpack_new(shared: &Shared, name: &str, zip: Vec<u8>) -> Result<code::Unpacked, LambdaException> {
    let dir = shared.state_dir.join("functions").join(name).join(uuid::Uuid::new_v4().simple().to_string());
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LambdaException::service(format!("could not create the code directory: {e}")))?;
        }
        let unpacked = code::unpack(&zip, &dir).inspect_err(|_| {
            // Leave nothing behind: drop the function's directory again if this was its first package.
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        })?;
        std::fs::write(dir.with_extension("zip"), &zip)
            .map_err(|e| LambdaException::service(format!("could not store the package: {e}")))?;
        Ok(unpacked)
    })
    .await
    .map_err(|e| LambdaException::service(format!("unpacking failed: {e}")))?
}

fn remove_code(dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(dir.with_extension("zip"));
}

async fn create_function(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> ApiResult {
    let bytes = read_body(&headers, body, CODE_BODY_LIMIT, "CreateFunction").await?;
    let input: functions::CreateInput = parse_json(&bytes)?;
    let name = input.function_name.ok_or_else(|| LambdaException::invalid_parameter("FunctionName is required"))?;
    functions::validate_name(&name)?;
    let config = input.config.validate()?;
    let role = config.role.ok_or_else(|| LambdaException::invalid_parameter("Role is required"))?;
    let image = input.package_type.as_deref() == Some("Image");
    if let Some(pt) = input.package_type.as_deref().filter(|p| *p != "Zip" && *p != "Image") {
        return Err(LambdaException::invalid_parameter(format!("PackageType {pt} is not one of Zip, Image")));
    }
    let runtime = if image {
        String::new()
    } else {
        config
            .runtime
            .ok_or_else(|| LambdaException::invalid_parameter("Runtime is required for .zip file archive functions"))?
    };
    let handler = if image {
        String::new()
    } else {
        config
            .handler
            .ok_or_else(|| LambdaException::invalid_parameter("Handler is required for .zip file archive functions"))?
    };
    let timeout = config.timeout.unwrap_or(3);
    let memory = config.memory.unwrap_or(128);
    let environment = config.environment.unwrap_or_default();
    let architectures = input.architectures.unwrap_or_else(|| vec!["x86_64".to_string()]);
    functions::validate_architectures(&architectures)?;
    let description = config.description.unwrap_or_default();
    let code_input = input.code.ok_or_else(|| LambdaException::invalid_parameter("Code is required"))?;
    let zip = decode_zip(
        code_input.zip_file.as_deref(),
        code_input.s3_bucket.is_some(),
        image || code_input.image_uri.is_some(),
    )?;
    if shared.functions.lock().unwrap().contains_key(&name) {
        return Err(LambdaException::conflict(format!("Function already exist: {name}")));
    }
    let unpacked = unpack_new(&shared, &name, zip).await?;
    let config = FunctionConfig {
        name: name.clone(),
        role,
        runtime,
        handler,
        description,
        timeout,
        memory,
        environment,
        architectures,
        last_modified: functions::now_last_modified(),
        revision_id: uuid::Uuid::new_v4().to_string(),
    };
    let state = FunctionState::new(config, unpacked, &shared.options);
    let body = functions::configuration_json(&state, &shared.options.region, &shared.options.account_id);
    let mut map = shared.functions.lock().unwrap();
    if map.contains_key(&name) {
        remove_code(&state.code.dir);
        return Err(LambdaException::conflict(format!("Function already exist: {name}")));
    }
    map.insert(name.clone(), Arc::new(Function { state: Mutex::new(state) }));
    drop(map);
    tracing::info!(function = %name, "function created");
    Ok(json_response(StatusCode::CREATED, &body))
}

/// Resolves a path's function reference, insisting on `$LATEST` when a qualifier is given (no versions here).
fn resolve(shared: &Shared, raw: &str, query: &HashMap<String, String>) -> Result<Arc<Function>, LambdaException> {
    let fref = functions::parse_function_ref(raw, &shared.options.region, &shared.options.account_id)?;
    let qualifier = query.get("Qualifier").cloned().or(fref.qualifier);
    if let Some(q) = qualifier.filter(|q| q != "$LATEST") {
        return Err(LambdaException::not_found(format!(
            "Function not found: {}:{q} (this emulator has no published versions or aliases; use $LATEST)",
            shared.arn(&fref.name)
        )));
    }
    shared.function(&fref.name)
}

fn config_of(shared: &Shared, function: &Function) -> Value {
    let state = function.state.lock().unwrap();
    functions::configuration_json(&state, &shared.options.region, &shared.options.account_id)
}

async fn get_function(
    State(shared): State<Arc<Shared>>,
    NameSegment(raw): NameSegment,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let function = resolve(&shared, &raw, &query)?;
    let configuration = config_of(&shared, &function);
    let name = configuration["FunctionName"].as_str().unwrap_or_default().to_string();
    let body = json!({
        "Configuration": configuration,
        "Code": {
            "RepositoryType": "S3",
            "Location": format!("{}/_emulator/functions/{name}/code.zip", shared.base_url),
        },
        "Tags": {},
    });
    Ok(json_response(StatusCode::OK, &body))
}

async fn get_configuration(
    State(shared): State<Arc<Shared>>,
    NameSegment(raw): NameSegment,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let function = resolve(&shared, &raw, &query)?;
    Ok(json_response(StatusCode::OK, &config_of(&shared, &function)))
}

async fn download_code(State(shared): State<Arc<Shared>>, NameSegment(name): NameSegment) -> ApiResult {
    let function = shared.function(&name)?;
    let path = function.state.lock().unwrap().code.dir.with_extension("zip");
    let bytes = tokio::fs::read(&path).await.map_err(|e| LambdaException::service(format!("code unavailable: {e}")))?;
    Ok((StatusCode::OK, [("content-type", "application/zip")], bytes).into_response())
}

async fn list_functions(State(shared): State<Arc<Shared>>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let max_items = match query.get("MaxItems") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| LambdaException::invalid_parameter(format!("MaxItems must be 1..10000; got '{v}'")))?,
        None => 50,
    };
    let functions: Vec<(String, Arc<Function>)> =
        shared.functions.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // The marker is the name of the first function of the next page.
    let start = match query.get("Marker").filter(|m| !m.is_empty()) {
        Some(marker) => {
            functions.iter().position(|(name, _)| name.as_str() >= marker.as_str()).unwrap_or(functions.len())
        }
        None => 0,
    };
    let page: Vec<Value> = functions.iter().skip(start).take(max_items).map(|(_, f)| config_of(&shared, f)).collect();
    let mut body = json!({ "Functions": page });
    if let Some((next, _)) = functions.get(start + max_items) {
        body["NextMarker"] = json!(next);
    }
    Ok(json_response(StatusCode::OK, &body))
}

fn check_revision(state: &FunctionState, revision: Option<&str>) -> Result<(), LambdaException> {
    match revision {
        Some(r) if r != state.config.revision_id => Err(LambdaException::precondition_failed(format!(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to \
             retrieve the latest Revision Id ({})",
            state.config.revision_id
        ))),
        _ => Ok(()),
    }
}

async fn update_code(
    State(shared): State<Arc<Shared>>,
    NameSegment(raw): NameSegment,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&headers, body, CODE_BODY_LIMIT, "UpdateFunctionCode").await?;
    let function = resolve(&shared, &raw, &HashMap::new())?;
    let input: functions::UpdateCodeInput = parse_json(&bytes)?;
    if let Some(archs) = &input.architectures {
        functions::validate_architectures(archs)?;
    }
    {
        let state = function.state.lock().unwrap();
        check_revision(&state, input.revision_id.as_deref())?;
    }
    let zip = decode_zip(input.zip_file.as_deref(), input.s3_bucket.is_some(), input.image_uri.is_some())?;
    let name = function.state.lock().unwrap().config.name.clone();
    let unpacked = unpack_new(&shared, &name, zip).await?;
    let mut state = function.state.lock().unwrap();
    if state.deleted {
        remove_code(&unpacked.dir);
        return Err(shared.not_found(&name));
    }
    let old = std::mem::replace(&mut state.code, unpacked);
    remove_code(&old.dir);
    if let Some(archs) = input.architectures {
        state.config.architectures = archs;
    }
    state.config.last_modified = functions::now_last_modified();
    state.config.revision_id = uuid::Uuid::new_v4().to_string();
    state.retire_idle();
    let body = functions::configuration_json(&state, &shared.options.region, &shared.options.account_id);
    drop(state);
    tracing::info!(function = %name, "function code updated");
    Ok(json_response(StatusCode::OK, &body))
}

async fn update_configuration(
    State(shared): State<Arc<Shared>>,
    NameSegment(raw): NameSegment,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&headers, body, JSON_BODY_LIMIT, "UpdateFunctionConfiguration").await?;
    let function = resolve(&shared, &raw, &HashMap::new())?;
    let input: functions::UpdateConfigInput = parse_json(&bytes)?;
    // Validate everything before changing anything.
    let new = input.config.validate()?;
    let mut state = function.state.lock().unwrap();
    check_revision(&state, input.revision_id.as_deref())?;
    let c = &mut state.config;
    fn set<T>(slot: &mut T, value: Option<T>) {
        if let Some(v) = value {
            *slot = v;
        }
    }
    set(&mut c.role, new.role);
    set(&mut c.runtime, new.runtime);
    set(&mut c.handler, new.handler);
    set(&mut c.description, new.description);
    set(&mut c.timeout, new.timeout);
    set(&mut c.memory, new.memory);
    set(&mut c.environment, new.environment);
    c.last_modified = functions::now_last_modified();
    c.revision_id = uuid::Uuid::new_v4().to_string();
    state.retire_idle();
    let body = functions::configuration_json(&state, &shared.options.region, &shared.options.account_id);
    Ok(json_response(StatusCode::OK, &body))
}

async fn delete_function(
    State(shared): State<Arc<Shared>>,
    NameSegment(raw): NameSegment,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let function = resolve(&shared, &raw, &query)?;
    let name = function.state.lock().unwrap().config.name.clone();
    shared.functions.lock().unwrap().remove(&name);
    let mut state = function.state.lock().unwrap();
    state.deleted = true;
    state.retire_idle();
    remove_code(&state.code.dir);
    drop(state);
    tracing::info!(function = %name, "function deleted");
    // ⚠ UNCONFIRMED (the AWS documentation and the SDK models disagree): the botocore model's default would be 200; the API reference documents
    // 204 with an empty body, which is what we send (the SDKs accept both).
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn trace_id(headers: &HeaderMap) -> String {
    if let Some(t) = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()) {
        return t.to_string();
    }
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{secs:08x}-{};Parent={};Sampled=0", &root[..24], &parent[..16])
}

async fn invoke_function(
    State(shared): State<Arc<Shared>>,
    NameSegment(raw): NameSegment,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let invocation_type = header("x-amz-invocation-type").unwrap_or_else(|| "RequestResponse".into());
    let limit = match invocation_type.as_str() {
        "RequestResponse" | "DryRun" => SYNC_PAYLOAD_LIMIT,
        "Event" => ASYNC_PAYLOAD_LIMIT,
        other => {
            return Err(LambdaException::invalid_parameter(format!(
                "X-Amz-Invocation-Type '{other}' is not one of RequestResponse, Event, DryRun"
            )))
        }
    };
    let log_type = header("x-amz-log-type").unwrap_or_else(|| "None".into());
    if log_type != "None" && log_type != "Tail" {
        return Err(LambdaException::invalid_parameter(format!(
            "X-Amz-Log-Type '{log_type}' is not one of None, Tail"
        )));
    }
    let payload = read_body(&headers, body, limit, "Invoke").await?;
    // An Invoke without a payload reaches the function as `{}` (what Lambda delivers for `aws lambda invoke`
    // without --payload); runtimes that deserialize JSON would otherwise fail on an empty body.
    let payload = if payload.is_empty() { Bytes::from_static(b"{}") } else { payload };
    // Lambda refuses an Invoke payload that is not a JSON document (the wording follows the
    // service's InvalidRequestContentException message).
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        return Err(LambdaException::invalid_content(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        )));
    }
    let function = resolve(&shared, &raw, &query)?;
    let name = function.state.lock().unwrap().config.name.clone();
    let client_context = match header("x-amz-client-context") {
        Some(cc) if cc.len() > CLIENT_CONTEXT_LIMIT => {
            return Err(LambdaException::invalid_parameter(format!(
                "X-Amz-Client-Context must be at most {CLIENT_CONTEXT_LIMIT} bytes"
            )))
        }
        Some(cc) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cc.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| serde_json::from_str::<Value>(s).is_ok())
                .ok_or_else(|| {
                    LambdaException::invalid_content("Client context must be a valid Base64-encoded JSON object.")
                })?;
            Some(decoded)
        }
        None => None,
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let input = InvokeInput {
        request_id: request_id.clone(),
        payload,
        trace_id: trace_id(&headers),
        client_context,
        tenant_id: header("x-amz-tenant-id"),
    };
    let request_id_header = HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("unknown"));
    match invocation_type.as_str() {
        "DryRun" => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.headers_mut().insert("x-amzn-RequestId", request_id_header);
            Ok(response)
        }
        "Event" => {
            invoke::invoke_async(&shared, name, input)?;
            let mut response = StatusCode::ACCEPTED.into_response();
            response.headers_mut().insert("x-amzn-RequestId", request_id_header);
            Ok(response)
        }
        _ => {
            let outcome = invoke::invoke_sync(&shared, &name, input).await?;
            let mut response = (StatusCode::OK, outcome.body.clone()).into_response();
            let h = response.headers_mut();
            h.insert("x-amzn-RequestId", request_id_header);
            h.insert("X-Amz-Executed-Version", HeaderValue::from_static("$LATEST"));
            h.insert(
                "content-type",
                HeaderValue::from_str(&outcome.content_type).unwrap_or(HeaderValue::from_static("application/json")),
            );
            if outcome.function_error.is_some() {
                // ⚠ UNCONFIRMED (observed, not documented by AWS): current Lambda appears to send only `Unhandled`; so do we.
                h.insert("X-Amz-Function-Error", HeaderValue::from_static("Unhandled"));
            }
            if log_type == "Tail" {
                let log = outcome.log.as_bytes();
                let tail = &log[log.len().saturating_sub(4096)..];
                let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
                if let Ok(v) = HeaderValue::from_str(&encoded) {
                    h.insert("X-Amz-Log-Result", v);
                }
            }
            Ok(response)
        }
    }
}
