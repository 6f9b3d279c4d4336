//! The ARM surface of `Microsoft.Web/sites` that deploy clients call: sites created with a
//! long-running PUT (202 and an operation to poll), read, listed, updated (200) and deleted;
//! their app settings, functions and keys. Every request needs `api-version` and a bearer
//! token; errors are ARM's `{"error": {"code", "message"}}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body as AxumBody;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Map, Value};

use crate::site::{Site, SiteRecord};
use crate::Shared;

/// How long a new site's creation operation stays in progress (its first poll may see 202).
const PROVISIONING: Duration = Duration::from_millis(200);

/// A creation operation to poll.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub site: String,
    pub done_at: Instant,
}

/// An ARM error answer.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    let mut r = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(
                "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\"",
            ),
        );
    }
    r
}

fn ok(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    if let Ok(v) = http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        r.headers_mut().insert("x-ms-request-id", v);
    }
    r
}

fn empty(status: StatusCode) -> Response {
    (status, AxumBody::empty()).into_response()
}

/// The bearer-token rule shared by ARM and Kudu: `Authorization: Bearer <token>`, any non-empty
/// token unless the emulator was given one. `Err` is the message of the 401.
pub(crate) fn check_bearer(headers: &HeaderMap, expected: Option<&str>) -> Result<(), (&'static str, &'static str)> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."));
    };
    let value = value.to_str().unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
        _ => {
            return Err((
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            ))
        }
    };
    match expected {
        Some(t) if t != token => Err(("InvalidAuthenticationToken", "The access token is invalid.")),
        _ => Ok(()),
    }
}

/// Whether a name is a valid site name: 2 to 60 letters, digits and hyphens, not starting or
/// ending with a hyphen.
pub(crate) fn valid_site_name(name: &str) -> bool {
    (2..=60).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The resource id of a site.
pub(crate) fn site_id(r: &SiteRecord) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Web/sites/{}",
        r.subscription, r.resource_group, r.name
    )
}

/// The site resource as ARM returns it.
pub(crate) fn site_json(site: &Site) -> Value {
    let r = site.record();
    let default_host = format!("{}.azurewebsites.net", r.name.to_lowercase());
    let scm_host = format!("{}.scm.azurewebsites.net", r.name.to_lowercase());
    json!({
        "id": site_id(&r),
        "name": r.name,
        "type": "Microsoft.Web/sites",
        "kind": r.kind,
        "location": r.location,
        "tags": r.tags,
        "properties": {
            "name": r.name,
            "state": "Running",
            "hostNames": [default_host],
            "enabledHostNames": [default_host, scm_host],
            "defaultHostName": default_host,
            "hostNameSslStates": [
                {"name": default_host, "hostType": "Standard", "sslState": "Disabled"},
                {"name": scm_host, "hostType": "Repository", "sslState": "Disabled"}
            ],
            "resourceGroup": r.resource_group,
            "repositorySiteName": r.name,
            "enabled": true,
            "usageState": "Normal",
            "availabilityState": "Normal",
            "lastModifiedTimeUtc": r.last_modified,
            "provisioningState": "Succeeded",
            "siteConfig": {"appSettings": null}
        }
    })
}

fn function_json(site: &Site, f: &crate::config::FunctionConfig, route_prefix: &str) -> Value {
    let r = site.record();
    let id = format!("{}/functions/{}", site_id(&r), f.name);
    let scm = format!("https://{}.scm.azurewebsites.net", r.name.to_lowercase());
    let app_base = format!("https://{}.azurewebsites.net", r.name.to_lowercase());
    let invoke = crate::host::invoke_url_template(f, &app_base, route_prefix);
    json!({
        "id": id,
        "name": format!("{}/{}", r.name, f.name),
        "type": "Microsoft.Web/sites/functions",
        "location": r.location,
        "properties": {
            "name": f.name,
            "function_app_id": site_id(&r),
            "script_root_path_href": format!("{scm}/api/vfs/site/wwwroot/{}/", f.name),
            "script_href": null,
            "config_href": format!("{scm}/api/vfs/site/wwwroot/{}/function.json", f.name),
            "test_data_href": null,
            "secrets_file_href": null,
            "href": format!("{scm}/api/functions/{}", f.name),
            "config": f.raw,
            "files": null,
            "test_data": null,
            "invoke_url_template": invoke,
            "language": "custom",
            "isDisabled": site.is_disabled(f)
        }
    })
}

/// Matches fixed path segments without regard to case (ARM's paths are case-insensitive).
fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Serves one ARM request.
pub(crate) async fn handle(shared: Arc<Shared>, request: http::Request<AxumBody>) -> Response {
    if let Err((code, message)) = check_bearer(request.headers(), shared.options.token.as_deref()) {
        return error(StatusCode::UNAUTHORIZED, code, message);
    }
    let query = request.uri().query().unwrap_or("").to_string();
    let api_version = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.into_owned());
    let Some(api_version) = api_version.filter(|v| !v.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    let host = request.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()).map(str::to_string);
    let base = host.map(|h| format!("http://{h}")).unwrap_or_else(|| shared.base_url.clone());
    let body = match request.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return error(StatusCode::BAD_REQUEST, "InvalidRequestContent", "The request content could not be read.")
        }
    };
    let seg: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("No route matches {method} {path} (api-version {api_version}) on this local ARM."),
        )
    };
    match s.as_slice() {
        ["subscriptions", sub, p, "Microsoft.Web", l, loc, o, id]
            if eq(p, "providers") && eq(l, "locations") && eq(o, "operationResults") && method == Method::GET =>
        {
            let _ = (sub, loc);
            poll_operation(&shared, id, &base, &api_version, sub, loc)
        }
        ["subscriptions", sub, p, ns, t]
            if eq(p, "providers") && eq(ns, "Microsoft.Web") && eq(t, "sites") && method == Method::GET =>
        {
            let sites: Vec<Value> = shared
                .sites()
                .into_iter()
                .filter(|site| eq(&site.record().subscription, sub))
                .map(|site| site_json(&site))
                .collect();
            ok(StatusCode::OK, json!({"value": sites}))
        }
        ["subscriptions", sub, r, rg, p, ns, t]
            if eq(r, "resourceGroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Web")
                && eq(t, "sites")
                && method == Method::GET =>
        {
            let sites: Vec<Value> = shared
                .sites()
                .into_iter()
                .filter(|site| {
                    let rec = site.record();
                    eq(&rec.subscription, sub) && eq(&rec.resource_group, rg)
                })
                .map(|site| site_json(&site))
                .collect();
            ok(StatusCode::OK, json!({"value": sites}))
        }
        ["subscriptions", sub, r, rg, p, ns, t, app, rest @ ..]
            if eq(r, "resourceGroups") && eq(p, "providers") && eq(ns, "Microsoft.Web") && eq(t, "sites") =>
        {
            site_route(&shared, &method, sub, rg, app, rest, &body, &base, &api_version).await.unwrap_or_else(unknown)
        }
        _ => unknown(),
    }
}

fn not_found(rg: &str, app: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.Web/sites/{app}' under resource group '{rg}' was not found. For more details \
             please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn poll_operation(shared: &Shared, id: &str, base: &str, api_version: &str, sub: &str, loc: &str) -> Response {
    let op = shared.operations.lock().expect("operations").get(id).cloned();
    let Some(op) = op else {
        return error(StatusCode::NOT_FOUND, "OperationNotFound", format!("The operation '{id}' was not found."));
    };
    if Instant::now() < op.done_at {
        let mut r = empty(StatusCode::ACCEPTED);
        let location = format!(
            "{base}/subscriptions/{sub}/providers/Microsoft.Web/locations/{loc}/operationResults/{id}?api-version={api_version}"
        );
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return r;
    }
    match shared.site(&op.site) {
        Some(site) => ok(StatusCode::OK, site_json(&site)),
        None => error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("The site '{}' no longer exists.", op.site)),
    }
}

/// The app settings of a PUT body (`properties.siteConfig.appSettings`), `None` when not given.
fn body_settings(body: &Value) -> Result<Option<BTreeMap<String, String>>, String> {
    let settings = &body["properties"]["siteConfig"]["appSettings"];
    match settings {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = BTreeMap::new();
            for (i, item) in items.iter().enumerate() {
                let name = item["name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| format!("properties.siteConfig.appSettings[{i}].name: a setting needs a name"))?;
                let value = match &item["value"] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(name.to_string(), value);
            }
            Ok(Some(out))
        }
        _ => Err("properties.siteConfig.appSettings: must be an array of {name, value}".into()),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, Box<Response>> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(body).ok().filter(Value::is_object).ok_or_else(|| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body must be a JSON object.",
        ))
    })
}

#[allow(clippy::too_many_arguments)]
async fn site_route(
    shared: &Arc<Shared>,
    method: &Method,
    sub: &str,
    rg: &str,
    app: &str,
    rest: &[&str],
    body: &[u8],
    base: &str,
    api_version: &str,
) -> Option<Response> {
    let existing = shared.site(app).filter(|site| {
        let r = site.record();
        eq(&r.subscription, sub) && eq(&r.resource_group, rg)
    });
    if rest.is_empty() {
        return Some(match *method {
            Method::PUT => put_site(shared, sub, rg, app, body, base, api_version).await,
            Method::GET => match existing {
                Some(site) => ok(StatusCode::OK, site_json(&site)),
                None => not_found(rg, app),
            },
            Method::DELETE => match existing {
                Some(site) => {
                    shared.delete_site(&site).await;
                    empty(StatusCode::OK)
                }
                None => empty(StatusCode::NO_CONTENT),
            },
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported on a site"),
            ),
        });
    }
    let Some(site) = existing else { return Some(not_found(rg, app)) };
    let app_config = site.app();
    let prefix = app_config.as_ref().map(|a| a.host.route_prefix.clone()).unwrap_or_else(|| "api".into());
    let r = match (method.clone(), rest) {
        (Method::POST, [c, a, l]) if eq(c, "config") && eq(a, "appsettings") && eq(l, "list") => {
            ok(StatusCode::OK, appsettings_json(&site))
        }
        (Method::PUT, [c, a]) if eq(c, "config") && eq(a, "appsettings") => {
            let body = match parse_body(body) {
                Ok(b) => b,
                Err(r) => return Some(*r),
            };
            let Some(props) = body["properties"].as_object() else {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "properties: the app settings must be an object of name → value",
                ));
            };
            let settings: BTreeMap<String, String> = props
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map(str::to_string).unwrap_or_else(|| {
                            if v.is_null() {
                                String::new()
                            } else {
                                v.to_string()
                            }
                        }),
                    )
                })
                .collect();
            if let Err(e) = shared.set_settings(&site, settings).await {
                return Some(error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e));
            }
            ok(StatusCode::OK, appsettings_json(&site))
        }
        (Method::GET, [f]) if eq(f, "functions") => {
            let list: Vec<Value> = app_config
                .as_ref()
                .map(|a| a.functions.iter().map(|f| function_json(&site, f, &prefix)).collect())
                .unwrap_or_default();
            ok(StatusCode::OK, json!({"value": list}))
        }
        (Method::GET, [f, name]) if eq(f, "functions") => match app_config.as_ref().and_then(|a| a.function(name)) {
            Some(func) => ok(StatusCode::OK, function_json(&site, func, &prefix)),
            None => function_not_found(app, name),
        },
        // Azure answers a deleted function with 204 and one that is not there with 404 (its REST
        // reference; azure-mgmt-web takes nothing but 204 as success).
        (Method::DELETE, [f, name]) if eq(f, "functions") => match app_config.as_ref().and_then(|a| a.function(name)) {
            Some(func) => match crate::host::delete_function(&site, &func.name).await {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e),
            },
            None => function_not_found(app, name),
        },
        (Method::POST, [f, name, l]) if eq(f, "functions") && eq(l, "listkeys") => {
            match app_config.as_ref().and_then(|a| a.function(name)) {
                Some(func) => {
                    let keys = site.keys();
                    let own: Map<String, Value> = keys
                        .functions
                        .get(&func.name)
                        .map(|k| k.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect())
                        .unwrap_or_default();
                    ok(StatusCode::OK, Value::Object(own))
                }
                None => function_not_found(app, name),
            }
        }
        (Method::POST, [h, d, l]) if eq(h, "host") && eq(d, "default") && eq(l, "listkeys") => {
            let keys = site.keys();
            ok(
                StatusCode::OK,
                json!({"masterKey": keys.master, "functionKeys": keys.function_keys, "systemKeys": keys.system_keys}),
            )
        }
        (Method::POST, [r]) if eq(r, "restart") => {
            site.restart().await;
            empty(StatusCode::OK)
        }
        (Method::POST, [s]) if eq(s, "syncfunctiontriggers") => {
            site.restart().await;
            empty(StatusCode::NO_CONTENT)
        }
        _ => return None,
    };
    Some(r)
}

fn function_not_found(app: &str, name: &str) -> Response {
    error(StatusCode::NOT_FOUND, "NotFound", format!("Error retrieving function '{name}' of site '{app}': not found."))
}

fn appsettings_json(site: &Site) -> Value {
    let r = site.record();
    json!({
        "id": format!("{}/config/appsettings", site_id(&r)),
        "name": "appsettings",
        "type": "Microsoft.Web/sites/config",
        "location": r.location,
        "properties": r.app_settings
    })
}

async fn put_site(
    shared: &Arc<Shared>,
    sub: &str,
    rg: &str,
    app: &str,
    body: &[u8],
    base: &str,
    api_version: &str,
) -> Response {
    if !valid_site_name(app) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidResourceName",
            format!("The site name '{app}' is invalid: use 2 to 60 letters, digits and hyphens, not starting or ending with a hyphen."),
        );
    }
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let settings = match body_settings(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let tags = body["tags"].as_object().cloned();
    let kind = body["kind"].as_str().filter(|k| !k.is_empty()).map(str::to_string);
    let location = body["location"].as_str().filter(|l| !l.is_empty()).map(str::to_string);
    if let Some(site) = shared.site(app) {
        let r = site.record();
        if !(eq(&r.subscription, sub) && eq(&r.resource_group, rg)) {
            return error(StatusCode::CONFLICT, "Conflict", format!("Website with given name {app} already exists."));
        }
        let mut record = r.clone();
        if let Some(k) = kind {
            record.kind = k;
        }
        if let Some(t) = tags {
            record.tags = t;
        }
        record.last_modified = chrono::Utc::now().to_rfc3339();
        let changed = settings.as_ref().is_some_and(|s| *s != record.app_settings);
        if let Some(s) = settings {
            record.app_settings = s;
        }
        if let Err(e) = site.save_record(record) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                format!("cannot write site.json: {e}"),
            );
        }
        if changed {
            site.restart().await;
        }
        return ok(StatusCode::OK, site_json(&site));
    }
    let Some(location) = location else {
        return error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    let mut record = SiteRecord::new(app, sub, rg, &location, kind.as_deref().unwrap_or("functionapp"));
    if let Some(t) = tags {
        record.tags = t;
    }
    record.app_settings = settings.unwrap_or_default();
    let site = match shared.create_site(record) {
        Ok(site) => site,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e),
    };
    let op = uuid::Uuid::new_v4().to_string();
    shared
        .operations
        .lock()
        .expect("operations")
        .insert(op.clone(), Operation { site: site.name.clone(), done_at: Instant::now() + PROVISIONING });
    let loc = location.to_lowercase().replace(' ', "");
    let url = format!("{base}/subscriptions/{sub}/providers/Microsoft.Web/locations/{loc}/operationResults/{op}?api-version={api_version}");
    let mut r = empty(StatusCode::ACCEPTED);
    if let Ok(v) = http::HeaderValue::from_str(&url) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_names_follow_the_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(check_bearer(&h, None).unwrap_err().0, "AuthenticationFailed");
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(check_bearer(&h, None).unwrap_err().1.contains("invalid format"));
        h.insert("authorization", "Bearer tok".parse().unwrap());
        assert!(check_bearer(&h, None).is_ok());
        assert!(check_bearer(&h, Some("tok")).is_ok());
        assert_eq!(check_bearer(&h, Some("other")).unwrap_err().0, "InvalidAuthenticationToken");
        assert!(valid_site_name("my-app-1"));
        assert!(!valid_site_name("-x") && !valid_site_name("a") && !valid_site_name("a_b") && !valid_site_name("../x"));
    }
}
