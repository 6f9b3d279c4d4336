//! Invocation: leasing a warm or new execution environment (up to `max_environments` at once, then 429), running
//! synchronous and asynchronous (`Event`) invocations, async retries with back-off, and the per-function
//! record of every invocation attempt.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use faas_supervisor::GateError;

use crate::environment::{Environment, EnvironmentSpec, InvocationData, InvocationOutcome};
use crate::exceptions::LambdaException;
use crate::runtime_api::error_body;
use crate::Shared;

/// Records kept per function (oldest dropped first).
const MAX_RECORDS: usize = 1000;
/// Bytes of a response kept in a record.
const MAX_RECORDED_RESPONSE: usize = 64 * 1024;
/// How often an async event is retried while the function is throttled before it is dropped.
const MAX_THROTTLE_RETRIES: u32 = 100;

/// How an invocation was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// `RequestResponse`: the caller waited for the result.
    RequestResponse,
    /// `Event`: queued, run in the background, retried on error.
    Event,
}

/// One invocation attempt, as the emulator saw it. Async retries share the request id and count `attempt` up.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    /// The function's name.
    pub function: String,
    /// The invocation's request id (`x-amzn-RequestId`, `Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// Sync or async.
    pub invocation_type: InvocationType,
    /// 1 for the first attempt; async retries count up.
    pub attempt: u32,
    /// When the attempt started.
    pub started_at: SystemTime,
    /// How long it ran.
    pub duration: Duration,
    /// `None` on success, else the error type (`FixtureError`, `Sandbox.Timeout`, `Runtime.ExitError`, ...).
    pub function_error: Option<String>,
    /// The response or error body (at most 64 KiB kept).
    pub response: Vec<u8>,
    /// The attempt's log: START line, the function's output, END and REPORT lines.
    pub log: String,
}

/// What the caller supplies for one invocation.
#[derive(Debug, Clone)]
pub(crate) struct InvokeInput {
    pub request_id: String,
    pub payload: Bytes,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub tenant_id: Option<String>,
}

/// Runs one attempt on a warm or new environment. Errors are service-level (not found, throttled).
pub(crate) async fn invoke_once(
    shared: &Arc<Shared>,
    name: &str,
    input: &InvokeInput,
) -> Result<InvocationOutcome, LambdaException> {
    let function = shared.function(name)?;
    let environments = {
        let state = function.state.lock().unwrap();
        if state.deleted {
            return Err(shared.not_found(&state.config.name));
        }
        state.environments.clone()
    };
    // The lease comes before the configuration is read: a change after it retires what this attempt starts.
    let mut lease = environments.lease(Duration::ZERO).await.map_err(|e| match e {
        GateError::Closed => shared.not_found(name),
        GateError::Full { .. } | GateError::TimedOut(_) => LambdaException::too_many_concurrent(),
    })?;
    let (spec, timeout, arn) = {
        let state = function.state.lock().unwrap();
        if state.deleted {
            return Err(shared.not_found(&state.config.name));
        }
        let spec = EnvironmentSpec {
            function_name: state.config.name.clone(),
            handler: state.config.handler.clone(),
            memory: state.config.memory,
            region: shared.options.region.clone(),
            code_dir: state.code.dir.clone(),
            variables: state.config.environment.clone(),
            log_dir: shared.state_dir.join("logs"),
            runtime_api_base: shared.options.runtime_api_base.clone(),
        };
        (spec, Duration::from_secs(state.config.timeout), shared.arn(&state.config.name))
    };
    let env = match lease.take_warm() {
        Some(env) => env,
        None => match Environment::spawn(&spec).await {
            Ok(env) => env,
            Err(e) => return Ok(unstartable(&spec, &e)),
        },
    };
    let data = InvocationData {
        request_id: input.request_id.clone(),
        payload: input.payload.clone(),
        invoked_arn: arn,
        trace_id: input.trace_id.clone(),
        client_context: input.client_context.clone(),
        cognito_identity: None,
        tenant_id: input.tenant_id.clone(),
        timeout,
    };
    let outcome = env.invoke(data).await;
    // A change (new code/configuration, delete) retires only idle environments; a busy one is not taken
    // back, nor one that cannot go on.
    if outcome.fatal {
        drop(env);
    } else {
        lease.give_back(env);
    }
    Ok(outcome)
}

/// Lambda reports an unstartable bootstrap as Runtime.InvalidEntrypoint.
fn unstartable(spec: &EnvironmentSpec, e: &std::io::Error) -> InvocationOutcome {
    let message = format!("Error: fork/exec {}: {e}", spec.code_dir.join("bootstrap").display());
    InvocationOutcome {
        body: error_body("Runtime.InvalidEntrypoint", &message),
        content_type: "application/json".into(),
        function_error: Some("Runtime.InvalidEntrypoint".into()),
        fatal: true,
        log: format!("{message}\nRuntime.InvalidEntrypoint\n"),
        duration: Duration::ZERO,
    }
}

/// Stores a record of one attempt (and echoes its log when asked).
pub(crate) fn record(
    shared: &Shared,
    name: &str,
    input: &InvokeInput,
    invocation_type: InvocationType,
    attempt: u32,
    started_at: SystemTime,
    outcome: &InvocationOutcome,
) {
    if shared.options.echo_logs {
        for line in outcome.log.lines() {
            eprintln!("[{name}] {line}");
        }
    }
    let record = InvocationRecord {
        function: name.to_string(),
        request_id: input.request_id.clone(),
        invocation_type,
        attempt,
        started_at,
        duration: outcome.duration,
        function_error: outcome.function_error.clone(),
        response: outcome.body[..outcome.body.len().min(MAX_RECORDED_RESPONSE)].to_vec(),
        log: outcome.log.clone(),
    };
    let mut records = shared.records.lock().unwrap();
    let list: &mut VecDeque<InvocationRecord> = records.entry(name.to_string()).or_default();
    if list.len() >= MAX_RECORDS {
        list.pop_front();
    }
    list.push_back(record);
}

/// Runs a synchronous invocation and records it.
pub(crate) async fn invoke_sync(
    shared: &Arc<Shared>,
    name: &str,
    input: InvokeInput,
) -> Result<InvocationOutcome, LambdaException> {
    let started_at = SystemTime::now();
    let outcome = invoke_once(shared, name, &input).await?;
    record(shared, name, &input, InvocationType::RequestResponse, 1, started_at, &outcome);
    Ok(outcome)
}

/// Queues an `Event` invocation: runs in the background with `async_retries` retries on function errors
/// (including timeouts and crashes), with exponential back-off from `retry_base`; throttling waits and retries.
pub(crate) fn invoke_async(shared: &Arc<Shared>, name: String, input: InvokeInput) -> Result<(), LambdaException> {
    if shared.async_pending.fetch_add(1, Ordering::SeqCst) >= crate::MAX_ASYNC_PENDING {
        shared.async_pending.fetch_sub(1, Ordering::SeqCst);
        return Err(LambdaException::too_many_concurrent());
    }
    let shared = shared.clone();
    let task_shared = shared.clone();
    let handle = tokio::spawn(async move {
        let shared = task_shared;
        let retries = shared.options.async_retries;
        let base = shared.options.retry_base;
        let mut attempt = 1u32;
        let mut throttled = 0u32;
        loop {
            let started_at = SystemTime::now();
            match invoke_once(&shared, &name, &input).await {
                Ok(outcome) => {
                    record(&shared, &name, &input, InvocationType::Event, attempt, started_at, &outcome);
                    if outcome.function_error.is_none() || attempt > retries {
                        if outcome.function_error.is_some() {
                            tracing::warn!(function = %name, request_id = %input.request_id, "async event failed after {attempt} attempts; dropped");
                        }
                        break;
                    }
                    let delay = base.saturating_mul(2u32.saturating_pow(attempt - 1));
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) if e.status == 429 && throttled < MAX_THROTTLE_RETRIES => {
                    throttled += 1;
                    tokio::time::sleep(base.max(Duration::from_millis(10))).await;
                }
                Err(e) => {
                    tracing::warn!(function = %name, request_id = %input.request_id, error = %e.message, "async event dropped");
                    break;
                }
            }
        }
        shared.async_pending.fetch_sub(1, Ordering::SeqCst);
    });
    shared.tasks.track(handle);
    Ok(())
}

/// Records of a function (oldest first).
pub(crate) fn records_of(shared: &Shared, name: &str) -> Vec<InvocationRecord> {
    shared.records.lock().unwrap().get(name).map(|l| l.iter().cloned().collect()).unwrap_or_default()
}

/// Type of the records map.
pub(crate) type Records = HashMap<String, VecDeque<InvocationRecord>>;
