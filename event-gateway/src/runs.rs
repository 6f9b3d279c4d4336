//! The runs API of the durable conductor ([`crate::conductor`]), beside the management API and behind
//! the same bearer token:
//!
//! - `POST /runs` `{"composition": NAME, "program": {...}?, "input": ..., "id": ID?, "wait": SECONDS?}`
//!   starts a run of the composition registered as `NAME` ([`crate::compositions`]), or of `program` (a
//!   portable JSON form, `{"faas":"composition/v1",...}`) when one is given, and answers 201 with its
//!   record; with `wait` (at most 300), it waits that long for the run to end and answers 200 with the
//!   ended record, or 202 with the running one.
//!   With `"mode": "express"`, the run is done in memory instead, nothing stored, and always waited
//!   for (at most 300 s): 200 `{"status", "result" | "error", "steps", "duration_ms", ...}`.
//! - `GET /runs?after=ID&limit=N&composition=NAME&status=STATUS` lists runs by id (`{"runs": [...],
//!   "next": ID?}`; the filters apply within each page, so a page may hold fewer than `limit`).
//! - `GET /runs/{id}?wait=SECONDS` one run (status, current step, the last steps, result or error).
//! - `DELETE /runs/{id}` cancels a running run (answers its record; a run already over is unchanged).
//! - `PUT /compositions/{name}`, `GET /compositions`, `GET /compositions/{name}`,
//!   `DELETE /compositions/{name}`: the registered compositions ([`crate::compositions`]).
//!
//! Errors are the management API's: `{"error": ..., "field": ...}` with 400 (invalid program, input or
//! id, naming the JSON path), 404, 409 (the id is taken) or 503 (the store failed).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::compositions::{Compositions, RegisteredComposition};
use crate::conductor::{Conductor, RunError, RunRecord, RunStatus};
use crate::management::{authorize, json_body_limited, ManagementState};
use crate::sink::SinkClient;
use crate::subscription::ApiError;

/// Largest `POST /runs` body: the program and the input.
pub const MAX_RUN_BODY: usize = 1 << 20;

/// Longest `wait` a request may ask for, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 300;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    /// The composition's name (shown in the record).
    composition: String,
    /// Its portable JSON form; `None`: the one registered as `composition`.
    #[serde(default)]
    program: Option<Value>,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    wait: Option<u64>,
    /// `durable` (the default) or `express`.
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
    composition: Option<String>,
    status: Option<String>,
}

/// What the routes share.
struct Api {
    conductor: Arc<Conductor>,
    compositions: Compositions,
    /// How express runs reach their steps.
    sinks: Arc<SinkClient>,
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        match e {
            RunError::Invalid(m) => ApiError::bad_request(m),
            RunError::Exists(id) => ApiError::conflict(format!("run `{id}` exists already")),
            RunError::Store(m) => ApiError::unavailable(m),
        }
    }
}

fn wait_of(wait: Option<u64>) -> Result<Option<Duration>, ApiError> {
    match wait {
        Some(s) if s > MAX_WAIT_SECONDS => {
            Err(ApiError::invalid("wait", format!("is at most {MAX_WAIT_SECONDS} seconds; got {s}")))
        }
        Some(0) | None => Ok(None),
        Some(s) => Ok(Some(Duration::from_secs(s))),
    }
}

fn answer(status: StatusCode, record: &RunRecord) -> Response {
    (status, Json(record)).into_response()
}

async fn start(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let request: StartRun = json_body_limited(&headers, body, "run", MAX_RUN_BODY).await?;
    if let Err(e) = faas_api::validate_function_name(&request.composition) {
        return Err(ApiError::invalid("composition", e.message()));
    }
    let wait = wait_of(request.wait)?;
    let program = match request.program {
        Some(program) => program,
        None => match api.compositions.get(&request.composition).await? {
            Some(registered) => registered.program,
            None => {
                return Err(ApiError::not_found(format!(
                    "no composition `{}` is registered with the gateway (PUT /compositions/{}, or `faas deploy` \
                     while the gateway runs), and the request gives no `program`",
                    request.composition, request.composition
                )))
            }
        },
    };
    let conductor = &api.conductor;
    match request.mode.as_deref() {
        None | Some("durable") => {}
        Some("express") => {
            if request.id.is_some() || request.wait.is_some() {
                let field = if request.id.is_some() { "id" } else { "wait" };
                return Err(ApiError::invalid(
                    field,
                    "an express run is not stored: it has no id, and it is always waited for",
                ));
            }
            let started = std::time::Instant::now();
            let limit = Duration::from_secs(MAX_WAIT_SECONDS);
            let (outcome, steps) = conductor.express(&api.sinks, &program, request.input, limit).await?;
            let mut answer = serde_json::json!({
                "composition": request.composition,
                "mode": "express",
                "steps": steps,
                "duration_ms": started.elapsed().as_millis() as u64,
            });
            match outcome {
                Ok(result) => {
                    answer["status"] = "succeeded".into();
                    answer["result"] = result;
                }
                Err(e) => {
                    answer["status"] = "failed".into();
                    answer["error"] = serde_json::from_slice(&e.to_json()).unwrap_or(Value::Null);
                }
            }
            return Ok(Json(answer).into_response());
        }
        Some(other) => {
            return Err(ApiError::invalid("mode", format!("`{other}` is not a run mode: durable or express")));
        }
    }
    let record = conductor.start(&request.composition, &program, request.input, request.id).await?;
    let Some(wait) = wait else { return Ok(answer(StatusCode::CREATED, &record)) };
    let record = conductor.wait(&record.id, wait).await?.unwrap_or(record);
    let status = if record.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok(answer(status, &record))
}

async fn list(State(api): State<Arc<Api>>, Query(query): Query<ListQuery>) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(serde_json::from_value::<RunStatus>(Value::String(s.to_string())).map_err(|_| {
            ApiError::invalid("status", format!("`{s}` is not a run status: running, succeeded, failed or cancelled"))
        })?),
    };
    let (mut runs, next) = api.conductor.list(query.after.as_deref(), query.limit.unwrap_or(100)).await?;
    runs.retain(|r| {
        query.composition.as_deref().is_none_or(|c| r.composition == c) && status.is_none_or(|s| r.status == s)
    });
    Ok(Json(serde_json::json!({ "runs": runs, "next": next })).into_response())
}

async fn get_run(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let record = match wait_of(query.wait)? {
        Some(wait) => api.conductor.wait(&id, wait).await?,
        None => api.conductor.record(&id).await?,
    };
    match record {
        Some(record) => Ok(answer(StatusCode::OK, &record)),
        None => Err(ApiError::not_found(format!("no run `{id}`"))),
    }
}

async fn cancel(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match api.conductor.cancel(&id).await? {
        Some(record) => Ok(answer(StatusCode::OK, &record)),
        None => Err(ApiError::not_found(format!("no run `{id}`"))),
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn put_composition(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let program: Value = json_body_limited(&headers, body, "composition", MAX_RUN_BODY).await?;
    let (registered, created) = api.compositions.put(&name, program).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(registered)).into_response())
}

async fn list_compositions(State(api): State<Arc<Api>>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    let (found, next) = api.compositions.list(query.after.as_deref(), query.limit.unwrap_or(100)).await?;
    Ok(Json(serde_json::json!({ "compositions": found, "next": next })).into_response())
}

async fn get_composition(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let found: Option<RegisteredComposition> = api.compositions.get(&name).await?;
    match found {
        Some(c) => Ok(Json(c).into_response()),
        None => Err(ApiError::not_found(format!("no composition `{name}` is registered with the gateway"))),
    }
}

async fn delete_composition(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    api.compositions.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The runs and compositions routes, behind the management token of `management`.
pub fn router(
    conductor: Arc<Conductor>,
    compositions: Compositions,
    sinks: Arc<SinkClient>,
    management: ManagementState,
) -> Router {
    Router::new()
        .route("/runs", get(list).post(start))
        .route("/runs/{id}", get(get_run).delete(cancel))
        .route("/compositions", get(list_compositions))
        .route("/compositions/{name}", put(put_composition).get(get_composition).delete(delete_composition))
        .route_layer(axum::middleware::from_fn_with_state(management, authorize))
        .with_state(Arc::new(Api { conductor, compositions, sinks }))
}
