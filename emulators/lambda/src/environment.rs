//! Execution environments: one `bootstrap` process, run by [`faas_supervisor`], plus its own
//! Runtime API server ([`crate::runtime_api`]) on 127.0.0.1:0. One invocation at a time per
//! environment; the invoker keeps warm ones in a [`faas_supervisor::Pool`] per function.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas_supervisor::{tail_str, FileCapture, FileLog, Output, Process, ProcessSpec, Wording};
use tokio::sync::oneshot;

use crate::runtime_api::{body_error_type, error_body, Fatal, Queued, Reply, RuntimeApi, MAX_RUNTIME_PAYLOAD};

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

/// A running execution environment. Dropping it kills the process group and stops its Runtime
/// API server; its log file goes with the process.
pub(crate) struct Environment {
    pub id: String,
    api: RuntimeApi,
    process: Process,
    spawned_at: Instant,
    init_reported: AtomicBool,
    memory: u64,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("id", &self.id).field("pid", &self.process.id()).finish()
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.kill();
    }
}

impl faas_supervisor::Instance for Environment {
    fn usable(&self) -> bool {
        self.alive()
    }
}

impl Environment {
    /// Starts the Runtime API server and the `bootstrap` process, with exactly the environment
    /// Lambda gives a custom runtime (and the function's variables), nothing of ours.
    pub async fn spawn(spec: &EnvironmentSpec) -> std::io::Result<Environment> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let api = RuntimeApi::start(spec.runtime_api_base.as_deref()).await?;
        std::fs::create_dir_all(&spec.log_dir)?;
        let log = FileCapture {
            path: spec.log_dir.join(format!("{id}.log")),
            keep: MAX_LOG_KEPT,
            truncate_at: LOG_TRUNCATE_AT,
        };
        let date = chrono::Utc::now().format("%Y/%m/%d");
        let command = ProcessSpec::new(spec.code_dir.join("bootstrap"))
            .current_dir(&spec.code_dir)
            .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
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
            .output(Output::File(log));
        let process = match command.spawn() {
            Ok(process) => process,
            Err(e) => {
                api.stop();
                return Err(e.into_io());
            }
        };
        let mut exit = process.watch_exit();
        let state = api.state.clone();
        tokio::spawn(async move {
            let description = exit.wait().await.describe(Wording::Go);
            RuntimeApi::record_exit(&state, description);
        });
        Ok(Environment {
            id,
            api,
            process,
            spawned_at: Instant::now(),
            init_reported: AtomicBool::new(false),
            memory: spec.memory,
        })
    }

    fn fatal_now(&self) -> Option<Fatal> {
        self.api.state.fatal.borrow().clone()
    }

    /// Whether the process is still usable.
    pub fn alive(&self) -> bool {
        self.api.state.fatal.borrow().is_none()
    }

    /// Kills the process group and the Runtime API server.
    pub fn kill(&self) {
        self.process.kill();
        self.api.stop();
    }

    /// Runs one invocation to its end.
    pub async fn invoke(&self, data: InvocationData) -> InvocationOutcome {
        let request_id = data.request_id.clone();
        let timeout = data.timeout;
        let pre_output = self.take_output();
        let started = Instant::now();
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let mut fatal_rx = self.api.state.fatal.subscribe();
        let result: Result<Reply, Failure> = async {
            if self.api.queue.send(Queued { data, picked: picked_tx, reply: reply_tx }).await.is_err() {
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
            self.api.state.first_next.lock().unwrap().map(|t| t.duration_since(self.spawned_at))
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
                // ⚠ UNCONFIRMED (AWS documents no wording): real Lambda's timeout text. We send errorType Sandbox.Timeout
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
        // Lambda bills the duration rounded *up* to the next millisecond (at least 1 ms): a 12.70 ms
        // invocation reports `Billed Duration: 13 ms`, never less than it ran.
        let billed = duration.as_micros().div_ceil(1000).max(1);
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
        InvocationOutcome {
            body,
            content_type,
            function_error,
            fatal,
            log: tail_str(&log, MAX_LOG_KEPT).to_string(),
            duration,
        }
    }

    /// Peak resident memory of the bootstrap process in MB (VmHWM), 0 if unknown.
    fn max_memory_mb(&self) -> u64 {
        self.process.peak_memory_kib().map(|kb| kb.div_ceil(1024)).unwrap_or(0)
    }

    /// Output the process wrote since the last call (it writes into a file, see [`FileLog`]).
    fn take_output(&self) -> String {
        self.process.output_file().map(FileLog::take).unwrap_or_default()
    }
}

enum Failure {
    Timeout,
    Fatal(Option<Fatal>),
}
