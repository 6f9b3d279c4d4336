//! Execution environments: one `bootstrap` process plus its own Runtime API server (PROTOCOLS.md §1.1) on
//! 127.0.0.1:0. One invocation at a time per environment; the pool in `invoke` reuses warm ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest response/error body a runtime may post: 6 MiB + 100 bytes (RIE `MaxPayloadSize`).
pub(crate) const MAX_RUNTIME_PAYLOAD: usize = 6 * 1024 * 1024 + 100;
/// How long a new environment may take to ask for its first invocation (Lambda's init phase limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// Output kept per invocation (the tail).
const MAX_LOG_KEPT: usize = 256 * 1024;
/// The environment's log file is truncated once this much has been consumed.
const LOG_TRUNCATE_AT: u64 = 8 * 1024 * 1024;

/// What the environment needs to know about its function.
#[derive(Debug, Clone)]
pub(crate) struct EnvironmentSpec {
    pub function_name: String,
    pub handler: String,
    pub memory: u64,
    pub region: String,
    pub code_dir: PathBuf,
    pub variables: BTreeMap<String, String>,
    pub log_dir: PathBuf,
    /// See [`crate::EmulatorOptions::runtime_api_base`] (already checked, without a trailing `/`).
    pub runtime_api_base: Option<String>,
}

/// Checks a Runtime API base path: `/` followed by path characters, no query or fragment. Returns it
/// without a trailing `/`, or `None` for `/` alone (the same as no base).
pub(crate) fn check_runtime_api_base(base: &str) -> Result<Option<String>, faas_api::Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "/-._~".contains(c);
    if !base.starts_with('/') || base.len() > 256 || !base.chars().all(ok_char) {
        return Err(faas_api::Error::bad_input(format!(
            "runtime_api_base must be a path such as `/.rt` (letters, digits, `/-._~`, at most 256 bytes), got `{base}`"
        )));
    }
    let trimmed = base.trim_end_matches('/');
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// One invocation handed to an environment.
#[derive(Debug)]
pub(crate) struct InvocationData {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub tenant_id: Option<String>,
    pub timeout: Duration,
}

/// How an invocation ended, as the caller of Invoke sees it.
#[derive(Debug, Clone)]
pub(crate) struct InvocationOutcome {
    pub body: Bytes,
    pub content_type: String,
    /// `Some(type)` when the function failed: the normalised error type (e.g. `Runtime.Unknown`,
    /// `Sandbox.Timeout`) or, for a runtime-reported error, the body's `errorType` when it has one.
    pub function_error: Option<String>,
    /// The environment cannot be reused (timeout, exit, init error).
    pub fatal: bool,
    /// START/output/END/REPORT log of this invocation.
    pub log: String,
    pub duration: Duration,
}

enum Reply {
    Response { body: Bytes, content_type: String },
    Error { body: Bytes, content_type: String, error_type: String },
    TooLarge,
}

#[derive(Debug, Clone)]
enum Fatal {
    InitError { body: Bytes, error_type: String },
    Exited(String),
}

struct Queued {
    data: InvocationData,
    picked: oneshot::Sender<()>,
    reply: oneshot::Sender<Reply>,
}

struct Current {
    request_id: String,
    reply: Option<oneshot::Sender<Reply>>,
}

struct RuntimeState {
    queue: tokio::sync::Mutex<mpsc::Receiver<Queued>>,
    current: Mutex<Option<Current>>,
    fatal: watch::Sender<Option<Fatal>>,
    invoked_any: AtomicBool,
    first_next: Mutex<Option<Instant>>,
}

/// A running execution environment.
pub(crate) struct Environment {
    pub id: String,
    queue: mpsc::Sender<Queued>,
    state: Arc<RuntimeState>,
    pid: u32,
    server: tokio::task::JoinHandle<()>,
    log_path: PathBuf,
    log_offset: AtomicU64,
    spawned_at: Instant,
    init_reported: AtomicBool,
    memory: u64,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("id", &self.id).field("pid", &self.pid).finish()
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// Go-style exit description, as RIE prints it (`exit status 3`, `signal: killed`).
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(9) => "signal: killed".into(),
        Some(11) => "signal: segmentation fault".into(),
        Some(6) => "signal: aborted".into(),
        Some(15) => "signal: terminated".into(),
        Some(n) => format!("signal: {n}"),
        None => "exit status unknown".into(),
    }
}

impl Environment {
    /// Starts the Runtime API server and the `bootstrap` process.
    pub async fn spawn(spec: &EnvironmentSpec) -> std::io::Result<Arc<Environment>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (queue_tx, queue_rx) = mpsc::channel(1);
        let (fatal_tx, _) = watch::channel(None);
        let state = Arc::new(RuntimeState {
            queue: tokio::sync::Mutex::new(queue_rx),
            current: Mutex::new(None),
            fatal: fatal_tx,
            invoked_any: AtomicBool::new(false),
            first_next: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = match &spec.runtime_api_base {
            Some(base) => Router::new().nest(base, runtime_router(state.clone())),
            None => runtime_router(state.clone()),
        };
        let runtime_api = match &spec.runtime_api_base {
            Some(base) => format!("http://{addr}{base}"),
            None => addr.to_string(),
        };
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "runtime API server stopped");
            }
        });

        std::fs::create_dir_all(&spec.log_dir)?;
        let log_path = spec.log_dir.join(format!("{id}.log"));
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let date = chrono::Utc::now().format("%Y/%m/%d");
        let mut command = tokio::process::Command::new(spec.code_dir.join("bootstrap"));
        command
            .current_dir(&spec.code_dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &spec.region)
            .env("AWS_DEFAULT_REGION", &spec.region)
            .env("_HANDLER", &spec.handler)
            .env("LAMBDA_TASK_ROOT", &spec.code_dir)
            .env("LAMBDA_RUNTIME_DIR", &spec.code_dir)
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.function_name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("{date}/[$LATEST]{id}"))
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            // Dummy credentials: the emulator has no IAM; SDK calls from the function will fail to authenticate
            // against real AWS, which is the point.
            .env("AWS_ACCESS_KEY_ID", "ASIAEMULATOR00000000")
            .env("AWS_SECRET_ACCESS_KEY", "emulator-secret-access-key")
            .env("AWS_SESSION_TOKEN", "emulator-session-token")
            .envs(&spec.variables)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(log_file.try_clone()?))
            .stderr(std::process::Stdio::from(log_file))
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                let _ = std::fs::remove_file(&log_path);
                return Err(e);
            }
        };
        let pid = child.id().unwrap_or(0);
        let watcher_state = state.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let text = match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("wait failed: {e}"),
            };
            watcher_state.fatal.send_if_modified(|f| {
                if f.is_none() {
                    *f = Some(Fatal::Exited(text));
                    true
                } else {
                    false
                }
            });
        });
        Ok(Arc::new(Environment {
            id,
            queue: queue_tx,
            state,
            pid,
            server,
            log_path,
            log_offset: AtomicU64::new(0),
            spawned_at: Instant::now(),
            init_reported: AtomicBool::new(false),
            memory: spec.memory,
        }))
    }

    fn fatal_now(&self) -> Option<Fatal> {
        self.state.fatal.borrow().clone()
    }

    /// Whether the process is still usable.
    pub fn alive(&self) -> bool {
        self.state.fatal.borrow().is_none()
    }

    /// Kills the process group and the Runtime API server.
    pub fn kill(&self) {
        let exited = matches!(*self.state.fatal.borrow(), Some(Fatal::Exited(_)));
        if !exited && self.pid > 0 {
            // SAFETY: kill(2) with a negative pid signals the process group we created with process_group(0);
            // the child has not been reaped yet (no Exited recorded), so the group id is still ours.
            unsafe {
                libc::kill(-(self.pid as i32), libc::SIGKILL);
            }
        }
        self.server.abort();
    }

    /// Runs one invocation to its end.
    pub async fn invoke(&self, data: InvocationData) -> InvocationOutcome {
        let request_id = data.request_id.clone();
        let timeout = data.timeout;
        let pre_output = self.take_output();
        let started = Instant::now();
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let mut fatal_rx = self.state.fatal.subscribe();
        let result: Result<Reply, Failure> = async {
            if self.queue.send(Queued { data, picked: picked_tx, reply: reply_tx }).await.is_err() {
                return Err(Failure::Fatal(self.fatal_now()));
            }
            // Phase 1: wait for the runtime to take the invocation (a cold start's init runs here).
            tokio::select! {
                biased;
                r = picked_rx => { if r.is_err() { return Err(Failure::Fatal(self.fatal_now())); } }
                _ = fatal_rx.wait_for(Option::is_some) => return Err(Failure::Fatal(self.fatal_now())),
                _ = tokio::time::sleep(INIT_LIMIT.max(timeout)) => return Err(Failure::Timeout),
            }
            // Phase 2: the function runs; the deadline started when /next handed the invocation out.
            let mut reply_rx = reply_rx;
            tokio::select! {
                biased;
                r = &mut reply_rx => r.map_err(|_| Failure::Fatal(self.fatal_now())),
                _ = fatal_rx.wait_for(Option::is_some) => {
                    // A reply posted just before the exit still counts.
                    match reply_rx.try_recv() {
                        Ok(reply) => Ok(reply),
                        Err(_) => Err(Failure::Fatal(self.fatal_now())),
                    }
                }
                _ = tokio::time::sleep(timeout) => Err(Failure::Timeout),
            }
        }
        .await;
        let duration = started.elapsed();
        let max_memory = self.max_memory_mb();
        let output = self.take_output();
        let init_duration = if !self.init_reported.swap(true, Ordering::SeqCst) {
            self.state.first_next.lock().unwrap().map(|t| t.duration_since(self.spawned_at))
        } else {
            None
        };
        let mut extra_log = String::new();
        let (body, content_type, function_error, fatal) = match result {
            Ok(Reply::Response { body, content_type }) => (body, content_type, None, false),
            Ok(Reply::Error { body, content_type, error_type }) => {
                let shown = body_error_type(&body).unwrap_or(error_type);
                (body, content_type, Some(shown), false)
            }
            Ok(Reply::TooLarge) => {
                let body = error_body(
                    "Function.ResponseSizeTooLarge",
                    &format!(
                        "Response payload size exceeded maximum allowed payload size ({MAX_RUNTIME_PAYLOAD} bytes)."
                    ),
                );
                (body, "application/json".into(), Some("Function.ResponseSizeTooLarge".into()), false)
            }
            Err(Failure::Timeout) => {
                // ⚠ UNCONFIRMED (PROTOCOLS.md §7): real Lambda's timeout text. We send errorType Sandbox.Timeout
                // and "<RequestId> Task timed out after N.00 seconds", RIE's wording prefixed with the id.
                let message = format!("{request_id} Task timed out after {:.2} seconds", timeout.as_secs_f64());
                extra_log = format!("{} {message}\n", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"));
                (
                    error_body("Sandbox.Timeout", &message),
                    "application/json".into(),
                    Some("Sandbox.Timeout".into()),
                    true,
                )
            }
            Err(Failure::Fatal(Some(Fatal::InitError { body, error_type }))) => {
                let shown = body_error_type(&body).unwrap_or(error_type.clone());
                let body = if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                    body
                } else {
                    error_body(&error_type, &String::from_utf8_lossy(&body))
                };
                extra_log = format!("INIT_REPORT Status: error\tError Type: {error_type}\n");
                (body, "application/json".into(), Some(shown), true)
            }
            Err(Failure::Fatal(exit)) => {
                let why = match exit {
                    Some(Fatal::Exited(text)) => text,
                    _ => "exit status unknown".into(),
                };
                let message = format!("RequestId: {request_id} Error: Runtime exited with error: {why}");
                extra_log = format!("{message}\nRuntime.ExitError\n");
                (
                    error_body("Runtime.ExitError", &message),
                    "application/json".into(),
                    Some("Runtime.ExitError".into()),
                    true,
                )
            }
        };
        let billed = duration.as_millis().max(1);
        let mut report = format!(
            "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {max_memory} MB",
            duration.as_secs_f64() * 1000.0,
            self.memory,
        );
        if let Some(init) = init_duration {
            report.push_str(&format!("\tInit Duration: {:.2} ms", init.as_secs_f64() * 1000.0));
        }
        let log = format!(
            "{pre_output}START RequestId: {request_id} Version: $LATEST\n{output}{extra_log}END RequestId: {request_id}\n{report}\n"
        );
        InvocationOutcome { body, content_type, function_error, fatal, log: tail(log), duration }
    }

    /// Peak resident memory of the bootstrap process in MB (VmHWM), 0 if unknown.
    fn max_memory_mb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb.div_ceil(1024))
            .unwrap_or(0)
    }

    /// Output the process wrote since the last call. The process writes straight into a file (not a pipe), so
    /// everything it wrote before posting its response is there when we read: no output race.
    fn take_output(&self) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.log_path) else { return String::new() };
        let offset = self.log_offset.load(Ordering::SeqCst);
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= offset {
            return String::new();
        }
        let start = offset.max(len.saturating_sub(MAX_LOG_KEPT as u64));
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(start)).is_err() || file.take(len - start).read_to_end(&mut buf).is_err() {
            return String::new();
        }
        self.log_offset.store(len, Ordering::SeqCst);
        if len >= LOG_TRUNCATE_AT {
            // The child appends (O_APPEND), so after truncation its writes land at the new end. Bytes written
            // between our read and this truncation are lost; acceptable for a bounded local log.
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.log_path) {
                if f.set_len(0).is_ok() {
                    self.log_offset.store(0, Ordering::SeqCst);
                }
            }
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

enum Failure {
    Timeout,
    Fatal(Option<Fatal>),
}

fn tail(log: String) -> String {
    if log.len() <= MAX_LOG_KEPT {
        return log;
    }
    let mut start = log.len() - MAX_LOG_KEPT;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log[start..].to_string()
}

/// `{"errorType","errorMessage"}` as bytes.
pub(crate) fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({ "errorType": error_type, "errorMessage": message })).unwrap_or_default())
}

fn body_error_type(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("errorType")?.as_str().map(str::to_string)
}

/// RIE's `GetValidRuntimeOrFunctionErrorType`: keep a type matching `(Runtime|Function)\.[A-Z][a-zA-Z]+`
/// (unanchored), else `Function.Unknown` for a `Function.` prefix, else `Runtime.Unknown`.
pub(crate) fn normalise_error_type(raw: &str) -> String {
    for prefix in ["Runtime.", "Function."] {
        let mut rest = raw;
        while let Some(pos) = rest.find(prefix) {
            let after = &rest[pos + prefix.len()..];
            let mut chars = after.chars();
            let first_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
            let next_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
            if first_upper && next_alpha {
                return raw.to_string();
            }
            rest = &rest[pos + prefix.len()..];
        }
    }
    if raw.starts_with("Function.") {
        "Function.Unknown".into()
    } else {
        "Runtime.Unknown".into()
    }
}

// ---------------------------------------------------------------- Runtime API server

fn runtime_router(state: Arc<RuntimeState>) -> Router {
    Router::new()
        .route("/2018-06-01/ping", get(|| async { "pong" }))
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(|| async { runtime_error(StatusCode::NOT_FOUND, "NotFound", "No such Runtime API route") })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&json!({ "errorMessage": message, "errorType": error_type })).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [("content-type", "application/json")], r#"{"status":"OK"}"#).into_response()
}

fn invalid_state(from: &str, to: &str) -> Response {
    runtime_error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        &format!("State transition from {from} to {to} failed for runtime. Error: State transition is not allowed"),
    )
}

async fn next(State(state): State<Arc<RuntimeState>>) -> Response {
    {
        let current = state.current.lock().unwrap();
        if current.as_ref().is_some_and(|c| c.reply.is_some()) {
            return invalid_state("InvocationNext", "InvocationNext");
        }
    }
    state.first_next.lock().unwrap().get_or_insert_with(Instant::now);
    let mut queue = state.queue.lock().await;
    let Some(queued) = queue.recv().await else {
        return runtime_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "Internal Server Error");
    };
    drop(queue);
    let data = queued.data;
    let deadline_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + data.timeout;
    state.invoked_any.store(true, Ordering::SeqCst);
    *state.current.lock().unwrap() = Some(Current { request_id: data.request_id.clone(), reply: Some(queued.reply) });
    let _ = queued.picked.send(());
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            if !value.is_empty() {
                headers.insert(name, v);
            }
        }
    };
    set("content-type", "application/json");
    set("Lambda-Runtime-Aws-Request-Id", &data.request_id);
    set("Lambda-Runtime-Deadline-Ms", &deadline_ms.as_millis().to_string());
    set("Lambda-Runtime-Invoked-Function-Arn", &data.invoked_arn);
    set("Lambda-Runtime-Trace-Id", &data.trace_id);
    if let Some(cc) = &data.client_context {
        set("Lambda-Runtime-Client-Context", cc);
    }
    if let Some(ci) = &data.cognito_identity {
        set("Lambda-Runtime-Cognito-Identity", ci);
    }
    if let Some(t) = &data.tenant_id {
        set("Lambda-Runtime-Aws-Tenant-Id", t);
    }
    (StatusCode::OK, headers, data.payload).into_response()
}

/// Why a reply slot could not be claimed.
enum ClaimError {
    /// Not the current invocation's id → 400 InvalidRequestID.
    UnknownId,
    /// The current invocation was already answered → 403 InvalidStateTransition.
    Answered(&'static str),
}

impl ClaimError {
    fn into_response(self) -> Response {
        match self {
            ClaimError::UnknownId => runtime_error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID"),
            ClaimError::Answered(to) => invalid_state(&format!("Invocation{to}"), &format!("Invocation{to}")),
        }
    }
}

/// Claims the reply slot of the current invocation `id`.
fn claim(state: &RuntimeState, id: &str, to: &'static str) -> Result<oneshot::Sender<Reply>, ClaimError> {
    let mut current = state.current.lock().unwrap();
    match current.as_mut() {
        Some(c) if c.request_id == id => c.reply.take().ok_or(ClaimError::Answered(to)),
        _ => Err(ClaimError::UnknownId),
    }
}

enum BodyRead {
    Ok(Bytes),
    TooLarge,
    Truncated,
}

async fn read_limited(body: Body, limit: usize) -> BodyRead {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => BodyRead::Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => BodyRead::TooLarge,
        Err(_) => BodyRead::Truncated,
    }
}

fn too_large_response() -> Response {
    runtime_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_RUNTIME_PAYLOAD} bytes)."),
    )
}

fn truncated_response() -> Response {
    runtime_error(StatusCode::BAD_REQUEST, "TruncatedHTTPRequest", "HTTP request detected as truncated")
}

fn content_type(headers: &HeaderMap, default: &str) -> String {
    headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or(default).to_string()
}

async fn response(
    State(state): State<Arc<RuntimeState>>,
    AxPath(id): AxPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(mode) = headers.get("lambda-runtime-function-response-mode") {
        if mode.as_bytes() != b"streaming" {
            if let Ok(reply) = claim(&state, &id, "Response") {
                let body = error_body("Runtime.InvalidResponseModeHeader", "Invalid response mode header");
                let _ = reply.send(Reply::Error {
                    body,
                    content_type: "application/json".into(),
                    error_type: "Runtime.InvalidResponseModeHeader".into(),
                });
            }
            return runtime_error(
                StatusCode::BAD_REQUEST,
                "InvalidFunctionResponseMode",
                "Lambda-Runtime-Function-Response-Mode must be 'streaming'",
            );
        }
    }
    let reply = match claim(&state, &id, "Response") {
        Ok(reply) => reply,
        Err(e) => return e.into_response(),
    };
    let too_big_declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_RUNTIME_PAYLOAD);
    if too_big_declared {
        let _ = reply.send(Reply::TooLarge);
        return too_large_response();
    }
    match read_limited(body, MAX_RUNTIME_PAYLOAD).await {
        BodyRead::Ok(bytes) => {
            let _ =
                reply.send(Reply::Response { body: bytes, content_type: content_type(&headers, "application/json") });
            accepted()
        }
        BodyRead::TooLarge => {
            let _ = reply.send(Reply::TooLarge);
            too_large_response()
        }
        BodyRead::Truncated => {
            let body = error_body("Runtime.TruncatedResponse", "The runtime's response was truncated");
            let _ = reply.send(Reply::Error {
                body,
                content_type: "application/json".into(),
                error_type: "Runtime.TruncatedResponse".into(),
            });
            truncated_response()
        }
    }
}

/// Strips `errorCause` from an `application/vnd.aws.lambda.error.cause+json` body (it goes to X-Ray, not the caller).
fn strip_error_cause(headers: &HeaderMap, body: Bytes) -> Bytes {
    let is_cause = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/vnd.aws.lambda.error.cause+json"));
    if !is_cause {
        return body;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut value) => {
            if let Some(obj) = value.as_object_mut() {
                obj.remove("errorCause");
            }
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
        }
        Err(_) => body,
    }
}

fn header_error_type(headers: &HeaderMap) -> String {
    let raw = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    normalise_error_type(raw)
}

async fn invocation_error(
    State(state): State<Arc<RuntimeState>>,
    AxPath(id): AxPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reply = match claim(&state, &id, "Error") {
        Ok(reply) => reply,
        Err(e) => return e.into_response(),
    };
    let error_type = header_error_type(&headers);
    match read_limited(body, MAX_RUNTIME_PAYLOAD).await {
        BodyRead::Ok(bytes) => {
            let bytes = strip_error_cause(&headers, bytes);
            let bytes = if bytes.is_empty() { error_body(&error_type, "") } else { bytes };
            let ct = if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
                "application/json".to_string()
            } else {
                "application/octet-stream".to_string()
            };
            let _ = reply.send(Reply::Error { body: bytes, content_type: ct, error_type });
            accepted()
        }
        BodyRead::TooLarge => {
            let _ = reply.send(Reply::TooLarge);
            too_large_response()
        }
        BodyRead::Truncated => {
            let _ = reply.send(Reply::Error {
                body: error_body(&error_type, ""),
                content_type: "application/json".into(),
                error_type,
            });
            truncated_response()
        }
    }
}

async fn init_error(State(state): State<Arc<RuntimeState>>, headers: HeaderMap, body: Body) -> Response {
    if state.invoked_any.load(Ordering::SeqCst) {
        return invalid_state("Ready", "InitError");
    }
    let error_type = header_error_type(&headers);
    let bytes = match read_limited(body, MAX_RUNTIME_PAYLOAD).await {
        BodyRead::Ok(bytes) => strip_error_cause(&headers, bytes),
        BodyRead::TooLarge => return too_large_response(),
        BodyRead::Truncated => return truncated_response(),
    };
    state.fatal.send_if_modified(|f| {
        if f.is_none() {
            *f = Some(Fatal::InitError { body: bytes, error_type });
            true
        } else {
            false
        }
    });
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_normalisation_follows_rie() {
        assert_eq!(normalise_error_type("Runtime.ExitError"), "Runtime.ExitError");
        assert_eq!(normalise_error_type("Function.MyError"), "Function.MyError");
        assert_eq!(normalise_error_type("xRuntime.Custom"), "xRuntime.Custom");
        assert_eq!(normalise_error_type("Function.x"), "Function.Unknown");
        assert_eq!(normalise_error_type("unhandled"), "Runtime.Unknown");
        assert_eq!(normalise_error_type(""), "Runtime.Unknown");
    }
}
