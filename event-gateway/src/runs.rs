//! The runs API of the durable conductor ([`crate::conductor`]), beside the management API and behind
//! the same bearer token:
//!
//! - `POST /runs` `{"composition": NAME, "program": {...}, "input": ..., "id": ID?, "wait": SECONDS?}`
//!   starts a run of `program` (the composition's portable JSON form, `{"faas":"composition/v1",...}`)
//!   and answers 201 with its record; with `wait` (at most 300), it waits that long for the run to end
//!   and answers 200 with the ended record, or 202 with the running one.
//! - `GET /runs?after=ID&limit=N` lists runs by id (`{"runs": [...], "next": ID?}`).
//! - `GET /runs/{id}?wait=SECONDS` one run (status, current step, the last steps, result or error).
//! - `DELETE /runs/{id}` cancels a running run (answers its record; a run already over is unchanged).
//!
//! Errors are the management API's: `{"error": ..., "field": ...}` with 400 (invalid program, input or
//! id, naming the JSON path), 404, 409 (the id is taken) or 503 (the store failed).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::conductor::{Conductor, RunError, RunRecord};
use crate::management::{authorize, json_body_limited, ManagementState};
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
    /// Its portable JSON form.
    program: Value,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    wait: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
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

async fn start(State(conductor): State<Arc<Conductor>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let request: StartRun = json_body_limited(&headers, body, "run", MAX_RUN_BODY).await?;
    if let Err(e) = faas_api::validate_function_name(&request.composition) {
        return Err(ApiError::invalid("composition", e.message()));
    }
    let wait = wait_of(request.wait)?;
    let record = conductor.start(&request.composition, &request.program, request.input, request.id).await?;
    let Some(wait) = wait else { return Ok(answer(StatusCode::CREATED, &record)) };
    let record = conductor.wait(&record.id, wait).await?.unwrap_or(record);
    let status = if record.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok(answer(status, &record))
}

async fn list(State(conductor): State<Arc<Conductor>>, Query(query): Query<ListQuery>) -> Result<Response, ApiError> {
    let (runs, next) = conductor.list(query.after.as_deref(), query.limit.unwrap_or(100)).await?;
    Ok(Json(serde_json::json!({ "runs": runs, "next": next })).into_response())
}

async fn get_run(
    State(conductor): State<Arc<Conductor>>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let record = match wait_of(query.wait)? {
        Some(wait) => conductor.wait(&id, wait).await?,
        None => conductor.record(&id).await?,
    };
    match record {
        Some(record) => Ok(answer(StatusCode::OK, &record)),
        None => Err(ApiError::not_found(format!("no run `{id}`"))),
    }
}

async fn cancel(State(conductor): State<Arc<Conductor>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match conductor.cancel(&id).await? {
        Some(record) => Ok(answer(StatusCode::OK, &record)),
        None => Err(ApiError::not_found(format!("no run `{id}`"))),
    }
}

/// The runs routes, behind the management token of `management`.
pub fn router(conductor: Arc<Conductor>, management: ManagementState) -> Router {
    Router::new()
        .route("/runs", get(list).post(start))
        .route("/runs/{id}", get(get_run).delete(cancel))
        .route_layer(axum::middleware::from_fn_with_state(management, authorize))
        .with_state(conductor)
}
