//! A site's own host name (`<app>.azurewebsites.net`): HTTP-triggered functions under the route
//! prefix, with their keys, and the host's admin API (`/admin/functions`, `/admin/host/status`).

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};

use crate::config::{FunctionConfig, Trigger};
use crate::invoke::{self, Forward, HttpCall, HttpReply};
use crate::json::{Obj, J};
use crate::keys::AuthLevel;
use crate::route;
use crate::site::{Site, HOST_API_REASON};

/// `ScriptConstants.DefaultMaxRequestBodySize`: 100 MiB (104857600 bytes), the Kestrel limit
/// the host sets; the app setting `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` (bytes) changes it.
///
/// ```
/// assert_eq!(faas_emulator_azure::DEFAULT_MAX_REQUEST_BODY, 100 * 1024 * 1024);
/// ```
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 104_857_600;

fn empty(status: StatusCode) -> Response {
    (status, AxumBody::empty()).into_response()
}

fn text(status: StatusCode, message: String) -> Response {
    (status, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(http::header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

/// The key a request carries: the `x-functions-key` header wins over the `code` query
/// parameter (a header present but empty still wins).
fn request_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get("x-functions-key") {
        return Some(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    invoke::grouped_query(query)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("code"))
        .and_then(|(_, v)| v.into_iter().next())
}

/// Reads a request body up to `limit` bytes; `Err` is the 413.
async fn read_limited(body: AxumBody, limit: u64) -> Result<Bytes, Response> {
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(empty(StatusCode::PAYLOAD_TOO_LARGE))
        }
        Err(_) => Err(empty(StatusCode::BAD_REQUEST)),
    }
}

/// The request body limit of a site.
fn body_limit(site: &Site) -> u64 {
    site.settings()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_REQUEST_BODY)
}

/// Serves one request to a site's host name.
pub(crate) async fn handle(site: Arc<Site>, request: http::Request<AxumBody>) -> Response {
    let path = request.uri().path().to_string();
    if path == "/admin" || path.starts_with("/admin/") {
        return admin(site, request).await;
    }
    let Some(app) = site.app() else { return empty(StatusCode::NOT_FOUND) };
    let prefix = &app.host.route_prefix;
    let rest = if prefix.is_empty() {
        Some(path.as_str())
    } else {
        path.strip_prefix('/')
            .and_then(|p| {
                p.get(..prefix.len()).filter(|head| head.eq_ignore_ascii_case(prefix)).map(|_| &p[prefix.len()..])
            })
            .filter(|r| r.is_empty() || r.starts_with('/'))
    };
    let Some(rest) = rest else { return empty(StatusCode::NOT_FOUND) };
    let segments = route::path_segments(rest);
    let method = request.method().clone();
    let mut candidates: Vec<&FunctionConfig> =
        app.functions.iter().filter(|f| matches!(f.trigger, Trigger::Http { .. })).collect();
    candidates.sort_by_key(|f| match &f.trigger {
        Trigger::Http { route, .. } => route.precedence(),
        _ => Vec::new(),
    });
    let found = candidates.into_iter().find_map(|f| {
        let Trigger::Http { route, methods, .. } = &f.trigger else { return None };
        let allowed = methods.as_ref().is_none_or(|m| m.iter().any(|m| m.eq_ignore_ascii_case(method.as_str())));
        if !allowed {
            return None;
        }
        route.matches(&segments).map(|params| (f.clone(), params))
    });
    let Some((function, params)) = found else { return empty(StatusCode::NOT_FOUND) };
    let Trigger::Http { auth, .. } = &function.trigger else { return empty(StatusCode::NOT_FOUND) };
    let query = request.uri().query().map(str::to_string);
    // Authentication runs for any function that needs it, and for an anonymous one that is
    // called with a key (so that the key's claims are there).
    let key_value = request_key(request.headers(), query.as_deref());
    let key = match &key_value {
        Some(k) => site.keys().level(k, Some(&function.name)),
        None => None,
    };
    let granted = key.as_ref().map(|(l, _)| *l).unwrap_or(AuthLevel::Anonymous);
    if !auth.allows(granted) {
        return empty(StatusCode::UNAUTHORIZED);
    }
    if site.is_disabled(&function) && granted != AuthLevel::Admin {
        return empty(StatusCode::NOT_FOUND);
    }
    let limit = body_limit(&site);
    let (parts, body) = request.into_parts();
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if content_length.is_some_and(|n| n > limit) {
        return empty(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let bytes = match read_limited(body, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let body = content_length.filter(|n| *n > 0).map(|_| bytes);
    let host_header =
        parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_string();
    let url = format!("http://{host_header}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let worker = match site.ensure_worker().await {
        Ok(w) => w,
        Err(why) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("Function host is not running: {}\n", why.0)),
    };
    let mut inv = site.begin(&function.name, HOST_API_REASON);
    inv.parent = parts.headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(invoke::valid_traceparent);
    let forwarding = (app.host.handler.forwarding || app.host.handler.legacy) && function.is_http_in_and_out();
    let response = if forwarding {
        let forward_path =
            if app.host.handler.legacy { format!("/{}", function.name) } else { parts.uri.path().to_string() };
        let f = Forward {
            path: forward_path,
            query: parts.uri.query(),
            method: parts.method.clone(),
            headers: &parts.headers,
            body,
            invocation_id: &inv.id,
        };
        let limit = invoke::deadline(app.host.function_timeout);
        match tokio::time::timeout(limit, invoke::forward(&site.client, &worker, f)).await {
            Ok(Ok(r)) => {
                site.end(&inv, &[], None);
                let (parts, bytes) = r.into_parts();
                Response::from_parts(parts, AxumBody::from(bytes))
            }
            Ok(Err(why)) => {
                site.end(&inv, &[], Some(&why));
                empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Err(_) => {
                let why = site.timed_out(&worker, &inv, &app.host.function_timeout_text).await;
                site.end(&inv, &[], Some(&why));
                empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    } else {
        let call =
            HttpCall { url, method: parts.method.clone(), query, headers: parts.headers.clone(), params, key, body };
        let binding = function.trigger_binding().name.clone();
        let mut data = Obj::new();
        data.push(binding, call.trigger_value());
        let metadata = call.metadata(&function.name);
        match site.call(&worker, &inv, data, metadata).await {
            Ok(answer) => match invoke::http_reply(&function, &answer) {
                Ok(reply) => {
                    site.end(&inv, &answer.logs, None);
                    reply_response(reply)
                }
                Err(why) => {
                    site.end(&inv, &answer.logs, Some(&why));
                    empty(StatusCode::INTERNAL_SERVER_ERROR)
                }
            },
            Err(why) => {
                site.end(&inv, &[], Some(&why));
                empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    };
    with_custom_headers(response, &app.host.custom_headers)
}

/// Adds host.json's `extensions.http.customHeaders` to a response that has none of that name.
fn with_custom_headers(mut response: Response, headers: &[(String, String)]) -> Response {
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            if !response.headers().contains_key(&name) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

fn reply_response(reply: HttpReply) -> Response {
    match reply {
        HttpReply::Ok => empty(StatusCode::OK),
        HttpReply::Raw { status, headers, content_type, body } => {
            let Ok(status) = StatusCode::from_u16(status) else { return empty(StatusCode::INTERNAL_SERVER_ERROR) };
            let mut response = Response::new(AxumBody::from(body));
            *response.status_mut() = status;
            let content_type = content_type.unwrap_or_else(|| "text/plain; charset=utf-8".to_string());
            match HeaderValue::from_str(&content_type) {
                Ok(v) => {
                    response.headers_mut().insert(http::header::CONTENT_TYPE, v);
                }
                Err(_) => return empty(StatusCode::INTERNAL_SERVER_ERROR),
            }
            for (k, v) in headers {
                match (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                    (Ok(name), Ok(value)) => {
                        response.headers_mut().append(name, value);
                    }
                    // Kestrel refuses such a header: the response fails.
                    _ => return empty(StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
            response
        }
    }
}

/// `FunctionMetadataResponse` of one function, with hrefs on `base` (`http://<host>`).
pub(crate) fn function_metadata(site: &Site, function: &FunctionConfig, base: &str, route_prefix: &str) -> J {
    let vfs = |rel: &str| format!("{base}/admin/vfs/site/wwwroot/{rel}");
    let mut o = Obj::new();
    o.push("name", J::s(&function.name))
        .push("script_root_path_href", J::s(vfs(&format!("{}/", function.name))))
        .push("script_href", J::null())
        .push("config_href", J::s(vfs(&format!("{}/function.json", function.name))))
        .push("test_data_href", J::null())
        .push("href", J::s(format!("{base}/admin/functions/{}", function.name)))
        .push(
            "invoke_url_template",
            invoke_url_template(function, base, route_prefix).map(J::s).unwrap_or_else(J::null),
        )
        .push("language", J::s("custom"))
        .push("config", J::V(function.raw.clone()))
        .push("files", J::null())
        .push("test_data", J::null())
        .push("isDisabled", J::V(Value::Bool(site.is_disabled(function))))
        .push("isDirect", J::V(Value::Bool(false)))
        .push("isProxy", J::V(Value::Bool(false)));
    J::O(o)
}

/// `GetFunctionInvokeUrlTemplate`: `<base>/<prefix>/<route or name>`, lower case; `None` for a
/// function without an HTTP trigger.
pub(crate) fn invoke_url_template(function: &FunctionConfig, base: &str, route_prefix: &str) -> Option<String> {
    let Trigger::Http { route, custom_route, .. } = &function.trigger else { return None };
    let mut url = base.trim_end_matches('/').to_string();
    if !route_prefix.is_empty() {
        url.push('/');
        url.push_str(route_prefix.trim_end_matches('/'));
    }
    url.push('/');
    url.push_str(if *custom_route { route.text() } else { &function.name });
    Some(url.to_lowercase())
}

async fn admin(site: Arc<Site>, request: http::Request<AxumBody>) -> Response {
    let query = request.uri().query().map(str::to_string);
    let key = request_key(request.headers(), query.as_deref());
    let admin = key.and_then(|k| site.keys().level(&k, None)).is_some_and(|(l, _)| l == AuthLevel::Admin);
    if !admin {
        return empty(StatusCode::UNAUTHORIZED);
    }
    let host =
        request.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_string();
    let base = format!("http://{host}");
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let app = site.app();
    let prefix = app.as_ref().map(|a| a.host.route_prefix.clone()).unwrap_or_else(|| "api".into());
    match (method, segments.as_slice()) {
        (Method::GET, ["admin", "host", "status"]) => {
            let (state, errors) = site.host_state().await;
            let record = site.record();
            let mut o = Obj::new();
            o.push("id", J::s(host_id(&site.name)))
                .push("state", J::s(state))
                .push("version", J::s(invoke::HOST_VERSION))
                .push("versionDetails", J::s(format!("{} (faas local Functions host)", invoke::HOST_VERSION)))
                .push("instanceId", J::s(record.instance_id))
                .push("computerName", J::s("localhost"));
            if !errors.is_empty() {
                o.push("errors", J::V(json!(errors)));
            }
            o.push("processUptime", J::V(json!(crate::uptime_ms())))
                .push("functionAppContentEditingState", J::s("Allowed"));
            json_response(StatusCode::OK, &o)
        }
        (Method::GET, ["admin", "functions"]) => {
            let list: Vec<J> = app
                .map(|a| a.functions.iter().map(|f| function_metadata(&site, f, &base, &prefix)).collect())
                .unwrap_or_default();
            json_response(StatusCode::OK, &J::A(list))
        }
        (Method::GET, ["admin", "functions", name]) => match app.as_ref().and_then(|a| a.function(name)) {
            Some(f) => json_response(StatusCode::OK, &function_metadata(&site, f, &base, &prefix)),
            None => empty(StatusCode::NOT_FOUND),
        },
        (Method::POST, ["admin", "functions", name]) => {
            let name = name.to_string();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let media = content_type.split(';').next().unwrap_or("").trim().to_string();
            let json_type = media == "application/json" || media == "text/json" || media.ends_with("+json");
            let bytes = match read_limited(request.into_body(), DEFAULT_MAX_REQUEST_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            // No input formatter reads another type (or none): MVC's 415.
            if !json_type {
                return empty(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            // `[FromBody] FunctionInvocation`: no body, or one that does not bind, is null → 400.
            let input = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => match m.iter().find(|(k, _)| k.eq_ignore_ascii_case("input")).map(|(_, v)| v) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(scalar @ (Value::Number(_) | Value::Bool(_))) => crate::json::dotnet_text(scalar),
                    Some(_) => return empty(StatusCode::BAD_REQUEST),
                },
                _ => return empty(StatusCode::BAD_REQUEST),
            };
            let Some(function) = app.as_ref().and_then(|a| a.function(&name)).cloned() else {
                return empty(StatusCode::NOT_FOUND);
            };
            site.invoke_from_admin(function, input);
            empty(StatusCode::ACCEPTED)
        }
        (Method::DELETE, ["admin", "functions", name]) => match app.as_ref().and_then(|a| a.function(name)) {
            Some(f) => match delete_function(&site, &f.name).await {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            None => empty(StatusCode::NOT_FOUND),
        },
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// The host id: the site name, lower case, at most 32 characters.
fn host_id(name: &str) -> String {
    name.to_lowercase().chars().take(32).collect::<String>().trim_end_matches('-').to_string()
}

/// Removes a function's folder from `wwwroot` and restarts the host (as the host's file watcher
/// does).
pub(crate) async fn delete_function(site: &Arc<Site>, name: &str) -> Result<(), String> {
    let _deploying = site.deploying.lock().await;
    let dir = site.wwwroot().join(name);
    std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot delete {}: {e}", dir.display()))?;
    site.restart().await;
    Ok(())
}
