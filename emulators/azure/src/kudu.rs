//! A site's Kudu (its scm host, `<app>.scm.azurewebsites.net`): zip deploy, the deployment
//! status, and the virtual file system over the site's `LogFiles` and `site/wwwroot`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use faas_packaging::unpack::{Archive, Limits, UnpackError};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};

use crate::site::{self, DeployError, Site};
use crate::Shared;

/// The limits zip deploy applies by default (our own: Kudu documents none): 512 MiB zipped,
/// 1 GiB unzipped, 100,000 entries. [`crate::Emulator::set_package_limits`] changes them.
///
/// ```
/// let l = faas_emulator_azure::DEFAULT_PACKAGE_LIMITS;
/// assert_eq!((l.max_zipped, l.max_unzipped, l.max_entries), (512 << 20, 1 << 30, 100_000));
/// ```
pub const DEFAULT_PACKAGE_LIMITS: Limits =
    Limits { max_zipped: 512 << 20, max_unzipped: 1 << 30, max_entries: 100_000 };

/// Kudu's answer while another deployment runs.
const IN_PROGRESS: &str = "There is a deployment currently in progress. Please try again when it completes.";

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.into()).into_response()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, axum::Json(value.clone())).into_response()
}

/// Serves one request to a site's scm host.
pub(crate) async fn handle(shared: Arc<Shared>, site: Arc<Site>, request: http::Request<AxumBody>) -> Response {
    if let Err((_, message)) = crate::arm::check_bearer(request.headers(), shared.options.token.as_deref()) {
        let mut r = text(StatusCode::UNAUTHORIZED, message);
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        return r;
    }
    let host =
        request.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_string();
    let scm = format!("http://{host}");
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    let lower = path.to_ascii_lowercase();
    if lower == "/api/zipdeploy" || lower == "/api/zipdeploy/" {
        if method != Method::POST && method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "zipdeploy takes POST or PUT");
        }
        let is_async = form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.eq_ignore_ascii_case("isAsync") && v.eq_ignore_ascii_case("true"));
        return zipdeploy(shared, site, request.into_body(), is_async, &scm).await;
    }
    if let Some(rest) = path.strip_prefix("/api/vfs") {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "this local Kudu's VFS is read-only");
        }
        return vfs(&site, rest.trim_start_matches('/'), &scm);
    }
    if method == Method::GET {
        let parts: Vec<&str> = lower.trim_start_matches('/').trim_end_matches('/').split('/').collect();
        match parts.as_slice() {
            ["api", "deployments"] => {
                let list: Vec<Value> = latest_deployment(&site).map(|d| vec![public(&d)]).unwrap_or_default();
                return json_response(StatusCode::OK, &Value::Array(list));
            }
            ["api", "deployments", id] => {
                return match deployment(&site, id) {
                    Some(d) => json_response(StatusCode::OK, &public(&d)),
                    None => text(StatusCode::NOT_FOUND, format!("No log found for '{id}'.")),
                }
            }
            ["api", "deployments", id, "log"] => {
                return match deployment(&site, id) {
                    Some(d) => json_response(StatusCode::OK, &d["log"]),
                    None => text(StatusCode::NOT_FOUND, format!("No log found for '{id}'.")),
                }
            }
            _ => {}
        }
    }
    text(StatusCode::NOT_FOUND, format!("No route matches {method} {path} on this local Kudu."))
}

fn deployments_dir(site: &Site) -> PathBuf {
    site.dir.join("data").join("deployments")
}

fn save_deployment(site: &Site, record: &Value) {
    let dir = deployments_dir(site);
    let id = record["id"].as_str().unwrap_or("unknown");
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    let wrote = site::write_atomic(&dir.join(format!("{id}.json")), &bytes)
        .and_then(|()| site::write_atomic(&dir.join("latest"), id.as_bytes()));
    if let Err(e) = wrote {
        tracing::warn!(site = %site.name, error = %e, "cannot write the deployment record");
    }
}

fn deployment(site: &Site, id: &str) -> Option<Value> {
    let id = if id == "latest" {
        std::fs::read_to_string(deployments_dir(site).join("latest")).ok()?.trim().to_string()
    } else {
        id.to_string()
    };
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    serde_json::from_slice(&std::fs::read(deployments_dir(site).join(format!("{id}.json"))).ok()?).ok()
}

fn latest_deployment(site: &Site) -> Option<Value> {
    deployment(site, "latest")
}

/// A record as the API shows it (without its log).
fn public(record: &Value) -> Value {
    let mut r = record.clone();
    if let Value::Object(m) = &mut r {
        m.remove("log");
    }
    r
}

fn log_entry(record: &mut Value, message: &str, kind: u8) {
    let entry = json!({
        "log_time": site::now_text(),
        "id": uuid::Uuid::new_v4().simple().to_string(),
        "message": message,
        "type": kind,
        "details_url": null
    });
    if let Some(list) = record["log"].as_array_mut() {
        list.push(entry);
    }
}

fn set_status(record: &mut Value, status: u8, text: &str) {
    record["status"] = json!(status);
    record["status_text"] = json!(text);
    record["progress"] = json!(text);
}

/// Why a package was refused, worded for the deploy client.
fn package_error(e: &UnpackError) -> String {
    match e {
        UnpackError::NotAZip(inner) => format!("the package is not a valid zip file: {inner}"),
        UnpackError::ZippedTooLarge { .. }
        | UnpackError::UnzippedTooLarge { .. }
        | UnpackError::TooManyEntries { .. } => {
            format!("the package is too large: {e}")
        }
        other => format!("the package cannot be deployed: {other}"),
    }
}

async fn zipdeploy(shared: Arc<Shared>, site: Arc<Site>, body: AxumBody, is_async: bool, scm: &str) -> Response {
    let Ok(guard) = site.deploying.clone().try_lock_owned() else {
        return text(StatusCode::CONFLICT, IN_PROGRESS);
    };
    let limits = shared.package_limits();
    let bytes = match http_body_util::Limited::new(body, usize::try_from(limits.max_zipped + 1).unwrap_or(usize::MAX))
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "the package is too large: the zip is over {} bytes; at most {} are accepted",
                    limits.max_zipped, limits.max_zipped
                ),
            )
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("the package could not be read: {e}")),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let now = site::now_text();
    let last_success = latest_deployment(&site).and_then(|d| d["last_success_end_time"].as_str().map(str::to_string));
    let mut record = json!({
        "id": id,
        "status": 0,
        "status_text": "",
        "author_email": "N/A",
        "author": "N/A",
        "deployer": "ZipDeploy",
        "message": "Created via a push deployment",
        "progress": "",
        "received_time": now,
        "start_time": now,
        "end_time": null,
        "last_success_end_time": last_success,
        "complete": false,
        "active": false,
        "is_temp": false,
        "is_readonly": true,
        "url": format!("{scm}/api/deployments/{id}"),
        "log_url": format!("{scm}/api/deployments/{id}/log"),
        "site_name": site.name,
        "log": []
    });
    log_entry(&mut record, "Received push deployment (zip).", 0);
    save_deployment(&site, &record);
    if is_async {
        let site2 = site.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            let _ = run_deployment(&site2, bytes, limits, record).await;
        });
        shared.tasks.track(task);
        let mut r = (StatusCode::ACCEPTED, AxumBody::empty()).into_response();
        if let Ok(v) = http::HeaderValue::from_str(&format!("{scm}/api/deployments/latest")) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        return r;
    }
    let _guard = guard;
    match run_deployment(&site, bytes, limits, record).await {
        Ok(()) => (StatusCode::OK, AxumBody::empty()).into_response(),
        Err(e) if e.is_bad_package() => text(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Unpacks, checks and activates a package, keeping the deployment record up to date.
async fn run_deployment(site: &Arc<Site>, bytes: Bytes, limits: Limits, mut record: Value) -> Result<(), DeployError> {
    set_status(&mut record, 1, "Building");
    log_entry(&mut record, "Extracting the package.", 0);
    save_deployment(site, &record);
    let staged = site::staging_dir(site);
    let target = staged.clone();
    let unpacked = tokio::task::spawn_blocking(move || -> Result<u64, DeployError> {
        let _ = std::fs::remove_dir_all(&target);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DeployError::Io(e.to_string()))?;
        }
        let archive = Archive::open(&bytes, limits).map_err(|e| DeployError::Package(package_error(&e)))?;
        archive.extract(&target).map_err(|e| match e {
            UnpackError::Io { .. } => DeployError::Io(e.to_string()),
            other => DeployError::Package(package_error(&other)),
        })
    })
    .await
    .unwrap_or_else(|e| Err(DeployError::Io(format!("the unpacking crashed: {e}"))));
    let result = match unpacked {
        Ok(n) => {
            log_entry(&mut record, &format!("Extracted {n} bytes."), 0);
            set_status(&mut record, 2, "Deploying");
            save_deployment(site, &record);
            site::activate(site, &staged).await
        }
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    let end = site::now_text();
    record["end_time"] = json!(end);
    record["complete"] = json!(true);
    match &result {
        Ok(()) => {
            set_status(&mut record, 4, "");
            record["active"] = json!(true);
            record["last_success_end_time"] = json!(end);
            log_entry(&mut record, "Deployment successful.", 0);
        }
        Err(e) => {
            set_status(&mut record, 3, &e.to_string());
            log_entry(&mut record, &format!("Deployment failed: {e}"), 2);
        }
    }
    save_deployment(site, &record);
    result
}

/// What Kudu calls a file's type.
fn mime(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "log" | "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "js" => "application/javascript",
        "xml" => "text/xml",
        "zip" => "application/x-zip-compressed",
        _ => "application/octet-stream",
    }
}

fn time_text(t: std::time::SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    crate::json::local_roundtrip(&t)
}

/// Maps a VFS path (relative to `/home`) to a file of the site: `LogFiles/...` and
/// `site/wwwroot/...`; `None` for anything else (or a path that climbs).
fn vfs_target(site: &Site, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut parts = rel.split('/').filter(|s| !s.is_empty());
    match (parts.next(), parts.next()) {
        (Some("LogFiles"), _) => {
            let rest: PathBuf = rel.split('/').skip(1).filter(|s| !s.is_empty()).collect();
            Some(site.dir.join("LogFiles").join(rest))
        }
        (Some("site"), Some("wwwroot")) => {
            let rest: PathBuf = rel.split('/').skip(2).filter(|s| !s.is_empty()).collect();
            Some(site.wwwroot().join(rest))
        }
        _ => None,
    }
}

fn entry_json(name: &str, rel: &str, meta: Option<&std::fs::Metadata>, is_dir: bool, scm: &str) -> Value {
    let (mtime, crtime, size) = match meta {
        Some(m) => {
            let mtime = m.modified().map(time_text).unwrap_or_default();
            let crtime = m.created().map(time_text).unwrap_or_else(|_| mtime.clone());
            (mtime, crtime, if is_dir { 0 } else { m.len() })
        }
        None => {
            let now = time_text(std::time::SystemTime::now());
            (now.clone(), now, 0)
        }
    };
    let rel = if is_dir { format!("{}/", rel.trim_end_matches('/')) } else { rel.to_string() };
    json!({
        "name": name,
        "size": size,
        "mtime": mtime,
        "crtime": crtime,
        "mime": if is_dir { "inode/directory" } else { mime(name) },
        "href": format!("{scm}/api/vfs/{rel}"),
        "path": format!("/home/{rel}")
    })
}

fn vfs(site: &Site, raw: &str, scm: &str) -> Response {
    let rel = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    let dir_wanted = rel.is_empty() || rel.ends_with('/');
    let trimmed = rel.trim_end_matches('/');
    // The virtual directories above the two that map to files.
    match trimmed {
        "" => {
            let list = vec![
                entry_json(
                    "LogFiles",
                    "LogFiles",
                    std::fs::metadata(site.dir.join("LogFiles")).ok().as_ref(),
                    true,
                    scm,
                ),
                entry_json("site", "site", std::fs::metadata(&site.dir).ok().as_ref(), true, scm),
            ];
            return json_response(StatusCode::OK, &Value::Array(list));
        }
        "site" => {
            let list =
                vec![entry_json("wwwroot", "site/wwwroot", std::fs::metadata(site.wwwroot()).ok().as_ref(), true, scm)];
            return json_response(StatusCode::OK, &Value::Array(list));
        }
        _ => {}
    }
    let Some(target) = vfs_target(site, trimmed) else {
        return text(StatusCode::NOT_FOUND, format!("'/home/{trimmed}' not found."));
    };
    let Ok(meta) = std::fs::metadata(&target) else {
        return text(StatusCode::NOT_FOUND, format!("'/home/{trimmed}' not found."));
    };
    if meta.is_dir() {
        if !dir_wanted {
            let mut r = (StatusCode::TEMPORARY_REDIRECT, AxumBody::empty()).into_response();
            if let Ok(v) = http::HeaderValue::from_str(&format!("{scm}/api/vfs/{trimmed}/")) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            return r;
        }
        let mut entries: Vec<(String, std::fs::Metadata)> = match std::fs::read_dir(&target) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok()?)))
                .collect(),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let list: Vec<Value> = entries
            .iter()
            .map(|(name, m)| entry_json(name, &format!("{trimmed}/{name}"), Some(m), m.is_dir(), scm))
            .collect();
        return json_response(StatusCode::OK, &Value::Array(list));
    }
    if dir_wanted {
        return text(StatusCode::NOT_FOUND, format!("'/home/{trimmed}/' not found."));
    }
    match std::fs::read(&target) {
        Ok(bytes) => {
            let name = trimmed.rsplit('/').next().unwrap_or(trimmed);
            let mut r = (StatusCode::OK, AxumBody::from(bytes)).into_response();
            r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(mime(name)));
            if let Ok(m) = meta.modified() {
                let t: chrono::DateTime<chrono::Utc> = m.into();
                if let Ok(v) = http::HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
                    r.headers_mut().insert(http::header::LAST_MODIFIED, v);
                }
                if let Ok(v) = http::HeaderValue::from_str(&format!("\"{:x}\"", t.timestamp_nanos_opt().unwrap_or(0))) {
                    r.headers_mut().insert(http::header::ETAG, v);
                }
            }
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
