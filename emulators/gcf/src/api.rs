//! The Cloud Functions v2 API, the upload target, `entries:list` and the event endpoint, all on
//! the emulator's one port. Paths are matched by hand: resource names carry `:verb` suffixes
//! (`functions:generateUploadUrl`) that a router's patterns do not.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::wire::{self, Message};
use crate::{deploy, events, Shared};

/// `@type` of the operations' metadata.
pub(crate) const METADATA_TYPE: &str = "type.googleapis.com/google.cloud.functions.v2.OperationMetadata";
/// `@type` of a `Function` in an `Any`.
pub(crate) const FUNCTION_TYPE: &str = "type.googleapis.com/google.cloud.functions.v2.Function";
/// `@type` of `google.protobuf.Empty`.
pub(crate) const EMPTY_TYPE: &str = "type.googleapis.com/google.protobuf.Empty";

/// Largest body the API takes (an upload: Cloud Functions takes sources up to 100 MiB zipped,
/// the upload target itself is a Cloud Storage object and takes more; the build refuses them).
const MAX_BODY: usize = 512 << 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared).layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().map(str::to_string);
    let int = wire::wants_int_enums(query.as_deref());
    tracing::debug!(%method, %uri, "api request");
    if let Some(rest) = path.strip_prefix("/upload/") {
        return upload(&shared, &method, rest, &headers, body);
    }
    if let Some(rest) = path.strip_prefix("/emulator/v1/") {
        return match rest.split('/').collect::<Vec<_>>()[..] {
            ["projects", p, "locations", l, "events"] if method == Method::POST => {
                events::deliver(&shared, p, l, &headers, body).await.into_response()
            }
            _ => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no such emulator method: {method} {path}"))
                .into_response(),
        };
    }
    let result = route(&shared, &method, &path, query.as_deref(), &body, int).await;
    match result {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &Bytes,
    int: bool,
) -> Result<Value, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("The requested URL {path} was not found on this server."),
        )
    };
    match (method.clone(), &segments[..]) {
        (Method::POST, ["v2", "entries:list"]) => {
            let request = parse_json(body)?;
            shared.logs.lock().unwrap().list(&request, int)
        }
        (Method::GET, ["v2", "projects", p, "locations"]) => {
            let environments = if int { json!([1, 2]) } else { json!(["GEN_1", "GEN_2"]) };
            let locations: Vec<Value> = ["us-central1", "us-east1", "europe-west1", "asia-east1"]
                .iter()
                .map(|l| {
                    json!({
                        "name": format!("projects/{p}/locations/{l}"), "locationId": l,
                        "metadata": {"@type": "type.googleapis.com/google.cloud.functions.v2.LocationMetadata",
                                     "environments": environments}
                    })
                })
                .collect();
            Ok(json!({ "locations": locations }))
        }
        (Method::GET, ["v2", "projects", p, "locations", l, "functions"]) => list_functions(shared, p, l, query, int),
        (Method::POST, ["v2", "projects", p, "locations", l, "functions"]) => {
            deploy::create(shared, p, l, query, body, int).await
        }
        (Method::POST, ["v2", "projects", p, "locations", l, "functions:generateUploadUrl"]) => {
            generate_upload_url(shared, p, l, body)
        }
        (Method::GET, ["v2", "projects", p, "locations", l, "runtimes"]) => Ok(runtimes(p, l, int)),
        (Method::GET, ["v2", "projects", p, "locations", l, "functions", id]) => {
            let name = format!("projects/{p}/locations/{l}/functions/{id}");
            let state = shared.state.lock().unwrap();
            let f = state.functions.get(&name).ok_or_else(|| ApiError::not_found(&name))?;
            Ok(render_function(&f.resource, int))
        }
        (Method::PATCH, ["v2", "projects", p, "locations", l, "functions", id]) => {
            deploy::update(shared, p, l, id, query, body, int).await
        }
        (Method::DELETE, ["v2", "projects", p, "locations", l, "functions", id]) => {
            deploy::delete(shared, p, l, id, int)
        }
        (Method::POST, ["v2", "projects", p, "locations", l, "functions", id])
            if id.ends_with(":generateDownloadUrl") =>
        {
            let id = id.trim_end_matches(":generateDownloadUrl");
            let name = format!("projects/{p}/locations/{l}/functions/{id}");
            let state = shared.state.lock().unwrap();
            let f = state.functions.get(&name).ok_or_else(|| ApiError::not_found(&name))?;
            let source = &f.resource["buildConfig"]["source"]["storageSource"];
            let (bucket, object) = (source["bucket"].as_str().unwrap_or(""), source["object"].as_str().unwrap_or(""));
            Ok(json!({ "downloadUrl": format!("{}/upload/{bucket}/{object}", shared.base_url) }))
        }
        (Method::GET, ["v2", "projects", p, "locations", l, "operations", id]) => {
            let name = format!("projects/{p}/locations/{l}/operations/{id}");
            let state = shared.state.lock().unwrap();
            let op = state.operations.get(&name).ok_or_else(|| ApiError::not_found(&name))?;
            Ok(render_operation(&name, op, int))
        }
        (Method::GET, ["v2", "projects", p, "locations", l, "operations"]) => {
            let prefix = format!("projects/{p}/locations/{l}/operations/");
            let state = shared.state.lock().unwrap();
            let mut names: Vec<&String> = state.operations.keys().filter(|n| n.starts_with(&prefix)).collect();
            names.sort();
            let ops: Vec<Value> = names.iter().map(|n| render_operation(n, &state.operations[*n], int)).collect();
            Ok(json!({ "operations": ops }))
        }
        (_, ["v2", ..]) => Err(unknown()),
        _ => Err(unknown()),
    }
}

/// Parses a request body, worded as Google's front end words a JSON error.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::invalid("Invalid JSON payload received. Expected an object.")),
        Err(e) => Err(ApiError::invalid(format!("Invalid JSON payload received. {e}"))),
    }
}

/// A `Function` as answered: enums as names or numbers.
pub(crate) fn render_function(resource: &Value, int: bool) -> Value {
    let mut f = resource.clone();
    let _ = wire::map_enums(&mut f, Message::Function, int);
    f
}

/// An `Operation` as answered.
pub(crate) fn render_operation(name: &str, op: &crate::Operation, int: bool) -> Value {
    let mut metadata = op.metadata.clone();
    let _ = wire::map_enums(&mut metadata, Message::OperationMetadata, int);
    let mut out = Map::new();
    out.insert("name".into(), name.into());
    let mut typed = Map::new();
    typed.insert("@type".into(), METADATA_TYPE.into());
    if let Value::Object(m) = metadata {
        typed.extend(m);
    }
    out.insert("metadata".into(), Value::Object(typed));
    match &op.result {
        None => {
            out.insert("done".into(), false.into());
        }
        Some(Ok(response)) => {
            out.insert("done".into(), true.into());
            let mut response = response.clone();
            if response["@type"] == FUNCTION_TYPE {
                let _ = wire::map_enums(&mut response, Message::Function, int);
            }
            out.insert("response".into(), response);
        }
        Some(Err(e)) => {
            out.insert("done".into(), true.into());
            out.insert("error".into(), json!({ "code": e.code(), "message": e.message }));
        }
    }
    Value::Object(out)
}

fn list_functions(shared: &Shared, p: &str, l: &str, query: Option<&str>, int: bool) -> Result<Value, ApiError> {
    let page_size = match wire::query_param(query, "pageSize") {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::invalid(format!("Invalid value at 'page_size' (TYPE_INT32), \"{s}\"")))?
            as usize,
    };
    let page_size = if page_size == 0 { 1000 } else { page_size.min(1000) };
    let offset = match wire::query_param(query, "pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| ApiError::invalid(format!("Invalid page token '{t}'")))?,
    };
    if wire::query_param(query, "filter").is_some_and(|f| !f.trim().is_empty()) {
        return Err(ApiError::invalid("filter: filtering the list of functions is not supported by the emulator"));
    }
    let prefix =
        if l == "-" { format!("projects/{p}/locations/") } else { format!("projects/{p}/locations/{l}/functions/") };
    let state = shared.state.lock().unwrap();
    let matching: Vec<&crate::Function> =
        state.functions.iter().filter(|(n, _)| n.starts_with(&prefix)).map(|(_, f)| f).collect();
    let functions: Vec<Value> =
        matching.iter().skip(offset).take(page_size).map(|f| render_function(&f.resource, int)).collect();
    let mut out = json!({ "functions": functions });
    if offset + page_size < matching.len() {
        out["nextPageToken"] = (offset + page_size).to_string().into();
    }
    Ok(out)
}

/// The fake project number of every project (the real one is the project's; names that hold
/// one, service accounts and buckets, use it).
pub(crate) const PROJECT_NUMBER: &str = "123456789012";

fn generate_upload_url(shared: &Shared, _p: &str, l: &str, body: &Bytes) -> Result<Value, ApiError> {
    let request = parse_json(body)?;
    let mut request = request;
    if let Some(env) = request.get_mut("environment") {
        // Accepted as a name or a number; only checked.
        let mut probe = json!({ "environment": env.take() });
        wire::map_enums(&mut probe, Message::Function, false).map_err(|e| {
            ApiError::invalid(format!(
                "Invalid value at 'environment' (type.googleapis.com/google.cloud.functions.v2.Environment), {}",
                e.value
            ))
        })?;
    }
    let bucket = format!("gcf-v2-uploads-{PROJECT_NUMBER}-{l}");
    let object = format!("{}.zip", uuid::Uuid::new_v4());
    let dir = shared.state_dir.join("uploads").join(&bucket);
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("cannot keep uploads: {e}")))?;
    let expires = chrono::Utc::now().timestamp() + 30 * 60;
    let url = format!(
        "{}/upload/{bucket}/{object}?GoogleAccessId=service-{PROJECT_NUMBER}%40gcf-admin-robot.iam.gserviceaccount.com&Expires={expires}&Signature=emulator",
        shared.base_url
    );
    shared
        .state
        .lock()
        .unwrap()
        .uploads
        .insert((bucket.clone(), object.clone()), crate::Upload { path: dir.join(&object), generation: None });
    Ok(json!({ "uploadUrl": url, "storageSource": { "bucket": bucket, "object": object } }))
}

/// A Cloud Storage XML error, as a signed URL answers.
fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        format!("<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
    (status, [("content-type", "application/xml; charset=UTF-8")], body).into_response()
}

fn upload(shared: &Shared, method: &Method, rest: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let Some((bucket, object)) = rest.split_once('/') else {
        return storage_error(StatusCode::NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist.");
    };
    let key = (bucket.to_string(), object.to_string());
    let mut state = shared.state.lock().unwrap();
    let Some(upload) = state.uploads.get_mut(&key) else {
        return storage_error(StatusCode::FORBIDDEN, "AccessDenied", "Access denied: no such signed upload URL.");
    };
    match *method {
        Method::PUT => {}
        Method::GET if upload.generation.is_some() => {
            return match std::fs::read(&upload.path) {
                Ok(bytes) => (StatusCode::OK, [("content-type", "application/zip")], bytes).into_response(),
                Err(_) => storage_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist."),
            };
        }
        _ => {
            return storage_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        }
    }
    // The URL is signed for `PUT` with `content-type: application/zip`: anything else does not
    // match its signature.
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/zip") {
        return storage_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method. (The upload must be sent with content-type: application/zip.)",
        );
    }
    if let Err(e) = std::fs::write(&upload.path, &body) {
        return storage_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string());
    }
    upload.generation = Some(chrono::Utc::now().timestamp_micros());
    StatusCode::OK.into_response()
}

/// Python runtimes the emulator runs, and which it lists.
pub(crate) const PYTHON_RUNTIMES: [&str; 6] =
    ["python38", "python39", "python310", "python311", "python312", "python313"];

fn runtimes(_p: &str, _l: &str, int: bool) -> Value {
    let mut out = json!({
        "runtimes": PYTHON_RUNTIMES.iter().map(|r| json!({
            "name": r,
            "displayName": format!("Python {}", r.trim_start_matches("python").replacen('3', "3.", 1)),
            "stage": "GA",
            "environment": "GEN_2",
        })).collect::<Vec<_>>()
    });
    let _ = wire::map_enums(&mut out, Message::ListRuntimes, int);
    out
}
