//! The state service: what `cx.state()` of every function reaches, kept in the gateway's store.
//!
//! Each app's keys live under `state/<app>/` in the store's key–value side (the embedded log, or
//! JetStream KV when the gateway runs on NATS, so every replica serves one consistent state; per-key
//! revisions are the versions). Reads and writes are linearizable per key on both stores (see
//! `faas_gateway_store::kv`): once a write is answered, every later read of that key on any replica
//! sees it or a newer one.
//!
//! Routes, under [`PREFIX`] (`/state/v1`):
//! - `GET /state/v1/{app}/{key}`: 200 with the value's bytes and headers `faas-state-version` (and
//!   `faas-state-expires-ms` for a key with a time-to-live); 404 when absent.
//! - `PUT /state/v1/{app}/{key}`: writes the body (at most `faas_api::state::MAX_VALUE_BYTES`);
//!   `if-match: <version>` writes only if the key is at that version, `if-none-match: *` only if it
//!   is absent, `faas-state-ttl-ms: <ms>` gives it a time-to-live. 200 `{"version": n}`; a condition
//!   that does not hold is 409 (the portable `conflict` error, its message and the
//!   `faas-state-version` header naming the current version, absent when the key is).
//! - `DELETE /state/v1/{app}/{key}` (`if-match` optional): 200 `{"deleted": bool}`.
//! - `GET /state/v1/{app}?prefix=&after=&limit=`: a page of keys in byte order, each with its
//!   version, expiry and value (base64), and `next` when more follow.
//!
//! Every request carries `Authorization: Bearer <token>`: the app's own token
//! ([`app_token`], which the runners put in each function's environment), which reaches that app's
//! keys only, or the management token (listing an app's keys is a management task). Errors are the
//! portable error JSON (`{"kind", "errorType", "errorMessage"}`) with the kind's status.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use faas_api::state::{self as api, Version, MAX_PAGE, MAX_VALUE_BYTES};
use faas_api::Error;
use faas_gateway_store::kv::{Expect, KvStore};
use faas_gateway_store::StoreError;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

/// Where the state routes start.
pub const PREFIX: &str = "/state/v1";
/// The service's headers (one definition, shared with the client, `faas_host::state::HttpState`).
pub use faas_api::state::{EXPIRES_HEADER, TTL_HEADER, VERSION_HEADER};

/// App `app`'s state token ([`faas_api::state::app_token`]: HMAC-SHA256 of the app's name under
/// the gateway's management token), the one the runners put in each function's environment.
pub use faas_api::state::app_token;

/// What the state routes need.
#[derive(Clone)]
pub struct StateService {
    /// The store's key–value side.
    pub kv: Arc<dyn KvStore>,
    /// The management token (`None`: the state service is disabled, like the management API).
    pub token: Option<String>,
    /// Where operations are counted (`faas_gateway_state_operations_total`, ...).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The state routes (see the [module documentation](self)).
pub fn router(service: StateService) -> Router {
    let service = Arc::new(service);
    Router::new()
        .route("/state/v1/{app}", get(list))
        .route("/state/v1/{app}/{*key}", get(read).put(write).delete(remove))
        .layer(axum::middleware::from_fn_with_state(service.clone(), counted))
        // A value over the limit is refused by `write` with its own message; this bounds what is read.
        .layer(DefaultBodyLimit::max(MAX_VALUE_BYTES + 1))
        .with_state(service)
}

/// Counts every request by operation and outcome, with how long it took to answer.
async fn counted(
    State(service): State<Arc<StateService>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let op = match *request.method() {
        axum::http::Method::GET if request.uri().path().trim_end_matches('/').matches('/').count() <= 3 => "list",
        axum::http::Method::GET => "get",
        axum::http::Method::PUT => "set",
        axum::http::Method::DELETE => "delete",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let outcome = match response.status() {
        s if s.is_success() => "ok",
        StatusCode::NOT_FOUND if op == "get" => "absent",
        StatusCode::CONFLICT => "conflict",
        s if s.is_client_error() => "refused",
        _ => "failed",
    };
    service.metrics.state_operation(op, outcome, started.elapsed());
    response
}

/// A portable error as the state routes answer it.
struct Refused(Error);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, [(header::CONTENT_TYPE, "application/json")], self.0.to_json()).into_response();
        if let Some(current) = api::conflict_version(&self.0) {
            let value = current.map_or_else(|| "none".to_string(), |v| v.to_string());
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(VERSION_HEADER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused(e)
    }
}

/// Checks the bearer token for `app`: its own token, or the management token when `management`
/// may use it.
fn authorize(service: &StateService, headers: &HeaderMap, app: &str, management: bool) -> Result<(), Refused> {
    let Some(expected) = service.token.as_deref() else {
        return Err(Error::new(
            faas_api::ErrorKind::Unauthorized,
            "the state service is disabled: the gateway has no management token (set `token` in [gateway] of \
             faas.toml, or FAAS_GATEWAY_TOKEN)",
        )
        .into());
    };
    faas_api::validate_function_name(app)
        .map_err(|_| Error::bad_input(format!("`{app}` is not an app name (letters, digits, `-`, `_`)")))?;
    let Some(given) = crate::management::bearer(headers) else {
        return Err(Error::unauthorized("missing `Authorization: Bearer <token>` header").into());
    };
    let own = bool::from(given.as_bytes().ct_eq(app_token(expected, app).as_bytes()));
    let admin = management && bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
    if own || admin {
        Ok(())
    } else {
        Err(Error::unauthorized(format!("this token does not open the state of app `{app}`")).into())
    }
}

fn store_key(app: &str, key: &str) -> String {
    format!("state/{app}/{key}")
}

/// The store key of `key` of `app`, once the request's token opens `app` and `key` is valid.
fn opened(service: &StateService, headers: &HeaderMap, app: &str, key: &str) -> Result<String, Refused> {
    authorize(service, headers, app, false)?;
    api::check_key(key)?;
    Ok(store_key(app, key))
}

fn from_store(e: StoreError, key: &str) -> Error {
    match e {
        StoreError::Conflict { current, .. } => api::conflict(key, current.map(Version)),
        StoreError::BadKey { reason, .. } => Error::bad_input(format!("state key `{key}`: {reason}")),
        StoreError::ValueTooLarge { size, limit, .. } => Error::payload_too_large(format!(
            "the value for state key `{key}` is {size} bytes; the store's limit is {limit}"
        )),
        other => Error::unavailable(format!("the state store failed: {other}")),
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn expect_of(headers: &HeaderMap) -> Result<Expect, Error> {
    let text = |name: header::HeaderName| headers.get(&name).map(|v| v.to_str().map(|s| s.trim().trim_matches('"')));
    match (text(header::IF_MATCH), text(header::IF_NONE_MATCH)) {
        (Some(_), Some(_)) => Err(Error::bad_input("give `if-match` or `if-none-match`, not both")),
        (Some(Ok(v)), None) => v
            .parse()
            .map(Expect::Revision)
            .map_err(|_| Error::bad_input(format!("`if-match` must be a version a read returned, not `{v}`"))),
        (None, Some(Ok("*"))) => Ok(Expect::Absent),
        (None, Some(_)) => Err(Error::bad_input("`if-none-match` takes only `*` (write only if absent)")),
        (Some(Err(_)), None) => Err(Error::bad_input("`if-match` is not text")),
        (None, None) => Ok(Expect::Any),
    }
}

async fn read(
    State(service): State<Arc<StateService>>,
    Path((app, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let stored = opened(&service, &headers, &app, &key)?;
    let entry = service.kv.kv_get(&stored).await.map_err(|e| from_store(e, &key))?;
    let Some(entry) = entry else {
        return Err(Error::not_found(format!("state key `{key}` of app `{app}` is absent")).into());
    };
    let mut response = (StatusCode::OK, Body::from(entry.value)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(VERSION_HEADER, HeaderValue::from(entry.revision));
    if let Some(t) = entry.expires_at {
        h.insert(EXPIRES_HEADER, HeaderValue::from(epoch_ms(t)));
    }
    Ok(response)
}

async fn write(
    State(service): State<Arc<StateService>>,
    Path((app, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let stored = opened(&service, &headers, &app, &key)?;
    api::check_value(&key, body.len())?;
    let expect = expect_of(&headers)?;
    let ttl = match headers.get(TTL_HEADER).map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok())) {
        None => None,
        Some(Some(ms)) if ms >= 1 && Duration::from_millis(ms) <= api::MAX_TTL => Some(Duration::from_millis(ms)),
        Some(_) => return Err(Error::bad_input(format!("`{TTL_HEADER}` takes 1 to 31536000000 milliseconds")).into()),
    };
    let version = service.kv.kv_put(&stored, body, expect, ttl).await.map_err(|e| from_store(e, &key))?;
    let mut response = axum::Json(json!({ "version": version })).into_response();
    response.headers_mut().insert(VERSION_HEADER, HeaderValue::from(version));
    Ok(response)
}

async fn remove(
    State(service): State<Arc<StateService>>,
    Path((app, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let stored = opened(&service, &headers, &app, &key)?;
    let expect = match expect_of(&headers)? {
        Expect::Absent => return Err(Error::bad_input("a delete takes `if-match`, not `if-none-match`").into()),
        other => other,
    };
    let deleted = service.kv.kv_delete(&stored, expect).await.map_err(|e| from_store(e, &key))?;
    Ok(axum::Json(json!({ "deleted": deleted })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(service): State<Arc<StateService>>,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    authorize(&service, &headers, &app, true)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::bad_input(format!("`limit` takes 1 to {MAX_PAGE}, not {limit}")).into());
    }
    let base = store_key(&app, "");
    let after = query.after.as_deref().map(|a| store_key(&app, a));
    let page = service
        .kv
        .kv_list(&format!("{base}{}", query.prefix), after.as_deref(), limit)
        .await
        .map_err(|e| from_store(e, &query.prefix))?;
    let entries: Vec<serde_json::Value> = page
        .entries
        .into_iter()
        .map(|(k, e)| {
            json!({
                "key": k.strip_prefix(&base).unwrap_or(&k),
                "version": e.revision,
                "expiresMs": e.expires_at.map(epoch_ms),
                "value": base64::engine::general_purpose::STANDARD.encode(&e.value),
            })
        })
        .collect();
    let next = page.next.map(|k| k.strip_prefix(&base).unwrap_or(&k).to_string());
    Ok(axum::Json(json!({ "entries": entries, "next": next })).into_response())
}
