//! Web actions: `/api/v1/web/{namespace}/{package|default}/{action}[.{http|json|html|svg|text}][/path]`
//! for actions annotated `web-export`, without the API key (apache/openwhisk docs/webactions.md;
//! core/controller/src/main/scala/org/apache/openwhisk/core/controller/WebActions.scala: the
//! `Context` given to the action and the transcoders of its result).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::WhiskPath;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::activations::Status;
use crate::controller::{self, InFlight, MAX_PAYLOAD};
use crate::entities::{self, Action};
use crate::error::ApiError;
use crate::names::Name;
use crate::Shared;

/// The parameters a request may not set (`WebApiDirectives.reservedProperties`).
const RESERVED: [&str; 6] = ["__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_body", "__ow_query"];
/// The extensions and their transcoders (`mediaTranscoders`); `.http` when none is given.
const EXTENSIONS: [&str; 5] = [".http", ".json", ".html", ".svg", ".text"];

/// Whether a media type is JSON (`isJsonFamily`).
fn is_json_family(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Whether a media type carries bytes rather than text: anything but text, JSON, XML,
/// JavaScript and form data (Pekko's `MediaType.binary`, for the types it knows).
fn is_binary(media: &str) -> bool {
    !(media.starts_with("text/")
        || is_json_family(media)
        || media == "application/xml"
        || media.ends_with("+xml")
        || media == "application/javascript"
        || media == "application/x-www-form-urlencoded")
}

fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn cors(mut response: Response, request_headers: &axum::http::HeaderMap) -> Response {
    let h = response.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("access-control-allow-methods", HeaderValue::from_static("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"));
    let allow = request_headers.get("access-control-request-headers").cloned().unwrap_or(HeaderValue::from_static(
        "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
    ));
    h.insert("access-control-allow-headers", allow);
    response
}

/// Serves one web action request.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    WhiskPath(path): WhiskPath<String>,
    request: Request,
) -> Response {
    match serve(&shared, &path, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve(shared: &Arc<Shared>, path: &str, request: Request) -> Result<Response, ApiError> {
    let mut segments = path.splitn(4, '/');
    let (Some(ns), Some(package), Some(action_ext)) = (segments.next(), segments.next(), segments.next()) else {
        return Err(ApiError::not_found());
    };
    let rest = segments.next().map(|r| format!("/{r}")).unwrap_or_default();
    if ns != shared.options.namespace {
        return Err(ApiError::not_found());
    }
    let (action_name, extension) = match EXTENSIONS.iter().find(|e| action_ext.ends_with(*e)) {
        Some(e) => (&action_ext[..action_ext.len() - e.len()], *e),
        None => (action_ext, ".http"),
    };
    let name = Name { package: (package != "default").then(|| package.to_string()), name: action_name.to_string() };
    crate::names::check_name(&name.name).map_err(|_| ApiError::not_found())?;
    let action = shared.entities.lock().unwrap().actions.get(&name.key()).cloned().ok_or_else(ApiError::not_found)?;
    if !action.annotation("web-export").is_some_and(entities::truthy) {
        return Err(ApiError::not_found());
    }
    let headers = request.headers().clone();
    let method = request.method().clone();
    let custom_options = action.annotation("web-custom-options").is_some_and(entities::truthy);
    if method == Method::OPTIONS && !custom_options {
        return Ok(cors(StatusCode::OK.into_response(), &headers));
    }
    check_whisk_auth(shared, &action, &headers)?;
    let query = request.uri().query().unwrap_or_default().to_string();
    let raw = action.annotation("raw-http").is_some_and(entities::truthy);
    let bytes = controller::read_body(&headers, request.into_body(), MAX_PAYLOAD).await?;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(media_type);

    // The request entity (`extractEntityAndProcessRequest`).
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        match content_type.as_deref() {
            Some(ct) if is_json_family(ct) && !raw => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?,
            ),
            Some("application/x-www-form-urlencoded") if !raw => {
                let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
                    .map_err(|e| ApiError::malformed(format!("the form data does not parse: {e}")))?;
                Some(Value::Object(fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
            }
            ct => {
                let ct = ct.unwrap_or("application/octet-stream");
                if is_binary(ct) || ct == "application/json" {
                    Some(Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)))
                } else {
                    Some(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
                }
            }
        }
    };

    // The action's argument (`Context.toActionArgument`).
    let mut args = Map::new();
    args.insert("__ow_method".into(), json!(method.as_str().to_lowercase()));
    let header_map: BTreeMap<String, Value> =
        headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), json!(v)))).collect();
    args.insert("__ow_headers".into(), json!(header_map));
    args.insert("__ow_path".into(), json!(rest));
    let mut user = Map::new();
    if raw {
        user.insert("__ow_query".into(), json!(query));
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&query)
            .map_err(|e| ApiError::malformed_query("query", format!("it does not parse: {e}")))?;
        for (k, v) in pairs {
            user.insert(k, Value::String(v));
        }
    }
    // `Context.overrides`: neither the query nor a JSON body may set a reserved parameter.
    let opaque = match body {
        Some(Value::Object(fields)) if !raw => {
            user.extend(fields);
            None
        }
        Some(v) => Some(v),
        None if raw => Some(json!("")),
        None => None,
    };
    if !raw && user.keys().any(|k| RESERVED.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "Request defines parameters that are not allowed (e.g., reserved properties).",
        ));
    }
    if let Some(v) = opaque {
        user.insert("__ow_body".into(), v);
    }
    args.extend(user);
    let params = controller::invoke_params(shared, &action, args)?;
    let slot = InFlight::enter(shared)?;
    let (id, done) = controller::start_activation(shared, action, params, None, slot);
    let record = match tokio::time::timeout(shared.options.max_blocking_wait, done).await {
        Ok(Ok(record)) => record,
        _ => {
            let mut response = ApiError::new(StatusCode::ACCEPTED, "Response not yet ready.").into_response();
            set_activation_id(&mut response, &id);
            return Ok(cors(response, &headers));
        }
    };
    // `completeRequest`: a success or an application error's `error` is transcoded; other
    // failures are a 400.
    let projection = match record.response.status {
        Status::Success => record.response.result.clone().unwrap_or_else(|| json!({})),
        Status::ApplicationError => match record.response.result.as_ref().and_then(|r| r.get("error")) {
            Some(e) => e.clone(),
            None => return Err(ApiError::new(StatusCode::NOT_FOUND, "Response does not include requested property.")),
        },
        _ => return Err(ApiError::bad_request("There was an error processing your request.")),
    };
    let mut response = transcode(extension, &projection)?;
    set_activation_id(&mut response, &record.activation_id);
    Ok(cors(response, &headers))
}

fn set_activation_id(response: &mut Response, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-openwhisk-activation-id", v);
    }
}

/// `require-whisk-auth`: `true` needs the namespace's key as Basic auth; a string needs it in
/// the `X-Require-Whisk-Auth` header.
fn check_whisk_auth(shared: &Shared, action: &Action, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match action.annotation("require-whisk-auth") {
        None | Some(Value::Bool(false)) | Some(Value::Null) => Ok(()),
        Some(Value::String(secret)) => {
            if headers.get("x-require-whisk-auth").and_then(|v| v.to_str().ok()) == Some(secret.as_str()) {
                Ok(())
            } else {
                Err(ApiError::unauthorized(crate::error::AUTH_INVALID))
            }
        }
        Some(Value::Number(n)) => {
            if headers.get("x-require-whisk-auth").and_then(|v| v.to_str().ok()) == Some(n.to_string().as_str()) {
                Ok(())
            } else {
                Err(ApiError::unauthorized(crate::error::AUTH_INVALID))
            }
        }
        Some(_) => {
            let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&shared.options.auth));
            if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str()) {
                Ok(())
            } else {
                Err(ApiError::unauthorized(crate::error::AUTH_INVALID))
            }
        }
    }
}

fn invalid_media(media: &str) -> ApiError {
    ApiError::bad_request(format!("Response is not valid '{media}'."))
}

fn text_response(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert("content-type", v);
    }
    response
}

/// The transcoder of an extension.
fn transcode(extension: &str, result: &Value) -> Result<Response, ApiError> {
    let field = |name: &str| match result {
        Value::Object(fields) => fields.get("body").or_else(|| fields.get(name)).cloned(),
        other => Some(other.clone()),
    };
    match extension {
        ".json" => match result {
            Value::Object(_) | Value::Array(_) => Ok(controller::json_response(StatusCode::OK, result)),
            _ => Err(invalid_media("application/json")),
        },
        ".html" => match field("html") {
            Some(Value::String(html)) => Ok(text_response(StatusCode::OK, "text/html; charset=UTF-8", html)),
            _ => Err(invalid_media("text/html")),
        },
        ".svg" => match field("svg") {
            Some(Value::String(svg)) => Ok(text_response(StatusCode::OK, "image/svg+xml", svg)),
            _ => Err(invalid_media("image/svg+xml")),
        },
        ".text" => match field("text") {
            Some(Value::String(s)) => Ok(text_response(StatusCode::OK, "text/plain; charset=UTF-8", s)),
            Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(text_response(
                StatusCode::OK,
                "text/plain; charset=UTF-8",
                serde_json::to_string_pretty(&v).unwrap_or_default(),
            )),
            Some(v) => Ok(text_response(StatusCode::OK, "text/plain; charset=UTF-8", v.to_string())),
            None => Err(ApiError::new(StatusCode::NOT_FOUND, "Response does not include requested property.")),
        },
        _ => as_http(result),
    }
}

/// `resultAsHttp`: `{statusCode, headers, body}` as the response.
fn as_http(result: &Value) -> Result<Response, ApiError> {
    let invalid = || invalid_media("message/http");
    let Value::Object(fields) = result else { return Err(invalid()) };
    let mut headers: Vec<(String, String)> = Vec::new();
    fn header_values(v: &Value, out: &mut Vec<String>) -> bool {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Bool(b) => out.push(b.to_string()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(items) => return items.iter().all(|i| header_values(i, out)),
            _ => return false,
        }
        true
    }
    match fields.get("headers") {
        None => {}
        Some(Value::Object(hs)) => {
            for (k, v) in hs {
                let mut values = Vec::new();
                if !header_values(v, &mut values) {
                    return Err(invalid());
                }
                headers.extend(values.into_iter().map(|v| (k.clone(), v)));
            }
        }
        Some(_) => return Err(invalid()),
    }
    let code = match fields.get("statusCode") {
        None => None,
        Some(Value::Number(n)) => Some(n.as_u64().filter(|c| (100..=599).contains(c)).ok_or_else(invalid)? as u16),
        Some(Value::String(s)) => Some(s.parse::<u16>().ok().filter(|c| (100..=599).contains(c)).ok_or_else(invalid)?),
        Some(_) => return Err(invalid()),
    };
    let status = |default: StatusCode| code.and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(default);
    let content_type = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
    let mut response = match fields.get("body") {
        Some(Value::String(s)) if !s.is_empty() => {
            let ct = content_type.clone().unwrap_or_else(|| "text/html".into());
            let media = media_type(&ct);
            let content_error =
                || ApiError::bad_request("Response type in header did not match generated content type.");
            let bytes = if is_binary(&media) || (is_json_family(&media) && entities::is_binary_code(s)) {
                base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| content_error())?
            } else {
                s.clone().into_bytes()
            };
            let ct = if is_binary(&media) || ct.contains("charset") { ct } else { format!("{ct}; charset=UTF-8") };
            text_response(status(StatusCode::OK), &ct, bytes)
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            let mut r = status(StatusCode::NO_CONTENT).into_response();
            r.headers_mut().remove("content-type");
            r
        }
        Some(js) => {
            let ct = content_type.clone().unwrap_or_else(|| "application/json".into());
            if !is_json_family(&media_type(&ct)) {
                return Err(ApiError::bad_request("Response type in header did not match generated content type."));
            }
            let text = if media_type(&ct) == "application/json" {
                js.to_string()
            } else {
                serde_json::to_string_pretty(js).unwrap_or_default()
            };
            text_response(status(StatusCode::OK), &ct, text)
        }
    };
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-type") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(&v)) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_split_into_text_and_binary() {
        assert!(!is_binary("text/plain") && !is_binary("application/json") && !is_binary("application/ld+json"));
        assert!(is_binary("image/png") && is_binary("application/octet-stream"));
        assert_eq!(media_type("Text/HTML; charset=utf-8"), "text/html");
    }

    #[test]
    fn http_results_become_responses() {
        let r = as_http(&json!({"statusCode": 201, "headers": {"x-a": ["1", 2]}, "body": "hi"})).unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(r.headers()["content-type"], "text/html; charset=UTF-8");
        assert_eq!(as_http(&json!({})).unwrap().status(), 204);
        assert!(as_http(&json!({"statusCode": "nope"})).is_err());
        assert!(as_http(&json!({"headers": {"content-type": "image/png"}, "body": "%%%"})).is_err());
        assert!(as_http(&json!([1])).is_err());
    }
}
